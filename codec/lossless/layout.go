package lossless

import (
	"encoding/binary"
	"fmt"
)

// A layout says how the bits of one element are redistributed over the
// element's byte streams. Every layout maps a w-byte element to exactly one
// byte in each of w streams, so a chunk of m elements always becomes w
// streams of m bytes and the transform is a bijection.
type layout uint8

const (
	// layoutPlanes puts byte k (little-endian order) of every element in
	// stream k. Integers, booleans, FP8 and F16 use it: for F16 the high
	// byte (sign, 5-bit exponent, 2 mantissa bits) already isolates the
	// low-entropy exponent well enough that a finer split measured no
	// smaller with order-0 coders.
	layoutPlanes layout = 0
	// layoutBF16 separates the 8-bit exponent from sign and mantissa.
	layoutBF16 layout = 1
	// layoutF32 separates the 8-bit exponent, then sign with the top 7
	// mantissa bits, then the two low mantissa bytes.
	layoutF32 layout = 2
	// layoutF64 separates the low 8 exponent bits, then sign, the top 3
	// exponent bits and the top 4 mantissa bits, then six mantissa bytes.
	layoutF64 layout = 3
)

// An elemFormat is what Compress and Decompress need to know about a dtype.
type elemFormat struct {
	layout layout
	size   int // bytes per element, also the number of streams
}

// dtypes maps safetensors dtype names to their stream layout.
var dtypes = map[string]elemFormat{
	"BOOL":        {layoutPlanes, 1},
	"U8":          {layoutPlanes, 1},
	"I8":          {layoutPlanes, 1},
	"F8_E4M3":     {layoutPlanes, 1},
	"F8_E5M2":     {layoutPlanes, 1},
	"F8_E8M0":     {layoutPlanes, 1},
	"F8_E4M3FNUZ": {layoutPlanes, 1},
	"F8_E5M2FNUZ": {layoutPlanes, 1},
	"U16":         {layoutPlanes, 2},
	"I16":         {layoutPlanes, 2},
	"F16":         {layoutPlanes, 2},
	"BF16":        {layoutBF16, 2},
	"U32":         {layoutPlanes, 4},
	"I32":         {layoutPlanes, 4},
	"F32":         {layoutF32, 4},
	"U64":         {layoutPlanes, 8},
	"I64":         {layoutPlanes, 8},
	"F64":         {layoutF64, 8},
	"C64":         {layoutPlanes, 8},
}

// lookupDType returns the format of dtype or an error wrapping ErrDType.
func lookupDType(dtype string) (elemFormat, error) {
	f, ok := dtypes[dtype]
	if !ok {
		return elemFormat{}, fmt.Errorf("lossless: %w %q", ErrDType, dtype)
	}
	return f, nil
}

// split transforms m elements from src (m*f.size bytes) into f.size streams
// of m bytes each, stored back to back in planes.
func split(f elemFormat, planes, src []byte, m int) {
	planes = planes[:f.size*m]
	src = src[:f.size*m]
	switch f.layout {
	case layoutBF16:
		e, sm := planes[:m], planes[m:2*m]
		for i := range m {
			v := binary.LittleEndian.Uint16(src[2*i:])
			e[i] = byte(v >> 7)
			sm[i] = byte(v>>8)&0x80 | byte(v)&0x7f
		}
	case layoutF32:
		p0, p1, p2, p3 := planes[:m], planes[m:2*m], planes[2*m:3*m], planes[3*m:4*m]
		for i := range m {
			v := binary.LittleEndian.Uint32(src[4*i:])
			p0[i] = byte(v >> 23)
			p1[i] = byte(v>>24)&0x80 | byte(v>>16)&0x7f
			p2[i] = byte(v >> 8)
			p3[i] = byte(v)
		}
	case layoutF64:
		for i := range m {
			v := binary.LittleEndian.Uint64(src[8*i:])
			e := uint16(v>>52) & 0x7ff
			planes[i] = byte(e)
			planes[m+i] = byte(v>>56)&0x80 | byte(e>>8)<<4 | byte(v>>48)&0x0f
			for k := 2; k < 8; k++ {
				planes[k*m+i] = byte(v >> (8 * (7 - k)))
			}
		}
	default:
		splitPlanes(f.size, planes, src, m)
	}
}

// splitPlanes is the layoutPlanes case of split.
func splitPlanes(w int, planes, src []byte, m int) {
	switch w {
	case 1:
		copy(planes, src)
	case 2:
		p0, p1 := planes[:m], planes[m:2*m]
		for i := range m {
			p0[i] = src[2*i]
			p1[i] = src[2*i+1]
		}
	default:
		for k := range w {
			p := planes[k*m : (k+1)*m]
			for i := range m {
				p[i] = src[i*w+k]
			}
		}
	}
}

// merge is the inverse of split: it rebuilds m elements into dst from the
// f.size streams in planes.
func merge(f elemFormat, dst, planes []byte, m int) {
	planes = planes[:f.size*m]
	dst = dst[:f.size*m]
	switch f.layout {
	case layoutBF16:
		mergeBF16(dst, planes[:m], planes[m:2*m])
	case layoutF32:
		p0, p1, p2, p3 := planes[:m], planes[m:2*m], planes[2*m:3*m], planes[3*m:4*m]
		for i := range m {
			v := uint32(p0[i])<<23 | uint32(p1[i]&0x80)<<24 | uint32(p1[i]&0x7f)<<16 |
				uint32(p2[i])<<8 | uint32(p3[i])
			binary.LittleEndian.PutUint32(dst[4*i:], v)
		}
	case layoutF64:
		for i := range m {
			b1 := planes[m+i]
			e := uint64(planes[i]) | uint64(b1>>4&7)<<8
			v := uint64(b1&0x80)<<56 | e<<52 | uint64(b1&0x0f)<<48
			for k := 2; k < 8; k++ {
				v |= uint64(planes[k*m+i]) << (8 * (7 - k))
			}
			binary.LittleEndian.PutUint64(dst[8*i:], v)
		}
	default:
		mergePlanes(f.size, dst, planes, m)
	}
}

// mergeBF16 rebuilds BF16 elements from their exponent and sign-mantissa
// planes, four at a time: decoding a lossless BF16 tensor spends most of its
// time here otherwise.
func mergeBF16(dst, e, sm []byte) {
	m := len(e)
	sm = sm[:m]
	dst = dst[:2*m]
	i := 0
	for ; i+4 <= m; i += 4 {
		ee := uint64(binary.LittleEndian.Uint32(e[i:]))
		ss := uint64(binary.LittleEndian.Uint32(sm[i:]))
		// Spread the four bytes of each plane to the 16-bit lanes.
		ee = (ee | ee<<16) & 0x0000ffff0000ffff
		ee = (ee | ee<<8) & 0x00ff00ff00ff00ff
		ss = (ss | ss<<16) & 0x0000ffff0000ffff
		ss = (ss | ss<<8) & 0x00ff00ff00ff00ff
		v := ee<<7 | (ss&0x0080008000800080)<<8 | ss&0x007f007f007f007f
		binary.LittleEndian.PutUint64(dst[2*i:], v)
	}
	for ; i < m; i++ {
		v := uint16(e[i])<<7 | uint16(sm[i]&0x80)<<8 | uint16(sm[i]&0x7f)
		binary.LittleEndian.PutUint16(dst[2*i:], v)
	}
}

// mergePlanes is the layoutPlanes case of merge.
func mergePlanes(w int, dst, planes []byte, m int) {
	switch w {
	case 1:
		copy(dst, planes)
	case 2:
		p0, p1 := planes[:m], planes[m:2*m]
		for i := range m {
			dst[2*i] = p0[i]
			dst[2*i+1] = p1[i]
		}
	default:
		for k := range w {
			p := planes[k*m : (k+1)*m]
			for i := range m {
				dst[i*w+k] = p[i]
			}
		}
	}
}

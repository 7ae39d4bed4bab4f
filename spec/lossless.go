package spec

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// This file is the reference decoder of a lossless frame, the bytes of one
// chunk group of a tensor coded with the "lossless" codec (FORMAT.md §7.2).
// The huff0 and fse block codings are decoded by huff0.go and fse.go.
// Method 3 blocks are Zstandard frames, an outside standard (RFC 8878)
// with several independent implementations; they are decoded with
// github.com/klauspost/compress/zstd, the one the fast path also uses, so
// the differential tests do not check zstd decoding itself.

// Lossless frame constants (FORMAT.md §7.2).
const (
	losslessVersion = 1
	// losslessChunk is C, the number of elements per chunk and so the
	// length in bytes of every block but the last chunk's.
	losslessChunk = 1 << 17

	losslessHeaderLen = 3 // version, layout, streams; + count:uvarint
	// Every block takes at least a method byte and a one-byte length in
	// its descriptor and one payload byte.
	losslessMinBlockBytes = 3
)

// Block methods.
const (
	losslessStored   = 0
	losslessHuff0    = 1
	losslessFSE      = 2
	losslessZstd     = 3
	losslessConstant = 4
)

// Stream layouts.
const (
	losslessPlanes = 0
	losslessBF16   = 1
	losslessF32    = 2
	losslessF64    = 3
)

// losslessDTypes gives each dtype's layout and element size, which is
// also its number of streams.
var losslessDTypes = map[string][2]int{
	"BOOL": {losslessPlanes, 1}, "U8": {losslessPlanes, 1}, "I8": {losslessPlanes, 1},
	"F8_E4M3": {losslessPlanes, 1}, "F8_E5M2": {losslessPlanes, 1}, "F8_E8M0": {losslessPlanes, 1},
	"F8_E4M3FNUZ": {losslessPlanes, 1}, "F8_E5M2FNUZ": {losslessPlanes, 1},
	"U16": {losslessPlanes, 2}, "I16": {losslessPlanes, 2}, "F16": {losslessPlanes, 2},
	"BF16": {losslessBF16, 2},
	"U32":  {losslessPlanes, 4}, "I32": {losslessPlanes, 4},
	"F32": {losslessF32, 4},
	"U64": {losslessPlanes, 8}, "I64": {losslessPlanes, 8},
	"F64": {losslessF64, 8},
	"C64": {losslessPlanes, 8},
}

// Lossless decodes a lossless frame holding n elements of dtype (a
// safetensors name) and returns their little-endian bytes, n times the
// element size. A frame that breaks any rule of FORMAT.md §7.2, including
// one whose header disagrees with dtype or n, gives an error wrapping
// ErrFormat; an unknown dtype gives ErrUnsupported. Method 3 (Zstandard)
// blocks are decoded with github.com/klauspost/compress/zstd; everything
// else is decoded here from the text of the format. Nothing is allocated
// before every descriptor has been read from the frame, and the output
// grows only as its blocks decode.
func Lossless(dtype string, n uint64, frame []byte) ([]byte, error) {
	lw, ok := losslessDTypes[dtype]
	if !ok {
		return nil, fmt.Errorf("%w: lossless dtype %q", ErrUnsupported, dtype)
	}
	layout, w := lw[0], lw[1]

	// Header.
	if len(frame) < losslessHeaderLen {
		return nil, fmt.Errorf("%w: lossless header truncated", ErrFormat)
	}
	if frame[0] != losslessVersion {
		return nil, fmt.Errorf("%w: lossless version %d", ErrFormat, frame[0])
	}
	if int(frame[1]) != layout {
		return nil, fmt.Errorf("%w: lossless layout %d, %s has %d", ErrFormat, frame[1], dtype, layout)
	}
	if int(frame[2]) != w {
		return nil, fmt.Errorf("%w: lossless frame has %d streams, %s has %d", ErrFormat, frame[2], dtype, w)
	}
	off := losslessHeaderLen
	count, k, err := losslessUvarint(frame[off:])
	if err != nil {
		return nil, fmt.Errorf("lossless element count: %w", err)
	}
	if count != n {
		return nil, fmt.Errorf("%w: lossless frame holds %d elements, want %d", ErrFormat, count, n)
	}
	off += k

	// Descriptors. The number of blocks is checked against the bytes left
	// before anything is sized from n.
	chunks := n / losslessChunk
	if n%losslessChunk != 0 {
		chunks++
	}
	if chunks > uint64(len(frame)-off)/losslessMinBlockBytes/uint64(w) {
		return nil, fmt.Errorf("%w: %d bytes cannot hold the blocks of %d elements", ErrFormat, len(frame)-off, n)
	}
	blocks := int(chunks) * w
	type block struct{ method, length int }
	desc := make([]block, blocks)
	total := 0
	for i := range desc {
		if off >= len(frame) {
			return nil, fmt.Errorf("%w: lossless descriptors truncated", ErrFormat)
		}
		method := int(frame[off])
		l, k, err := losslessUvarint(frame[off+1:])
		if err != nil {
			return nil, fmt.Errorf("lossless block %d length: %w", i, err)
		}
		if l > uint64(len(frame)) {
			return nil, fmt.Errorf("%w: lossless block %d of %d bytes", ErrFormat, i, l)
		}
		off += 1 + k
		c := uint64(i / w)
		m := int(min(losslessChunk, n-c*losslessChunk))
		length := int(l)
		switch method {
		case losslessStored:
			if length != m {
				return nil, fmt.Errorf("%w: stored block %d of %d bytes, want %d", ErrFormat, i, length, m)
			}
		case losslessConstant:
			if length != 1 {
				return nil, fmt.Errorf("%w: constant block %d of %d bytes", ErrFormat, i, length)
			}
		case losslessHuff0, losslessFSE, losslessZstd:
			if length < 1 || length >= m {
				return nil, fmt.Errorf("%w: coded block %d of %d bytes for %d", ErrFormat, i, length, m)
			}
		default:
			return nil, fmt.Errorf("%w: lossless block %d has method %d", ErrFormat, i, method)
		}
		desc[i] = block{method, length}
		total += length
		if total > len(frame) {
			return nil, fmt.Errorf("%w: lossless payloads exceed the frame", ErrFormat)
		}
	}
	if total != len(frame)-off {
		return nil, fmt.Errorf("%w: lossless payloads take %d bytes, %d follow the descriptors", ErrFormat, total, len(frame)-off)
	}

	// Payloads, chunk by chunk.
	// The output grows chunk by chunk, as blocks prove they decode.
	var out []byte
	streams := make([][]byte, w)
	for c := range int(chunks) {
		m := int(min(losslessChunk, n-uint64(c)*losslessChunk))
		for s := range w {
			d := desc[c*w+s]
			payload := frame[off : off+d.length]
			off += d.length
			b, err := losslessBlock(d.method, payload, m)
			if err != nil {
				return nil, fmt.Errorf("lossless chunk %d stream %d (method %d): %w", c, s, d.method, err)
			}
			streams[s] = b
		}
		out = slices.Grow(out, m*w)
		for i := range m {
			out = losslessAppendElement(out, layout, w, streams, i)
		}
	}
	return out, nil
}

// losslessUvarint reads an unsigned LEB128 integer in its shortest form (no final
// 0x00 byte after another) that fits in 64 bits.
func losslessUvarint(p []byte) (uint64, int, error) {
	var v uint64
	for i := range binary.MaxVarintLen64 {
		if i >= len(p) {
			return 0, 0, fmt.Errorf("%w: uvarint truncated", ErrFormat)
		}
		b := p[i]
		if i == binary.MaxVarintLen64-1 && b > 1 {
			return 0, 0, fmt.Errorf("%w: uvarint overflows 64 bits", ErrFormat)
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			if i > 0 && b == 0 {
				return 0, 0, fmt.Errorf("%w: uvarint not in shortest form", ErrFormat)
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: uvarint overflows 64 bits", ErrFormat)
}

// losslessBlock decodes one block's payload into its m bytes.
func losslessBlock(method int, payload []byte, m int) ([]byte, error) {
	var b []byte
	var err error
	switch method {
	case losslessStored:
		b = payload
	case losslessConstant:
		b = make([]byte, m)
		for i := range b {
			b[i] = payload[0]
		}
	case losslessHuff0:
		b, err = huff0Decode4X(payload, m)
	case losslessFSE:
		b, err = fseDecode(payload, fseMaxAccuracyLog, m)
	case losslessZstd:
		b, err = losslessZstdBlock(payload, m)
	}
	if err != nil {
		return nil, err
	}
	if len(b) != m {
		return nil, fmt.Errorf("%w: block decodes to %d bytes, want %d", ErrFormat, len(b), m)
	}
	return b, nil
}

// losslessZstdDecoder decodes method 3 blocks. Its window and output
// limits are C bytes, so no frame makes it allocate more than a block is
// worth.
var losslessZstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil,
		zstd.WithDecoderMaxWindow(losslessChunk),
		zstd.WithDecoderMaxMemory(losslessChunk),
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderConcurrency(1),
	)
})

// losslessZstdBlock decodes the Zstandard frames of payload, which must give m
// bytes.
func losslessZstdBlock(payload []byte, m int) ([]byte, error) {
	d, err := losslessZstdDecoder()
	if err != nil {
		return nil, err
	}
	b, err := d.DecodeAll(payload, make([]byte, 0, m))
	if err != nil {
		return nil, fmt.Errorf("%w: zstd: %v", ErrFormat, err)
	}
	return b, nil
}

// losslessAppendElement rebuilds element i from its byte in each stream and
// appends it little-endian.
func losslessAppendElement(out []byte, layout, w int, s [][]byte, i int) []byte {
	switch layout {
	case losslessBF16:
		e, sm := uint16(s[0][i]), uint16(s[1][i])
		v := sm&0x80<<8 | e<<7 | sm&0x7F
		return binary.LittleEndian.AppendUint16(out, v)
	case losslessF32:
		v := uint32(s[1][i]&0x80)<<24 | uint32(s[0][i])<<23 | uint32(s[1][i]&0x7F)<<16 |
			uint32(s[2][i])<<8 | uint32(s[3][i])
		return binary.LittleEndian.AppendUint32(out, v)
	case losslessF64:
		e := uint64(s[1][i]>>4&7)<<8 | uint64(s[0][i])
		v := uint64(s[1][i]&0x80)<<56 | e<<52 | uint64(s[1][i]&0x0F)<<48
		for k := 2; k < 8; k++ {
			v |= uint64(s[k][i]) << (8 * (7 - k))
		}
		return binary.LittleEndian.AppendUint64(out, v)
	}
	for k := range w {
		out = append(out, s[k][i])
	}
	return out
}

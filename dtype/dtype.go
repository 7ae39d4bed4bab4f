// Package dtype converts tensor elements between their stored types and
// float32. Every conversion is exact or rounds to nearest, ties to even,
// so results are identical on every platform.
package dtype

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"

	"github.com/nwcodec/nwc/format"
)

// ToFloat32 converts the little-endian elements in src to float32, appending
// them to dst. Integer types convert by value (large 64-bit integers round);
// every 8-bit float type converts exactly. C64 (complex) is unsupported.
func ToFloat32(dst []float32, src []byte, dt format.DType) ([]float32, error) {
	size := dt.Size()
	if !toFloat(dt) {
		return dst, format.UnsupportedError("dtype " + string(dt) + " as float32")
	}
	if len(src)%size != 0 {
		return dst, fmt.Errorf("dtype: %d bytes is not a whole number of %s elements", len(src), dt)
	}
	n := len(src) / size
	out := grow(dst, n)
	o := out[len(dst):]
	le := binary.LittleEndian
	switch dt {
	case format.F32:
		for i := range o {
			o[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
	case format.F64:
		for i := range o {
			o[i] = float32(math.Float64frombits(le.Uint64(src[8*i:])))
		}
	case format.F16:
		for i := range o {
			o[i] = float16.Frombits(le.Uint16(src[2*i:])).Float32()
		}
	case format.BF16:
		for i := range o {
			o[i] = math.Float32frombits(uint32(le.Uint16(src[2*i:])) << 16)
		}
	case format.F8E4M3, format.F8E5M2, format.F8E4M3FNUZ, format.F8E5M2FNUZ, format.F8E8M0:
		table := f8Tables[dt]
		for i := range o {
			o[i] = table[src[i]]
		}
	case format.I64:
		for i := range o {
			o[i] = float32(int64(le.Uint64(src[8*i:])))
		}
	case format.U64:
		for i := range o {
			o[i] = float32(le.Uint64(src[8*i:]))
		}
	case format.I32:
		for i := range o {
			o[i] = float32(int32(le.Uint32(src[4*i:])))
		}
	case format.U32:
		for i := range o {
			o[i] = float32(le.Uint32(src[4*i:]))
		}
	case format.I16:
		for i := range o {
			o[i] = float32(int16(le.Uint16(src[2*i:])))
		}
	case format.U16:
		for i := range o {
			o[i] = float32(le.Uint16(src[2*i:]))
		}
	case format.I8:
		for i := range o {
			o[i] = float32(int8(src[i]))
		}
	case format.U8, format.Bool:
		for i := range o {
			o[i] = float32(src[i])
		}
	}
	return out, nil
}

// FromFloat32 converts src to little-endian elements of type dt, appending
// them to dst. Floats round to nearest even (F8_E4M3 saturates to ±448, as
// it has no infinity); integers round to nearest even and saturate.
//
// The FNUZ types, F8_E8M0 and C64 are unsupported: values are never
// rounded into them (IsFloat is false for them, so codecs keep them bit
// for bit and decoding does not convert to them).
func FromFloat32(dst []byte, src []float32, dt format.DType) ([]byte, error) {
	size := dt.Size()
	if !fromFloat(dt) {
		return dst, format.UnsupportedError("dtype " + string(dt) + " from float32")
	}
	start := len(dst)
	if cap(dst)-start < len(src)*size {
		nd := make([]byte, start, start+len(src)*size)
		copy(nd, dst)
		dst = nd
	}
	dst = dst[:start+len(src)*size]
	o := dst[start:]
	le := binary.LittleEndian
	switch dt {
	case format.F32:
		for i, v := range src {
			le.PutUint32(o[4*i:], math.Float32bits(v))
		}
	case format.F64:
		for i, v := range src {
			le.PutUint64(o[8*i:], math.Float64bits(float64(v)))
		}
	case format.F16:
		for i, v := range src {
			le.PutUint16(o[2*i:], float16.Fromfloat32(v).Bits())
		}
	case format.BF16:
		for i, v := range src {
			le.PutUint16(o[2*i:], BF16FromFloat32(v))
		}
	case format.F8E4M3:
		for i, v := range src {
			o[i] = toF8(v, &e4m3Table, true)
		}
	case format.F8E5M2:
		for i, v := range src {
			o[i] = toF8(v, &e5m2Table, false)
		}
	case format.I64:
		for i, v := range src {
			le.PutUint64(o[8*i:], uint64(int64(clampRound(v, math.MinInt64, math.MaxInt64))))
		}
	case format.U64:
		for i, v := range src {
			le.PutUint64(o[8*i:], uint64(clampRound(v, 0, math.MaxUint64)))
		}
	case format.I32:
		for i, v := range src {
			le.PutUint32(o[4*i:], uint32(int32(clampRound(v, math.MinInt32, math.MaxInt32))))
		}
	case format.U32:
		for i, v := range src {
			le.PutUint32(o[4*i:], uint32(clampRound(v, 0, math.MaxUint32)))
		}
	case format.I16:
		for i, v := range src {
			le.PutUint16(o[2*i:], uint16(int16(clampRound(v, math.MinInt16, math.MaxInt16))))
		}
	case format.U16:
		for i, v := range src {
			le.PutUint16(o[2*i:], uint16(clampRound(v, 0, math.MaxUint16)))
		}
	case format.I8:
		for i, v := range src {
			o[i] = byte(int8(clampRound(v, math.MinInt8, math.MaxInt8)))
		}
	case format.U8:
		for i, v := range src {
			o[i] = byte(clampRound(v, 0, math.MaxUint8))
		}
	case format.Bool:
		for i, v := range src {
			if v != 0 {
				o[i] = 1
			} else {
				o[i] = 0
			}
		}
	}
	return dst, nil
}

// CanConvert reports whether Convert converts elements of type from to
// type to: a known type to itself, or through float32 when from has a real
// value (not C64) and values round into to (not C64, F8_E8M0 or the FNUZ
// types, which are only ever kept bit for bit).
func CanConvert(to, from format.DType) bool {
	return from.Valid() && from == to || toFloat(from) && fromFloat(to)
}

func toFloat(dt format.DType) bool { return dt.Valid() && dt != format.C64 }

func fromFloat(dt format.DType) bool {
	switch dt {
	case format.F8E8M0, format.F8E4M3FNUZ, format.F8E5M2FNUZ, format.C64:
		return false
	}
	return dt.Valid()
}

// clampRound rounds v to the nearest integer (ties to even) and clamps it
// to [lo, hi]; NaN becomes 0. Large bounds are compared as float64, so the
// int64 and uint64 conversions saturate instead of overflowing.
func clampRound(v float32, lo, hi float64) float64 {
	if v != v {
		return 0
	}
	r := math.RoundToEven(float64(v))
	if r <= lo {
		return lo
	}
	if r >= hi {
		if hi > 1<<53 {
			// float64(MaxInt64) is 2^63, which overflows int64: step below
			// it to the largest float64 under the bound.
			return math.Nextafter(hi, lo)
		}
		return hi
	}
	return r
}

// BF16FromFloat32 rounds f to bfloat16 (nearest, ties to even), keeping
// NaN a quiet NaN.
func BF16FromFloat32(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

func grow(dst []float32, n int) []float32 {
	if cap(dst)-len(dst) < n {
		nd := make([]float32, len(dst), len(dst)+n)
		copy(nd, dst)
		dst = nd
	}
	return dst[:len(dst)+n]
}

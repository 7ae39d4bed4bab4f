package dtype

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/nwcodec/nwc/format"
)

// convertBlock is the number of elements Convert stages through float32 at
// a time, so that converting a group needs a fixed, small buffer.
const convertBlock = 1024

// Convert converts the little-endian elements of src, of type from, to
// little-endian elements of type to, appending them to dst.
//
// Identical types are copied. Otherwise every element passes through
// float32: ToFloat32, then FromFloat32. The result is exact whenever the
// value fits the target (BF16, F16 and F8 to F32; F8 to F16 or BF16) and
// otherwise rounds to nearest, ties to even, once: F64 elements bound for
// a float type narrower than float32 are first rounded to float32 "to
// odd" (RoundToOddFloat32), which makes the second rounding give the same
// result as rounding the float64 value directly.
func Convert(dst []byte, to format.DType, src []byte, from format.DType) ([]byte, error) {
	fs, ts := from.Size(), to.Size()
	if !CanConvert(to, from) {
		return dst, format.UnsupportedError("dtype " + string(from) + " as " + string(to))
	}
	if len(src)%fs != 0 {
		return dst, fmt.Errorf("dtype: %d bytes is not a whole number of %s elements", len(src), from)
	}
	if from == to {
		return append(dst, src...), nil
	}
	n := len(src) / fs
	if free := cap(dst) - len(dst); free < n*ts {
		nd := make([]byte, len(dst), len(dst)+n*ts)
		copy(nd, dst)
		dst = nd
	}
	odd := from == format.F64 && to.IsFloat() && ts < 4
	var block [convertBlock]float32 // stays on the stack
	buf := block[:0]
	for i := 0; i < n; i += convertBlock {
		j := min(i+convertBlock, n)
		var err error
		if odd {
			buf = buf[:j-i]
			for k := range buf {
				buf[k] = RoundToOddFloat32(math.Float64frombits(binary.LittleEndian.Uint64(src[(i+k)*8:])))
			}
		} else if buf, err = ToFloat32(buf[:0], src[i*fs:j*fs], from); err != nil {
			return dst, err
		}
		if dst, err = FromFloat32(dst, buf, to); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// RoundToOddFloat32 rounds x to float32 "to odd": a value float32 cannot
// hold exactly becomes the neighbour, towards zero or away from it, whose
// last significand bit is 1. Rounding that result to nearest even in any
// format at least two bits narrower than float32 (F16, BF16, F8) equals
// rounding x there directly, which converting through a float32 rounded
// to nearest does not always do. NaN stays NaN; values beyond float32's
// range become infinite, as they would in those narrower formats.
func RoundToOddFloat32(x float64) float32 {
	f := float32(x)
	if float64(f) == x || x != x || math.IsInf(float64(f), 0) {
		return f
	}
	b := math.Float32bits(f)
	if b&1 == 0 {
		// f is the even neighbour: step to the odd one on x's side.
		if math.Abs(x) > math.Abs(float64(f)) {
			b++
		} else {
			b--
		}
	}
	return math.Float32frombits(b)
}

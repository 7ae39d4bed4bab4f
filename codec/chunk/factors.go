package chunk

import (
	"fmt"
	"math"

	"github.com/x448/float16"

	"github.com/nwcodec/nwc/codec"
)

// ScaleMantissaBits is how many fp16 mantissa bits the encoders keep in
// a column scale (see [CodingScales]).
//
// A scale only has to be what the encoder normalized by: decoders
// multiply by whatever is stored. Rounding it to 2 mantissa bits (1,
// 1.25, 1.5, 1.75 per octave) moves a column's step by at most 12.5 % from
// its target, which by the high-rate model costs about 0.02 dB of
// distortion at equal rate for log-uniform scales, while the fp16's low
// byte becomes zero and compresses away: on stories260K the scales fall
// from 0.13 to about 0.05 bits per weight, the rest going to the payload.
const ScaleMantissaBits = 2

// maxCodingScaleBits is the largest fp16 with only ScaleMantissaBits
// mantissa bits.
const maxCodingScaleBits = maxScaleBits &^ (1<<(10-ScaleMantissaBits) - 1)

// ErrFactors reports column scale factors given to an encoder that do not
// match the matrix: the wrong count, or a factor that is not positive and
// finite. It wraps codec.ErrOptions.
var ErrFactors = fmt.Errorf("%w: column scale factors", codec.ErrOptions)

// CheckFactors checks column scale factors given to an encoder for a
// matrix of cols columns: nil (all 1) or one positive, finite factor per
// column. Errors wrap [ErrFactors].
func CheckFactors(f []float32, cols int) error {
	if f == nil {
		return nil
	}
	if len(f) != cols {
		return fmt.Errorf("%w: %d factors for %d columns", ErrFactors, len(f), cols)
	}
	for j, v := range f {
		if !(v > 0) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%w: column %d has factor %v", ErrFactors, j, v)
		}
	}
	return nil
}

// CodingScales returns the scales an encoder stores for the rows×cols
// row-major matrix m: each column's RMS ([Scales]) times its factor in f
// (nil: all 1), rounded to float32, then to fp16 and to
// [ScaleMantissaBits] mantissa bits, both to nearest (ties away from zero
// in the second), saturating at the largest such value.
//
// Decoders know nothing of the factors or the rounding. A factor is how
// an encoder spends bits unevenly over columns: a factor of ½ halves the
// column's step (about one bit more per weight) and quarters its squared
// error. Encoders use it for reverse water-filling, giving the columns
// whose errors the layer's output feels more (by the Hessian) finer steps.
func CodingScales(m []float32, rows, cols int, f []float32) []uint16 {
	return CodingScalesOf(Scales(m, rows, cols), f)
}

// CodingScalesOf turns the scales h of a matrix's columns ([Scales]) into the
// scales an encoder stores ([CodingScales]) with factors f, in place, and
// returns h.
func CodingScalesOf(h []uint16, f []float32) []uint16 {
	for j, b := range h {
		if f != nil {
			v := float32(float16.Frombits(b).Float32() * f[j])
			b = float16.Fromfloat32(v).Bits()
		}
		h[j] = roundScaleBits(b)
	}
	return h
}

// roundScaleBits rounds the non-negative fp16 b to ScaleMantissaBits
// mantissa bits. Adding half a unit of the last kept bit to the bit
// pattern rounds to nearest, a carry out of the mantissa correctly
// stepping the exponent; subnormals round the same way.
func roundScaleBits(b uint16) uint16 {
	const drop = 10 - ScaleMantissaBits
	if b >= maxCodingScaleBits {
		return maxCodingScaleBits // also +Inf and above
	}
	r := (b + 1<<(drop-1)) &^ (1<<drop - 1)
	return min(r, maxCodingScaleBits)
}

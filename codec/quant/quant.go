// Package quant implements two exact scalar block formats for model
// weights: ggml's Q4_K super-blocks, as stored in GGUF files, and the
// round-to-nearest integer groups with fp16 scales and integer zero points
// that GPTQ and AWQ checkpoints use.
//
// The functions are pure and append to caller-supplied buffers, so the
// container codecs can reuse memory across tensors. Quantization is
// deterministic: every floating-point step is rounded to float32
// explicitly, so no platform may fuse a multiply and an add and change a
// bit of the output. Decoders never trust lengths they are given: they
// check the input is large enough before allocating anything.
//
// The byte layouts are specified in FORMAT.md: §7.5.2 (RTN rows) and
// §7.6.2 (Q4_K super-blocks).
package quant

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/x448/float16"
)

var (
	// ErrCorrupt is matched by every error reporting malformed encoded
	// data. Errors returned by the decoders carry the offending offset in
	// a *CorruptError.
	ErrCorrupt = errors.New("quant: corrupt data")

	// ErrConfig reports an RTN configuration outside the supported range.
	ErrConfig = errors.New("quant: invalid configuration")
)

// A CorruptError describes malformed encoded data.
type CorruptError struct {
	Offset int64  // byte offset in the encoded input where the problem was found
	Reason string // what was wrong, for humans
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("quant: corrupt data at byte %d: %s", e.Offset, e.Reason)
}

// Is reports whether target is ErrCorrupt, so callers need not know the
// concrete type to classify the failure.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func corrupt(off int, format string, args ...any) error {
	return &CorruptError{Offset: int64(off), Reason: fmt.Sprintf(format, args...)}
}

// fp16 converts with round-to-nearest-even, as ggml's GGML_FP32_TO_FP16
// and the F16C instruction it compiles to do.
func fp16(f float32) uint16 { return float16.Fromfloat32(f).Bits() }

// fp32 widens an fp16 bit pattern; the conversion is exact.
func fp32(h uint16) float32 { return float16.Frombits(h).Float32() }

// fp16Finite reports whether h is neither an infinity nor a NaN.
func fp16Finite(h uint16) bool { return h&0x7c00 != 0x7c00 }

// growFloats returns dst extended by n elements and the extension. The
// caller has already checked that n is justified by its input.
func growFloats(dst []float32, n int) ([]float32, []float32) {
	dst = slices.Grow(dst, n)
	start := len(dst)
	dst = dst[:start+n]
	return dst, dst[start:]
}

// growBytes is growFloats for bytes; the extension is zeroed so encoders
// may OR bits into it.
func growBytes(dst []byte, n int) ([]byte, []byte) {
	dst = slices.Grow(dst, n)
	start := len(dst)
	dst = dst[:start+n]
	ext := dst[start:]
	clear(ext)
	return dst, ext
}

// roundEven rounds f to the nearest integer, ties to even, as torch.round
// does in the GPTQ and AWQ reference quantizers. The result is exact in
// float32 for every float32 input.
func roundEven(f float32) float32 { return float32(math.RoundToEven(float64(f))) }

// sqrt32 is a correctly rounded float32 square root, matching C's sqrtf:
// rounding the exact float64 root to float32 cannot double-round wrongly
// because float64 carries more than twice float32's precision.
func sqrt32(f float32) float32 { return float32(math.Sqrt(float64(f))) }

// abs32 is C's fabsf.
func abs32(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

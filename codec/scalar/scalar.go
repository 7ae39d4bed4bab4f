// Package scalar implements the lossy scalar codecs of nwc and registers
// them with package codec:
//
//   - ecsq: every column normalized by its fp16 RMS, a uniform scalar
//     quantizer of step Δ (finer for important columns), and rANS coding of
//     the integer levels with tables fitted to the tensor. It is the
//     strongest scalar baseline: on Gaussian weights it comes within a few
//     hundredths of a dB of the 6.02·R − 1.53 dB of ideal entropy-coded
//     uniform quantization.
//   - tcq: ecsq with trellis-coded quantization: the same layout, levels
//     whose values follow a 4-state machine down each column, and about
//     1 dB less error at the same rate.
//   - rtn: GPTQ/AWQ-style asymmetric round-to-nearest in groups along each
//     row ([quant.RTN]).
//   - q4k: ggml's Q4_K super-blocks ([quant.QuantizeQ4K]).
//
// All four work on the matrix of package chunk (W[out, in], or the
// transpose of a tensor stored [in, out]) and cut it into chunk groups of
// whole rows. The byte formats are specified in FORMAT.md: §7.3 (rules
// common to the lossy codecs), §7.4 (ecsq and tcq), §7.5 (rtn) and §7.6 (q4k).
//
// Import the package for its side effect to make the codecs available:
//
//	import _ "github.com/nwcodec/nwc/codec/scalar"
package scalar

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/ldlq"
)

// Codec ids.
const (
	ECSQ = "ecsq"
	RTN  = "rtn"
	Q4K  = "q4k"
)

func init() {
	codec.Register(ECSQ, ecsqCodec{})
	codec.Register(TCQ, ecsqCodec{trellis: true})
	codec.Register(RTN, rtnCodec{})
	codec.Register(Q4K, q4kCodec{})
}

var (
	// ErrNoLDLQ reports an encoding asked to use a Hessian (LDLQ error
	// compensation) by a codec or build that cannot: rtn and q4k never
	// do, and ecsq does only once an LDLQ implementation is wired in.
	// Callers may retry without the Hessian.
	ErrNoLDLQ = errors.New("scalar: LDLQ error compensation is not available")

	// ErrOptions reports encode options out of range, such as a step that
	// is not a positive finite number within [MinStep, MaxStep].
	ErrOptions = errors.New("scalar: invalid encode options")

	// ErrRange reports finite weights too large for a codec's format: q4k
	// cannot store magnitudes whose super-block scales overflow fp16.
	// (ecsq and rtn saturate instead, as their formats document.)
	ErrRange = errors.New("scalar: weights out of the codec's range")
)

// DefaultLDLQBlock is the number of columns per LDLQ block unless
// configured.
const DefaultLDLQBlock = 128

// drive quantizes the columns of m in blocks through quant: in order
// without a Hessian, else with LDLQ error compensation (package ldlq),
// which updates the columns not yet coded so they absorb the output error
// of those already coded. A Hessian that cannot be used (wrong size,
// non-finite, not positive definite after damping) is an option error.
func drive(m []float32, rows, cols int, o *codec.EncodeOptions, quant func(c0, c1 int) error) error {
	if o.Hessian != nil && len(o.Hessian) != cols*cols {
		return fmt.Errorf("%w: Hessian has %d entries, want %d×%d", ErrOptions, len(o.Hessian), cols, cols)
	}
	// A negative block size has always meant the default here.
	err := ldlq.Drive(m, rows, cols, o.Hessian, max(o.LDLQBlock, 0), quant)
	if errors.Is(err, ldlq.ErrInvalid) || errors.Is(err, ldlq.ErrNotPositiveDefinite) {
		return fmt.Errorf("%w: %w", ErrOptions, err)
	}
	return err
}

// options returns a copy of opts with nil meaning the zero value.
func options(opts *codec.EncodeOptions) codec.EncodeOptions {
	if opts == nil {
		return codec.EncodeOptions{}
	}
	return *opts
}

// A param is one key of a codec's parameter map and the function that
// reads its value.
type param struct {
	key  string
	read func(r *format.MsgReader, key string) error
}

// parseParams parses t.Params strictly: one msgpack map holding exactly
// the keys of fields (in any order, each once), with nothing after it.
func parseParams(t *format.Tensor, fields ...param) error {
	if t.Params == nil {
		return format.TensorErrorf(t.Name, -1, "codec %s needs params", t.Codec)
	}
	r := format.NewMsgReader(t.Params, -1)
	seen := make([]bool, len(fields))
	err := r.MapKeys("params", func(k string) error {
		for i, f := range fields {
			if f.key == k {
				seen[i] = true
				return f.read(r, k)
			}
		}
		return r.Errorf("unknown key %q", k)
	})
	if err == nil && r.Remaining() != 0 {
		err = r.Errorf("%d bytes after the params map", r.Remaining())
	}
	for i, f := range fields {
		if err == nil && !seen[i] {
			err = format.Errorf(-1, "missing key %q", f.key)
		}
	}
	if err != nil {
		return fmt.Errorf("tensor %q: codec %s params: %w", t.Name, t.Codec, err)
	}
	return nil
}

func boolParam(key string, dst *bool) param {
	return param{key, func(r *format.MsgReader, k string) (err error) {
		*dst, err = r.Bool(k)
		return err
	}}
}

// uintParam reads an integer in [lo, hi].
func uintParam(key string, dst *uint64, lo, hi uint64) param {
	return param{key, func(r *format.MsgReader, k string) error {
		v, err := r.Uint(k)
		if err != nil {
			return err
		}
		if v < lo || v > hi {
			return r.Errorf("%s is %d, not in [%d, %d]", k, v, lo, hi)
		}
		*dst = v
		return nil
	}}
}

// float32Param reads a msgpack float64 whose value is a float32 in
// [lo, hi]. Only the float64 encoding is accepted, so that each value has
// one encoding, and only float32 values, which is what the arithmetic
// uses.
func float32Param(key string, dst *float32, lo, hi float32) param {
	return param{key, func(r *format.MsgReader, k string) error {
		raw, err := r.Raw(k)
		if err != nil {
			return err
		}
		if len(raw) != 9 || raw[0] != 0xcb {
			return r.Errorf("%s: want a msgpack float64", k)
		}
		v := math.Float64frombits(binary.BigEndian.Uint64(raw[1:]))
		f := float32(v)
		if float64(f) != v || !(f >= lo && f <= hi) {
			return r.Errorf("%s is %v, not a float32 in [%v, %v]", k, v, lo, hi)
		}
		*dst = f
		return nil
	}}
}

// groupRange returns the rows [r0, r1) of group i, or an error if i is out
// of range or dst does not have room for exactly the group's elements.
func groupRange(name string, ends []int, cols, size int, i int, dst []byte) (r0, r1 int, err error) {
	if i < 0 || i >= len(ends) {
		return 0, 0, format.Errorf(-1, "codec %s: group %d of %d", name, i, len(ends))
	}
	if i > 0 {
		r0 = ends[i-1]
	}
	r1 = ends[i]
	if len(dst) != (r1-r0)*cols*size {
		return 0, 0, format.Errorf(-1, "codec %s: group %d decodes to %d bytes, have room for %d", name, i, (r1-r0)*cols*size, len(dst))
	}
	return r0, r1, nil
}

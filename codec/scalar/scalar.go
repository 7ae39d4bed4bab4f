// Package scalar implements the decoders of the lossy scalar codecs of nwc
// and registers them with package codec; their encoders are in package
// scalarenc:
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
// Import the package for its side effect to make the decoders available,
// and package scalarenc for the encoders:
//
//	import _ "github.com/nwcodec/nwc/codec/scalar"
//	import _ "github.com/nwcodec/nwc/codec/scalar/scalarenc"
package scalar

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/format"
)

// Codec ids.
const (
	ECSQ = "ecsq"
	RTN  = "rtn"
	Q4K  = "q4k"
)

// TCQ is the id of the trellis-coded variant of ecsq (FORMAT.md §7.4.7):
// ecsq's layout, with levels whose values follow package trellis's state
// machine down each column of each group. The error falls by about 0.9 dB
// on Gaussian weights at 4–6 bits per weight at the same rate (about 0.15
// bits per weight at equal error).
const TCQ = "tcq"

func init() {
	codec.RegisterDecoder(ECSQ, ecsqCodec{})
	codec.RegisterDecoder(TCQ, ecsqCodec{trellis: true})
	codec.RegisterDecoder(RTN, rtnCodec{})
	codec.RegisterDecoder(Q4K, q4kCodec{})
}

// Step bounds and default of ecsq, in units of the column RMS.
const (
	// DefaultStep gives about 4.05 bits per weight of payload on
	// Gaussian columns (entropy ≈ h(N(0,1)) − log2 Δ = 2.047 + 2), and
	// 4.03 on stories260K's matrices.
	DefaultStep = 0.25
	// MinStep keeps levels of unit-RMS columns below 2^20, so that escapes
	// stay rare even at the finest step.
	MinStep = 1.0 / 65536
	// MaxStep is far past the point where every level is 0.
	MaxStep = 1024
)

// LevelStepFactor gives the step multiplier m_k of columns of importance
// level k: their step is Δ·m_k, so level 3 columns get about
// log2(1/0.2) ≈ 2.3 bits more than level 0 ones.
var LevelStepFactor = [chunk.MaxLevel + 1]float32{1, 0.6, 0.36, 0.2}

const (
	// MaxOffset bounds ecsq's and tcq's reconstruction offset, in 1/256
	// of a step.
	MaxOffset = 127
	// AuxTable names ecsq's and tcq's aux section of rANS tables.
	AuxTable = "table"
)

// MaxRTNGroup bounds the group size a file may declare; larger groups
// behave like one group per row anyway.
const MaxRTNGroup = math.MaxInt32

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

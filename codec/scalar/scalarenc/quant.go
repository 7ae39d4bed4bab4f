// The rtn and q4k codecs: wrappers that lay the block formats of package
// quant out in chunk groups.

package scalarenc

import (
	"fmt"
	"slices"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/quant"
	"github.com/nwcodec/nwc/codec/scalar"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/internal/parallel"
)

// Defaults of rtn.
const (
	DefaultBits  = 4
	DefaultGroup = quant.DefaultGroup
)

// rtnEncoder encodes rtn.
type rtnEncoder struct{}

// rtnParams is rtn's parameter map.
type rtnParams struct {
	bits, group uint64
	transposed  bool
}

func (p rtnParams) marshal() []byte {
	w := format.NewMsgWriter()
	w.MapLen(3)
	w.String("bits")
	w.Uint(p.bits)
	w.String("group")
	w.Uint(p.group)
	w.String("transposed")
	w.Bool(p.transposed)
	return w.Bytes()
}

// noLDLQ rejects a Hessian for q4k, whose super-blocks fit their scales
// and minima to the values of the whole block in one search; error
// compensation would need a different quantizer, not a wrapper around
// this one.
func noLDLQ(id string, o *codec.EncodeOptions) error {
	if o.Hessian != nil {
		return fmt.Errorf("%w: codec %s does not support a Hessian", ErrNoLDLQ, id)
	}
	return nil
}

// Encode quantizes each row of the tensor's matrix with quant.RTN; a
// group's payload is its rows' encodings, concatenated. With a Hessian it
// runs GPTQ with static groups: every group's scale and zero point are
// fitted to the original weights first, then LDLQ codes the columns in
// blocks on those fixed grids, each block's targets absorbing the output
// error of the blocks before. Fitting first keeps the grid of a group
// that spans several blocks the same for all of them (GPTQ refits a group
// when its first column comes up, from weights partly updated; ldlq.Run
// leaves the columns right of a block untouched until their turn).
func (rtnEncoder) Encode(t *codec.Tensor, opts *codec.EncodeOptions) (*codec.Encoded, error) {
	o := options(opts)
	r := quant.RTN{Bits: o.Bits, Group: o.Group}
	if r.Bits == 0 {
		r.Bits = DefaultBits
	}
	if r.Group == 0 {
		r.Group = DefaultGroup
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", codec.ErrOptions, err)
	}
	if r.Group > scalar.MaxRTNGroup {
		return nil, fmt.Errorf("%w: rtn group %d over %d", codec.ErrOptions, r.Group, scalar.MaxRTNGroup)
	}
	lay, m, err := chunk.Load(t, o.Transposed)
	if err != nil {
		return nil, err
	}
	if o.ReleaseInput {
		t.Data = nil
	}
	ends, err := chunk.GroupRows(lay, o.GroupBytes)
	if err != nil {
		return nil, err
	}
	e := &codec.Encoded{
		View:   lay.View,
		Params: rtnParams{bits: uint64(r.Bits), group: uint64(r.Group), transposed: o.Transposed}.marshal(),
	}
	cols := lay.Cols
	fit := m
	if o.Hessian != nil {
		if fit, err = rtnLDLQ(r, m, lay.Rows, cols, &o); err != nil {
			return nil, err
		}
	}
	e.Groups = make([]codec.EncodedGroup, len(ends))
	parallel.Each(o.Jobs, len(ends), func(g int) error {
		r0, r1 := 0, ends[g]
		if g > 0 {
			r0 = ends[g-1]
		}
		payload := make([]byte, 0, (r1-r0)*r.RowBytes(cols))
		for row := r0; row < r1; row++ {
			payload = r.QuantizeFitted(payload, m[row*cols:(row+1)*cols], fit[row*cols:(row+1)*cols])
		}
		e.Groups[g] = codec.EncodedGroup{End: uint64(r1) * uint64(cols), Data: payload}
		return nil
	})
	return e, nil
}

// rtnLDLQ replaces the rows×cols matrix m by its decoded values under
// LDLQ on grids fitted to the original weights, which it returns.
func rtnLDLQ(r quant.RTN, m []float32, rows, cols int, o *codec.EncodeOptions) ([]float32, error) {
	orig := slices.Clone(m)
	g := r.Group
	groups := (cols + g - 1) / g
	scale, zero := make([]float32, rows*groups), make([]float32, rows*groups)
	for row := range rows {
		for k := range groups {
			grp := orig[row*cols+k*g : row*cols+min(cols, (k+1)*g)]
			scale[row*groups+k], zero[row*groups+k] = r.GroupParams(grp)
		}
	}
	err := drive(m, rows, cols, o, func(c0, c1 int) error {
		for row := range rows {
			for c := c0; c < c1; c++ {
				i := row*groups + c/g
				s, z := scale[i], zero[i]
				m[row*cols+c] = (r.Level(m[row*cols+c], s, z) - z) * s
			}
		}
		return nil
	})
	return orig, err
}

// q4kEncoder encodes q4k.
type q4kEncoder struct{}

// q4kParams is q4k's parameter map.
type q4kParams struct {
	transposed bool
}

func (p q4kParams) marshal() []byte {
	w := format.NewMsgWriter()
	w.MapLen(1)
	w.String("transposed")
	w.Bool(p.transposed)
	return w.Bytes()
}

// Encode codes each chunk group's elements, in row-major order, as one
// sequence of Q4_K super-blocks, the last padded with zeros. When the
// column count is a multiple of 256 this is exactly ggml's per-row layout
// of the matrix; otherwise ggml cannot store the tensor as Q4_K at all
// (llama.cpp falls back to another type), and flattening wastes at most
// one partial super-block per group, where padding each row would waste
// up to 255 weights' worth per row (4× the data for 64-wide rows).
func (q4kEncoder) Encode(t *codec.Tensor, opts *codec.EncodeOptions) (*codec.Encoded, error) {
	o := options(opts)
	if err := noLDLQ(scalar.Q4K, &o); err != nil {
		return nil, err
	}
	lay, m, err := chunk.Load(t, o.Transposed)
	if err != nil {
		return nil, err
	}
	if o.ReleaseInput {
		t.Data = nil
	}
	ends, err := chunk.GroupRows(lay, o.GroupBytes)
	if err != nil {
		return nil, err
	}
	e := &codec.Encoded{View: lay.View, Params: q4kParams{transposed: o.Transposed}.marshal()}
	cols := lay.Cols
	r0 := 0
	for _, r1 := range ends {
		data := quant.QuantizeQ4K(nil, m[r0*cols:r1*cols])
		if err := checkQ4KScales(data); err != nil {
			return nil, fmt.Errorf("%w: tensor %q rows [%d, %d): %w", ErrRange, t.Name, r0, r1, err)
		}
		e.Groups = append(e.Groups, codec.EncodedGroup{End: uint64(r1) * uint64(cols), Data: data})
		r0 = r1
	}
	return e, nil
}

// checkQ4KScales rejects super-blocks whose fp16 scales overflowed, which
// happens for weights beyond about 65504·63·15 in magnitude: decoders
// (ggml's too) refuse them, so the encoder must not write them.
func checkQ4KScales(data []byte) error {
	_, err := quant.DequantizeQ4K(nil, data)
	return err
}

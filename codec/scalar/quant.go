// The rtn and q4k codecs: wrappers that lay the block formats of package
// quant out in chunk groups.

package scalar

import (
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/quant"
	"github.com/nwcodec/nwc/format"
)

// Defaults of rtn.
const (
	DefaultBits  = 4
	DefaultGroup = quant.DefaultGroup
)

// maxRTNGroup bounds the group size a file may declare; larger groups
// behave like one group per row anyway.
const maxRTNGroup = math.MaxInt32

type rtnCodec struct{}

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
func (rtnCodec) Encode(t *codec.Tensor, opts *codec.EncodeOptions) (*codec.Encoded, error) {
	o := options(opts)
	r := quant.RTN{Bits: o.Bits, Group: o.Group}
	if r.Bits == 0 {
		r.Bits = DefaultBits
	}
	if r.Group == 0 {
		r.Group = DefaultGroup
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	if r.Group > maxRTNGroup {
		return nil, fmt.Errorf("%w: rtn group %d over %d", ErrOptions, r.Group, maxRTNGroup)
	}
	lay, m, err := chunk.Load(t, o.Transposed)
	if err != nil {
		return nil, err
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
	r0 := 0
	for _, r1 := range ends {
		payload := make([]byte, 0, (r1-r0)*r.RowBytes(cols))
		for row := r0; row < r1; row++ {
			payload = r.QuantizeFitted(payload, m[row*cols:(row+1)*cols], fit[row*cols:(row+1)*cols])
		}
		e.Groups = append(e.Groups, codec.EncodedGroup{End: uint64(r1) * uint64(cols), Data: payload})
		r0 = r1
	}
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

// NewDecoder validates the params of an rtn tensor and the length of
// every group: RowBytes(cols) bytes per row.
func (rtnCodec) NewDecoder(t *format.Tensor, env codec.Env) (codec.GroupDecoder, error) {
	var p rtnParams
	if err := parseParams(t,
		uintParam("bits", &p.bits, 2, 8),
		uintParam("group", &p.group, 1, maxRTNGroup),
		boolParam("transposed", &p.transposed),
	); err != nil {
		return nil, err
	}
	lay, ends, err := chunk.ParseGroups(t, p.transposed)
	if err != nil {
		return nil, err
	}
	if err := chunk.CheckAux(t); err != nil {
		return nil, err
	}
	d := &rtnDecoder{lay: lay, ends: ends, r: quant.RTN{Bits: int(p.bits), Group: int(p.group)}}
	if lay.Len() == 0 {
		return d, nil
	}
	d.rowBytes = d.r.RowBytes(lay.Cols)
	if d.rowBytes < 0 {
		return nil, format.TensorErrorf(t.Name, -1, "codec rtn: rows of %d columns overflow", lay.Cols)
	}
	r0 := 0
	for i, g := range t.Groups {
		hi, want := bits.Mul64(uint64(ends[i]-r0), uint64(d.rowBytes))
		if hi != 0 || g.Length != want {
			return nil, format.TensorErrorf(t.Name, int64(g.Offset), "codec rtn: group %d has %d bytes, want %d rows of %d", i, g.Length, ends[i]-r0, d.rowBytes)
		}
		r0 = ends[i]
	}
	return d, nil
}

type rtnDecoder struct {
	lay      chunk.Layout
	ends     []int
	r        quant.RTN
	rowBytes int
}

// DecodeGroup dequantizes the rows of group i.
func (d *rtnDecoder) DecodeGroup(i int, payload, dst []byte) error {
	r0, r1, err := groupRange(RTN, d.ends, d.lay.Cols, d.lay.DType.Size(), i, dst)
	if err != nil {
		return err
	}
	if len(payload) != (r1-r0)*d.rowBytes {
		return format.Errorf(-1, "codec rtn: group %d has %d bytes, want %d", i, len(payload), (r1-r0)*d.rowBytes)
	}
	m := make([]float32, 0, (r1-r0)*d.lay.Cols)
	for row := range r1 - r0 {
		if m, err = d.r.Dequantize(m, payload[row*d.rowBytes:(row+1)*d.rowBytes], d.lay.Cols); err != nil {
			return format.Errorf(-1, "codec rtn: group %d row %d: %v", i, r0+row, err)
		}
	}
	return d.lay.Store(dst, m)
}

type q4kCodec struct{}

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
func (q4kCodec) Encode(t *codec.Tensor, opts *codec.EncodeOptions) (*codec.Encoded, error) {
	o := options(opts)
	if err := noLDLQ(Q4K, &o); err != nil {
		return nil, err
	}
	lay, m, err := chunk.Load(t, o.Transposed)
	if err != nil {
		return nil, err
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

// NewDecoder validates the params of a q4k tensor and the length of every
// group: one 144-byte super-block per started 256 elements.
func (q4kCodec) NewDecoder(t *format.Tensor, env codec.Env) (codec.GroupDecoder, error) {
	var p q4kParams
	if err := parseParams(t, boolParam("transposed", &p.transposed)); err != nil {
		return nil, err
	}
	lay, ends, err := chunk.ParseGroups(t, p.transposed)
	if err != nil {
		return nil, err
	}
	if err := chunk.CheckAux(t); err != nil {
		return nil, err
	}
	r0 := 0
	for i, g := range t.Groups {
		// A group holds at most format.MaxGroupElements elements, so its
		// size cannot overflow.
		want := quant.Q4KBytes((ends[i] - r0) * lay.Cols)
		if g.Length != uint64(want) {
			return nil, format.TensorErrorf(t.Name, int64(g.Offset), "codec q4k: group %d has %d bytes, want %d", i, g.Length, want)
		}
		r0 = ends[i]
	}
	return &q4kDecoder{lay: lay, ends: ends}, nil
}

type q4kDecoder struct {
	lay  chunk.Layout
	ends []int
}

// DecodeGroup dequantizes group i's super-blocks and drops the padding.
func (d *q4kDecoder) DecodeGroup(i int, payload, dst []byte) error {
	r0, r1, err := groupRange(Q4K, d.ends, d.lay.Cols, d.lay.DType.Size(), i, dst)
	if err != nil {
		return err
	}
	n := (r1 - r0) * d.lay.Cols
	if len(payload) != quant.Q4KBytes(n) {
		return format.Errorf(-1, "codec q4k: group %d has %d bytes, want %d", i, len(payload), quant.Q4KBytes(n))
	}
	m, err := quant.DequantizeQ4K(nil, payload)
	if err != nil {
		return format.Errorf(-1, "codec q4k: group %d: %v", i, err)
	}
	return d.lay.Store(dst, m[:n])
}

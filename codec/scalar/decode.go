package scalar

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/quant"
	"github.com/nwcodec/nwc/codec/rans"
	"github.com/nwcodec/nwc/codec/trellis"
	"github.com/nwcodec/nwc/format"
)

// ecsqCodec decodes ecsq, or with trellis set its trellis-coded variant
// tcq, which shares everything but the mapping from levels to values.
type ecsqCodec struct{ trellis bool }

func (c ecsqCodec) id() string {
	if c.trellis {
		return TCQ
	}
	return ECSQ
}

// ecsqParams is ecsq's parameter map.
type ecsqParams struct {
	step       float32 // Δ
	offset     uint64  // reconstruction offset δ in 1/256 of a step
	transposed bool
}

// ColumnSteps returns step_j = float32(float32(Δ·m_k)·s_j) for each column
// j of level k.
func ColumnSteps(step float32, scales []float32, levels []uint8) []float32 {
	var lstep [chunk.MaxLevel + 1]float32
	for k, m := range LevelStepFactor {
		lstep[k] = float32(step * m)
	}
	out := make([]float32, len(scales))
	for j, s := range scales {
		k := 0
		if levels != nil {
			k = int(levels[j])
		}
		out[j] = float32(lstep[k] * s)
	}
	return out
}

// A LevelSet is the columns of one importance level that occurs in the
// matrix; Cols is nil when it is every column. ecsq and tcq code each set
// as its own rANS stream with its own table.
type LevelSet struct {
	Level uint8
	Cols  []int
}

// LevelColumns returns the levels that occur, in increasing order, with
// their columns.
func LevelColumns(levels []uint8, cols int) []LevelSet {
	var by [chunk.MaxLevel + 1][]int
	for j, k := range levels {
		by[k] = append(by[k], j)
	}
	if len(by[0]) == cols || levels == nil {
		return []LevelSet{{Level: 0}}
	}
	var out []LevelSet
	for k, c := range by {
		if len(c) == cols {
			return []LevelSet{{Level: uint8(k)}}
		}
		if len(c) > 0 {
			out = append(out, LevelSet{Level: uint8(k), Cols: c})
		}
	}
	return out
}

// NewDecoder validates the params, groups and aux sections of an ecsq
// tensor and parses its scales, levels and tables.
func (c ecsqCodec) NewDecoder(t *format.Tensor, env codec.Env) (codec.GroupDecoder, error) {
	var p ecsqParams
	if err := parseParams(t,
		float32Param("step", &p.step, MinStep, MaxStep),
		uintParam("offset", &p.offset, 0, MaxOffset),
		boolParam("transposed", &p.transposed),
	); err != nil {
		return nil, err
	}
	lay, ends, err := chunk.ParseGroups(t, p.transposed)
	if err != nil {
		return nil, err
	}
	if err := chunk.CheckAux(t, chunk.AuxScales, chunk.AuxLevels, AuxTable); err != nil {
		return nil, err
	}
	d := &ecsqDecoder{id: c.id(), trellis: c.trellis, lay: lay, ends: ends, off: float32(p.offset) / 256}
	if lay.Len() == 0 {
		if len(t.Aux) != 0 {
			return nil, format.TensorErrorf(t.Name, -1, "codec %s: empty tensor has aux sections", c.id())
		}
		return d, nil
	}
	bad := func(err error) error { return fmt.Errorf("tensor %q: codec %s: %w", t.Name, c.id(), err) }
	b, err := env.Aux(chunk.AuxScales)
	if err != nil {
		return nil, err
	}
	scales, err := chunk.ParseScales(b, lay.Cols)
	if err != nil {
		return nil, bad(err)
	}
	var levels []uint8
	if _, ok := t.AuxEntry(chunk.AuxLevels); ok {
		if b, err = env.Aux(chunk.AuxLevels); err != nil {
			return nil, err
		}
		if levels, err = chunk.ParseLevels(b, lay.Cols); err != nil {
			return nil, bad(err)
		}
	}
	d.steps = ColumnSteps(p.step, scales, levels)
	d.sets = LevelColumns(levels, lay.Cols)
	if b, err = env.Aux(AuxTable); err != nil {
		return nil, err
	}
	for range d.sets {
		tab, n, err := rans.ParseTable(b)
		if err != nil {
			return nil, bad(format.Errorf(-1, "aux %q: %v", AuxTable, err))
		}
		d.tables = append(d.tables, tab)
		b = b[n:]
	}
	if len(b) != 0 {
		return nil, bad(format.Errorf(-1, "aux %q: %d bytes after %d tables", AuxTable, len(b), len(d.sets)))
	}
	return d, nil
}

type ecsqDecoder struct {
	id      string
	trellis bool
	lay     chunk.Layout
	ends    []int
	off     float32
	steps   []float32
	sets    []LevelSet
	tables  []*rans.Table // one per set
}

// CheckGroup refuses a payload far too short for the symbols group i
// holds under the tensor's tables (half of rans.Table.MinBits, less 512
// bits), before the reader allocates the group and DecodeGroup its
// scratch: a truncated or forged payload of a few bytes cannot stand for
// a group of 2^28 elements.
func (d *ecsqDecoder) CheckGroup(i int, payload []byte, n uint64) error {
	if i < 0 || i >= len(d.ends) {
		return format.Errorf(-1, "codec %s: group %d of %d", d.id, i, len(d.ends))
	}
	r0 := 0
	if i > 0 {
		r0 = d.ends[i-1]
	}
	rows := d.ends[i] - r0
	for k, set := range d.sets {
		stream := payload
		if k < len(d.sets)-1 {
			l, w := binary.Uvarint(payload)
			if w <= 0 || l > uint64(len(payload)-w) {
				return format.Errorf(-1, "codec %s: group %d: bad length of stream %d", d.id, i, k)
			}
			stream, payload = payload[w:w+int(l)], payload[w+int(l):]
		}
		width := len(set.Cols)
		if set.Cols == nil {
			width = d.lay.Cols
		}
		if need := d.tables[k].MinBits(rows * width); 16*float64(len(stream))+512 < need {
			return format.Errorf(-1, "codec %s: group %d stream %d: %d bytes cannot hold %d symbols", d.id, i, k, len(stream), rows*width)
		}
	}
	return nil
}

// DecodeGroup decodes the rANS streams of group i and reconstructs its
// rows.
func (d *ecsqDecoder) DecodeGroup(i int, payload, dst []byte) error {
	r0, r1, err := groupRange(d.id, d.ends, d.lay.Cols, d.lay.DType.Size(), i, dst)
	if err != nil {
		return err
	}
	cols := d.lay.Cols
	m := make([]float32, (r1-r0)*cols)
	var states []uint8 // tcq: every column starts the group in state 0
	if d.trellis {
		states = make([]uint8, cols)
	}
	var syms []int32
	for n, set := range d.sets {
		stream := payload
		if n < len(d.sets)-1 {
			l, w := binary.Uvarint(payload)
			if w <= 0 || l > uint64(len(payload)-w) || (w > 1 && payload[w-1] == 0) {
				return format.Errorf(-1, "codec %s: group %d: bad length of stream %d", d.id, i, n)
			}
			stream, payload = payload[w:w+int(l)], payload[w+int(l):]
		}
		which := set.Cols
		width := len(which)
		if which == nil {
			width = cols
		}
		count := (r1 - r0) * width
		if cap(syms) < count {
			syms = make([]int32, count)
		}
		syms = syms[:count]
		if err := rans.Decode(stream, d.tables[n:n+1], syms); err != nil {
			return format.Errorf(-1, "codec %s: group %d stream %d: %v", d.id, i, n, err)
		}
		if d.trellis {
			tcqReconstruct(m, syms, cols, which, d.steps, d.off, states)
			continue
		}
		if which == nil {
			for r := 0; r < len(m); r += cols {
				row, sr := m[r:r+cols], syms[r:r+cols]
				for j, s := range d.steps {
					row[j] = trellis.Value(sr[j], s, d.off)
				}
			}
			continue
		}
		for r := range r1 - r0 {
			row, sr := m[r*cols:(r+1)*cols], syms[r*width:(r+1)*width]
			for x, j := range which {
				row[j] = trellis.Value(sr[x], d.steps[j], d.off)
			}
		}
	}
	return d.lay.Store(dst, m)
}

// tcqValue returns the reconstruction of level k in state st at step s
// with offset off (in steps): ecsq's reconstruction with the state's
// offset (trellis.Offset), so that on grid Q1 level ±k sits at
// ±(k − ½ − off)·s.
func tcqValue(k int32, st uint8, s, off float32) float32 {
	return trellis.Value(k, s, trellis.Offset(st, off))
}

// tcqReconstruct writes the values of one group's decoded levels syms
// into m (rows of cols values): syms holds, row by row, the levels of the
// columns in which (every column when nil). states holds each column's
// trellis state and is advanced.
func tcqReconstruct(m []float32, syms []int32, cols int, which []int, steps []float32, off float32, states []uint8) {
	width := len(which)
	if which == nil {
		width = cols
	}
	for r := 0; r*width < len(syms); r++ {
		row, sr := m[r*cols:(r+1)*cols], syms[r*width:(r+1)*width]
		for x, k := range sr {
			j := x
			if which != nil {
				j = which[x]
			}
			st := states[j]
			row[j] = tcqValue(k, st, steps[j], off)
			states[j] = trellis.Next(st, k)
		}
	}
}

type rtnCodec struct{}

// rtnParams is rtn's parameter map.
type rtnParams struct {
	bits, group uint64
	transposed  bool
}

// NewDecoder validates the params of an rtn tensor and the length of
// every group: RowBytes(cols) bytes per row.
func (rtnCodec) NewDecoder(t *format.Tensor, env codec.Env) (codec.GroupDecoder, error) {
	var p rtnParams
	if err := parseParams(t,
		uintParam("bits", &p.bits, 2, 8),
		uintParam("group", &p.group, 1, MaxRTNGroup),
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

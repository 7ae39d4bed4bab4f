package scalar

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/rans"
	"github.com/nwcodec/nwc/codec/trellis"
	"github.com/nwcodec/nwc/format"
)

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
	// tablePrecision is the rANS table precision: at 14 bits the coder
	// loses under 0.1 % to the entropy, and tables stay small.
	tablePrecision = 14
	// maxLevelValue bounds |q|: only reached for columns whose RMS
	// saturated the fp16 scale.
	maxLevelValue = 1 << 30
	// maxOffset bounds the reconstruction offset, in 1/256 of a step.
	maxOffset = 127
	// auxTable names ecsq's aux section of rANS tables.
	auxTable = "table"
)

// ecsqCodec is ecsq, or with trellis set its trellis-coded variant tcq,
// which shares everything but the mapping from levels to values.
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

func (p ecsqParams) marshal() []byte {
	w := format.NewMsgWriter()
	w.MapLen(3)
	w.String("step")
	w.Float64(float64(p.step))
	w.String("offset")
	w.Uint(p.offset)
	w.String("transposed")
	w.Bool(p.transposed)
	return w.Bytes()
}

// columnSteps returns step_j = float32(float32(Δ·m_k)·s_j) for each column
// j of level k.
func columnSteps(step float32, scales []float32, levels []uint8) []float32 {
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

// quantizeValue returns the level of x at step s > 0: x/s rounded to
// float32, then to the nearest integer with ties to even, clamped to
// ±maxLevelValue.
func quantizeValue(x, s float32) int32 {
	v := math.RoundToEven(float64(float32(x / s)))
	return int32(max(-maxLevelValue, min(maxLevelValue, v)))
}

// centroidOffset returns the reconstruction offset δ, in 1/256 of a step,
// that minimizes the squared error of the nonzero levels of m: the mean
// distance, weighted by step², by which |x|/step falls short of |k|.
// Unimodal weights are denser toward zero within each cell, so the
// centroid sits below the midpoint; δ is clamped to [0, maxOffset].
func centroidOffset(m []float32, cols int, steps []float32) uint64 {
	var num, den float64
	for i, x := range m {
		s := steps[i%cols]
		if s == 0 {
			continue
		}
		k := quantizeValue(x, s)
		if k == 0 {
			continue
		}
		e := math.Abs(float64(x)/float64(s)) - math.Abs(float64(k))
		w := float64(float64(s) * float64(s))
		num += float64(w * e)
		den += w
	}
	if den == 0 {
		return 0
	}
	d := math.RoundToEven(-256 * num / den)
	return uint64(max(0, min(maxOffset, d)))
}

// Encode quantizes the tensor's matrix column block by column block
// (through LDLQ when opts.Hessian is set) and rANS codes the levels.
func (c ecsqCodec) Encode(t *codec.Tensor, opts *codec.EncodeOptions) (*codec.Encoded, error) {
	o := options(opts)
	step := float32(DefaultStep)
	if o.Step != 0 {
		step = float32(o.Step)
		if !(o.Step >= MinStep && o.Step <= MaxStep) {
			return nil, fmt.Errorf("%w: %s step %v not in [%v, %v]", ErrOptions, c.id(), o.Step, MinStep, MaxStep)
		}
	}
	lay, m, err := chunk.Load(t, o.Transposed)
	if err != nil {
		return nil, err
	}
	if err := chunk.CheckLevels(o.Levels, lay.Cols); err != nil {
		return nil, err
	}
	if err := chunk.CheckFactors(o.ScaleFactors, lay.Cols); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	ends, err := chunk.GroupRows(lay, o.GroupBytes)
	if err != nil {
		return nil, err
	}
	p := ecsqParams{step: step, transposed: o.Transposed}
	e := &codec.Encoded{View: lay.View}
	if lay.Len() == 0 {
		e.Params = p.marshal()
		return e, nil
	}
	rows, cols := lay.Rows, lay.Cols
	hs := chunk.CodingScales(m, rows, cols, o.ScaleFactors)
	steps := columnSteps(step, chunk.ScaleValues(hs), o.Levels)
	// The offset comes from the unquantized matrix, so that LDLQ, which
	// needs each block's reconstruction as it goes, can use it too.
	if c.trellis {
		p.offset = tcqOffset(m, rows, cols, steps, ends)
	} else {
		p.offset = centroidOffset(m, cols, steps)
	}
	off := float32(p.offset) / 256

	q := make([]int32, len(m))
	var tr tcqScratch
	quant := func(c0, c1 int) error {
		if c.trellis {
			tr.quantize(m, q, rows, cols, c0, c1, steps, off, ends)
			return nil
		}
		for r := range rows {
			i0 := r * cols
			for j := c0; j < c1; j++ {
				var k int32
				if s := steps[j]; s != 0 {
					k = quantizeValue(m[i0+j], s)
				}
				q[i0+j] = k
				m[i0+j] = trellis.Value(k, steps[j], off)
			}
		}
		return nil
	}
	if err := drive(m, rows, cols, &o, quant); err != nil {
		return nil, err
	}

	lc := levelColumns(o.Levels, cols)
	var tableBytes []byte
	tables := make([]*rans.Table, len(lc))
	for n, c := range lc {
		sample := q
		if c.cols != nil {
			sample = gatherColumns(nil, q, cols, c.cols)
		}
		if tables[n], err = rans.BuildCompact(sample, rans.MinPrecision, tablePrecision); err != nil {
			return nil, err
		}
		if tableBytes, err = tables[n].AppendBinary(tableBytes); err != nil {
			return nil, err
		}
	}
	var buf []int32
	r0 := 0
	for _, r1 := range ends {
		var payload []byte
		for n, c := range lc {
			syms := q[r0*cols : r1*cols]
			if c.cols != nil {
				buf = gatherColumns(buf[:0], syms, cols, c.cols)
				syms = buf
			}
			stream, err := rans.Encode(nil, syms, tables[n:n+1])
			if err != nil {
				return nil, err
			}
			if n < len(lc)-1 {
				payload = binary.AppendUvarint(payload, uint64(len(stream)))
			}
			payload = append(payload, stream...)
		}
		e.Groups = append(e.Groups, codec.EncodedGroup{End: uint64(r1) * uint64(cols), Data: payload})
		r0 = r1
	}
	scaleBytes, err := chunk.AppendScales(nil, hs)
	if err != nil {
		return nil, err
	}
	e.Aux = append(e.Aux, codec.NamedBytes{Name: chunk.AuxScales, Data: scaleBytes})
	if len(lc) > 1 || lc[0].level != 0 {
		e.Aux = append(e.Aux, codec.NamedBytes{Name: chunk.AuxLevels, Data: chunk.AppendLevels(nil, o.Levels)})
	}
	e.Aux = append(e.Aux, codec.NamedBytes{Name: auxTable, Data: tableBytes})
	e.Params = p.marshal()
	return e, nil
}

// A levelSet is the columns of one importance level that occurs in the
// matrix; cols is nil when it is every column.
type levelSet struct {
	level uint8
	cols  []int
}

// levelColumns returns the levels that occur, in increasing order, with
// their columns.
func levelColumns(levels []uint8, cols int) []levelSet {
	var by [chunk.MaxLevel + 1][]int
	for j, k := range levels {
		by[k] = append(by[k], j)
	}
	if len(by[0]) == cols || levels == nil {
		return []levelSet{{level: 0}}
	}
	var out []levelSet
	for k, c := range by {
		if len(c) == cols {
			return []levelSet{{level: uint8(k)}}
		}
		if len(c) > 0 {
			out = append(out, levelSet{level: uint8(k), cols: c})
		}
	}
	return out
}

// gatherColumns appends the elements of the given columns of each row of
// the row-major matrix q, in row-major order.
func gatherColumns(dst, q []int32, cols int, which []int) []int32 {
	for r := 0; r+cols <= len(q); r += cols {
		row := q[r : r+cols]
		for _, j := range which {
			dst = append(dst, row[j])
		}
	}
	return dst
}

// NewDecoder validates the params, groups and aux sections of an ecsq
// tensor and parses its scales, levels and tables.
func (c ecsqCodec) NewDecoder(t *format.Tensor, env codec.Env) (codec.GroupDecoder, error) {
	var p ecsqParams
	if err := parseParams(t,
		float32Param("step", &p.step, MinStep, MaxStep),
		uintParam("offset", &p.offset, 0, maxOffset),
		boolParam("transposed", &p.transposed),
	); err != nil {
		return nil, err
	}
	lay, ends, err := chunk.ParseGroups(t, p.transposed)
	if err != nil {
		return nil, err
	}
	if err := chunk.CheckAux(t, chunk.AuxScales, chunk.AuxLevels, auxTable); err != nil {
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
	d.steps = columnSteps(p.step, scales, levels)
	d.sets = levelColumns(levels, lay.Cols)
	if b, err = env.Aux(auxTable); err != nil {
		return nil, err
	}
	for range d.sets {
		tab, n, err := rans.ParseTable(b)
		if err != nil {
			return nil, bad(format.Errorf(-1, "aux %q: %v", auxTable, err))
		}
		d.tables = append(d.tables, tab)
		b = b[n:]
	}
	if len(b) != 0 {
		return nil, bad(format.Errorf(-1, "aux %q: %d bytes after %d tables", auxTable, len(b), len(d.sets)))
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
	sets    []levelSet
	tables  []*rans.Table // one per set
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
		which := set.cols
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

// DefaultStep makes ecsq a codec.Stepper: rate control searches its step.
func (ecsqCodec) DefaultStep() float64 { return DefaultStep }

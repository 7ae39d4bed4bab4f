package scalarenc

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/rans"
	"github.com/nwcodec/nwc/codec/scalar"
	"github.com/nwcodec/nwc/codec/trellis"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/internal/parallel"
)

const (
	// tablePrecision is the rANS table precision: at 14 bits the coder
	// loses under 0.1 % to the entropy, and tables stay small.
	tablePrecision = 14
	// maxLevelValue bounds |q|: only reached for columns whose RMS
	// saturated the fp16 scale.
	maxLevelValue = 1 << 30
)

// ecsqCodec is ecsq, or with trellis set its trellis-coded variant tcq,
// which shares everything but the mapping from levels to values.
type ecsqEncoder struct{ trellis bool }

func (c ecsqEncoder) id() string {
	if c.trellis {
		return scalar.TCQ
	}
	return scalar.ECSQ
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
// centroid sits below the midpoint; δ is clamped to [0, scalar.MaxOffset].
func centroidOffset(m []float32, cols int, steps []float32, jobs int) uint64 {
	// Partial sums over fixed parts of rows, added in order, so that the
	// result does not depend on the number of goroutines.
	rowsPer := max(1, offsetPart/max(cols, 1))
	rows := len(m) / cols
	parts := (rows + rowsPer - 1) / rowsPer
	nums, dens := make([]float64, parts), make([]float64, parts)
	parallel.Each(jobs, parts, func(pi int) error {
		var num, den float64
		i0 := pi * rowsPer * cols
		for i, x := range m[i0:min(len(m), i0+rowsPer*cols)] {
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
		nums[pi], dens[pi] = num, den
		return nil
	})
	var num, den float64
	for pi := range nums {
		num += nums[pi]
		den += dens[pi]
	}
	if den == 0 {
		return 0
	}
	d := math.RoundToEven(-256 * num / den)
	return uint64(max(0, min(scalar.MaxOffset, d)))
}

// offsetPart is about how many weights one partial sum of centroidOffset
// covers.
const offsetPart = 64 << 10

// Encode quantizes the tensor's matrix column block by column block
// (through LDLQ when opts.Hessian is set) and rANS codes the levels.
func (c ecsqEncoder) Encode(t *codec.Tensor, opts *codec.EncodeOptions) (*codec.Encoded, error) {
	o := options(opts)
	step := float32(scalar.DefaultStep)
	if o.Step != 0 {
		step = float32(o.Step)
		if !(o.Step >= scalar.MinStep && o.Step <= scalar.MaxStep) {
			return nil, fmt.Errorf("%w: %s step %v not in [%v, %v]", codec.ErrOptions, c.id(), o.Step, scalar.MinStep, scalar.MaxStep)
		}
	}
	lay, m, err := chunk.Load(t, o.Transposed)
	if err != nil {
		return nil, err
	}
	if o.ReleaseInput {
		t.Data = nil
	}
	if err := chunk.CheckLevels(o.Levels, lay.Cols); err != nil {
		return nil, err
	}
	if err := chunk.CheckFactors(o.ScaleFactors, lay.Cols); err != nil {
		return nil, err
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
	steps := scalar.ColumnSteps(step, chunk.ScaleValues(hs), o.Levels)
	// The offset comes from the unquantized matrix, so that LDLQ, which
	// needs each block's reconstruction as it goes, can use it too.
	if c.trellis {
		p.offset = tcqOffset(m, rows, cols, steps, ends, o.Jobs)
	} else {
		p.offset = centroidOffset(m, cols, steps, o.Jobs)
	}
	off := float32(p.offset) / 256

	q := make([]int32, len(m))
	quant := func(c0, c1 int) error {
		if c.trellis {
			tcqQuantize(m, q, rows, cols, c0, c1, steps, off, ends, o.Jobs)
			return nil
		}
		return parallel.Range(o.Jobs, rows, max(1, (16<<10)/max(1, c1-c0)), func(r0, r1 int) error {
			for r := r0; r < r1; r++ {
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
		})
	}
	if err := drive(m, rows, cols, &o, quant); err != nil {
		return nil, err
	}

	lc := scalar.LevelColumns(o.Levels, cols)
	var tableBytes []byte
	tables := make([]*rans.Table, len(lc))
	for n, c := range lc {
		if tables[n], err = columnHistogram(q, cols, c.Cols, o.Jobs).BuildCompact(rans.MinPrecision, tablePrecision); err != nil {
			return nil, err
		}
		if tableBytes, err = tables[n].AppendBinary(tableBytes); err != nil {
			return nil, err
		}
	}
	e.Groups = make([]codec.EncodedGroup, len(ends))
	err = parallel.Each(o.Jobs, len(ends), func(g int) error {
		r0, r1 := 0, ends[g]
		if g > 0 {
			r0 = ends[g-1]
		}
		var payload, stream []byte
		var buf []int32
		for n, c := range lc {
			syms := q[r0*cols : r1*cols]
			if c.Cols != nil {
				buf = gatherColumns(buf[:0], syms, cols, c.Cols)
				syms = buf
			}
			var err error
			if stream, err = rans.Encode(stream[:0], syms, tables[n:n+1]); err != nil {
				return err
			}
			if n < len(lc)-1 {
				payload = binary.AppendUvarint(payload, uint64(len(stream)))
			}
			payload = append(payload, stream...)
		}
		e.Groups[g] = codec.EncodedGroup{End: uint64(r1) * uint64(cols), Data: payload}
		return nil
	})
	if err != nil {
		return nil, err
	}
	scaleBytes, err := chunk.AppendScales(nil, hs)
	if err != nil {
		return nil, err
	}
	e.Aux = append(e.Aux, codec.NamedBytes{Name: chunk.AuxScales, Data: scaleBytes})
	if len(lc) > 1 || lc[0].Level != 0 {
		e.Aux = append(e.Aux, codec.NamedBytes{Name: chunk.AuxLevels, Data: chunk.AppendLevels(nil, o.Levels)})
	}
	e.Aux = append(e.Aux, codec.NamedBytes{Name: scalar.AuxTable, Data: tableBytes})
	e.Params = p.marshal()
	return e, nil
}

// columnHistogram counts the levels of the given columns (every column
// when which is nil) of the row-major matrix q, in parts of rows on up
// to jobs goroutines.
func columnHistogram(q []int32, cols int, which []int, jobs int) *rans.Histogram {
	rows := len(q) / cols
	rowsPer := max(1, (256<<10)/cols)
	parts := (rows + rowsPer - 1) / rowsPer
	hs := make([]*rans.Histogram, parts)
	parallel.Each(jobs, parts, func(pi int) error {
		part := q[pi*rowsPer*cols : min(rows, (pi+1)*rowsPer)*cols]
		if which != nil {
			part = gatherColumns(nil, part, cols, which)
		}
		hs[pi] = rans.NewHistogram(part)
		return nil
	})
	return rans.MergeHistograms(hs...)
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

// DefaultStep makes ecsq a codec.Stepper: rate control searches its step.
func (ecsqEncoder) DefaultStep() float64 { return scalar.DefaultStep }

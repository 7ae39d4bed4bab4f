package scalarenc

import (
	"math"

	"github.com/nwcodec/nwc/codec/scalar"
	"github.com/nwcodec/nwc/codec/trellis"
)

// tcqScratch holds tcq's per-column buffers across LDLQ blocks.
type tcqScratch struct {
	x, rec []float32
	q      []int32
	tq     trellis.Quantizer
}

// quantize codes columns [c0, c1) of the rows×cols matrix m in place
// (targets in, reconstructions out), writing the levels to q: each column
// is one trellis sequence per chunk group (ends are the groups' row ends),
// so that every group decodes on its own.
func (t *tcqScratch) quantize(m []float32, q []int32, rows, cols, c0, c1 int, steps []float32, off float32, ends []int) {
	if len(t.x) < rows {
		t.x, t.rec, t.q = make([]float32, rows), make([]float32, rows), make([]int32, rows)
	}
	for j := c0; j < c1; j++ {
		s := steps[j]
		r0 := 0
		for _, r1 := range ends {
			n := r1 - r0
			if s == 0 {
				for r := r0; r < r1; r++ {
					q[r*cols+j], m[r*cols+j] = 0, 0
				}
				r0 = r1
				continue
			}
			x := t.x[:n]
			for i := range x {
				x[i] = m[(r0+i)*cols+j]
			}
			t.tq.Quantize(x, s, off, t.q[:n], t.rec[:n])
			for i := range x {
				q[(r0+i)*cols+j], m[(r0+i)*cols+j] = t.q[i], t.rec[i]
			}
			r0 = r1
		}
	}
}

// tcqOffsetColumns is how many columns tcqOffset samples at most: the
// offset is one number per tensor, and a trellis pass over every column
// would double the encoder's work.
const tcqOffsetColumns = 64

// tcqOffset returns tcq's reconstruction offset, in 1/256 of a step: as
// ecsq's centroidOffset, the mean distance by which |x|/step falls short
// of the magnitude of its point (|k| on Q0, |k| − ½ on Q1), weighted by
// step², over the nonzero levels of a trellis pass with no offset over
// the unquantized matrix — every column up to tcqOffsetColumns of them,
// else every (cols/tcqOffsetColumns)-th.
func tcqOffset(m []float32, rows, cols int, steps []float32, ends []int) uint64 {
	stride := max(1, cols/tcqOffsetColumns)
	w := append([]float32(nil), m...)
	q := make([]int32, len(m))
	var t tcqScratch
	for j := 0; j < cols; j += stride {
		t.quantize(w, q, rows, cols, j, j+1, steps, 0, ends)
	}
	var num, den float64
	for j := 0; j < cols; j += stride {
		s := steps[j]
		if s == 0 {
			continue
		}
		r0 := 0
		for _, r1 := range ends {
			st := uint8(0)
			for r := r0; r < r1; r++ {
				k := q[r*cols+j]
				if k != 0 {
					a := math.Abs(float64(k))
					if st >= 2 {
						a -= 0.5
					}
					e := math.Abs(float64(m[r*cols+j])/float64(s)) - a
					ws := float64(float64(s) * float64(s))
					num += float64(ws * e)
					den += ws
				}
				st = trellis.Next(st, k)
			}
			r0 = r1
		}
	}
	if den == 0 {
		return 0
	}
	d := math.RoundToEven(-256 * num / den)
	return uint64(max(0, min(scalar.MaxOffset, d)))
}

package scalarenc

import (
	"math"
	"slices"

	"github.com/nwcodec/nwc/codec/scalar"
	"github.com/nwcodec/nwc/codec/trellis"
	"github.com/nwcodec/nwc/internal/parallel"
)

// tcqTile is how many columns tcqQuantize gathers at once: reading 16
// adjacent float32 of each row instead of one keeps the row-major matrix
// streaming through the cache.
const tcqTile = 16

// tcqQuantize codes columns [c0, c1) of the rows×cols matrix m in place
// (targets in, reconstructions out), writing the levels to q: each column
// is one trellis sequence per chunk group (ends are the groups' row ends),
// so that every group decodes on its own. Columns are independent, so
// tiles of them are searched on up to jobs goroutines.
func tcqQuantize(m []float32, q []int32, rows, cols, c0, c1 int, steps []float32, off float32, ends []int, jobs int) {
	tiles := (c1 - c0 + tcqTile - 1) / tcqTile
	minTiles := max(1, (64<<10)/max(1, rows*tcqTile))
	parallel.Range(jobs, tiles, minTiles, func(t0, t1 int) error {
		var tq trellis.Quantizer
		x := make([]float32, tcqTile*rows)
		lv := make([]int32, tcqTile*rows)
		rec := make([]float32, rows)
		for j0 := c0 + t0*tcqTile; j0 < min(c1, c0+t1*tcqTile); j0 += tcqTile {
			tw := min(tcqTile, c1-j0)
			for r := range rows {
				row := m[r*cols+j0 : r*cols+j0+tw]
				for t, v := range row {
					x[t*rows+r] = v
				}
			}
			for t := range tw {
				s := steps[j0+t]
				xs, ls := x[t*rows:(t+1)*rows], lv[t*rows:(t+1)*rows]
				if s == 0 {
					clear(xs)
					clear(ls)
					continue
				}
				r0 := 0
				for _, r1 := range ends {
					tq.Quantize(xs[r0:r1], s, off, ls[r0:r1], rec[:r1-r0])
					copy(xs[r0:r1], rec[:r1-r0])
					r0 = r1
				}
			}
			for r := range rows {
				i := r*cols + j0
				mr, qr := m[i:i+tw], q[i:i+tw]
				for t := range tw {
					mr[t], qr[t] = x[t*rows+r], lv[t*rows+r]
				}
			}
		}
		return nil
	})
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
func tcqOffset(m []float32, rows, cols int, steps []float32, ends []int, jobs int) uint64 {
	stride := max(1, cols/tcqOffsetColumns)
	// The sampled columns, side by side: a column's levels depend on it
	// alone.
	sc := (cols + stride - 1) / stride
	w := make([]float32, rows*sc)
	ws := make([]float32, sc)
	for r := range rows {
		for c := range sc {
			w[r*sc+c] = m[r*cols+c*stride]
		}
	}
	for c := range sc {
		ws[c] = steps[c*stride]
	}
	x := slices.Clone(w)
	q := make([]int32, len(w))
	tcqQuantize(w, q, rows, sc, 0, sc, ws, 0, ends, jobs)
	var num, den float64
	for c := range sc {
		s := ws[c]
		if s == 0 {
			continue
		}
		r0 := 0
		for _, r1 := range ends {
			st := uint8(0)
			for r := r0; r < r1; r++ {
				k := q[r*sc+c]
				if k != 0 {
					a := math.Abs(float64(k))
					if st >= 2 {
						a -= 0.5
					}
					e := math.Abs(float64(x[r*sc+c])/float64(s)) - a
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

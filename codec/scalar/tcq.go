package scalar

import (
	"math"
)

// TCQ is the id of the trellis-coded variant of ecsq (FORMAT.md §7.4.7).
//
// ecsq's uniform quantizer is 1.53 dB short of the rate–distortion bound
// at high rates, because its cells are cubes. Trellis-coded quantization
// (Marcellin and Fischer; the dependent quantization of H.266/VVC) gets
// most of the cubes' loss back by letting each level choose between two
// interleaved reconstruction grids, Q0 = {k·Δ} and Q1 = {0} ∪ {(k ∓ ½)·Δ},
// through a 4-state machine driven by the parity of the levels already
// coded; the encoder picks the best path with the Viterbi algorithm. At the
// same step the levels cost about what ecsq's do, and the error falls by
// about 0.9 dB on Gaussian weights at 4–6 bits per weight (about 0.15 bits
// per weight at equal error). The decoder runs the state machine down each
// column, one table lookup per weight.
const TCQ = "tcq"

// tcqStates is the number of trellis states.
const tcqStates = 4

// tcqNext[s][k&1] is the state after level k in state s. States 0 and 1
// use grid Q0, states 2 and 3 grid Q1.
var tcqNext = [tcqStates][2]uint8{{0, 2}, {2, 0}, {1, 3}, {3, 1}}

// tcqValue returns the reconstruction of level k in state st at step s
// with offset off (in steps): ecsq's reconstruction on grid Q0, and on
// grid Q1 the same with the offset grown by half a step, so that level
// ±k sits at ±(k − ½ − off)·s.
func tcqValue(k int32, st uint8, s, off float32) float32 {
	if st >= 2 {
		off += 0.5
	}
	return reconstruct(k, s, off)
}

// tcqCandidates returns the levels worth trying for target x at step s in
// state st: the two nearest points of the state's grid, and on Q1 also
// zero, which is Q1's only point between −½ and ½ step.
func tcqCandidates(x, s float32, st uint8) (c [3]int32, n int) {
	u := float64(x) / float64(s)
	clamp := func(v float64) int32 { return int32(max(-maxLevelValue, min(maxLevelValue, v))) }
	if st < 2 {
		f := math.Floor(u)
		return [3]int32{clamp(f), clamp(f + 1)}, 2
	}
	// Q1's nonzero points are the half-integers p = m + ½; level k has
	// |k| = |p| + ½, the sign of p.
	m := math.Floor(u - 0.5)
	for _, p := range []float64{m + 0.5, m + 1.5} {
		k := p + 0.5
		if p < 0 {
			k = p - 0.5
		}
		c[n] = clamp(k)
		n++
	}
	c[n] = 0
	return c, n + 1
}

// tcqStep is one trellis step of the Viterbi search: the state a path
// came from and the level it chose.
type tcqStep struct {
	prev uint8
	k    int32
}

// tcqColumn quantizes the targets x (one column's rows in one chunk group,
// starting in state 0) at step s > 0 with offset off, choosing the levels
// whose reconstructions have the least squared error over the whole
// sequence. It writes the levels to q and their reconstructions to rec,
// and uses back (len ≥ len(x)) as scratch. Ties go to the lowest state and
// the first candidate, and every cost is rounded to float64 before it is
// compared, so the result is the same on every platform.
func tcqColumn(x []float32, s, off float32, q []int32, rec []float32, back [][tcqStates]tcqStep) {
	inf := math.Inf(1)
	cost := [tcqStates]float64{0, inf, inf, inf}
	for i, v := range x {
		next := [tcqStates]float64{inf, inf, inf, inf}
		for st := range uint8(tcqStates) {
			if cost[st] == inf {
				continue
			}
			cand, n := tcqCandidates(v, s, st)
			for _, k := range cand[:n] {
				e := float64(v) - float64(tcqValue(k, st, s, off))
				c := cost[st] + float64(e*e)
				ns := tcqNext[st][k&1]
				if c < next[ns] {
					next[ns] = c
					back[i][ns] = tcqStep{prev: st, k: k}
				}
			}
		}
		cost = next
	}
	best := uint8(0)
	for st := uint8(1); st < tcqStates; st++ {
		if cost[st] < cost[best] {
			best = st
		}
	}
	for i := len(x) - 1; i >= 0; i-- {
		b := back[i][best]
		q[i] = b.k
		rec[i] = tcqValue(b.k, b.prev, s, off)
		best = b.prev
	}
}

// tcqScratch holds tcq's per-column buffers across LDLQ blocks.
type tcqScratch struct {
	x, rec []float32
	q      []int32
	back   [][tcqStates]tcqStep
}

// quantize codes columns [c0, c1) of the rows×cols matrix m in place
// (targets in, reconstructions out), writing the levels to q: each column
// is one trellis sequence per chunk group (ends are the groups' row ends),
// so that every group decodes on its own.
func (t *tcqScratch) quantize(m []float32, q []int32, rows, cols, c0, c1 int, steps []float32, off float32, ends []int) {
	if len(t.x) < rows {
		t.x, t.rec, t.q = make([]float32, rows), make([]float32, rows), make([]int32, rows)
		t.back = make([][tcqStates]tcqStep, rows)
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
			tcqColumn(x, s, off, t.q[:n], t.rec[:n], t.back[:n])
			for i := range x {
				q[(r0+i)*cols+j], m[(r0+i)*cols+j] = t.q[i], t.rec[i]
			}
			r0 = r1
		}
	}
}

// tcqOffset returns tcq's reconstruction offset, in 1/256 of a step: as
// ecsq's centroidOffset, the mean distance by which |x|/step falls short
// of the magnitude of its point (|k| on Q0, |k| − ½ on Q1), weighted by
// step², over the nonzero levels of a trellis pass over the unquantized
// matrix with no offset.
func tcqOffset(m []float32, rows, cols int, steps []float32, ends []int) uint64 {
	w := append([]float32(nil), m...)
	q := make([]int32, len(m))
	var t tcqScratch
	t.quantize(w, q, rows, cols, 0, cols, steps, 0, ends)
	var num, den float64
	for j := range cols {
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
				st = tcqNext[st][k&1]
			}
			r0 = r1
		}
	}
	if den == 0 {
		return 0
	}
	d := math.RoundToEven(-256 * num / den)
	return uint64(max(0, min(maxOffset, d)))
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
			states[j] = tcqNext[st][k&1]
		}
	}
}

// Package trellis implements the trellis-coded quantization shared by
// nwc's codecs: tcq (FORMAT.md §7.4.7) and the scalar path of nwc
// (§7.7.5).
//
// A uniform scalar quantizer is 1.53 dB short of the rate–distortion bound
// at high rates, because its cells are cubes. Trellis-coded quantization
// (Marcellin and Fischer, 1990; the dependent quantization of H.266/VVC)
// gets most of that back by letting each level choose between two
// interleaved reconstruction grids, Q0 = {k·Δ} and Q1 = {0} ∪ {(k ∓ ½)·Δ},
// through a 4-state machine driven by the parity of the levels before it;
// the encoder picks the best sequence of levels with the Viterbi
// algorithm. At the same step the levels cost about what a uniform
// quantizer's do, and the squared error falls by about 0.9 dB on Gaussian
// data at 4–6 bits per weight. Decoding is one table lookup per value.
package trellis

import "math"

// States is the number of trellis states. States 0 and 1 use grid Q0,
// states 2 and 3 grid Q1.
const States = 4

// next is next[st][parity] of the doc of Next, flattened so that the
// masked index needs no bounds check in decoders' inner loops.
var next = [2 * States]uint8{0, 2, 2, 0, 1, 3, 3, 1}

// Next returns the state that follows level k in state st (< States):
// next[st][k&1] with next = [[0 2] [2 0] [1 3] [3 1]], k&1 being the
// parity of k.
func Next(st uint8, k int32) uint8 { return next[(st<<1|uint8(k&1))&7] }

// Offset returns the reconstruction offset, in steps, of state st for a
// codec whose nonzero levels k reconstruct as sign(k)·(|k| − off)·Δ: off
// itself on Q0, and off + ½ (exact in float32 for off a multiple of 1/256
// below 1) on Q1, which moves the nonzero points to the half-integers.
func Offset(st uint8, off float32) float32 {
	if st >= 2 {
		return off + 0.5
	}
	return off
}

// Value returns the reconstruction of level k at step s with offset off
// (in steps): 0 for k = 0, else ±fl(fl(fl(|k|) − off)·s) with the sign of
// k, every operation rounded to float32 on its own. It is the one
// reconstruction rule of the scalar quantizers, trellis-coded or not: ecsq
// and tcq (with s the column's step) and nwc's scalar path (with s the
// level's step, the scale applied after).
func Value(k int32, s, off float32) float32 {
	if k == 0 {
		return 0
	}
	a := int64(k)
	if a < 0 {
		a = -a
	}
	v := float32(float32(float32(a)-off) * s)
	if k < 0 {
		v = -v
	}
	return v
}

// maxLevel bounds the levels Quantize chooses.
const maxLevel = 1 << 30

// candidates returns the levels worth trying for target x at step s in
// state st: the four points of the state's grid nearest x before the
// offset, and on Q1 also level 0. The offset moves every nonzero point
// toward zero by less than one step (off < ½, plus ½ on Q1), so the
// nearest point of each parity — all the search needs — is always among
// them.
func candidates(x, s float32, st uint8) (c [5]int32, n int) {
	u := float64(x) / float64(s)
	clamp := func(v float64) int32 { return int32(max(-maxLevel, min(maxLevel, v))) }
	if st < 2 {
		f := math.Floor(u)
		for d := -1.0; d <= 2; d++ {
			c[n] = clamp(f + d)
			n++
		}
		return c, n
	}
	// Q1's nonzero points are the half-integers p; level k has |k| = |p|
	// + ½ and the sign of p.
	m := math.Floor(u - 0.5)
	for d := -1.0; d <= 2; d++ {
		p := m + d + 0.5
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

// step is one trellis step of a surviving path: the state it came from
// and the level it chose.
type step struct {
	prev uint8
	k    int32
}

// A Quantizer runs the Viterbi search; it holds scratch space, so one
// Quantizer must not be used concurrently. The zero value is ready.
type Quantizer struct {
	back [][States]step
}

// Quantize chooses the levels of the sequence x, which starts in state 0,
// at step s > 0 with offset off: of all level sequences, the one whose
// reconstructions (Value, with the offset of each level's state) have the
// least total squared error. It writes the levels to q and their
// reconstructions to rec (both len(x) long). Of the candidates of one
// parity only the one with the least squared error (the first on ties)
// extends a path, path ties go to the lowest state, and every cost is
// rounded to float64 before it is compared, so the result is the same on
// every platform.
func (t *Quantizer) Quantize(x []float32, s, off float32, q []int32, rec []float32) {
	if len(t.back) < len(x) {
		t.back = make([][States]step, len(x))
	}
	back := t.back[:len(x)]
	inf := math.Inf(1)
	c0, c1, c2, c3 := 0.0, inf, inf, inf
	off0, off1 := Offset(0, off), Offset(2, off)
	s64 := float64(s)
	// States 0 and 1 share grid Q0, 2 and 3 grid Q1, and the state a
	// level leads to depends only on its parity: so per value and grid
	// only the best level of each parity (the first on ties) can be on a
	// surviving path. Candidates are tried in the order of candidates().
	for i, v := range x {
		var b0, b1 best2
		u := float64(v) / s64
		if math.Abs(u) < maxLevel/2 {
			v64 := float64(v)
			sqe := func(k int32, o float32) float64 { return sqErr(v64, k, s, o) }
			// Q0: floor(u)−1 … floor(u)+2, two of each parity.
			f := int32(math.Floor(u))
			ka, kb := f-1, f
			sa, sb := sqe(ka, off0), sqe(kb, off0)
			if sc := sqe(f+1, off0); sc < sa {
				ka, sa = f+1, sc
			}
			if sd := sqe(f+2, off0); sd < sb {
				kb, sb = f+2, sd
			}
			b0.k[ka&1], b0.sq[ka&1] = ka, sa
			b0.k[kb&1], b0.sq[kb&1] = kb, sb
			// Q1: the half-integer points m−½ … m+2½ around u, then 0.
			m := int32(math.Floor(u - 0.5))
			b1.init()
			for d := int32(-1); d <= 2; d++ {
				k := m + d
				if k >= 0 {
					k++
				}
				b1.add(k, sqe(k, off1))
			}
			b1.add(0, v64*v64)
		} else {
			b0.init()
			b1.init()
			for g, b := range [2]*best2{&b0, &b1} {
				st := uint8(2 * g)
				o := Offset(st, off)
				cand, nc := candidates(v, s, st)
				for _, k := range cand[:nc] {
					e := float64(v) - float64(Value(k, s, o))
					b.add(k, float64(e*e))
				}
			}
		}
		// next = [[0 2] [2 0] [1 3] [3 1]]: each state has two
		// predecessors, tried in increasing state order.
		bk := &back[i]
		n0, n1, n2, n3 := c0+b0.sq[0], c2+b1.sq[0], c0+b0.sq[1], c2+b1.sq[1]
		bk[0], bk[1], bk[2], bk[3] = step{0, b0.k[0]}, step{2, b1.k[0]}, step{0, b0.k[1]}, step{2, b1.k[1]}
		if c := c1 + b0.sq[1]; c < n0 {
			n0, bk[0] = c, step{1, b0.k[1]}
		}
		if c := c3 + b1.sq[1]; c < n1 {
			n1, bk[1] = c, step{3, b1.k[1]}
		}
		if c := c1 + b0.sq[0]; c < n2 {
			n2, bk[2] = c, step{1, b0.k[0]}
		}
		if c := c3 + b1.sq[0]; c < n3 {
			n3, bk[3] = c, step{3, b1.k[0]}
		}
		c0, c1, c2, c3 = n0, n1, n2, n3
	}
	cost := [States]float64{c0, c1, c2, c3}
	best := uint8(0)
	for st := uint8(1); st < States; st++ {
		if cost[st] < cost[best] {
			best = st
		}
	}
	offs := [States]float32{off0, off0, off1, off1}
	for i := len(x) - 1; i >= 0; i-- {
		b := back[i][best]
		q[i] = b.k
		rec[i] = Value(b.k, s, offs[b.prev])
		best = b.prev
	}
}

// sqErr returns the squared error float64(e·e) of v64 against Value(k,
// s, off), e = v64 − Value rounded to float64, for |k| < 2³¹, without the
// branches of Value, which the search cannot predict: the sign is set on
// the bits and level 0 selected at the end (its −0 and +0 give the same
// error).
func sqErr(v64 float64, k int32, s, off float32) float64 {
	m := k >> 31
	a := (k ^ m) - m
	bits := math.Float32bits(float32(float32(float32(a)-off)*s)) ^ uint32(m)&0x80000000
	if k == 0 {
		bits = 0
	}
	e := v64 - float64(math.Float32frombits(bits))
	return float64(e * e)
}

// best2 is, for one grid, the best level of each parity so far and its
// squared error; a parity without a candidate has an infinite error.
type best2 struct {
	k  [2]int32
	sq [2]float64
}

func (b *best2) init() { b.sq = [2]float64{math.Inf(1), math.Inf(1)} }

// add offers level k with squared error sq; the first of equal errors
// stays.
func (b *best2) add(k int32, sq float64) {
	if p := k & 1; sq < b.sq[p] {
		b.k[p], b.sq[p] = k, sq
	}
}

package trellis

import (
	"math"
	"math/rand/v2"
	"testing"
)

// quantizeRef is the plain Viterbi search Quantize is an unrolled form
// of: it tries every candidate of every state and must choose the same
// levels.
func quantizeRef(t *Quantizer, x []float32, s, off float32, q []int32, rec []float32) {
	if len(t.back) < len(x) {
		t.back = make([][States]step, len(x))
	}
	inf := math.Inf(1)
	cost := [States]float64{0, inf, inf, inf}
	offs := [States]float32{Offset(0, off), Offset(1, off), Offset(2, off), Offset(3, off)}
	// States 0 and 1 share grid Q0, 2 and 3 grid Q1, and the state a
	// level leads to depends only on its parity: so per value and grid
	// only the best level of each parity (the first on ties) can be on a
	// surviving path.
	var (
		bestK  [2][2]int32
		bestSq [2][2]float64
		have   [2][2]bool
	)
	for i, v := range x {
		for g := range 2 {
			st := uint8(2 * g)
			cand, nc := candidates(v, s, st)
			have[g] = [2]bool{}
			for _, k := range cand[:nc] {
				e := float64(v) - float64(Value(k, s, offs[st]))
				sq := float64(e * e)
				p := k & 1
				if !have[g][p] || sq < bestSq[g][p] {
					bestK[g][p], bestSq[g][p], have[g][p] = k, sq, true
				}
			}
		}
		nextCost := [States]float64{inf, inf, inf, inf}
		for st := range uint8(States) {
			if cost[st] == inf {
				continue
			}
			g := st >> 1
			for p := range int32(2) {
				if !have[g][p] {
					continue
				}
				c := cost[st] + bestSq[g][p]
				ns := Next(st, p)
				if c < nextCost[ns] {
					nextCost[ns] = c
					t.back[i][ns] = step{prev: st, k: bestK[g][p]}
				}
			}
		}
		cost = nextCost
	}
	best := uint8(0)
	for st := uint8(1); st < States; st++ {
		if cost[st] < cost[best] {
			best = st
		}
	}
	for i := len(x) - 1; i >= 0; i-- {
		b := t.back[i][best]
		q[i] = b.k
		rec[i] = Value(b.k, s, offs[b.prev])
		best = b.prev
	}
}

// TestQuantizeMatchesReference checks that the unrolled search chooses
// exactly the levels of the plain one, ties included, on Gaussian and
// heavy-tailed data, values on the grid points, and long sequences.
func TestQuantizeMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var a, b Quantizer
	for trial := range 2000 {
		n := 1 + r.IntN(300)
		s := float32(math.Exp(r.NormFloat64() * 2))
		off := float32(r.IntN(128)) / 256
		x := make([]float32, n)
		for i := range x {
			switch r.IntN(4) {
			case 0: // on a point of either grid
				x[i] = float32(float64(r.IntN(21)-10)*0.5) * s
			case 1:
				x[i] = float32(r.NormFloat64() / math.Max(0.05, r.Float64()) * float64(s))
			case 2:
				x[i] = 0
			default:
				x[i] = float32(r.NormFloat64() * 3 * float64(s))
			}
		}
		q1, q2 := make([]int32, n), make([]int32, n)
		r1, r2 := make([]float32, n), make([]float32, n)
		a.Quantize(x, s, off, q1, r1)
		quantizeRef(&b, x, s, off, q2, r2)
		for i := range q1 {
			if q1[i] != q2[i] || math.Float32bits(r1[i]) != math.Float32bits(r2[i]) {
				t.Fatalf("trial %d (step %v, offset %v): value %d = %v: level %d rec %v, reference %d rec %v", trial, s, off, i, x[i], q1[i], r1[i], q2[i], r2[i])
			}
		}
	}
}

// BenchmarkQuantize runs the search over Gaussian sequences of 256
// values (a column of a chunk group), against the plain search.
func BenchmarkQuantize(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	x := make([]float32, 256)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	q, rec := make([]int32, len(x)), make([]float32, len(x))
	var tq Quantizer
	for _, v := range []struct {
		name string
		f    func()
	}{
		{"unrolled", func() { tq.Quantize(x, 0.25, 0.05, q, rec) }},
		{"reference", func() { quantizeRef(&tq, x, 0.25, 0.05, q, rec) }},
	} {
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				v.f()
			}
			b.ReportMetric(float64(b.N)*float64(len(x))/b.Elapsed().Seconds()/1e6, "Mvalues/s")
		})
	}
}

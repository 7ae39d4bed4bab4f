package trellis

import (
	"math"
	"math/rand/v2"
	"testing"
)

func value(s float32) func(k int32, off float32) float32 {
	return func(k int32, off float32) float32 { return Value(k, s, off) }
}

// TestQuantizeOptimal compares Quantize with an exhaustive search over
// every level sequence near the targets: the Viterbi path must reach the
// least squared error of any path through the trellis.
func TestQuantizeOptimal(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n = 6
	var tq Quantizer
	for trial := range 300 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * 2)
		}
		s := float32(0.5 + r.Float64())
		off := float32(r.IntN(128)) / 256
		val := value(s)
		q := make([]int32, n)
		rec := make([]float32, n)
		tq.Quantize(x, s, off, q, rec)
		got, st := 0.0, uint8(0)
		for i, k := range q {
			v := val(k, Offset(st, off))
			if v != rec[i] {
				t.Fatalf("trial %d: rec[%d] = %v, the state machine gives %v", trial, i, rec[i], v)
			}
			got += sq(float64(x[i]) - float64(v))
			st = Next(st, k)
		}
		best := math.Inf(1)
		var walk func(i int, st uint8, e float64)
		walk = func(i int, st uint8, e float64) {
			if e >= best {
				return
			}
			if i == n {
				best = e
				return
			}
			c := int32(math.Round(float64(x[i] / s)))
			for k := c - 4; k <= c+4; k++ {
				walk(i+1, Next(st, k), e+sq(float64(x[i])-float64(val(k, Offset(st, off)))))
			}
		}
		walk(0, 0, 0)
		if got > best*(1+1e-12)+1e-15 {
			t.Fatalf("trial %d: Viterbi error %v, exhaustive %v", trial, got, best)
		}
	}
}

func sq(v float64) float64 { return v * v }

func TestNextAndOffset(t *testing.T) {
	// Parity, not sign, drives the machine.
	for _, k := range []int32{-3, -1, 1, 3, math.MinInt32 + 1} {
		if Next(0, k) != 2 || Next(3, k) != 1 {
			t.Errorf("odd level %d: Next(0) = %d, Next(3) = %d", k, Next(0, k), Next(3, k))
		}
	}
	for _, k := range []int32{-2, 0, 2, math.MinInt32} {
		if Next(1, k) != 2 || Next(2, k) != 1 {
			t.Errorf("even level %d: Next(1) = %d, Next(2) = %d", k, Next(1, k), Next(2, k))
		}
	}
	if Offset(1, 0.25) != 0.25 || Offset(2, 0.25) != 0.75 || Offset(3, 127.0/256) != 255.0/256 {
		t.Error("Offset: want off on Q0 and off + ½ on Q1")
	}
}

// TestGaussianGain measures the error of Quantize against rounding at the
// same step on long Gaussian sequences: levels of a Q0/Q1 trellis at step
// Δ sit on a grid as dense as rounding at Δ, and the error must be at least
// 0.75 dB lower (the asymptotic granular gain of 4 states is about 1 dB;
// the entropy of the levels rises by only a few hundredths of a bit).
func TestGaussianGain(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 20000)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	const s = 0.125
	q := make([]int32, len(x))
	rec := make([]float32, len(x))
	var tq Quantizer
	tq.Quantize(x, s, 0, q, rec)
	var et, er float64
	for i, v := range x {
		et += sq(float64(v - rec[i]))
		er += sq(float64(v) - math.RoundToEven(float64(v)/s)*s)
	}
	gain := 10 * math.Log10(er/et)
	t.Logf("error %.2f dB below rounding at the same step", gain)
	if gain < 0.75 {
		t.Errorf("gain %.2f dB, want ≥ 0.75", gain)
	}
}

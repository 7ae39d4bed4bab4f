package scalar

import (
	"math"
	"math/rand/v2"
	"testing"

	"nwc/codec"
	"nwc/format"
)

// TestTCQViterbiOptimal compares tcqColumn with an exhaustive search over
// every level sequence near the targets: the Viterbi path must reach the
// least squared error of any path through the trellis.
func TestTCQViterbiOptimal(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n = 6
	for trial := range 200 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * 2)
		}
		s := float32(0.5 + r.Float64())
		off := float32(r.IntN(40)) / 256
		q := make([]int32, n)
		rec := make([]float32, n)
		tcqColumn(x, s, off, q, rec, make([][tcqStates]tcqStep, n))
		got, st := 0.0, uint8(0)
		for i, k := range q {
			v := tcqValue(k, st, s, off)
			if v != rec[i] {
				t.Fatalf("trial %d: rec[%d] = %v, the state machine gives %v", trial, i, rec[i], v)
			}
			got += sq(float64(x[i]) - float64(v))
			st = tcqNext[st][k&1]
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
				walk(i+1, tcqNext[st][k&1], e+sq(float64(x[i])-float64(tcqValue(k, st, s, off))))
			}
		}
		walk(0, 0, 0)
		if got > best*(1+1e-12)+1e-15 {
			t.Fatalf("trial %d: Viterbi error %v, exhaustive %v", trial, got, best)
		}
	}
}

func sq(v float64) float64 { return v * v }

// TestTCQGain requires tcq to beat ecsq in SQNR at equal rate (6.02 dB per
// bit) on Gaussian weights: by 0.6 dB at about 3 bits per weight and 0.8 dB
// from 4 to 6 (measured: 0.67, 0.84, 0.92, 0.95); the asymptotic gain of a
// 4-state trellis is about 1 dB.
func TestTCQGain(t *testing.T) {
	const rows, cols = 512, 256
	tn := gaussian("w", 9, []uint64{rows, cols}, 0.02, format.F32)
	x := floats(t, tn.Data, format.F32)
	score := func(id string, step float64) (float64, float64) {
		c, _ := codec.Lookup(id)
		enc, err := c.Encode(tn, &codec.EncodeOptions{Step: step})
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeAll(t, id, tn, enc)
		if err != nil {
			t.Fatal(err)
		}
		bpw := float64(8*encodedBytes(enc)) / (rows * cols)
		q := sqnr(x, floats(t, got, format.F32))
		return bpw, q - 6.0206*bpw
	}
	for _, tc := range []struct{ step, gain float64 }{{0.5, 0.6}, {0.25, 0.8}, {0.125, 0.8}, {0.0625, 0.8}} {
		step := tc.step
		eb, e := score(ECSQ, step)
		tb, q := score(TCQ, step)
		t.Logf("step %v: ecsq %.3f bpw, %.2f dB over 6.02R; tcq %.3f bpw, %.2f dB", step, eb, e, tb, q)
		if q < e+tc.gain {
			t.Errorf("step %v: tcq %.2f dB, ecsq %.2f dB over 6.02R: want a gain of at least %v dB", step, q, e, tc.gain)
		}
	}
}

// TestTCQLDLQ checks that tcq runs under LDLQ and, with a Hessian whose
// inputs are correlated, lowers the output error as ecsq does.
func TestTCQLDLQ(t *testing.T) {
	const rows, cols = 48, 64
	tn := gaussian("w", 5, []uint64{rows, cols}, 1, format.F32)
	r := rand.New(rand.NewPCG(7, 7))
	const k = 200
	xs := make([]float64, cols*k)
	for i := range xs {
		xs[i] = r.NormFloat64()
	}
	for i := 1; i < cols; i++ { // neighbouring inputs correlated
		for n := range k {
			xs[i*k+n] = 0.8*xs[(i-1)*k+n] + 0.6*xs[i*k+n]
		}
	}
	h := make([]float64, cols*cols)
	for i := range cols {
		for j := range cols {
			var s float64
			for n := range k {
				s += xs[i*k+n] * xs[j*k+n]
			}
			h[i*cols+j] = s / k
		}
	}
	w := floats(t, tn.Data, format.F32)
	loss := func(o *codec.EncodeOptions) float64 {
		enc, err := ecsqCodec{trellis: true}.Encode(tn, o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeAll(t, TCQ, tn, enc)
		if err != nil {
			t.Fatal(err)
		}
		y := floats(t, got, format.F32)
		var l float64
		for row := range rows {
			for i := range cols {
				for j := range cols {
					l += float64(w[row*cols+i]-y[row*cols+i]) * h[i*cols+j] * float64(w[row*cols+j]-y[row*cols+j])
				}
			}
		}
		return l
	}
	plain := loss(&codec.EncodeOptions{Step: 0.3})
	comp := loss(&codec.EncodeOptions{Step: 0.3, Hessian: h, LDLQBlock: 1})
	t.Logf("output error: %.4g plain, %.4g with LDLQ", plain, comp)
	if comp > 0.8*plain {
		t.Errorf("LDLQ output error %.4g is not well below %.4g without", comp, plain)
	}
}

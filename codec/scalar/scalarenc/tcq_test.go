package scalarenc

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/scalar"
	"github.com/nwcodec/nwc/format"
)

// TestTCQGain requires tcq to beat ecsq in SQNR at equal rate (6.02 dB per
// bit) on Gaussian weights: by 0.6 dB at about 3 bits per weight and 0.8 dB
// from 4 to 6 (measured: 0.67, 0.84, 0.92, 0.95); the asymptotic gain of a
// 4-state trellis is about 1 dB.
func TestTCQGain(t *testing.T) {
	const rows, cols = 512, 256
	tn := gaussian("w", 9, []uint64{rows, cols}, 0.02, format.F32)
	x := floats(t, tn.Data, format.F32)
	score := func(id string, step float64) (float64, float64) {
		c, _ := codec.LookupEncoder(id)
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
		eb, e := score(scalar.ECSQ, step)
		tb, q := score(scalar.TCQ, step)
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
		enc, err := ecsqEncoder{trellis: true}.Encode(tn, o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeAll(t, scalar.TCQ, tn, enc)
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

// TestEncodeInterrupt checks that ecsq, tcq and rtn stop at an Interrupt
// error between LDLQ blocks and return it.
func TestEncodeInterrupt(t *testing.T) {
	const rows, cols = 16, 64
	tn := gaussian("w", 5, []uint64{rows, cols}, 1, format.F32)
	h := make([]float64, cols*cols)
	for i := range cols {
		h[i*cols+i] = 1 + float64(i%3)
	}
	stop := errors.New("stop")
	for name, enc := range map[string]codec.Encoder{"ecsq": ecsqEncoder{}, "tcq": ecsqEncoder{trellis: true}, "rtn": rtnEncoder{}} {
		n := 0
		_, err := enc.Encode(tn, &codec.EncodeOptions{Step: 0.3, Hessian: h, LDLQBlock: 8, Interrupt: func() error {
			if n++; n > 2 {
				return stop
			}
			return nil
		}})
		if !errors.Is(err, stop) || n != 3 {
			t.Errorf("%s: %v after %d Interrupt calls, want the interrupt's error after 3", name, err, n)
		}
	}
}

package llama

import (
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

func TestKLLogits(t *testing.T) {
	// p = (½, ½), q = (¾, ¼): KL = ½·ln(⅔) + ½·ln 2.
	want := 0.5*math.Log(2.0/3) + 0.5*math.Log(2)
	if got := klLogits([]float32{0, 0}, []float32{float32(math.Log(3)), 0}); math.Abs(got-want) > 1e-7 {
		t.Errorf("klLogits = %v, want %v", got, want)
	}
	// Shifting logits changes nothing.
	if got := klLogits([]float32{1, 2, 3}, []float32{101, 102, 103}); got > 1e-12 {
		t.Errorf("KL of shifted logits = %v, want 0", got)
	}
	// A vocabulary's worth of logits, the second set a perturbed and
	// shifted copy of the first, against the log-softmax definition.
	r := rand.New(rand.NewPCG(3, 4))
	for _, k := range []struct{ scale, noise, shift float64 }{{3, 0.05, 0}, {10, 0.5, 40}, {1, 1e-3, -7}} {
		a, b := make([]float32, 32000), make([]float32, 32000)
		a64, b64 := make([]float64, len(a)), make([]float64, len(b))
		for i := range a {
			a[i] = float32(k.scale * r.NormFloat64())
			b[i] = float32(float64(a[i]) + k.noise*r.NormFloat64() + k.shift)
			a64[i], b64[i] = float64(a[i]), float64(b[i])
		}
		got, want := klLogits(a, b), refKL(a64, b64)
		if math.Abs(got-want) > 1e-9*max(want, 1e-3) {
			t.Errorf("%+v: klLogits = %.12g, want %.12g", k, got, want)
		}
		// A prediction keeps the probabilities in float32: a position
		// of a, then one of b, whose divergence is not counted (the
		// last position predicts nothing).
		var pr prediction
		pr.set(append(slices.Clone(a), b...), 2, len(a))
		got = pr.windowKL(append(slices.Clone(b), a...), 2, len(a))
		if math.Abs(got-want) > 1e-6*max(want, 1e-3) {
			t.Errorf("%+v: prediction.windowKL = %.12g, want %.12g", k, got, want)
		}
		if self := pr.windowKL(append(slices.Clone(a), b...), 2, len(a)); self != 0 {
			t.Errorf("%+v: divergence of a prediction from its own logits = %g", k, self)
		}
	}
}

// TestEvalKL checks EvalKL against the divergence computed from the
// float64 reference forward pass of both models, window by window.
func TestEvalKL(t *testing.T) {
	ref := randomModel(t, tinyConfig, 11)
	m := randomModel(t, tinyConfig, 12)
	docs := [][]int{
		{1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 2, 3, 4, 5, 9, 9, 9},
		{1},
		{1, 7},
	}
	const window = 8
	var want float64
	n := 0
	for _, d := range docs {
		for _, w := range windows(d, window) {
			lr, lm := refForward(ref, w), refForward(m, w)
			for p := 0; p+1 < len(w); p++ {
				want += refKL(lr[p], lm[p])
				n++
			}
		}
	}
	want /= float64(n)
	res, err := EvalKL(ref, m, docs, window)
	if err != nil {
		t.Fatal(err)
	}
	got := res.Mean()
	if res.Tokens != n || want < 0.01 || math.Abs(got-want) > 1e-4*want {
		t.Errorf("EvalKL = %+v (mean %v), want %d tokens, mean %v", res, got, n, want)
	}
	if self, err := EvalKL(ref, ref, docs, window); err != nil || self.TotalKL != 0 {
		t.Errorf("EvalKL of a model with itself = %+v, %v; want 0", self, err)
	}
	prev := runtime.GOMAXPROCS(1)
	one, err := EvalKL(ref, m, docs, window)
	runtime.GOMAXPROCS(prev)
	if err != nil || one != res {
		t.Errorf("EvalKL with GOMAXPROCS=1 = %+v, %v; want %+v", one, err, res)
	}
}

func TestEvalKLErrors(t *testing.T) {
	ref := randomModel(t, tinyConfig, 11)
	other := tinyConfig
	other.NLayers = 1
	if _, err := EvalKL(ref, randomModel(t, other, 1), [][]int{{1, 2}}, 4); !errors.Is(err, ErrShape) {
		t.Errorf("different configurations: err = %v, want ErrShape", err)
	}
	if _, err := EvalKL(ref, ref, [][]int{{1, 2}}, 1); !errors.Is(err, ErrContext) {
		t.Errorf("window 1: err = %v, want ErrContext", err)
	}
	if _, err := EvalKL(ref, ref, [][]int{{1, 99}}, 4); !errors.Is(err, ErrToken) {
		t.Errorf("bad token: err = %v, want ErrToken", err)
	}
	if kl, err := EvalKL(ref, ref, nil, 4); err != nil || kl.Tokens != 0 || !math.IsNaN(kl.Mean()) {
		t.Errorf("no docs: %+v, %v; want 0 tokens and NaN mean", kl, err)
	}
}

// TestKLReference checks that a KLReference gives EvalKL's result bit
// for bit whether it keeps the reference's logits of no window, some or
// all, for several models in turn.
func TestKLReference(t *testing.T) {
	ref := randomModel(t, tinyConfig, 11)
	docs := [][]int{
		{1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 2, 3, 4, 5, 9, 9, 9},
		{1},
		{1, 7, 2, 2, 5},
	}
	const window = 8
	perToken := int64(4 * tinyConfig.VocabSize)
	for _, seed := range []uint64{12, 13} {
		m := randomModel(t, tinyConfig, seed)
		want, err := EvalKL(ref, m, docs, window)
		if err != nil {
			t.Fatal(err)
		}
		for _, keep := range []int64{0, 8 * perToken, 15 * perToken, 1 << 30} {
			r, err := NewKLReference(ref, docs, window, keep)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.EvalKL(m)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("seed %d, keeping %d bytes: %+v, want %+v", seed, keep, got, want)
			}
		}
	}
	if _, err := NewKLReference(ref, docs, 1, 1<<20); err == nil {
		t.Error("a window of one token was accepted")
	}
}

func refKL(a, b []float64) float64 {
	la, lb := refLogSoftmax(a), refLogSoftmax(b)
	var kl float64
	for i := range la {
		kl += math.Exp(la[i]) * (la[i] - lb[i])
	}
	return kl
}

func refLogSoftmax(x []float64) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, v)
	}
	var s float64
	for _, v := range x {
		s += math.Exp(v - m)
	}
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v - m - math.Log(s)
	}
	return out
}

package train

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nwcodec/nwc/codec/neural"
)

// TestGradients compares the hand-written backward pass with central
// finite differences on every parameter of small models, residual and not,
// with and without embeddings.
func TestGradients(t *testing.T) {
	for _, c := range []neural.Config{
		{Chunk: 4, Latent: 4, Width: 5, Blocks: 2},
		{Chunk: 4, Latent: 3, Width: 6, Blocks: 1},
		{Chunk: 3, Latent: 3, Width: 4, Blocks: 0},
	} {
		m, err := NewModel(c, 7)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		// Perturb every parameter so that zero-initialized layers and unit
		// embeddings do not hide errors in their gradients.
		for _, p := range m.params() {
			for i := range p {
				p[i] += 0.3 * r.NormFloat64()
			}
		}
		var samples []sample
		for i := range 6 {
			s := sample{x: make([]float64, c.Chunk), q: i % neural.NumLevels, lnStep: math.Log(0.05 + 0.3*float64(i)), noise: make([]float64, c.Latent)}
			syntheticChunk(s.x, r)
			for j := range s.noise {
				s.noise[j] = r.Float64() - 0.5
			}
			samples = append(samples, s)
		}
		total := func() float64 {
			w := m.newWork()
			w.noisyDecoder = true
			var l float64
			for i := range samples {
				li, _, _ := m.loss(&samples[i], 0.7, w, nil)
				l += li
			}
			return l
		}
		g := m.zeroLike()
		w := m.newWork()
		w.noisyDecoder = true
		for i := range samples {
			m.loss(&samples[i], 0.7, w, g)
		}
		gp := g.params()
		checked := 0
		for pi, p := range m.params() {
			for j := range p {
				const h = 1e-6
				old := p[j]
				p[j] = old + h
				lp := total()
				p[j] = old - h
				lm := total()
				p[j] = old
				num := (lp - lm) / (2 * h)
				if diff := math.Abs(num - gp[pi][j]); diff > 1e-4*math.Max(1, math.Abs(num)) {
					t.Errorf("%+v: param %d[%d]: backward %g, finite difference %g", c, pi, j, gp[pi][j], num)
				}
				checked++
			}
		}
		if checked == 0 {
			t.Fatalf("%+v: no parameters checked", c)
		}
	}
}

// TestTrainReproducible trains twice from the same seed and data and
// checks that every parameter comes out identical, and that another seed
// gives another model.
func TestTrainReproducible(t *testing.T) {
	data := NewDataset(16)
	r := rand.New(rand.NewPCG(3, 4))
	m := make([]float32, 64*32)
	for i := range m {
		m[i] = float32(r.NormFloat64())
	}
	data.AddMatrix(m, 64, 32)
	tr, held := data.Split(4)
	train := func(seed uint64) *Model {
		var stats []Stats
		mod, err := Train(context.Background(), tr, held, &Options{Steps: 30, Batch: 32, Seed: seed, Config: neural.Config{Chunk: 16, Latent: 16, Width: 8, Blocks: 1},
			Progress: func(_ *Model, st Stats) error { stats = append(stats, st); return nil }})
		if err != nil {
			t.Fatal(err)
		}
		if len(stats) == 0 || stats[len(stats)-1].Step != 30 {
			t.Fatalf("progress reported %d evaluations, last not at the final step", len(stats))
		}
		return mod
	}
	a, b, c := train(1), train(1), train(2)
	same := func(x, y *Model) bool {
		px, py := x.params(), y.params()
		for i := range px {
			for j := range px[i] {
				if math.Float64bits(px[i][j]) != math.Float64bits(py[i][j]) {
					return false
				}
			}
		}
		return true
	}
	if !same(a, b) {
		t.Error("the same seed gave different models")
	}
	if same(a, c) {
		t.Error("different seeds gave the same model")
	}
}

// TestTrainImproves trains a small model on Laplace-like data at low rate,
// where a decoder can move reconstructions toward the centroids, and
// checks that the held-out loss beats the scalar quantizer's.
func TestTrainImproves(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds; skipped in -short mode")
	}
	var last Stats
	_, err := Train(context.Background(), nil, nil, &Options{Steps: 1500, Batch: 64, Seed: 5,
		Config:   neural.Config{Chunk: 16, Latent: 16, Width: 16, Blocks: 1},
		Progress: func(_ *Model, st Stats) error { last = st; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if !(last.Loss < last.PlainLoss) {
		t.Errorf("held-out loss %.5f, scalar quantizer %.5f: training did not help", last.Loss, last.PlainLoss)
	}
}

// TestTrainCancel checks that training stops between steps once its
// context is done: cancelled from the progress callback after the first
// evaluation, it runs no further step and reports the cause.
func TestTrainCancel(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("enough")
	var evals []int
	_, err := Train(ctx, nil, nil, &Options{Steps: 50, Batch: 8, EvalEvery: 5, Seed: 1,
		Config: neural.Config{Chunk: 16, Latent: 16, Width: 4, Blocks: 0},
		Progress: func(_ *Model, st Stats) error {
			evals = append(evals, st.Step)
			if st.Step == 10 {
				cancel(stop)
			}
			return nil
		}})
	if !errors.Is(err, stop) {
		t.Fatalf("got %v, want an error wrapping the cancellation cause", err)
	}
	if len(evals) != 2 || evals[1] != 10 {
		t.Errorf("evaluations at steps %v, want [5 10]: training went on after cancellation", evals)
	}
	// A context done before training starts runs no step at all.
	done, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	calls := 0
	if _, err := Train(done, nil, nil, &Options{Steps: 5, Batch: 8, EvalEvery: 1,
		Config:   neural.Config{Chunk: 16, Latent: 16, Width: 4, Blocks: 0},
		Progress: func(*Model, Stats) error { calls++; return nil }}); !errors.Is(err, context.Canceled) || calls != 0 {
		t.Errorf("cancelled context: %v after %d evaluations, want context.Canceled after none", err, calls)
	}
}

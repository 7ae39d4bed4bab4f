package llama

import (
	"errors"
	"runtime"
	"slices"
	"testing"
)

// perturbed returns a copy of m with its weights scaled by 1+eps, 1−eps
// or 1 in turn, standing in for a compressed model.
func perturbed(m *Model, eps float32) *Model {
	c := m.Clone()
	for _, w := range c.Weights() {
		for i := range w {
			switch i % 3 {
			case 0:
				w[i] *= 1 + eps
			case 1:
				w[i] *= 1 - eps
			}
		}
	}
	return c
}

func TestPairedMoments(t *testing.T) {
	ref := randomModel(t, tinyConfig, 41)
	m := perturbed(ref, 0.1)
	docs := [][]int{
		{1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
		{1, 2},
		{1, 15, 14, 13},
	}
	const window = 6
	for _, key := range []string{LayerName(0, "attention.wq"), LayerName(1, "feed_forward.w2"), NameEmbedding} {
		// The sums, taken the plain way from everything the two models'
		// observers see.
		rr, rm := recorder{}, recorder{}
		sr, sm := ref.NewState(), m.NewState()
		sr.Observer, sm.Observer = rr, rm
		for _, d := range docs {
			for _, w := range windows(d, window) {
				sr.Reset()
				sm.Reset()
				if _, err := sr.Forward(w); err != nil {
					t.Fatal(err)
				}
				if _, err := sm.Forward(w); err != nil {
					t.Fatal(err)
				}
			}
		}
		xs, ys := rr[key], rm[key]
		n := len(xs[0])
		xx, rx := make([]float64, n*n), make([]float64, n*n)
		for r := range xs {
			for i := range n {
				for j := range n {
					xx[i*n+j] += float64(ys[r][i]) * float64(ys[r][j])
					rx[i*n+j] += float64(xs[r][i]) * float64(ys[r][j])
				}
			}
		}
		for _, procs := range []int{1, 3} {
			old := runtime.GOMAXPROCS(procs)
			mo, err := PairedMoments(ref, m, docs, window, key, 0)
			runtime.GOMAXPROCS(old)
			if err != nil {
				t.Fatal(err)
			}
			if mo.N != n || mo.Count != int64(len(xs)) {
				t.Fatalf("%s: N %d count %d, want %d and %d", key, mo.N, mo.Count, n, len(xs))
			}
			// Same sums in the same order: equal to the bit.
			if !slices.Equal(mo.XX, xx) || !slices.Equal(mo.RX, rx) {
				t.Errorf("%s, %d procs: moments differ from the plain sums", key, procs)
			}
		}
	}
	if slices.Equal(rxOf(t, ref, m, docs), rxOf(t, ref, ref, docs)) {
		t.Error("perturbing the model did not change the cross moment: the test sees nothing")
	}
}

func rxOf(t *testing.T, ref, m *Model, docs [][]int) []float64 {
	mo, err := PairedMoments(ref, m, docs, 6, LayerName(1, "attention.wo"), 0)
	if err != nil {
		t.Fatal(err)
	}
	return mo.RX
}

func TestPairedMomentsErrors(t *testing.T) {
	ref := randomModel(t, tinyConfig, 42)
	docs := [][]int{{1, 3, 4, 5}}
	if _, err := PairedMoments(ref, ref.Clone(), docs, 6, "no.such.weight", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown key: %v, want ErrNotFound", err)
	}
	if _, err := PairedMoments(ref, ref.Clone(), nil, 6, NameEmbedding, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("no text: %v, want ErrNotFound", err)
	}
	if _, err := PairedMoments(ref, ref.Clone(), docs, 1, NameEmbedding, 0); !errors.Is(err, ErrContext) {
		t.Errorf("window 1: %v, want ErrContext", err)
	}
	mo, err := PairedMoments(ref, ref.Clone(), [][]int{{1, 3, 4, 5, 6, 7, 8}}, 6, NameEmbedding, 4)
	if err != nil {
		t.Fatal(err)
	}
	if mo.Count != 4 {
		t.Errorf("maxTokens 4 summed %d tokens", mo.Count)
	}
}

// TestStateLayers checks that a forward pass cut short observes the same
// inputs as a full one, up to where it stops.
func TestStateLayers(t *testing.T) {
	m := randomModel(t, tinyConfig, 43)
	w := []int{1, 5, 9, 2, 7}
	full, cut := recorder{}, recorder{}
	s := m.NewState()
	s.Observer = full
	if _, err := s.Forward(w); err != nil {
		t.Fatal(err)
	}
	s = m.NewState()
	s.Observer, s.Layers = cut, 1
	logits, err := s.Forward(w)
	if err != nil || logits != nil {
		t.Fatalf("cut pass: logits %v, error %v; want none", logits != nil, err)
	}
	if len(cut) != 4 {
		t.Errorf("cut pass observed %d inputs, want layer 0's 4", len(cut))
	}
	for name, rows := range cut {
		if l, ok := layerOf(name); !ok || l != 0 {
			t.Errorf("cut pass observed %s", name)
		}
		for i := range rows {
			if !slices.Equal(rows[i], full[name][i]) {
				t.Fatalf("%s differs from the full pass", name)
			}
		}
	}
}

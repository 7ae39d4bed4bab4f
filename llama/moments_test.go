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

// TestPairedStreams walks two models through every layer and checks the
// moments of every input against plain sums of what full forward passes'
// observers see: the layer-by-layer runs must compute the same inputs, to
// the bit, and the sums must be the same on one CPU and on three.
func TestPairedStreams(t *testing.T) {
	for _, tied := range []bool{true, false} {
		cfg := tinyConfig
		cfg.TiedEmbeddings = tied
		ref := randomModel(t, cfg, 41)
		m := perturbed(ref, 0.1)
		docs := [][]int{
			{1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
			{1, 2},
			{1, 15, 14, 13},
		}
		const window = 6
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
		plain := func(key string) (xx, rx []float64, rows int) {
			xs, ys := rr[key], rm[key]
			n := len(xs[0])
			xx, rx = make([]float64, n*n), make([]float64, n*n)
			for r := range xs {
				for i := range n {
					for j := range n {
						xx[i*n+j] += float64(ys[r][i]) * float64(ys[r][j])
						rx[i*n+j] += float64(xs[r][i]) * float64(ys[r][j])
					}
				}
			}
			return xx, rx, len(xs)
		}
		var keys [][]string
		for l := range cfg.NLayers {
			keys = append(keys, []string{LayerName(l, "attention.wq"), LayerName(l, "attention.wo"), LayerName(l, "feed_forward.w1"), LayerName(l, "feed_forward.w2")})
		}
		keys = append(keys, []string{m.classifierKey()})
		for _, procs := range []int{1, 3} {
			old := runtime.GOMAXPROCS(procs)
			ps, err := NewPairedStreams(ref, m, docs, window, 0)
			if err != nil {
				t.Fatal(err)
			}
			for l, layerKeys := range keys {
				if ps.Layer() != l {
					t.Fatalf("Layer() = %d, want %d", ps.Layer(), l)
				}
				for _, key := range layerKeys {
					mo, err := ps.Moments(key)
					if err != nil {
						t.Fatal(err)
					}
					xx, rx, rows := plain(key)
					if mo.Count != int64(rows) || !slices.Equal(mo.XX, xx) || !slices.Equal(mo.RX, rx) {
						t.Errorf("tied %v, %d procs, %s: moments differ from the plain sums", tied, procs, key)
					}
				}
				if l < cfg.NLayers {
					if _, err := ps.Moments(keys[l+1][0]); !errors.Is(err, ErrNotFound) {
						t.Errorf("an input of the next layer: %v, want ErrNotFound", err)
					}
					if err := ps.Advance(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := ps.Advance(); !errors.Is(err, ErrNotFound) {
				t.Errorf("Advance past the last layer: %v, want ErrNotFound", err)
			}
			runtime.GOMAXPROCS(old)
		}
		if xx, rx, _ := plain(LayerName(1, "attention.wo")); slices.Equal(xx, rx) {
			t.Error("perturbing the model did not change the cross moment: the test sees nothing")
		}
	}
}

func TestPairedStreamsErrors(t *testing.T) {
	ref := randomModel(t, tinyConfig, 42)
	docs := [][]int{{1, 3, 4, 5}}
	ps, err := NewPairedStreams(ref, ref.Clone(), docs, 6, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Moments("no.such.weight"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown key: %v, want ErrNotFound", err)
	}
	if _, err := NewPairedStreams(ref, ref.Clone(), nil, 6, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("no text: %v, want ErrNotFound", err)
	}
	if _, err := NewPairedStreams(ref, ref.Clone(), docs, 1, 0); !errors.Is(err, ErrContext) {
		t.Errorf("window 1: %v, want ErrContext", err)
	}
	if _, err := NewPairedStreams(ref, ref.Clone(), [][]int{{1, 99999}}, 6, 0); !errors.Is(err, ErrToken) {
		t.Errorf("token out of range: %v, want ErrToken", err)
	}
	other := tinyConfig
	other.NLayers++
	if _, err := NewPairedStreams(ref, randomModel(t, other, 1), docs, 6, 0); !errors.Is(err, ErrShape) {
		t.Errorf("models of different configurations: %v, want ErrShape", err)
	}
	ps, err = NewPairedStreams(ref, ref.Clone(), [][]int{{1, 3, 4, 5, 6, 7, 8}}, 6, 4)
	if err != nil {
		t.Fatal(err)
	}
	mo, err := ps.Moments(LayerName(0, "attention.wq"))
	if err != nil {
		t.Fatal(err)
	}
	if mo.Count != 4 {
		t.Errorf("maxTokens 4 summed %d tokens", mo.Count)
	}
}

package llama

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
)

// recorder keeps a copy of every observed input.
type recorder map[string][][]float32

func (r recorder) Observe(name string, x []float32, cols int) {
	for i := 0; i < len(x); i += cols {
		r[name] = append(r[name], slices.Clone(x[i:i+cols]))
	}
}

func TestCalibrate(t *testing.T) {
	m := randomModel(t, tinyConfig, 40)
	docs := [][]int{
		{1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
		{1, 2},
		{1, 15, 14, 13},
	}
	const window = 6
	rec := recorder{}
	s := m.NewState()
	s.Observer = rec
	tokens := 0
	for _, d := range docs {
		for _, w := range windows(d, window) {
			s.Reset()
			if _, err := s.Forward(w); err != nil {
				t.Fatal(err)
			}
			tokens += len(w)
		}
	}

	hs, err := Calibrate(context.Background(), m, docs, window, 0)
	if err != nil {
		t.Fatal(err)
	}
	var wantNames []string
	for _, n := range m.Names() {
		if k, ok := m.HessianKey(n); ok && !slices.Contains(wantNames, k) {
			wantNames = append(wantNames, k)
		}
	}
	slices.Sort(wantNames)
	if got := hs.Names(); !slices.Equal(got, wantNames) {
		t.Fatalf("Names() = %v, want %v", got, wantNames)
	}
	for _, name := range wantNames {
		h, ok := hs.Get(name)
		if !ok {
			t.Fatalf("no Hessian %s", name)
		}
		rows := rec[name]
		if h.Count != int64(tokens) || len(rows) != tokens {
			t.Errorf("%s: Count = %d, recorded %d rows, want %d", name, h.Count, len(rows), tokens)
		}
		n := len(rows[0])
		if h.N != n || len(h.Sum) != n*n {
			t.Fatalf("%s: N = %d, len(Sum) = %d, want %d", name, h.N, len(h.Sum), n)
		}
		for i := range n {
			for j := range n {
				var want float64
				for _, r := range rows {
					want += float64(r[i]) * float64(r[j])
				}
				if math.Abs(h.Sum[i*n+j]-want) > 1e-9*(1+math.Abs(want)) {
					t.Fatalf("%s: Sum[%d][%d] = %v, want %v", name, i, j, h.Sum[i*n+j], want)
				}
			}
		}
		mean := h.Mean()
		if math.Abs(mean[n+1]-h.Sum[n+1]/float64(tokens)) > 1e-12 {
			t.Errorf("%s: Mean()[1][1] = %v", name, mean[n+1])
		}
	}

	// The first layer's attention input is the normalized embedding.
	first := rec[LayerName(0, "attention.wq")][0]
	emb := m.emb[1*tinyConfig.Dim : 2*tinyConfig.Dim]
	var ss float64
	for _, v := range emb {
		ss += float64(v) * float64(v)
	}
	inv := 1 / math.Sqrt(ss/float64(len(emb))+float64(tinyConfig.NormEps))
	for i, v := range emb {
		want := float64(m.layers[0].attnNorm[i]) * float64(v) * inv
		if math.Abs(float64(first[i])-want) > 1e-5 {
			t.Fatalf("wq input[%d] = %v, want %v", i, first[i], want)
		}
	}
}

func TestCalibrateMaxTokens(t *testing.T) {
	m := randomModel(t, tinyConfig, 41)
	docs := [][]int{{1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {1, 3, 4, 5}}
	for _, max := range []int{1, 5, 7, 13, 1000} {
		hs, err := Calibrate(context.Background(), m, docs, 6, max)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := hs.Get(LayerName(1, "feed_forward.w2"))
		want := int64(min(max, 17)) // windows of 6, 1+6 and 4 tokens
		if h.Count != want {
			t.Errorf("maxTokens %d: Count = %d, want %d", max, h.Count, want)
		}
	}
	if _, err := Calibrate(context.Background(), m, docs, 1, 0); err == nil {
		t.Error("Calibrate with window 1 succeeded")
	}
}

// TestCalibrateCancel: a done context stops calibration between passes,
// with an error naming why, after as many passes as had run.
func TestCalibrateCancel(t *testing.T) {
	m := randomModel(t, tinyConfig, 41)
	docs := [][]int{{1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {1, 3, 4, 5}}
	ctx, cancel := context.WithCancel(context.Background())
	passes := 0
	_, err := CalibrateProgress(ctx, m, docs, 6, 0, func(done, total int) {
		passes++
		if passes == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want one wrapping context.Canceled", err)
	}
	if passes != 2 {
		t.Errorf("%d passes ran, want 2 (it stops at the next pass)", passes)
	}
}

func TestHessiansObserveErrors(t *testing.T) {
	hs := NewHessians()
	hs.Observe("a", []float32{1, 2, 3, 4}, 2)
	if err := hs.Err(); err != nil {
		t.Fatal(err)
	}
	hs.Observe("a", []float32{1, 2, 3}, 3) // width changed
	hs.Observe("b", []float32{1, 2, 3}, 2) // ragged
	hs.Observe("c", nil, 0)
	if hs.Err() == nil {
		t.Error("inconsistent Observe calls not reported")
	}
	h, _ := hs.Get("a")
	if h.Count != 2 || !slices.Equal(h.Sum, []float64{10, 14, 14, 20}) {
		t.Errorf("Hessian a = %+v, want count 2 and sum [10 14 14 20]", h)
	}
	if got := (&Hessian{N: 1, Sum: []float64{0}}).Mean(); got != nil {
		t.Errorf("Mean of empty Hessian = %v, want nil", got)
	}
}

func TestStoriesCalibrate(t *testing.T) {
	st := loadStories(t)
	hs, err := Calibrate(context.Background(), st.model, st.docs, 512, 600)
	if err != nil {
		t.Fatal(err)
	}
	names := hs.Names()
	if len(names) != 4*5+1 {
		t.Errorf("%d Hessians, want 21: %v", len(names), names)
	}
	for _, name := range names {
		h, _ := hs.Get(name)
		if h.Count != 600 {
			t.Errorf("%s: Count = %d, want 600", name, h.Count)
		}
		for i := range h.N {
			if !(h.Sum[i*h.N+i] > 0) {
				t.Errorf("%s: diagonal %d = %v, want positive", name, i, h.Sum[i*h.N+i])
			}
		}
	}
	if h, _ := hs.Get(LayerName(2, "feed_forward.w2")); h.N != 172 {
		t.Errorf("w2 input width = %d, want 172", h.N)
	}
}

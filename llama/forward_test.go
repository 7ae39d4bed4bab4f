package llama

import (
	"errors"
	"math"
	"testing"
)

func TestForwardMatchesReference(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"tiny-gqa-tied", tinyConfig},
		{"mha-untied", Config{Dim: 12, HiddenDim: 20, NLayers: 3, NHeads: 3, NKVHeads: 3, VocabSize: 10, SeqLen: 12, NormEps: 1e-5, RopeTheta: 10000}},
		{"gqa4-theta", Config{Dim: 16, HiddenDim: 24, NLayers: 1, NHeads: 4, NKVHeads: 1, VocabSize: 7, SeqLen: 9, NormEps: 1e-6, RopeTheta: 500000, TiedEmbeddings: true}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := randomModel(t, tt.cfg, uint64(10+i))
			seq := make([]int, tt.cfg.SeqLen)
			for j := range seq {
				seq[j] = (j*5 + 3) % tt.cfg.VocabSize
			}
			want := refForward(m, seq)
			logits, err := m.NewState().Forward(seq)
			if err != nil {
				t.Fatal(err)
			}
			v := tt.cfg.VocabSize
			for p := range seq {
				for j := range v {
					got := float64(logits[p*v+j])
					if math.Abs(got-want[p][j]) > 1e-4*(1+math.Abs(want[p][j])) {
						t.Fatalf("pos %d logit %d = %v, reference %v", p, j, got, want[p][j])
					}
				}
			}
		})
	}
}

// TestForwardChunking checks that the cache makes any split of a sequence
// into Forward calls equivalent to a single call, including positions past
// SeqLen, which use the extrapolated rotary angles.
func TestForwardChunking(t *testing.T) {
	m := randomModel(t, tinyConfig, 2)
	seq := make([]int, tinyConfig.SeqLen+5)
	for i := range seq {
		seq[i] = (i*7 + 1) % tinyConfig.VocabSize
	}
	whole, err := m.NewState().Forward(seq)
	if err != nil {
		t.Fatal(err)
	}
	whole = append([]float32(nil), whole...)
	want := refForward(m, seq)
	v := tinyConfig.VocabSize
	for _, split := range [][]int{{1}, {3, 1, 10}, {16, 5}, {20}} {
		s := m.NewState()
		var got []float32
		for start := 0; start < len(seq); {
			n := split[0]
			if len(split) > 1 {
				split = split[1:]
			}
			end := min(start+n, len(seq))
			l, err := s.Forward(seq[start:end])
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, l...)
			start = end
		}
		if s.Pos() != len(seq) {
			t.Errorf("Pos() = %d, want %d", s.Pos(), len(seq))
		}
		for i := range got {
			if math.Abs(float64(got[i]-whole[i])) > 1e-5 {
				t.Fatalf("split %v: logit %d = %v, single call %v", split, i, got[i], whole[i])
			}
			if r := want[i/v][i%v]; math.Abs(float64(got[i])-r) > 1e-4*(1+math.Abs(r)) {
				t.Fatalf("split %v: logit %d = %v, reference %v", split, i, got[i], r)
			}
		}
	}
}

func TestForwardReset(t *testing.T) {
	m := randomModel(t, tinyConfig, 3)
	s := m.NewState()
	a, _ := s.Forward([]int{1, 2, 3})
	a = append([]float32(nil), a...)
	s.Reset()
	if _, err := s.Forward([]int{4, 4, 4, 4, 4}); err != nil {
		t.Fatal(err)
	}
	s.Reset()
	b, _ := s.Forward([]int{1, 2, 3})
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("logit %d after Reset = %v, want %v", i, b[i], a[i])
		}
	}
}

func TestForwardBadToken(t *testing.T) {
	m := randomModel(t, tinyConfig, 4)
	for _, tok := range []int{-1, tinyConfig.VocabSize, 1 << 40} {
		s := m.NewState()
		if _, err := s.Forward([]int{1, tok}); !errors.Is(err, ErrToken) {
			t.Errorf("token %d: err = %v, want ErrToken", tok, err)
		}
		if s.Pos() != 0 {
			t.Errorf("token %d: Pos() = %d after error, want 0", tok, s.Pos())
		}
	}
	if l, err := m.NewState().Forward(nil); err != nil || l != nil {
		t.Errorf("Forward(nil) = %v, %v; want nil, nil", l, err)
	}
}

func TestMatmul(t *testing.T) {
	// Row counts around the 4-row blocking exercise both code paths.
	for rows := 1; rows <= 9; rows++ {
		const k, n = 7, 5
		x := make([]float32, rows*k)
		w := make([]float32, n*k)
		for i := range x {
			x[i] = float32(i%11) - 5
		}
		for i := range w {
			w[i] = float32(i%7) - 3
		}
		out := make([]float32, rows*n)
		matmul(out, x, w, rows, k, n)
		for r := range rows {
			for o := range n {
				var want float32 // small integers: exact in float32 in any order
				for i := range k {
					want += x[r*k+i] * w[o*k+i]
				}
				if out[r*n+o] != want {
					t.Fatalf("rows=%d out[%d][%d] = %v, want %v", rows, r, o, out[r*n+o], want)
				}
			}
		}
	}
}

func BenchmarkForwardWindow(b *testing.B) {
	st := loadStories(b)
	w := windows(st.docs[8], 512)[0]
	s := st.model.NewState()
	b.ResetTimer()
	for range b.N {
		s.Reset()
		if _, err := s.Forward(w); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(w))/b.Elapsed().Seconds(), "tokens/s")
}

func TestExpNeg(t *testing.T) {
	var worst float64
	for i := 0; i <= 2_000_000; i++ {
		x := -87 * float32(i) / 2_000_000
		got, want := float64(expNeg(x)), math.Exp(float64(x))
		if rel := math.Abs(got-want) / want; rel > worst {
			worst = rel
		}
	}
	if worst > 3e-7 {
		t.Errorf("expNeg worst relative error %.3g, want ≤ 3e-7", worst)
	}
	for _, x := range []float32{-87.5, -100, float32(math.Inf(-1))} {
		if got := expNeg(x); got != 0 {
			t.Errorf("expNeg(%v) = %v, want 0", x, got)
		}
	}
	if got := expNeg(0); got != 1 {
		t.Errorf("expNeg(0) = %v, want 1", got)
	}
}

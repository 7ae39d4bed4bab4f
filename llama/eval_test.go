package llama

import (
	"errors"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestWindows(t *testing.T) {
	seq := func(n int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = 100 + i
		}
		s[0] = 1
		return s
	}
	tests := []struct {
		name string
		doc  []int
		size int
		want [][]int
	}{
		{"empty", nil, 4, nil},
		{"bos-only", []int{1}, 4, nil},
		{"short", seq(3), 4, [][]int{{1, 101, 102}}},
		{"exact", seq(4), 4, [][]int{{1, 101, 102, 103}}},
		{"one-over", seq(5), 4, [][]int{{1, 101, 102, 103}, {1, 103, 104}}},
		{"three", seq(9), 4, [][]int{{1, 101, 102, 103}, {1, 103, 104, 105, 106}, {1, 106, 107, 108}}},
		{"pairs", seq(4), 2, [][]int{{1, 101}, {1, 101, 102}, {1, 102, 103}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := windows(tt.doc, tt.size)
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("windows(%v, %d) = %v, want %v", tt.doc, tt.size, got, tt.want)
			}
			// Every token after the first is a target at least once, and
			// only the first token of a later chunk twice.
			seen := map[int]int{}
			for _, w := range got {
				for _, tok := range w[1:] {
					seen[tok]++
				}
			}
			if len(tt.doc) > 1 {
				if len(seen) != len(tt.doc)-1 {
					t.Errorf("%d distinct targets, want %d", len(seen), len(tt.doc)-1)
				}
				if dup := len(tt.doc) - 1 + len(got) - 1; sum(seen) != dup {
					t.Errorf("%d targets, want %d", sum(seen), dup)
				}
			}
		})
	}
}

func sum(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestEvalNLLSmall checks EvalNLL against the reference forward pass on a
// random model, with documents that need several windows.
func TestEvalNLLSmall(t *testing.T) {
	m := randomModel(t, tinyConfig, 5)
	docs := [][]int{
		{1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 2, 3, 4, 5, 9, 9, 9},
		{1},
		{1, 7},
		{1, 5, 5, 5, 5, 5, 5},
	}
	const window = 8
	var want float64
	var tokens int
	for _, d := range docs {
		for _, w := range windows(d, window) {
			logits := refForward(m, w)
			for p := 0; p+1 < len(w); p++ {
				l := logits[p]
				maxv := slices.Max(l)
				var s float64
				for _, v := range l {
					s += math.Exp(v - maxv)
				}
				want += math.Log(s) + maxv - l[w[p+1]]
				tokens++
			}
		}
	}
	got, err := EvalNLL(m, docs, window)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tokens != tokens || math.Abs(got.TotalNLL-want) > 1e-4 {
		t.Errorf("EvalNLL = %+v, want %d tokens, total %v", got, tokens, want)
	}
	if math.Abs(got.Perplexity()-math.Exp(want/float64(tokens))) > 1e-6*got.Perplexity() {
		t.Errorf("Perplexity() = %v", got.Perplexity())
	}
	// The sum is taken in window order, so parallelism cannot change it.
	prev := runtime.GOMAXPROCS(1)
	one, err := EvalNLL(m, docs, window)
	runtime.GOMAXPROCS(prev)
	if err != nil || one != got {
		t.Errorf("EvalNLL with GOMAXPROCS=1 = %+v, %v; want %+v", one, err, got)
	}
}

func TestEvalNLLErrors(t *testing.T) {
	m := randomModel(t, tinyConfig, 6)
	for _, w := range []int{-1, 0, 1, tinyConfig.SeqLen + 1} {
		if _, err := EvalNLL(m, [][]int{{1, 2}}, w); !errors.Is(err, ErrContext) {
			t.Errorf("window %d: err = %v, want ErrContext", w, err)
		}
	}
	if _, err := EvalNLL(m, [][]int{{1, 2}, {1, 99}}, 4); !errors.Is(err, ErrToken) {
		t.Errorf("bad token: err = %v, want ErrToken", err)
	}
	r, err := EvalNLL(m, nil, 4)
	if err != nil || r.Tokens != 0 || !math.IsNaN(r.MeanNLL()) {
		t.Errorf("no docs: %+v, %v; want 0 tokens and NaN mean", r, err)
	}
}

func TestGreedy(t *testing.T) {
	m := randomModel(t, tinyConfig, 7)
	prompt := []int{3, 4}
	got, err := Greedy(m, prompt, 6)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got[:2], prompt) || len(got) > 8 {
		t.Fatalf("Greedy = %v", got)
	}
	// Each generated token is the argmax of the reference logits.
	ref := refForward(m, got)
	for p := 1; p+1 < len(got); p++ {
		best := 0
		for i, v := range ref[p] {
			if v > ref[p][best] {
				best = i
			}
		}
		if p+1 >= len(prompt) && got[p+1] != best {
			t.Errorf("token %d = %d, argmax %d", p+1, got[p+1], best)
		}
	}
	if last := got[len(got)-1]; len(got) < 8 && last != 1 {
		t.Errorf("stopped early at %d without BOS", last)
	}
	// Generation stops when the context is full.
	full, err := Greedy(m, make([]int, tinyConfig.SeqLen-1), 100)
	if err != nil || len(full) != tinyConfig.SeqLen+1 {
		t.Errorf("Greedy near context end: %d tokens, %v", len(full), err)
	}
	if _, err := Greedy(m, make([]int, tinyConfig.SeqLen+1), 3); !errors.Is(err, ErrContext) {
		t.Errorf("long prompt: err = %v, want ErrContext", err)
	}
	if _, err := Greedy(m, nil, 3); !errors.Is(err, ErrToken) {
		t.Errorf("empty prompt: err = %v, want ErrToken", err)
	}
}

// TestStoriesNLL reproduces the project's reference perplexity of the
// original stories260K weights on the TinyStories dev text.
func TestStoriesNLL(t *testing.T) {
	if raceEnabled {
		t.Skip("full evaluation is too slow under the race detector")
	}
	st := loadStories(t)
	r, err := EvalNLL(st.model, st.docs, 512)
	if err != nil {
		t.Fatal(err)
	}
	if r.Tokens != 6443 {
		t.Errorf("scored %d tokens, want 6443", r.Tokens)
	}
	if got := r.MeanNLL(); math.Abs(got-1.6961) > 0.0005 {
		t.Errorf("mean NLL = %.5f nats, want 1.6961 ± 0.0005", got)
	}
	t.Logf("stories260K dev: %d tokens, mean NLL %.5f, perplexity %.4f", r.Tokens, r.MeanNLL(), r.Perplexity())
}

func TestStoriesGenerate(t *testing.T) {
	st := loadStories(t)
	got, err := Generate(st.model, st.tok, "Once upon a time", 40)
	if err != nil {
		t.Fatal(err)
	}
	const want = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."
	if !strings.HasPrefix(got, want) {
		t.Errorf("Generate = %q, want prefix %q", got, want)
	}
}

func TestReadDocs(t *testing.T) {
	st := loadStories(t)
	docs, err := ReadDocs(strings.NewReader("  Once upon a time \r\n\n\t\r\nThe end.\n"), st.tok)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int{st.tok.Encode("Once upon a time", true, false), st.tok.Encode("The end.", true, false)}
	if !slices.EqualFunc(docs, want, slices.Equal) {
		t.Errorf("ReadDocs = %v, want %v", docs, want)
	}
	if docs[0][0] != 1 || slices.Contains(docs[1], 2) {
		t.Errorf("documents must start with BOS and carry no EOS: %v", docs)
	}
}

func BenchmarkStoriesEvalNLL(b *testing.B) {
	st := loadStories(b)
	for range b.N {
		if _, err := EvalNLL(st.model, st.docs, 512); err != nil {
			b.Fatal(err)
		}
	}
}

package llama

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSampleBatchMatchesSample checks that every sample of a batch is,
// token for token, the one Sample draws from the same stream: with stop
// tokens ending samples at different steps, at the context limit, greedy
// and with top-p.
func TestSampleBatchMatchesSample(t *testing.T) {
	m := randomModel(t, tinyConfig, 11)
	for _, tc := range []struct {
		name   string
		prompt []int
		n      int
		opt    SampleOptions
	}{
		{"temperature", []int{1}, 20, SampleOptions{Temperature: 1.3}},
		{"stops", []int{1, 5}, 30, SampleOptions{Temperature: 1.5, Stop: []int{2, 7, 9}}},
		{"context", []int{1, 2, 3}, 3 * tinyConfig.SeqLen, SampleOptions{Temperature: 1}},
		{"greedy", []int{4}, 15, SampleOptions{}},
		{"top-p", []int{1}, 25, SampleOptions{Temperature: 0.9, TopP: 0.7, Stop: []int{3}}},
		{"none", []int{1}, 0, SampleOptions{Temperature: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const count = 7
			srcs := make([]rand.Source, count)
			for i := range srcs {
				srcs[i] = SampleRNG(3, uint64(i))
			}
			got, err := SampleBatch(context.Background(), m, tc.prompt, tc.n, tc.opt, srcs)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != count {
				t.Fatalf("%d samples, want %d", len(got), count)
			}
			lengths := map[int]bool{}
			for i := range count {
				want, err := Sample(m, tc.prompt, tc.n, tc.opt, SampleRNG(3, uint64(i)))
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got[i], want) {
					t.Errorf("sample %d: batch %v, alone %v", i, got[i], want)
				}
				lengths[len(want)] = true
			}
			if tc.name == "stops" && len(lengths) < 2 {
				t.Errorf("stop tokens ended every sample at the same length %v: the test does not exercise finishing apart", lengths)
			}
		})
	}
}

func TestSampleBatchErrors(t *testing.T) {
	m := randomModel(t, tinyConfig, 12)
	one := []rand.Source{SampleRNG(1, 0)}
	ctx := context.Background()
	if _, err := SampleBatch(ctx, m, nil, 3, SampleOptions{}, one); !errors.Is(err, ErrToken) {
		t.Errorf("empty prompt: %v, want ErrToken", err)
	}
	if _, err := SampleBatch(ctx, m, make([]int, tinyConfig.SeqLen+1), 3, SampleOptions{}, one); !errors.Is(err, ErrContext) {
		t.Errorf("long prompt: %v, want ErrContext", err)
	}
	if _, err := SampleBatch(ctx, m, []int{1}, 3, SampleOptions{Temperature: -1}, one); err == nil {
		t.Error("negative temperature: no error")
	}
	if _, err := SampleBatch(ctx, m, []int{tinyConfig.VocabSize}, 3, SampleOptions{}, one); !errors.Is(err, ErrToken) {
		t.Errorf("token out of range: %v, want ErrToken", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := SampleBatch(cancelled, m, []int{1}, 3, SampleOptions{Temperature: 1}, one); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v, want context.Canceled", err)
	}
	if got, err := SampleBatch(ctx, m, []int{1}, 3, SampleOptions{}, nil); err != nil || got != nil {
		t.Errorf("no streams: %v, %v; want nothing", got, err)
	}
}

// TestGenerateDocs checks that the documents are the samples of the seed
// in order, without their stop tokens, cut to exactly the token budget.
func TestGenerateDocs(t *testing.T) {
	m := randomModel(t, tinyConfig, 13)
	opt := SampleOptions{Temperature: 1.2, Stop: []int{1, 2}}
	const maxLen = 10
	var want [][]int
	total := 0
	for i := 0; total < 200; i++ {
		s, err := Sample(m, []int{1}, maxLen, opt, SampleRNG(4, uint64(i)))
		if err != nil {
			t.Fatal(err)
		}
		if len(s) > 1 && slices.Contains(opt.Stop, s[len(s)-1]) {
			s = s[:len(s)-1]
		}
		want = append(want, s)
		total += len(s)
	}
	for _, budget := range []int{1, 37, 200} {
		got, err := GenerateDocs(context.Background(), m, []int{1}, maxLen, opt, 4, budget)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for i, d := range got {
			n += len(d)
			w := want[i]
			if i == len(got)-1 {
				w = w[:min(len(w), len(d))]
			}
			if !slices.Equal(d, w) {
				t.Errorf("budget %d: document %d = %v, want %v", budget, i, d, w)
			}
		}
		if n != budget {
			t.Errorf("budget %d: %d tokens", budget, n)
		}
	}
	if got, err := GenerateDocs(context.Background(), m, []int{1}, maxLen, opt, 4, 0); err != nil || got != nil {
		t.Errorf("no tokens: %v, %v", got, err)
	}
	if _, err := GenerateDocs(context.Background(), m, []int{1}, 0, opt, 4, 5); err == nil {
		t.Error("samples of 0 tokens: no error")
	}
}

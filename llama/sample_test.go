package llama

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSampleGreedy checks that temperature 0 is Greedy, token for token.
func TestSampleGreedy(t *testing.T) {
	m := randomModel(t, tinyConfig, 7)
	for _, prompt := range [][]int{{3, 4}, {1}, make([]int, tinyConfig.SeqLen-1)} {
		want, err := Greedy(m, prompt, 20)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Sample(m, prompt, 20, SampleOptions{Stop: []int{1}}, SampleRNG(1, 0))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Sample at temperature 0 = %v, Greedy %v", got, want)
		}
	}
}

// TestSampleDeterministic checks that a seed and sample index fix the
// tokens, and that other seeds or indices give other tokens.
func TestSampleDeterministic(t *testing.T) {
	m := randomModel(t, tinyConfig, 8)
	opt := SampleOptions{Temperature: 1.5}
	run := func(seed, index uint64) []int {
		out, err := Sample(m, []int{1}, 12, opt, SampleRNG(seed, index))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a := run(5, 0)
	if len(a) != 13 {
		t.Fatalf("no stop tokens: %d tokens, want 13", len(a))
	}
	if !slices.Equal(a, run(5, 0)) {
		t.Error("the same seed and index gave different tokens")
	}
	if slices.Equal(a, run(6, 0)) && slices.Equal(a, run(5, 1)) {
		t.Error("other seeds and indices all gave the same tokens")
	}
	stop := SampleOptions{Temperature: 1.5, Stop: []int{a[3]}}
	out, err := Sample(m, []int{1}, 12, stop, SampleRNG(5, 0))
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.Index(a[1:], a[3]) + 1; !slices.Equal(out, a[:i+1]) {
		t.Errorf("with stop token %d: %v, want %v", a[3], out, a[:i+1])
	}
}

// TestDrawDistribution checks the sampler's frequencies against
// softmax(logits/T) and that top-p never draws outside the nucleus.
func TestDrawDistribution(t *testing.T) {
	logits := []float32{2, 0.5, -1, 1, 0}
	const n = 200000
	for _, temp := range []float64{0.7, 1, 2} {
		src := rand.NewPCG(9, uint64(temp*10))
		probs := make([]float64, len(logits))
		counts := make([]int, len(logits))
		for range n {
			id, _ := draw(logits, SampleOptions{Temperature: temp}, probs, nil, src)
			counts[id]++
		}
		var z float64
		want := make([]float64, len(logits))
		for i, l := range logits {
			want[i] = math.Exp(float64(l) / temp)
			z += want[i]
		}
		for i := range want {
			p := want[i] / z
			got := float64(counts[i]) / n
			// Five standard deviations of a binomial frequency.
			if math.Abs(got-p) > 5*math.Sqrt(p*(1-p)/n) {
				t.Errorf("T=%v: token %d drawn %.4f of the time, want %.4f", temp, i, got, p)
			}
		}
	}
	// At T=1 the probabilities are about .52, .12, .03, .19, .07: top-p
	// 0.6 keeps tokens 0 and 3, in that proportion.
	src := rand.NewPCG(10, 0)
	probs := make([]float64, len(logits))
	counts := make([]int, len(logits))
	var order []int
	for range n {
		var id int
		id, order = draw(logits, SampleOptions{Temperature: 1, TopP: 0.6}, probs, order, src)
		counts[id]++
	}
	if counts[1]+counts[2]+counts[4] != 0 {
		t.Errorf("top-p 0.6 drew outside the nucleus {0, 3}: %v", counts)
	}
	if r, want := float64(counts[3])/float64(counts[0]), math.Exp(-1); math.Abs(r-want) > 0.02 {
		t.Errorf("top-p ratio of token 3 to 0 = %.4f, want %.4f", r, want)
	}
}

func TestSampleErrors(t *testing.T) {
	m := randomModel(t, tinyConfig, 7)
	for _, opt := range []SampleOptions{
		{Temperature: -1}, {Temperature: math.NaN()}, {Temperature: math.Inf(1)}, {TopP: -0.1}, {TopP: 1.5}, {TopP: math.NaN()},
	} {
		if _, err := Sample(m, []int{1}, 3, opt, SampleRNG(1, 0)); err == nil {
			t.Errorf("Sample with %+v: no error", opt)
		}
	}
	if _, err := Sample(m, nil, 3, SampleOptions{}, SampleRNG(1, 0)); err == nil {
		t.Error("empty prompt: no error")
	}
	if _, err := Sample(m, make([]int, tinyConfig.SeqLen+1), 3, SampleOptions{}, SampleRNG(1, 0)); err == nil {
		t.Error("prompt longer than the context: no error")
	}
}

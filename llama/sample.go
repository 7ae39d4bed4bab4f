package llama

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// SampleOptions configure Sample.
type SampleOptions struct {
	// Temperature divides the logits before the softmax; 0 picks the
	// most likely token (the lowest id on ties), as Greedy does.
	Temperature float64
	// TopP, when in (0, 1), keeps only the most likely tokens whose
	// probabilities sum to at least TopP (nucleus sampling); 0 or 1 keeps
	// all.
	TopP float64
	// Stop lists tokens that end a sample once produced (the produced
	// token is kept), such as the tokenizer's BOS, which llama2.c models
	// emit between stories, and its EOS.
	Stop []int
}

// Validate reports whether o describes a sampler.
func (o SampleOptions) Validate() error {
	if !(o.Temperature >= 0) || math.IsInf(o.Temperature, 0) {
		return fmt.Errorf("llama: temperature %v is not a finite number >= 0", o.Temperature)
	}
	if !(o.TopP >= 0 && o.TopP <= 1) {
		return fmt.Errorf("llama: top-p %v is outside [0, 1]", o.TopP)
	}
	return nil
}

// SampleRNG returns the random stream of sample number index for seed:
// math/rand/v2's PCG generator seeded with (seed, index). Each sample has
// its own stream, so sample i is the same whatever the number of samples
// drawn with it.
func SampleRNG(seed, index uint64) *rand.PCG { return rand.NewPCG(seed, index) }

// Sample extends prompt by up to n tokens drawn one at a time from the
// model's next-token distribution, and returns prompt followed by them. It
// stops early after a token of opt.Stop or when the context is full.
//
// With a positive temperature each token is drawn by inversion: a uniform
// u in [0, 1) made from the top 53 bits of one src.Uint64() (the raw PCG
// output, which math/rand/v2 keeps stable across releases, unlike its
// derived distributions) selects the first token, in id order (or in
// decreasing probability, lowest id first on ties, with top-p), at which
// the cumulative probability exceeds u times the total. The probabilities
// are softmax(logits / temperature) in float64, so the same model, prompt,
// options and stream give the same tokens on any machine where the
// forward pass gives the same logits.
func Sample(m *Model, prompt []int, n int, opt SampleOptions, src rand.Source) ([]int, error) {
	if err := checkSample(m, prompt, opt); err != nil {
		return nil, err
	}
	s := m.NewState()
	out := append([]int(nil), prompt...)
	logits, err := s.Forward(prompt)
	if err != nil {
		return nil, err
	}
	v := m.cfg.VocabSize
	last := logits[len(logits)-v:]
	probs := make([]float64, v)
	var order []int
	for range n {
		next := 0
		if opt.Temperature == 0 {
			for i, l := range last {
				if l > last[next] {
					next = i
				}
			}
		} else {
			next, order = draw(last, opt, probs, order, src)
		}
		out = append(out, next)
		if slices.Contains(opt.Stop, next) || s.Pos() >= m.cfg.SeqLen {
			break
		}
		if last, err = s.Forward(out[len(out)-1:]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkSample reports whether Sample and SampleBatch can run: valid
// options and a prompt of 1 to SeqLen tokens.
func checkSample(m *Model, prompt []int, opt SampleOptions) error {
	if err := opt.Validate(); err != nil {
		return err
	}
	if len(prompt) == 0 {
		return fmt.Errorf("%w: empty prompt", ErrToken)
	}
	if len(prompt) > m.cfg.SeqLen {
		return fmt.Errorf("%w: prompt of %d tokens, context %d", ErrContext, len(prompt), m.cfg.SeqLen)
	}
	return nil
}

// draw picks one token from logits as Sample describes, using probs and
// order as scratch.
func draw(logits []float32, opt SampleOptions, probs []float64, order []int, src rand.Source) (int, []int) {
	mx := math.Inf(-1)
	for _, l := range logits {
		mx = max(mx, float64(l))
	}
	total := 0.0
	for i, l := range logits {
		probs[i] = math.Exp((float64(l) - mx) / opt.Temperature)
		total += probs[i]
	}
	u := float64(src.Uint64()>>11) / (1 << 53)
	if opt.TopP > 0 && opt.TopP < 1 {
		order = order[:0]
		for i := range probs {
			order = append(order, i)
		}
		slices.SortFunc(order, func(a, b int) int {
			if c := cmp.Compare(probs[b], probs[a]); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		kept, cum := 0, 0.0
		for _, id := range order {
			cum += probs[id]
			kept++
			if cum >= opt.TopP*total {
				break
			}
		}
		order = order[:kept]
		target, acc := u*cum, 0.0
		for _, id := range order {
			acc += probs[id]
			if acc > target {
				return id, order
			}
		}
		return order[len(order)-1], order
	}
	target, acc := u*total, 0.0
	for i, p := range probs {
		acc += p
		if acc > target {
			return i, order
		}
	}
	// Rounding can leave target at the very top; the last token with any
	// probability is then the draw.
	for i := len(probs) - 1; i > 0; i-- {
		if probs[i] > 0 {
			return i, order
		}
	}
	return 0, order
}

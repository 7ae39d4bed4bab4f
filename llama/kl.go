package llama

import (
	"fmt"
	"math"
)

// KLResult is the outcome of EvalKL.
type KLResult struct {
	Tokens  int     // number of scored positions
	TotalKL float64 // sum of their divergences, in nats
}

// Mean returns the mean divergence per scored position in nats, or NaN if
// none was scored.
func (r KLResult) Mean() float64 {
	if r.Tokens == 0 {
		return math.NaN()
	}
	return r.TotalKL / float64(r.Tokens)
}

// EvalKL returns the sum and count, over every scored position of docs
// (cut into windows as EvalNLL does), of the Kullback–Leibler divergence
// KL(p_ref ‖ p_m) in nats between the next-token distributions of ref and
// m, which must share a configuration. It measures how far m has moved
// from ref much less noisily than a difference of two EvalNLL results:
// it is never negative, has no first-order term, and does not depend on
// how well either model predicts the text. Both models run on each window
// in turn, so no logits are kept beyond one window. Windows run
// concurrently; the result does not depend on the number of CPUs.
func EvalKL(ref, m *Model, docs [][]int, window int) (KLResult, error) {
	if ref.cfg != m.cfg {
		return KLResult{}, fmt.Errorf("%w: models of different configurations", ErrShape)
	}
	if err := checkWindow(m, window); err != nil {
		return KLResult{}, err
	}
	tokens, total, err := sumWindows(docs, window, func() func([]int) (float64, error) {
		sr, sm := ref.NewState(), m.NewState()
		return func(w []int) (float64, error) {
			sr.Reset()
			sm.Reset()
			return windowKL(sr, sm, w)
		}
	})
	return KLResult{Tokens: tokens, TotalKL: total}, err
}

// windowKL runs w through both states and returns the summed divergence
// of the predictions at every position but the last.
func windowKL(sr, sm *State, w []int) (float64, error) {
	lr, err := sr.Forward(w)
	if err != nil {
		return 0, err
	}
	lm, err := sm.Forward(w)
	if err != nil {
		return 0, err
	}
	v := sr.m.cfg.VocabSize
	var total float64
	for p := 0; p+1 < len(w); p++ {
		total += klLogits(lr[p*v:(p+1)*v], lm[p*v:(p+1)*v])
	}
	return total, nil
}

// klLogits returns KL(softmax(a) ‖ softmax(b)) in float64.
func klLogits(a, b []float32) float64 {
	za, ma := logSumExp(a)
	zb, mb := logSumExp(b)
	var kl float64
	for i := range a {
		la := float64(a[i]) - ma - za
		lb := float64(b[i]) - mb - zb
		kl += math.Exp(la) * (la - lb)
	}
	return max(kl, 0)
}

// logSumExp returns log Σ exp(x_i − m) and m = max x_i.
func logSumExp(x []float32) (float64, float64) {
	m := float64(x[0])
	for _, v := range x {
		m = max(m, float64(v))
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	return math.Log(s), m
}

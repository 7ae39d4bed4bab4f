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
// concurrently; the result does not depend on the number of CPUs. To
// measure many models against one reference, use a KLReference.
func EvalKL(ref, m *Model, docs [][]int, window int) (KLResult, error) {
	r, err := NewKLReference(ref, docs, window, 0)
	if err != nil {
		return KLResult{}, err
	}
	return r.EvalKL(m)
}

// A KLReference is a reference model and a text, against which
// KLReference.EvalKL measures models: it keeps the reference's
// predictions of as many windows as fit in the memory it was given, so
// that measuring a model runs only that model on them, and runs the
// reference again on the others. The results are EvalKL's, bit for bit,
// whatever it keeps.
type KLReference struct {
	ref    *Model
	docs   [][]int
	window int
	// preds holds the reference's predictions of the first windows, in
	// the order sumWindows numbers them.
	preds []*prediction
}

// NewKLReference returns the reference of ref on docs, cut into windows
// of window tokens, keeping the predictions of the first windows while
// they take at most maxBytes together (about 4 bytes per token and
// vocabulary entry; none with maxBytes 0).
func NewKLReference(ref *Model, docs [][]int, window int, maxBytes int64) (*KLReference, error) {
	if err := checkWindow(ref, window); err != nil {
		return nil, err
	}
	r := &KLReference{ref: ref, docs: docs, window: window}
	v := ref.cfg.VocabSize
	var keep [][]int
	for _, d := range docs {
		for _, w := range windows(d, window) {
			if maxBytes -= int64(len(w)) * (4*int64(v) + 24); maxBytes < 0 {
				break
			}
			keep = append(keep, w)
		}
	}
	r.preds = make([]*prediction, len(keep))
	_, _, err := sumJobs(keep, func() func(int, []int) (float64, error) {
		s := ref.NewState()
		return func(j int, w []int) (float64, error) {
			s.Reset()
			l, err := s.Forward(w)
			if err != nil {
				return 0, err
			}
			r.preds[j] = new(prediction)
			r.preds[j].set(l, len(w), v)
			return 0, nil
		}
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// EvalKL returns EvalKL(ref, m, docs, window) for the reference r holds.
func (r *KLReference) EvalKL(m *Model) (KLResult, error) {
	if r.ref.cfg != m.cfg {
		return KLResult{}, fmt.Errorf("%w: models of different configurations", ErrShape)
	}
	if err := checkWindow(m, r.window); err != nil {
		return KLResult{}, err
	}
	v := m.cfg.VocabSize
	tokens, total, err := sumWindows(r.docs, r.window, func() func(int, []int) (float64, error) {
		var (
			sr  *State
			own prediction
		)
		sm := m.NewState()
		return func(j int, w []int) (float64, error) {
			sm.Reset()
			lm, err := sm.Forward(w)
			if err != nil {
				return 0, err
			}
			pr := &own
			if j < len(r.preds) {
				pr = r.preds[j]
			} else {
				if sr == nil {
					sr = r.ref.NewState()
				}
				sr.Reset()
				lr, err := sr.Forward(w)
				if err != nil {
					return 0, err
				}
				own.set(lr, len(w), v)
			}
			return pr.windowKL(lm, len(w), v), nil
		}
	})
	return KLResult{Tokens: tokens, TotalKL: total}, err
}

// A prediction is the reference's next-token distributions over a
// window: the probabilities p̃ rounded to float32 and, per position, the
// sums the divergence from them needs. With A = Σ p̃_i a_i and S = Σ p̃_i
// (float64), KL(p ‖ softmax(b)) = (A − Σ p̃_i b_i)/S − log Z_a + log Z_b,
// which takes one exponential per logit of b; dividing by S keeps it
// exactly invariant to shifting b, whatever p̃ lost in rounding.
type prediction struct {
	p    []float32 // positions × vocabulary
	sums []predSums
}

type predSums struct{ a, s, logZ float64 }

// set makes pr the prediction of the logits l of n positions of a
// vocabulary of v, reusing its storage.
func (pr *prediction) set(l []float32, n, v int) {
	if cap(pr.p) < n*v {
		pr.p = make([]float32, n*v)
	}
	pr.p = pr.p[:n*v]
	pr.sums = pr.sums[:0]
	for q := range n {
		a, p := l[q*v:(q+1)*v], pr.p[q*v:(q+1)*v]
		lz, m := logSumExp(a)
		logZ := m + lz
		var sa, ss float64
		for i, x := range a {
			pi := float32(math.Exp(float64(x) - logZ))
			p[i] = pi
			sa += float64(pi) * float64(x)
			ss += float64(pi)
		}
		pr.sums = append(pr.sums, predSums{a: sa, s: ss, logZ: logZ})
	}
}

// windowKL returns the summed divergence of the logits lm (a window of n
// positions, vocabulary v) from pr at every position but the last.
func (pr *prediction) windowKL(lm []float32, n, v int) float64 {
	var total float64
	for q := 0; q+1 < n; q++ {
		b, p, ps := lm[q*v:(q+1)*v], pr.p[q*v:(q+1)*v], pr.sums[q]
		b = b[:len(p)]
		// log Z_b is summed as log Z_a was, so that identical logits give
		// exactly 0.
		lz, m := logSumExp(b)
		var t float64
		for i, x := range b {
			t += float64(p[i]) * float64(x)
		}
		total += max((ps.a-t)/ps.s+((m+lz)-ps.logZ), 0)
	}
	return total
}

// klLogits returns KL(softmax(a) ‖ softmax(b)) in float64. With p =
// softmax(a) and Z the partition functions it is
// Σ p_i (a_i − b_i) − log Z_a + log Z_b, so one pass with two
// exponentials per logit gives it: the probe calls it for every position
// of every probe, and the exponentials were most of its time.
func klLogits(a, b []float32) float64 {
	b = b[:len(a)]
	ma, mb := float64(a[0]), float64(b[0])
	for i, v := range a {
		ma, mb = max(ma, float64(v)), max(mb, float64(b[i]))
	}
	var sa, sb, t float64
	for i, v := range a {
		av, bv := float64(v), float64(b[i])
		ea := math.Exp(av - ma)
		sa += ea
		t += ea * (av - bv)
		sb += math.Exp(bv - mb)
	}
	return max(t/sa-(ma+math.Log(sa))+(mb+math.Log(sb)), 0)
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

package llama

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/nwcodec/nwc/internal/gemm"
)

// A Hessian is the accumulated second moment of one linear layer's input:
// the sum over tokens of x xᵀ, the Hessian of the layer's squared output
// error up to a factor of two, as used by GPTQ-style quantizers.
type Hessian struct {
	N     int       // input width
	Sum   []float64 // N×N row-major, symmetric: Σ x xᵀ over the tokens seen
	Count int64     // number of tokens seen
}

// Mean returns Sum/Count, the estimate of E[x xᵀ], as a new N×N row-major
// slice, or nil if no token was seen.
func (h *Hessian) Mean() []float64 {
	if h.Count == 0 {
		return nil
	}
	out := make([]float64, len(h.Sum))
	inv := 1 / float64(h.Count)
	for i, v := range h.Sum {
		out[i] = v * inv
	}
	return out
}

// Hessians accumulates a Hessian per layer input. It implements Observer
// and is safe for concurrent use.
type Hessians struct {
	mu  sync.Mutex
	m   map[string]*Hessian
	err error
}

// NewHessians returns an empty accumulator.
func NewHessians() *Hessians {
	return &Hessians{m: make(map[string]*Hessian)}
}

// Observe adds x xᵀ of every row of x, a row-major matrix of cols columns,
// to the Hessian called name. A call whose width disagrees with earlier
// calls for the same name, or whose length is not a multiple of cols, is
// dropped and reported by Err.
func (hs *Hessians) Observe(name string, x []float32, cols int) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if cols <= 0 || len(x)%cols != 0 {
		hs.fail(fmt.Errorf("llama: Hessian %s: %d values do not form rows of %d", name, len(x), cols))
		return
	}
	h := hs.m[name]
	if h == nil {
		h = &Hessian{N: cols, Sum: make([]float64, cols*cols)}
		hs.m[name] = h
	}
	if h.N != cols {
		hs.fail(fmt.Errorf("llama: Hessian %s: rows of %d values, earlier %d", name, cols, h.N))
		return
	}
	n := cols
	rows := len(x) / n
	xs := make([]float64, len(x))
	for i, v := range x {
		xs[i] = float64(v)
	}
	// A blocked multiplication on every core, whose summation order
	// depends only on the shapes; the upper triangle is mirrored below so
	// the sum stays exactly symmetric.
	if rows > 0 {
		gemm.DsyrkT(n, rows, 1, xs, n, h.Sum, n)
	}
	h.Count += int64(len(x) / n)
}

func (hs *Hessians) fail(err error) {
	if hs.err == nil {
		hs.err = err
	}
}

// Err returns the first inconsistency met by Observe, if any.
func (hs *Hessians) Err() error {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.err
}

// Names returns the names of the accumulated Hessians in sorted order.
func (hs *Hessians) Names() []string {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	names := make([]string, 0, len(hs.m))
	for k := range hs.m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// Get returns the Hessian called name. It is the accumulator's own value,
// which later Observe calls update.
func (hs *Hessians) Get(name string) (*Hessian, bool) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	h, ok := hs.m[name]
	return h, ok
}

// Calibrate runs docs through m as EvalNLL does and returns the Hessians of
// the inputs of all linear layers, keyed as Model.HessianKey describes.
// Every token of every pass counts, including the BOS that starts each
// window. If maxTokens > 0, calibration stops after that many tokens, the
// last pass cut short to fit. It stops between passes when ctx is done,
// returning an error that wraps context.Cause(ctx).
func Calibrate(ctx context.Context, m *Model, docs [][]int, window int, maxTokens int) (*Hessians, error) {
	return CalibrateProgress(ctx, m, docs, window, maxTokens, nil)
}

// CalibrateProgress is Calibrate calling progress, if not nil, after each
// pass with the tokens run so far and the number it will run in all.
func CalibrateProgress(ctx context.Context, m *Model, docs [][]int, window int, maxTokens int, progress func(done, total int)) (*Hessians, error) {
	if err := checkWindow(m, window); err != nil {
		return nil, err
	}
	total := 0
	for _, d := range docs {
		for _, w := range windows(d, window) {
			total += len(w)
		}
	}
	if maxTokens > 0 {
		total = min(total, maxTokens)
	}
	hs := NewHessians()
	s := m.NewState()
	s.Observer = hs
	left, done := maxTokens, 0
	for _, d := range docs {
		for _, w := range windows(d, window) {
			if maxTokens > 0 {
				if left == 0 {
					return hs, hs.Err()
				}
				w = w[:min(len(w), left)]
				left -= len(w)
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("llama: calibration stopped after %d tokens: %w", done, context.Cause(ctx))
			}
			s.Reset()
			if _, err := s.Forward(w); err != nil {
				return nil, err
			}
			done += len(w)
			if progress != nil {
				progress(done, total)
			}
		}
	}
	return hs, hs.Err()
}

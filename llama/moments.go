package llama

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// Moments are the second moments of one linear layer's input in two models
// run on the same tokens: a reference model, whose input at a position is
// x, and a compressed one, whose input there is x̃. They are what a
// quantizer needs to make the compressed layer reproduce the reference
// layer's output from the input it really gets (see PairedMoments).
type Moments struct {
	N     int
	XX    []float64 // N×N row-major: Σ x̃ x̃ᵀ
	RX    []float64 // N×N row-major: Σ x x̃ᵀ, row index from x
	Count int64     // number of tokens summed
}

// PairedMoments runs docs through ref and m as Calibrate does and sums the
// moments of the input recorded under key (Model.HessianKey) in both.
// maxTokens > 0 stops after that many tokens. Windows run concurrently, but
// every sum is taken in token order, so the result does not depend on the
// number of CPUs.
func PairedMoments(ref, m *Model, docs [][]int, window int, key string, maxTokens int) (*Moments, error) {
	if ref.cfg != m.cfg {
		return nil, fmt.Errorf("%w: models of different configurations", ErrShape)
	}
	if err := checkWindow(m, window); err != nil {
		return nil, err
	}
	var jobs [][]int
	left := maxTokens
	for _, d := range docs {
		for _, w := range windows(d, window) {
			if maxTokens > 0 {
				if left == 0 {
					break
				}
				w = w[:min(len(w), left)]
				left -= len(w)
			}
			jobs = append(jobs, w)
		}
	}
	if len(jobs) == 0 {
		return nil, fmt.Errorf("%w: no calibration tokens reached %q", ErrNotFound, key)
	}
	// Layers after the key's own need not run.
	layers := 0
	if l, ok := layerOf(key); ok {
		layers = l + 1
	}
	procs := min(runtime.GOMAXPROCS(0), len(jobs))
	type pair struct{ r, m capture }
	workers := make([]pair, procs)
	states := make([][2]*State, procs)
	for i := range workers {
		workers[i].r.key, workers[i].m.key = key, key
		sr, sm := ref.NewState(), m.NewState()
		sr.Observer, sm.Observer = &workers[i].r, &workers[i].m
		sr.Layers, sm.Layers = layers, layers
		states[i] = [2]*State{sr, sm}
	}
	var mo *Moments
	errs := make([]error, procs)
	// Run procs windows at a time, then add their moments in window order.
	for b := 0; b < len(jobs); b += procs {
		batch := jobs[b:min(b+procs, len(jobs))]
		var wg sync.WaitGroup
		for i, w := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := &workers[i]
				p.r.x, p.m.x = p.r.x[:0], p.m.x[:0]
				for _, s := range states[i] {
					s.Reset()
					if _, err := s.Forward(w); err != nil {
						errs[i] = err
						return
					}
				}
			}()
		}
		wg.Wait()
		for i := range batch {
			if errs[i] != nil {
				return nil, errs[i]
			}
			p := &workers[i]
			if p.r.cols == 0 || len(p.r.x) != len(p.m.x) {
				return nil, fmt.Errorf("%w: no input recorded as %q", ErrNotFound, key)
			}
			if mo == nil {
				n := p.r.cols
				mo = &Moments{N: n, XX: make([]float64, n*n), RX: make([]float64, n*n)}
			}
			mo.add(p.r.x, p.m.x, procs)
		}
	}
	return mo, nil
}

// add sums the moments of the rows of x (reference) and y (compressed),
// splitting the output rows over procs goroutines; each entry is summed
// in token order whatever procs is.
func (mo *Moments) add(x, y []float32, procs int) {
	n := mo.N
	rows := len(x) / n
	xs, ys := make([]float64, len(x)), make([]float64, len(y))
	for i, v := range x {
		xs[i] = float64(v)
	}
	for i, v := range y {
		ys[i] = float64(v)
	}
	var wg sync.WaitGroup
	per := (n + procs - 1) / procs
	for lo := 0; lo < n; lo += per {
		hi := min(lo+per, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rows {
				xr, yr := xs[r*n:(r+1)*n], ys[r*n:(r+1)*n]
				for i := lo; i < hi; i++ {
					xx, rx := mo.XX[i*n:(i+1)*n], mo.RX[i*n:(i+1)*n]
					a, b := yr[i], xr[i]
					for j, v := range yr {
						xx[j] += a * v
						rx[j] += b * v
					}
				}
			}
		}()
	}
	wg.Wait()
	mo.Count += int64(rows)
}

// capture keeps a copy of the input recorded under one key.
type capture struct {
	key  string
	cols int
	x    []float32
}

func (c *capture) Observe(name string, x []float32, cols int) {
	if name == c.key {
		c.cols = cols
		c.x = append(c.x, x...)
	}
}

// layerOf returns the layer index of a per-layer tensor name (LayerName).
func layerOf(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "layers.")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, false
	}
	l, err := strconv.Atoi(num)
	return l, err == nil && l >= 0
}

package llama

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Moments are the second moments of one linear layer's input in two models
// run on the same tokens: a reference model, whose input at a position is
// x, and a compressed one, whose input there is x̃. They are what a
// quantizer needs to make the compressed layer reproduce the reference
// layer's output from the input it really gets (see PairedStreams).
type Moments struct {
	N     int       // input width
	XX    []float64 // N×N row-major: Σ x̃ x̃ᵀ
	RX    []float64 // N×N row-major: Σ x x̃ᵀ, row index from x
	Count int64     // number of tokens summed
}

// PairedStreams runs calibration text through a reference model and a
// model being compressed, layer by layer: it keeps every window's residual
// stream in both, entering the current layer, so the moments of a layer's
// inputs cost one pass of that layer rather than of every layer before
// it. The compressed model's weights may change between calls; each call
// uses them as they are then. Windows run concurrently, but every sum is
// taken in token order, so results do not depend on the number of CPUs.
type PairedStreams struct {
	ref, m *Model
	jobs   [][]int
	xr, xm [][]float32 // per window: the residual streams entering layer
	layer  int
	procs  int
	states [][2]*State // per worker: ref's and m's
}

// NewPairedStreams embeds the windows of docs (cut as Calibrate cuts them,
// stopping after maxTokens tokens if maxTokens > 0) in ref and m, which
// must share a configuration, ready for layer 0.
func NewPairedStreams(ref, m *Model, docs [][]int, window, maxTokens int) (*PairedStreams, error) {
	if ref.cfg != m.cfg {
		return nil, fmt.Errorf("%w: models of different configurations", ErrShape)
	}
	if err := checkWindow(m, window); err != nil {
		return nil, err
	}
	p := &PairedStreams{ref: ref, m: m}
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
			p.jobs = append(p.jobs, w)
		}
	}
	if len(p.jobs) == 0 {
		return nil, fmt.Errorf("%w: no calibration tokens", ErrNotFound)
	}
	dim, vocab := m.cfg.Dim, m.cfg.VocabSize
	p.xr, p.xm = make([][]float32, len(p.jobs)), make([][]float32, len(p.jobs))
	for j, w := range p.jobs {
		xr, xm := make([]float32, len(w)*dim), make([]float32, len(w)*dim)
		for i, t := range w {
			if t < 0 || t >= vocab {
				return nil, fmt.Errorf("%w: token %d, vocabulary %d", ErrToken, t, vocab)
			}
			copy(xr[i*dim:(i+1)*dim], ref.emb[t*dim:(t+1)*dim])
			copy(xm[i*dim:(i+1)*dim], m.emb[t*dim:(t+1)*dim])
		}
		p.xr[j], p.xm[j] = xr, xm
	}
	p.procs = min(runtime.GOMAXPROCS(0), len(p.jobs))
	p.states = make([][2]*State, p.procs)
	for i := range p.states {
		p.states[i] = [2]*State{ref.NewState(), m.NewState()}
	}
	return p, nil
}

// Layer returns the layer the streams enter; Config().NLayers once every
// layer has run, when the classifier's input is next.
func (p *PairedStreams) Layer() int { return p.layer }

// Moments sums the moments of the input recorded under key
// (Model.HessianKey) in both models: key must name an input of the
// current layer, or the classifier's once every layer has run. The
// streams do not move.
func (p *PairedStreams) Moments(key string) (*Moments, error) {
	n := p.m.cfg.NLayers
	l, ok := layerOf(key)
	inLayer := ok && l == p.layer && l < n
	if !inLayer && !(p.layer == n && key == p.m.classifierKey()) {
		return nil, fmt.Errorf("%w: %q is not an input of layer %d", ErrNotFound, key, p.layer)
	}
	type pair struct{ r, m capture }
	caps := make([]pair, p.procs)
	var mo *Moments
	dim := p.m.cfg.Dim
	for b := 0; b < len(p.jobs); b += p.procs {
		batch := p.jobs[b:min(b+p.procs, len(p.jobs))]
		p.parallel(len(batch), func(i int) {
			c := &caps[i]
			c.r.key, c.m.key = key, key
			c.r.x, c.m.x = c.r.x[:0], c.m.x[:0]
			for k, st := range p.states[i] {
				x, cp := p.xr[b+i], &c.r
				if k == 1 {
					x, cp = p.xm[b+i], &c.m
				}
				if p.layer == n {
					cp.cols = dim
					cp.x = append(cp.x, x...)
					rmsnormRows(cp.x, cp.x, st.m.norm, st.m.cfg.NormEps)
					continue
				}
				st.Observer = cp
				st.runLayer(p.layer, slices.Clone(x))
				st.Observer = nil
			}
		})
		for i := range batch {
			c := &caps[i]
			if c.r.cols == 0 || len(c.r.x) != len(c.m.x) {
				return nil, fmt.Errorf("%w: no input recorded as %q", ErrNotFound, key)
			}
			if mo == nil {
				mo = &Moments{N: c.r.cols, XX: make([]float64, c.r.cols*c.r.cols), RX: make([]float64, c.r.cols*c.r.cols)}
			}
			mo.add(c.r.x, c.m.x, p.procs)
		}
	}
	return mo, nil
}

// Advance runs the current layer of both models on the streams, with the
// weights they have now, and moves to the next layer.
func (p *PairedStreams) Advance() error {
	if p.layer >= p.m.cfg.NLayers {
		return fmt.Errorf("%w: every layer has run", ErrNotFound)
	}
	for b := 0; b < len(p.jobs); b += p.procs {
		p.parallel(min(p.procs, len(p.jobs)-b), func(i int) {
			p.states[i][0].runLayer(p.layer, p.xr[b+i])
			p.states[i][1].runLayer(p.layer, p.xm[b+i])
		})
	}
	p.layer++
	return nil
}

// parallel runs f(0) … f(n−1) on their own goroutines; f(i) uses worker
// i's states.
func (p *PairedStreams) parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i)
		}()
	}
	wg.Wait()
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

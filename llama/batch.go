package llama

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
)

// batchKVBytes bounds the key/value caches SampleBatch holds at once; the
// number of sequences it runs together follows from one sequence's cache.
const batchKVBytes = 256 << 20

// maxBatch caps the sequences run together: beyond a few dozen rows the
// products no longer gain from more.
const maxBatch = 64

// BatchSize returns how many sequences SampleBatch runs together for m:
// as many as fit batchKVBytes of key/value cache at full context, at most
// 64 and at least 1.
func BatchSize(m *Model) int {
	c := m.cfg
	perSeq := 2 * 4 * c.NLayers * c.KVDim() * max(c.SeqLen, 1)
	return max(1, min(maxBatch, batchKVBytes/max(perSeq, 1)))
}

// SampleBatch draws one sample per random stream in srcs, sample i being
// exactly what Sample(m, prompt, n, opt, srcs[i]) returns, token for
// token. The samples advance together: each step feeds one token of every
// unfinished sample through the model at once, so the linear layers
// multiply matrices instead of vectors (a row of the products does not
// depend on the others, see gemm.MulT). The key/value caches of all
// samples are held at once (BatchSize gives a count that keeps them within
// 256 MiB). The context is checked between steps.
func SampleBatch(ctx context.Context, m *Model, prompt []int, n int, opt SampleOptions, srcs []rand.Source) ([][]int, error) {
	if err := checkSample(m, prompt, opt); err != nil {
		return nil, err
	}
	if len(srcs) == 0 {
		return nil, nil
	}
	// Every sample starts from the same prompt: run it once and give each
	// sample a copy of the cache.
	first := m.NewState()
	logits, err := first.Forward(prompt)
	if err != nil {
		return nil, err
	}
	v := m.cfg.VocabSize
	last := slices.Clone(logits[len(logits)-v:])
	b := &batch{m: m, scratch: m.NewState()}
	outs := make([][]int, len(srcs))
	states := make([]*State, len(srcs))
	for i := range srcs {
		outs[i] = slices.Clone(prompt)
		s := first
		if i > 0 {
			s = first.clone()
		}
		states[i] = s
	}
	probs := make([]float64, v)
	var order []int
	active := make([]int, len(srcs)) // indices of unfinished samples
	for i := range active {
		active[i] = i
	}
	// rows[j] holds the logits active[j] draws from.
	rows := make([][]float32, len(srcs))
	for i := range rows {
		rows[i] = last
	}
	tokens := make([]int, 0, len(srcs))
	for step := 0; step < n && len(active) > 0; step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		next := active[:0]
		tokens = tokens[:0]
		var fed []*State
		for j, i := range active {
			var t int
			if opt.Temperature == 0 {
				t = argmax(rows[j])
			} else {
				t, order = draw(rows[j], opt, probs, order, srcs[i])
			}
			outs[i] = append(outs[i], t)
			s := states[i]
			if slices.Contains(opt.Stop, t) || s.Pos() >= m.cfg.SeqLen || step == n-1 {
				states[i] = nil // its cache can go
				continue
			}
			next = append(next, i)
			tokens = append(tokens, t)
			fed = append(fed, s)
		}
		active = next
		if len(active) == 0 {
			break
		}
		logits := b.forward(fed, tokens)
		for j := range active {
			rows[j] = logits[j*v : (j+1)*v]
		}
	}
	return outs, nil
}

// argmax returns the index of the largest logit, the lowest on ties.
func argmax(l []float32) int {
	best := 0
	for i, x := range l {
		if x > l[best] {
			best = i
		}
	}
	return best
}

// clone returns a state with a copy of s's cache and position.
func (s *State) clone() *State {
	c := s.m.NewState()
	c.pos = s.pos
	for l := range s.key {
		c.key[l] = slices.Clone(s.key[l])
		c.val[l] = slices.Clone(s.val[l])
	}
	return c
}

// A batch runs one token of each of several sequences through a model at
// once, in scratch's buffers.
type batch struct {
	m       *Model
	scratch *State
}

// forward feeds tokens[i] to states[i] for every i and returns the logits,
// one row per sequence, valid until the next call. Each row is what
// states[i].Forward(tokens[i:i+1]) would return.
func (b *batch) forward(states []*State, tokens []int) []float32 {
	m, c := b.m, b.m.cfg
	n, dim := len(tokens), c.Dim
	sc := b.scratch
	sc.grow(n)
	x := m.embed(sc.x[:n*dim], tokens)
	for l := range m.layers {
		b.layer(states, l, x)
	}
	logits := sc.classify(x, n)
	for _, s := range states {
		s.pos++
	}
	return logits
}

// layer is State.layerWith for one token of each sequence: the products
// run on all rows together, rotary embedding, cache and attention per
// sequence (over the cores, each in its own state's scratch).
func (b *batch) layer(states []*State, l int, x []float32) {
	sc, c, w := b.scratch, b.m.cfg, &b.m.layers[l]
	n := len(states)
	dim, kvDim, hidden := c.Dim, c.KVDim(), c.HiddenDim
	xb := sc.xb[:n*dim]
	rmsnormRows(xb, x, w.attnNorm, c.NormEps)
	q, k, v := sc.q[:n*dim], sc.k[:n*kvDim], sc.v[:n*kvDim]
	matmul(q, xb, w.wq, n, dim, dim)
	matmul(k, xb, w.wk, n, dim, kvDim)
	matmul(v, xb, w.wv, n, dim, kvDim)
	att := sc.att[:n*dim]
	parallelRows(n, func(i int) {
		s := states[i]
		qi, ki, vi := q[i*dim:(i+1)*dim], k[i*kvDim:(i+1)*kvDim], v[i*kvDim:(i+1)*kvDim]
		s.rope(qi, 1, dim)
		s.rope(ki, 1, kvDim)
		s.key[l] = append(s.key[l][:s.pos*kvDim], ki...)
		s.val[l] = append(s.val[l][:s.pos*kvDim], vi...)
		s.attention(att[i*dim:(i+1)*dim], qi, l, 1)
	})
	matmul(xb, att, w.wo, n, dim, dim)
	add(x, xb)

	rmsnormRows(xb, x, w.ffnNorm, c.NormEps)
	hb, hb2 := sc.hb[:n*hidden], sc.hb2[:n*hidden]
	matmul(hb, xb, w.w1, n, dim, hidden)
	matmul(hb2, xb, w.w3, n, dim, hidden)
	for i, a := range hb {
		hb[i] = a * sigmoid(a) * hb2[i]
	}
	matmul(xb, hb, w.w2, n, hidden, dim)
	add(x, xb)
}

// parallelRows calls f(i) for every i in [0, n) on up to GOMAXPROCS
// goroutines; f must touch only what row i owns.
func parallelRows(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				f(i)
			}
		}()
	}
	wg.Wait()
}

// GenerateDocs draws samples 0, 1, 2, ... of seed (sample i from stream
// SampleRNG(seed, i), as Sample would draw it from prompt) until they hold
// at least tokens tokens, and returns them as documents: each sample
// without a final stop token, the last one cut so that the documents hold
// exactly tokens tokens. The result depends only on the model, prompt,
// maxLen, options, seed and tokens. It is a data-free source of
// calibration text: the model's own stories at temperature 1 are
// in-domain, and other seeds give text disjoint from it.
func GenerateDocs(ctx context.Context, m *Model, prompt []int, maxLen int, opt SampleOptions, seed uint64, tokens int) ([][]int, error) {
	if tokens <= 0 {
		return nil, nil
	}
	if maxLen < 1 {
		return nil, fmt.Errorf("llama: samples of at most %d tokens generate nothing", maxLen)
	}
	var docs [][]int
	have := 0
	bs := BatchSize(m)
	for next := 0; have < tokens; {
		srcs := make([]rand.Source, bs)
		for i := range srcs {
			srcs[i] = SampleRNG(seed, uint64(next+i))
		}
		next += bs
		outs, err := SampleBatch(ctx, m, prompt, maxLen, opt, srcs)
		if err != nil {
			return nil, err
		}
		for _, d := range outs {
			if len(d) > len(prompt) && slices.Contains(opt.Stop, d[len(d)-1]) {
				d = d[:len(d)-1]
			}
			if have+len(d) >= tokens {
				return append(docs, d[:tokens-have]), nil
			}
			docs = append(docs, d)
			have += len(d)
		}
	}
	return docs, nil
}

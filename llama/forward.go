package llama

import (
	"errors"
	"fmt"
	"math"

	"github.com/nwcodec/nwc/internal/gemm"
)

// ErrToken reports a token id outside the model's vocabulary.
var ErrToken = errors.New("llama: token id out of range")

// An Observer sees the input of every linear layer during a forward pass,
// for calibration. Observe is called with the name returned by
// Model.HessianKey for the layer and the input activations, a row-major
// matrix of cols columns with one row per token. x is only valid during the
// call.
type Observer interface {
	Observe(name string, x []float32, cols int)
}

// A State is the key/value cache of one sequence being run through a
// model. The cache grows as tokens arrive, so a State accepts sequences
// longer than the model's SeqLen; positions past it use the same rotary
// formula, extrapolating beyond the trained context. A State must not be
// used concurrently, but distinct States of a model may run concurrently.
type State struct {
	m   *Model
	pos int
	key [][]float32 // per layer, [pos][KVDim]
	val [][]float32

	// Observer, if set, sees the inputs of the linear layers.
	Observer Observer

	// Scratch, grown to the largest chunk seen.
	x, xb, q, k, v, att, hb, hb2, logits, scores []float32
	kg, vg                                       []float32 // one key/value head's cache, transposed

	// Rotary cosines and sines, [position][HeadDim/2], computed as
	// positions are first reached so memory follows the input.
	ropeCos, ropeSin []float32
}

// NewState returns an empty state for running sequences through m.
func (m *Model) NewState() *State {
	return &State{
		m:   m,
		key: make([][]float32, m.cfg.NLayers),
		val: make([][]float32, m.cfg.NLayers),
	}
}

// Pos returns the number of tokens processed since the last Reset.
func (s *State) Pos() int { return s.pos }

// Reset empties the cache, starting a new sequence.
func (s *State) Reset() { s.pos = 0 }

// Forward runs tokens through the model as the continuation of the
// sequence so far and returns the logits after each of them, a row-major
// len(tokens)×VocabSize matrix that is valid until the next call. Within
// the chunk each token attends to the earlier ones, so feeding a sequence
// in one call or token by token gives the same logits.
func (s *State) Forward(tokens []int) ([]float32, error) {
	c := s.m.cfg
	for i, t := range tokens {
		if t < 0 || t >= c.VocabSize {
			return nil, fmt.Errorf("%w: token %d at index %d, vocabulary %d", ErrToken, t, i, c.VocabSize)
		}
	}
	n := len(tokens)
	if n == 0 {
		return nil, nil
	}
	s.grow(n)
	m := s.m
	dim := c.Dim
	x := m.embed(s.x[:n*dim], tokens)
	for l := range m.layers {
		s.layer(l, x, n)
	}
	logits := s.classify(x, n)
	s.pos += n
	return logits, nil
}

// embed writes the embedding rows of tokens to x and returns it.
func (m *Model) embed(x []float32, tokens []int) []float32 {
	dim := m.cfg.Dim
	for i, t := range tokens {
		copy(x[i*dim:(i+1)*dim], m.emb[t*dim:(t+1)*dim])
	}
	return x
}

// layer runs layer l on the residual stream x of n tokens at positions
// s.pos onwards, in place, appending their keys and values to the cache.
func (s *State) layer(l int, x []float32, n int) {
	s.layerWith(l, l, &s.m.layers[l], x, n)
}

// layerWith runs the weights w as layer l (the name its inputs are
// observed under), keeping its keys and values in cache slot slot.
func (s *State) layerWith(l, slot int, w *layer, x []float32, n int) {
	c := s.m.cfg
	dim, kvDim, hidden := c.Dim, c.KVDim(), c.HiddenDim
	xb := s.xb[:n*dim]
	rmsnormRows(xb, x, w.attnNorm, c.NormEps)
	s.observeLayer(l, "attention.wq", xb, dim)
	q, k, v := s.q[:n*dim], s.k[:n*kvDim], s.v[:n*kvDim]
	matmul(q, xb, w.wq, n, dim, dim)
	matmul(k, xb, w.wk, n, dim, kvDim)
	matmul(v, xb, w.wv, n, dim, kvDim)
	s.rope(q, n, dim)
	s.rope(k, n, kvDim)
	s.key[slot] = append(s.key[slot][:s.pos*kvDim], k...)
	s.val[slot] = append(s.val[slot][:s.pos*kvDim], v...)

	att := s.att[:n*dim]
	s.attention(att, q, slot, n)
	s.observeLayer(l, "attention.wo", att, dim)
	matmul(xb, att, w.wo, n, dim, dim)
	add(x, xb)

	rmsnormRows(xb, x, w.ffnNorm, c.NormEps)
	s.observeLayer(l, "feed_forward.w1", xb, dim)
	hb, hb2 := s.hb[:n*hidden], s.hb2[:n*hidden]
	matmul(hb, xb, w.w1, n, dim, hidden)
	matmul(hb2, xb, w.w3, n, dim, hidden)
	for i, a := range hb {
		hb[i] = a * sigmoid(a) * hb2[i]
	}
	s.observeLayer(l, "feed_forward.w2", hb, hidden)
	matmul(xb, hb, w.w2, n, hidden, dim)
	add(x, xb)
}

// runLayer runs layer l on the residual stream x of one window, from
// an empty cache, in place.
func (s *State) runLayer(l int, x []float32) {
	n := len(x) / s.m.cfg.Dim
	s.Reset()
	s.grow(n)
	s.layer(l, x, n)
}

// classifierKey is the name the classifier's input is observed under.
func (m *Model) classifierKey() string {
	if m.cfg.TiedEmbeddings {
		return NameEmbedding
	}
	return NameOutput
}

// classify normalizes the final residual stream x of n tokens in place and
// returns the logits, valid until the next call.
func (s *State) classify(x []float32, n int) []float32 {
	c, m := s.m.cfg, s.m
	rmsnormRows(x, x, m.norm, c.NormEps)
	s.observe(m.classifierKey(), x, c.Dim)
	logits := s.logits[:n*c.VocabSize]
	matmul(logits, x, m.cls, n, c.Dim, c.VocabSize)
	return logits
}

func (s *State) observe(name string, x []float32, cols int) {
	if s.Observer != nil {
		s.Observer.Observe(name, x, cols)
	}
}

// observeLayer is observe for a per-layer input, naming it only when
// there is an observer, to keep unobserved passes free of allocations.
func (s *State) observeLayer(l int, suffix string, x []float32, cols int) {
	if s.Observer != nil {
		s.Observer.Observe(LayerName(l, suffix), x, cols)
	}
}

// grow sizes the scratch buffers for chunks of n tokens.
func (s *State) grow(n int) {
	if len(s.x) >= n*s.m.cfg.Dim {
		return
	}
	c := s.m.cfg
	s.x = make([]float32, n*c.Dim)
	s.xb = make([]float32, n*c.Dim)
	s.q = make([]float32, n*c.Dim)
	s.k = make([]float32, n*c.KVDim())
	s.v = make([]float32, n*c.KVDim())
	s.att = make([]float32, n*c.Dim)
	s.hb = make([]float32, n*c.HiddenDim)
	s.hb2 = make([]float32, n*c.HiddenDim)
	s.logits = make([]float32, n*c.VocabSize)
}

// rope rotates each (even, odd) pair of every head of the n rows of x, of
// width cols, by its position's angle, as run.c does.
func (s *State) rope(x []float32, n, cols int) {
	half := s.m.cfg.HeadDim() / 2
	for t := range n {
		cos, sin := s.ropeRow(s.pos + t)
		row := x[t*cols : (t+1)*cols]
		for i := 0; i < cols; i += 2 {
			j := (i % (2 * half)) / 2
			fcr, fci := cos[j], sin[j]
			v0, v1 := row[i], row[i+1]
			row[i] = v0*fcr - v1*fci
			row[i+1] = v0*fci + v1*fcr
		}
	}
}

// ropeRow returns the rotary cosines and sines of position p, extending
// the tables to it if needed.
func (s *State) ropeRow(p int) (cos, sin []float32) {
	half := s.m.cfg.HeadDim() / 2
	for q := len(s.ropeCos) / half; q <= p; q++ {
		s.ropeCos = append(s.ropeCos, make([]float32, half)...)
		s.ropeSin = append(s.ropeSin, make([]float32, half)...)
		ropeFill(s.ropeCos[q*half:], s.ropeSin[q*half:], q, s.m.cfg)
	}
	return s.ropeCos[p*half : (p+1)*half], s.ropeSin[p*half : (p+1)*half]
}

// attention computes causal grouped-query attention of the n query rows q
// against layer l's cache, writing the concatenated head outputs to out.
// The keys and values of one key/value head are first gathered transposed,
// one contiguous row per head dimension, so that scores and outputs are
// long independent multiply-adds over positions rather than short
// latency-bound dot products.
func (s *State) attention(out, q []float32, l, n int) {
	c := s.m.cfg
	hd, kvDim := c.HeadDim(), c.KVDim()
	kvMul := c.NHeads / c.NKVHeads
	scale := float32(1 / math.Sqrt(float64(hd)))
	total := s.pos + n
	if cap(s.scores) < total {
		s.scores = make([]float32, total)
		s.kg = make([]float32, total*hd)
		s.vg = make([]float32, total*hd)
	}
	kT, vT := s.kg[:total*hd], s.vg[:total*hd]
	keys, vals := s.key[l], s.val[l]
	for g := range c.NKVHeads {
		for p := range total {
			kp := keys[p*kvDim+g*hd : p*kvDim+(g+1)*hd]
			vp := vals[p*kvDim+g*hd : p*kvDim+(g+1)*hd]
			for i := range hd {
				kT[i*total+p] = kp[i]
				vT[i*total+p] = vp[i]
			}
		}
		for h := g * kvMul; h < (g+1)*kvMul; h++ {
			for t := range n {
				end := s.pos + t + 1
				scores := s.scores[:end]
				clear(scores)
				qh := q[t*c.Dim+h*hd : t*c.Dim+(h+1)*hd]
				for i, qv := range qh {
					axpy(scores, kT[i*total:i*total+end], qv*scale)
				}
				maxv := scores[0]
				for _, sc := range scores {
					maxv = max(maxv, sc)
				}
				var sum float32
				for p, sc := range scores {
					e := expNeg(sc - maxv)
					scores[p] = e
					sum += e
				}
				inv := 1 / sum
				o := out[t*c.Dim+h*hd : t*c.Dim+(h+1)*hd]
				for i := range o {
					o[i] = dot(scores, vT[i*total:i*total+end]) * inv
				}
			}
		}
	}
}

// expNeg returns e^x for x ≤ 0 with a relative error below 3e-7, a few
// float32 ulps, several times faster than math.Exp, which would otherwise
// dominate the softmax.
// Results below the normal float32 range are flushed to zero, which is
// exact enough for softmax weights.
func expNeg(x float32) float32 {
	if x < -87 {
		return 0
	}
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
	)
	k := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - k*ln2hi - k*ln2lo
	p := float32(1.0 / 720)
	p = p*r + 1.0/120
	p = p*r + 1.0/24
	p = p*r + 1.0/6
	p = p*r + 0.5
	p = p*r + 1
	p = p*r + 1
	return p * math.Float32frombits(uint32(int32(k)+127)<<23)
}

// sigmoid returns the logistic function of a, in float32 like run.c.
func sigmoid(a float32) float32 {
	return float32(1 / (1 + math.Exp(float64(-a))))
}

// rmsnormRows normalizes each row of x, of len(w) columns, into out.
func rmsnormRows(out, x, w []float32, eps float32) {
	d := len(w)
	for r := 0; r < len(x); r += d {
		xr, or := x[r:r+d], out[r:r+d]
		var ss float32
		for _, v := range xr {
			ss += v * v
		}
		ss = ss/float32(d) + eps
		inv := float32(1 / math.Sqrt(float64(ss)))
		for i, v := range xr {
			or[i] = w[i] * (inv * v)
		}
	}
}

func add(dst, src []float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] += src[i]
	}
}

func axpy(dst, x []float32, a float32) {
	x = x[:len(dst)]
	for i := range dst {
		dst[i] += a * x[i]
	}
}

func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// matmul sets out (rows×n) to x (rows×k) times the transpose of w (n×k),
// the [out, in] layout, on every core (gemm.MulT: the same bits for any
// number of them).
func matmul(out, x, w []float32, rows, k, n int) {
	gemm.MulT(out, x, w, rows, k, n)
}

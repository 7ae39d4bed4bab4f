package llama

import "fmt"

// A Block holds the weights of one transformer layer in llama2.c's
// layouts ([out, in] matrices, interleaved rotary pairs in WQ and WK): what
// layer-by-layer work (calibration, probing, sequential guidance) needs
// of a model at a time.
type Block struct {
	AttnNorm, WQ, WK, WV, WO, FFNNorm, W1, W2, W3 []float32
}

// BlockSuffixes lists the per-layer tensor suffixes (LayerName) in
// llama2.c's order.
func BlockSuffixes() []string { return layerSuffixes[:] }

// Field returns a pointer to the weights of the layer tensor named by
// suffix (a BlockSuffixes entry), or nil for an unknown suffix.
func (b *Block) Field(suffix string) *[]float32 {
	switch suffix {
	case "attention_norm":
		return &b.AttnNorm
	case "attention.wq":
		return &b.WQ
	case "attention.wk":
		return &b.WK
	case "attention.wv":
		return &b.WV
	case "attention.wo":
		return &b.WO
	case "ffn_norm":
		return &b.FFNNorm
	case "feed_forward.w1":
		return &b.W1
	case "feed_forward.w2":
		return &b.W2
	case "feed_forward.w3":
		return &b.W3
	}
	return nil
}

// Check reports a weight whose length does not match cfg.
func (b *Block) Check(cfg Config) error {
	for _, s := range layerSuffixes {
		if got, want := len(*b.Field(s)), numel(layerShape(cfg, s)); got != want {
			return &ShapeError{Name: s, Got: []int64{int64(got)}, Want: []int64{int64(want)}}
		}
	}
	return nil
}

func (b *Block) layer() layer {
	return layer{attnNorm: b.AttnNorm, wq: b.WQ, wk: b.WK, wv: b.WV, wo: b.WO, ffnNorm: b.FFNNorm, w1: b.W1, w2: b.W2, w3: b.W3}
}

// Block returns layer l's weights; the slices are the model's own
// storage.
func (m *Model) Block(l int) Block {
	w := &m.layers[l]
	return Block{AttnNorm: w.attnNorm, WQ: w.wq, WK: w.wk, WV: w.wv, WO: w.wo, FFNNorm: w.ffnNorm, W1: w.w1, W2: w.w2, W3: w.w3}
}

// Embedding returns the token embedding table (VocabSize×Dim), the
// model's own storage.
func (m *Model) Embedding() []float32 { return m.emb }

// Norm returns the final normalization weights, the model's own storage.
func (m *Model) Norm() []float32 { return m.norm }

// Classifier returns the classifier matrix (VocabSize×Dim): the
// embedding table when the embeddings are tied. It is the model's own
// storage.
func (m *Model) Classifier() []float32 { return m.cls }

// A BlockRunner runs windows of residual stream through single layers
// given as Blocks, without a Model: a layer-streaming caller holds one
// layer's weights at a time. A BlockRunner must not be used
// concurrently.
type BlockRunner struct {
	s *State
}

// NewBlockRunner returns a runner for layers of models configured as cfg.
func NewBlockRunner(cfg Config) (*BlockRunner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Model{cfg: cfg}
	return &BlockRunner{s: &State{m: m, key: make([][]float32, 1), val: make([][]float32, 1)}}, nil
}

// Run runs b as layer l (the index its observed inputs are named by) on
// the residual stream x of one window (a row-major tokens×Dim matrix,
// positions from 0) in place. obs, if not nil, sees the layer's linear
// inputs.
func (r *BlockRunner) Run(l int, b *Block, x []float32, obs Observer) error {
	cfg := r.s.m.cfg
	if len(x)%cfg.Dim != 0 {
		return fmt.Errorf("%w: residual stream of %d values, rows of %d", ErrShape, len(x), cfg.Dim)
	}
	if err := b.Check(cfg); err != nil {
		return err
	}
	n := len(x) / cfg.Dim
	if n == 0 {
		return nil
	}
	s := r.s
	s.Reset()
	s.grow(n)
	s.Observer = obs
	w := b.layer()
	s.layerWith(l, 0, &w, x, n)
	s.Observer = nil
	return nil
}

// Logits normalizes the final residual stream x of one window in place
// with norm and returns x times the transpose of cls (VocabSize×Dim), a
// row-major tokens×VocabSize matrix valid until the next call.
func (r *BlockRunner) Logits(norm, cls, x []float32) []float32 {
	c := r.s.m.cfg
	n := len(x) / c.Dim
	rmsnormRows(x, x, norm, c.NormEps)
	if cap(r.s.logits) < n*c.VocabSize {
		r.s.logits = make([]float32, n*c.VocabSize)
	}
	logits := r.s.logits[:n*c.VocabSize]
	matmul(logits, x, cls, n, c.Dim, c.VocabSize)
	return logits
}

// KLLogits returns Σ over the rows of two row-major logit matrices of
// vocab columns, the last row excepted (its prediction has no target in
// a window), of KL(softmax(ref row) ‖ softmax(m row)) in nats, as EvalKL
// sums it.
func KLLogits(ref, m []float32, vocab int) float64 {
	var total float64
	for p := 0; (p+2)*vocab <= len(ref); p++ {
		total += klLogits(ref[p*vocab:(p+1)*vocab], m[p*vocab:(p+1)*vocab])
	}
	return total
}

// Windows cuts docs into the windows calibration and evaluation run (a
// document longer than window is cut into pieces of at most window tokens
// each), stopping after maxTokens tokens when maxTokens > 0.
func Windows(docs [][]int, window, maxTokens int) [][]int {
	var out [][]int
	left := maxTokens
	for _, d := range docs {
		for _, w := range windows(d, window) {
			if maxTokens > 0 {
				if left == 0 {
					return out
				}
				w = w[:min(len(w), left)]
				left -= len(w)
			}
			out = append(out, w)
		}
	}
	return out
}

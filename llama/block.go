package llama

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nwcodec/nwc/internal/gemm"
	"github.com/nwcodec/nwc/safetensors"
)

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

// A Lazy reads a checkpoint's weights when asked, a layer at a time,
// instead of holding the model: what layer-streaming calibration and
// compression need for models larger than memory. Like New it accepts
// llama2.c and Hugging Face names and returns llama2.c names and layouts.
type Lazy struct {
	cfg Config
	src WeightSource
	hf  bool
}

// NewLazy returns a Lazy reading src, a checkpoint of a model configured
// as cfg; has reports whether src holds a tensor of the given name
// without reading it (it decides between llama2.c and Hugging Face names).
func NewLazy(cfg Config, src WeightSource, has func(name string) bool) (*Lazy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	z := &Lazy{cfg: cfg, src: src}
	switch {
	case has(NameEmbedding):
	case has(hfName(NameEmbedding)):
		z.hf = true
	default:
		return nil, fmt.Errorf("%w: %s or %s", ErrNotFound, NameEmbedding, hfName(NameEmbedding))
	}
	return z, nil
}

// OpenLazy opens the safetensors checkpoint at path (a file, a sharded
// index or a directory holding either) for reading as a Lazy, taking the
// configuration as Load does. The caller closes the returned source after
// the last read.
func OpenLazy(path string) (*Lazy, safetensors.Source, error) {
	src, err := safetensors.OpenPath(path)
	if err != nil {
		return nil, nil, fmt.Errorf("llama: %s: %w", path, err)
	}
	md := src.Metadata()
	if !hasConfig(md) {
		dir := path
		if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
			dir = filepath.Dir(path)
		}
		hf, err := configBeside(dir)
		if err != nil {
			src.Close()
			return nil, nil, fmt.Errorf("llama: %s: %w", path, err)
		}
		if hf != nil {
			md = hf
		}
	}
	cfg, err := ConfigFromMetadata(md)
	if err != nil {
		src.Close()
		return nil, nil, fmt.Errorf("llama: %s: %w", path, err)
	}
	z, err := NewLazy(cfg, SafetensorsSource{Src: src}, func(name string) bool {
		_, ok := src.Tensor(name)
		return ok
	})
	if err != nil {
		src.Close()
		return nil, nil, err
	}
	return z, src, nil
}

// Config returns the model's configuration.
func (z *Lazy) Config() Config { return z.cfg }

// CheckpointName returns the checkpoint's name of the tensor llama2.c
// calls name.
func (z *Lazy) CheckpointName(name string) string {
	if z.hf {
		return hfName(name)
	}
	return name
}

// ModelName returns the llama2.c name of the checkpoint tensor ckpt, and
// false if the model has no such tensor.
func (z *Lazy) ModelName(ckpt string) (string, bool) {
	return modelName(z.cfg, ckpt, z.CheckpointName)
}

// ModelLayout returns data, a tensor laid out as the checkpoint lays out
// the tensor llama2.c calls name, in llama2.c's layout: Hugging Face query
// and key rows are put back in interleaved order.
func (z *Lazy) ModelLayout(name string, data []float32) []float32 {
	return modelLayout(z.cfg, z.hf, name, data)
}

// Tensor reads the tensor llama2.c calls name, in llama2.c's layout,
// checking its shape.
func (z *Lazy) Tensor(name string) ([]float32, error) {
	want, ok := tensorShape(z.cfg, name)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	srcName := z.CheckpointName(name)
	data, shape, err := z.src.Tensor(srcName)
	if err != nil {
		return nil, fmt.Errorf("llama: loading %s: %w", srcName, err)
	}
	if !slices.Equal(shape, want) || len(data) != numel(want) {
		return nil, &ShapeError{Name: srcName, Got: slices.Clone(shape), Want: want}
	}
	return z.ModelLayout(name, data), nil
}

// Block reads layer l's weights.
func (z *Lazy) Block(l int) (Block, error) {
	var b Block
	for _, s := range layerSuffixes {
		d, err := z.Tensor(LayerName(l, s))
		if err != nil {
			return Block{}, err
		}
		*b.Field(s) = d
	}
	return b, nil
}

// Classifier reads the classifier matrix: the embedding table when the
// embeddings are tied.
func (z *Lazy) Classifier() ([]float32, error) {
	if z.cfg.TiedEmbeddings {
		return z.Tensor(NameEmbedding)
	}
	return z.Tensor(NameOutput)
}

// HessianKey is Model.HessianKey for the model z reads.
func (z *Lazy) HessianKey(name string) (string, bool) {
	if _, ok := tensorShape(z.cfg, name); !ok {
		return "", false
	}
	return hessianKey(z.cfg, name)
}

// tensorShape returns the shape of the tensor llama2.c calls name in a
// model configured as cfg, and false if it has none.
func tensorShape(cfg Config, name string) ([]int64, bool) {
	d, v := int64(cfg.Dim), int64(cfg.VocabSize)
	switch name {
	case NameEmbedding:
		return []int64{v, d}, true
	case NameNorm:
		return []int64{d}, true
	case NameOutput:
		return []int64{v, d}, !cfg.TiedEmbeddings
	}
	l, ok := layerOf(name)
	if !ok || l >= cfg.NLayers {
		return nil, false
	}
	for _, s := range layerSuffixes {
		if name == LayerName(l, s) {
			return layerShape(cfg, s), true
		}
	}
	return nil, false
}

// modelName returns the llama2.c name whose checkpoint name is ckpt.
func modelName(cfg Config, ckpt string, checkpointName func(string) string) (string, bool) {
	names := []string{NameEmbedding, NameNorm, NameOutput}
	if l, ok := layerOf(strings.TrimPrefix(ckpt, "model.")); ok && l < cfg.NLayers {
		names = names[:0]
		for _, s := range layerSuffixes {
			names = append(names, LayerName(l, s))
		}
	}
	for _, name := range names {
		if _, ok := tensorShape(cfg, name); ok && checkpointName(name) == ckpt {
			return name, true
		}
	}
	return "", false
}

// modelLayout puts a checkpoint's query and key rows in llama2.c's order.
func modelLayout(cfg Config, hf bool, name string, data []float32) []float32 {
	if hf && (strings.HasSuffix(name, ".wq.weight") || strings.HasSuffix(name, ".wk.weight")) {
		sh := layerShape(cfg, "attention.wq")
		if strings.HasSuffix(name, ".wk.weight") {
			sh = layerShape(cfg, "attention.wk")
		}
		return unpermuteRotateHalf(data, int(sh[0]), int(sh[1]), cfg.HeadDim())
	}
	return data
}

// hessianKey is HessianKey's mapping for a name the model has.
func hessianKey(cfg Config, name string) (string, bool) {
	switch {
	case name == NameOutput:
		return name, true
	case name == NameEmbedding:
		if cfg.TiedEmbeddings {
			return name, true
		}
		return "", false
	case strings.HasSuffix(name, ".attention.wq.weight"),
		strings.HasSuffix(name, ".attention.wo.weight"),
		strings.HasSuffix(name, ".feed_forward.w1.weight"),
		strings.HasSuffix(name, ".feed_forward.w2.weight"):
		return name, true
	case strings.HasSuffix(name, ".attention.wk.weight"), strings.HasSuffix(name, ".attention.wv.weight"):
		return name[:len(name)-len("wk.weight")] + "wq.weight", true
	case strings.HasSuffix(name, ".feed_forward.w3.weight"):
		return name[:len(name)-len("w3.weight")] + "w1.weight", true
	}
	return "", false
}

// ModelLayout returns data, a tensor laid out as the checkpoint m was
// loaded from lays out the tensor m calls name, in m's layout (see
// SetCheckpointWeight).
func (m *Model) ModelLayout(name string, data []float32) []float32 {
	return modelLayout(m.cfg, m.hf, name, data)
}

// RMSNormRows normalizes each row of x, of len(w) columns, in place and
// scales it by w, as the model does before its linear layers.
func RMSNormRows(x, w []float32, eps float32) { rmsnormRows(x, x, w, eps) }

// Add adds the moments of the rows of x (reference) and y (compressed),
// row-major matrices of N columns. The sums are float64 products
// accumulated by a blocked multiplication whose order depends only on
// the shapes, so the result does not depend on the number of CPUs.
func (mo *Moments) Add(x, y []float32) {
	n := mo.N
	rows := len(x) / n
	if rows == 0 {
		return
	}
	xs, ys := make([]float64, rows*n), make([]float64, rows*n)
	for i, v := range x[:rows*n] {
		xs[i] = float64(v)
	}
	for i, v := range y[:rows*n] {
		ys[i] = float64(v)
	}
	gemm.DsyrkT(n, rows, 1, ys, n, mo.XX, n)
	gemm.Dgemm(true, false, n, n, rows, 1, xs, n, ys, n, 1, mo.RX, n)
	mo.Count += int64(rows)
}

// AddSelf adds the rows of x to XX alone (Σ x xᵀ), for a single model's
// Hessian, as Add does.
func (mo *Moments) AddSelf(x []float32) {
	n := mo.N
	rows := len(x) / n
	if rows == 0 {
		return
	}
	xs := make([]float64, rows*n)
	for i, v := range x[:rows*n] {
		xs[i] = float64(v)
	}
	gemm.DsyrkT(n, rows, 1, xs, n, mo.XX, n)
	mo.Count += int64(rows)
}

package llama

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// ErrNotFound is returned, possibly wrapped, by a WeightSource that has no
// tensor of the requested name.
var ErrNotFound = errors.New("llama: tensor not found")

// ErrShape reports a tensor whose shape or length does not match the
// model configuration.
var ErrShape = errors.New("llama: tensor shape mismatch")

// A ShapeError describes a tensor of the wrong shape. It matches ErrShape
// under errors.Is.
type ShapeError struct {
	Name string
	Got  []int64
	Want []int64
}

// Error names the tensor and both shapes.
func (e *ShapeError) Error() string {
	return fmt.Sprintf("llama: tensor %s has shape %v, want %v", e.Name, e.Got, e.Want)
}

// Is reports whether target is ErrShape.
func (e *ShapeError) Is(target error) bool { return target == ErrShape }

// A WeightSource supplies float32 tensors by name. Names and shapes follow
// llama2.c's PyTorch checkpoints: matrices are [out, in] in row-major
// order. A source without the named tensor returns an error wrapping
// ErrNotFound.
type WeightSource interface {
	Tensor(name string) (data []float32, shape []int64, err error)
}

// Tensor names used by llama2.c checkpoints and by Model.
const (
	NameEmbedding = "tok_embeddings.weight"
	NameNorm      = "norm.weight"
	NameOutput    = "output.weight"
)

// LayerName returns the name of a per-layer tensor, where suffix is one of
// "attention_norm", "attention.wq", "attention.wk", "attention.wv",
// "attention.wo", "ffn_norm", "feed_forward.w1", "feed_forward.w2" or
// "feed_forward.w3".
func LayerName(layer int, suffix string) string {
	return "layers." + strconv.Itoa(layer) + "." + suffix + ".weight"
}

// layerSuffixes lists the per-layer tensors in llama2.c's .bin order.
var layerSuffixes = [...]string{
	"attention_norm",
	"attention.wq", "attention.wk", "attention.wv", "attention.wo",
	"ffn_norm",
	"feed_forward.w1", "feed_forward.w2", "feed_forward.w3",
}

// hfNames maps llama2.c layer suffixes to Hugging Face ones.
var hfNames = map[string]string{
	"attention_norm":  "input_layernorm",
	"attention.wq":    "self_attn.q_proj",
	"attention.wk":    "self_attn.k_proj",
	"attention.wv":    "self_attn.v_proj",
	"attention.wo":    "self_attn.o_proj",
	"ffn_norm":        "post_attention_layernorm",
	"feed_forward.w1": "mlp.gate_proj",
	"feed_forward.w2": "mlp.down_proj",
	"feed_forward.w3": "mlp.up_proj",
}

// hfName returns the Hugging Face name of a llama2.c tensor name.
func hfName(name string) string {
	switch name {
	case NameEmbedding:
		return hfEmbedding
	case NameNorm:
		return "model.norm.weight"
	case NameOutput:
		return hfOutput
	}
	rest, ok := strings.CutPrefix(name, "layers.")
	if !ok {
		return name
	}
	idx, suffix, _ := strings.Cut(rest, ".")
	return "model.layers." + idx + "." + hfNames[strings.TrimSuffix(suffix, ".weight")] + ".weight"
}

type layer struct {
	attnNorm, wq, wk, wv, wo, ffnNorm, w1, w2, w3 []float32
}

// A Model is a Llama-style transformer. Its weights may be read and
// replaced, but not concurrently with a forward pass; forward passes on
// separate States may run concurrently.
type Model struct {
	cfg     Config
	emb     []float32
	layers  []layer
	norm    []float32
	cls     []float32 // aliases emb when the embeddings are tied
	weights map[string][]float32
	shapes  map[string][]int64
	names   []string // in .bin order
	hf      bool     // loaded from Hugging Face names and layouts
	// ckpt maps each name to the checkpoint's name for it when the model
	// was loaded by New; nil means llama2.c names (or hfName's when hf).
	ckpt map[string]string
}

// Checkpoint names of the token embedding and the classifier, by naming
// scheme.
const (
	hfEmbedding = "model.embed_tokens.weight"
	hfOutput    = "lm_head.weight"
)

// A TensorChecker is a WeightSource that can tell whether it holds a
// tensor without reading it. New uses it, when a source implements it, to
// find which names a checkpoint uses before fetching anything.
type TensorChecker interface {
	HasTensor(name string) bool
}

// ResolveNames returns, for every tensor name of a model of configuration
// cfg (Model.Names), the name a checkpoint holding the tensors for which
// has reports true stores it under, and whether that checkpoint uses
// Hugging Face names and layouts. A checkpoint uses llama2.c names when
// it has "tok_embeddings.weight" or "output.weight", and Hugging Face
// names when it has "model.embed_tokens.weight" or "lm_head.weight". With
// tied embeddings either of the scheme's two names may hold the shared
// matrix, as checkpoints differ in which copy they keep. Whether the other
// tensors exist is left to whoever reads them; a checkpoint with no
// embedding under any of the four names gives an error wrapping
// ErrNotFound that lists them.
func ResolveNames(cfg Config, has func(name string) bool) (names map[string]string, hf bool, err error) {
	schemes := [...]struct {
		hf       bool
		emb, out string
	}{{false, NameEmbedding, NameOutput}, {true, hfEmbedding, hfOutput}}
	found := -1
	for i, s := range schemes {
		if has(s.emb) || has(s.out) {
			found = i
			break
		}
	}
	if found < 0 {
		return nil, false, fmt.Errorf("%w: no token embedding: looked for %s, %s, %s and %s",
			ErrNotFound, NameEmbedding, NameOutput, hfEmbedding, hfOutput)
	}
	s := schemes[found]
	names = make(map[string]string)
	for _, name := range newModel(cfg).names {
		ckpt := name
		if s.hf {
			ckpt = hfName(name)
		}
		if name == NameEmbedding && cfg.TiedEmbeddings && !has(s.emb) {
			ckpt = s.out
		}
		names[name] = ckpt
	}
	return names, s.hf, nil
}

// New builds a model from the tensors of src, checking every shape. It
// accepts llama2.c names and Hugging Face Llama names
// ("model.embed_tokens.weight", "model.layers.N.self_attn.q_proj.weight",
// ..., "lm_head.weight") as ResolveNames finds them, so a tied checkpoint
// may hold its shared matrix under either the embedding's or the
// classifier's name. Hugging Face query and key rows are permuted for
// rotate-half rotary embeddings; those rows are put back in llama2.c's
// interleaved order, so the model always stores and reports llama2.c
// names and layouts, and CheckpointName maps them back.
//
// The model keeps the slices returned by src (other than permuted ones),
// so the caller must not modify them afterwards except through the model.
func New(cfg Config, src WeightSource) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Without a TensorChecker, existence is probed by reading; what a
	// probe reads is kept, because sources such as compressed files
	// decode on each call.
	type fetched struct {
		data  []float32
		shape []int64
	}
	probed := make(map[string]fetched)
	var probeErr error
	has := func(name string) bool {
		if c, ok := src.(TensorChecker); ok {
			return c.HasTensor(name)
		}
		if _, ok := probed[name]; ok {
			return true
		}
		d, sh, err := src.Tensor(name)
		if err != nil {
			if !errors.Is(err, ErrNotFound) && probeErr == nil {
				probeErr = fmt.Errorf("llama: loading %s: %w", name, err)
			}
			return false
		}
		probed[name] = fetched{d, sh}
		return true
	}
	ckpt, hf, err := ResolveNames(cfg, has)
	if probeErr != nil {
		return nil, probeErr
	}
	if err != nil {
		return nil, err
	}
	// Tensors are fetched before the model's tables are built, so a
	// config claiming many layers fails at the first missing tensor
	// instead of first allocating for all of them.
	weights := make(map[string][]float32)
	err = walkBin(cfg, func(name string, want []int64) error {
		srcName := ckpt[name]
		var data []float32
		var shape []int64
		if f, ok := probed[srcName]; ok {
			data, shape = f.data, f.shape
			delete(probed, srcName)
		} else {
			var err error
			if data, shape, err = src.Tensor(srcName); err != nil {
				return fmt.Errorf("llama: loading %s: %w", srcName, err)
			}
		}
		if !slices.Equal(shape, want) {
			return &ShapeError{Name: srcName, Got: slices.Clone(shape), Want: slices.Clone(want)}
		}
		if len(data) != numel(want) {
			return &ShapeError{Name: srcName, Got: []int64{int64(len(data))}, Want: []int64{int64(numel(want))}}
		}
		if hf && (strings.HasSuffix(name, ".wq.weight") || strings.HasSuffix(name, ".wk.weight")) {
			data = unpermuteRotateHalf(data, int(want[0]), int(want[1]), cfg.HeadDim())
		}
		weights[name] = data
		return nil
	}, func(int) error { return nil })
	if err != nil {
		return nil, err
	}
	m := newModel(cfg)
	m.weights = weights
	m.hf = hf
	m.ckpt = ckpt
	m.bind()
	return m, nil
}

// newModel returns a model with names and shapes set and no weights.
func newModel(cfg Config) *Model {
	m := &Model{
		cfg:     cfg,
		weights: make(map[string][]float32),
		shapes:  make(map[string][]int64),
	}
	d, v := int64(cfg.Dim), int64(cfg.VocabSize)
	add := func(name string, shape ...int64) {
		m.names = append(m.names, name)
		m.shapes[name] = shape
	}
	add(NameEmbedding, v, d)
	for l := range cfg.NLayers {
		for _, s := range layerSuffixes {
			add(LayerName(l, s), layerShape(cfg, s)...)
		}
	}
	add(NameNorm, d)
	if !cfg.TiedEmbeddings {
		add(NameOutput, v, d)
	}
	return m
}

// layerShape returns the shape of the per-layer tensor with the given
// suffix.
func layerShape(cfg Config, suffix string) []int64 {
	d, h, kv := int64(cfg.Dim), int64(cfg.HiddenDim), int64(cfg.KVDim())
	switch suffix {
	case "attention.wq", "attention.wo":
		return []int64{d, d}
	case "attention.wk", "attention.wv":
		return []int64{kv, d}
	case "feed_forward.w1", "feed_forward.w3":
		return []int64{h, d}
	case "feed_forward.w2":
		return []int64{d, h}
	}
	return []int64{d} // the norms
}

// bind points the typed fields at the entries of m.weights.
func (m *Model) bind() {
	w := m.weights
	m.emb = w[NameEmbedding]
	m.norm = w[NameNorm]
	m.cls = m.emb
	if !m.cfg.TiedEmbeddings {
		m.cls = w[NameOutput]
	}
	m.layers = make([]layer, m.cfg.NLayers)
	for l := range m.layers {
		m.layers[l] = layer{
			attnNorm: w[LayerName(l, "attention_norm")],
			wq:       w[LayerName(l, "attention.wq")],
			wk:       w[LayerName(l, "attention.wk")],
			wv:       w[LayerName(l, "attention.wv")],
			wo:       w[LayerName(l, "attention.wo")],
			ffnNorm:  w[LayerName(l, "ffn_norm")],
			w1:       w[LayerName(l, "feed_forward.w1")],
			w2:       w[LayerName(l, "feed_forward.w2")],
			w3:       w[LayerName(l, "feed_forward.w3")],
		}
	}
}

// ropeFill sets the rotary cosines and sines of position p the way run.c
// computes them, in float32: pair i turns by p/θ^(2i/headDim).
func ropeFill(cos, sin []float32, p int, cfg Config) {
	for i := range cos {
		freq := float32(1 / math.Pow(cfg.RopeTheta, float64(2*i)/float64(cfg.HeadDim())))
		val := float64(float32(p) * freq)
		cos[i] = float32(math.Cos(val))
		sin[i] = float32(math.Sin(val))
	}
}

// unpermuteRotateHalf reorders the rows of a Hugging Face query or key
// projection, where each head holds the first halves of its rotary pairs
// and then the second halves, into llama2.c's interleaved pairs.
func unpermuteRotateHalf(w []float32, rows, cols, headDim int) []float32 {
	out := make([]float32, len(w))
	half := headDim / 2
	for h := 0; h < rows/headDim; h++ {
		base := h * headDim
		for j := range half {
			for k := range 2 {
				src := (base + k*half + j) * cols
				dst := (base + 2*j + k) * cols
				copy(out[dst:dst+cols], w[src:src+cols])
			}
		}
	}
	return out
}

func numel(shape []int64) int {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	return n
}

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// Names returns the names of the model's tensors in llama2.c's .bin order.
// A tied model has no "output.weight".
func (m *Model) Names() []string { return slices.Clone(m.names) }

// HasTensor reports whether m has the named tensor, making a Model a
// TensorChecker.
func (m *Model) HasTensor(name string) bool {
	_, ok := m.weights[name]
	return ok
}

// Tensor returns the named tensor and its shape, making a Model a
// WeightSource. The data is the model's own storage: writes to it change
// the model.
func (m *Model) Tensor(name string) ([]float32, []int64, error) {
	data, ok := m.weights[name]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return data, slices.Clone(m.shapes[name]), nil
}

// Weights returns the model's tensors by name. The slices are the model's
// own storage, so callers may overwrite elements in place, for instance
// with quantized values.
func (m *Model) Weights() map[string][]float32 {
	w := make(map[string][]float32, len(m.weights))
	for k, v := range m.weights {
		w[k] = v
	}
	return w
}

// SetWeight copies data into the named tensor.
func (m *Model) SetWeight(name string, data []float32) error {
	dst, ok := m.weights[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if len(data) != len(dst) {
		return &ShapeError{Name: name, Got: []int64{int64(len(data))}, Want: []int64{int64(len(dst))}}
	}
	copy(dst, data)
	return nil
}

// Clone returns a deep copy of m.
func (m *Model) Clone() *Model {
	c := newModel(m.cfg)
	c.hf = m.hf
	c.ckpt = m.ckpt // never modified after New
	for name, data := range m.weights {
		c.weights[name] = slices.Clone(data)
	}
	c.bind()
	return c
}

// CheckpointName returns the name that the checkpoint m was loaded from
// gives the tensor m calls name: name itself, its Hugging Face name, or
// for a tied embedding stored only as the classifier, the classifier's
// name.
func (m *Model) CheckpointName(name string) string {
	if c, ok := m.ckpt[name]; ok {
		return c
	}
	if m.hf {
		return hfName(name)
	}
	return name
}

// ModelName returns m's name for the tensor the checkpoint it was loaded
// from calls ckpt, and false if m has no such tensor.
func (m *Model) ModelName(ckpt string) (string, bool) {
	for _, name := range m.names {
		if m.CheckpointName(name) == ckpt {
			return name, true
		}
	}
	return "", false
}

// SetCheckpointWeight copies data, laid out as in the checkpoint m was
// loaded from, into the tensor that checkpoint calls ckpt: with Hugging
// Face checkpoints the query and key rows are put back in m's order. This
// is how a compressed copy of a checkpoint tensor goes into the model.
func (m *Model) SetCheckpointWeight(ckpt string, data []float32) error {
	name, ok := m.ModelName(ckpt)
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, ckpt)
	}
	if m.hf && (strings.HasSuffix(name, ".wq.weight") || strings.HasSuffix(name, ".wk.weight")) {
		sh := m.shapes[name]
		if len(data) != numel(sh) {
			return &ShapeError{Name: ckpt, Got: []int64{int64(len(data))}, Want: []int64{int64(numel(sh))}}
		}
		data = unpermuteRotateHalf(data, int(sh[0]), int(sh[1]), m.cfg.HeadDim())
	}
	return m.SetWeight(name, data)
}

// HessianKey returns the name under which Hessians records the input of
// the linear layer whose weight is named name, and false if name is not a
// linear weight. Layers reading the same input share a key: wq, wk and wv
// use wq's name, and w1 and w3 use w1's name. The classifier's key is the
// name of the matrix it multiplies by, which is the token embedding when
// embeddings are tied.
func (m *Model) HessianKey(name string) (string, bool) {
	if _, ok := m.weights[name]; !ok {
		return "", false
	}
	return hessianKey(m.cfg, name)
}

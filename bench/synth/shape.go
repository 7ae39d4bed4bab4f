// Package synth writes synthetic Llama-shaped checkpoints as Hugging Face
// ships them (sharded BF16 safetensors, model.safetensors.index.json,
// config.json) so that nwc can be measured at the scale users convert, 1 to
// 70 B parameters, without downloading a model. The weights have the
// statistics that matter to a weight codec: heavy tails (Student-t with 4
// degrees of freedom), uneven column and row scales and rare outlier columns.
// A checkpoint is a pure function of its shape and seed, whatever the number
// of cores that wrote it.
package synth

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nwcodec/nwc/format"
)

// A Shape is the architecture of a Llama-class model.
type Shape struct {
	// Name identifies the shape on the command line, e.g. "llama3-8b".
	Name string `json:"name"`
	// Dim is hidden_size, Hidden is intermediate_size.
	Dim    int `json:"dim"`
	Hidden int `json:"hidden"`
	// Layers, Heads and KVHeads are num_hidden_layers, num_attention_heads
	// and num_key_value_heads.
	Layers  int `json:"layers"`
	Heads   int `json:"heads"`
	KVHeads int `json:"kv_heads"`
	// Vocab is vocab_size.
	Vocab int `json:"vocab"`
	// MaxPos, RopeTheta, BOS and EOS only go to config.json.
	MaxPos    int     `json:"max_position_embeddings"`
	RopeTheta float64 `json:"rope_theta"`
	BOS       int     `json:"bos_token_id"`
	EOS       int     `json:"eos_token_id"`
}

// Shapes are the architectures Lookup knows: "tiny" for tests, then real
// models' shapes.
var Shapes = []Shape{
	{Name: "tiny", Dim: 64, Hidden: 176, Layers: 2, Heads: 4, KVHeads: 2, Vocab: 320,
		MaxPos: 256, RopeTheta: 10000, BOS: 1, EOS: 2},
	{Name: "tinyllama-1.1b", Dim: 2048, Hidden: 5632, Layers: 22, Heads: 32, KVHeads: 4, Vocab: 32000,
		MaxPos: 2048, RopeTheta: 10000, BOS: 1, EOS: 2},
	{Name: "llama2-7b", Dim: 4096, Hidden: 11008, Layers: 32, Heads: 32, KVHeads: 32, Vocab: 32000,
		MaxPos: 4096, RopeTheta: 10000, BOS: 1, EOS: 2},
	{Name: "llama3-8b", Dim: 4096, Hidden: 14336, Layers: 32, Heads: 32, KVHeads: 8, Vocab: 128256,
		MaxPos: 8192, RopeTheta: 500000, BOS: 128000, EOS: 128001},
	{Name: "llama3-70b", Dim: 8192, Hidden: 28672, Layers: 80, Heads: 64, KVHeads: 8, Vocab: 128256,
		MaxPos: 8192, RopeTheta: 500000, BOS: 128000, EOS: 128001},
}

// Lookup returns the shape called name.
func Lookup(name string) (Shape, error) {
	for _, s := range Shapes {
		if s.Name == name {
			return s, nil
		}
	}
	names := make([]string, len(Shapes))
	for i, s := range Shapes {
		names[i] = s.Name
	}
	return Shape{}, fmt.Errorf("synth: unknown shape %q (known: %s)", name, strings.Join(names, ", "))
}

// Validate reports a shape the tensors cannot be built from.
func (s Shape) Validate() error {
	switch {
	case s.Dim <= 0 || s.Hidden <= 0 || s.Layers <= 0 || s.Heads <= 0 || s.KVHeads <= 0 || s.Vocab <= 0:
		return fmt.Errorf("synth: shape %q: every size must be positive", s.Name)
	case s.Dim%s.Heads != 0:
		return fmt.Errorf("synth: shape %q: dim %d not a multiple of %d heads", s.Name, s.Dim, s.Heads)
	case s.Heads%s.KVHeads != 0:
		return fmt.Errorf("synth: shape %q: %d heads not a multiple of %d KV heads", s.Name, s.Heads, s.KVHeads)
	}
	return nil
}

// A Tensor is one tensor of a synthetic checkpoint.
type Tensor struct {
	Name  string
	Shape []int64 // [rows, cols] for matrices, [n] for norms
	kind  kind
}

// NumElements returns the number of weights.
func (t Tensor) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Bytes returns the tensor's size in BF16.
func (t Tensor) Bytes() int64 { return 2 * t.NumElements() }

// DType is the element type of every tensor.
const DType = format.BF16

type kind uint8

const (
	kindMatrix kind = iota
	kindEmbed
	kindNorm
)

// Tensors returns the tensors in the order of a Hugging Face state dict
// (the order shards are filled in), with Hugging Face's names and shapes:
// Linear weights are [out_features, in_features].
func (s Shape) Tensors() []Tensor {
	hd := s.Dim / s.Heads
	kv := int64(s.KVHeads * hd)
	d, h := int64(s.Dim), int64(s.Hidden)
	ts := []Tensor{{Name: "model.embed_tokens.weight", Shape: []int64{int64(s.Vocab), d}, kind: kindEmbed}}
	for l := range s.Layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		ts = append(ts,
			Tensor{Name: p + "self_attn.q_proj.weight", Shape: []int64{d, d}},
			Tensor{Name: p + "self_attn.k_proj.weight", Shape: []int64{kv, d}},
			Tensor{Name: p + "self_attn.v_proj.weight", Shape: []int64{kv, d}},
			Tensor{Name: p + "self_attn.o_proj.weight", Shape: []int64{d, d}},
			Tensor{Name: p + "mlp.gate_proj.weight", Shape: []int64{h, d}},
			Tensor{Name: p + "mlp.up_proj.weight", Shape: []int64{h, d}},
			Tensor{Name: p + "mlp.down_proj.weight", Shape: []int64{d, h}},
			Tensor{Name: p + "input_layernorm.weight", Shape: []int64{d}, kind: kindNorm},
			Tensor{Name: p + "post_attention_layernorm.weight", Shape: []int64{d}, kind: kindNorm},
		)
	}
	return append(ts,
		Tensor{Name: "model.norm.weight", Shape: []int64{d}, kind: kindNorm},
		Tensor{Name: "lm_head.weight", Shape: []int64{int64(s.Vocab), d}, kind: kindEmbed},
	)
}

// Params returns the number of weights of the shape.
func (s Shape) Params() int64 {
	var n int64
	for _, t := range s.Tensors() {
		n += t.NumElements()
	}
	return n
}

// A Shard is one safetensors file of a checkpoint and the tensors it holds,
// in state-dict order.
type Shard struct {
	File    string
	Tensors []Tensor
}

// Plan splits the shape's tensors into shards as Hugging Face's
// save_pretrained does: in state-dict order, starting a new shard when the
// next tensor would take the current one past maxBytes.
func (s Shape) Plan(maxBytes int64) []Shard {
	var shards []Shard
	var cur []Tensor
	var size int64
	for _, t := range s.Tensors() {
		if len(cur) > 0 && size+t.Bytes() > maxBytes {
			shards = append(shards, Shard{Tensors: cur})
			cur, size = nil, 0
		}
		cur = append(cur, t)
		size += t.Bytes()
	}
	shards = append(shards, Shard{Tensors: cur})
	for i := range shards {
		shards[i].File = fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		// safetensors lays a file's tensors out sorted by name.
		slices.SortFunc(shards[i].Tensors, func(a, b Tensor) int { return strings.Compare(a.Name, b.Name) })
	}
	return shards
}

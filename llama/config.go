// Package llama implements the forward pass of Llama-style language models
// as defined by llama2.c's run.c: token embedding, then per layer an RMSNorm,
// grouped-query attention with interleaved-pair rotary position embeddings
// and a SwiGLU feed-forward block, each added to the residual stream, and a
// final RMSNorm followed by the classifier.
//
// Weights are named and shaped as in llama2.c's PyTorch checkpoints
// ("layers.0.attention.wq.weight", shape [out, in]) and come from any
// WeightSource, so checkpoints in other containers plug in unchanged. The
// package also reads llama2.c's legacy .bin checkpoints, evaluates
// per-token negative log-likelihood, decodes greedily and collects the input
// second moments (Hessians) of every linear layer for calibration.
package llama

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Default values used when a checkpoint does not record them; they are the
// constants hard-wired in llama2.c's run.c.
const (
	DefaultNormEps   = 1e-5
	DefaultRopeTheta = 10000.0
)

// maxDim bounds every configured dimension. It is far above any real
// model and keeps products of a few dimensions from overflowing int64.
const maxDim = 1 << 24

// ErrConfig reports an invalid or incomplete model configuration.
var ErrConfig = errors.New("llama: invalid config")

// Config holds the hyperparameters of a model.
type Config struct {
	Dim            int     // width of the residual stream
	HiddenDim      int     // width of the feed-forward hidden layer
	NLayers        int     // number of transformer blocks
	NHeads         int     // number of query heads
	NKVHeads       int     // number of key/value heads; divides NHeads
	VocabSize      int     // number of tokens
	SeqLen         int     // maximum sequence length
	NormEps        float32 // RMSNorm epsilon
	RopeTheta      float64 // rotary embedding base
	TiedEmbeddings bool    // classifier reuses the token embedding
}

// HeadDim returns the width of one attention head.
func (c Config) HeadDim() int { return c.Dim / c.NHeads }

// KVDim returns the width of the key and value projections.
func (c Config) KVDim() int { return c.NKVHeads * c.HeadDim() }

// Validate reports whether c describes a model this package can run.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"dim", c.Dim}, {"hidden_dim", c.HiddenDim}, {"n_layers", c.NLayers},
		{"n_heads", c.NHeads}, {"n_kv_heads", c.NKVHeads},
		{"vocab_size", c.VocabSize}, {"seq_len", c.SeqLen},
	} {
		if f.v < 1 || f.v > maxDim {
			return fmt.Errorf("%w: %s = %d out of range [1, %d]", ErrConfig, f.name, f.v, maxDim)
		}
	}
	if c.Dim%c.NHeads != 0 {
		return fmt.Errorf("%w: dim %d not divisible by n_heads %d", ErrConfig, c.Dim, c.NHeads)
	}
	if c.HeadDim()%2 != 0 {
		return fmt.Errorf("%w: head dim %d is odd, rotary embedding needs pairs", ErrConfig, c.HeadDim())
	}
	if c.NHeads%c.NKVHeads != 0 {
		return fmt.Errorf("%w: n_heads %d not divisible by n_kv_heads %d", ErrConfig, c.NHeads, c.NKVHeads)
	}
	if !(c.NormEps >= 0) || math.IsInf(float64(c.NormEps), 0) {
		return fmt.Errorf("%w: norm_eps %v", ErrConfig, c.NormEps)
	}
	if !(c.RopeTheta > 0) || math.IsInf(c.RopeTheta, 0) {
		return fmt.Errorf("%w: rope_theta %v", ErrConfig, c.RopeTheta)
	}
	if _, ok := c.numParams(); !ok {
		return fmt.Errorf("%w: parameter count overflows", ErrConfig)
	}
	return nil
}

// numParams returns the number of weights of the model, excluding the
// rotary tables of the .bin format, and whether it fits in an int.
func (c Config) numParams() (int, bool) {
	var total uint64
	ok := true
	add := func(factors ...int) {
		p := uint64(1)
		for _, f := range factors {
			hi, lo := bits.Mul64(p, uint64(f))
			if hi != 0 {
				ok = false
			}
			p = lo
		}
		var carry uint64
		total, carry = bits.Add64(total, p, 0)
		if carry != 0 {
			ok = false
		}
	}
	kv := c.KVDim()
	add(c.VocabSize, c.Dim)
	add(c.NLayers, c.Dim, 2)              // norms
	add(c.NLayers, c.Dim, c.Dim, 2)       // wq, wo
	add(c.NLayers, c.Dim, kv, 2)          // wk, wv
	add(c.NLayers, c.Dim, c.HiddenDim, 3) // w1, w2, w3
	add(c.Dim)                            // final norm
	add(c.SeqLen, c.HeadDim())            // .bin rotary tables, for headroom
	if !c.TiedEmbeddings {
		add(c.VocabSize, c.Dim)
	}
	if !ok || total > math.MaxInt64/8 {
		return 0, false
	}
	return int(total), true
}

// Metadata keys accepted by ConfigFromMetadata, llama2.c's first, then
// Hugging Face's config.json names.
var (
	keysDim       = []string{"dim", "hidden_size"}
	keysHidden    = []string{"hidden_dim", "intermediate_size"}
	keysLayers    = []string{"n_layers", "num_hidden_layers"}
	keysHeads     = []string{"n_heads", "num_attention_heads"}
	keysKVHeads   = []string{"n_kv_heads", "num_key_value_heads"}
	keysVocab     = []string{"vocab_size"}
	keysSeqLen    = []string{"max_seq_len", "seq_len", "max_position_embeddings"}
	keysNormEps   = []string{"norm_eps", "rms_norm_eps"}
	keysRopeTheta = []string{"rope_theta"}
	keysTied      = []string{"tied_embeddings", "tie_word_embeddings"}
)

// ConfigFromMetadata builds a Config from string metadata such as a
// safetensors header's __metadata__. It accepts llama2.c's keys (dim,
// hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, max_seq_len,
// norm_eps, tied_embeddings, rope) and the equivalent Hugging Face keys
// (hidden_size, intermediate_size, num_hidden_layers, ...). The number of
// key/value heads defaults to the number of heads, norm_eps and the rotary
// base to llama2.c's constants, and tied embeddings to false. The rotary
// base is read from rope_theta or from a "theta=N" inside rope.
func ConfigFromMetadata(md map[string]string) (Config, error) {
	var c Config
	var err error
	geti := func(keys []string, dst *int, required bool) {
		if err != nil {
			return
		}
		k, s, ok := lookup(md, keys)
		if !ok {
			if required {
				err = fmt.Errorf("%w: metadata has no %s", ErrConfig, keys[0])
			}
			return
		}
		v, perr := strconv.Atoi(strings.TrimSpace(s))
		if perr != nil {
			err = fmt.Errorf("%w: metadata %s = %q is not an integer", ErrConfig, k, s)
			return
		}
		*dst = v
	}
	geti(keysDim, &c.Dim, true)
	geti(keysHidden, &c.HiddenDim, true)
	geti(keysLayers, &c.NLayers, true)
	geti(keysHeads, &c.NHeads, true)
	c.NKVHeads = c.NHeads
	geti(keysKVHeads, &c.NKVHeads, false)
	geti(keysVocab, &c.VocabSize, true)
	geti(keysSeqLen, &c.SeqLen, true)
	if err != nil {
		return Config{}, err
	}

	c.NormEps = DefaultNormEps
	if k, s, ok := lookup(md, keysNormEps); ok {
		v, perr := strconv.ParseFloat(strings.TrimSpace(s), 32)
		if perr != nil {
			return Config{}, fmt.Errorf("%w: metadata %s = %q is not a number", ErrConfig, k, s)
		}
		c.NormEps = float32(v)
	}

	c.RopeTheta = DefaultRopeTheta
	if k, s, ok := lookup(md, keysRopeTheta); ok {
		v, perr := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if perr != nil {
			return Config{}, fmt.Errorf("%w: metadata %s = %q is not a number", ErrConfig, k, s)
		}
		c.RopeTheta = v
	} else if s, ok := md["rope"]; ok {
		if _, after, found := strings.Cut(s, "theta="); found {
			end := strings.IndexFunc(after, func(r rune) bool {
				return !strings.ContainsRune("0123456789.eE+-", r)
			})
			if end >= 0 {
				after = after[:end]
			}
			v, perr := strconv.ParseFloat(after, 64)
			if perr != nil {
				return Config{}, fmt.Errorf("%w: metadata rope = %q has a malformed theta", ErrConfig, s)
			}
			c.RopeTheta = v
		}
	}

	if k, s, ok := lookup(md, keysTied); ok {
		v, perr := strconv.ParseBool(strings.TrimSpace(s))
		if perr != nil {
			return Config{}, fmt.Errorf("%w: metadata %s = %q is not a boolean", ErrConfig, k, s)
		}
		c.TiedEmbeddings = v
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Metadata returns c as llama2.c-style metadata that ConfigFromMetadata
// reads back unchanged.
func (c Config) Metadata() map[string]string {
	return map[string]string{
		"dim":             strconv.Itoa(c.Dim),
		"hidden_dim":      strconv.Itoa(c.HiddenDim),
		"n_layers":        strconv.Itoa(c.NLayers),
		"n_heads":         strconv.Itoa(c.NHeads),
		"n_kv_heads":      strconv.Itoa(c.NKVHeads),
		"vocab_size":      strconv.Itoa(c.VocabSize),
		"max_seq_len":     strconv.Itoa(c.SeqLen),
		"norm_eps":        strconv.FormatFloat(float64(c.NormEps), 'g', -1, 32),
		"rope_theta":      strconv.FormatFloat(c.RopeTheta, 'g', -1, 64),
		"tied_embeddings": strconv.FormatBool(c.TiedEmbeddings),
	}
}

func lookup(md map[string]string, keys []string) (key, val string, ok bool) {
	for _, k := range keys {
		if v, ok := md[k]; ok {
			return k, v, true
		}
	}
	return "", "", false
}

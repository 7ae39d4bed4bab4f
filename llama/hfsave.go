package llama

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nwcodec/nwc/safetensors"
)

// HFWeightsFile is the name SaveHF gives the weights, as Hugging Face's
// save_pretrained names an unsharded checkpoint.
const HFWeightsFile = "model.safetensors"

// HFSaveOptions configure SaveHF.
type HFSaveOptions struct {
	// LMHeadOnly stores a tied model's shared matrix as "lm_head.weight"
	// instead of "model.embed_tokens.weight"; checkpoints in the wild
	// keep either.
	LMHeadOnly bool
}

// SaveHF writes m into dir in the layout of a Hugging Face Llama
// checkpoint, as transformers' convert_llama_weights_to_hf writes one:
// float32 weights under Hugging Face names in model.safetensors, with the
// query and key rows of every head permuted from llama2.c's interleaved
// rotary pairs to rotate-half order, and the configuration in
// config.json (LlamaConfig's keys, BOS 1 and EOS 2 as in Llama). Load
// reads such a directory back to the same weights. dir must exist; the
// two files are replaced if present.
func SaveHF(dir string, m *Model, opt HFSaveOptions) error {
	h := &safetensors.Header{Metadata: map[string]string{"format": "pt"}}
	ckpt := make(map[string]string)
	for _, name := range m.names {
		c := hfName(name)
		if name == NameEmbedding && m.cfg.TiedEmbeddings && opt.LMHeadOnly {
			c = hfOutput
		}
		ckpt[c] = name
		h.Tensors = append(h.Tensors, safetensors.TensorInfo{Name: c, DType: safetensors.F32, Shape: m.shapes[name]})
	}
	err := safetensors.WriteFile(filepath.Join(dir, HFWeightsFile), h, func(c string) ([]byte, error) {
		name := ckpt[c]
		w := m.weights[name]
		if strings.HasSuffix(name, ".wq.weight") || strings.HasSuffix(name, ".wk.weight") {
			sh := m.shapes[name]
			w = permuteRotateHalf(w, int(sh[0]), int(sh[1]), m.cfg.HeadDim())
		}
		b := make([]byte, 4*len(w))
		for i, v := range w {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b, nil
	})
	if err != nil {
		return err
	}
	c := m.cfg
	num := func(s string) json.Number { return json.Number(s) }
	cfg := map[string]any{
		"architectures":           []string{"LlamaForCausalLM"},
		"model_type":              "llama",
		"hidden_size":             c.Dim,
		"intermediate_size":       c.HiddenDim,
		"num_hidden_layers":       c.NLayers,
		"num_attention_heads":     c.NHeads,
		"num_key_value_heads":     c.NKVHeads,
		"vocab_size":              c.VocabSize,
		"max_position_embeddings": c.SeqLen,
		"rms_norm_eps":            num(strconv.FormatFloat(float64(c.NormEps), 'g', -1, 32)),
		"rope_theta":              num(strconv.FormatFloat(c.RopeTheta, 'g', -1, 64)),
		"rope_scaling":            nil,
		"tie_word_embeddings":     c.TiedEmbeddings,
		"hidden_act":              "silu",
		"attention_bias":          false,
		"mlp_bias":                false,
		"bos_token_id":            1,
		"eos_token_id":            2,
		"torch_dtype":             "float32",
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(cfg); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("llama: %w", err)
	}
	return nil
}

// permuteRotateHalf is the inverse of unpermuteRotateHalf: it moves the
// interleaved rotary pairs of each head of a query or key projection into
// rotate-half order, first elements first.
func permuteRotateHalf(w []float32, rows, cols, headDim int) []float32 {
	out := make([]float32, len(w))
	half := headDim / 2
	for h := 0; h < rows/headDim; h++ {
		base := h * headDim
		for j := range half {
			for k := range 2 {
				src := (base + 2*j + k) * cols
				dst := (base + k*half + j) * cols
				copy(out[dst:dst+cols], w[src:src+cols])
			}
		}
	}
	return out
}

package gguf

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/tokenizer"
)

// A rowOrder says how a tensor's rows are reordered on export.
type rowOrder int

const (
	sameRows rowOrder = iota
	// queryRows and keyRows mark Hugging Face query and key projections,
	// whose rows hold each head's rotary pairs as two halves: llama.cpp,
	// like Meta's and llama2.c's checkpoints, wants them interleaved.
	queryRows
	keyRows
)

// llamaLayer maps the per-layer tensor suffixes of llama2.c and Hugging
// Face checkpoints to llama.cpp's.
var llamaLayer = map[string]struct {
	name  string
	order rowOrder
}{
	"attention.wq":             {"attn_q", sameRows},
	"attention.wk":             {"attn_k", sameRows},
	"attention.wv":             {"attn_v", sameRows},
	"attention.wo":             {"attn_output", sameRows},
	"feed_forward.w1":          {"ffn_gate", sameRows},
	"feed_forward.w2":          {"ffn_down", sameRows},
	"feed_forward.w3":          {"ffn_up", sameRows},
	"attention_norm":           {"attn_norm", sameRows},
	"ffn_norm":                 {"ffn_norm", sameRows},
	"self_attn.q_proj":         {"attn_q", queryRows},
	"self_attn.k_proj":         {"attn_k", keyRows},
	"self_attn.v_proj":         {"attn_v", sameRows},
	"self_attn.o_proj":         {"attn_output", sameRows},
	"mlp.gate_proj":            {"ffn_gate", sameRows},
	"mlp.down_proj":            {"ffn_down", sameRows},
	"mlp.up_proj":              {"ffn_up", sameRows},
	"input_layernorm":          {"attn_norm", sameRows},
	"post_attention_layernorm": {"ffn_norm", sameRows},
}

// LlamaTensorName returns llama.cpp's name for a tensor of a Llama
// checkpoint named as llama2.c ("layers.0.attention.wq.weight") or Hugging
// Face ("model.layers.0.self_attn.q_proj.weight") name it; "" for a tensor
// llama.cpp does not load (rotary frequency tables); ok is false for a name
// of neither convention.
func LlamaTensorName(name string) (gguf string, ok bool) {
	g, _, ok := llamaName(name)
	return g, ok
}

func llamaName(name string) (string, rowOrder, bool) {
	switch name {
	case "tok_embeddings.weight", "model.embed_tokens.weight":
		return "token_embd.weight", sameRows, true
	case "norm.weight", "model.norm.weight":
		return "output_norm.weight", sameRows, true
	case "output.weight", "lm_head.weight":
		return "output.weight", sameRows, true
	}
	rest, ok := strings.CutPrefix(name, "model.layers.")
	if !ok {
		rest, ok = strings.CutPrefix(name, "layers.")
	}
	if !ok {
		return "", 0, false
	}
	idx, suffix, ok := strings.Cut(rest, ".")
	if n, err := strconv.Atoi(idx); !ok || err != nil || n < 0 || strconv.Itoa(n) != idx {
		return "", 0, false
	}
	if suffix == "self_attn.rotary_emb.inv_freq" { // recomputed by every runtime
		return "", sameRows, true
	}
	base, ok := strings.CutSuffix(suffix, ".weight")
	if !ok {
		return "", 0, false
	}
	m, ok := llamaLayer[base]
	if !ok {
		return "", 0, false
	}
	return "blk." + idx + "." + m.name + ".weight", m.order, true
}

// llamaMetadata returns the llama.* pairs llama.cpp reads for cfg.
func llamaMetadata(cfg llama.Config) []KV {
	return []KV{
		{"llama.context_length", uint32(cfg.SeqLen)},
		{"llama.embedding_length", uint32(cfg.Dim)},
		{"llama.block_count", uint32(cfg.NLayers)},
		{"llama.feed_forward_length", uint32(cfg.HiddenDim)},
		{"llama.attention.head_count", uint32(cfg.NHeads)},
		{"llama.attention.head_count_kv", uint32(cfg.NKVHeads)},
		{"llama.attention.layer_norm_rms_epsilon", cfg.NormEps},
		{"llama.rope.freq_base", float32(cfg.RopeTheta)},
		{"llama.rope.dimension_count", uint32(cfg.HeadDim())},
		{"llama.vocab_size", uint32(cfg.VocabSize)},
	}
}

// Token types of tokenizer.ggml.token_type (llama.cpp's numbering).
const (
	tokenNormal  int32 = 1
	tokenUnknown int32 = 2
	tokenControl int32 = 3
	tokenByte    int32 = 6
)

// tokenizerMetadata returns the tokenizer.ggml.* pairs of a llama2.c
// tokenizer: a SentencePiece vocabulary, whose pieces llama2.c stores with
// plain spaces where SentencePiece (and so llama.cpp) has U+2581. Ids 0, 1
// and 2 are llama2.c's <unk>, <s> and </s>.
func tokenizerMetadata(tok *tokenizer.Tokenizer) []KV {
	n := tok.VocabSize()
	tokens := make([]string, n)
	scores := make([]float32, n)
	types := make([]int32, n)
	for i := range n {
		p := tok.Piece(i)
		scores[i] = tok.Score(i)
		switch {
		case i == 0:
			types[i] = tokenUnknown
		case i <= 2:
			types[i] = tokenControl
		case isBytePiece(p):
			types[i] = tokenByte
		default:
			types[i] = tokenNormal
			p = strings.ReplaceAll(p, " ", "\u2581")
		}
		tokens[i] = p
	}
	return []KV{
		{"tokenizer.ggml.model", "llama"},
		{"tokenizer.ggml.tokens", tokens},
		{"tokenizer.ggml.scores", scores},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.unknown_token_id", uint32(0)},
		{"tokenizer.ggml.bos_token_id", uint32(1)},
		{"tokenizer.ggml.eos_token_id", uint32(2)},
	}
}

// isBytePiece reports a byte-fallback piece, "<0xAB>".
func isBytePiece(p string) bool {
	if len(p) != 6 || !strings.HasPrefix(p, "<0x") || p[5] != '>' {
		return false
	}
	_, err := strconv.ParseUint(p[3:5], 16, 8)
	return err == nil
}

// interleaveRows returns, for a query or key projection of heads heads of
// headDim rows each stored as Hugging Face does (each head's first rotary
// halves, then its second halves), the row in llama.cpp's interleaved order
// of source row r.
func interleaveRows(r, headDim int) int {
	half := headDim / 2
	h, j := r/headDim, r%headDim
	k, i := j/half, j%half // half k, pair i
	return h*headDim + 2*i + k
}

func checkRows(name string, rows, heads, headDim int) error {
	if rows != heads*headDim {
		return fmt.Errorf("%w: %s has %d rows, want %d heads × %d", ErrInvalid, name, rows, heads, headDim)
	}
	return nil
}

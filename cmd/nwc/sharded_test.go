package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/safetensors"
)

// storiesHFConfig is stories260K's configuration as a Hugging Face
// config.json.
const storiesHFConfig = `{
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
  "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 5, "num_attention_heads": 8,
  "num_key_value_heads": 4, "vocab_size": 512, "max_position_embeddings": 512, "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0, "tie_word_embeddings": true, "torch_dtype": "float32"
}
`

// writeShardedHF writes stories260K as Hugging Face lays a sharded
// checkpoint out: Hugging Face tensor names with the query and key rows
// permuted for rotate-half rotary embeddings, two shards whose
// __metadata__ is {"format": "pt"}, an index, config.json (the only place
// the configuration is), generation_config.json and tokenizer files, one
// of them binary.
func writeShardedHF(t *testing.T, st, dir string) {
	t.Helper()
	src, err := safetensors.OpenPath(st)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	suffixes := map[string]string{
		"attention_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
		"attention.wq": "self_attn.q_proj", "attention.wk": "self_attn.k_proj",
		"attention.wv": "self_attn.v_proj", "attention.wo": "self_attn.o_proj",
		"feed_forward.w1": "mlp.gate_proj", "feed_forward.w2": "mlp.down_proj", "feed_forward.w3": "mlp.up_proj",
	}
	const headDim = 8
	shards := [2]*safetensors.Header{{Metadata: map[string]string{"format": "pt"}}, {Metadata: map[string]string{"format": "pt"}}}
	data := map[string][]byte{}
	weightMap := map[string]string{}
	name := func(i int) string { return fmt.Sprintf("model-%05d-of-00002.safetensors", i+1) }
	var total int
	for _, ti := range src.Tensors() {
		b, err := src.ReadTensor(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		hf := map[string]string{"tok_embeddings.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}[ti.Name]
		shard := 0
		if hf == "" {
			rest, _ := strings.CutPrefix(ti.Name, "layers.")
			idx, suffix, _ := strings.Cut(rest, ".")
			hf = "model.layers." + idx + "." + suffixes[strings.TrimSuffix(suffix, ".weight")] + ".weight"
			if idx >= "3" {
				shard = 1
			}
		}
		if strings.HasSuffix(ti.Name, ".wq.weight") || strings.HasSuffix(ti.Name, ".wk.weight") {
			rows, rowBytes := int(ti.Shape[0]), len(b)/int(ti.Shape[0])
			perm := make([]byte, len(b))
			for h := 0; h < rows/headDim; h++ {
				for j := range headDim / 2 {
					for k := range 2 {
						dst, from := h*headDim+k*headDim/2+j, h*headDim+2*j+k
						copy(perm[dst*rowBytes:(dst+1)*rowBytes], b[from*rowBytes:(from+1)*rowBytes])
					}
				}
			}
			b = perm
		}
		ti.Name = hf
		shards[shard].Tensors = append(shards[shard].Tensors, ti)
		data[hf] = b
		weightMap[hf] = name(shard)
		total += len(b)
	}
	for i, h := range shards {
		if err := safetensors.WriteFile(filepath.Join(dir, name(i)), h, func(n string) ([]byte, error) { return data[n], nil }); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": total}, "weight_map": weightMap})
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"model.safetensors.index.json": string(idx),
		"config.json":                  storiesHFConfig,
		"generation_config.json":       `{"bos_token_id": 1, "eos_token_id": 2}`,
		"tokenizer_config.json":        `{"add_bos_token": true, "model_max_length": 512, "tokenizer_class": "LlamaTokenizer"}`,
		"special_tokens_map.json":      `{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}`,
		"tokenizer.model":              "\x0a\x80\x01\xff\xfe not UTF-8",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestShardedCheckpointMetadata converts a sharded Hugging Face checkpoint
// whose configuration is only in its config.json and evaluates the .nwc
// (and the safetensors file decoded from it) in another directory: the
// shards' metadata, the index's, config.json and the tokenizer files'
// names travel in the .nwc's metadata.
func TestShardedCheckpointMetadata(t *testing.T) {
	f := stories(t)
	ckpt := t.TempDir()
	writeShardedHF(t, f.st, ckpt)
	elsewhere := t.TempDir()
	nwc := filepath.Join(elsewhere, "m.nwc")
	runOK(t, "convert", ckpt, "-o", nwc, "--quiet")

	var info fileInfo
	if err := json.Unmarshal([]byte(runOK(t, "info", "--json", nwc)), &info); err != nil {
		t.Fatal(err)
	}
	md := info.Metadata
	if md["format"] != "pt" || !strings.HasPrefix(md["total_size"], "1") || md[format.MetaFilePrefix+"config.json"] != storiesHFConfig {
		t.Errorf("metadata: format %q, total_size %q, config.json %q", md["format"], md["total_size"], md[format.MetaFilePrefix+"config.json"])
	}
	if want := `{"model-00001-of-00002.safetensors":{"format":"pt"},"model-00002-of-00002.safetensors":{"format":"pt"}}`; md[format.MetaShardMetadata] != want {
		t.Errorf("%s = %s, want %s", format.MetaShardMetadata, md[format.MetaShardMetadata], want)
	}
	var files []struct {
		Name   string `json:"name"`
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
		Stored bool   `json:"stored"`
	}
	if err := json.Unmarshal([]byte(md[format.MetaFiles]), &files); err != nil {
		t.Fatalf("%s: %v", format.MetaFiles, err)
	}
	stored := map[string]bool{}
	for _, cf := range files {
		stored[cf.Name] = cf.Stored
		if len(cf.SHA256) != 64 || cf.Bytes == 0 {
			t.Errorf("listing %+v", cf)
		}
		if _, ok := md[format.MetaFilePrefix+cf.Name]; ok != cf.Stored {
			t.Errorf("%s: stored %v but the key is present: %v", cf.Name, cf.Stored, ok)
		}
	}
	want := map[string]bool{"config.json": true, "generation_config.json": true, "tokenizer_config.json": true, "special_tokens_map.json": true, "tokenizer.model": false}
	if fmt.Sprint(stored) != fmt.Sprint(want) {
		t.Errorf("companion files %v, want %v", stored, want)
	}

	back := filepath.Join(t.TempDir(), "back.safetensors")
	runOK(t, "decode", nwc, "-o", back, "--quiet")
	models := []string{nwc, back}
	if raceEnabled {
		models = models[:1] // one evaluation is enough to race-check
	}
	for _, model := range models {
		var r struct {
			Tokens int     `json:"tokens"`
			NLL    float64 `json:"nll_per_token"`
		}
		out := runOK(t, "eval", "ppl", "--model", model, "--tokenizer", f.tok, "--text", f.text, "--json")
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v in %q", err, out)
		}
		if r.Tokens != 6443 || math.Abs(r.NLL-1.6961) > 0.0005 {
			t.Errorf("%s: eval ppl = %+v, want 6443 tokens at 1.6961 nats", filepath.Base(model), r)
		}
		t.Logf("| eval ppl on %s alone (from a sharded HF checkpoint) | 0 | %d tokens, %.4f nats/token | %d metadata keys |", filepath.Base(model), r.Tokens, r.NLL, len(md))
	}

	// Without the companion files (the library's default) the .nwc alone
	// has no configuration.
	src, err := safetensors.OpenPath(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bare := filepath.Join(elsewhere, "bare.nwc")
	if _, err := convert.ToNWC(context.Background(), src, bare, nil); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"eval", "ppl", "--model", bare, "--tokenizer", f.tok, "--text", f.text}, &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), "invalid config") {
		t.Errorf("eval of a .nwc without config.json: exit %d, %q; want a config error", code, stderr.String())
	}
}

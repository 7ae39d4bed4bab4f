package llama

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/safetensors"
)

const tinyHFConfig = `{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8,
 "intermediate_size": 12, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
 "vocab_size": 16, "max_position_embeddings": 16, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
 "tie_word_embeddings": false, "hidden_act": "silu", "rope_scaling": null, "attention_bias": false,
 "torch_dtype": "float32", "head_dim": 4}`

// TestLoadHFConfig loads a Hugging Face checkpoint whose configuration is
// only in the config.json beside it, by directory and by file.
func TestLoadHFConfig(t *testing.T) {
	cfg := tinyConfig
	cfg.TiedEmbeddings = false
	src := randomSource(cfg, 33)
	hf := hfSource(cfg, src)
	dir := t.TempDir()
	file := filepath.Join(dir, "model.safetensors")
	h := &safetensors.Header{Metadata: map[string]string{"format": "pt"}}
	names := make([]string, 0, len(hf.data))
	for name := range hf.data {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		h.Tensors = append(h.Tensors, safetensors.TensorInfo{Name: name, DType: safetensors.F32, Shape: hf.shapes[name]})
	}
	err := safetensors.WriteFile(file, h, func(name string) ([]byte, error) {
		b := make([]byte, 4*len(hf.data[name]))
		for i, v := range hf.data[name] {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(file); !errors.Is(err, ErrConfig) {
		t.Errorf("without config.json: %v, want ErrConfig", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(tinyHFConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	want, err := New(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, file} {
		got, err := Load(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		sameWeights(t, p, got, want)
	}
}

func TestConfigFromJSONRefuses(t *testing.T) {
	edit := func(old, new string) string {
		if !strings.Contains(tinyHFConfig, old) {
			t.Fatalf("no %q in the config", old)
		}
		return strings.Replace(tinyHFConfig, old, new, 1)
	}
	for _, tc := range []struct{ name, json string }{
		{"mistral", edit(`"model_type": "llama"`, `"model_type": "mistral"`)},
		{"rope scaling", edit(`"rope_scaling": null`, `"rope_scaling": {"type": "linear", "factor": 2.0}`)},
		{"gelu", edit(`"hidden_act": "silu"`, `"hidden_act": "gelu"`)},
		{"attention bias", edit(`"attention_bias": false`, `"attention_bias": true`)},
		{"head dim", edit(`"head_dim": 4`, `"head_dim": 3`)},
		{"malformed", tinyHFConfig[:40]},
		{"huge", `{"x": "` + strings.Repeat("a", maxConfigSize) + `"}`},
	} {
		if _, err := ConfigFromJSON(strings.NewReader(tc.json)); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", tc.name, err)
		}
	}
	md, err := ConfigFromJSON(strings.NewReader(tinyHFConfig))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ConfigFromMetadata(md)
	if err != nil {
		t.Fatal(err)
	}
	want := tinyConfig
	want.TiedEmbeddings = false
	if cfg != want {
		t.Errorf("config %+v, want %+v", cfg, want)
	}
}

// FuzzConfigFromJSON: any config.json gives a configuration or an error,
// never a panic.
func FuzzConfigFromJSON(f *testing.F) {
	f.Add([]byte(tinyHFConfig))
	f.Add([]byte(`{"hidden_size": 1e308, "num_attention_heads": -1, "head_dim": 0}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		md, err := ConfigFromJSON(strings.NewReader(string(data)))
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not match ErrConfig", err)
			}
			return
		}
		if cfg, err := ConfigFromMetadata(md); err == nil {
			if err := cfg.Validate(); err != nil {
				t.Fatalf("ConfigFromMetadata returned an invalid config: %v", err)
			}
		}
	})
}

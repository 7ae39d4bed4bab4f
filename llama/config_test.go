package llama

import (
	"errors"
	"testing"
)

// storiesMetadata is the __metadata__ of stories260K.safetensors.
var storiesMetadata = map[string]string{
	"dim": "64", "format": "pt", "hidden_dim": "172", "max_seq_len": "512",
	"n_heads": "8", "n_kv_heads": "4", "n_layers": "5", "norm_eps": "1e-5",
	"rope":            "interleaved pairs (Meta layout), theta=10000",
	"source":          "karpathy/tinyllamas stories260K (llama2.c legacy .bin)",
	"tied_embeddings": "true", "vocab_size": "512",
}

var storiesConfig = Config{
	Dim: 64, HiddenDim: 172, NLayers: 5, NHeads: 8, NKVHeads: 4, VocabSize: 512,
	SeqLen: 512, NormEps: 1e-5, RopeTheta: 10000, TiedEmbeddings: true,
}

func TestConfigFromMetadata(t *testing.T) {
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	hf := map[string]string{
		"hidden_size": "64", "intermediate_size": "172", "num_hidden_layers": "5",
		"num_attention_heads": "8", "num_key_value_heads": "4", "vocab_size": "512",
		"max_position_embeddings": "512", "rms_norm_eps": "1e-05", "rope_theta": "10000.0",
		"tie_word_embeddings": "True",
	}
	theta := storiesConfig
	theta.RopeTheta = 500000
	mha := storiesConfig
	mha.NKVHeads = 8
	untied := storiesConfig
	untied.TiedEmbeddings = false
	tests := []struct {
		name    string
		md      map[string]string
		want    Config
		wantErr error
	}{
		{"stories", storiesMetadata, storiesConfig, nil},
		{"hf", hf, storiesConfig, nil},
		{"roundtrip", storiesConfig.Metadata(), storiesConfig, nil},
		{"rope-theta-key", with(storiesMetadata, "rope_theta", "500000"), theta, nil},
		{"rope-theta-string", with(storiesMetadata, "rope", "theta=5e5, interleaved"), theta, nil},
		{"defaults", with(storiesMetadata, "n_kv_heads", "", "n_heads", "8", "rope", "", "norm_eps", "", "tied_embeddings", ""), func() Config { c := mha; c.TiedEmbeddings = false; return c }(), nil},
		{"untied", with(storiesMetadata, "tied_embeddings", "false"), untied, nil},
		{"missing-dim", with(storiesMetadata, "dim", ""), Config{}, ErrConfig},
		{"bad-int", with(storiesMetadata, "n_layers", "five"), Config{}, ErrConfig},
		{"bad-eps", with(storiesMetadata, "norm_eps", "tiny"), Config{}, ErrConfig},
		{"bad-bool", with(storiesMetadata, "tied_embeddings", "maybe"), Config{}, ErrConfig},
		{"bad-theta", with(storiesMetadata, "rope", "theta=x"), Config{}, ErrConfig},
		{"bad-theta-key", with(storiesMetadata, "rope_theta", "-1"), Config{}, ErrConfig},
		{"heads-not-dividing", with(storiesMetadata, "n_heads", "6"), Config{}, ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConfigFromMetadata(tt.md)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("config = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	mod := func(f func(*Config)) Config {
		c := storiesConfig
		f(&c)
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"stories", storiesConfig, true},
		{"zero-dim", mod(func(c *Config) { c.Dim = 0 }), false},
		{"negative-layers", mod(func(c *Config) { c.NLayers = -1 }), false},
		{"huge-vocab", mod(func(c *Config) { c.VocabSize = 1 << 30 }), false},
		{"dim-heads", mod(func(c *Config) { c.NHeads = 5 }), false},
		{"odd-head", mod(func(c *Config) { c.Dim = 24; c.NHeads = 8 }), false},
		{"kv-heads", mod(func(c *Config) { c.NKVHeads = 3 }), false},
		{"kv-more-than-q", mod(func(c *Config) { c.NKVHeads = 16 }), false},
		{"nan-eps", mod(func(c *Config) { c.NormEps = float32(nan()) }), false},
		{"zero-theta", mod(func(c *Config) { c.RopeTheta = 0 }), false},
		{"overflow", mod(func(c *Config) {
			c.Dim = 1 << 24
			c.NHeads = 1
			c.NKVHeads = 1
			c.HiddenDim = 1 << 24
			c.NLayers = 1 << 24
		}), false},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrConfig)) {
			t.Errorf("%s: Validate() = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	if got := storiesConfig.HeadDim(); got != 8 {
		t.Errorf("HeadDim() = %d, want 8", got)
	}
	if got := storiesConfig.KVDim(); got != 32 {
		t.Errorf("KVDim() = %d, want 32", got)
	}
}

func nan() float64 {
	var zero float64
	return zero / zero
}

package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nwcodec/nwc/calib"
	"github.com/nwcodec/nwc/internal/shareddata"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/tokenizer"
)

// hfCopy writes a Hugging Face-layout copy of a llama2.c-layout model into
// a new directory: model.safetensors under Hugging Face names with
// rotate-half query and key rows, config.json and tokenizer.json.
func hfCopy(t *testing.T, model, tokPath string, opt llama.HFSaveOptions, topt tokenizer.HFOptions) string {
	t.Helper()
	m, err := llama.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := llama.SaveHF(dir, m, opt); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.WriteHF(f, topt); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func evalNLL(t *testing.T, model, tok, text string) (int, float64) {
	t.Helper()
	var r struct {
		Tokens int     `json:"tokens"`
		NLL    float64 `json:"nll_per_token"`
	}
	out := runOK(t, "eval", "ppl", "--model", model, "--tokenizer", tok, "--text", text, "--json")
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	return r.Tokens, r.NLL
}

// TestHFLayout evaluates and calibrates Hugging Face-layout copies of the
// shared llama2.c checkpoints (the tied embedding stored as
// model.embed_tokens.weight or only as lm_head.weight, the tokenizer as
// tokenizer.json) and checks that they give the llama2.c layout's token
// count and nll within 1e-4 and the same Hessians, weight by weight.
func TestHFLayout(t *testing.T) {
	text := shareddata.Path(t, "text", "tinystories-dev.txt")
	type ckpt struct{ label, model, tok string }
	ckpts := []ckpt{{"stories260K", shareddata.Path(t, "stories260K", "stories260K.safetensors"), shareddata.Path(t, "stories260K", "tok512.bin")}}
	if !raceEnabled && !testing.Short() {
		ckpts = append(ckpts, ckpt{"stories15M", shareddata.Path(t, "stories15M", "stories15M.safetensors"), shareddata.Path(t, "stories15M", "tokenizer.bin")})
	}
	for _, c := range ckpts {
		for _, v := range []struct {
			name string
			opt  llama.HFSaveOptions
			topt tokenizer.HFOptions
		}{
			{"embed-tokens", llama.HFSaveOptions{}, tokenizer.HFOptions{}},
			{"lm-head-only", llama.HFSaveOptions{LMHeadOnly: true}, tokenizer.HFOptions{Metaspace: true}},
		} {
			t.Run(c.label+"/"+v.name, func(t *testing.T) {
				if (raceEnabled || c.label == "stories15M") && !v.opt.LMHeadOnly {
					t.Skip("one variant suffices under the race detector and for the larger model")
				}
				dir := hfCopy(t, c.model, c.tok, v.opt, v.topt)
				hfTok := filepath.Join(dir, "tokenizer.json")
				n0, nll0 := evalNLL(t, c.model, c.tok, text)
				n1, nll1 := evalNLL(t, dir, hfTok, text)
				if n0 != n1 || math.Abs(nll0-nll1) > 1e-4 {
					t.Errorf("Hugging Face layout: %d tokens at %.6f nats; llama2.c layout: %d at %.6f", n1, nll1, n0, nll0)
				}
				t.Logf("%s: %d tokens, nll %.6f (llama2.c layout) and %.6f (Hugging Face layout)", c.label, n0, nll0, nll1)

				h0 := filepath.Join(t.TempDir(), "h0.safetensors")
				h1 := filepath.Join(t.TempDir(), "h1.safetensors")
				runOK(t, "calibrate", "--model", c.model, "--tokenizer", c.tok, "--text", text, "-o", h0, "--quiet")
				runOK(t, "calibrate", "--model", dir, "--tokenizer", hfTok, "--text", text, "-o", h1, "--quiet")
				s0, err := calib.ReadHessians(h0)
				if err != nil {
					t.Fatal(err)
				}
				s1, err := calib.ReadHessians(h1)
				if err != nil {
					t.Fatal(err)
				}
				m, err := llama.Load(dir)
				if err != nil {
					t.Fatal(err)
				}
				if len(s0.Weights()) != len(s1.Weights()) || len(s0.Weights()) == 0 {
					t.Fatalf("%d and %d weights calibrated", len(s0.Weights()), len(s1.Weights()))
				}
				for _, name := range s0.Weights() {
					a, _ := s0.Hessian(name)
					b, ok := s1.Hessian(m.CheckpointName(name))
					if !ok {
						t.Fatalf("no Hessian for %s (%s) in the Hugging Face layout's file", m.CheckpointName(name), name)
					}
					if a.Tokens != b.Tokens || !slices.Equal(a.Data, b.Data) {
						t.Errorf("%s: Hessians differ between the layouts", name)
					}
				}
				if v.opt.LMHeadOnly && m.CheckpointName(llama.NameEmbedding) != "lm_head.weight" {
					t.Errorf("embedding loaded from %s, want lm_head.weight", m.CheckpointName(llama.NameEmbedding))
				}
			})
		}
	}
}

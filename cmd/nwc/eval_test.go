package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/internal/shareddata"
	"github.com/nwcodec/nwc/safetensors"
)

// storiesFiles returns the shared stories260K checkpoint in its three
// forms (the .nwc converted losslessly here), the tokenizer and the dev
// text.
type storiesFiles struct {
	bin, st, nwc, tok, text string
}

func stories(t *testing.T) storiesFiles {
	t.Helper()
	f := storiesFiles{
		bin:  shareddata.Path(t, "stories260K", "stories260K.bin"),
		st:   shareddata.Path(t, "stories260K", "stories260K.safetensors"),
		tok:  shareddata.Path(t, "stories260K", "tok512.bin"),
		text: shareddata.Path(t, "text", "tinystories-dev.txt"),
	}
	src, err := safetensors.OpenPath(f.st)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	f.nwc = filepath.Join(t.TempDir(), "stories260K.nwc")
	if _, err := convert.ToNWC(context.Background(), src, f.nwc, nil); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestEvalPPLStories reproduces the reference 1.6961 nats/token of the
// original stories260K weights from each container.
func TestEvalPPLStories(t *testing.T) {
	f := stories(t)
	for _, model := range []string{f.bin, f.st, f.nwc} {
		t.Run(filepath.Ext(model), func(t *testing.T) {
			if raceEnabled && model != f.nwc {
				t.Skip("race detector: one container suffices to race-check eval; the others run without -race")
			}
			var r struct {
				Tokens int     `json:"tokens"`
				NLL    float64 `json:"nll_per_token"`
				PPL    float64 `json:"ppl"`
			}
			out := runOK(t, "eval", "ppl", "--model", model, "--tokenizer", f.tok, "--text", f.text, "--json")
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("%v in %q", err, out)
			}
			if r.Tokens != 6443 || math.Abs(r.NLL-1.6961) > 0.0005 || math.Abs(r.PPL-math.Exp(r.NLL)) > 1e-9 {
				t.Errorf("eval ppl = %+v, want 6443 tokens at 1.6961 ± 0.0005 nats and ppl = exp(nll)", r)
			}
		})
	}
}

func TestEvalGenerateStories(t *testing.T) {
	f := stories(t)
	const want = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."
	models := []string{f.bin, f.nwc}
	if raceEnabled {
		models = models[1:] // a full evaluation per container is too slow under -race
	}
	for _, model := range models {
		out := runOK(t, "eval", "generate", "--model", model, "--tokenizer", f.tok, "--prompt", "Once upon a time", "-n", "64")
		if !strings.HasPrefix(out, want) {
			t.Errorf("%s: generate = %q, want prefix %q", filepath.Base(model), out, want)
		}
	}
	if raceEnabled {
		return
	}
	text := runOK(t, "eval", "ppl", "--model", f.bin, "--tokenizer", f.tok, "--text", f.text)
	if !strings.Contains(text, "6443 tokens, 1.696") {
		t.Errorf("eval ppl text output %q", text)
	}
}

// TestEvalKLStories compares models with the original: the lossless .nwc
// has exactly zero divergence, a 4-bit one a small positive one.
func TestEvalKLStories(t *testing.T) {
	if raceEnabled {
		t.Skip("race detector: two full evaluations are too slow; eval is race-checked by TestEvalPPLStories")
	}
	f := stories(t)
	lossy := filepath.Join(t.TempDir(), "s4.nwc")
	runOK(t, "convert", f.st, "-o", lossy, "--codec", "ecsq", "--bits", "4")
	for _, tc := range []struct {
		model    string
		min, max float64
	}{{f.nwc, 0, 0}, {lossy, 0.01, 1}} {
		var r struct {
			Tokens int     `json:"tokens"`
			KL     float64 `json:"kl_per_token"`
		}
		out := runOK(t, "eval", "kl", "--model", tc.model, "--ref", f.st, "--tokenizer", f.tok, "--text", f.text, "--json")
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v in %q", err, out)
		}
		if r.Tokens != 6443 || r.KL < tc.min || r.KL > tc.max {
			t.Errorf("%s: eval kl = %+v, want 6443 tokens and KL in [%v, %v]", filepath.Base(tc.model), r, tc.min, tc.max)
		}
	}
}

func TestEvalUsage(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.bin")
	empty := filepath.Join(dir, "empty.txt")
	if err := os.WriteFile(empty, []byte("\n  \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"eval"}, 2},
		{[]string{"eval", "bogus"}, 2},
		{[]string{"eval", "ppl", "--model", missing}, 2},
		{[]string{"eval", "ppl", "--model", missing, "--tokenizer", missing, "--text", empty}, 2},
		{[]string{"eval", "ppl", "--model", missing, "--tokenizer", missing, "--text", empty, "extra"}, 2},
		{[]string{"eval", "generate", "--model", missing, "--tokenizer", missing, "-n", "-1"}, 2},
		{[]string{"eval", "generate", "--tokenizer", missing}, 2},
		{[]string{"eval", "kl", "--model", missing, "--tokenizer", missing, "--text", empty}, 2},
		{[]string{"eval", "kl", "--model", missing, "--ref", missing, "--tokenizer", missing, "--text", empty}, 2},
		{[]string{"calibrate", "--model", missing, "--tokenizer", missing, "--text", empty}, 2},
		{[]string{"calibrate", "--model", missing, "--tokenizer", missing, "--text", empty, "-o", filepath.Join(dir, "h.safetensors"), "--max-tokens", "-3"}, 2},
	} {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != tc.code || errb.Len() == 0 {
			t.Errorf("nwc %s: exit %d (stderr %q), want %d with a message", strings.Join(tc.args, " "), code, errb.String(), tc.code)
		}
	}
}

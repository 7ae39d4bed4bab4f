package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
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

// TestEvalGenerateSampling runs eval generate on stories15M: temperature 0
// reproduces the reference greedy story, sampling is deterministic for a
// seed, prints one sample per line, and sample i does not depend on
// --count.
func TestEvalGenerateSampling(t *testing.T) {
	if raceEnabled {
		t.Skip("race detector: stories15M generation is too slow")
	}
	model := shareddata.Path(t, "stories15M", "stories15M.safetensors")
	tok := shareddata.Path(t, "stories15M", "tokenizer.bin")
	const want = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine. One day, she saw a big, red ball in the sky. It was the sun!"
	greedy := runOK(t, "eval", "generate", model, "--tokenizer", tok, "--temperature", "0", "-n", "48")
	if !strings.HasPrefix(greedy, want) {
		t.Errorf("greedy stories15M = %q, want prefix %q", greedy, want)
	}
	args := []string{"eval", "generate", "--model", model, "--tokenizer", tok, "--temperature", "1", "--top-p", "0.95", "--seed", "7", "-n", "24"}
	two := runOK(t, append(args, "--count", "2")...)
	if again := runOK(t, append(args, "--count", "2")...); again != two {
		t.Errorf("same seed, different samples:\n%s\n%s", two, again)
	}
	lines := strings.Split(strings.TrimSuffix(two, "\n"), "\n")
	if len(lines) != 2 || lines[0] == lines[1] || !strings.HasPrefix(lines[0], "Once upon a time") {
		t.Errorf("--count 2 printed %q, want two different samples continuing the prompt", lines)
	}
	if one := runOK(t, append(args, "--count", "1")...); one != lines[0]+"\n" {
		t.Errorf("--count 1 gave %q, want the first of --count 2's samples %q", one, lines[0])
	}
	if other := runOK(t, append(slices.Clone(args[:len(args)-4]), "--seed", "8", "-n", "24", "--count", "1")...); other == lines[0]+"\n" {
		t.Errorf("seeds 7 and 8 gave the same sample %q", other)
	}
}

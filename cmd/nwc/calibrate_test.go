package main

import (
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"testing"

	"github.com/nwcodec/nwc/calib"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/tokenizer"
)

// TestCalibrateStories runs `nwc calibrate` on stories260K and checks the
// file against llama.Calibrate run directly.
func TestCalibrateStories(t *testing.T) {
	f := stories(t)
	const maxTokens = 1500
	for _, tc := range []struct {
		model string
		f64   bool
	}{{f.bin, false}, {f.nwc, true}} {
		if raceEnabled && !tc.f64 {
			continue // under -race one pass (the .nwc, float64 one) is enough to check for races
		}
		out := filepath.Join(t.TempDir(), "h.safetensors")
		args := []string{"calibrate", "--model", tc.model, "--tokenizer", f.tok, "--text", f.text,
			"-o", out, "--max-tokens", "1500", "--json"}
		if tc.f64 {
			args = append(args, "--f64")
		}
		var summary struct{ Tokens, Weights, Hessians int }
		if err := json.Unmarshal([]byte(runOK(t, args...)), &summary); err != nil {
			t.Fatal(err)
		}
		// 5 layers × 7 matrices plus the tied classifier; one stored
		// Hessian per distinct input: wq (for wq, wk, wv), wo, w1 (for
		// w1, w3), w2, and the classifier's.
		if summary.Tokens != maxTokens || summary.Weights != 36 || summary.Hessians != 21 {
			t.Errorf("summary %+v", summary)
		}
		set, err := calib.ReadHessians(out)
		if err != nil {
			t.Fatal(err)
		}
		if set.F64 != tc.f64 || set.Tokens != maxTokens || set.Metadata["model"] != filepath.Base(tc.model) {
			t.Errorf("file: F64 %v, tokens %d, metadata %v", set.F64, set.Tokens, set.Metadata)
		}

		m, err := llama.Load(tc.model)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := tokenizer.Load(f.tok)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := llama.LoadDocs(f.text, tok)
		if err != nil {
			t.Fatal(err)
		}
		hs, err := llama.Calibrate(context.Background(), m, docs, m.Config().SeqLen, maxTokens)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range m.Names() {
			key, ok := m.HessianKey(name)
			got, found := set.Hessian(name)
			if ok != found {
				t.Fatalf("%s: in file %v, linear %v", name, found, ok)
			}
			if !ok {
				continue
			}
			if under, _ := set.StoredUnder(name); under != key {
				t.Errorf("%s stored under %s, want %s", name, under, key)
			}
			want, _ := hs.Get(key)
			mean := want.Mean()
			tol := 1e-6
			if tc.f64 {
				tol = 1e-12
			}
			for i, v := range mean {
				if math.Abs(got.Data[i]-v) > tol*math.Max(1, math.Abs(v)) {
					t.Fatalf("%s: element %d = %v, want %v", name, i, got.Data[i], v)
				}
			}
		}
	}
}

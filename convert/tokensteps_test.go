package convert_test

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nwcodec/nwc/calib"
	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/safetensors"
)

// TestTokenStepsStories converts stories260K at 3 bits per weight with
// and without token steps, calibrated on the first stories: with them the
// embedding rows of the tokens the calibration text uses most must come
// out with less error, and those of tokens it never uses with more, at
// the same file rate.
func TestTokenStepsStories(t *testing.T) {
	in, docs := convert.Stories260K(t)
	calDocs := docs[:1]
	m, err := llama.Load(in)
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.Config()
	hs, err := llama.Calibrate(context.Background(), m, calDocs, cfg.SeqLen, 0)
	if err != nil {
		t.Fatal(err)
	}
	set, err := calib.FromLlama(m, hs)
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, cfg.VocabSize)
	for _, d := range calDocs {
		for _, tok := range d {
			counts[tok]++
		}
	}
	order := make([]int, cfg.VocabSize)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return counts[b] - counts[a] })
	common := order[:32]
	var unseen []int
	for tok, c := range counts {
		if c == 0 {
			unseen = append(unseen, tok)
		}
	}
	if len(unseen) < 32 || counts[common[len(common)-1]] < 3 {
		t.Fatalf("calibration text uses %d of %d tokens, the 32nd most common %d times: the test needs rare and common tokens", cfg.VocabSize-len(unseen), cfg.VocabSize, counts[common[len(common)-1]])
	}
	emb, _, _ := m.Tensor(llama.NameEmbedding)
	dim := cfg.Dim
	relErr := func(q *llama.Model, toks []int) float64 {
		got, _, _ := q.Tensor(llama.NameEmbedding)
		var e, s float64
		for _, tok := range toks {
			for i := tok * dim; i < (tok+1)*dim; i++ {
				d := float64(got[i] - emb[i])
				e += d * d
				s += float64(emb[i]) * float64(emb[i])
			}
		}
		return e / s
	}
	res := map[bool][2]float64{}
	for _, ts := range []bool{false, true} {
		src, err := safetensors.OpenPath(in)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "m.nwc")
		st, err := convert.ToNWC(context.Background(), src, out, &convert.Options{Codec: "nwc", Bits: 3, Guidance: &convert.Guidance{
			Hessians: set, ColumnSteps: true, LDLQ: true, TokenSteps: ts,
			Calib: &convert.Calibration{Model: m, Docs: calDocs},
		}})
		src.Close()
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(st.BitsPerWeight-3) > 0.03 {
			t.Errorf("token steps %v: file at %.4f bits, want 3 ± 1%%", ts, st.BitsPerWeight)
		}
		q, err := llama.Load(out)
		if err != nil {
			t.Fatal(err)
		}
		res[ts] = [2]float64{relErr(q, common), relErr(q, unseen)}
	}
	t.Logf("embedding relative error, 32 most common / unseen tokens: %.4g / %.4g without token steps, %.4g / %.4g with",
		res[false][0], res[false][1], res[true][0], res[true][1])
	if !(res[true][0] < 0.5*res[false][0]) {
		t.Errorf("common tokens: relative error %.4g with token steps, %.4g without; want well below", res[true][0], res[false][0])
	}
	if !(res[true][1] > res[false][1]) {
		t.Errorf("unseen tokens: relative error %.4g with token steps, %.4g without; want above", res[true][1], res[false][1])
	}
}

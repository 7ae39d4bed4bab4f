package convert_test

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"nwc/calib"
	"nwc/convert"
	"nwc/internal/shareddata"
	"nwc/llama"
	"nwc/safetensors"
	"nwc/tokenizer"
)

// TestSequentialStories converts stories260K at 4 bits per weight with
// and without sequential guidance, calibrating on the first stories of
// the text and judging on the others: sequential guidance must move the
// predictions on text it has not seen clearly less, keep the file at its
// rate and leave the calibration model as it found it.
func TestSequentialStories(t *testing.T) {
	in := shareddata.Path(t, "stories260K", "stories260K.safetensors")
	m, err := llama.Load(in)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(shareddata.Path(t, "stories260K", "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := llama.LoadDocs(shareddata.Path(t, "text", "tinystories-dev.txt"), tok)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) < 4 {
		t.Fatalf("%d stories in the text, want at least 4", len(docs))
	}
	calDocs, evalDocs := docs[:len(docs)/2], docs[len(docs)/2:]
	if raceEnabled {
		// Enough to run every concurrent path; the comparison needs
		// the full run.
		calDocs, evalDocs = [][]int{docs[0][:200]}, [][]int{docs[1][:200]}
	}
	window := m.Config().SeqLen
	hs, err := llama.Calibrate(m, calDocs, window, 0)
	if err != nil {
		t.Fatal(err)
	}
	set, err := calib.FromLlama(m, hs)
	if err != nil {
		t.Fatal(err)
	}
	before := m.Clone()
	kl := map[bool]float64{}
	for _, seq := range []bool{false, true} {
		src, err := safetensors.OpenPath(in)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "m.nwc")
		st, err := convert.ToNWC(src, out, &convert.Options{Codec: "ecsq", Bits: 4, Guidance: &convert.Guidance{
			Hessians: set, ColumnSteps: true, LDLQ: true, Sequential: seq,
			Calib: &convert.Calibration{Model: m, Docs: calDocs},
		}})
		src.Close()
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(st.BitsPerWeight-4) > 0.04 {
			t.Errorf("sequential %v: file at %.4f bits, want 4 ± 1%%", seq, st.BitsPerWeight)
		}
		q, err := llama.Load(out)
		if err != nil {
			t.Fatal(err)
		}
		r, err := llama.EvalKL(m, q, evalDocs, window)
		if err != nil {
			t.Fatal(err)
		}
		kl[seq] = r.Mean()
	}
	t.Logf("held-out KL from the original: %.5f nats/token plain, %.5f sequential", kl[false], kl[true])
	if raceEnabled {
		t.Log("race detector on: calibrated on 200 tokens, the KL comparison is left to the plain run")
	} else if !(kl[true] < 0.9*kl[false]) {
		t.Errorf("sequential guidance: held-out KL %.5f, without %.5f; want at least 10 %% less", kl[true], kl[false])
	}
	for name, w := range before.Weights() {
		got, _, _ := m.Tensor(name)
		if !slices.Equal(got, w) {
			t.Fatalf("sequential guidance left %s of the calibration model changed", name)
		}
	}
}

// TestSequentialNeedsModel: sequential guidance without a model to run is
// an error, not a silent fallback.
func TestSequentialNeedsModel(t *testing.T) {
	in := shareddata.Path(t, "stories260K", "stories260K.safetensors")
	src, err := safetensors.OpenPath(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, err = convert.ToNWC(src, filepath.Join(t.TempDir(), "m.nwc"), &convert.Options{Codec: "ecsq", Bits: 4,
		Guidance: &convert.Guidance{Sequential: true}})
	if err == nil {
		t.Error("no error")
	}
}

package convert_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/calib"
	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/internal/shareddata"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/safetensors"
)

// TestSequentialStories converts stories260K at 4 bits per weight with
// and without sequential guidance, calibrating on the first stories of
// the text and judging on the others: sequential guidance must move the
// predictions on text it has not seen clearly less, keep the file at its
// rate and leave the calibration model as it found it. The same runs on a
// copy of the checkpoint with Hugging Face names and query/key row order
// must reach about the same divergences: guidance has to find its
// Hessians and model weights under either naming.
func TestSequentialStories(t *testing.T) {
	in, docs := convert.Stories260K(t)
	if len(docs) < 4 {
		t.Fatalf("%d stories in the text, want at least 4", len(docs))
	}
	calDocs, evalDocs := docs[:len(docs)/2], docs[len(docs)/2:]
	if raceEnabled {
		// Enough to run every concurrent path; the comparison needs
		// the full run.
		calDocs, evalDocs = [][]int{docs[0][:200]}, [][]int{docs[1][:200]}
	}
	orig, err := llama.Load(in)
	if err != nil {
		t.Fatal(err)
	}
	hf := writeHF(t, in, orig.Config().HeadDim())
	kl := map[string]float64{}
	for _, path := range []string{in, hf} {
		m, err := llama.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		window := m.Config().SeqLen
		hs, err := llama.Calibrate(context.Background(), m, calDocs, window, 0)
		if err != nil {
			t.Fatal(err)
		}
		set, err := calib.FromLlama(m, hs)
		if err != nil {
			t.Fatal(err)
		}
		before := m.Clone()
		for _, seq := range []bool{false, true} {
			src, err := safetensors.OpenPath(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range set.Weights() {
				if _, ok := src.Tensor(w); !ok {
					t.Fatalf("%s: Hessian for %s, which the checkpoint does not have", filepath.Base(path), w)
				}
			}
			out := filepath.Join(t.TempDir(), "m.nwc")
			st, err := convert.ToNWC(context.Background(), src, out, &convert.Options{Codec: "ecsq", Bits: 4, Guidance: &convert.Guidance{
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
			r, err := llama.EvalKL(orig, q, evalDocs, window)
			if err != nil {
				t.Fatal(err)
			}
			kl[fmt.Sprint(path == hf, seq)] = r.Mean()
		}
		for name, w := range before.Weights() {
			got, _, _ := m.Tensor(name)
			if !slices.Equal(got, w) {
				t.Fatalf("sequential guidance left %s of the calibration model changed", name)
			}
		}
	}
	t.Logf("held-out KL from the original, nats/token: plain %.5f, sequential %.5f; Hugging Face names: %.5f, %.5f",
		kl["false false"], kl["false true"], kl["true false"], kl["true true"])
	if raceEnabled {
		t.Log("race detector on: calibrated on 200 tokens, the KL comparisons are left to the plain run")
		return
	}
	for _, h := range []string{"false", "true"} {
		if plain, seq := kl[h+" false"], kl[h+" true"]; !(seq < 0.9*plain) {
			t.Errorf("Hugging Face names %s: held-out KL %.5f with sequential guidance, %.5f without; want at least 10 %% less", h, seq, plain)
		}
	}
	for _, seq := range []string{"false", "true"} {
		if a, b := kl["false "+seq], kl["true "+seq]; math.Abs(b/a-1) > 0.15 {
			t.Errorf("sequential %s: held-out KL %.5f with Hugging Face names, %.5f without; want within 15 %%", seq, b, a)
		}
	}
}

// writeHF writes a copy of the llama2.c-named checkpoint in with Hugging
// Face names, the query and key rows permuted for rotate-half rotary
// embeddings as the Hugging Face conversion script does.
func writeHF(t *testing.T, in string, headDim int) string {
	t.Helper()
	src, err := safetensors.OpenPath(in)
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
	rename := func(name string) string {
		switch name {
		case llama.NameEmbedding:
			return "model.embed_tokens.weight"
		case llama.NameNorm:
			return "model.norm.weight"
		case llama.NameOutput:
			return "lm_head.weight"
		}
		rest, _ := strings.CutPrefix(name, "layers.")
		idx, suffix, _ := strings.Cut(rest, ".")
		return "model.layers." + idx + "." + suffixes[strings.TrimSuffix(suffix, ".weight")] + ".weight"
	}
	h := &safetensors.Header{Metadata: src.Metadata()}
	var data [][]byte
	for _, ti := range src.Tensors() {
		b, err := src.ReadTensor(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(ti.Name, ".wq.weight") || strings.HasSuffix(ti.Name, ".wk.weight") {
			rows, rowBytes := int(ti.Shape[0]), len(b)/int(ti.Shape[0])
			perm := make([]byte, len(b))
			for hd := 0; hd < rows/headDim; hd++ {
				for j := range headDim / 2 {
					for k := range 2 {
						dst, from := hd*headDim+k*headDim/2+j, hd*headDim+2*j+k
						copy(perm[dst*rowBytes:(dst+1)*rowBytes], b[from*rowBytes:(from+1)*rowBytes])
					}
				}
			}
			b = perm
		}
		ti.Name = rename(ti.Name)
		h.Tensors = append(h.Tensors, ti)
		data = append(data, b)
	}
	out := filepath.Join(t.TempDir(), "hf.safetensors")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := safetensors.NewWriter(f, h)
	if err != nil {
		t.Fatal(err)
	}
	for i, ti := range h.Tensors {
		if err := w.WriteTensor(ti.Name, data[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out
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
	_, err = convert.ToNWC(context.Background(), src, filepath.Join(t.TempDir(), "m.nwc"), &convert.Options{Codec: "ecsq", Bits: 4,
		Guidance: &convert.Guidance{Sequential: true}})
	if err == nil {
		t.Error("no error")
	}
}

package bench_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/bench"
	"github.com/nwcodec/nwc/calib"
	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/internal/shareddata"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/safetensors"
	"github.com/nwcodec/nwc/tokenizer"
)

// gaussianCheckpoint writes two Gaussian matrices and a bias.
func gaussianCheckpoint(t *testing.T, dir string) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	data := map[string][]byte{}
	h := &safetensors.Header{}
	for name, shape := range map[string][]int64{"a.weight": {256, 128}, "b.weight": {128, 256}, "b.bias": {128}} {
		n := shape[0]
		if len(shape) > 1 {
			n *= shape[1]
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.02)
		}
		data[name], _ = dtype.FromFloat32(nil, v, safetensors.F32)
		h.Tensors = append(h.Tensors, safetensors.TensorInfo{Name: name, DType: safetensors.F32, Shape: shape})
	}
	path := filepath.Join(dir, "g.safetensors")
	if err := safetensors.WriteFile(path, h, func(n string) ([]byte, error) { return data[n], nil }); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRDAndPlot(t *testing.T) {
	dir := t.TempDir()
	in := gaussianCheckpoint(t, dir)
	pts, err := bench.RD(in, []string{"ecsq", "rtn", "q4k"}, []float64{3, 5}, convert.Options{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 5 { // q4k runs once
		t.Fatalf("%d points, want 5", len(pts))
	}
	for _, p := range pts {
		if p.Codec == "ecsq" && math.Abs(p.BitsPerWeight-p.TargetBits) > 0.01*p.TargetBits {
			t.Errorf("ecsq at %g bits: file has %.4f", p.TargetBits, p.BitsPerWeight)
		}
		if p.SQNRdB <= 0 || p.SQNRdB > p.GaussianBoundDB {
			t.Errorf("%s at %.3f bits: SQNR %.2f dB outside (0, %.2f]", p.Codec, p.BitsPerWeight, p.SQNRdB, p.GaussianBoundDB)
		}
	}
	if pts[1].SQNRdB < pts[0].SQNRdB+9 {
		t.Errorf("ecsq gained only %.2f dB from 3 to 5 bits", pts[1].SQNRdB-pts[0].SQNRdB)
	}
	png := filepath.Join(dir, "rd.png")
	if err := bench.Plot(pts, png); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(png)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("plot is not a PNG (%v)", err)
	}
}

// TestPPL evaluates the original stories260K and one compressed variant.
func TestPPL(t *testing.T) {
	in := shareddata.Path(t, "stories260K", "stories260K.safetensors")
	tok, err := tokenizer.Load(shareddata.Path(t, "stories260K", "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := llama.LoadDocs(shareddata.Path(t, "text", "tinystories-dev.txt"), tok)
	if err != nil {
		t.Fatal(err)
	}
	evals := []bench.EvalSet{{Name: "dev", Docs: docs}, {Name: "first story", Docs: docs[:1], InSample: true}}
	variants := []bench.Variant{{Name: "ecsq", Codec: "ecsq"}}
	pts, err := bench.PPL(in, evals, nil, variants, []float64{6}, convert.Options{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || pts[0].Variant != "fp32" || math.Abs(pts[0].NLL-1.6961) > 0.0005 || pts[0].Tokens != 6443 {
		t.Fatalf("points %+v", pts)
	}
	m, err := llama.Load(in)
	if err != nil {
		t.Fatal(err)
	}
	first, err := llama.EvalNLL(m, docs[:1], 512)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pts {
		if len(p.Sets) != 2 || p.Sets[0].NLL != p.NLL || p.Sets[0].Tokens != 6443 || p.Sets[1].Tokens != first.Tokens || !p.Sets[1].InSample || p.Sets[1].Set != "first story" {
			t.Errorf("%s: sets %+v, want the dev text's and the first story's (%d tokens)", p.Variant, p.Sets, first.Tokens)
		}
	}
	if pts[0].Sets[1].NLL != first.MeanNLL() {
		t.Errorf("fp32 on the first story: %v, eval alone %v", pts[0].Sets[1].NLL, first.MeanNLL())
	}
	if p := pts[1]; p.RelNLL <= 0 || p.RelNLL > 0.05 || math.Abs(p.BitsPerWeight-6) > 0.06 || p.Sets[1].RelNLL != p.Sets[1].NLL/first.MeanNLL()-1 {
		t.Errorf("ecsq at 6 bits: %+v", p)
	}
	guided := []bench.Variant{{Name: "ecsq + LDLQ", Codec: "ecsq", Guidance: &convert.Guidance{LDLQ: true}}}
	if _, err := bench.PPL(in, evals, nil, guided, []float64{6}, convert.Options{}, t.TempDir()); err == nil {
		t.Error("a guided variant without calibration text: no error")
	}
	if _, err := bench.PPL(in, nil, nil, variants, []float64{6}, convert.Options{}, t.TempDir()); err == nil {
		t.Error("no evaluation set: no error")
	}
}

// TestVariantNames: every variant can be named in nwc bench ppl's
// comma-separated --variants, once.
func TestVariantNames(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range bench.Variants(&calib.Set{}) {
		if strings.Contains(v.Name, ",") || strings.TrimSpace(v.Name) != v.Name || seen[v.Name] {
			t.Errorf("variant %q: a comma, surrounding space or a second use of the name", v.Name)
		}
		seen[v.Name] = true
	}
}

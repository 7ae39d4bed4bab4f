package convert_test

import (
	"context"
	"math"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/internal/shareddata"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/safetensors"
)

// TestRateTargets converts the shared checkpoints with ecsq at 2…8 bits
// per weight: the file's honest rate must be within ±1 % of the target,
// and nwc info's figure (from the file alone) must agree.
func TestRateTargets(t *testing.T) {
	rates := [][]float64{{2, 2.5, 3, 4, 5, 6, 7, 8}, {2, 5, 8}} // ppocr_det is larger: fewer points
	for i, f := range realFiles {
		in := shareddata.Path(t, f...)
		for _, bits := range rates[i] {
			src, err := safetensors.OpenPath(in)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "m.nwc")
			st, err := convert.ToNWC(context.Background(), src, out, &convert.Options{Codec: "ecsq", Bits: bits})
			src.Close()
			if err != nil {
				t.Fatal(err)
			}
			if e := math.Abs(st.BitsPerWeight-bits) / bits; e > 0.01 {
				t.Errorf("%s at %g bits: got %.4f (%.2f%% off)", f[1], bits, st.BitsPerWeight, 100*e)
			}
			if got := fileBitsPerWeight(t, out); math.Abs(got-st.BitsPerWeight) > 1e-9 {
				t.Errorf("%s at %g bits: file says %.6f, conversion said %.6f", f[1], bits, got, st.BitsPerWeight)
			}
		}
	}
}

// fileBitsPerWeight computes the honest rate from the file alone.
func fileBitsPerWeight(t *testing.T, path string) float64 {
	t.Helper()
	r, err := reader.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var small, elems uint64
	for _, tt := range r.Tensors() {
		if len(tt.Shape()) < 2 {
			small += tt.StoredBytes()
		} else {
			elems += tt.NumElements()
		}
	}
	return convert.BitsPerWeight(r.Size(), small, elems)
}

// TestTensorBitsAndKeep: per-tensor overrides give matching matrices more
// bits, kept names stay lossless, and the file still meets its target.
func TestTensorBitsAndKeep(t *testing.T) {
	in := shareddata.Path(t, "stories260K", "stories260K.safetensors")
	src, err := safetensors.OpenPath(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := filepath.Join(t.TempDir(), "m.nwc")
	st, err := convert.ToNWC(context.Background(), src, out, &convert.Options{
		Codec:      "ecsq",
		Bits:       4,
		TensorBits: []convert.TensorBits{{Pattern: regexp.MustCompile(`feed_forward\.w2`), Bits: 6}},
		Keep:       []*regexp.Regexp{regexp.MustCompile(`^layers\.0\.attention\.wk`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The overridden matrices count at their own rate in the file's target.
	var all, w2 float64
	for _, ti := range src.Tensors() {
		if len(ti.Shape) >= 2 {
			all += float64(ti.NumElements())
			if regexp.MustCompile(`feed_forward\.w2`).MatchString(ti.Name) {
				w2 += float64(ti.NumElements())
			}
		}
	}
	want := (4*(all-w2) + 6*w2) / all
	if math.Abs(st.BitsPerWeight-want) > 0.01*want {
		t.Errorf("file at %.4f bits, want %.4f ± 1%%", st.BitsPerWeight, want)
	}
	r, err := reader.Open(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	bpw := func(name string) float64 {
		tt, err := r.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		return float64(tt.StoredBytes()) * 8 / float64(tt.NumElements())
	}
	if wk, _ := r.Tensor("layers.0.attention.wk.weight"); wk.Codec() != "lossless" {
		t.Errorf("kept tensor coded with %s", wk.Codec())
	}
	if w2, w1 := bpw("layers.0.feed_forward.w2.weight"), bpw("layers.0.feed_forward.w1.weight"); w2 < w1+1.5 {
		t.Errorf("w2 at %.2f bits vs w1 at %.2f: the 6-bit override did not take", w2, w1)
	}
}

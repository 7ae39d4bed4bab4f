package convert

import (
	"context"
	"flag"
	"github.com/nwcodec/nwc/codec"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/safetensors"
)

var (
	rateModelIn   = flag.String("ratemodel.in", "", "comma-separated checkpoints for TestRateModelReport")
	rateModelArgs = flag.String("ratemodel.codecs", "ecsq", "comma-separated codecs for TestRateModelReport")
)

// TestRateModelReport reports, for the checkpoints given with
// -ratemodel.in, how far the rate model alone (every matrix at the solved
// step) and with the final pass's feedback land from the target, and
// checks the latter is within ±1 %.
func TestRateModelReport(t *testing.T) {
	if *rateModelIn == "" {
		t.Skip("no -ratemodel.in")
	}
	for _, in := range strings.Split(*rateModelIn, ",") {
		for _, id := range strings.Split(*rateModelArgs, ",") {
			for _, bits := range []float64{2, 3, 4, 5, 6} {
				for _, fb := range []bool{false, true} {
					rateFeedback = fb
					src, err := safetensors.OpenPath(in)
					if err != nil {
						t.Fatal(err)
					}
					st, err := ToNWC(context.Background(), src, filepath.Join(t.TempDir(), "m.nwc"), &Options{Codec: id, Bits: bits, Rate: RateModel})
					src.Close()
					rateFeedback = true
					if err != nil {
						t.Fatal(err)
					}
					e := 100 * (st.BitsPerWeight - bits) / bits
					t.Logf("%s %s %g bits feedback %v: %.4f (%+.2f%%), sampled %.3f of the weights", filepath.Base(in), id, bits, fb, st.BitsPerWeight, e, float64(st.SampledWeights)/float64(weightsOf(src)))
					if fb && (e > 1 || e < -1) {
						t.Errorf("%s %s at %g bits: %+.2f%%", filepath.Base(in), id, bits, e)
					}
				}
			}
		}
	}
}

func weightsOf(src safetensors.Source) uint64 {
	var n uint64
	for _, ti := range src.Tensors() {
		if len(ti.Shape) >= 2 {
			n += uint64(ti.NumElements())
		}
	}
	return n
}

func TestRateDebug(t *testing.T) {
	if *rateModelIn == "" {
		t.Skip()
	}
	debugRate = t.Logf
	defer func() { debugRate = nil }()
	src, _ := safetensors.OpenPath(*rateModelIn)
	defer src.Close()
	c, err := newConversion(context.Background(), src, &Options{Codec: "ecsq", Bits: 2.5, Rate: RateModel})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.controlRate(context.Background()); err != nil {
		t.Fatal(err)
	}
	for k, it := range c.items {
		if it.model != nil && stepped(it) {
			t.Logf("%s pts %v planned %.3f", it.info.Name, it.model.pts, c.rate.planned[k])
		}
	}
	st, err := ToNWC(context.Background(), src, filepath.Join(t.TempDir(), "m.nwc"), &Options{Codec: "ecsq", Bits: 2.5, Rate: RateModel, Jobs: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", st)
}

func TestRateCurve(t *testing.T) {
	if *rateModelIn == "" {
		t.Skip()
	}
	src, _ := safetensors.OpenPath(*rateModelIn)
	defer src.Close()
	c, err := newConversion(context.Background(), src, &Options{Codec: *rateModelArgs, Bits: 2.5, Rate: RateModel})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range c.items {
		if !strings.Contains(it.info.Name, "emb") && !strings.Contains(it.info.Name, "layers.3.feed_forward.w1") {
			continue
		}
		xs := []float64{-1.5, -1, -0.75, -0.5, -0.25, 0, 0.5}
		pts, _, _, err := c.sampleTensor(it, xs)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := c.readTensor(it)
		tt := &codec.Tensor{Name: it.info.Name, DType: it.info.DType, Shape: it.shape, Data: data}
		cd, _ := codec.Lookup(it.codec)
		for i, x := range xs {
			o, _ := c.options(it, tt)
			o.Step = math.Exp2(x)
			enc, err := cd.Encode(tt, o)
			if err != nil {
				t.Fatal(err)
			}
			got := float64(storedBytes(enc))
			t.Logf("%s x %.2f: sample %.0f whole %.0f (%+.2f%%) bpw %.3f", it.info.Name, x, pts[i].bytes, got, 100*(pts[i].bytes-got)/got, got*8/float64(it.numel))
		}
	}
}

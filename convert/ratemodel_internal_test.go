package convert

import (
	"context"
	"flag"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/safetensors"
)

var (
	rateModelIn   = flag.String("ratemodel.in", "", "comma-separated checkpoints for TestRateModelReport")
	rateModelArgs = flag.String("ratemodel.codecs", "ecsq", "comma-separated codecs for TestRateModelReport")
	rateModelBits = flag.String("ratemodel.bits", "2,3,4,5,6", "comma-separated targets for TestRateModelReport")
	rateModelFB   = flag.String("ratemodel.feedback", "false,true", "comma-separated feedback settings for TestRateModelReport")
)

// TestRateModelReport reports, for the checkpoints given with
// -ratemodel.in, how far the rate model alone (every matrix at the solved
// step) and with the final pass's feedback land from the target, and
// checks the latter is within ±1 %. Without feedback the file's error is
// the model's first-estimate error: the model predicts the target (its
// ModelBits) at the step it solves.
func TestRateModelReport(t *testing.T) {
	if *rateModelIn == "" {
		t.Skip("no -ratemodel.in")
	}
	for _, in := range strings.Split(*rateModelIn, ",") {
		for _, id := range strings.Split(*rateModelArgs, ",") {
			for _, b := range strings.Split(*rateModelBits, ",") {
				bits, err := strconv.ParseFloat(b, 64)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range strings.Split(*rateModelFB, ",") {
					fb, err := strconv.ParseBool(f)
					if err != nil {
						t.Fatal(err)
					}
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
					t.Logf("%s %s %g bits feedback %v: %.4f (%+.2f%%; model %.4f, at the steps used %.4f), sampled %.3f of the weights", filepath.Base(in), id, bits, fb, st.BitsPerWeight, e, st.ModelBits, st.StepModelBits, float64(st.SampledWeights)/float64(weightsOf(src)))
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

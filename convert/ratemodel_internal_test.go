package convert

import (
	"bytes"
	"context"
	"flag"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/internal/shareddata"
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

// TestSubRowsMatchesSubTensor checks that the rate model's samples read
// row by row from the source (subRows: the whole tensor streamed the
// first time, the sampled rows alone after) are the samples it takes
// from the loaded tensor (subTensor), with the same options.
func TestSubRowsMatchesSubTensor(t *testing.T) {
	src, err := safetensors.OpenPath(shareddata.Path(t, "stories15M", "stories15M.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	c, err := newConversion(context.Background(), src, &Options{Codec: "nwc", Bits: 4})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, it := range c.items {
		if !c.readsRows(it) {
			continue
		}
		n++
		data, err := c.readTensor(it)
		if err != nil {
			t.Fatal(err)
		}
		tn := &codec.Tensor{Name: it.info.Name, DType: it.info.DType, Shape: it.shape, Data: data}
		o, err := c.options(it, tn)
		if err != nil {
			t.Fatal(err)
		}
		type sample struct {
			Sub   *codec.Tensor
			Scale float64
			Ends  []uint64
			View  [2]uint64
			Opts  codec.EncodeOptions
		}
		var want sample
		if want.Sub, want.Scale, want.Ends, want.View, err = c.subTensor(it, tn, o); err != nil {
			t.Fatal(err)
		}
		want.Opts = *o
		// cmp walks a byte slice element by element.
		wantData := want.Sub.Data
		ws := *want.Sub
		ws.Data = nil
		want.Sub = &ws
		for pass := range 2 { // streaming, then the sampled rows alone
			o, err := c.options(it, tn)
			if err != nil {
				t.Fatal(err)
			}
			var got sample
			if got.Sub, got.Scale, got.Ends, got.View, err = c.subRows(it, o); err != nil {
				t.Fatal(err)
			}
			got.Opts = *o
			if !bytes.Equal(got.Sub.Data, wantData) {
				t.Errorf("%s, pass %d: subRows's sample data differs from subTensor's", it.info.Name, pass+1)
			}
			gs := *got.Sub
			gs.Data = nil
			got.Sub = &gs
			// Interrupt is a function, which cmp cannot compare.
			if d := cmp.Diff(want, got, cmpopts.IgnoreFields(codec.EncodeOptions{}, "Interrupt")); d != "" {
				t.Errorf("%s, pass %d: subRows differs from subTensor (-subTensor +subRows):\n%s", it.info.Name, pass+1, d)
			}
		}
	}
	if n == 0 {
		t.Fatal("no tensor is sampled by rows")
	}
}

// sizeEncoder encodes any tensor into one group of size(step) bytes,
// counting its encodes.
type sizeEncoder struct {
	size  func(step float64) int
	calls int
}

func (e *sizeEncoder) Encode(t *codec.Tensor, o *codec.EncodeOptions) (*codec.Encoded, error) {
	e.calls++
	return &codec.Encoded{Groups: []codec.EncodedGroup{{Data: make([]byte, e.size(o.Step))}}}, nil
}

// TestEncodeNear: a tensor whose real slope is far from the one predicted
// reaches its budget through the secant of its own encodes, within
// maxNearEncodes; one already within tolerance is encoded once; and
// when nothing lands within tolerance the closest encode wins.
func TestEncodeNear(t *testing.T) {
	// 100 000 bytes at step 1, falling by 40 000 per doubling.
	real := func(step float64) int { return int(100000 - 40000*math.Log2(step)) }
	for _, tc := range []struct {
		name               string
		size               func(float64) int
		target, tol, slope float64
		calls              int
	}{
		{"on target", real, 100000, 500, -40000, 1},
		{"good slope", real, 90000, 500, -40000, 2},
		// The model's slope is four times too steep: one correction
		// gets a quarter of the way, the secant the rest.
		{"slope too steep", real, 90000, 500, -160000, 3},
		{"rising slope", real, 90000, 500, 1000, 1},
		// Sizes that do not move with the step: the closest (first) wins.
		{"flat", func(float64) int { return 120000 }, 90000, 500, -40000, maxNearEncodes},
	} {
		e := &sizeEncoder{size: tc.size}
		enc, step, err := encodeNear(e, &codec.Tensor{}, &codec.EncodeOptions{}, 1, tc.target, tc.tol, tc.slope)
		if err != nil {
			t.Fatal(err)
		}
		got := float64(len(enc.Groups[0].Data))
		if e.calls != tc.calls {
			t.Errorf("%s: %d encodes, want %d", tc.name, e.calls, tc.calls)
		}
		if got != float64(tc.size(step)) {
			t.Errorf("%s: returned step %v, whose encoding is %v bytes, with an encoding of %v", tc.name, step, tc.size(step), got)
		}
		if tc.name != "flat" && tc.name != "rising slope" && math.Abs(got-tc.target) > tc.tol {
			t.Errorf("%s: %v bytes, want %v ± %v", tc.name, got, tc.target, tc.tol)
		}
	}
}

// TestUseModel: automatic rate control searches exactly up to
// ExactRateMaxWeights lossy weights, or ExactRateGuidedMaxWeights with a
// calibration model, and the explicit modes override both.
func TestUseModel(t *testing.T) {
	guided := &Guidance{Calib: &Calibration{}}
	for _, tc := range []struct {
		weights uint64
		g       *Guidance
		mode    RateMode
		want    bool
	}{
		{ExactRateMaxWeights, nil, RateAuto, false},
		{ExactRateMaxWeights + 16, nil, RateAuto, true},
		{ExactRateMaxWeights + 16, &Guidance{LDLQ: true}, RateAuto, true}, // Hessians without a model
		{ExactRateMaxWeights + 16, guided, RateAuto, false},
		{ExactRateGuidedMaxWeights, guided, RateAuto, false},
		{ExactRateGuidedMaxWeights + 16, guided, RateAuto, true},
		{16, nil, RateModel, true},
		{ExactRateGuidedMaxWeights + 16, guided, RateExact, false},
	} {
		c := &conversion{o: Options{Guidance: tc.g, Rate: tc.mode}, items: []*item{
			{shape: []uint64{16, tc.weights / 16}, numel: tc.weights, bits: 4},
			{shape: []uint64{1 << 30}, numel: 1 << 30, bits: 4}, // a vector: not stepped
		}}
		if got := c.useModel(); got != tc.want {
			t.Errorf("%d weights, guidance %+v, mode %d: rate model %v, want %v", tc.weights, tc.g, tc.mode, got, tc.want)
		}
	}
}

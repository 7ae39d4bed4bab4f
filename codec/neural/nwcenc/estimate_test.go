package nwcenc

import (
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/neural"
	"github.com/nwcodec/nwc/format"
)

// TestEstimate checks that an estimate (codec.EncodeOptions.Estimate) is
// rounded, streamed or loaded whole, and costs within 2 % of what the
// encoder's own choice does at the same step, as rate control assumes;
// and that an encoder forced to the learned transform codes that anyway.
func TestEstimate(t *testing.T) {
	for _, k := range []struct {
		name  string
		t     *codec.Tensor
		force int
		step  float64
	}{
		{"streamed", llmTensor(t, 2003, 300, format.BF16, 3), forceAuto, 0.25},
		{"streamed-coarse", llmTensor(t, 2003, 300, format.BF16, 3), forceAuto, 0.8},
		{"whole", llmTensor(t, 200, 96, format.F32, 4), forceAuto, 0.25},
		{"learned", llmTensor(t, 200, 96, format.F32, 4), forceLearned, 0.25},
	} {
		t.Run(k.name, func(t *testing.T) {
			c := forced(t, k.force)
			o := codec.EncodeOptions{Step: k.step}
			chosen, err := c.Encode(k.t, &o)
			if err != nil {
				t.Fatal(err)
			}
			o.Estimate = true
			est, err := c.Encode(k.t, &o)
			if err != nil {
				t.Fatal(err)
			}
			p, err := neural.ParseParams(est.Params)
			if err != nil {
				t.Fatal(err)
			}
			if want := k.force != forceLearned; p.Plain != want || p.Trellis {
				t.Errorf("estimate coded plain=%v trellis=%v, want plain=%v without the trellis", p.Plain, p.Trellis, want)
			}
			a, b := float64(payload(chosen)), float64(payload(est))
			if r := b/a - 1; r < -0.02 || r > 0.02 {
				t.Errorf("estimate %v bytes against %v chosen (%+.2f %%)", b, a, 100*r)
			}
			t.Logf("estimate %v bytes against %v chosen (%s)", b, a, kind(chosen))
		})
	}
}

package scalarenc

import (
	"math"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/scalar"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/internal/shareddata"
	"github.com/nwcodec/nwc/safetensors"
)

// TestRealWeights codes every matrix of stories260K with each codec at its
// defaults and checks the pooled rate and SQNR against the Gaussian
// figures. ecsq's payload takes 4.03 bpw here, as on Gaussian data at the
// same step, but its side information (scales 0.13, tables 0.06, params
// 0.04 bpw) weighs more on these matrices of 2 K to 33 K weights.
func TestRealWeights(t *testing.T) {
	f, err := safetensors.Open(shareddata.Path(t, "stories260K", "stories260K.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type total struct {
		bytes, n int
		s, e     float64
	}
	totals := map[string]*total{scalar.ECSQ: {}, scalar.RTN: {}, scalar.Q4K: {}}
	for _, ti := range f.Tensors() {
		if len(ti.Shape) != 2 {
			continue
		}
		data, err := f.ReadTensor(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		tn := &codec.Tensor{Name: ti.Name, DType: format.F32, Shape: []uint64{uint64(ti.Shape[0]), uint64(ti.Shape[1])}, Data: data}
		x := floats(t, data, tn.DType)
		for id, tot := range totals {
			c, _ := codec.LookupEncoder(id)
			enc, err := c.Encode(tn, nil)
			if err != nil {
				t.Fatalf("%s %s: %v", id, ti.Name, err)
			}
			got, err := decodeAll(t, id, tn, enc)
			if err != nil {
				t.Fatalf("%s %s: %v", id, ti.Name, err)
			}
			y := floats(t, got, tn.DType)
			for i := range x {
				d := float64(x[i]) - float64(y[i])
				tot.s += float64(x[i]) * float64(x[i])
				tot.e += d * d
			}
			tot.bytes += encodedBytes(enc)
			tot.n += len(x)
		}
	}
	for _, id := range []string{scalar.ECSQ, scalar.RTN, scalar.Q4K} {
		tot := totals[id]
		bpw := float64(8*tot.bytes) / float64(tot.n)
		q := 10 * math.Log10(tot.s/tot.e)
		t.Logf("stories260K, %d weights in matrices: %s %.3f bpw, SQNR %.2f dB", tot.n, id, bpw, q)
		if q < minSQNR[id]-1 {
			t.Errorf("%s: SQNR %.2f dB", id, q)
		}
		if id == scalar.ECSQ && (bpw > 4.3 || q < 22.5) {
			t.Errorf("ecsq: %.3f bpw, SQNR %.2f dB at the default step; want ≤ 4.3 bpw and ≥ 22.5 dB", bpw, q)
		}
	}
}

package convert_test

import (
	"math"
	"testing"

	"nwc/convert"
)

func TestAllocateBits(t *testing.T) {
	sens := []convert.Sensitivity{
		{Name: "a", Elements: 1000, Value: 1},
		{Name: "b", Elements: 1000, Value: 16}, // 4× the RMS error cost: +1 bit
		{Name: "c", Elements: 2000, Value: 4},
		{Name: "dead", Elements: 10, Value: 0}, // no sensitivity: left to the default
	}
	got := convert.AllocateBits(4, sens)
	if len(got) != 3 {
		t.Fatalf("%d overrides, want 3", len(got))
	}
	bits := map[string]float64{}
	var sum float64
	for i, tb := range got {
		name := []string{"a", "b", "c"}[i]
		if !tb.Pattern.MatchString(name) || tb.Pattern.MatchString(name+"x") {
			t.Fatalf("override %d pattern %q does not match exactly %q", i, tb.Pattern, name)
		}
		bits[name] = tb.Bits
		sum += tb.Bits * float64(sens[i].Elements)
	}
	if math.Abs(sum/4000-4) > 1e-9 {
		t.Errorf("mean %.6f, want 4", sum/4000)
	}
	if math.Abs(bits["b"]-bits["a"]-2) > 1e-9 || math.Abs(bits["c"]-bits["a"]-1) > 1e-9 {
		t.Errorf("bits %v: want b = a+2, c = a+1 (half a bit per doubling of the cost)", bits)
	}
	// Bounds: an extreme matrix is clamped and the others re-centred.
	got = convert.AllocateBits(4, []convert.Sensitivity{
		{Name: "x", Elements: 100, Value: 1e12},
		{Name: "y", Elements: 100, Value: 1},
	})
	if got[0].Bits != 4+convert.MaxBitsShift || math.Abs(got[1].Bits-(4-convert.MaxBitsShift)) > 1e-9 {
		t.Errorf("clamped allocation %v %v", got[0].Bits, got[1].Bits)
	}
}

package convert_test

import (
	"math"
	"testing"

	"github.com/nwcodec/nwc/convert"
)

func TestStepFactors(t *testing.T) {
	got := convert.StepFactors([]convert.Sensitivity{
		{Name: "a", Elements: 1000, Value: 2},
		{Name: "b", Elements: 1000, Value: 8}, // 4× the cost: half the step, one bit more
		{Name: "c", Elements: 2000, Value: 4},
		{Name: "dead", Elements: 10, Value: 0}, // no sensitivity: left out
	}, convert.MaxBitsShift)
	if _, ok := got["dead"]; ok || len(got) != 3 {
		t.Fatalf("factors %v", got)
	}
	if r := got["a"] / got["b"]; math.Abs(r-2) > 1e-9 {
		t.Errorf("a/b step ratio %v, want 2", r)
	}
	if r := got["c"]; math.Abs(r-1) > 1e-9 {
		t.Errorf("c (the geometric mean) has factor %v, want 1", r)
	}
	for _, shift := range []float64{convert.MaxBitsShift, convert.MaxMeasuredBitsShift} {
		clamped := convert.StepFactors([]convert.Sensitivity{{Name: "x", Elements: 1, Value: 1e30}, {Name: "y", Elements: 1, Value: 1}}, shift)
		if clamped["x"] != math.Exp2(-shift) || clamped["y"] != math.Exp2(shift) {
			t.Errorf("extreme sensitivities not clamped to ±%v bits: %v", shift, clamped)
		}
	}
	if convert.StepFactors(nil, 1) != nil {
		t.Error("no sensitivities gave factors")
	}
}

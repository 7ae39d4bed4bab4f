package convert_test

import (
	"math"
	"testing"

	"nwc/convert"
)

func TestStepFactors(t *testing.T) {
	got := convert.StepFactors([]convert.Sensitivity{
		{Name: "a", Elements: 1000, Value: 1},
		{Name: "b", Elements: 1000, Value: 16}, // 16× the cost: a quarter of the step, two bits more
		{Name: "c", Elements: 2000, Value: 4},
		{Name: "dead", Elements: 10, Value: 0}, // no sensitivity: left out
		{Name: "huge", Elements: 1, Value: 1e30},
	})
	if _, ok := got["dead"]; ok || len(got) != 4 {
		t.Fatalf("factors %v", got)
	}
	if r := got["a"] / got["b"]; math.Abs(r-4) > 1e-9 {
		t.Errorf("a/b step ratio %v, want 4", r)
	}
	if r := got["a"] / got["c"]; math.Abs(r-2) > 1e-9 {
		t.Errorf("a/c step ratio %v, want 2", r)
	}
	if got["huge"] != math.Exp2(-convert.MaxBitsShift) {
		t.Errorf("huge sensitivity not clamped: %v", got["huge"])
	}
	if convert.StepFactors(nil) != nil {
		t.Error("no sensitivities gave factors")
	}
}

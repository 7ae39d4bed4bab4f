package chunk

import (
	"math"
	"slices"
	"testing"
)

// TestAddSquaresFinite checks that AddSquaresFinite adds as AddSquares
// does and finds the first NaN or infinity wherever it lies, and that
// the largest finite float32 values, whose squares are far beyond
// float32's range, are not taken for one.
func TestAddSquaresFinite(t *testing.T) {
	const rows, cols = 5, 3
	m := make([]float32, rows*cols)
	for i := range m {
		m[i] = float32(i%7) - 3
	}
	m[4] = math.MaxFloat32
	m[9] = -math.MaxFloat32
	want := make([]float64, cols)
	AddSquares(want, m, cols)
	got := make([]float64, cols)
	if i := AddSquaresFinite(got, m, cols); i != -1 {
		t.Fatalf("finite matrix: got index %d, want -1", i)
	}
	if !slices.Equal(got, want) {
		t.Errorf("sums %v, want %v", got, want)
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		for _, at := range []int{0, 7, rows*cols - 1} {
			b := slices.Clone(m)
			b[at] = bad
			if later := at + 3; later < len(b) {
				b[later] = float32(math.NaN()) // not reported
			}
			sums := make([]float64, cols)
			if i := AddSquaresFinite(sums, b, cols); i != at {
				t.Errorf("%v at %d: got index %d", bad, at, i)
			}
		}
	}
}

package convert

import (
	"math"
	"testing"
)

func TestTokenWeights(t *testing.T) {
	w := tokenWeights([][]int{{1, 2, 2}, {2, 7, -1}}, 4)
	want := []float64{0.5, 1.5, 3.5, 0.5}
	for i := range want {
		if w[i] != want[i] {
			t.Fatalf("weights %v, want %v (tokens outside the vocabulary ignored)", w, want)
		}
	}
}

// TestTokenFactors checks the factors against the closed form: the step
// of a row falls as the square root of its weight times its mean square,
// relative to their geometric mean, within ±MaxTokenShift bits.
func TestTokenFactors(t *testing.T) {
	const cols = 4
	// Row r: all values r+1; weights spread over 2^-8 … 2^8.
	w := []float64{1.0 / 256, 1.0 / 4, 1, 4, 256, 1}
	x := make([]float32, len(w)*cols)
	for r := range w {
		for j := range cols {
			x[r*cols+j] = float32(r + 1)
		}
	}
	x = append(x[:5*cols], 0, 0, 0, 0) // a zero row keeps factor 1
	f := tokenFactors(w, x, len(w))
	var sum float64
	for r := range 5 {
		sum += math.Log2(w[r] * float64((r+1)*(r+1)))
	}
	for r := range 5 {
		shift := 0.5 * (math.Log2(w[r]*float64((r+1)*(r+1))) - sum/5)
		shift = min(max(shift, -MaxTokenShift), MaxTokenShift)
		if want := math.Exp2(-shift); math.Abs(float64(f[r])-want) > 1e-6*want {
			t.Errorf("row %d: factor %v, want %v", r, f[r], want)
		}
	}
	if f[5] != 1 {
		t.Errorf("zero row: factor %v, want 1", f[5])
	}
	if f[0] != float32(math.Exp2(MaxTokenShift)) || f[4] != float32(math.Exp2(-MaxTokenShift)) {
		t.Errorf("extreme rows: factors %v, %v; want clamped to 2^±%d", f[0], f[4], MaxTokenShift)
	}
}

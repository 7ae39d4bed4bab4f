package convert

import (
	"context"
	"math"
	"testing"

	"github.com/nwcodec/nwc/llama"
)

func TestTokenWeights(t *testing.T) {
	docs := [][]int{{1, 2, 2}, {2, 7, -1}}
	for _, tc := range []struct {
		pred, want []float64
	}{
		{nil, []float64{0.5, 1.5, 3.5, 0.5}},
		{[]float64{0.25, 2, 0, 1}, []float64{0.75, 3.5, 3.5, 1.5}},
	} {
		w := tokenWeights(docs, tc.pred, 4)
		for i := range tc.want {
			if w[i] != tc.want[i] {
				t.Fatalf("predicted %v: weights %v, want %v (tokens outside the vocabulary ignored)", tc.pred, w, tc.want)
			}
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

func TestAddSoftmax(t *testing.T) {
	sum := []float64{1, 0, 0}
	// Large logits: the maximum is subtracted before exponentiating.
	addSoftmax(sum, make([]float64, 3), []float32{1000, 1000 + float32(math.Log(3)), -1e30})
	want := []float64{1.25, 0.75, 0}
	for i := range want {
		if math.Abs(sum[i]-want[i]) > 1e-4 { // float32 logits near 1000: ulp 6e-5
			t.Fatalf("sum %v, want %v", sum, want)
		}
	}
}

// TestPredictedCounts checks predictedCounts against the model's own
// forward pass: the softmax of every position's logits, summed, scaled
// from the positions used to all of them.
func TestPredictedCounts(t *testing.T) {
	in, docs := stories260K(t)
	m, err := llama.Load(in)
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.Config()
	// Twice over: more positions than predictedCounts uses.
	ws := llama.Windows(append(docs, docs...), cfg.SeqLen, 0)
	var total int
	for _, w := range ws {
		total += len(w)
	}
	if total <= PredictedTokens {
		t.Fatalf("%d calibration tokens: the test needs more than PredictedTokens (%d) to check the scaling", total, PredictedTokens)
	}
	got, err := predictedCounts(context.Background(), heldModel{m}, ws)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float64, cfg.VocabSize)
	used := 0
	s := m.NewState()
	for _, w := range ws {
		if used == PredictedTokens {
			break
		}
		w = w[:min(len(w), PredictedTokens-used)]
		used += len(w)
		s.Reset()
		logits, err := s.Forward(w)
		if err != nil {
			t.Fatal(err)
		}
		for p := 0; p < len(w); p++ {
			addSoftmax(want, make([]float64, cfg.VocabSize), logits[p*cfg.VocabSize:(p+1)*cfg.VocabSize])
		}
	}
	scale := float64(total) / float64(used)
	var sum float64
	for i := range want {
		sum += got[i]
		if w := want[i] * scale; math.Abs(got[i]-w) > 1e-3*(w+1) {
			t.Fatalf("token %d: predicted count %v, want %v", i, got[i], w)
		}
	}
	if math.Abs(sum-float64(total)) > 1e-6*float64(total) {
		t.Errorf("predicted counts sum to %v, want the %d positions", sum, total)
	}
}

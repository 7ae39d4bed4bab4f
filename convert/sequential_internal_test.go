package convert

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/nwcodec/nwc/llama"
)

// TestTargetMap checks the sequential target on inputs the compressed
// model distorts by an invertible map, x̃ = A x: then W* = W A⁻¹ maps
// what the layer will see exactly to what the original produced, which
// an undamped targetMap must find; with SequentialDamp it must still do
// much better than the original matrix.
func TestTargetMap(t *testing.T) {
	const n, rows, tokens = 6, 5, 400
	rng := rand.New(rand.NewPCG(1, 2))
	a := make([]float64, n*n)
	for i := range n {
		for j := range n {
			a[i*n+j] = 0.15 * rng.NormFloat64()
		}
		a[i*n+i] += 1
	}
	xs, ys := make([][]float64, tokens), make([][]float64, tokens)
	mo := &llama.Moments{N: n, XX: make([]float64, n*n), RX: make([]float64, n*n)}
	for r := range tokens {
		x := make([]float64, n)
		for i := range x {
			x[i] = rng.NormFloat64() * float64(i+1) // unequal variances
		}
		y := make([]float64, n)
		for i := range n {
			for j := range n {
				y[i] += a[i*n+j] * x[j]
			}
		}
		for i := range n {
			for j := range n {
				mo.XX[i*n+j] += y[i] * y[j]
				mo.RX[i*n+j] += x[i] * y[j]
			}
		}
		xs[r], ys[r] = x, y
		mo.Count++
	}
	w := make([]float32, rows*n)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	// loss is the mean of ‖W x − Ŵ x̃‖² relative to that of ‖W x‖².
	loss := func(wh []float32) float64 {
		var e, s float64
		for r := range tokens {
			for o := range rows {
				var want, got float64
				for j := range n {
					want += float64(w[o*n+j]) * xs[r][j]
					got += float64(wh[o*n+j]) * ys[r][j]
				}
				e += (want - got) * (want - got)
				s += want * want
			}
		}
		return e / s
	}
	base := loss(w)
	for _, tc := range []struct {
		damp, max float64
	}{{1e-9, 1e-9}, {SequentialDamp, base / 4}} {
		// targetMap takes over the sums it is given.
		own := &llama.Moments{N: n, XX: slices.Clone(mo.XX), RX: slices.Clone(mo.RX), Count: mo.Count}
		h, g, err := targetMap(own, tc.damp)
		if err != nil {
			t.Fatal(err)
		}
		if h.N != n || h.Tokens != tokens || math.Abs(h.Data[0]-mo.XX[0]/tokens) > 1e-12 {
			t.Errorf("damp %g: Hessian N %d, tokens %d, H₀₀ %g; want the mean of Σ x̃ x̃ᵀ", tc.damp, h.N, h.Tokens, h.Data[0])
		}
		ws := append([]float32(nil), w...)
		applyCorrection(ws, g, n)
		if l := loss(ws); !(l <= tc.max) {
			t.Errorf("damp %g: relative output error %.3g with the target, %.3g without; want at most %.3g", tc.damp, l, base, tc.max)
		}
	}
	if _, _, err := targetMap(&llama.Moments{N: 2, XX: make([]float64, 4), RX: make([]float64, 4), Count: 1}, SequentialDamp); !errors.Is(err, errZeroInput) {
		t.Errorf("zero input: %v, want errZeroInput", err)
	}
	nan := []float64{math.NaN(), 0, 0, 1}
	if _, _, err := targetMap(&llama.Moments{N: 2, XX: nan, RX: make([]float64, 4), Count: 1}, SequentialDamp); err == nil || errors.Is(err, errZeroInput) {
		t.Errorf("NaN input: %v, want an error", err)
	}
}

// TestApplyCorrectionRows checks that applying the correction a block of
// rows at a time gives bit for bit the product of the whole matrix at
// once, for row counts around the block size.
func TestApplyCorrectionRows(t *testing.T) {
	const cols = 70
	rng := rand.New(rand.NewPCG(3, 4))
	g := make([]float64, cols*cols)
	for i := range g {
		g[i] = 0.1 * rng.NormFloat64()
	}
	for _, rows := range []int{1, correctionRows - 1, correctionRows, correctionRows + 1, 2*correctionRows + 37} {
		w := make([]float32, rows*cols)
		for i := range w {
			w[i] = float32(rng.NormFloat64())
		}
		w64 := make([]float64, len(w))
		for i, v := range w {
			w64[i] = float64(v)
		}
		d := make([]float64, len(w))
		blas64.Implementation().Dgemm(blas.NoTrans, blas.NoTrans, rows, cols, cols, 1, w64, cols, g, cols, 0, d, cols)
		want := slices.Clone(w)
		for i, v := range d {
			want[i] += float32(v)
		}
		applyCorrection(w, g, cols)
		if !slices.Equal(w, want) {
			t.Errorf("%d rows: blocked correction differs from the whole product", rows)
		}
	}
}

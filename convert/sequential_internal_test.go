package convert

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/nwcodec/nwc/internal/chol"
	"github.com/nwcodec/nwc/internal/gemm"
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
		// Told of rows (5) fewer than the input's width (6), targetMap
		// keeps the factor; told of more, it forms G. Both must reach
		// the target, and agree.
		var got [][]float32
		for _, told := range []int{rows, 2 * n} {
			// targetMap takes over the sums it is given.
			own := &llama.Moments{N: n, XX: slices.Clone(mo.XX), RX: slices.Clone(mo.RX), Count: mo.Count}
			h, corr, err := targetMap(own, tc.damp, told)
			if err != nil {
				t.Fatal(err)
			}
			if formed := corr.g != nil; formed != (told >= n) {
				t.Errorf("%d rows of %d-wide input: G formed %v", told, n, formed)
			}
			if h.N != n || h.Tokens != tokens || math.Abs(h.Data[0]-mo.XX[0]/tokens) > 1e-12 {
				t.Errorf("damp %g: Hessian N %d, tokens %d, H₀₀ %g; want the mean of Σ x̃ x̃ᵀ", tc.damp, h.N, h.Tokens, h.Data[0])
			}
			ws := append([]float32(nil), w...)
			if err := corr.apply(ws, nil); err != nil {
				t.Fatal(err)
			}
			if l := loss(ws); !(l <= tc.max) {
				t.Errorf("damp %g, %d rows told: relative output error %.3g with the target, %.3g without; want at most %.3g", tc.damp, told, l, base, tc.max)
			}
			got = append(got, ws)
		}
		for i, v := range got[0] {
			if d := math.Abs(float64(v - got[1][i])); d > 1e-5*(1+math.Abs(float64(v))) {
				t.Fatalf("damp %g: weight %d is %v with the factor, %v with G", tc.damp, i, v, got[1][i])
			}
		}
	}
	if _, _, err := targetMap(&llama.Moments{N: 2, XX: make([]float64, 4), RX: make([]float64, 4), Count: 1}, SequentialDamp, 1); !errors.Is(err, errZeroInput) {
		t.Errorf("zero input: %v, want errZeroInput", err)
	}
	nan := []float64{math.NaN(), 0, 0, 1}
	if _, _, err := targetMap(&llama.Moments{N: 2, XX: nan, RX: make([]float64, 4), Count: 1}, SequentialDamp, 1); err == nil || errors.Is(err, errZeroInput) {
		t.Errorf("NaN input: %v, want an error", err)
	}
}

// TestCorrectionRows checks that applying a correction a block of rows
// at a time gives bit for bit what the whole matrix at once gives, for
// row counts around the block size, whether it holds G or a factor.
func TestCorrectionRows(t *testing.T) {
	const cols = 70
	rng := rand.New(rand.NewPCG(3, 4))
	g := make([]float64, cols*cols)
	for i := range g {
		g[i] = 0.1 * rng.NormFloat64()
	}
	// An SPD matrix and its factor, for the form that solves.
	u := make([]float64, cols*cols)
	gemm.Dgemm(true, false, cols, cols, cols, 1, g, cols, g, cols, 0, u, cols)
	for i := range cols {
		u[i*cols+i]++
	}
	if !chol.Upper(u, cols) {
		t.Fatal("not positive definite")
	}
	for name, c := range map[string]*correction{"G": {n: cols, g: g}, "factor": {n: cols, u: u, d: g}} {
		for _, rows := range []int{1, correctionRows - 1, correctionRows, correctionRows + 1, 2*correctionRows + 37} {
			w := make([]float32, rows*cols)
			for i := range w {
				w[i] = float32(rng.NormFloat64())
			}
			want := slices.Clone(w)
			// The whole matrix at once: a correction whose block is
			// every row.
			w64 := make([]float64, len(w))
			for i, v := range w {
				w64[i] = float64(v)
			}
			out := make([]float64, len(w))
			if c.g != nil {
				gemm.Dgemm(false, false, rows, cols, cols, 1, w64, cols, g, cols, 0, out, cols)
			} else {
				tr := make([]float64, len(w))
				gemm.Dgemm(true, true, cols, rows, cols, 1, g, cols, w64, cols, 0, tr, rows)
				chol.Solve(u, cols, tr, rows)
				for r := range rows {
					for j := range cols {
						out[r*cols+j] = tr[j*rows+r]
					}
				}
			}
			for i, v := range out {
				want[i] += float32(v)
			}
			calls := 0
			if err := c.apply(w, func() error { calls++; return nil }); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(w, want) {
				t.Errorf("%s, %d rows: blocked correction differs from the whole product", name, rows)
			}
			if blocks := (rows + correctionRows - 1) / correctionRows; calls != blocks {
				t.Errorf("%s, %d rows: interrupt checked %d times, want once per block of rows (%d)", name, rows, calls, blocks)
			}
			stop := errors.New("stop")
			if err := c.apply(slices.Clone(w), func() error { return stop }); !errors.Is(err, stop) {
				t.Errorf("%s, %d rows: interrupted correction returned %v", name, rows, err)
			}
		}
	}
}

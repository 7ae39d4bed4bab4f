package ldlq

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// syntheticHessian returns X Xᵀ/k for an n×k Gaussian X whose columns are
// scaled by a decaying spectrum and whose rows carry per-channel scales
// spread over two decades, like the inputs of a language-model layer.
func syntheticHessian(n, k int, seed uint64) []float64 {
	r := rand.New(rand.NewPCG(seed, 3))
	x := make([]float64, n*k)
	for i := range n {
		rowScale := math.Pow(10, 2*r.Float64()-1)
		for j := range k {
			x[i*k+j] = r.NormFloat64() * rowScale / math.Sqrt(1+float64(j)/32)
		}
	}
	h := make([]float64, n*n)
	xg := blas64.General{Rows: n, Cols: k, Stride: k, Data: x}
	blas64.Gemm(blas.NoTrans, blas.Trans, 1/float64(k), xg, xg, 0, blas64.General{Rows: n, Cols: n, Stride: n, Data: h})
	return h
}

// BenchmarkLDLQ4096 factors a 4096×4096 synthetic Hessian and runs LDLQ
// with the default block size over a 4096×4096 matrix, rounding to a grid:
// the per-layer cost of output-guided compression at the scale of a 7B
// model's attention projections.
func BenchmarkLDLQ4096(b *testing.B) {
	const n = 4096
	h := syntheticHessian(n, 1024, 1)
	w := randomWeights(n, n, 2)
	m := make([]float32, len(w))
	var factor, run time.Duration
	for b.Loop() {
		copy(m, w)
		t0 := time.Now()
		f, err := Factorize(h, n, DefaultDamp)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := Run(m, n, n, f, DefaultBlock, roundToGrid(m, n, n, 0.25)); err != nil {
			b.Fatal(err)
		}
		factor += t1.Sub(t0)
		run += time.Since(t1)
	}
	b.ReportMetric(factor.Seconds()/float64(b.N), "factor-s/op")
	b.ReportMetric(run.Seconds()/float64(b.N), "run-s/op")
}

// BenchmarkRunSmallBlocks measures the lazy batch path: one-column blocks
// on a 1024×1024 matrix.
func BenchmarkRunSmallBlocks(b *testing.B) {
	const n = 1024
	f, err := Factorize(syntheticHessian(n, 1024, 4), n, DefaultDamp)
	if err != nil {
		b.Fatal(err)
	}
	w := randomWeights(n, n, 5)
	m := make([]float32, len(w))
	for b.Loop() {
		copy(m, w)
		if err := Run(m, n, n, f, 1, roundToGrid(m, n, n, 0.25)); err != nil {
			b.Fatal(err)
		}
	}
}

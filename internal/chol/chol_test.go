package chol

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// spd returns a random symmetric positive definite n×n matrix, AᵀA/n + I.
func spd(rng *rand.Rand, n int) []float64 {
	a := make([]float64, n*n)
	for i := range a {
		a[i] = rng.NormFloat64()
	}
	h := make([]float64, n*n)
	for i := range n {
		for j := range n {
			var s float64
			for k := range n {
				s += a[k*n+i] * a[k*n+j]
			}
			h[i*n+j] = s / float64(n)
		}
		h[i*n+i]++
	}
	return h
}

func TestUpperAndSolve(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 5, 128, 129, 300} {
		for _, nrhs := range []int{1, 7, 600} {
			h := spd(rng, n)
			u := slices.Clone(h)
			for i := range n {
				for j := range i {
					u[i*n+j] = math.NaN() // the lower triangle must not be read
				}
			}
			if !Upper(u, n) {
				t.Fatalf("n=%d: not positive definite", n)
			}
			var ch mat.Cholesky
			if !ch.Factorize(mat.NewSymDense(n, slices.Clone(h))) {
				t.Fatal("gonum: not positive definite")
			}
			var want mat.TriDense
			ch.UTo(&want)
			for i := range n {
				for j := i; j < n; j++ {
					if d := math.Abs(u[i*n+j] - want.At(i, j)); d > 1e-10 {
						t.Fatalf("n=%d: U[%d][%d] = %v, gonum %v", n, i, j, u[i*n+j], want.At(i, j))
					}
				}
			}
			b := make([]float64, n*nrhs)
			for i := range b {
				b[i] = rng.NormFloat64()
			}
			x := slices.Clone(b)
			Solve(u, n, x, nrhs)
			// The residual H·X − b must be at rounding level.
			for i := range n {
				for j := range nrhs {
					var s float64
					for k := range n {
						s += h[i*n+k] * x[k*nrhs+j]
					}
					if d := math.Abs(s - b[i*nrhs+j]); d > 1e-9 {
						t.Fatalf("n=%d nrhs=%d: residual %g at (%d, %d)", n, nrhs, d, i, j)
					}
				}
			}
		}
	}
}

func TestUpperNotPositiveDefinite(t *testing.T) {
	for _, n := range []int{3, 200} {
		h := spd(rand.New(rand.NewPCG(3, 4)), n)
		h[(n-1)*n+n-1] = -1
		if Upper(h, n) {
			t.Fatalf("n=%d: an indefinite matrix factored", n)
		}
	}
}

// TestProcs checks that factor and solution are the same bits whatever
// the number of goroutines.
func TestProcs(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	n, nrhs := 300, 700
	h := spd(rng, n)
	b := make([]float64, n*nrhs)
	for i := range b {
		b[i] = rng.NormFloat64()
	}
	var refU, refX []float64
	for _, p := range []int{1, 3, 2} {
		prev := runtime.GOMAXPROCS(p)
		u, x := slices.Clone(h), slices.Clone(b)
		Upper(u, n)
		Solve(u, n, x, nrhs)
		runtime.GOMAXPROCS(prev)
		if refU == nil {
			refU, refX = u, x
		} else if !slices.Equal(u, refU) || !slices.Equal(x, refX) {
			t.Fatalf("GOMAXPROCS=%d gives other bits than 1", p)
		}
	}
}

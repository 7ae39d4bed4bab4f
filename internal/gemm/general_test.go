package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

func randMat64(rng *rand.Rand, n int) []float64 {
	m := make([]float64, n)
	for i := range m {
		m[i] = rng.NormFloat64()
	}
	return m
}

// at reads element (i, j) of op(x) for a row-major x of stride ld.
func at(x []float64, ld int, trans bool, i, j int) float64 {
	if trans {
		return x[j*ld+i]
	}
	return x[i*ld+j]
}

// TestGeneral checks Dgemm and Sgemm against the definition for every
// transposition, strides wider than the matrices and edge tiles.
func TestGeneral(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	shapes := []struct{ m, n, k int }{
		{1, 1, 1}, {3, 5, 7}, {4, 8, 16}, {5, 17, 33}, {13, 9, 300}, {130, 260, 257}, {257, 70, 600}, {8, 515, 3},
	}
	for _, s := range shapes {
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			for _, ab := range [][2]float64{{1, 0}, {-1, 1}, {0.5, -2}} {
				ta, tb := tr[0], tr[1]
				// Strides wider than the matrices, to catch stride mix-ups.
				ar, ac := s.m, s.k
				if ta {
					ar, ac = s.k, s.m
				}
				br, bc := s.k, s.n
				if tb {
					br, bc = s.n, s.k
				}
				lda, ldb, ldc := ac+3, bc+1, s.n+2
				a, b := randMat64(rng, (ar-1)*lda+ac), randMat64(rng, (br-1)*ldb+bc)
				c := randMat64(rng, (s.m-1)*ldc+s.n)
				want := slices.Clone(c)
				for i := range s.m {
					for j := range s.n {
						var sum float64
						for l := range s.k {
							sum += at(a, lda, ta, i, l) * at(b, ldb, tb, l, j)
						}
						want[i*ldc+j] = ab[0]*sum + ab[1]*c[i*ldc+j]
					}
				}
				a32, b32, c32 := to32(a), to32(b), to32(c)
				Dgemm(ta, tb, s.m, s.n, s.k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
				Sgemm(ta, tb, s.m, s.n, s.k, float32(ab[0]), a32, lda, b32, ldb, float32(ab[1]), c32, ldc)
				name := fmt.Sprint(s, tr, ab)
				for i, v := range c {
					if d := math.Abs(v - want[i]); d > 1e-12*float64(s.k+1)*(1+math.Abs(want[i])) {
						t.Fatalf("Dgemm %s: element %d = %v, want %v", name, i, v, want[i])
					}
					if d := math.Abs(float64(c32[i]) - want[i]); d > 1e-5*float64(s.k+1)*(1+math.Abs(want[i])) {
						t.Fatalf("Sgemm %s: element %d = %v, want %v", name, i, c32[i], want[i])
					}
				}
			}
		}
	}
}

func to32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}

// TestKernels64 checks each float64 kernel of this build against the
// definition, including that it adds to what y holds.
func TestKernels64(t *testing.T) {
	ks := map[string]func([]float64, int, []float64, int, []float64, int, int){"generic": kernel64Generic}
	if Kernel() != "generic" {
		ks[Kernel()] = kernel64
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for name, kf := range ks {
		for _, k := range []int{1, 2, 7, 64, 300} {
			rows := 8
			x, panel := randMat64(rng, rows*k), randMat64(rng, k*dWidth)
			y := randMat64(rng, rows*dWidth)
			want := slices.Clone(y)
			for r := range rows {
				for c := range dWidth {
					var s float64
					for i := range k {
						s += x[r*k+i] * panel[i*dWidth+c]
					}
					want[r*dWidth+c] += s
				}
			}
			kf(x, k, y, dWidth, panel, k, rows)
			for i, v := range y {
				if math.Abs(v-want[i]) > 1e-12*float64(k) {
					t.Fatalf("%s k=%d: element %d = %v, want %v", name, k, i, v, want[i])
				}
			}
		}
	}
}

// TestGeneralProcs checks that the result is the same bits whatever the
// number of goroutines.
func TestGeneralProcs(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	m, n, k := 300, 530, 270
	a, b := randMat64(rng, k*m), randMat64(rng, k*n)
	var ref []float64
	var ref32 []float32
	for _, p := range []int{1, 3, 2} {
		prev := runtime.GOMAXPROCS(p)
		c := make([]float64, m*n)
		Dgemm(true, false, m, n, k, 1, a, m, b, n, 0, c, n)
		c32 := make([]float32, m*n)
		Sgemm(true, false, m, n, k, 1, to32(a), m, to32(b), n, 0, c32, n)
		runtime.GOMAXPROCS(prev)
		if ref == nil {
			ref, ref32 = c, c32
		} else if !slices.Equal(c, ref) || !slices.Equal(c32, ref32) {
			t.Fatalf("GOMAXPROCS=%d gives other bits than 1", p)
		}
	}
}

// BenchmarkDgemm reports GFLOP/s at the shapes of sequential guidance on
// the 1.1 B Llama shape (a layer's input moments over 2048 tokens, the
// correction of a 512-row slice), with gonum's Dgemm in the same run for
// comparison.
func BenchmarkDgemm(b *testing.B) {
	for _, s := range []struct {
		ta      bool
		m, n, k int
	}{
		{true, 2048, 2048, 2048}, {false, 512, 2048, 2048}, {false, 512, 5632, 5632},
	} {
		rng := rand.New(rand.NewPCG(1, 1))
		x, y := randMat64(rng, s.m*s.k), randMat64(rng, s.k*s.n)
		c := make([]float64, s.m*s.n)
		lda := s.k
		if s.ta {
			lda = s.m
		}
		flops := 2 * float64(s.m*s.n*s.k)
		b.Run(fmt.Sprintf("nwc/%dx%dx%d", s.m, s.n, s.k), func(b *testing.B) {
			for b.Loop() {
				Dgemm(s.ta, false, s.m, s.n, s.k, 1, x, lda, y, s.n, 0, c, s.n)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run(fmt.Sprintf("gonum/%dx%dx%d", s.m, s.n, s.k), func(b *testing.B) {
			ta := blas.NoTrans
			if s.ta {
				ta = blas.Trans
			}
			for b.Loop() {
				blas64.Implementation().Dgemm(ta, blas.NoTrans, s.m, s.n, s.k, 1, x, lda, y, s.n, 0, c, s.n)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// TestDsyrkT checks that DsyrkT gives Dgemm's bits on and above the
// diagonal and mirrors them below, sizes spanning several tiles.
func TestDsyrkT(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for _, s := range []struct{ n, k int }{{1, 3}, {7, 5}, {300, 40}, {600, 270}} {
		a := randMat64(rng, s.k*s.n)
		c0 := randMat64(rng, s.n*s.n)
		for i := range s.n { // symmetric start, as moments are
			for j := range i {
				c0[i*s.n+j] = c0[j*s.n+i]
			}
		}
		want, got := slices.Clone(c0), slices.Clone(c0)
		Dgemm(true, false, s.n, s.n, s.k, 1, a, s.n, a, s.n, 1, want, s.n)
		DsyrkT(s.n, s.k, 1, a, s.n, got, s.n)
		for i := range s.n {
			for j := i; j < s.n; j++ {
				if got[i*s.n+j] != want[i*s.n+j] || got[j*s.n+i] != got[i*s.n+j] {
					t.Fatalf("%v: (%d, %d) = %v, mirror %v; Dgemm %v", s, i, j, got[i*s.n+j], got[j*s.n+i], want[i*s.n+j])
				}
			}
		}
	}
}

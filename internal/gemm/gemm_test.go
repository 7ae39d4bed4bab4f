package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

func randMat(rng *rand.Rand, n int) []float32 {
	m := make([]float32, n)
	for i := range m {
		m[i] = float32(rng.NormFloat64())
	}
	return m
}

// naive is the definition in float64.
func naive(x, w []float32, rows, k, n int) []float64 {
	out := make([]float64, rows*n)
	for r := range rows {
		for c := range n {
			var s float64
			for i := range k {
				s += float64(x[r*k+i]) * float64(w[c*k+i])
			}
			out[r*n+c] = s
		}
	}
	return out
}

var shapes = []struct{ rows, k, n int }{
	{1, 1, 1}, {3, 5, 7}, {4, 16, 16}, {5, 17, 33}, {8, 64, 48}, {13, 100, 31}, {257, 40, 20}, {300, 288, 290}, {64, 768, 64},
}

func checkClose(t *testing.T, name string, got []float32, want []float64, k int) {
	t.Helper()
	for i, v := range got {
		// float32 sums of k products of unit normals: error grows like √k ulps.
		if d := math.Abs(float64(v) - want[i]); d > 1e-5*float64(k)+1e-5 {
			t.Fatalf("%s: element %d = %v, want %v", name, i, v, want[i])
		}
	}
}

func TestMulT(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range shapes {
		x, w := randMat(rng, s.rows*s.k), randMat(rng, s.n*s.k)
		want := naive(x, w, s.rows, s.k, s.n)
		out := make([]float32, s.rows*s.n)
		for i := range out {
			out[i] = float32(math.NaN()) // every element must be written
		}
		MulT(out, x, w, s.rows, s.k, s.n)
		checkClose(t, fmt.Sprint(s), out, want, s.k)
	}
}

// TestKernels checks each kernel of this build against the definition.
func TestKernels(t *testing.T) {
	ks := map[string]func([]float32, int, []float32, int, []float32, int, int){"generic": kernelGeneric}
	if Kernel() != "generic" {
		ks[Kernel()] = kernel
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for name, kf := range ks {
		for _, k := range []int{1, 2, 7, 64, 300} {
			rows := 8
			x := randMat(rng, rows*k)
			panel := randMat(rng, k*panelWidth)
			w := make([]float32, panelWidth*k) // panel transposed back to [n][k]
			for i := range k {
				for c := range panelWidth {
					w[c*k+i] = panel[i*panelWidth+c]
				}
			}
			y := make([]float32, rows*panelWidth)
			kf(x, k, y, panelWidth, panel, k, rows)
			checkClose(t, fmt.Sprint(name, " k=", k), y, naive(x, w, rows, k, panelWidth), k)
		}
	}
}

// TestKernelAdd checks the adding float32 kernels against the storing ones.
func TestKernelAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, k := range []int{1, 7, 300} {
		rows := 8
		x, panel := randMat(rng, rows*k), randMat(rng, k*panelWidth)
		base := randMat(rng, rows*panelWidth)
		prod := make([]float32, rows*panelWidth)
		kernel(x, k, prod, panelWidth, panel, k, rows)
		for name, kf := range map[string]func([]float32, int, []float32, int, []float32, int, int){
			"generic": kernelAddGeneric, Kernel(): kernelAdd,
		} {
			y := slices.Clone(base)
			kf(x, k, y, panelWidth, panel, k, rows)
			for i, v := range y {
				if want := base[i] + prod[i]; name == Kernel() && v != want {
					t.Fatalf("%s k=%d: element %d = %v, want %v", name, k, i, v, want)
				} else if d := math.Abs(float64(v - want)); d > 1e-4*float64(k) {
					t.Fatalf("%s k=%d: element %d = %v, want %v", name, k, i, v, want)
				}
			}
		}
	}
}

func TestMulTZeroK(t *testing.T) {
	out := []float32{1, 2, 3, 4}
	MulT(out, nil, nil, 2, 0, 2)
	if !slices.Equal(out, []float32{0, 0, 0, 0}) {
		t.Fatalf("k = 0: %v, want zeros", out)
	}
}

// TestMulTProcs checks that the result is the same bits whatever the
// number of goroutines.
func TestMulTProcs(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	rows, k, n := 517, 96, 131
	x, w := randMat(rng, rows*k), randMat(rng, n*k)
	var ref []float32
	for _, p := range []int{1, 3, 2} {
		prev := runtime.GOMAXPROCS(p)
		out := make([]float32, rows*n)
		MulT(out, x, w, rows, k, n)
		runtime.GOMAXPROCS(prev)
		if ref == nil {
			ref = out
		} else if !slices.Equal(out, ref) {
			t.Fatalf("GOMAXPROCS=%d gives other bits than 1", p)
		}
	}
}

// BenchmarkMulT reports GFLOP/s for the shapes of PERF-NOTES.md (4096 rows)
// and of a 1.1 B Llama's layers over a 256-token window.
func BenchmarkMulT(b *testing.B) {
	for _, s := range []struct{ rows, k, n int }{
		{4096, 16, 16}, {4096, 64, 64}, {4096, 256, 256}, {256, 2048, 2048}, {256, 2048, 5632}, {256, 5632, 2048},
	} {
		b.Run(fmt.Sprintf("%dx%dx%d", s.rows, s.k, s.n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			x, w := randMat(rng, s.rows*s.k), randMat(rng, s.n*s.k)
			out := make([]float32, s.rows*s.n)
			b.ResetTimer()
			for b.Loop() {
				MulT(out, x, w, s.rows, s.k, s.n)
			}
			b.ReportMetric(2*float64(s.rows*s.k*s.n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

package ldlq

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// correlatedHessian returns E[x xᵀ] for inputs whose coordinates follow
// an AR(1) process with coefficient rho and per-coordinate scales spread
// over two orders of magnitude, estimated from k samples: the kind of
// strongly correlated, badly scaled Hessian that language-model layers
// have.
func correlatedHessian(n, k int, rho float64, seed uint64) []float64 {
	r := rand.New(rand.NewPCG(seed, 1))
	scale := make([]float64, n)
	for i := range scale {
		scale[i] = math.Pow(10, 2*r.Float64()-1)
	}
	h := make([]float64, n*n)
	x := make([]float64, n)
	for range k {
		prev := r.NormFloat64()
		for i := range n {
			prev = rho*prev + math.Sqrt(1-rho*rho)*r.NormFloat64()
			x[i] = prev * scale[i]
		}
		for i := range n {
			for j := range n {
				h[i*n+j] += x[i] * x[j] / float64(k)
			}
		}
	}
	return h
}

func randomWeights(rows, cols int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 2))
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	return w
}

// regularized applies the documented regularization to a Hessian without
// dead columns: divide by the mean diagonal, add damp to the diagonal.
func regularized(h []float64, n int, damp float64) *mat.SymDense {
	var tr float64
	for i := range n {
		tr += h[i*n+i]
	}
	s := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			v := h[i*n+j] * float64(n) / tr
			if i == j {
				v += damp
			}
			s.SetSym(i, j, v)
		}
	}
	return s
}

// noise is a smooth stand-in for a quantizer: it moves every weight by a
// fixed pseudo-random amount, so tiny differences between two computations
// of a target stay tiny instead of flipping a rounding decision.
func noise(i, j int) float32 {
	x := uint64(i)*0x9e3779b97f4a7c15 ^ uint64(j)*0xc2b2ae3d27d4eb4f
	x ^= x >> 29
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 32
	return (float32(x>>40)/(1<<24) - 0.5) * 0.3
}

// record runs Run with the noise quantizer and returns the targets Run
// handed to it and the decoded matrix.
func record(t *testing.T, w []float32, rows, cols int, f *Factor, block int) (targets, decoded []float32) {
	return recordCols(t, w, rows, cols, f, block, func(j int) int { return j })
}

// recordCols is record with the noise of column j drawn as for column
// id(j).
func recordCols(t *testing.T, w []float32, rows, cols int, f *Factor, block int, id func(int) int) (targets, decoded []float32) {
	t.Helper()
	m := append([]float32(nil), w...)
	targets = make([]float32, len(w))
	err := Run(m, rows, cols, f, block, func(c0, c1 int) error {
		for i := range rows {
			for j := c0; j < c1; j++ {
				targets[i*cols+j] = m[i*cols+j]
				m[i*cols+j] += noise(i, id(j))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return targets, m
}

// bruteTargets returns, for the block [c0, c1), the targets that minimize
// ‖[Δ_F, d] H^{1/2}‖ over the errors d of the columns from c0 on, given the
// errors Δ_F = w − decoded of the columns before c0, computed by a least
// squares solve with the symmetric square root of the regularized Hessian.
func bruteTargets(t *testing.T, sqrtH *mat.Dense, w, decoded []float32, rows, cols, c0, c1 int) []float64 {
	t.Helper()
	nr := cols - c0
	// Row r of the residual is Δ_F S_F + d S_R; as a column vector,
	// S_Rᵀ dᵀ = −S_Fᵀ Δ_Fᵀ, least squares in d.
	sr := mat.DenseCopyOf(sqrtH.Slice(c0, cols, 0, cols).T()) // cols × nr
	out := make([]float64, rows*(c1-c0))
	for i := range rows {
		rhs := mat.NewVecDense(cols, nil)
		for k := range c0 {
			e := float64(w[i*cols+k]) - float64(decoded[i*cols+k])
			for j := range cols {
				rhs.SetVec(j, rhs.AtVec(j)-e*sqrtH.At(k, j))
			}
		}
		var d mat.VecDense
		if err := d.SolveVec(sr, rhs); err != nil {
			t.Fatal(err)
		}
		if d.Len() != nr {
			t.Fatalf("solution of %d values, want %d", d.Len(), nr)
		}
		for j := c0; j < c1; j++ {
			out[i*(c1-c0)+j-c0] = float64(w[i*cols+j]) - d.AtVec(j-c0)
		}
	}
	return out
}

func symSqrt(t *testing.T, h *mat.SymDense) *mat.Dense {
	t.Helper()
	var eig mat.EigenSym
	if !eig.Factorize(h, true) {
		t.Fatal("eigendecomposition failed")
	}
	vals := eig.Values(nil)
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	n := len(vals)
	d := mat.NewDiagDense(n, nil)
	for i, v := range vals {
		d.SetDiag(i, math.Sqrt(v))
	}
	var s, tmp mat.Dense
	tmp.Mul(&vecs, d)
	s.Mul(&tmp, vecs.T())
	return &s
}

func TestRunMatchesBruteForce(t *testing.T) {
	for _, tc := range []struct {
		rows, cols, block int
		rho, damp         float64
	}{
		{3, 10, 3, 0.9, 0.01},
		{4, 12, 1, 0.8, 0.01},
		{2, 9, 4, 0.95, 0.1},
		{5, 16, 16, 0.9, 0.01},
		{3, 11, 5, 0.5, 0},
		{2, 150, 7, 0.9, 0.01}, // several lazy batches with blocks straddling none of them
		{2, 140, 1, 0.9, 0.01},
	} {
		t.Run(fmt.Sprintf("%dx%d_b%d", tc.rows, tc.cols, tc.block), func(t *testing.T) {
			n := tc.cols
			h := correlatedHessian(n, 4*n, tc.rho, uint64(n))
			f, err := Factorize(h, n, tc.damp)
			if err != nil {
				t.Fatal(err)
			}
			w := randomWeights(tc.rows, n, uint64(tc.block))
			targets, decoded := record(t, w, tc.rows, n, f, tc.block)
			sqrtH := symSqrt(t, regularized(h, n, tc.damp))
			var worst float64
			for c0 := 0; c0 < n; c0 += tc.block {
				c1 := min(c0+tc.block, n)
				want := bruteTargets(t, sqrtH, w, decoded, tc.rows, n, c0, c1)
				for i := range tc.rows {
					for j := c0; j < c1; j++ {
						got := float64(targets[i*n+j])
						worst = max(worst, math.Abs(got-want[i*(c1-c0)+j-c0]))
					}
				}
			}
			if worst > 2e-4 {
				t.Errorf("largest deviation of Run's targets from the least-squares optimum: %g", worst)
			}
		})
	}
}

// gptqTargets is GPTQ's column loop in float64, with an explicit inverse
// and the upper Cholesky factor of it: before column j is quantized its
// current value is the target; afterwards the later columns get
// W[:, j+1:] −= (w_j − q_j)/U_jj · U[j, j+1:], where q_j is taken from
// decoded so that both runs see the same quantization decisions.
func gptqTargets(t *testing.T, h []float64, w, decoded []float32, rows, n int, damp float64) []float64 {
	t.Helper()
	var inv mat.Dense
	if err := inv.Inverse(regularized(h, n, damp)); err != nil {
		t.Fatal(err)
	}
	hinv := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			hinv.SetSym(i, j, (inv.At(i, j)+inv.At(j, i))/2)
		}
	}
	var ch mat.Cholesky
	if !ch.Factorize(hinv) {
		t.Fatal("H⁻¹ not positive definite")
	}
	var u mat.TriDense
	ch.UTo(&u)
	cur := make([]float64, len(w))
	for i, v := range w {
		cur[i] = float64(v)
	}
	targets := make([]float64, len(w))
	for j := range n {
		for i := range rows {
			targets[i*n+j] = cur[i*n+j]
			e := (cur[i*n+j] - float64(decoded[i*n+j])) / u.At(j, j)
			for k := j + 1; k < n; k++ {
				cur[i*n+k] -= e * u.At(j, k)
			}
		}
	}
	return targets
}

func TestBlockOneEqualsGPTQ(t *testing.T) {
	for _, n := range []int{7, 33, 130} {
		h := correlatedHessian(n, 3*n, 0.9, uint64(n)+5)
		f, err := Factorize(h, n, DefaultDamp)
		if err != nil {
			t.Fatal(err)
		}
		const rows = 4
		w := randomWeights(rows, n, uint64(n))
		targets, decoded := record(t, w, rows, n, f, 1)
		want := gptqTargets(t, h, w, decoded, rows, n, DefaultDamp)
		var worst float64
		for i, v := range want {
			worst = max(worst, math.Abs(float64(targets[i])-v))
		}
		if worst > 1e-4 {
			t.Errorf("n=%d: block-1 LDLQ deviates from GPTQ by %g", n, worst)
		}
	}
}

// roundToGrid is the trivial quantizer of the tests and the benchmark:
// round every weight of the block to a multiple of step.
func roundToGrid(m []float32, rows, cols int, step float32) func(c0, c1 int) error {
	return func(c0, c1 int) error {
		for i := range rows {
			row := m[i*cols+c0 : i*cols+c1]
			for j, v := range row {
				row[j] = step * float32(math.RoundToEven(float64(v/step)))
			}
		}
		return nil
	}
}

func TestLDLQReducesProxyLoss(t *testing.T) {
	const rows, n = 32, 96
	h := correlatedHessian(n, 4*n, 0.95, 11)
	w := randomWeights(rows, n, 12)
	const step = 0.5 // about 2.5 bits per weight for unit-variance weights
	plain := append([]float32(nil), w...)
	if err := roundToGrid(plain, rows, n, step)(0, n); err != nil {
		t.Fatal(err)
	}
	base, err := ProxyLoss(h, n, w, plain, rows)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Factorize(h, n, DefaultDamp)
	if err != nil {
		t.Fatal(err)
	}
	prev := 0.0 // loss with the previous, smaller block
	for _, block := range []int{1, 8, 32, 96} {
		m := append([]float32(nil), w...)
		if err := Run(m, rows, n, f, block, roundToGrid(m, rows, n, step)); err != nil {
			t.Fatal(err)
		}
		for i, v := range m {
			if q := step * float32(math.RoundToEven(float64(v/step))); q != v {
				t.Fatalf("block %d: element %d = %v is not on the grid", block, i, v)
			}
		}
		loss, err := ProxyLoss(h, n, w, m, rows)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("block %3d: proxy loss %.4g vs %.4g for plain rounding (%.2f×)", block, loss, base, loss/base)
		// Smaller blocks compensate more, one column at a time most; one
		// block spanning every column has nothing to compensate with.
		if block < n && !(prev < loss && loss < base) {
			t.Errorf("block %d: LDLQ proxy loss %.4g, want between %.4g (smaller block) and %.4g (plain rounding)", block, loss, prev, base)
		}
		if block == 1 && loss > 0.3*base {
			t.Errorf("block 1: LDLQ proxy loss %.4g, plain rounding %.4g: want at most 30%%", loss, base)
		}
		prev = loss
		if block == n && loss != base {
			t.Errorf("single block: loss %.6g, want plain rounding's %.6g", loss, base)
		}
	}
}

func TestDeadColumns(t *testing.T) {
	const rows, n, dead = 3, 12, 5
	full := correlatedHessian(n, 4*n, 0.9, 3)
	for i := range n {
		full[i*n+dead], full[dead*n+i] = 0, 0
	}
	f, err := Factorize(full, n, DefaultDamp)
	if err != nil {
		t.Fatal(err)
	}
	if d := f.Dead(); len(d) != 1 || d[0] != dead {
		t.Fatalf("Dead() = %v, want [%d]", d, dead)
	}
	// Without the dead column the same problem must give the same
	// targets for the live columns.
	live := make([]float64, 0, (n-1)*(n-1))
	for i := range n {
		for j := range n {
			if i != dead && j != dead {
				live = append(live, full[i*n+j])
			}
		}
	}
	fl, err := Factorize(live, n-1, DefaultDamp)
	if err != nil {
		t.Fatal(err)
	}
	w := randomWeights(rows, n, 4)
	wl := make([]float32, 0, rows*(n-1))
	for i, v := range w {
		if i%n != dead {
			wl = append(wl, v)
		}
	}
	targets, decoded := record(t, w, rows, n, f, 1)
	tl, _ := recordCols(t, wl, rows, n-1, fl, 1, func(j int) int {
		if j >= dead {
			return j + 1
		}
		return j
	})
	for i := range rows {
		if targets[i*n+dead] != 0 {
			t.Errorf("row %d: dead column target %v, want 0", i, targets[i*n+dead])
		}
		if decoded[i*n+dead] != noise(i, dead) {
			t.Errorf("row %d: dead column decoded %v", i, decoded[i*n+dead])
		}
		for j, k := 0, 0; j < n; j++ {
			if j == dead {
				continue
			}
			if d := math.Abs(float64(targets[i*n+j] - tl[i*(n-1)+k])); d > 1e-5 {
				t.Errorf("(%d, %d): target %v, without the dead column %v", i, j, targets[i*n+j], tl[i*(n-1)+k])
			}
			k++
		}
	}
}

func TestFactorizeErrors(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name string
		h    []float64
		n    int
		damp float64
		want error
	}{
		{"empty", nil, 0, DefaultDamp, ErrInvalid},
		{"short", []float64{1, 0, 0}, 2, DefaultDamp, ErrInvalid},
		{"NaN off diagonal", []float64{1, nan, nan, 1}, 2, DefaultDamp, ErrInvalid},
		{"Inf diagonal", []float64{math.Inf(1), 0, 0, 1}, 2, DefaultDamp, ErrInvalid},
		{"negative diagonal", []float64{-1, 0, 0, 1}, 2, DefaultDamp, ErrInvalid},
		{"negative damping", []float64{1, 0, 0, 1}, 2, -0.1, ErrInvalid},
		{"NaN damping", []float64{1, 0, 0, 1}, 2, nan, ErrInvalid},
		{"indefinite", []float64{1, 2, 2, 1}, 2, 0, ErrNotPositiveDefinite},
		{"indefinite after damping", []float64{1, 3, 3, 1}, 2, DefaultDamp, ErrNotPositiveDefinite},
		{"singular without damping", []float64{1, 1, 1, 1}, 2, 0, ErrNotPositiveDefinite},
	} {
		f, err := Factorize(tc.h, tc.n, tc.damp)
		if !errors.Is(err, tc.want) || f != nil {
			t.Errorf("%s: Factorize = %v, %v; want nil, %v", tc.name, f, err, tc.want)
		}
	}
	// Damping rescues a singular Hessian, and an all-dead one is the
	// identity.
	for _, h := range [][]float64{{1, 1, 1, 1}, {0, 0, 0, 0}} {
		if _, err := Factorize(h, 2, DefaultDamp); err != nil {
			t.Errorf("Factorize(%v) = %v", h, err)
		}
	}
}

func TestRunErrors(t *testing.T) {
	f, err := Factorize([]float64{2, 1, 1, 2}, 2, DefaultDamp)
	if err != nil {
		t.Fatal(err)
	}
	ok := func(c0, c1 int) error { return nil }
	boom := errors.New("codec failure")
	for _, tc := range []struct {
		name       string
		m          []float32
		rows, cols int
		f          *Factor
		block      int
		quant      func(c0, c1 int) error
		want       error
	}{
		{"nil factor", make([]float32, 4), 2, 2, nil, 1, ok, ErrInvalid},
		{"nil quantizer", make([]float32, 4), 2, 2, f, 1, nil, ErrInvalid},
		{"width", make([]float32, 6), 2, 3, f, 1, ok, ErrInvalid},
		{"length", make([]float32, 5), 2, 2, f, 1, ok, ErrInvalid},
		{"negative rows", nil, -1, 2, f, 1, ok, ErrInvalid},
		{"negative block", make([]float32, 4), 2, 2, f, -1, ok, ErrInvalid},
		{"NaN weight", []float32{1, float32(math.NaN()), 0, 0}, 2, 2, f, 1, ok, ErrInvalid},
		{"quantizer error", make([]float32, 4), 2, 2, f, 1, func(int, int) error { return boom }, boom},
	} {
		if err := Run(tc.m, tc.rows, tc.cols, tc.f, tc.block, tc.quant); !errors.Is(err, tc.want) {
			t.Errorf("%s: Run = %v, want %v", tc.name, err, tc.want)
		}
	}
	m := []float32{1, 2, 3, 4}
	err = Run(m, 2, 2, f, 1, func(c0, c1 int) error {
		m[c0] = float32(math.Inf(1))
		return nil
	})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("quantizer writing Inf: Run = %v, want ErrInvalid", err)
	}
}

// TestRunBlocks checks the order and extent of the blocks Run asks for,
// including the default size and a last, shorter block.
func TestRunBlocks(t *testing.T) {
	for _, tc := range []struct {
		cols, block, rows int
		want              [][2]int
	}{
		{5, 2, 1, [][2]int{{0, 2}, {2, 4}, {4, 5}}},
		{3, 10, 2, [][2]int{{0, 3}}},
		{300, 0, 1, [][2]int{{0, 128}, {128, 256}, {256, 300}}},
		{4, 3, 0, [][2]int{{0, 3}, {3, 4}}},
	} {
		h := make([]float64, tc.cols*tc.cols)
		for i := range tc.cols {
			h[i*tc.cols+i] = 1
		}
		f, err := Factorize(h, tc.cols, DefaultDamp)
		if err != nil {
			t.Fatal(err)
		}
		var got [][2]int
		err = Run(make([]float32, tc.rows*tc.cols), tc.rows, tc.cols, f, tc.block, func(c0, c1 int) error {
			got = append(got, [2]int{c0, c1})
			return nil
		})
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("cols %d block %d: blocks %v, %v; want %v", tc.cols, tc.block, got, err, tc.want)
		}
	}
}

func TestProxyLoss(t *testing.T) {
	h := []float64{2, 1, 1, 3}
	w := []float32{1, 2, 0, 0}
	q := []float32{0, 0, 1, 1}
	// Row 0: Δ = (1, 2): 2 + 2·2 + 12 = 18. Row 1: Δ = (−1, −1): 2+2+3 = 7.
	got, err := ProxyLoss(h, 2, w, q, 2)
	if err != nil || got != 25 {
		t.Errorf("ProxyLoss = %v, %v; want 25", got, err)
	}
	if _, err := ProxyLoss(h, 2, w, q[:3], 2); !errors.Is(err, ErrInvalid) {
		t.Errorf("ProxyLoss with a short matrix: %v, want ErrInvalid", err)
	}
}

// TestDrive checks the encoder's entry point: without a Hessian it visits
// the blocks in order and leaves the columns alone; with one it gives what
// Factorize and Run give; bad arguments are refused.
func TestDrive(t *testing.T) {
	const rows, cols = 3, 7
	w := randomWeights(rows, cols, 5)
	round := func(m []float32, blocks *[][2]int) func(c0, c1 int) error {
		return func(c0, c1 int) error {
			*blocks = append(*blocks, [2]int{c0, c1})
			return roundToGrid(m, rows, cols, 0.5)(c0, c1)
		}
	}

	var got [][2]int
	m := append([]float32(nil), w...)
	if err := Drive(m, rows, cols, nil, 3, round(m, &got)); err != nil {
		t.Fatal(err)
	}
	if want := [][2]int{{0, 3}, {3, 6}, {6, 7}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("blocks without a Hessian: %v, want %v", got, want)
	}
	for i, v := range m {
		if want := float32(math.RoundToEven(float64(w[i])/0.5)) * 0.5; v != want {
			t.Fatalf("element %d without a Hessian: %v, want %v rounded to %v", i, v, w[i], want)
		}
	}

	h := correlatedHessian(cols, 50, 0.9, 3)
	f, err := Factorize(h, cols, DefaultDamp)
	if err != nil {
		t.Fatal(err)
	}
	var viaRun, viaDrive [][2]int
	a := append([]float32(nil), w...)
	if err := Run(a, rows, cols, f, 2, round(a, &viaRun)); err != nil {
		t.Fatal(err)
	}
	b := append([]float32(nil), w...)
	if err := Drive(b, rows, cols, h, 2, round(b, &viaDrive)); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(a) != fmt.Sprint(b) || fmt.Sprint(viaRun) != fmt.Sprint(viaDrive) {
		t.Errorf("Drive with a Hessian gave %v in blocks %v; Run gave %v in %v", b, viaDrive, a, viaRun)
	}
	if fmt.Sprint(a) == fmt.Sprint(m) {
		t.Error("the correlated Hessian changed nothing; the comparison above proves little")
	}

	got = nil
	err = Drive(make([]float32, 300), 1, 300, nil, 0, func(c0, c1 int) error {
		got = append(got, [2]int{c0, c1})
		return nil
	})
	if err != nil || len(got) != 3 || got[1] != [2]int{128, 256} {
		t.Errorf("default block: %v, %v; want blocks of %d", got, err, DefaultBlock)
	}

	indefinite := make([]float64, cols*cols)
	for i := range cols {
		indefinite[i*cols+i] = 1
	}
	indefinite[1], indefinite[cols] = 3, 3
	ok := func(int, int) error { return nil }
	boom := errors.New("codec failure")
	for _, tc := range []struct {
		name  string
		m     []float32
		rows  int
		h     []float64
		block int
		quant func(c0, c1 int) error
		want  error
	}{
		{"short Hessian", make([]float32, 21), 3, h[:cols], 1, ok, ErrInvalid},
		{"all-dead Hessian", make([]float32, 21), 3, make([]float64, cols*cols), 1, ok, nil},
		{"indefinite Hessian", make([]float32, 21), 3, indefinite, 1, ok, ErrNotPositiveDefinite},
		{"length", make([]float32, 20), 3, nil, 1, ok, ErrInvalid},
		{"negative rows", nil, -1, nil, 1, ok, ErrInvalid},
		{"negative block", make([]float32, 21), 3, nil, -1, ok, ErrInvalid},
		{"nil quantizer", make([]float32, 21), 3, nil, 1, nil, ErrInvalid},
		{"quantizer error", make([]float32, 21), 3, nil, 1, func(int, int) error { return boom }, boom},
		{"quantizer error with a Hessian", make([]float32, 21), 3, h, 1, func(int, int) error { return boom }, boom},
	} {
		err := Drive(tc.m, tc.rows, cols, tc.h, tc.block, tc.quant)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: Drive = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestPivots checks D of H = M D Mᵀ: on a diagonal Hessian the pivots are
// its regularized diagonal, and in general D_jj is the Schur complement of
// input j given the inputs after it, 1/[(H_{j:,j:})⁻¹]_00, which for the
// last column is its own diagonal and whose product is det H.
func TestPivots(t *testing.T) {
	diag := []float64{4, 1, 0, 2}
	h := make([]float64, 16)
	for i, v := range diag {
		h[i*4+i] = v
	}
	f, err := Factorize(h, 4, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	// Mean of the non-zero diagonal is 7/3; the dead column becomes 1.
	want := []float64{4*3.0/7 + 0.5, 3.0/7 + 0.5, 1 + 0.5, 2*3.0/7 + 0.5}
	for j, d := range f.Pivots() {
		if math.Abs(d-want[j]) > 1e-12 {
			t.Errorf("diagonal Hessian: pivot %d = %v, want %v", j, d, want[j])
		}
	}

	const n = 6
	g := syntheticHessian(n, 40, 9)
	f, err = Factorize(g, n, 0)
	if err != nil {
		t.Fatal(err)
	}
	var mean float64
	for i := range n {
		mean += g[i*n+i]
	}
	mean /= n
	norm := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			norm.SetSym(i, j, g[i*n+j]/mean)
		}
	}
	p := f.Pivots()
	for j := range n {
		var tail mat.SymDense
		tail.SubsetSym(norm, []int{0, 1, 2, 3, 4, 5}[j:])
		var inv mat.Dense
		if err := inv.Inverse(&tail); err != nil {
			t.Fatal(err)
		}
		if want := 1 / inv.At(0, 0); math.Abs(p[j]-want) > 1e-9*want {
			t.Errorf("pivot %d = %v, want the Schur complement %v", j, p[j], want)
		}
	}
}

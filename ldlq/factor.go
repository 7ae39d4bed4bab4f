// Package ldlq implements LDLQ, the output-guided error compensation of
// GPTQ and QuIP, for codecs that quantize a weight matrix in blocks of input
// columns.
//
// A linear layer y = W x with W of shape [rows, cols] (rows outputs, cols
// inputs) loses E‖(W − Ŵ) x‖² = tr((W − Ŵ) H (W − Ŵ)ᵀ) to quantization,
// where H = E[x xᵀ] is the cols×cols second moment of its inputs (package
// calib collects and stores it). Coding the columns in order and letting
// each block's target absorb the error already made on the blocks before it
// minimizes that loss far better than coding every column on its own.
//
// Factorize regularizes H and factors it once; Run drives a codec's
// per-block quantizer over a matrix; Drive does both for an encoder given
// an optional Hessian, and falls back to plain block order without one.
// A Factor is read-only after Factorize, so one Factor may serve several
// matrices with the same input (a layer's query, key and value
// projections) concurrently.
//
// # The block update
//
// Write the regularized Hessian as H = V Vᵀ with V upper triangular (a
// Cholesky factorization taken in reverse column order) and let
// M = V·diag(V)⁻¹, unit upper triangular, so that H = M D Mᵀ. Suppose the
// columns F = [0, c0) are coded with errors Δ_F = W_F − Ŵ_F (original
// weights minus decoded ones) and the columns R = [c0, cols) are not. The
// loss as a function of the errors Δ_R still to be made is minimized by
// Δ_R = −Δ_F H_FR H_RR⁻¹ = −Δ_F V_FR V_RR⁻¹, so the best target for the
// next block B = [c0, c1), the first columns of R, is
//
//	W_B + Δ_F · M_FB · M_BB⁻¹
//
// (only the leading block of the upper-triangular V_RR⁻¹ touches B). This
// is the rule Run applies. For one-column blocks it reduces to QuIP's
// Ŵ = Q(W + (W − Ŵ)(M − I)), and it equals GPTQ's push update
// W[:, j+1:] −= (w_j − q_j)/U_jj · U[j, j+1:] with U the upper Cholesky
// factor of H⁻¹, because U = V⁻¹. Unlike GPTQ it needs no inverse of H:
// one Cholesky factorization (n³/3 flops) is the whole setup.
//
// Results are deterministic on one machine for any number of cores; the
// matrix kernels may round differently on other machines, which changes
// encoder output but never what a decoder produces from it.
package ldlq

import (
	"errors"
	"fmt"
	"math"

	"github.com/nwcodec/nwc/internal/chol"
	"github.com/nwcodec/nwc/internal/gemm"
)

// DefaultDamp is the damping GPTQ uses: after the Hessian is divided by the
// mean of its diagonal, this is added to every diagonal entry.
const DefaultDamp = 0.01

// DefaultBlock is the number of columns per block when Run is given 0.
const DefaultBlock = 128

var (
	// ErrInvalid reports arguments that cannot describe a Hessian or a
	// weight matrix: wrong lengths, non-finite values, negative damping.
	ErrInvalid = errors.New("ldlq: invalid input")
	// ErrNotPositiveDefinite reports a Hessian that is not positive
	// definite even after damping, so it cannot be factored.
	ErrNotPositiveDefinite = errors.New("ldlq: Hessian not positive definite after damping")
)

// A Factor is a regularized, factored Hessian ready for Run. It is
// immutable and safe for concurrent use.
type Factor struct {
	n int
	// m is the n×n row-major unit upper triangular M of H = M D Mᵀ; only
	// the part above the diagonal is stored meaningfully (the diagonal is
	// one by construction and the lower part is zero).
	m    []float32
	d    []float64 // the diagonal D
	dead []bool
}

// Pivots returns the diagonal of D in H = M D Mᵀ for the regularized
// Hessian: D_jj is the part of input j's second moment that the inputs
// after it do not explain. Under LDLQ an error e in column j, which later
// columns can only partly absorb, costs D_jj·e² of expected squared
// output per row, so D_jj (not H_jj) is how much column j's accuracy
// matters once error compensation runs.
func (f *Factor) Pivots() []float64 { return append([]float64(nil), f.d...) }

// N returns the number of columns the Factor was built for.
func (f *Factor) N() int { return f.n }

// Dead returns, in increasing order, the columns whose Hessian diagonal was
// zero: inputs that were zero on every calibration token. Run sets their
// weights to zero before quantizing them, as GPTQ does, since no output
// depended on them.
func (f *Factor) Dead() []int {
	var d []int
	for i, v := range f.dead {
		if v {
			d = append(d, i)
		}
	}
	return d
}

// Factorize prepares the n×n row-major Hessian h for Run. It reads only the
// upper triangle (h is meant to be symmetric) and does not modify h. The
// Hessian is regularized as GPTQ does: divided by the mean of its non-zero
// diagonal entries, each zero diagonal (a dead input) set to one with its
// row and column cleared, and damp added to the diagonal. damp must be ≥ 0;
// DefaultDamp is the usual choice, and 0 requires h itself to be positive
// definite on its live columns.
//
// Factorize remembers its last two results for Hessians of 256 columns or
// more, keyed by their contents: codecs that drive several codings of a
// matrix, and matrices that share an input, factor their Hessian once.
//
// The error wraps ErrInvalid if h has the wrong length, a non-finite entry
// or a negative diagonal entry, and ErrNotPositiveDefinite if the
// regularized matrix has no Cholesky factorization.
func Factorize(h []float64, n int, damp float64) (*Factor, error) {
	return factorizeCached(h, n, damp)
}

func factorize(h []float64, n int, damp float64) (*Factor, error) {
	if n < 1 || n > math.MaxInt32 || len(h) != n*n {
		return nil, fmt.Errorf("%w: Hessian of %d values for %d columns", ErrInvalid, len(h), n)
	}
	if !(damp >= 0) || math.IsInf(damp, 0) {
		return nil, fmt.Errorf("%w: damping %v", ErrInvalid, damp)
	}
	dead := make([]bool, n)
	var sum float64
	live := 0
	for i := range n {
		d := h[i*n+i]
		switch {
		case !(d >= 0) || math.IsInf(d, 0):
			return nil, fmt.Errorf("%w: Hessian diagonal entry %d is %v", ErrInvalid, i, d)
		case d == 0:
			dead[i] = true
		default:
			sum += d
			live++
		}
	}
	scale := 1.0
	if live > 0 {
		scale = float64(live) / sum
	}
	if math.IsInf(scale, 0) || scale == 0 {
		return nil, fmt.Errorf("%w: Hessian diagonal mean %v cannot be normalized", ErrInvalid, sum/float64(live))
	}

	// r is the regularized Hessian with rows and columns in reverse order,
	// upper triangle only: the ordinary Cholesky factor of the reversed
	// matrix, reversed back, is the upper triangular V of H = V Vᵀ.
	r := make([]float64, n*n)
	for i := range n {
		ri := n - 1 - i
		for j := i; j < n; j++ {
			v := h[i*n+j]
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%w: Hessian entry (%d, %d) is %v", ErrInvalid, i, j, v)
			}
			switch {
			case dead[i] || dead[j]:
				v = 0
				if i == j {
					v = 1
				}
			default:
				v *= scale
			}
			if i == j {
				v += damp
			}
			// Entry (i, j), i ≤ j, lands at (n−1−j, n−1−i), again in the
			// upper triangle.
			r[(n-1-j)*n+ri] = v
		}
	}
	if !chol.Upper(r, n) {
		return nil, fmt.Errorf("%w: %d columns, damping %v", ErrNotPositiveDefinite, n, damp)
	}
	// The reversed matrix is U'ᵀU' with U' upper, so H = V Vᵀ with
	// V[i][j] = U'[n−1−j][n−1−i], and M[i][j] = V[i][j] / V[j][j].
	ud := r
	m := make([]float32, n*n)
	d := make([]float64, n)
	for j := range n {
		rj := n - 1 - j
		vjj := ud[rj*n+rj]
		if !(vjj > 0) || math.IsInf(vjj, 0) {
			return nil, fmt.Errorf("%w: pivot %d is %v", ErrNotPositiveDefinite, j, vjj)
		}
		m[j*n+j] = 1
		d[j] = vjj * vjj
		row := ud[rj*n:]
		for i := 0; i < j; i++ {
			m[i*n+j] = float32(row[n-1-i] / vjj)
		}
	}
	return &Factor{n: n, m: m, d: d, dead: dead}, nil
}

// ProxyLoss returns tr((W − Ŵ) H (W − Ŵ)ᵀ), the expected squared output
// error of replacing the rows×n row-major matrix w by q when the inputs
// have second moment h (n×n, row-major, symmetric). It costs rows·n²
// multiply-adds. The error wraps ErrInvalid if the lengths disagree.
func ProxyLoss(h []float64, n int, w, q []float32, rows int) (float64, error) {
	if n < 1 || rows < 0 || len(h) != n*n || len(w) != rows*n || len(q) != rows*n {
		return 0, fmt.Errorf("%w: ProxyLoss of %d×%d matrices (%d, %d values) with a Hessian of %d values",
			ErrInvalid, rows, n, len(w), len(q), len(h))
	}
	if rows == 0 {
		return 0, nil
	}
	d := make([]float64, rows*n)
	for i := range d {
		d[i] = float64(w[i]) - float64(q[i])
	}
	p := make([]float64, rows*n)
	gemm.Dgemm(false, false, rows, n, n, 1, d, n, h, n, 0, p, n)
	var loss float64
	for i, v := range p {
		loss += v * d[i]
	}
	return loss, nil
}

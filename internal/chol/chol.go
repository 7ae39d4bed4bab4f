// Package chol factors symmetric positive definite float64 matrices and
// solves with the factors. Both are blocked so that nearly all the work is
// in gemm.Dgemm on every core; the small diagonal blocks go to gonum's
// LAPACK and BLAS. For any GOMAXPROCS the results are the same bits on one
// machine, as gemm.Dgemm's are.
package chol

import (
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"

	"github.com/nwcodec/nwc/internal/gemm"
)

// block is the width of the diagonal blocks: wide enough that the updates
// are products gemm.Dgemm runs near its peak, narrow enough that the work
// left to gonum's serial kernels stays small.
const block = 128

// Upper overwrites the upper triangle of the n×n row-major symmetric
// matrix a with U such that a = UᵀU and reports whether a is positive
// definite. Only the upper triangle is read; entries below the diagonal
// are left with scratch values.
// It is a right-looking blocked factorization whose trailing updates are
// single large matrix products.
func Upper(a []float64, n int) bool {
	_ = a[n*n-1]
	pt := make([]float64, n*block) // transposed panel, r×kb
	for k := 0; k < n; k += block {
		kb := min(block, n-k)
		if _, ok := lapack64.Potrf(blas64.Symmetric{N: kb, Stride: n, Uplo: blas.Upper, Data: a[k*n+k:]}); !ok {
			return false
		}
		r := n - k - kb
		if r == 0 {
			break
		}
		trsm(blas.Trans, a[k*n+k:], n, kb, a[k*n+k+kb:], n, r)
		panel := a[k*n+k+kb:]
		for i := range kb {
			for j, v := range panel[i*n : i*n+r] {
				pt[j*kb+i] = v
			}
		}
		// The trailing upper triangle loses PᵀP, one block row at a time
		// so that nothing below the diagonal is computed beyond the
		// diagonal blocks.
		for i := 0; i < r; i += block {
			ib := min(block, r-i)
			row := k + kb + i
			gemm.Dgemm(false, false, ib, r-i, kb, -1, pt[i*kb:], kb, panel[i:], n, 1, a[row*n+row:], n)
		}
	}
	return true
}

// Solve overwrites b, n×nrhs row-major, with the solution X of UᵀU X = b,
// where u holds in its upper triangle the factor Upper computed.
func Solve(u []float64, n int, b []float64, nrhs int) {
	if n == 0 || nrhs == 0 {
		return
	}
	_ = u[n*n-1]
	_ = b[n*nrhs-1]
	// Uᵀ Z = b, top to bottom: each block of Z, once solved, is taken
	// out of the rows below it.
	for k := 0; k < n; k += block {
		kb := min(block, n-k)
		trsm(blas.Trans, u[k*n+k:], n, kb, b[k*nrhs:], nrhs, nrhs)
		if r := n - k - kb; r > 0 {
			gemm.Dgemm(true, false, r, nrhs, kb, -1, u[k*n+k+kb:], n, b[k*nrhs:], nrhs, 1, b[(k+kb)*nrhs:], nrhs)
		}
	}
	// U X = Z, bottom to top.
	last := (n - 1) / block * block
	for k := last; k >= 0; k -= block {
		kb := min(block, n-k)
		trsm(blas.NoTrans, u[k*n+k:], n, kb, b[k*nrhs:], nrhs, nrhs)
		if k > 0 {
			gemm.Dgemm(false, false, k, nrhs, kb, -1, u[k:], n, b[k*nrhs:], nrhs, 1, b, nrhs)
		}
	}
}

// trsmCols is the fewest right-hand sides a goroutine of trsm takes.
const trsmCols = 256

// trsm overwrites the kb×cols matrix b (stride ldb) with op(U)⁻¹ b, U
// being the upper triangular kb×kb matrix at u (stride ldu). Columns are
// independent and gonum computes each one alike whatever its neighbours,
// so they are split among goroutines without changing any bit.
func trsm(t blas.Transpose, u []float64, ldu, kb int, b []float64, ldb, cols int) {
	tri := blas64.Triangular{N: kb, Stride: ldu, Uplo: blas.Upper, Diag: blas.NonUnit, Data: u}
	parts := min(runtime.GOMAXPROCS(0), cols/trsmCols)
	if parts <= 1 {
		blas64.Trsm(blas.Left, t, 1, tri, blas64.General{Rows: kb, Cols: cols, Stride: ldb, Data: b})
		return
	}
	var wg sync.WaitGroup
	for p := range parts {
		c0, c1 := p*cols/parts, (p+1)*cols/parts
		wg.Go(func() {
			blas64.Trsm(blas.Left, t, 1, tri, blas64.General{Rows: kb, Cols: c1 - c0, Stride: ldb, Data: b[c0:]})
		})
	}
	wg.Wait()
}

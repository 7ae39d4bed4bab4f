package ldlq

import (
	"fmt"
	"math"

	"github.com/nwcodec/nwc/internal/gemm"
)

// lazyBatch is the number of columns whose targets are pulled from the
// errors before them with one matrix product. Small blocks are grouped
// into batches of about this width (GPTQ's lazy batch updates), so a
// one-column block costs a short in-batch product instead of a pass over
// all earlier columns.
const lazyBatch = 128

// Run quantizes the rows×cols row-major matrix m in place, block of
// columns by block of columns, with LDLQ error compensation under the
// Hessian factored in f (whose N must be cols). block is the number of
// columns per block, 0 meaning DefaultBlock; the last block may be
// shorter.
//
// For each block [c0, c1) in increasing order, Run first overwrites m's
// columns [c0, c1) with their compensated targets, the original weights
// plus the correction that makes the expected output error smallest given
// the errors of the columns already coded (see the package documentation),
// with dead columns set to zero; then it calls quant(c0, c1), which must
// replace those columns in place by their quantized (decoded) values,
// quantizing the block jointly and reading nothing right of c1. Columns
// left of c0 then hold decoded values and columns from c1 on still hold
// the original weights. When Run returns, m holds the decoded matrix; the
// original weights are not kept.
//
// An error returned by quant stops Run and is returned unchanged. Other
// errors wrap ErrInvalid: mismatched sizes, a non-finite weight, or a
// non-finite value written by quant.
func Run(m []float32, rows, cols int, f *Factor, block int, quant func(c0, c1 int) error) error {
	if f == nil || quant == nil {
		return fmt.Errorf("%w: nil Factor or quantizer", ErrInvalid)
	}
	if rows < 0 || cols != f.n || len(m) != rows*cols {
		return fmt.Errorf("%w: matrix of %d values as %d×%d, Hessian for %d columns", ErrInvalid, len(m), rows, cols, f.n)
	}
	if block == 0 {
		block = DefaultBlock
	}
	if block < 0 {
		return fmt.Errorf("%w: block size %d", ErrInvalid, block)
	}
	block = min(block, cols)
	for i, v := range m {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%w: weight (%d, %d) is %v", ErrInvalid, i/cols, i%cols, v)
		}
	}
	if rows == 0 {
		// Nothing to compensate, but quant still sees every block.
		for c0 := 0; c0 < cols; c0 += block {
			if err := quant(c0, min(c0+block, cols)); err != nil {
				return err
			}
		}
		return nil
	}
	r := &runner{m: m, rows: rows, cols: cols, f: f}
	r.run(block, quant)
	return r.err
}

// Drive is the loop a codec's encoder runs over its matrix: it quantizes
// the rows×cols row-major matrix m through quant, block of columns by
// block of columns, with the same contract for quant as [Run]. With a nil
// Hessian there is nothing to compensate and Drive simply calls quant on
// the blocks in increasing order, leaving the columns as they are; else it
// factors h (cols×cols, row-major) with [DefaultDamp] and runs LDLQ. A
// codec thus has one code path whether or not it was given a Hessian, and
// a Hessian without correlations (diagonal) reproduces the encoding
// without one. block is the number of columns per block, 0 meaning
// DefaultBlock.
//
// Errors are those of [Factorize] and [Run]; with a nil Hessian, mismatched
// sizes or a negative block wrap ErrInvalid and an error from quant is
// returned unchanged.
func Drive(m []float32, rows, cols int, h []float64, block int, quant func(c0, c1 int) error) error {
	if h != nil {
		f, err := Factorize(h, cols, DefaultDamp)
		if err != nil {
			return err
		}
		return Run(m, rows, cols, f, block, quant)
	}
	if quant == nil || rows < 0 || cols < 0 || len(m) != rows*cols || block < 0 {
		return fmt.Errorf("%w: %d values as %d×%d in blocks of %d", ErrInvalid, len(m), rows, cols, block)
	}
	if block == 0 {
		block = DefaultBlock
	}
	for c0 := 0; c0 < cols; c0 += block {
		if err := quant(c0, min(c0+block, cols)); err != nil {
			return err
		}
	}
	return nil
}

// runner holds the working state of one Run.
type runner struct {
	m          []float32
	rows, cols int
	f          *Factor
	// delta is rows×cols: Δ = W − Ŵ for the columns already coded.
	delta []float32
	// pull is rows×batch: Δ_F · M_F,batch for the current lazy batch,
	// completed block by block with the batch's own earlier errors.
	pull []float32
	orig []float32 // rows×block: the current block's original weights
	inv  []float32 // block×block: M_BB⁻¹
	err  error
}

func (r *runner) run(block int, quant func(c0, c1 int) error) {
	rows, cols, n := r.rows, r.cols, r.f.n
	batch := block * max(1, (lazyBatch+block-1)/block)
	batch = min(batch, cols)
	r.delta = make([]float32, rows*cols)
	r.pull = make([]float32, rows*batch)
	r.orig = make([]float32, rows*block)
	r.inv = make([]float32, block*block)
	fm := r.f.m
	for a := 0; a < cols; a += batch {
		e := min(a+batch, cols)
		width := e - a
		pull := r.pull[:rows*width]
		if a == 0 {
			clear(pull)
		} else {
			gemm.Sgemm(false, false, rows, width, a, 1, r.delta, cols, fm[a:], n, 0, pull, width)
		}
		for c0 := a; c0 < e; c0 += block {
			c1 := min(c0+block, e)
			if !r.block(a, c0, c1, pull, width, quant) {
				return
			}
		}
	}
}

// block codes columns [c0, c1) of the lazy batch starting at a, whose
// pull has rows of width, and reports whether to go on.
func (r *runner) block(a, c0, c1 int, pull []float32, width int, quant func(c0, c1 int) error) bool {
	rows, cols, n := r.rows, r.cols, r.f.n
	b := c1 - c0
	fm := r.f.m
	// s = pull[:, c0−a : c1−a], the block's share of Δ_F · M_FB.
	s := pull[c0-a:]
	if c0 > a {
		gemm.Sgemm(false, false, rows, b, c0-a, 1, r.delta[a:], cols, fm[a*n+c0:], n, 1, s, width)
	}
	for i := range rows {
		copy(r.orig[i*b:(i+1)*b], r.m[i*cols+c0:i*cols+c1])
	}
	if b == 1 {
		// M_BB is the 1×1 identity.
		for i := range rows {
			r.m[i*cols+c0] += s[i*width]
		}
	} else {
		inv := r.inv[:b*b]
		r.invertBlock(c0, c1, inv)
		gemm.Sgemm(false, false, rows, b, b, 1, s, width, inv, b, 1, r.m[c0:], cols)
	}
	for j := c0; j < c1; j++ {
		if r.f.dead[j] {
			for i := range rows {
				r.m[i*cols+j] = 0
			}
		}
	}
	if err := quant(c0, c1); err != nil {
		r.err = err
		return false
	}
	for i := range rows {
		row := r.m[i*cols+c0 : i*cols+c1]
		o := r.orig[i*b : (i+1)*b]
		d := r.delta[i*cols+c0 : i*cols+c1]
		for j, q := range row {
			if math.IsNaN(float64(q)) || math.IsInf(float64(q), 0) {
				r.err = fmt.Errorf("%w: quantizer wrote %v at (%d, %d)", ErrInvalid, q, i, c0+j)
				return false
			}
			d[j] = o[j] - q
		}
	}
	return true
}

// invertBlock writes into dst (b×b, row-major) the inverse of the unit
// upper triangular diagonal block M[c0:c1, c0:c1], by back substitution in
// float64.
func (r *runner) invertBlock(c0, c1 int, dst []float32) {
	n := r.f.n
	b := c1 - c0
	x := make([]float64, b*b)
	// Column k of the inverse solves M_BB x = e_k; x is upper triangular
	// with a unit diagonal.
	for k := range b {
		x[k*b+k] = 1
		for i := k - 1; i >= 0; i-- {
			var acc float64
			mrow := r.f.m[(c0+i)*n+c0:]
			for j := i + 1; j <= k; j++ {
				acc += float64(mrow[j]) * x[j*b+k]
			}
			x[i*b+k] = -acc
		}
	}
	for i, v := range x {
		dst[i] = float32(v)
	}
}

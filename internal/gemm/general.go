package gemm

import (
	"sync"
)

// The general products are blocked as in GotoBLAS: the output is cut into
// tiles of tileRows × tileCols, each computed by one goroutine; for every
// block of depth along k the tile's rows of op(a) are packed row-major and
// its columns of op(b) into panels of [depth][width], so that a kernel call
// (4 rows × one panel, eight accumulators) reads its panel from L1 and its
// rows from L2.
const (
	tileRows = 128
	tileCols = 256
	depth    = 256
)

// dWidth is the panel width of Dgemm: two AVX2 registers of float64.
const dWidth = 8

// elem is an element type of the general products.
type elem interface{ float32 | float64 }

// addKernel adds to y, for rows (a multiple of rowBlock) × one panel's
// width of outputs, the products of x's rows and the panel.
type addKernel[T elem] func(x []T, ldx int, y []T, ldy int, panel []T, k, rows int)

// Dgemm sets c to alpha·op(a)·op(b) + beta·c for row-major matrices, with
// the arguments of BLAS dgemm: c is m×n with row stride ldc, op(a) is m×k
// (a itself, stride lda, or the transpose of the k×m matrix a when transA),
// and op(b) is k×n (likewise with transB).
//
// It runs on every core. Each output element is beta·c plus the sums of
// its products over blocks of dDepth in increasing k, each sum formed in
// increasing k by one kernel call; which call forms it depends only on the
// shapes, so the result is the same bits for any GOMAXPROCS on one
// machine. The AVX2 kernel fuses multiply and add and the portable one does
// not, so results differ in the last bits between machines. alpha is
// applied to op(b) as it is packed: exact for ±1 and powers of two.
//
// It panics if a slice is shorter than its shape and stride say.
func Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	general(&problem[float64]{transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, false}, dWidth, kernel64, &dPool)
}

// DsyrkT adds alpha·aᵀ·a to c, for a k×n (stride lda) and c n×n
// (stride ldc) symmetric: like Dgemm(true, false, n, n, k, alpha, a, lda,
// a, lda, 1, c, ldc), whose bits it gives on and above the diagonal, but
// computing only the tiles that reach the upper triangle and mirroring
// it below.
func DsyrkT(n, k int, alpha float64, a []float64, lda int, c []float64, ldc int) {
	general(&problem[float64]{true, false, n, n, k, alpha, a, lda, a, lda, 1, c, ldc, true}, dWidth, kernel64, &dPool)
	for i := range n {
		for j := i + 1; j < n; j++ {
			c[j*ldc+i] = c[i*ldc+j]
		}
	}
}

// Sgemm is Dgemm for float32, with a 4×16 kernel; it gives the same bits
// for any GOMAXPROCS on one machine, as Dgemm does.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	general(&problem[float32]{transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, false}, panelWidth, kernelAdd, &sPool)
}

var dPool, sPool sync.Pool

func general[T elem](p *problem[T], width int, kern addKernel[T], pool *sync.Pool) {
	m, n, k, c, ldc := p.m, p.n, p.k, p.c, p.ldc
	if m == 0 || n == 0 {
		return
	}
	_ = c[(m-1)*ldc+n-1]
	switch p.beta {
	case 1:
	case 0:
		for i := range m {
			clear(c[i*ldc : i*ldc+n])
		}
	default:
		for i := range m {
			for j := range c[i*ldc : i*ldc+n] {
				c[i*ldc+j] *= p.beta
			}
		}
	}
	if k == 0 || p.alpha == 0 {
		return
	}
	if p.transA {
		_ = p.a[(k-1)*p.lda+m-1]
	} else {
		_ = p.a[(m-1)*p.lda+k-1]
	}
	if p.transB {
		_ = p.b[(n-1)*p.ldb+k-1]
	} else {
		_ = p.b[(k-1)*p.ldb+n-1]
	}
	tm, tn := (m+tileRows-1)/tileRows, (n+tileCols-1)/tileCols
	items := tm * tn
	get := func() *scratchT[T] {
		s, _ := pool.Get().(*scratchT[T])
		if s == nil {
			s = &scratchT[T]{a: make([]T, tileRows*depth), b: make([]T, tileCols*depth),
				edge: make([]T, rowBlock*width), width: width, kern: kern}
		}
		return s
	}
	forItems(items, 2*m*n*k < serialFlops, get, func(s *scratchT[T]) { pool.Put(s) }, func(s *scratchT[T], i int) {
		s.tile(p, i/tn*tileRows, i%tn*tileCols)
	})
}

// problem holds a general product's arguments for the workers.
type problem[T elem] struct {
	transA, transB bool
	m, n, k        int
	alpha          T
	a              []T
	lda            int
	b              []T
	ldb            int
	beta           T
	c              []T
	ldc            int
	// upper skips the tiles entirely below the diagonal.
	upper bool
}

// scratchT is one worker's packed blocks and edge tile.
type scratchT[T elem] struct {
	a     []T // tileRows × depth, row-major, rows past the tile zero
	b     []T // tileCols/width panels of depth × width
	edge  []T // rowBlock × width
	width int
	kern  addKernel[T]
}

// tile adds alpha·op(a)·op(b) to the tile of c at (i0, j0).
func (s *scratchT[T]) tile(p *problem[T], i0, j0 int) {
	if p.upper && i0 >= j0+tileCols {
		return
	}
	w := s.width
	mi, nj := min(tileRows, p.m-i0), min(tileCols, p.n-j0)
	mp := roundUp(mi, rowBlock)
	panels := (nj + w - 1) / w
	for k0 := 0; k0 < p.k; k0 += depth {
		kc := min(depth, p.k-k0)
		s.packA(p, i0, mi, mp, k0, kc)
		s.packB(p, j0, nj, k0, kc)
		full := mi / rowBlock * rowBlock
		for q := range panels {
			panel := s.b[q*kc*w : (q+1)*kc*w]
			col := j0 + q*w
			cols := min(w, p.n-col)
			if cols == w && full > 0 {
				s.kern(s.a, kc, p.c[i0*p.ldc+col:], p.ldc, panel, kc, full)
			}
			for r := 0; r < mp; r += rowBlock {
				if cols == w && r < full {
					continue
				}
				clear(s.edge)
				s.kern(s.a[r*kc:], kc, s.edge, w, panel, kc, rowBlock)
				for rr := range min(rowBlock, mi-r) {
					out := p.c[(i0+r+rr)*p.ldc+col : (i0+r+rr)*p.ldc+col+cols]
					for j := range out {
						out[j] += s.edge[rr*w+j]
					}
				}
			}
		}
	}
}

// packA copies rows [i0, i0+mi) and columns [k0, k0+kc) of op(a) to s.a
// with row stride kc, and zeros the rows up to mp.
func (s *scratchT[T]) packA(p *problem[T], i0, mi, mp, k0, kc int) {
	dst := s.a[:mp*kc]
	if p.transA {
		for kk := range kc {
			src := p.a[(k0+kk)*p.lda+i0 : (k0+kk)*p.lda+i0+mi]
			for r, v := range src {
				dst[r*kc+kk] = v
			}
		}
	} else {
		for r := range mi {
			copy(dst[r*kc:(r+1)*kc], p.a[(i0+r)*p.lda+k0:])
		}
	}
	clear(dst[mi*kc:])
}

// packB copies columns [j0, j0+nj) and rows [k0, k0+kc) of op(b), times
// alpha, to panels of kc × w, zero past nj.
func (s *scratchT[T]) packB(p *problem[T], j0, nj, k0, kc int) {
	w := s.width
	panels := (nj + w - 1) / w
	dst := s.b[:panels*kc*w]
	if nj%w != 0 {
		clear(dst[(panels-1)*kc*w:])
	}
	alpha := p.alpha
	if p.transB {
		for j := range nj {
			q, cc := j/w, j%w
			base := q * kc * w
			src := p.b[(j0+j)*p.ldb+k0 : (j0+j)*p.ldb+k0+kc]
			for kk, v := range src {
				dst[base+kk*w+cc] = alpha * v
			}
		}
		return
	}
	// Panel by panel, each row's w columns are contiguous in b and in
	// the panel: a short copy, or a scaled one.
	for q := range panels {
		cols := min(w, nj-q*w)
		out := dst[q*kc*w : (q+1)*kc*w]
		for kk := range kc {
			row := (k0+kk)*p.ldb + j0 + q*w
			src, o := p.b[row:row+cols], out[kk*w:kk*w+cols]
			if alpha == 1 {
				copy(o, src)
				continue
			}
			for j, v := range src {
				o[j] = alpha * v
			}
		}
	}
}

// kernelAddGeneric is kernelGeneric adding its sums to y.
func kernelAddGeneric(x []float32, ldx int, y []float32, ldy int, panel []float32, k, rows int) {
	var t [rowBlock * panelWidth]float32
	for r := 0; r < rows; r += rowBlock {
		kernelGeneric(x[r*ldx:], ldx, t[:], panelWidth, panel, k, rowBlock)
		for q := range rowBlock {
			out := y[(r+q)*ldy : (r+q)*ldy+panelWidth]
			for c := range out {
				out[c] += t[q*panelWidth+c]
			}
		}
	}
}

// kernel64Generic adds to y, for rows (a multiple of rowBlock) × dWidth
// outputs, y[r][c] += Σ_i x[r][i]·panel[i][c], the sum formed in
// increasing i before it is added.
func kernel64Generic(x []float64, ldx int, y []float64, ldy int, panel []float64, k, rows int) {
	for r := 0; r < rows; r += rowBlock {
		var acc [rowBlock][dWidth]float64
		x0 := x[r*ldx : r*ldx+k]
		x1 := x[(r+1)*ldx : (r+1)*ldx+k]
		x2 := x[(r+2)*ldx : (r+2)*ldx+k]
		x3 := x[(r+3)*ldx : (r+3)*ldx+k]
		for i := range k {
			wr := (*[dWidth]float64)(panel[i*dWidth : (i+1)*dWidth])
			a0, a1, a2, a3 := x0[i], x1[i], x2[i], x3[i]
			for c, wv := range wr {
				acc[0][c] += a0 * wv
				acc[1][c] += a1 * wv
				acc[2][c] += a2 * wv
				acc[3][c] += a3 * wv
			}
		}
		for q := range rowBlock {
			out := y[(r+q)*ldy : (r+q)*ldy+dWidth]
			for c := range out {
				out[c] += acc[q][c]
			}
		}
	}
}

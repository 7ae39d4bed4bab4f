package gemm

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The float64 product is blocked as in GotoBLAS: the output is cut into
// tiles of dTileRows × dTileCols, each computed by one goroutine; for every
// block of dDepth along k the tile's rows of op(a) are packed row-major and
// its columns of op(b) into panels of [depth][dWidth], so that a kernel call
// (4 rows × 8 columns, eight accumulators) reads its panel from L1 and its
// rows from L2.
const (
	dWidth    = 8
	dTileRows = 128
	dTileCols = 256
	dDepth    = 256
)

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
	if m == 0 || n == 0 {
		return
	}
	_ = c[(m-1)*ldc+n-1]
	switch beta {
	case 1:
	case 0:
		for i := range m {
			clear(c[i*ldc : i*ldc+n])
		}
	default:
		for i := range m {
			for j := range c[i*ldc : i*ldc+n] {
				c[i*ldc+j] *= beta
			}
		}
	}
	if k == 0 || alpha == 0 {
		return
	}
	if transA {
		_ = a[(k-1)*lda+m-1]
	} else {
		_ = a[(m-1)*lda+k-1]
	}
	if transB {
		_ = b[(n-1)*ldb+k-1]
	} else {
		_ = b[(k-1)*ldb+n-1]
	}
	p := dProblem{transA, transB, m, n, k, alpha, a, lda, b, ldb, c, ldc}
	tm, tn := (m+dTileRows-1)/dTileRows, (n+dTileCols-1)/dTileCols
	items := tm * tn
	procs := runtime.GOMAXPROCS(0)
	if 2*m*n*k < serialFlops || procs == 1 || items == 1 {
		s := getDScratch()
		for i := range items {
			s.tile(&p, i/tn*dTileRows, i%tn*dTileCols)
		}
		dScratchPool.Put(s)
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	work := func() {
		s := getDScratch()
		for {
			i := int(next.Add(1) - 1)
			if i >= items {
				break
			}
			s.tile(&p, i/tn*dTileRows, i%tn*dTileCols)
		}
		dScratchPool.Put(s)
	}
	workers := min(procs, items)
	wg.Add(workers - 1)
	for range workers - 1 {
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()
}

// dProblem holds Dgemm's arguments for the workers.
type dProblem struct {
	transA, transB bool
	m, n, k        int
	alpha          float64
	a              []float64
	lda            int
	b              []float64
	ldb            int
	c              []float64
	ldc            int
}

// dScratch is one worker's packed blocks and edge tile.
type dScratch struct {
	a    []float64 // dTileRows × depth, row-major, rows past the tile zero
	b    []float64 // dTileCols/dWidth panels of depth × dWidth
	edge [rowBlock * dWidth]float64
}

var dScratchPool sync.Pool

func getDScratch() *dScratch {
	s, _ := dScratchPool.Get().(*dScratch)
	if s == nil {
		s = &dScratch{a: make([]float64, dTileRows*dDepth), b: make([]float64, dTileCols*dDepth)}
	}
	return s
}

// tile adds alpha·op(a)·op(b) to the tile of c at (i0, j0).
func (s *dScratch) tile(p *dProblem, i0, j0 int) {
	mi, nj := min(dTileRows, p.m-i0), min(dTileCols, p.n-j0)
	mp := roundUp(mi, rowBlock)
	panels := (nj + dWidth - 1) / dWidth
	for k0 := 0; k0 < p.k; k0 += dDepth {
		kc := min(dDepth, p.k-k0)
		s.packA(p, i0, mi, mp, k0, kc)
		s.packB(p, j0, nj, k0, kc)
		full := mi / rowBlock * rowBlock
		for q := range panels {
			panel := s.b[q*kc*dWidth : (q+1)*kc*dWidth]
			col := j0 + q*dWidth
			cols := min(dWidth, p.n-col)
			if cols == dWidth && full > 0 {
				kernel64(s.a, kc, p.c[i0*p.ldc+col:], p.ldc, panel, kc, full)
			}
			for r := 0; r < mp; r += rowBlock {
				if cols == dWidth && r < full {
					continue
				}
				clear(s.edge[:])
				kernel64(s.a[r*kc:], kc, s.edge[:], dWidth, panel, kc, rowBlock)
				for rr := range min(rowBlock, mi-r) {
					out := p.c[(i0+r+rr)*p.ldc+col : (i0+r+rr)*p.ldc+col+cols]
					for j := range out {
						out[j] += s.edge[rr*dWidth+j]
					}
				}
			}
		}
	}
}

// packA copies rows [i0, i0+mi) and columns [k0, k0+kc) of op(a) to s.a
// with row stride kc, and zeros the rows up to mp.
func (s *dScratch) packA(p *dProblem, i0, mi, mp, k0, kc int) {
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
// alpha, to panels of kc × dWidth, zero past nj.
func (s *dScratch) packB(p *dProblem, j0, nj, k0, kc int) {
	panels := (nj + dWidth - 1) / dWidth
	dst := s.b[:panels*kc*dWidth]
	if nj%dWidth != 0 {
		clear(dst[(panels-1)*kc*dWidth:])
	}
	alpha := p.alpha
	if p.transB {
		for j := range nj {
			q, cc := j/dWidth, j%dWidth
			base := q * kc * dWidth
			src := p.b[(j0+j)*p.ldb+k0 : (j0+j)*p.ldb+k0+kc]
			for kk, v := range src {
				dst[base+kk*dWidth+cc] = alpha * v
			}
		}
		return
	}
	for kk := range kc {
		src := p.b[(k0+kk)*p.ldb+j0 : (k0+kk)*p.ldb+j0+nj]
		for j, v := range src {
			dst[j/dWidth*kc*dWidth+kk*dWidth+j%dWidth] = alpha * v
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

// Package gemm multiplies matrices on every core: MulT, float32 products
// with the [out, in] weights of linear layers for the model's forward
// pass (a 4-row × 16-column register-blocked kernel over weights packed
// into panels of 16 columns), and Sgemm, Dgemm and DsyrkT, the general
// float32 and float64 products of BLAS for calibration statistics,
// sequential guidance and LDLQ (tiles packed as in GotoBLAS, 4×16 and 4×8
// kernels).
//
// Each output element is computed by one kernel call that adds its
// products in increasing k, and which call computes it depends only on
// the matrix shapes, never on the number of goroutines: results are the
// same bits for any GOMAXPROCS on one machine. Kernels may differ between
// machines (the AVX2 kernel fuses multiply and add; the portable one does
// not), so results are not bit-identical across platforms.
package gemm

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// panelWidth is the number of output columns a kernel call computes; the
// weights of one panel are stored [k][panelWidth].
const panelWidth = 16

// rowBlock is the number of rows a kernel call computes.
const rowBlock = 4

// serialFlops is the work under which MulT runs on the calling goroutine
// alone: starting goroutines costs more than it saves below it.
const serialFlops = 1 << 21

// MulT sets out (rows×n, row-major) to x (rows×k, row-major) times the
// transpose of w (n×k, row-major), the [out, in] layout of linear layers.
// It panics if a slice is shorter than its shape says, like an index out
// of range would.
func MulT(out, x, w []float32, rows, k, n int) {
	if rows == 0 || n == 0 {
		return
	}
	_ = out[rows*n-1]
	if k == 0 {
		clear(out[:rows*n])
		return
	}
	_ = x[rows*k-1]
	_ = w[n*k-1]
	panels := (n + panelWidth - 1) / panelWidth
	// Work items are one panel × a band of rows, so that a worker packs a
	// panel once and keeps it in cache for the band's rows.
	band := max(rowBlock, min(roundUp(rows, rowBlock), 256))
	bands := (rows + band - 1) / band
	items := panels * bands
	forItems(items, 2*rows*n*k < serialFlops, func() *scratch { return getScratch(k) }, putScratch, func(s *scratch, i int) {
		s.item(out, x, w, rows, k, n, i/bands, i%bands, band)
	})
}

// forItems calls do(s, i) for every work item i in [0, items) on up to
// GOMAXPROCS goroutines, the calling one included, each taking the next
// item in increasing order and working in its own scratch s from get,
// handed back to put; serial, or one item, runs them all on the calling
// goroutine. Results must not depend on which goroutine takes an item.
func forItems[S any](items int, serial bool, get func() S, put func(S), do func(s S, i int)) {
	workers := min(runtime.GOMAXPROCS(0), items)
	if serial || workers <= 1 {
		s := get()
		for i := range items {
			do(s, i)
		}
		put(s)
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	work := func() {
		s := get()
		for {
			i := int(next.Add(1) - 1)
			if i >= items {
				break
			}
			do(s, i)
		}
		put(s)
	}
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

// scratch is one worker's packed panel and edge tiles.
type scratch struct {
	panel  []float32 // k × panelWidth, the panel last packed
	packed int       // index of that panel + 1; 0: none
	k      int
	xt     []float32 // rowBlock × k: the last, partial row block of x
	yt     [rowBlock * panelWidth]float32
}

var scratchPool sync.Pool

func getScratch(k int) *scratch {
	s, _ := scratchPool.Get().(*scratch)
	if s == nil {
		s = &scratch{}
	}
	if cap(s.panel) < k*panelWidth {
		s.panel = make([]float32, k*panelWidth)
		s.xt = make([]float32, rowBlock*k)
	}
	s.panel, s.xt = s.panel[:k*panelWidth], s.xt[:rowBlock*k]
	s.packed, s.k = 0, k
	return s
}

func putScratch(s *scratch) { scratchPool.Put(s) }

// pack lays out columns [p·16, p·16+16) of the product (rows p·16… of w)
// as k rows of 16, zero past n.
func (s *scratch) pack(w []float32, k, n, p int) {
	if s.packed == p+1 {
		return
	}
	s.packed = p + 1
	c0 := p * panelWidth
	cols := min(panelWidth, n-c0)
	if cols < panelWidth {
		clear(s.panel)
	}
	for c := range cols {
		wr := w[(c0+c)*k : (c0+c+1)*k]
		for i, v := range wr {
			s.panel[i*panelWidth+c] = v
		}
	}
}

// item computes panel p of the output for the rows of band b.
func (s *scratch) item(out, x, w []float32, rows, k, n, p, b, band int) {
	s.pack(w, k, n, p)
	c0 := p * panelWidth
	cols := min(panelWidth, n-c0)
	r0, r1 := b*band, min((b+1)*band, rows)
	full := r0 + (r1-r0)/rowBlock*rowBlock
	if full > r0 {
		if cols == panelWidth {
			kernel(x[r0*k:], k, out[r0*n+c0:], n, s.panel, k, full-r0)
		} else {
			for r := r0; r < full; r += rowBlock {
				kernel(x[r*k:], k, s.yt[:], panelWidth, s.panel, k, rowBlock)
				s.spill(out, r, rowBlock, n, c0, cols)
			}
		}
	}
	if full < r1 {
		clear(s.xt)
		copy(s.xt, x[full*k:r1*k])
		kernel(s.xt, k, s.yt[:], panelWidth, s.panel, k, rowBlock)
		s.spill(out, full, r1-full, n, c0, cols)
	}
}

// spill copies the first rows × cols of the edge tile to out.
func (s *scratch) spill(out []float32, r0, rows, n, c0, cols int) {
	for r := range rows {
		copy(out[(r0+r)*n+c0:(r0+r)*n+c0+cols], s.yt[r*panelWidth:r*panelWidth+cols])
	}
}

func roundUp(a, b int) int { return (a + b - 1) / b * b }

// kernelGeneric computes rows (a multiple of rowBlock) × panelWidth
// outputs: y[r][c] = Σ_i x[r][i]·panel[i][c], summed in increasing i.
func kernelGeneric(x []float32, ldx int, y []float32, ldy int, panel []float32, k, rows int) {
	for r := 0; r < rows; r += rowBlock {
		var acc [rowBlock][panelWidth]float32
		x0 := x[r*ldx : r*ldx+k]
		x1 := x[(r+1)*ldx : (r+1)*ldx+k]
		x2 := x[(r+2)*ldx : (r+2)*ldx+k]
		x3 := x[(r+3)*ldx : (r+3)*ldx+k]
		for i := range k {
			wr := (*[panelWidth]float32)(panel[i*panelWidth : (i+1)*panelWidth])
			a0, a1, a2, a3 := x0[i], x1[i], x2[i], x3[i]
			for c, wv := range wr {
				acc[0][c] += a0 * wv
				acc[1][c] += a1 * wv
				acc[2][c] += a2 * wv
				acc[3][c] += a3 * wv
			}
		}
		for q := range rowBlock {
			copy(y[(r+q)*ldy:(r+q)*ldy+panelWidth], acc[q][:])
		}
	}
}

//go:build amd64

package gemm

import "unsafe"

// kernel is the kernel MulT uses: AVX2 with FMA where the CPU has both.
var kernel = kernelGeneric

// kernelAdd and kernel64 are the kernels of Sgemm and Dgemm, chosen as
// kernel is.
var (
	kernelAdd = kernelAddGeneric
	kernel64  = kernel64Generic
)

func init() {
	if hasAVX2FMA() {
		kernel = kernelAVX2
		kernelAdd = kernelAddAVX2
		kernel64 = kernel64AVX2
	}
}

// Kernel names the kernel MulT uses: "avx2" or "generic".
func Kernel() string {
	if hasAVX2FMA() {
		return "avx2"
	}
	return "generic"
}

// hasAVX2FMA reports whether the CPU has AVX2 and FMA and the OS saves
// the YMM registers (XCR0 bits 1 and 2, readable once CPUID reports
// OSXSAVE).
func hasAVX2FMA() bool {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return false
	}
	const fma, osxsave, avx = 1 << 12, 1 << 27, 1 << 28
	if _, _, c, _ := cpuid(1, 0); c&fma == 0 || c&osxsave == 0 || c&avx == 0 {
		return false
	}
	if xcr0, _ := xgetbv0(); xcr0&6 != 6 {
		return false
	}
	_, b, _, _ := cpuid(7, 0)
	return b&(1<<5) != 0
}

func kernelAVX2(x []float32, ldx int, y []float32, ldy int, panel []float32, k, rows int) {
	_ = x[(rows-1)*ldx+k-1]
	_ = y[(rows-1)*ldy+panelWidth-1]
	_ = panel[k*panelWidth-1]
	mulAVX2(unsafe.Pointer(&x[0]), uintptr(ldx)*4, unsafe.Pointer(&y[0]), uintptr(ldy)*4,
		unsafe.Pointer(&panel[0]), uintptr(k)*panelWidth*4, uintptr(rows))
}

// mulAVX2 computes rows (a positive multiple of 4) × 16 outputs from the
// panel at w, whose k rows of 16 take kBytes; strides are in bytes.
//
//go:noescape
func mulAVX2(x unsafe.Pointer, ldx uintptr, y unsafe.Pointer, ldy uintptr, w unsafe.Pointer, kBytes, rows uintptr)

func kernelAddAVX2(x []float32, ldx int, y []float32, ldy int, panel []float32, k, rows int) {
	_ = x[(rows-1)*ldx+k-1]
	_ = y[(rows-1)*ldy+panelWidth-1]
	_ = panel[k*panelWidth-1]
	mulAddAVX2(unsafe.Pointer(&x[0]), uintptr(ldx)*4, unsafe.Pointer(&y[0]), uintptr(ldy)*4,
		unsafe.Pointer(&panel[0]), uintptr(k)*panelWidth*4, uintptr(rows))
}

// mulAddAVX2 is mulAVX2 adding its products to y instead of storing them.
//
//go:noescape
func mulAddAVX2(x unsafe.Pointer, ldx uintptr, y unsafe.Pointer, ldy uintptr, w unsafe.Pointer, kBytes, rows uintptr)

func kernel64AVX2(x []float64, ldx int, y []float64, ldy int, panel []float64, k, rows int) {
	_ = x[(rows-1)*ldx+k-1]
	_ = y[(rows-1)*ldy+dWidth-1]
	_ = panel[k*dWidth-1]
	mulAdd64AVX2(unsafe.Pointer(&x[0]), uintptr(ldx)*8, unsafe.Pointer(&y[0]), uintptr(ldy)*8,
		unsafe.Pointer(&panel[0]), uintptr(k)*dWidth*8, uintptr(rows))
}

// mulAdd64AVX2 adds rows (a positive multiple of 4) × 8 products of the
// panel at w, whose k rows of 8 take kBytes, to y; strides are in bytes.
//
//go:noescape
func mulAdd64AVX2(x unsafe.Pointer, ldx uintptr, y unsafe.Pointer, ldy uintptr, w unsafe.Pointer, kBytes, rows uintptr)

func cpuid(leaf, sub uint32) (a, b, c, d uint32)

func xgetbv0() (a, d uint32)

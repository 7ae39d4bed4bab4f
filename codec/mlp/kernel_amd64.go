//go:build amd64

package mlp

import "unsafe"

// haveAVX2 is read once: CPUID can trap to the hypervisor in a VM.
var haveAVX2 = hasAVX2()

// activeKernel is the kernel Forward uses, named activeName. Tests call
// the kernels directly (see kernels) so that every one runs in the default
// build.
var activeKernel, activeName = bestKernel()

// kernels lists every kernel this build can run on this CPU, by name.
func kernels() map[string]kernelFunc {
	m := map[string]kernelFunc{"generic": kernelGeneric}
	if haveAVX2 {
		m["avx2"] = kernelAVX2
	}
	return m
}

func bestKernel() (kernelFunc, string) {
	if haveAVX2 && !envGeneric() {
		return kernelAVX2, "avx2"
	}
	return kernelGeneric, "generic"
}

// hasAVX2 reports whether the CPU has AVX2 and the OS saves the YMM
// registers across context switches (XCR0 bits 1 and 2, readable once
// CPUID reports OSXSAVE).
func hasAVX2() bool {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return false
	}
	const osxsave, avx = 1 << 27, 1 << 28
	if _, _, c, _ := cpuid(1, 0); c&osxsave == 0 || c&avx == 0 {
		return false
	}
	if xcr0, _ := xgetbv0(); xcr0&6 != 6 {
		return false
	}
	_, b, _, _ := cpuid(7, 0)
	return b&(1<<5) != 0
}

// denseArgs is the argument block of denseAVX2. The assembly reads its
// fields at the byte offsets noted; keep the two in step.
type denseArgs struct {
	x      unsafe.Pointer // 0: layer input, row 0
	ldx    uintptr        // 8: input row stride in bytes
	y      unsafe.Pointer // 16: output, row 0, panel's first column
	ldy    uintptr        // 24: output row stride in bytes
	w      unsafe.Pointer // 32: panel (16 biases, then k rows of 16)
	kBytes uintptr        // 40: k × 64, the size of the weight rows
	rows   uintptr        // 48: a positive multiple of 4
	flags  uintptr        // 56: kReLU | kResidual | kEmbed | kCanonNaN
	res    unsafe.Pointer // 64: layer input, row 0, panel's first column
	emb    unsafe.Pointer // 72: embedding table, panel's first column
	embOff uintptr        // 80: address of the row's embedding offsets; advanced by the assembly
}

// denseAVX2 computes a panelJob with AVX2: 4 rows × 16 outputs per step in
// eight accumulators, products and sums as separate VMULPS and VADDPS.
//
//go:noescape
func denseAVX2(a *denseArgs)

func cpuid(leaf, sub uint32) (a, b, c, d uint32)

func xgetbv0() (a, d uint32)

func kernelAVX2(j *panelJob) {
	a := denseArgs{
		x:      unsafe.Pointer(&j.x[0]),
		ldx:    uintptr(j.ldx) * 4,
		y:      unsafe.Pointer(&j.y[0]),
		ldy:    uintptr(j.ldy) * 4,
		w:      unsafe.Pointer(&j.w[0]),
		kBytes: uintptr(j.k) * panelWidth * 4,
		rows:   uintptr(j.rows),
		flags:  uintptr(j.flags),
		res:    unsafe.Pointer(&j.res[0]),
	}
	if j.flags&kEmbed != 0 {
		a.emb = unsafe.Pointer(&j.emb[0])
		a.embOff = uintptr(unsafe.Pointer(&j.embOff[0]))
	}
	denseAVX2(&a)
}

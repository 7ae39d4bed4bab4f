#include "textflag.h"

// The positive quiet NaN every output NaN is replaced by (CanonicalNaN).
DATA canonNaN<>+0(SB)/4, $0x7fc00000
GLOBL canonNaN<>(SB), RODATA|NOPTR, $4

// func denseAVX2(a *denseArgs)
//
// Registers: SI input rows, DX/CX input stride ×1/×3, BX output rows, R11
// output stride, R8 panel, R9 end of its weights, R10 rows left, R12
// residual rows, AX/R13 the running input and weight pointers of the k loop.
// Y0–Y7 accumulate rows 0–3 × columns 0–7, 8–15; Y8/Y9 hold a weight row,
// Y10–Y13 the broadcast inputs, Y14/Y15 products. Each accumulator receives
// its products in increasing k, one VMULPS and one VADDPS each, so the
// result is that of the scalar definition.
TEXT ·denseAVX2(SB), NOSPLIT, $0-8
	MOVQ a+0(FP), DI
	MOVQ 0(DI), SI
	MOVQ 8(DI), DX
	LEAQ (DX)(DX*2), CX
	MOVQ 16(DI), BX
	MOVQ 24(DI), R11
	MOVQ 32(DI), R8
	MOVQ 40(DI), R9
	LEAQ 64(R8)(R9*1), R9
	MOVQ 48(DI), R10
	MOVQ 64(DI), R12

row:
	VMOVUPS 0(R8), Y8
	VMOVUPS 32(R8), Y9
	VMOVAPS Y8, Y0
	VMOVAPS Y9, Y1
	VMOVAPS Y8, Y2
	VMOVAPS Y9, Y3
	VMOVAPS Y8, Y4
	VMOVAPS Y9, Y5
	VMOVAPS Y8, Y6
	VMOVAPS Y9, Y7
	MOVQ    SI, AX
	LEAQ    64(R8), R13

k:
	VMOVUPS      0(R13), Y8
	VMOVUPS      32(R13), Y9
	VBROADCASTSS (AX), Y10
	VBROADCASTSS (AX)(DX*1), Y11
	VBROADCASTSS (AX)(DX*2), Y12
	VBROADCASTSS (AX)(CX*1), Y13
	VMULPS       Y8, Y10, Y14
	VADDPS       Y14, Y0, Y0
	VMULPS       Y9, Y10, Y15
	VADDPS       Y15, Y1, Y1
	VMULPS       Y8, Y11, Y14
	VADDPS       Y14, Y2, Y2
	VMULPS       Y9, Y11, Y15
	VADDPS       Y15, Y3, Y3
	VMULPS       Y8, Y12, Y14
	VADDPS       Y14, Y4, Y4
	VMULPS       Y9, Y12, Y15
	VADDPS       Y15, Y5, Y5
	VMULPS       Y8, Y13, Y14
	VADDPS       Y14, Y6, Y6
	VMULPS       Y9, Y13, Y15
	VADDPS       Y15, Y7, Y7
	ADDQ         $4, AX
	ADDQ         $64, R13
	CMPQ         R13, R9
	JNE          k

	// ReLU: VMAXPS returns its second source (+0) unless the first is
	// greater, so NaN and −0 become +0.
	TESTQ  $1, 56(DI)
	JZ     noReLU
	VXORPS Y8, Y8, Y8
	VMAXPS Y8, Y0, Y0
	VMAXPS Y8, Y1, Y1
	VMAXPS Y8, Y2, Y2
	VMAXPS Y8, Y3, Y3
	VMAXPS Y8, Y4, Y4
	VMAXPS Y8, Y5, Y5
	VMAXPS Y8, Y6, Y6
	VMAXPS Y8, Y7, Y7

noReLU:
	TESTQ  $2, 56(DI)
	JZ     noResidual
	VADDPS 0(R12), Y0, Y0
	VADDPS 32(R12), Y1, Y1
	VADDPS (R12)(DX*1), Y2, Y2
	VADDPS 32(R12)(DX*1), Y3, Y3
	VADDPS (R12)(DX*2), Y4, Y4
	VADDPS 32(R12)(DX*2), Y5, Y5
	VADDPS (R12)(CX*1), Y6, Y6
	VADDPS 32(R12)(CX*1), Y7, Y7

noResidual:
	TESTQ  $4, 56(DI)
	JZ     noEmbed
	MOVQ   80(DI), R13
	MOVQ   72(DI), R9
	MOVQ   0(R13), AX
	VMULPS (R9)(AX*4), Y0, Y0
	VMULPS 32(R9)(AX*4), Y1, Y1
	MOVQ   8(R13), AX
	VMULPS (R9)(AX*4), Y2, Y2
	VMULPS 32(R9)(AX*4), Y3, Y3
	MOVQ   16(R13), AX
	VMULPS (R9)(AX*4), Y4, Y4
	VMULPS 32(R9)(AX*4), Y5, Y5
	MOVQ   24(R13), AX
	VMULPS (R9)(AX*4), Y6, Y6
	VMULPS 32(R9)(AX*4), Y7, Y7
	ADDQ   $32, R13
	MOVQ   R13, 80(DI)
	MOVQ   40(DI), R9
	LEAQ   64(R8)(R9*1), R9

noEmbed:
	TESTQ        $8, 56(DI)
	JZ           store
	VBROADCASTSS canonNaN<>(SB), Y15
	VCMPPS       $3, Y0, Y0, Y14
	VBLENDVPS    Y14, Y15, Y0, Y0
	VCMPPS       $3, Y1, Y1, Y14
	VBLENDVPS    Y14, Y15, Y1, Y1
	VCMPPS       $3, Y2, Y2, Y14
	VBLENDVPS    Y14, Y15, Y2, Y2
	VCMPPS       $3, Y3, Y3, Y14
	VBLENDVPS    Y14, Y15, Y3, Y3
	VCMPPS       $3, Y4, Y4, Y14
	VBLENDVPS    Y14, Y15, Y4, Y4
	VCMPPS       $3, Y5, Y5, Y14
	VBLENDVPS    Y14, Y15, Y5, Y5
	VCMPPS       $3, Y6, Y6, Y14
	VBLENDVPS    Y14, Y15, Y6, Y6
	VCMPPS       $3, Y7, Y7, Y14
	VBLENDVPS    Y14, Y15, Y7, Y7

store:
	VMOVUPS Y0, 0(BX)
	VMOVUPS Y1, 32(BX)
	VMOVUPS Y2, (BX)(R11*1)
	VMOVUPS Y3, 32(BX)(R11*1)
	VMOVUPS Y4, (BX)(R11*2)
	VMOVUPS Y5, 32(BX)(R11*2)
	LEAQ    (BX)(R11*2), AX
	VMOVUPS Y6, (AX)(R11*1)
	VMOVUPS Y7, 32(AX)(R11*1)
	LEAQ    (SI)(DX*4), SI
	LEAQ    (R12)(DX*4), R12
	LEAQ    (BX)(R11*4), BX
	SUBQ    $4, R10
	JNZ     row
	VZEROUPPER
	RET

// func cpuid(leaf, sub uint32) (a, b, c, d uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	MOVL sub+4(FP), CX
	CPUID
	MOVL AX, a+8(FP)
	MOVL BX, b+12(FP)
	MOVL CX, c+16(FP)
	MOVL DX, d+20(FP)
	RET

// func xgetbv0() (a, d uint32)
TEXT ·xgetbv0(SB), NOSPLIT, $0-8
	MOVL $0, CX
	XGETBV
	MOVL AX, a+0(FP)
	MOVL DX, d+4(FP)
	RET

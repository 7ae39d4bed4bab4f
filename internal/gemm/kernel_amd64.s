#include "textflag.h"

// func mulAVX2(x unsafe.Pointer, ldx uintptr, y unsafe.Pointer, ldy uintptr, w unsafe.Pointer, kBytes, rows uintptr)
//
// Registers: SI input rows, DX/CX input stride ×1/×3, BX output rows, R11
// output stride, R8 panel, R9 end of its weights, R10 rows left, AX/R13
// the running input and weight pointers of the k loop. Y0–Y7 accumulate
// rows 0–3 × columns 0–7, 8–15; Y8/Y9 hold a weight row, Y10–Y13 the
// broadcast inputs. Each accumulator receives its products in increasing
// k, one fused multiply-add each.
TEXT ·mulAVX2(SB), NOSPLIT, $0-56
	MOVQ x+0(FP), SI
	MOVQ ldx+8(FP), DX
	LEAQ (DX)(DX*2), CX
	MOVQ y+16(FP), BX
	MOVQ ldy+24(FP), R11
	MOVQ w+32(FP), R8
	MOVQ kBytes+40(FP), R9
	ADDQ R8, R9
	MOVQ rows+48(FP), R10

row:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ   SI, AX
	MOVQ   R8, R13

k:
	VMOVUPS      0(R13), Y8
	VMOVUPS      32(R13), Y9
	VBROADCASTSS (AX), Y10
	VBROADCASTSS (AX)(DX*1), Y11
	VBROADCASTSS (AX)(DX*2), Y12
	VBROADCASTSS (AX)(CX*1), Y13
	VFMADD231PS  Y8, Y10, Y0
	VFMADD231PS  Y9, Y10, Y1
	VFMADD231PS  Y8, Y11, Y2
	VFMADD231PS  Y9, Y11, Y3
	VFMADD231PS  Y8, Y12, Y4
	VFMADD231PS  Y9, Y12, Y5
	VFMADD231PS  Y8, Y13, Y6
	VFMADD231PS  Y9, Y13, Y7
	ADDQ         $4, AX
	ADDQ         $64, R13
	CMPQ         R13, R9
	JNE          k

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
	LEAQ    (BX)(R11*4), BX
	SUBQ    $4, R10
	JNZ     row
	VZEROUPPER
	RET

// func mulAddAVX2(x unsafe.Pointer, ldx uintptr, y unsafe.Pointer, ldy uintptr, w unsafe.Pointer, kBytes, rows uintptr)
//
// mulAVX2, adding the accumulators to y instead of storing them.
TEXT ·mulAddAVX2(SB), NOSPLIT, $0-56
	MOVQ x+0(FP), SI
	MOVQ ldx+8(FP), DX
	LEAQ (DX)(DX*2), CX
	MOVQ y+16(FP), BX
	MOVQ ldy+24(FP), R11
	MOVQ w+32(FP), R8
	MOVQ kBytes+40(FP), R9
	ADDQ R8, R9
	MOVQ rows+48(FP), R10

rowadd:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ   SI, AX
	MOVQ   R8, R13

kadd:
	VMOVUPS      0(R13), Y8
	VMOVUPS      32(R13), Y9
	VBROADCASTSS (AX), Y10
	VBROADCASTSS (AX)(DX*1), Y11
	VBROADCASTSS (AX)(DX*2), Y12
	VBROADCASTSS (AX)(CX*1), Y13
	VFMADD231PS  Y8, Y10, Y0
	VFMADD231PS  Y9, Y10, Y1
	VFMADD231PS  Y8, Y11, Y2
	VFMADD231PS  Y9, Y11, Y3
	VFMADD231PS  Y8, Y12, Y4
	VFMADD231PS  Y9, Y12, Y5
	VFMADD231PS  Y8, Y13, Y6
	VFMADD231PS  Y9, Y13, Y7
	ADDQ         $4, AX
	ADDQ         $64, R13
	CMPQ         R13, R9
	JNE          kadd

	VADDPS  0(BX), Y0, Y0
	VMOVUPS Y0, 0(BX)
	VADDPS  32(BX), Y1, Y1
	VMOVUPS Y1, 32(BX)
	VADDPS  (BX)(R11*1), Y2, Y2
	VMOVUPS Y2, (BX)(R11*1)
	VADDPS  32(BX)(R11*1), Y3, Y3
	VMOVUPS Y3, 32(BX)(R11*1)
	VADDPS  (BX)(R11*2), Y4, Y4
	VMOVUPS Y4, (BX)(R11*2)
	VADDPS  32(BX)(R11*2), Y5, Y5
	VMOVUPS Y5, 32(BX)(R11*2)
	LEAQ    (BX)(R11*2), AX
	VADDPS  (AX)(R11*1), Y6, Y6
	VMOVUPS Y6, (AX)(R11*1)
	VADDPS  32(AX)(R11*1), Y7, Y7
	VMOVUPS Y7, 32(AX)(R11*1)
	LEAQ    (SI)(DX*4), SI
	LEAQ    (BX)(R11*4), BX
	SUBQ    $4, R10
	JNZ     rowadd
	VZEROUPPER
	RET

// func mulAdd64AVX2(x unsafe.Pointer, ldx uintptr, y unsafe.Pointer, ldy uintptr, w unsafe.Pointer, kBytes, rows uintptr)
//
// Registers as in mulAVX2, with 8-byte elements: Y0–Y7 accumulate rows
// 0–3 × columns 0–3, 4–7 in increasing k, one fused multiply-add each,
// and are then added to y.
TEXT ·mulAdd64AVX2(SB), NOSPLIT, $0-56
	MOVQ x+0(FP), SI
	MOVQ ldx+8(FP), DX
	LEAQ (DX)(DX*2), CX
	MOVQ y+16(FP), BX
	MOVQ ldy+24(FP), R11
	MOVQ w+32(FP), R8
	MOVQ kBytes+40(FP), R9
	ADDQ R8, R9
	MOVQ rows+48(FP), R10

row64:
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	MOVQ   SI, AX
	MOVQ   R8, R13

k64:
	VMOVUPD      0(R13), Y8
	VMOVUPD      32(R13), Y9
	VBROADCASTSD (AX), Y10
	VBROADCASTSD (AX)(DX*1), Y11
	VBROADCASTSD (AX)(DX*2), Y12
	VBROADCASTSD (AX)(CX*1), Y13
	VFMADD231PD  Y8, Y10, Y0
	VFMADD231PD  Y9, Y10, Y1
	VFMADD231PD  Y8, Y11, Y2
	VFMADD231PD  Y9, Y11, Y3
	VFMADD231PD  Y8, Y12, Y4
	VFMADD231PD  Y9, Y12, Y5
	VFMADD231PD  Y8, Y13, Y6
	VFMADD231PD  Y9, Y13, Y7
	ADDQ         $8, AX
	ADDQ         $64, R13
	CMPQ         R13, R9
	JNE          k64

	VADDPD  0(BX), Y0, Y0
	VMOVUPD Y0, 0(BX)
	VADDPD  32(BX), Y1, Y1
	VMOVUPD Y1, 32(BX)
	VADDPD  (BX)(R11*1), Y2, Y2
	VMOVUPD Y2, (BX)(R11*1)
	VADDPD  32(BX)(R11*1), Y3, Y3
	VMOVUPD Y3, 32(BX)(R11*1)
	VADDPD  (BX)(R11*2), Y4, Y4
	VMOVUPD Y4, (BX)(R11*2)
	VADDPD  32(BX)(R11*2), Y5, Y5
	VMOVUPD Y5, 32(BX)(R11*2)
	LEAQ    (BX)(R11*2), AX
	VADDPD  (AX)(R11*1), Y6, Y6
	VMOVUPD Y6, (AX)(R11*1)
	VADDPD  32(AX)(R11*1), Y7, Y7
	VMOVUPD Y7, 32(AX)(R11*1)
	LEAQ    (SI)(DX*4), SI
	LEAQ    (BX)(R11*4), BX
	SUBQ    $4, R10
	JNZ     row64
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

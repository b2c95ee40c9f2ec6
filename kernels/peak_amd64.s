//go:build amd64 && !purego

#include "textflag.h"

// func fmaPeakLoop(n int) float32
// Runs n iterations of ten independent VFMADD231PS chains (8 lanes each,
// 160 FLOP an iteration) and returns a lane of their sum, so the work can't
// be dropped. Ten chains cover the latency of both FMA ports.
TEXT ·fmaPeakLoop(SB), NOSPLIT, $0-12
	MOVQ n+0(FP), CX
	MOVL $0x3f800000, AX // 1.0
	MOVQ AX, X10
	VBROADCASTSS X10, Y10
	MOVL $0x2edbe6ff, AX // 1e-10
	MOVQ AX, X11
	VBROADCASTSS X11, Y11
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	TESTQ CX, CX
	JLE done

loop:
	VFMADD231PS Y11, Y10, Y0
	VFMADD231PS Y11, Y10, Y1
	VFMADD231PS Y11, Y10, Y2
	VFMADD231PS Y11, Y10, Y3
	VFMADD231PS Y11, Y10, Y4
	VFMADD231PS Y11, Y10, Y5
	VFMADD231PS Y11, Y10, Y6
	VFMADD231PS Y11, Y10, Y7
	VFMADD231PS Y11, Y10, Y8
	VFMADD231PS Y11, Y10, Y9
	DECQ CX
	JNZ loop

done:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y5, Y4, Y4
	VADDPS Y7, Y6, Y6
	VADDPS Y9, Y8, Y8
	VADDPS Y2, Y0, Y0
	VADDPS Y6, Y4, Y4
	VADDPS Y8, Y0, Y0
	VADDPS Y4, Y0, Y0
	VZEROUPPER
	MOVSS X0, ret+8(FP)
	RET

// func readStreamAVX2(p *byte, n int, dist int) uint64
//
// Reads the n bytes at p (n a multiple of 128) with 256-bit loads, 128
// bytes an iteration into four XOR accumulators, and returns a word of
// their fold so that the loads can't be dropped. With dist > 0 it also
// prefetches the two lines dist bytes ahead of each iteration: a plain load
// loop streams slower here than one that prefetches (or one with work
// between its loads, as a kernel's), so the roofline takes the faster.
TEXT ·readStreamAVX2(SB), NOSPLIT, $0-32
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ dist+16(FP), DX
	SHRQ $7, CX
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	TESTQ CX, CX
	JLE   rsdone
	TESTQ DX, DX
	JLE   rsplain

rspf:
	PREFETCHT0 (SI)(DX*1)
	PREFETCHT0 64(SI)(DX*1)
	VPXOR      (SI), Y0, Y0
	VPXOR      32(SI), Y1, Y1
	VPXOR      64(SI), Y2, Y2
	VPXOR      96(SI), Y3, Y3
	ADDQ       $128, SI
	DECQ       CX
	JNZ        rspf
	JMP        rsdone

rsplain:
	VPXOR (SI), Y0, Y0
	VPXOR 32(SI), Y1, Y1
	VPXOR 64(SI), Y2, Y2
	VPXOR 96(SI), Y3, Y3
	ADDQ  $128, SI
	DECQ  CX
	JNZ   rsplain

rsdone:
	VPXOR Y1, Y0, Y0
	VPXOR Y3, Y2, Y2
	VPXOR Y2, Y0, Y0
	VMOVQ X0, AX
	VZEROUPPER
	MOVQ  AX, ret+24(FP)
	RET

// func fmaPeakLoop512(n int) float32
//
// fmaPeakLoop with 512-bit registers: ten independent VFMADD231PS chains of
// 16 lanes, 320 FLOP an iteration.
TEXT ·fmaPeakLoop512(SB), NOSPLIT, $0-12
	MOVQ         n+0(FP), CX
	MOVL         $0x3f800000, AX // 1.0
	VPBROADCASTD AX, Z10
	MOVL         $0x2edbe6ff, AX // 1e-10
	VPBROADCASTD AX, Z11
	VPXORD       Z0, Z0, Z0
	VPXORD       Z1, Z1, Z1
	VPXORD       Z2, Z2, Z2
	VPXORD       Z3, Z3, Z3
	VPXORD       Z4, Z4, Z4
	VPXORD       Z5, Z5, Z5
	VPXORD       Z6, Z6, Z6
	VPXORD       Z7, Z7, Z7
	VPXORD       Z8, Z8, Z8
	VPXORD       Z9, Z9, Z9
	TESTQ        CX, CX
	JLE          done512

loop512:
	VFMADD231PS Z11, Z10, Z0
	VFMADD231PS Z11, Z10, Z1
	VFMADD231PS Z11, Z10, Z2
	VFMADD231PS Z11, Z10, Z3
	VFMADD231PS Z11, Z10, Z4
	VFMADD231PS Z11, Z10, Z5
	VFMADD231PS Z11, Z10, Z6
	VFMADD231PS Z11, Z10, Z7
	VFMADD231PS Z11, Z10, Z8
	VFMADD231PS Z11, Z10, Z9
	DECQ        CX
	JNZ         loop512

done512:
	VADDPS     Z1, Z0, Z0
	VADDPS     Z3, Z2, Z2
	VADDPS     Z5, Z4, Z4
	VADDPS     Z7, Z6, Z6
	VADDPS     Z9, Z8, Z8
	VADDPS     Z2, Z0, Z0
	VADDPS     Z6, Z4, Z4
	VADDPS     Z8, Z0, Z0
	VADDPS     Z4, Z0, Z0
	VZEROUPPER
	MOVSS      X0, ret+8(FP)
	RET

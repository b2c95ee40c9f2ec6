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

//go:build amd64 && !purego

#include "textflag.h"
#include "hsum_amd64.h"
#include "kscales_amd64.h"

// A 4-token version of dotQ4_KQ8_KAVX2 (dot_amd64.s) for prompt
// processing: each Q4_K super-block of one weight row is unpacked once (the
// 6-bit scales and mins, the nibbles, the scale broadcasts) and applied to
// 4 Q8_K activation rows. Per token the float operations are those of
// dotQ4_KQ8_KAVX2 in the same order (the same fused multiply-adds on the
// same lanes, the same horizontal sums), so every result is bitwise equal
// to dotQ4_KQ8_K; only the exact integer work is shared or reordered.
//
// The same caveat as dotQ4_KQ8_KAVX2: the activations must be as
// quantizeQ8_K makes them (quants in [-127, 127], group sums equal to the
// quants' sums), since pairs of group sums are added in int16 (VPHADDW).
//
// Registers: Y0-Y3 the float accumulators of tokens 0-3 (8 lanes each),
// Y4-Y7 their int32 lanes of the current super-block, Y8 the block's 8
// int16 scales (repeated in both halves), Y9 one scale broadcast, Y10 one
// sub-block's 32 nibbles, Y11 the products, Y12-Y13 scratch, Y14 0x0f
// bytes, X15 the float32 sign bit. The 4 mins accumulators (4 lanes each)
// live in the frame at 0, 16, 32, 48(SP), the tokens' d = x.d*F16(w.d) of
// the current super-block at 64, 68, 72, 76(SP). Token t's activations are
// at DI, DI+R12, DI+2*R12, DI+R13 (R13 = 3*R12).

// Q4KTMAC0(m, acc): acc = the 8 int32 lanes of scale Y9 times the
// 4-element sums of nibbles Y10 against the quants at m (the first
// sub-block of a super-block).
#define Q4KTMAC0(m, acc) \
	VPMADDUBSW m, Y10, Y11; \
	VPMADDWD   Y9, Y11, acc

// Q4KTMAC(m, acc): as Q4KTMAC0, added to acc.
#define Q4KTMAC(m, acc) \
	VPMADDUBSW m, Y10, Y11; \
	VPMADDWD   Y9, Y11, Y11; \
	VPADDD     Y11, acc, acc

// Q4KTLO(woff, shuf): Y10 = the low nibbles of the 32 bytes at woff(SI),
// Y9 = the scale broadcast shuf of Y8.
#define Q4KTLO(woff, shuf) \
	VPAND   woff(SI), Y14, Y10; \
	VPSHUFB shuf, Y8, Y9

// Q4KTHI(woff, shuf): as Q4KTLO with the high nibbles. (The bytes are
// loaded first: VPSRLW with a memory operand exists only in AVX-512's EVEX
// form, which the assembler would pick silently.)
#define Q4KTHI(woff, shuf) \
	VMOVDQU woff(SI), Y10; \
	VPSRLW  $4, Y10, Y10; \
	VPAND   Y14, Y10, Y10; \
	VPSHUFB shuf, Y8, Y9

// Q4KTSUB0(xoff): Q4KTMAC0 for the 4 tokens' quants at xoff.
#define Q4KTSUB0(xoff) \
	Q4KTMAC0(xoff(DI), Y4); \
	Q4KTMAC0(xoff(DI)(R12*1), Y5); \
	Q4KTMAC0(xoff(DI)(R12*2), Y6); \
	Q4KTMAC0(xoff(DI)(R13*1), Y7)

// Q4KTSUB(xoff): Q4KTMAC for the 4 tokens' quants at xoff.
#define Q4KTSUB(xoff) \
	Q4KTMAC(xoff(DI), Y4); \
	Q4KTMAC(xoff(DI)(R12*1), Y5); \
	Q4KTMAC(xoff(DI)(R12*2), Y6); \
	Q4KTMAC(xoff(DI)(R13*1), Y7)

// Q4KTMIN(xd, xb0, xb1, acc, d): one token's mins and d, as
// dotQ4_KQ8_KAVX2: the 4 int32 lanes m_2k*bsum_2k + m_2k+1*bsum_2k+1 (X13
// the mins, the group sums at xb0, xb1), converted and fused-multiply-added
// with dmin = -(x.d*F16(w.dmin)) into the accumulator at acc; d =
// x.d*F16(w.d) stored at d. X12 lane 0 is F16(w.d), X10 lane 0
// F16(w.dmin), x.d at xd. Clobbers X4, X5, X11.
#define Q4KTMIN(xd, xb0, xb1, acc, d) \
	VMOVDQU      xb0, X11; \
	VPHADDW      xb1, X11, X11; \
	VPMADDWD     X11, X13, X11; \
	VCVTDQ2PS    X11, X11; \
	VMOVSS       xd, X4; \
	VMULSS       X12, X4, X5; \
	VMOVSS       X5, d; \
	VMULSS       X10, X4, X4; \
	VXORPS       X15, X4, X4; \
	VBROADCASTSS X4, X4; \
	VFMADD213PS  acc, X4, X11; \
	VMOVUPS      X11, acc

// Q4KTACC(i, a, d): a += d*float32(i), d the float32 at d broadcast, as
// the end of a super-block in dotQ4_KQ8_KAVX2. Clobbers Y9.
#define Q4KTACC(i, a, d) \
	VCVTDQ2PS    i, i; \
	VBROADCASTSS d, Y9; \
	VFMADD231PS  Y9, i, a

// Q4KTOUT(y, x, acc, m): stores hsum8 of y (x its lower half) plus
// (m0+m2)+(m1+m3) of the 4 lanes at acc to m, as dotQ4_KQ8_KAVX2's end.
// Clobbers X9, X10, X11.
#define Q4KTOUT(y, x, acc, m) \
	HSUM8R(y, x, X9); \
	VMOVUPS      acc, X11; \
	VMOVHLPS     X11, X11, X10; \
	VADDPS       X10, X11, X11; \
	VMOVSHDUP    X11, X10; \
	VADDSS       X10, X11, X11; \
	VADDSS       X11, x, x; \
	VMOVSS       x, m

// func dotQ4_KQ8_KTok4AVX2(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)
//
// dotQ4_KQ8_K of one Q4_K weight row of nb super-blocks at w by 4 Q8_K
// activation rows (x + i*xrb) into dst[i*ldd], i < 4, bitwise each as
// dotQ4_KQ8_KAVX2 (see the top of this file).
TEXT ·dotQ4_KQ8_KTok4AVX2(SB), NOSPLIT, $80-48
	MOVQ w+16(FP), SI
	MOVQ x+24(FP), DI
	MOVQ xrb+32(FP), R12
	MOVQ nb+40(FP), CX
	LEAQ (R12)(R12*2), R13
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VMOVUPS Y0, 0(SP)
	VMOVUPS Y0, 32(SP)
	MOVL         $0x0f0f0f0f, AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14
	MOVL         $0x80000000, AX
	VMOVD        AX, X15
	TESTQ CX, CX
	JEQ   q4ktdone

q4ktloop:
	// Scales (Y8, both halves) and mins (X13), as dotQ4_KQ8_KAVX2.
	KSCALES
	VMOVQ       R8, X8
	VPMOVZXBW   X8, X8
	VINSERTI128 $1, X8, Y8, Y8
	VMOVQ     R10, X13
	VPMOVZXBW X13, X13

	// X12 lane 0 = F16(w.d), X10 lane 0 = F16(w.dmin).
	MOVWLZX   (SI), AX
	MOVWLZX   2(SI), BX
	SHLL      $16, BX
	ORL       BX, AX
	VMOVD     AX, X12
	VCVTPH2PS X12, X12
	VMOVSHDUP X12, X10

	Q4KTMIN((DI), 260(DI), 276(DI), 0(SP), 64(SP))
	Q4KTMIN((DI)(R12*1), 260(DI)(R12*1), 276(DI)(R12*1), 16(SP), 68(SP))
	Q4KTMIN((DI)(R12*2), 260(DI)(R12*2), 276(DI)(R12*2), 32(SP), 72(SP))
	Q4KTMIN((DI)(R13*1), 260(DI)(R13*1), 276(DI)(R13*1), 48(SP), 76(SP))

	// The 8 sub-blocks: chunk c's low nibbles against quants 64c..64c+31,
	// its high nibbles against 64c+32..64c+63.
	Q4KTLO(16, ·kScaleShuf+0(SB))
	Q4KTSUB0(4)
	Q4KTHI(16, ·kScaleShuf+32(SB))
	Q4KTSUB(36)
	Q4KTLO(48, ·kScaleShuf+64(SB))
	Q4KTSUB(68)
	Q4KTHI(48, ·kScaleShuf+96(SB))
	Q4KTSUB(100)
	Q4KTLO(80, ·kScaleShuf+128(SB))
	Q4KTSUB(132)
	Q4KTHI(80, ·kScaleShuf+160(SB))
	Q4KTSUB(164)
	Q4KTLO(112, ·kScaleShuf+192(SB))
	Q4KTSUB(196)
	Q4KTHI(112, ·kScaleShuf+224(SB))
	Q4KTSUB(228)

	Q4KTACC(Y4, Y0, 64(SP))
	Q4KTACC(Y5, Y1, 68(SP))
	Q4KTACC(Y6, Y2, 72(SP))
	Q4KTACC(Y7, Y3, 76(SP))
	ADDQ $144, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  q4ktloop

q4ktdone:
	MOVQ dst+0(FP), DX
	MOVQ ldd+8(FP), R8
	LEAQ (DX)(R8*8), R9
	Q4KTOUT(Y0, X0, 0(SP), (DX))
	Q4KTOUT(Y1, X1, 16(SP), (DX)(R8*4))
	Q4KTOUT(Y2, X2, 32(SP), (R9))
	Q4KTOUT(Y3, X3, 48(SP), (R9)(R8*4))
	VZEROUPPER
	RET

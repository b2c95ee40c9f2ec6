//go:build amd64 && !purego

#include "textflag.h"
#include "hsum_amd64.h"
#include "kscales_amd64.h"

// A 4-token version of dotQ5_KQ8_KAVX2 (q5k_amd64.s) for prompt
// processing: each Q5_K super-block of one weight row is unpacked once (the
// 6-bit scales and mins, F16(w.d) and F16(w.dmin), per sub-block the 5-bit
// weights nibble | qh bit<<4 and the scale broadcast) and applied to 4 Q8_K
// activation rows. Per token the float operations are those of
// dotQ5_KQ8_KAVX2 in the same order (d = x.d*F16(w.d); the mins' exact
// int32 total, converted, fused into the scalar summs with -(x.d*F16(w.dmin))
// by one VFNMADD; one fused multiply-add per lane per super-block; hsum8,
// then + summs), so every result is bitwise equal to dotQ5_KQ8_K; only the
// exact integer work is shared or reordered.
//
// As dotQ5_KQ8_KAVX2 it is exact for any block contents: the weights are
// unsigned 0..31, so VPMADDUBSW cannot saturate even at quant -128, and the
// mins' products m_j*bsum_j are made by VPMADDWD of the raw int16 group
// sums (no int16 pair sums) and added in int32.
//
// Registers: Y0-Y3 the float accumulators of tokens 0-3 (8 lanes each),
// Y4-Y7 their int32 lanes of the current super-block, Y8 the block's 8
// int16 scales (repeated in both halves), Y9 one scale broadcast, Y10 one
// sub-block's 32 weights, Y11 the products, Y12 scratch, Y13 the mins as
// 16 int16s m_0,m_0,...,m_7,m_7 (mins phase), then qh shifted right by 2c
// (chunk c), Y14 0x0f bytes, Y15 0x10 bytes; X12 lane 0 F16(w.d), X10
// lane 0 F16(w.dmin) (mins phase). The 4 tokens' summs live in the frame at
// 0, 4, 8, 12(SP), their d = x.d*F16(w.d) of the current super-block at 16,
// 20, 24, 28(SP). Token t's activations are at DI, DI+R12, DI+2*R12, DI+R13
// (R13 = 3*R12).

// Q5KTMIN(xd, xb, s, d): one token's mins and d, as dotQ5_KQ8_KAVX2: the
// 8 int32 lanes m_j*bsum_j (Y13 the doubled mins, the 16 group sums at xb)
// added in int32 (exact), converted, and summs (the float32 at s) =
// -(x.d*F16(w.dmin))*total + summs rounded once; d = x.d*F16(w.d) stored at
// d. x.d at xd. Clobbers X4, X5, X9, X11.
#define Q5KTMIN(xd, xb, s, d) \
	VPMADDWD     xb, Y13, Y11; \
	VEXTRACTI128 $1, Y11, X9; \
	VPADDD       X9, X11, X11; \
	VPSHUFD      $0x4e, X11, X9; \
	VPADDD       X9, X11, X11; \
	VPSHUFD      $0xb1, X11, X9; \
	VPADDD       X9, X11, X11; \
	VCVTDQ2PS    X11, X11; \
	VMOVSS       xd, X4; \
	VMULSS       X12, X4, X5; \
	VMOVSS       X5, d; \
	VMULSS       X10, X4, X4; \
	VMOVSS       s, X5; \
	VFNMADD231SS X4, X11, X5; \
	VMOVSS       X5, s

// Q5KTMAC0(m, acc): acc = the 8 int32 lanes of scale Y9 times the
// 4-element sums of weights Y10 against the quants at m (the first
// sub-block of a super-block).
#define Q5KTMAC0(m, acc) \
	VPMADDUBSW m, Y10, Y11; \
	VPMADDWD   Y9, Y11, acc

// Q5KTMAC(m, acc): as Q5KTMAC0, added to acc.
#define Q5KTMAC(m, acc) \
	VPMADDUBSW m, Y10, Y11; \
	VPMADDWD   Y9, Y11, Y11; \
	VPADDD     Y11, acc, acc

// Q5KTLO(woff, shuf): Y10 = the low nibbles of the 32 bytes at woff(SI)
// with bit 0 of each byte of Y13 as bit 4 (sub-block 2c of chunk c), Y9 =
// the scale broadcast shuf of Y8. In each 16-bit word of Y13 shifted left
// by 4, bit 4 of the low byte is the low byte's bit 0 and bit 4 of the
// high byte the high byte's bit 0.
#define Q5KTLO(woff, shuf) \
	VPAND   woff(SI), Y14, Y10; \
	VPSLLW  $4, Y13, Y12; \
	VPAND   Y15, Y12, Y12; \
	VPOR    Y12, Y10, Y10; \
	VPSHUFB shuf, Y8, Y9

// Q5KTHI(woff, shuf): as Q5KTLO with the high nibbles and bit 1 of each
// byte of Y13 (sub-block 2c+1); then Y13 is shifted right by 2 for the
// next chunk (bits shifted in from the upper byte land at bit 8-2c >= 2
// and are never used). (The bytes are loaded first: VPSRLW with a memory
// operand exists only in AVX-512's EVEX form, which the assembler would
// pick silently.)
#define Q5KTHI(woff, shuf) \
	VMOVDQU woff(SI), Y10; \
	VPSRLW  $4, Y10, Y10; \
	VPAND   Y14, Y10, Y10; \
	VPSLLW  $3, Y13, Y12; \
	VPAND   Y15, Y12, Y12; \
	VPOR    Y12, Y10, Y10; \
	VPSRLW  $2, Y13, Y13; \
	VPSHUFB shuf, Y8, Y9

// Q5KTSUB0(xoff): Q5KTMAC0 for the 4 tokens' quants at xoff.
#define Q5KTSUB0(xoff) \
	Q5KTMAC0(xoff(DI), Y4); \
	Q5KTMAC0(xoff(DI)(R12*1), Y5); \
	Q5KTMAC0(xoff(DI)(R12*2), Y6); \
	Q5KTMAC0(xoff(DI)(R13*1), Y7)

// Q5KTSUB(xoff): Q5KTMAC for the 4 tokens' quants at xoff.
#define Q5KTSUB(xoff) \
	Q5KTMAC(xoff(DI), Y4); \
	Q5KTMAC(xoff(DI)(R12*1), Y5); \
	Q5KTMAC(xoff(DI)(R12*2), Y6); \
	Q5KTMAC(xoff(DI)(R13*1), Y7)

// Q5KTACC(i, a, d): a += d*float32(i), d the float32 at d broadcast, as
// the end of a super-block in dotQ5_KQ8_KAVX2. Clobbers Y9.
#define Q5KTACC(i, a, d) \
	VCVTDQ2PS    i, i; \
	VBROADCASTSS d, Y9; \
	VFMADD231PS  Y9, i, a

// Q5KTOUT(y, x, s, m): stores hsum8 of y (x its lower half) plus the
// summs at s to m, as dotQ5_KQ8_KAVX2's end. Clobbers X9.
#define Q5KTOUT(y, x, s, m) \
	HSUM8R(y, x, X9); \
	VADDSS       s, x, x; \
	VMOVSS       x, m

// func dotQ5_KQ8_KTok4AVX2(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)
//
// dotQ5_KQ8_K of one Q5_K weight row of nb super-blocks at w by 4 Q8_K
// activation rows (x + i*xrb) into dst[i*ldd], i < 4, bitwise each as
// dotQ5_KQ8_KAVX2 (see the top of this file). Q5_K block (176 bytes): d,
// dmin F16 at 0, 2; scales[12] at 4; qh[32] at 16; qs[128] at 48. Q8_K
// block (292 bytes): d float32 at 0; qs int8[256] at 4; bsums int16[16] at
// 260.
TEXT ·dotQ5_KQ8_KTok4AVX2(SB), NOSPLIT, $32-48
	MOVQ w+16(FP), SI
	MOVQ x+24(FP), DI
	MOVQ xrb+32(FP), R12
	MOVQ nb+40(FP), CX
	LEAQ (R12)(R12*2), R13
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VMOVUPS X0, 0(SP)
	MOVL         $0x0f0f0f0f, AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14
	MOVL         $0x10101010, AX
	VMOVD        AX, X15
	VPBROADCASTD X15, Y15
	TESTQ CX, CX
	JEQ   q5ktdone

q5ktloop:
	// Scales (Y8, both halves) and mins (Y13, each twice as int16), as
	// dotQ5_KQ8_KAVX2.
	KSCALES
	VMOVQ       R8, X8
	VPMOVZXBW   X8, X8
	VINSERTI128 $1, X8, Y8, Y8
	VMOVQ       R10, X13
	VPUNPCKLBW  X13, X13, X13
	VPMOVZXBW   X13, Y13

	// X12 lane 0 = F16(w.d), X10 lane 0 = F16(w.dmin).
	VMOVD     (SI), X12
	VCVTPH2PS X12, X12
	VMOVSHDUP X12, X10

	Q5KTMIN((DI), 260(DI), 0(SP), 16(SP))
	Q5KTMIN((DI)(R12*1), 260(DI)(R12*1), 4(SP), 20(SP))
	Q5KTMIN((DI)(R12*2), 260(DI)(R12*2), 8(SP), 24(SP))
	Q5KTMIN((DI)(R13*1), 260(DI)(R13*1), 12(SP), 28(SP))

	// The 8 sub-blocks: chunk c's low nibbles (fifth bit qh bit 2c)
	// against quants 64c..64c+31, its high nibbles (qh bit 2c+1) against
	// 64c+32..64c+63.
	VMOVDQU 16(SI), Y13
	Q5KTLO(48, ·kScaleShuf+0(SB))
	Q5KTSUB0(4)
	Q5KTHI(48, ·kScaleShuf+32(SB))
	Q5KTSUB(36)
	Q5KTLO(80, ·kScaleShuf+64(SB))
	Q5KTSUB(68)
	Q5KTHI(80, ·kScaleShuf+96(SB))
	Q5KTSUB(100)
	Q5KTLO(112, ·kScaleShuf+128(SB))
	Q5KTSUB(132)
	Q5KTHI(112, ·kScaleShuf+160(SB))
	Q5KTSUB(164)
	Q5KTLO(144, ·kScaleShuf+192(SB))
	Q5KTSUB(196)
	Q5KTHI(144, ·kScaleShuf+224(SB))
	Q5KTSUB(228)

	Q5KTACC(Y4, Y0, 16(SP))
	Q5KTACC(Y5, Y1, 20(SP))
	Q5KTACC(Y6, Y2, 24(SP))
	Q5KTACC(Y7, Y3, 28(SP))
	ADDQ $176, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  q5ktloop

q5ktdone:
	MOVQ dst+0(FP), DX
	MOVQ ldd+8(FP), R8
	LEAQ (DX)(R8*8), R9
	Q5KTOUT(Y0, X0, 0(SP), (DX))
	Q5KTOUT(Y1, X1, 4(SP), (DX)(R8*4))
	Q5KTOUT(Y2, X2, 8(SP), (R9))
	Q5KTOUT(Y3, X3, 12(SP), (R9)(R8*4))
	VZEROUPPER
	RET

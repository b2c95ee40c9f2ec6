//go:build amd64 && !purego

#include "textflag.h"
#include "hsum_amd64.h"

// A 4-token version of dotQ6_KQ8_KAVX2 (dot_amd64.s) for prompt
// processing: each 32-weight chunk of a Q6_K super-block of one weight row
// is unpacked once (the 6-bit quants from ql and qh, minus 32, their
// magnitudes, the int8 scale broadcast) and applied to 4 Q8_K activation
// rows. Per token the float operations are those of dotQ6_KQ8_KAVX2 in the
// same order (d = x.d*F16(w.d), one fused multiply-add per lane per
// super-block, the same horizontal sum), so every result is bitwise equal
// to dotQ6_KQ8_K; only the exact integer work is shared.
//
// The same caveat as dotQ6_KQ8_KAVX2: the activations must be as
// quantizeQ8_K makes them, quants in [-127, 127] (no -128), so that the
// pairwise int16 sums of VPMADDUBSW on |w| and x*sign(w) cannot saturate.
// The group sums of the Q8_K rows are not read.
//
// Registers: Y0-Y3 the float accumulators of tokens 0-3 (8 lanes each),
// Y4-Y7 their int32 lanes of the current super-block, X8 the block's 16
// int8 scales (then F16(w.d) as float32), Y9 one chunk's scales as int16
// (then d), Y10 the chunk's 32 weights (int8, 6-bit minus 32), Y11 their
// magnitudes, Y15 scratch, Y12 0x20 bytes, Y13 0x30 bytes, Y14 0x0f bytes.
// Token t's activations are at DI, DI+R12, DI+2*R12, DI+R13 (R13 = 3*R12).
// No frame.

// The scales are spread with ·kQ6Mask (dot_amd64.s), the table of the
// one-token kernel.

// Q6KTFIN(c): from the 6-bit quants in Y10 (low 4 bits) and Y11 (bits 4-5,
// not yet masked), Y10 = the chunk's weights minus 32, Y11 their
// magnitudes, Y9 the int16 broadcast of the chunk's two scales (the
// ·kQ6Mask row at byte offset c).
#define Q6KTFIN(c) \
	VPAND     Y13, Y11, Y11; \
	VPOR      Y11, Y10, Y10; \
	VPSUBB    Y12, Y10, Y10; \
	VPSIGNB   Y10, Y10, Y11; \
	VPSHUFB   ·kQ6Mask+c(SB), X8, X9; \
	VPMOVSXBW X9, Y9

// (The shifts take registers: their VEX forms have no memory operand, and
// a memory operand would make the assembler pick an AVX-512 encoding.)

// Q6KTLOSH(ql, qh, sh, c): a chunk from the low nibbles of the 32 bytes at
// ql(SI) and the bit pair of the 32 bytes at qh(SI) shifted left by sh.
#define Q6KTLOSH(ql, qh, sh, c) \
	VPAND   ql(SI), Y14, Y10; \
	VMOVDQU qh(SI), Y11; \
	VPSLLW  $sh, Y11, Y11; \
	Q6KTFIN(c)

// Q6KTLO0(ql, qh, c): as Q6KTLOSH with no shift of qh.
#define Q6KTLO0(ql, qh, c) \
	VPAND   ql(SI), Y14, Y10; \
	VMOVDQU qh(SI), Y11; \
	Q6KTFIN(c)

// Q6KTHI0(ql, qh, c): as Q6KTHIL with no shift of qh.
#define Q6KTHI0(ql, qh, c) \
	VMOVDQU ql(SI), Y10; \
	VPSRLW  $4, Y10, Y10; \
	VPAND   Y14, Y10, Y10; \
	VMOVDQU qh(SI), Y11; \
	Q6KTFIN(c)

// Q6KTHIR(ql, qh, sh, c): as Q6KTHIL with qh shifted right by sh.
#define Q6KTHIR(ql, qh, sh, c) \
	VMOVDQU ql(SI), Y10; \
	VPSRLW  $4, Y10, Y10; \
	VPAND   Y14, Y10, Y10; \
	VMOVDQU qh(SI), Y11; \
	VPSRLW  $sh, Y11, Y11; \
	Q6KTFIN(c)

// Q6KTMAC0(m, acc): acc = the 8 int32 lanes of LANES8 (dot_amd64.s) of the
// weights Y10 against the 32 quants at m, pairwise int16 sums multiplied by
// the scales Y9 (the first chunk of a super-block). Clobbers Y15.
#define Q6KTMAC0(m, acc) \
	VMOVDQU    m, Y15; \
	VPSIGNB    Y10, Y15, Y15; \
	VPMADDUBSW Y15, Y11, Y15; \
	VPMADDWD   Y9, Y15, acc

// Q6KTMAC(m, acc): as Q6KTMAC0, added to acc.
#define Q6KTMAC(m, acc) \
	VMOVDQU    m, Y15; \
	VPSIGNB    Y10, Y15, Y15; \
	VPMADDUBSW Y15, Y11, Y15; \
	VPMADDWD   Y9, Y15, Y15; \
	VPADDD     Y15, acc, acc

// Q6KTSUB0(xoff): Q6KTMAC0 for the 4 tokens' quants at xoff.
#define Q6KTSUB0(xoff) \
	Q6KTMAC0(xoff(DI), Y4); \
	Q6KTMAC0(xoff(DI)(R12*1), Y5); \
	Q6KTMAC0(xoff(DI)(R12*2), Y6); \
	Q6KTMAC0(xoff(DI)(R13*1), Y7)

// Q6KTSUB(xoff): Q6KTMAC for the 4 tokens' quants at xoff.
#define Q6KTSUB(xoff) \
	Q6KTMAC(xoff(DI), Y4); \
	Q6KTMAC(xoff(DI)(R12*1), Y5); \
	Q6KTMAC(xoff(DI)(R12*2), Y6); \
	Q6KTMAC(xoff(DI)(R13*1), Y7)

// Q6KTACC(i, a, xd): a += d*float32(i) with d = x.d*F16(w.d) (x.d the
// float32 at xd, F16(w.d) in X8 lane 0) broadcast, as the end of a
// super-block in dotQ6_KQ8_KAVX2. Clobbers Y9.
#define Q6KTACC(i, a, xd) \
	VCVTDQ2PS    i, i; \
	VMULSS       xd, X8, X9; \
	VBROADCASTSS X9, Y9; \
	VFMADD231PS  Y9, i, a

// Q6KTOUT(y, x, m): stores hsum8 of y (x its lower half) to m, as HSUM8
// (hsum_amd64.h) at dotQ6_KQ8_KAVX2's end. Clobbers X9.
#define Q6KTOUT(y, x, m) \
	HSUM8R(y, x, X9); \
	VMOVSS       x, m

// func dotQ6_KQ8_KTok4AVX2(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)
//
// dotQ6_KQ8_K of one Q6_K weight row of nb super-blocks at w by 4 Q8_K
// activation rows (x + i*xrb) into dst[i*ldd], i < 4, bitwise each as
// dotQ6_KQ8_KAVX2 (see the top of this file).
TEXT ·dotQ6_KQ8_KTok4AVX2(SB), NOSPLIT, $0-48
	MOVQ w+16(FP), SI
	MOVQ x+24(FP), DI
	MOVQ xrb+32(FP), R12
	MOVQ nb+40(FP), CX
	LEAQ (R12)(R12*2), R13
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVL         $0x0f0f0f0f, AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14
	MOVL         $0x30303030, AX
	VMOVD        AX, X13
	VPBROADCASTD X13, Y13
	MOVL         $0x20202020, AX
	VMOVD        AX, X12
	VPBROADCASTD X12, Y12
	TESTQ CX, CX
	JEQ   q6ktdone

q6ktloop:
	VMOVDQU 192(SI), X8

	// First half (ql at 0, 32; qh at 128), quants 0..127.
	Q6KTLOSH(0, 128, 4, 0)
	Q6KTSUB0(4)
	Q6KTLOSH(32, 128, 2, 16)
	Q6KTSUB(36)
	Q6KTHI0(0, 128, 32)
	Q6KTSUB(68)
	Q6KTHIR(32, 128, 2, 48)
	Q6KTSUB(100)

	// Second half (ql at 64, 96; qh at 160), quants 128..255.
	Q6KTLOSH(64, 160, 4, 64)
	Q6KTSUB(132)
	Q6KTLOSH(96, 160, 2, 80)
	Q6KTSUB(164)
	Q6KTHI0(64, 160, 96)
	Q6KTSUB(196)
	Q6KTHIR(96, 160, 2, 112)
	Q6KTSUB(228)

	// X8 lane 0 = F16(w.d).
	MOVWLZX   208(SI), AX
	VMOVD     AX, X8
	VCVTPH2PS X8, X8

	Q6KTACC(Y4, Y0, (DI))
	Q6KTACC(Y5, Y1, (DI)(R12*1))
	Q6KTACC(Y6, Y2, (DI)(R12*2))
	Q6KTACC(Y7, Y3, (DI)(R13*1))
	ADDQ $210, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  q6ktloop

q6ktdone:
	MOVQ dst+0(FP), DX
	MOVQ ldd+8(FP), R8
	LEAQ (DX)(R8*8), R9
	Q6KTOUT(Y0, X0, (DX))
	Q6KTOUT(Y1, X1, (DX)(R8*4))
	Q6KTOUT(Y2, X2, (R9))
	Q6KTOUT(Y3, X3, (R9)(R8*4))
	VZEROUPPER
	RET

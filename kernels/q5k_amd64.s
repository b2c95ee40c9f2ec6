//go:build amd64 && !purego

#include "textflag.h"
#include "kscales_amd64.h"
#include "hsum_amd64.h"

// AVX2+FMA+F16C version of dotQ5_KQ8_K (dot.go), built like
// dotQ4_KQ8_KAVX2 in dot_amd64.s and bitwise equal to the reference under
// the same conventions (see the header of dot_amd64.s, including its caveat
// about the reference's doubly rounded fma32).

// The scales are broadcast with ·kScaleShuf (dot_amd64.s), the table of
// the Q4_K kernel.

// Q5KCHUNK(q, x0, x1, m0, m1) adds chunk c of a super-block (64 weights:
// sub-blocks 2c and 2c+1) to the int32 lanes in Y11. q is the offset of its
// 32 quant bytes in the weight block, x0 and x1 those of the two 32-quant
// groups in the Q8_K block, m0 and m1 those of the two scales' masks in
// ·kScaleShuf. On entry Y6 holds qh shifted right by 2c in each 16-bit word,
// so bits 0 and 1 of every byte are that byte's bits 2c and 2c+1 (the bits
// shifted in from the upper byte land at bit 8-2c >= 2 and are masked
// off); on exit it is shifted by two more. The weights are nibble | bit<<4
// (0..31, unsigned), so VPMADDUBSW against the int8 quants cannot saturate
// (|pair| <= 2*31*128); VPMADDWD with the scale (0..63) then makes
// sc*(4-element sum) per int32 lane, exact, as the reference's kLanes.
// Clobbers Y1, Y2, Y3, Y5, Y9, Y10.
#define Q5KCHUNK(q, x0, x1, m0, m1) \
	VMOVDQU    q(SI), Y5; \
	VPAND      Y14, Y5, Y1; \
	VPSRLW     $4, Y5, Y5; \
	VPAND      Y14, Y5, Y5; \
	VPSLLW     $4, Y6, Y10; \
	VPAND      Y13, Y10, Y10; \
	VPOR       Y10, Y1, Y1; \
	VPSLLW     $3, Y6, Y10; \
	VPAND      Y13, Y10, Y10; \
	VPOR       Y10, Y5, Y5; \
	VPSRLW     $2, Y6, Y6; \
	VMOVDQU    x0(DI), Y2; \
	VPMADDUBSW Y2, Y1, Y3; \
	VPSHUFB    ·kScaleShuf+m0(SB), Y7, Y9; \
	VPMADDWD   Y9, Y3, Y3; \
	VPADDD     Y3, Y11, Y11; \
	VMOVDQU    x1(DI), Y2; \
	VPMADDUBSW Y2, Y5, Y3; \
	VPSHUFB    ·kScaleShuf+m1(SB), Y7, Y9; \
	VPMADDWD   Y9, Y3, Y3; \
	VPADDD     Y3, Y11, Y11

// func dotQ5_KQ8_KAVX2(w, x *byte, nb int) float32
//
// Q5_K block (176 bytes): d, dmin F16 at 0, 2; scales[12] at 4; qh[32] at
// 16; qs[128] at 48. Q8_K block (292 bytes): d float32 at 0; qs int8[256]
// at 4; bsums int16[16] at 260.
//
// Per super-block: the 6-bit scales and mins unpacked with 32-bit masks
// into R8 and R10 (byte j of each is scaleMinK4(j)); 8 int32 lanes of
// sum_j sc_j*(4-element sums of the 5-bit weights against the quants),
// exact, converted and fused-multiply-added with d = x.d*F16(w.d) into the
// 8 float32 lanes of Y0 (accLanes). The mins: VPMADDWD of the 16 group
// sums with the 16 int16s m_0,m_0,m_1,m_1,...,m_7,m_7 gives lane j =
// m_j*bsum_j exact (for any int16 group sums), and the 8 lanes are added
// in integers (exact, so in any order) to the reference's
// (p0+p2)+(p1+p3); that total, converted, is fused-multiply-added with
// dmin = -(x.d*F16(w.dmin)) into the scalar summs in X4 as one VFNMADD of
// the positive product (-(a*b)+c rounds once, exactly as fma(-a, b, c)).
// At the end hsum8 of Y0, plus summs.
//
// Registers: SI w, DI x, CX blocks left; Y0 acc; X4 summs; Y14 0x0f bytes;
// Y13 0x10 bytes; Y7 the 8 int16 scales in both halves; Y6 qh (shifted);
// Y11 int32 lanes; X12 x.d; X15 d; X8 the mins' total; Y1, Y2, Y3, Y5, Y9,
// Y10 temporaries.
TEXT ·dotQ5_KQ8_KAVX2(SB), NOSPLIT, $0-28
	MOVQ   w+0(FP), SI
	MOVQ   x+8(FP), DI
	MOVQ   nb+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS X4, X4, X4
	MOVL         $0x0f0f0f0f, AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14
	MOVL         $0x10101010, AX
	VMOVD        AX, X13
	VPBROADCASTD X13, Y13
	TESTQ  CX, CX
	JEQ    q5kdone

q5kloop:
	// Scales (R8) and mins (R10), 8 bytes each, as dotQ4_KQ8_KAVX2:
	// j < 4: s[j]&63, s[j+4]&63; j >= 4: s[j+4]&15 | (s[j-4]>>6)<<4,
	// s[j+4]>>4 | (s[j]>>6)<<4.
	KSCALES

	// Y7 = scales as int16, the same 8 in both halves.
	VMOVQ       R8, X7
	VPMOVZXBW   X7, X7
	VINSERTI128 $1, X7, Y7, Y7

	// X8 lane 0 = sum_j m_j*bsum_j as int32, exact: each min twice as
	// int16 against the 16 group sums, then the 8 lanes added.
	VMOVQ        R10, X8
	VPUNPCKLBW   X8, X8, X8
	VPMOVZXBW    X8, Y8
	VPMADDWD     260(DI), Y8, Y8
	HSUMD8R(Y8, X8, X9)
	VCVTDQ2PS    X8, X8

	// X15 = d = x.d*F16(w.d); X5 = x.d*F16(w.dmin);
	// summs = fma(-(x.d*F16(w.dmin)), float32(total), summs).
	VMOVD        (SI), X5
	VCVTPH2PS    X5, X5
	VMOVSS       (DI), X12
	VMULSS       X5, X12, X15
	VMOVSHDUP    X5, X5
	VMULSS       X5, X12, X5
	VFNMADD231SS X5, X8, X4

	// 8 int32 lanes of the four 64-weight chunks.
	VMOVDQU 16(SI), Y6
	VPXOR   Y11, Y11, Y11
	Q5KCHUNK(48, 4, 36, 0, 32)
	Q5KCHUNK(80, 68, 100, 64, 96)
	Q5KCHUNK(112, 132, 164, 128, 160)
	Q5KCHUNK(144, 196, 228, 192, 224)

	// acc = fma(d, float32(lanes), acc).
	VCVTDQ2PS    Y11, Y11
	VBROADCASTSS X15, Y15
	VFMADD231PS  Y15, Y11, Y0
	ADDQ         $176, SI
	ADDQ         $292, DI
	DECQ         CX
	JNZ          q5kloop

q5kdone:
	// hsum8 of Y0: upper half onto lower, lanes 2,3 onto 0,1, lane 1
	// onto 0; then + summs.
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VMOVHLPS     X0, X0, X1
	VADDPS       X1, X0, X0
	VMOVSHDUP    X0, X1
	VADDSS       X1, X0, X0
	VADDSS       X4, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

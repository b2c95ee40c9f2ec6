//go:build amd64 && !purego

#include "textflag.h"
#include "hsum_amd64.h"
#include "q8k_amd64.h"

// The AVX2 form of quantizeQ8_KAVX512 (q8k512_amd64.s), 8 elements a
// register: the same arithmetic, byte for byte the reference's.

// Q8KMAX2(i) folds the magnitudes of elements 8i..8i+7 of the block at SI
// into Y0: VMAXPS keeps Y0's lane where the element is a NaN, as the
// reference's a > amax does.
#define Q8KMAX2(i) \
	VANDPS (32*i)(SI), Y15, Y1; \
	VMAXPS Y0, Y1, Y0

// Q8KQ1(o, r) leaves in r the int32 quants of the 8 elements at o(SI),
// by the scale in Y4, with the reference's arithmetic: q = min(127,
// nearest(iscale*x)), nearest(v) the low 23 bits of v+1.5*2^23 less 2^22
// (exact for any v, as roundEven), truncated to a byte and sign-extended
// (an iscale that overflowed to infinity leaves values far below -128).
#define Q8KQ1(o, r) \
	VMULPS  o(SI), Y4, r; \
	VADDPS  Y14, r, r; \
	VPAND   Y13, r, r; \
	VPSUBD  Y12, r, r; \
	VPMINSD Y11, r, r; \
	VPSLLD  $24, r, r; \
	VPSRAD  $24, r, r

// Q8KQ2(i) quantizes elements 32i..32i+31 of the block at SI into bytes
// at 4+32i(DI), and stores the sums of groups 2i and 2i+1 (16 quants
// each) as bsums at 260+4i(DI). The quants fit a byte, so the saturating
// packs keep them; VPERMD puts the packs' dwords back in element order.
#define Q8KQ2(i) \
	Q8KQ1(128*i, Y0); \
	Q8KQ1(128*i+32, Y1); \
	Q8KQ1(128*i+64, Y2); \
	Q8KQ1(128*i+96, Y3); \
	VPADDD       Y1, Y0, Y5; \
	VPADDD       Y3, Y2, Y6; \
	VPACKSSDW    Y1, Y0, Y0; \
	VPACKSSDW    Y3, Y2, Y2; \
	VPACKSSWB    Y2, Y0, Y0; \
	VPERMD       Y0, Y10, Y0; \
	VMOVDQU      Y0, (4+32*i)(DI); \
	VPHADDD      Y6, Y5, Y5; \
	VPHADDD      Y5, Y5, Y5; \
	VEXTRACTI128 $1, Y5, X6; \
	VPADDD       X6, X5, X5; \
	VMOVD        X5, AX; \
	MOVW         AX, (260+4*i)(DI); \
	VPEXTRD      $1, X5, AX; \
	MOVW         AX, (262+4*i)(DI)

// func quantizeQ8_KAVX2(y *byte, x *float32, nb int)
//
// quantizeQ8_K of nb blocks of 256 elements at x into y, byte for byte:
// amax the largest magnitude (NaNs left out), max the first element of
// that magnitude, iscale = -127/max, d = 1/iscale; an all-zero (or
// all-NaN) block is all zero bytes.
TEXT ·quantizeQ8_KAVX2(SB), NOSPLIT, $0-24
	MOVQ         y+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         nb+16(FP), CX
	TESTQ        CX, CX
	JLE          q8k2done
	MOVL         $0x7fffffff, AX
	VMOVD        AX, X15
	VPBROADCASTD X15, Y15
	MOVL         $0x4b400000, AX // 1.5*2^23
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14
	MOVL         $0x007fffff, AX
	VMOVD        AX, X13
	VPBROADCASTD X13, Y13
	MOVL         $0x00400000, AX
	VMOVD        AX, X12
	VPBROADCASTD X12, Y12
	MOVL         $127, AX
	VMOVD        AX, X11
	VPBROADCASTD X11, Y11
	VMOVDQU      q8kPerm<>(SB), Y10

q8k2block:
	VXORPS Y0, Y0, Y0
	Q8KMAX2(0)
	Q8KMAX2(1)
	Q8KMAX2(2)
	Q8KMAX2(3)
	Q8KMAX2(4)
	Q8KMAX2(5)
	Q8KMAX2(6)
	Q8KMAX2(7)
	Q8KMAX2(8)
	Q8KMAX2(9)
	Q8KMAX2(10)
	Q8KMAX2(11)
	Q8KMAX2(12)
	Q8KMAX2(13)
	Q8KMAX2(14)
	Q8KMAX2(15)
	Q8KMAX2(16)
	Q8KMAX2(17)
	Q8KMAX2(18)
	Q8KMAX2(19)
	Q8KMAX2(20)
	Q8KMAX2(21)
	Q8KMAX2(22)
	Q8KMAX2(23)
	Q8KMAX2(24)
	Q8KMAX2(25)
	Q8KMAX2(26)
	Q8KMAX2(27)
	Q8KMAX2(28)
	Q8KMAX2(29)
	Q8KMAX2(30)
	Q8KMAX2(31)
	HMAX8
	VXORPS   X1, X1, X1
	VUCOMISS X1, X0
	JEQ      q8k2zero

	// The first element whose magnitude is amax.
	VBROADCASTSS X0, Y2
	XORQ         BX, BX

q8k2find:
	VANDPS    (SI)(BX*4), Y15, Y1
	VCMPPS    $0, Y2, Y1, Y1
	VMOVMSKPS Y1, AX
	TESTL     AX, AX
	JNZ       q8k2found
	ADDQ      $8, BX
	JMP       q8k2find

q8k2found:
	BSFL         AX, AX
	ADDQ         BX, AX
	Q8KSCALE
	VBROADCASTSS X4, Y4
	Q8KQ2(0)
	Q8KQ2(1)
	Q8KQ2(2)
	Q8KQ2(3)
	Q8KQ2(4)
	Q8KQ2(5)
	Q8KQ2(6)
	Q8KQ2(7)
	JMP q8k2next

q8k2zero:
	VPXOR   Y1, Y1, Y1
	VMOVDQU Y1, (DI)
	VMOVDQU Y1, 32(DI)
	VMOVDQU Y1, 64(DI)
	VMOVDQU Y1, 96(DI)
	VMOVDQU Y1, 128(DI)
	VMOVDQU Y1, 160(DI)
	VMOVDQU Y1, 192(DI)
	VMOVDQU Y1, 224(DI)
	VMOVDQU Y1, 256(DI)
	MOVL    $0, 288(DI)

q8k2next:
	ADDQ $1024, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  q8k2block

q8k2done:
	VZEROUPPER
	RET

// q8kPerm<>: VPERMD indices putting the dwords of the packs of four
// registers of quants (a0 b0 c0 d0 a1 b1 c1 d1: a register's first and
// last four) back in element order.
DATA q8kPerm<>+0(SB)/4, $0
DATA q8kPerm<>+4(SB)/4, $4
DATA q8kPerm<>+8(SB)/4, $1
DATA q8kPerm<>+12(SB)/4, $5
DATA q8kPerm<>+16(SB)/4, $2
DATA q8kPerm<>+20(SB)/4, $6
DATA q8kPerm<>+24(SB)/4, $3
DATA q8kPerm<>+28(SB)/4, $7
GLOBL q8kPerm<>(SB), RODATA|NOPTR, $32

//go:build amd64 && !purego

#include "textflag.h"
#include "hsum_amd64.h"
#include "q8k_amd64.h"

// Q8KMAX(i) folds the magnitudes of elements 16i..16i+15 of the block at
// SI into Z0: VMAXPS keeps Z0's lane where the element is a NaN, as the
// reference's a > amax does.
#define Q8KMAX(i) \
	VANDPS (64*i)(SI), Z31, Z1; \
	VMAXPS Z0, Z1, Z0

// Q8KQ(i) quantizes elements 16i..16i+15 of the block at SI by the scale
// in Z4 into the block at DI, with the reference's arithmetic: q =
// min(127, nearest(iscale*x)), nearest(v) the low 23 bits of v+1.5*2^23
// less 2^22 (exact for any v, as roundEven), stored truncated to a byte;
// then the sum of their 16 bytes, sign-extended, as bsums[i].
#define Q8KQ(i) \
	VMULPS         (64*i)(SI), Z4, Z1; \
	VADDPS         Z30, Z1, Z1; \
	VPANDD         Z29, Z1, Z1; \
	VPSUBD         Z28, Z1, Z1; \
	VPMINSD        Z27, Z1, Z1; \
	VPMOVDB        Z1, (4+16*i)(DI); \
	VPSLLD         $24, Z1, Z1; \
	VPSRAD         $24, Z1, Z1; \
	VEXTRACTI64X4  $1, Z1, Y2; \
	VPADDD         Y2, Y1, Y1; \
	VEXTRACTI128   $1, Y1, X2; \
	VPADDD         X2, X1, X1; \
	VPSHUFD        $0x4e, X1, X2; \
	VPADDD         X2, X1, X1; \
	VPSHUFD        $0xb1, X1, X2; \
	VPADDD         X2, X1, X1; \
	VMOVD          X1, AX; \
	MOVW           AX, (260+2*i)(DI)

// func quantizeQ8_KAVX512(y *byte, x *float32, nb int)
//
// quantizeQ8_K of nb blocks of 256 elements at x into y, byte for byte:
// amax the largest magnitude (NaNs left out), max the first element of
// that magnitude, iscale = -127/max, d = 1/iscale; an all-zero (or
// all-NaN) block is all zero bytes.
TEXT ·quantizeQ8_KAVX512(SB), NOSPLIT, $0-24
	MOVQ         y+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         nb+16(FP), CX
	TESTQ        CX, CX
	JLE          q8kdone
	MOVL         $0x7fffffff, AX
	VPBROADCASTD AX, Z31
	MOVL         $0x4b400000, AX // 1.5*2^23
	VPBROADCASTD AX, Z30
	MOVL         $0x007fffff, AX
	VPBROADCASTD AX, Z29
	MOVL         $0x00400000, AX
	VPBROADCASTD AX, Z28
	MOVL         $127, AX
	VPBROADCASTD AX, Z27

q8kblock:
	VXORPS Z0, Z0, Z0
	Q8KMAX(0)
	Q8KMAX(1)
	Q8KMAX(2)
	Q8KMAX(3)
	Q8KMAX(4)
	Q8KMAX(5)
	Q8KMAX(6)
	Q8KMAX(7)
	Q8KMAX(8)
	Q8KMAX(9)
	Q8KMAX(10)
	Q8KMAX(11)
	Q8KMAX(12)
	Q8KMAX(13)
	Q8KMAX(14)
	Q8KMAX(15)
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS        Y1, Y0, Y0
	HMAX8
	VXORPS        X1, X1, X1
	VUCOMISS      X1, X0
	JEQ           q8kzero

	// The first element whose magnitude is amax.
	VBROADCASTSS X0, Z2
	XORQ         BX, BX

q8kfind:
	VANDPS   (SI)(BX*4), Z31, Z1
	VCMPPS   $0, Z2, Z1, K1
	KMOVW    K1, AX
	TESTL    AX, AX
	JNZ      q8kfound
	ADDQ     $16, BX
	JMP      q8kfind

q8kfound:
	TZCNTL       AX, AX
	ADDQ         BX, AX
	Q8KSCALE
	VBROADCASTSS X4, Z4
	Q8KQ(0)
	Q8KQ(1)
	Q8KQ(2)
	Q8KQ(3)
	Q8KQ(4)
	Q8KQ(5)
	Q8KQ(6)
	Q8KQ(7)
	Q8KQ(8)
	Q8KQ(9)
	Q8KQ(10)
	Q8KQ(11)
	Q8KQ(12)
	Q8KQ(13)
	Q8KQ(14)
	Q8KQ(15)
	JMP q8knext

q8kzero:
	VPXORD    Z1, Z1, Z1
	VMOVDQU32 Z1, (DI)
	VMOVDQU32 Z1, 64(DI)
	VMOVDQU32 Z1, 128(DI)
	VMOVDQU32 Z1, 192(DI)
	VMOVDQU   Y1, 256(DI)
	MOVL      $0, 288(DI)

q8knext:
	ADDQ $1024, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  q8kblock

q8kdone:
	VZEROUPPER
	RET

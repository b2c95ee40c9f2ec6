//go:build amd64 && !purego

#include "textflag.h"

// AVX-512 (F, BW, VL) and AVX-512 VNNI versions of the packed products of
// dot_amd64.s, over groups of 16 rows packed by packRows: one Z register
// holds the same 4 columns of 16 rows, and VPDPBUSD adds each row's 4
// products of unsigned weight bytes and signed activation bytes (the
// activations' 4 bytes broadcast from memory) into its int32 lane. Integer
// sums are exact in any order, so the lanes end with the same integers as
// the AVX2 kernels' and every float operation is the reference's, in its
// order: the results are bitwise equal.

// PACK_PREFETCH is how far ahead of its loads a packed kernel prefetches
// the weights, a line at a time: groups are contiguous, so this runs on
// into the next group. On a stack of 1B-like layer products streamed from
// memory by 2 threads, 2-8 KB ahead gained 3-8% over none (medians of 15
// alternating rounds); 16 KB gained less for Q4_0.
#define PACK_PREFETCH 4096

// func dotQ4_0Q8_0x16PackedAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ4_0Q8_0x8 of groups*16 rows packed in groups of 16 (group g's blocks
// at w + g*nb*288) into dst[16g+r]: lane r of Z0 is row r's accumulator,
// and per block acc_r = fma(float32(sumi_r), F16(dw_r)*F16(dx), acc_r) in
// block order, sumi_r the exact sum of nibble*x minus 8 times the sum of
// the block's x (xs: packedSums). Word i of the block's 64-byte chunks
// holds elements 4i..4i+3 of each row in its low nibbles (against x bytes
// 2+4i..) and 16+4i.. in its high ones (against 18+4i..); the low and high
// sums go to Z1 and Z2, two chains instead of one.
TEXT ·dotQ4_0Q8_0x16PackedAVX512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DX
	MOVQ w+8(FP), SI
	MOVQ nb+32(FP), R9
	MOVQ groups+40(FP), R8
	MOVL         $0x0f0f0f0f, AX
	VPBROADCASTD AX, Z31
	TESTQ R8, R8
	JEQ   p16done
	TESTQ R9, R9
	JEQ   p16done

p16group:
	MOVQ   x+16(FP), DI
	MOVQ   xs+24(FP), BX
	MOVQ   R9, CX
	VXORPS Z0, Z0, Z0

p16loop:
	PREFETCHT0 PACK_PREFETCH(SI)
	PREFETCHT0 PACK_PREFETCH+64(SI)
	PREFETCHT0 PACK_PREFETCH+128(SI)
	PREFETCHT0 PACK_PREFETCH+192(SI)
	PREFETCHT0 PACK_PREFETCH+256(SI)
	VMOVDQU32 32(SI), Z3
	VMOVDQU32 96(SI), Z5
	VMOVDQU32 160(SI), Z7
	VMOVDQU32 224(SI), Z9
	VPSRLW    $4, Z3, Z4
	VPSRLW    $4, Z5, Z6
	VPSRLW    $4, Z7, Z8
	VPSRLW    $4, Z9, Z10
	VPANDD    Z31, Z3, Z3
	VPANDD    Z31, Z4, Z4
	VPANDD    Z31, Z5, Z5
	VPANDD    Z31, Z6, Z6
	VPANDD    Z31, Z7, Z7
	VPANDD    Z31, Z8, Z8
	VPANDD    Z31, Z9, Z9
	VPANDD    Z31, Z10, Z10
	VPXORD    Z1, Z1, Z1
	VPXORD    Z2, Z2, Z2
	VPDPBUSD.BCST 2(DI), Z3, Z1
	VPDPBUSD.BCST 18(DI), Z4, Z2
	VPDPBUSD.BCST 6(DI), Z5, Z1
	VPDPBUSD.BCST 22(DI), Z6, Z2
	VPDPBUSD.BCST 10(DI), Z7, Z1
	VPDPBUSD.BCST 26(DI), Z8, Z2
	VPDPBUSD.BCST 14(DI), Z9, Z1
	VPDPBUSD.BCST 30(DI), Z10, Z2
	VPADDD        Z2, Z1, Z1
	VPSUBD.BCST   (BX), Z1, Z1
	VCVTDQ2PS     Z1, Z1
	VCVTPH2PS     (SI), Z11
	VMULPS.BCST   4(BX), Z11, Z11
	VFMADD231PS   Z11, Z1, Z0
	ADDQ $288, SI
	ADDQ $34, DI
	ADDQ $40, BX
	DECQ CX
	JNZ  p16loop

	VMOVUPS Z0, (DX)
	ADDQ    $64, DX
	DECQ    R8
	JNZ     p16group

p16done:
	VZEROUPPER
	RET

// Q8W16(i, acc) adds word i of a Q8_0 block (columns 4i..4i+3) of 16 rows
// into acc: Z1 = -128*(sum of x's 4 bytes) from xs, plus the products of
// the weights plus 128 (from the packed block at SI) and x's bytes, is the
// exact integer sum of LANES8's lane i for each row; then acc = fma(that,
// the rows' scales in Z8, acc), as the AVX2 kernel's lane i.
#define Q8W16(i, acc) \
	VMOVDQU32     (32+64*i)(SI), Z2; \
	VPBROADCASTD  (8+4*i)(BX), Z1; \
	VPDPBUSD.BCST (2+4*i)(DI), Z2, Z1; \
	VCVTDQ2PS     Z1, Z1; \
	VFMADD231PS   Z8, Z1, acc

// func dotQ8_0Q8_0x16PackedAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ8_0Q8_0 of groups*16 rows packed in groups of 16 (group g's blocks
// at w + g*nb*544) into dst[16g+r]. Row r keeps the 8 lanes of
// dotQ8_0Q8_0AVX2's accumulator in lane r of Z16..Z23 (lane i in Z16+i),
// with the same fused multiply-adds in the same order; at the end each
// row's 8 lanes are added as HSUM8 adds them: (a_i + a_i+4), then i and
// i+2, then 0 and 1.
TEXT ·dotQ8_0Q8_0x16PackedAVX512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DX
	MOVQ w+8(FP), SI
	MOVQ nb+32(FP), R9
	MOVQ groups+40(FP), R8
	TESTQ R8, R8
	JEQ   q16done
	TESTQ R9, R9
	JEQ   q16done

q16group:
	MOVQ   x+16(FP), DI
	MOVQ   xs+24(FP), BX
	MOVQ   R9, CX
	VXORPS Z16, Z16, Z16
	VXORPS Z17, Z17, Z17
	VXORPS Z18, Z18, Z18
	VXORPS Z19, Z19, Z19
	VXORPS Z20, Z20, Z20
	VXORPS Z21, Z21, Z21
	VXORPS Z22, Z22, Z22
	VXORPS Z23, Z23, Z23

q16loop:
	PREFETCHT0 PACK_PREFETCH(SI)
	PREFETCHT0 PACK_PREFETCH+64(SI)
	PREFETCHT0 PACK_PREFETCH+128(SI)
	PREFETCHT0 PACK_PREFETCH+192(SI)
	PREFETCHT0 PACK_PREFETCH+256(SI)
	PREFETCHT0 PACK_PREFETCH+320(SI)
	PREFETCHT0 PACK_PREFETCH+384(SI)
	PREFETCHT0 PACK_PREFETCH+448(SI)
	PREFETCHT0 PACK_PREFETCH+512(SI)
	VCVTPH2PS   (SI), Z8
	VMULPS.BCST 4(BX), Z8, Z8
	Q8W16(0, Z16)
	Q8W16(1, Z17)
	Q8W16(2, Z18)
	Q8W16(3, Z19)
	Q8W16(4, Z20)
	Q8W16(5, Z21)
	Q8W16(6, Z22)
	Q8W16(7, Z23)
	ADDQ $544, SI
	ADDQ $34, DI
	ADDQ $40, BX
	DECQ CX
	JNZ  q16loop

	VADDPS  Z20, Z16, Z16
	VADDPS  Z21, Z17, Z17
	VADDPS  Z22, Z18, Z18
	VADDPS  Z23, Z19, Z19
	VADDPS  Z18, Z16, Z16
	VADDPS  Z19, Z17, Z17
	VADDPS  Z17, Z16, Z16
	VMOVUPS Z16, (DX)
	ADDQ    $64, DX
	DECQ    R8
	JNZ     q16group

q16done:
	VZEROUPPER
	RET

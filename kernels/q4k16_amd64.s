//go:build amd64 && !purego

#include "textflag.h"

// The AVX2 kernel of packed Q4_K products (packK16's groups of 16 rows),
// for CPUs without AVX-512: dotQ4_KQ8_Kx16PackedAVX512's arithmetic on 8
// rows at a time (a half of a group, lane r of a Y register being row r
// of it), with VPMADDWD and VPADDD for VPDPWSSD. The half's float32
// accumulators live in the frame between super-blocks: acc lane i of half
// h at 32*(8h+i)(SP), the mins' accM k at 512+32*(4h+k)(SP).

// K2M(h, k) adds pair k of sub-blocks' min terms of half h: accM k =
// fma(the rows' dmin times -x.d in Y9, float32 of the rows' two mins
// (packed by pairs at 192+32k) dotted with x's sums of the pair (the
// record at BX), accM k).
#define K2M(h, k) \
	VPMOVZXBW    (192+32*k+16*h)(SI), Y12; \
	VPBROADCASTD (8+4*k)(BX), Y13; \
	VPMADDWD     Y13, Y12, Y12; \
	VCVTDQ2PS    Y12, Y12; \
	VMOVUPS      (512+32*(4*h+k))(SP), Y13; \
	VFMADD231PS  Y9, Y12, Y13; \
	VMOVUPS      Y13, (512+32*(4*h+k))(SP)

// K2W(h, c, i, l) adds word i of chunk c of half h into the int32 lane l:
// the low nibbles (sub-block 2c) and the high ones (2c+1) against x's 4
// bytes each, in int16 pairs (VPMADDUBSW), times the rows' scales of the
// two sub-blocks as int16 pairs in Y8 and Y9 (VPMADDWD). Exact, as
// KDOT16's.
#define K2W(h, c, i, l) \
	VMOVDQU      (320+512*c+64*i+32*h)(SI), Y10; \
	VPSRLW       $4, Y10, Y11; \
	VPAND        Y14, Y10, Y10; \
	VPAND        Y14, Y11, Y11; \
	VPBROADCASTD (4+64*c+4*i)(DI), Y12; \
	VPBROADCASTD (36+64*c+4*i)(DI), Y13; \
	VPMADDUBSW   Y12, Y10, Y10; \
	VPMADDUBSW   Y13, Y11, Y11; \
	VPMADDWD     Y8, Y10, Y10; \
	VPMADDWD     Y9, Y11, Y11; \
	VPADDD       Y10, l, l; \
	VPADDD       Y11, l, l

// K2C(h, c) adds chunk c of half h into the lanes Y0-Y7, the rows' scales
// of sub-blocks 2c and 2c+1 (bytes at 64+16j) widened to int16 pairs in Y8
// and Y9.
#define K2C(h, c) \
	VPMOVZXBD (64+32*c+8*h)(SI), Y8; \
	VPMOVZXBD (80+32*c+8*h)(SI), Y9; \
	VPSLLD    $16, Y8, Y15; \
	VPOR      Y15, Y8, Y8; \
	VPSLLD    $16, Y9, Y15; \
	VPOR      Y15, Y9, Y9; \
	K2W(h, c, 0, Y0); \
	K2W(h, c, 1, Y1); \
	K2W(h, c, 2, Y2); \
	K2W(h, c, 3, Y3); \
	K2W(h, c, 4, Y4); \
	K2W(h, c, 5, Y5); \
	K2W(h, c, 6, Y6); \
	K2W(h, c, 7, Y7)

// K2F(h, i, l) adds lane l, as float32, times the rows' d in Y8 into acc
// lane i of half h.
#define K2F(h, i, l) \
	VCVTDQ2PS   l, l; \
	VMOVUPS     (32*(8*h+i))(SP), Y9; \
	VFMADD231PS Y8, l, Y9; \
	VMOVUPS     Y9, (32*(8*h+i))(SP)

// K2HALF(h) adds a super-block of half h (rows 8h..8h+7 of the group)
// into its accumulators.
#define K2HALF(h) \
	VCVTPH2PS    (32+16*h)(SI), Y9; \
	VBROADCASTSS 4(BX), Y15; \
	VMULPS       Y15, Y9, Y9; \
	K2M(h, 0); \
	K2M(h, 1); \
	K2M(h, 2); \
	K2M(h, 3); \
	VPXOR        Y0, Y0, Y0; \
	VPXOR        Y1, Y1, Y1; \
	VPXOR        Y2, Y2, Y2; \
	VPXOR        Y3, Y3, Y3; \
	VPXOR        Y4, Y4, Y4; \
	VPXOR        Y5, Y5, Y5; \
	VPXOR        Y6, Y6, Y6; \
	VPXOR        Y7, Y7, Y7; \
	K2C(h, 0); \
	K2C(h, 1); \
	K2C(h, 2); \
	K2C(h, 3); \
	VCVTPH2PS    (16*h)(SI), Y8; \
	VBROADCASTSS (BX), Y15; \
	VMULPS       Y15, Y8, Y8; \
	K2F(h, 0, Y0); \
	K2F(h, 1, Y1); \
	K2F(h, 2, Y2); \
	K2F(h, 3, Y3); \
	K2F(h, 4, Y4); \
	K2F(h, 5, Y5); \
	K2F(h, 6, Y6); \
	K2F(h, 7, Y7)

// K2SUM(h) stores half h's 8 results at 32h(DX): each row's acc lanes
// summed as HSUM8 sums them, plus (accM 0 + accM 2) + (accM 1 + accM 3),
// as dotQ4_KQ8_Kx16PackedAVX512 ends.
#define K2SUM(h) \
	VMOVUPS (32*(8*h+0))(SP), Y0; \
	VMOVUPS (32*(8*h+1))(SP), Y1; \
	VMOVUPS (32*(8*h+2))(SP), Y2; \
	VMOVUPS (32*(8*h+3))(SP), Y3; \
	VADDPS  (32*(8*h+4))(SP), Y0, Y0; \
	VADDPS  (32*(8*h+5))(SP), Y1, Y1; \
	VADDPS  (32*(8*h+6))(SP), Y2, Y2; \
	VADDPS  (32*(8*h+7))(SP), Y3, Y3; \
	VADDPS  Y2, Y0, Y0; \
	VADDPS  Y3, Y1, Y1; \
	VADDPS  Y1, Y0, Y0; \
	VMOVUPS (512+32*(4*h+0))(SP), Y8; \
	VMOVUPS (512+32*(4*h+1))(SP), Y9; \
	VADDPS  (512+32*(4*h+2))(SP), Y8, Y8; \
	VADDPS  (512+32*(4*h+3))(SP), Y9, Y9; \
	VADDPS  Y9, Y8, Y8; \
	VADDPS  Y8, Y0, Y0; \
	VMOVUPS Y0, (32*h)(DX)

// func dotQ4_KQ8_Kx16PackedAVX2(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
TEXT ·dotQ4_KQ8_Kx16PackedAVX2(SB), NOSPLIT, $768-48
	MOVQ         dst+0(FP), DX
	MOVQ         w+8(FP), SI
	MOVQ         nb+32(FP), R9
	MOVQ         groups+40(FP), R8
	MOVL         $0x0f0f0f0f, AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14
	TESTQ        R8, R8
	JEQ          k2done
	TESTQ        R9, R9
	JEQ          k2done

k2group:
	MOVQ   x+16(FP), DI
	MOVQ   xs+24(FP), BX
	MOVQ   R9, CX
	VXORPS Y0, Y0, Y0
	MOVQ   $0, AX

k2zero:
	VMOVUPS Y0, (SP)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, $768
	JNE     k2zero

k2block:
	PREFETCHT0 (SI)
	PREFETCHT0 64(SI)
	PREFETCHT0 128(SI)
	PREFETCHT0 192(SI)
	PREFETCHT0 256(SI)
	K2HALF(0)
	K2HALF(1)
	ADDQ       $2368, SI
	ADDQ       $292, DI
	ADDQ       $32, BX
	DECQ       CX
	JNZ        k2block

	K2SUM(0)
	K2SUM(1)
	ADDQ $64, DX
	DECQ R8
	JNZ  k2group

k2done:
	VZEROUPPER
	RET

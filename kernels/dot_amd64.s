//go:build amd64 && !purego

#include "textflag.h"

// AVX2+FMA+F16C versions of the row dots in dot.go. Each keeps the
// reference's lane layout: lane k of a Y register is lane k of the
// reference's [8]float32 (or acc[8j+k] for vector j of its [32]float32), so
// that every fused multiply-add and every horizontal sum happens on the same
// values in the same order and the results are bitwise equal. Integer sums
// are exact in any order, so only the lanes they land in matter.
//
// One caveat, inherited from the reference rather than introduced here: the
// reference's fma32 rounds twice (to float64, then float32), which differs
// from the single rounding of VFMADD (and so of llama.cpp) with a
// probability of about 2^-29 per fused multiply-add. These kernels use the
// real instruction; the differential tests have never hit such a case.

// SCALE16 sets X5 lane 0 to F16(*w) * F16(*x) (exact in float32).
// Clobbers AX, BX, X6.
#define SCALE16(w, x) \
	MOVWLZX w, AX; \
	MOVWLZX x, BX; \
	SHLL    $16, BX; \
	ORL     BX, AX; \
	VMOVD   AX, X5; \
	VCVTPH2PS X5, X5; \
	VMOVSHDUP X5, X6; \
	VMULSS  X6, X5, X5

// LANES8 sets Y3 to the 8 int32 lanes of the 32 int8 products of Y1
// (weights) and Y2 (activations): lane k is the exact sum of products
// 4k..4k+3. Exact as long as no activation is -128 (the quantizers never
// make one): |w| * (x*sign(w)) is at most 128*127 in magnitude, so the
// pairwise int16 sums of VPMADDUBSW cannot saturate. Needs Y15 = int16 ones.
#define LANES8 \
	VPSIGNB    Y1, Y1, Y3; \
	VPSIGNB    Y1, Y2, Y4; \
	VPMADDUBSW Y4, Y3, Y3; \
	VPMADDWD   Y15, Y3, Y3

// BLOCKFMA(xq) fused-multiply-adds a block into Y0: the weights in Y1
// against the activations' quants at xq, in LANES8's 8 lanes, times the
// scales' product broadcast in Y5.
#define BLOCKFMA(xq) \
	VMOVDQU     xq, Y2; \
	LANES8; \
	VCVTDQ2PS   Y3, Y3; \
	VFMADD231PS Y5, Y3, Y0

// Y15 = sixteen int16 ones.
#define ONES16 \
	VPCMPEQW Y15, Y15, Y15; \
	VPSRLW   $15, Y15, Y15

// Y14 = 0x0f bytes, Y13 = 0x08 bytes.
#define NIBBLECONSTS \
	MOVL         $0x0f0f0f0f, AX; \
	VMOVD        AX, X14; \
	VPBROADCASTD X14, Y14; \
	MOVL         $0x08080808, AX; \
	VMOVD        AX, X13; \
	VPBROADCASTD X13, Y13

// UNPACKQ4(p) sets Y1 to the 32 weights (nibble - 8) of the 16 quant bytes
// at p, in element order: low nibbles, then high nibbles.
#define UNPACKQ4(p) \
	VMOVDQU     p, X1; \
	VPSRLW      $4, X1, X2; \
	VINSERTI128 $1, X2, Y1, Y1; \
	VPAND       Y14, Y1, Y1; \
	VPSUBB      Y13, Y1, Y1

// F16X64HALF(o) is two steps of dotF16X32RowsAVX2's loop at once, 64
// halves at o(SI) against the floats at 2*o(DI), in the loop's order.
// Two of them a step (128 halves) take 8.75 instructions a 64-byte line of
// weights instead of 11, so that the reorder buffer reaches further
// ahead of the FMA chains. Whole decoded tokens of the 1B F16 model with
// AVX-512 off, alternating in one process (986 tokens each, the host's
// cores far apart): a median 88.9% of the paired roofline against 87.9%.
#define F16X64HALF(o) \
	VCVTPH2PS   (o)(SI), Y4; \
	VCVTPH2PS   (o+16)(SI), Y5; \
	VCVTPH2PS   (o+32)(SI), Y6; \
	VCVTPH2PS   (o+48)(SI), Y7; \
	VCVTPH2PS   (o+64)(SI), Y8; \
	VCVTPH2PS   (o+80)(SI), Y9; \
	VCVTPH2PS   (o+96)(SI), Y10; \
	VCVTPH2PS   (o+112)(SI), Y11; \
	VFMADD231PS (2*o)(DI), Y4, Y0; \
	VFMADD231PS (2*o+32)(DI), Y5, Y1; \
	VFMADD231PS (2*o+64)(DI), Y6, Y2; \
	VFMADD231PS (2*o+96)(DI), Y7, Y3; \
	VFMADD231PS (2*o+128)(DI), Y8, Y0; \
	VFMADD231PS (2*o+160)(DI), Y9, Y1; \
	VFMADD231PS (2*o+192)(DI), Y10, Y2; \
	VFMADD231PS (2*o+224)(DI), Y11, Y3

// F16X32ROWS(row, loop4, tail, loop, reduce) is the body of
// dotF16X32RowsAVX2; the rest are its labels. A row goes 128 halves a
// step while it can (F16X128STEP), then 32.
#define F16X32ROWS(row, loop4, tail, loop, reduce) \
	MOVQ dst+0(FP), DX; \
	MOVQ w+8(FP), R11; \
	MOVQ rb+16(FP), R8; \
	MOVQ x+24(FP), R9; \
	MOVQ n+32(FP), R10; \
	MOVQ rows+40(FP), BX; \
row: \
	MOVQ   R11, SI; \
	MOVQ   R9, DI; \
	MOVQ   R10, CX; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	SUBQ   $128, CX; \
	JB     tail; \
loop4: \
	F16X64HALF(0); \
	F16X64HALF(128); \
	ADDQ   $256, SI; \
	ADDQ   $512, DI; \
	SUBQ   $128, CX; \
	JAE    loop4; \
tail: \
	ADDQ $128, CX; \
	JEQ  reduce; \
loop: \
	VCVTPH2PS   (SI), Y4; \
	VCVTPH2PS   16(SI), Y5; \
	VCVTPH2PS   32(SI), Y6; \
	VCVTPH2PS   48(SI), Y7; \
	VFMADD231PS (DI), Y4, Y0; \
	VFMADD231PS 32(DI), Y5, Y1; \
	VFMADD231PS 64(DI), Y6, Y2; \
	VFMADD231PS 96(DI), Y7, Y3; \
	ADDQ        $64, SI; \
	ADDQ        $128, DI; \
	SUBQ        $32, CX; \
	JNZ         loop; \
reduce: \
	REDUCE32; \
	MOVSS X0, (DX); \
	ADDQ  $4, DX; \
	ADDQ  R8, R11; \
	DECQ  BX; \
	JNZ   row; \
	VZEROUPPER; \
	RET


// Q8P8KERNEL(blockm, group, pair, odd, store, done) is the body of the
// packed Q8_0 kernels for groups of 8 rows below: blockm(qo, so, xo, xso)
// adds a block (Q8B8 or Q8SB8); the rest are its labels.
#define Q8P8KERNEL(blockm, group, pair, odd, store, done) \
	MOVQ dst+0(FP), DX; \
	MOVQ w+8(FP), SI; \
	MOVQ nb+32(FP), R9; \
	MOVQ groups+40(FP), R8; \
	ONES16; \
	TESTQ R8, R8; \
	JEQ   done; \
	TESTQ R9, R9; \
	JEQ   done; \
group: \
	MOVQ x+16(FP), DI; \
	MOVQ xs+24(FP), BX; \
	MOVQ R9, CX; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	VXORPS Y4, Y4, Y4; \
	VXORPS Y5, Y5, Y5; \
	VXORPS Y6, Y6, Y6; \
	VXORPS Y7, Y7, Y7; \
	SHRQ $1, CX; \
	JEQ  odd; \
pair: \
	blockm(0, 512, 0, 0); \
	blockm(256, 528, 34, 40); \
	ADDQ $544, SI; \
	ADDQ $68, DI; \
	ADDQ $80, BX; \
	DECQ CX; \
	JNZ  pair; \
odd: \
	TESTQ $1, R9; \
	JEQ   store; \
	blockm(0, 256, 0, 0); \
	ADDQ  $272, SI; \
store: \
	HSUMST(Y0, X0, (DX)); \
	HSUMST(Y1, X1, 4(DX)); \
	HSUMST(Y2, X2, 8(DX)); \
	HSUMST(Y3, X3, 12(DX)); \
	HSUMST(Y4, X4, 16(DX)); \
	HSUMST(Y5, X5, 20(DX)); \
	HSUMST(Y6, X6, 24(DX)); \
	HSUMST(Y7, X7, 28(DX)); \
	ADDQ $32, DX; \
	DECQ R8; \
	JNZ  group; \
done: \
	VZEROUPPER; \
	RET

// Q4P8KERNEL(rec, group, pair, odd, store, done) is the body of the
// packed Q4_0 kernels for groups of 8 rows below, whose x's records (xs)
// are rec bytes apart; the rest are its labels.
#define Q4P8KERNEL(rec, group, pair, odd, store, done) \
	MOVQ dst+0(FP), DX; \
	MOVQ w+8(FP), SI; \
	MOVQ nb+32(FP), R9; \
	MOVQ groups+40(FP), R8; \
	VPCMPEQW Y15, Y15, Y15; \
	VPSRLW   $15, Y15, Y15; \
	MOVL         $0x0f0f0f0f, AX; \
	VMOVD        AX, X14; \
	VPBROADCASTD X14, Y14; \
	TESTQ R8, R8; \
	JEQ   done; \
	TESTQ R9, R9; \
	JEQ   done; \
group: \
	MOVQ x+16(FP), DI; \
	MOVQ xs+24(FP), BX; \
	MOVQ R9, CX; \
	VXORPS Y0, Y0, Y0; \
	SHRQ $1, CX; \
	JEQ  odd; \
pair: \
	Q4B8(0, 256, 0, 0); \
	Q4B8(128, 272, 34, rec); \
	ADDQ $288, SI; \
	ADDQ $68, DI; \
	ADDQ $(2*rec), BX; \
	DECQ CX; \
	JNZ  pair; \
odd: \
	TESTQ $1, R9; \
	JEQ   store; \
	Q4B8(0, 128, 0, 0); \
	ADDQ  $144, SI; \
store: \
	VMOVUPS Y0, (DX); \
	ADDQ    $32, DX; \
	DECQ    R8; \
	JNZ     group; \
done: \
	VZEROUPPER; \
	RET
#include "kscales_amd64.h"
#include "hsum_amd64.h"

// func cpuid1ECX() uint32
TEXT ·cpuid1ECX(SB), NOSPLIT, $0-4
	MOVL $1, AX
	XORL CX, CX
	CPUID
	MOVL CX, ret+0(FP)
	RET

// func dotQ8_0Q8_0AVX2(w, x *byte, nb int) float32
TEXT ·dotQ8_0Q8_0AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ nb+16(FP), CX
	VXORPS Y0, Y0, Y0
	ONES16
	TESTQ CX, CX
	JEQ   q8done

q8loop:
	SCALE16((SI), (DI))
	VBROADCASTSS X5, Y5
	VMOVDQU      2(SI), Y1
	BLOCKFMA(2(DI))
	ADDQ         $34, SI
	ADDQ         $34, DI
	DECQ         CX
	JNZ          q8loop

q8done:
	HSUM8
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotQ4_0Q8_0AVX2(w, x *byte, nb int) float32
TEXT ·dotQ4_0Q8_0AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ nb+16(FP), CX
	VXORPS Y0, Y0, Y0
	ONES16
	NIBBLECONSTS
	TESTQ CX, CX
	JEQ   q4done

q4loop:
	SCALE16((SI), (DI))
	VBROADCASTSS X5, Y5
	UNPACKQ4(2(SI))
	BLOCKFMA(2(DI))
	ADDQ         $18, SI
	ADDQ         $34, DI
	DECQ         CX
	JNZ          q4loop

q4done:
	HSUM8
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// Q5CONSTS sets the constants of the fifth bits (Q5HIGH): Y12 the byte
// shuffle that spreads byte j/8 of a dword to byte j, Y11 the mask that
// leaves bit j%8 of byte j to test, Y10 all ones, Y13 = 0x10 bytes.
#define Q5CONSTS \
	VMOVDQU      q5shuf<>(SB), Y12; \
	MOVQ         $0x7fbfdfeff7fbfdfe, AX; \
	VMOVQ        AX, X11; \
	VPBROADCASTQ X11, Y11; \
	VPCMPEQB     Y10, Y10, Y10; \
	MOVL         $0x10101010, AX; \
	VMOVD        AX, X13; \
	VPBROADCASTD X13, Y13

// NIBBLESTO(p, y, x, t) sets y (x its lower half) to the 32 nibbles of
// the 16 quant bytes at p, in element order: low nibbles, then high
// nibbles. Needs Y14 = 0x0f bytes; clobbers t.
#define NIBBLESTO(p, y, x, t) \
	VMOVDQU     p, x; \
	VPSRLW      $4, x, t; \
	VINSERTI128 $1, t, y, y; \
	VPAND       Y14, y, y

// NIBBLES(p) is NIBBLESTO into Y1, clobbering X2.
#define NIBBLES(p) NIBBLESTO(p, Y1, X1, X2)

// Q5HIGHTO(p, y, t) ORs the fifth bit of each of the 32 weights (bit j of
// the little-endian dword at p, for element j) into y as 0x10. Needs
// Q5CONSTS; clobbers t.
#define Q5HIGHTO(p, y, t) \
	VPBROADCASTD p, t; \
	VPSHUFB      Y12, t, t; \
	VPOR         Y11, t, t; \
	VPCMPEQB     Y10, t, t; \
	VPAND        Y13, t, t; \
	VPOR         t, y, y

// Q5HIGH(p) is Q5HIGHTO into Y1, clobbering Y2.
#define Q5HIGH(p) Q5HIGHTO(p, Y1, Y2)

// MINTERM(p, q) adds F16(*p) * F16(*q) into X9 lane 0 in one fused
// multiply-add (a Q4_1/Q5_1 block's offset times a Q8_1 block's sum).
// Clobbers AX, BX, X6, X7.
#define MINTERM(p, q) \
	MOVWLZX   p, AX; \
	MOVWLZX   q, BX; \
	SHLL      $16, BX; \
	ORL       BX, AX; \
	VMOVD     AX, X7; \
	VCVTPH2PS X7, X7; \
	VMOVSHDUP X7, X6; \
	VFMADD231SS X6, X7, X9

// q5shuf spreads the 4 bytes of a broadcast dword over 8 bytes each.
DATA q5shuf<>+0(SB)/8, $0x0000000000000000
DATA q5shuf<>+8(SB)/8, $0x0101010101010101
DATA q5shuf<>+16(SB)/8, $0x0202020202020202
DATA q5shuf<>+24(SB)/8, $0x0303030303030303
GLOBL q5shuf<>(SB), RODATA|NOPTR, $32

// func dotQ5_0Q8_0AVX2(w, x *byte, nb int) float32
//
// dotQ5_0Q8_0: each block's weights are (nibble | fifth bit << 4) - 16.
TEXT ·dotQ5_0Q8_0AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ nb+16(FP), CX
	VXORPS Y0, Y0, Y0
	ONES16
	NIBBLECONSTS
	Q5CONSTS
	TESTQ CX, CX
	JEQ   q50done

q50loop:
	SCALE16((SI), (DI))
	VBROADCASTSS X5, Y5
	NIBBLES(6(SI))
	Q5HIGH(2(SI))
	VPSUBB       Y13, Y1, Y1
	BLOCKFMA(2(DI))
	ADDQ         $22, SI
	ADDQ         $34, DI
	DECQ         CX
	JNZ          q50loop

q50done:
	HSUM8
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotQ4_1Q8_1AVX2(w, x *byte, nb int) float32
//
// dotQ4_1Q8_1: unsigned nibbles in the 8 lanes, and the offsets' sum in X9,
// added after the lanes' sum.
TEXT ·dotQ4_1Q8_1AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ nb+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS X9, X9, X9
	ONES16
	NIBBLECONSTS
	TESTQ CX, CX
	JEQ   q41done

q41loop:
	MINTERM(2(SI), 2(DI))
	SCALE16((SI), (DI))
	VBROADCASTSS X5, Y5
	NIBBLES(4(SI))
	BLOCKFMA(4(DI))
	ADDQ         $20, SI
	ADDQ         $36, DI
	DECQ         CX
	JNZ          q41loop

q41done:
	HSUM8
	VADDSS X9, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotQ5_1Q8_1AVX2(w, x *byte, nb int) float32
//
// dotQ5_1Q8_1: as dotQ4_1Q8_1AVX2, the weights nibble | fifth bit << 4.
TEXT ·dotQ5_1Q8_1AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ nb+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS X9, X9, X9
	ONES16
	NIBBLECONSTS
	Q5CONSTS
	TESTQ CX, CX
	JEQ   q51done

q51loop:
	MINTERM(2(SI), 2(DI))
	SCALE16((SI), (DI))
	VBROADCASTSS X5, Y5
	NIBBLES(8(SI))
	Q5HIGH(4(SI))
	BLOCKFMA(4(DI))
	ADDQ         $24, SI
	ADDQ         $36, DI
	DECQ         CX
	JNZ          q51loop

q51done:
	HSUM8
	VADDSS X9, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// LANES8TO(dst) is LANES8 into dst.
#define LANES8TO(dst) \
	LANES8; \
	VMOVDQU Y3, dst

// func dotQ4_0Q8_0x8AVX2(w, x *byte, nb int) float32
//
// One float32 accumulator: per block, acc = fma(float32(sumi), d, acc) with
// sumi the exact integer dot of the block. Four blocks at a time share the
// horizontal integer sums and the scale conversions; their fused
// multiply-adds stay in block order.
TEXT ·dotQ4_0Q8_0x8AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ nb+16(FP), CX
	VXORPS X0, X0, X0
	ONES16
	NIBBLECONSTS
	CMPQ CX, $4
	JLT  x8tail

x8loop4:
	UNPACKQ4(2(SI))
	VMOVDQU 2(DI), Y2
	LANES8TO(Y8)
	UNPACKQ4(20(SI))
	VMOVDQU 36(DI), Y2
	LANES8TO(Y9)
	UNPACKQ4(38(SI))
	VMOVDQU 70(DI), Y2
	LANES8TO(Y10)
	UNPACKQ4(56(SI))
	VMOVDQU 104(DI), Y2
	LANES8TO(Y11)

	// Y8 lanes 0-3 = the four blocks' sums (exact, any order).
	VPHADDD      Y9, Y8, Y8
	VPHADDD      Y11, Y10, Y10
	VPHADDD      Y10, Y8, Y8
	VEXTRACTI128 $1, Y8, X9
	VPADDD       X9, X8, X8
	VCVTDQ2PS    X8, X8

	// X5 lanes 0-3 = F16(dw)*F16(dx) of the four blocks.
	MOVWLZX   (SI), AX
	VMOVD     AX, X5
	VPINSRW   $1, 18(SI), X5, X5
	VPINSRW   $2, 36(SI), X5, X5
	VPINSRW   $3, 54(SI), X5, X5
	MOVWLZX   (DI), AX
	VMOVD     AX, X6
	VPINSRW   $1, 34(DI), X6, X6
	VPINSRW   $2, 68(DI), X6, X6
	VPINSRW   $3, 102(DI), X6, X6
	VCVTPH2PS X5, X5
	VCVTPH2PS X6, X6
	VMULPS    X6, X5, X5

	VFMADD231SS X5, X8, X0
	VMOVSHDUP   X8, X9
	VMOVSHDUP   X5, X10
	VFMADD231SS X10, X9, X0
	VMOVHLPS    X8, X8, X9
	VMOVHLPS    X5, X5, X10
	VFMADD231SS X10, X9, X0
	VPERMILPS   $0xff, X8, X9
	VPERMILPS   $0xff, X5, X10
	VFMADD231SS X10, X9, X0

	ADDQ $72, SI
	ADDQ $136, DI
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  x8loop4

x8tail:
	TESTQ CX, CX
	JEQ   x8done

x8loop:
	UNPACKQ4(2(SI))
	VMOVDQU      2(DI), Y2
	LANES8
	VEXTRACTI128 $1, Y3, X4
	VPADDD       X4, X3, X3
	VPSHUFD      $0x4e, X3, X4
	VPADDD       X4, X3, X3
	VPSHUFD      $0xb1, X3, X4
	VPADDD       X4, X3, X3
	VCVTDQ2PS    X3, X3
	SCALE16((SI), (DI))
	VFMADD231SS  X5, X3, X0
	ADDQ         $18, SI
	ADDQ         $34, DI
	DECQ         CX
	JNZ          x8loop

x8done:
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// REDUCE32 leaves reduce32 of the lanes Y0..Y3 (vector j in Yj) in X0 lane
// 0: (Y0+Y2)+(Y1+Y3), then the two halves, then two horizontal adds.
#define REDUCE32 \
	VADDPS       Y2, Y0, Y0; \
	VADDPS       Y3, Y1, Y1; \
	VADDPS       Y1, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS       X1, X0, X0; \
	VHADDPS      X0, X0, X0; \
	VHADDPS      X0, X0, X0

// func dotF16AVX2(w, x *byte, n int) float32
//
// n is a multiple of 32 elements. Element i goes to lane i%32; the products
// of two halves are exact in float32, so the fused multiply-add rounds as
// the reference's multiply then add.
TEXT ·dotF16AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	TESTQ  CX, CX
	JEQ    f16done

f16loop:
	VCVTPH2PS   (SI), Y4
	VCVTPH2PS   (DI), Y8
	VFMADD231PS Y8, Y4, Y0
	VCVTPH2PS   16(SI), Y5
	VCVTPH2PS   16(DI), Y9
	VFMADD231PS Y9, Y5, Y1
	VCVTPH2PS   32(SI), Y6
	VCVTPH2PS   32(DI), Y10
	VFMADD231PS Y10, Y6, Y2
	VCVTPH2PS   48(SI), Y7
	VCVTPH2PS   48(DI), Y11
	VFMADD231PS Y11, Y7, Y3
	ADDQ        $64, SI
	ADDQ        $64, DI
	SUBQ        $32, CX
	JNZ         f16loop

f16done:
	REDUCE32
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotF32AVX2(w *byte, x *float32, n int) float32
//
// n is a multiple of 32 elements, element i in lane i%32, fused.
TEXT ·dotF32AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	TESTQ  CX, CX
	JEQ    f32done

f32loop:
	VMOVUPS     (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	VMOVUPS     32(SI), Y5
	VFMADD231PS 32(DI), Y5, Y1
	VMOVUPS     64(SI), Y6
	VFMADD231PS 64(DI), Y6, Y2
	VMOVUPS     96(SI), Y7
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ        $128, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JNZ         f32loop

f32done:
	REDUCE32
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// ·kQ6Mask: 16 bytes per 32-element chunk c of a Q6_K super-block (c =
// 0..7): eight copies of 2c then eight of 2c+1, to spread its two int8
// scales over the two 128-bit halves of a register with VPSHUFB and
// VPMOVSXBW. Shared with the 4-token kernel (q6k_tiles_amd64.s).
DATA ·kQ6Mask+0(SB)/4, $0x00000000
DATA ·kQ6Mask+4(SB)/4, $0x00000000
DATA ·kQ6Mask+8(SB)/4, $0x01010101
DATA ·kQ6Mask+12(SB)/4, $0x01010101
DATA ·kQ6Mask+16(SB)/4, $0x02020202
DATA ·kQ6Mask+20(SB)/4, $0x02020202
DATA ·kQ6Mask+24(SB)/4, $0x03030303
DATA ·kQ6Mask+28(SB)/4, $0x03030303
DATA ·kQ6Mask+32(SB)/4, $0x04040404
DATA ·kQ6Mask+36(SB)/4, $0x04040404
DATA ·kQ6Mask+40(SB)/4, $0x05050505
DATA ·kQ6Mask+44(SB)/4, $0x05050505
DATA ·kQ6Mask+48(SB)/4, $0x06060606
DATA ·kQ6Mask+52(SB)/4, $0x06060606
DATA ·kQ6Mask+56(SB)/4, $0x07070707
DATA ·kQ6Mask+60(SB)/4, $0x07070707
DATA ·kQ6Mask+64(SB)/4, $0x08080808
DATA ·kQ6Mask+68(SB)/4, $0x08080808
DATA ·kQ6Mask+72(SB)/4, $0x09090909
DATA ·kQ6Mask+76(SB)/4, $0x09090909
DATA ·kQ6Mask+80(SB)/4, $0x0a0a0a0a
DATA ·kQ6Mask+84(SB)/4, $0x0a0a0a0a
DATA ·kQ6Mask+88(SB)/4, $0x0b0b0b0b
DATA ·kQ6Mask+92(SB)/4, $0x0b0b0b0b
DATA ·kQ6Mask+96(SB)/4, $0x0c0c0c0c
DATA ·kQ6Mask+100(SB)/4, $0x0c0c0c0c
DATA ·kQ6Mask+104(SB)/4, $0x0d0d0d0d
DATA ·kQ6Mask+108(SB)/4, $0x0d0d0d0d
DATA ·kQ6Mask+112(SB)/4, $0x0e0e0e0e
DATA ·kQ6Mask+116(SB)/4, $0x0e0e0e0e
DATA ·kQ6Mask+120(SB)/4, $0x0f0f0f0f
DATA ·kQ6Mask+124(SB)/4, $0x0f0f0f0f
GLOBL ·kQ6Mask(SB), RODATA|NOPTR, $128

// func dotQ6_KQ8_KAVX2(w, x *byte, nb int) float32
//
// Per super-block, 8 int32 lanes: for each 32 weights (6-bit, minus 32)
// against 32 Q8_K quants, the exact 4-element sums of LANES8, the pairwise
// int16 sums multiplied in VPMADDWD by the int8 scale of elements 0-15
// (lanes 0-3) or 16-31 (lanes 4-7). The lanes are exact integers, so only
// their per-super-block fused multiply-add with d = x.d*F16(w.d) and the
// final hsum8 round, as in the reference.
TEXT ·dotQ6_KQ8_KAVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ nb+16(FP), CX
	VXORPS Y0, Y0, Y0
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
	JEQ   q6done

q6loop:
	VPXOR   Y11, Y11, Y11
	VMOVDQU 192(SI), X8
	VMOVDQU 0(SI), Y5
	VMOVDQU 32(SI), Y6
	VMOVDQU 128(SI), Y7
	VPAND Y14, Y5, Y1
	VPSLLW $4, Y7, Y10
	VPAND Y13, Y10, Y10
	VPOR Y10, Y1, Y1
	VPSUBB Y12, Y1, Y1
	VMOVDQU 4(DI), Y2
	VPSHUFB ·kQ6Mask+0(SB), X8, X9
	VPMOVSXBW X9, Y9
	VPSIGNB Y1, Y1, Y3
	VPSIGNB Y1, Y2, Y4
	VPMADDUBSW Y4, Y3, Y3
	VPMADDWD Y9, Y3, Y3
	VPADDD Y3, Y11, Y11
	VPAND Y14, Y6, Y1
	VPSLLW $2, Y7, Y10
	VPAND Y13, Y10, Y10
	VPOR Y10, Y1, Y1
	VPSUBB Y12, Y1, Y1
	VMOVDQU 36(DI), Y2
	VPSHUFB ·kQ6Mask+16(SB), X8, X9
	VPMOVSXBW X9, Y9
	VPSIGNB Y1, Y1, Y3
	VPSIGNB Y1, Y2, Y4
	VPMADDUBSW Y4, Y3, Y3
	VPMADDWD Y9, Y3, Y3
	VPADDD Y3, Y11, Y11
	VPSRLW $4, Y5, Y1
	VPAND Y14, Y1, Y1
	VPAND Y13, Y7, Y10
	VPOR Y10, Y1, Y1
	VPSUBB Y12, Y1, Y1
	VMOVDQU 68(DI), Y2
	VPSHUFB ·kQ6Mask+32(SB), X8, X9
	VPMOVSXBW X9, Y9
	VPSIGNB Y1, Y1, Y3
	VPSIGNB Y1, Y2, Y4
	VPMADDUBSW Y4, Y3, Y3
	VPMADDWD Y9, Y3, Y3
	VPADDD Y3, Y11, Y11
	VPSRLW $4, Y6, Y1
	VPAND Y14, Y1, Y1
	VPSRLW $2, Y7, Y10
	VPAND Y13, Y10, Y10
	VPOR Y10, Y1, Y1
	VPSUBB Y12, Y1, Y1
	VMOVDQU 100(DI), Y2
	VPSHUFB ·kQ6Mask+48(SB), X8, X9
	VPMOVSXBW X9, Y9
	VPSIGNB Y1, Y1, Y3
	VPSIGNB Y1, Y2, Y4
	VPMADDUBSW Y4, Y3, Y3
	VPMADDWD Y9, Y3, Y3
	VPADDD Y3, Y11, Y11
	VMOVDQU 64(SI), Y5
	VMOVDQU 96(SI), Y6
	VMOVDQU 160(SI), Y7
	VPAND Y14, Y5, Y1
	VPSLLW $4, Y7, Y10
	VPAND Y13, Y10, Y10
	VPOR Y10, Y1, Y1
	VPSUBB Y12, Y1, Y1
	VMOVDQU 132(DI), Y2
	VPSHUFB ·kQ6Mask+64(SB), X8, X9
	VPMOVSXBW X9, Y9
	VPSIGNB Y1, Y1, Y3
	VPSIGNB Y1, Y2, Y4
	VPMADDUBSW Y4, Y3, Y3
	VPMADDWD Y9, Y3, Y3
	VPADDD Y3, Y11, Y11
	VPAND Y14, Y6, Y1
	VPSLLW $2, Y7, Y10
	VPAND Y13, Y10, Y10
	VPOR Y10, Y1, Y1
	VPSUBB Y12, Y1, Y1
	VMOVDQU 164(DI), Y2
	VPSHUFB ·kQ6Mask+80(SB), X8, X9
	VPMOVSXBW X9, Y9
	VPSIGNB Y1, Y1, Y3
	VPSIGNB Y1, Y2, Y4
	VPMADDUBSW Y4, Y3, Y3
	VPMADDWD Y9, Y3, Y3
	VPADDD Y3, Y11, Y11
	VPSRLW $4, Y5, Y1
	VPAND Y14, Y1, Y1
	VPAND Y13, Y7, Y10
	VPOR Y10, Y1, Y1
	VPSUBB Y12, Y1, Y1
	VMOVDQU 196(DI), Y2
	VPSHUFB ·kQ6Mask+96(SB), X8, X9
	VPMOVSXBW X9, Y9
	VPSIGNB Y1, Y1, Y3
	VPSIGNB Y1, Y2, Y4
	VPMADDUBSW Y4, Y3, Y3
	VPMADDWD Y9, Y3, Y3
	VPADDD Y3, Y11, Y11
	VPSRLW $4, Y6, Y1
	VPAND Y14, Y1, Y1
	VPSRLW $2, Y7, Y10
	VPAND Y13, Y10, Y10
	VPOR Y10, Y1, Y1
	VPSUBB Y12, Y1, Y1
	VMOVDQU 228(DI), Y2
	VPSHUFB ·kQ6Mask+112(SB), X8, X9
	VPMOVSXBW X9, Y9
	VPSIGNB Y1, Y1, Y3
	VPSIGNB Y1, Y2, Y4
	VPMADDUBSW Y4, Y3, Y3
	VPMADDWD Y9, Y3, Y3
	VPADDD Y3, Y11, Y11
	VCVTDQ2PS   Y11, Y11
	MOVWLZX     208(SI), AX
	VMOVD       AX, X5
	VCVTPH2PS   X5, X5
	VMOVSS      (DI), X6
	VMULSS      X5, X6, X5
	VBROADCASTSS X5, Y5
	VFMADD231PS Y5, Y11, Y0
	ADDQ        $210, SI
	ADDQ        $292, DI
	DECQ        CX
	JNZ         q6loop

q6done:
	HSUM8
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// q8perm<>: the VPERMD indices that put the dwords of the packed Q8_0
// quants back in element order.
DATA q8perm<>+0(SB)/4, $0
DATA q8perm<>+4(SB)/4, $4
DATA q8perm<>+8(SB)/4, $1
DATA q8perm<>+12(SB)/4, $5
DATA q8perm<>+16(SB)/4, $2
DATA q8perm<>+20(SB)/4, $6
DATA q8perm<>+24(SB)/4, $3
DATA q8perm<>+28(SB)/4, $7
GLOBL q8perm<>(SB), RODATA|NOPTR, $32

// Q8SETUP loads the constants of the Q8_0 and Q8_1 quantizers: Y15 the
// magnitude mask, X14 127.0, Y13 q8perm; and their arguments: y in DI, x
// in SI, nb in CX, DX the blocks done (0).
#define Q8SETUP \
	MOVQ     y+0(FP), DI; \
	MOVQ     x+8(FP), SI; \
	MOVQ     nb+16(FP), CX; \
	XORQ     DX, DX; \
	VPCMPEQD Y15, Y15, Y15; \
	VPSRLD   $1, Y15, Y15; \
	MOVL     $0x42fe0000, AX; \
	VMOVD    AX, X14; \
	VMOVDQU  q8perm<>(SB), Y13

// Q8AMAX loads the block of 32 floats at SI into Y0-Y3 and leaves the
// integer maximum of their magnitudes' bits in X4 and AX.
#define Q8AMAX \
	VMOVUPS      (SI), Y0; \
	VMOVUPS      32(SI), Y1; \
	VMOVUPS      64(SI), Y2; \
	VMOVUPS      96(SI), Y3; \
	VPAND        Y15, Y0, Y4; \
	VPAND        Y15, Y1, Y5; \
	VPMAXUD      Y5, Y4, Y4; \
	VPAND        Y15, Y2, Y5; \
	VPMAXUD      Y5, Y4, Y4; \
	VPAND        Y15, Y3, Y5; \
	VPMAXUD      Y5, Y4, Y4; \
	VEXTRACTI128 $1, Y4, X5; \
	VPMAXUD      X5, X4, X4; \
	VPSHUFD      $0x4e, X4, X5; \
	VPMAXUD      X5, X4, X4; \
	VPSHUFD      $0xb1, X4, X5; \
	VPMAXUD      X5, X4, X4; \
	VMOVD        X4, AX

// Q8SCALE(zero, done) computes a block's amax (Q8AMAX), jumping to done
// for an Inf or NaN; stores d = amax/127 (X7) as F16 at 0(DI); and leaves
// id = 127/amax in X6, jumping to zero with id 0 for a block of zeros, and
// to done where id overflows (amax < 127/MaxFloat32: the reference's
// rounding of x*Inf). Clobbers AX, BX, X5.
#define Q8SCALE(zero, done) \
	Q8AMAX; \
	CMPL      AX, $0x7f800000; \
	JAE       done; \
	VDIVSS    X14, X4, X7; \
	VCVTPS2PH $0, X7, X5; \
	VMOVD     X5, BX; \
	MOVW      BX, (DI); \
	VXORPS    X6, X6, X6; \
	TESTL     AX, AX; \
	JEQ       zero; \
	VDIVSS    X4, X14, X6; \
	VMOVD     X6, BX; \
	CMPL      BX, $0x7f800000; \
	JEQ       done

// Q8QUANTS scales Y0-Y3 by id (X6) and converts them to int32 quants.
#define Q8QUANTS \
	VBROADCASTSS X6, Y6; \
	VMULPS       Y6, Y0, Y0; \
	VMULPS       Y6, Y1, Y1; \
	VMULPS       Y6, Y2, Y2; \
	VMULPS       Y6, Y3, Y3; \
	VCVTPS2DQ    Y0, Y0; \
	VCVTPS2DQ    Y1, Y1; \
	VCVTPS2DQ    Y2, Y2; \
	VCVTPS2DQ    Y3, Y3

// Q8STORE packs the int32 quants in Y0-Y3 to bytes, in element order, at
// off(DI).
#define Q8STORE(off) \
	VPACKSSDW Y1, Y0, Y0; \
	VPACKSSDW Y3, Y2, Y2; \
	VPACKSSWB Y2, Y0, Y0; \
	VPERMD    Y0, Y13, Y0; \
	VMOVDQU   Y0, off(DI)

// func quantizeQ8_0AVX2(y *byte, x *float32, nb int) int
//
// quantizeQ8_0 of nb blocks; it stops before the first block holding an Inf
// or NaN, or one so small that 127/amax overflows, and returns the number of
// blocks done. amax is the integer maximum
// of the magnitudes' bits (for finite non-negative floats the same as the
// float maximum); d = amax/127 goes to F16 rounding to nearest even; the
// quants are round-half-even(x*id) by VCVTPS2DQ under the default rounding
// mode, packed with (never reached) saturation.
TEXT ·quantizeQ8_0AVX2(SB), NOSPLIT, $0-32
	Q8SETUP
	CMPQ DX, CX
	JGE  qdone

qloop:
	Q8SCALE(qzero, qdone)

qzero:
	Q8QUANTS
	Q8STORE(2)
	ADDQ $128, SI
	ADDQ $34, DI
	INCQ DX
	CMPQ DX, CX
	JLT  qloop

qdone:
	VZEROUPPER
	MOVQ DX, ret+24(FP)
	RET

// func quantizeQ8_1AVX2(y *byte, x *float32, nb int) int
//
// quantizeQ8_1 of nb blocks, as quantizeQ8_0AVX2 (and stopping where it
// stops): d and the quants as Q8_0's, the quants at 4 in blocks of 36
// bytes, and s = d*float32(the quants' int32 sum), d unrounded, to F16 at
// 2.
TEXT ·quantizeQ8_1AVX2(SB), NOSPLIT, $0-32
	Q8SETUP
	CMPQ DX, CX
	JGE  q1done

q1loop:
	Q8SCALE(q1zero, q1done)

q1zero:
	Q8QUANTS
	VPADDD       Y1, Y0, Y8 // the sum of the quants
	VPADDD       Y3, Y2, Y9
	VPADDD       Y9, Y8, Y8
	HSUMD8R(Y8, X8, X9)
	VCVTDQ2PS    X8, X8
	VMULSS       X7, X8, X8 // s = d*sum
	VCVTPS2PH    $0, X8, X8
	VMOVD        X8, BX
	MOVW         BX, 2(DI)
	Q8STORE(4)
	ADDQ $128, SI
	ADDQ $36, DI
	INCQ DX
	CMPQ DX, CX
	JLT  q1loop

q1done:
	VZEROUPPER
	MOVQ DX, ret+24(FP)
	RET

// ·kScaleShuf: 32 bytes per sub-block j of a K-quant super-block (j =
// 0..7): the byte pair 2j, 2j+1 sixteen times, to broadcast int16 scale j
// (of 8, repeated in both halves of the register) with VPSHUFB. Shared with
// the Q5_K kernel (q5k_amd64.s).
DATA ·kScaleShuf+0(SB)/4, $0x01000100
DATA ·kScaleShuf+4(SB)/4, $0x01000100
DATA ·kScaleShuf+8(SB)/4, $0x01000100
DATA ·kScaleShuf+12(SB)/4, $0x01000100
DATA ·kScaleShuf+16(SB)/4, $0x01000100
DATA ·kScaleShuf+20(SB)/4, $0x01000100
DATA ·kScaleShuf+24(SB)/4, $0x01000100
DATA ·kScaleShuf+28(SB)/4, $0x01000100
DATA ·kScaleShuf+32(SB)/4, $0x03020302
DATA ·kScaleShuf+36(SB)/4, $0x03020302
DATA ·kScaleShuf+40(SB)/4, $0x03020302
DATA ·kScaleShuf+44(SB)/4, $0x03020302
DATA ·kScaleShuf+48(SB)/4, $0x03020302
DATA ·kScaleShuf+52(SB)/4, $0x03020302
DATA ·kScaleShuf+56(SB)/4, $0x03020302
DATA ·kScaleShuf+60(SB)/4, $0x03020302
DATA ·kScaleShuf+64(SB)/4, $0x05040504
DATA ·kScaleShuf+68(SB)/4, $0x05040504
DATA ·kScaleShuf+72(SB)/4, $0x05040504
DATA ·kScaleShuf+76(SB)/4, $0x05040504
DATA ·kScaleShuf+80(SB)/4, $0x05040504
DATA ·kScaleShuf+84(SB)/4, $0x05040504
DATA ·kScaleShuf+88(SB)/4, $0x05040504
DATA ·kScaleShuf+92(SB)/4, $0x05040504
DATA ·kScaleShuf+96(SB)/4, $0x07060706
DATA ·kScaleShuf+100(SB)/4, $0x07060706
DATA ·kScaleShuf+104(SB)/4, $0x07060706
DATA ·kScaleShuf+108(SB)/4, $0x07060706
DATA ·kScaleShuf+112(SB)/4, $0x07060706
DATA ·kScaleShuf+116(SB)/4, $0x07060706
DATA ·kScaleShuf+120(SB)/4, $0x07060706
DATA ·kScaleShuf+124(SB)/4, $0x07060706
DATA ·kScaleShuf+128(SB)/4, $0x09080908
DATA ·kScaleShuf+132(SB)/4, $0x09080908
DATA ·kScaleShuf+136(SB)/4, $0x09080908
DATA ·kScaleShuf+140(SB)/4, $0x09080908
DATA ·kScaleShuf+144(SB)/4, $0x09080908
DATA ·kScaleShuf+148(SB)/4, $0x09080908
DATA ·kScaleShuf+152(SB)/4, $0x09080908
DATA ·kScaleShuf+156(SB)/4, $0x09080908
DATA ·kScaleShuf+160(SB)/4, $0x0b0a0b0a
DATA ·kScaleShuf+164(SB)/4, $0x0b0a0b0a
DATA ·kScaleShuf+168(SB)/4, $0x0b0a0b0a
DATA ·kScaleShuf+172(SB)/4, $0x0b0a0b0a
DATA ·kScaleShuf+176(SB)/4, $0x0b0a0b0a
DATA ·kScaleShuf+180(SB)/4, $0x0b0a0b0a
DATA ·kScaleShuf+184(SB)/4, $0x0b0a0b0a
DATA ·kScaleShuf+188(SB)/4, $0x0b0a0b0a
DATA ·kScaleShuf+192(SB)/4, $0x0d0c0d0c
DATA ·kScaleShuf+196(SB)/4, $0x0d0c0d0c
DATA ·kScaleShuf+200(SB)/4, $0x0d0c0d0c
DATA ·kScaleShuf+204(SB)/4, $0x0d0c0d0c
DATA ·kScaleShuf+208(SB)/4, $0x0d0c0d0c
DATA ·kScaleShuf+212(SB)/4, $0x0d0c0d0c
DATA ·kScaleShuf+216(SB)/4, $0x0d0c0d0c
DATA ·kScaleShuf+220(SB)/4, $0x0d0c0d0c
DATA ·kScaleShuf+224(SB)/4, $0x0f0e0f0e
DATA ·kScaleShuf+228(SB)/4, $0x0f0e0f0e
DATA ·kScaleShuf+232(SB)/4, $0x0f0e0f0e
DATA ·kScaleShuf+236(SB)/4, $0x0f0e0f0e
DATA ·kScaleShuf+240(SB)/4, $0x0f0e0f0e
DATA ·kScaleShuf+244(SB)/4, $0x0f0e0f0e
DATA ·kScaleShuf+248(SB)/4, $0x0f0e0f0e
DATA ·kScaleShuf+252(SB)/4, $0x0f0e0f0e
GLOBL ·kScaleShuf(SB), RODATA|NOPTR, $256

// func dotQ4_KQ8_KAVX2(w, x *byte, nb int) float32
//
// Per super-block: the 6-bit scales and mins unpacked with 32-bit masks
// (bytes j of the results are scaleMinK4(j)); 8 int32 lanes of
// sum_j sc_j*(4-element sums of the unsigned nibbles against the quants),
// exact, fused-multiply-added with d = x.d*F16(w.d); the 4 int32 lanes of
// m_2k*bsum_2k + m_2k+1*bsum_2k+1, exact, fused-multiply-added with
// dmin = -x.d*F16(w.dmin) into 4 float32 lanes. At the end hsum8 of the first
// plus (m0+m2)+(m1+m3) of the second, as the reference.
TEXT ·dotQ4_KQ8_KAVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ nb+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS X4, X4, X4
	MOVL         $0x0f0f0f0f, AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14
	MOVL         $0x80000000, AX
	VMOVD        AX, X15
	TESTQ CX, CX
	JEQ   q4kdone

q4kloop:
	// Scales (R8) and mins (R10), 8 bytes each.
	KSCALES

	VMOVQ       R8, X7
	VPMOVZXBW   X7, X7
	VINSERTI128 $1, X7, Y7, Y7
	VMOVQ       R10, X8
	VPMOVZXBW   X8, X8

	// Mins: bsum of sub-block j = sum of Q8_K groups 2j, 2j+1.
	VMOVDQU   260(DI), X9
	VMOVDQU   276(DI), X10
	VPHADDW   X10, X9, X9
	VPMADDWD  X9, X8, X8
	VCVTDQ2PS X8, X8

	// X6 = d = x.d*F16(w.d), X13 = dmin = -(x.d*F16(w.dmin)).
	MOVWLZX   (SI), AX
	MOVWLZX   2(SI), BX
	SHLL      $16, BX
	ORL       BX, AX
	VMOVD     AX, X5
	VCVTPH2PS X5, X5
	VMOVSS    (DI), X12
	VMULSS    X5, X12, X6
	VMOVSHDUP X5, X13
	VMULSS    X13, X12, X13
	VXORPS    X15, X13, X13
	VBROADCASTSS X13, X13
	VFMADD231PS  X13, X8, X4

	VPXOR Y11, Y11, Y11
	VMOVDQU 16(SI), Y5
	VPAND Y14, Y5, Y1
	VPSRLW $4, Y5, Y5
	VPAND Y14, Y5, Y5
	VMOVDQU 4(DI), Y2
	VPMADDUBSW Y2, Y1, Y3
	VPSHUFB ·kScaleShuf+0(SB), Y7, Y9
	VPMADDWD Y9, Y3, Y3
	VPADDD Y3, Y11, Y11
	VMOVDQU 36(DI), Y2
	VPMADDUBSW Y2, Y5, Y3
	VPSHUFB ·kScaleShuf+32(SB), Y7, Y9
	VPMADDWD Y9, Y3, Y3
	VPADDD Y3, Y11, Y11
	VMOVDQU 48(SI), Y5
	VPAND Y14, Y5, Y1
	VPSRLW $4, Y5, Y5
	VPAND Y14, Y5, Y5
	VMOVDQU 68(DI), Y2
	VPMADDUBSW Y2, Y1, Y3
	VPSHUFB ·kScaleShuf+64(SB), Y7, Y9
	VPMADDWD Y9, Y3, Y3
	VPADDD Y3, Y11, Y11
	VMOVDQU 100(DI), Y2
	VPMADDUBSW Y2, Y5, Y3
	VPSHUFB ·kScaleShuf+96(SB), Y7, Y9
	VPMADDWD Y9, Y3, Y3
	VPADDD Y3, Y11, Y11
	VMOVDQU 80(SI), Y5
	VPAND Y14, Y5, Y1
	VPSRLW $4, Y5, Y5
	VPAND Y14, Y5, Y5
	VMOVDQU 132(DI), Y2
	VPMADDUBSW Y2, Y1, Y3
	VPSHUFB ·kScaleShuf+128(SB), Y7, Y9
	VPMADDWD Y9, Y3, Y3
	VPADDD Y3, Y11, Y11
	VMOVDQU 164(DI), Y2
	VPMADDUBSW Y2, Y5, Y3
	VPSHUFB ·kScaleShuf+160(SB), Y7, Y9
	VPMADDWD Y9, Y3, Y3
	VPADDD Y3, Y11, Y11
	VMOVDQU 112(SI), Y5
	VPAND Y14, Y5, Y1
	VPSRLW $4, Y5, Y5
	VPAND Y14, Y5, Y5
	VMOVDQU 196(DI), Y2
	VPMADDUBSW Y2, Y1, Y3
	VPSHUFB ·kScaleShuf+192(SB), Y7, Y9
	VPMADDWD Y9, Y3, Y3
	VPADDD Y3, Y11, Y11
	VMOVDQU 228(DI), Y2
	VPMADDUBSW Y2, Y5, Y3
	VPSHUFB ·kScaleShuf+224(SB), Y7, Y9
	VPMADDWD Y9, Y3, Y3
	VPADDD Y3, Y11, Y11
	VCVTDQ2PS    Y11, Y11
	VBROADCASTSS X6, Y6
	VFMADD231PS  Y6, Y11, Y0
	ADDQ         $144, SI
	ADDQ         $292, DI
	DECQ         CX
	JNZ          q4kloop

q4kdone:
	HSUM8
	VMOVHLPS  X4, X4, X5
	VADDPS    X5, X4, X4
	VMOVSHDUP X4, X5
	VADDSS    X5, X4, X4
	VADDSS    X4, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func sgemmF16AVX2(w, x *byte, steps int) float32
//
// sgemmF16 over steps of 8 elements: element k in lane k%8 (the products of
// two halves are exact, so fusing rounds as the reference's add), hsum8.
TEXT ·sgemmF16AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ steps+16(FP), CX
	VXORPS Y0, Y0, Y0
	TESTQ  CX, CX
	JEQ    sgf16done

sgf16loop:
	VCVTPH2PS   (SI), Y1
	VCVTPH2PS   (DI), Y2
	VFMADD231PS Y2, Y1, Y0
	ADDQ        $16, SI
	ADDQ        $16, DI
	DECQ        CX
	JNZ         sgf16loop

sgf16done:
	HSUM8
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func sgemmF32AVX2(w *byte, x *float32, steps int) float32
//
// sgemmF32 over steps of 8 elements: element k in lane k%8, fused, hsum8.
TEXT ·sgemmF32AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ steps+16(FP), CX
	VXORPS Y0, Y0, Y0
	TESTQ  CX, CX
	JEQ    sgf32done

sgf32loop:
	VMOVUPS     (SI), Y1
	VFMADD231PS (DI), Y1, Y0
	ADDQ        $32, SI
	ADDQ        $32, DI
	DECQ        CX
	JNZ         sgf32loop

sgf32done:
	HSUM8
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET


// func dotQ4_0Q8_0x8RowsAVX2(dst *float32, w *byte, rb int, x *byte, nb int)
//
// dotQ4_0Q8_0x8 of 8 rows at once (row r at w + r*rb into dst[r]), as
// llama.cpp's repacked gemv does: lane r of Y0 is row r's accumulator, and
// per block acc_r = fma(float32(sumi_r), F16(dw_r)*F16(dx), acc_r), the same
// fused multiply-adds in the same order as one row at a time. The block's
// integer dots are the sums of nibble*x (VPMADDUBSW, unsigned nibbles)
// minus 8 times the sum of the block's x, exact.
TEXT ·dotQ4_0Q8_0x8RowsAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DX
	MOVQ w+8(FP), SI
	MOVQ rb+16(FP), R8
	MOVQ x+24(FP), DI
	MOVQ nb+32(FP), CX
	LEAQ (R8)(R8*2), R9   // 3*rb
	LEAQ (R8)(R8*4), R10  // 5*rb
	LEAQ (R9)(R8*4), R11  // 7*rb
	VXORPS Y0, Y0, Y0
	VPCMPEQW Y15, Y15, Y15
	VPSRLW   $15, Y15, Y15
	MOVL         $0x0f0f0f0f, AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14
	MOVL         $0x01010101, AX
	VMOVD        AX, X13
	VPBROADCASTD X13, Y13
	TESTQ CX, CX
	JEQ   r8done

r8loop:
	VMOVDQU 2(DI), Y1
	VMOVDQU 2(SI), X4
	VPSRLW $4, X4, X2
	VINSERTI128 $1, X2, Y4, Y4
	VPAND Y14, Y4, Y4
	VPMADDUBSW Y1, Y4, Y4
	VPMADDWD Y15, Y4, Y4
	VMOVDQU 2(SI)(R8*1), X5
	VPSRLW $4, X5, X2
	VINSERTI128 $1, X2, Y5, Y5
	VPAND Y14, Y5, Y5
	VPMADDUBSW Y1, Y5, Y5
	VPMADDWD Y15, Y5, Y5
	VMOVDQU 2(SI)(R8*2), X6
	VPSRLW $4, X6, X2
	VINSERTI128 $1, X2, Y6, Y6
	VPAND Y14, Y6, Y6
	VPMADDUBSW Y1, Y6, Y6
	VPMADDWD Y15, Y6, Y6
	VMOVDQU 2(SI)(R9*1), X7
	VPSRLW $4, X7, X2
	VINSERTI128 $1, X2, Y7, Y7
	VPAND Y14, Y7, Y7
	VPMADDUBSW Y1, Y7, Y7
	VPMADDWD Y15, Y7, Y7
	VMOVDQU 2(SI)(R8*4), X8
	VPSRLW $4, X8, X2
	VINSERTI128 $1, X2, Y8, Y8
	VPAND Y14, Y8, Y8
	VPMADDUBSW Y1, Y8, Y8
	VPMADDWD Y15, Y8, Y8
	VMOVDQU 2(SI)(R10*1), X9
	VPSRLW $4, X9, X2
	VINSERTI128 $1, X2, Y9, Y9
	VPAND Y14, Y9, Y9
	VPMADDUBSW Y1, Y9, Y9
	VPMADDWD Y15, Y9, Y9
	VMOVDQU 2(SI)(R9*2), X10
	VPSRLW $4, X10, X2
	VINSERTI128 $1, X2, Y10, Y10
	VPAND Y14, Y10, Y10
	VPMADDUBSW Y1, Y10, Y10
	VPMADDWD Y15, Y10, Y10
	VMOVDQU 2(SI)(R11*1), X11
	VPSRLW $4, X11, X2
	VINSERTI128 $1, X2, Y11, Y11
	VPAND Y14, Y11, Y11
	VPMADDUBSW Y1, Y11, Y11
	VPMADDWD Y15, Y11, Y11
	// Rows' sums: Y4 = [rows 0-3 | rows 4-7], exact.
	VPHADDD    Y5, Y4, Y4
	VPHADDD    Y7, Y6, Y6
	VPHADDD    Y6, Y4, Y4
	VPHADDD    Y9, Y8, Y8
	VPHADDD    Y11, Y10, Y10
	VPHADDD    Y10, Y8, Y8
	VPERM2I128 $0x20, Y8, Y4, Y5
	VPERM2I128 $0x31, Y8, Y4, Y6
	VPADDD     Y6, Y5, Y4
	// Minus 8 * the sum of the block's x (in every lane).
	VPMADDUBSW Y1, Y13, Y2
	VPMADDWD   Y15, Y2, Y2
	VEXTRACTI128 $1, Y2, X3
	VPADDD     X3, X2, X2
	VPSHUFD    $0x4e, X2, X3
	VPADDD     X3, X2, X2
	VPSHUFD    $0xb1, X2, X3
	VPADDD     X3, X2, X2
	VPSLLD     $3, X2, X2
	VPBROADCASTD X2, Y2
	VPSUBD     Y2, Y4, Y4
	VCVTDQ2PS  Y4, Y4

	// Y5 = F16(dw_r) for the 8 rows, Y6 = F16(dx) broadcast.
	MOVWLZX (SI), AX
	VMOVD   AX, X5
	VPINSRW $1, (SI)(R8*1), X5, X5
	VPINSRW $2, (SI)(R8*2), X5, X5
	VPINSRW $3, (SI)(R9*1), X5, X5
	VPINSRW $4, (SI)(R8*4), X5, X5
	VPINSRW $5, (SI)(R10*1), X5, X5
	VPINSRW $6, (SI)(R9*2), X5, X5
	VPINSRW $7, (SI)(R11*1), X5, X5
	VCVTPH2PS X5, Y5
	MOVWLZX (DI), AX
	VMOVD   AX, X6
	VCVTPH2PS X6, X6
	VBROADCASTSS X6, Y6
	VMULPS  Y6, Y5, Y5
	VFMADD231PS Y5, Y4, Y0

	ADDQ $18, SI
	ADDQ $34, DI
	DECQ CX
	JNZ  r8loop

r8done:
	VMOVUPS Y0, (DX)
	VZEROUPPER
	RET

// HSUMST(y, x, m) stores hsum8 of y (x its lower half) to m. Clobbers X11,
// X12.
#define HSUMST(y, x, m) \
	VEXTRACTF128 $1, y, X11; \
	VADDPS       x, X11, X11; \
	VMOVHLPS     X11, X11, X12; \
	VADDPS       X12, X11, X11; \
	VMOVSHDUP    X11, X12; \
	VADDSS       X12, X11, X11; \
	VMOVSS       X11, m

// HSUMSST(y, x, i, m) is HSUMST plus lane i of X9 (a token's offset
// terms, added after the lanes' sum). Clobbers X11, X12.
#define HSUMSST(y, x, i, m) \
	VEXTRACTF128 $1, y, X11; \
	VADDPS       x, X11, X11; \
	VMOVHLPS     X11, X11, X12; \
	VADDPS       X12, X11, X11; \
	VMOVSHDUP    X11, X12; \
	VADDSS       X12, X11, X11; \
	VPSHUFD      $i, X9, X12; \
	VADDSS       X12, X11, X11; \
	VMOVSS       X11, m

// TOK4TOKEN(xq, xd, acc) is TOK4TOKENS for one token: its quants at xq,
// its scale at xd, its accumulator acc. Clobbers AX, Y7, Y8.
#define TOK4TOKEN(xq, xd, acc) \
	VMOVDQU      xq, Y7; \
	VPSIGNB      Y4, Y7, Y7; \
	VPMADDUBSW   Y7, Y5, Y7; \
	VPMADDWD     Y15, Y7, Y7; \
	VCVTDQ2PS    Y7, Y7; \
	MOVWLZX      xd, AX; \
	VMOVD        AX, X8; \
	VCVTPH2PS    X8, X8; \
	VMULSS       X8, X6, X8; \
	VBROADCASTSS X8, Y8; \
	VFMADD231PS  Y8, Y7, acc

// TOK4TOKENS(qo) is a block of a 4-token kernel (dotQ8_0Q8_0Tok4AVX2):
// with the block's weights in Y4, their absolute values in Y5 and their
// scale in X6, each token's activations (scale at DI + i*R10, quants qo
// bytes on) are dotted in 8 int32 lanes and fused-multiply-added, times
// the two scales' product, into Yi.
#define TOK4TOKENS(qo) \
	TOK4TOKEN(qo(DI), (DI), Y0); \
	TOK4TOKEN(qo(DI)(R10*1), (DI)(R10*1), Y1); \
	TOK4TOKEN(qo(DI)(R10*2), (DI)(R10*2), Y2); \
	TOK4TOKEN(qo(DI)(R11*1), (DI)(R11*1), Y3)

// func dotQ8_0Q8_0Tok4AVX2(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)
//
// dotQ8_0Q8_0 of one weight row by 4 activation rows (x + i*xrb) into
// dst[i*ldd]: the weights are loaded and made absolute once per block, and
// each product keeps its own 8-lane accumulator (Yi), so the sums are those
// of one product at a time while 4 chains of fused multiply-adds overlap.
TEXT ·dotQ8_0Q8_0Tok4AVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DX
	MOVQ ldd+8(FP), R8
	MOVQ w+16(FP), SI
	MOVQ x+24(FP), DI
	MOVQ xrb+32(FP), R10
	MOVQ nb+40(FP), CX
	LEAQ (R10)(R10*2), R11
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	ONES16
	TESTQ CX, CX
	JEQ   tok4done

tok4loop:
	VMOVDQU   2(SI), Y4
	VPSIGNB   Y4, Y4, Y5
	MOVWLZX   (SI), AX
	VMOVD     AX, X6
	VCVTPH2PS X6, X6
	TOK4TOKENS(2)
	ADDQ $34, SI
	ADDQ $34, DI
	DECQ CX
	JNZ  tok4loop

tok4done:
	LEAQ (DX)(R8*8), R12
	HSUMST(Y0, X0, (DX))
	HSUMST(Y1, X1, (DX)(R8*4))
	HSUMST(Y2, X2, (R12))
	HSUMST(Y3, X3, (R12)(R8*4))
	VZEROUPPER
	RET

// func dotQ5_0Q8_0Tok4AVX2(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)
//
// dotQ8_0Q8_0Tok4AVX2 for Q5_0 weights: each block is unpacked once for
// the 4 tokens, each product bitwise dotQ5_0Q8_0.
TEXT ·dotQ5_0Q8_0Tok4AVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DX
	MOVQ ldd+8(FP), R8
	MOVQ w+16(FP), SI
	MOVQ x+24(FP), DI
	MOVQ xrb+32(FP), R10
	MOVQ nb+40(FP), CX
	LEAQ (R10)(R10*2), R11
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	ONES16
	NIBBLECONSTS
	Q5CONSTS
	TESTQ CX, CX
	JEQ   q5tok4done

q5tok4loop:
	NIBBLESTO(6(SI), Y4, X4, X9)
	Q5HIGHTO(2(SI), Y4, Y9)
	VPSUBB    Y13, Y4, Y4
	VPSIGNB   Y4, Y4, Y5
	MOVWLZX   (SI), AX
	VMOVD     AX, X6
	VCVTPH2PS X6, X6
	TOK4TOKENS(2)
	ADDQ $22, SI
	ADDQ $34, DI
	DECQ CX
	JNZ  q5tok4loop

q5tok4done:
	LEAQ (DX)(R8*8), R12
	HSUMST(Y0, X0, (DX))
	HSUMST(Y1, X1, (DX)(R8*4))
	HSUMST(Y2, X2, (R12))
	HSUMST(Y3, X3, (R12)(R8*4))
	VZEROUPPER
	RET

// Q1TOK4PROLOGUE loads the arguments of a 4-token Q4_1/Q5_1 kernel and
// sets its accumulators and constants; the flags are nb's test for zero.
#define Q1TOK4PROLOGUE \
	MOVQ   dst+0(FP), DX; \
	MOVQ   ldd+8(FP), R8; \
	MOVQ   w+16(FP), SI; \
	MOVQ   x+24(FP), DI; \
	MOVQ   xrb+32(FP), R10; \
	LEAQ   (R10)(R10*2), R11; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	VXORPS X9, X9, X9; \
	ONES16; \
	NIBBLECONSTS; \
	Q5CONSTS; \
	MOVQ   nb+40(FP), CX; \
	TESTQ  CX, CX

// Q1TOK4BLOCK runs a Q4_1/Q5_1 block, its weights unpacked in Y4, for the
// 4 tokens of Q8_1 activations: the offset terms F16(m) * F16(s) of the
// tokens in the lanes of X9 (one fused multiply-add a lane), then
// TOK4TOKENS over the quants at 4(DI).
#define Q1TOK4BLOCK \
	VPSIGNB      Y4, Y4, Y5; \
	MOVWLZX      2(SI), AX; \
	VMOVD        AX, X7; \
	VCVTPH2PS    X7, X7; \
	VBROADCASTSS X7, X7; \
	MOVWLZX      2(DI), AX; \
	VMOVD        AX, X8; \
	VPINSRW      $1, 2(DI)(R10*1), X8, X8; \
	VPINSRW      $2, 2(DI)(R10*2), X8, X8; \
	VPINSRW      $3, 2(DI)(R11*1), X8, X8; \
	VCVTPH2PS    X8, X8; \
	VFMADD231PS  X8, X7, X9; \
	MOVWLZX      (SI), AX; \
	VMOVD        AX, X6; \
	VCVTPH2PS    X6, X6; \
	TOK4TOKENS(4)

// Q1TOK4EPILOGUE stores each token's lanes' sum plus its offset terms.
#define Q1TOK4EPILOGUE \
	LEAQ (DX)(R8*8), R12; \
	HSUMSST(Y0, X0, 0, (DX)); \
	HSUMSST(Y1, X1, 1, (DX)(R8*4)); \
	HSUMSST(Y2, X2, 2, (R12)); \
	HSUMSST(Y3, X3, 3, (R12)(R8*4)); \
	VZEROUPPER

// func dotQ4_1Q8_1Tok4AVX2(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)
//
// dotQ8_0Q8_0Tok4AVX2 for Q4_1 weights and Q8_1 activations, each product
// bitwise dotQ4_1Q8_1: the unsigned nibbles are unpacked once a block, and
// the 4 tokens' offset terms F16(m) * F16(s) are fused-multiply-added into
// the lanes of X9, token i's added after its lanes' sum.
TEXT ·dotQ4_1Q8_1Tok4AVX2(SB), NOSPLIT, $0-48
	Q1TOK4PROLOGUE
	JEQ q41t4done

q41t4loop:
	NIBBLESTO(4(SI), Y4, X4, X8)
	Q1TOK4BLOCK
	ADDQ $20, SI
	ADDQ $36, DI
	DECQ CX
	JNZ  q41t4loop

q41t4done:
	Q1TOK4EPILOGUE
	RET

// func dotQ5_1Q8_1Tok4AVX2(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)
//
// dotQ4_1Q8_1Tok4AVX2 for Q5_1 weights, each product bitwise dotQ5_1Q8_1.
TEXT ·dotQ5_1Q8_1Tok4AVX2(SB), NOSPLIT, $0-48
	Q1TOK4PROLOGUE
	JEQ q51t4done

q51t4loop:
	NIBBLESTO(8(SI), Y4, X4, X8)
	Q5HIGHTO(4(SI), Y4, Y8)
	Q1TOK4BLOCK
	ADDQ $24, SI
	ADDQ $36, DI
	DECQ CX
	JNZ  q51t4loop

q51t4done:
	Q1TOK4EPILOGUE
	RET

// Q4B8(qo, so, xo, xso) adds a Q4_0 block of 8 rows into Y0: its quants at
// qo(SI), its scales at so(SI), its activations at xo(DI) and their sums
// at xso(BX). The products come out as [rows 0-3 | rows 4-7]: pairs (0,4),
// (1,5), (2,6), (3,7).
#define Q4B8(qo, so, xo, xso) \
	VBROADCASTI128 xo+2(DI), Y1; \
	VBROADCASTI128 xo+18(DI), Y2; \
	VMOVDQU    qo(SI), Y4; \
	VPSRLW     $4, Y4, Y5; \
	VPAND      Y14, Y4, Y4; \
	VPAND      Y14, Y5, Y5; \
	VPMADDUBSW Y1, Y4, Y4; \
	VPMADDUBSW Y2, Y5, Y5; \
	VPADDW     Y5, Y4, Y4; \
	VPMADDWD   Y15, Y4, Y4; \
	VMOVDQU    qo+32(SI), Y6; \
	VPSRLW     $4, Y6, Y7; \
	VPAND      Y14, Y6, Y6; \
	VPAND      Y14, Y7, Y7; \
	VPMADDUBSW Y1, Y6, Y6; \
	VPMADDUBSW Y2, Y7, Y7; \
	VPADDW     Y7, Y6, Y6; \
	VPMADDWD   Y15, Y6, Y6; \
	VMOVDQU    qo+64(SI), Y8; \
	VPSRLW     $4, Y8, Y9; \
	VPAND      Y14, Y8, Y8; \
	VPAND      Y14, Y9, Y9; \
	VPMADDUBSW Y1, Y8, Y8; \
	VPMADDUBSW Y2, Y9, Y9; \
	VPADDW     Y9, Y8, Y8; \
	VPMADDWD   Y15, Y8, Y8; \
	VMOVDQU    qo+96(SI), Y10; \
	VPSRLW     $4, Y10, Y11; \
	VPAND      Y14, Y10, Y10; \
	VPAND      Y14, Y11, Y11; \
	VPMADDUBSW Y1, Y10, Y10; \
	VPMADDUBSW Y2, Y11, Y11; \
	VPADDW     Y11, Y10, Y10; \
	VPMADDWD   Y15, Y10, Y10; \
	VPHADDD Y6, Y4, Y4; \
	VPHADDD Y10, Y8, Y8; \
	VPHADDD Y8, Y4, Y4; \
	VPBROADCASTD xso(BX), Y5; \
	VPSUBD       Y5, Y4, Y4; \
	VCVTDQ2PS    Y4, Y4; \
	VCVTPH2PS    so(SI), Y5; \
	VBROADCASTSS xso+4(BX), Y6; \
	VMULPS       Y6, Y5, Y5; \
	VFMADD231PS  Y5, Y4, Y0

// func dotQ4_0Q8_0x8PackedAVX2(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ4_0Q8_0x8 of groups*8 rows packed by packRows (group g's blocks at
// w + g*nb*144, by pairs) into dst[8g+r]. As dotQ4_0Q8_0x8RowsAVX2, lane r of Y0 is
// row r's accumulator and per block acc_r = fma(float32(sumi_r),
// F16(dw_r)*F16(dx), acc_r) in block order. sumi_r is the exact integer
// sum of nibble*x (VPMADDUBSW of unsigned nibbles) minus 8 times the sum of
// the block's x, which xs holds per block as an int32, followed by F16(dx)
// as a float32 (the first 8 of packedSums' 40 bytes a block).
TEXT ·dotQ4_0Q8_0x8PackedAVX2(SB), NOSPLIT, $0-48
	Q4P8KERNEL(40, pkgroup, pkpair, pkodd, pkstore, pkdone)

// func dotQ4_0Q8_0x8PackedStreamAVX2(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ4_0Q8_0x8PackedAVX2 with x's records 8 bytes apart (packedHeads),
// for one token's product, as dotQ4_0Q8_0x16PackedStreamAVX512. Whole
// decoded tokens of the 1B Q4_0 model on the AVX2 kernels (AVX-512 off),
// alternating with the 40-byte records in one process: 9.9% faster with
// the cores far apart, 1.9% near.
TEXT ·dotQ4_0Q8_0x8PackedStreamAVX2(SB), NOSPLIT, $0-48
	Q4P8KERNEL(8, pksgroup, pkspair, pksodd, pksstore, pksdone)

// F16_PREFETCH is how far ahead of its loads dotF16X32x2AVX2 prefetches
// the weights: a matrix's rows are contiguous, so this runs on into the
// next rows. It was measured once against no prefetch in the one-row
// kernel, 4-6% more of the bandwidth roofline; on a Zen 4 share (AVX-512
// off), whole decoded tokens of the 1B F16 model through a rows kernel
// ran 25% faster without it with the cores far apart, 7% near, and the
// one-row kernel no longer prefetches either.
#define F16_PREFETCH 8192

// func dotF16X32AVX2(w *byte, x *float32, n int) float32
//
// dotF16AVX2 with the activations already widened to float32 (the values of
// their halves, so the products and sums are the same): half the
// conversions per element. n is a multiple of 32, element i in lane i%32.
TEXT ·dotF16X32AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	TESTQ  CX, CX
	JEQ    f16x32done

f16x32loop:
	VCVTPH2PS   (SI), Y4
	VCVTPH2PS   16(SI), Y5
	VCVTPH2PS   32(SI), Y6
	VCVTPH2PS   48(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ        $64, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JNZ         f16x32loop

f16x32done:
	REDUCE32
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotF16X32RowsAVX2(dst *float32, w *byte, rb int, x *float32, n, rows int)
//
// dotF16X32AVX2 of rows rows (row r at w + r*rb) into dst[r]; n and rows
// are positive, n a multiple of 32. It prefetches nothing: one token's
// rows stream from memory faster without (see F16_PREFETCH).
TEXT ·dotF16X32RowsAVX2(SB), NOSPLIT, $0-48
	F16X32ROWS(f16rrow, f16rloop4, f16rtail, f16rloop, f16rreduce)

// func dotF16RowsAccAVX2(acc *float32, w *byte, rb int, x *uint16, n, rows int)
//
// dotF16X32AVX2's loop with x as halves, widened as the weights are: row
// r's four accumulators are loaded from acc + 128r and stored back
// unreduced, for the bands of packF16Bands. Whole decoded tokens of the 1B F16 model with AVX-512
// off, alternating with whole rows and x as float32 (22 KB of it beside
// the down matrix's 5632 columns): 19.6% faster with the cores far apart.
TEXT ·dotF16RowsAccAVX2(SB), NOSPLIT, $0-48
	MOVQ  acc+0(FP), DX
	MOVQ  w+8(FP), R12
	MOVQ  rb+16(FP), R8
	MOVQ  x+24(FP), R9
	MOVQ  n+32(FP), R10
	MOVQ  rows+40(FP), BX
	TESTQ BX, BX
	JEQ   yaccdone

yaccrow:
	MOVQ    R12, R11
	MOVQ    R9, DI
	MOVQ    R10, CX
	VMOVUPS (DX), Y0
	VMOVUPS 32(DX), Y1
	VMOVUPS 64(DX), Y2
	VMOVUPS 96(DX), Y3
	TESTQ   CX, CX
	JEQ     yaccstore

yaccloop:
	VCVTPH2PS   (R11), Y4
	VCVTPH2PS   16(R11), Y5
	VCVTPH2PS   32(R11), Y6
	VCVTPH2PS   48(R11), Y7
	VCVTPH2PS   (DI), Y8
	VCVTPH2PS   16(DI), Y9
	VCVTPH2PS   32(DI), Y10
	VCVTPH2PS   48(DI), Y11
	VFMADD231PS Y8, Y4, Y0
	VFMADD231PS Y9, Y5, Y1
	VFMADD231PS Y10, Y6, Y2
	VFMADD231PS Y11, Y7, Y3
	ADDQ        $64, R11
	ADDQ        $64, DI
	SUBQ        $32, CX
	JNZ         yaccloop

yaccstore:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 64(DX)
	VMOVUPS Y3, 96(DX)
	ADDQ    $128, DX
	ADDQ    R8, R12
	DECQ    BX
	JNZ     yaccrow

yaccdone:
	VZEROUPPER
	RET

// func dotF16X32x2AVX2(dst *float32, w *byte, rb int, x *float32, n int)
//
// dotF16X32AVX2 of two rows at once, row 0 at w and row 1 at w+rb, into
// dst[0] and dst[1]: each row keeps its own four accumulators (Y0-Y3 and
// Y4-Y7) with the same fused multiply-adds in the same order as one row at
// a time, while the activations are loaded once for both. With eight
// independent chains instead of four the multiply-adds no longer wait on
// each other's latency. n is a multiple of 32.
TEXT ·dotF16X32x2AVX2(SB), NOSPLIT, $0-40
	MOVQ   dst+0(FP), DX
	MOVQ   w+8(FP), SI
	MOVQ   rb+16(FP), R8
	MOVQ   x+24(FP), DI
	MOVQ   n+32(FP), CX
	LEAQ   (SI)(R8*1), R9
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	TESTQ  CX, CX
	JEQ    f16x2done

f16x2loop:
	PREFETCHT0  F16_PREFETCH(SI)
	PREFETCHT0  F16_PREFETCH(R9)
	VMOVUPS     (DI), Y8
	VMOVUPS     32(DI), Y9
	VMOVUPS     64(DI), Y10
	VMOVUPS     96(DI), Y11
	VCVTPH2PS   (SI), Y12
	VCVTPH2PS   16(SI), Y13
	VCVTPH2PS   32(SI), Y14
	VCVTPH2PS   48(SI), Y15
	VFMADD231PS Y8, Y12, Y0
	VFMADD231PS Y9, Y13, Y1
	VFMADD231PS Y10, Y14, Y2
	VFMADD231PS Y11, Y15, Y3
	VCVTPH2PS   (R9), Y12
	VCVTPH2PS   16(R9), Y13
	VCVTPH2PS   32(R9), Y14
	VCVTPH2PS   48(R9), Y15
	VFMADD231PS Y8, Y12, Y4
	VFMADD231PS Y9, Y13, Y5
	VFMADD231PS Y10, Y14, Y6
	VFMADD231PS Y11, Y15, Y7
	ADDQ        $64, SI
	ADDQ        $64, R9
	ADDQ        $128, DI
	SUBQ        $32, CX
	JNZ         f16x2loop

f16x2done:
	REDUCE32
	MOVSS   X0, (DX)
	VMOVAPS Y4, Y0
	VMOVAPS Y5, Y1
	VMOVAPS Y6, Y2
	VMOVAPS Y7, Y3
	REDUCE32
	MOVSS   X0, 4(DX)
	VZEROUPPER
	RET

// Q8R8(qo, r, acc) adds row r's products of a Q8_0 block of 8 rows (its
// quants at qo+32r(SI), x's in Y8 and their magnitudes in Y13) into acc,
// scaled by the row's scale at 4r(SP). The signs go the other way from
// the row kernel's (Q8R8W): the weights signed by x, times x's
// magnitudes, which the 8 rows share. The same pairs of products come
// out exactly, with one VPSIGNB a row instead of two: on Zen 4 it takes
// the pipes of the multiply-adds (VPMADDUBSW, VPMADDWD), and a prompt's
// Q8_0 products ran 12% faster (AVX-512 off). It needs weights above
// -128, which the signs of x could not negate within a byte: ggml
// quantizes to -127..127, and a matrix that holds a -128 anyway
// (Matrix.q8Min) takes the kernels with Q8R8W.
#define Q8R8(qo, r, acc) \
	VMOVDQU      (qo+32*r)(SI), Y10; \
	VPSIGNB      Y8, Y10, Y11; \
	VPMADDUBSW   Y11, Y13, Y11; \
	Q8R8END(r, acc)

// Q8R8W(qo, r, acc) is Q8R8 as the row kernel (dotQ8_0Q8_0AVX2) signs
// the products: x signed by the weights, times the weights' magnitudes
// (-128's is 128, unsigned), for any weights.
#define Q8R8W(qo, r, acc) \
	VMOVDQU      (qo+32*r)(SI), Y10; \
	VPSIGNB      Y10, Y10, Y11; \
	VPSIGNB      Y10, Y8, Y12; \
	VPMADDUBSW   Y12, Y11, Y11; \
	Q8R8END(r, acc)

// Q8R8END(r, acc) ends Q8R8 and Q8R8W: the pairs' 16-bit sums in Y11
// summed in fours, converted and added into acc times row r's scale.
#define Q8R8END(r, acc) \
	VPMADDWD     Y15, Y11, Y11; \
	VCVTDQ2PS    Y11, Y11; \
	VBROADCASTSS (4*r)(SP), Y12; \
	VFMADD231PS  Y12, Y11, acc

// Q8B8(row, qo, so, xo, xso) adds a Q8_0 block of 8 rows (quants at
// qo(SI), scales at so(SI), activations at xo(DI), their scale at
// xso+4(BX)) into the rows' accumulators Y0-Y7, a row at a time by row
// (Q8R8 or Q8R8W), with x's quants in Y8, their magnitudes in Y13 and the
// rows' scales at 0(SP).
#define Q8B8(row, qo, so, xo, xso) \
	VMOVDQU      xo+2(DI), Y8; \
	VPSIGNB      Y8, Y8, Y13; \
	VCVTPH2PS    so(SI), Y9; \
	VBROADCASTSS xso+4(BX), Y10; \
	VMULPS       Y10, Y9, Y9; \
	VMOVUPS      Y9, 0(SP); \
	Q8ROWS8(row, qo)

// Q8SB8(row, qo, so, xo, xso) is Q8B8 with x's scale widened from its
// half at xo(DI): it reads nothing of x's records (xso unused).
#define Q8SB8(row, qo, so, xo, xso) \
	VMOVDQU      xo+2(DI), Y8; \
	VPSIGNB      Y8, Y8, Y13; \
	VCVTPH2PS    so(SI), Y9; \
	VPBROADCASTW xo(DI), X10; \
	VCVTPH2PS    X10, Y10; \
	VMULPS       Y10, Y9, Y9; \
	VMOVUPS      Y9, 0(SP); \
	Q8ROWS8(row, qo)

// Q8ROWS8(row, qo) is the 8 rows of Q8B8 and Q8SB8.
#define Q8ROWS8(row, qo) \
	row(qo, 0, Y0); \
	row(qo, 1, Y1); \
	row(qo, 2, Y2); \
	row(qo, 3, Y3); \
	row(qo, 4, Y4); \
	row(qo, 5, Y5); \
	row(qo, 6, Y6); \
	row(qo, 7, Y7)

// The block macros of the four packed Q8_0 kernels below (Q8P8KERNEL).
#define Q8B8X(qo, so, xo, xso) Q8B8(Q8R8, qo, so, xo, xso)
#define Q8B8W(qo, so, xo, xso) Q8B8(Q8R8W, qo, so, xo, xso)
#define Q8SB8X(qo, so, xo, xso) Q8SB8(Q8R8, qo, so, xo, xso)
#define Q8SB8W(qo, so, xo, xso) Q8SB8(Q8R8W, qo, so, xo, xso)

// func dotQ8_0Q8_0x8PackedAVX2(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ8_0Q8_0 of groups*8 rows packed by packRows (group g's blocks at
// w + g*nb*272, by pairs) into dst[8g+r]: row r keeps its own 8-lane accumulator (Yr)
// with the same fused multiply-adds in the same order as one row at a time
// (dotQ8_0Q8_0AVX2), while the activations' quants and scale are loaded once
// per block for the 8 rows and the weights stream from one run of memory.
// xs holds F16(dx) as a float32 at 4 + 40*b (packedSums); the 8 rows' scales
// F16(dw_r)*F16(dx) go through the 32 bytes at 0(SP) to be broadcast.
// No weight may be -128 (Q8R8).
TEXT ·dotQ8_0Q8_0x8PackedAVX2(SB), NOSPLIT, $32-48
	Q8P8KERNEL(Q8B8X, pq8group, pq8pair, pq8odd, pq8store, pq8done)

// func dotQ8_0Q8_0x8PackedAnyAVX2(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ8_0Q8_0x8PackedAVX2 for any weights, -128 included (Q8R8W).
TEXT ·dotQ8_0Q8_0x8PackedAnyAVX2(SB), NOSPLIT, $32-48
	Q8P8KERNEL(Q8B8W, pq8wgroup, pq8wpair, pq8wodd, pq8wstore, pq8wdone)

// func dotQ8_0Q8_0x8PackedStreamAVX2(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ8_0Q8_0x8PackedAVX2 for one token's product: it reads nothing of
// x's records, whose 40 bytes a block took L1 beside the weights
// streaming past, and widens x's scale from its half instead (Q8SB8).
// Whole decoded tokens of the 1B Q8_0 model on the AVX2 kernels (AVX-512
// off), alternating with the kernel before in one process: 15.5% faster
// with the cores far apart (paired share 0.743 -> 0.859), 4.1% near.
TEXT ·dotQ8_0Q8_0x8PackedStreamAVX2(SB), NOSPLIT, $32-48
	Q8P8KERNEL(Q8SB8X, pq8sgroup, pq8spair, pq8sodd, pq8sstore, pq8sdone)

// func dotQ8_0Q8_0x8PackedStreamAnyAVX2(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ8_0Q8_0x8PackedStreamAVX2 for any weights, -128 included (Q8R8W).
TEXT ·dotQ8_0Q8_0x8PackedStreamAnyAVX2(SB), NOSPLIT, $32-48
	Q8P8KERNEL(Q8SB8W, pq8swgroup, pq8swpair, pq8swodd, pq8swstore, pq8swdone)

// func sgemmF16X32AVX2(w *byte, x *byte, steps int) float32
//
// sgemmF16AVX2 with the activations as the float32 values of their halves.
TEXT ·sgemmF16X32AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ steps+16(FP), CX
	VXORPS Y0, Y0, Y0
	TESTQ  CX, CX
	JEQ    sgx32done

sgx32loop:
	VCVTPH2PS   (SI), Y1
	VFMADD231PS (DI), Y1, Y0
	ADDQ        $16, SI
	ADDQ        $32, DI
	DECQ        CX
	JNZ         sgx32loop

sgx32done:
	HSUM8
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func axpyF16AVX2(acc *float32, v *byte, p float32, n int)
//
// acc[d] += p * F16(v[d]) for d < n (a multiple of 8). p is a half's value,
// so each product is exact and the fused multiply-add rounds as the
// reference's multiply then add.
TEXT ·axpyF16AVX2(SB), NOSPLIT, $0-32
	MOVQ         acc+0(FP), DI
	MOVQ         v+8(FP), SI
	VBROADCASTSS p+16(FP), Y2
	MOVQ         n+24(FP), CX
	SHRQ         $3, CX
	JEQ          axpydone

axpyloop:
	VCVTPH2PS   (SI), Y1
	VFMADD213PS (DI), Y2, Y1
	VMOVUPS     Y1, (DI)
	ADDQ        $16, SI
	ADDQ        $32, DI
	DECQ        CX
	JNZ         axpyloop

axpydone:
	VZEROUPPER
	RET

// func roundF16AVX2(y *float32, x *float32, n int)
//
// y[i] = the value of x[i] rounded to half precision (F16ToF32(F32ToF16)),
// n a multiple of 8: VCVTPS2PH with round-to-nearest-even, then back.
TEXT ·roundF16AVX2(SB), NOSPLIT, $0-24
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JEQ  rf16done

rf16loop:
	VMOVUPS   (SI), Y0
	VCVTPS2PH $0, Y0, X1
	VCVTPH2PS X1, Y1
	VMOVUPS   Y1, (DI)
	ADDQ      $32, SI
	ADDQ      $32, DI
	DECQ      CX
	JNZ       rf16loop

rf16done:
	VZEROUPPER
	RET

// func sgemmF16X32Acc2x6AVX2(acc *float32, w *byte, rb int, x *byte, xrb int, steps int, pairs int)
//
// sgemmF16 of pairs pairs of weight rows (pair p's rows at w + 2p*rb and
// w + (2p+1)*rb) by 6 activation rows given as the float32 values of their
// halves (x + i*xrb), steps steps of 8 columns, on the 12 8-lane
// accumulators of each pair kept at acc + 384p (accumulator 2i+r at +
// 32*(2i+r) bytes): loaded, advanced and stored back, so that a product
// can be run over its columns in blocks that stay in L1 with the same
// fused multiply-adds of exact products in the same order as sgemmF16 in
// one pass. Each weight vector is widened once for 6 tokens. The pairs of
// a block of rows go in one call: with a call a pair, a 128-token prompt of
// the 1B F16 model ran at 74-78% of the FMA peak on AVX2 alone (strata
// bench, AVX-512 off), and at 81-83% with this and the 8-row sums by
// hsumPairs8AVX2 (6% more tokens a second).
TEXT ·sgemmF16X32Acc2x6AVX2(SB), NOSPLIT, $0-56
	MOVQ  acc+0(FP), DX
	MOVQ  w+8(FP), R13
	MOVQ  rb+16(FP), R9
	MOVQ  xrb+32(FP), R10
	MOVQ  steps+40(FP), R8
	MOVQ  pairs+48(FP), BX
	LEAQ  (R10)(R10*2), R11
	LEAQ  (R10)(R10*4), R12
	TESTQ BX, BX
	JEQ   a26done
	TESTQ R8, R8
	JEQ   a26done

a26pair:
	MOVQ    R13, SI
	MOVQ    x+24(FP), DI
	MOVQ    R8, CX
	VMOVUPS 0(DX), Y0
	VMOVUPS 32(DX), Y1
	VMOVUPS 64(DX), Y2
	VMOVUPS 96(DX), Y3
	VMOVUPS 128(DX), Y4
	VMOVUPS 160(DX), Y5
	VMOVUPS 192(DX), Y6
	VMOVUPS 224(DX), Y7
	VMOVUPS 256(DX), Y8
	VMOVUPS 288(DX), Y9
	VMOVUPS 320(DX), Y10
	VMOVUPS 352(DX), Y11

a26loop:
	VCVTPH2PS   (SI), Y12
	VCVTPH2PS   (SI)(R9*1), Y13
	VMOVUPS     (DI), Y14
	VFMADD231PS Y14, Y12, Y0
	VFMADD231PS Y14, Y13, Y1
	VMOVUPS     (DI)(R10*1), Y14
	VFMADD231PS Y14, Y12, Y2
	VFMADD231PS Y14, Y13, Y3
	VMOVUPS     (DI)(R10*2), Y14
	VFMADD231PS Y14, Y12, Y4
	VFMADD231PS Y14, Y13, Y5
	VMOVUPS     (DI)(R11*1), Y14
	VFMADD231PS Y14, Y12, Y6
	VFMADD231PS Y14, Y13, Y7
	VMOVUPS     (DI)(R10*4), Y14
	VFMADD231PS Y14, Y12, Y8
	VFMADD231PS Y14, Y13, Y9
	VMOVUPS     (DI)(R12*1), Y14
	VFMADD231PS Y14, Y12, Y10
	VFMADD231PS Y14, Y13, Y11
	ADDQ        $16, SI
	ADDQ        $32, DI
	DECQ        CX
	JNZ         a26loop

	VMOVUPS Y0, 0(DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 64(DX)
	VMOVUPS Y3, 96(DX)
	VMOVUPS Y4, 128(DX)
	VMOVUPS Y5, 160(DX)
	VMOVUPS Y6, 192(DX)
	VMOVUPS Y7, 224(DX)
	VMOVUPS Y8, 256(DX)
	VMOVUPS Y9, 288(DX)
	VMOVUPS Y10, 320(DX)
	VMOVUPS Y11, 352(DX)
	ADDQ    $384, DX
	LEAQ    (R13)(R9*2), R13
	DECQ    BX
	JNZ     a26pair

a26done:
	VZEROUPPER
	RET

// func sgemmF16X32Acc4x2AVX2(acc *float32, w *byte, rb int, x *byte, xrb int, steps int, quads int)
//
// sgemmF16X32Acc2x6AVX2 for 2 tokens (x and x + xrb) and quads quads of
// weight rows (quad q's at w + 4q*rb, as two pairs), the tokens'
// accumulators in the 6-token tiles' places: a pair's at acc + 384 bytes
// each, quad q's first pair at acc + 768q, a token's two rows side by side
// (the second token's 64 bytes on). It takes a last tile's tokens short of
// 6 (sgemmX32Tiles), where the 6-token tile did over again tokens done
// already: eight chains of multiply-adds a step, each accumulator's in
// the same order as the 6-token tile's.
TEXT ·sgemmF16X32Acc4x2AVX2(SB), NOSPLIT, $0-56
	MOVQ  acc+0(FP), DX
	MOVQ  w+8(FP), R13
	MOVQ  rb+16(FP), R9
	MOVQ  xrb+32(FP), R10
	MOVQ  steps+40(FP), R8
	MOVQ  quads+48(FP), BX
	LEAQ  (R9)(R9*2), R11
	TESTQ BX, BX
	JEQ   a42done
	TESTQ R8, R8
	JEQ   a42done

a42quad:
	MOVQ    R13, SI
	MOVQ    x+24(FP), DI
	MOVQ    R8, CX
	VMOVUPS 0(DX), Y0
	VMOVUPS 32(DX), Y1
	VMOVUPS 64(DX), Y2
	VMOVUPS 96(DX), Y3
	VMOVUPS 384(DX), Y4
	VMOVUPS 416(DX), Y5
	VMOVUPS 448(DX), Y6
	VMOVUPS 480(DX), Y7

a42loop:
	VCVTPH2PS   (SI), Y8
	VCVTPH2PS   (SI)(R9*1), Y9
	VCVTPH2PS   (SI)(R9*2), Y10
	VCVTPH2PS   (SI)(R11*1), Y11
	VMOVUPS     (DI), Y12
	VMOVUPS     (DI)(R10*1), Y13
	VFMADD231PS Y12, Y8, Y0
	VFMADD231PS Y12, Y9, Y1
	VFMADD231PS Y13, Y8, Y2
	VFMADD231PS Y13, Y9, Y3
	VFMADD231PS Y12, Y10, Y4
	VFMADD231PS Y12, Y11, Y5
	VFMADD231PS Y13, Y10, Y6
	VFMADD231PS Y13, Y11, Y7
	ADDQ        $16, SI
	ADDQ        $32, DI
	DECQ        CX
	JNZ         a42loop

	VMOVUPS Y0, 0(DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 64(DX)
	VMOVUPS Y3, 96(DX)
	VMOVUPS Y4, 384(DX)
	VMOVUPS Y5, 416(DX)
	VMOVUPS Y6, 448(DX)
	VMOVUPS Y7, 480(DX)
	ADDQ    $768, DX
	LEAQ    (R13)(R9*4), R13
	DECQ    BX
	JNZ     a42quad

a42done:
	VZEROUPPER
	RET

// func reduce8ColsAVX2(out *float32, acc *float32, hd int, n int)
//
// out[d] = hsum8 of the 8 lanes acc[l*hd+d] (l < 8) for d < n, n a multiple
// of 8, 8 columns at a time with hsum8's adds in its order: r_k = a_k+4 +
// a_k for k < 4, then (r0 + r2) + (r1 + r3).
TEXT ·reduce8ColsAVX2(SB), NOSPLIT, $0-32
	MOVQ out+0(FP), DI
	MOVQ acc+8(FP), SI
	MOVQ hd+16(FP), R8
	SHLQ $2, R8
	MOVQ n+24(FP), CX
	LEAQ (R8)(R8*2), R9 // 3 rows
	LEAQ (SI)(R8*4), R10 // lane 4's row
	TESTQ CX, CX
	JEQ  r8cdone

r8cloop:
	VMOVUPS (R10), Y0
	VADDPS  (SI), Y0, Y0
	VMOVUPS (R10)(R8*1), Y1
	VADDPS  (SI)(R8*1), Y1, Y1
	VMOVUPS (R10)(R8*2), Y2
	VADDPS  (SI)(R8*2), Y2, Y2
	VMOVUPS (R10)(R9*1), Y3
	VADDPS  (SI)(R9*1), Y3, Y3
	VADDPS  Y2, Y0, Y0
	VADDPS  Y3, Y1, Y1
	VADDPS  Y1, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, R10
	ADDQ    $32, DI
	SUBQ    $8, CX
	JNZ     r8cloop

r8cdone:
	VZEROUPPER
	RET

// func reduce32ColsAVX2(out *float32, acc *float32, hd int, n int)
//
// out[d] = reduce32 of the 32 lanes acc[l*hd+d] (l < 32) for d < n, n a
// multiple of 8: the same adds in the same order as reduce32, 8 columns at
// a time ((a_l + a_16+l) + (a_8+l + a_24+l), then lanes 0+4, 1+5, 2+6, 3+7,
// then (0+1) + (2+3)).
TEXT ·reduce32ColsAVX2(SB), NOSPLIT, $0-32
	MOVQ out+0(FP), DI
	MOVQ acc+8(FP), SI
	MOVQ hd+16(FP), R8
	SHLQ $2, R8
	MOVQ n+24(FP), CX
	MOVQ R8, R9
	SHLQ $3, R9
	MOVQ R8, R10
	SHLQ $4, R10
	LEAQ (R9)(R10*1), R11
	TESTQ CX, CX
	JEQ  r32cdone

r32cloop:
	MOVQ SI, BX
	VMOVUPS (BX), Y0
	VADDPS  (BX)(R10*1), Y0, Y0
	VMOVUPS (BX)(R9*1), Y8
	VADDPS  (BX)(R11*1), Y8, Y8
	VADDPS  Y8, Y0, Y0
	ADDQ    R8, BX
	VMOVUPS (BX), Y1
	VADDPS  (BX)(R10*1), Y1, Y1
	VMOVUPS (BX)(R9*1), Y8
	VADDPS  (BX)(R11*1), Y8, Y8
	VADDPS  Y8, Y1, Y1
	ADDQ    R8, BX
	VMOVUPS (BX), Y2
	VADDPS  (BX)(R10*1), Y2, Y2
	VMOVUPS (BX)(R9*1), Y8
	VADDPS  (BX)(R11*1), Y8, Y8
	VADDPS  Y8, Y2, Y2
	ADDQ    R8, BX
	VMOVUPS (BX), Y3
	VADDPS  (BX)(R10*1), Y3, Y3
	VMOVUPS (BX)(R9*1), Y8
	VADDPS  (BX)(R11*1), Y8, Y8
	VADDPS  Y8, Y3, Y3
	ADDQ    R8, BX
	VMOVUPS (BX), Y4
	VADDPS  (BX)(R10*1), Y4, Y4
	VMOVUPS (BX)(R9*1), Y8
	VADDPS  (BX)(R11*1), Y8, Y8
	VADDPS  Y8, Y4, Y4
	ADDQ    R8, BX
	VMOVUPS (BX), Y5
	VADDPS  (BX)(R10*1), Y5, Y5
	VMOVUPS (BX)(R9*1), Y8
	VADDPS  (BX)(R11*1), Y8, Y8
	VADDPS  Y8, Y5, Y5
	ADDQ    R8, BX
	VMOVUPS (BX), Y6
	VADDPS  (BX)(R10*1), Y6, Y6
	VMOVUPS (BX)(R9*1), Y8
	VADDPS  (BX)(R11*1), Y8, Y8
	VADDPS  Y8, Y6, Y6
	ADDQ    R8, BX
	VMOVUPS (BX), Y7
	VADDPS  (BX)(R10*1), Y7, Y7
	VMOVUPS (BX)(R9*1), Y8
	VADDPS  (BX)(R11*1), Y8, Y8
	VADDPS  Y8, Y7, Y7
	VADDPS  Y4, Y0, Y0
	VADDPS  Y5, Y1, Y1
	VADDPS  Y6, Y2, Y2
	VADDPS  Y7, Y3, Y3
	VADDPS  Y1, Y0, Y0
	VADDPS  Y3, Y2, Y2
	VADDPS  Y2, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX
	JNZ     r32cloop

r32cdone:
	VZEROUPPER
	RET

// BCASTV(imm, x, y) sets y (a Y register) to 8 lanes of the float32 bits
// imm, through AX and x (the low half of y, or of a scratch register).
#define BCASTV(imm, x, y) \
	MOVL         imm, AX; \
	VMOVD        AX, x; \
	VPBROADCASTD x, y

// BCAST is BCASTV through X0 (clobbered, with AX).
#define BCAST(imm, reg) BCASTV(imm, X0, reg)

// EXPCONSTS loads the constants of VEXPF into Y4-Y15 (clobbering AX, X0).
#define EXPCONSTS \
	BCAST($0x4b400000, Y15); \
	BCAST($0x3fb8aa3b, Y14); \
	BCAST($0x35bfbe8e, Y13); \
	BCAST($0x3f317200, Y12); \
	BCAST($0x3f800000, Y11); \
	BCAST($0x3c072010, Y10); \
	BCAST($0x3d2b9f17, Y9); \
	BCAST($0x3e2aaf33, Y8); \
	BCAST($0x3efffedb, Y7); \
	BCAST($0x3f7ffff6, Y6); \
	BCAST($0x7fffffff, Y5); \
	BCAST($0x42fc0000, Y4)

// VEXPFJ sets Y0 to VEXPF's polynomial j of b in Y0, with u = b*b in Y2
// (the constants of EXPCONSTS in Y6-Y10); it clobbers Y3 and Y4.
#define VEXPFJ \
	VMULPS       Y0, Y0, Y2; \
	VMOVAPS      Y9, Y3; \
	VFMADD231PS  Y10, Y0, Y3; \
	VMOVAPS      Y7, Y4; \
	VFMADD231PS  Y8, Y0, Y4; \
	VFMADD231PS  Y3, Y2, Y4; \
	VMULPS       Y6, Y0, Y0; \
	VFMADD231PS  Y4, Y2, Y0

// VEXPF(bail) sets Y1 to ggml_v_expf of the 8 lanes of Y0, one lane an
// element with vExpf's fused multiply-adds in its order, or jumps to bail
// where some lane needs the slow path (|n| > 126). With x in Y0 and the
// constants of EXPCONSTS (Y15 r = 0x1.8p23, Y14 log2(e), Y13 and Y12 ln2's
// low and high parts, Y11 1.0, Y10-Y6 the polynomial's c1-c5, Y5 the |.|
// mask, Y4 126): z = x*log2e + r, n = z - r, b = x - n*ln2hi - n*ln2lo,
// k = the bits of z << 23 plus those of 1.0, u = b*b,
// j = ((c1*b + c2)*u + (c3*b + c4))*u + c5*b, e = k*j + k. It clobbers Y0, Y2, Y3, AX and Y4, which must be reloaded
// with 126 before the next use.
#define VEXPF(bail) \
	VMOVAPS      Y15, Y1; \
	VFMADD231PS  Y14, Y0, Y1; \
	VSUBPS       Y15, Y1, Y2; \
	VFNMADD231PS Y12, Y2, Y0; \
	VFNMADD231PS Y13, Y2, Y0; \
	VANDPS       Y5, Y2, Y2; \
	VCMPPS       $0x1e, Y4, Y2, Y2; \
	VMOVMSKPS    Y2, AX; \
	TESTL        AX, AX; \
	JNE          bail; \
	VPSLLD       $23, Y1, Y1; \
	VPADDD       Y11, Y1, Y1; \
	VEXPFJ; \
	VFMADD231PS  Y0, Y1, Y1

// VEXPFSLOW finishes VEXPF where it jumped to bail, with Y0 holding b, Y1
// z and Y2 the lanes whose |n| > 126, as vExpf's slow path does for those
// lanes: g = 0x82000000 where n <= 0 (else 0), s1 = the bits g +
// 0x7f000000, s2 = those of e - g (e = z << 23); s1*s1 where |n| > 192,
// else (s2*j + s2)*s1. The other lanes get k*j + k. It sets Y1 and
// clobbers Y0, Y2-Y4 and Y12-Y15, so that EXPCONSTS must follow.
#define VEXPFSLOW \
	VMOVAPS      Y2, Y12; \
	VSUBPS       Y15, Y1, Y13; \
	VPSLLD       $23, Y1, Y1; \
	VMOVAPS      Y1, Y14; \
	VPADDD       Y11, Y1, Y1; \
	VEXPFJ; \
	VMOVAPS      Y1, Y2; \
	VFMADD231PS  Y0, Y1, Y2; \
	VXORPS       Y4, Y4, Y4; \
	VCMPPS       $0x02, Y4, Y13, Y4; \
	BCASTV($0x82000000, X3, Y3); \
	VANDPS       Y3, Y4, Y4; \
	BCASTV($0x7f000000, X3, Y3); \
	VPADDD       Y4, Y3, Y3; \
	VPSUBD       Y4, Y14, Y14; \
	VMOVAPS      Y14, Y4; \
	VFMADD231PS  Y0, Y14, Y4; \
	VMULPS       Y3, Y4, Y4; \
	VMULPS       Y3, Y3, Y3; \
	VANDPS       Y5, Y13, Y13; \
	BCASTV($0x43400000, X15, Y15); \
	VCMPPS       $0x1e, Y15, Y13, Y13; \
	VBLENDVPS    Y13, Y3, Y4, Y4; \
	VBLENDVPS    Y12, Y4, Y2, Y1

// func swigluAVX2(dst, gate, up *float32, n int) int
//
// dst[i] = vSiLU(gate[i]) * up[i] for whole chunks of 8 from the start, as
// ggml_vec_swiglu_f32 with ggml_v_expf: the same fused multiply-adds in the
// same order, one lane an element, a chunk where some lane's |n| > 126
// through VEXPFSLOW. It returns the number of elements done (n rounded
// down to 8). dst may alias gate or up.
TEXT ·swigluAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ up+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	XORQ BX, BX
	TESTQ CX, CX
	JEQ  swdone
	EXPCONSTS

swloop:
	VXORPS       Y0, Y0, Y0
	VSUBPS       (SI)(BX*4), Y0, Y0 // x = 0 - g
	VEXPF(swslow)

swback:
	VADDPS       Y11, Y1, Y1        // 1 + e
	VMOVUPS      (SI)(BX*4), Y0
	VDIVPS       Y1, Y0, Y0         // g / (1 + e)
	VMULPS       (DX)(BX*4), Y0, Y0
	VMOVUPS      Y0, (DI)(BX*4)
	BCAST($0x42fc0000, Y4)
	ADDQ         $8, BX
	DECQ         CX
	JNZ          swloop

swdone:
	MOVQ BX, ret+32(FP)
	VZEROUPPER
	RET

swslow:
	VEXPFSLOW
	EXPCONSTS
	JMP swback

// func toF16AVX2(dst *uint16, src *float32, n int)
//
// dst[i] = F32ToF16(src[i]), n a multiple of 8: VCVTPS2PH with
// round-to-nearest-even.
TEXT ·toF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JEQ  tf16done

tf16loop:
	VMOVUPS   (SI), Y0
	VCVTPS2PH $0, Y0, X1
	VMOVUPS   X1, (DI)
	ADDQ      $32, SI
	ADDQ      $16, DI
	DECQ      CX
	JNZ       tf16loop

tf16done:
	VZEROUPPER
	RET

// func fromF16AVX2(dst *float32, src *uint16, n int)
//
// dst[i] = F16ToF32(src[i]), n a multiple of 8: VCVTPH2PS, exact.
TEXT ·fromF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JEQ  ff16done

ff16loop:
	VCVTPH2PS (SI), Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $16, SI
	ADDQ      $32, DI
	DECQ      CX
	JNZ       ff16loop

ff16done:
	VZEROUPPER
	RET

// func packedSumsAVX2(xs *byte, x *byte, nb int, rec int)
//
// packedSums of nb Q8_0 blocks (rec xsBlock), or packedHeads (rec xsHead):
// per block, VPMADDUBSW of byte ones by the quants and VPMADDWD by word
// ones leave the 8 exact sums of 4 quants in int32 lanes; 8 times their
// total and F16(d) as a float32 start the block's record, and the 40-byte
// one goes on with -128 times each.
TEXT ·packedSumsAVX2(SB), NOSPLIT, $0-32
	MOVQ     xs+0(FP), DX
	MOVQ     x+8(FP), SI
	MOVQ     nb+16(FP), CX
	MOVQ     rec+24(FP), R8
	ONES16
	VPCMPEQB Y14, Y14, Y14
	VPABSB   Y14, Y14 // byte ones
	TESTQ    CX, CX
	JEQ      psdone

psloop:
	VMOVDQU      2(SI), Y1
	VPMADDUBSW   Y1, Y14, Y1
	VPMADDWD     Y15, Y1, Y1
	CMPQ         R8, $8
	JEQ          pshead
	VPSLLD       $7, Y1, Y2
	VPXOR        Y3, Y3, Y3
	VPSUBD       Y2, Y3, Y3
	VMOVDQU      Y3, 8(DX)

pshead:
	VEXTRACTI128 $1, Y1, X2
	VPADDD       X2, X1, X1
	VPSHUFD      $0x4e, X1, X2
	VPADDD       X2, X1, X1
	VPSHUFD      $0xb1, X1, X2
	VPADDD       X2, X1, X1
	VPSLLD       $3, X1, X1
	VMOVD        X1, (DX)
	MOVWLZX      (SI), AX
	VMOVD        AX, X4
	VCVTPH2PS    X4, X4
	VMOVSS       X4, 4(DX)
	ADDQ         $34, SI
	ADDQ         R8, DX
	DECQ         CX
	JNZ          psloop

psdone:
	VZEROUPPER
	RET

// func attnScoresF16AVX2(att *float32, k *byte, stride int, q *float32, hd int, n int, scale float32)
//
// att[pos] = dotF16X32AVX2(k + pos*stride, q, hd) * scale for pos < n: a
// head's attention scores in one call, each the same fused multiply-adds,
// reduction and product as one key at a time. hd is a multiple of 32;
// stride is in bytes.
TEXT ·attnScoresF16AVX2(SB), NOSPLIT, $0-52
	MOVQ   att+0(FP), DX
	MOVQ   k+8(FP), R8
	MOVQ   stride+16(FP), R9
	MOVQ   q+24(FP), R10
	MOVQ   hd+32(FP), R11
	MOVQ   n+40(FP), BX
	VMOVSS scale+48(FP), X8
	TESTQ  BX, BX
	JEQ    asdone
	TESTQ  R11, R11
	JEQ    asdone

aspos:
	MOVQ   R8, SI
	MOVQ   R10, DI
	MOVQ   R11, CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

asloop:
	VCVTPH2PS   (SI), Y4
	VCVTPH2PS   16(SI), Y5
	VCVTPH2PS   32(SI), Y6
	VCVTPH2PS   48(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ        $64, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JNZ         asloop

	REDUCE32
	VMULSS X8, X0, X0
	VMOVSS X0, (DX)
	ADDQ   $4, DX
	ADDQ   R9, R8
	DECQ   BX
	JNZ    aspos

asdone:
	VZEROUPPER
	RET

// func attnValuesF16AVX2(acc *float32, v *byte, stride int, att *float32, hd int, n int, lanes int)
//
// For pos < n in order: p = att[pos] rounded to half precision (VCVTPS2PH,
// round to nearest even), and acc[(pos%lanes)*hd + d] += p * F16(v[d]) for
// the value row v + pos*stride (bytes) and d < hd, as axpyF16AVX2 adds one
// row: the products are exact, so each fused multiply-add rounds as the
// reference's multiply then add. hd is a multiple of 8, lanes a power of 2.
TEXT ·attnValuesF16AVX2(SB), NOSPLIT, $0-56
	MOVQ  acc+0(FP), R8
	MOVQ  v+8(FP), R9
	MOVQ  stride+16(FP), R10
	MOVQ  att+24(FP), DX
	MOVQ  hd+32(FP), R11
	MOVQ  n+40(FP), BX
	MOVQ  lanes+48(FP), R12
	DECQ  R12
	XORQ  AX, AX
	TESTQ BX, BX
	JEQ   avdone
	MOVQ  R11, R14
	SHRQ  $3, R14
	JEQ   avdone

avpos:
	VMOVSS       (DX)(AX*4), X2
	VCVTPS2PH    $0, X2, X2
	VCVTPH2PS    X2, X2
	VBROADCASTSS X2, Y2
	MOVQ         AX, R13
	ANDQ         R12, R13
	IMULQ        R11, R13
	LEAQ         (R8)(R13*4), DI
	MOVQ         R9, SI
	MOVQ         R14, CX

avloop:
	VCVTPH2PS   (SI), Y1
	VFMADD213PS (DI), Y2, Y1
	VMOVUPS     Y1, (DI)
	ADDQ        $16, SI
	ADDQ        $32, DI
	DECQ        CX
	JNZ         avloop

	ADDQ R10, R9
	INCQ AX
	CMPQ AX, BX
	JNE  avpos

avdone:
	VZEROUPPER
	RET

// func expChunksAVX2(x *float32, m float32, n int, sum *float64) int
//
// The exponentials of softmaxGGML for whole chunks of 8 from the start of
// x: x[i] = vExpf(x[i] - m), the same fused multiply-adds in the same
// order as swigluAVX2's (a chunk where some lane's |n| > 126 through
// VEXPFSLOW), and *sum += float64(hsum8 of the chunk), chunk after chunk.
// It returns the number of elements done (n rounded down to 8).
TEXT ·expChunksAVX2(SB), NOSPLIT, $0-40
	MOVQ  x+0(FP), SI
	MOVQ  n+16(FP), CX
	MOVQ  sum+24(FP), DX
	SHRQ  $3, CX
	XORQ  BX, BX
	TESTQ CX, CX
	JEQ   exdone
	EXPCONSTS

exloop:
	VBROADCASTSS m+8(FP), Y3
	VMOVUPS      (SI)(BX*4), Y0
	VSUBPS       Y3, Y0, Y0         // x = v - m
	VEXPF(exslow)

exback:
	VMOVUPS      Y1, (SI)(BX*4)
	VEXTRACTF128 $1, Y1, X2         // hsum8(e), then into the float64 sum
	VADDPS       X2, X1, X1
	VMOVHLPS     X1, X1, X2
	VADDPS       X2, X1, X1
	VMOVSHDUP    X1, X2
	VADDSS       X2, X1, X1
	VCVTSS2SD    X1, X1, X1
	VADDSD       (DX), X1, X1
	VMOVSD       X1, (DX)
	BCAST($0x42fc0000, Y4)
	ADDQ         $8, BX
	DECQ         CX
	JNZ          exloop

exdone:
	MOVQ BX, ret+32(FP)
	VZEROUPPER
	RET

exslow:
	VEXPFSLOW
	EXPCONSTS
	JMP exback

// HSUMSC(y, x, m) stores hsum8 of y (x its low half) times X8 lane 0 at m.
// Clobbers X11, X12.
#define HSUMSC(y, x, m) \
	VEXTRACTF128 $1, y, X11; \
	VADDPS       x, X11, X11; \
	VMOVHLPS     X11, X11, X12; \
	VADDPS       X12, X11, X11; \
	VMOVSHDUP    X11, X12; \
	VADDSS       X12, X11, X11; \
	VMULSS       X8, X11, X11; \
	VMOVSS       X11, m

// func attnScoresSgemmF16AVX2(att *float32, k *byte, stride int, q *float32, steps int, n int, scale float32)
//
// att[pos] = sgemmF16X32AVX2(k + pos*stride, q, steps) * scale for pos < n,
// the scores of a head for a query of a batch, four keys at a time: each
// key's 8-lane accumulator gets the same fused multiply-adds in the same
// order as one key at a time, and four independent chains hide the
// multiply-adds' latency. stride is in bytes; steps >= 1.
TEXT ·attnScoresSgemmF16AVX2(SB), NOSPLIT, $0-52
	MOVQ   att+0(FP), DX
	MOVQ   k+8(FP), R8
	MOVQ   stride+16(FP), R9
	MOVQ   q+24(FP), R10
	MOVQ   steps+32(FP), R11
	MOVQ   n+40(FP), BX
	VMOVSS scale+48(FP), X8

sbquad:
	CMPQ   BX, $4
	JLT    sbsingle
	MOVQ   R8, SI
	LEAQ   (R8)(R9*1), R12
	LEAQ   (R12)(R9*1), R13
	LEAQ   (R13)(R9*1), R14
	MOVQ   R10, DI
	MOVQ   R11, CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

sbqloop:
	VMOVUPS     (DI), Y9
	VCVTPH2PS   (SI), Y4
	VFMADD231PS Y9, Y4, Y0
	VCVTPH2PS   (R12), Y5
	VFMADD231PS Y9, Y5, Y1
	VCVTPH2PS   (R13), Y6
	VFMADD231PS Y9, Y6, Y2
	VCVTPH2PS   (R14), Y7
	VFMADD231PS Y9, Y7, Y3
	ADDQ        $16, SI
	ADDQ        $16, R12
	ADDQ        $16, R13
	ADDQ        $16, R14
	ADDQ        $32, DI
	DECQ        CX
	JNZ         sbqloop

	HSUMSC(Y0, X0, 0(DX))
	HSUMSC(Y1, X1, 4(DX))
	HSUMSC(Y2, X2, 8(DX))
	HSUMSC(Y3, X3, 12(DX))
	ADDQ $16, DX
	LEAQ (R8)(R9*4), R8
	SUBQ $4, BX
	JMP  sbquad

sbsingle:
	TESTQ  BX, BX
	JEQ    sbdone
	MOVQ   R8, SI
	MOVQ   R10, DI
	MOVQ   R11, CX
	VXORPS Y0, Y0, Y0

sbsloop:
	VCVTPH2PS   (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ        $16, SI
	ADDQ        $32, DI
	DECQ        CX
	JNZ         sbsloop

	HSUMSC(Y0, X0, (DX))
	ADDQ $4, DX
	ADDQ R9, R8
	DECQ BX
	JMP  sbsingle

sbdone:
	VZEROUPPER
	RET

// func hsumPairs8AVX2(dst *float32, ldd int, acc *float32, j0 int)
//
// Writes hsum8 of the accumulators of an 8-row by 6-token tile (four pairs
// of rows, pair p's at acc + 384p bytes, token j's two rows side by side at
// + 64j) for tokens j = j0..5: dst + j*ldd*4 gets the 8 rows' sums in row
// order. Eight rows at once, each with hsum8's adds in its order: the
// halves (a_i + a_i+4), then lanes 0,1 with 2,3, then 0 with 1.
TEXT ·hsumPairs8AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), R8
	MOVQ acc+16(FP), SI
	MOVQ j0+24(FP), CX
	SHLQ $2, R8
	MOVQ CX, AX
	IMULQ R8, AX
	ADDQ AX, DI
	MOVQ CX, AX
	SHLQ $6, AX
	ADDQ AX, SI
	VMOVDQU hsumperm<>(SB), Y15

hsloop:
	CMPQ CX, $6
	JGE  hsdone
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 384(SI), Y2
	VMOVUPS 416(SI), Y3
	VMOVUPS 768(SI), Y4
	VMOVUPS 800(SI), Y5
	VMOVUPS 1152(SI), Y6
	VMOVUPS 1184(SI), Y7
	// [v0.lo | v1.lo] + [v0.hi | v1.hi], and so on: r_i = a_i + a_i+4.
	VPERM2F128 $0x20, Y1, Y0, Y8
	VPERM2F128 $0x31, Y1, Y0, Y9
	VADDPS     Y9, Y8, Y0
	VPERM2F128 $0x20, Y3, Y2, Y8
	VPERM2F128 $0x31, Y3, Y2, Y9
	VADDPS     Y9, Y8, Y2
	VPERM2F128 $0x20, Y5, Y4, Y8
	VPERM2F128 $0x31, Y5, Y4, Y9
	VADDPS     Y9, Y8, Y4
	VPERM2F128 $0x20, Y7, Y6, Y8
	VPERM2F128 $0x31, Y7, Y6, Y9
	VADDPS     Y9, Y8, Y6
	// r0 + r2 and r1 + r3.
	VSHUFPS $0x44, Y2, Y0, Y8
	VSHUFPS $0xee, Y2, Y0, Y9
	VADDPS  Y9, Y8, Y0
	VSHUFPS $0x44, Y6, Y4, Y8
	VSHUFPS $0xee, Y6, Y4, Y9
	VADDPS  Y9, Y8, Y4
	// (r0 + r2) + (r1 + r3), rows 0 2 4 6 | 1 3 5 7, then in row order.
	VSHUFPS $0x88, Y4, Y0, Y8
	VSHUFPS $0xdd, Y4, Y0, Y9
	VADDPS  Y9, Y8, Y0
	VPERMPS Y0, Y15, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $64, SI
	ADDQ    R8, DI
	INCQ    CX
	JMP     hsloop

hsdone:
	VZEROUPPER
	RET

// hsumperm<>: the VPERMPS indices that put rows 0 2 4 6 1 3 5 7 in order.
DATA hsumperm<>+0(SB)/4, $0
DATA hsumperm<>+4(SB)/4, $4
DATA hsumperm<>+8(SB)/4, $1
DATA hsumperm<>+12(SB)/4, $5
DATA hsumperm<>+16(SB)/4, $2
DATA hsumperm<>+20(SB)/4, $6
DATA hsumperm<>+24(SB)/4, $3
DATA hsumperm<>+28(SB)/4, $7
GLOBL hsumperm<>(SB), RODATA|NOPTR, $32

// func maxAVX2(x *float32, n int) (m float32, nan bool)
//
// The largest of x[0..n) by VMAXPS in two chains of 8 lanes, and whether
// any element is NaN (VCMPPS unordered, or-ed). Without NaNs the largest
// value is the same whatever the order, except that VMAXPS does not order
// -0 and +0: callers check for a zero result. n is a multiple of 8, > 0.
TEXT ·maxAVX2(SB), NOSPLIT, $0-21
	MOVQ    x+0(FP), SI
	MOVQ    n+8(FP), CX
	VMOVUPS (SI), Y0
	VMOVAPS Y0, Y1
	VXORPS  Y2, Y2, Y2

maxloop:
	VMOVUPS (SI), Y3
	VMAXPS  Y3, Y0, Y0
	VCMPPS  $3, Y3, Y3, Y4 // unordered: NaN lanes
	VORPS   Y4, Y2, Y2
	ADDQ    $32, SI
	SUBQ    $8, CX
	JZ      maxreduce
	VMOVUPS (SI), Y3
	VMAXPS  Y3, Y1, Y1
	VCMPPS  $3, Y3, Y3, Y4
	VORPS   Y4, Y2, Y2
	ADDQ    $32, SI
	SUBQ    $8, CX
	JNZ     maxloop

maxreduce:
	VMAXPS       Y1, Y0, Y0
	HMAX8
	VMOVSS       X0, m+16(FP)
	VPTEST       Y2, Y2
	SETNE        nan+20(FP)
	VZEROUPPER
	RET

// func scaleAVX2(x *float32, s float32, n int)
//
// x[i] *= s for i < n, a multiple of 8: the same rounded products as one
// at a time.
TEXT ·scaleAVX2(SB), NOSPLIT, $0-24
	MOVQ         x+0(FP), SI
	VBROADCASTSS s+8(FP), Y1
	MOVQ         n+16(FP), CX
	TESTQ        CX, CX
	JEQ          scaledone

scaleloop:
	VMULPS  (SI), Y1, Y0
	VMOVUPS Y0, (SI)
	ADDQ    $32, SI
	SUBQ    $8, CX
	JNZ     scaleloop

scaledone:
	VZEROUPPER
	RET

// func ropePairsAVX2(x *float32, cs *float32, ds *float32, dims int, heads int, hd int)
//
// RoPE.ApplyTable over adjacent pairs: for each of heads heads (hd floats
// apart) and its first dims elements, 4 pairs at a time, x0' = fma(x0, c,
// x1*(-s)) and x1' = fma(x0, s, x1*c), with cs = c, s and ds = -s, c per
// pair: the reference's fused multiply-adds of the same rounded products
// (x1*(-s) is -(x1*s) exactly). dims is a multiple of 8.
TEXT ·ropePairsAVX2(SB), NOSPLIT, $0-48
	MOVQ  x+0(FP), DI
	MOVQ  cs+8(FP), R8
	MOVQ  ds+16(FP), R9
	MOVQ  dims+24(FP), R10
	MOVQ  heads+32(FP), BX
	MOVQ  hd+40(FP), R11
	SHLQ  $2, R11
	TESTQ R10, R10
	JEQ   rpdone
	TESTQ BX, BX
	JEQ   rpdone

rphead:
	MOVQ DI, SI
	XORQ AX, AX

rploop:
	VMOVUPS     (SI), Y0
	VMOVSLDUP   Y0, Y1 // x0 x0
	VMOVSHDUP   Y0, Y2 // x1 x1
	VMULPS      (R9)(AX*4), Y2, Y3 // x1*(-s), x1*c
	VFMADD231PS (R8)(AX*4), Y1, Y3 // x0*c + x1*(-s), x0*s + x1*c
	VMOVUPS     Y3, (SI)
	ADDQ        $32, SI
	ADDQ        $8, AX
	CMPQ        AX, R10
	JLT         rploop
	ADDQ        R11, DI
	DECQ        BX
	JNZ         rphead

rpdone:
	VZEROUPPER
	RET

// func ropeNeoxAVX2(x *float32, c *float32, s *float32, half int, heads int, hd int)
//
// RoPE.ApplyTable over NEOX pairs (x0 at i, x1 at half+i): for each head,
// 8 pairs at a time, x0' = x0*c - x1*s and x1' = fma(x0, s, x1*c), the
// subtraction fused as the reference's fma(x0, c, -(x1*s)). half is a
// multiple of 8.
TEXT ·ropeNeoxAVX2(SB), NOSPLIT, $0-48
	MOVQ  x+0(FP), DI
	MOVQ  c+8(FP), R8
	MOVQ  s+16(FP), R9
	MOVQ  half+24(FP), R10
	MOVQ  heads+32(FP), BX
	MOVQ  hd+40(FP), R11
	SHLQ  $2, R11
	MOVQ  R10, R12
	SHLQ  $2, R12 // half*4: from x0 to x1
	TESTQ R10, R10
	JEQ   rndone
	TESTQ BX, BX
	JEQ   rndone

rnhead:
	MOVQ DI, SI
	XORQ AX, AX

rnloop:
	VMOVUPS     (SI), Y0 // x0
	VMOVUPS     (SI)(R12*1), Y1 // x1
	VMULPS      (R9)(AX*4), Y1, Y2 // x1*s
	VMULPS      (R8)(AX*4), Y1, Y3 // x1*c
	VFMSUB231PS (R8)(AX*4), Y0, Y2 // x0*c - x1*s
	VFMADD231PS (R9)(AX*4), Y0, Y3 // x0*s + x1*c
	VMOVUPS     Y2, (SI)
	VMOVUPS     Y3, (SI)(R12*1)
	ADDQ        $32, SI
	ADDQ        $8, AX
	CMPQ        AX, R10
	JLT         rnloop
	ADDQ        R11, DI
	DECQ        BX
	JNZ         rnhead

rndone:
	VZEROUPPER
	RET

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

// Software prefetch. The single-token packed kernels stream their weights
// from memory, and on Zen 5 prefetching them 2-8 KB ahead gained 3-8% over
// none. On this Zen 4 share (an EPYC whose memory streams 34-37 GB/s at
// some times and 55-67 at others) prefetching ahead loses instead, and
// the best differs by layout. Over the 1B shape's layer matrices,
// alternating within one process and grouped by the bandwidth measured
// right before:
//   - kernels whose iteration reads a pair of 16-row blocks (9-12 lines:
//     Q4_0, Q5_0, Q4_1, Q5_1) stream fastest with their own lines
//     prefetched as the iteration starts (TOUCH9): Q4_0 43.3 GB/s
//     against 36.7 without and 33-35 at 4-16 KB ahead when memory was
//     fast, 33.5 against 31.7 and 30.1 when slow; Q5_0, Q4_1 and Q5_1
//     alike (Q5_1 41.2 against 26.4 and 34.7 when fast);
//   - kernels whose iteration reads 17 lines or more (Q8_0's pair, the
//     K-quants' superblock) stream fastest without: Q8_0 47.0 against
//     41-42, Q4_K 37.9 against 34.7 touching and 16.6 at 4 KB ahead,
//     Q5_K 18.6 against 15.6 and 17.0.
// The prompt kernels, bound by arithmetic, do not prefetch.

// Q4U16(qo, so) loads a Q4_0 block of 16 rows (quants at qo(SI), scales
// at so(SI)) and splits it: its low and high nibbles in Z3-Z10 (chunk c's
// in Z3+2c and Z4+2c), its rows' scales widened in Z11.
#define Q4U16(qo, so) \
	VMOVDQU32 qo(SI), Z3; \
	VMOVDQU32 qo+64(SI), Z5; \
	VMOVDQU32 qo+128(SI), Z7; \
	VMOVDQU32 qo+192(SI), Z9; \
	VPSRLW    $4, Z3, Z4; \
	VPSRLW    $4, Z5, Z6; \
	VPSRLW    $4, Z7, Z8; \
	VPSRLW    $4, Z9, Z10; \
	VPANDD    Z31, Z3, Z3; \
	VPANDD    Z31, Z4, Z4; \
	VPANDD    Z31, Z5, Z5; \
	VPANDD    Z31, Z6, Z6; \
	VPANDD    Z31, Z7, Z7; \
	VPANDD    Z31, Z8, Z8; \
	VPANDD    Z31, Z9, Z9; \
	VPANDD    Z31, Z10, Z10; \
	VCVTPH2PS so(SI), Z11

// Q4T16(xo, xso, XP, SP, acc) adds the block Q4U16 split (nibbles in
// Z3-Z10, rows' scales in Z11) into acc for one token, its activations at
// xo(XP) and their sums at xso(SP). Clobbers Z1, Z2, Z12.
#define Q4T16(xo, xso, XP, SP, acc) \
	VPXORD        Z1, Z1, Z1; \
	VPXORD        Z2, Z2, Z2; \
	VPDPBUSD.BCST xo+2(XP), Z3, Z1; \
	VPDPBUSD.BCST xo+18(XP), Z4, Z2; \
	VPDPBUSD.BCST xo+6(XP), Z5, Z1; \
	VPDPBUSD.BCST xo+22(XP), Z6, Z2; \
	VPDPBUSD.BCST xo+10(XP), Z7, Z1; \
	VPDPBUSD.BCST xo+26(XP), Z8, Z2; \
	VPDPBUSD.BCST xo+14(XP), Z9, Z1; \
	VPDPBUSD.BCST xo+30(XP), Z10, Z2; \
	VPADDD        Z2, Z1, Z1; \
	VPSUBD.BCST   xso(SP), Z1, Z1; \
	VCVTDQ2PS     Z1, Z1; \
	VMULPS.BCST   xso+4(SP), Z11, Z12; \
	VFMADD231PS   Z12, Z1, acc

// Q4B16(qo, so, xo, xso) adds a Q4_0 block of 16 rows into Z0: its quants
// at qo(SI), its scales at so(SI), its activations at xo(DI) and their sums
// at xso(BX). One token's, so the high nibbles are not shifted down: each
// is masked in place (16 times its value, Z30 the 0xf0 bytes), its sums
// come out 16 times too (at most 16*15*128*16 in magnitude), and one exact
// arithmetic shift of their total takes the 16 out: three operations a
// block fewer than Q4U16's shifts, for the same integers.
#define Q4B16(qo, so, xo, xso) \
	VMOVDQU32     qo(SI), Z3; \
	VMOVDQU32     qo+64(SI), Z5; \
	VMOVDQU32     qo+128(SI), Z7; \
	VMOVDQU32     qo+192(SI), Z9; \
	VPANDD        Z30, Z3, Z4; \
	VPANDD        Z30, Z5, Z6; \
	VPANDD        Z30, Z7, Z8; \
	VPANDD        Z30, Z9, Z10; \
	VPANDD        Z31, Z3, Z3; \
	VPANDD        Z31, Z5, Z5; \
	VPANDD        Z31, Z7, Z7; \
	VPANDD        Z31, Z9, Z9; \
	VCVTPH2PS     so(SI), Z11; \
	VPXORD        Z1, Z1, Z1; \
	VPXORD        Z2, Z2, Z2; \
	VPDPBUSD.BCST xo+2(DI), Z3, Z1; \
	VPDPBUSD.BCST xo+18(DI), Z4, Z2; \
	VPDPBUSD.BCST xo+6(DI), Z5, Z1; \
	VPDPBUSD.BCST xo+22(DI), Z6, Z2; \
	VPDPBUSD.BCST xo+10(DI), Z7, Z1; \
	VPDPBUSD.BCST xo+26(DI), Z8, Z2; \
	VPDPBUSD.BCST xo+14(DI), Z9, Z1; \
	VPDPBUSD.BCST xo+30(DI), Z10, Z2; \
	VPSRAD        $4, Z2, Z2; \
	VPADDD        Z2, Z1, Z1; \
	VPSUBD.BCST   xso(BX), Z1, Z1; \
	VCVTDQ2PS     Z1, Z1; \
	VMULPS.BCST   xso+4(BX), Z11, Z12; \
	VFMADD231PS   Z12, Z1, Z0

// Q4B16T4(qo, so, xo, xso) is Q4B16 for four tokens at once: the block is
// split once, then each token (x at DI, R10, R11, R12; sums at BX, R13,
// R14, R15) gets Q4B16's operations in its order into its accumulator (Z0,
// Z13, Z14, Z15).
#define Q4B16T4(qo, so, xo, xso) \
	Q4U16(qo, so); \
	Q4T16(xo, xso, DI, BX, Z0); \
	Q4T16(xo, xso, R10, R13, Z13); \
	Q4T16(xo, xso, R11, R14, Z14); \
	Q4T16(xo, xso, R12, R15, Z15)

// TOUCH9 prefetches the 9 lines from SI on, which the iteration it starts
// is about to load (see the note on software prefetch above): a pair of
// packed Q4_0 blocks.
#define TOUCH9 \
	PREFETCHT0 (SI); \
	PREFETCHT0 64(SI); \
	PREFETCHT0 128(SI); \
	PREFETCHT0 192(SI); \
	PREFETCHT0 256(SI); \
	PREFETCHT0 320(SI); \
	PREFETCHT0 384(SI); \
	PREFETCHT0 448(SI); \
	PREFETCHT0 512(SI)

// Q4KERNEL(rec, group, pair, odd, store, done) is the body of the packed
// Q4_0 kernels below: x's records (xs) are rec bytes apart; the rest are
// Q4KERNEL(rec, group, pair, odd, store, done) is the body of the packed
// Q4_0 kernels below, whose x's records (xs) are rec bytes apart; the rest
// are its labels.
#define Q4KERNEL(rec, group, pair, odd, store, done) \
	MOVQ         dst+0(FP), DX; \
	MOVQ         w+8(FP), SI; \
	MOVQ         nb+32(FP), R9; \
	MOVQ         groups+40(FP), R8; \
	MOVL         $0x0f0f0f0f, AX; \
	VPBROADCASTD AX, Z31; \
	MOVL         $0xf0f0f0f0, AX; \
	VPBROADCASTD AX, Z30; \
	TESTQ        R8, R8; \
	JEQ          done; \
	TESTQ        R9, R9; \
	JEQ          done; \
group: \
	MOVQ   x+16(FP), DI; \
	MOVQ   xs+24(FP), BX; \
	MOVQ   R9, CX; \
	SHRQ   $1, CX; \
	VXORPS Z0, Z0, Z0; \
	JEQ    odd; \
pair: \
	TOUCH9; \
	Q4B16(0, 512, 0, 0); \
	Q4B16(256, 544, 34, rec); \
	ADDQ $576, SI; \
	ADDQ $68, DI; \
	ADDQ $(2*rec), BX; \
	DECQ CX; \
	JNZ  pair; \
odd: \
	TESTQ $1, R9; \
	JEQ   store; \
	TOUCH9; \
	Q4B16(0, 256, 0, 0); \
	ADDQ  $288, SI; \
store: \
	VMOVUPS Z0, (DX); \
	ADDQ    $64, DX; \
	DECQ    R8; \
	JNZ     group; \
done: \
	VZEROUPPER; \
	RET

// func dotQ4_0Q8_0x16PackedAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ4_0Q8_0x8 of groups*16 rows packed in groups of 16 (group g's blocks
// at w + g*nb*288, by pairs: packRows) into dst[16g+r]: lane r of Z0 is
// row r's accumulator, and per block acc_r = fma(float32(sumi_r),
// F16(dw_r)*F16(dx), acc_r) in block order, sumi_r the exact sum of
// nibble*x minus 8 times the sum of the block's x (xs: packedSums). Word i
// of the block's 64-byte chunks holds elements 4i..4i+3 of each row in its
// low nibbles (against x bytes 2+4i..) and 16+4i.. in its high ones
// (against 18+4i..); the low and high sums go to Z1 and Z2, two chains
// instead of one.
TEXT ·dotQ4_0Q8_0x16PackedAVX512(SB), NOSPLIT, $0-48
	Q4KERNEL(40, p16group, p16pair, p16odd, p16store, p16done)

// func dotQ4_0Q8_0x16PackedStreamAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ4_0Q8_0x16PackedAVX512 with x's records 8 bytes apart
// (packedHeads), not 40: the 8 bytes of each that it reads. One token's
// product, the weights streamed from memory past them: x and its records
// then take 2.7 KB of L1 over 2048 columns, not 4.7. Whole decoded tokens
// of the 1B Q4_0 model, alternating with the 40-byte records in one
// process: 6.0% faster with the cores far apart, 0.8-1.0% near.
TEXT ·dotQ4_0Q8_0x16PackedStreamAVX512(SB), NOSPLIT, $0-48
	Q4KERNEL(8, p16sgroup, p16spair, p16sodd, p16sstore, p16sdone)

// Q8L8(qo, r0, r1, r2, r3, r4, r5, r6, r7) loads the 8 words of the
// Q8_0 block of 16 rows whose quants are at qo(SI) into r0..r7 (word i,
// columns 4i..4i+3 of each row, into ri).
#define Q8L8(qo, r0, r1, r2, r3, r4, r5, r6, r7) \
	VMOVDQU32 qo(SI), r0; \
	VMOVDQU32 qo+64(SI), r1; \
	VMOVDQU32 qo+128(SI), r2; \
	VMOVDQU32 qo+192(SI), r3; \
	VMOVDQU32 qo+256(SI), r4; \
	VMOVDQU32 qo+320(SI), r5; \
	VMOVDQU32 qo+384(SI), r6; \
	VMOVDQU32 qo+448(SI), r7

// Q8W16(w, xo, xso, i, acc) adds word i of a Q8_0 block of 16 rows, loaded
// in w, into acc: Z1 = -128*(sum of x's 4 bytes) from the sums at
// xso(BX), plus the products of the weights plus 128 and x's bytes (at
// xo(DI)), is the exact integer sum of LANES8's lane i for each row; then
// acc = fma(that, the rows' scales in Z8, acc), as the AVX2 kernel's lane
// i.
#define Q8W16(w, xo, xso, i, acc) \
	VPBROADCASTD  (xso+8+4*i)(BX), Z1; \
	VPDPBUSD.BCST (xo+2+4*i)(DI), w, Z1; \
	VCVTDQ2PS     Z1, Z1; \
	VFMADD231PS   Z8, Z1, acc

// Q8C16(so, xo, xso, r0, r1, r2, r3, r4, r5, r6, r7) adds the Q8_0 block
// of 16 rows whose words Q8L8 loaded in r0..r7 (scales at so(SI)) into
// the lanes Z16..Z23.
#define Q8C16(so, xo, xso, r0, r1, r2, r3, r4, r5, r6, r7) \
	VCVTPH2PS   so(SI), Z8; \
	VMULPS.BCST xso+4(BX), Z8, Z8; \
	Q8W16(r0, xo, xso, 0, Z16); \
	Q8W16(r1, xo, xso, 1, Z17); \
	Q8W16(r2, xo, xso, 2, Z18); \
	Q8W16(r3, xo, xso, 3, Z19); \
	Q8W16(r4, xo, xso, 4, Z20); \
	Q8W16(r5, xo, xso, 5, Z21); \
	Q8W16(r6, xo, xso, 6, Z22); \
	Q8W16(r7, xo, xso, 7, Z23)

// Q8P16 adds the pair of Q8_0 blocks of 16 rows at SI (quants at
// 0 and 512, scales at 1024 and 1056) into the lanes Z16..Z23, all 16
// lines of quants loaded before any is used. Streaming from memory, that
// made the 1B shape's layer matrices 4 points of the bandwidth faster
// (86.6% against 82.7%) when memory was fast, the same when slow
// (alternating in one process). Loading each block's 8 lines right before
// its use lost (74.5% against 80.4%), and so did converting both blocks'
// scales before either block's words (74.8% against 79.8%).
#define Q8P16 \
	Q8L8(0, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31); \
	Q8L8(512, Z0, Z2, Z3, Z4, Z5, Z6, Z7, Z9); \
	Q8C16(1024, 0, 0, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31); \
	Q8C16(1056, 34, 40, Z0, Z2, Z3, Z4, Z5, Z6, Z7, Z9)

// Q8ODD16 adds a last odd Q8_0 block of 16 rows (quants at SI, scales at
// 512(SI)) as Q8P16 adds each of a pair.
#define Q8ODD16 \
	Q8L8(0, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31); \
	Q8C16(512, 0, 0, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31)

// Q8SW16(w, xo, i, acc) is Q8W16 for the streaming kernel, which reads
// nothing of x's sums (xs): Z1 = the products of the weights plus 128 and
// x's bytes, less those of 128 (Z11's bytes) and x's bytes, is the same
// exact integer; the rows' scales come from the stack line at R13.
#define Q8SW16(w, xo, i, acc) \
	VPXORD        Z1, Z1, Z1; \
	VPXORD        Z10, Z10, Z10; \
	VPDPBUSD.BCST (xo+2+4*i)(DI), w, Z1; \
	VPDPBUSD.BCST (xo+2+4*i)(DI), Z11, Z10; \
	VPSUBD        Z10, Z1, Z1; \
	VCVTDQ2PS     Z1, Z1; \
	VFMADD231PS   (R13), Z1, acc

// Q8SC16(so, xo, r0, r1, r2, r3, r4, r5, r6, r7) is Q8C16 for the
// streaming kernel: x's scale is widened from its half at xo(DI), and
// the rows' scales go to the stack line at R13 for the multiply-adds.
#define Q8SC16(so, xo, r0, r1, r2, r3, r4, r5, r6, r7) \
	VCVTPH2PS    so(SI), Z8; \
	VPBROADCASTW xo(DI), Y12; \
	VCVTPH2PS    Y12, Z12; \
	VMULPS       Z12, Z8, Z8; \
	VMOVAPS      Z8, (R13); \
	Q8SW16(r0, xo, 0, Z16); \
	Q8SW16(r1, xo, 1, Z17); \
	Q8SW16(r2, xo, 2, Z18); \
	Q8SW16(r3, xo, 3, Z19); \
	Q8SW16(r4, xo, 4, Z20); \
	Q8SW16(r5, xo, 5, Z21); \
	Q8SW16(r6, xo, 6, Z22); \
	Q8SW16(r7, xo, 7, Z23)

// Q8SP16 and Q8SODD16 are Q8P16 and Q8ODD16 for the streaming kernel.
#define Q8SP16 \
	Q8L8(0, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31); \
	Q8L8(512, Z0, Z2, Z3, Z4, Z5, Z6, Z7, Z9); \
	Q8SC16(1024, 0, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31); \
	Q8SC16(1056, 34, Z0, Z2, Z3, Z4, Z5, Z6, Z7, Z9)
#define Q8SODD16 \
	Q8L8(0, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31); \
	Q8SC16(512, 0, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31)

// LANES8ZERO zeroes the 8 lanes of 16 rows' accumulators (Z16-Z23) that
// the packed kernels over 8 reference lanes keep.
#define LANES8ZERO \
	VXORPS Z16, Z16, Z16; \
	VXORPS Z17, Z17, Z17; \
	VXORPS Z18, Z18, Z18; \
	VXORPS Z19, Z19, Z19; \
	VXORPS Z20, Z20, Z20; \
	VXORPS Z21, Z21, Z21; \
	VXORPS Z22, Z22, Z22; \
	VXORPS Z23, Z23, Z23

// LANES8SUM adds each row's 8 lanes in Z16-Z23 as HSUM8 adds them: (a_i +
// a_i+4), then i and i+2, then 0 and 1, leaving the 16 sums in Z16.
#define LANES8SUM \
	VADDPS Z20, Z16, Z16; \
	VADDPS Z21, Z17, Z17; \
	VADDPS Z22, Z18, Z18; \
	VADDPS Z23, Z19, Z19; \
	VADDPS Z18, Z16, Z16; \
	VADDPS Z19, Z17, Z17; \
	VADDPS Z17, Z16, Z16

// Q8KERNEL(pairm, oddm, group, pair, odd, sum, done) is the body of the
// packed Q8_0 kernels below: pairm adds a pair of blocks of 16 rows, oddm
// a last odd block; the rest are its labels.
#define Q8KERNEL(pairm, oddm, group, pair, odd, sum, done) \
	MOVQ  dst+0(FP), DX; \
	MOVQ  w+8(FP), SI; \
	MOVQ  nb+32(FP), R9; \
	MOVQ  groups+40(FP), R8; \
	TESTQ R8, R8; \
	JEQ   done; \
	TESTQ R9, R9; \
	JEQ   done; \
group: \
	MOVQ x+16(FP), DI; \
	MOVQ xs+24(FP), BX; \
	MOVQ R9, CX; \
	LANES8ZERO; \
	SHRQ $1, CX; \
	JEQ  odd; \
pair: \
	pairm; \
	ADDQ $1088, SI; \
	ADDQ $68, DI; \
	ADDQ $80, BX; \
	DECQ CX; \
	JNZ  pair; \
odd: \
	TESTQ $1, R9; \
	JEQ   sum; \
	oddm; \
	ADDQ  $544, SI; \
sum: \
	LANES8SUM; \
	VMOVUPS Z16, (DX); \
	ADDQ    $64, DX; \
	DECQ    R8; \
	JNZ     group; \
done: \
	VZEROUPPER; \
	RET

// func dotQ8_0Q8_0x16PackedAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ8_0Q8_0 of groups*16 rows packed in groups of 16 (group g's blocks
// at w + g*nb*544, by pairs: packRows) into dst[16g+r]. Row r keeps the 8
// lanes of dotQ8_0Q8_0AVX2's accumulator in lane r of Z16..Z23 (lane i in
// Z16+i), with the same fused multiply-adds in the same order; at the end
// each row's 8 lanes are added as HSUM8 adds them: (a_i + a_i+4), then i
// and i+2, then 0 and 1. For weights in cache (a prompt's tokens after the
// first): the multiply-adds take the rows' scales from Z8.
TEXT ·dotQ8_0Q8_0x16PackedAVX512(SB), NOSPLIT, $0-48
	Q8KERNEL(Q8P16, Q8ODD16, q16group, q16pair, q16odd, q16sum, q16done)

// func dotQ8_0Q8_0x16PackedStreamAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ8_0Q8_0x16PackedAVX512, bitwise, for weights streamed from memory
// (one token's product). Two changes made it stream faster, each measured
// over the 1B shape's layer matrices, alternating with the kernel before
// in one process:
//   - the rows' scales go to a cache line of the frame, and each
//     multiply-add reads them there: 2.4-2.9% faster than from Z8 while the
//     cores were far apart, 0.6-0.9% near (one more broadcast load to each
//     word, its result unused, gained as much; register-only instructions
//     in its place lost);
//   - it reads nothing of xs, whose 40 bytes a block took L1 beside the
//     weights streaming past: x's scale is widened from x, and each word's
//     correction is one more VPDPBUSD. 5.4% faster far apart over 2048x5632
//     (x and xs were 13 KB), 1.1% over 2048x2048; near 0.7% and 0.5%.
// From cache it runs slower than the register kernel.
TEXT ·dotQ8_0Q8_0x16PackedStreamAVX512(SB), NOSPLIT, $128-48
	LEAQ         63(SP), R13
	ANDQ         $~63, R13
	MOVL         $0x80808080, AX
	VPBROADCASTD AX, Z11
	Q8KERNEL(Q8SP16, Q8SODD16, q16sgroup, q16spair, q16sodd, q16ssum, q16sdone)

// NIB16(qo, i) loads word i (columns 4i..4i+3 and 16+4i..16+4i+3) of
// the block of 16 rows whose nibbles are at qo(SI), packed as Q4_0's, and
// splits it: the low nibbles in Z2, the high ones in Z3.
#define NIB16(qo, i) \
	VMOVDQU32 (qo+64*i)(SI), Z2; \
	VPSRLW    $4, Z2, Z3; \
	VPANDD    Z31, Z2, Z2; \
	VPANDD    Z31, Z3, Z3

// HIB16(mo, i) adds the fifth bits of word i, from the block's masks at
// mo(SI) (packNibbles16), to the nibbles NIB16 split: 16 (Z30) to each
// byte whose mask bit is set.
#define HIB16(mo, i) \
	KMOVQ  (mo+8*i)(SI), K1; \
	KMOVQ  (mo+32+8*i)(SI), K2; \
	VPADDB Z30, Z2, K1, Z2; \
	VPADDB Z30, Z3, K2, Z3

// LANES16(xo, i, lo, hi) adds the unsigned weights in Z2 and Z3 (columns
// 4i.. and 16+4i..) times x's bytes at xo(DI) to the sums in Z1 and Z4,
// which the caller started, making them LANES8's exact integer lanes i and
// i+4 for each row; then lane = fma(that, the rows' scales in Z8, lane),
// as the AVX2 kernels' lanes.
#define LANES16(xo, i, lo, hi) \
	VPDPBUSD.BCST (xo+4*i)(DI), Z2, Z1; \
	VPDPBUSD.BCST (xo+16+4*i)(DI), Z3, Z4; \
	VCVTDQ2PS     Z1, Z1; \
	VCVTDQ2PS     Z4, Z4; \
	VFMADD231PS   Z8, Z1, lo; \
	VFMADD231PS   Z8, Z4, hi

// Q5W16(qo, mo, xo, xso, i, lo, hi) adds word i of the Q5_0 block of 16
// rows whose nibbles are at qo(SI) and masks at mo(SI) into the lanes lo
// (lane i) and hi (lane i+4): the weights plus 16, unsigned, so that each
// sum starts at -16 times the sum of x's 4 bytes (an eighth of the -128
// times packedSums holds).
#define Q5W16(qo, mo, xo, xso, i, lo, hi) \
	NIB16(qo, i); \
	HIB16(mo, i); \
	VPSRAD.BCST $3, (xso+8+4*i)(BX), Z1; \
	VPSRAD.BCST $3, (xso+24+4*i)(BX), Z4; \
	LANES16(xo+2, i, lo, hi)

// Q5B16(qo, mo, so, xo, xso) adds a Q5_0 block of 16 rows (quants at
// qo(SI), masks at mo(SI), scales at so(SI)) into the lanes Z16..Z23.
#define Q5B16(qo, mo, so, xo, xso) \
	VCVTPH2PS   so(SI), Z8; \
	VMULPS.BCST xso+4(BX), Z8, Z8; \
	Q5W16(qo, mo, xo, xso, 0, Z16, Z20); \
	Q5W16(qo, mo, xo, xso, 1, Z17, Z21); \
	Q5W16(qo, mo, xo, xso, 2, Z18, Z22); \
	Q5W16(qo, mo, xo, xso, 3, Z19, Z23)

// TOUCH11 prefetches the 11 lines of the pair of packed Q5_0 blocks at SI.
#define TOUCH11 \
	TOUCH9; \
	PREFETCHT0 576(SI); \
	PREFETCHT0 640(SI)

// NIBARGS loads the arguments of a packed Q5_0, Q4_1, Q5_1, Q4_K or Q5_K
// kernel and its constants: Z31 the 0x0f bytes, Z30 the 0x10 bytes.
#define NIBARGS \
	MOVQ         dst+0(FP), DX; \
	MOVQ         w+8(FP), SI; \
	MOVQ         nb+32(FP), R9; \
	MOVQ         groups+40(FP), R8; \
	MOVL         $0x0f0f0f0f, AX; \
	VPBROADCASTD AX, Z31; \
	MOVL         $0x10101010, AX; \
	VPBROADCASTD AX, Z30

// func dotQ5_0Q8_0x16PackedAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ5_0Q8_0 of groups*16 rows packed in groups of 16 (group g's blocks
// at w + g*nb*352, by pairs: packRows) into dst[16g+r]. Row r keeps the 8
// lanes of the AVX2 kernel's accumulator in lane r of Z16..Z23, with the
// same fused multiply-adds in the same order, and adds them at the end as
// HSUM8 does.
TEXT ·dotQ5_0Q8_0x16PackedAVX512(SB), NOSPLIT, $0-48
	NIBARGS
	TESTQ R8, R8
	JEQ   q5done
	TESTQ R9, R9
	JEQ   q5done

q5group:
	MOVQ   x+16(FP), DI
	MOVQ   xs+24(FP), BX
	MOVQ   R9, CX
	LANES8ZERO

	SHRQ   $1, CX // pairs of blocks
	JEQ    q5odd

q5pair:
	TOUCH11
	Q5B16(0, 512, 640, 0, 0)
	Q5B16(256, 576, 672, 34, 40)
	ADDQ $704, SI
	ADDQ $68, DI
	ADDQ $80, BX
	DECQ CX
	JNZ  q5pair

q5odd:
	TESTQ $1, R9
	JEQ   q5sum
	TOUCH9
	Q5B16(0, 256, 320, 0, 0)
	ADDQ  $352, SI

q5sum:
	LANES8SUM
	VMOVUPS Z16, (DX)
	ADDQ    $64, DX
	DECQ    R8
	JNZ     q5group

q5done:
	VZEROUPPER
	RET

// Q1S16(so, mno, xso) starts a Q4_1 or Q5_1 block of 16 rows: the rows'
// scales (at so(SI)) times x's (at xso+4(BX)) in Z8, and its offsets
// added to the rows' sums in Z24: Z24 = fma(the rows' mins at mno(SI),
// x's F16 sum term at xso(BX), Z24), as the AVX2 kernels' summs.
#define Q1S16(so, mno, xso) \
	VCVTPH2PS        so(SI), Z8; \
	VMULPS.BCST      xso+4(BX), Z8, Z8; \
	VCVTPH2PS        mno(SI), Z9; \
	VFMADD231PS.BCST xso(BX), Z9, Z24

// Q41W16(qo, xo, i, lo, hi) adds word i of the Q4_1 block of 16 rows whose
// nibbles are at qo(SI) into the lanes lo (lane i) and hi (lane i+4); x's
// Q8_1 block is at xo(DI).
#define Q41W16(qo, xo, i, lo, hi) \
	NIB16(qo, i); \
	VPXORD Z1, Z1, Z1; \
	VPXORD Z4, Z4, Z4; \
	LANES16(xo+4, i, lo, hi)

// Q51W16(qo, mo, xo, i, lo, hi) is Q41W16 for Q5_1, whose fifth bits are
// at mo(SI).
#define Q51W16(qo, mo, xo, i, lo, hi) \
	NIB16(qo, i); \
	HIB16(mo, i); \
	VPXORD Z1, Z1, Z1; \
	VPXORD Z4, Z4, Z4; \
	LANES16(xo+4, i, lo, hi)

// Q41B16(qo, so, mno, xo, xso) adds a Q4_1 block of 16 rows (nibbles at
// qo(SI), scales at so(SI), mins at mno(SI)) into Z16..Z23 and Z24.
#define Q41B16(qo, so, mno, xo, xso) \
	Q1S16(so, mno, xso); \
	Q41W16(qo, xo, 0, Z16, Z20); \
	Q41W16(qo, xo, 1, Z17, Z21); \
	Q41W16(qo, xo, 2, Z18, Z22); \
	Q41W16(qo, xo, 3, Z19, Z23)

// Q51B16(qo, mo, so, mno, xo, xso) is Q41B16 for Q5_1 (masks at mo(SI)).
#define Q51B16(qo, mo, so, mno, xo, xso) \
	Q1S16(so, mno, xso); \
	Q51W16(qo, mo, xo, 0, Z16, Z20); \
	Q51W16(qo, mo, xo, 1, Z17, Z21); \
	Q51W16(qo, mo, xo, 2, Z18, Z22); \
	Q51W16(qo, mo, xo, 3, Z19, Z23)

// Q1START zeroes a group's sums: its rows' lanes Z16..Z23 and offsets Z24.
#define Q1START \
	LANES8ZERO; \
	VXORPS Z24, Z24, Z24

// Q1STORE stores a group's 16 results at (DX): each row's lanes added as
// HSUM8 adds them, then its offsets.
#define Q1STORE \
	LANES8SUM; \
	VADDPS  Z24, Z16, Z16; \
	VMOVUPS Z16, (DX)

// Q41PAIR(rec) adds a pair of packed Q4_1 blocks of 16 rows at SI into
// Z16..Z23 and Z24, x's records rec bytes apart, and steps SI past them;
// Q41ODD a last odd block. Q51PAIR(rec) and Q51ODD are the same for Q5_1.
#define Q41PAIR(rec) \
	TOUCH9; \
	PREFETCHT0 576(SI); \
	Q41B16(0, 512, 576, 0, 0); \
	Q41B16(256, 544, 608, 36, rec); \
	ADDQ       $640, SI
#define Q41ODD \
	TOUCH9; \
	Q41B16(0, 256, 288, 0, 0); \
	ADDQ $320, SI
#define Q51PAIR(rec) \
	TOUCH9; \
	PREFETCHT0 576(SI); \
	PREFETCHT0 640(SI); \
	PREFETCHT0 704(SI); \
	Q51B16(0, 512, 640, 704, 0, 0); \
	Q51B16(256, 576, 672, 736, 36, rec); \
	ADDQ       $768, SI
#define Q51ODD \
	TOUCH9; \
	Q51B16(0, 256, 320, 352, 0, 0); \
	ADDQ $384, SI

// Q1KERNEL(pairm, oddm, rec, group, pair, odd, sum, done) is the body of
// the packed Q4_1 and Q5_1 kernels below: pairm(rec) adds a pair of
// blocks, oddm a last odd one, and x's records (xs) are rec bytes apart;
// the rest are its labels.
#define Q1KERNEL(pairm, oddm, rec, group, pair, odd, sum, done) \
	NIBARGS; \
	TESTQ R8, R8; \
	JEQ   done; \
	TESTQ R9, R9; \
	JEQ   done; \
group: \
	MOVQ x+16(FP), DI; \
	MOVQ xs+24(FP), BX; \
	MOVQ R9, CX; \
	Q1START; \
	SHRQ $1, CX; \
	JEQ  odd; \
pair: \
	pairm(rec); \
	ADDQ $72, DI; \
	ADDQ $(2*rec), BX; \
	DECQ CX; \
	JNZ  pair; \
odd: \
	TESTQ $1, R9; \
	JEQ   sum; \
	oddm; \
sum: \
	Q1STORE; \
	ADDQ $64, DX; \
	DECQ R8; \
	JNZ  group; \
done: \
	VZEROUPPER; \
	RET

// func dotQ4_1Q8_1x16PackedAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ4_1Q8_1 of groups*16 rows packed in groups of 16 (group g's blocks
// at w + g*nb*320, by pairs: packNibbles16) into dst[16g+r], with x's
// scales and sum terms as float32 in xs (packedScalesQ8_1). Row r keeps
// the AVX2 kernel's 8 lanes in lane r of Z16..Z23 and its offsets in lane
// r of Z24, with the same fused multiply-adds in the same order.
TEXT ·dotQ4_1Q8_1x16PackedAVX512(SB), NOSPLIT, $0-48
	Q1KERNEL(Q41PAIR, Q41ODD, 40, q41group, q41pair, q41odd, q41sum, q41done)

// func dotQ5_1Q8_1x16PackedAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ4_1Q8_1x16PackedAVX512 for Q5_1 (dotQ5_1Q8_1; group g's blocks at
// w + g*nb*384).
TEXT ·dotQ5_1Q8_1x16PackedAVX512(SB), NOSPLIT, $0-48
	Q1KERNEL(Q51PAIR, Q51ODD, 40, q51group, q51pair, q51odd, q51sum, q51done)

// func dotQ4_1Q8_1x16PackedStreamAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ4_1Q8_1x16PackedAVX512 with x's records 8 bytes apart
// (packedScalesQ8_1 with xsHead), not 40, for one token's product, as
// dotQ4_0Q8_0x16PackedStreamAVX512. Whole decoded tokens of the 1B Q4_1
// model, alternating with the 40-byte records in one process: 5.1% faster
// with the cores far apart, 1.3% near.
TEXT ·dotQ4_1Q8_1x16PackedStreamAVX512(SB), NOSPLIT, $0-48
	Q1KERNEL(Q41PAIR, Q41ODD, 8, q41sgroup, q41spair, q41sodd, q41ssum, q41sdone)

// func dotQ5_1Q8_1x16PackedStreamAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ5_1Q8_1x16PackedAVX512 with x's records 8 bytes apart. Whole
// decoded tokens of the 1B Q5_1 model: 11.6% faster far apart, 2.5% near.
TEXT ·dotQ5_1Q8_1x16PackedStreamAVX512(SB), NOSPLIT, $0-48
	Q1KERNEL(Q51PAIR, Q51ODD, 8, q51sgroup, q51spair, q51sodd, q51ssum, q51sdone)

// KLOAD16(c, i) loads word i of chunk c of a packed K-quant super-block
// of 16 rows (at SI) and splits it: the low nibbles (sub-block 2c) in Z12,
// the high ones (2c+1) in Z13.
#define KLOAD16(cs, c, i) \
	VMOVDQU32 (320+cs*c+64*i)(SI), Z12; \
	VPSRLW    $4, Z12, Z13; \
	VPANDD    Z31, Z12, Z12; \
	VPANDD    Z31, Z13, Z13

// K5HB16(mo, c, i) adds Q5_K's fifth bits of word i of chunk c, from the
// super-block's masks at mo(SI) (packK16), to the nibbles KLOAD16 split:
// 16 (Z30) to each byte whose mask bit is set.
#define K5HB16(mo, c, i) \
	KMOVQ  (mo+640*c+16*i)(SI), K1; \
	KMOVQ  (mo+8+640*c+16*i)(SI), K2; \
	VPADDB Z30, Z12, K1, Z12; \
	VPADDB Z30, Z13, K2, Z13

// KDOT16(c, i, l) adds the weights in Z12 (sub-block 2c) and Z13 (2c+1),
// against x's 4 bytes each (x's Q8_K block at DI), in int16 pairs
// (VPMADDUBSW), times the rows' scales of the two sub-blocks as int16
// pairs in Z10 and Z11 (VPDPWSSD), into the int32 lane l: exactly
// sc_2c*(lane i of sub-block 2c) + sc_2c+1*(lane i of 2c+1), as kLanes
// adds them.
#define KDOT16(c, i, l) \
	VPBROADCASTD (4+64*c+4*i)(DI), Z14; \
	VPBROADCASTD (36+64*c+4*i)(DI), Z15; \
	VPMADDUBSW   Z14, Z12, Z12; \
	VPMADDUBSW   Z15, Z13, Z13; \
	VPDPWSSD     Z10, Z12, l; \
	VPDPWSSD     Z11, Z13, l

// Q4KW16(c, i, l) adds word i of chunk c of a packed Q4_K super-block
// into lane l.
#define Q4KW16(c, i, l) \
	KLOAD16(512, c, i); \
	KDOT16(c, i, l)

// Q5KW16(c, i, l) is Q4KW16 for Q5_K, whose masks are at 2048(SI).
#define Q5KW16(c, i, l) \
	KLOAD16(640, c, i); \
	K5HB16(832, c, i); \
	KDOT16(c, i, l)

// KSC16(so, c) leaves the rows' scales of sub-blocks 2c and 2c+1 (bytes,
// sub-block j's 16 at so+16j(SI)), each as the same int16 twice in a word,
// in Z10 and Z11.
#define KSC16(so, c) \
	VPMOVZXBD (so+32*c)(SI), Z10; \
	VPMOVZXBD (so+16+32*c)(SI), Z11; \
	VPSLLD    $16, Z10, Z12; \
	VPSLLD    $16, Z11, Z13; \
	VPORD     Z12, Z10, Z10; \
	VPORD     Z13, Z11, Z11

// Q4KC16(c) adds chunk c's 8 words of a packed Q4_K super-block into the
// lanes Z0-Z7.
#define Q4KC16(c) \
	KSC16(64, c); \
	Q4KW16(c, 0, Z0); \
	Q4KW16(c, 1, Z1); \
	Q4KW16(c, 2, Z2); \
	Q4KW16(c, 3, Z3); \
	Q4KW16(c, 4, Z4); \
	Q4KW16(c, 5, Z5); \
	Q4KW16(c, 6, Z6); \
	Q4KW16(c, 7, Z7)

// Q5KC16(c) is Q4KC16 for Q5_K.
#define Q5KC16(c) \
	KSC16(64, c); \
	Q5KW16(c, 0, Z0); \
	Q5KW16(c, 1, Z1); \
	Q5KW16(c, 2, Z2); \
	Q5KW16(c, 3, Z3); \
	Q5KW16(c, 4, Z4); \
	Q5KW16(c, 5, Z5); \
	Q5KW16(c, 6, Z6); \
	Q5KW16(c, 7, Z7)

// Q4KM16(k, acc) adds the min term of pair k: acc = fma(the rows' -x.d *
// dmin in Z9, float32(m_2k*bsum_2k + m_2k+1*bsum_2k+1), acc), minTerms'
// lane k.
#define Q4KM16(k, acc) \
	VPMOVZXBW     (192+32*k)(SI), Z12; \
	VPXORD        Z13, Z13, Z13; \
	VPDPWSSD.BCST (8+4*k)(BX), Z12, Z13; \
	VCVTDQ2PS     Z13, Z13; \
	VFMADD231PS   Z9, Z13, acc

// Q4KF16(l, acc) adds lane l, as float32, times the rows' d in Z8 into
// acc, as accLanes.
#define Q4KF16(l, acc) \
	VCVTDQ2PS   l, l; \
	VFMADD231PS Z8, l, acc

// KD16(do) leaves the rows' F16 d (at do(SI)) times x's d in Z8, and
// their dmin (at do+32(SI)) times -x.d in Z9 (packedSumsQ8_K's record at
// BX), as the reference's d and dmin.
#define KD16(do) \
	VCVTPH2PS   do(SI), Z8; \
	VMULPS.BCST (BX), Z8, Z8; \
	VCVTPH2PS   do+32(SI), Z9; \
	VMULPS.BCST 4(BX), Z9, Z9

// KLANESZERO zeroes a super-block's int32 lanes (Z0-Z7).
#define KLANESZERO \
	VPXORD Z0, Z0, Z0; \
	VPXORD Z1, Z1, Z1; \
	VPXORD Z2, Z2, Z2; \
	VPXORD Z3, Z3, Z3; \
	VPXORD Z4, Z4, Z4; \
	VPXORD Z5, Z5, Z5; \
	VPXORD Z6, Z6, Z6; \
	VPXORD Z7, Z7, Z7

// KLANESF16 adds a super-block's 8 lanes into the rows' accumulators
// Z16-Z23 (Q4KF16).
#define KLANESF16 \
	Q4KF16(Z0, Z16); \
	Q4KF16(Z1, Z17); \
	Q4KF16(Z2, Z18); \
	Q4KF16(Z3, Z19); \
	Q4KF16(Z4, Z20); \
	Q4KF16(Z5, Z21); \
	Q4KF16(Z6, Z22); \
	Q4KF16(Z7, Z23)

// TOUCH5 prefetches, in order, the 5 lines of a packed K-quant
// super-block's d, dmin, scales and mins, which come first and which the
// kernel reads out of order between its quants (see dotQ6_KQ8_Kx16PackedAVX512).
#define TOUCH5 \
	PREFETCHT0 (SI); \
	PREFETCHT0 64(SI); \
	PREFETCHT0 128(SI); \
	PREFETCHT0 192(SI); \
	PREFETCHT0 256(SI)

// func dotQ4_KQ8_Kx16PackedAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ4_KQ8_K of groups*16 rows packed in groups of 16 (group g's nb
// super-blocks at w + g*nb*q4KPacked: packQ4_K16) into dst[16g+r], with
// x's records from packedSumsQ8_K at xs. Row r keeps the reference's
// accumulators in lane r: acc in Z16-Z23, accM in Z24-Z27, each with its
// fused multiply-adds in order; at the end hsum8 of acc plus (accM[0] +
// accM[2]) + (accM[1] + accM[3]). The int32 lanes of a super-block
// (Z0-Z7) are exact sums, so their order is free.
TEXT ·dotQ4_KQ8_Kx16PackedAVX512(SB), NOSPLIT, $0-48
	NIBARGS
	TESTQ R8, R8
	JEQ   q4kdone
	TESTQ R9, R9
	JEQ   q4kdone

q4kgroup:
	MOVQ   x+16(FP), DI
	MOVQ   xs+24(FP), BX
	MOVQ   R9, CX
	LANES8ZERO
	VXORPS Z24, Z24, Z24
	VXORPS Z25, Z25, Z25
	VXORPS Z26, Z26, Z26
	VXORPS Z27, Z27, Z27

q4kblock:
	TOUCH5
	KD16(0)
	Q4KM16(0, Z24)
	Q4KM16(1, Z25)
	Q4KM16(2, Z26)
	Q4KM16(3, Z27)
	KLANESZERO
	Q4KC16(0)
	Q4KC16(1)
	Q4KC16(2)
	Q4KC16(3)
	KLANESF16
	ADDQ $2368, SI
	ADDQ $292, DI
	ADDQ $32, BX
	DECQ CX
	JNZ  q4kblock

	LANES8SUM
	VADDPS  Z26, Z24, Z24
	VADDPS  Z27, Z25, Z25
	VADDPS  Z25, Z24, Z24
	VADDPS  Z24, Z16, Z16
	VMOVUPS Z16, (DX)
	ADDQ    $64, DX
	DECQ    R8
	JNZ     q4kgroup

q4kdone:
	VZEROUPPER
	RET

// K5M16(mno) adds Q5_K's min terms of a super-block: Z24 = fma(the rows'
// -x.d * dmin in Z9, float32 of the sum of minTerms' four lanes (exact in
// int32, in any order), Z24), as the reference's summs.
#define K5M16(mno) \
	VPXORD        Z13, Z13, Z13; \
	VPMOVZXBW     (mno)(SI), Z12; \
	VPDPWSSD.BCST 8(BX), Z12, Z13; \
	VPMOVZXBW     (mno+32)(SI), Z12; \
	VPDPWSSD.BCST 12(BX), Z12, Z13; \
	VPMOVZXBW     (mno+64)(SI), Z12; \
	VPDPWSSD.BCST 16(BX), Z12, Z13; \
	VPMOVZXBW     (mno+96)(SI), Z12; \
	VPDPWSSD.BCST 20(BX), Z12, Z13; \
	VCVTDQ2PS     Z13, Z13; \
	VFMADD231PS   Z9, Z13, Z24

// func dotQ5_KQ8_Kx16PackedAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ5_KQ8_K of groups*16 rows packed in groups of 16 (group g's nb
// super-blocks at w + g*nb*q5KPacked: packK16) into dst[16g+r], as
// dotQ4_KQ8_Kx16PackedAVX512 with the fifth bits added under their masks
// and the mins in one float32 sum per row (Z24), added after hsum8.
TEXT ·dotQ5_KQ8_Kx16PackedAVX512(SB), NOSPLIT, $0-48
	NIBARGS
	TESTQ R8, R8
	JEQ   q5kdone
	TESTQ R9, R9
	JEQ   q5kdone

q5kgroup:
	MOVQ   x+16(FP), DI
	MOVQ   xs+24(FP), BX
	MOVQ   R9, CX
	LANES8ZERO
	VXORPS Z24, Z24, Z24

q5kblock:
	TOUCH5
	KD16(0)
	K5M16(192)
	KLANESZERO
	Q5KC16(0)
	Q5KC16(1)
	Q5KC16(2)
	Q5KC16(3)
	KLANESF16
	ADDQ $2880, SI
	ADDQ $292, DI
	ADDQ $32, BX
	DECQ CX
	JNZ  q5kblock

	LANES8SUM
	VADDPS  Z24, Z16, Z16
	VMOVUPS Z16, (DX)
	ADDQ    $64, DX
	DECQ    R8
	JNZ     q5kgroup

q5kdone:
	VZEROUPPER
	RET

// F16X32STEP is one step of the F16 rows kernels: 32 halves of weights at
// R11 widened and multiplied by the 32 floats of x at DI into Z0 and Z2,
// both pointers moved on, CX counted down by 32.
#define F16X32STEP \
	VCVTPH2PS   (R11), Z4; \
	VCVTPH2PS   32(R11), Z6; \
	VFMADD231PS (DI), Z4, Z0; \
	VFMADD231PS 64(DI), Z6, Z2; \
	ADDQ        $64, R11; \
	ADDQ        $128, DI; \
	SUBQ        $32, CX

// F16X256STEP is eight F16X32STEPs in one: 256 halves of weights at R11
// widened into Z4-Z18 (even), each multiplied by its 16 floats of x at DI
// into Z0 and Z2 in F16X32STEP's order, both pointers moved on (CX is
// left to the caller). 4.6 instructions a 64-byte line of weights
// instead of 7: the reorder buffer reaches further ahead of the FMA chains
// to start the next lines' loads, which is what a core streaming from far
// memory runs short of. Whole decoded tokens of the 1B F16 model,
// alternating with the loop of single steps in one process (323 tokens
// each, the host's cores far apart): a median 90.3% of the paired
// roofline against 89.0%; four steps at once, 90.0%; near, 97.6% for all.
#define F16X256STEP \
	F16X128HALF(0); \
	F16X128HALF(256); \
	ADDQ $512, R11; \
	ADDQ $1024, DI

// F16X128HALF(o) is half of F16X256STEP: the 128 halves at o(R11) against
// the floats at 2*o(DI).
#define F16X128HALF(o) \
	VCVTPH2PS   (o)(R11), Z4; \
	VCVTPH2PS   (o+32)(R11), Z6; \
	VCVTPH2PS   (o+64)(R11), Z8; \
	VCVTPH2PS   (o+96)(R11), Z10; \
	VCVTPH2PS   (o+128)(R11), Z12; \
	VCVTPH2PS   (o+160)(R11), Z14; \
	VCVTPH2PS   (o+192)(R11), Z16; \
	VCVTPH2PS   (o+224)(R11), Z18; \
	VFMADD231PS (2*o)(DI), Z4, Z0; \
	VFMADD231PS (2*o+64)(DI), Z6, Z2; \
	VFMADD231PS (2*o+128)(DI), Z8, Z0; \
	VFMADD231PS (2*o+192)(DI), Z10, Z2; \
	VFMADD231PS (2*o+256)(DI), Z12, Z0; \
	VFMADD231PS (2*o+320)(DI), Z14, Z2; \
	VFMADD231PS (2*o+384)(DI), Z16, Z0; \
	VFMADD231PS (2*o+448)(DI), Z18, Z2

// F16ROWSUM(za, zc, ya, yb, yc, yd, xa, xb) reduces a row of the F16
// rows kernels, its accumulators za = [ya | yb] and zc = [yc | yd] (the
// AVX2 kernel's four), in REDUCE32's order, to lane 0 of xa. Clobbers yb,
// yc, yd and xb.
#define F16ROWSUM(za, zc, ya, yb, yc, yd, xa, xb) \
	VEXTRACTF32X8 $1, za, yb; \
	VEXTRACTF32X8 $1, zc, yd; \
	VADDPS        yc, ya, ya; \
	VADDPS        yd, yb, yb; \
	VADDPS        yb, ya, ya; \
	VEXTRACTF128  $1, ya, xb; \
	VADDPS        xb, xa, xa; \
	VHADDPS       xa, xa, xa; \
	VHADDPS       xa, xa, xa

// func dotF16X32RowsAVX512(dst *float32, w *byte, rb int, x *float32, n, rows int)
//
// dotF16X32AVX2 of rows consecutive rows (row r at w + r*rb) into dst[r],
// in one call. Z0 holds the AVX2 kernel's accumulators Y0 and Y1 side by
// side and Z2 its Y2 and Y3: 16 halves widen into the two 8-lane halves of
// a Z register as the AVX2 kernel widens them into two Y registers, so
// every lane gets the same fused multiply-adds in the same order, and the
// end reduces the four in REDUCE32's order. Half the loads and arithmetic
// instructions per byte of weights. n is a multiple of 32.
TEXT ·dotF16X32RowsAVX512(SB), NOSPLIT, $0-48
	MOVQ  dst+0(FP), DX
	MOVQ  w+8(FP), SI
	MOVQ  rb+16(FP), R8
	MOVQ  x+24(FP), R9
	MOVQ  n+32(FP), R10
	MOVQ  rows+40(FP), BX
	TESTQ BX, BX
	JEQ   zrowsdone

zrowsrow:
	MOVQ   SI, R11
	MOVQ   R9, DI
	MOVQ   R10, CX
	VXORPS Z0, Z0, Z0
	VXORPS Z2, Z2, Z2
	SUBQ   $256, CX
	JB     zrowstail

zrowsloop8:
	F16X256STEP
	SUBQ $256, CX
	JAE  zrowsloop8

zrowstail:
	ADDQ $256, CX
	JEQ  zrowsreduce

zrowsloop:
	F16X32STEP
	JNZ         zrowsloop

zrowsreduce:
	F16ROWSUM(Z0, Z2, Y0, Y1, Y2, Y3, X0, X1)
	MOVSS X0, (DX)
	ADDQ          $4, DX
	ADDQ          R8, SI
	DECQ          BX
	JNZ           zrowsrow

zrowsdone:
	VZEROUPPER
	RET

// func dotF16X32Rows2TokAVX512(dst *float32, ldd int, w *byte, rb int, x *float32, xrb int, n, rows int)
//
// dotF16X32RowsAVX512 for two tokens at once: x at x (token 0) and x +
// xrb bytes (token 1), row r's results at dst + 4r and dst + ldd bytes +
// 4r. Each row is read once for both, and each token's two accumulators
// (Z0, Z2 and Z1, Z3) get F16X32STEP's multiply-adds in its order, so the
// results are bitwise the one-token kernel's. Four chains a step instead
// of two: the multiply-adds no longer wait on each other's latency.
TEXT ·dotF16X32Rows2TokAVX512(SB), NOSPLIT, $0-64
	MOVQ  dst+0(FP), DX
	MOVQ  ldd+8(FP), R13
	MOVQ  w+16(FP), SI
	MOVQ  rb+24(FP), R8
	MOVQ  x+32(FP), R9
	MOVQ  xrb+40(FP), R12
	MOVQ  n+48(FP), R10
	MOVQ  rows+56(FP), BX
	TESTQ BX, BX
	JEQ   z2tdone

z2trow:
	MOVQ   SI, R11
	MOVQ   R9, DI
	LEAQ   (R9)(R12*1), R14
	MOVQ   R10, CX
	VXORPS Z0, Z0, Z0
	VXORPS Z2, Z2, Z2
	VXORPS Z1, Z1, Z1
	VXORPS Z3, Z3, Z3
	TESTQ  CX, CX
	JEQ    z2treduce

z2tloop:
	VCVTPH2PS   (R11), Z4
	VCVTPH2PS   32(R11), Z6
	VFMADD231PS (DI), Z4, Z0
	VFMADD231PS 64(DI), Z6, Z2
	VFMADD231PS (R14), Z4, Z1
	VFMADD231PS 64(R14), Z6, Z3
	ADDQ        $64, R11
	ADDQ        $128, DI
	ADDQ        $128, R14
	SUBQ        $32, CX
	JNZ         z2tloop

z2treduce:
	F16ROWSUM(Z1, Z3, Y1, Y4, Y3, Y5, X1, X4)
	MOVSS X1, (DX)(R13*1)
	F16ROWSUM(Z0, Z2, Y0, Y1, Y2, Y3, X0, X1)
	MOVSS X0, (DX)
	ADDQ          $4, DX
	ADDQ          R8, SI
	DECQ          BX
	JNZ           z2trow

z2tdone:
	VZEROUPPER
	RET

// func sgemmF16X32Acc4x6AVX512(acc *float32, w *byte, rb int, x *byte, xrb int, steps int)
//
// sgemmF16X32Acc2x6AVX2 for two pairs of weight rows at once (w, w+rb and
// w+2rb, w+3rb; the second pair's accumulators at acc + 384 bytes). A
// pair's two 8-lane accumulators of token i lie side by side at acc +
// 64*i, so one Z register holds both: the pair's weights go into it
// widened as [row 0 | row 1] and each token's 8 activations are broadcast
// into both halves, and every lane gets the same fused multiply-adds in
// the same order as on the AVX2 tiles.
TEXT ·sgemmF16X32Acc4x6AVX512(SB), NOSPLIT, $0-48
	MOVQ acc+0(FP), DX
	MOVQ w+8(FP), SI
	MOVQ rb+16(FP), R9
	MOVQ x+24(FP), DI
	MOVQ xrb+32(FP), R10
	MOVQ steps+40(FP), CX
	LEAQ (R10)(R10*2), R11
	LEAQ (R10)(R10*4), R12
	LEAQ (SI)(R9*2), R13
	VMOVUPS 0(DX), Z0
	VMOVUPS 64(DX), Z1
	VMOVUPS 128(DX), Z2
	VMOVUPS 192(DX), Z3
	VMOVUPS 256(DX), Z4
	VMOVUPS 320(DX), Z5
	VMOVUPS 384(DX), Z6
	VMOVUPS 448(DX), Z7
	VMOVUPS 512(DX), Z8
	VMOVUPS 576(DX), Z9
	VMOVUPS 640(DX), Z10
	VMOVUPS 704(DX), Z11
	TESTQ CX, CX
	JEQ   a46done

a46loop:
	VMOVDQU         (SI), X12
	VINSERTI128     $1, (SI)(R9*1), Y12, Y12
	VCVTPH2PS       Y12, Z12
	VMOVDQU         (R13), X13
	VINSERTI128     $1, (R13)(R9*1), Y13, Y13
	VCVTPH2PS       Y13, Z13
	VBROADCASTF32X8 (DI), Z14
	VFMADD231PS     Z14, Z12, Z0
	VFMADD231PS     Z14, Z13, Z6
	VBROADCASTF32X8 (DI)(R10*1), Z15
	VFMADD231PS     Z15, Z12, Z1
	VFMADD231PS     Z15, Z13, Z7
	VBROADCASTF32X8 (DI)(R10*2), Z14
	VFMADD231PS     Z14, Z12, Z2
	VFMADD231PS     Z14, Z13, Z8
	VBROADCASTF32X8 (DI)(R11*1), Z15
	VFMADD231PS     Z15, Z12, Z3
	VFMADD231PS     Z15, Z13, Z9
	VBROADCASTF32X8 (DI)(R10*4), Z14
	VFMADD231PS     Z14, Z12, Z4
	VFMADD231PS     Z14, Z13, Z10
	VBROADCASTF32X8 (DI)(R12*1), Z15
	VFMADD231PS     Z15, Z12, Z5
	VFMADD231PS     Z15, Z13, Z11
	ADDQ            $16, SI
	ADDQ            $16, R13
	ADDQ            $32, DI
	DECQ            CX
	JNZ             a46loop

a46done:
	VMOVUPS Z0, 0(DX)
	VMOVUPS Z1, 64(DX)
	VMOVUPS Z2, 128(DX)
	VMOVUPS Z3, 192(DX)
	VMOVUPS Z4, 256(DX)
	VMOVUPS Z5, 320(DX)
	VMOVUPS Z6, 384(DX)
	VMOVUPS Z7, 448(DX)
	VMOVUPS Z8, 512(DX)
	VMOVUPS Z9, 576(DX)
	VMOVUPS Z10, 640(DX)
	VMOVUPS Z11, 704(DX)
	VZEROUPPER
	RET

// P86FMAS is one step of sgemmPairs8x6AVX512's fused multiply-adds: the
// four pairs' widened weights in Z24-Z27 times each of the 6 tokens'
// broadcast activations at DI + t*xrb, into Z0-Z23.
#define P86FMAS \
	VBROADCASTF32X8 (DI), Z28; \
	VFMADD231PS Z28, Z24, Z0; \
	VFMADD231PS Z28, Z25, Z6; \
	VFMADD231PS Z28, Z26, Z12; \
	VFMADD231PS Z28, Z27, Z18; \
	VBROADCASTF32X8 (DI)(R10*1), Z29; \
	VFMADD231PS Z29, Z24, Z1; \
	VFMADD231PS Z29, Z25, Z7; \
	VFMADD231PS Z29, Z26, Z13; \
	VFMADD231PS Z29, Z27, Z19; \
	VBROADCASTF32X8 (DI)(R10*2), Z28; \
	VFMADD231PS Z28, Z24, Z2; \
	VFMADD231PS Z28, Z25, Z8; \
	VFMADD231PS Z28, Z26, Z14; \
	VFMADD231PS Z28, Z27, Z20; \
	VBROADCASTF32X8 (DI)(R11*1), Z29; \
	VFMADD231PS Z29, Z24, Z3; \
	VFMADD231PS Z29, Z25, Z9; \
	VFMADD231PS Z29, Z26, Z15; \
	VFMADD231PS Z29, Z27, Z21; \
	VBROADCASTF32X8 (DI)(R10*4), Z28; \
	VFMADD231PS Z28, Z24, Z4; \
	VFMADD231PS Z28, Z25, Z10; \
	VFMADD231PS Z28, Z26, Z16; \
	VFMADD231PS Z28, Z27, Z22; \
	VBROADCASTF32X8 (DI)(R12*1), Z29; \
	VFMADD231PS Z29, Z24, Z5; \
	VFMADD231PS Z29, Z25, Z11; \
	VFMADD231PS Z29, Z26, Z17; \
	VFMADD231PS Z29, Z27, Z23

// P86MULADDS is P86FMAS with each product rounded before it is added
// (VMULPS, then VADDPS), as llama.cpp's BF16 sums are: a product of two
// bf16s can underflow or overflow, so a fused multiply-add would differ.
#define P86MULADDS \
	VBROADCASTF32X8 (DI), Z28; \
	VMULPS Z28, Z24, Z30; \
	VADDPS Z30, Z0, Z0; \
	VMULPS Z28, Z25, Z31; \
	VADDPS Z31, Z6, Z6; \
	VMULPS Z28, Z26, Z30; \
	VADDPS Z30, Z12, Z12; \
	VMULPS Z28, Z27, Z31; \
	VADDPS Z31, Z18, Z18; \
	VBROADCASTF32X8 (DI)(R10*1), Z29; \
	VMULPS Z29, Z24, Z30; \
	VADDPS Z30, Z1, Z1; \
	VMULPS Z29, Z25, Z31; \
	VADDPS Z31, Z7, Z7; \
	VMULPS Z29, Z26, Z30; \
	VADDPS Z30, Z13, Z13; \
	VMULPS Z29, Z27, Z31; \
	VADDPS Z31, Z19, Z19; \
	VBROADCASTF32X8 (DI)(R10*2), Z28; \
	VMULPS Z28, Z24, Z30; \
	VADDPS Z30, Z2, Z2; \
	VMULPS Z28, Z25, Z31; \
	VADDPS Z31, Z8, Z8; \
	VMULPS Z28, Z26, Z30; \
	VADDPS Z30, Z14, Z14; \
	VMULPS Z28, Z27, Z31; \
	VADDPS Z31, Z20, Z20; \
	VBROADCASTF32X8 (DI)(R11*1), Z29; \
	VMULPS Z29, Z24, Z30; \
	VADDPS Z30, Z3, Z3; \
	VMULPS Z29, Z25, Z31; \
	VADDPS Z31, Z9, Z9; \
	VMULPS Z29, Z26, Z30; \
	VADDPS Z30, Z15, Z15; \
	VMULPS Z29, Z27, Z31; \
	VADDPS Z31, Z21, Z21; \
	VBROADCASTF32X8 (DI)(R10*4), Z28; \
	VMULPS Z28, Z24, Z30; \
	VADDPS Z30, Z4, Z4; \
	VMULPS Z28, Z25, Z31; \
	VADDPS Z31, Z10, Z10; \
	VMULPS Z28, Z26, Z30; \
	VADDPS Z30, Z16, Z16; \
	VMULPS Z28, Z27, Z31; \
	VADDPS Z31, Z22, Z22; \
	VBROADCASTF32X8 (DI)(R12*1), Z29; \
	VMULPS Z29, Z24, Z30; \
	VADDPS Z30, Z5, Z5; \
	VMULPS Z29, Z25, Z31; \
	VADDPS Z31, Z11, Z11; \
	VMULPS Z29, Z26, Z30; \
	VADDPS Z30, Z17, Z17; \
	VMULPS Z29, Z27, Z31; \
	VADDPS Z31, Z23, Z23

// P86WIDENBF16 widens the four pairs of BF16 rows of sgemmPairs8x6AVX512's
// step (pair p's two rows at AX or R8 plus 0, R14, 2*R14 or R15) by a
// 16-bit shift into Z24-Z27, and stores them at SI plus 0, R9, 2*R9, R13.
#define P86WIDENBF16 \
	VMOVDQU32 (AX), X24; \
	VINSERTI32X4 $1, (AX)(R14*1), Y24, Y24; \
	VPMOVZXWD Y24, Z24; \
	VPSLLD $16, Z24, Z24; \
	VMOVUPS Z24, (SI); \
	VMOVDQU32 (AX)(R14*2), X25; \
	VINSERTI32X4 $1, (AX)(R15*1), Y25, Y25; \
	VPMOVZXWD Y25, Z25; \
	VPSLLD $16, Z25, Z25; \
	VMOVUPS Z25, (SI)(R9*1); \
	VMOVDQU32 (R8), X26; \
	VINSERTI32X4 $1, (R8)(R14*1), Y26, Y26; \
	VPMOVZXWD Y26, Z26; \
	VPSLLD $16, Z26, Z26; \
	VMOVUPS Z26, (SI)(R9*2); \
	VMOVDQU32 (R8)(R14*2), X27; \
	VINSERTI32X4 $1, (R8)(R15*1), Y27, Y27; \
	VPMOVZXWD Y27, Z27; \
	VPSLLD $16, Z27, Z27; \
	VMOVUPS Z27, (SI)(R13*1)

// func sgemmPairs8x6AVX512(acc *float32, w *float32, ps int, x *byte, xrb int, steps int, fresh int, pf *byte, src *byte, rb int, mode int)
//
// sgemmF16X32Acc4x6AVX512 for four pairs of rows (24 Z accumulators, pair
// p's at acc + 384p bytes) over weights widened to float32 and interleaved
// (pair p's steps at w + p*ps bytes, each step the pair's first row's 8
// columns, then its second's): one load a pair and step, each token's
// broadcast activations shared by 8 rows, the same fused multiply-adds in
// the same order. With fresh != 0 the accumulators start at zero instead
// of being loaded from acc. Each step also prefetches one line, at pf +
// 64*step: the caller points it at the weights it widens next. With src
// != nil the loop widens the weights first: the 8 F16 rows at src + i*rb,
// 16 bytes a step, are widened into w as it goes (VCVTPH2PS is exact, so
// the products are the same), their reads and stores overlapping the
// arithmetic. With mode&tileBF16 the weights are BF16 (widened by a 16-bit
// shift); with mode&tileMulAdd (BF16 only) each product is rounded before
// it is added (P86MULADDS).
TEXT ·sgemmPairs8x6AVX512(SB), NOSPLIT, $0-88
	MOVQ acc+0(FP), DX
	MOVQ w+8(FP), SI
	MOVQ ps+16(FP), R9
	MOVQ x+24(FP), DI
	MOVQ xrb+32(FP), R10
	MOVQ steps+40(FP), CX
	LEAQ (R10)(R10*2), R11
	LEAQ (R10)(R10*4), R12
	LEAQ (R9)(R9*2), R13
	MOVQ pf+56(FP), BX
	MOVQ fresh+48(FP), AX
	TESTQ AX, AX
	JNE   p86zero
	VMOVUPS 0(DX), Z0
	VMOVUPS 64(DX), Z1
	VMOVUPS 128(DX), Z2
	VMOVUPS 192(DX), Z3
	VMOVUPS 256(DX), Z4
	VMOVUPS 320(DX), Z5
	VMOVUPS 384(DX), Z6
	VMOVUPS 448(DX), Z7
	VMOVUPS 512(DX), Z8
	VMOVUPS 576(DX), Z9
	VMOVUPS 640(DX), Z10
	VMOVUPS 704(DX), Z11
	VMOVUPS 768(DX), Z12
	VMOVUPS 832(DX), Z13
	VMOVUPS 896(DX), Z14
	VMOVUPS 960(DX), Z15
	VMOVUPS 1024(DX), Z16
	VMOVUPS 1088(DX), Z17
	VMOVUPS 1152(DX), Z18
	VMOVUPS 1216(DX), Z19
	VMOVUPS 1280(DX), Z20
	VMOVUPS 1344(DX), Z21
	VMOVUPS 1408(DX), Z22
	VMOVUPS 1472(DX), Z23
	JMP p86start

p86zero:
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	VXORPS Z4, Z4, Z4
	VXORPS Z5, Z5, Z5
	VXORPS Z6, Z6, Z6
	VXORPS Z7, Z7, Z7
	VXORPS Z8, Z8, Z8
	VXORPS Z9, Z9, Z9
	VXORPS Z10, Z10, Z10
	VXORPS Z11, Z11, Z11
	VXORPS Z12, Z12, Z12
	VXORPS Z13, Z13, Z13
	VXORPS Z14, Z14, Z14
	VXORPS Z15, Z15, Z15
	VXORPS Z16, Z16, Z16
	VXORPS Z17, Z17, Z17
	VXORPS Z18, Z18, Z18
	VXORPS Z19, Z19, Z19
	VXORPS Z20, Z20, Z20
	VXORPS Z21, Z21, Z21
	VXORPS Z22, Z22, Z22
	VXORPS Z23, Z23, Z23

p86start:
	TESTQ CX, CX
	JEQ   p86done
	MOVQ  src+64(FP), AX
	MOVQ  rb+72(FP), R14
	LEAQ  (R14)(R14*2), R15
	LEAQ  (AX)(R14*4), R8
	MOVQ  mode+80(FP), R9
	TESTQ $2, R9 // tileMulAdd
	JNE   p86muladd
	TESTQ AX, AX
	JEQ   p86plain
	TESTQ $1, R9 // tileBF16
	JNE   p86bwf
p86plain:
	MOVQ  ps+16(FP), R9
	TESTQ AX, AX
	JEQ   p86loop

p86wloop:
	PREFETCHT1      (BX)
	VMOVDQU32       (AX), X24
	VINSERTI32X4    $1, (AX)(R14*1), Y24, Y24
	VCVTPH2PS       Y24, Z24
	VMOVUPS         Z24, (SI)
	VMOVDQU32       (AX)(R14*2), X25
	VINSERTI32X4    $1, (AX)(R15*1), Y25, Y25
	VCVTPH2PS       Y25, Z25
	VMOVUPS         Z25, (SI)(R9*1)
	VMOVDQU32       (R8), X26
	VINSERTI32X4    $1, (R8)(R14*1), Y26, Y26
	VCVTPH2PS       Y26, Z26
	VMOVUPS         Z26, (SI)(R9*2)
	VMOVDQU32       (R8)(R14*2), X27
	VINSERTI32X4    $1, (R8)(R15*1), Y27, Y27
	VCVTPH2PS       Y27, Z27
	VMOVUPS         Z27, (SI)(R13*1)
	P86FMAS
	ADDQ            $16, AX
	ADDQ            $16, R8
	ADDQ            $64, SI
	ADDQ            $32, DI
	ADDQ            $64, BX
	DECQ            CX
	JNZ             p86wloop
	JMP             p86done

p86loop:
	PREFETCHT1 (BX)
	VMOVUPS (SI), Z24
	VMOVUPS (SI)(R9*1), Z25
	VMOVUPS (SI)(R9*2), Z26
	VMOVUPS (SI)(R13*1), Z27
	P86FMAS
	ADDQ            $64, SI
	ADDQ            $32, DI
	ADDQ            $64, BX
	DECQ            CX
	JNZ             p86loop
	JMP             p86done

p86muladd:
	MOVQ  ps+16(FP), R9
	TESTQ AX, AX
	JEQ   p86bloop

p86bwloop:
	PREFETCHT1      (BX)
	P86WIDENBF16
	P86MULADDS
	ADDQ            $16, AX
	ADDQ            $16, R8
	ADDQ            $64, SI
	ADDQ            $32, DI
	ADDQ            $64, BX
	DECQ            CX
	JNZ             p86bwloop
	JMP             p86done

p86bwf:
	MOVQ ps+16(FP), R9

p86bwfloop:
	PREFETCHT1      (BX)
	P86WIDENBF16
	P86FMAS
	ADDQ            $16, AX
	ADDQ            $16, R8
	ADDQ            $64, SI
	ADDQ            $32, DI
	ADDQ            $64, BX
	DECQ            CX
	JNZ             p86bwfloop
	JMP             p86done

p86bloop:
	PREFETCHT1 (BX)
	VMOVUPS (SI), Z24
	VMOVUPS (SI)(R9*1), Z25
	VMOVUPS (SI)(R9*2), Z26
	VMOVUPS (SI)(R13*1), Z27
	P86MULADDS
	ADDQ            $64, SI
	ADDQ            $32, DI
	ADDQ            $64, BX
	DECQ            CX
	JNZ             p86bloop

p86done:
	VMOVUPS Z0, 0(DX)
	VMOVUPS Z1, 64(DX)
	VMOVUPS Z2, 128(DX)
	VMOVUPS Z3, 192(DX)
	VMOVUPS Z4, 256(DX)
	VMOVUPS Z5, 320(DX)
	VMOVUPS Z6, 384(DX)
	VMOVUPS Z7, 448(DX)
	VMOVUPS Z8, 512(DX)
	VMOVUPS Z9, 576(DX)
	VMOVUPS Z10, 640(DX)
	VMOVUPS Z11, 704(DX)
	VMOVUPS Z12, 768(DX)
	VMOVUPS Z13, 832(DX)
	VMOVUPS Z14, 896(DX)
	VMOVUPS Z15, 960(DX)
	VMOVUPS Z16, 1024(DX)
	VMOVUPS Z17, 1088(DX)
	VMOVUPS Z18, 1152(DX)
	VMOVUPS Z19, 1216(DX)
	VMOVUPS Z20, 1280(DX)
	VMOVUPS Z21, 1344(DX)
	VMOVUPS Z22, 1408(DX)
	VMOVUPS Z23, 1472(DX)
	VZEROUPPER
	RET

// func sgemmPairs8x2AVX512(acc *float32, w *float32, ps int, x *byte, xrb int, steps int, fresh int, mode int)
//
// sgemmPairs8x6AVX512 for two tokens (at x and x + xrb), over weights
// already widened: the tail of a prompt whose length is not a multiple of
// 6, instead of a 6-token tile that computes some tokens again. Pair p's
// two accumulators are at acc + 384p and acc + 384p + 64 bytes, two token
// slots of sgemmPairs8x6AVX512's; each gets the same fused multiply-adds in
// the same order (with mode&tileMulAdd, multiplies and adds, as P86MULADDS).
TEXT ·sgemmPairs8x2AVX512(SB), NOSPLIT, $0-64
	MOVQ  acc+0(FP), DX
	MOVQ  w+8(FP), SI
	MOVQ  ps+16(FP), R9
	MOVQ  x+24(FP), DI
	MOVQ  xrb+32(FP), R10
	MOVQ  steps+40(FP), CX
	LEAQ  (R9)(R9*2), R13
	MOVQ  fresh+48(FP), AX
	TESTQ AX, AX
	JNE   p82zero
	VMOVUPS 0(DX), Z0
	VMOVUPS 64(DX), Z1
	VMOVUPS 384(DX), Z2
	VMOVUPS 448(DX), Z3
	VMOVUPS 768(DX), Z4
	VMOVUPS 832(DX), Z5
	VMOVUPS 1152(DX), Z6
	VMOVUPS 1216(DX), Z7
	JMP     p82start

p82zero:
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	VXORPS Z4, Z4, Z4
	VXORPS Z5, Z5, Z5
	VXORPS Z6, Z6, Z6
	VXORPS Z7, Z7, Z7

p82start:
	TESTQ CX, CX
	JEQ   p82done
	MOVQ  mode+56(FP), AX
	TESTQ $2, AX // tileMulAdd
	JNE   p82bloop

p82loop:
	VMOVUPS         (SI), Z24
	VMOVUPS         (SI)(R9*1), Z25
	VMOVUPS         (SI)(R9*2), Z26
	VMOVUPS         (SI)(R13*1), Z27
	VBROADCASTF32X8 (DI), Z28
	VBROADCASTF32X8 (DI)(R10*1), Z29
	VFMADD231PS     Z28, Z24, Z0
	VFMADD231PS     Z29, Z24, Z1
	VFMADD231PS     Z28, Z25, Z2
	VFMADD231PS     Z29, Z25, Z3
	VFMADD231PS     Z28, Z26, Z4
	VFMADD231PS     Z29, Z26, Z5
	VFMADD231PS     Z28, Z27, Z6
	VFMADD231PS     Z29, Z27, Z7
	ADDQ            $64, SI
	ADDQ            $32, DI
	DECQ            CX
	JNZ             p82loop
	JMP             p82done

p82bloop:
	VMOVUPS         (SI), Z24
	VMOVUPS         (SI)(R9*1), Z25
	VMOVUPS         (SI)(R9*2), Z26
	VMOVUPS         (SI)(R13*1), Z27
	VBROADCASTF32X8 (DI), Z28
	VBROADCASTF32X8 (DI)(R10*1), Z29
	VMULPS          Z28, Z24, Z30
	VADDPS          Z30, Z0, Z0
	VMULPS          Z29, Z24, Z31
	VADDPS          Z31, Z1, Z1
	VMULPS          Z28, Z25, Z30
	VADDPS          Z30, Z2, Z2
	VMULPS          Z29, Z25, Z31
	VADDPS          Z31, Z3, Z3
	VMULPS          Z28, Z26, Z30
	VADDPS          Z30, Z4, Z4
	VMULPS          Z29, Z26, Z31
	VADDPS          Z31, Z5, Z5
	VMULPS          Z28, Z27, Z30
	VADDPS          Z30, Z6, Z6
	VMULPS          Z29, Z27, Z31
	VADDPS          Z31, Z7, Z7
	ADDQ            $64, SI
	ADDQ            $32, DI
	DECQ            CX
	JNZ             p82bloop

p82done:
	VMOVUPS Z0, 0(DX)
	VMOVUPS Z1, 64(DX)
	VMOVUPS Z2, 384(DX)
	VMOVUPS Z3, 448(DX)
	VMOVUPS Z4, 768(DX)
	VMOVUPS Z5, 832(DX)
	VMOVUPS Z6, 1152(DX)
	VMOVUPS Z7, 1216(DX)
	VZEROUPPER
	RET

// func dotQ4_0Q8_0x16PackedTok4AVX512(dst *float32, ldd int, w *byte, x *byte, xrb int, xs *byte, xsb int, nb int)
//
// dotQ4_0Q8_0x16PackedAVX512 of one group of 16 rows for four tokens, for a
// prompt: token t's activations at x + t*xrb, their sums at xs + t*xsb,
// its 16 results at dst + t*ldd floats. Each block's nibbles are unpacked
// once for the four tokens (a third of a block's vector operations per
// token); every token's results are bitwise the one-token kernel's.
TEXT ·dotQ4_0Q8_0x16PackedTok4AVX512(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DX
	MOVQ ldd+8(FP), R8
	SHLQ $2, R8
	MOVQ w+16(FP), SI
	MOVQ x+24(FP), DI
	MOVQ xrb+32(FP), AX
	LEAQ (DI)(AX*1), R10
	LEAQ (R10)(AX*1), R11
	LEAQ (R11)(AX*1), R12
	MOVQ xs+40(FP), BX
	MOVQ xsb+48(FP), AX
	LEAQ (BX)(AX*1), R13
	LEAQ (R13)(AX*1), R14
	LEAQ (R14)(AX*1), R15
	MOVQ nb+56(FP), R9
	MOVL         $0x0f0f0f0f, AX
	VPBROADCASTD AX, Z31
	VXORPS Z0, Z0, Z0
	VXORPS Z13, Z13, Z13
	VXORPS Z14, Z14, Z14
	VXORPS Z15, Z15, Z15
	MOVQ R9, CX
	SHRQ $1, CX // pairs of blocks
	JEQ  t4odd

t4pair:
	Q4B16T4(0, 512, 0, 0)
	Q4B16T4(256, 544, 34, 40)
	ADDQ $576, SI
	ADDQ $68, DI
	ADDQ $68, R10
	ADDQ $68, R11
	ADDQ $68, R12
	ADDQ $80, BX
	ADDQ $80, R13
	ADDQ $80, R14
	ADDQ $80, R15
	DECQ CX
	JNZ  t4pair

t4odd:
	TESTQ $1, R9
	JEQ   t4store
	Q4B16T4(0, 256, 0, 0)

t4store:
	LEAQ    (R8)(R8*2), AX
	VMOVUPS Z0, (DX)
	VMOVUPS Z13, (DX)(R8*1)
	VMOVUPS Z14, (DX)(R8*2)
	VMOVUPS Z15, (DX)(AX*1)
	VZEROUPPER
	RET

// Q6S4(so, j) loads the scales of sub-blocks j, j+2, j+4 and j+6 of a
// Q6_K super-block of 16 rows (at so(SI), packQ6K16) into Z8-Z11: each
// row's int8 scale as an int16 in the low half of its dword, the high half
// zero, for VPDPWSSD. Clobbers Y12.
#define Q6S4(so, j) \
	VPMOVSXBW (so+16*(j))(SI), Y12; \
	VPMOVZXWD Y12, Z8; \
	VPMOVSXBW (so+16*(j)+32)(SI), Y12; \
	VPMOVZXWD Y12, Z9; \
	VPMOVSXBW (so+16*(j)+64)(SI), Y12; \
	VPMOVZXWD Y12, Z10; \
	VPMOVSXBW (so+16*(j)+96)(SI), Y12; \
	VPMOVZXWD Y12, Z11

// Q6C(q, xo, xso, g, S, L) adds chunk-word g (elements 4g..4g+3 of the
// super-block) of 16 rows, their 6-bit weights q in the bytes of q, into
// L: Z28 = -32*(sum of x's 4 bytes), the int16 at xso+2g(BX), plus the
// products of q and x's bytes (at xo(DI)), is the exact sum of (q-32)*x
// over the 4 elements (within [-16256, 16384]: an int16), and VPDPWSSD
// adds it times the rows' scales in S to L. The int16 is broadcast as the
// low half of a dword whose high half is the next word's: the sum's low
// half is then exact all the same, carries only reach the high half, and
// VPDPWSSD multiplies that by the scales' high halves, which are zero.
#define Q6C(q, xo, xso, g, S, L) \
	VPBROADCASTD  (xso+2*(g))(BX), Z28; \
	VPDPBUSD.BCST (xo+4+4*(g))(DI), q, Z28; \
	VPDPWSSD      S, Z28, L

// Q6W(qo, xo, xso, n, i, L) adds word i of half n of a Q6_K super-block of
// 16 rows (quants at qo(SI)) into the lane L (the reference's lane i):
// elements 128n+32k+4i.. of the four chunks k. With A and B the word's ql
// bytes (chunks 0 and 2, 1 and 3) and H its qh bytes, M = H & 0x33 holds
// chunk 0's high bits in bits 0-1 and chunk 2's in bits 4-5, M' = (H>>2) &
// 0x33 chunk 1's and chunk 3's; chunk 0's q is A's low nibble under M<<4's
// high one, chunk 2's A>>4's low nibble under M's high one (VPTERNLOGD
// 0xe4: Z31 ? first : second), 1's and 3's alike from B and M'. The
// scales of the four chunks' sub-blocks are in Z8-Z11 (Q6S4).
#define Q6W(qo, xo, xso, n, i, L) \
	VMOVDQU32  (qo+1536*n+192*i)(SI), Z12; \
	VMOVDQU32  (qo+1536*n+192*i+64)(SI), Z13; \
	VMOVDQU32  (qo+1536*n+192*i+128)(SI), Z14; \
	VPSRLW     $4, Z12, Z26; \
	VPSRLW     $4, Z13, Z27; \
	VPSRLW     $2, Z14, Z25; \
	VPANDD     Z30, Z14, Z14; \
	VPANDD     Z30, Z25, Z25; \
	VPSLLW     $4, Z14, Z15; \
	VPSLLW     $4, Z25, Z24; \
	VPTERNLOGD $0xe4, Z31, Z15, Z12; \
	VPTERNLOGD $0xe4, Z31, Z24, Z13; \
	VPTERNLOGD $0xe4, Z31, Z14, Z26; \
	VPTERNLOGD $0xe4, Z31, Z25, Z27; \
	Q6C(Z12, xo, xso, 32*n+i, Z8, L); \
	Q6C(Z13, xo, xso, 32*n+8+i, Z9, L); \
	Q6C(Z26, xo, xso, 32*n+16+i, Z10, L); \
	Q6C(Z27, xo, xso, 32*n+24+i, Z11, L)

// Q6H(qo, so, xo, xso, n) adds half n of a Q6_K super-block of 16 rows
// into the lanes Z0-Z7: words 0-3 against the scales of sub-blocks 8n,
// 8n+2, 8n+4, 8n+6 (elements 0-15 of each chunk), words 4-7 against
// those of 8n+1, 8n+3, 8n+5, 8n+7.
#define Q6H(qo, so, xo, xso, n) \
	Q6S4(so, 8*n); \
	Q6W(qo, xo, xso, n, 0, Z0); \
	Q6W(qo, xo, xso, n, 1, Z1); \
	Q6W(qo, xo, xso, n, 2, Z2); \
	Q6W(qo, xo, xso, n, 3, Z3); \
	Q6S4(so, 8*n+1); \
	Q6W(qo, xo, xso, n, 4, Z4); \
	Q6W(qo, xo, xso, n, 5, Z5); \
	Q6W(qo, xo, xso, n, 6, Z6); \
	Q6W(qo, xo, xso, n, 7, Z7)

// Q6B(qo, so, xo, xso) adds a Q6_K super-block of 16 rows (quants at
// qo(SI), scales at so(SI), d after them) into the lanes Z16-Z23: its 8
// exact integer lanes per row in Z0-Z7, then, as the reference, lane =
// fma(d, float32(l), lane), d = x.d*F16(w.d) rounded once.
#define Q6B(qo, so, xo, xso) \
	VPXORD      Z0, Z0, Z0; \
	VPXORD      Z1, Z1, Z1; \
	VPXORD      Z2, Z2, Z2; \
	VPXORD      Z3, Z3, Z3; \
	VPXORD      Z4, Z4, Z4; \
	VPXORD      Z5, Z5, Z5; \
	VPXORD      Z6, Z6, Z6; \
	VPXORD      Z7, Z7, Z7; \
	Q6H(qo, so, xo, xso, 0); \
	Q6H(qo, so, xo, xso, 1); \
	VCVTPH2PS   (so+256)(SI), Z29; \
	VMULPS.BCST xo(DI), Z29, Z29; \
	VCVTDQ2PS   Z0, Z0; \
	VCVTDQ2PS   Z1, Z1; \
	VCVTDQ2PS   Z2, Z2; \
	VCVTDQ2PS   Z3, Z3; \
	VCVTDQ2PS   Z4, Z4; \
	VCVTDQ2PS   Z5, Z5; \
	VCVTDQ2PS   Z6, Z6; \
	VCVTDQ2PS   Z7, Z7; \
	VFMADD231PS Z29, Z0, Z16; \
	VFMADD231PS Z29, Z1, Z17; \
	VFMADD231PS Z29, Z2, Z18; \
	VFMADD231PS Z29, Z3, Z19; \
	VFMADD231PS Z29, Z4, Z20; \
	VFMADD231PS Z29, Z5, Z21; \
	VFMADD231PS Z29, Z6, Z22; \
	VFMADD231PS Z29, Z7, Z23

// func dotQ6_KQ8_Kx16PackedAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
//
// dotQ6_KQ8_K of groups*16 rows packed in groups of 16 (group g's
// super-blocks at w + g*q6KGroupBytes(nb), by pairs: packQ6K16) into
// dst[16g+r]. Each pair's (or last odd super-block's) lines of scales,
// which come first, are prefetched in order as it starts, so that the
// super-block's loads reach memory in the order it lies in; loading the
// second super-block's scales after the first's quants, the product
// streamed 22 GB/s against 60 (the 2 cores' bare read: 63) when memory
// was fast, 22 against 36 (37) when slow.
// Row r keeps the reference's 8 float lanes in lane r of Z16-Z23, with
// the same fused multiply-adds in the same order, and adds them at the end
// as hsum8 does. A super-block's lane integers are the reference's
// exactly: each word's products are summed exactly, and integer sums are
// exact in any order.
TEXT ·dotQ6_KQ8_Kx16PackedAVX512(SB), NOSPLIT, $0-48
	MOVQ         dst+0(FP), DX
	MOVQ         w+8(FP), SI
	MOVQ         nb+32(FP), R9
	MOVQ         groups+40(FP), R8
	MOVL         $0x0f0f0f0f, AX
	VPBROADCASTD AX, Z31
	MOVL         $0x33333333, AX
	VPBROADCASTD AX, Z30
	TESTQ        R8, R8
	JEQ          q6done
	TESTQ        R9, R9
	JEQ          q6done

q6group:
	MOVQ x+16(FP), DI
	MOVQ xs+24(FP), BX
	MOVQ R9, CX
	LANES8ZERO
	SHRQ $1, CX // pairs of super-blocks
	JEQ  q6odd

q6pair:
	TOUCH9
	Q6B(576, 0, 0, 0)
	Q6B(3648, 288, 292, 128)
	ADDQ $6720, SI
	ADDQ $584, DI
	ADDQ $256, BX
	DECQ CX
	JNZ  q6pair

q6odd:
	TESTQ $1, R9
	JEQ   q6sum
	PREFETCHT0 (SI)
	PREFETCHT0 64(SI)
	PREFETCHT0 128(SI)
	PREFETCHT0 192(SI)
	PREFETCHT0 256(SI)
	Q6B(320, 0, 0, 0)
	ADDQ  $3392, SI

q6sum:
	LANES8SUM
	VMOVUPS Z16, (DX)
	ADDQ    $64, DX
	DECQ    R8
	JNZ     q6group

q6done:
	VZEROUPPER
	RET

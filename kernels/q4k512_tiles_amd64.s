//go:build amd64 && !purego

#include "textflag.h"

// A 4-token AVX-512 (F, BW) and AVX-512 VNNI version of dotQ4_KQ8_K
// (dot.go) for prompt processing: each Q4_K super-block of one weight row
// is unpacked once (its nibbles into four Z registers, its 6-bit scales and
// mins into word vectors) and applied to 4 Q8_K activation rows. Each of
// the 4 results is bitwise dotQ4_KQ8_K (and so dotQ4_KQ8_KAVX512): every
// integer converted to float32 is one of the reference's exact int32 lanes
// or min terms (integer sums are exact in any order when nothing saturates
// or overflows, and the bounds below hold for any Q4_K bytes and any Q8_K
// quants and group sums), and every float operation is the reference's, on
// the same operands, per token in the reference's order; the 4 tokens'
// float lanes only share registers.
//
// Q4_K block (144 bytes): d, dmin F16 at 0, 2; 12 scale bytes at 4; 128
// quant bytes at 16, chunk c (c = 0..3) at 16+32c holding sub-block 2c in
// its low nibbles and 2c+1 in its high ones. Q8_K block (292 bytes): d
// float32 at 0; 256 int8 quants at 4 (sub-block j at 4+32j); 16 int16 group
// sums at 260 (two per sub-block).
//
// Per super-block:
//
// Weights: W_c = chunk c's 32 bytes in both halves
// (VBROADCASTI64X4), the upper half shifted right by 4 (VPSRLW under K1,
// words 16-31), masked with 0x0f: the 64 unsigned nibbles of sub-blocks 2c
// and 2c+1 in element order, matching the 64 contiguous quants at 4+64c of
// each token.
//
// Scales: the 16 header bytes, broadcast to the four 128-bit lanes, are
// shuffled into words and shifted and selected (ushuf, ucntA, ucntB, umask,
// as in q4k512_amd64.s) into the 8 scales (words 0-7) and 8 mins (words
// 8-15) of scaleMinK4, repeated in words 16-31. VPERMW spreads them into
// the scale pairs S01 and S23, dword i < 8 = (sc_2c, sc_2c') and
// dword 8+i = (sc_2c+1, sc_2c'+1) for the chunk pair (c, c') = (0, 1) and
// (2, 3), and into m2, words 2j, 2j+1 = m_j (and again in words 16-31).
//
// Lanes: for token t and chunk c, VPDPBUSD of W_c by the 64 quants (from
// zero) gives P_c, dword i < 8 = lane i of sub-block 2c (lanesI8's sum of 4
// products) and dword 8+i = lane i of sub-block 2c+1, each |P| <= 4*15*128
// = 7680 for any int8 quants, so it fits in an int16. VPERMT2W (pack) packs
// two chunks into int16 pairs, dword i = (P_c[i], P_c'[i]), and
// VPMADDWD/VPDPWSSD by S01, S23 adds sc*P for both into R_t: dword k < 8 =
// the sum of sc_2c * lane k of sub-block 2c over the 4 chunks, dword 8+k the
// same for the sub-blocks 2c+1, each below 4*63*7680 < 2^21 in magnitude.
// Dword k plus dword 8+k is the reference's lane k of the block (kLanes
// summed over the 8 sub-blocks, |lane| < 2^22), exact; VSHUFI64X2 and
// VPADDD make [token 0's 8 lanes, token 1's] and [token 2's, token 3's],
// converted to float32 exactly.
//
// Min terms: VPMADDWD of each token's 16 group sums by m2 gives dword j =
// m_j*g_2j + m_j*g_2j+1 = m_j*bsum32(j), exact for any int16 group sums;
// the sums of dwords 2k and 2k+1 (VPERMI2D even and odd, VPADDD) are
// minTerms' p_k of each token, lane 4t+k (|p_k| < 2^23, converted exactly).
//
// Floats: D8 = [x_t.d, t = 0..3, twice] times [F16(w.d) x4,
// F16(w.dmin) x4] (VCVTPH2PS is exact): d_t = x_t.d*F16(w.d) and e_t =
// x_t.d*F16(w.dmin), each one rounding of the reference's product; the
// reference's dmin = -x.d*F16(w.dmin) is -e_t bit for bit. VPERMPS spreads
// them: FA01 lanes 8t+k (t = 0, 1) and FA23 lanes 8(t-2)+k get
// fma(d_t, float32(lane k), acc) (VFMADD231PS), the reference's accLanes;
// FM lane 4t+k gets fma(dmin_t, float32(p_k), accM[k]) as
// VFNMADD231PS with e_t: -(e*p)+acc rounds once, as fma(-e, p, acc) does.
// Super-blocks go in order, so each lane sees the reference's sequence.
//
// At the end, per token, hsum8 of its 8 acc lanes in hsum8's order (upper
// four onto lower four, lanes 2,3 onto 0,1, lane 1 onto 0; float addition
// is commutative) plus (accM[0]+accM[2]) + (accM[1]+accM[3]), the four
// tokens in the four 128-bit lanes of the same registers.
//
// Performance (Zen 5, measured): a super-block of 4 tokens takes about 30
// cycles, against about 52 for dotQ4_KQ8_KTok4AVX2 and 46 for 4 calls of
// dotQ4_KQ8_KAVX512. Two loads issue a cycle and one that crosses a cache
// line counts twice; the 16 activation loads of 64 bytes almost all do
// (the quants start 4 bytes into a 292-byte block), so with the constants
// read from memory the loop was bound by its loads (34 cycles): they all
// live in registers now. What is left is the vector pipes (about 60
// operations a super-block on the three that multiply or shuffle) and the
// depth of each block's dependency chains. Multiplying with VPMADDUBSW and
// VPDPWSSD per 64 quants (8 multiplies a token instead of 6, no VPERMT2W)
// measured the same.

// q4k512TConst<> holds the vector constants (64 bytes each unless noted):
//   +0    pack: VPERMT2W indices, word 2i = word 2i of the first table,
//         word 2i+1 = word 2i of the second (32+2i).
//   +64   spair01, +128 spair23: VPERMW indices of the scale pairs, dword
//         i < 8 = words (2c, 2c') and dword 8+i = (2c+1, 2c'+1), for
//         (c, c') = (0, 1) and (2, 3).
//   +192  m2: VPERMW indices, words 2j, 2j+1 and 16+2j, 17+2j = 8+j (m_j).
//   +256  ushuf, +320 ucntA, +384 ucntB, +448 umask: the scale unpacking
//         of q4k512_amd64.s (see q4k512Const there), for one block in all
//         four 128-bit lanes.
//   +512  even, +576 odd: VPERMI2D indices of dwords 0, 2, .., 30 and 1, 3,
//         .., 31 of two concatenated registers.
//   +640  spreadA, +704 spreadB, +768 spreadM: VPERMPS indices into D8:
//         [0 x8, 1 x8], [2 x8, 3 x8], [4 x4, 5 x4, 6 x4, 7 x4].
//   +832  dshuf (16 bytes): VPSHUFB of the d, dmin halves into [d x4,
//         dmin x4].
DATA q4k512TConst<>+0(SB)/8, $0x0022000200200000
DATA q4k512TConst<>+8(SB)/8, $0x0026000600240004
DATA q4k512TConst<>+16(SB)/8, $0x002a000a00280008
DATA q4k512TConst<>+24(SB)/8, $0x002e000e002c000c
DATA q4k512TConst<>+32(SB)/8, $0x0032001200300010
DATA q4k512TConst<>+40(SB)/8, $0x0036001600340014
DATA q4k512TConst<>+48(SB)/8, $0x003a001a00380018
DATA q4k512TConst<>+56(SB)/8, $0x003e001e003c001c
DATA q4k512TConst<>+64(SB)/8, $0x0002000000020000
DATA q4k512TConst<>+72(SB)/8, $0x0002000000020000
DATA q4k512TConst<>+80(SB)/8, $0x0002000000020000
DATA q4k512TConst<>+88(SB)/8, $0x0002000000020000
DATA q4k512TConst<>+96(SB)/8, $0x0003000100030001
DATA q4k512TConst<>+104(SB)/8, $0x0003000100030001
DATA q4k512TConst<>+112(SB)/8, $0x0003000100030001
DATA q4k512TConst<>+120(SB)/8, $0x0003000100030001
DATA q4k512TConst<>+128(SB)/8, $0x0006000400060004
DATA q4k512TConst<>+136(SB)/8, $0x0006000400060004
DATA q4k512TConst<>+144(SB)/8, $0x0006000400060004
DATA q4k512TConst<>+152(SB)/8, $0x0006000400060004
DATA q4k512TConst<>+160(SB)/8, $0x0007000500070005
DATA q4k512TConst<>+168(SB)/8, $0x0007000500070005
DATA q4k512TConst<>+176(SB)/8, $0x0007000500070005
DATA q4k512TConst<>+184(SB)/8, $0x0007000500070005
DATA q4k512TConst<>+192(SB)/8, $0x0009000900080008
DATA q4k512TConst<>+200(SB)/8, $0x000b000b000a000a
DATA q4k512TConst<>+208(SB)/8, $0x000d000d000c000c
DATA q4k512TConst<>+216(SB)/8, $0x000f000f000e000e
DATA q4k512TConst<>+224(SB)/8, $0x0009000900080008
DATA q4k512TConst<>+232(SB)/8, $0x000b000b000a000a
DATA q4k512TConst<>+240(SB)/8, $0x000d000d000c000c
DATA q4k512TConst<>+248(SB)/8, $0x000f000f000e000e
DATA q4k512TConst<>+256(SB)/8, $0x8007800680058004
DATA q4k512TConst<>+264(SB)/8, $0x070f060e050d040c
DATA q4k512TConst<>+272(SB)/8, $0x800b800a80098008
DATA q4k512TConst<>+280(SB)/8, $0x0b0f0a0e090d080c
DATA q4k512TConst<>+288(SB)/8, $0x8007800680058004
DATA q4k512TConst<>+296(SB)/8, $0x070f060e050d040c
DATA q4k512TConst<>+304(SB)/8, $0x800b800a80098008
DATA q4k512TConst<>+312(SB)/8, $0x0b0f0a0e090d080c
DATA q4k512TConst<>+320(SB)/8, $0x0000000000000000
DATA q4k512TConst<>+328(SB)/8, $0x0000000000000000
DATA q4k512TConst<>+336(SB)/8, $0x0000000000000000
DATA q4k512TConst<>+344(SB)/8, $0x0004000400040004
DATA q4k512TConst<>+352(SB)/8, $0x0000000000000000
DATA q4k512TConst<>+360(SB)/8, $0x0000000000000000
DATA q4k512TConst<>+368(SB)/8, $0x0000000000000000
DATA q4k512TConst<>+376(SB)/8, $0x0004000400040004
DATA q4k512TConst<>+384(SB)/8, $0x0010001000100010
DATA q4k512TConst<>+392(SB)/8, $0x000a000a000a000a
DATA q4k512TConst<>+400(SB)/8, $0x0010001000100010
DATA q4k512TConst<>+408(SB)/8, $0x000a000a000a000a
DATA q4k512TConst<>+416(SB)/8, $0x0010001000100010
DATA q4k512TConst<>+424(SB)/8, $0x000a000a000a000a
DATA q4k512TConst<>+432(SB)/8, $0x0010001000100010
DATA q4k512TConst<>+440(SB)/8, $0x000a000a000a000a
DATA q4k512TConst<>+448(SB)/8, $0x003f003f003f003f
DATA q4k512TConst<>+456(SB)/8, $0x000f000f000f000f
DATA q4k512TConst<>+464(SB)/8, $0x003f003f003f003f
DATA q4k512TConst<>+472(SB)/8, $0x000f000f000f000f
DATA q4k512TConst<>+480(SB)/8, $0x003f003f003f003f
DATA q4k512TConst<>+488(SB)/8, $0x000f000f000f000f
DATA q4k512TConst<>+496(SB)/8, $0x003f003f003f003f
DATA q4k512TConst<>+504(SB)/8, $0x000f000f000f000f
DATA q4k512TConst<>+512(SB)/8, $0x0000000200000000
DATA q4k512TConst<>+520(SB)/8, $0x0000000600000004
DATA q4k512TConst<>+528(SB)/8, $0x0000000a00000008
DATA q4k512TConst<>+536(SB)/8, $0x0000000e0000000c
DATA q4k512TConst<>+544(SB)/8, $0x0000001200000010
DATA q4k512TConst<>+552(SB)/8, $0x0000001600000014
DATA q4k512TConst<>+560(SB)/8, $0x0000001a00000018
DATA q4k512TConst<>+568(SB)/8, $0x0000001e0000001c
DATA q4k512TConst<>+576(SB)/8, $0x0000000300000001
DATA q4k512TConst<>+584(SB)/8, $0x0000000700000005
DATA q4k512TConst<>+592(SB)/8, $0x0000000b00000009
DATA q4k512TConst<>+600(SB)/8, $0x0000000f0000000d
DATA q4k512TConst<>+608(SB)/8, $0x0000001300000011
DATA q4k512TConst<>+616(SB)/8, $0x0000001700000015
DATA q4k512TConst<>+624(SB)/8, $0x0000001b00000019
DATA q4k512TConst<>+632(SB)/8, $0x0000001f0000001d
DATA q4k512TConst<>+640(SB)/8, $0x0000000000000000
DATA q4k512TConst<>+648(SB)/8, $0x0000000000000000
DATA q4k512TConst<>+656(SB)/8, $0x0000000000000000
DATA q4k512TConst<>+664(SB)/8, $0x0000000000000000
DATA q4k512TConst<>+672(SB)/8, $0x0000000100000001
DATA q4k512TConst<>+680(SB)/8, $0x0000000100000001
DATA q4k512TConst<>+688(SB)/8, $0x0000000100000001
DATA q4k512TConst<>+696(SB)/8, $0x0000000100000001
DATA q4k512TConst<>+704(SB)/8, $0x0000000200000002
DATA q4k512TConst<>+712(SB)/8, $0x0000000200000002
DATA q4k512TConst<>+720(SB)/8, $0x0000000200000002
DATA q4k512TConst<>+728(SB)/8, $0x0000000200000002
DATA q4k512TConst<>+736(SB)/8, $0x0000000300000003
DATA q4k512TConst<>+744(SB)/8, $0x0000000300000003
DATA q4k512TConst<>+752(SB)/8, $0x0000000300000003
DATA q4k512TConst<>+760(SB)/8, $0x0000000300000003
DATA q4k512TConst<>+768(SB)/8, $0x0000000400000004
DATA q4k512TConst<>+776(SB)/8, $0x0000000400000004
DATA q4k512TConst<>+784(SB)/8, $0x0000000500000005
DATA q4k512TConst<>+792(SB)/8, $0x0000000500000005
DATA q4k512TConst<>+800(SB)/8, $0x0000000600000006
DATA q4k512TConst<>+808(SB)/8, $0x0000000600000006
DATA q4k512TConst<>+816(SB)/8, $0x0000000700000007
DATA q4k512TConst<>+824(SB)/8, $0x0000000700000007
DATA q4k512TConst<>+832(SB)/8, $0x0100010001000100
DATA q4k512TConst<>+840(SB)/8, $0x0302030203020302
GLOBL q4k512TConst<>(SB), RODATA|NOPTR, $848

// Q4KT512TOK(xc, xd, wc, wd, s, op, acc): one token's chunks c and d
// (quants at xc, xd; weights wc, wd), packed (VPERMT2W) and multiplied by
// the scale pairs s into acc: op is VPMADDWD for the first pair (acc = the
// products) and VPDPWSSD for the second (acc += them). Clobbers Z12, Z13.
#define Q4KT512TOK(xc, xd, wc, wd, s, op, acc) \
	VPXORD   Z12, Z12, Z12; \
	VPXORD   Z13, Z13, Z13; \
	VPDPBUSD xc, wc, Z12; \
	VPDPBUSD xd, wd, Z13; \
	VPERMT2W Z13, Z28, Z12; \
	op       s, Z12, acc

// Q4KT512PAIR(c, d, wc, wd, s, op): Q4KT512TOK for the 4 tokens.
#define Q4KT512PAIR(c, d, wc, wd, s, op) \
	Q4KT512TOK((4+64*c)(DI), (4+64*d)(DI), wc, wd, s, op, Z0); \
	Q4KT512TOK((4+64*c)(DI)(R12*1), (4+64*d)(DI)(R12*1), wc, wd, s, op, Z1); \
	Q4KT512TOK((4+64*c)(DI)(R12*2), (4+64*d)(DI)(R12*2), wc, wd, s, op, Z2); \
	Q4KT512TOK((4+64*c)(DI)(R13*1), (4+64*d)(DI)(R13*1), wc, wd, s, op, Z3)

// Q4KT512W(c, w): w = the nibbles of chunk c (see W_c above).
#define Q4KT512W(c, w) \
	VBROADCASTI64X4 (16+32*c)(SI), w; \
	VPSRLW          $4, w, K1, w; \
	VPANDD          Z29, w, w

// func dotQ4_KQ8_KTok4AVX512(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)
//
// dotQ4_KQ8_K of one Q4_K weight row of nb super-blocks at w by the 4 Q8_K
// activation rows x + t*xrb into dst[t*ldd], t < 4, each bitwise the
// reference's (see the top of this file).
//
// The loop is bound by its loads (2 a cycle, one crossing a cache line
// counting twice; most of the 16 activation loads do), so every constant
// stays in a register: Z16 ushuf, Z17 ucntA, Z18 ucntB, Z19 umask, Z20
// spair01, Z21 spair23, Z22 m2, Z23 even, Z24 odd, Z25 spreadA, Z26
// spreadB, Z27 spreadM, Z28 pack, Z29 0x0f bytes, K1 words 16-31; only
// dshuf is read from memory. SI w, DI x (token t at DI + t*R12, R13 =
// 3*R12), CX blocks left. Z0-Z3 R_t (scratch before the lanes), Z4-Z7 W_c,
// Z8 S01, Z9 S23, Z10 FM, Y11 D8, Z12-Z15 scratch, Z30 FA01, Z31 FA23.
TEXT ·dotQ4_KQ8_KTok4AVX512(SB), NOSPLIT, $0-48
	MOVQ         w+16(FP), SI
	MOVQ         x+24(FP), DI
	MOVQ         xrb+32(FP), R12
	MOVQ         nb+40(FP), CX
	LEAQ         (R12)(R12*2), R13
	VPXORD       Z30, Z30, Z30
	VPXORD       Z31, Z31, Z31
	VPXORD       Z10, Z10, Z10
	TESTQ        CX, CX
	JEQ          done
	MOVL         $0x0f0f0f0f, AX
	VPBROADCASTD AX, Z29
	MOVL         $0xffff0000, AX
	KMOVD        AX, K1
	VMOVDQU64    q4k512TConst<>+0(SB), Z28
	VMOVDQU64    q4k512TConst<>+64(SB), Z20
	VMOVDQU64    q4k512TConst<>+128(SB), Z21
	VMOVDQU64    q4k512TConst<>+192(SB), Z22
	VMOVDQU64    q4k512TConst<>+256(SB), Z16
	VMOVDQU64    q4k512TConst<>+320(SB), Z17
	VMOVDQU64    q4k512TConst<>+384(SB), Z18
	VMOVDQU64    q4k512TConst<>+448(SB), Z19
	VMOVDQU64    q4k512TConst<>+512(SB), Z23
	VMOVDQU64    q4k512TConst<>+576(SB), Z24
	VMOVDQU64    q4k512TConst<>+640(SB), Z25
	VMOVDQU64    q4k512TConst<>+704(SB), Z26
	VMOVDQU64    q4k512TConst<>+768(SB), Z27

loop:
	// Scales and mins as words (Z13), spread into S01, S23 and m2 (Z15);
	// X14 keeps the raw header.
	VBROADCASTI32X4 (SI), Z14
	VPSHUFB         Z16, Z14, Z15
	VPSRLVW         Z17, Z15, Z13
	VPSRLVW         Z18, Z15, Z15
	VPTERNLOGD      $0xe4, Z19, Z15, Z13
	VPERMW          Z13, Z20, Z8
	VPERMW          Z13, Z21, Z9
	VPERMW          Z13, Z22, Z15

	// Min terms: Z2 = p_k of token t in lane 4t+k, as float32.
	VMOVDQU      260(DI), Y0
	VINSERTI64X4 $1, 260(DI)(R12*1), Z0, Z0
	VMOVDQU      260(DI)(R12*2), Y1
	VINSERTI64X4 $1, 260(DI)(R13*1), Z1, Z1
	VPMADDWD     Z15, Z0, Z0
	VPMADDWD     Z15, Z1, Z1
	VMOVDQA64    Z23, Z2
	VPERMI2D     Z1, Z0, Z2
	VPERMT2D     Z1, Z24, Z0
	VPADDD       Z0, Z2, Z2
	VCVTDQ2PS    Z2, Z2

	// D8 (Y11) = [d_0..d_3, e_0..e_3]; FM -= (e_t x4)*p.
	VMOVSS       (DI), X12
	VINSERTPS    $0x10, (DI)(R12*1), X12, X12
	VINSERTPS    $0x20, (DI)(R12*2), X12, X12
	VINSERTPS    $0x30, (DI)(R13*1), X12, X12
	VINSERTF128  $1, X12, Y12, Y12
	VPSHUFB      q4k512TConst<>+832(SB), X14, X13
	VCVTPH2PS    X13, Y13
	VMULPS       Y13, Y12, Y11
	VPERMPS      Z11, Z27, Z13
	VFNMADD231PS Z13, Z2, Z10

	Q4KT512W(0, Z4)
	Q4KT512W(1, Z5)
	Q4KT512W(2, Z6)
	Q4KT512W(3, Z7)
	Q4KT512PAIR(0, 1, Z4, Z5, Z8, VPMADDWD)
	Q4KT512PAIR(2, 3, Z6, Z7, Z9, VPDPWSSD)

	// The lanes of tokens 0, 1 (Z12) and 2, 3 (Z14), fused-multiply-added.
	VSHUFI64X2  $0x44, Z1, Z0, Z12
	VSHUFI64X2  $0xee, Z1, Z0, Z13
	VPADDD      Z13, Z12, Z12
	VSHUFI64X2  $0x44, Z3, Z2, Z14
	VSHUFI64X2  $0xee, Z3, Z2, Z15
	VPADDD      Z15, Z14, Z14
	VCVTDQ2PS   Z12, Z12
	VCVTDQ2PS   Z14, Z14
	VPERMPS     Z11, Z25, Z13
	VPERMPS     Z11, Z26, Z15
	VFMADD231PS Z13, Z12, Z30
	VFMADD231PS Z15, Z14, Z31

	ADDQ $144, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	// Z0 lane 4t = hsum8 of token t's acc: its upper four lanes onto its
	// lower four (VSHUFF32X4 puts token t's halves in 128-bit lane t of Z0
	// and Z1), lanes 2,3 onto 0,1, lane 1 onto 0. Z2 lane 4t = (accM[0] +
	// accM[2]) + (accM[1] + accM[3]) of token t.
	VSHUFF32X4    $0x88, Z31, Z30, Z0
	VSHUFF32X4    $0xdd, Z31, Z30, Z1
	VADDPS        Z1, Z0, Z0
	VSHUFPS       $0x4e, Z0, Z0, Z1
	VADDPS        Z1, Z0, Z0
	VMOVSHDUP     Z0, Z1
	VADDPS        Z1, Z0, Z0
	VSHUFPS       $0x4e, Z10, Z10, Z1
	VADDPS        Z1, Z10, Z2
	VMOVSHDUP     Z2, Z1
	VADDPS        Z1, Z2, Z2
	VADDPS        Z2, Z0, Z0
	MOVQ          dst+0(FP), DX
	MOVQ          ldd+8(FP), R8
	LEAQ          (DX)(R8*8), R9
	VEXTRACTF32X4 $1, Z0, X1
	VEXTRACTF32X4 $2, Z0, X2
	VEXTRACTF32X4 $3, Z0, X3
	VMOVSS        X0, (DX)
	VMOVSS        X1, (DX)(R8*4)
	VMOVSS        X2, (R9)
	VMOVSS        X3, (R9)(R8*4)
	VZEROUPPER
	RET

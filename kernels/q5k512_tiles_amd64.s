//go:build amd64 && !purego

#include "textflag.h"

// A 4-token AVX-512 (F, BW) and AVX-512 VNNI version of dotQ5_KQ8_K
// (dot.go) for prompt processing, built like dotQ4_KQ8_KTok4AVX512
// (q4k512_tiles_amd64.s): each Q5_K super-block of one weight row is
// unpacked once (its 5-bit weights into four Z registers, its 6-bit scales
// and mins into word vectors) and applied to 4 Q8_K activation rows. Each
// of the 4 results is bitwise dotQ5_KQ8_K (and so dotQ5_KQ8_KAVX512 and
// dotQ5_KQ8_KAVX2): every integer converted to float32 is one of the
// reference's exact int32 lanes or its mins' total (integer sums are exact
// in any order when nothing saturates or overflows, and the bounds below
// hold for any Q5_K bytes and any Q8_K quants and group sums), and every
// float operation is the reference's, on the same operands, per token in
// the reference's order; the 4 tokens' float lanes only share registers.
//
// Q5_K block (176 bytes): d, dmin F16 at 0, 2; 12 scale bytes at 4; qh[32]
// at 16; 128 quant bytes at 48, chunk c (c = 0..3) at 48+32c holding the
// low 4 bits of sub-block 2c in its low nibbles and of 2c+1 in its high
// ones; the fifth bit of element j of sub-block s is bit s of qh[j]. The
// first 16 bytes (d, dmin, scales) are laid out as Q4_K's. Q8_K block (292
// bytes): d float32 at 0; 256 int8 quants at 4 (sub-block j at 4+32j); 16
// int16 group sums at 260 (two per sub-block).
//
// Per super-block:
//
// Weights: H = qh in both halves (VBROADCASTI64X4), the upper half shifted
// right by 1 (VPSRLW under K1, words 16-31): bit 2c of byte j is then the
// fifth bit of element j of sub-block 2c in the lower half and of 2c+1 in
// the upper half (a word shift moves bits within a byte except into bit 7
// of the low byte, which is never used). HA = H & 0x11 keeps bits 0 and 4
// (chunks 0 and 2), HB = (H >> 2) & 0x11 bits 2 and 6 moved to 0 and 4
// (chunks 1 and 3). So the fifth bit of chunks 2 and 3 is bit 4 of HA and
// HB, and of chunks 0 and 1 bit 4 of HA << 4 and HB << 4 (VPSLLQ), and in
// each of the four, bits 5-7 of every byte are zero (in HA and HB they are
// never set, and a shift left by 4 fills them from bits 1-3). The chunk's
// 32 quant bytes in both halves, the upper half shifted right by 4 (VPSRLW
// under K1), have the 4 low bits of sub-block 2c (lower half) and 2c+1
// (upper half) in bits 0-3 of each byte; one bitwise select (VPTERNLOGD
// 0xe4 with 0x0f bytes) takes bits 0-3 from them and bits 4-7 from the
// fifth bits: W_c, the 64 weights q = 0..31 of sub-blocks 2c and 2c+1 in
// element order, matching the 64 contiguous quants at 4+64c of each token.
//
// Scales: as in q4k512_tiles_amd64.s, the 16 header bytes, broadcast to
// the four 128-bit lanes, are shuffled into words and shifted and selected
// (ushuf, ucntA, ucntB, umask) into the 8 scales (words 0-7) and 8 mins
// (words 8-15), repeated in words 16-31. VPERMW spreads them into the scale
// pairs S01 and S23, dword i < 8 = (sc_2c, sc_2c') and dword 8+i =
// (sc_2c+1, sc_2c'+1) for the chunk pairs (c, c') = (0, 1) and (2, 3), and
// into m2, words 2j, 2j+1 = m_j (and again in words 16-31).
//
// Lanes: for token t and chunk c, VPDPBUSD of W_c (unsigned, 0..31) by the
// 64 quants (from zero) gives P_c, dword i < 8 = lane i of sub-block 2c
// (kLanes' sum of 4 products) and dword 8+i = lane i of sub-block 2c+1,
// each |P| <= 4*31*128 = 15872 for any int8 quants, so it fits in an int16.
// VPERMT2W (pack) packs two chunks into int16 pairs, dword i = (P_c[i],
// P_c'[i]), and VPMADDWD/VPDPWSSD by S01, S23 adds sc*P for both into R_t
// (no saturation: VPDPWSSD wraps, and every dword stays below
// 4*63*15872 < 2^22 in magnitude): dword k < 8 = the sum of sc_2c * lane
// k of sub-block 2c over the 4 chunks, dword 8+k the same for the
// sub-blocks 2c+1. Dword k plus dword 8+k is the reference's lane k of the
// block (kLanes summed over the 8 sub-blocks, |lane| < 2^23), exact;
// VSHUFI64X2 and VPADDD make [token 0's 8 lanes, token 1's] and [token 2's,
// token 3's], converted to float32 exactly.
//
// Mins: VPMADDWD of each token's 16 group sums by m2 gives dword j =
// m_j*g_2j + m_j*g_2j+1 = m_j*bsum32(j), exact for any int16 group sums
// (|dword| <= 2*63*32768 < 2^22); VSHUFI64X2, VPADDD and two VPSHUFD/VPADDD
// steps add a token's 8 dwords into all four dwords of 128-bit lane t: the
// reference's (p[0]+p[2])+(p[1]+p[3]) (|total| < 2^25, exact in int32, and
// float32(total) is the reference's conversion of the same integer).
//
// Floats: D8 = [x_t.d, t = 0..3, twice] times [F16(w.d) x4,
// F16(w.dmin) x4] (VCVTPH2PS is exact): d_t = x_t.d*F16(w.d) and e_t =
// x_t.d*F16(w.dmin), each one rounding of the reference's product; the
// reference's dmin = -x.d*F16(w.dmin) is -e_t bit for bit. VPERMPS spreads
// them: FA01 lanes 8t+k (t = 0, 1) and FA23 lanes 8(t-2)+k get
// fma(d_t, float32(lane k), acc) (VFMADD231PS), the reference's accLanes;
// FM lanes 4t..4t+3 get fma(dmin_t, float32(total_t), summs_t) as
// VFNMADD231PS with e_t: -(e*p)+acc rounds once, as fma(-e, p, acc) does
// (the four lanes of a token compute the same value). Super-blocks go in
// order, so each lane sees the reference's sequence.
//
// At the end, per token, hsum8 of its 8 acc lanes in hsum8's order (upper
// four onto lower four, lanes 2,3 onto 0,1, lane 1 onto 0; float addition
// is commutative) plus summs, the four tokens in the four 128-bit lanes of
// the same registers.

// q5k512TConst<> holds the vector constants (64 bytes each unless noted):
//   +0    pack: VPERMT2W indices, word 2i = word 2i of the first table,
//         word 2i+1 = word 2i of the second (32+2i).
//   +64   spair01, +128 spair23: VPERMW indices of the scale pairs, dword
//         i < 8 = words (2c, 2c') and dword 8+i = (2c+1, 2c'+1), for
//         (c, c') = (0, 1) and (2, 3).
//   +192  m2: VPERMW indices, words 2j, 2j+1 and 16+2j, 17+2j = 8+j (m_j).
//   +256  ushuf, +320 ucntA, +384 ucntB, +448 umask: the scale unpacking
//         of q4k512_amd64.s (see q4k512Const there), for one block in all
//         four 128-bit lanes.
//   +512  spreadA, +576 spreadB, +640 spreadM: VPERMPS indices into D8:
//         [0 x8, 1 x8], [2 x8, 3 x8], [4 x4, 5 x4, 6 x4, 7 x4].
//   +704  dshuf (16 bytes): VPSHUFB of the d, dmin halves into [d x4,
//         dmin x4].
//   (These are q4k512TConst<>'s, less its even and odd indices.)
DATA q5k512TConst<>+0(SB)/8, $0x0022000200200000
DATA q5k512TConst<>+8(SB)/8, $0x0026000600240004
DATA q5k512TConst<>+16(SB)/8, $0x002a000a00280008
DATA q5k512TConst<>+24(SB)/8, $0x002e000e002c000c
DATA q5k512TConst<>+32(SB)/8, $0x0032001200300010
DATA q5k512TConst<>+40(SB)/8, $0x0036001600340014
DATA q5k512TConst<>+48(SB)/8, $0x003a001a00380018
DATA q5k512TConst<>+56(SB)/8, $0x003e001e003c001c
DATA q5k512TConst<>+64(SB)/8, $0x0002000000020000
DATA q5k512TConst<>+72(SB)/8, $0x0002000000020000
DATA q5k512TConst<>+80(SB)/8, $0x0002000000020000
DATA q5k512TConst<>+88(SB)/8, $0x0002000000020000
DATA q5k512TConst<>+96(SB)/8, $0x0003000100030001
DATA q5k512TConst<>+104(SB)/8, $0x0003000100030001
DATA q5k512TConst<>+112(SB)/8, $0x0003000100030001
DATA q5k512TConst<>+120(SB)/8, $0x0003000100030001
DATA q5k512TConst<>+128(SB)/8, $0x0006000400060004
DATA q5k512TConst<>+136(SB)/8, $0x0006000400060004
DATA q5k512TConst<>+144(SB)/8, $0x0006000400060004
DATA q5k512TConst<>+152(SB)/8, $0x0006000400060004
DATA q5k512TConst<>+160(SB)/8, $0x0007000500070005
DATA q5k512TConst<>+168(SB)/8, $0x0007000500070005
DATA q5k512TConst<>+176(SB)/8, $0x0007000500070005
DATA q5k512TConst<>+184(SB)/8, $0x0007000500070005
DATA q5k512TConst<>+192(SB)/8, $0x0009000900080008
DATA q5k512TConst<>+200(SB)/8, $0x000b000b000a000a
DATA q5k512TConst<>+208(SB)/8, $0x000d000d000c000c
DATA q5k512TConst<>+216(SB)/8, $0x000f000f000e000e
DATA q5k512TConst<>+224(SB)/8, $0x0009000900080008
DATA q5k512TConst<>+232(SB)/8, $0x000b000b000a000a
DATA q5k512TConst<>+240(SB)/8, $0x000d000d000c000c
DATA q5k512TConst<>+248(SB)/8, $0x000f000f000e000e
DATA q5k512TConst<>+256(SB)/8, $0x8007800680058004
DATA q5k512TConst<>+264(SB)/8, $0x070f060e050d040c
DATA q5k512TConst<>+272(SB)/8, $0x800b800a80098008
DATA q5k512TConst<>+280(SB)/8, $0x0b0f0a0e090d080c
DATA q5k512TConst<>+288(SB)/8, $0x8007800680058004
DATA q5k512TConst<>+296(SB)/8, $0x070f060e050d040c
DATA q5k512TConst<>+304(SB)/8, $0x800b800a80098008
DATA q5k512TConst<>+312(SB)/8, $0x0b0f0a0e090d080c
DATA q5k512TConst<>+320(SB)/8, $0x0000000000000000
DATA q5k512TConst<>+328(SB)/8, $0x0000000000000000
DATA q5k512TConst<>+336(SB)/8, $0x0000000000000000
DATA q5k512TConst<>+344(SB)/8, $0x0004000400040004
DATA q5k512TConst<>+352(SB)/8, $0x0000000000000000
DATA q5k512TConst<>+360(SB)/8, $0x0000000000000000
DATA q5k512TConst<>+368(SB)/8, $0x0000000000000000
DATA q5k512TConst<>+376(SB)/8, $0x0004000400040004
DATA q5k512TConst<>+384(SB)/8, $0x0010001000100010
DATA q5k512TConst<>+392(SB)/8, $0x000a000a000a000a
DATA q5k512TConst<>+400(SB)/8, $0x0010001000100010
DATA q5k512TConst<>+408(SB)/8, $0x000a000a000a000a
DATA q5k512TConst<>+416(SB)/8, $0x0010001000100010
DATA q5k512TConst<>+424(SB)/8, $0x000a000a000a000a
DATA q5k512TConst<>+432(SB)/8, $0x0010001000100010
DATA q5k512TConst<>+440(SB)/8, $0x000a000a000a000a
DATA q5k512TConst<>+448(SB)/8, $0x003f003f003f003f
DATA q5k512TConst<>+456(SB)/8, $0x000f000f000f000f
DATA q5k512TConst<>+464(SB)/8, $0x003f003f003f003f
DATA q5k512TConst<>+472(SB)/8, $0x000f000f000f000f
DATA q5k512TConst<>+480(SB)/8, $0x003f003f003f003f
DATA q5k512TConst<>+488(SB)/8, $0x000f000f000f000f
DATA q5k512TConst<>+496(SB)/8, $0x003f003f003f003f
DATA q5k512TConst<>+504(SB)/8, $0x000f000f000f000f
DATA q5k512TConst<>+512(SB)/8, $0x0000000000000000
DATA q5k512TConst<>+520(SB)/8, $0x0000000000000000
DATA q5k512TConst<>+528(SB)/8, $0x0000000000000000
DATA q5k512TConst<>+536(SB)/8, $0x0000000000000000
DATA q5k512TConst<>+544(SB)/8, $0x0000000100000001
DATA q5k512TConst<>+552(SB)/8, $0x0000000100000001
DATA q5k512TConst<>+560(SB)/8, $0x0000000100000001
DATA q5k512TConst<>+568(SB)/8, $0x0000000100000001
DATA q5k512TConst<>+576(SB)/8, $0x0000000200000002
DATA q5k512TConst<>+584(SB)/8, $0x0000000200000002
DATA q5k512TConst<>+592(SB)/8, $0x0000000200000002
DATA q5k512TConst<>+600(SB)/8, $0x0000000200000002
DATA q5k512TConst<>+608(SB)/8, $0x0000000300000003
DATA q5k512TConst<>+616(SB)/8, $0x0000000300000003
DATA q5k512TConst<>+624(SB)/8, $0x0000000300000003
DATA q5k512TConst<>+632(SB)/8, $0x0000000300000003
DATA q5k512TConst<>+640(SB)/8, $0x0000000400000004
DATA q5k512TConst<>+648(SB)/8, $0x0000000400000004
DATA q5k512TConst<>+656(SB)/8, $0x0000000500000005
DATA q5k512TConst<>+664(SB)/8, $0x0000000500000005
DATA q5k512TConst<>+672(SB)/8, $0x0000000600000006
DATA q5k512TConst<>+680(SB)/8, $0x0000000600000006
DATA q5k512TConst<>+688(SB)/8, $0x0000000700000007
DATA q5k512TConst<>+696(SB)/8, $0x0000000700000007
DATA q5k512TConst<>+704(SB)/8, $0x0100010001000100
DATA q5k512TConst<>+712(SB)/8, $0x0302030203020302
GLOBL q5k512TConst<>(SB), RODATA|NOPTR, $720

// Q5KT512TOK(xc, xd, wc, wd, s, op, acc): one token's chunks c and d
// (quants at xc, xd; weights wc, wd), packed (VPERMT2W) and multiplied by
// the scale pairs s into acc: op is VPMADDWD for the first pair (acc = the
// products) and VPDPWSSD for the second (acc += them). Clobbers Z12, Z13.
#define Q5KT512TOK(xc, xd, wc, wd, s, op, acc) \
	VPXORD   Z12, Z12, Z12; \
	VPXORD   Z13, Z13, Z13; \
	VPDPBUSD xc, wc, Z12; \
	VPDPBUSD xd, wd, Z13; \
	VPERMT2W Z13, Z28, Z12; \
	op       s, Z12, acc

// Q5KT512PAIR(c, d, wc, wd, s, op): Q5KT512TOK for the 4 tokens.
#define Q5KT512PAIR(c, d, wc, wd, s, op) \
	Q5KT512TOK((4+64*c)(DI), (4+64*d)(DI), wc, wd, s, op, Z0); \
	Q5KT512TOK((4+64*c)(DI)(R12*1), (4+64*d)(DI)(R12*1), wc, wd, s, op, Z1); \
	Q5KT512TOK((4+64*c)(DI)(R12*2), (4+64*d)(DI)(R12*2), wc, wd, s, op, Z2); \
	Q5KT512TOK((4+64*c)(DI)(R13*1), (4+64*d)(DI)(R13*1), wc, wd, s, op, Z3)

// Q5KT512W(c, h, w): w = the 5-bit weights of chunk c (W_c above), h its
// fifth bits at bit 4 of each byte, bits 5-7 zero.
#define Q5KT512W(c, h, w) \
	VBROADCASTI64X4 (48+32*c)(SI), w; \
	VPSRLW          $4, w, K1, w; \
	VPTERNLOGD      $0xe4, Z29, h, w

// func dotQ5_KQ8_KTok4AVX512(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)
//
// dotQ5_KQ8_K of one Q5_K weight row of nb super-blocks at w by the 4 Q8_K
// activation rows x + t*xrb into dst[t*ldd], t < 4, each bitwise the
// reference's (see the top of this file).
//
// As in dotQ4_KQ8_KTok4AVX512 every constant stays in a register (only
// dshuf is read from memory): Z16 ushuf, Z17 ucntA, Z18 ucntB, Z19 umask,
// Z20 spair01, Z21 spair23, Z22 m2, Z23 0x11 bytes, Z25 spreadA, Z26
// spreadB, Z27 spreadM, Z28 pack, Z29 0x0f bytes, K1 words 16-31. SI w,
// DI x (token t at DI + t*R12, R13 = 3*R12), CX blocks left. Z0-Z3 R_t
// (scratch before the lanes), Z4-Z7 W_c, Z8 S01, Z9 S23, Z10 FM, Y11 D8,
// Z12-Z15 and Z24 scratch, Z30 FA01, Z31 FA23.
TEXT ·dotQ5_KQ8_KTok4AVX512(SB), NOSPLIT, $0-48
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
	MOVL         $0x11111111, AX
	VPBROADCASTD AX, Z23
	MOVL         $0xffff0000, AX
	KMOVD        AX, K1
	VMOVDQU64    q5k512TConst<>+0(SB), Z28
	VMOVDQU64    q5k512TConst<>+64(SB), Z20
	VMOVDQU64    q5k512TConst<>+128(SB), Z21
	VMOVDQU64    q5k512TConst<>+192(SB), Z22
	VMOVDQU64    q5k512TConst<>+256(SB), Z16
	VMOVDQU64    q5k512TConst<>+320(SB), Z17
	VMOVDQU64    q5k512TConst<>+384(SB), Z18
	VMOVDQU64    q5k512TConst<>+448(SB), Z19
	VMOVDQU64    q5k512TConst<>+512(SB), Z25
	VMOVDQU64    q5k512TConst<>+576(SB), Z26
	VMOVDQU64    q5k512TConst<>+640(SB), Z27

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

	// Mins: Z2 = total_t (as float32) in dwords 4t..4t+3.
	VMOVDQU      260(DI), Y0
	VINSERTI64X4 $1, 260(DI)(R12*1), Z0, Z0
	VMOVDQU      260(DI)(R12*2), Y1
	VINSERTI64X4 $1, 260(DI)(R13*1), Z1, Z1
	VPMADDWD     Z15, Z0, Z0
	VPMADDWD     Z15, Z1, Z1
	VSHUFI64X2   $0x88, Z1, Z0, Z2
	VSHUFI64X2   $0xdd, Z1, Z0, Z3
	VPADDD       Z3, Z2, Z2
	VPSHUFD      $0x4e, Z2, Z3
	VPADDD       Z3, Z2, Z2
	VPSHUFD      $0xb1, Z2, Z3
	VPADDD       Z3, Z2, Z2
	VCVTDQ2PS    Z2, Z2

	// D8 (Y11) = [d_0..d_3, e_0..e_3]; FM -= (e_t x4)*total.
	VMOVSS       (DI), X12
	VINSERTPS    $0x10, (DI)(R12*1), X12, X12
	VINSERTPS    $0x20, (DI)(R12*2), X12, X12
	VINSERTPS    $0x30, (DI)(R13*1), X12, X12
	VINSERTF128  $1, X12, Y12, Y12
	VPSHUFB      q5k512TConst<>+704(SB), X14, X13
	VCVTPH2PS    X13, Y13
	VMULPS       Y13, Y12, Y11
	VPERMPS      Z11, Z27, Z13
	VFNMADD231PS Z13, Z2, Z10

	// Fifth bits: Z12 = HA, Z13 = HB, Z14 = HA << 4, Z15 = HB << 4.
	VBROADCASTI64X4 16(SI), Z24
	VPSRLW          $1, Z24, K1, Z24
	VPANDD          Z23, Z24, Z12
	VPSRLQ          $2, Z24, Z24
	VPANDD          Z23, Z24, Z13
	VPSLLQ          $4, Z12, Z14
	VPSLLQ          $4, Z13, Z15

	Q5KT512W(0, Z14, Z4)
	Q5KT512W(1, Z15, Z5)
	Q5KT512W(2, Z12, Z6)
	Q5KT512W(3, Z13, Z7)
	Q5KT512PAIR(0, 1, Z4, Z5, Z8, VPMADDWD)
	Q5KT512PAIR(2, 3, Z6, Z7, Z9, VPDPWSSD)

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

	ADDQ $176, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	// Z0 lane 4t = hsum8 of token t's acc: its upper four lanes onto its
	// lower four (VSHUFF32X4 puts token t's halves in 128-bit lane t of Z0
	// and Z1), lanes 2,3 onto 0,1, lane 1 onto 0; then plus summs (FM lane
	// 4t).
	VSHUFF32X4    $0x88, Z31, Z30, Z0
	VSHUFF32X4    $0xdd, Z31, Z30, Z1
	VADDPS        Z1, Z0, Z0
	VSHUFPS       $0x4e, Z0, Z0, Z1
	VADDPS        Z1, Z0, Z0
	VMOVSHDUP     Z0, Z1
	VADDPS        Z1, Z0, Z0
	VADDPS        Z10, Z0, Z0
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

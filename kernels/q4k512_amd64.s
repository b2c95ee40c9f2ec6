//go:build amd64 && !purego

#include "textflag.h"
#include "hsum_amd64.h"

// AVX-512 (F, BW) and AVX-512 VNNI version of dotQ4_KQ8_K (dot.go), two
// super-blocks at a time, bitwise equal to the reference: every integer it
// converts to float32 is one of the reference's exact int32 lanes or min
// terms (integer sums are exact in any order as long as nothing saturates
// or overflows, and the bounds below show nothing does), and every float
// operation is the reference's, on the same operands, in its order (see
// dotQ4_KQ8_KAVX512). The caveat of dot_amd64.s applies unchanged: the
// reference's fma32 rounds twice, VFMADD once, which differs with a
// probability of about 2^-29 per fused multiply-add.
//
// Q4_K block (144 bytes): d, dmin F16 at 0, 2; 12 scale bytes at 4; 128
// quant bytes at 16, chunk c (c = 0..3) at 16+32c holding sub-block 2c in
// its low nibbles and 2c+1 in its high ones. Q8_K block (292 bytes): d
// float32 at 0; 256 int8 quants at 4 (sub-block j at 4+32j); 16 int16 group
// sums at 260 (two per sub-block).

// ·q4k512Const holds the vector constants (each 64 bytes):
//   +0    pack: VPERMT2W index making, from the 4-element sums of chunk c of
//         block A (first table) and of block B (second), int32 lane k < 8 =
//         the int16 pair (A's sum k of sub-block 2c, A's sum k of 2c+1) and
//         lane 8+k the same for B: word 2k = word 2k, word 2k+1 = word
//         16+2k, word 16+2k = word 32+2k, word 17+2k = word 48+2k.
//   +64   svec0..3 (+64c): VPERMW indices into the 32 unpacked scale words
//         (block A's scales 0-7, mins 0-7, then block B's) giving lane k < 8
//         = (A's sc_2c, A's sc_2c+1) and lane 8+k = (B's sc_2c, B's sc_2c+1),
//         the scales matching the pairs of pack.
//   +320  m2: VPERMW index giving words 2j, 2j+1 = A's m_j (words 0-15) and
//         words 16+2j, 17+2j = B's m_j.
//   +384  ushuf: VPSHUFB of the raw scale bytes (block A's 16 header bytes
//         in 128-bit lanes 0 and 1, B's in 2 and 3; byte 4+i is s[i]) into
//         words whose low byte is the byte holding the value's low bits and
//         high byte the one holding its top two bits: lane 0 word j (scales):
//         j < 4 (s[j], 0), j >= 4 (s[j+4], s[j-4]); lane 1 word j (mins):
//         j < 4 (s[j+4], 0), j >= 4 (s[j+4], s[j]); lanes 2, 3 the same.
//   +448  ucntA: VPSRLVW counts, 4 for the mins j >= 4 (their low bits are
//         the high nibble), 0 elsewhere.
//   +512  ucntB: VPSRLVW counts, 10 for j >= 4 (the high byte's top two
//         bits to bits 4 and 5, nothing above), 16 (zero) for j < 4.
//   +576  umask: VPTERNLOGD selector, 0x3f for j < 4, 0x0f for j >= 4.
//   +640  halves: VPERMW index gathering the F16 d and dmin of block A
//         (words 0, 1 of the raw headers) and B (words 16, 17) into words
//         0-3.
//   +704  spreadA: VPERMPS index, lanes 0-7 lane 0, lanes 8-15 lane 1.
//   +768  spreadB: VPERMPS index, lanes 0-7 lane 2, lanes 8-15 lane 3.
DATA ·q4k512Const+0(SB)/8, $0x0012000200100000
DATA ·q4k512Const+8(SB)/8, $0x0016000600140004
DATA ·q4k512Const+16(SB)/8, $0x001a000a00180008
DATA ·q4k512Const+24(SB)/8, $0x001e000e001c000c
DATA ·q4k512Const+32(SB)/8, $0x0032002200300020
DATA ·q4k512Const+40(SB)/8, $0x0036002600340024
DATA ·q4k512Const+48(SB)/8, $0x003a002a00380028
DATA ·q4k512Const+56(SB)/8, $0x003e002e003c002c
DATA ·q4k512Const+64(SB)/8, $0x0001000000010000
DATA ·q4k512Const+72(SB)/8, $0x0001000000010000
DATA ·q4k512Const+80(SB)/8, $0x0001000000010000
DATA ·q4k512Const+88(SB)/8, $0x0001000000010000
DATA ·q4k512Const+96(SB)/8, $0x0011001000110010
DATA ·q4k512Const+104(SB)/8, $0x0011001000110010
DATA ·q4k512Const+112(SB)/8, $0x0011001000110010
DATA ·q4k512Const+120(SB)/8, $0x0011001000110010
DATA ·q4k512Const+128(SB)/8, $0x0003000200030002
DATA ·q4k512Const+136(SB)/8, $0x0003000200030002
DATA ·q4k512Const+144(SB)/8, $0x0003000200030002
DATA ·q4k512Const+152(SB)/8, $0x0003000200030002
DATA ·q4k512Const+160(SB)/8, $0x0013001200130012
DATA ·q4k512Const+168(SB)/8, $0x0013001200130012
DATA ·q4k512Const+176(SB)/8, $0x0013001200130012
DATA ·q4k512Const+184(SB)/8, $0x0013001200130012
DATA ·q4k512Const+192(SB)/8, $0x0005000400050004
DATA ·q4k512Const+200(SB)/8, $0x0005000400050004
DATA ·q4k512Const+208(SB)/8, $0x0005000400050004
DATA ·q4k512Const+216(SB)/8, $0x0005000400050004
DATA ·q4k512Const+224(SB)/8, $0x0015001400150014
DATA ·q4k512Const+232(SB)/8, $0x0015001400150014
DATA ·q4k512Const+240(SB)/8, $0x0015001400150014
DATA ·q4k512Const+248(SB)/8, $0x0015001400150014
DATA ·q4k512Const+256(SB)/8, $0x0007000600070006
DATA ·q4k512Const+264(SB)/8, $0x0007000600070006
DATA ·q4k512Const+272(SB)/8, $0x0007000600070006
DATA ·q4k512Const+280(SB)/8, $0x0007000600070006
DATA ·q4k512Const+288(SB)/8, $0x0017001600170016
DATA ·q4k512Const+296(SB)/8, $0x0017001600170016
DATA ·q4k512Const+304(SB)/8, $0x0017001600170016
DATA ·q4k512Const+312(SB)/8, $0x0017001600170016
DATA ·q4k512Const+320(SB)/8, $0x0009000900080008
DATA ·q4k512Const+328(SB)/8, $0x000b000b000a000a
DATA ·q4k512Const+336(SB)/8, $0x000d000d000c000c
DATA ·q4k512Const+344(SB)/8, $0x000f000f000e000e
DATA ·q4k512Const+352(SB)/8, $0x0019001900180018
DATA ·q4k512Const+360(SB)/8, $0x001b001b001a001a
DATA ·q4k512Const+368(SB)/8, $0x001d001d001c001c
DATA ·q4k512Const+376(SB)/8, $0x001f001f001e001e
DATA ·q4k512Const+384(SB)/8, $0x8007800680058004
DATA ·q4k512Const+392(SB)/8, $0x070f060e050d040c
DATA ·q4k512Const+400(SB)/8, $0x800b800a80098008
DATA ·q4k512Const+408(SB)/8, $0x0b0f0a0e090d080c
DATA ·q4k512Const+416(SB)/8, $0x8007800680058004
DATA ·q4k512Const+424(SB)/8, $0x070f060e050d040c
DATA ·q4k512Const+432(SB)/8, $0x800b800a80098008
DATA ·q4k512Const+440(SB)/8, $0x0b0f0a0e090d080c
DATA ·q4k512Const+448(SB)/8, $0x0000000000000000
DATA ·q4k512Const+456(SB)/8, $0x0000000000000000
DATA ·q4k512Const+464(SB)/8, $0x0000000000000000
DATA ·q4k512Const+472(SB)/8, $0x0004000400040004
DATA ·q4k512Const+480(SB)/8, $0x0000000000000000
DATA ·q4k512Const+488(SB)/8, $0x0000000000000000
DATA ·q4k512Const+496(SB)/8, $0x0000000000000000
DATA ·q4k512Const+504(SB)/8, $0x0004000400040004
DATA ·q4k512Const+512(SB)/8, $0x0010001000100010
DATA ·q4k512Const+520(SB)/8, $0x000a000a000a000a
DATA ·q4k512Const+528(SB)/8, $0x0010001000100010
DATA ·q4k512Const+536(SB)/8, $0x000a000a000a000a
DATA ·q4k512Const+544(SB)/8, $0x0010001000100010
DATA ·q4k512Const+552(SB)/8, $0x000a000a000a000a
DATA ·q4k512Const+560(SB)/8, $0x0010001000100010
DATA ·q4k512Const+568(SB)/8, $0x000a000a000a000a
DATA ·q4k512Const+576(SB)/8, $0x003f003f003f003f
DATA ·q4k512Const+584(SB)/8, $0x000f000f000f000f
DATA ·q4k512Const+592(SB)/8, $0x003f003f003f003f
DATA ·q4k512Const+600(SB)/8, $0x000f000f000f000f
DATA ·q4k512Const+608(SB)/8, $0x003f003f003f003f
DATA ·q4k512Const+616(SB)/8, $0x000f000f000f000f
DATA ·q4k512Const+624(SB)/8, $0x003f003f003f003f
DATA ·q4k512Const+632(SB)/8, $0x000f000f000f000f
DATA ·q4k512Const+640(SB)/8, $0x0011001000010000
DATA ·q4k512Const+648(SB)/8, $0x0000000000000000
DATA ·q4k512Const+656(SB)/8, $0x0000000000000000
DATA ·q4k512Const+664(SB)/8, $0x0000000000000000
DATA ·q4k512Const+672(SB)/8, $0x0000000000000000
DATA ·q4k512Const+680(SB)/8, $0x0000000000000000
DATA ·q4k512Const+688(SB)/8, $0x0000000000000000
DATA ·q4k512Const+696(SB)/8, $0x0000000000000000
DATA ·q4k512Const+704(SB)/8, $0x0000000000000000
DATA ·q4k512Const+712(SB)/8, $0x0000000000000000
DATA ·q4k512Const+720(SB)/8, $0x0000000000000000
DATA ·q4k512Const+728(SB)/8, $0x0000000000000000
DATA ·q4k512Const+736(SB)/8, $0x0000000100000001
DATA ·q4k512Const+744(SB)/8, $0x0000000100000001
DATA ·q4k512Const+752(SB)/8, $0x0000000100000001
DATA ·q4k512Const+760(SB)/8, $0x0000000100000001
DATA ·q4k512Const+768(SB)/8, $0x0000000200000002
DATA ·q4k512Const+776(SB)/8, $0x0000000200000002
DATA ·q4k512Const+784(SB)/8, $0x0000000200000002
DATA ·q4k512Const+792(SB)/8, $0x0000000200000002
DATA ·q4k512Const+800(SB)/8, $0x0000000300000003
DATA ·q4k512Const+808(SB)/8, $0x0000000300000003
DATA ·q4k512Const+816(SB)/8, $0x0000000300000003
DATA ·q4k512Const+824(SB)/8, $0x0000000300000003
GLOBL ·q4k512Const(SB), RODATA|NOPTR, $832

// Q4K512HALF(q, x, pa, pb) sets pa and pb to the 16 int32 lanes of two
// chunks: the 64 quant bytes at q(SI) (chunks c, c+1) are split into low
// and high nibbles (0..15, unsigned), and VSHUFI64X2 pairs chunk c's low
// and high nibbles (sub-blocks 2c and 2c+1, in element order) in one
// register and chunk c+1's in the other, matching the 64 contiguous quants
// at x(DI) and x+64(DI). VPDPBUSD then leaves in lane i the sum of the 4
// products of elements 4i..4i+3: lanes 0-7 are the reference's lanes of
// sub-block 2c (lanesI8 before the scale), lanes 8-15 those of 2c+1, each
// |sum| <= 4*15*128 = 7680 (exact in int32, and fits in int16). Clobbers
// Z1-Z4.
#define Q4K512HALF(q, x, pa, pb) \
	VMOVDQU64  q(SI), Z1; \
	VPSRLW     $4, Z1, Z2; \
	VPANDD     Z31, Z1, Z1; \
	VPANDD     Z31, Z2, Z2; \
	VSHUFI64X2 $0x44, Z2, Z1, Z3; \
	VSHUFI64X2 $0xee, Z2, Z1, Z4; \
	VPXORD     pa, pa, pa; \
	VPXORD     pb, pb, pb; \
	VPDPBUSD   x(DI), Z3, pa; \
	VPDPBUSD   (x+64)(DI), Z4, pb

// Q4K512PAIR(wb, xb) does blocks A (at SI, DI) and B (at wb(SI), xb(DI)) up
// to block A's fused multiply-add; Q4K512PAIRB(xb) does B's.
//
// Scales and mins: the 16 header bytes of A (lanes 0, 1) and B (lanes 2,
// 3) are shuffled into words (ushuf), and (w >> ucntA) & umask | (w >>
// ucntB) & ~umask gives 32 int16s: each block's 8 scales then 8 mins,
// scaleMinK4's values (for j >= 4 the low nibble and the top two bits of
// the other byte; ucntB's shift leaves only bits 4 and 5 above umask).
// VPERMW spreads them into the scale pairs svec0..3 and the doubled mins.
//
// Min terms: VPMADDWD of the 16 group sums of A (low half) and B (high
// half) with each min twice gives lane j = m_j*(g_2j + g_2j+1) =
// m_j*bsum32(j), exact in int32 for any int16 group sums (|m_j| <= 63), and
// lanes 2k and 2k+1 added give minTerms' p_k of block A (lane 2k) and B
// (lane 8+2k). They are kept negated (Z17), exact.
//
// Lanes: for each chunk c, VPERMT2W packs A's and B's 4-element sums into
// int16 pairs (pack) and VPMADDWD/VPDPWSSD with svec_c add sc_2c*sum +
// sc_2c+1*sum per int32 lane: after the four chunks lane k < 8 is the
// reference's lane k of A (kLanes summed over the 8 sub-blocks, |lane| <=
// 8*63*7680 < 2^22) and lane 8+k that of B, exact.
//
// Floats: for block A the vector [A's 8 lanes, A's negated min terms in
// lanes 8, 10, 12, 14] (VSHUFI64X2) is converted to float32 (exactly, all
// below 2^24) and fused-multiply-added into Z0 with [d x8, e x8], d =
// x.d*F16(w.d) and e = x.d*F16(w.dmin), each one rounding of the same
// product the reference rounds (the four halves of A and B are converted
// exactly by one VCVTPH2PS and spread with VPERMPS). Lanes 0-7 are
// accLanes. Lanes 8+2k are fma(e, -p_k, accM[k]) = fma(-e, p_k, accM[k]),
// the product's sign flipping exactly, and -e is the reference's dmin =
// -x.d*F16(w.dmin) bit for bit. Lanes 9, 11, 13, 15 gather unused values.
// Block B the same with the upper halves, after A.
//
// Registers: Z1-Z4 Q4K512HALF's; Z5-Z8 A's chunk sums, then the packed
// pairs; Z9 the raw headers, then the four halves as float32, then B's
// multipliers; Z10 the shuffled words, then A's multipliers; Z11 the scale
// words, then B's sums and the lanes; Z12-Z15 svec0..3; Z16 the doubled
// mins, then B's sums; Z17 the negated min terms.
#define Q4K512PAIR(wb, xb) \
	VBROADCASTI32X4 (SI), Z9; \
	VBROADCASTI32X4 wb(SI), K1, Z9; \
	VPSHUFB         ·q4k512Const+384(SB), Z9, Z10; \
	VPSRLVW         Z23, Z10, Z11; \
	VPSRLVW         Z22, Z10, Z12; \
	VPTERNLOGD      $0xe4, Z21, Z12, Z11; \
	VPERMW          Z11, Z29, Z12; \
	VPERMW          Z11, Z28, Z13; \
	VPERMW          Z11, Z27, Z14; \
	VPERMW          Z11, Z26, Z15; \
	VPERMW          Z11, Z25, Z16; \
	VPERMW          Z9, Z24, Z9; \
	VCVTPH2PS       X9, X9; \
	VPERMPS         Z9, Z20, Z10; \
	VPERMPS         Z9, Z19, Z9; \
	VMOVDQU         260(DI), Y11; \
	VINSERTI64X4    $1, (260+xb)(DI), Z11, Z11; \
	VPMADDWD        Z16, Z11, Z11; \
	VPSRLQ          $32, Z11, Z16; \
	VPSUBD          Z16, Z18, Z16; \
	VPSUBD          Z11, Z16, Z17; \
	Q4K512HALF(16, 4, Z5, Z6); \
	Q4K512HALF(80, 132, Z7, Z8); \
	Q4K512HALF(16+wb, 4+xb, Z11, Z16); \
	VPERMT2W        Z11, Z30, Z5; \
	VPERMT2W        Z16, Z30, Z6; \
	Q4K512HALF(80+wb, 132+xb, Z11, Z16); \
	VPERMT2W        Z11, Z30, Z7; \
	VPERMT2W        Z16, Z30, Z8; \
	VPMADDWD        Z12, Z5, Z11; \
	VPDPWSSD        Z13, Z6, Z11; \
	VPDPWSSD        Z14, Z7, Z11; \
	VPDPWSSD        Z15, Z8, Z11; \
	VSHUFI64X2      $0x44, Z17, Z11, Z3; \
	VCVTDQ2PS       Z3, Z3; \
	VMULPS.BCST     (DI), Z10, Z10; \
	VFMADD231PS     Z10, Z3, Z0

#define Q4K512PAIRB(xb) \
	VSHUFI64X2      $0xee, Z17, Z11, Z4; \
	VCVTDQ2PS       Z4, Z4; \
	VMULPS.BCST     xb(DI), Z9, Z9; \
	VFMADD231PS     Z9, Z4, Z0

// func dotQ4_KQ8_KAVX512(w, x *byte, nb int) float32
//
// dotQ4_KQ8_K of nb super-blocks, two per iteration (Q4K512PAIR); an odd
// last block runs the pair code with B = A and skips B's fused
// multiply-add. Z0 holds the reference's accumulators: lanes 0-7 acc,
// lanes 8, 10, 12, 14 accM[0..3]. At the end hsum8 of lanes 0-7 (HSUM8)
// plus (accM[0]+accM[2]) + (accM[1]+accM[3]), as the reference.
//
// Constants: Z31 0x0f bytes, Z30 pack, Z29-Z26 svec0..3, Z25 m2, Z24
// halves, Z23 ucntA, Z22 ucntB, Z21 umask, Z20 spreadA, Z19 spreadB, Z18
// zero, K1 the upper 256 bits (dwords 8-15); ushuf is a memory operand. SI
// w, DI x, CX blocks left minus 2.
TEXT ·dotQ4_KQ8_KAVX512(SB), NOSPLIT, $0-28
	MOVQ         w+0(FP), SI
	MOVQ         x+8(FP), DI
	MOVQ         nb+16(FP), CX
	VPXORD       Z0, Z0, Z0
	VPXORD       Z18, Z18, Z18
	MOVL         $0x0f0f0f0f, AX
	VPBROADCASTD AX, Z31
	MOVL         $0xff00, AX
	KMOVW        AX, K1
	VMOVDQU64    ·q4k512Const+0(SB), Z30
	VMOVDQU64    ·q4k512Const+64(SB), Z29
	VMOVDQU64    ·q4k512Const+128(SB), Z28
	VMOVDQU64    ·q4k512Const+192(SB), Z27
	VMOVDQU64    ·q4k512Const+256(SB), Z26
	VMOVDQU64    ·q4k512Const+320(SB), Z25
	VMOVDQU64    ·q4k512Const+640(SB), Z24
	VMOVDQU64    ·q4k512Const+448(SB), Z23
	VMOVDQU64    ·q4k512Const+512(SB), Z22
	VMOVDQU64    ·q4k512Const+576(SB), Z21
	VMOVDQU64    ·q4k512Const+704(SB), Z20
	VMOVDQU64    ·q4k512Const+768(SB), Z19
	SUBQ         $2, CX
	JLT          tail

loop:
	Q4K512PAIR(144, 292)
	Q4K512PAIRB(292)
	ADDQ $288, SI
	ADDQ $584, DI
	SUBQ $2, CX
	JGE  loop

tail:
	// CX is -1 if one block is left, -2 if none.
	CMPQ CX, $-1
	JNE  done
	Q4K512PAIR(0, 0)

done:
	// Y4 = lanes 8-15 (accM[k] in its lane 2k), taken before HSUM8's VEX
	// operations clear them; then X0 = hsum8(acc) and X4 =
	// (accM[0]+accM[2]) + (accM[1]+accM[3]).
	VEXTRACTF64X4 $1, Z0, Y4
	HSUM8
	VEXTRACTF128  $1, Y4, X5
	VADDPS        X5, X4, X4
	VMOVHLPS      X4, X4, X5
	VADDSS        X5, X4, X4
	VADDSS        X4, X0, X0
	VZEROUPPER
	MOVSS         X0, ret+24(FP)
	RET

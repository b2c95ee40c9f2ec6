//go:build amd64 && !purego

#include "textflag.h"

// A 4-token AVX-512 (F, BW) and AVX-512 VNNI version of dotQ6_KQ8_K
// (dot.go) for prompt processing: each Q6_K super-block of one weight row
// is unpacked once (its 6-bit quants minus 32 into four Z registers of
// int8, its 16 int8 scales into word vectors) and applied to 4 Q8_K
// activation rows. Each of the 4 results is bitwise dotQ6_KQ8_K (and so
// dotQ6_KQ8_KAVX512): every integer converted to float32 is one of the
// reference's exact int32 lanes (integer sums are exact in any order when
// nothing saturates or overflows, and the bounds below hold for any Q6_K
// bytes and any Q8_K quants, -128 included), and every float operation is
// the reference's, on the same operands, per token in the reference's
// order; the 4 tokens' float lanes only share registers.
//
// Q6_K block (210 bytes): ql (128 bytes) at 0, qh (64) at 128, 16 int8
// scales at 192, d F16 at 208. Half n (n = 0, 1) takes ql[64n..64n+63] and
// qh[32n..32n+31]; its chunk k (k = 0..3) of 32 weights goes with the
// activations 128n+32k.., its first 16 weights with scale 8n+2k, its last
// 16 with 8n+2k+1. Q8_K block (292 bytes): d float32 at 0, 256 int8 quants
// at 4.
//
// Per super-block:
//
// Weights: for half n, as in q6k512_amd64.s, the 64 ql bytes and the 32
// qh bytes (in both halves, the upper one shifted right by 2, masked with
// 0x33) give by two bitwise selects the 6-bit quants of chunks 4n, 4n+1
// (W_2n) and 4n+2, 4n+3 (W_2n+1), each the 64 weights of 64 contiguous
// activations (at 4+64r for W_r); VPSUBB makes them q-32 in [-32, 31].
//
// Scales: VPMOVSXBW and VPERMW (perm_r) give S_r, 128-bit lane L = 8
// copies of scale 4r+L: the scale of the 16 weights of W_r that lane's
// pairs come from.
//
// Lanes: the activations x in [-128, 127] are taken as x' = x^0x80 = x+128
// in [0, 255] (unsigned), so VPMADDUBSW of x' by W_r (signed) gives int16
// pair sums of x'*(q-32) in [-16320, 15810], without saturation, and
// VPDPWSSD by S_r adds s*(4-element sum) into R_t (Z0-Z3): dword i < 8 =
// lane i of the even chunks, dword 8+i lane i of the odd ones. Since
// x'*(q-32) = x*(q-32) + 128*(q-32), R_t starts at -C, C the same sums of
// 128*(q-32) (VPMADDUBSW of 0x80 bytes by W_r, once per super-block for
// the 4 tokens). Every partial sum stays below 2^25 in magnitude, and
// dword i plus dword 8+i is the reference's lane i (l[i] over the two
// halves), exact; VSHUFI64X2 and VPADDD make [token 0's 8 lanes, token
// 1's] and [token 2's, token 3's], converted to float32 as the reference
// converts l (VCVTDQ2PS rounds to nearest even above 2^24, as Go does).
//
// Floats: d_t = x_t.d*F16(w.d), one rounding of the reference's product
// (VCVTPH2PS is exact), spread by VPERMPS: FA01 (Z19) lanes 8t+k (t = 0, 1)
// and FA23 (Z20) lanes 8(t-2)+k get fma(d_t, float32(l[k]), acc)
// (VFMADD231PS), block after block as accLanes. At the end, per token,
// hsum8 of its 8 lanes in hsum8's order (upper four onto lower four, lanes
// 2,3 onto 0,1, lane 1 onto 0), the four tokens in the four 128-bit lanes
// of the same registers.

// q6k512TConst<> holds the vector constants (64 bytes each):
//   +0    perm0..3 (+64r): VPERMW indices, 128-bit lane L = 8 copies of
//         4r+L.
//   +256  shift: VPSRLVQ counts, 0 in the lower 256 bits, 2 in the upper.
//   +320  spreadA, +384 spreadB: VPERMPS indices [0 x8, 1 x8] and
//         [2 x8, 3 x8].
DATA q6k512TConst<>+0(SB)/8, $0x0000000000000000
DATA q6k512TConst<>+8(SB)/8, $0x0000000000000000
DATA q6k512TConst<>+16(SB)/8, $0x0001000100010001
DATA q6k512TConst<>+24(SB)/8, $0x0001000100010001
DATA q6k512TConst<>+32(SB)/8, $0x0002000200020002
DATA q6k512TConst<>+40(SB)/8, $0x0002000200020002
DATA q6k512TConst<>+48(SB)/8, $0x0003000300030003
DATA q6k512TConst<>+56(SB)/8, $0x0003000300030003
DATA q6k512TConst<>+64(SB)/8, $0x0004000400040004
DATA q6k512TConst<>+72(SB)/8, $0x0004000400040004
DATA q6k512TConst<>+80(SB)/8, $0x0005000500050005
DATA q6k512TConst<>+88(SB)/8, $0x0005000500050005
DATA q6k512TConst<>+96(SB)/8, $0x0006000600060006
DATA q6k512TConst<>+104(SB)/8, $0x0006000600060006
DATA q6k512TConst<>+112(SB)/8, $0x0007000700070007
DATA q6k512TConst<>+120(SB)/8, $0x0007000700070007
DATA q6k512TConst<>+128(SB)/8, $0x0008000800080008
DATA q6k512TConst<>+136(SB)/8, $0x0008000800080008
DATA q6k512TConst<>+144(SB)/8, $0x0009000900090009
DATA q6k512TConst<>+152(SB)/8, $0x0009000900090009
DATA q6k512TConst<>+160(SB)/8, $0x000a000a000a000a
DATA q6k512TConst<>+168(SB)/8, $0x000a000a000a000a
DATA q6k512TConst<>+176(SB)/8, $0x000b000b000b000b
DATA q6k512TConst<>+184(SB)/8, $0x000b000b000b000b
DATA q6k512TConst<>+192(SB)/8, $0x000c000c000c000c
DATA q6k512TConst<>+200(SB)/8, $0x000c000c000c000c
DATA q6k512TConst<>+208(SB)/8, $0x000d000d000d000d
DATA q6k512TConst<>+216(SB)/8, $0x000d000d000d000d
DATA q6k512TConst<>+224(SB)/8, $0x000e000e000e000e
DATA q6k512TConst<>+232(SB)/8, $0x000e000e000e000e
DATA q6k512TConst<>+240(SB)/8, $0x000f000f000f000f
DATA q6k512TConst<>+248(SB)/8, $0x000f000f000f000f
DATA q6k512TConst<>+256(SB)/8, $0x0000000000000000
DATA q6k512TConst<>+264(SB)/8, $0x0000000000000000
DATA q6k512TConst<>+272(SB)/8, $0x0000000000000000
DATA q6k512TConst<>+280(SB)/8, $0x0000000000000000
DATA q6k512TConst<>+288(SB)/8, $0x0000000000000002
DATA q6k512TConst<>+296(SB)/8, $0x0000000000000002
DATA q6k512TConst<>+304(SB)/8, $0x0000000000000002
DATA q6k512TConst<>+312(SB)/8, $0x0000000000000002
DATA q6k512TConst<>+320(SB)/8, $0x0000000000000000
DATA q6k512TConst<>+328(SB)/8, $0x0000000000000000
DATA q6k512TConst<>+336(SB)/8, $0x0000000000000000
DATA q6k512TConst<>+344(SB)/8, $0x0000000000000000
DATA q6k512TConst<>+352(SB)/8, $0x0000000100000001
DATA q6k512TConst<>+360(SB)/8, $0x0000000100000001
DATA q6k512TConst<>+368(SB)/8, $0x0000000100000001
DATA q6k512TConst<>+376(SB)/8, $0x0000000100000001
DATA q6k512TConst<>+384(SB)/8, $0x0000000200000002
DATA q6k512TConst<>+392(SB)/8, $0x0000000200000002
DATA q6k512TConst<>+400(SB)/8, $0x0000000200000002
DATA q6k512TConst<>+408(SB)/8, $0x0000000200000002
DATA q6k512TConst<>+416(SB)/8, $0x0000000300000003
DATA q6k512TConst<>+424(SB)/8, $0x0000000300000003
DATA q6k512TConst<>+432(SB)/8, $0x0000000300000003
DATA q6k512TConst<>+440(SB)/8, $0x0000000300000003
GLOBL q6k512TConst<>(SB), RODATA|NOPTR, $448

// Q6KT512W(n, wa, wb): wa = W_2n and wb = W_2n+1 (the weights of half n
// minus 32, see above). Clobbers Z13, Z14.
#define Q6KT512W(n, wa, wb) \
	VMOVDQU64       (64*n)(SI), wa; \
	VBROADCASTI64X4 (128+32*n)(SI), Z13; \
	VPSRLVQ         Z29, Z13, Z13; \
	VPANDQ          Z30, Z13, Z13; \
	VPSLLW          $4, Z13, Z14; \
	VPSRLW          $4, wa, wb; \
	VPTERNLOGD      $0xe4, Z31, Z14, wa; \
	VPTERNLOGD      $0xe4, Z31, Z13, wb; \
	VPSUBB          Z28, wa, wa; \
	VPSUBB          Z28, wb, wb

// Q6KT512TOK(xr, w, s, acc, t): acc += s times the pair sums of x'*w, x'
// the 64 quants at xr plus 128 (t scratch).
#define Q6KT512TOK(xr, w, s, acc, t) \
	VPXORD     xr, Z27, t; \
	VPMADDUBSW w, t, t; \
	VPDPWSSD   s, t, acc

// Q6KT512REG(r, w, s): Q6KT512TOK of register r for the 4 tokens.
#define Q6KT512REG(r, w, s) \
	Q6KT512TOK((4+64*r)(DI), w, s, Z0, Z13); \
	Q6KT512TOK((4+64*r)(DI)(R12*1), w, s, Z1, Z14); \
	Q6KT512TOK((4+64*r)(DI)(R12*2), w, s, Z2, Z15); \
	Q6KT512TOK((4+64*r)(DI)(R13*1), w, s, Z3, Z16)

// func dotQ6_KQ8_KTok4AVX512(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)
//
// dotQ6_KQ8_K of one Q6_K weight row of nb super-blocks at w by the 4 Q8_K
// activation rows x + t*xrb into dst[t*ldd], t < 4, each bitwise the
// reference's (see the top of this file).
//
// Registers: SI w, DI x (token t at DI + t*R12, R13 = 3*R12), CX blocks
// left. Z0-Z3 R_t, Z4-Z7 W_r, Z8-Z11 S_r, X12 the tokens' d, Z13-Z17
// scratch, Z18 -C, Z19 FA01, Z20 FA23, Z21 spreadA, Z22 spreadB, Z23-Z26
// perm0..3, Z27 0x80 bytes, Z28 0x20 bytes, Z29 shift, Z30 0x33 bytes, Z31
// 0x0f bytes. The constants stay in registers: the loop's loads are its
// tightest resource (two a cycle, those crossing a cache line, as the
// activation loads mostly do, counting twice).
TEXT ·dotQ6_KQ8_KTok4AVX512(SB), NOSPLIT, $0-48
	MOVQ         w+16(FP), SI
	MOVQ         x+24(FP), DI
	MOVQ         xrb+32(FP), R12
	MOVQ         nb+40(FP), CX
	LEAQ         (R12)(R12*2), R13
	VPXORD       Z19, Z19, Z19
	VPXORD       Z20, Z20, Z20
	TESTQ        CX, CX
	JEQ          done
	MOVL         $0x0f0f0f0f, AX
	VPBROADCASTD AX, Z31
	MOVL         $0x33333333, AX
	VPBROADCASTD AX, Z30
	MOVL         $0x20202020, AX
	VPBROADCASTD AX, Z28
	MOVL         $0x80808080, AX
	VPBROADCASTD AX, Z27
	VMOVDQU64    q6k512TConst<>+0(SB), Z23
	VMOVDQU64    q6k512TConst<>+64(SB), Z24
	VMOVDQU64    q6k512TConst<>+128(SB), Z25
	VMOVDQU64    q6k512TConst<>+192(SB), Z26
	VMOVDQU64    q6k512TConst<>+256(SB), Z29
	VMOVDQU64    q6k512TConst<>+320(SB), Z21
	VMOVDQU64    q6k512TConst<>+384(SB), Z22

loop:
	Q6KT512W(0, Z4, Z5)
	Q6KT512W(1, Z6, Z7)
	VPMOVSXBW 192(SI), Y17
	VPERMW    Z17, Z23, Z8
	VPERMW    Z17, Z24, Z9
	VPERMW    Z17, Z25, Z10
	VPERMW    Z17, Z26, Z11

	// Z18 = -C; each R_t starts there.
	VPMADDUBSW Z4, Z27, Z13
	VPMADDUBSW Z5, Z27, Z14
	VPMADDUBSW Z6, Z27, Z15
	VPMADDUBSW Z7, Z27, Z16
	VPMADDWD   Z8, Z13, Z13
	VPMADDWD   Z9, Z14, Z14
	VPDPWSSD   Z10, Z15, Z13
	VPDPWSSD   Z11, Z16, Z14
	VPADDD     Z14, Z13, Z13
	VPXORD     Z18, Z18, Z18
	VPSUBD     Z13, Z18, Z18
	VMOVDQA64  Z18, Z0
	VMOVDQA64  Z18, Z1
	VMOVDQA64  Z18, Z2
	VMOVDQA64  Z18, Z3

	Q6KT512REG(0, Z4, Z8)
	Q6KT512REG(1, Z5, Z9)
	Q6KT512REG(2, Z6, Z10)
	Q6KT512REG(3, Z7, Z11)

	// X12 = [d_0..d_3].
	VMOVSS       (DI), X12
	VINSERTPS    $0x10, (DI)(R12*1), X12, X12
	VINSERTPS    $0x20, (DI)(R12*2), X12, X12
	VINSERTPS    $0x30, (DI)(R13*1), X12, X12
	VPBROADCASTW 208(SI), X13
	VCVTPH2PS    X13, X13
	VMULPS       X13, X12, X12

	// The lanes of tokens 0, 1 (Z13) and 2, 3 (Z15), fused-multiply-added.
	VSHUFI64X2  $0x44, Z1, Z0, Z13
	VSHUFI64X2  $0xee, Z1, Z0, Z14
	VPADDD      Z14, Z13, Z13
	VSHUFI64X2  $0x44, Z3, Z2, Z15
	VSHUFI64X2  $0xee, Z3, Z2, Z16
	VPADDD      Z16, Z15, Z15
	VCVTDQ2PS   Z13, Z13
	VCVTDQ2PS   Z15, Z15
	VPERMPS     Z12, Z21, Z14
	VPERMPS     Z12, Z22, Z16
	VFMADD231PS Z14, Z13, Z19
	VFMADD231PS Z16, Z15, Z20

	ADDQ $210, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  loop

done:
	// Z0 lane 4t = hsum8 of token t's lanes: its upper four onto its lower
	// four (VSHUFF32X4 puts token t's halves in 128-bit lane t of Z0 and
	// Z1), lanes 2,3 onto 0,1, lane 1 onto 0.
	VSHUFF32X4    $0x88, Z20, Z19, Z0
	VSHUFF32X4    $0xdd, Z20, Z19, Z1
	VADDPS        Z1, Z0, Z0
	VSHUFPS       $0x4e, Z0, Z0, Z1
	VADDPS        Z1, Z0, Z0
	VMOVSHDUP     Z0, Z1
	VADDPS        Z1, Z0, Z0
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

//go:build amd64 && !purego

#include "textflag.h"
#include "hsum_amd64.h"

// The AVX-512 Q6_K x Q8_K dot of one row. Besides AVX2, FMA and F16C (for
// the float part, which stays in Y registers and VEX encodings), it uses
// AVX-512 F and BW (Z registers, byte and word operations, VPERMW) and
// AVX-512 VNNI (VPDPWSSD): the set useAVX512 checks. No AVX-512 VL or DQ
// encoding is needed.
//
// On a Zen 5 core a super-block takes about 12.5 cycles (AVX2 kernel: 29):
// some 42 vector operations, the 14 multiplies among them on the two
// pipes that have a multiplier, so the count of operations, not a
// dependency chain, is what bounds it (a loop of two super-blocks a pass,
// finely interleaved, measured at most 3% faster, so it is not kept).

// q6k512Perm<>: the VPERMW indices that spread a super-block's 16 int8
// scales (sign-extended to words) over the four Z registers of word pair
// sums: register j (chunks 2j and 2j+1 of 32 weights) holds in its 128-bit
// lane k (dwords 4k..4k+3, which are lanes 0-3 or 4-7 of one chunk) eight
// copies of scale 4j+k.
DATA q6k512Perm<>+0(SB)/8, $0x0000000000000000
DATA q6k512Perm<>+8(SB)/8, $0x0000000000000000
DATA q6k512Perm<>+16(SB)/8, $0x0001000100010001
DATA q6k512Perm<>+24(SB)/8, $0x0001000100010001
DATA q6k512Perm<>+32(SB)/8, $0x0002000200020002
DATA q6k512Perm<>+40(SB)/8, $0x0002000200020002
DATA q6k512Perm<>+48(SB)/8, $0x0003000300030003
DATA q6k512Perm<>+56(SB)/8, $0x0003000300030003
DATA q6k512Perm<>+64(SB)/8, $0x0004000400040004
DATA q6k512Perm<>+72(SB)/8, $0x0004000400040004
DATA q6k512Perm<>+80(SB)/8, $0x0005000500050005
DATA q6k512Perm<>+88(SB)/8, $0x0005000500050005
DATA q6k512Perm<>+96(SB)/8, $0x0006000600060006
DATA q6k512Perm<>+104(SB)/8, $0x0006000600060006
DATA q6k512Perm<>+112(SB)/8, $0x0007000700070007
DATA q6k512Perm<>+120(SB)/8, $0x0007000700070007
DATA q6k512Perm<>+128(SB)/8, $0x0008000800080008
DATA q6k512Perm<>+136(SB)/8, $0x0008000800080008
DATA q6k512Perm<>+144(SB)/8, $0x0009000900090009
DATA q6k512Perm<>+152(SB)/8, $0x0009000900090009
DATA q6k512Perm<>+160(SB)/8, $0x000a000a000a000a
DATA q6k512Perm<>+168(SB)/8, $0x000a000a000a000a
DATA q6k512Perm<>+176(SB)/8, $0x000b000b000b000b
DATA q6k512Perm<>+184(SB)/8, $0x000b000b000b000b
DATA q6k512Perm<>+192(SB)/8, $0x000c000c000c000c
DATA q6k512Perm<>+200(SB)/8, $0x000c000c000c000c
DATA q6k512Perm<>+208(SB)/8, $0x000d000d000d000d
DATA q6k512Perm<>+216(SB)/8, $0x000d000d000d000d
DATA q6k512Perm<>+224(SB)/8, $0x000e000e000e000e
DATA q6k512Perm<>+232(SB)/8, $0x000e000e000e000e
DATA q6k512Perm<>+240(SB)/8, $0x000f000f000f000f
DATA q6k512Perm<>+248(SB)/8, $0x000f000f000f000f

GLOBL q6k512Perm<>(SB), RODATA|NOPTR, $256

// q6k512Shift<>: VPSRLVQ counts that leave the 32 qh bytes of a half
// super-block (broadcast to both halves of a Z register) as they are in
// the low 256 bits and shift them right by 2 in the high 256 bits.
DATA q6k512Shift<>+0(SB)/8, $0
DATA q6k512Shift<>+8(SB)/8, $0
DATA q6k512Shift<>+16(SB)/8, $0
DATA q6k512Shift<>+24(SB)/8, $0
DATA q6k512Shift<>+32(SB)/8, $2
DATA q6k512Shift<>+40(SB)/8, $2
DATA q6k512Shift<>+48(SB)/8, $2
DATA q6k512Shift<>+56(SB)/8, $2
GLOBL q6k512Shift<>(SB), RODATA|NOPTR, $64

// q6k512Bytes<>: the byte masks 0x0f and 0x33 and the byte 0x20 (32), each
// as a dword to broadcast.
DATA q6k512Bytes<>+0(SB)/4, $0x0f0f0f0f
DATA q6k512Bytes<>+4(SB)/4, $0x33333333
DATA q6k512Bytes<>+8(SB)/4, $0x20202020
GLOBL q6k512Bytes<>(SB), RODATA|NOPTR, $12

// Q6K512_HALF adds to Z8 the int32 lanes of half n (128 weights, chunks
// 4n..4n+3 of 32) of the super-block at SI against the Q8_K block at DI:
// each dword is s*Σ(q-32)*x over 4 consecutive weights of one chunk, s the
// int8 scale of their 16. first is VPMADDWD for the first half (Z8 = the
// products) and VPDPWSSD for the second (Z8 += them); ia and ib are the
// VPERMW indices that take the scales of the half's two registers of
// weights out of Z6 (the block's 16 scales as words) into Z16 and Z17.
// Constants: Z31 0x0f bytes, Z30 0x33 bytes, Z29 q6k512Shift, Z28 0x20
// bytes.
//
// With L the half's 64 ql bytes (Z12) and H its 32 qh bytes in both
// halves of Z13, M = (H >> [0 | 2]) & 0x33 holds in its low 256 bits the
// high bits of chunk 4n (bits 0,1) and chunk 4n+2 (bits 4,5), in its high
// 256 bits those of chunks 4n+1 and 4n+3, and zeros elsewhere. So the
// 6-bit q of chunks 4n, 4n+1 is L's bits 0-3 under M<<4's bits 4-7, and
// that of chunks 4n+2, 4n+3 is L>>4's bits 0-3 under M's bits 4-7: two
// bitwise selects (VPTERNLOGD 0xe4: Z31 ? first : second). Each register
// of q (two chunks) goes with 64 contiguous activations (Z20, Z21).
// VPMADDUBSW of q (0..63, unsigned) against x (-128..127) gives exact
// int16 pair sums (|sum| <= 16128), and of 0x20 against x 32*(x0+x1)
// (|.| <= 8192); their difference is the pair sum of (q-32)*x, exact in
// int16 (in [-8128, 8192]). VPDPWSSD multiplies the pairs by their scale
// and adds each dword's two into Z8 in int32, without saturation: no lane
// exceeds 2^25 in magnitude over the super-block.
#define Q6K512_HALF(n, first, ia, ib) \
	VMOVDQU64       (64*n)(SI), Z12; \
	VBROADCASTI64X4 (128+32*n)(SI), Z13; \
	VMOVDQU64       (4+128*n)(DI), Z20; \
	VMOVDQU64       (68+128*n)(DI), Z21; \
	VPSRLVQ         Z29, Z13, Z13; \
	VPANDQ          Z30, Z13, Z13; \
	VPSLLW          $4, Z13, Z14; \
	VPSRLW          $4, Z12, Z15; \
	VPTERNLOGD      $0xe4, Z31, Z14, Z12; \
	VPTERNLOGD      $0xe4, Z31, Z13, Z15; \
	VPMADDUBSW      Z20, Z12, Z12; \
	VPMADDUBSW      Z20, Z28, Z20; \
	VPMADDUBSW      Z21, Z15, Z15; \
	VPMADDUBSW      Z21, Z28, Z21; \
	VPSUBW          Z20, Z12, Z12; \
	VPSUBW          Z21, Z15, Z15; \
	VPERMW          Z6, ia, Z16; \
	VPERMW          Z6, ib, Z17; \
	first           Z16, Z12, Z8; \
	VPDPWSSD        Z17, Z15, Z8

// func dotQ6_KQ8_KAVX512(w, x *byte, nb int) float32
//
// dotQ6_KQ8_K over nb super-blocks in AVX-512 (F, BW) and AVX-512 VNNI.
// Per super-block, four Z registers of 64 weights (two chunks of 32) give
// 16 exact int32 lanes (Q6K512_HALF), the reference's lanes 0-7 of the
// even chunks in dwords 0-7 and of the odd chunks in dwords 8-15; adding
// the upper 8 to the lower 8 as integers leaves the reference's 8 lane
// integers l (integer sums are exact in any order). Then, as in the
// reference and dotQ6_KQ8_KAVX2, acc = fma(d, float32(l), acc) with
// d = x.d*F16(w.d) rounded once (VCVTPH2PS is exact), super-block after
// super-block, and at the end hsum8's order (HSUM8): the same float
// operations on the same values, so the result is bitwise
// dotQ6_KQ8_KAVX2's and the reference's.
TEXT ·dotQ6_KQ8_KAVX512(SB), NOSPLIT, $0-28
	MOVQ   w+0(FP), SI
	MOVQ   x+8(FP), DI
	MOVQ   nb+16(FP), CX
	VXORPS Y0, Y0, Y0
	TESTQ  CX, CX
	JEQ    done

	VPBROADCASTD q6k512Bytes<>+0(SB), Z31
	VPBROADCASTD q6k512Bytes<>+4(SB), Z30
	VPBROADCASTD q6k512Bytes<>+8(SB), Z28
	VMOVDQU64    q6k512Shift<>(SB), Z29
	VMOVDQU64    q6k512Perm<>+0(SB), Z24
	VMOVDQU64    q6k512Perm<>+64(SB), Z25
	VMOVDQU64    q6k512Perm<>+128(SB), Z26
	VMOVDQU64    q6k512Perm<>+192(SB), Z27

loop:
	VPMOVSXBW 192(SI), Y6
	Q6K512_HALF(0, VPMADDWD, Z24, Z25)
	Q6K512_HALF(1, VPDPWSSD, Z26, Z27)

	VEXTRACTI64X4 $1, Z8, Y9
	VPADDD        Y9, Y8, Y9
	VCVTDQ2PS     Y9, Y9
	VPBROADCASTW  208(SI), X10
	VCVTPH2PS     X10, Y10
	VBROADCASTSS  (DI), Y11
	VMULPS        Y11, Y10, Y10
	VFMADD231PS   Y10, Y9, Y0
	ADDQ          $210, SI
	ADDQ          $292, DI
	DECQ          CX
	JNZ           loop

done:
	HSUM8
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

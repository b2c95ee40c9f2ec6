//go:build amd64 && !purego

#include "textflag.h"
#include "hsum_amd64.h"
#include "kscales_amd64.h"

// The AVX-512 Q5_K x Q8_K dot of one row, built like dotQ6_KQ8_KAVX512
// (q6k512_amd64.s). Besides AVX2, FMA and F16C (for the float part and the
// mins, which stay in X and Y registers and VEX encodings), it uses
// AVX-512 F and BW (Z registers, byte and word operations, VPERMW,
// VPROLVQ, VPTERNLOGD) and AVX-512 VNNI (VPDPWSSD): the set useAVX512
// checks. No AVX-512 VL or DQ encoding is needed.
//
// On a Zen 5 core a super-block takes about 13 cycles with the data in L1
// (the AVX2 kernel: about 27): some 50 vector operations, 31 of them the
// four chunks of 64 weights (Q5K512_CHUNK: 7 each) and the fifth bits, at
// about 3.5 a cycle whatever their mix, so the count of vector operations
// is what bounds it; the scalar unpacking of the scales (KSCALES) runs
// alongside. Variants measured no faster, within the machine's noise of a
// few percent: two super-blocks a pass sharing the reduction of the mins
// and the float part, the scales unpacked with vector operations, the
// summs kept in a ninth float lane, two integer accumulators, shifts
// instead of rotations for the fifth bits. Scales and mins passed through
// the stack (a GP store read back by a vector load) were slower.

// q5k512Perm<>: VPERMW indices into the block's 16 words sc_0..sc_7,
// m_0..m_7 (scales, then mins). Bytes 64c..64c+63 (c = 0..3) put sc_2c in
// the 16 words of the low 256 bits and sc_2c+1 in the 16 of the high 256
// bits: the scales of chunk c's two sub-blocks. Bytes 256..287 give the
// 16 words m_0,m_0,m_1,m_1,...,m_7,m_7, each min against its two int16
// group sums (the rest is padding to a Z load).
DATA q5k512Perm<>+0(SB)/8, $0x0000000000000000
DATA q5k512Perm<>+8(SB)/8, $0x0000000000000000
DATA q5k512Perm<>+16(SB)/8, $0x0000000000000000
DATA q5k512Perm<>+24(SB)/8, $0x0000000000000000
DATA q5k512Perm<>+32(SB)/8, $0x0001000100010001
DATA q5k512Perm<>+40(SB)/8, $0x0001000100010001
DATA q5k512Perm<>+48(SB)/8, $0x0001000100010001
DATA q5k512Perm<>+56(SB)/8, $0x0001000100010001
DATA q5k512Perm<>+64(SB)/8, $0x0002000200020002
DATA q5k512Perm<>+72(SB)/8, $0x0002000200020002
DATA q5k512Perm<>+80(SB)/8, $0x0002000200020002
DATA q5k512Perm<>+88(SB)/8, $0x0002000200020002
DATA q5k512Perm<>+96(SB)/8, $0x0003000300030003
DATA q5k512Perm<>+104(SB)/8, $0x0003000300030003
DATA q5k512Perm<>+112(SB)/8, $0x0003000300030003
DATA q5k512Perm<>+120(SB)/8, $0x0003000300030003
DATA q5k512Perm<>+128(SB)/8, $0x0004000400040004
DATA q5k512Perm<>+136(SB)/8, $0x0004000400040004
DATA q5k512Perm<>+144(SB)/8, $0x0004000400040004
DATA q5k512Perm<>+152(SB)/8, $0x0004000400040004
DATA q5k512Perm<>+160(SB)/8, $0x0005000500050005
DATA q5k512Perm<>+168(SB)/8, $0x0005000500050005
DATA q5k512Perm<>+176(SB)/8, $0x0005000500050005
DATA q5k512Perm<>+184(SB)/8, $0x0005000500050005
DATA q5k512Perm<>+192(SB)/8, $0x0006000600060006
DATA q5k512Perm<>+200(SB)/8, $0x0006000600060006
DATA q5k512Perm<>+208(SB)/8, $0x0006000600060006
DATA q5k512Perm<>+216(SB)/8, $0x0006000600060006
DATA q5k512Perm<>+224(SB)/8, $0x0007000700070007
DATA q5k512Perm<>+232(SB)/8, $0x0007000700070007
DATA q5k512Perm<>+240(SB)/8, $0x0007000700070007
DATA q5k512Perm<>+248(SB)/8, $0x0007000700070007
DATA q5k512Perm<>+256(SB)/8, $0x0009000900080008
DATA q5k512Perm<>+264(SB)/8, $0x000b000b000a000a
DATA q5k512Perm<>+272(SB)/8, $0x000d000d000c000c
DATA q5k512Perm<>+280(SB)/8, $0x000f000f000e000e
DATA q5k512Perm<>+288(SB)/8, $0x0000000000000000
DATA q5k512Perm<>+296(SB)/8, $0x0000000000000000
DATA q5k512Perm<>+304(SB)/8, $0x0000000000000000
DATA q5k512Perm<>+312(SB)/8, $0x0000000000000000
GLOBL q5k512Perm<>(SB), RODATA|NOPTR, $320

// q5k512Rot<>: VPROLVQ counts, 64 bytes for each chunk c, that bring the
// fifth bit of chunk c's weights to bit 4 of each byte: bit 2c (sub-block
// 2c, low 256 bits) and bit 2c+1 (sub-block 2c+1, high 256 bits) of the
// qh bytes, masked as q5k512Mask leaves them: rotations left by 4 | 3,
// 2 | 1, 0 | 63 (right by 1) and 62 | 61 (right by 2 | 3).
DATA q5k512Rot<>+0(SB)/8, $4
DATA q5k512Rot<>+8(SB)/8, $4
DATA q5k512Rot<>+16(SB)/8, $4
DATA q5k512Rot<>+24(SB)/8, $4
DATA q5k512Rot<>+32(SB)/8, $3
DATA q5k512Rot<>+40(SB)/8, $3
DATA q5k512Rot<>+48(SB)/8, $3
DATA q5k512Rot<>+56(SB)/8, $3
DATA q5k512Rot<>+64(SB)/8, $2
DATA q5k512Rot<>+72(SB)/8, $2
DATA q5k512Rot<>+80(SB)/8, $2
DATA q5k512Rot<>+88(SB)/8, $2
DATA q5k512Rot<>+96(SB)/8, $1
DATA q5k512Rot<>+104(SB)/8, $1
DATA q5k512Rot<>+112(SB)/8, $1
DATA q5k512Rot<>+120(SB)/8, $1
DATA q5k512Rot<>+128(SB)/8, $0
DATA q5k512Rot<>+136(SB)/8, $0
DATA q5k512Rot<>+144(SB)/8, $0
DATA q5k512Rot<>+152(SB)/8, $0
DATA q5k512Rot<>+160(SB)/8, $63
DATA q5k512Rot<>+168(SB)/8, $63
DATA q5k512Rot<>+176(SB)/8, $63
DATA q5k512Rot<>+184(SB)/8, $63
DATA q5k512Rot<>+192(SB)/8, $62
DATA q5k512Rot<>+200(SB)/8, $62
DATA q5k512Rot<>+208(SB)/8, $62
DATA q5k512Rot<>+216(SB)/8, $62
DATA q5k512Rot<>+224(SB)/8, $61
DATA q5k512Rot<>+232(SB)/8, $61
DATA q5k512Rot<>+240(SB)/8, $61
DATA q5k512Rot<>+248(SB)/8, $61
GLOBL q5k512Rot<>(SB), RODATA|NOPTR, $256

// q5k512Shift<>: VPSRLVQ counts that leave a chunk's 32 qs bytes (in both
// halves of a Z register) as they are in the low 256 bits and shift them
// right by 4 in the high 256 bits, so that bits 0-3 of every byte hold the
// low nibble (sub-block 2c) in the low half and the high nibble
// (sub-block 2c+1) in the high half.
DATA q5k512Shift<>+0(SB)/8, $0
DATA q5k512Shift<>+8(SB)/8, $0
DATA q5k512Shift<>+16(SB)/8, $0
DATA q5k512Shift<>+24(SB)/8, $0
DATA q5k512Shift<>+32(SB)/8, $4
DATA q5k512Shift<>+40(SB)/8, $4
DATA q5k512Shift<>+48(SB)/8, $4
DATA q5k512Shift<>+56(SB)/8, $4
GLOBL q5k512Shift<>(SB), RODATA|NOPTR, $64

// q5k512Mask<>: the qh masks, bytes 0x11 | 0x22 (bits 0 and 4 in the low
// 256 bits, 1 and 5 in the high: chunks 0 and 2) and 0x44 | 0x88 (bits 2,
// 6 | 3, 7: chunks 1 and 3), then the dword 0x0f0f0f0f to broadcast.
DATA q5k512Mask<>+0(SB)/8, $0x1111111111111111
DATA q5k512Mask<>+8(SB)/8, $0x1111111111111111
DATA q5k512Mask<>+16(SB)/8, $0x1111111111111111
DATA q5k512Mask<>+24(SB)/8, $0x1111111111111111
DATA q5k512Mask<>+32(SB)/8, $0x2222222222222222
DATA q5k512Mask<>+40(SB)/8, $0x2222222222222222
DATA q5k512Mask<>+48(SB)/8, $0x2222222222222222
DATA q5k512Mask<>+56(SB)/8, $0x2222222222222222
DATA q5k512Mask<>+64(SB)/8, $0x4444444444444444
DATA q5k512Mask<>+72(SB)/8, $0x4444444444444444
DATA q5k512Mask<>+80(SB)/8, $0x4444444444444444
DATA q5k512Mask<>+88(SB)/8, $0x4444444444444444
DATA q5k512Mask<>+96(SB)/8, $0x8888888888888888
DATA q5k512Mask<>+104(SB)/8, $0x8888888888888888
DATA q5k512Mask<>+112(SB)/8, $0x8888888888888888
DATA q5k512Mask<>+120(SB)/8, $0x8888888888888888
DATA q5k512Mask<>+128(SB)/4, $0x0f0f0f0f
GLOBL q5k512Mask<>(SB), RODATA|NOPTR, $132

// Q5K512_CHUNK adds to Z8 the int32 lanes of chunk c (64 weights:
// sub-blocks 2c and 2c+1) of the super-block at SI against the Q8_K block
// at DI: each dword is sc*Σq*x over 4 consecutive weights of one
// sub-block, sc its 6-bit scale. first is VPMADDWD for chunk 0 (Z8 = the
// products) and VPDPWSSD for the others (Z8 += them); h is the masked qh
// register of the chunk (Z12 for chunks 0 and 2, Z13 for 1 and 3), rot
// its q5k512Rot counts and perm its q5k512Perm indices. Constants: Z31
// 0x0f bytes, Z30 q5k512Shift; Z6 the block's scales and mins as words.
// Clobbers Z14, Z15 and Z16.
//
// The chunk's 32 qs bytes, in both halves of Z14 and shifted right by
// 0 | 4, hold in bits 0-3 of each byte the nibble of sub-block 2c (low 256
// bits) and of 2c+1 (high 256 bits); above it, other bits. h keeps two
// bits of each qh byte, b and b+4 (b = 2c mod 4 in the low 256 bits, one
// more in the high), the chunk's fifth bit t (t = 2c | 2c+1) and that of
// chunk c+2 or c-2. Rotating each qword by rot brings bit t to bit 4 of
// its byte; bits 5-7 of every byte then come from bits t+1..t+3 of the
// same byte or, past bit 7, from bits 0..t-5 of the byte above (in the top
// byte, of the qword's bottom byte), and h keeps none of those: for t = b
// they lie strictly between b and b+4, for t = b+4 they are above b+4 or
// below b in the next byte. So one bitwise select
// (VPTERNLOGD 0xe4: Z31 ? Z14 : Z15) makes the 5-bit weights q = nibble |
// bit<<4, 0..31, in the layout of the chunk's 64 contiguous activations.
// VPMADDUBSW of q (unsigned) against them (int8, -128 included) gives
// exact int16 pair sums (|sum| <= 2*31*128 = 7936, no saturation), and
// VPDPWSSD multiplies each pair by its sub-block's scale (VPERMW of Z6)
// and adds each dword's two into Z8 in int32, without saturation: no
// dword exceeds 4*(63*4*31*128) < 2^22 in magnitude over the super-block.
#define Q5K512_CHUNK(c, first, h, rot, perm) \
	VBROADCASTI64X4 (48+32*c)(SI), Z14; \
	VPSRLVQ         Z30, Z14, Z14; \
	VPROLVQ         rot, h, Z15; \
	VPTERNLOGD      $0xe4, Z31, Z15, Z14; \
	VPMADDUBSW      (4+64*c)(DI), Z14, Z14; \
	VPERMW          Z6, perm, Z16; \
	first           Z16, Z14, Z8

// func dotQ5_KQ8_KAVX512(w, x *byte, nb int) float32
//
// dotQ5_KQ8_K over nb super-blocks in AVX-512 (F, BW) and AVX-512 VNNI.
// Q5_K block (176 bytes): d, dmin F16 at 0, 2; scales[12] at 4; qh[32] at
// 16; qs[128] at 48. Q8_K block (292 bytes): d float32 at 0; qs int8[256]
// at 4; bsums int16[16] at 260.
//
// Per super-block: KSCALES unpacks the 6-bit scales and mins (R8, R10),
// which become the 16 words of Y6. Four Z registers of 64 weights (one
// chunk each, Q5K512_CHUNK) give 16 exact int32 lanes, the reference's
// lanes 0-7 of the even sub-blocks in dwords 0-7 and of the odd ones in
// dwords 8-15; adding the upper 8 to the lower 8 as integers leaves the
// reference's 8 lane integers l (integer sums are exact in any order).
// The mins, as in dotQ5_KQ8_KAVX2: VPMADDWD of the 16 int16 group sums
// with m_0,m_0,...,m_7,m_7 gives m_j*bsum32_j exact in lane j (for any
// group sums), and the 8 lanes are added in int32 to the reference's
// (p0+p2)+(p1+p3), exact. Then the reference's float operations: d =
// x.d*F16(w.d) and x.d*F16(w.dmin), each rounded once (VCVTPH2PS is
// exact); summs = fma(-(x.d*F16(w.dmin)), float32(total), summs) as one
// VFNMADD of the positive product (-(a*b)+c rounds once, exactly as
// fma(-a, b, c)); acc = fma(d, float32(l), acc) in the 8 lanes of Y0,
// super-block after super-block; at the end hsum8's order (HSUM8) plus
// summs. The same float operations on the same values, so the result is
// bitwise dotQ5_KQ8_KAVX2's and the reference's.
//
// Registers: SI w, DI x, CX blocks left; Y0 acc; X4 summs; Y6 scales and
// mins as words; Z7 qh in both halves; Z12, Z13 its masked copies; Z8 the
// int32 lanes; Y9, Y10, X11 temporaries of the mins and the float part;
// Z14-Z16 those of the chunks; constants Z19 (mins' indices), Z20-Z23
// (scales' indices), Z24-Z27 (rotations), Z28, Z29 (qh masks), Z30
// (nibble shifts), Z31 (0x0f bytes).
TEXT ·dotQ5_KQ8_KAVX512(SB), NOSPLIT, $0-28
	MOVQ   w+0(FP), SI
	MOVQ   x+8(FP), DI
	MOVQ   nb+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS X4, X4, X4
	TESTQ  CX, CX
	JEQ    done

	VPBROADCASTD q5k512Mask<>+128(SB), Z31
	VMOVDQU64    q5k512Shift<>(SB), Z30
	VMOVDQU64    q5k512Mask<>+0(SB), Z29
	VMOVDQU64    q5k512Mask<>+64(SB), Z28
	VMOVDQU64    q5k512Rot<>+0(SB), Z24
	VMOVDQU64    q5k512Rot<>+64(SB), Z25
	VMOVDQU64    q5k512Rot<>+128(SB), Z26
	VMOVDQU64    q5k512Rot<>+192(SB), Z27
	VMOVDQU64    q5k512Perm<>+0(SB), Z20
	VMOVDQU64    q5k512Perm<>+64(SB), Z21
	VMOVDQU64    q5k512Perm<>+128(SB), Z22
	VMOVDQU64    q5k512Perm<>+192(SB), Z23
	VMOVDQU64    q5k512Perm<>+256(SB), Z19

loop:
	// Y6 = sc_0..sc_7, m_0..m_7 as words (scaleMinK4(j) for j = 0..7).
	KSCALES
	VMOVQ     R8, X6
	VPINSRQ   $1, R10, X6, X6
	VPMOVZXBW X6, Y6

	// qh in both halves; Z12 its bits of chunks 0 and 2, Z13 of 1 and 3.
	VBROADCASTI64X4 16(SI), Z7
	VPANDQ          Z29, Z7, Z12
	VPANDQ          Z28, Z7, Z13

	Q5K512_CHUNK(0, VPMADDWD, Z12, Z24, Z20)
	Q5K512_CHUNK(1, VPDPWSSD, Z13, Z25, Z21)
	Q5K512_CHUNK(2, VPDPWSSD, Z12, Z26, Z22)
	Q5K512_CHUNK(3, VPDPWSSD, Z13, Z27, Z23)

	// X9 = float32(Σ m_j*bsum32_j), the sum exact in int32.
	VPERMW       Z6, Z19, Z9
	VPMADDWD     260(DI), Y9, Y9
	VEXTRACTI128 $1, Y9, X10
	VPADDD       X10, X9, X9
	VPSHUFD      $0x4e, X9, X10
	VPADDD       X10, X9, X9
	VPSHUFD      $0xb1, X9, X10
	VPADDD       X10, X9, X9
	VCVTDQ2PS    X9, X9

	// X10 = x.d*F16(w.d), x.d*F16(w.dmin) in lanes 0, 1;
	// summs = fma(-(x.d*F16(w.dmin)), float32(total), summs).
	VMOVD        (SI), X10
	VCVTPH2PS    X10, X10
	VBROADCASTSS (DI), X11
	VMULPS       X11, X10, X10
	VMOVSHDUP    X10, X11
	VFNMADD231SS X11, X9, X4

	// acc = fma(d, float32(l), acc), l the upper 8 dwords of Z8 added
	// onto the lower 8.
	VBROADCASTSS  X10, Y10
	VEXTRACTI64X4 $1, Z8, Y9
	VPADDD        Y9, Y8, Y9
	VCVTDQ2PS     Y9, Y9
	VFMADD231PS   Y10, Y9, Y0
	ADDQ          $176, SI
	ADDQ          $292, DI
	DECQ          CX
	JNZ           loop

done:
	HSUM8
	VADDSS X4, X0, X0
	VZEROUPPER
	MOVSS  X0, ret+24(FP)
	RET

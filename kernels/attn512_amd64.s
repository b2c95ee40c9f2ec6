//go:build amd64 && !purego

#include "textflag.h"

// Decode attention for four query heads that share one KV head (grouped-
// query attention), in AVX-512: each key and value row is widened from
// half precision once for the four heads, and the weighted sums stay in
// registers. Every lane gets the same fused multiply-adds, in the same
// order, as attnScoresF16AVX2 and attnValuesF16AVX2 give each head alone,
// and the reductions add the same pairs: the results are bitwise equal.

// GQA_ROW leaves, for the key row at R8 and the four queries at R10 (R14
// bytes apart, R11 elements each), each head g's REDUCE32 partial sum
// (Y0+Y2)+(Y1+Y3) in Y(2g). Clobbers Z0-Z9, SI, DI, CX; R11 counts down
// and is restored from R14.
#define GQA_ROW(loop) \
	VXORPS      Z0, Z0, Z0; \
	VXORPS      Z1, Z1, Z1; \
	VXORPS      Z2, Z2, Z2; \
	VXORPS      Z3, Z3, Z3; \
	VXORPS      Z4, Z4, Z4; \
	VXORPS      Z5, Z5, Z5; \
	VXORPS      Z6, Z6, Z6; \
	VXORPS      Z7, Z7, Z7; \
	MOVQ        R8, SI; \
	MOVQ        R10, DI; \
loop: \
	VCVTPH2PS   (SI), Z8; \
	VCVTPH2PS   32(SI), Z9; \
	VFMADD231PS (DI), Z8, Z0; \
	VFMADD231PS 64(DI), Z9, Z1; \
	VFMADD231PS (DI)(R14*1), Z8, Z2; \
	VFMADD231PS 64(DI)(R14*1), Z9, Z3; \
	VFMADD231PS (DI)(R14*2), Z8, Z4; \
	VFMADD231PS 64(DI)(R14*2), Z9, Z5; \
	LEAQ        (DI)(R14*2), CX; \
	VFMADD231PS (CX)(R14*1), Z8, Z6; \
	VFMADD231PS 64(CX)(R14*1), Z9, Z7; \
	ADDQ        $64, SI; \
	ADDQ        $128, DI; \
	SUBQ        $32, R11; \
	JNZ         loop; \
	MOVQ          R14, R11; \
	SHRQ          $2, R11; \
	VADDPS        Z1, Z0, Z0; \
	VADDPS        Z3, Z2, Z2; \
	VADDPS        Z5, Z4, Z4; \
	VADDPS        Z7, Z6, Z6; \
	VEXTRACTF32X8 $1, Z0, Y1; \
	VEXTRACTF32X8 $1, Z2, Y3; \
	VEXTRACTF32X8 $1, Z4, Y5; \
	VEXTRACTF32X8 $1, Z6, Y7; \
	VADDPS        Y1, Y0, Y0; \
	VADDPS        Y3, Y2, Y2; \
	VADDPS        Y5, Y4, Y4; \
	VADDPS        Y7, Y6, Y6

// GQA_ROW64 is GQA_ROW for hd = 64 with the four queries in Z16-Z31
// (head g's elements 16j..16j+15 in Z(16+4g+j)): no loads but the key's.
#define GQA_ROW64 \
	VXORPS      Z0, Z0, Z0; \
	VXORPS      Z1, Z1, Z1; \
	VXORPS      Z2, Z2, Z2; \
	VXORPS      Z3, Z3, Z3; \
	VXORPS      Z4, Z4, Z4; \
	VXORPS      Z5, Z5, Z5; \
	VXORPS      Z6, Z6, Z6; \
	VXORPS      Z7, Z7, Z7; \
	VCVTPH2PS   (R8), Z8; \
	VCVTPH2PS   32(R8), Z9; \
	VCVTPH2PS   64(R8), Z10; \
	VCVTPH2PS   96(R8), Z11; \
	VFMADD231PS Z16, Z8, Z0; \
	VFMADD231PS Z17, Z9, Z1; \
	VFMADD231PS Z20, Z8, Z2; \
	VFMADD231PS Z21, Z9, Z3; \
	VFMADD231PS Z24, Z8, Z4; \
	VFMADD231PS Z25, Z9, Z5; \
	VFMADD231PS Z28, Z8, Z6; \
	VFMADD231PS Z29, Z9, Z7; \
	VFMADD231PS Z18, Z10, Z0; \
	VFMADD231PS Z19, Z11, Z1; \
	VFMADD231PS Z22, Z10, Z2; \
	VFMADD231PS Z23, Z11, Z3; \
	VFMADD231PS Z26, Z10, Z4; \
	VFMADD231PS Z27, Z11, Z5; \
	VFMADD231PS Z30, Z10, Z6; \
	VFMADD231PS Z31, Z11, Z7; \
	VADDPS        Z1, Z0, Z0; \
	VADDPS        Z3, Z2, Z2; \
	VADDPS        Z5, Z4, Z4; \
	VADDPS        Z7, Z6, Z6; \
	VEXTRACTF32X8 $1, Z0, Y1; \
	VEXTRACTF32X8 $1, Z2, Y3; \
	VEXTRACTF32X8 $1, Z4, Y5; \
	VEXTRACTF32X8 $1, Z6, Y7; \
	VADDPS        Y1, Y0, Y0; \
	VADDPS        Y3, Y2, Y2; \
	VADDPS        Y5, Y4, Y4; \
	VADDPS        Y7, Y6, Y6

// GQA_KEEP puts the four heads' 8-lane sums of the block's position AX
// into tmp (R12): head g's row at 256g + 32*AX bytes. Clobbers CX.
#define GQA_KEEP \
	MOVQ    AX, CX; \
	SHLQ    $5, CX; \
	VMOVUPS Y0, (R12)(CX*1); \
	VMOVUPS Y2, 256(R12)(CX*1); \
	VMOVUPS Y4, 512(R12)(CX*1); \
	VMOVUPS Y6, 768(R12)(CX*1)

// GQA_PAIR(off, a, b) leaves in a the 128-bit folds c_i = lo(y_i) +
// hi(y_i) of the tmp rows at SI+off and SI+off+32, side by side. Clobbers
// Y0, Y1, b.
#define GQA_PAIR(off, a, b) \
	VMOVUPS    off(SI), Y0; \
	VMOVUPS    off+32(SI), Y1; \
	VPERM2F128 $0x20, Y1, Y0, a; \
	VPERM2F128 $0x31, Y1, Y0, b; \
	VADDPS     b, a, a

// GQA_REDUCE8 finishes REDUCE32 for the 8 positions in tmp of each head:
// the 128-bit folds, then two horizontal adds of the same pairs as
// REDUCE32's (VHADDPS adds within 128-bit halves, so three of them over
// four pairs of positions leave r0 r2 r4 r6 | r1 r3 r5 r7), times the
// scale (Y13), put in order by VPERMPS (indices in Y12) and stored at DX +
// g*n*4. Clobbers Y0-Y3, Y6-Y11, SI, DI, CX.
#define GQA_REDUCE8(loop) \
	MOVQ    R12, SI; \
	MOVQ    DX, DI; \
	MOVQ    $4, CX; \
loop: \
	GQA_PAIR(0, Y6, Y7); \
	GQA_PAIR(64, Y8, Y9); \
	GQA_PAIR(128, Y10, Y11); \
	GQA_PAIR(192, Y2, Y3); \
	VHADDPS Y8, Y6, Y6; \
	VHADDPS Y2, Y10, Y10; \
	VHADDPS Y10, Y6, Y6; \
	VMULPS  Y13, Y6, Y6; \
	VPERMPS Y6, Y12, Y6; \
	VMOVUPS Y6, (DI); \
	ADDQ    $256, SI; \
	ADDQ    R13, DI; \
	DECQ    CX; \
	JNZ     loop

// GQA_TAIL(y, x) finishes REDUCE32 of one head's 8-lane sum y (its low
// half x), times the scale, and stores it at DI. Clobbers X1.
#define GQA_TAIL(y, x) \
	VEXTRACTF128 $1, y, X1; \
	VADDPS       X1, x, x; \
	VHADDPS      x, x, x; \
	VHADDPS      x, x, x; \
	VMULSS       X13, x, x; \
	VMOVSS       x, (DI)

// GQA_TAILS stores the four heads' scores of one position (at DX) from
// their 8-lane sums.
#define GQA_TAILS \
	MOVQ     DX, DI; \
	GQA_TAIL(Y0, X0); \
	ADDQ     R13, DI; \
	GQA_TAIL(Y2, X2); \
	ADDQ     R13, DI; \
	GQA_TAIL(Y4, X4); \
	ADDQ     R13, DI; \
	GQA_TAIL(Y6, X6)

// func attnScoresGQA4F16AVX512(att *float32, n int, k *byte, stride int, q *float32, hd int, scale float32, tmp *float32, pf *byte)
//
// For the four heads g < 4 (query g at q + g*hd floats, its scores at att
// + g*n floats) and pos < n: att[g*n+pos] = dotF16X32AVX2(k + pos*stride,
// q_g, hd) * scale, as attnScoresF16AVX2 computes each. Z(2g) holds that
// kernel's accumulators Y0|Y1 for head g and Z(2g+1) its Y2|Y3, so their
// sum's halves are REDUCE32's Y0+Y2 and Y1+Y3, and their sum its Y0. For
// 8 positions at a time those 8-lane sums wait in tmp (4*8*8 floats),
// then one transposition finishes REDUCE32 for all 8. With hd = 64 the
// queries stay in registers. hd is a multiple of 32; stride is in bytes.
// With hd = 64 and pf not nil, each position also prefetches the two lines
// at pf + pos*stride into L2: the values the caller weighs next, which
// then come from L2 instead of memory.
TEXT ·attnScoresGQA4F16AVX512(SB), NOSPLIT, $0-72
	MOVQ         att+0(FP), DX
	MOVQ         n+8(FP), BX
	MOVQ         k+16(FP), R8
	MOVQ         stride+24(FP), R9
	MOVQ         q+32(FP), R10
	MOVQ         hd+40(FP), R11
	VBROADCASTSS scale+48(FP), Y13
	MOVQ         tmp+56(FP), R12
	MOVQ         BX, R13
	SHLQ         $2, R13 // n*4: bytes between the heads' score rows
	MOVQ         R11, R14
	SHLQ         $2, R14 // hd*4: bytes between the heads' queries
	VMOVDQU32    gqaPerm<>(SB), Y12
	TESTQ        R11, R11
	JEQ          gsdone
	CMPQ         R11, $64
	JEQ          gs64

gsblock:
	CMPQ BX, $8
	JLT  gstail
	XORQ AX, AX // position in the block

gsblockpos:
	GQA_ROW(gsrow1)
	GQA_KEEP
	ADDQ R9, R8
	INCQ AX
	CMPQ AX, $8
	JNE  gsblockpos
	GQA_REDUCE8(gsred1)
	ADDQ $32, DX
	SUBQ $8, BX
	JMP  gsblock

gstail:
	TESTQ BX, BX
	JEQ   gsdone
	GQA_ROW(gsrow2)
	GQA_TAILS
	ADDQ  R9, R8
	ADDQ  $4, DX
	DECQ  BX
	JMP   gstail

gs64:
	MOVQ    pf+64(FP), R15
	TESTQ   R15, R15
	JNE     gs64pf
	MOVQ    R8, R15 // nothing to prefetch: the keys, loaded anyway

gs64pf:
	VMOVUPS (R10), Z16
	VMOVUPS 64(R10), Z17
	VMOVUPS 128(R10), Z18
	VMOVUPS 192(R10), Z19
	VMOVUPS 256(R10), Z20
	VMOVUPS 320(R10), Z21
	VMOVUPS 384(R10), Z22
	VMOVUPS 448(R10), Z23
	VMOVUPS 512(R10), Z24
	VMOVUPS 576(R10), Z25
	VMOVUPS 640(R10), Z26
	VMOVUPS 704(R10), Z27
	VMOVUPS 768(R10), Z28
	VMOVUPS 832(R10), Z29
	VMOVUPS 896(R10), Z30
	VMOVUPS 960(R10), Z31

gs64block:
	CMPQ BX, $8
	JLT  gs64tail
	XORQ AX, AX

gs64blockpos:
	GQA_ROW64
	GQA_KEEP
	PREFETCHT1 (R15)
	PREFETCHT1 64(R15)
	ADDQ R9, R15
	ADDQ R9, R8
	INCQ AX
	CMPQ AX, $8
	JNE  gs64blockpos
	GQA_REDUCE8(gsred2)
	ADDQ $32, DX
	SUBQ $8, BX
	JMP  gs64block

gs64tail:
	TESTQ BX, BX
	JEQ   gsdone
	GQA_ROW64
	GQA_TAILS
	PREFETCHT1 (R15)
	PREFETCHT1 64(R15)
	ADDQ  R9, R15
	ADDQ  R9, R8
	ADDQ  $4, DX
	DECQ  BX
	JMP   gs64tail

gsdone:
	VZEROUPPER
	RET

// gqaPerm<>: VPERMPS indices from r0 r2 r4 r6 r1 r3 r5 r7 to r0..r7.
DATA gqaPerm<>+0(SB)/4, $0
DATA gqaPerm<>+4(SB)/4, $4
DATA gqaPerm<>+8(SB)/4, $1
DATA gqaPerm<>+12(SB)/4, $5
DATA gqaPerm<>+16(SB)/4, $2
DATA gqaPerm<>+20(SB)/4, $6
DATA gqaPerm<>+24(SB)/4, $3
DATA gqaPerm<>+28(SB)/4, $7
GLOBL gqaPerm<>(SB), RODATA|NOPTR, $32

// func attnValuesGQA4F16AVX512(acc *float32, v *byte, stride int, p *float32, n int, hd int)
//
// For the four heads g < 4, with p + g*n floats their probabilities
// already rounded to half precision: acc[(g*32+l)*hd+d] = the sum, in
// position order, of p_g[pos] * F16(v[pos*stride/2 + d]) over the
// positions pos < n with pos%32 == l, each a fused multiply-add from
// zero, for all 32 lanes l (a lane without positions gets zeros) and d <
// hd: the lanes attnValuesF16AVX2 leaves in a cleared buffer, lane by
// lane in registers. hd is a multiple of 32; stride is in bytes.
TEXT ·attnValuesGQA4F16AVX512(SB), NOSPLIT, $0-48
	MOVQ  acc+0(FP), DI
	MOVQ  v+8(FP), R8
	MOVQ  stride+16(FP), R9
	MOVQ  p+24(FP), R10
	MOVQ  n+32(FP), BX
	MOVQ  hd+40(FP), R11
	MOVQ  BX, R13
	SHLQ  $2, R13 // n*4: bytes between the heads' probabilities
	LEAQ  (R10)(R13*1), BX // the end of head 0's probabilities
	MOVQ  R11, R14
	SHLQ  $7, R14 // 32*hd*4: bytes between the heads' lanes
	MOVQ  R9, R15
	SHLQ  $5, R15 // 32 rows of values
	XORQ  AX, AX  // lane
	TESTQ R11, R11
	JEQ   gvdone

gvlane:
	XORQ CX, CX // element offset in a row

gvchunk:
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	VXORPS Z4, Z4, Z4
	VXORPS Z5, Z5, Z5
	VXORPS Z6, Z6, Z6
	VXORPS Z7, Z7, Z7
	MOVQ   R9, SI
	IMULQ  AX, SI
	ADDQ   R8, SI
	LEAQ   (SI)(CX*2), SI   // the value row of the lane's first position, at the chunk
	LEAQ   (R10)(AX*4), R12 // its probability for head 0
	CMPQ   R12, BX
	JGE    gvstore

gvpos:
	VCVTPH2PS        (SI), Z8
	VCVTPH2PS        32(SI), Z9
	LEAQ             (R12)(R13*2), DX
	VFMADD231PS.BCST (R12), Z8, Z0
	VFMADD231PS.BCST (R12), Z9, Z1
	VFMADD231PS.BCST (R12)(R13*1), Z8, Z2
	VFMADD231PS.BCST (R12)(R13*1), Z9, Z3
	VFMADD231PS.BCST (DX), Z8, Z4
	VFMADD231PS.BCST (DX), Z9, Z5
	VFMADD231PS.BCST (DX)(R13*1), Z8, Z6
	VFMADD231PS.BCST (DX)(R13*1), Z9, Z7
	ADDQ             R15, SI
	ADDQ             $128, R12
	CMPQ             R12, BX
	JLT              gvpos

gvstore:
	// lane AX of head g at acc + g*R14 + (AX*hd + CX)*4
	MOVQ    AX, DX
	IMULQ   R11, DX
	ADDQ    CX, DX
	LEAQ    (DI)(DX*4), DX
	VMOVUPS Z0, (DX)
	VMOVUPS Z1, 64(DX)
	VMOVUPS Z2, (DX)(R14*1)
	VMOVUPS Z3, 64(DX)(R14*1)
	VMOVUPS Z4, (DX)(R14*2)
	VMOVUPS Z5, 64(DX)(R14*2)
	LEAQ    (DX)(R14*2), DX
	VMOVUPS Z6, (DX)(R14*1)
	VMOVUPS Z7, 64(DX)(R14*1)
	ADDQ    $32, CX
	CMPQ    CX, R11
	JLT     gvchunk

	INCQ AX
	CMPQ AX, $32
	JLT  gvlane

gvdone:
	VZEROUPPER
	RET

// GQA_V64(off) adds position R12's (head 0's probability at R12, head g's
// at R12 + g*R13) weighted value row elements at SI into the four heads'
// 64-element sums Z(4g)..Z(4g+3). Clobbers Z16-Z19, DX.
#define GQA_V64 \
	VCVTPH2PS        (SI), Z16; \
	VCVTPH2PS        32(SI), Z17; \
	VCVTPH2PS        64(SI), Z18; \
	VCVTPH2PS        96(SI), Z19; \
	LEAQ             (R12)(R13*2), DX; \
	VFMADD231PS.BCST (R12), Z16, Z0; \
	VFMADD231PS.BCST (R12), Z17, Z1; \
	VFMADD231PS.BCST (R12), Z18, Z2; \
	VFMADD231PS.BCST (R12), Z19, Z3; \
	VFMADD231PS.BCST (R12)(R13*1), Z16, Z4; \
	VFMADD231PS.BCST (R12)(R13*1), Z17, Z5; \
	VFMADD231PS.BCST (R12)(R13*1), Z18, Z6; \
	VFMADD231PS.BCST (R12)(R13*1), Z19, Z7; \
	VFMADD231PS.BCST (DX), Z16, Z8; \
	VFMADD231PS.BCST (DX), Z17, Z9; \
	VFMADD231PS.BCST (DX), Z18, Z10; \
	VFMADD231PS.BCST (DX), Z19, Z11; \
	VFMADD231PS.BCST (DX)(R13*1), Z16, Z12; \
	VFMADD231PS.BCST (DX)(R13*1), Z17, Z13; \
	VFMADD231PS.BCST (DX)(R13*1), Z18, Z14; \
	VFMADD231PS.BCST (DX)(R13*1), Z19, Z15

// GQA_ACCADDR leaves in DX the address of lane AX, element CX of head
// 0's sums in acc (head g's are g*R14 further): acc + (AX*hd + CX)*4.
// GQA_STORE64 and GQA_LOAD64 store and load the four heads' 64 elements
// there from and to Z0-Z15.
#define GQA_ACCADDR \
	MOVQ  AX, DX; \
	IMULQ R11, DX; \
	ADDQ  CX, DX; \
	SHLQ  $2, DX; \
	ADDQ  acc+0(FP), DX

#define GQA_STORE64 \
	GQA_ACCADDR; \
	VMOVUPS Z0, (DX); \
	VMOVUPS Z1, 64(DX); \
	VMOVUPS Z2, 128(DX); \
	VMOVUPS Z3, 192(DX); \
	VMOVUPS Z4, (DX)(R14*1); \
	VMOVUPS Z5, 64(DX)(R14*1); \
	VMOVUPS Z6, 128(DX)(R14*1); \
	VMOVUPS Z7, 192(DX)(R14*1); \
	VMOVUPS Z8, (DX)(R14*2); \
	VMOVUPS Z9, 64(DX)(R14*2); \
	VMOVUPS Z10, 128(DX)(R14*2); \
	VMOVUPS Z11, 192(DX)(R14*2); \
	LEAQ    (DX)(R14*2), DX; \
	VMOVUPS Z12, (DX)(R14*1); \
	VMOVUPS Z13, 64(DX)(R14*1); \
	VMOVUPS Z14, 128(DX)(R14*1); \
	VMOVUPS Z15, 192(DX)(R14*1)

#define GQA_LOAD64 \
	GQA_ACCADDR; \
	VMOVUPS (DX), Z0; \
	VMOVUPS 64(DX), Z1; \
	VMOVUPS 128(DX), Z2; \
	VMOVUPS 192(DX), Z3; \
	VMOVUPS (DX)(R14*1), Z4; \
	VMOVUPS 64(DX)(R14*1), Z5; \
	VMOVUPS 128(DX)(R14*1), Z6; \
	VMOVUPS 192(DX)(R14*1), Z7; \
	VMOVUPS (DX)(R14*2), Z8; \
	VMOVUPS 64(DX)(R14*2), Z9; \
	VMOVUPS 128(DX)(R14*2), Z10; \
	VMOVUPS 192(DX)(R14*2), Z11; \
	LEAQ    (DX)(R14*2), DX; \
	VMOVUPS (DX)(R14*1), Z12; \
	VMOVUPS 64(DX)(R14*1), Z13; \
	VMOVUPS 128(DX)(R14*1), Z14; \
	VMOVUPS 192(DX)(R14*1), Z15

#define GQA_ZERO16 \
	VXORPS Z0, Z0, Z0; \
	VXORPS Z1, Z1, Z1; \
	VXORPS Z2, Z2, Z2; \
	VXORPS Z3, Z3, Z3; \
	VXORPS Z4, Z4, Z4; \
	VXORPS Z5, Z5, Z5; \
	VXORPS Z6, Z6, Z6; \
	VXORPS Z7, Z7, Z7; \
	VXORPS Z8, Z8, Z8; \
	VXORPS Z9, Z9, Z9; \
	VXORPS Z10, Z10, Z10; \
	VXORPS Z11, Z11, Z11; \
	VXORPS Z12, Z12, Z12; \
	VXORPS Z13, Z13, Z13; \
	VXORPS Z14, Z14, Z14; \
	VXORPS Z15, Z15, Z15

// func attnValuesGQA4x64F16AVX512(acc *float32, v *byte, stride int, p *float32, n int, hd int, lanes int, pf *byte)
//
// attnValuesGQA4F16AVX512 for hd a multiple of 64, over lanes lanes (32
// for a single query, as ggml_vec_dot_f16; 8 for a prompt's, as
// llamafile's sgemm): lane l sums the positions l, l+lanes, ..., and
// head g's lane l starts at acc + (g*lanes+l)*hd floats. A lane's sums are kept
// 64 elements of the four heads at a time (Z0-Z15). With hd = 64 they stay
// in registers over all the lane's positions. With more, a lane's
// positions go in blocks of 8, each block's rows walked for every 64
// elements before the next block, the sums stored and reloaded (exactly)
// in between: the rows of one lane lie 32 positions apart, a multiple of
// 4 KB for common strides, so they share cache sets, and walking all of
// them once per 64 elements missed in L1 and L2. Each sum still gets its
// positions' fused multiply-adds in position order, from zero. With pf
// not nil, each row's 64 elements also prefetch the next 128 bytes from
// pf on into L2: the n*hd*2 bytes there (the next KV head's keys, read
// while these values come from L2).
TEXT ·attnValuesGQA4x64F16AVX512(SB), NOSPLIT, $0-64
	MOVQ  pf+56(FP), DX
	TESTQ DX, DX
	JNE   gxpf
	MOVQ  v+8(FP), DX // nothing to prefetch: the values, in cache anyway
	MOVQ  DX, pf+56(FP)

gxpf:
	MOVQ  stride+16(FP), R9
	MOVQ  n+32(FP), BX
	MOVQ  hd+40(FP), R11
	MOVQ  BX, R13
	SHLQ  $2, R13 // n*4: bytes between the heads' probabilities
	MOVQ  p+24(FP), DX
	LEAQ  (DX)(R13*1), BX // the end of head 0's probabilities
	MOVQ  R11, R14
	IMULQ lanes+48(FP), R14
	SHLQ  $2, R14 // lanes*hd*4: bytes between the heads' lanes
	MOVQ  R9, R15
	IMULQ lanes+48(FP), R15 // lanes rows of values
	XORQ  AX, AX  // lane
	TESTQ R11, R11
	JEQ   gxdone

gxlane:
	MOVQ p+24(FP), R10
	LEAQ (R10)(AX*4), R10 // the block's first probability, head 0
	MOVQ R9, R8
	IMULQ AX, R8
	ADDQ v+8(FP), R8 // the block's first value row
	CMPQ R10, BX
	JLT  gxblock
	GQA_ZERO16 // a lane without positions
	XORQ CX, CX

gxempty:
	GQA_STORE64
	ADDQ $64, CX
	CMPQ CX, R11
	JLT  gxempty
	JMP  gxnextlane

gxblock:
	XORQ CX, CX // element offset in the rows

gxchunk:
	MOVQ  p+24(FP), DX
	LEAQ  (DX)(AX*4), DX
	CMPQ  R10, DX
	JNE   gxreload
	GQA_ZERO16 // the lane's first block
	JMP   gxsums

gxreload:
	GQA_LOAD64

gxsums:
	MOVQ R10, R12
	LEAQ (R8)(CX*2), SI
	MOVQ $8, DI // positions in a block
	CMPQ R11, $64
	JNE  gxpos
	MOVQ BX, DI // one chunk: no blocks

gxpos:
	GQA_V64
	ADDQ       R15, SI
	MOVQ       pf+56(FP), DX
	PREFETCHT1 (DX)
	PREFETCHT1 64(DX)
	ADDQ       $128, DX
	MOVQ       DX, pf+56(FP)
	MOVQ       lanes+48(FP), DX
	LEAQ (R12)(DX*4), R12
	CMPQ R12, BX
	JGE  gxchunkend
	DECQ DI
	JNZ  gxpos

gxchunkend:
	GQA_STORE64
	ADDQ $64, CX
	CMPQ CX, R11
	JLT  gxchunk
	// The next block: R12 is past its last position.
	MOVQ R12, R10
	MOVQ R15, DX
	SHLQ $3, DX
	ADDQ DX, R8
	CMPQ R10, BX
	JLT  gxblock

gxnextlane:
	INCQ AX
	CMPQ AX, lanes+48(FP)
	JLT  gxlane

gxdone:
	VZEROUPPER
	RET

// func attnScoresGQA4SgemmF16AVX512(att *float32, n int, k *byte, stride int, qi *float32, steps int, scale float32)
//
// The scores of four query heads that share a KV head, for a query of a
// prompt (a batch): att[g*n+pos] = attnScoresSgemmF16AVX2's score of head g
// at pos, for pos < n, four positions at a time. qi holds the four heads'
// rounded queries interleaved by step (8 elements of the head dimension):
// step s's 128 bytes are heads 0 and 1's eight elements side by side, then
// heads 2 and 3's. Each key's eight elements are widened once into both
// halves of a Z register and multiplied into two heads at once; every
// head's 8-lane accumulator gets the AVX2 kernel's fused multiply-adds in
// its order. The ends of hsum8 for 4 positions and 4 heads are done in one
// transposition, adding the same pairs with the same first operands, so
// the scores are bitwise equal. A block of fewer than 4 positions reads
// its last key again for the missing ones and stores only its own. stride
// is in bytes; steps >= 1 and n >= 1.
TEXT ·attnScoresGQA4SgemmF16AVX512(SB), NOSPLIT, $0-52
	MOVQ         att+0(FP), DX
	MOVQ         n+8(FP), BX
	MOVQ         k+16(FP), R8
	MOVQ         stride+24(FP), R9
	MOVQ         qi+32(FP), R10
	MOVQ         steps+40(FP), R11
	VBROADCASTSS scale+48(FP), Z31
	LEAQ         (BX*4), AX  // bytes from one head's scores to the next's
	LEAQ         (AX)(AX*2), R15

sg4block:
	// Keys of the block's four positions; the last valid one again for
	// those past n.
	MOVQ    R8, SI
	LEAQ    (R8)(R9*1), R12
	CMPQ    BX, $2
	CMOVQLT SI, R12
	LEAQ    (R12)(R9*1), R13
	CMPQ    BX, $3
	CMOVQLT R12, R13
	LEAQ    (R13)(R9*1), R14
	CMPQ    BX, $4
	CMOVQLT R13, R14

	// K1: the lanes of the positions below n.
	MOVQ  BX, CX
	CMPQ  CX, $4
	JLE   sg4mask
	MOVQ  $4, CX

sg4mask:
	MOVL  $1, DI
	SHLL  CX, DI
	DECL  DI
	KMOVW DI, K1

	MOVQ   R10, DI
	MOVQ   R11, CX
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	VXORPS Z4, Z4, Z4
	VXORPS Z5, Z5, Z5
	VXORPS Z6, Z6, Z6
	VXORPS Z7, Z7, Z7

sg4loop:
	VMOVUPS         (DI), Z8
	VMOVUPS         64(DI), Z9
	VBROADCASTI32X4 (SI), Z10
	VCVTPH2PS       Y10, Z10
	VFMADD231PS     Z8, Z10, Z0
	VFMADD231PS     Z9, Z10, Z1
	VBROADCASTI32X4 (R12), Z11
	VCVTPH2PS       Y11, Z11
	VFMADD231PS     Z8, Z11, Z2
	VFMADD231PS     Z9, Z11, Z3
	VBROADCASTI32X4 (R13), Z12
	VCVTPH2PS       Y12, Z12
	VFMADD231PS     Z8, Z12, Z4
	VFMADD231PS     Z9, Z12, Z5
	VBROADCASTI32X4 (R14), Z13
	VCVTPH2PS       Y13, Z13
	VFMADD231PS     Z8, Z13, Z6
	VFMADD231PS     Z9, Z13, Z7
	ADDQ            $16, SI
	ADDQ            $16, R12
	ADDQ            $16, R13
	ADDQ            $16, R14
	ADDQ            $128, DI
	DECQ            CX
	JNZ             sg4loop

	// Position p's accumulators are Z(2p) = heads 0 and 1, Z(2p+1) =
	// heads 2 and 3, each head's 8 lanes as two 128-bit quarters lo, hi.
	// hsum8's first step, hi+lo: quarter g of Z(2p) becomes head g's.
	VSHUFF32X4 $0x88, Z1, Z0, Z8
	VSHUFF32X4 $0xdd, Z1, Z0, Z9
	VADDPS     Z8, Z9, Z0
	VSHUFF32X4 $0x88, Z3, Z2, Z8
	VSHUFF32X4 $0xdd, Z3, Z2, Z9
	VADDPS     Z8, Z9, Z2
	VSHUFF32X4 $0x88, Z5, Z4, Z8
	VSHUFF32X4 $0xdd, Z5, Z4, Z9
	VADDPS     Z8, Z9, Z4
	VSHUFF32X4 $0x88, Z7, Z6, Z8
	VSHUFF32X4 $0xdd, Z7, Z6, Z9
	VADDPS     Z8, Z9, Z6

	// Second step, x0+x2 and x1+x3: positions 0 and 1 into Z0, 2 and 3
	// into Z4.
	VSHUFPS $0x44, Z2, Z0, Z8
	VSHUFPS $0xee, Z2, Z0, Z9
	VADDPS  Z9, Z8, Z0
	VSHUFPS $0x44, Z6, Z4, Z8
	VSHUFPS $0xee, Z6, Z4, Z9
	VADDPS  Z9, Z8, Z4

	// Last step, c0+c1: quarter g of Z0 holds head g's four scores.
	VSHUFPS $0x88, Z4, Z0, Z8
	VSHUFPS $0xdd, Z4, Z0, Z9
	VADDPS  Z9, Z8, Z0
	VMULPS  Z31, Z0, Z0

	VMOVUPS       X0, K1, (DX)
	VEXTRACTF32X4 $1, Z0, X8
	VMOVUPS       X8, K1, (DX)(AX*1)
	VEXTRACTF32X4 $2, Z0, X9
	VMOVUPS       X9, K1, (DX)(AX*2)
	VEXTRACTF32X4 $3, Z0, X10
	VMOVUPS       X10, K1, (DX)(R15*1)

	ADDQ $16, DX
	LEAQ (R8)(R9*4), R8
	SUBQ $4, BX
	JGT  sg4block

	VZEROUPPER
	RET

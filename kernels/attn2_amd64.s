//go:build amd64 && !purego

#include "textflag.h"

// Decode attention for four query heads that share one KV head (grouped-
// query attention), in AVX2 (VEX only, Y0-Y15): the counterparts of the
// AVX-512 kernels of attn512_amd64.s, for CPUs without AVX-512. Each key
// and value row is widened from half precision once for the four heads.
// Every lane gets the same fused multiply-adds, in the same order and with
// the same operand roles, as attnScoresF16AVX2 and attnValuesF16AVX2 give
// each head alone, and the reductions add the same pairs: the results are
// bitwise equal.

// GQA2_ZERO8 zeroes eight registers.
#define GQA2_ZERO8(a0, a1, a2, a3, b0, b1, b2, b3) \
	VXORPS a0, a0, a0; \
	VXORPS a1, a1, a1; \
	VXORPS a2, a2, a2; \
	VXORPS a3, a3, a3; \
	VXORPS b0, b0, b0; \
	VXORPS b1, b1, b1; \
	VXORPS b2, b2, b2; \
	VXORPS b3, b3, b3

// GQA2_PASS(loop, ka, kb, qa, qb, kx, ky, a0, a1, a2, a3, b0, b1, b2, b3)
// runs half of attnScoresF16AVX2's accumulation of the key row at R8 for
// the four queries at R10 (R14 bytes apart; R15 = 3*R14), R11 elements
// each, all four heads at once: it zeroes a_g and b_g, then for every
// 32-element step widens the key's 8 elements at byte offsets ka and kb
// of the step into kx and ky and adds their products with head g's query
// elements at byte offsets qa and qb of the step into a_g and b_g. ka/qa
// 0/0 and 32/64 are that kernel's accumulators Y0 and Y2, 16/32 and
// 48/96 its Y1 and Y3. Clobbers SI, DI, CX.
#define GQA2_PASS(loop, ka, kb, qa, qb, kx, ky, a0, a1, a2, a3, b0, b1, b2, b3) \
	GQA2_ZERO8(a0, a1, a2, a3, b0, b1, b2, b3); \
	MOVQ        R8, SI; \
	MOVQ        R10, DI; \
	MOVQ        R11, CX; \
loop: \
	VCVTPH2PS   ka(SI), kx; \
	VCVTPH2PS   kb(SI), ky; \
	VFMADD231PS qa(DI), kx, a0; \
	VFMADD231PS qa(DI)(R14*1), kx, a1; \
	VFMADD231PS qa(DI)(R14*2), kx, a2; \
	VFMADD231PS qa(DI)(R15*1), kx, a3; \
	VFMADD231PS qb(DI), ky, b0; \
	VFMADD231PS qb(DI)(R14*1), ky, b1; \
	VFMADD231PS qb(DI)(R14*2), ky, b2; \
	VFMADD231PS qb(DI)(R15*1), ky, b3; \
	ADDQ        $64, SI; \
	ADDQ        $128, DI; \
	SUBQ        $32, CX; \
	JNZ         loop

// GQA2_SCORES finishes REDUCE32 of the four heads' partial sums in Y0-Y3,
// multiplies by the scale (Y15) and stores head g's score at DX + g*R13
// (R12 = 3*R13). Clobbers Y4-Y7.
#define GQA2_SCORES \
	VPERM2F128   $0x20, Y1, Y0, Y4; \
	VPERM2F128   $0x31, Y1, Y0, Y5; \
	VADDPS       Y5, Y4, Y4; \
	VPERM2F128   $0x20, Y3, Y2, Y6; \
	VPERM2F128   $0x31, Y3, Y2, Y7; \
	VADDPS       Y7, Y6, Y6; \
	VHADDPS      Y6, Y4, Y4; \
	VHADDPS      Y4, Y4, Y4; \
	VMULPS       Y15, Y4, Y4; \
	VEXTRACTF128 $1, Y4, X5; \
	VMOVSS       X4, (DX); \
	VMOVSS       X5, (DX)(R13*1); \
	VEXTRACTPS   $1, X4, (DX)(R13*2); \
	VEXTRACTPS   $1, X5, (DX)(R12*1)

// GQA2_VZERO zeroes the four heads' sums Y0-Y7.
#define GQA2_VZERO GQA2_ZERO8(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)

// GQA2_VADDR sets SI to the address of lane AX's sums of head 0 at element
// CX: DI + CX*4 (DI: the lane's first element, acc + AX*hd*4).
#define GQA2_VADDR LEAQ (DI)(CX*4), SI

// GQA2_VLOAD loads the four heads' sums Y0-Y7 from SI + g*R14. Clobbers SI.
#define GQA2_VLOAD \
	VMOVUPS (SI), Y0; \
	VMOVUPS 32(SI), Y1; \
	VMOVUPS (SI)(R14*1), Y2; \
	VMOVUPS 32(SI)(R14*1), Y3; \
	VMOVUPS (SI)(R14*2), Y4; \
	VMOVUPS 32(SI)(R14*2), Y5; \
	LEAQ    (SI)(R14*2), SI; \
	VMOVUPS (SI)(R14*1), Y6; \
	VMOVUPS 32(SI)(R14*1), Y7

// GQA2_VRELOAD loads lane AX's sums at element CX. Clobbers SI.
#define GQA2_VRELOAD GQA2_VADDR; GQA2_VLOAD

// GQA2_VSTORE stores the four heads' sums Y0-Y7 at SI + g*R14. Clobbers SI.
#define GQA2_VSTORE \
	VMOVUPS Y0, (SI); \
	VMOVUPS Y1, 32(SI); \
	VMOVUPS Y2, (SI)(R14*1); \
	VMOVUPS Y3, 32(SI)(R14*1); \
	VMOVUPS Y4, (SI)(R14*2); \
	VMOVUPS Y5, 32(SI)(R14*2); \
	LEAQ    (SI)(R14*2), SI; \
	VMOVUPS Y6, (SI)(R14*1); \
	VMOVUPS Y7, 32(SI)(R14*1)

// A block of a lane's positions is summed in one pass over each 16-element
// chunk of their rows: 8 positions (8 rows a cache set fit a level-1 cache
// of 8 ways; blocks of 16 were a third slower at 2048 positions, of 4 no
// faster). blk+64(FP) is its length in bytes of head 0's probabilities, 8
// times step+56(FP), the bytes between a lane's positions (lanes floats).

// GQA2_VNEXT moves R8 to the lane's value row a block of positions on.
#define GQA2_VNEXT LEAQ (R8)(R15*8), R8

// GQA2_VBLOCKEND sets R9 to the end of the lane's block of positions from
// R10, in head 0's probabilities: a block on, or at their end, BX.
#define GQA2_VBLOCKEND \
	MOVQ    blk+64(FP), R9; \
	ADDQ    R10, R9; \
	CMPQ    R9, BX; \
	CMOVQGT BX, R9

// GQA2_VCHUNKS(chunk, pos, INIT) runs a block of a lane's positions (head
// 0's probabilities from R10 to R9, the value rows from R8, R15 bytes
// apart) over every 16-element chunk of the rows: INIT sets the four
// heads' sums Y0-Y7, then each position adds its products, and they are
// stored. It then moves R10 and R8 to the next block. Clobbers CX, DX, SI,
// Y0-Y13.
#define GQA2_VCHUNKS(chunk, pos, INIT) \
	XORQ         CX, CX; \
chunk: \
	INIT; \
	LEAQ         (R8)(CX*2), SI; \
	MOVQ         R10, DX; \
pos: \
	VCVTPH2PS    (SI), Y8; \
	VCVTPH2PS    16(SI), Y9; \
	VBROADCASTSS (DX), Y10; \
	VBROADCASTSS (DX)(R13*1), Y11; \
	VBROADCASTSS (DX)(R13*2), Y12; \
	VBROADCASTSS (DX)(R12*1), Y13; \
	VFMADD231PS  Y10, Y8, Y0; \
	VFMADD231PS  Y10, Y9, Y1; \
	VFMADD231PS  Y11, Y8, Y2; \
	VFMADD231PS  Y11, Y9, Y3; \
	VFMADD231PS  Y12, Y8, Y4; \
	VFMADD231PS  Y12, Y9, Y5; \
	VFMADD231PS  Y13, Y8, Y6; \
	VFMADD231PS  Y13, Y9, Y7; \
	ADDQ         R15, SI; \
	ADDQ         step+56(FP), DX; \
	CMPQ         DX, R9; \
	JLT          pos; \
	GQA2_VADDR; \
	GQA2_VSTORE; \
	ADDQ         $16, CX; \
	CMPQ         CX, R11; \
	JLT          chunk; \
	MOVQ         R9, R10; \
	GQA2_VNEXT

// func attnScoresGQA4F16AVX2(att *float32, n int, k *byte, stride int, q *float32, hd int, scale float32, tmp *float32)
//
// For the four heads g < 4 (query g at q + g*hd floats, its scores at att
// + g*n floats) and pos < n: att[g*n+pos] = dotF16X32AVX2(k + pos*stride,
// q_g, hd) * scale, as attnScoresF16AVX2 computes each; tmp is not used
// (it is there for attnScoresGQA4F16AVX512's contract). The four heads
// need 16 accumulators, which leave no register for the key, so a key row
// goes in two passes over its elements: the first keeps, for all four
// heads, attnScoresF16AVX2's accumulators Y0 and Y2 (its 1st and 3rd 8
// elements of each 32) in Y0-Y3 and Y4-Y7, widening into Y8 and Y9, and
// adds them (REDUCE32's Y0+Y2) into Y0-Y3; the second keeps Y1 and Y3 in
// Y4-Y7 and Y8-Y11, widening into Y12 and Y13, adds them (Y1+Y3) into
// Y4-Y7 and those into Y0-Y3 (REDUCE32's sum). Each key element is
// widened once, each accumulator gets the same fused multiply-adds in the
// same order. The four heads' 8-lane sums then finish REDUCE32 together:
// VPERM2F128 pairs the halves of two heads' sums so that one VADDPS does
// both 128-bit folds, and two VHADDPS (which add within 128-bit halves)
// over the two pairs add REDUCE32's pairs, leaving head g's sum in lane
// 0, 4, 1, 5 for g = 0, 1, 2, 3; it is multiplied by the scale (Y15;
// VMULPS rounds each lane as VMULSS does) and stored. hd is a multiple of 32; stride is in bytes.
TEXT ·attnScoresGQA4F16AVX2(SB), NOSPLIT, $0-64
	MOVQ         att+0(FP), DX
	MOVQ         n+8(FP), BX
	MOVQ         k+16(FP), R8
	MOVQ         stride+24(FP), R9
	MOVQ         q+32(FP), R10
	MOVQ         hd+40(FP), R11
	VBROADCASTSS scale+48(FP), Y15
	MOVQ         BX, R13
	SHLQ         $2, R13           // n*4: bytes between the heads' score rows
	LEAQ         (R13)(R13*2), R12 // 3*n*4
	MOVQ         R11, R14
	SHLQ         $2, R14           // hd*4: bytes between the heads' queries
	LEAQ         (R14)(R14*2), R15 // 3*hd*4
	TESTQ        BX, BX
	JEQ          g2sdone
	TESTQ        R11, R11
	JEQ          g2sdone

g2spos:
	// attnScoresF16AVX2's Y0 and Y2 of the four heads, then Y0+Y2
	GQA2_PASS(g2sloop1, 0, 32, 0, 64, Y8, Y9, Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	// its Y1 and Y3, Y1+Y3, and (Y0+Y2)+(Y1+Y3)
	GQA2_PASS(g2sloop2, 16, 48, 32, 96, Y12, Y13, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11)
	VADDPS Y8, Y4, Y4
	VADDPS Y9, Y5, Y5
	VADDPS Y10, Y6, Y6
	VADDPS Y11, Y7, Y7
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	GQA2_SCORES
	ADDQ R9, R8
	ADDQ $4, DX
	DECQ BX
	JNZ  g2spos

g2sdone:
	VZEROUPPER
	RET

// func attnValuesLanesGQA4F16AVX2(acc *float32, v *byte, stride int, p *float32, n int, hd int, lanes int, step int, blk int)
//
// For the four heads g < 4, with p + g*n floats their probabilities
// already rounded to half precision: acc[(g*lanes+l)*hd+d] = the sum, in
// position order, of p_g[pos] * F16(v[pos*stride/2 + d]) over the
// positions pos < n with pos%lanes == l, each a fused multiply-add from
// zero, for all lanes l (a lane without positions gets zeros) and d <
// hd: the lanes attnValuesF16AVX2 leaves in a cleared buffer (its fused
// multiply-adds of the same exact products, in the same order, starting
// from +0). For each lane and 16 elements of the row, the four heads' sums
// are Y0-Y7 (head g's in Y(2g) and Y(2g+1)); each position's 16 values are
// widened once into Y8 and Y9 and its four probabilities broadcast into
// Y10-Y13. A lane's positions go in blocks of 8, each over all the chunks
// of its rows while they are in the level-1 cache (the rows of a lane are
// lanes rows apart, often a multiple of 4 KiB, so that they share cache
// sets): the sums stay in registers over a block's positions and wait in
// acc between blocks, stored and reloaded exactly. lanes is 32 (a single
// query's sums, as ggml_vec_dot_f16) or 8 (a prompt's, as llamafile's
// sgemm); step is 4*lanes and blk 32*lanes. hd is a multiple of 16;
// stride is in bytes.
TEXT ·attnValuesLanesGQA4F16AVX2(SB), NOSPLIT, $0-72
	MOVQ  p+24(FP), R10
	MOVQ  n+32(FP), BX
	MOVQ  hd+40(FP), R11
	MOVQ  BX, R13
	SHLQ  $2, R13           // n*4: bytes between the heads' probabilities
	LEAQ  (R10)(R13*1), BX  // the end of head 0's probabilities
	LEAQ  (R13)(R13*2), R12 // 3*n*4
	MOVQ  R11, R14
	IMULQ step+56(FP), R14  // lanes*hd*4: bytes between the heads' lanes
	MOVQ  stride+16(FP), R15
	IMULQ lanes+48(FP), R15 // lanes rows of values
	XORQ  AX, AX            // lane
	TESTQ R11, R11
	JEQ   g2vdone

g2vlane:
	MOVQ  p+24(FP), R10
	LEAQ  (R10)(AX*4), R10 // the lane's first probability of head 0
	MOVQ  stride+16(FP), R8
	IMULQ AX, R8
	ADDQ  v+8(FP), R8      // its first value row
	MOVQ  R11, DI
	IMULQ AX, DI
	SHLQ  $2, DI
	ADDQ  acc+0(FP), DI    // its sums of head 0
	XORQ  CX, CX
	CMPQ  R10, BX
	JGE   g2vempty

	// The first block, from zero.
	GQA2_VBLOCKEND
	GQA2_VCHUNKS(g2vchunk1, g2vpos1, GQA2_VZERO)

g2vblock: // later blocks, from the sums so far
	CMPQ R10, BX
	JGE  g2vnext
	GQA2_VBLOCKEND
	GQA2_VCHUNKS(g2vchunk2, g2vpos2, GQA2_VRELOAD)
	JMP  g2vblock

g2vempty: // a lane without positions: zeros
	GQA2_VZERO

g2vzero:
	GQA2_VADDR
	GQA2_VSTORE
	ADDQ $16, CX
	CMPQ CX, R11
	JLT  g2vzero

g2vnext:
	INCQ AX
	CMPQ AX, lanes+48(FP)
	JLT  g2vlane

g2vdone:
	VZEROUPPER
	RET

// func attnScoresGQA4SgemmF16AVX2(att *float32, n int, k *byte, stride int, qi *float32, steps int, scale float32)
//
// attnScoresGQA4SgemmF16AVX512 in AVX2, two positions at a time: each
// key's eight elements are widened once and multiplied into the four
// heads' 8-lane accumulators (Y(4p+g) for position p and head g), and the
// ends of hsum8 for the 2 positions and 4 heads are done in one
// transposition, adding the same pairs with the same first operands as
// attnScoresSgemmF16AVX2 one head at a time: bitwise equal. qi is laid out
// as for the AVX-512 kernel (interleaveQ4). A last odd position reads its
// key twice and stores only its own scores. stride is in bytes; steps >= 1
// and n >= 1.
TEXT ·attnScoresGQA4SgemmF16AVX2(SB), NOSPLIT, $0-52
	MOVQ att+0(FP), DX
	MOVQ n+8(FP), BX
	MOVQ k+16(FP), R8
	MOVQ stride+24(FP), R9
	MOVQ qi+32(FP), R10
	MOVQ steps+40(FP), R11
	LEAQ (BX*4), AX        // bytes from one head's scores to the next's
	LEAQ (AX)(AX*2), R15

sg2block:
	MOVQ    R8, SI
	LEAQ    (R8)(R9*1), R12
	CMPQ    BX, $2
	CMOVQLT SI, R12         // a last odd position: its key again
	MOVQ    R10, DI
	MOVQ    R11, CX
	GQA2_ZERO8(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)

sg2loop:
	VMOVUPS     (DI), Y8
	VMOVUPS     32(DI), Y9
	VMOVUPS     64(DI), Y10
	VMOVUPS     96(DI), Y11
	VCVTPH2PS   (SI), Y12
	VCVTPH2PS   (R12), Y13
	VFMADD231PS Y8, Y12, Y0
	VFMADD231PS Y9, Y12, Y1
	VFMADD231PS Y10, Y12, Y2
	VFMADD231PS Y11, Y12, Y3
	VFMADD231PS Y8, Y13, Y4
	VFMADD231PS Y9, Y13, Y5
	VFMADD231PS Y10, Y13, Y6
	VFMADD231PS Y11, Y13, Y7
	ADDQ        $16, SI
	ADDQ        $16, R12
	ADDQ        $128, DI
	DECQ        CX
	JNZ         sg2loop

	// hsum8's first step, hi+lo, for heads 0 and 1, 2 and 3 of each
	// position side by side: Y0 = position 0's heads 0 | 1, Y2 its 2 | 3,
	// Y4 and Y6 position 1's.
	VPERM2F128 $0x20, Y1, Y0, Y14
	VPERM2F128 $0x31, Y1, Y0, Y15
	VADDPS     Y14, Y15, Y0
	VPERM2F128 $0x20, Y3, Y2, Y14
	VPERM2F128 $0x31, Y3, Y2, Y15
	VADDPS     Y14, Y15, Y2
	VPERM2F128 $0x20, Y5, Y4, Y14
	VPERM2F128 $0x31, Y5, Y4, Y15
	VADDPS     Y14, Y15, Y4
	VPERM2F128 $0x20, Y7, Y6, Y14
	VPERM2F128 $0x31, Y7, Y6, Y15
	VADDPS     Y14, Y15, Y6

	// Second step, x0+x2 and x1+x3: position 0 into Y0, 1 into Y4.
	VSHUFPS $0x44, Y2, Y0, Y14
	VSHUFPS $0xee, Y2, Y0, Y15
	VADDPS  Y15, Y14, Y0
	VSHUFPS $0x44, Y6, Y4, Y14
	VSHUFPS $0xee, Y6, Y4, Y15
	VADDPS  Y15, Y14, Y4

	// Last step, c0+c1: the low half of Y0 holds heads 0 and 2 of
	// positions 0 and 1, the high half heads 1 and 3; then each head's
	// two scores side by side.
	VSHUFPS      $0x88, Y4, Y0, Y14
	VSHUFPS      $0xdd, Y4, Y0, Y15
	VADDPS       Y15, Y14, Y0
	VBROADCASTSS scale+48(FP), Y8
	VMULPS       Y8, Y0, Y0
	VPERMILPS    $0xd8, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	CMPQ         BX, $2
	JLT          sg2last
	VMOVLPS      X0, (DX)
	VMOVLPS      X1, (DX)(AX*1)
	VMOVHPS      X0, (DX)(AX*2)
	VMOVHPS      X1, (DX)(R15*1)
	ADDQ         $8, DX
	LEAQ         (R8)(R9*2), R8
	SUBQ         $2, BX
	JGT          sg2block
	JMP          sg2done

sg2last:
	VMOVSS     X0, (DX)
	VMOVSS     X1, (DX)(AX*1)
	VEXTRACTPS $2, X0, (DX)(AX*2)
	VEXTRACTPS $2, X1, (DX)(R15*1)

sg2done:
	VZEROUPPER
	RET

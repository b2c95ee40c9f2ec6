//go:build amd64 && !purego

#include "textflag.h"
#include "hsum_amd64.h"

// AVX2 versions of the BF16 row dots in dot.go (dotBF16, sgemmBF16),
// bitwise equal to them.
//
// A bf16 is the upper half of a float32, so widening is a 16-bit shift (or,
// for the odd element of a 32-bit pair, a mask). The products are computed
// with VMULPS and added with VADDPS, not fused: a product of two bf16s has at
// most 16 significant bits, but bf16 has float32's exponent range, so the
// product can underflow (round to a subnormal) or overflow (to infinity),
// and a fused multiply-add would then differ from the reference's rounded
// multiply followed by a rounded add. (The F16 kernels may fuse because a
// product of two halves is always exact in float32.)
//
// NaN payloads: the operations are the reference's own (one multiply, one
// add per element, the same reduction tree), so the results are bitwise
// equal for all inputs without NaNs (infinities included, and the default
// NaN that Inf-Inf or 0*Inf makes) and for inputs with one NaN where no
// other NaN arises (it propagates, quieted, whatever the operand order).
// When two different NaN payloads meet, x86 keeps the first operand's, and
// the Go compiler orders the reference's commutative adds and multiplies as
// it likes: the result is NaN in both, but its bits may differ
// (TestBF16AsmNaN counts how often).

// BF16EVENODD sets even and odd to the float32s of the even and odd bf16s
// of the 16 in src (src's register is reused for odd): dword k of even is
// element 2k, dword k of odd element 2k+1. Needs mask = eight 0xffff0000.
#define BF16EVENODD(src, even, mask) \
	VPSLLD $16, src, even; \
	VPAND  mask, src, src

// REDUCEBF32 leaves dotBF16's reduction of its 32 lanes in X0 lane 0, from
// the de-interleaved accumulators of dotBF16AVX2: dword k of Y0 is acc[2k],
// of Y1 acc[2k+1], of Y2 acc[16+2k], of Y3 acc[17+2k]. With
// u[l] = acc[l]+acc[16+l], Y0+Y2 holds u[2k] and Y1+Y3 u[2k+1]; unpacking
// them interleaves u back in order within each 128-bit half:
// Y2 = u0..3 | u8..11, Y3 = u4..7 | u12..15. Their halves regrouped,
// (u0..3 | u4..7) + (u8..11 | u12..15) is v[l] = u[l]+u[8+l] in lane l,
// which is (acc[l]+acc[16+l]) + (acc[8+l]+acc[24+l]); then hsum8.
#define REDUCEBF32 \
	VADDPS     Y2, Y0, Y0; \
	VADDPS     Y3, Y1, Y1; \
	VUNPCKLPS  Y1, Y0, Y2; \
	VUNPCKHPS  Y1, Y0, Y3; \
	VPERM2F128 $0x20, Y3, Y2, Y0; \
	VPERM2F128 $0x31, Y3, Y2, Y1; \
	VADDPS     Y1, Y0, Y0; \
	HSUM8

DATA bf16hi<>+0(SB)/4, $0xffff0000
GLOBL bf16hi<>(SB), RODATA|NOPTR, $4

// func dotBF16AVX2(w, x *byte, n int) float32
//
// dotBF16's 32 lanes over n elements (n a multiple of 32), reduced as
// dotBF16 reduces them (float32; the caller adds the leftovers in float64).
// Each 32 elements are loaded as two 16-element halves and split into even
// and odd elements, so the lanes are kept de-interleaved (see REDUCEBF32):
// Y0 even and Y1 odd of elements 0..15, Y2 even and Y3 odd of 16..31. Each
// lane still sees its own elements in order, multiplied then added.
TEXT ·dotBF16AVX2(SB), NOSPLIT, $0-28
	MOVQ         w+0(FP), SI
	MOVQ         x+8(FP), DI
	MOVQ         n+16(FP), CX
	VBROADCASTSS bf16hi<>(SB), Y15
	VXORPS       Y0, Y0, Y0
	VXORPS       Y1, Y1, Y1
	VXORPS       Y2, Y2, Y2
	VXORPS       Y3, Y3, Y3
	TESTQ        CX, CX
	JEQ          bf16done

bf16loop:
	VMOVDQU (SI), Y4
	VMOVDQU (DI), Y5
	VMOVDQU 32(SI), Y6
	VMOVDQU 32(DI), Y7
	BF16EVENODD(Y4, Y8, Y15)
	BF16EVENODD(Y5, Y9, Y15)
	BF16EVENODD(Y6, Y10, Y15)
	BF16EVENODD(Y7, Y11, Y15)
	VMULPS  Y9, Y8, Y8
	VADDPS  Y8, Y0, Y0
	VMULPS  Y5, Y4, Y4
	VADDPS  Y4, Y1, Y1
	VMULPS  Y11, Y10, Y10
	VADDPS  Y10, Y2, Y2
	VMULPS  Y7, Y6, Y6
	VADDPS  Y6, Y3, Y3
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $32, CX
	JNZ     bf16loop

bf16done:
	REDUCEBF32
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func sgemmBF16AVX2(w, x *byte, steps int) float32
//
// sgemmBF16 over steps of 8 elements: element k in lane k%8, multiplied
// then added (one dependent add a step and lane: the reference's order
// allows no more parallelism), hsum8.
TEXT ·sgemmBF16AVX2(SB), NOSPLIT, $0-28
	MOVQ   w+0(FP), SI
	MOVQ   x+8(FP), DI
	MOVQ   steps+16(FP), CX
	VXORPS Y0, Y0, Y0
	TESTQ  CX, CX
	JEQ    sgbf16done

sgbf16loop:
	VPMOVZXWD (SI), Y1
	VPMOVZXWD (DI), Y2
	VPSLLD    $16, Y1, Y1
	VPSLLD    $16, Y2, Y2
	VMULPS    Y2, Y1, Y1
	VADDPS    Y1, Y0, Y0
	ADDQ      $16, SI
	ADDQ      $16, DI
	DECQ      CX
	JNZ       sgbf16loop

sgbf16done:
	HSUM8
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func sgemmBF16X32AVX2(w *byte, x *float32, steps int) float32
//
// sgemmBF16AVX2 with the activations already widened to float32.
TEXT ·sgemmBF16X32AVX2(SB), NOSPLIT, $0-28
	MOVQ   w+0(FP), SI
	MOVQ   x+8(FP), DI
	MOVQ   steps+16(FP), CX
	VXORPS Y0, Y0, Y0
	TESTQ  CX, CX
	JEQ    sgbx32done

sgbx32loop:
	VPMOVZXWD (SI), Y1
	VPSLLD    $16, Y1, Y1
	VMULPS    (DI), Y1, Y1
	VADDPS    Y1, Y0, Y0
	ADDQ      $16, SI
	ADDQ      $32, DI
	DECQ      CX
	JNZ       sgbx32loop

sgbx32done:
	HSUM8
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func bf16MagsAVX2(b *byte, n int) (lo, hi uint16)
//
// The least of each magnitude less one (a zero wraps to 0xffff) and the
// greatest magnitude, over n steps of 16 bf16s: unsigned 16-bit minimum and
// maximum in Y1 and Y2, then VPHMINPOSUW (the maximum as the minimum of the
// complements).
TEXT ·bf16MagsAVX2(SB), NOSPLIT, $0-20
	MOVQ         b+0(FP), SI
	MOVQ         n+8(FP), CX
	MOVL         $0x7fff7fff, AX
	VMOVD        AX, X3
	VPBROADCASTD X3, Y3
	VPCMPEQW     Y4, Y4, Y4 // all ones: -1 in each word
	VMOVDQU      Y4, Y1
	VPXOR        Y2, Y2, Y2

bmagloop:
	VPAND   (SI), Y3, Y0
	VPMAXUW Y0, Y2, Y2
	VPADDW  Y4, Y0, Y0
	VPMINUW Y0, Y1, Y1
	ADDQ    $32, SI
	DECQ    CX
	JNZ     bmagloop

	VEXTRACTI128 $1, Y1, X0
	VPMINUW      X0, X1, X1
	VPHMINPOSUW  X1, X1
	VPEXTRW      $0, X1, AX
	MOVW         AX, lo+16(FP)
	VEXTRACTI128 $1, Y2, X0
	VPMAXUW      X0, X2, X2
	VPXOR        X4, X2, X2
	VPHMINPOSUW  X2, X2
	VPEXTRW      $0, X2, AX
	NOTL         AX
	MOVW         AX, hi+18(FP)
	VZEROUPPER
	RET

//go:build amd64 && !purego

package kernels

// dotQ6_KQ8_KTok4AVX512 computes dotQ6_KQ8_K of one Q6_K weight row of nb
// super-blocks at w by the 4 Q8_K activation rows at x + i*xrb into
// dst[i*ldd], i < 4, in AVX-512 (F, BW) and AVX-512 VNNI
// (q6k512_tiles_amd64.s): each super-block's 6-bit quants and scales are
// unpacked once for the 4 tokens. Each result is bitwise dotQ6_KQ8_K (and
// so dotQ6_KQ8_KAVX512, and dotQ6_KQ8_KAsm wherever that is exact) for any
// Q6_K bytes and any Q8_K quants (-128 included; the group sums are not
// read): every integer it converts to float32 is one of the reference's
// int32 lanes, summed exactly (the activations are biased by 128 to be
// unsigned and the bias's contribution, which depends on the weights only,
// is taken off once per super-block), and each token's float operations
// are the reference's on the same operands in the same order (d rounded
// once from the same product, one fused multiply-add per lane per
// super-block in block order, hsum8 at the end). Callers check useAVX512
// and the lengths (see dotQ6_KTiles512).
//
//go:noescape
func dotQ6_KQ8_KTok4AVX512(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)

// dotQ6_KTiles512 is dotQ6_KTiles with the AVX-512 kernels: rows [lo, hi)
// of a Q6_K product of n activation rows of xrb bytes in Q8_K
// (dst[i*ldd+r], ldd = w.Rows), 4 tokens at a time with
// dotQ6_KQ8_KTok4AVX512, the leftover tokens one at a time with
// dotQ6_KQ8_KAsm512; each element is bitwise dotQ6_KQ8_K, for any Q8_K
// activation bytes. As dotQ4_KTiles512, the rows go in blocks of about
// q4kTileBytes with the tokens in the outer loop within a block. Callers
// check useAVX512. It returns hi.
func dotQ6_KTiles512(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
	return kTiles512(dst, w, x, xrb, n, lo, hi, dotQ6_KQ8_KTok4AVX512, dotQ6_KQ8_KAsm512)
}

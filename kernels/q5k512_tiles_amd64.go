//go:build amd64 && !purego

package kernels

// dotQ5_KQ8_KTok4AVX512 computes dotQ5_KQ8_K of one Q5_K weight row of nb
// super-blocks at w by the 4 Q8_K activation rows at x + i*xrb into
// dst[i*ldd], i < 4, in AVX-512 (F, BW) and AVX-512 VNNI
// (q5k512_tiles_amd64.s): each super-block's 5-bit weights, scales and
// mins are unpacked once for the 4 tokens. Each result is bitwise
// dotQ5_KQ8_K (and so dotQ5_KQ8_KAVX512 and dotQ5_KQ8_KAVX2) for any Q5_K
// bytes and any Q8_K contents (quants of -128, group sums unrelated to the
// quants): every integer it converts to float32 is one of the reference's
// int32 lanes or its mins' total, summed exactly (the weights are unsigned
// 0..31, so no int16 step saturates and nothing overflows), and each
// token's float operations are the reference's on the same operands in the
// same order (d and dmin rounded once from the same products, one fused
// multiply-add per lane and one for the mins per super-block in block
// order, hsum8 plus the mins' sum at the end). Callers check useAVX512 and
// the lengths (see dotQ5_KTiles512).
//
//go:noescape
func dotQ5_KQ8_KTok4AVX512(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)

// dotQ5_KTiles512 is dotQ5_KTiles with the AVX-512 kernels: rows [lo, hi)
// of a Q5_K product of n activation rows of xrb bytes in Q8_K
// (dst[i*ldd+r], ldd = w.Rows), 4 tokens at a time with
// dotQ5_KQ8_KTok4AVX512, the leftover tokens one at a time with
// dotQ5_KQ8_KAsm512; each element is bitwise dotQ5_KQ8_K, for any block
// contents. As in dotQ4_KTiles512, the rows go in blocks of about
// q4kTileBytes, and within a block the tokens go in the outer loop: 4
// activation rows stay in L1 while the block's weight rows stream from L2.
// Callers check useAVX512. It returns hi.
func dotQ5_KTiles512(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
	return kTiles512(dst, w, x, xrb, n, lo, hi, dotQ5_KQ8_KTok4AVX512, dotQ5_KQ8_KAsm512)
}

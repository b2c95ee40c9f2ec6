//go:build amd64 && !purego

package kernels

import "unsafe"

// dotQ4_KQ8_KTok4AVX512 computes dotQ4_KQ8_K of one Q4_K weight row of nb
// super-blocks at w by the 4 Q8_K activation rows at x + i*xrb into
// dst[i*ldd], i < 4, in AVX-512 (F, BW) and AVX-512 VNNI
// (q4k512_tiles_amd64.s): each super-block's nibbles, scales and mins are
// unpacked once for the 4 tokens. Each result is bitwise dotQ4_KQ8_K (and
// so dotQ4_KQ8_KAVX512, and dotQ4_KQ8_KAsm wherever that is exact) for any
// Q4_K bytes and any Q8_K contents (quants of -128, group sums unrelated to
// the quants): every integer it converts to float32 is one of the
// reference's int32 lanes or min terms, summed exactly (nothing can
// saturate or overflow), and each token's float operations are the
// reference's on the same operands in the same order (d and dmin rounded
// once from the same products, one fused multiply-add per lane per
// super-block in block order, hsum8 and the mins' pairwise sum at the end).
// Callers check useAVX512 and the lengths (see dotQ4_KTiles512).
//
//go:noescape
func dotQ4_KQ8_KTok4AVX512(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)

// q4kTileBytes is how many bytes of weight rows dotQ4_KTiles512 takes at a
// time: they stay in the L2 cache while every group of 4 tokens passes
// over them, each group's activation rows in L1.
const q4kTileBytes = 128 << 10

// dotQ4_KTiles512 is dotQ4_KTiles with the AVX-512 kernels: rows [lo, hi)
// of a Q4_K product of n activation rows of xrb bytes in Q8_K
// (dst[i*ldd+r], ldd = w.Rows), 4 tokens at a time with
// dotQ4_KQ8_KTok4AVX512, the leftover tokens one at a time with
// dotQ4_KQ8_KAsm512; each element is bitwise dotQ4_KQ8_K, for any Q8_K
// activation bytes. The rows go in blocks of about q4kTileBytes, and
// within a block the tokens go in the outer loop: 4 activation rows stay in
// L1 while the block's weight rows stream from L2 (all n activation rows,
// 9 KiB each at 8192 columns, would not fit in L1). Callers check
// useAVX512. It returns hi.
func dotQ4_KTiles512(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
	return kTiles512(dst, w, x, xrb, n, lo, hi, dotQ4_KQ8_KTok4AVX512, dotQ4_KQ8_KAsm512)
}

// kTiles512 is the driver of the K-quants' AVX-512 4-token kernels (see
// dotQ4_KTiles512): rows [lo, hi) of w's product with n Q8_K activation
// rows of xrb bytes, 4 tokens at a time with tok4 and the leftover tokens
// with the one-token dot, the rows in blocks of about q4kTileBytes with
// the tokens in the outer loop within a block. It returns hi.
func kTiles512(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int,
	tok4 func(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int), dot func(w, x []byte, nb int) float32) int {
	rb, ldd := w.RowBytes(), w.Rows
	nb := w.Cols / QKK
	wb := nb * w.Type.BlockBytes() // a row's blocks
	step := max(1, q4kTileBytes/rb)
	for r0 := lo; r0 < hi; r0 += step {
		r1 := min(hi, r0+step)
		i := 0
		for ; i+4 <= n; i += 4 {
			xs := x[i*xrb : (i+3)*xrb+nb*q8_KBytes]
			for r := r0; r < r1; r++ {
				row := w.Data[r*rb : r*rb+wb]
				d := dst[i*ldd+r : (i+3)*ldd+r+1]
				tok4(unsafe.SliceData(d), ldd, unsafe.SliceData(row), unsafe.SliceData(xs), xrb, nb)
			}
		}
		for ; i < n; i++ {
			xi := x[i*xrb : (i+1)*xrb]
			for r := r0; r < r1; r++ {
				dst[i*ldd+r] = dot(w.Data[r*rb:r*rb+wb], xi, nb)
			}
		}
	}
	return hi
}

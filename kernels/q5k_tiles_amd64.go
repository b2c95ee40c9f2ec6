//go:build amd64 && !purego

package kernels

import "unsafe"

// dotQ5_KQ8_KTok4AVX2 computes dotQ5_KQ8_K of one Q5_K weight row of nb
// super-blocks at w by the 4 Q8_K activation rows at x + i*xrb into
// dst[i*ldd], i < 4 (q5k_tiles_amd64.s): each super-block's scales, mins,
// F16 scales and 5-bit weights are unpacked once for the 4 tokens, and
// each result is bitwise that of dotQ5_KQ8_KAVX2, for any block contents
// as there. Callers check useAVX2 and the lengths (see dotQ5_KTiles).
//
//go:noescape
func dotQ5_KQ8_KTok4AVX2(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)

// dotQ5_KTiles computes rows [lo, hi) of a Q5_K product of n activation
// rows of xrb bytes in Q8_K (dst[i*ldd+r], ldd = w.Rows), 4 tokens per pass
// over a weight row, the leftover tokens one at a time with dotQ5_KQ8_KAsm;
// each element is bitwise dotQ5_KQ8_K (for any block contents, see
// dotQ5_KQ8_KTok4AVX2). It returns hi.
func dotQ5_KTiles(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
	rb, ldd := w.RowBytes(), w.Rows
	nb := w.Cols / QKK
	for r := lo; r < hi; r++ {
		row := w.Data[r*rb : r*rb+nb*q5_KBytes]
		i := 0
		for ; i+4 <= n; i += 4 {
			d := dst[i*ldd+r : (i+3)*ldd+r+1]
			xs := x[i*xrb : (i+3)*xrb+nb*q8_KBytes]
			dotQ5_KQ8_KTok4AVX2(unsafe.SliceData(d), ldd, unsafe.SliceData(row), unsafe.SliceData(xs), xrb, nb)
		}
		for ; i < n; i++ {
			dst[i*ldd+r] = dotQ5_KQ8_KAsm(row, x[i*xrb:(i+1)*xrb], nb)
		}
	}
	return hi
}

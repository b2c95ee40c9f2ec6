//go:build amd64 && !purego

package kernels

import "unsafe"

// dotQ4_KQ8_KAVX512 is dotQ4_KQ8_K over nb super-blocks at w (Q4_K) and x
// (Q8_K), in AVX-512 (F, BW) and AVX-512 VNNI (q4k512_amd64.s), two blocks
// at a time. It is bitwise equal to the reference because every integer it
// converts to float32 is one of the reference's int32 lanes or min terms,
// summed exactly (no step can saturate or overflow, for any Q4_K bytes and
// any Q8_K quants and group sums), and its float operations are the
// reference's on the same operands: d and dmin rounded once from the same
// products, the same fused multiply-add per lane in block order, and the
// same final reduction. Callers check useAVX512 and the lengths (see
// dotQ4_KQ8_KAsm512).
//
//go:noescape
func dotQ4_KQ8_KAVX512(w, x *byte, nb int) float32

// dotQ4_KQ8_KAsm512 is dotQ4_KQ8_K in AVX-512, bitwise equal to it (see
// dotQ4_KQ8_KAVX512) and so to dotQ4_KQ8_KAsm wherever that one is (Q8_K
// activations as quantizeQ8_K makes them). It slices w and x to the lengths
// the reference reads, so a short slice panics here as it would there.
func dotQ4_KQ8_KAsm512(w, x []byte, nb int) float32 {
	w, x = w[:nb*q4_KBytes], x[:nb*q8_KBytes]
	return dotQ4_KQ8_KAVX512(unsafe.SliceData(w), unsafe.SliceData(x), nb)
}

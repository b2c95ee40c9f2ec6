//go:build amd64 && !purego

package kernels

import "unsafe"

// dotQ5_KQ8_KAVX2 is dotQ5_KQ8_K over nb super-blocks at w (Q5_K) and x
// (Q8_K), in AVX2+FMA+F16C (q5k_amd64.s), bitwise equal to it for any
// block contents: the 5-bit weights are unsigned, so no int16 step can
// saturate even at quant -128, and the mins' products are summed exactly
// in int32 for any group sums. Callers check useAVX2 and the lengths (see
// dotQ5_KQ8_KAsm).
//
//go:noescape
func dotQ5_KQ8_KAVX2(w, x *byte, nb int) float32

// dotQ5_KQ8_KAsm is dotQ5_KQ8_K in AVX2, bitwise equal to it (for any
// block contents, see dotQ5_KQ8_KAVX2). It slices w and x to the lengths
// the reference reads, so a short slice panics here as it would there.
func dotQ5_KQ8_KAsm(w, x []byte, nb int) float32 {
	w, x = w[:nb*q5_KBytes], x[:nb*q8_KBytes]
	return dotQ5_KQ8_KAVX2(unsafe.SliceData(w), unsafe.SliceData(x), nb)
}

//go:build amd64 && !purego

package kernels

import "unsafe"

// dotQ6_KQ8_KAVX512 is dotQ6_KQ8_K over nb super-blocks at w (Q6_K) and x
// (Q8_K), in AVX-512 F and BW and AVX-512 VNNI (q6k512_amd64.s; the float
// part in AVX2, FMA and F16C). Each super-block's 8 int32 lanes are the
// reference's exact integers, summed in an order of their own: the 6-bit
// weights stay unsigned until 32 times the activations' pair sums is taken
// off, so no int16 step saturates for any quant bytes (activations
// -128..127 included) and any scales. Every float operation is the
// reference's, in its order, with the multiply-add fused as in
// dotQ6_KQ8_KAVX2 and llama.cpp: so the result is bitwise
// dotQ6_KQ8_KAVX2's and dotQ6_KQ8_K's. Callers check useAVX512 and the
// lengths (see dotQ6_KQ8_KAsm512).
//
//go:noescape
func dotQ6_KQ8_KAVX512(w, x *byte, nb int) float32

// dotQ6_KQ8_KAsm512 is dotQ6_KQ8_K in AVX-512, bitwise equal to
// dotQ6_KQ8_KAsm wherever that is defined (activations in [-127, 127], as
// quantizeQ8_K makes them), and to the reference for any activation bytes.
// It slices w and x to the lengths the reference reads, so a short slice
// panics here as it would there.
func dotQ6_KQ8_KAsm512(w, x []byte, nb int) float32 {
	w, x = w[:nb*q6_KBytes], x[:nb*q8_KBytes]
	return dotQ6_KQ8_KAVX512(unsafe.SliceData(w), unsafe.SliceData(x), nb)
}

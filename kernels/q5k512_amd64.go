//go:build amd64 && !purego

package kernels

import "unsafe"

// dotQ5_KQ8_KAVX512 is dotQ5_KQ8_K over nb super-blocks at w (Q5_K) and x
// (Q8_K), in AVX-512 F and BW and AVX-512 VNNI (q5k512_amd64.s; the float
// part in AVX2, FMA and F16C). Each super-block's 8 int32 lanes and its
// mins' total are the reference's exact integers, summed in an order of
// their own: the 5-bit weights are unsigned, so no int16 step saturates
// for any quant bytes (activations -128..127 included), and the mins'
// products are summed in int32 for any group sums. Every float operation
// is the reference's, in its order, with the multiply-adds fused as in
// dotQ5_KQ8_KAVX2 and llama.cpp: so the result is bitwise
// dotQ5_KQ8_KAVX2's and dotQ5_KQ8_K's, for any block contents. Callers
// check useAVX512 and the lengths (see dotQ5_KQ8_KAsm512).
//
//go:noescape
func dotQ5_KQ8_KAVX512(w, x *byte, nb int) float32

// dotQ5_KQ8_KAsm512 is dotQ5_KQ8_K in AVX-512, bitwise equal to it and to
// dotQ5_KQ8_KAsm for any block contents (see dotQ5_KQ8_KAVX512). It slices
// w and x to the lengths the reference reads, so a short slice panics here
// as it would there.
func dotQ5_KQ8_KAsm512(w, x []byte, nb int) float32 {
	w, x = w[:nb*q5_KBytes], x[:nb*q8_KBytes]
	return dotQ5_KQ8_KAVX512(unsafe.SliceData(w), unsafe.SliceData(x), nb)
}

//go:build amd64 && !purego

package kernels

import "unsafe"

// dotBF16AVX2 returns dotBF16's float32 reduction of its 32 lanes over the
// n bf16 elements at w and x (n a multiple of 32), before the leftovers.
//
//go:noescape
func dotBF16AVX2(w, x *byte, n int) float32

// sgemmBF16AVX2 returns sgemmBF16 over steps of 8 bf16 elements at w and x.
//
//go:noescape
func sgemmBF16AVX2(w, x *byte, steps int) float32

// sgemmBF16X32AVX2 is sgemmBF16AVX2 with the activations as the float32
// values of their bf16s.
//
//go:noescape
func sgemmBF16X32AVX2(w *byte, x *float32, steps int) float32

// bf16MagsAVX2 returns bf16Mags' lo and hi over the 16*n bf16s at b.
//
//go:noescape
func bf16MagsAVX2(b *byte, n int) (lo, hi uint16)

// dotBF16Asm is dotBF16 in AVX2 (bitwise equal for all non-NaN inputs; see
// bf16_amd64.s): the assembly sums the steps of 32, and the leftover
// elements are added here in float64 as dotBF16 adds them. Needs useAVX2.
func dotBF16Asm(w, x []byte) float32 {
	n := len(x) / 2
	np := n &^ 31
	w = w[:2*n]
	var sum float64
	if np > 0 {
		sum = float64(dotBF16AVX2(unsafe.SliceData(w), unsafe.SliceData(x), np))
	}
	for i := np; i < n; i++ {
		sum += float64(BF16ToF32(u16le(w[2*i:])) * BF16ToF32(u16le(x[2*i:])))
	}
	return float32(sum)
}

// sgemmBF16Asm is sgemmBF16 in AVX2 (bitwise equal for all non-NaN inputs):
// steps of 8 elements, the leftovers ignored as sgemmBF16 ignores them.
// Needs useAVX2.
func sgemmBF16Asm(w, x []byte, _ int) float32 {
	w = w[:len(x)]
	steps := len(x) / 16
	if steps == 0 {
		return 0
	}
	return sgemmBF16AVX2(unsafe.SliceData(w), unsafe.SliceData(x), steps)
}

// sgemmBF16X32Asm is sgemmBF16Asm with the activations as the float32
// values of their bf16s (quantizeActBF16x32: 4 bytes an element).
func sgemmBF16X32Asm(w, x []byte, _ int) float32 {
	xf := f32View(x)
	steps := len(xf) / 8
	if steps == 0 {
		return 0
	}
	w = w[:16*steps]
	return sgemmBF16X32AVX2(unsafe.SliceData(w), unsafe.SliceData(xf), steps)
}

//go:build amd64 && !purego

package kernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// useAVX2 reports whether the AVX2 kernels in dot_amd64.s run on this CPU:
// they need AVX2 for the integer sums, FMA for the fused multiply-adds and
// F16C for the half conversions (the set llama.cpp's reference build used).
// golang.org/x/sys/cpu (which also checks that the OS saves the YMM
// registers) has no F16C flag, so that bit is read with CPUID.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpuid1ECX()&(1<<29) != 0

// cpuid1ECX returns ECX of CPUID leaf 1 (bit 29: F16C).
func cpuid1ECX() uint32

// The assembly kernels take raw pointers; the Go wrappers below slice their
// inputs to the lengths the reference reads (so a short slice panics here
// as it would there) before handing them over.

//go:noescape
func dotQ8_0Q8_0AVX2(w, x *byte, nb int) float32

//go:noescape
func dotQ4_0Q8_0AVX2(w, x *byte, nb int) float32

//go:noescape
func dotQ4_0Q8_0x8AVX2(w, x *byte, nb int) float32

//go:noescape
func dotQ4_0Q8_0x8RowsAVX2(dst *float32, w *byte, rb int, x *byte, nb int)

//go:noescape
func dotQ4_KQ8_KAVX2(w, x *byte, nb int) float32

//go:noescape
func dotQ6_KQ8_KAVX2(w, x *byte, nb int) float32

//go:noescape
func quantizeQ8_0AVX2(y *byte, x *float32, nb int) int

//go:noescape
func dotF16AVX2(w, x *byte, n int) float32

//go:noescape
func dotF32AVX2(w *byte, x *float32, n int) float32

//go:noescape
func sgemmF16AVX2(w, x *byte, steps int) float32

//go:noescape
func sgemmF16Tile2x4AVX2(dst *float32, ldd int, w *byte, rb int, x *byte, xrb int, steps int)

//go:noescape
func dotQ8_0Q8_0Tok4AVX2(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)

//go:noescape
func sgemmF32AVX2(w *byte, x *float32, steps int) float32

// dotQ8_0Q8_0Asm is dotQ8_0Q8_0 in AVX2. The activations must lie in
// [-127, 127], as quantizeQ8_0 makes them.
func dotQ8_0Q8_0Asm(w, x []byte, nb int) float32 {
	w, x = w[:nb*q8_0Bytes], x[:nb*q8_0Bytes]
	return dotQ8_0Q8_0AVX2(unsafe.SliceData(w), unsafe.SliceData(x), nb)
}

// dotQ4_0Q8_0Asm is dotQ4_0Q8_0 in AVX2 (activations in [-127, 127]).
func dotQ4_0Q8_0Asm(w, x []byte, nb int) float32 {
	w, x = w[:nb*q4_0Bytes], x[:nb*q8_0Bytes]
	return dotQ4_0Q8_0AVX2(unsafe.SliceData(w), unsafe.SliceData(x), nb)
}

// dotQ4_0Q8_0x8Asm is dotQ4_0Q8_0x8 in AVX2 (activations in [-127, 127]).
func dotQ4_0Q8_0x8Asm(w, x []byte, nb int) float32 {
	w, x = w[:nb*q4_0Bytes], x[:nb*q8_0Bytes]
	return dotQ4_0Q8_0x8AVX2(unsafe.SliceData(w), unsafe.SliceData(x), nb)
}

// dotQ4_0Q8_0x8Rows8 sets dst[r] = dotQ4_0Q8_0x8(w[r*rb:], x, nb) for the
// 8 rows r < 8 of w (rows of rb bytes), bitwise as one row at a time.
func dotQ4_0Q8_0x8Rows8(dst []float32, w []byte, rb int, x []byte, nb int) {
	dst, w, x = dst[:8], w[:7*rb+nb*q4_0Bytes], x[:nb*q8_0Bytes]
	dotQ4_0Q8_0x8RowsAVX2(unsafe.SliceData(dst), unsafe.SliceData(w), rb, unsafe.SliceData(x), nb)
}

// dotQ4_KQ8_KAsm is dotQ4_KQ8_K in AVX2 (activations in [-127, 127] with
// their true group sums, as quantizeQ8_K makes them: it adds pairs of group
// sums in int16).
func dotQ4_KQ8_KAsm(w, x []byte, nb int) float32 {
	w, x = w[:nb*q4_KBytes], x[:nb*q8_KBytes]
	return dotQ4_KQ8_KAVX2(unsafe.SliceData(w), unsafe.SliceData(x), nb)
}

// dotQ6_KQ8_KAsm is dotQ6_KQ8_K in AVX2 (activations in [-127, 127], as
// quantizeQ8_K makes them).
func dotQ6_KQ8_KAsm(w, x []byte, nb int) float32 {
	w, x = w[:nb*q6_KBytes], x[:nb*q8_KBytes]
	return dotQ6_KQ8_KAVX2(unsafe.SliceData(w), unsafe.SliceData(x), nb)
}

// dotF16Asm is dotF16 in AVX2: the assembly sums the whole steps of 32 and
// the leftovers are added in float64 as the reference adds them.
func dotF16Asm(w, x []byte, _ int) float32 {
	t := f16Table
	n := len(x) / 2
	np := n &^ 31
	w = w[:2*n]
	var sum float64
	if np > 0 {
		sum = float64(dotF16AVX2(unsafe.SliceData(w), unsafe.SliceData(x), np))
	}
	for i := np; i < n; i++ {
		sum += float64(t[u16le(w[2*i:])] * t[u16le(x[2*i:])])
	}
	return float32(sum)
}

// dotF32Asm is dotF32 in AVX2, with the leftovers added unfused in Go.
func dotF32Asm(w []byte, x []float32) float32 {
	n := len(x)
	np := n &^ 31
	w = w[:4*n]
	var sum float32
	if np > 0 {
		sum = dotF32AVX2(unsafe.SliceData(w), unsafe.SliceData(x), np)
	}
	for i := np; i < n; i++ {
		sum += float32(f32le(w[4*i:]) * x[i])
	}
	return sum
}

// quantizeQ8_0Impl is quantizeQ8_0, in AVX2 where the CPU has it. Blocks
// the assembly leaves alone (an Inf or NaN, or all magnitudes below
// 127/MaxFloat32, where the reference's rounding of x*Inf is not what
// VCVTPS2DQ does) go to the reference.
func quantizeQ8_0Impl(y []byte, x []float32) {
	if !useAVX2 {
		quantizeQ8_0(y, x)
		return
	}
	nb := len(x) / QK
	y, x = y[:nb*q8_0Bytes], x[:nb*QK]
	for len(x) > 0 {
		n := quantizeQ8_0AVX2(unsafe.SliceData(y), unsafe.SliceData(x), len(x)/QK)
		y, x = y[n*q8_0Bytes:], x[n*QK:]
		if len(x) > 0 {
			quantizeQ8_0(y[:q8_0Bytes], x[:QK])
			y, x = y[q8_0Bytes:], x[QK:]
		}
	}
}

// sgemmF16Asm is sgemmF16 in AVX2.
func sgemmF16Asm(w, x []byte, _ int) float32 {
	steps := len(x) / 16
	w, x = w[:16*steps], x[:16*steps]
	return sgemmF16AVX2(unsafe.SliceData(w), unsafe.SliceData(x), steps)
}

// sgemmF32Asm is sgemmF32 in AVX2.
func sgemmF32Asm(w []byte, x []float32) float32 {
	steps := len(x) / 8
	w, x = w[:32*steps], x[:8*steps]
	return sgemmF32AVX2(unsafe.SliceData(w), unsafe.SliceData(x), steps)
}

// sgemmF16Tiles computes rows [lo, hi) of a batched F16 product (dst[i*ldd+r]
// for the n activation rows of xrb bytes in x) in tiles of 2 rows by 4
// tokens, each element bitwise sgemmF16, and returns the first row it left
// (hi, or hi-1 for an odd count).
func sgemmF16Tiles(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
	rb, ldd, steps := w.RowBytes(), w.Rows, xrb/16
	for ; lo+2 <= hi; lo += 2 {
		rows := w.Data[lo*rb : lo*rb+rb+16*steps]
		i := 0
		for ; i+4 <= n; i += 4 {
			d := dst[i*ldd+lo : (i+3)*ldd+lo+2]
			xs := x[i*xrb : (i+3)*xrb+16*steps]
			sgemmF16Tile2x4AVX2(unsafe.SliceData(d), ldd, unsafe.SliceData(rows), rb, unsafe.SliceData(xs), xrb, steps)
		}
		for ; i < n; i++ {
			xi := x[i*xrb : (i+1)*xrb]
			dst[i*ldd+lo] = sgemmF16Asm(w.Data[lo*rb:(lo+1)*rb], xi, 0)
			dst[i*ldd+lo+1] = sgemmF16Asm(w.Data[(lo+1)*rb:(lo+2)*rb], xi, 0)
		}
	}
	return lo
}

// dotQ8_0Tiles computes rows [lo, hi) of a Q8_0 product of n activation
// rows (dst[i*ldd+r]), 4 tokens per pass over a weight row, each element
// bitwise dotQ8_0Q8_0; it returns hi.
func dotQ8_0Tiles(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
	rb, ldd := w.RowBytes(), w.Rows
	nb := w.Cols / QK
	for r := lo; r < hi; r++ {
		row := w.Data[r*rb : r*rb+nb*q8_0Bytes]
		i := 0
		for ; i+4 <= n; i += 4 {
			d := dst[i*ldd+r : (i+3)*ldd+r+1]
			xs := x[i*xrb : (i+3)*xrb+nb*q8_0Bytes]
			dotQ8_0Q8_0Tok4AVX2(unsafe.SliceData(d), ldd, unsafe.SliceData(row), unsafe.SliceData(xs), xrb, nb)
		}
		for ; i < n; i++ {
			dst[i*ldd+r] = dotQ8_0Q8_0Asm(row, x[i*xrb:(i+1)*xrb], nb)
		}
	}
	return hi
}

// fastTiles returns a kernel that computes whole rows of a product of n
// tokens in register tiles (bitwise as the row dot), or nil.
func fastTiles(t DType, batch bool, n int) func(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
	switch {
	case !useAVX2 || n < 4:
		return nil
	case batch && t == F16:
		return sgemmF16Tiles
	case t == Q8_0:
		return dotQ8_0Tiles
	}
	return nil
}

// fastDot returns the SIMD version of the row dot matMul picks for weights
// of type t with the given row count (batch: llama.cpp's sgemm path), or nil
// where there is none on this CPU and the reference runs.
func fastDot(t DType, rows int, batch bool) func(w, x []byte, nb int) float32 {
	if !useAVX2 {
		return nil
	}
	switch {
	case t == Q4_0 && rows%8 == 0:
		return dotQ4_0Q8_0x8Asm
	case t == Q4_0:
		return dotQ4_0Q8_0Asm
	case t == Q8_0:
		return dotQ8_0Q8_0Asm
	case t == Q4_K:
		return dotQ4_KQ8_KAsm
	case t == Q6_K:
		return dotQ6_KQ8_KAsm
	case t == F16 && !batch:
		return dotF16Asm
	case t == F16:
		return sgemmF16Asm
	}
	return nil
}

// fastRows8 returns a kernel that computes 8 rows of the product at once,
// bitwise as fastDot's (or the reference) row dot would, or nil.
func fastRows8(t DType, rows int, _ bool) func(dst []float32, w []byte, rb int, x []byte, nb int) {
	if useAVX2 && t == Q4_0 && rows%8 == 0 {
		return dotQ4_0Q8_0x8Rows8
	}
	return nil
}

// fastDotF32 returns the SIMD version of dotF32 (batch: of sgemmF32), or
// nil where there is none on this CPU.
func fastDotF32(batch bool) func(w []byte, x []float32) float32 {
	switch {
	case !useAVX2:
		return nil
	case batch:
		return sgemmF32Asm
	}
	return dotF32Asm
}

// asmDots lists the SIMD row dots this CPU runs, each with the reference it
// must match bit for bit, for the differential tests.
func asmDots() []dotImpl {
	if !useAVX2 {
		return nil
	}
	return []dotImpl{
		{"Q8_0", Q8_0, dotQ8_0Q8_0, dotQ8_0Q8_0Asm},
		{"Q4_0", Q4_0, dotQ4_0Q8_0, dotQ4_0Q8_0Asm},
		{"Q4_0x8", Q4_0, dotQ4_0Q8_0x8, dotQ4_0Q8_0x8Asm},
		{"Q4_0x8rows", Q4_0, dotQ4_0Q8_0x8, rowOf8(dotQ4_0Q8_0x8Rows8, q4_0Bytes)},
		{"Q8_0tok4", Q8_0, dotQ8_0Q8_0, tokOf4Q8_0},
		{"Q4_K", Q4_K, dotQ4_KQ8_K, dotQ4_KQ8_KAsm},
		{"Q6_K", Q6_K, dotQ6_KQ8_K, dotQ6_KQ8_KAsm},
		{"F16", F16, func(w, x []byte, _ int) float32 { return dotF16(w, x) }, dotF16Asm},
		{"F32", F32, dotF32Bytes, func(w, x []byte, _ int) float32 { return dotF32Asm(w, f32View(x)) }},
		{"sgemmF16", F16, sgemmF16, sgemmF16Asm},
		{"sgemmF32", F32,
			func(w, x []byte, _ int) float32 { return sgemmF32(w, f32View(x)) },
			func(w, x []byte, _ int) float32 { return sgemmF32Asm(w, f32View(x)) }},
	}
}

// f32View returns the float32s whose bytes are b (len(b) a multiple of 4,
// 4-aligned). The result aliases b.
func f32View(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

// dotF32Bytes is dotF32 with the activations given as bytes.
func dotF32Bytes(w, x []byte, _ int) float32 { return dotF32(w, f32View(x)) }

// rowOf8 makes a row dot of an 8-row kernel for the differential tests: it
// puts the row at index 5 of 8 rows, rb = row+blockBytes bytes apart (the
// other rows scrambled copies, so that mixed-up lanes or strides would
// show), and returns that row's result.
func rowOf8(k func(dst []float32, w []byte, rb int, x []byte, nb int), blockBytes int) func(w, x []byte, nb int) float32 {
	return func(w, x []byte, nb int) float32 {
		rb := nb*blockBytes + blockBytes // padding between rows
		m := make([]byte, 8*rb)
		for r := range 8 {
			for i := range nb * blockBytes {
				m[r*rb+i] = w[(i+7*r)%(nb*blockBytes)] ^ byte(r*29) // other rows differ
			}
			for b := range nb { // each block keeps the original's (finite) scale
				copy(m[r*rb+b*blockBytes:][:2], w[b*blockBytes:][:2])
			}
		}
		copy(m[5*rb:], w[:nb*blockBytes])
		var dst [8]float32
		k(dst[:], m, rb, x, nb)
		return dst[5]
	}
}

// tokOf4Q8_0 is a row dot made of the 4-token Q8_0 kernel for the
// differential tests: x is token 2 of 4 activation rows, xrb = its length
// plus one block apart (the others scrambled copies), and dst has a stride
// of 3.
func tokOf4Q8_0(w, x []byte, nb int) float32 {
	xrb := (nb + 1) * q8_0Bytes
	m := make([]byte, 4*xrb)
	for i := range 4 {
		for j := range nb * q8_0Bytes {
			m[i*xrb+j] = x[(j+5*i)%(nb*q8_0Bytes)]
		}
		for b := range nb { // each block keeps the original's (finite) scale
			copy(m[i*xrb+b*q8_0Bytes:][:2], x[b*q8_0Bytes:][:2])
		}
	}
	copy(m[2*xrb:], x[:nb*q8_0Bytes])
	for j := range m {
		if m[j] == 0x80 { // no -128 quants (a scale's low byte may change: still finite)
			m[j] = 0x81
		}
	}
	copy(m[2*xrb:], x[:nb*q8_0Bytes])
	var dst [10]float32
	w = w[:nb*q8_0Bytes]
	dotQ8_0Q8_0Tok4AVX2(&dst[0], 3, unsafe.SliceData(w), unsafe.SliceData(m), xrb, nb)
	return dst[6]
}

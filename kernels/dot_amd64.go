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

// useAVX512 reports whether the AVX-512 kernels in dot512_amd64.s run on
// this CPU: 512-bit registers with byte, word and 256-bit broadcast
// operations (F, BW, DQ; the OS saving their state is checked by
// golang.org/x/sys/cpu) and VNNI's VPDPBUSD, besides the AVX2 set.
var useAVX512 = useAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VNNI

// simd is SIMD's answer for this CPU.
var simd = func() string {
	switch {
	case useAVX512:
		return "avx512-vnni"
	case useAVX2:
		return "avx2"
	}
	return "go"
}()

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
func dotQ5_0Q8_0AVX2(w, x *byte, nb int) float32

//go:noescape
func dotQ5_0Q8_0Tok4AVX2(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)

//go:noescape
func dotQ4_1Q8_1Tok4AVX2(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)

//go:noescape
func dotQ5_1Q8_1Tok4AVX2(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)

//go:noescape
func dotQ4_1Q8_1AVX2(w, x *byte, nb int) float32

//go:noescape
func dotQ5_1Q8_1AVX2(w, x *byte, nb int) float32

//go:noescape
func dotQ4_0Q8_0x8AVX2(w, x *byte, nb int) float32

//go:noescape
func dotQ4_0Q8_0x8RowsAVX2(dst *float32, w *byte, rb int, x *byte, nb int)

//go:noescape
func dotQ4_0Q8_0x8PackedAVX2(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)

//go:noescape
func dotQ8_0Q8_0x8PackedAVX2(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)

//go:noescape
func dotQ8_0Q8_0x8PackedAnyAVX2(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)

//go:noescape
func dotQ4_0Q8_0x16PackedAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)

//go:noescape
func dotQ4_0Q8_0x16PackedTok4AVX512(dst *float32, ldd int, w *byte, x *byte, xrb int, xs *byte, xsb int, nb int)

//go:noescape
func dotQ8_0Q8_0x16PackedAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)

//go:noescape
func dotQ8_0Q8_0x16PackedStreamAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)

// dotQ6_KQ8_Kx16PackedAVX512 is dotQ6_KQ8_K of groups*16 rows packed by
// packQ6K16 into dst[16g+r], bitwise, against x (nb Q8_K blocks) and its
// records xs (packedSumsQ6_K).
//
//go:noescape
func dotQ6_KQ8_Kx16PackedAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)

//go:noescape
func dotQ5_0Q8_0x16PackedAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)

//go:noescape
func dotQ4_1Q8_1x16PackedAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)

//go:noescape
func dotQ4_KQ8_Kx16PackedAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)

//go:noescape
func dotQ5_KQ8_Kx16PackedAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)

//go:noescape
func dotQ5_1Q8_1x16PackedAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)

//go:noescape
func hsumPairs8AVX2(dst *float32, ldd int, acc *float32, j0 int)

//go:noescape
func dotF16X32RowsAVX512(dst *float32, w *byte, rb int, x *float32, n, rows int)

//go:noescape
func dotF16X32Rows2TokAVX512(dst *float32, ldd int, w *byte, rb int, x *float32, xrb int, n, rows int)

//go:noescape
func sgemmPairs8x6AVX512(acc *float32, w *float32, ps int, x *byte, xrb int, steps int, fresh int, pf *byte, src *byte, rb int, mode int)

//go:noescape
func sgemmPairs8x2AVX512(acc *float32, w *float32, ps int, x *byte, xrb int, steps int, fresh int, mode int)

//go:noescape
func sgemmF16X32Acc4x6AVX512(acc *float32, w *byte, rb int, x *byte, xrb int, steps int)

//go:noescape
func packedSumsAVX2(xs *byte, x *byte, nb int, rec int)

// dotF16X32RowsAVX2 is dotF16X32RowsAVX512 in AVX2: dotF16X32AVX2 of rows
// rows (row r at w + r*rb) into dst[r], rows > 0.
//
//go:noescape
func dotF16X32RowsAVX2(dst *float32, w *byte, rb int, x *float32, n, rows int)

// dotF16RowsAccAVX2 is dotF16X32RowsAVX2's loop over n columns (a
// multiple of 32) of rows rows, with x as halves (widened as the weights
// are: exact), each row's four accumulators kept in memory (at acc +
// 128r, loaded and stored back unreduced): a wide matrix runs a band of
// columns at a time (packF16Bands), its band of x staying in L1 over the
// 16 rows. It serves AVX-512 CPUs too: on Zen 4 it widened the halves
// faster than an AVX-512 form in Z registers (two VCVTPH2PS of 16 halves
// a step for the weights and two for x), 49.8 against 34.6 GB/s from L2
// on one core, and whole decoded tokens of the 1B F16 model, alternating
// with it in one process (329 tokens each), ran at a median 87.6% of the
// paired roofline against 87.0% with the cores far apart (97.5% against
// 97.4% near).
//
//go:noescape
func dotF16RowsAccAVX2(acc *float32, w *byte, rb int, x *uint16, n, rows int)

//go:noescape
func dotQ8_0Q8_0x8PackedStreamAVX2(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)

//go:noescape
func dotQ8_0Q8_0x8PackedStreamAnyAVX2(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)

//go:noescape
func dotQ4_0Q8_0x8PackedStreamAVX2(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)

//go:noescape
func dotQ4_0Q8_0x16PackedStreamAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)

//go:noescape
func dotQ4_1Q8_1x16PackedStreamAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)

//go:noescape
func dotQ5_1Q8_1x16PackedStreamAVX512(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)

//go:noescape
func dotQ4_KQ8_KAVX2(w, x *byte, nb int) float32

//go:noescape
func dotQ6_KQ8_KAVX2(w, x *byte, nb int) float32

//go:noescape
func quantizeQ8_0AVX2(y *byte, x *float32, nb int) int

//go:noescape
func quantizeQ8_1AVX2(y *byte, x *float32, nb int) int

//go:noescape
func dotF16AVX2(w, x *byte, n int) float32

//go:noescape
func dotF16X32AVX2(w *byte, x *float32, n int) float32

//go:noescape
func dotF16X32x2AVX2(dst *float32, w *byte, rb int, x *float32, n int)

//go:noescape
func dotF32AVX2(w *byte, x *float32, n int) float32

//go:noescape
func sgemmF16AVX2(w, x *byte, steps int) float32

//go:noescape
func sgemmF16X32Acc2x6AVX2(acc *float32, w *byte, rb int, x *byte, xrb int, steps int, pairs int)

//go:noescape
func sgemmF16X32Acc4x2AVX2(acc *float32, w *byte, rb int, x *byte, xrb int, steps int, quads int)

//go:noescape
func sgemmF16X32AVX2(w *byte, x *byte, steps int) float32

//go:noescape
func axpyF16AVX2(acc *float32, v *byte, p float32, n int)

//go:noescape
func roundF16AVX2(y *float32, x *float32, n int)

//go:noescape
func swigluAVX2(dst, gate, up *float32, n int) int

//go:noescape
func toF16AVX2(dst *uint16, src *float32, n int)

//go:noescape
func fromF16AVX2(dst *float32, src *uint16, n int)

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

// dotQ5_0Q8_0Asm is dotQ5_0Q8_0 in AVX2 (activations in [-127, 127]).
func dotQ5_0Q8_0Asm(w, x []byte, nb int) float32 {
	w, x = w[:nb*q5_0Bytes], x[:nb*q8_0Bytes]
	return dotQ5_0Q8_0AVX2(unsafe.SliceData(w), unsafe.SliceData(x), nb)
}

// dotQ4_1Q8_1Asm is dotQ4_1Q8_1 in AVX2 (activations in [-127, 127]).
func dotQ4_1Q8_1Asm(w, x []byte, nb int) float32 {
	w, x = w[:nb*q4_1Bytes], x[:nb*q8_1Bytes]
	return dotQ4_1Q8_1AVX2(unsafe.SliceData(w), unsafe.SliceData(x), nb)
}

// dotQ5_1Q8_1Asm is dotQ5_1Q8_1 in AVX2 (activations in [-127, 127]).
func dotQ5_1Q8_1Asm(w, x []byte, nb int) float32 {
	w, x = w[:nb*q5_1Bytes], x[:nb*q8_1Bytes]
	return dotQ5_1Q8_1AVX2(unsafe.SliceData(w), unsafe.SliceData(x), nb)
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

// dotF16X32Rows2 sets dst[r] = dotF16X32Asm(w[r*rb:], x, nb) for the 2 rows
// r < 2 of w (rows of rb bytes), bitwise as one row at a time; x holds the
// activations as float32 (fastAct32).
func dotF16X32Rows2(dst []float32, w []byte, rb int, x []byte, nb int) {
	xf := f32View(x)
	n := len(xf)
	if n%32 != 0 || n == 0 {
		dst[0] = dotF16X32Asm(w[:2*n], x, nb)
		dst[1] = dotF16X32Asm(w[rb:rb+2*n], x, nb)
		return
	}
	dst, w = dst[:2], w[:rb+2*n]
	dotF16X32x2AVX2(unsafe.SliceData(dst), unsafe.SliceData(w), rb, unsafe.SliceData(xf), n)
}

// dotF16Bands sets dst[16(g-g0)+r] = dotF16X32Asm of row r of group g in
// [g0, g1) of the F16 matrix w packed in bands (packF16Bands) with x (the
// activations rounded to halves, little-endian), bitwise as
// dotF16X32Rows16 with their float32 values: each row's accumulators go
// from band to band in memory, and are reduced at the end in REDUCE32's
// order.
func dotF16Bands(dst []float32, w Matrix, g0, g1 int, x []byte) {
	xh := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(x))), w.Cols)
	gb, band := 16*w.RowBytes(), f16BandOf(w.Cols)
	var acc [16 * 32]float32
	for g := g0; g < g1; g++ {
		grp := w.packed[g*gb : (g+1)*gb]
		clear(acc[:])
		for c0 := 0; c0 < w.Cols; c0 += band {
			bc := min(band, w.Cols-c0)
			dotF16RowsAccAVX2(&acc[0], &grp[32*c0], 2*bc, &xh[c0], bc, 16)
		}
		for r := range 16 {
			dst[16*(g-g0)+r] = reduce32((*[32]float32)(acc[32*r:]))
		}
	}
}

// f16RowsK is how many rows dotF16X32Rows16 computes a call.
const f16RowsK = 16

// dotF16X32Rows16 sets dst[r] = dotF16X32Asm(w[r*rb:], x, nb) for the
// f16RowsK rows r of w (rows of rb bytes), bitwise as one row at a time,
// in one call (AVX-512, else AVX2); x holds the activations as float32
// (fastAct32).
func dotF16X32Rows16(dst []float32, w []byte, rb int, x []byte, nb int) {
	xf := f32View(x)
	n := len(xf)
	if n%32 != 0 || n == 0 {
		for r := range f16RowsK {
			dst[r] = dotF16X32Asm(w[r*rb:r*rb+2*n], x, nb)
		}
		return
	}
	dst, w = dst[:f16RowsK], w[:(f16RowsK-1)*rb+2*n]
	if useAVX512 {
		dotF16X32RowsAVX512(unsafe.SliceData(dst), unsafe.SliceData(w), rb, unsafe.SliceData(xf), n, f16RowsK)
		return
	}
	dotF16X32RowsAVX2(unsafe.SliceData(dst), unsafe.SliceData(w), rb, unsafe.SliceData(xf), n, f16RowsK)
}

// packGroup returns how many rows Matrix.Packed interleaves m by on this
// CPU, for dotPacked (0: it does not): Q4_0, Q8_0, Q5_0, Q4_1, Q5_1, Q4_K,
// Q5_K and Q6_K by 16 with AVX-512 VNNI and a multiple of 16 rows, else
// Q4_0 and Q8_0 by 8 with AVX2 and a multiple of 8, and Q4_K by 16 (and
// wide F16 matrices by 16 in bands, with either: packF16Bands).
func packGroup(m Matrix) int {
	if !useAVX2 || m.Rows <= 0 || len(m.Data) == 0 {
		return 0
	}
	switch m.Type {
	case Q4_0, Q8_0:
		if useAVX512 && m.Rows%16 == 0 {
			return 16
		}
		if m.Rows%8 == 0 {
			return 8
		}
	case Q4_K:
		if m.Rows%16 == 0 { // with AVX2 only too (dotQ4_KQ8_Kx16PackedAVX2)
			return 16
		}
	case Q5_0, Q4_1, Q5_1, Q5_K, Q6_K:
		if useAVX512 && m.Rows%16 == 0 {
			return 16
		}
	case F16:
		if m.Rows%16 == 0 && m.Cols > f16BandsFrom && m.Cols%32 == 0 {
			return 16
		}
	}
	return 0
}

// dotPacked sets dst[r] for the rows r of groups [g0, g1) of the packed
// matrix w (Q4_0: dotQ4_0Q8_0x8(w.Row(r), x, nb); Q8_0: dotQ8_0Q8_0;
// Q5_0: dotQ5_0Q8_0; Q4_1 and Q5_1: their Q8_1 dots; Q4_K, Q5_K and
// Q6_K: theirs), bitwise as one row at a time. xs holds x's records
// (packedXSums). stream says that w comes from memory, read once (one
// token's product), rather than from cache: a Q8_0 matrix then runs the
// kernel made for that, which reads nothing of xs, and a Q4_0 one, or a
// Q4_1 or Q5_1 one in groups of 16, reads xs as records xsHead bytes apart
// (streamHeads). Direct calls
// only: through a func value, //go:noescape would not apply.
func dotPacked(dst []float32, w Matrix, g0, g1 int, x, xs []byte, stream bool) {
	if g1 <= g0 {
		return
	}
	if w.Type == F16 {
		dotF16Bands(dst[16*g0:16*g1], w, g0, g1, x)
		return
	}
	nb, g := w.Cols/QK, w.group
	if w.Type == Q4_K || w.Type == Q5_K || w.Type == Q6_K {
		nb = w.Cols / QKK
		gb, xsn := nb*q4KPacked, nb*32 // a group's bytes, x's records'
		switch w.Type {
		case Q5_K:
			gb = nb * q5KPacked
		case Q6_K:
			gb, xsn = q6KGroupBytes(nb), nb*q6KRecord
			if nb > 0 {
				xsn += 2 // the kernel reads 2 bytes on (packedSumsQ6_K)
			}
		}
		d, p := dst[16*g0:16*g1], w.packed[g0*gb:g1*gb]
		x, xs = x[:nb*q8_KBytes], xs[:xsn]
		dp, pp, xp, sp := unsafe.SliceData(d), unsafe.SliceData(p), unsafe.SliceData(x), unsafe.SliceData(xs)
		switch {
		case w.Type == Q5_K:
			dotQ5_KQ8_Kx16PackedAVX512(dp, pp, xp, sp, nb, g1-g0)
		case w.Type == Q6_K:
			dotQ6_KQ8_Kx16PackedAVX512(dp, pp, xp, sp, nb, g1-g0)
		case useAVX512:
			dotQ4_KQ8_Kx16PackedAVX512(dp, pp, xp, sp, nb, g1-g0)
		default:
			dotQ4_KQ8_Kx16PackedAVX2(dp, pp, xp, sp, nb, g1-g0)
		}
		return
	}
	// The block size as a constant, not w.Type.BlockBytes(): the type
	// table's line is evicted by the weights streamed between calls.
	bb, xb := q4_0Bytes, q8_0Bytes
	switch w.Type {
	case Q8_0:
		bb = q8_0Bytes
	case Q5_0:
		bb = q5_0Bytes
	case Q4_1:
		bb, xb = q4_1Bytes, q8_1Bytes
	case Q5_1:
		bb, xb = q5_1Bytes, q8_1Bytes
	}
	gb := nb * g * bb
	d, p := dst[g*g0:g*g1], w.packed[g0*gb:g1*gb]
	x, xs = x[:nb*xb], xs[:nb*xsBlock]
	dp, pp, xp, sp := unsafe.SliceData(d), unsafe.SliceData(p), unsafe.SliceData(x), unsafe.SliceData(xs)
	switch {
	case g == 16 && w.Type == Q8_0 && stream:
		dotQ8_0Q8_0x16PackedStreamAVX512(dp, pp, xp, sp, nb, g1-g0)
	case g == 16 && w.Type == Q8_0:
		dotQ8_0Q8_0x16PackedAVX512(dp, pp, xp, sp, nb, g1-g0)
	case g == 16 && w.Type == Q5_0:
		dotQ5_0Q8_0x16PackedAVX512(dp, pp, xp, sp, nb, g1-g0)
	case g == 16 && w.Type == Q4_1 && stream:
		dotQ4_1Q8_1x16PackedStreamAVX512(dp, pp, xp, sp, nb, g1-g0)
	case g == 16 && w.Type == Q4_1:
		dotQ4_1Q8_1x16PackedAVX512(dp, pp, xp, sp, nb, g1-g0)
	case g == 16 && w.Type == Q5_1 && stream:
		dotQ5_1Q8_1x16PackedStreamAVX512(dp, pp, xp, sp, nb, g1-g0)
	case g == 16 && w.Type == Q5_1:
		dotQ5_1Q8_1x16PackedAVX512(dp, pp, xp, sp, nb, g1-g0)
	case g == 16 && stream:
		dotQ4_0Q8_0x16PackedStreamAVX512(dp, pp, xp, sp, nb, g1-g0)
	case g == 16:
		dotQ4_0Q8_0x16PackedAVX512(dp, pp, xp, sp, nb, g1-g0)
	case w.Type == Q8_0 && w.q8Min && stream:
		dotQ8_0Q8_0x8PackedStreamAnyAVX2(dp, pp, xp, sp, nb, g1-g0)
	case w.Type == Q8_0 && w.q8Min:
		dotQ8_0Q8_0x8PackedAnyAVX2(dp, pp, xp, sp, nb, g1-g0)
	case w.Type == Q8_0 && stream:
		dotQ8_0Q8_0x8PackedStreamAVX2(dp, pp, xp, sp, nb, g1-g0)
	case w.Type == Q8_0:
		dotQ8_0Q8_0x8PackedAVX2(dp, pp, xp, sp, nb, g1-g0)
	case stream:
		dotQ4_0Q8_0x8PackedStreamAVX2(dp, pp, xp, sp, nb, g1-g0)
	default:
		dotQ4_0Q8_0x8PackedAVX2(dp, pp, xp, sp, nb, g1-g0)
	}
}

// dotPackedTok4 sets, for the tokens i < n in fours (the activations of
// token i at x[i*xrb:], their sums at xs[i*nb*xsBlock:]), dst[i*w.Rows+r]
// for the 16 rows r of group g of the packed Q4_0 matrix w, each block
// unpacked once for four tokens, bitwise as dotPacked one token at a time.
// It returns how many tokens it did: n rounded down to four, or 0 where
// that kernel does not apply (not Q4_0 in groups of 16).
func dotPackedTok4(dst []float32, w Matrix, g int, x []byte, xrb int, xs []byte, n int) int {
	if w.group != 16 || w.Type != Q4_0 || n < 4 {
		return 0
	}
	nb := w.Cols / QK
	gb := nb * 16 * q4_0Bytes
	p := w.packed[g*gb : (g+1)*gb]
	sb := nb * xsBlock
	done := n &^ 3
	for i := 0; i < done; i += 4 {
		d := dst[i*w.Rows+16*g : (i+3)*w.Rows+16*(g+1)]
		xi := x[i*xrb : (i+3)*xrb+nb*q8_0Bytes]
		si := xs[i*sb : (i+4)*sb]
		dotQ4_0Q8_0x16PackedTok4AVX512(unsafe.SliceData(d), w.Rows, unsafe.SliceData(p), unsafe.SliceData(xi), xrb, unsafe.SliceData(si), sb, nb)
	}
	return done
}

// quantizeF16Impl rounds x to halves into y (little-endian, as amd64
// stores them), with F16C where the CPU has it.
func quantizeF16Impl(y []byte, x []float32) {
	if len(x) > 0 {
		F32sToF16(unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(y))), len(x)), x)
	}
}

// packedHeadsImpl is packedHeads, in AVX2 where the packed kernels run.
func packedHeadsImpl(xs, x []byte, nb int) {
	if !useAVX2 || nb == 0 {
		packedHeads(xs, x, nb)
		return
	}
	xs, x = xs[:xsHead*nb], x[:q8_0Bytes*nb]
	packedSumsAVX2(unsafe.SliceData(xs), unsafe.SliceData(x), nb, xsHead)
}

// packedSumsImpl is packedSums, in AVX2 where the packed kernels run.
func packedSumsImpl(xs, x []byte, nb int) {
	if !useAVX2 || nb == 0 {
		packedSums(xs, x, nb)
		return
	}
	xs, x = xs[:xsBlock*nb], x[:q8_0Bytes*nb]
	packedSumsAVX2(unsafe.SliceData(xs), unsafe.SliceData(x), nb, xsBlock)
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

// dotF16X32Asm is dotF16 with the activations given as the float32 values
// of their halves (4 bytes an element, as quantizeAct32 writes them), so that
// the assembly does not widen them again for every row.
func dotF16X32Asm(w, x []byte, _ int) float32 {
	t := f16Table
	xf := f32View(x)
	n := len(xf)
	np := n &^ 31
	w = w[:2*n]
	var sum float64
	if np > 0 {
		sum = float64(dotF16X32AVX2(unsafe.SliceData(w), unsafe.SliceData(xf), np))
	}
	for i := np; i < n; i++ {
		sum += float64(t[u16le(w[2*i:])] * xf[i])
	}
	return float32(sum)
}

// fastAct32 reports whether the row dot fastDot returns for weights of type
// t takes the activations rounded into VecDotType(t) but stored as float32
// (quantizeAct32, quantizeActBF16x32), 4 bytes an element: F16 products,
// single-token and batched, and with AVX-512 batched BF16 products (whose
// tiles widen no activation again).
func fastAct32(t DType, batch bool) bool {
	return useAVX2 && t == F16 || useAVX512 && batch && t == BF16
}

// quantizeAct32 rounds x to half precision, as quantizeAct does for F16, and
// writes the float32 values of the halves into y (4 bytes each).
func quantizeAct32(y []byte, x []float32) {
	yf := f32View(y[:4*len(x)])
	n8 := len(x) &^ 7
	if n8 > 0 {
		roundF16AVX2(unsafe.SliceData(yf), unsafe.SliceData(x), n8)
	}
	t := f16Table
	for i := n8; i < len(x); i++ {
		yf[i] = t[F32ToF16(x[i])]
	}
}

// quantizeActBF16x32 rounds x to bf16, as quantizeAct does for BF16,
// writes the float32 values of the bf16s into y (4 bytes each), and
// returns the bounds of their magnitudes.
func quantizeActBF16x32(y []byte, x []float32) bf16Mags {
	yf := f32View(y[:4*len(x)])
	m := bf16Mags{lo: 0xffff, known: true}
	for i, v := range x {
		h := F32ToBF16(v)
		yf[i] = BF16ToF32(h)
		a := h & 0x7fff
		m.hi = max(m.hi, a)
		m.lo = min(m.lo, a-1)
	}
	return m
}

// bf16MagsOf returns the bounds of the magnitudes of the bf16s in b, where
// the AVX-512 tiles may use them (else unknown: the tiles then round every
// product).
func bf16MagsOf(b []byte) bf16Mags {
	if !useAVX512 {
		return bf16Mags{}
	}
	n := len(b) / 32
	m := bf16Mags{lo: 0xffff, known: true}
	if n > 0 {
		m.lo, m.hi = bf16MagsAVX2(unsafe.SliceData(b), n)
	}
	return m.join(bf16MagsGo(b[32*n:]))
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

// quantizeQ8_KAVX512 is quantizeQ8_K of nb blocks, byte for byte.
//
//go:noescape
func quantizeQ8_KAVX512(y *byte, x *float32, nb int)

// quantizeQ8_KAVX2 is quantizeQ8_KAVX512 in AVX2 (q8k_amd64.s).
//
//go:noescape
func quantizeQ8_KAVX2(y *byte, x *float32, nb int)

// quantizeQ8_KImpl is quantizeQ8_K, in AVX-512 or AVX2 where the CPU has
// them: the activations of every K-quant product, rounded by one thread
// while the others wait, in about a tenth of the time.
func quantizeQ8_KImpl(y []byte, x []float32) {
	nb := len(x) / QKK
	switch {
	case nb == 0 || !useAVX2:
		quantizeQ8_K(y, x)
	case useAVX512:
		y, x = y[:nb*q8_KBytes], x[:nb*QKK]
		quantizeQ8_KAVX512(unsafe.SliceData(y), unsafe.SliceData(x), nb)
	default:
		quantizeQ8_KAVX2Impl(y, x)
	}
}

// quantizeQ8_KAVX2Impl is quantizeQ8_K through the AVX2 kernel (useAVX2).
func quantizeQ8_KAVX2Impl(y []byte, x []float32) {
	if nb := len(x) / QKK; nb > 0 {
		y, x = y[:nb*q8_KBytes], x[:nb*QKK]
		quantizeQ8_KAVX2(unsafe.SliceData(y), unsafe.SliceData(x), nb)
	}
}

// quantizeQ8_0Impl is quantizeQ8_0, in AVX2 where the CPU has it. Blocks
// the assembly leaves alone (an Inf or NaN, or all magnitudes below
// 127/MaxFloat32, where the reference's rounding of x*Inf is not what
// VCVTPS2DQ does) go to the reference.
func quantizeQ8_0Impl(y []byte, x []float32) { quantizeQ8Impl(y, x, false) }

// quantizeQ8_1Impl is quantizeQ8_1, in AVX2 where the CPU has it, the
// blocks the assembly leaves alone going to the reference as in
// quantizeQ8_0Impl. Q4_1 and Q5_1 products round their activations with
// it: 4096 of them took 14.8 µs in Go and take 0.85 µs here, and whole
// tokens of the 1B-shaped Q4_1 and Q5_1 models decode 3-7% faster.
func quantizeQ8_1Impl(y []byte, x []float32) { quantizeQ8Impl(y, x, true) }

// quantizeQ8Impl is quantizeQ8_1Impl where q81, else quantizeQ8_0Impl.
func quantizeQ8Impl(y []byte, x []float32, q81 bool) {
	ref, bb := quantizeQ8_0, q8_0Bytes
	if q81 {
		ref, bb = quantizeQ8_1, q8_1Bytes
	}
	if !useAVX2 {
		ref(y, x)
		return
	}
	nb := len(x) / QK
	y, x = y[:nb*bb], x[:nb*QK]
	for len(x) > 0 {
		var n int
		if q81 {
			n = quantizeQ8_1AVX2(unsafe.SliceData(y), unsafe.SliceData(x), len(x)/QK)
		} else {
			n = quantizeQ8_0AVX2(unsafe.SliceData(y), unsafe.SliceData(x), len(x)/QK)
		}
		y, x = y[n*bb:], x[n*QK:]
		if len(x) > 0 {
			ref(y[:bb], x[:QK])
			y, x = y[bb:], x[QK:]
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

// sgemmF16X32Asm is sgemmF16 with the activations as the float32 values of
// their halves (x: 4 bytes an element, from quantizeAct32).
func sgemmF16X32Asm(w, x []byte, _ int) float32 {
	steps := len(x) / 32
	w, x = w[:16*steps], x[:32*steps]
	return sgemmF16X32AVX2(unsafe.SliceData(w), unsafe.SliceData(x), steps)
}

// f16TileRows is how many weight rows sgemmF16X32Tiles runs over a tile of
// tokens before it moves on, and f16TileSteps how many steps of 8 columns at
// a time: 6 tokens' 512 columns of float32 activations (12 KB) and the rows'
// halves stay in L1 while the rows' pairs pass over them. With AVX-512 a
// block's rows are widened once for all its tiles, which then take
// f16WideSteps at a time: on a 1B layer's products of 128 tokens,
// alternating in one run, 231 GFLOP/s with the rows widened in every tile
// (64 steps), 243 widened once (64 steps), 267 (256 steps), 270 (1024).
const (
	f16TileRows  = 32
	f16TileSteps = 64
	f16WideSteps = 256
)

// sgemmF16X32Tiles computes rows [lo, hi) of a batched F16 product
// (dst[i*ldd+r] for the n activation rows in x, xrb = 4*cols bytes each: the
// float32 values of their halves) in tiles of 2 rows by 6 tokens (the last
// tile overlapping the one before when n is not a multiple of 6, except
// for the widened rows, which take the rest two tokens at a time) over blocks
// of f16TileRows rows and f16TileSteps column steps, the tiles' accumulators
// kept in between (with AVX-512, 8 or 4 rows by 6 tokens where it can); each
// element is bitwise sgemmF16. It returns the first row it left (hi, or
// hi-1 for an odd count).
func sgemmF16X32Tiles(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
	return sgemmX32Tiles(dst, w, x, xrb, n, lo, hi, tileF16)
}

// sgemmBF16X32Tiles is sgemmF16X32Tiles for BF16 weights, each element
// bitwise sgemmBF16, in the AVX-512 tiles of 8 rows only (n >= 6): it
// returns the first row it left, lo plus a multiple of 8.
func sgemmBF16X32Tiles(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
	return sgemmX32Tiles(dst, w, x, xrb, n, lo, hi, tileBF16|tileMulAdd)
}

// sgemmBF16X32TilesExact is sgemmBF16X32Tiles where every product is
// exact (bf16Exact): the tiles fuse each multiply and add, as the F16
// tiles do, with the same bits.
func sgemmBF16X32TilesExact(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
	return sgemmX32Tiles(dst, w, x, xrb, n, lo, hi, tileBF16)
}

// The tile kernels' modes: how the first tile widens the weights (a
// conversion from halves, or a 16-bit shift from bf16s), and whether each
// product is rounded before it is added (as sgemmBF16 does) or fused.
const (
	tileF16    = 0
	tileBF16   = 1
	tileMulAdd = 2
)

// sgemmX32Tiles is sgemmF16X32Tiles (mode tileF16), sgemmBF16X32Tiles
// (tileBF16|tileMulAdd) or sgemmBF16X32TilesExact (tileBF16).
func sgemmX32Tiles(dst []float32, w Matrix, x []byte, xrb, n, lo, hi, mode int) int {
	rb, ldd, steps := w.RowBytes(), w.Rows, xrb/32
	end := lo + (hi-lo)&^1
	if mode&tileBF16 != 0 {
		end = lo + (hi-lo)&^7
	}
	var acc [f16TileRows / 2 * 96]float32 // per pair of rows, 12 accumulators of 8 lanes
	// With AVX-512 and a whole tile of tokens, each block's rows are widened
	// once into wide (pairs interleaved, as the tiles hold them) for all the
	// tokens' tiles, instead of in every tile: by the first tile, as it
	// multiplies them, so that the widening's reads and stores overlap its
	// arithmetic (a pass of its own took 8-9% of a 1B layer's products).
	var wide *f16Wide
	kb := f16TileSteps
	if useAVX512 && n >= 6 {
		kb = f16WideSteps
		wide = f16Wides.get()
		defer f16Wides.put(wide)
		if need := f16TileRows * 8 * steps; cap(wide.w) < need {
			wide.w = make([]float32, need)
		}
	}
	for b0 := lo; b0 < end; b0 += f16TileRows {
		b1 := min(b0+f16TileRows, end)
		wideEnd := b0 // rows [b0, wideEnd) go widened, 8 at a time
		if wide != nil {
			wideEnd += (b1 - b0) &^ 7
		}
		// The tiles of this block prefetch the next block's rows, [pfAt,
		// pfEnd) of w.Data, for its widening: otherwise it waits on memory
		// while the arithmetic-bound tiles leave memory idle.
		pfAt, pfEnd := b1*rb, min(b1+f16TileRows, end)*rb
		i := 0
		for tile := 0; i < n && n >= 6; tile++ {
			// A last tile short of 6 tokens moves back to end at n: its
			// first tokens, done already, come out the same and are not
			// written again. Its widened rows, and with AVX2 its rows in
			// fours, take its tokens two at a time from slot s2 on (one
			// token again for an odd count).
			t0 := min(i, n-6)
			s2 := 6
			if t0 < i {
				s2 = (i - t0) &^ 1
			}
			clear(acc[(wideEnd-b0)/2*96:]) // the widened rows' tiles start from zero themselves
			for k0 := 0; k0 < steps; k0 += kb {
				ks := min(kb, steps-k0)
				xs := x[t0*xrb+32*k0 : (t0+5)*xrb+32*(k0+ks)]
				fresh := 0
				if k0 == 0 {
					fresh = 1
				}
				r := b0
				for ; r+8 <= wideEnd; r += 8 { // four pairs of rows at once
					a := acc[(r-b0)/2*96:][:384]
					ws := wide.w[(r-b0)/2*16*steps+16*k0 : (r-b0+6)/2*16*steps+16*(k0+ks)]
					if s2 < 6 {
						for s := s2; s < 6; s += 2 {
							xs2 := xs[s*xrb : (s+1)*xrb+32*ks]
							sgemmPairs8x2AVX512(&a[16*s], unsafe.SliceData(ws), 64*steps, unsafe.SliceData(xs2), xrb, ks, fresh, mode)
						}
						continue
					}
					// ks lines of the next block; of ws, in cache, once
					// that is covered.
					pf := (*byte)(unsafe.Pointer(unsafe.SliceData(ws)))
					if pfAt < pfEnd && pfEnd >= 64*ks {
						pf = &w.Data[min(pfAt, pfEnd-64*ks)]
						pfAt += 64 * ks
					}
					// The first tile widens the rows into ws as it goes.
					var src *byte
					if tile == 0 {
						rows := w.Data[r*rb+16*k0 : (r+7)*rb+16*(k0+ks)]
						src = unsafe.SliceData(rows)
					}
					sgemmPairs8x6AVX512(unsafe.SliceData(a), unsafe.SliceData(ws), 64*steps, unsafe.SliceData(xs), xrb, ks, fresh, pf, src, rb, mode)
				}
				for ; useAVX512 && r+4 <= b1; r += 4 { // two pairs
					a := acc[(r-b0)/2*96:][:192]
					rows := w.Data[r*rb+16*k0 : (r+3)*rb+16*(k0+ks)]
					sgemmF16X32Acc4x6AVX512(unsafe.SliceData(a), unsafe.SliceData(rows), rb, unsafe.SliceData(xs), xrb, ks)
				}
				if nq := (b1 - r) / 4; s2 < 6 && nq > 0 { // a last tile's tokens two at a time, four rows at once
					a := acc[(r-b0)/2*96:][:192*nq]
					rows := w.Data[r*rb+16*k0 : (r+4*nq-1)*rb+16*(k0+ks)]
					for s := s2; s < 6; s += 2 {
						xs2 := xs[s*xrb : (s+1)*xrb+32*ks]
						sgemmF16X32Acc4x2AVX2(&a[16*s], unsafe.SliceData(rows), rb, unsafe.SliceData(xs2), xrb, ks, nq)
					}
					r += 4 * nq
				}
				if np := (b1 - r) / 2; np > 0 { // the pairs left, in one call
					a := acc[(r-b0)/2*96:][:96*np]
					rows := w.Data[r*rb+16*k0 : (b1-1)*rb+16*(k0+ks)]
					sgemmF16X32Acc2x6AVX2(unsafe.SliceData(a), unsafe.SliceData(rows), rb, unsafe.SliceData(xs), xrb, ks, np)
				}
			}
			r := b0
			for ; r+8 <= b1; r += 8 { // the sums of 8 rows (four pairs) at once
				_ = dst[(t0+5)*ldd+r+7] // the tile's last sum is in range
				hsumPairs8AVX2(&dst[t0*ldd+r], ldd, unsafe.SliceData(acc[(r-b0)/2*96:][:384]), i-t0)
			}
			for ; r < b1; r += 2 {
				a := acc[(r-b0)/2*96:][:96]
				for j := i - t0; j < 6; j++ {
					dst[(t0+j)*ldd+r] = hsum8((*[8]float32)(a[16*j:]))
					dst[(t0+j)*ldd+r+1] = hsum8((*[8]float32)(a[16*j+8:]))
				}
			}
			i = t0 + 6
		}
		for ; i < n; i++ {
			xi := x[i*xrb : (i+1)*xrb]
			for r := b0; r < b1; r++ {
				if mode&tileBF16 != 0 {
					dst[i*ldd+r] = sgemmBF16X32Asm(w.Data[r*rb:(r+1)*rb], xi, 0)
					continue
				}
				dst[i*ldd+r] = sgemmF16X32Asm(w.Data[r*rb:(r+1)*rb], xi, 0)
			}
		}
	}
	return end
}

// f16Wide is sgemmF16X32Tiles' scratch for a block's widened rows.
type f16Wide struct{ w []float32 }

var f16Wides freeList[f16Wide]

// dotQ8_0Tiles computes rows [lo, hi) of a Q8_0 product of n activation
// rows (dst[i*ldd+r]), 4 tokens per pass over a weight row, each element
// bitwise dotQ8_0Q8_0; it returns hi.
func dotQ8_0Tiles(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
	return tok4Tiles(dst, w, x, xrb, n, lo, hi, q8_0Bytes, q8_0Bytes, dotQ8_0Q8_0Tok4AVX2, dotQ8_0Q8_0Asm)
}

// dotQ5_0Tiles is dotQ8_0Tiles for Q5_0 weights, bitwise dotQ5_0Q8_0.
func dotQ5_0Tiles(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
	return tok4Tiles(dst, w, x, xrb, n, lo, hi, q5_0Bytes, q8_0Bytes, dotQ5_0Q8_0Tok4AVX2, dotQ5_0Q8_0Asm)
}

// dotQ4_1Tiles is dotQ8_0Tiles for Q4_1 weights, bitwise dotQ4_1Q8_1.
func dotQ4_1Tiles(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
	return tok4Tiles(dst, w, x, xrb, n, lo, hi, q4_1Bytes, q8_1Bytes, dotQ4_1Q8_1Tok4AVX2, dotQ4_1Q8_1Asm)
}

// dotQ5_1Tiles is dotQ8_0Tiles for Q5_1 weights, bitwise dotQ5_1Q8_1.
func dotQ5_1Tiles(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
	return tok4Tiles(dst, w, x, xrb, n, lo, hi, q5_1Bytes, q8_1Bytes, dotQ5_1Q8_1Tok4AVX2, dotQ5_1Q8_1Asm)
}

// tok4Tiles runs a 4-token kernel over rows [lo, hi) of a product (weight
// blocks of bb bytes, activation blocks of xbb), and dot for the tokens
// past the last 4; it returns hi.
func tok4Tiles(dst []float32, w Matrix, x []byte, xrb, n, lo, hi, bb, xbb int,
	tok4 func(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int), dot func(w, x []byte, nb int) float32) int {
	rb, ldd := w.RowBytes(), w.Rows
	nb := w.Cols / QK
	for r := lo; r < hi; r++ {
		row := w.Data[r*rb : r*rb+nb*bb]
		i := 0
		for ; i+4 <= n; i += 4 {
			d := dst[i*ldd+r : (i+3)*ldd+r+1]
			xs := x[i*xrb : (i+3)*xrb+nb*xbb]
			tok4(unsafe.SliceData(d), ldd, unsafe.SliceData(row), unsafe.SliceData(xs), xrb, nb)
		}
		for ; i < n; i++ {
			dst[i*ldd+r] = dot(row, x[i*xrb:(i+1)*xrb], nb)
		}
	}
	return hi
}

// dotF16X32Tok2Tiles is a fastTiles kernel for one-token products of n
// >= 2 tokens at once (MatMul, not batched) of an F16 matrix with AVX-512:
// rows [lo, hi) in calls of f16RowsK rows, each row read once for two
// tokens (dotF16X32Rows2TokAVX512) and a last odd token by itself, x as
// float32 (fastAct32). It returns the first row it left.
func dotF16X32Tok2Tiles(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
	cols, rb := w.Cols, w.RowBytes()
	if cols%32 != 0 || cols == 0 {
		return lo
	}
	for ; lo+f16RowsK <= hi; lo += f16RowsK {
		rows := w.Data[lo*rb : (lo+f16RowsK-1)*rb+2*cols]
		i := 0
		for ; i+2 <= n; i += 2 {
			d := dst[i*w.Rows+lo : (i+1)*w.Rows+lo+f16RowsK]
			xi := x[i*xrb : (i+1)*xrb+4*cols]
			dotF16X32Rows2TokAVX512(&d[0], 4*w.Rows, &rows[0], rb, (*float32)(unsafe.Pointer(&xi[0])), xrb, cols, f16RowsK)
		}
		if i < n {
			dotF16X32Rows16(dst[i*w.Rows+lo:][:f16RowsK], rows, rb, x[i*xrb:(i+1)*xrb], cols)
		}
	}
	return lo
}

// fastTiles returns a kernel that computes whole rows of a product of n
// tokens in register tiles (bitwise as the row dot), or nil, and how many
// rows it takes at once at its best: chunks of a product are whole runs of
// them.
func fastTiles(t DType, batch bool, n int) (tiles func(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int, unit int) {
	switch {
	case !useAVX2 || n < 2:
		return nil, 1
	case !batch && t == F16 && useAVX512:
		// Several tokens' one-token products at once (MatMul of decoded
		// tokens of several sequences): each row read once for two tokens,
		// against dotF16X32x2AVX2's two rows for each token. Over 16
		// matrices of 5632x2048 streamed from memory, alternating in one
		// process: 2 tokens 1.83x as fast with the cores far apart (0.47 ->
		// 0.86 of the bandwidth), 1.35x near; 4 tokens 1.19x and 1.14x.
		return dotF16X32Tok2Tiles, f16RowsK
	case n < 4:
		return nil, 1
	case batch && t == F16 && useAVX512 && n >= 6:
		return sgemmF16X32Tiles, 8 // the widened 8-row tiles
	case batch && t == F16:
		return sgemmF16X32Tiles, 2 // with fastAct32's activations
	case batch && t == BF16 && useAVX512 && n >= 6:
		return sgemmBF16X32Tiles, 8 // with fastAct32's activations
	case t == Q8_0:
		return dotQ8_0Tiles, 1
	case t == Q5_0:
		return dotQ5_0Tiles, 1
	case t == Q4_1:
		return dotQ4_1Tiles, 1
	case t == Q5_1:
		return dotQ5_1Tiles, 1
	case t == Q4_K && useAVX512:
		return dotQ4_KTiles512, 1
	case t == Q4_K:
		return dotQ4_KTiles, 1
	case t == Q5_K && useAVX512:
		return dotQ5_KTiles512, 1
	case t == Q5_K:
		return dotQ5_KTiles, 1
	case t == Q6_K && useAVX512:
		return dotQ6_KTiles512, 1
	case t == Q6_K:
		return dotQ6_KTiles, 1
	}
	return nil, 1
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
	case t == Q5_0:
		return dotQ5_0Q8_0Asm
	case t == Q4_1:
		return dotQ4_1Q8_1Asm
	case t == Q5_1:
		return dotQ5_1Q8_1Asm
	case t == Q4_K && useAVX512:
		return dotQ4_KQ8_KAsm512
	case t == Q4_K:
		return dotQ4_KQ8_KAsm
	case t == Q5_K && useAVX512:
		return dotQ5_KQ8_KAsm512
	case t == Q5_K:
		return dotQ5_KQ8_KAsm
	case t == Q6_K && useAVX512:
		return dotQ6_KQ8_KAsm512
	case t == Q6_K:
		return dotQ6_KQ8_KAsm
	case t == F16 && !batch:
		return dotF16X32Asm // with fastAct32's activations
	case t == BF16 && !batch:
		return func(w, x []byte, _ int) float32 { return dotBF16Asm(w, x) }
	case t == BF16 && useAVX512:
		return sgemmBF16X32Asm // with fastAct32's activations
	case t == BF16:
		return sgemmBF16Asm
	case t == F16:
		return sgemmF16X32Asm // with fastAct32's activations
	}
	return nil
}

// fastRows returns a kernel that computes k rows of a product of n tokens
// at once, bitwise as fastDot's (or the reference) row dot would, or nil.
func fastRows(t DType, rows, n int, batch bool) (f func(dst []float32, w []byte, rb int, x []byte, nb int), k int) {
	switch {
	case !useAVX2:
	case t == Q4_0 && rows%8 == 0:
		return dotQ4_0Q8_0x8Rows8, 8
	case t == F16 && !batch && n > 1 && useAVX512:
		return nil, 0 // fastTiles' dotF16X32Tok2Tiles
	case t == F16 && !batch && n > 1:
		// Two rows at a time: 8 chains of fused multiply-adds, the weights
		// in cache for the tokens after the first. One token streams its
		// weights from memory markedly faster one row at a time (two rows
		// 4 KB apart read as two streams): 47 against 35 GB/s on a 512 MB
		// matrix, 2 threads.
		return dotF16X32Rows2, 2 // with fastAct32's activations
	case t == F16 && !batch:
		// Sixteen rows a call. With AVX-512, in Z registers: half the
		// instructions per byte of the AVX2 row kernel; on a 1B-like layer
		// stack, 2 threads, it streams decode's weights 0-3% faster
		// (medians of 15 alternating rounds, 3 runs). With AVX2 only, a
		// call instead of a row at a time, without prefetching ahead:
		// whole decoded tokens of the 1B F16 model 30% faster with the
		// cores far apart, 8% near.
		return dotF16X32Rows16, f16RowsK // with fastAct32's activations
	}
	return nil, 0
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
	dots := []dotImpl{
		{"Q8_0", Q8_0, dotQ8_0Q8_0, dotQ8_0Q8_0Asm},
		{"Q4_0", Q4_0, dotQ4_0Q8_0, dotQ4_0Q8_0Asm},
		{"Q5_0", Q5_0, dotQ5_0Q8_0, dotQ5_0Q8_0Asm},
		{"Q4_1", Q4_1, dotQ4_1Q8_1, dotQ4_1Q8_1Asm},
		{"Q5_1", Q5_1, dotQ5_1Q8_1, dotQ5_1Q8_1Asm},
		{"Q4_0x8", Q4_0, dotQ4_0Q8_0x8, dotQ4_0Q8_0x8Asm},
		{"Q4_0x8rows", Q4_0, dotQ4_0Q8_0x8, rowOf8(dotQ4_0Q8_0x8Rows8, q4_0Bytes)},
		{"F16x32rows2/0", F16, func(w, x []byte, _ int) float32 { return dotF16(w, x) }, rowOf2F16(0)},
		{"F16x32rows2/1", F16, func(w, x []byte, _ int) float32 { return dotF16(w, x) }, rowOf2F16(1)},
		{"F16x32rows16", F16, func(w, x []byte, _ int) float32 { return dotF16(w, x) }, rowOf16F16},
		{"Q8_0tok4", Q8_0, dotQ8_0Q8_0, tokOf4(q8_0Bytes, q8_0Bytes, dotQ8_0Q8_0Tok4AVX2)},
		{"Q5_0tok4", Q5_0, dotQ5_0Q8_0, tokOf4(q5_0Bytes, q8_0Bytes, dotQ5_0Q8_0Tok4AVX2)},
		{"Q4_1tok4", Q4_1, dotQ4_1Q8_1, tokOf4(q4_1Bytes, q8_1Bytes, dotQ4_1Q8_1Tok4AVX2)},
		{"Q5_1tok4", Q5_1, dotQ5_1Q8_1, tokOf4(q5_1Bytes, q8_1Bytes, dotQ5_1Q8_1Tok4AVX2)},
		{"Q4_0x8packed", Q4_0, dotQ4_0Q8_0x8, packedRow(Q4_0, 8)},
		{"Q8_0x8packed", Q8_0, dotQ8_0Q8_0, packedRow(Q8_0, 8)},
		{"Q4_0x8packedStream", Q4_0, dotQ4_0Q8_0x8, packedRowStream(Q4_0, 8)},
		{"Q8_0x8packedStream", Q8_0, dotQ8_0Q8_0, packedRowStream(Q8_0, 8)},
		{"Q4_K", Q4_K, dotQ4_KQ8_K, dotQ4_KQ8_KAsm},
		{"Q4_Kx16packedAVX2", Q4_K, dotQ4_KQ8_K, packedRowQ4_KAVX2()},
		{"Q5_K", Q5_K, dotQ5_KQ8_K, dotQ5_KQ8_KAsm},
		{"Q6_K", Q6_K, dotQ6_KQ8_K, dotQ6_KQ8_KAsm},
		{"F16", F16, func(w, x []byte, _ int) float32 { return dotF16(w, x) }, dotF16Asm},
		{"F16x32", F16, func(w, x []byte, _ int) float32 { return dotF16(w, x) }, func(w, x []byte, nb int) float32 { return dotF16X32Asm(w, halvesAsF32(x), nb) }},
		{"F32", F32, dotF32Bytes, func(w, x []byte, _ int) float32 { return dotF32Asm(w, f32View(x)) }},
		{"sgemmF16", F16, sgemmF16, sgemmF16Asm},
		{"BF16", BF16, func(w, x []byte, _ int) float32 { return dotBF16(w, x) }, func(w, x []byte, _ int) float32 { return dotBF16Asm(w, x) }},
		{"sgemmBF16", BF16, sgemmBF16, sgemmBF16Asm},
		{"sgemmF16x32", F16, sgemmF16, func(w, x []byte, nb int) float32 { return sgemmF16X32Asm(w, halvesAsF32(x), nb) }},
		{"sgemmF32", F32,
			func(w, x []byte, _ int) float32 { return sgemmF32(w, f32View(x)) },
			func(w, x []byte, _ int) float32 { return sgemmF32Asm(w, f32View(x)) }},
	}
	if useAVX512 {
		dots = append(dots,
			dotImpl{"Q4_0x16packed", Q4_0, dotQ4_0Q8_0x8, packedRow(Q4_0, 16)},
			dotImpl{"Q4_0x16packedStream", Q4_0, dotQ4_0Q8_0x8, packedRowStream(Q4_0, 16)},
			dotImpl{"Q8_0x16packed", Q8_0, dotQ8_0Q8_0, packedRow(Q8_0, 16)},
			dotImpl{"Q8_0x16packedStream", Q8_0, dotQ8_0Q8_0, packedRowStream(Q8_0, 16)},
			dotImpl{"Q5_0x16packed", Q5_0, dotQ5_0Q8_0, packedRow(Q5_0, 16)},
			dotImpl{"Q4_1x16packed", Q4_1, dotQ4_1Q8_1, packedRow(Q4_1, 16)},
			dotImpl{"Q4_1x16packedStream", Q4_1, dotQ4_1Q8_1, packedRowStream(Q4_1, 16)},
			dotImpl{"Q5_1x16packed", Q5_1, dotQ5_1Q8_1, packedRow(Q5_1, 16)},
			dotImpl{"Q5_1x16packedStream", Q5_1, dotQ5_1Q8_1, packedRowStream(Q5_1, 16)},
			dotImpl{"Q4_Kx16packed", Q4_K, dotQ4_KQ8_K, packedRow(Q4_K, 16)},
			dotImpl{"Q5_Kx16packed", Q5_K, dotQ5_KQ8_K, packedRow(Q5_K, 16)},
			dotImpl{"Q6_Kx16packed", Q6_K, dotQ6_KQ8_K, packedRow(Q6_K, 16)},
			dotImpl{"F16x32rows16tok2", F16, func(w, x []byte, _ int) float32 { return dotF16(w, x) }, rowOf16F16Tok2},
			dotImpl{"Q4_K512", Q4_K, dotQ4_KQ8_K, dotQ4_KQ8_KAsm512},
			dotImpl{"Q5_K512", Q5_K, dotQ5_KQ8_K, dotQ5_KQ8_KAsm512},
			dotImpl{"Q6_K512", Q6_K, dotQ6_KQ8_K, dotQ6_KQ8_KAsm512})
	}
	return dots
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

// rowOf16F16Tok2 is rowOf16F16 through dotF16X32Rows2TokAVX512, x as its
// second token (the first differs from it).
func rowOf16F16Tok2(w, x []byte, nb int) float32 {
	m, rb := f16Rows16Around(w)
	x1 := halvesAsF32(x)
	n := len(x1) / 4
	if n%32 != 0 || n == 0 {
		return rowOf16F16(w, x, nb)
	}
	xs := make([]byte, 2*len(x1))
	for i := range x1 {
		xs[i] = x1[(i+4)%len(x1)]
	}
	copy(xs[len(x1):], x1)
	dst := make([]float32, 2*f16RowsK)
	dotF16X32Rows2TokAVX512(&dst[0], 4*f16RowsK, &m[0], rb, (*float32)(unsafe.Pointer(&xs[0])), len(x1), n, f16RowsK)
	return dst[f16RowsK+11]
}

// f16Rows16Around returns f16RowsK rows of rb bytes for the F16 rows
// kernels' differential tests: w is row 11, with padding between the rows,
// and the other rows differ from it.
func f16Rows16Around(w []byte) (m []byte, rb int) {
	rb = len(w) + 64
	m = make([]byte, f16RowsK*rb)
	for r := range f16RowsK {
		for i := range w {
			m[r*rb+i] = w[(i+2*r)%len(w)]
		}
	}
	copy(m[11*rb:], w)
	return m, rb
}

// rowOf16F16 is a row dot made of the 16-row F16 kernel for the
// differential tests: row 11 of f16Rows16Around(w).
func rowOf16F16(w, x []byte, nb int) float32 {
	m, rb := f16Rows16Around(w)
	var dst [f16RowsK]float32
	dotF16X32Rows16(dst[:], m, rb, halvesAsF32(x), nb)
	return dst[11]
}

// rowOf2F16 is a row dot made of the 2-row F16 kernel for the differential
// tests: w is row r of two, with padding between them, and the other row
// differs from it.
func rowOf2F16(r int) func(w, x []byte, nb int) float32 {
	return func(w, x []byte, nb int) float32 {
		rb := len(w) + 64
		m := make([]byte, 2*rb)
		for i := range w {
			m[(1-r)*rb+i] = w[len(w)-1-i]
		}
		copy(m[r*rb:], w)
		var dst [2]float32
		dotF16X32Rows2(dst[:], m, rb, halvesAsF32(x), nb)
		return dst[r]
	}
}

// tokOf4 makes a row dot of a 4-token kernel over weight blocks of bb
// bytes and activation blocks of xbb (Q8_0 or Q8_1) for the differential
// tests: x is token 2 of 4 activation rows, xrb = its length plus one block
// apart (the others scrambled copies), and dst has a stride of 3.
func tokOf4(bb, xbb int, tok4 func(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)) func(w, x []byte, nb int) float32 {
	return func(w, x []byte, nb int) float32 {
		xrb := (nb + 1) * xbb
		hdr := xbb - QK // a block's scale (and sum)
		m := make([]byte, 4*xrb)
		for i := range 4 {
			for j := range nb * xbb {
				m[i*xrb+j] = x[(j+5*i)%(nb*xbb)]
			}
			for b := range nb { // each block keeps the original's (finite) scale and sum
				copy(m[i*xrb+b*xbb:][:hdr], x[b*xbb:][:hdr])
			}
		}
		copy(m[2*xrb:], x[:nb*xbb])
		for j := range m {
			if m[j] == 0x80 { // no -128 quants (a scale's low byte may change: still finite)
				m[j] = 0x81
			}
		}
		copy(m[2*xrb:], x[:nb*xbb])
		var dst [10]float32
		w = w[:nb*bb]
		tok4(&dst[0], 3, unsafe.SliceData(w), unsafe.SliceData(m), xrb, nb)
		return dst[6]
	}
}

// packedRow makes a row dot of the packed kernel of type t over groups of
// g rows for the differential tests: w is row g+5 of a 3g-row matrix (three
// groups; the other rows scrambled copies, so that mixed-up rows, pairs or
// groups would show), packed as Matrix.Packed packs by g; the kernel runs
// groups 1 and 2 in one call and the result is that row's.
func packedRow(t DType, g int) func(w, x []byte, nb int) float32 {
	return packedRowOf(t, g, false)
}

// packedRowStream is packedRow with the kernels for weights streamed from
// memory (dotPacked's stream).
func packedRowStream(t DType, g int) func(w, x []byte, nb int) float32 {
	return packedRowOf(t, g, true)
}

// packedRowOf is packedRow with dotPacked's stream.
func packedRowOf(t DType, g int, stream bool) func(w, x []byte, nb int) float32 {
	return packedRowBy(t, g, stream, nil)
}

// packedRowQ4_KAVX2 is packedRow(Q4_K, 16) through the AVX2 kernel, which
// dotPacked runs only without AVX-512.
func packedRowQ4_KAVX2() func(w, x []byte, nb int) float32 {
	return packedRowBy(Q4_K, 16, false, func(dst []float32, w Matrix, g0, g1 int, x, xs []byte) {
		nb := w.Cols / QKK
		d, p := dst[16*g0:16*g1], w.packed[g0*nb*q4KPacked:g1*nb*q4KPacked]
		x, xs = x[:nb*q8_KBytes], xs[:nb*32]
		dotQ4_KQ8_Kx16PackedAVX2(unsafe.SliceData(d), unsafe.SliceData(p), unsafe.SliceData(x), unsafe.SliceData(xs), nb, g1-g0)
	})
}

// packedRowBy is packedRowOf through kernel instead of dotPacked where it
// is not nil.
func packedRowBy(t DType, g int, stream bool, kernel func(dst []float32, w Matrix, g0, g1 int, x, xs []byte)) func(w, x []byte, nb int) float32 {
	return func(w, x []byte, nb int) float32 {
		bb := t.BlockBytes()
		rb := nb * bb
		m := make([]byte, 3*g*rb)
		for r := range 3 * g {
			for i := range rb {
				m[r*rb+i] = w[(i+7*r)%rb] ^ byte(r*29)
				if t == Q8_0 && m[r*rb+i] == 0x80 {
					m[r*rb+i] = 0x81 // no -128 quants (the kernels' bound)
				}
			}
			hdr, at := 2, 0 // each block keeps the original's (finite) scale, and min
			switch t {
			case Q4_1, Q5_1, Q4_K, Q5_K:
				hdr = 4
			case Q6_K:
				at = 208 // its d comes last
			}
			for b := range nb {
				copy(m[r*rb+b*bb+at:][:hdr], w[b*bb+at:][:hdr])
			}
		}
		copy(m[(g+5)*rb:], w[:rb])
		mat := Matrix{Type: t, Rows: 3 * g, Cols: nb * t.BlockSize(), Data: m}
		mat.packed, mat.group = packRows(mat, g), g
		mat.q8Min = t == Q8_0 && g == 8 && hasQ8Min(m) // as Packed sets it
		xs := make([]byte, xsBlock*mat.Cols/QK)
		packedXSums(xs, x, mat, stream)
		dst := make([]float32, 3*g)
		if kernel != nil {
			kernel(dst, mat, 1, 3, x, xs)
		} else {
			dotPacked(dst, mat, 1, 3, x, xs, stream)
		}
		return dst[g+5]
	}
}

// halvesAsF32 returns the bytes of the float32 values of the halves in x,
// as quantizeAct32 lays out activations (for the differential tests).
func halvesAsF32(x []byte) []byte {
	xf := make([]float32, len(x)/2)
	for i := range xf {
		xf[i] = F16ToF32(u16le(x[2*i:]))
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(xf))), 4*len(xf))
}

// fastAttnF16 reports whether attention over an F16 cache uses the SIMD
// scores (attnScoreF16) and value sums (attnAxpyF16) below.
var fastAttnF16 = useAVX2

// attnScoreF16 is dotHalves (batch: sgemmHalves) of the key k with the
// query given as the float32 values of its halves, q32: bitwise equal.
func attnScoreF16(k []uint16, q32 []float32, batch bool) float32 {
	kb := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(k))), 2*len(k))
	qb := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(q32))), 4*len(q32))
	if batch {
		return sgemmF16X32Asm(kb, qb, 0)
	}
	return dotF16X32Asm(kb, qb, 0)
}

//go:noescape
func attnScoresF16AVX2(att *float32, k *byte, stride int, q *float32, hd int, n int, scale float32)

//go:noescape
func attnValuesF16AVX2(acc *float32, v *byte, stride int, att *float32, hd int, n int, lanes int)

//go:noescape
func attnScoresSgemmF16AVX2(att *float32, k *byte, stride int, q *float32, steps int, n int, scale float32)

// attnScoresF16 sets att[pos] = attnScoreF16(k, q32, batch) * scale for
// every pos < len(att), k the key keys[off+pos*stride:][:len(q32)], in one
// call; it does nothing and returns false where that loop does not apply
// (a head size not a multiple of 32, or of 8 for a batch's scores).
func attnScoresF16(att []float32, keys []uint16, off, stride int, q32 []float32, scale float32, batch bool) bool {
	hd, n := len(q32), len(att)
	if n == 0 || hd == 0 || (batch && hd%8 != 0) || (!batch && hd%32 != 0) {
		return false
	}
	keys = keys[off : off+(n-1)*stride+hd]
	kp, qp := (*byte)(unsafe.Pointer(unsafe.SliceData(keys))), unsafe.SliceData(q32)
	if batch {
		attnScoresSgemmF16AVX2(unsafe.SliceData(att), kp, 2*stride, qp, hd/8, n, scale)
	} else {
		attnScoresF16AVX2(unsafe.SliceData(att), kp, 2*stride, qp, hd, n, scale)
	}
	return true
}

// attnValuesF16 adds, for every pos < len(att) in order, the value row
// values[off+pos*stride:][:hd] times att[pos] rounded to half precision
// into lane pos%lanes of acc (acc[l*hd:(l+1)*hd]), as attnAxpyF16 does one
// row at a time; it does nothing and returns false where the loop does not
// apply (hd not a multiple of 8).
func attnValuesF16(acc []float32, values []uint16, off, stride int, att []float32, hd, lanes int) bool {
	n := len(att)
	if hd%8 != 0 || n == 0 || lanes&(lanes-1) != 0 {
		return false
	}
	values, acc = values[off:off+(n-1)*stride+hd], acc[:lanes*hd]
	attnValuesF16AVX2(unsafe.SliceData(acc), (*byte)(unsafe.Pointer(unsafe.SliceData(values))), 2*stride, unsafe.SliceData(att), hd, n, lanes)
	return true
}

// attnRoundQ sets q32[i] to the value of q[i] rounded to half precision,
// as quantizeAct32 rounds activations.
func attnRoundQ(q32, q []float32) {
	quantizeAct32(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(q32))), 4*len(q)), q)
}

//go:noescape
func reduce8ColsAVX2(out *float32, acc *float32, hd int, n int)

//go:noescape
func reduce32ColsAVX2(out *float32, acc *float32, hd int, n int)

// attnReduce8 sets out[d] = hsum8 of the 8 lanes acc[l*hd+d] for d <
// len(out) = hd, bitwise as the reference loop (a batch's weighted sums).
func attnReduce8(out, acc []float32) {
	hd := len(out)
	acc = acc[:8*hd]
	n8 := hd &^ 7
	if n8 > 0 {
		reduce8ColsAVX2(unsafe.SliceData(out), unsafe.SliceData(acc), hd, n8)
	}
	var a [8]float32
	for d := n8; d < hd; d++ {
		for l := range a {
			a[l] = acc[l*hd+d]
		}
		out[d] = hsum8(&a)
	}
}

// attnReduce32 sets out[d] = reduce32 of the 32 lanes acc[l*hd+d] for
// d < len(out) = hd, bitwise as the reference loop.
func attnReduce32(out, acc []float32) {
	hd := len(out)
	acc = acc[:32*hd]
	n8 := hd &^ 7
	if n8 > 0 {
		reduce32ColsAVX2(unsafe.SliceData(out), unsafe.SliceData(acc), hd, n8)
	}
	var a [32]float32
	for d := n8; d < hd; d++ {
		for l := range a {
			a[l] = acc[l*hd+d]
		}
		out[d] = reduce32(&a)
	}
}

// attnAxpyF16 sets acc[d] += p * F16(v[d]) for d < len(v), p a half's value
// (exact products), as the reference loop does.
func attnAxpyF16(acc []float32, v []uint16, p float32) {
	n := len(v)
	acc = acc[:n]
	if n8 := n &^ 7; n8 > 0 {
		axpyF16AVX2(unsafe.SliceData(acc), (*byte)(unsafe.Pointer(unsafe.SliceData(v))), p, n8)
	}
	for d := n &^ 7; d < n; d++ {
		acc[d] += p * F16ToF32(v[d])
	}
}

//go:noescape
func expChunksAVX2(x *float32, m float32, n int, sum *float64) int

// expChunks does softmaxGGML's exponentials and sum for the whole chunks of
// 8 from the start of x and returns how many elements it did (0 without
// AVX2).
func expChunks(x []float32, m float32, sum *float64) int {
	n := len(x) &^ 7
	if !useAVX2 || n == 0 {
		return 0
	}
	return expChunksAVX2(unsafe.SliceData(x), m, n, sum)
}

//go:noescape
func maxAVX2(x *float32, n int) (m float32, nan bool)

//go:noescape
func scaleAVX2(x *float32, s float32, n int)

// maxVec returns the largest element of x as Go's max of them in order
// would (x non-empty), with ok false where it leaves that to the caller:
// without AVX2, for fewer than 8 elements, or where x holds a NaN or its
// largest value is a zero (whose sign max picks by order).
func maxVec(x []float32) (m float32, ok bool) {
	n := len(x) &^ 7
	if !useAVX2 || n == 0 {
		return 0, false
	}
	m, nan := maxAVX2(unsafe.SliceData(x), n)
	for _, v := range x[n:] {
		m = max(m, v)
	}
	return m, !nan && m == m && m != 0
}

// scaleVec sets x[i] *= s for the whole chunks of 8 from the start of x
// and returns how many elements it did (0 without AVX2).
func scaleVec(x []float32, s float32) int {
	n := len(x) &^ 7
	if !useAVX2 || n == 0 {
		return 0
	}
	scaleAVX2(unsafe.SliceData(x), s, n)
	return n
}

//go:noescape
func ropePairsAVX2(x *float32, cs *float32, ds *float32, dims int, heads int, hd int)

//go:noescape
func ropeNeoxAVX2(x *float32, c *float32, s *float32, half int, heads int, hd int)

// ropeVec rotates the heads of x as RoPE.ApplyTable does, bitwise, given
// the table's two halves, and reports whether it did: AVX2, and dims a
// multiple of 8 (16 for NEOX pairs).
func ropeVec(x []float32, heads, hd, dims int, neox bool, cs, aux []float32) bool {
	if !useAVX2 || heads <= 0 || dims <= 0 || dims > hd || len(x) < heads*hd {
		return false
	}
	half := dims / 2
	switch {
	case neox && half%8 == 0:
		ropeNeoxAVX2(unsafe.SliceData(x), &aux[0], &aux[half:][0], half, heads, hd)
	case !neox && dims%8 == 0:
		ropePairsAVX2(unsafe.SliceData(x), &cs[:dims][0], &aux[:dims][0], dims, heads, hd)
	default:
		return false
	}
	return true
}

// swigluVec sets dst[i] = vSiLU(gate[i]) * up[i] for whole chunks of 8 from
// the start of gate and returns how many elements it did (0 without AVX2).
func swigluVec(dst, gate, up []float32) int {
	n := len(gate) &^ 7
	if !useAVX2 || n == 0 {
		return 0
	}
	dst, up = dst[:n], up[:n]
	return swigluAVX2(unsafe.SliceData(dst), unsafe.SliceData(gate), unsafe.SliceData(up), n)
}

// fromF16Vec widens the whole chunks of 8 of dst's halves in src (2 bytes
// each, little-endian) to float32 with VCVTPH2PS and returns how many
// elements it did (0 without F16C).
func fromF16Vec(dst []float32, src []byte) int {
	n := len(dst) &^ 7
	if !useAVX2 || n == 0 {
		return 0
	}
	src = src[:2*n]
	fromF16AVX2(unsafe.SliceData(dst), (*uint16)(unsafe.Pointer(unsafe.SliceData(src))), n)
	return n
}

// toF16Vec converts the whole chunks of 8 of src to half precision into dst
// with VCVTPS2PH and returns how many elements it did (0 without F16C).
func toF16Vec(dst []uint16, src []float32) int {
	n := len(src) &^ 7
	if !useAVX2 || n == 0 {
		return 0
	}
	dst = dst[:n]
	toF16AVX2(unsafe.SliceData(dst), unsafe.SliceData(src), n)
	return n
}

// quantizeQ8_KAlts lists the SIMD forms of quantizeQ8_K this CPU runs
// besides quantizeQ8_KImpl's choice, for the differential tests: the AVX2
// one on a CPU that has AVX-512 too.
func quantizeQ8_KAlts() []func(y []byte, x []float32) {
	if useAVX512 {
		return []func(y []byte, x []float32){quantizeQ8_KAVX2Impl}
	}
	return nil
}

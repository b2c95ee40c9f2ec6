package kernels

import (
	"encoding/binary"
	"math"
)

// The activation quantizers below round the input of a matrix product into
// the weight type's vec-dot type exactly as llama.cpp's AVX2 build does
// (quantize_row_q8_0, quantize_row_q8_1 and quantize_row_q8_K). They are the
// primitives a SIMD version replaces; keep them bit-exact.

// absf returns |v| in float32.
func absf(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// roundEven rounds v half to even (as _mm256_round_ps with
// _MM_ROUND_NEAREST, or ggml's nearest_int) for |v| < 2^22: adding 1.5*2^23
// in float32 leaves the rounded integer in the low mantissa bits.
func roundEven(v float32) int32 {
	return int32(math.Float32bits(v+0x1.8p23)&0x7fffff) - 0x400000
}

// quantizeQ8_0 encodes x (a multiple of 32 elements) as Q8_0 blocks
// {d f16; qs int8[32]} into y: amax = max|x|, d = amax/127 stored as F16,
// q = round-half-even(x * 127/amax).
func quantizeQ8_0(y []byte, x []float32) {
	for b := range len(x) / QK {
		xb := (*[QK]float32)(x[b*QK:])
		yb := (*[q8_0Bytes]byte)(y[b*q8_0Bytes:])
		var amax float32
		for _, v := range xb {
			amax = max(amax, absf(v))
		}
		putF16(yb[0:], amax/127)
		var id float32
		if amax != 0 {
			id = 127 / amax
		}
		qs := (*[QK]byte)(yb[2:])
		for j, v := range xb {
			qs[j] = byte(roundEven(float32(v * id)))
		}
	}
}

// quantizeQ8_1 encodes x as Q8_1 blocks {d f16; s f16; qs int8[32]}: d and
// q as Q8_0, and s = d * (sum of the q), computed in float32 with d before
// its rounding to F16, then stored as F16.
func quantizeQ8_1(y []byte, x []float32) {
	for b := range len(x) / QK {
		xb := (*[QK]float32)(x[b*QK:])
		yb := (*[q8_1Bytes]byte)(y[b*q8_1Bytes:])
		var amax float32
		for _, v := range xb {
			amax = max(amax, absf(v))
		}
		d := amax / 127
		var id float32
		if amax != 0 {
			id = 127 / amax
		}
		qs := (*[QK]byte)(yb[4:])
		var sum int32
		for j, v := range xb {
			q := roundEven(float32(v * id))
			qs[j] = byte(q)
			sum += q
		}
		putF16(yb[0:], d)
		putF16(yb[2:], d*float32(sum))
	}
}

// quantizeQ8_K encodes x (a multiple of 256 elements) as Q8_K blocks
// {d f32; qs int8[256]; bsums int16[16]} (ggml's quantize_row_q8_K_ref):
// max is the element of largest magnitude (the first on ties); iscale =
// -127/max, q = min(127, round-half-even(iscale*x)), d = 1/iscale, bsums the
// sums of q over groups of 16. An all-zero block gets d = 0 and q = 0.
func quantizeQ8_K(y []byte, x []float32) {
	for b := range len(x) / QKK {
		xb := (*[QKK]float32)(x[b*QKK:])
		yb := (*[q8_KBytes]byte)(y[b*q8_KBytes:])
		qs := (*[QKK]byte)(yb[4:])
		bsums := (*[QKK / 16 * 2]byte)(yb[4+QKK:])
		var mx, amax float32
		for _, v := range xb {
			if a := absf(v); a > amax {
				amax, mx = a, v
			}
		}
		if amax == 0 {
			*yb = [q8_KBytes]byte{}
			continue
		}
		iscale := -127 / mx
		for j, v := range xb {
			qs[j] = byte(min(127, roundEven(float32(iscale*v))))
		}
		for g := range QKK / 16 {
			var s int32
			for _, q := range qs[16*g : 16*g+16] {
				s += int32(int8(q))
			}
			binary.LittleEndian.PutUint16(bsums[2*g:], uint16(int16(s)))
		}
		binary.LittleEndian.PutUint32(yb[0:], math.Float32bits(1/iscale))
	}
}

package kernels

import "math"

// F16ToF32 converts an IEEE 754 half-precision value to float32. The
// conversion is exact; subnormal halves become normal float32 values, and a
// NaN keeps its sign and payload and is made quiet (as the F16C instruction
// VCVTPH2PS does). It reads a 256 KiB table built when the package is
// initialized (as ggml's CPU backend does), so that it inlines into loops.
func F16ToF32(h uint16) float32 { return f16Table[h] }

// f16Table holds F16ToF32 of every half.
var f16Table = func() *[1 << 16]float32 {
	t := new([1 << 16]float32)
	for i := range t {
		t[i] = f16ToF32Bits(uint16(i))
	}
	return t
}()

// f16ToF32Bits is F16ToF32 computed from the bits.
func f16ToF32Bits(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch exp {
	case 0:
		// Zero or subnormal: man * 2^-24, exact in float32.
		f := float32(man) * (1.0 / (1 << 24))
		return math.Float32frombits(math.Float32bits(f) | sign)
	case 0x1f:
		if man == 0 {
			return math.Float32frombits(sign | 0x7f800000)
		}
		return math.Float32frombits(sign | 0x7fc00000 | man<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
}

// F32sToF16 sets dst[i] = F32ToF16(src[i]) for every i of src (with F16C
// where the CPU has it).
func F32sToF16(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	n := toF16Vec(dst, src)
	for i := n; i < len(src); i++ {
		dst[i] = F32ToF16(src[i])
	}
}

// F32ToF16 converts f to IEEE 754 half precision, rounding to nearest with
// ties to even (as F16C's VCVTPS2PH with the default rounding mode): values
// too large become ±Inf, tiny ones subnormal halves or ±0. A NaN stays a
// quiet NaN with its sign and the top bits of its payload.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7e00 | uint16(man>>13)
	}
	e := exp - 127 + 15 // biased half exponent
	switch {
	case e >= 0x1f:
		return sign | 0x7c00
	case e <= 0:
		// Half subnormal (or zero): q = M * 2^(exp-150) / 2^-24.
		if e < -10 {
			return sign // below 2^-25: rounds to zero
		}
		m := man | 0x800000
		shift := uint32(14 - e)
		q := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || rem == half && q&1 == 1 {
			q++ // may carry into the smallest normal, which is right
		}
		return sign | uint16(q)
	}
	h := uint32(e)<<10 | man>>13
	rem := man & 0x1fff
	if rem > 0x1000 || rem == 0x1000 && h&1 == 1 {
		h++ // a carry into the exponent is right, up to Inf
	}
	return sign | uint16(h)
}

// BF16ToF32 converts a bfloat16 value to float32 (exact).
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 converts f to bfloat16, rounding to nearest with ties to even; a
// NaN is kept and made quiet (as ggml's GGML_FP32_TO_BF16). Subnormals are
// rounded, not flushed.
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// f16 reads the little-endian half at b[0:2] as float32.
func f16(b []byte) float32 {
	_ = b[1]
	return F16ToF32(uint16(b[0]) | uint16(b[1])<<8)
}

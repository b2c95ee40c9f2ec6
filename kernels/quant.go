package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Quantize appends the encoding of src as type t to dst and returns the
// extended slice. len(src) must be a multiple of t.BlockSize(); it panics
// when t is not Supported.
//
// F16 and BF16 round to nearest even. Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 follow
// ggml's reference quantizers (quantize_row_*_ref) bit for bit, so a tensor
// quantized here equals llama-quantize's output without an importance
// matrix. The K-quants use a simple min/max quantizer (not ggml's iterative
// search): good enough for synthetic models and tests, a little less
// accurate than llama-quantize.
func Quantize(dst []byte, t DType, src []float32) []byte {
	n, ok := t.RowBytes(len(src))
	if !ok || !t.Supported() {
		panic(fmt.Sprintf("kernels: Quantize %d elements to %v", len(src), t))
	}
	dst = slices.Grow(dst, n)
	out := dst[len(dst) : len(dst)+n]
	switch t {
	case F32:
		for i, v := range src {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
	case F16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(out[2*i:], F32ToF16(v))
		}
	case BF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(out[2*i:], F32ToBF16(v))
		}
	case Q4_0:
		for b := range len(src) / QK {
			quantRefQ4_0((*[q4_0Bytes]byte)(out[b*q4_0Bytes:]), (*[QK]float32)(src[b*QK:]))
		}
	case Q4_1:
		for b := range len(src) / QK {
			quantRefQ4_1((*[q4_1Bytes]byte)(out[b*q4_1Bytes:]), (*[QK]float32)(src[b*QK:]))
		}
	case Q5_0:
		for b := range len(src) / QK {
			quantRefQ5_0((*[q5_0Bytes]byte)(out[b*q5_0Bytes:]), (*[QK]float32)(src[b*QK:]))
		}
	case Q5_1:
		for b := range len(src) / QK {
			quantRefQ5_1((*[q5_1Bytes]byte)(out[b*q5_1Bytes:]), (*[QK]float32)(src[b*QK:]))
		}
	case Q8_0:
		for b := range len(src) / QK {
			quantRefQ8_0((*[q8_0Bytes]byte)(out[b*q8_0Bytes:]), (*[QK]float32)(src[b*QK:]))
		}
	case Q4_K:
		for b := range len(src) / QKK {
			quantQ4_K((*[q4_KBytes]byte)(out[b*q4_KBytes:]), (*[QKK]float32)(src[b*QKK:]))
		}
	case Q5_K:
		for b := range len(src) / QKK {
			quantQ5_K((*[q5_KBytes]byte)(out[b*q5_KBytes:]), (*[QKK]float32)(src[b*QKK:]))
		}
	case Q6_K:
		for b := range len(src) / QKK {
			quantQ6_K((*[q6_KBytes]byte)(out[b*q6_KBytes:]), (*[QKK]float32)(src[b*QKK:]))
		}
	}
	return dst[:len(dst)+n]
}

func putF16(b []byte, f float32) { binary.LittleEndian.PutUint16(b, F32ToF16(f)) }

// recip returns 1/d, or 0 when d is 0 (ggml's "d ? 1.0f/d : 0.0f").
func recip(d float32) float32 {
	if d == 0 {
		return 0
	}
	return 1 / d
}

// absMax returns the element of largest magnitude (the first on ties) and
// that magnitude.
func absMax(x []float32) (m, amax float32) {
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); amax < a {
			amax, m = a, v
		}
	}
	return m, amax
}

func minMax(x []float32) (lo, hi float32) {
	lo, hi = math.MaxFloat32, -math.MaxFloat32
	for _, v := range x {
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

// quantRefQ8_0 is ggml's quantize_row_q8_0_ref: d = amax/127, q =
// roundf(x/d), rounding half away from zero.
func quantRefQ8_0(y *[q8_0Bytes]byte, x *[QK]float32) {
	_, amax := absMax(x[:])
	d := amax / 127
	id := recip(d)
	putF16(y[0:], d)
	for j, v := range x {
		y[2+j] = byte(int8(math.Round(float64(v * id))))
	}
}

// quantRefQ4_0 is ggml's quantize_row_q4_0_ref: d = max/-8 where max is the
// signed element of largest magnitude, q = min(15, trunc(x/d + 8.5)).
func quantRefQ4_0(y *[q4_0Bytes]byte, x *[QK]float32) {
	m, _ := absMax(x[:])
	d := m / -8
	id := recip(d)
	putF16(y[0:], d)
	for j := range QK / 2 {
		x0 := float32(x[j] * id) // no FMA with the add below
		x1 := float32(x[j+QK/2] * id)
		q0 := min(15, int8(x0+8.5))
		q1 := min(15, int8(x1+8.5))
		y[2+j] = byte(q0) | byte(q1)<<4
	}
}

// quantRefQ4_1 is ggml's quantize_row_q4_1_ref: d = (max-min)/15, m = min,
// q = min(15, trunc((x-min)/d + 0.5)).
func quantRefQ4_1(y *[q4_1Bytes]byte, x *[QK]float32) {
	lo, hi := minMax(x[:])
	d := (hi - lo) / 15
	id := recip(d)
	putF16(y[0:], d)
	putF16(y[2:], lo)
	for j := range QK / 2 {
		x0 := float32((x[j] - lo) * id) // no FMA with the add below
		x1 := float32((x[j+QK/2] - lo) * id)
		q0 := min(15, int8(x0+0.5))
		q1 := min(15, int8(x1+0.5))
		y[4+j] = byte(q0) | byte(q1)<<4
	}
}

// quantRefQ5_0 is ggml's quantize_row_q5_0_ref: d = max/-16, q = min(31,
// trunc(x/d + 16.5)), the fifth bits gathered in qh.
func quantRefQ5_0(y *[q5_0Bytes]byte, x *[QK]float32) {
	m, _ := absMax(x[:])
	d := m / -16
	id := recip(d)
	putF16(y[0:], d)
	var qh uint32
	for j := range QK / 2 {
		x0 := float32(x[j] * id) // no FMA with the add below
		x1 := float32(x[j+QK/2] * id)
		q0 := uint32(min(31, int8(x0+16.5)))
		q1 := uint32(min(31, int8(x1+16.5)))
		y[6+j] = byte(q0&0xf | (q1&0xf)<<4)
		qh |= (q0 & 0x10 >> 4) << uint(j)
		qh |= (q1 & 0x10 >> 4) << uint(j+QK/2)
	}
	binary.LittleEndian.PutUint32(y[2:], qh)
}

// quantRefQ5_1 is ggml's quantize_row_q5_1_ref: d = (max-min)/31, m = min,
// q = trunc((x-min)/d + 0.5).
func quantRefQ5_1(y *[q5_1Bytes]byte, x *[QK]float32) {
	lo, hi := minMax(x[:])
	d := (hi - lo) / 31
	id := recip(d)
	putF16(y[0:], d)
	putF16(y[2:], lo)
	var qh uint32
	for j := range QK / 2 {
		x0 := float32((x[j] - lo) * id) // no FMA with the add below
		x1 := float32((x[j+QK/2] - lo) * id)
		q0 := uint32(uint8(x0 + 0.5))
		q1 := uint32(uint8(x1 + 0.5))
		y[8+j] = byte(q0&0xf | (q1&0xf)<<4)
		qh |= (q0 & 0x10 >> 4) << uint(j)
		qh |= (q1 & 0x10 >> 4) << uint(j+QK/2)
	}
	binary.LittleEndian.PutUint32(y[4:], qh)
}

// roundClamp rounds v half away from zero and clamps it to [lo, hi].
func roundClamp(v float32, lo, hi int) int {
	if v != v {
		return lo
	}
	return min(hi, max(lo, int(math.Round(float64(v)))))
}

// packScaleMinK4 stores the 6-bit scales and mins of 8 sub-blocks in the
// get_scale_min_k4 layout.
func packScaleMinK4(s *[12]byte, sc, m *[8]uint8) {
	*s = [12]byte{}
	for j := range 8 {
		if j < 4 {
			s[j] = sc[j]
			s[j+4] = m[j]
		} else {
			s[j+4] = sc[j]&0xf | (m[j]&0xf)<<4
			s[j-4] |= sc[j] >> 4 << 6
			s[j] |= m[j] >> 4 << 6
		}
	}
}

// quantAffineK quantizes one 256-element super-block with 8 sub-blocks of 32
// as value = d*sc*q - dmin*m, q in [0, nmax]: each sub-block's range
// [min(0, lo), hi] is split into nmax steps, and the sub-block scales and
// mins are quantized to 6 bits against the largest of each.
func quantAffineK(x *[QKK]float32, nmax int, dOut, dminOut []byte, scales *[12]byte, q *[QKK]uint8) {
	var scale, mins [8]float32
	var maxScale, maxMin float32
	for j := range 8 {
		lo, hi := minMax(x[32*j : 32*j+32])
		lo = min(lo, 0)
		scale[j] = (hi - lo) / float32(nmax)
		mins[j] = -lo
		maxScale, maxMin = max(maxScale, scale[j]), max(maxMin, mins[j])
	}
	d := F16ToF32(F32ToF16(maxScale / 63))
	dmin := F16ToF32(F32ToF16(maxMin / 63))
	putF16(dOut, d)
	putF16(dminOut, dmin)
	var sc, m [8]uint8
	for j := range 8 {
		sc[j] = uint8(roundClamp(scale[j]*recip(d), 0, 63))
		m[j] = uint8(roundClamp(mins[j]*recip(dmin), 0, 63))
		ds, dm := d*float32(sc[j]), dmin*float32(m[j])
		ids := recip(ds)
		for l := 32 * j; l < 32*j+32; l++ {
			q[l] = uint8(roundClamp((x[l]+dm)*ids, 0, nmax))
		}
	}
	packScaleMinK4(scales, &sc, &m)
}

// quantQ4_K encodes one Q4_K super-block (simple min/max quantizer).
func quantQ4_K(y *[q4_KBytes]byte, x *[QKK]float32) {
	var q [QKK]uint8
	quantAffineK(x, 15, y[0:2], y[2:4], (*[12]byte)(y[4:]), &q)
	for c := range 4 {
		for l := range 32 {
			y[16+32*c+l] = q[64*c+l] | q[64*c+32+l]<<4
		}
	}
}

// quantQ5_K encodes one Q5_K super-block (simple min/max quantizer).
func quantQ5_K(y *[q5_KBytes]byte, x *[QKK]float32) {
	var q [QKK]uint8
	quantAffineK(x, 31, y[0:2], y[2:4], (*[12]byte)(y[4:]), &q)
	qh := (*[32]byte)(y[16:])
	*qh = [32]byte{}
	for c := range 4 {
		for l := range 32 {
			lo, hi := q[64*c+l], q[64*c+32+l]
			y[48+32*c+l] = lo&0xf | (hi&0xf)<<4
			qh[l] |= (lo>>4)<<(2*c) | (hi>>4)<<(2*c+1)
		}
	}
}

// quantQ6_K encodes one Q6_K super-block: each group of 16 gets the scale
// that maps its element of largest magnitude to -32 (as ggml's make_qx_quants
// starts), the 16 scales are quantized to int8 against the largest.
func quantQ6_K(y *[q6_KBytes]byte, x *[QKK]float32) {
	var scale [16]float32
	var amaxScale, maxScale float32
	for j := range 16 {
		m, _ := absMax(x[16*j : 16*j+16])
		scale[j] = m / -32
		if a := float32(math.Abs(float64(scale[j]))); a > amaxScale {
			amaxScale, maxScale = a, scale[j]
		}
	}
	d := F16ToF32(F32ToF16(maxScale / -128))
	putF16(y[208:], d)
	var q [QKK]uint8 // q+32, in [0, 63]
	for j := range 16 {
		sc := int8(roundClamp(scale[j]*recip(d), -128, 127))
		y[192+j] = byte(sc)
		ids := recip(d * float32(sc))
		for l := 16 * j; l < 16*j+16; l++ {
			q[l] = uint8(roundClamp(x[l]*ids, -32, 31) + 32)
		}
	}
	for n := range 2 {
		ql := y[64*n : 64*n+64]
		qh := y[128+32*n : 128+32*n+32]
		qq := q[128*n : 128*n+128]
		for l := range 32 {
			q1, q2, q3, q4 := qq[l], qq[l+32], qq[l+64], qq[l+96]
			ql[l] = q1&0xf | (q3&0xf)<<4
			ql[l+32] = q2&0xf | (q4&0xf)<<4
			qh[l] = q1>>4 | (q2>>4)<<2 | (q3>>4)<<4 | (q4>>4)<<6
		}
	}
}

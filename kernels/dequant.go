package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Block sizes in bytes of the formats the kernels decode.
const (
	q4_0Bytes = 2 + QK/2
	q4_1Bytes = 4 + QK/2
	q5_0Bytes = 2 + 4 + QK/2
	q5_1Bytes = 4 + 4 + QK/2
	q8_0Bytes = 2 + QK
	q8_1Bytes = 4 + QK
	q4_KBytes = 4 + 12 + QKK/2
	q5_KBytes = 4 + 12 + QKK/8 + QKK/2
	q6_KBytes = QKK/2 + QKK/4 + QKK/16 + 2
	q8_KBytes = 4 + QKK + QKK/16*2
)

// Dequantize decodes len(dst) elements of type t from src into dst,
// bit-exactly as ggml's dequantize_row_* (float32 arithmetic in the same
// order). len(dst) must be a multiple of t.BlockSize() and src must hold at
// least that many elements. It panics when t is not Supported.
func Dequantize(dst []float32, t DType, src []byte) {
	switch t {
	case F32:
		src = src[:4*len(dst)]
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F16:
		src = src[:2*len(dst)]
		// The table lookups of F16ToF32 miss the cache where a row is
		// widened once in a while (a token's embedding: 20 µs for 2048
		// halves between two decoded tokens, against 0.3 with F16C).
		for i := fromF16Vec(dst, src); i < len(dst); i++ {
			dst[i] = F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case BF16:
		src = src[:2*len(dst)]
		for i := range dst {
			dst[i] = BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case Q4_0:
		for b := 0; b < len(dst)/QK; b++ {
			dequantQ4_0((*[QK]float32)(dst[b*QK:]), (*[q4_0Bytes]byte)(src[b*q4_0Bytes:]))
		}
	case Q4_1:
		for b := 0; b < len(dst)/QK; b++ {
			dequantQ4_1((*[QK]float32)(dst[b*QK:]), (*[q4_1Bytes]byte)(src[b*q4_1Bytes:]))
		}
	case Q5_0:
		for b := 0; b < len(dst)/QK; b++ {
			dequantQ5_0((*[QK]float32)(dst[b*QK:]), (*[q5_0Bytes]byte)(src[b*q5_0Bytes:]))
		}
	case Q5_1:
		for b := 0; b < len(dst)/QK; b++ {
			dequantQ5_1((*[QK]float32)(dst[b*QK:]), (*[q5_1Bytes]byte)(src[b*q5_1Bytes:]))
		}
	case Q8_0:
		for b := 0; b < len(dst)/QK; b++ {
			dequantQ8_0((*[QK]float32)(dst[b*QK:]), (*[q8_0Bytes]byte)(src[b*q8_0Bytes:]))
		}
	case Q4_K:
		for b := 0; b < len(dst)/QKK; b++ {
			dequantQ4_K((*[QKK]float32)(dst[b*QKK:]), (*[q4_KBytes]byte)(src[b*q4_KBytes:]))
		}
	case Q5_K:
		for b := 0; b < len(dst)/QKK; b++ {
			dequantQ5_K((*[QKK]float32)(dst[b*QKK:]), (*[q5_KBytes]byte)(src[b*q5_KBytes:]))
		}
	case Q6_K:
		for b := 0; b < len(dst)/QKK; b++ {
			dequantQ6_K((*[QKK]float32)(dst[b*QKK:]), (*[q6_KBytes]byte)(src[b*q6_KBytes:]))
		}
	default:
		panic(fmt.Sprintf("kernels: Dequantize of unsupported type %v", t))
	}
}

// Q4_0 {d f16; qs[16]}: element j is the low nibble of qs[j], element j+16
// the high one; value (q-8)*d.
func dequantQ4_0(y *[QK]float32, x *[q4_0Bytes]byte) {
	d := f16(x[0:])
	qs := (*[QK / 2]byte)(x[2:])
	for j, q := range qs {
		y[j] = float32(int32(q&0xf)-8) * d
		y[j+QK/2] = float32(int32(q>>4)-8) * d
	}
}

// Q4_1 {d, m f16; qs[16]}: value q*d + m.
func dequantQ4_1(y *[QK]float32, x *[q4_1Bytes]byte) {
	d, m := f16(x[0:]), f16(x[2:])
	qs := (*[QK / 2]byte)(x[4:])
	for j, q := range qs {
		y[j] = float32(float32(q&0xf)*d) + m
		y[j+QK/2] = float32(float32(q>>4)*d) + m
	}
}

// Q5_0 {d f16; qh u32; qs[16]}: the fifth bit of element j is bit j of qh;
// value (q-16)*d.
func dequantQ5_0(y *[QK]float32, x *[q5_0Bytes]byte) {
	d := f16(x[0:])
	qh := binary.LittleEndian.Uint32(x[2:])
	qs := (*[QK / 2]byte)(x[6:])
	for j, q := range qs {
		h0 := (qh >> uint(j) << 4) & 0x10
		h1 := (qh >> uint(j+12)) & 0x10
		y[j] = float32(int32(uint32(q&0xf)|h0)-16) * d
		y[j+QK/2] = float32(int32(uint32(q>>4)|h1)-16) * d
	}
}

// Q5_1 {d, m f16; qh u32; qs[16]}: value q*d + m.
func dequantQ5_1(y *[QK]float32, x *[q5_1Bytes]byte) {
	d, m := f16(x[0:]), f16(x[2:])
	qh := binary.LittleEndian.Uint32(x[4:])
	qs := (*[QK / 2]byte)(x[8:])
	for j, q := range qs {
		h0 := (qh >> uint(j) << 4) & 0x10
		h1 := (qh >> uint(j+12)) & 0x10
		y[j] = float32(float32(uint32(q&0xf)|h0)*d) + m
		y[j+QK/2] = float32(float32(uint32(q>>4)|h1)*d) + m
	}
}

// Q8_0 {d f16; qs int8[32]}: value q*d.
func dequantQ8_0(y *[QK]float32, x *[q8_0Bytes]byte) {
	d := f16(x[0:])
	qs := (*[QK]byte)(x[2:])
	for j, q := range qs {
		y[j] = float32(int8(q)) * d
	}
}

// scaleMinK4 returns the 6-bit scale and min of sub-block j (0..7) packed in
// the 12-byte scales array of Q4_K and Q5_K (ggml's get_scale_min_k4).
func scaleMinK4(j int, s *[12]byte) (sc, m uint8) {
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	return s[j+4]&0xf | (s[j-4]>>6)<<4, s[j+4]>>4 | (s[j]>>6)<<4
}

// Q4_K {d, dmin f16; scales[12]; qs[128]}: four chunks of 64 elements; the
// low nibbles of 32 bytes are sub-block 2c, the high nibbles sub-block 2c+1;
// value (d*sc)*q - dmin*m.
func dequantQ4_K(y *[QKK]float32, x *[q4_KBytes]byte) {
	d, dmin := f16(x[0:]), f16(x[2:])
	scales := (*[12]byte)(x[4:])
	for c := range 4 {
		sc, m := scaleMinK4(2*c, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(2*c+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		qs := (*[32]byte)(x[16+32*c:])
		lo := (*[32]float32)(y[64*c:])
		hi := (*[32]float32)(y[64*c+32:])
		for l, q := range qs {
			lo[l] = float32(d1*float32(q&0xf)) - m1
			hi[l] = float32(d2*float32(q>>4)) - m2
		}
	}
}

// Q5_K {d, dmin f16; scales[12]; qh[32]; qs[128]}: as Q4_K, the fifth bit
// of sub-block 2c from bit 2c of qh[l], of sub-block 2c+1 from bit 2c+1.
func dequantQ5_K(y *[QKK]float32, x *[q5_KBytes]byte) {
	d, dmin := f16(x[0:]), f16(x[2:])
	scales := (*[12]byte)(x[4:])
	qh := (*[32]byte)(x[16:])
	for c := range 4 {
		sc, m := scaleMinK4(2*c, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(2*c+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		qs := (*[32]byte)(x[48+32*c:])
		lo := (*[32]float32)(y[64*c:])
		hi := (*[32]float32)(y[64*c+32:])
		s1, s2 := uint(2*c), uint(2*c+1)
		for l, q := range qs {
			h := qh[l]
			lo[l] = float32(d1*float32(q&0xf|(h>>s1&1)<<4)) - m1
			hi[l] = float32(d2*float32(q>>4|(h>>s2&1)<<4)) - m2
		}
	}
}

// Q6_K {ql[128]; qh[64]; scales int8[16]; d f16}: two halves of 128
// elements; in half n, element 32k+l (k < 4, l < 32) takes its low four bits
// from ql[64n+l] (k even, low nibble of ql[l] for k=0, of ql[l+32] for k=1;
// high nibbles for k=2,3), its high two bits from bits 2k of qh[32n+l]; value
// (d*sc)*(q-32) with the scale of its group of 16.
func dequantQ6_K(y *[QKK]float32, x *[q6_KBytes]byte) {
	d := f16(x[208:])
	for n := range 2 {
		ql := (*[64]byte)(x[64*n:])
		qh := (*[32]byte)(x[128+32*n:])
		sc := (*[8]byte)(x[192+8*n:])
		yy := (*[128]float32)(y[128*n:])
		for l := range 32 {
			is := l / 16
			h := qh[l]
			q1 := int32(ql[l]&0xf|(h&3)<<4) - 32
			q2 := int32(ql[l+32]&0xf|(h>>2&3)<<4) - 32
			q3 := int32(ql[l]>>4|(h>>4&3)<<4) - 32
			q4 := int32(ql[l+32]>>4|(h>>6&3)<<4) - 32
			yy[l] = d * float32(int8(sc[is])) * float32(q1)
			yy[l+32] = d * float32(int8(sc[is+2])) * float32(q2)
			yy[l+64] = d * float32(int8(sc[is+4])) * float32(q3)
			yy[l+96] = d * float32(int8(sc[is+6])) * float32(q4)
		}
	}
}

// dequantQ8_K decodes a Q8_K block {d f32; qs int8[256]; bsums int16[16]}
// (activations only; tests use it).
func dequantQ8_K(y *[QKK]float32, x *[q8_KBytes]byte) {
	d := math.Float32frombits(binary.LittleEndian.Uint32(x[0:]))
	for j, q := range (*[QKK]byte)(x[4:]) {
		y[j] = d * float32(int8(q))
	}
}

package kernels

import (
	"encoding/binary"
	"math"
)

// The dot functions below compute one weight row times one activation row
// already in the weight type's vec-dot type. They reproduce, operation for
// operation, the float arithmetic of llama.cpp's AVX2 kernels for a
// single-token product (ggml_vec_dot_*, and the repacked Q4_0 gemv): the
// same 8-lane (or 4x8-lane) accumulators, the same fused multiply-adds and
// the same horizontal reductions, so that results agree bit for bit, not
// just to rounding. Integer sums inside a lane are exact. These are the
// primitives a SIMD version replaces; with the same lane layout it can
// match them exactly.

// fma32 returns a*b+c rounded once to float32, as VFMADD does. The product
// of two float32s is exact in float64; their sum with c rounds to float64,
// and the error of that rounding is found exactly (Knuth's two-sum). A
// float64 sum that is not exact is then moved to the odd neighbour on the
// side of the exact value (round to odd), so that the rounding to float32
// cannot land on a tie that the exact value is not on: 29 bits to spare
// make that second rounding the correct one. Without it, a product on a
// float32 tie plus a tiny c rounds the wrong way: fma32(3, 1+2^-23,
// -2^-60) was 0x40400002, not 0x40400001, about once in 8,000 of the
// K-quant kernels' random dot products.
func fma32(a, b, c float32) float32 {
	p, q := float64(a)*float64(b), float64(c)
	s := p + q
	t := s - p
	e := (p - (s - t)) + (q - t) // p+q-s, exactly
	if e != 0 && !math.IsInf(s, 0) && !math.IsNaN(e) {
		if bits := math.Float64bits(s); bits&1 == 0 {
			if (e > 0) == (s > 0) {
				bits++ // away from zero, toward the exact sum
			} else {
				bits--
			}
			s = math.Float64frombits(bits)
		}
	}
	return float32(s)
}

// hsum8 adds 8 lanes as ggml's hsum_float_8: the upper four onto the lower
// four, then lanes 2,3 onto 0,1, then lane 1 onto 0.
func hsum8(a *[8]float32) float32 {
	r0, r1, r2, r3 := a[4]+a[0], a[5]+a[1], a[6]+a[2], a[7]+a[3]
	return (r0 + r2) + (r1 + r3)
}

// reduce32 adds four 8-lane vectors (a[8j+l] is lane l of vector j) as
// ggml's GGML_F32x8_REDUCE: vectors 0+2 and 1+3, then those two, then the
// two 128-bit halves, then two horizontal adds.
func reduce32(a *[32]float32) float32 {
	var v [8]float32
	for l := range v {
		v[l] = (a[l] + a[16+l]) + (a[8+l] + a[24+l])
	}
	t0, t1, t2, t3 := v[0]+v[4], v[1]+v[5], v[2]+v[6], v[3]+v[7]
	return (t0 + t1) + (t2 + t3)
}

// f32le reads the little-endian float32 at b[0:4].
func f32le(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }

// u16le reads the little-endian uint16 at b[0:2].
func u16le(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }

// dotF32 is ggml_vec_dot_f32: elements in steps of 32 go to 32 lanes
// (element i to lane i%32) with a fused multiply-add, the lanes are reduced
// by reduce32, and the leftover elements' products are added to the float32
// sum one by one (not fused: llama.cpp's binary does not contract them).
func dotF32(w []byte, x []float32) float32 {
	var acc [32]float32
	n := len(x)
	np := n &^ 31
	w = w[:4*n]
	for i := 0; i < np; i += 32 {
		wb := (*[128]byte)(w[4*i:])
		xb := (*[32]float32)(x[i:])
		for l := range acc {
			acc[l] = fma32(f32le(wb[4*l:]), xb[l], acc[l])
		}
	}
	sum := reduce32(&acc)
	for i := np; i < n; i++ {
		sum += float32(f32le(w[4*i:]) * x[i])
	}
	return sum
}

// dotF16 is ggml_vec_dot_f16 for an F16 row w and activations already
// rounded to F16: as dotF32, but the products of two halves are exact (so
// fused or not makes no difference), the reduced lanes go into a float64
// sum, and the leftovers are added to it in float64.
func dotF16(w, x []byte) float32 {
	var acc [32]float32
	t := f16Table
	n := len(x) / 2
	np := n &^ 31
	w = w[:2*n]
	for i := 0; i < np; i += 32 {
		wb := (*[64]byte)(w[2*i:])
		xb := (*[64]byte)(x[2*i:])
		for l := range acc {
			acc[l] += t[u16le(wb[2*l:])] * t[u16le(xb[2*l:])]
		}
	}
	sum := float64(reduce32(&acc))
	for i := np; i < n; i++ {
		sum += float64(t[u16le(w[2*i:])] * t[u16le(x[2*i:])])
	}
	return float32(sum)
}

// dotBF16 is ggml_vec_dot_bf16 (AVX2): four 8-lane sums over steps of 32
// (products exact), added as (c1+c3)+(c2+c4) and then by hsum8 into a
// float64 sum that takes the leftovers.
func dotBF16(w, x []byte) float32 {
	var acc [32]float32
	n := len(x) / 2
	np := n &^ 31
	w = w[:2*n]
	for i := 0; i < np; i += 32 {
		wb := (*[64]byte)(w[2*i:])
		xb := (*[64]byte)(x[2*i:])
		for l := range acc {
			acc[l] += BF16ToF32(u16le(wb[2*l:])) * BF16ToF32(u16le(xb[2*l:]))
		}
	}
	var v [8]float32
	for l := range v {
		v[l] = (acc[l] + acc[16+l]) + (acc[8+l] + acc[24+l])
	}
	sum := float64(hsum8(&v))
	for i := np; i < n; i++ {
		sum += float64(BF16ToF32(u16le(w[2*i:])) * BF16ToF32(u16le(x[2*i:])))
	}
	return float32(sum)
}

// lanesI8 sets l[k] to the exact sum of a[e]*b[e] over e = 4k..4k+3, the
// eight int32 lanes that _mm256_maddubs_epi16 and _mm256_madd_epi16 make of
// 32 byte products.
// (a and b hold int8s.)
func lanesI8(l *[8]int32, a, b *[32]byte) {
	for k := range l {
		a4, b4 := (*[4]byte)(a[4*k:]), (*[4]byte)(b[4*k:])
		l[k] = int32(int8(a4[0]))*int32(int8(b4[0])) + int32(int8(a4[1]))*int32(int8(b4[1])) +
			int32(int8(a4[2]))*int32(int8(b4[2])) + int32(int8(a4[3]))*int32(int8(b4[3]))
	}
}

// accLanes does acc[k] = fma(d, float32(l[k]), acc[k]) for the 8 lanes.
func accLanes(acc *[8]float32, d float32, l *[8]int32) {
	for k := range acc {
		acc[k] = fma32(d, float32(l[k]), acc[k])
	}
}

// q8Block returns the quants of a Q8_0 block.
func q8Block(b *[q8_0Bytes]byte) *[32]byte { return (*[32]byte)(b[2:]) }

// unpackQ4 writes the 32 weights of a Q4_0/Q4_1 block's 16 quant bytes in
// element order (low nibbles, then high nibbles), minus off.
func unpackQ4(q *[32]byte, qs *[16]byte, off byte) {
	for j, b := range qs {
		q[j] = b&0xf - off
		q[j+16] = b>>4 - off
	}
}

// unpackQ5 is unpackQ4 with the fifth bits from qh.
func unpackQ5(q *[32]byte, qs *[16]byte, qh uint32, off byte) {
	for j, b := range qs {
		q[j] = b&0xf | byte(qh>>uint(j)<<4)&0x10 - off
		q[j+16] = b>>4 | byte(qh>>uint(j+12))&0x10 - off
	}
}

// dotQ8_0Q8_0 is ggml_vec_dot_q8_0_q8_0 (AVX2): per block, 8 lanes of
// 4-element integer sums, each fused-multiply-added with F16(dw)*F16(dx)
// into 8 float32 accumulators, reduced by hsum8 at the end.
func dotQ8_0Q8_0(w, x []byte, nb int) float32 {
	var acc [8]float32
	var l [8]int32
	w, x = w[:nb*q8_0Bytes], x[:nb*q8_0Bytes]
	for b := range nb {
		wb := (*[q8_0Bytes]byte)(w[b*q8_0Bytes:])
		xb := (*[q8_0Bytes]byte)(x[b*q8_0Bytes:])
		lanesI8(&l, q8Block(wb), q8Block(xb))
		accLanes(&acc, f16(wb[0:])*f16(xb[0:]), &l)
	}
	return hsum8(&acc)
}

// dotQ4_0Q8_0 is ggml_vec_dot_q4_0_q8_0 (AVX2), weights nibble-8; as
// dotQ8_0Q8_0.
func dotQ4_0Q8_0(w, x []byte, nb int) float32 {
	var acc [8]float32
	var l [8]int32
	var q [32]byte
	w, x = w[:nb*q4_0Bytes], x[:nb*q8_0Bytes]
	for b := range nb {
		wb := (*[q4_0Bytes]byte)(w[b*q4_0Bytes:])
		xb := (*[q8_0Bytes]byte)(x[b*q8_0Bytes:])
		unpackQ4(&q, (*[16]byte)(wb[2:]), 8)
		lanesI8(&l, &q, q8Block(xb))
		accLanes(&acc, f16(wb[0:])*f16(xb[0:]), &l)
	}
	return hsum8(&acc)
}

// dotQ4_0Q8_0x8 is the Q4_0 product llama.cpp's AVX2 build uses for
// matrices whose row count is a multiple of 8, which it repacks at load
// (ggml_gemv_q4_0_8x8_q8_0): one float32 accumulator per row, and per block
// acc = fma(float32(sumi), F16(dw)*F16(dx), acc).
func dotQ4_0Q8_0x8(w, x []byte, nb int) float32 {
	var acc float32
	var q [32]byte
	w, x = w[:nb*q4_0Bytes], x[:nb*q8_0Bytes]
	for b := range nb {
		wb := (*[q4_0Bytes]byte)(w[b*q4_0Bytes:])
		xb := (*[q8_0Bytes]byte)(x[b*q8_0Bytes:])
		unpackQ4(&q, (*[16]byte)(wb[2:]), 8)
		xq := q8Block(xb)
		var s int32
		for j, v := range q {
			s += int32(int8(v)) * int32(int8(xq[j]))
		}
		acc = fma32(float32(s), f16(wb[0:])*f16(xb[0:]), acc)
	}
	return acc
}

// dotQ5_0Q8_0 is ggml_vec_dot_q5_0_q8_0 (AVX2), weights 5-bit value-16; as
// dotQ8_0Q8_0.
func dotQ5_0Q8_0(w, x []byte, nb int) float32 {
	var acc [8]float32
	var l [8]int32
	var q [32]byte
	w, x = w[:nb*q5_0Bytes], x[:nb*q8_0Bytes]
	for b := range nb {
		wb := (*[q5_0Bytes]byte)(w[b*q5_0Bytes:])
		xb := (*[q8_0Bytes]byte)(x[b*q8_0Bytes:])
		unpackQ5(&q, (*[16]byte)(wb[6:]), binary.LittleEndian.Uint32(wb[2:]), 16)
		lanesI8(&l, &q, q8Block(xb))
		accLanes(&acc, f16(wb[0:])*f16(xb[0:]), &l)
	}
	return hsum8(&acc)
}

// q8_1Block returns the quants of a Q8_1 block.
func q8_1Block(b *[q8_1Bytes]byte) *[32]byte { return (*[32]byte)(b[4:]) }

// dotQ4_1Q8_1 is ggml_vec_dot_q4_1_q8_1 (AVX2): unsigned nibbles in 8 lanes
// fused-multiply-added with F16(dw)*F16(dx); the offsets F16(mw)*F16(sx)
// are fused-multiply-added into a separate float32 sum, added last.
func dotQ4_1Q8_1(w, x []byte, nb int) float32 {
	var acc [8]float32
	var l [8]int32
	var q [32]byte
	var summs float32
	w, x = w[:nb*q4_1Bytes], x[:nb*q8_1Bytes]
	for b := range nb {
		wb := (*[q4_1Bytes]byte)(w[b*q4_1Bytes:])
		xb := (*[q8_1Bytes]byte)(x[b*q8_1Bytes:])
		summs = fma32(f16(wb[2:]), f16(xb[2:]), summs)
		unpackQ4(&q, (*[16]byte)(wb[4:]), 0)
		lanesI8(&l, &q, q8_1Block(xb))
		accLanes(&acc, f16(wb[0:])*f16(xb[0:]), &l)
	}
	return hsum8(&acc) + summs
}

// dotQ5_1Q8_1 is ggml_vec_dot_q5_1_q8_1 (AVX2); as dotQ4_1Q8_1.
func dotQ5_1Q8_1(w, x []byte, nb int) float32 {
	var acc [8]float32
	var l [8]int32
	var q [32]byte
	var summs float32
	w, x = w[:nb*q5_1Bytes], x[:nb*q8_1Bytes]
	for b := range nb {
		wb := (*[q5_1Bytes]byte)(w[b*q5_1Bytes:])
		xb := (*[q8_1Bytes]byte)(x[b*q8_1Bytes:])
		summs = fma32(f16(wb[2:]), f16(xb[2:]), summs)
		unpackQ5(&q, (*[16]byte)(wb[8:]), binary.LittleEndian.Uint32(wb[4:]), 0)
		lanesI8(&l, &q, q8_1Block(xb))
		accLanes(&acc, f16(wb[0:])*f16(xb[0:]), &l)
	}
	return hsum8(&acc) + summs
}

// q8K splits a Q8_K block into its scale, quants and group sums.
func q8K(xb *[q8_KBytes]byte) (d float32, qs *[QKK]byte, bsums *[32]byte) {
	return math.Float32frombits(binary.LittleEndian.Uint32(xb[0:])), (*[QKK]byte)(xb[4:]), (*[32]byte)(xb[4+QKK:])
}

// bsum32 returns the sum of the Q8_K quants of 32-element sub-block j.
func bsum32(bsums *[32]byte, j int) int32 {
	return int32(int16(u16le(bsums[4*j&31:]))) + int32(int16(u16le(bsums[(4*j+2)&31:])))
}

// kLanes adds sc times the 8 lanes of 32 weights q against 32 quants x to l.
func kLanes(l *[8]int32, sc int32, q, x *[32]byte) {
	var p [8]int32
	lanesI8(&p, q, x)
	for k := range l {
		l[k] += sc * p[k]
	}
}

// minTerms returns the four int32 lanes of Σ m_j*bsum_j of a Q4_K/Q5_K
// super-block (lane k holds sub-blocks 2k and 2k+1).
func minTerms(scales *[12]byte, bsums *[32]byte) (p [4]int32) {
	for k := range p {
		_, m0 := scaleMinK4(2*k, scales)
		_, m1 := scaleMinK4(2*k+1, scales)
		p[k] = int32(m0)*bsum32(bsums, 2*k) + int32(m1)*bsum32(bsums, 2*k+1)
	}
	return p
}

// dotQ4_KQ8_K is ggml_vec_dot_q4_K_q8_K (AVX2): per super-block, 8 int32
// lanes of Σ sc_j*(4-element sums) over the 8 sub-blocks, fused-multiply-
// added with d = x.d*F16(w.d); the mins in 4 lanes fused-multiply-added with
// -x.d*F16(w.dmin); at the end hsum8 of the first plus the pairwise sum of
// the second.
func dotQ4_KQ8_K(w, x []byte, nb int) float32 {
	var acc [8]float32
	var accM [4]float32
	var q [32]byte
	w, x = w[:nb*q4_KBytes], x[:nb*q8_KBytes]
	for b := range nb {
		wb := (*[q4_KBytes]byte)(w[b*q4_KBytes:])
		dx, xq, bsums := q8K((*[q8_KBytes]byte)(x[b*q8_KBytes:]))
		scales := (*[12]byte)(wb[4:])
		d := dx * f16(wb[0:])
		dmin := -dx * f16(wb[2:])
		for k, p := range minTerms(scales, bsums) {
			accM[k] = fma32(dmin, float32(p), accM[k])
		}
		var l [8]int32
		for c := range 4 {
			qs := (*[32]byte)(wb[16+32*c:])
			sc0, _ := scaleMinK4(2*c, scales)
			sc1, _ := scaleMinK4(2*c+1, scales)
			for j, v := range qs {
				q[j] = v & 0xf
			}
			kLanes(&l, int32(sc0), &q, (*[32]byte)(xq[64*c:]))
			for j, v := range qs {
				q[j] = v >> 4
			}
			kLanes(&l, int32(sc1), &q, (*[32]byte)(xq[64*c+32:]))
		}
		accLanes(&acc, d, &l)
	}
	return hsum8(&acc) + ((accM[0] + accM[2]) + (accM[1] + accM[3]))
}

// dotQ5_KQ8_K is ggml_vec_dot_q5_K_q8_K (AVX2): as dotQ4_KQ8_K with the
// fifth bits, except that the mins' total is fused-multiply-added into one
// float32 sum per super-block.
func dotQ5_KQ8_K(w, x []byte, nb int) float32 {
	var acc [8]float32
	var summs float32
	var q [32]byte
	w, x = w[:nb*q5_KBytes], x[:nb*q8_KBytes]
	for b := range nb {
		wb := (*[q5_KBytes]byte)(w[b*q5_KBytes:])
		dx, xq, bsums := q8K((*[q8_KBytes]byte)(x[b*q8_KBytes:]))
		scales := (*[12]byte)(wb[4:])
		qh := (*[32]byte)(wb[16:])
		d := dx * f16(wb[0:])
		dmin := -dx * f16(wb[2:])
		p := minTerms(scales, bsums)
		summs = fma32(dmin, float32((p[0]+p[2])+(p[1]+p[3])), summs)
		var l [8]int32
		for c := range 4 {
			qs := (*[32]byte)(wb[48+32*c:])
			sc0, _ := scaleMinK4(2*c, scales)
			sc1, _ := scaleMinK4(2*c+1, scales)
			for j, v := range qs {
				q[j] = v&0xf | (qh[j]>>uint(2*c)&1)<<4
			}
			kLanes(&l, int32(sc0), &q, (*[32]byte)(xq[64*c:]))
			for j, v := range qs {
				q[j] = v>>4 | (qh[j]>>uint(2*c+1)&1)<<4
			}
			kLanes(&l, int32(sc1), &q, (*[32]byte)(xq[64*c+32:]))
		}
		accLanes(&acc, d, &l)
	}
	return hsum8(&acc) + summs
}

// dotQ6_KQ8_K is ggml_vec_dot_q6_K_q8_K (AVX2): per super-block, 8 int32
// lanes (lanes 0-3 of each 32 elements take the scale of its first 16,
// lanes 4-7 of its second 16), fused-multiply-added with x.d*F16(w.d),
// reduced by hsum8.
func dotQ6_KQ8_K(w, x []byte, nb int) float32 {
	var acc [8]float32
	var q [4][32]byte
	w, x = w[:nb*q6_KBytes], x[:nb*q8_KBytes]
	for b := range nb {
		wb := (*[q6_KBytes]byte)(w[b*q6_KBytes:])
		dx, xq, _ := q8K((*[q8_KBytes]byte)(x[b*q8_KBytes:]))
		d := dx * f16(wb[208:])
		var l [8]int32
		for n := range 2 {
			ql := (*[64]byte)(wb[64*n:])
			qh := (*[32]byte)(wb[128+32*n:])
			sc := (*[8]byte)(wb[192+8*n:])
			for j := range 32 {
				h := qh[j]
				q[0][j] = ql[j]&0xf | (h&3)<<4 - 32
				q[1][j] = ql[j+32]&0xf | (h>>2&3)<<4 - 32
				q[2][j] = ql[j]>>4 | (h>>4&3)<<4 - 32
				q[3][j] = ql[j+32]>>4 | (h>>6&3)<<4 - 32
			}
			for k := range 4 {
				var p [8]int32
				lanesI8(&p, &q[k], (*[32]byte)(xq[128*n+32*k:]))
				s0, s1 := int32(int8(sc[2*k])), int32(int8(sc[2*k+1]))
				for i := range 4 {
					l[i] += s0 * p[i]
					l[i+4] += s1 * p[i+4]
				}
			}
		}
		accLanes(&acc, d, &l)
	}
	return hsum8(&acc)
}

// sgemmF32 is one element of llamafile's tinyBLAS sgemm (AVX2, FMA), which
// llama.cpp uses for F32 products over a batch of two or more tokens: 8
// lanes (element k in lane k%8) of fused multiply-adds over the row, whose
// length is a multiple of 8, reduced by hsum8.
func sgemmF32(w []byte, x []float32) float32 {
	var acc [8]float32
	w = w[:4*len(x)]
	for i := 0; i+8 <= len(x); i += 8 {
		wb := (*[32]byte)(w[4*i:])
		xb := (*[8]float32)(x[i:])
		for l := range acc {
			acc[l] = fma32(f32le(wb[4*l:]), xb[l], acc[l])
		}
	}
	return hsum8(&acc)
}

// sgemmF16 is sgemmF32 for F16 weights and F16-rounded activations (the
// products are exact).
func sgemmF16(w, x []byte, _ int) float32 {
	var acc [8]float32
	t := f16Table
	w = w[:len(x)]
	for i := 0; i+16 <= len(x); i += 16 {
		wb := (*[16]byte)(w[i:])
		xb := (*[16]byte)(x[i:])
		for l := range acc {
			acc[l] += t[u16le(wb[2*l:])] * t[u16le(xb[2*l:])]
		}
	}
	return hsum8(&acc)
}

// sgemmBF16 is sgemmF16 for BF16.
func sgemmBF16(w, x []byte, _ int) float32 {
	var acc [8]float32
	w = w[:len(x)]
	for i := 0; i+16 <= len(x); i += 16 {
		wb := (*[16]byte)(w[i:])
		xb := (*[16]byte)(x[i:])
		for l := range acc {
			acc[l] += BF16ToF32(u16le(wb[2*l:])) * BF16ToF32(u16le(xb[2*l:]))
		}
	}
	return hsum8(&acc)
}

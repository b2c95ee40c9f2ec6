package kernels

import "math"

// vExpf is e^x as ggml's AVX2 ggml_v_expf computes it, one lane: the
// polynomial approximation adapted from Arm's optimized routines (error up to
// about 1.5 ulp, not correctly rounded), with the same fused multiply-adds,
// so that the softmax inside attention and SiLU reproduce llama.cpp's bits.
func vExpf(x float32) float32 {
	const r = 0x1.8p23
	z := fma32(x, 0x1.715476p+0, r)
	n := z - r
	b := fma32(-n, 0x1.7f7d1cp-20, fma32(-n, 0x1.62e4p-1, x))
	e := math.Float32bits(z) << 23
	k := math.Float32frombits(e + 0x3f800000)
	u := b * b
	j := fma32(fma32(fma32(0x1.0e4020p-7, b, 0x1.573e2ep-5), u, fma32(0x1.555e66p-3, b, 0x1.fffdb6p-2)),
		u, float32(0x1.ffffecp-1)*b)
	an := absf(n)
	if !(an > 126) {
		return fma32(k, j, k)
	}
	var g uint32
	if n <= 0 {
		g = 0x82000000
	}
	s1 := math.Float32frombits(g + 0x7f000000)
	if an > 192 {
		return s1 * s1
	}
	s2 := math.Float32frombits(e - g)
	return fma32(s2, j, s2) * s1
}

// vSiLU is ggml_v_silu, one lane: x / (1 + vExpf(-x)).
func vSiLU(x float32) float32 { return x / (1 + vExpf(0-x)) }

// ninf is float32 -Inf.
var ninf = float32(math.Inf(-1))

// softmaxGGML replaces x with its softmax as llama.cpp's soft_max does over
// a row whose length is a multiple of 8 (its KV cache view is padded to 32
// with masked entries): chunks of 8 go through vExpf and are added with
// hsum8 into a float64 sum; the missing tail of the last chunk counts as
// exp(-inf) = 0. Then every value is multiplied by float32(1/sum).
func softmaxGGML(x []float32) {
	if len(x) == 0 {
		return
	}
	m, ok := maxVec(x) // SIMD where bitwise equal (dot_amd64.go)
	if !ok {
		m = x[0]
		for _, v := range x[1:] {
			m = max(m, v)
		}
	}
	var sum float64
	i := expChunks(x, m, &sum) // SIMD, bitwise equal (dot_amd64.go)
	if i < len(x) && len(x)-i < 8 {
		// The last chunk, partial: padded with -Inf, whose exponential is
		// the 0 the reference adds for the missing lanes. A row of 150
		// scores took 300 ns with this chunk in Go, 175 ns so.
		c := [8]float32{ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf}
		copy(c[:], x[i:])
		if expChunks(c[:], m, &sum) == 8 {
			copy(x[i:], c[:])
			i = len(x)
		}
	}
	for ; i < len(x); i += 8 {
		var c [8]float32
		for l := range min(8, len(x)-i) {
			e := vExpf(x[i+l] - m)
			x[i+l] = e
			c[l] = e
		}
		sum += float64(hsum8(&c))
	}
	s := float32(1 / sum)
	for i := scaleVec(x, s); i < len(x); i++ { // SIMD, bitwise equal (dot_amd64.go)
		x[i] *= s
	}
}

package kernels

import "math"

// RMSNorm sets dst = x / sqrt(mean(x²)+eps) * w, as ggml's rms_norm followed
// by mul: the squares (rounded to float32) are summed in float64, mean =
// float32(sum/len(x)), scale = 1/sqrt(mean+eps) in float32, dst[i] =
// (x[i]*scale)*w[i]. dst may alias x.
func RMSNorm(dst, x, w []float32, eps float32) {
	var sum float64
	for _, v := range x {
		sum += float64(v * v)
	}
	mean := float32(sum / float64(len(x)))
	scale := 1 / float32(math.Sqrt(float64(mean+eps)))
	dst, w = dst[:len(x)], w[:len(x)]
	for i, v := range x {
		dst[i] = (v * scale) * w[i]
	}
}

// Softmax replaces x with softmax(x) as ggml's soft_max: subtract the
// maximum, exponentiate in float32, sum in float64, then multiply by
// float32(1/sum). The exponential is e^v rounded to float32, as ggml's
// scalar path (attention uses ggml's vectorized exp instead, internally).
// An empty x is left alone.
func Softmax(x []float32) {
	if len(x) == 0 {
		return
	}
	m := x[0]
	for _, v := range x[1:] {
		m = max(m, v)
	}
	var sum float64
	for i, v := range x {
		e := expf(v - m)
		x[i] = e
		sum += float64(e)
	}
	s := float32(1 / sum)
	for i := range x {
		x[i] *= s
	}
}

// expf is e^v rounded to float32.
func expf(v float32) float32 { return float32(math.Exp(float64(v))) }

// SiLU returns x/(1+e^-x) in float32.
func SiLU(x float32) float32 { return x / (1 + expf(-x)) }

// SwiGLU sets dst[i] = SiLU(gate[i]) * up[i] for every i, with the SiLU of
// llama.cpp's vectorized path (ggml_v_silu: x/(1+e^-x) with ggml's
// polynomial exp, vExpf, within 1.5 ulp of e^-x). Each element depends
// only on its inputs, so rows may be processed together. For a row whose
// length is a multiple of 8 (every real model) this is llama.cpp's result
// bit for bit; for other lengths see SwiGLURow. dst may alias gate or up.
func SwiGLU(dst, gate, up []float32) {
	dst, up = dst[:len(gate)], up[:len(gate)]
	n8 := len(gate) &^ 7
	swiGLU8(dst[:n8], gate[:n8], up[:n8])
	for i := n8; i < len(gate); i++ {
		dst[i] = vSiLU(gate[i]) * up[i]
	}
}

// swiGLU8 is SwiGLU over a length that is a multiple of 8: the chunks the
// SIMD kernel takes (swigluVec: all of them where the CPU has AVX2), the
// others in Go.
func swiGLU8(dst, gate, up []float32) {
	for i := swigluVec(dst, gate, up); i < len(gate); i++ {
		dst[i] = vSiLU(gate[i]) * up[i]
	}
}

// SwiGLURow is SwiGLU over exactly one row as llama.cpp computes it: the
// elements in whole chunks of 8 from the start of the row as SwiGLU, the
// last len%8 with exp rounded to float32 (as SiLU). Call it once per row
// to reproduce llama.cpp when the row length is not a multiple of 8 (such as
// the 172-wide FFN of the tiny llama2.c models). dst may alias gate or up.
func SwiGLURow(dst, gate, up []float32) {
	dst, up = dst[:len(gate)], up[:len(gate)]
	n8 := len(gate) &^ 7
	swiGLU8(dst[:n8], gate[:n8], up[:n8])
	for i := n8; i < len(gate); i++ {
		dst[i] = SiLU(gate[i]) * up[i]
	}
}

// Add sets dst[i] += x[i] for i < len(dst).
func Add(dst, x []float32) {
	x = x[:len(dst)]
	for i := range dst {
		dst[i] += x[i]
	}
}

//go:build amd64 && !purego

package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// refSwiGLU is SwiGLU one lane at a time through vExpf, the Go reference.
func refSwiGLU(dst, gate, up []float32) {
	for i, g := range gate {
		dst[i] = vSiLU(g) * up[i]
	}
}

// TestSwiGLUAsm runs the AVX2 SwiGLU against the Go reference bit for bit,
// over ordinary values, the slow-path range of vExpf (|x| near and beyond
// 87 and 126·ln2), the specials, and lengths that leave a tail.
func TestSwiGLUAsm(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 on this CPU")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	specials := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 87.3, -87.3, 88.7, -88.7, 89, -89, 104, -104,
		130, -130, 200, -200, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-40, -1e-40, 3e38, -3e38}
	for trial := range 400 {
		n := 8 * (1 + rng.IntN(64))
		if trial%4 == 3 {
			n += rng.IntN(8)
		}
		gate, up := make([]float32, n), make([]float32, n)
		for i := range gate {
			switch rng.IntN(10) {
			case 0:
				gate[i] = specials[rng.IntN(len(specials))]
			case 1:
				gate[i] = float32(rng.NormFloat64() * 60)
			case 2:
				gate[i] = math.Float32frombits(rng.Uint32())
			default:
				gate[i] = float32(rng.NormFloat64() * 4)
			}
			up[i] = float32(rng.NormFloat64() * 3)
		}
		want := make([]float32, n)
		refSwiGLU(want, gate, up)
		got := make([]float32, n)
		SwiGLU(got, gate, up)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(want[i] != want[i] && got[i] != got[i]) {
				t.Fatalf("n=%d i=%d gate %v up %v: AVX2 %#08x, reference %#08x", n, i, gate[i], up[i], math.Float32bits(got[i]), math.Float32bits(want[i]))
			}
		}
		// In place, as the model calls it.
		SwiGLU(gate, gate, up)
		for i := range want {
			if math.Float32bits(gate[i]) != math.Float32bits(got[i]) {
				t.Fatalf("n=%d i=%d: in place %#08x, out of place %#08x", n, i, math.Float32bits(gate[i]), math.Float32bits(got[i]))
			}
		}
	}
}

// TestF32sToF16 checks F32sToF16 (VCVTPS2PH) against F32ToF16 bit for bit on
// a stride through every float32 bit pattern, the specials and the rounding
// boundaries around every half.
func TestF32sToF16(t *testing.T) {
	var x []float32
	for h := range uint32(1 << 16) {
		f := math.Float32bits(F16ToF32(uint16(h)))
		for _, d := range []uint32{0, 1, 0xfff, 0x1000, 0x1001, 0x1fff} {
			x = append(x, math.Float32frombits(f+d), math.Float32frombits(f-d))
		}
	}
	for b := uint64(0); b < 1<<32; b += 65537 {
		x = append(x, math.Float32frombits(uint32(b)))
	}
	x = append(x, math.Float32frombits(0x7f800000), math.Float32frombits(0xff800000),
		math.Float32frombits(0x7fc00001), math.Float32frombits(0xffbfffff), math.Float32frombits(0x7f800001), 1)
	got := make([]uint16, len(x))
	F32sToF16(got, x)
	for i, v := range x {
		if want := F32ToF16(v); got[i] != want {
			t.Fatalf("%#08x: F16C %#04x, reference %#04x", math.Float32bits(v), got[i], want)
		}
	}
}

// refSoftmax is softmaxGGML one lane at a time through vExpf, the Go
// reference of expChunks.
func refSoftmax(x []float32) {
	m := x[0]
	for _, v := range x[1:] {
		m = max(m, v)
	}
	var sum float64
	for i := 0; i < len(x); i += 8 {
		var c [8]float32
		for l := range min(8, len(x)-i) {
			x[i+l] = vExpf(x[i+l] - m)
			c[l] = x[i+l]
		}
		sum += float64(hsum8(&c))
	}
	s := float32(1 / sum)
	for i := range x {
		x[i] *= s
	}
}

// TestSoftmaxAsm runs softmaxGGML, whose whole chunks of 8 go through the
// AVX2 exponentials, against the Go reference bit for bit: ordinary scores,
// scores far enough below the maximum for vExpf's slow path (VEXPFSLOW),
// lengths that leave a partial last chunk (padded with -Inf for the
// assembly), and masked (-Inf), infinite and NaN scores (NaNs compare
// alike, whatever their bits).
func TestSoftmaxAsm(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 on this CPU")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := range 400 {
		n := 1 + rng.IntN(200)
		x := make([]float32, n)
		for i := range x {
			switch rng.IntN(12) {
			case 0:
				x[i] = float32(-80 - rng.Float64()*100) // exp in or past the slow path
			case 1:
				x[i] = float32(rng.NormFloat64() * 40)
			default:
				x[i] = float32(rng.NormFloat64() * 3)
			}
		}
		switch trial % 50 { // masked, infinite and NaN scores
		case 1:
			x[rng.IntN(n)] = float32(math.Inf(-1))
		case 2:
			x[rng.IntN(n)] = float32(math.Inf(1))
		case 3:
			x[rng.IntN(n)] = float32(math.NaN())
		case 4:
			for i := range x {
				x[i] = float32(math.Inf(-1))
			}
		}
		want := append([]float32(nil), x...)
		refSoftmax(want)
		softmaxGGML(x)
		for i := range want {
			if math.Float32bits(x[i]) != math.Float32bits(want[i]) && !(x[i] != x[i] && want[i] != want[i]) { // NaNs alike
				t.Fatalf("trial %d n=%d i=%d: SIMD %#08x, reference %#08x", trial, n, i, math.Float32bits(x[i]), math.Float32bits(want[i]))
			}
		}
	}
}

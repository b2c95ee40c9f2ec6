package kernels

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// The tests in this file pin the operation order that makes the kernels
// agree with llama.cpp bit for bit: each uses values for which another
// order (or an unfused multiply-add) gives a different float32 result.

func TestFMA32(t *testing.T) {
	// 1+2^-12 squared is 1+2^-11+2^-24: the product alone rounds to
	// 1+2^-11 (tie to even), so a*b-c loses the 2^-24 the fused form keeps.
	a := float32(1 + 0x1p-12)
	c := float32(1 + 0x1p-11)
	if got := fma32(a, a, -c); got != 0x1p-24 {
		t.Errorf("fma32 = %g, want 2^-24", got)
	}
	if unfused := float32(a*a) - c; unfused != 0 {
		t.Errorf("unfused = %g, want 0 (test premise)", unfused)
	}
}

// TestFMA32RoundsOnce checks fma32 against a*b+c computed exactly and
// rounded once to float32: products on float32 ties with a tiny c of
// either sign (where rounding through float64 first goes wrong), small
// integers times scales (the quantized kernels' lane sums times d),
// random values over the whole exponent range, subnormal results, and
// sums that cancel.
func TestFMA32RoundsOnce(t *testing.T) {
	exact := func(a, b, c float32) float32 {
		x := new(big.Float).SetPrec(2000).SetFloat64(float64(a))
		x.Mul(x, new(big.Float).SetPrec(2000).SetFloat64(float64(b)))
		x.Add(x, new(big.Float).SetPrec(2000).SetFloat64(float64(c)))
		f, _ := x.Float32()
		return f
	}
	check := func(a, b, c float32) {
		t.Helper()
		if got, want := fma32(a, b, c), exact(a, b, c); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("fma32(%g, %g, %g) = %#08x, want %#08x", a, b, c, math.Float32bits(got), math.Float32bits(want))
		}
	}
	check(3, 1+0x1p-23, -0x1p-60) // the tie: 0x40400001, not 0x40400002
	check(3, 1+0x1p-23, 0x1p-60)
	check(-3, 1+0x1p-23, 0x1p-60)
	rng := rand.New(rand.NewPCG(23, 24))
	randF := func(lo, hi int) float32 {
		return float32(math.Ldexp(rng.Float64()+0.5, rng.IntN(hi-lo)+lo)) * float32(1-2*rng.IntN(2))
	}
	for range 200000 {
		switch rng.IntN(4) {
		case 0: // an odd significand times 3 is a tie half the time
			a := float32(1+2*rng.IntN(1<<22)) * 0x1p-23
			check(a, 3, randF(-80, -20))
		case 1: // integer lane sums times scales, into an accumulator
			check(float32(rng.IntN(1<<20)-1<<19), randF(-30, 0), randF(-30, 10))
		case 2: // anything
			check(randF(-140, 120), randF(-140, 120), randF(-149, 127))
		default: // near cancellation, and subnormal results
			a, b := randF(-70, -60), randF(-70, -60)
			check(a, b, -float32(float64(a)*float64(b)))
		}
	}
}

func TestHorizontalSums(t *testing.T) {
	// With one huge lane and small ones, each association order leaves a
	// different set of small lanes absorbed into the huge one.
	const big = 0x1p25 // ulp 4: adding 1 is lost, adding 3 rounds to 4
	// hsum8: ((a4+a0)+(a6+a2)) + ((a5+a1)+(a7+a3)).
	// The documented tree, checked on random values of mixed magnitude.
	tree8 := func(a [8]float32) float32 {
		r := [4]float32{a[4] + a[0], a[5] + a[1], a[6] + a[2], a[7] + a[3]}
		return (r[0] + r[2]) + (r[1] + r[3])
	}
	rng := rand.New(rand.NewPCG(21, 22))
	for range 1000 {
		var a [8]float32
		for i := range a {
			a[i] = float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(40)-20)))
		}
		if hsum8(&a) != tree8(a) {
			t.Fatalf("hsum8(%v) = %v, want %v", a, hsum8(&a), tree8(a))
		}
	}
	// The tree matters: a sequential sum of these gives another result.
	a := [8]float32{big, 3, -big, 3, 1, 1, 1, 1}
	seq := float32(0)
	for _, v := range a {
		seq += v
	}
	if hsum8(&a) == seq {
		t.Errorf("hsum8 equals the sequential sum %v on a case chosen to differ", seq)
	}
	// reduce32: lanes (v0+v2)+(v1+v3) per lane, then (t0+t1)+(t2+t3)
	// with t_l = lane l + lane l+4.
	tree32 := func(x [32]float32) float32 {
		var v [8]float32
		for l := range v {
			v[l] = (x[l] + x[16+l]) + (x[8+l] + x[24+l])
		}
		return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]))
	}
	for range 1000 {
		var x [32]float32
		for i := range x {
			x[i] = float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(40)-20)))
		}
		if reduce32(&x) != tree32(x) {
			t.Fatalf("reduce32 differs from its tree")
		}
	}
	var x [32]float32
	x[0], x[16], x[1], x[4] = big, -big, 3, 3
	if got := reduce32(&x); got != 6 {
		t.Errorf("reduce32 = %v, want 6 (big lanes cancel before the small ones are added)", got)
	}
}

// TestDotF32Order checks ggml_vec_dot_f32's structure: 32 fused lanes and
// unfused leftovers.
func TestDotF32Order(t *testing.T) {
	// 33 elements: element 0 in lane 0 (fused), element 32 a leftover.
	a := float32(1 + 0x1p-12)
	w := make([]float32, 33)
	x := make([]float32, 33)
	w[0], x[0] = a, a // lane 0: fma(a, a, 0) = a*a rounded
	w[32], x[32] = a, a
	got := dotF32(f32Bytes(w), x)
	sq := float32(a * a)
	if want := sq + sq; got != want {
		t.Errorf("dotF32 = %v, want %v", got, want)
	}
	// A lane that already holds -c: fused keeps 2^-24.
	w2 := make([]float32, 64)
	x2 := make([]float32, 64)
	w2[0], x2[0] = -float32(1+0x1p-11), 1
	w2[32], x2[32] = a, a
	if got := dotF32(f32Bytes(w2), x2); got != 0x1p-24 {
		t.Errorf("dotF32 lane fma = %g, want 2^-24", got)
	}
	// The same as a leftover (n = 33, lane sum -c) loses it.
	w3 := append([]float32{}, w2[:32]...)
	x3 := append([]float32{}, x2[:32]...)
	w3, x3 = append(w3, a), append(x3, a)
	if got := dotF32(f32Bytes(w3), x3); got != 0 {
		t.Errorf("dotF32 leftover = %g, want 0 (unfused)", got)
	}
}

func TestVExpf(t *testing.T) {
	for _, c := range []struct{ x, want float32 }{
		{0, 1},
		{float32(math.Inf(-1)), 0},
		{float32(math.Inf(1)), float32(math.Inf(1))},
		{-200, 0},
		{100, float32(math.Inf(1))},
	} {
		if got := vExpf(c.x); got != c.want {
			t.Errorf("vExpf(%g) = %g, want %g", c.x, got, c.want)
		}
	}
	if v := vExpf(float32(math.NaN())); v == v {
		t.Errorf("vExpf(NaN) = %g", v)
	}
	// Within 1.5 ulp (plus rounding) of e^x over the whole useful range,
	// including the scaled paths near under- and overflow.
	ulp := func(f float32) float64 {
		return float64(math.Nextafter32(f, float32(math.Inf(1))) - f)
	}
	worst := 0.0
	for x := float32(-103); x < 88.7; x += 0.0137 {
		got := vExpf(x)
		want := math.Exp(float64(x))
		if want < 0x1p-126 {
			continue // subnormal results: absolute error only
		}
		e := math.Abs(float64(got)-want) / ulp(float32(want))
		worst = max(worst, e)
		if e > 2 {
			t.Fatalf("vExpf(%g) = %g, e^x = %g (%.2f ulp)", x, got, want, e)
		}
	}
	t.Logf("worst error %.2f ulp", worst)
}

func TestSoftmaxGGML(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	for _, n := range []int{1, 7, 8, 9, 32, 100} {
		x := randNormal(rng, n, 3)
		want := append([]float32{}, x...)
		Softmax(want)
		softmaxGGML(x)
		var sum float64
		for i := range x {
			sum += float64(x[i])
			if d := math.Abs(float64(x[i] - want[i])); d > 4e-7*float64(want[i])+1e-30 {
				t.Fatalf("n=%d: element %d = %g, Softmax %g", n, i, x[i], want[i])
			}
		}
		if math.Abs(sum-1) > 1e-6 {
			t.Errorf("n=%d: sum %g", n, sum)
		}
	}
}

func TestSwiGLURow(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	gate, up := randNormal(rng, 172, 3), randNormal(rng, 172, 1)
	a, b := make([]float32, 172), make([]float32, 172)
	SwiGLU(a, gate, up)
	SwiGLURow(b, gate, up)
	if !bitsEqual(a[:168], b[:168]) {
		t.Error("SwiGLURow differs from SwiGLU in the chunks of 8")
	}
	for i := 168; i < 172; i++ {
		if b[i] != SiLU(gate[i])*up[i] {
			t.Errorf("SwiGLURow tail element %d = %g, want SiLU*up", i, b[i])
		}
	}
	// Element-wise: a row's result does not depend on its position.
	c := make([]float32, 3)
	SwiGLU(c, gate[5:8], up[5:8])
	if !bitsEqual(c, a[5:8]) {
		t.Error("SwiGLU depends on the position in the slice")
	}
}

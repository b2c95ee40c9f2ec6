//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// bf16Kind draws one bf16 of the given kind: 0 random normal at one of a
// few scales, 1 subnormal, 2 zero of either sign, 3 near overflow (the two
// largest binades), 4 any of these, 5 standard normal.
func bf16Kind(rng *rand.Rand, kind int) uint16 {
	if kind == 4 {
		kind = []int{0, 0, 0, 0, 1, 2, 3}[rng.IntN(7)]
	}
	sign := uint16(rng.IntN(2)) << 15
	switch kind {
	case 1:
		return sign | uint16(1+rng.IntN(0x7f))
	case 2:
		return sign
	case 3:
		return sign | uint16(0x7f00+rng.IntN(0x80))
	case 5:
		return F32ToBF16(float32(rng.NormFloat64()))
	}
	scales := []float64{1, 1e-3, 1e3, 1e-19, 1e-38, 1e18, 1e36}
	return F32ToBF16(float32(rng.NormFloat64() * scales[rng.IntN(len(scales))]))
}

// bf16Row returns n bf16s of the given kind (see bf16Kind), little endian.
func bf16Row(rng *rand.Rand, n, kind int) []byte {
	b := make([]byte, 2*n)
	for i := range n {
		binary.LittleEndian.PutUint16(b[2*i:], bf16Kind(rng, kind))
	}
	return b
}

// checkBF16Asm fails t unless dotBF16Asm, sgemmBF16Asm and
// sgemmBF16X32Asm (on x widened to float32) give the bits of dotBF16 and
// sgemmBF16 on w and x.
func checkBF16Asm(t *testing.T, w, x []byte, what string) {
	t.Helper()
	if got, want := dotBF16Asm(w, x), dotBF16(w, x); math.Float32bits(got) != math.Float32bits(want) {
		t.Fatalf("%s: dotBF16Asm %g (%#08x), dotBF16 %g (%#08x)", what, got, math.Float32bits(got), want, math.Float32bits(want))
	}
	want := sgemmBF16(w, x, 0)
	if got := sgemmBF16Asm(w, x, 0); math.Float32bits(got) != math.Float32bits(want) {
		t.Fatalf("%s: sgemmBF16Asm %g (%#08x), sgemmBF16 %g (%#08x)", what, got, math.Float32bits(got), want, math.Float32bits(want))
	}
	x32 := make([]byte, 4*(len(x)/2))
	for i := range len(x) / 2 {
		binary.LittleEndian.PutUint32(x32[4*i:], uint32(u16le(x[2*i:]))<<16)
	}
	if got := sgemmBF16X32Asm(w, x32, 0); math.Float32bits(got) != math.Float32bits(want) {
		t.Fatalf("%s: sgemmBF16X32Asm %g (%#08x), sgemmBF16 %g (%#08x)", what, got, math.Float32bits(got), want, math.Float32bits(want))
	}
}

// TestBF16Asm checks the AVX2 BF16 row dots bit for bit against the
// references on random rows of many lengths (steps of 32 and 8 with and
// without leftovers) and kinds of values: normal at various scales, where
// the products underflow or overflow, subnormals, signed zeros.
func TestBF16Asm(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 on this CPU")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	lengths := []int{0, 1, 7, 8, 15, 16, 31, 32, 33, 63, 64, 100, 2048, 2051}
	for _, n := range lengths {
		for kw := range 5 {
			for kx := range 5 {
				for rep := range 8 {
					w, x := bf16Row(rng, n, kw), bf16Row(rng, n, kx)
					checkBF16Asm(t, w, x, fmt.Sprintf("n=%d kinds %d,%d rep %d", n, kw, kx, rep))
				}
			}
		}
	}
	// Every step of 32 the same, so that the lanes differ only by their
	// position.
	for _, n := range []int{32, 64, 2048, 2051} {
		w, x := bf16Row(rng, n, 0), bf16Row(rng, n, 0)
		for i := 0; i < 2*n; i += 64 {
			copy(w[i:], w[:min(64, 2*n-i)])
			copy(x[i:], x[:min(64, 2*n-i)])
		}
		checkBF16Asm(t, w, x, "repeated")
	}
	// A longer w than x: both use w's first len(x) bytes.
	w, x := bf16Row(rng, 200, 4), bf16Row(rng, 100, 0)
	checkBF16Asm(t, w, x, "long w")
	// Odd byte lengths: the last byte is not an element.
	checkBF16Asm(t, w[:65], x[:65], "odd bytes")
}

// TestBF16AsmNaN checks NaN inputs. With one NaN in the row (and no
// infinities) the result is that NaN, quieted, bitwise as the reference's.
// With two different NaN payloads the result is NaN, but which payload
// survives depends on operand order, which the Go compiler chooses freely
// for the reference's commutative operations, so those bits may differ and
// are only counted.
func TestBF16AsmNaN(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 on this CPU")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	differ, multi := 0, 0
	for rep := range 3000 {
		n := 32 + rng.IntN(100)
		w, x := bf16Row(rng, n, 5), bf16Row(rng, n, 5)
		nans := 1 + rep%3
		for range nans {
			b := w
			if rng.IntN(2) == 1 {
				b = x
			}
			nan := uint16(rng.IntN(2))<<15 | 0x7f80 | uint16(1+rng.IntN(0x7f))
			binary.LittleEndian.PutUint16(b[2*rng.IntN(n):], nan)
		}
		pairs := [][2]float32{
			{dotBF16Asm(w, x), dotBF16(w, x)},
			{sgemmBF16Asm(w, x, 0), sgemmBF16(w, x, 0)},
		}
		for _, p := range pairs {
			got, want := math.Float32bits(p[0]), math.Float32bits(p[1])
			if math.IsNaN(float64(p[0])) != math.IsNaN(float64(p[1])) || nans == 1 && got != want {
				t.Fatalf("%d NaN inputs: asm %#08x, reference %#08x", nans, got, want)
			}
			if nans > 1 {
				multi++
				if got != want {
					differ++
				}
			}
		}
	}
	t.Logf("NaN payloads differ in %d of %d results from rows with 2 or 3 NaNs", differ, multi)
}

// FuzzBF16Asm checks the AVX2 BF16 row dots bit for bit against the
// references on any bytes: the first half of the input is w, the second x;
// NaN encodings are turned into finite values (the exponent's lowest bit
// cleared), infinities are kept.
func FuzzBF16Asm(f *testing.F) {
	if !useAVX2 {
		f.Skip("no AVX2 on this CPU")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 8, 32, 33, 64, 100} {
		f.Add(append(bf16Row(rng, n, 4), bf16Row(rng, n, 4)...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b := make([]byte, len(data)&^3)
		copy(b, data)
		for i := 0; i < len(b); i += 2 {
			if h := binary.LittleEndian.Uint16(b[i:]); h&0x7f80 == 0x7f80 && h&0x7f != 0 {
				binary.LittleEndian.PutUint16(b[i:], h&^0x80)
			}
		}
		checkBF16Asm(t, b[:len(b)/2], b[len(b)/2:], "fuzz")
	})
}

// BenchmarkBF16 times the BF16 row dots on a 2048-element row, reference
// and AVX2.
func BenchmarkBF16(b *testing.B) {
	if !useAVX2 {
		b.Skip("no AVX2 on this CPU")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	w, x := bf16Row(rng, 2048, 0), bf16Row(rng, 2048, 0)
	var sink float32
	for _, bm := range []struct {
		name string
		f    func(w, x []byte) float32
	}{
		{"dot/ref", dotBF16},
		{"dot/asm", dotBF16Asm},
		{"sgemm/ref", func(w, x []byte) float32 { return sgemmBF16(w, x, 0) }},
		{"sgemm/asm", func(w, x []byte) float32 { return sgemmBF16Asm(w, x, 0) }},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(len(w) + len(x)))
			for b.Loop() {
				sink += bm.f(w, x)
			}
		})
	}
	_ = sink
}

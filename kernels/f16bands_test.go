package kernels

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// checkF16Wide multiplies a random F16 matrix of rows x cols, Packed (in
// bands where the CPU packs wide F16 matrices), by one token's activations
// and compares every row with the reference dot of its halves, bitwise (a
// NaN matching any NaN). raw fills the weights with halves of every kind
// (finiteHalf: subnormal, huge) and puts Inf, NaN and huge activations in.
func checkF16Wide(t *testing.T, p *Pool, rng *rand.Rand, rows, cols int, raw bool) {
	t.Helper()
	w := randMatrix(t, rng, F16, rows, cols)
	x := randNormal(rng, cols, 1)
	if raw {
		for i := range rows * cols {
			binary.LittleEndian.PutUint16(w.Data[2*i:], finiteHalf(rng))
		}
		for range 3 {
			x[rng.IntN(cols)] = []float32{float32(math.Inf(1)), float32(math.NaN()), 0x1p20, -0x1p-20}[rng.IntN(4)]
		}
	}
	got := make([]float32, rows)
	MatVec(p, got, w.Packed(), x)
	xh := make([]byte, 2*cols)
	for i, v := range x {
		binary.LittleEndian.PutUint16(xh[2*i:], F32ToF16(v))
	}
	for r := range rows {
		want := dotF16(w.Row(r), xh)
		if math.Float32bits(got[r]) != math.Float32bits(want) && !(got[r] != got[r] && want != want) {
			t.Fatalf("%dx%d (raw %v): row %d = %g (%#08x), reference %g (%#08x)", rows, cols, raw, r,
				got[r], math.Float32bits(got[r]), want, math.Float32bits(want))
		}
	}
}

// TestF16Wide checks one token's products of F16 matrices wider than
// f16BandsFrom (one band, several, the last narrower) against the
// reference, on the pool and inline.
func TestF16Wide(t *testing.T) {
	rng := rand.New(rand.NewPCG(71, 72))
	p := NewPool(2)
	defer p.Close()
	for _, cols := range []int{f16BandsFrom + 32, f16Band, f16OneBand, f16OneBand + 32, 2*f16Band + 3*32} {
		for _, rows := range []int{16, 48, 256} {
			for _, pool := range []*Pool{nil, p} {
				checkF16Wide(t, pool, rng, rows, cols, false)
				checkF16Wide(t, pool, rng, rows, cols, true)
			}
		}
	}
}

// FuzzF16Wide is the differential fuzz of wide F16 products (see
// checkF16Wide).
func FuzzF16Wide(f *testing.F) {
	f.Add(uint64(1), uint8(0), uint16(66), false)
	f.Add(uint64(2), uint8(2), uint16(260), true)
	f.Fuzz(func(t *testing.T, seed uint64, groups uint8, steps uint16, raw bool) {
		rng := rand.New(rand.NewPCG(seed, 73))
		rows := 16 * (1 + int(groups)%4)
		cols := 32 * (1 + int(steps)%(2*f16Band/32+8)) // one band to three
		checkF16Wide(t, nil, rng, rows, cols, raw)
	})
}

// TestQuantizeF16Asm checks quantizeF16Impl (with F16C where the CPU has
// it) against the plain rounding to halves, byte for byte.
func TestQuantizeF16Asm(t *testing.T) {
	rng := rand.New(rand.NewPCG(74, 75))
	ref := func(y []byte, x []float32) {
		for i, v := range x {
			binary.LittleEndian.PutUint16(y[2*i:], F32ToF16(v))
		}
	}
	for _, nb := range []int{0, 1, 2, 3, 7, 64} {
		for rep := range 50 {
			x := quantCase(rng, nb, rep%2 == 1)
			x = append(x, x[:min(rep%7, len(x))]...) // lengths not a multiple of 8
			checkQuantizer(t, x, 1, 2, ref, quantizeF16Impl)
		}
	}
}

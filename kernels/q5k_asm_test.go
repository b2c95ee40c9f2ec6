//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// q5kNormalHalf returns the bits of a random finite normal half of either
// sign (exponent field 1..30).
func q5kNormalHalf(rng *rand.Rand) uint16 {
	return uint16(rng.IntN(2))<<15 | uint16(1+rng.IntN(30))<<10 | uint16(rng.IntN(1024))
}

// q5kWeights returns nb random Q5_K blocks. Each block independently takes
// random bytes or one of the extremes for its quants (qs), its fifth bits
// (qh) and its scales (all zero, all ones, random), and for d and dmin a
// random finite normal half or one of the extremes (largest, smallest
// normal, either sign).
func q5kWeights(rng *rand.Rand, nb int) []byte {
	w := make([]byte, nb*q5_KBytes)
	fill := func(b []byte) {
		switch rng.IntN(4) {
		case 0:
			clear(b)
		case 1:
			for i := range b {
				b[i] = 0xff
			}
		default:
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
		}
	}
	half := func() uint16 {
		switch rng.IntN(8) {
		case 0:
			return 0x7bff // largest finite
		case 1:
			return 0xfbff
		case 2:
			return 0x0400 // smallest normal
		case 3:
			return 0x8400
		default:
			return q5kNormalHalf(rng)
		}
	}
	for b := range nb {
		wb := w[b*q5_KBytes : (b+1)*q5_KBytes]
		binary.LittleEndian.PutUint16(wb[0:], half())
		binary.LittleEndian.PutUint16(wb[2:], half())
		fill(wb[4:16])   // scales and mins
		fill(wb[16:48])  // qh
		fill(wb[48:176]) // qs
	}
	return w
}

// q5kActs returns nb Q8_K blocks quantized by quantizeQ8_K from float32
// activations: per block random normals scaled by 2^k (k in [-40, 40]), a
// zero block, a constant block (every quant -127), random signs of one
// value (quants ±127), or a single spike.
func q5kActs(rng *rand.Rand, nb int) []byte {
	xf := make([]float32, nb*QKK)
	for b := range nb {
		xb := xf[b*QKK : (b+1)*QKK]
		s := math.Ldexp(1, rng.IntN(81)-40)
		switch rng.IntN(8) {
		case 0:
			// zero block
		case 1:
			for i := range xb {
				xb[i] = float32(s)
			}
		case 2:
			for i := range xb {
				xb[i] = float32(s * float64(2*rng.IntN(2)-1))
			}
		case 3:
			xb[rng.IntN(QKK)] = float32(-s)
		default:
			for i := range xb {
				xb[i] = float32(rng.NormFloat64() * s)
			}
		}
	}
	x := make([]byte, nb*q8_KBytes)
	quantizeQ8_K(x, xf)
	return x
}

// q5kRawActs returns nb Q8_K blocks of random bytes (quants including
// -128, group sums unrelated to the quants) with a finite float32 scale:
// the kernel is exact for any block contents, not only quantizeQ8_K's.
func q5kRawActs(rng *rand.Rand, nb int) []byte {
	x := make([]byte, nb*q8_KBytes)
	for i := range x {
		x[i] = byte(rng.Uint32())
	}
	for b := range nb {
		d := float32(rng.NormFloat64() * math.Ldexp(1, rng.IntN(41)-27))
		binary.LittleEndian.PutUint32(x[b*q8_KBytes:], math.Float32bits(d))
	}
	return x
}

// q5kCheck fails unless dotQ5_KQ8_KAsm and dotQ5_KQ8_K agree bit for bit
// (two NaNs agree whatever their payloads).
func q5kCheck(t testing.TB, w, x []byte, nb int) {
	t.Helper()
	want, got := dotQ5_KQ8_K(w, x, nb), dotQ5_KQ8_KAsm(w, x, nb)
	if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
		t.Fatalf("%d blocks: asm %g (%#08x), reference %g (%#08x)",
			nb, got, math.Float32bits(got), want, math.Float32bits(want))
	}
}

// TestQ5KAsm checks the AVX2 Q5_K x Q8_K dot against the reference bit for
// bit: quantized normal rows, random blocks with extreme fields, and raw
// activation bytes, for 1 to 8 blocks.
func TestQ5KAsm(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2+FMA+F16C")
	}
	rng := rand.New(rand.NewPCG(55, 5))
	t.Run("quantized", func(t *testing.T) {
		for nb := 1; nb <= 8; nb++ {
			for range 50 {
				wf := randNormal(rng, nb*QKK, math.Ldexp(1, rng.IntN(20)-10))
				w := Quantize(nil, Q5_K, wf)
				q5kCheck(t, w, q5kActs(rng, nb), nb)
			}
		}
	})
	t.Run("random", func(t *testing.T) {
		for nb := 1; nb <= 8; nb++ {
			for range 500 {
				q5kCheck(t, q5kWeights(rng, nb), q5kActs(rng, nb), nb)
			}
		}
	})
	t.Run("raw", func(t *testing.T) {
		for nb := 1; nb <= 8; nb++ {
			for range 100 {
				q5kCheck(t, q5kWeights(rng, nb), q5kRawActs(rng, nb), nb)
			}
		}
	})
	t.Run("extremes", func(t *testing.T) {
		// Every combination of all-zero/all-ones qs, qh and scales, the
		// largest and smallest normal d and dmin of both signs, against
		// activations of every quant -127, +127, or the -128 extreme.
		halves := []uint16{0x7bff, 0xfbff, 0x0400, 0x8400, 0x3c00}
		for mask := range 8 {
			for _, d := range halves {
				for _, dmin := range halves {
					w := make([]byte, q5_KBytes)
					binary.LittleEndian.PutUint16(w[0:], d)
					binary.LittleEndian.PutUint16(w[2:], dmin)
					for i, r := range [][2]int{{4, 16}, {16, 48}, {48, 176}} {
						if mask>>i&1 != 0 {
							for j := r[0]; j < r[1]; j++ {
								w[j] = 0xff
							}
						}
					}
					for _, q := range []byte{0x81, 0x7f, 0x80, 0} {
						x := make([]byte, q8_KBytes)
						binary.LittleEndian.PutUint32(x, math.Float32bits(0x1p-7))
						for j := 4; j < 4+QKK; j++ {
							x[j] = q
						}
						for g := range QKK / 16 {
							binary.LittleEndian.PutUint16(x[4+QKK+2*g:], uint16(16*int16(int8(q))))
						}
						q5kCheck(t, w, x, 1)
					}
				}
			}
		}
	})
}

// FuzzQ5KAsm checks the AVX2 Q5_K x Q8_K dot against the reference bit for
// bit on blocks made from raw bytes: data[0] picks the block count (1..8)
// and a power-of-two scale for the activations; the weights are the next
// bytes (repeated as needed) with any Inf/NaN F16 scale made finite; the
// activations are quantizeQ8_K of the following bytes read as int8/8
// times that scale.
func FuzzQ5KAsm(f *testing.F) {
	if !useAVX2 {
		f.Skip("no AVX2+FMA+F16C")
	}
	f.Add([]byte{0})
	f.Add([]byte{7, 0xff})
	f.Add([]byte{0x83, 1, 2, 3, 0x80, 0x7f, 0xfe})
	seed := make([]byte, 1+3*q5_KBytes+3*QKK)
	for i := range seed {
		seed[i] = byte(i * 37)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		nb := 1 + int(data[0]&7)
		scale := math.Ldexp(1, int(data[0]>>3)-19)
		src := data[1:]
		at := func(i int) byte {
			if len(src) == 0 {
				return 0
			}
			return src[i%len(src)]
		}
		w := make([]byte, nb*q5_KBytes)
		for i := range w {
			w[i] = at(i)
		}
		for b := range nb {
			for _, o := range []int{b * q5_KBytes, b*q5_KBytes + 2} {
				if h := binary.LittleEndian.Uint16(w[o:]); h&0x7c00 == 0x7c00 {
					binary.LittleEndian.PutUint16(w[o:], h&^0x4000)
				}
			}
		}
		xf := make([]float32, nb*QKK)
		for i := range xf {
			xf[i] = float32(float64(int8(at(len(w)+i))) / 8 * scale)
		}
		x := make([]byte, nb*q8_KBytes)
		quantizeQ8_K(x, xf)
		q5kCheck(t, w, x, nb)
	})
}

// q5kSink keeps the benchmarked results alive.
var q5kSink float32

// BenchmarkQ5K times one 2048-column Q5_K row (8 super-blocks) against
// Q8_K activations: the reference and the AVX2 kernel.
func BenchmarkQ5K(b *testing.B) {
	const nb = 8
	rng := rand.New(rand.NewPCG(1, 2))
	w := Quantize(nil, Q5_K, randNormal(rng, nb*QKK, 0.05))
	x := q5kActs(rng, nb)
	b.Run("ref", func(b *testing.B) {
		for b.Loop() {
			q5kSink += dotQ5_KQ8_K(w, x, nb)
		}
	})
	b.Run("asm", func(b *testing.B) {
		if !useAVX2 {
			b.Skip("no AVX2+FMA+F16C")
		}
		for b.Loop() {
			q5kSink += dotQ5_KQ8_KAsm(w, x, nb)
		}
	})
}

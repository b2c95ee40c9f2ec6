//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// q4k512Weights returns nb random Q4_K blocks. Each block independently
// takes random bytes or one of the extremes for its scales and mins and for
// its quants (all 0x00, all 0xff, random), and for d and dmin a random
// finite normal half or one of the extremes (largest, smallest normal,
// either sign).
func q4k512Weights(rng *rand.Rand, nb int) []byte {
	w := make([]byte, nb*q4_KBytes)
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
		wb := w[b*q4_KBytes : (b+1)*q4_KBytes]
		binary.LittleEndian.PutUint16(wb[0:], half())
		binary.LittleEndian.PutUint16(wb[2:], half())
		fill(wb[4:16])   // scales and mins
		fill(wb[16:144]) // qs
	}
	return w
}

// q4k512TrueSumActs returns nb Q8_K blocks of random quants in [-128, 127]
// (-128 is outside what quantizeQ8_K makes, but no step of the kernel can
// overflow on it) with their true group sums and a random finite scale.
func q4k512TrueSumActs(rng *rand.Rand, nb int) []byte {
	x := make([]byte, nb*q8_KBytes)
	for b := range nb {
		xb := x[b*q8_KBytes : (b+1)*q8_KBytes]
		d := float32(rng.NormFloat64() * math.Ldexp(1, rng.IntN(41)-27))
		binary.LittleEndian.PutUint32(xb, math.Float32bits(d))
		for g := range QKK / 16 {
			s := 0
			for j := range 16 {
				q := int8(rng.Uint32())
				if rng.IntN(4) == 0 {
					q = -128
				}
				xb[4+16*g+j] = byte(q)
				s += int(q)
			}
			binary.LittleEndian.PutUint16(xb[4+QKK+2*g:], uint16(int16(s)))
		}
	}
	return x
}

// q4k512Check fails unless dotQ4_KQ8_KAsm512 agrees bit for bit with the
// reference dotQ4_KQ8_K and, when avx2 is set, with the AVX2 kernel (two
// NaNs agree whatever their payloads).
func q4k512Check(t testing.TB, w, x []byte, nb int, avx2 bool) {
	t.Helper()
	same := func(a, b float32) bool {
		return math.Float32bits(a) == math.Float32bits(b) || a != a && b != b
	}
	want, got := dotQ4_KQ8_K(w, x, nb), dotQ4_KQ8_KAsm512(w, x, nb)
	if !same(got, want) {
		t.Fatalf("%d blocks: AVX-512 %g (%#08x), reference %g (%#08x)",
			nb, got, math.Float32bits(got), want, math.Float32bits(want))
	}
	if avx2 {
		if a := dotQ4_KQ8_KAsm(w, x, nb); !same(got, a) {
			t.Fatalf("%d blocks: AVX-512 %g (%#08x), AVX2 %g (%#08x)",
				nb, got, math.Float32bits(got), a, math.Float32bits(a))
		}
	}
}

// TestQ4K512Asm checks the AVX-512 Q4_K x Q8_K dot bit for bit against the
// reference and the AVX2 kernel, for 1 to 16 blocks (8 is a 2048-column
// row): quantized normal rows, random blocks with extreme fields against
// quantizeQ8_K activations of every kind q5kActs makes (normals scaled by
// 2^k, zero and constant blocks, ±127 patterns, spikes), every combination
// of extreme fields, and, against the reference only (the AVX2 kernel adds
// group sums in int16), quants including -128 with their true group sums
// and raw activation bytes (any quants and group sums).
func TestQ4K512Asm(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512 (F, BW, DQ) with VNNI")
	}
	rng := rand.New(rand.NewPCG(45, 12))
	t.Run("quantized", func(t *testing.T) {
		for nb := 1; nb <= 16; nb++ {
			for range 50 {
				wf := randNormal(rng, nb*QKK, math.Ldexp(1, rng.IntN(20)-10))
				w := Quantize(nil, Q4_K, wf)
				q4k512Check(t, w, q5kActs(rng, nb), nb, true)
			}
		}
	})
	t.Run("random", func(t *testing.T) {
		for nb := 1; nb <= 16; nb++ {
			for range 400 {
				q4k512Check(t, q4k512Weights(rng, nb), q5kActs(rng, nb), nb, true)
			}
		}
	})
	t.Run("truesums", func(t *testing.T) {
		for nb := 1; nb <= 16; nb++ {
			for range 100 {
				q4k512Check(t, q4k512Weights(rng, nb), q4k512TrueSumActs(rng, nb), nb, false)
			}
		}
	})
	t.Run("empty", func(t *testing.T) {
		q4k512Check(t, nil, nil, 0, true)
	})
	t.Run("raw", func(t *testing.T) {
		for nb := 1; nb <= 16; nb++ {
			for range 100 {
				q4k512Check(t, q4k512Weights(rng, nb), q5kRawActs(rng, nb), nb, false)
			}
		}
	})
	t.Run("extremes", func(t *testing.T) {
		// Every combination of all-zero/all-ones scales and qs, the
		// largest and smallest normal d and dmin of both signs (and 1),
		// against activations of every quant -127, +127, 0 or alternating
		// ±127, in blocks of 1 and 8.
		halves := []uint16{0x7bff, 0xfbff, 0x0400, 0x8400, 0x3c00}
		for mask := range 4 {
			for _, d := range halves {
				for _, dmin := range halves {
					w := make([]byte, q4_KBytes)
					binary.LittleEndian.PutUint16(w[0:], d)
					binary.LittleEndian.PutUint16(w[2:], dmin)
					for i, r := range [][2]int{{4, 16}, {16, 144}} {
						if mask>>i&1 != 0 {
							for j := r[0]; j < r[1]; j++ {
								w[j] = 0xff
							}
						}
					}
					for _, q := range []int8{-127, 127, 0, 1} {
						x := make([]byte, q8_KBytes)
						binary.LittleEndian.PutUint32(x, math.Float32bits(0x1p-7))
						for j := range QKK {
							v := q
							if q == 1 { // alternating ±127
								v = int8(127 - 254*(j&1))
							}
							x[4+j] = byte(v)
						}
						for g := range QKK / 16 {
							s := 0
							for j := range 16 {
								s += int(int8(x[4+16*g+j]))
							}
							binary.LittleEndian.PutUint16(x[4+QKK+2*g:], uint16(int16(s)))
						}
						q4k512Check(t, w, x, 1, true)
						w8, x8 := make([]byte, 0, 8*q4_KBytes), make([]byte, 0, 8*q8_KBytes)
						for range 8 {
							w8, x8 = append(w8, w...), append(x8, x...)
						}
						q4k512Check(t, w8, x8, 8, true)
					}
				}
			}
		}
	})
}

// FuzzQ4K512Asm checks the AVX-512 Q4_K x Q8_K dot against the reference
// bit for bit on blocks made from raw bytes: data[0] picks the block count
// (1..16) and a power-of-two scale for the activations; the weights are the
// next bytes (repeated as needed) with any Inf/NaN F16 scale made finite;
// the activations are quantizeQ8_K of the following bytes read as int8/8
// times that scale.
func FuzzQ4K512Asm(f *testing.F) {
	if !useAVX512 {
		f.Skip("no AVX-512 (F, BW, DQ) with VNNI")
	}
	f.Add([]byte{0})
	f.Add([]byte{7, 0xff})
	f.Add([]byte{0x8f, 1, 2, 3, 0x80, 0x7f, 0xfe})
	seed := make([]byte, 1+3*q4_KBytes+3*QKK)
	for i := range seed {
		seed[i] = byte(i * 37)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		nb := 1 + int(data[0]&15)
		scale := math.Ldexp(1, int(data[0]>>4)*3-24)
		src := data[1:]
		at := func(i int) byte {
			if len(src) == 0 {
				return 0
			}
			return src[i%len(src)]
		}
		w := make([]byte, nb*q4_KBytes)
		for i := range w {
			w[i] = at(i)
		}
		for b := range nb {
			for _, o := range []int{b * q4_KBytes, b*q4_KBytes + 2} {
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
		q4k512Check(t, w, x, nb, true)
	})
}

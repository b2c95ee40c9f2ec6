//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// q6k512Halves are the F16 weight scales the tests pick besides random
// ones: the largest finite and the smallest normal of both signs, one, and
// the smallest subnormal.
var q6k512Halves = []uint16{0x7bff, 0xfbff, 0x0400, 0x8400, 0x3c00, 0x0001}

// q6k512Weights returns nb random Q6_K super-blocks. Each block takes, for
// its low quant bits (ql), its high bits (qh) and its scales independently,
// random bytes, all zeros or all ones (the scales: random, all 0x80 = -128,
// all 0x7f or zero), and for d a random finite normal half or one of
// q6k512Halves.
func q6k512Weights(rng *rand.Rand, nb int) []byte {
	w := make([]byte, nb*q6_KBytes)
	fill := func(b []byte, vals ...byte) {
		k := rng.IntN(len(vals) + 2)
		for i := range b {
			if k < len(vals) {
				b[i] = vals[k]
			} else {
				b[i] = byte(rng.Uint32())
			}
		}
	}
	for b := range nb {
		wb := w[b*q6_KBytes : (b+1)*q6_KBytes]
		fill(wb[0:128], 0x00, 0xff)         // ql
		fill(wb[128:192], 0x00, 0xff)       // qh
		fill(wb[192:208], 0x80, 0x7f, 0x00) // scales
		h := q5kNormalHalf(rng)
		if rng.IntN(3) == 0 {
			h = q6k512Halves[rng.IntN(len(q6k512Halves))]
		}
		binary.LittleEndian.PutUint16(wb[208:], h)
	}
	return w
}

// q6k512Same reports whether a and b have the same bits or are both NaN.
func q6k512Same(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

// q6k512Check fails unless dotQ6_KQ8_KAsm512 agrees bit for bit with the
// reference dotQ6_KQ8_K and, with avx2 set (activations in [-127, 127]),
// with the AVX2 kernel.
func q6k512Check(t testing.TB, w, x []byte, nb int, avx2 bool) {
	t.Helper()
	got, want := dotQ6_KQ8_KAsm512(w, x, nb), dotQ6_KQ8_K(w, x, nb)
	if avx2 {
		if a := dotQ6_KQ8_KAsm(w, x, nb); !q6k512Same(got, a) {
			t.Fatalf("%d blocks: AVX-512 %g (%#08x), AVX2 %g (%#08x)",
				nb, got, math.Float32bits(got), a, math.Float32bits(a))
		}
	}
	if !q6k512Same(got, want) {
		t.Fatalf("%d blocks: AVX-512 %g (%#08x), reference %g (%#08x)",
			nb, got, math.Float32bits(got), want, math.Float32bits(want))
	}
}

// TestQ6K512Asm checks the AVX-512 Q6_K x Q8_K dot against the reference
// and the AVX2 kernel bit for bit (q6k512Check), for 1 to 16 super-blocks:
// quantized normal rows, random blocks with extreme fields against
// quantizeQ8_K's activations (random normals scaled by 2^k, zero,
// constant, ±127 and spike blocks), raw activation bytes (quants including
// -128, group sums unrelated to them; the AVX2 kernel, whose sign trick
// cannot take -128, is left out there), every combination of extreme
// fields, and no blocks.
func TestQ6K512Asm(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512 (F, BW, DQ) and VNNI")
	}
	rng := rand.New(rand.NewPCG(66, 512))
	t.Run("quantized", func(t *testing.T) {
		for nb := 1; nb <= 16; nb++ {
			for range 20 {
				wf := randNormal(rng, nb*QKK, math.Ldexp(1, rng.IntN(20)-10))
				q6k512Check(t, Quantize(nil, Q6_K, wf), q5kActs(rng, nb), nb, true)
			}
		}
	})
	t.Run("random", func(t *testing.T) {
		for nb := 1; nb <= 16; nb++ {
			for range 300 {
				q6k512Check(t, q6k512Weights(rng, nb), q5kActs(rng, nb), nb, true)
			}
		}
	})
	t.Run("raw", func(t *testing.T) {
		for nb := 1; nb <= 16; nb++ {
			for range 100 {
				q6k512Check(t, q6k512Weights(rng, nb), q5kRawActs(rng, nb), nb, false)
			}
		}
	})
	t.Run("extremes", func(t *testing.T) {
		// ql and qh all 0x00 or all 0xff (q = 0, 15, 48 or 63 everywhere),
		// scales all -128, 127 or 0, each d of q6k512Halves, against
		// activation blocks of all 127, all -127, alternating ±127, a
		// single spike, and random quants in [-127, 127] (with their
		// true group sums and a random power-of-two scale), for one block
		// and a 2048-column row of 8 blocks of the same kind.
		acts := []func(xq []byte){
			func(xq []byte) {
				for i := range xq {
					xq[i] = 127
				}
			},
			func(xq []byte) {
				for i := range xq {
					xq[i] = 0x81
				}
			},
			func(xq []byte) {
				for i := range xq {
					xq[i] = byte(int8(127 * (1 - 2*(i&1))))
				}
			},
			func(xq []byte) {
				xq[rng.IntN(QKK)] = 0x81
			},
			func(xq []byte) {
				for i := range xq {
					xq[i] = byte(int8(rng.IntN(255) - 127))
				}
			},
		}
		for _, ql := range []byte{0x00, 0xff} {
			for _, qh := range []byte{0x00, 0xff} {
				for _, sc := range []byte{0x80, 0x7f, 0x00} {
					for _, d := range q6k512Halves {
						for _, act := range acts {
							for _, nb := range []int{1, 8} {
								w := make([]byte, nb*q6_KBytes)
								x := make([]byte, nb*q8_KBytes)
								for b := range nb {
									wb := w[b*q6_KBytes : (b+1)*q6_KBytes]
									for i := range wb {
										switch {
										case i < 128:
											wb[i] = ql
										case i < 192:
											wb[i] = qh
										case i < 208:
											wb[i] = sc
										}
									}
									binary.LittleEndian.PutUint16(wb[208:], d)
									xb := x[b*q8_KBytes : (b+1)*q8_KBytes]
									binary.LittleEndian.PutUint32(xb, math.Float32bits(float32(math.Ldexp(1, rng.IntN(41)-27))))
									xq := xb[4 : 4+QKK]
									act(xq)
									for g := range QKK / 16 {
										var s int16
										for _, q := range xq[16*g : 16*g+16] {
											s += int16(int8(q))
										}
										binary.LittleEndian.PutUint16(xb[4+QKK+2*g:], uint16(s))
									}
								}
								q6k512Check(t, w, x, nb, true)
							}
						}
					}
				}
			}
		}
	})
	t.Run("empty", func(t *testing.T) {
		if got := dotQ6_KQ8_KAsm512(nil, nil, 0); math.Float32bits(got) != 0 {
			t.Fatalf("0 blocks: %g, want +0", got)
		}
	})
}

// FuzzQ6K512Asm checks the AVX-512 Q6_K x Q8_K dot against the reference
// and the AVX2 kernel bit for bit (q6k512Check) on blocks made from raw
// bytes: data[0]
// picks the block count (1..16) and a power-of-two scale for the
// activations; the weights are the next bytes (repeated as needed) with an
// Inf/NaN F16 scale made finite; the activations are quantizeQ8_K of the
// following bytes read as int8/8 times that scale.
func FuzzQ6K512Asm(f *testing.F) {
	if !useAVX512 {
		f.Skip("no AVX-512 (F, BW, DQ) and VNNI")
	}
	f.Add([]byte{0})
	f.Add([]byte{7, 0xff})
	f.Add([]byte{0x8f, 0x80, 0x7f, 0, 0xff, 0x33})
	seed := make([]byte, 1+2*q6_KBytes+2*QKK)
	for i := range seed {
		seed[i] = byte(i * 41)
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
		w := make([]byte, nb*q6_KBytes)
		for i := range w {
			w[i] = at(i)
		}
		for b := range nb {
			o := b*q6_KBytes + 208
			if h := binary.LittleEndian.Uint16(w[o:]); h&0x7c00 == 0x7c00 {
				binary.LittleEndian.PutUint16(w[o:], h&^0x4000)
			}
		}
		xf := make([]float32, nb*QKK)
		for i := range xf {
			xf[i] = float32(float64(int8(at(len(w)+i))) / 8 * scale)
		}
		x := make([]byte, nb*q8_KBytes)
		quantizeQ8_K(x, xf)
		q6k512Check(t, w, x, nb, true)
	})
}

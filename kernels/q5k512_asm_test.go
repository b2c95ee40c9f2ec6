//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// q5k512Halves are the F16 values of d and dmin the extreme tests take:
// the largest finite and the smallest normal of both signs, one, and the
// smallest subnormal.
var q5k512Halves = []uint16{0x7bff, 0xfbff, 0x0400, 0x8400, 0x3c00, 0x0001}

// q5k512Check fails unless dotQ5_KQ8_KAsm512 agrees bit for bit with the
// reference dotQ5_KQ8_K and with the AVX2 kernel dotQ5_KQ8_KAsm (both
// exact for any block contents; two NaNs agree whatever their payloads).
func q5k512Check(t testing.TB, w, x []byte, nb int) {
	t.Helper()
	got := dotQ5_KQ8_KAsm512(w, x, nb)
	for _, o := range []struct {
		name string
		v    float32
	}{{"reference", dotQ5_KQ8_K(w, x, nb)}, {"AVX2", dotQ5_KQ8_KAsm(w, x, nb)}} {
		if math.Float32bits(got) != math.Float32bits(o.v) && !(got != got && o.v != o.v) {
			t.Fatalf("%d blocks: AVX-512 %g (%#08x), %s %g (%#08x)",
				nb, got, math.Float32bits(got), o.name, o.v, math.Float32bits(o.v))
		}
	}
}

// q5k512Acts are the extreme tests' Q8_K quants (the group sums are made
// to match): all 127, all -127, alternating ±127, one -127 spike, random
// quants in [-127, 127], and all -128 (which quantizeQ8_K never makes).
var q5k512Acts = []func(rng *rand.Rand, xq []byte){
	func(_ *rand.Rand, xq []byte) {
		for i := range xq {
			xq[i] = 127
		}
	},
	func(_ *rand.Rand, xq []byte) {
		for i := range xq {
			xq[i] = 0x81
		}
	},
	func(_ *rand.Rand, xq []byte) {
		for i := range xq {
			xq[i] = byte(int8(127 * (1 - 2*(i&1))))
		}
	},
	func(rng *rand.Rand, xq []byte) {
		xq[rng.IntN(QKK)] = 0x81
	},
	func(rng *rand.Rand, xq []byte) {
		for i := range xq {
			xq[i] = byte(int8(rng.IntN(255) - 127))
		}
	},
	func(_ *rand.Rand, xq []byte) {
		for i := range xq {
			xq[i] = 0x80
		}
	},
}

// TestQ5K512Asm checks the AVX-512 Q5_K x Q8_K dot against the reference
// and the AVX2 kernel bit for bit (q5k512Check), for 1 to 16 super-blocks:
// quantized normal rows, random blocks with extreme fields (q5kWeights)
// against quantizeQ8_K's activations (q5kActs) and against raw activation
// bytes (q5kRawActs: quants including -128, group sums unrelated to
// them), every combination of extreme fields, and no blocks.
func TestQ5K512Asm(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512 (F, BW, DQ) and VNNI")
	}
	rng := rand.New(rand.NewPCG(55, 512))
	t.Run("quantized", func(t *testing.T) {
		for nb := 1; nb <= 16; nb++ {
			for range 20 {
				wf := randNormal(rng, nb*QKK, math.Ldexp(1, rng.IntN(20)-10))
				q5k512Check(t, Quantize(nil, Q5_K, wf), q5kActs(rng, nb), nb)
			}
		}
	})
	t.Run("random", func(t *testing.T) {
		for nb := 1; nb <= 16; nb++ {
			for range 300 {
				q5k512Check(t, q5kWeights(rng, nb), q5kActs(rng, nb), nb)
			}
		}
	})
	t.Run("raw", func(t *testing.T) {
		for nb := 1; nb <= 16; nb++ {
			for range 100 {
				q5k512Check(t, q5kWeights(rng, nb), q5kRawActs(rng, nb), nb)
			}
		}
	})
	t.Run("extremes", func(t *testing.T) {
		// qs, qh and the scale bytes each all 0x00 or all 0xff (weights
		// 0, 15, 16 or 31 everywhere; scales and mins 0 or 63), d and
		// dmin each of q5k512Halves, against each of q5k512Acts (with a
		// random power-of-two activation scale), for one block and a
		// 2048-column row of 8 blocks of the same kind.
		for mask := range 8 {
			for _, d := range q5k512Halves {
				for _, dmin := range q5k512Halves {
					for _, act := range q5k512Acts {
						for _, nb := range []int{1, 8} {
							w := make([]byte, nb*q5_KBytes)
							x := make([]byte, nb*q8_KBytes)
							for b := range nb {
								wb := w[b*q5_KBytes : (b+1)*q5_KBytes]
								binary.LittleEndian.PutUint16(wb[0:], d)
								binary.LittleEndian.PutUint16(wb[2:], dmin)
								for i, r := range [][2]int{{4, 16}, {16, 48}, {48, 176}} {
									if mask>>i&1 != 0 {
										for j := r[0]; j < r[1]; j++ {
											wb[j] = 0xff
										}
									}
								}
								xb := x[b*q8_KBytes : (b+1)*q8_KBytes]
								binary.LittleEndian.PutUint32(xb, math.Float32bits(float32(math.Ldexp(1, rng.IntN(41)-27))))
								xq := xb[4 : 4+QKK]
								act(rng, xq)
								for g := range QKK / 16 {
									var s int16
									for _, q := range xq[16*g : 16*g+16] {
										s += int16(int8(q))
									}
									binary.LittleEndian.PutUint16(xb[4+QKK+2*g:], uint16(s))
								}
							}
							q5k512Check(t, w, x, nb)
						}
					}
				}
			}
		}
	})
	t.Run("empty", func(t *testing.T) {
		if got := dotQ5_KQ8_KAsm512(nil, nil, 0); math.Float32bits(got) != 0 {
			t.Fatalf("0 blocks: %g, want +0", got)
		}
	})
}

// FuzzQ5K512Asm checks the AVX-512 Q5_K x Q8_K dot against the reference
// and the AVX2 kernel bit for bit (q5k512Check) on blocks made from raw
// bytes: data[0] picks the block count (1..16) and a power-of-two scale
// for the activations; the weights are the next bytes (repeated as
// needed) with any Inf/NaN F16 scale made finite; the activations are
// quantizeQ8_K of the following bytes read as int8/8 times that scale.
func FuzzQ5K512Asm(f *testing.F) {
	if !useAVX512 {
		f.Skip("no AVX-512 (F, BW, DQ) and VNNI")
	}
	f.Add([]byte{0})
	f.Add([]byte{7, 0xff})
	f.Add([]byte{0x8f, 0x80, 0x7f, 0, 0xff, 0x55, 0xaa})
	seed := make([]byte, 1+3*q5_KBytes+3*QKK)
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
		q5k512Check(t, w, x, nb)
	})
}

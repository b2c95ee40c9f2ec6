//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// gqa4Case is a KV cache of n positions with two KV heads, four queries
// (rounded to halves) for the second and four heads' probabilities
// (rounded to halves) for the attention kernels' differential tests and
// benchmarks.
type gqa4Case struct {
	n, hd, stride int // stride: elements between cached rows
	keys, values  []uint16
	q32, p        []float32
	kOff, vOff    *byte // the second KV head's first key and value
	q, pp         *float32
	scale         float32
}

// newGQA4Case fills a case: keys, values and queries normal, scaled in
// wide mode by powers of two from 2^-20 to 2^12 (the half range, from
// subnormals to large) element by element; with specials, a few cached
// halves are infinities, NaNs, zeros of both signs and subnormals.
func newGQA4Case(rng *rand.Rand, n, hd int, wide, specials bool) *gqa4Case {
	const nkv = 2
	c := &gqa4Case{n: n, hd: hd, stride: nkv * hd, scale: 0.125}
	c.keys, c.values = make([]uint16, n*nkv*hd), make([]uint16, n*nkv*hd)
	mag := func() float64 {
		if wide {
			return math.Ldexp(1, rng.IntN(33)-20)
		}
		return 1
	}
	for i := range c.keys {
		c.keys[i] = F32ToF16(float32(rng.NormFloat64() * mag()))
		c.values[i] = F32ToF16(float32(rng.NormFloat64() * mag()))
	}
	if specials {
		sp := []uint16{0x7c00, 0xfc00, 0x7e00, 0x7e15, 0xfe01, 0x0000, 0x8000, 0x0001, 0x83ff, 0x7bff}
		for range 1 + n/8 {
			c.keys[rng.IntN(len(c.keys))] = sp[rng.IntN(len(sp))]
			c.values[rng.IntN(len(c.values))] = sp[rng.IntN(len(sp))]
		}
	}
	q := make([]float32, 4*hd)
	for i := range q {
		q[i] = float32(rng.NormFloat64() * mag())
	}
	c.q32 = make([]float32, 4*hd)
	attnRoundQ(c.q32, q)
	// Probabilities: uniform in [0, 1), some tiny, rounded to halves.
	pr := make([]float32, 4*n)
	for i := range pr {
		pr[i] = rng.Float32()
		if wide && rng.IntN(4) == 0 {
			pr[i] *= float32(math.Ldexp(1, -rng.IntN(30)))
		}
	}
	c.p = make([]float32, 4*n)
	attnRoundQ(c.p, pr)
	c.kOff = (*byte)(unsafe.Pointer(&c.keys[hd]))
	c.vOff = (*byte)(unsafe.Pointer(&c.values[hd]))
	c.q, c.pp = &c.q32[0], &c.p[0]
	return c
}

// perHead gives the four heads' scores and lanes from attnScoresF16AVX2 and
// attnValuesF16AVX2, one head at a time, lanes in a cleared buffer.
func (c *gqa4Case) perHead() (att, acc []float32) {
	n, hd := c.n, c.hd
	att, acc = make([]float32, 4*n), make([]float32, 4*32*hd)
	for g := range 4 {
		attnScoresF16AVX2(&att[g*n], c.kOff, 2*c.stride, &c.q32[g*hd], hd, n, c.scale)
		attnValuesF16AVX2(&acc[g*32*hd], c.vOff, 2*c.stride, &c.p[g*n], hd, n, 32)
	}
	return att, acc
}

// sentinel fills x with a NaN that no kernel makes, so that an element a
// kernel does not write shows.
func sentinel(x []float32) []float32 {
	for i := range x {
		x[i] = math.Float32frombits(0x7fc0dead)
	}
	return x
}

// run runs a pair of four-head kernels on c, into buffers (with a
// guard element past each end) prefilled with a sentinel; it fails t if
// a guard is written.
func (c *gqa4Case) run(t *testing.T,
	scores func(att *float32, n int, k *byte, stride int, q *float32, hd int, scale float32, tmp *float32),
	values func(acc *float32, v *byte, stride int, p *float32, n int, hd int)) (att, acc []float32) {
	n, hd := c.n, c.hd
	attb, accb := sentinel(make([]float32, 4*n+1)), sentinel(make([]float32, 4*32*hd+1))
	var tmp [4 * 8 * 8]float32
	scores(&attb[0], n, c.kOff, 2*c.stride, c.q, hd, c.scale, &tmp[0])
	values(&accb[0], c.vOff, 2*c.stride, c.pp, n, hd)
	if math.Float32bits(attb[4*n]) != 0x7fc0dead || math.Float32bits(accb[4*32*hd]) != 0x7fc0dead {
		t.Fatalf("a kernel wrote past its output")
	}
	return attb[:4*n], accb[:4*32*hd]
}

// firstDiff describes the first element where a and b differ bitwise.
func firstDiff(a, b []float32) string {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return fmt.Sprintf("element %d: %v (%#08x), want %v (%#08x)", i, a[i], math.Float32bits(a[i]), b[i], math.Float32bits(b[i]))
		}
	}
	return "equal"
}

// TestGQA4AVX2 checks the AVX2 four-head attention kernels against the
// per-head AVX2 kernels, head by head, and against the AVX-512 four-head
// kernels where the CPU has them, bit for bit: scores and lanes for head
// sizes 32 to 128, position counts around the lanes of 32 and the values
// kernel's blocks of 8 positions a lane (n 256, 257, 520), and caches of
// normal halves, of halves spanning the half range, and with infinities,
// NaNs, signed zeros and subnormals mixed in; the weighted sums also in a
// prompt's 8 lanes.
func TestGQA4AVX2(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2")
	}
	rng := rand.New(rand.NewPCG(47, 48))
	for _, hd := range []int{32, 64, 96, 128} {
		for _, n := range []int{1, 2, 7, 8, 9, 31, 32, 33, 64, 100, 256, 257, 520} {
			for mode, name := range []string{"normal", "wide", "specials"} {
				t.Run(fmt.Sprintf("hd%d/n%d/%s", hd, n, name), func(t *testing.T) {
					c := newGQA4Case(rng, n, hd, mode >= 1, mode == 2)
					att, acc := c.run(t, attnScoresGQA4F16AVX2, attnValuesGQA4F16AVX2)
					wantAtt, wantAcc := c.perHead()
					if !bitsEqual(att, wantAtt) {
						t.Errorf("scores differ from one head at a time: %s", firstDiff(att, wantAtt))
					}
					if !bitsEqual(acc, wantAcc) {
						t.Errorf("lanes differ from one head at a time: %s", firstDiff(acc, wantAcc))
					}
					// A prompt's 8 lanes (llamafile's sgemm order).
					acc8, want8 := sentinel(make([]float32, 4*8*hd+1)), make([]float32, 4*8*hd)
					attnValuesLanesGQA4F16AVX2(&acc8[0], c.vOff, 2*c.stride, c.pp, n, hd, 8, 4*8, 32*8)
					if math.Float32bits(acc8[4*8*hd]) != 0x7fc0dead {
						t.Fatalf("the 8-lane kernel wrote past its output")
					}
					for g := range 4 {
						attnValuesF16AVX2(&want8[g*8*hd], c.vOff, 2*c.stride, &c.p[g*n], hd, n, 8)
					}
					if !bitsEqual(acc8[:4*8*hd], want8) {
						t.Errorf("8 lanes differ from one head at a time: %s", firstDiff(acc8[:4*8*hd], want8))
					}
					if !useAVX512 {
						return
					}
					scores512 := func(att *float32, n int, k *byte, stride int, q *float32, hd int, scale float32, tmp *float32) {
						attnScoresGQA4F16AVX512(att, n, k, stride, q, hd, scale, tmp, c.vOff) // prefetching the values
					}
					att512, acc512 := c.run(t, scores512, attnValuesGQA4F16AVX512)
					if !bitsEqual(att, att512) {
						t.Errorf("scores differ from AVX-512: %s", firstDiff(att, att512))
					}
					if !bitsEqual(acc, acc512) {
						t.Errorf("lanes differ from AVX-512: %s", firstDiff(acc, acc512))
					}
				})
			}
		}
	}
}

// BenchmarkGQA4AVX2 times a layer's decode attention kernels for 32 query
// heads over 8 KV heads (hd 64), on one goroutine: the scores, and the
// weighted sums (with the probabilities' rounding and, one head at a
// time, the clearing of the lanes), by the per-head AVX2 kernels (32
// calls), the four-head AVX2 kernels (8 calls) and, where the CPU has
// them, the four-head AVX-512 kernels.
func BenchmarkGQA4AVX2(b *testing.B) {
	if !useAVX2 {
		b.Skip("no AVX2")
	}
	const nh, nkv, hd = 32, 8, 64
	const stride = nkv * hd
	for _, n := range []int{128, 2048} {
		rng := rand.New(rand.NewPCG(49, uint64(n)))
		keys, values := make([]uint16, n*stride), make([]uint16, n*stride)
		for i := range keys {
			keys[i], values[i] = F32ToF16(float32(rng.NormFloat64())), F32ToF16(float32(rng.NormFloat64()))
		}
		q32 := make([]float32, nh*hd)
		attnRoundQ(q32, randNormal(rng, nh*hd, 1))
		att := make([]float32, nh*n)
		for i := range att {
			att[i] = rng.Float32() / float32(n)
		}
		p := make([]float32, nh*n)
		acc := make([]float32, 4*32*hd)
		var tmp [4 * 8 * 8]float32
		kp := func(kv int) *byte { return (*byte)(unsafe.Pointer(&keys[kv*hd])) }
		vp := func(kv int) *byte { return (*byte)(unsafe.Pointer(&values[kv*hd])) }
		type kernels struct {
			name   string
			ok     bool
			scores func(att *float32, n int, k *byte, stride int, q *float32, hd int, scale float32, tmp *float32)
			values func(acc *float32, v *byte, stride int, p *float32, n int, hd int)
		}
		for _, part := range []string{"scores", "values"} {
			b.Run(fmt.Sprintf("n%d/%s/perhead", n, part), func(b *testing.B) {
				for b.Loop() {
					for h := range nh {
						if part == "scores" {
							attnScoresF16AVX2(&att[h*n], kp(h/(nh/nkv)), 2*stride, &q32[h*hd], hd, n, 0.125)
						} else {
							clear(acc[:32*hd])
							attnValuesF16AVX2(&acc[0], vp(h/(nh/nkv)), 2*stride, &att[h*n], hd, n, 32)
						}
					}
				}
			})
			for _, k := range []kernels{
				{"gqa4avx2", true, attnScoresGQA4F16AVX2, attnValuesGQA4F16AVX2},
				{"gqa4avx512", useAVX512, func(att *float32, n int, k *byte, stride int, q *float32, hd int, scale float32, tmp *float32) {
					attnScoresGQA4F16AVX512(att, n, k, stride, q, hd, scale, tmp, nil)
				}, attnValuesGQA4F16AVX512},
			} {
				if !k.ok {
					continue
				}
				b.Run(fmt.Sprintf("n%d/%s/%s", n, part, k.name), func(b *testing.B) {
					for b.Loop() {
						for kv := range nkv {
							h := kv * (nh / nkv)
							if part == "scores" {
								k.scores(&att[h*n], n, kp(kv), 2*stride, &q32[h*hd], hd, 0.125, &tmp[0])
							} else {
								attnRoundQ(p[h*n:(h+4)*n], att[h*n:(h+4)*n])
								k.values(&acc[0], vp(kv), 2*stride, &p[h*n], n, hd)
							}
						}
					}
				})
			}
		}
	}
}

// TestGQA4SgemmScores checks the four-head scores of a prompt's query, in
// AVX2 and, where the CPU has it, AVX-512, against attnScoresSgemmF16AVX2
// one head at a time, bit for bit, with the cases of TestGQA4AVX2 and head
// sizes down to 8: position counts on both sides of the kernels' blocks of
// 2 and 4, and caches with infinities, NaNs, signed zeros and subnormals.
func TestGQA4SgemmScores(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2")
	}
	kernels := map[string]func(att *float32, n int, k *byte, stride int, qi *float32, steps int, scale float32){
		"avx2": attnScoresGQA4SgemmF16AVX2,
	}
	if useAVX512 {
		kernels["avx512"] = attnScoresGQA4SgemmF16AVX512
	}
	rng := rand.New(rand.NewPCG(49, 50))
	for _, hd := range []int{8, 16, 64, 128} {
		for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 9, 31, 33, 100, 257} {
			for mode, name := range []string{"normal", "wide", "specials"} {
				t.Run(fmt.Sprintf("hd%d/n%d/%s", hd, n, name), func(t *testing.T) {
					c := newGQA4Case(rng, n, hd, mode >= 1, mode == 2)
					want := make([]float32, 4*n)
					for g := range 4 {
						attnScoresSgemmF16AVX2(&want[g*n], c.kOff, 2*c.stride, &c.q32[g*hd], hd/8, n, c.scale)
					}
					qi := make([]float32, 4*hd)
					interleaveQ4(qi, c.q32, hd)
					for kname, kernel := range kernels {
						att := sentinel(make([]float32, 4*n+1))
						kernel(&att[0], n, c.kOff, 2*c.stride, &qi[0], hd/8, c.scale)
						if math.Float32bits(att[4*n]) != 0x7fc0dead {
							t.Fatalf("%s: the kernel wrote past its output", kname)
						}
						if !bitsEqual(att[:4*n], want) {
							t.Errorf("%s: scores differ from one head at a time: %s", kname, firstDiff(att[:4*n], want))
						}
					}
				})
			}
		}
	}
}

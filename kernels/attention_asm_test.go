//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestAttentionF16Asm runs attention over an F16 cache with the SIMD scores
// and value sums and with the reference loops, single-token and batched,
// for head sizes that are and are not multiples of 32, 8 and 4, and checks
// that they agree bit for bit.
func TestAttentionF16Asm(t *testing.T) {
	if !fastAttnF16 {
		t.Skip("no SIMD attention on this CPU")
	}
	defer func() { fastAttnF16 = true }()
	rng := rand.New(rand.NewPCG(41, 42))
	p := NewPool(2)
	defer p.Close()
	for _, hd := range []int{64, 80, 12, 7} {
		for _, n := range []int{1, 9, 33, 130} {
			const nh, nkv = 4, 2
			q := randNormal(rng, nh*hd, 1)
			k16, v16 := make([]uint16, n*nkv*hd), make([]uint16, n*nkv*hd)
			for i := range k16 {
				k16[i], v16[i] = F32ToF16(float32(rng.NormFloat64())), F32ToF16(float32(rng.NormFloat64()))
			}
			for _, batch := range []bool{false, true} {
				t.Run(fmt.Sprintf("hd%d/n%d/batch=%v", hd, n, batch), func(t *testing.T) {
					attend := AttentionF16
					if batch {
						attend = AttentionF16Batch
					}
					run := func(fast bool) []float32 {
						fastAttnF16 = fast
						out, att := make([]float32, nh*hd), make([]float32, nh*n)
						attend(p, out, q, k16, v16, PosMajor(nkv, hd), n, nh, nkv, hd, 0.125, att)
						return append(out, att...)
					}
					if got, want := run(true), run(false); !bitsEqual(got, want) {
						t.Errorf("SIMD %v, reference %v", got, want)
					}
				})
			}
		}
	}
}

// TestAttnReduceAsm checks the SIMD reductions of attention's lanes per
// output dimension against the reference, bit for bit, for head sizes that
// are and are not multiples of 8: 32 lanes (one query) against reduce32,
// and a batch's 8 lanes against hsum8.
func TestAttnReduceAsm(t *testing.T) {
	if !fastAttnF16 {
		t.Skip("no SIMD attention on this CPU")
	}
	for _, c := range []struct {
		lanes int
		simd  func(out, acc []float32)
		ref   func(a []float32) float32
	}{
		{32, attnReduce32, func(a []float32) float32 { return reduce32((*[32]float32)(a)) }},
		{8, attnReduce8, func(a []float32) float32 { return hsum8((*[8]float32)(a)) }},
	} {
		rng := rand.New(rand.NewPCG(43, uint64(c.lanes)))
		for _, hd := range []int{1, 7, 8, 12, 64, 80, 128, 131} {
			acc := randNormal(rng, c.lanes*hd, 1e3)
			for i := range acc {
				if i%7 == 0 {
					acc[i] *= 1e-6 // magnitudes far apart, so that the order shows
				}
			}
			got, want := make([]float32, hd), make([]float32, hd)
			c.simd(got, acc)
			a := make([]float32, c.lanes)
			for d := range want {
				for l := range a {
					a[l] = acc[l*hd+d]
				}
				want[d] = c.ref(a)
			}
			if !bitsEqual(got, want) {
				t.Errorf("%d lanes, hd %d: SIMD %v, reference %v", c.lanes, hd, got, want)
			}
		}
	}
}

// TestAttentionGQA4Asm checks attention with four query heads per KV head
// at once (attnGQA4: a decoded token's, and a prompt's, single and causal)
// against one head at a time in SIMD and
// against the reference loops, bit for bit, outputs and probabilities:
// head sizes 32 to 128, groups of 4 and 8, position counts around the
// kernels' blocks of 8 (scores, and a lane's positions in the weighted
// sums) and lanes of 32, and a cache whose keys and values
// span the half range (scores from tiny to large, softmax saturating).
func TestAttentionGQA4Asm(t *testing.T) {
	if !fastAttnGQA4 {
		t.Skip("no SIMD grouped attention on this CPU")
	}
	defer func() { fastAttnF16, fastAttnGQA4 = true, true }()
	rng := rand.New(rand.NewPCG(43, 44))
	p := NewPool(2)
	defer p.Close()
	for _, c := range []struct{ nh, nkv, hd int }{{8, 2, 64}, {32, 8, 64}, {16, 2, 32}, {8, 1, 128}, {4, 1, 96}} {
		for _, n := range []int{1, 2, 7, 8, 9, 31, 32, 33, 64, 100, 257, 600} {
			for _, wide := range []bool{false, true} {
				q := randNormal(rng, c.nh*c.hd, 1)
				k16, v16 := make([]uint16, n*c.nkv*c.hd), make([]uint16, n*c.nkv*c.hd)
				for i := range k16 {
					k, v := rng.NormFloat64(), rng.NormFloat64()
					if wide { // magnitudes from 2^-20 to 2^12
						k *= math.Ldexp(1, rng.IntN(33)-20)
						v *= math.Ldexp(1, rng.IntN(33)-20)
					}
					k16[i], v16[i] = F32ToF16(float32(k)), F32ToF16(float32(v))
				}
				// The same cache head-major, NaNs in the room past n.
				room := n + 3
				hk16, hv16 := headMajor(k16, n, c.nkv, c.hd, room, 0x7e00), headMajor(v16, n, c.nkv, c.hd, room, 0x7e00)
				cache := func(hm bool) ([]uint16, []uint16, KVLayout) {
					if hm {
						return hk16, hv16, HeadMajor(room, c.hd)
					}
					return k16, v16, PosMajor(c.nkv, c.hd)
				}
				t.Run(fmt.Sprintf("h%d/kv%d/hd%d/n%d/wide=%v", c.nh, c.nkv, c.hd, n, wide), func(t *testing.T) {
					run := func(simd, gqa bool, pool *Pool, hm bool) []float32 {
						fastAttnF16, fastAttnGQA4 = simd, gqa
						out, att := make([]float32, c.nh*c.hd), make([]float32, c.nh*n)
						keys, values, kv := cache(hm)
						AttentionF16(pool, out, q, keys, values, kv, n, c.nh, c.nkv, c.hd, 0.125, att)
						return append(out, att...)
					}
					got := run(true, true, p, false)
					for _, hm := range []bool{false, true} {
						if want := run(true, true, p, hm); !bitsEqual(got, want) {
							t.Fatalf("GQA4 head-major differs from position-major:\n%v\n%v", got, want)
						}
						if want := run(true, false, p, hm); !bitsEqual(got, want) {
							t.Fatalf("GQA4 differs from one head at a time (head-major %v):\n%v\n%v", hm, got, want)
						}
						if want := run(false, false, nil, hm); !bitsEqual(got, want) {
							t.Fatalf("GQA4 differs from the reference (head-major %v):\n%v\n%v", hm, got, want)
						}
					}
					// A prompt's queries: one (AttentionF16Batch) and a causal
					// run of up to 5 ending at position n (AttentionF16Causal).
					nq := min(n, 5)
					qs := randNormal(rng, nq*c.nh*c.hd, 1)
					prompt := func(simd, gqa bool, pool *Pool, hm bool) []float32 {
						fastAttnF16, fastAttnGQA4Batch = simd, gqa
						defer func() { fastAttnGQA4Batch = useAVX2 }()
						out, att := make([]float32, c.nh*c.hd), make([]float32, c.nh*n)
						keys, values, kv := cache(hm)
						AttentionF16Batch(pool, out, q, keys, values, kv, n, c.nh, c.nkv, c.hd, 0.125, att)
						causal := make([]float32, nq*c.nh*c.hd)
						AttentionF16Causal(pool, causal, qs, keys, values, kv, nq, n-nq, c.nh, c.nkv, c.hd, 0.125)
						return append(append(out, att...), causal...)
					}
					got = prompt(true, true, p, false)
					for _, hm := range []bool{false, true} {
						if want := prompt(true, true, p, hm); !bitsEqual(got, want) {
							t.Fatalf("a prompt's GQA4 head-major differs from position-major:\n%v\n%v", got, want)
						}
						if want := prompt(true, false, p, hm); !bitsEqual(got, want) {
							t.Fatalf("a prompt's GQA4 differs from one head at a time (head-major %v):\n%v\n%v", hm, got, want)
						}
						if want := prompt(false, false, nil, hm); !bitsEqual(got, want) {
							t.Fatalf("a prompt's GQA4 differs from the reference (head-major %v):\n%v\n%v", hm, got, want)
						}
					}
				})
			}
		}
	}
}

// TestSoftmaxVecAsm checks softmax's SIMD maximum and scaling against Go's
// max in order and one product at a time, bit for bit, where the maximum
// says it applies, over lengths around the chunks of 8 with NaNs,
// infinities, zeros of both signs and subnormals mixed in; and that it
// declines (ok false) wherever the order could matter: a NaN anywhere or a
// zero maximum.
func TestSoftmaxVecAsm(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2")
	}
	rng := rand.New(rand.NewPCG(45, 46))
	specials := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0, float32(math.Copysign(0, -1)), 1e-45, -1e-45, math.MaxFloat32}
	for _, n := range []int{1, 7, 8, 9, 15, 16, 17, 33, 64, 100} {
		for trial := range 200 {
			x := randNormal(rng, n, 10)
			switch trial % 4 {
			case 1: // a few specials
				for range 1 + rng.IntN(3) {
					x[rng.IntN(n)] = specials[rng.IntN(len(specials))]
				}
			case 2: // all non-positive, zeros of both signs
				for i := range x {
					x[i] = -float32(math.Abs(float64(x[i])))
					if rng.IntN(3) == 0 {
						x[i] = specials[3+rng.IntN(2)]
					}
				}
			case 3: // all zeros
				for i := range x {
					x[i] = specials[3+rng.IntN(2)]
				}
			}
			want := x[0]
			nan := false
			for _, v := range x {
				want = max(want, v)
				nan = nan || v != v
			}
			got, ok := maxVec(x)
			if ok && math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("n=%d %v: max %v, want %v", n, x, got, want)
			}
			if ok && (nan || want == 0) {
				t.Fatalf("n=%d %v: max applied (%v) with a NaN or a zero maximum", n, x, got)
			}
			if !ok && n >= 8 && !nan && want != 0 {
				t.Fatalf("n=%d %v: max declined", n, x)
			}
			s := float32(rng.Float64()) * 3
			y := append([]float32(nil), x...)
			for i := scaleVec(y, s); i < n; i++ {
				y[i] *= s
			}
			for i, v := range x {
				if w := v * s; math.Float32bits(y[i]) != math.Float32bits(w) && !(w != w && y[i] != y[i]) {
					t.Fatalf("n=%d: scaled %v by %v: %v, want %v", n, v, s, y[i], w)
				}
			}
		}
	}
}

// TestRoPEAsm checks the SIMD rotations against the reference's fused
// multiply-adds, bit for bit: adjacent and NEOX pairs, full and partial
// rotary dimensions, positions from 0 to far past any context, values
// over a wide range of magnitudes; and that a table serves any number of
// heads.
func TestRoPEAsm(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2")
	}
	rng := rand.New(rand.NewPCG(47, 48))
	for _, c := range []struct {
		r         RoPE
		heads, hd int
	}{
		{RoPE{Dims: 64, Base: 10000}, 32, 64},
		{RoPE{Dims: 128, Base: 500000, FreqScale: 0.25}, 8, 128},
		{RoPE{Dims: 64, Base: 1e6, NEOX: true}, 14, 64},
		{RoPE{Dims: 32, Base: 10000}, 3, 64},
		{RoPE{Dims: 32, Base: 10000, NEOX: true}, 5, 80},
		{RoPE{Dims: 16, Base: 10000, NEOX: true}, 2, 16},
		{RoPE{Dims: 8, Base: 10000}, 4, 8},
	} {
		for _, pos := range []int{0, 1, 7, 1000, 131071} {
			x := randNormal(rng, c.heads*c.hd, 1)
			for i := range x {
				x[i] *= float32(math.Ldexp(1, rng.IntN(40)-20))
			}
			tab := make([]float32, c.r.TableLen())
			c.r.Table(tab, pos)
			got := append([]float32(nil), x...)
			if !ropeVec(got, c.heads, c.hd, c.r.Dims, c.r.NEOX, tab[:c.r.Dims], tab[c.r.Dims:]) {
				t.Fatalf("%+v: no SIMD rotation", c.r)
			}
			half := c.r.Dims / 2
			for h := range c.heads {
				head := x[h*c.hd : (h+1)*c.hd]
				for i := range half {
					cs, sn := tab[2*i], tab[2*i+1]
					a, b := 2*i, 2*i+1
					if c.r.NEOX {
						a, b = i, half+i
					}
					x0, x1 := head[a], head[b]
					head[a], head[b] = fma32(x0, cs, -float32(x1*sn)), fma32(x0, sn, float32(x1*cs))
				}
			}
			if !bitsEqual(got, x) {
				t.Fatalf("%+v pos %d: SIMD rotation differs from the reference", c.r, pos)
			}
		}
	}
}

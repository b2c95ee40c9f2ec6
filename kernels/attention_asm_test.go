//go:build amd64 && !purego

package kernels

import (
	"fmt"
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
						attend(p, out, q, k16, v16, n, nh, nkv, hd, 0.125, att)
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

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestRMSNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{1, 7, 64, 4096} {
		x := randNormal(rng, n, 3)
		w := randNormal(rng, n, 1)
		const eps = 1e-5
		var ss float64
		for _, v := range x {
			ss += float64(v) * float64(v)
		}
		scale := 1 / math.Sqrt(ss/float64(n)+eps)
		dst := make([]float32, n)
		RMSNorm(dst, x, w, eps)
		for i := range x {
			want := float64(x[i]) * scale * float64(w[i])
			if d := math.Abs(float64(dst[i]) - want); d > 4e-7*math.Abs(want)+1e-30 {
				t.Fatalf("n=%d element %d: %g, want %g", n, i, dst[i], want)
			}
		}
		RMSNorm(x, x, w, eps) // in place
		if !bitsEqual(x, dst) {
			t.Fatalf("n=%d: in-place RMSNorm differs", n)
		}
	}
	// All zeros: scale 1/sqrt(eps), result zeros.
	z := make([]float32, 8)
	RMSNorm(z, z, slices.Repeat([]float32{1}, 8), 1e-6)
	if slices.ContainsFunc(z, func(v float32) bool { return v != 0 }) {
		t.Errorf("RMSNorm of zeros = %v", z)
	}
}

func TestSoftmax(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, x := range [][]float32{
		{0},
		{1, 2, 3},
		{1000, 1000, -1000},
		{float32(math.Inf(-1)), 0, 1},
		randNormal(rng, 100, 5),
		randNormal(rng, 50000, 2),
	} {
		want := make([]float64, len(x))
		m := math.Inf(-1)
		for _, v := range x {
			m = max(m, float64(v))
		}
		var s float64
		for i, v := range x {
			want[i] = math.Exp(float64(v) - m)
			s += want[i]
		}
		got := slices.Clone(x)
		Softmax(got)
		var sum float64
		for i := range got {
			want[i] /= s
			sum += float64(got[i])
			// x-m is rounded to float32: its error grows with |x-m|.
			rel := 0x1p-23 * (math.Abs(float64(x[i])-m) + 4)
			if d := math.Abs(float64(got[i]) - want[i]); d > rel*want[i]+1e-30 {
				t.Fatalf("len %d element %d: %g, want %g", len(x), i, got[i], want[i])
			}
		}
		if math.Abs(sum-1) > 1e-6 {
			t.Errorf("len %d: sum %g", len(x), sum)
		}
	}
	Softmax(nil)
}

func TestSiLUSwiGLUAdd(t *testing.T) {
	for _, x := range []float32{0, 1, -1, 5, -20, 88, -88} {
		want := float64(x) / (1 + math.Exp(-float64(x)))
		if got := SiLU(x); math.Abs(float64(got)-want) > 2e-7*math.Abs(want) {
			t.Errorf("SiLU(%g) = %g, want %g", x, got, want)
		}
	}
	gate := []float32{-2, 0, 1, 3}
	up := []float32{1, 2, 3, 4}
	dst := make([]float32, 4)
	SwiGLU(dst, gate, up)
	for i := range dst {
		if want := SiLU(gate[i]) * up[i]; dst[i] != want {
			t.Errorf("SwiGLU[%d] = %g, want %g", i, dst[i], want)
		}
	}
	SwiGLU(gate, gate, up) // dst aliases gate
	if !bitsEqual(gate, dst) {
		t.Errorf("in-place SwiGLU = %v, want %v", gate, dst)
	}
	Add(dst, up)
	for i := range dst {
		if want := SiLU([]float32{-2, 0, 1, 3}[i])*up[i] + up[i]; dst[i] != want {
			t.Errorf("Add[%d] = %g, want %g", i, dst[i], want)
		}
	}
}

// ropeRef rotates x by the direct float64 formula.
func ropeRef(r RoPE, x []float64, nHeads, headDim, pos int) {
	fs := float64(r.FreqScale)
	if fs == 0 {
		fs = 1
	}
	half := r.Dims / 2
	for h := range nHeads {
		head := x[h*headDim:]
		for i := range half {
			theta := float64(pos) * math.Pow(float64(r.Base), -2*float64(i)/float64(r.Dims))
			if r.Factors != nil {
				theta /= float64(r.Factors[i])
			}
			theta *= fs
			a, b := 2*i, 2*i+1
			if r.NEOX {
				a, b = i, i+half
			}
			x0, x1 := head[a], head[b]
			head[a] = x0*math.Cos(theta) - x1*math.Sin(theta)
			head[b] = x0*math.Sin(theta) + x1*math.Cos(theta)
		}
	}
}

func TestRoPE(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	factors := make([]float32, 32)
	for i := range factors {
		factors[i] = 1 + float32(i)/4
	}
	for _, c := range []struct {
		name            string
		r               RoPE
		nHeads, headDim int
	}{
		{"normal", RoPE{Dims: 64, Base: 10000}, 4, 64},
		{"neox", RoPE{Dims: 64, Base: 1e6, NEOX: true}, 4, 64},
		{"partial", RoPE{Dims: 32, Base: 10000}, 3, 64},
		{"partial-neox", RoPE{Dims: 16, Base: 10000, NEOX: true}, 3, 48},
		{"scaled", RoPE{Dims: 64, Base: 500000, FreqScale: 0.25}, 2, 64},
		{"factors", RoPE{Dims: 64, Base: 500000, Factors: factors}, 2, 64},
		{"head8", RoPE{Dims: 8, Base: 10000}, 8, 8},
	} {
		for _, pos := range []int{0, 1, 5, 100, 4000} {
			t.Run(fmt.Sprintf("%s/pos%d", c.name, pos), func(t *testing.T) {
				x := randNormal(rng, c.nHeads*c.headDim, 1)
				want := make([]float64, len(x))
				for i, v := range x {
					want[i] = float64(v)
				}
				got := slices.Clone(x)
				c.r.Apply(got, c.nHeads, c.headDim, pos)
				ropeRef(c.r, want, c.nHeads, c.headDim, pos)
				// The angle of pair i comes from a running float32
				// product: relative error up to about i ulps, times pos.
				tol := float64(pos)*float64(c.r.Dims)*0x1p-23 + 1e-6
				for i := range got {
					d := i % c.headDim
					if d >= c.r.Dims {
						if got[i] != x[i] {
							t.Fatalf("passthrough element %d changed: %g -> %g", i, x[i], got[i])
						}
						continue
					}
					if e := math.Abs(float64(got[i]) - want[i]); e > tol*(1+math.Abs(want[i])) {
						t.Fatalf("element %d: %g, want %g (tol %g)", i, got[i], want[i], tol)
					}
				}
				if pos == 0 && !bitsEqual(got, x) {
					t.Fatal("pos 0 is not the identity")
				}
			})
		}
	}
}

// attentionRef computes attention for one query in float64, rounding q and
// the probabilities to F16 when f16 is set, as llama.cpp does.
func attentionRef(q, keys, values []float32, n, nHeads, nKVHeads, hd int, scale float64, f16 bool) (out, tol []float64) {
	out, tol = make([]float64, nHeads*hd), make([]float64, nHeads*hd)
	rnd := func(v float64) float64 {
		if f16 {
			return float64(F16ToF32(F32ToF16(float32(v))))
		}
		return v
	}
	for h := range nHeads {
		kv := h / (nHeads / nKVHeads)
		s := make([]float64, n)
		m := math.Inf(-1)
		for p := range n {
			for d := range hd {
				s[p] += rnd(float64(q[h*hd+d])) * float64(keys[(p*nKVHeads+kv)*hd+d])
			}
			s[p] *= scale
			m = max(m, s[p])
		}
		var sum float64
		for p := range s {
			s[p] = math.Exp(s[p] - m)
			sum += s[p]
		}
		for p := range s {
			pr := s[p] / sum
			// A probability may land on the other side of an F16
			// rounding boundary: one F16 ulp (2^-10 relative) of slack.
			slack := 1e-5 * pr
			if f16 {
				slack += pr * 0x1p-10
			}
			for d := range hd {
				v := float64(values[(p*nKVHeads+kv)*hd+d])
				out[h*hd+d] += rnd(pr) * v
				tol[h*hd+d] += slack * math.Abs(v)
			}
		}
	}
	return out, tol
}

func TestAttention(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	p := NewPool(3)
	defer p.Close()
	for _, c := range []struct{ n, nHeads, nKVHeads, hd int }{
		{1, 8, 2, 16},
		{5, 8, 2, 64},
		{37, 8, 2, 64},
		{100, 4, 4, 16},
		{9, 8, 1, 8},
		{260, 32, 8, 128},
		{40, 4, 2, 12}, // head dim not a multiple of 8
	} {
		t.Run(fmt.Sprintf("n%d-h%d-kv%d-d%d", c.n, c.nHeads, c.nKVHeads, c.hd), func(t *testing.T) {
			q := randNormal(rng, c.nHeads*c.hd, 1)
			kvLen := c.n * c.nKVHeads * c.hd
			k32, v32 := randNormal(rng, kvLen, 1), randNormal(rng, kvLen, 1)
			k16, v16 := make([]uint16, kvLen), make([]uint16, kvLen)
			kr, vr := make([]float32, kvLen), make([]float32, kvLen)
			for i := range k32 {
				k16[i], v16[i] = F32ToF16(k32[i]), F32ToF16(v32[i])
				kr[i], vr[i] = F16ToF32(k16[i]), F16ToF32(v16[i])
			}
			scale := float32(1 / math.Sqrt(float64(c.hd)))
			att := make([]float32, c.nHeads*c.n)
			for _, mode := range []string{"f16", "f16batch", "f32"} {
				f16 := mode != "f32"
				keys, values := k32, v32
				if f16 {
					keys, values = kr, vr
				}
				want, tol := attentionRef(q, keys, values, c.n, c.nHeads, c.nKVHeads, c.hd, float64(scale), f16)
				var first []float32
				for _, pool := range []*Pool{nil, p} {
					out := make([]float32, c.nHeads*c.hd)
					switch mode {
					case "f16":
						AttentionF16(pool, out, q, k16, v16, PosMajor(c.nKVHeads, c.hd), c.n, c.nHeads, c.nKVHeads, c.hd, scale, att)
					case "f16batch":
						AttentionF16Batch(pool, out, q, k16, v16, PosMajor(c.nKVHeads, c.hd), c.n, c.nHeads, c.nKVHeads, c.hd, scale, att)
					default:
						AttentionF32(pool, out, q, k32, v32, PosMajor(c.nKVHeads, c.hd), c.n, c.nHeads, c.nKVHeads, c.hd, scale, att)
					}
					for i := range out {
						if d := math.Abs(float64(out[i]) - want[i]); d > tol[i]+1e-6 {
							t.Fatalf("%s workers=%d out[%d] = %g, want %g (tol %g)", mode, pool.Size(), i, out[i], want[i], tol[i])
						}
					}
					if first == nil {
						first = out
					} else if !bitsEqual(out, first) {
						t.Fatalf("%s: %d workers differ from 1", mode, pool.Size())
					}
				}
				if c.n == 1 {
					// One position: probability exactly 1, out = v of the group's KV head.
					for h := range c.nHeads {
						kv := h / (c.nHeads / c.nKVHeads)
						if !bitsEqual(first[h*c.hd:(h+1)*c.hd], values[kv*c.hd:(kv+1)*c.hd]) {
							t.Fatalf("%s head %d: n=1 output is not its value row", mode, h)
						}
					}
				}
			}
		})
	}
}

// headMajor returns a head-major copy (HeadMajor(room, hd)) of the n
// positions of a position-major cache of nkv heads of hd, fill in the room
// past n (to show a kernel reading past the positions it was given).
func headMajor[T any](src []T, n, nkv, hd, room int, fill T) []T {
	dst := make([]T, nkv*room*hd)
	for i := range dst {
		dst[i] = fill
	}
	for h := range nkv {
		for p := range n {
			copy(dst[h*room*hd+p*hd:][:hd], src[p*nkv*hd+h*hd:][:hd])
		}
	}
	return dst
}

// TestAttentionLayouts checks that every attention entry point gives,
// over a head-major cache (NaNs in its room past the positions held),
// bitwise what it gives over the same entries position-major, on one
// worker and on several: query heads one at a time and, where they apply,
// four sharing a KV head; head sizes that are and are not multiples of 8.
func TestAttentionLayouts(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	p := NewPool(3)
	defer p.Close()
	nan32 := float32(math.NaN())
	for _, c := range []struct{ n, nHeads, nKVHeads, hd int }{
		{1, 4, 2, 16},
		{37, 8, 2, 64},
		{70, 32, 8, 128},
		{9, 4, 4, 12},
	} {
		t.Run(fmt.Sprintf("n%d-h%d-kv%d-d%d", c.n, c.nHeads, c.nKVHeads, c.hd), func(t *testing.T) {
			kvLen, room := c.n*c.nKVHeads*c.hd, c.n+5
			k32, v32 := randNormal(rng, kvLen, 1), randNormal(rng, kvLen, 1)
			k16, v16 := make([]uint16, kvLen), make([]uint16, kvLen)
			for i := range k32 {
				k16[i], v16[i] = F32ToF16(k32[i]), F32ToF16(v32[i])
			}
			hk16, hv16 := headMajor(k16, c.n, c.nKVHeads, c.hd, room, 0x7e00), headMajor(v16, c.n, c.nKVHeads, c.hd, room, 0x7e00)
			hk32, hv32 := headMajor(k32, c.n, c.nKVHeads, c.hd, room, nan32), headMajor(v32, c.n, c.nKVHeads, c.hd, room, nan32)
			pm, hm := PosMajor(c.nKVHeads, c.hd), HeadMajor(room, c.hd)
			qd, nq := c.nHeads*c.hd, min(c.n, 4)
			q := randNormal(rng, nq*qd, 1)
			scale := float32(1 / math.Sqrt(float64(c.hd)))
			for _, pool := range []*Pool{nil, p} {
				run := func(head bool) []float32 {
					keys, values, keys32, values32, kv := k16, v16, k32, v32, pm
					if head {
						keys, values, keys32, values32, kv = hk16, hv16, hk32, hv32, hm
					}
					var res []float32
					att := make([]float32, c.nHeads*c.n)
					for _, f := range []func(out []float32){
						func(out []float32) {
							AttentionF16(pool, out, q[:qd], keys, values, kv, c.n, c.nHeads, c.nKVHeads, c.hd, scale, att)
						},
						func(out []float32) {
							AttentionF16Batch(pool, out, q[:qd], keys, values, kv, c.n, c.nHeads, c.nKVHeads, c.hd, scale, att)
						},
						func(out []float32) {
							AttentionF32(pool, out, q[:qd], keys32, values32, kv, c.n, c.nHeads, c.nKVHeads, c.hd, scale, att)
						},
					} {
						out := make([]float32, qd)
						f(out)
						res = append(append(res, out...), att...)
					}
					causal := make([]float32, nq*qd)
					AttentionF16Causal(pool, causal, q, keys, values, kv, nq, c.n-nq, c.nHeads, c.nKVHeads, c.hd, scale)
					return append(res, causal...)
				}
				if got, want := run(true), run(false); !bitsEqual(got, want) {
					t.Fatalf("workers=%d: head-major differs from position-major", pool.Size())
				}
			}
		})
	}
}

// TestAttentionF16Causal checks that a causal batch of queries in one call
// is bitwise AttentionF16Batch of each query over its own prefix, on one
// worker and on several.
func TestAttentionF16Causal(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	p := NewPool(3)
	defer p.Close()
	for _, c := range []struct{ nq, pos0, nHeads, nKVHeads, hd int }{
		{1, 0, 8, 2, 16},
		{7, 0, 8, 2, 64},
		{13, 20, 4, 4, 16},
		{40, 3, 32, 8, 64},
		{9, 5, 4, 2, 12}, // head dim not a multiple of 8
	} {
		t.Run(fmt.Sprintf("q%d-at%d-h%d-kv%d-d%d", c.nq, c.pos0, c.nHeads, c.nKVHeads, c.hd), func(t *testing.T) {
			n, qd := c.pos0+c.nq, c.nHeads*c.hd
			kvLen := n * c.nKVHeads * c.hd
			k16, v16 := make([]uint16, kvLen), make([]uint16, kvLen)
			for i, v := range randNormal(rng, 2*kvLen, 1) {
				if i < kvLen {
					k16[i] = F32ToF16(v)
				} else {
					v16[i-kvLen] = F32ToF16(v)
				}
			}
			q := randNormal(rng, c.nq*qd, 1)
			scale := float32(1 / math.Sqrt(float64(c.hd)))
			want := make([]float32, c.nq*qd)
			att := make([]float32, c.nHeads*n)
			for i := range c.nq {
				m := c.pos0 + i + 1
				AttentionF16Batch(nil, want[i*qd:(i+1)*qd], q[i*qd:(i+1)*qd], k16[:m*c.nKVHeads*c.hd], v16[:m*c.nKVHeads*c.hd], PosMajor(c.nKVHeads, c.hd),
					m, c.nHeads, c.nKVHeads, c.hd, scale, att)
			}
			for _, pool := range []*Pool{nil, p} {
				got := make([]float32, c.nq*qd)
				AttentionF16Causal(pool, got, q, k16, v16, PosMajor(c.nKVHeads, c.hd), c.nq, c.pos0, c.nHeads, c.nKVHeads, c.hd, scale)
				if !bitsEqual(got, want) {
					t.Fatalf("workers=%d: differs from one query at a time", pool.Size())
				}
			}
		})
	}
}

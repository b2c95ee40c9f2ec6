package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchMatrix returns a rows x cols matrix of random blocks (finite scales),
// which is as fast to multiply as a real one and quick to build.
func benchMatrix(b testing.TB, typ DType, rows, cols int) Matrix {
	b.Helper()
	benchSeed++
	rng := rand.New(rand.NewPCG(uint64(typ)+benchSeed<<8, uint64(rows*cols)))
	if typ.BlockSize() == 1 {
		m, err := NewMatrix(typ, rows, cols, Quantize(nil, typ, randNormal(rng, rows*cols, 0.02)))
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	rb, _ := typ.RowBytes(cols)
	data := make([]byte, rows*rb)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	sanitizeScales(typ, data)
	if typ == Q8_0 {
		noQ8Min(data) // as ggml quantizes: the packed AVX2 kernels' fast form
	}
	m, err := NewMatrix(typ, rows, cols, data)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

var benchShapes = [][2]int{{4096, 4096}, {2048, 5632}}

// BenchmarkMatVec reports weight bytes per second (MB/s) for one token:
// decode speed is bounded by memory bandwidth over these bytes.
func BenchmarkMatVec(b *testing.B) {
	p := NewPool(0)
	defer p.Close()
	for _, typ := range []DType{F32, F16, Q8_0, Q4_0, Q4_K, Q6_K} {
		for _, s := range benchShapes {
			b.Run(fmt.Sprintf("%v/%dx%d/p%d", typ, s[0], s[1], p.Size()), func(b *testing.B) {
				w := benchMatrix(b, typ, s[0], s[1])
				x := randNormal(rand.New(rand.NewPCG(1, 1)), w.Cols, 1)
				dst := make([]float32, w.Rows)
				b.SetBytes(int64(len(w.Data)))
				b.ReportAllocs()
				for b.Loop() {
					MatVec(p, dst, w, x)
				}
			})
		}
	}
}

// BenchmarkMatMul multiplies 16 tokens at once (a prefill batch).
func BenchmarkMatMul(b *testing.B) {
	const n = 16
	p := NewPool(0)
	defer p.Close()
	for _, typ := range []DType{F32, F16, Q8_0, Q4_0, Q4_K, Q6_K} {
		s := benchShapes[0]
		b.Run(fmt.Sprintf("%v/%dx%d/n%d/p%d", typ, s[0], s[1], n, p.Size()), func(b *testing.B) {
			w := benchMatrix(b, typ, s[0], s[1])
			x := randNormal(rand.New(rand.NewPCG(1, 1)), n*w.Cols, 1)
			dst := make([]float32, n*w.Rows)
			b.SetBytes(int64(len(w.Data)))
			b.ReportAllocs()
			for b.Loop() {
				MatMul(p, dst, w, x, n)
			}
			b.ReportMetric(float64(b.N)*n*2*float64(w.Rows*w.Cols)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkAttention is one query over n cached positions of a 1B-like
// model (32 heads, 8 KV heads, head dim 64); SetBytes counts the KV bytes.
func BenchmarkAttention(b *testing.B) {
	const nh, nkv, hd = 32, 8, 64
	p := NewPool(0)
	defer p.Close()
	rng := rand.New(rand.NewPCG(2, 2))
	for _, n := range []int{128, 2048} {
		q := randNormal(rng, nh*hd, 1)
		k32, v32 := randNormal(rng, n*nkv*hd, 1), randNormal(rng, n*nkv*hd, 1)
		k16, v16 := make([]uint16, len(k32)), make([]uint16, len(v32))
		for i := range k32 {
			k16[i], v16[i] = F32ToF16(k32[i]), F32ToF16(v32[i])
		}
		out, att := make([]float32, nh*hd), make([]float32, nh*n)
		b.Run(fmt.Sprintf("F16/n%d/p%d", n, p.Size()), func(b *testing.B) {
			b.SetBytes(int64(4 * len(k16)))
			b.ReportAllocs()
			for b.Loop() {
				AttentionF16(p, out, q, k16, v16, PosMajor(nkv, hd), n, nh, nkv, hd, 0.125, att)
			}
		})
		b.Run(fmt.Sprintf("F16Batch/n%d/p%d", n, p.Size()), func(b *testing.B) {
			b.SetBytes(int64(4 * len(k16)))
			b.ReportAllocs()
			for b.Loop() {
				AttentionF16Batch(p, out, q, k16, v16, PosMajor(nkv, hd), n, nh, nkv, hd, 0.125, att)
			}
		})
		b.Run(fmt.Sprintf("F32/n%d/p%d", n, p.Size()), func(b *testing.B) {
			b.SetBytes(int64(8 * len(k32)))
			b.ReportAllocs()
			for b.Loop() {
				AttentionF32(p, out, q, k32, v32, PosMajor(nkv, hd), n, nh, nkv, hd, 0.125, att)
			}
		})
	}
}

// BenchmarkAttentionLayouts is decode attention over the KV caches of 16
// layers of a 1B-like model (32 heads, 8 KV heads, head dim 64) at 2048
// positions, layer after layer as in a decoded token, so that each layer's
// cache comes from memory (64 MB in all): position-major against
// head-major with room for 2560 positions. SetBytes counts the KV bytes
// read.
func BenchmarkAttentionLayouts(b *testing.B) {
	const nh, nkv, hd, n, room, layers = 32, 8, 64, 2048, 2560, 16
	p := NewPool(0)
	defer p.Close()
	rng := rand.New(rand.NewPCG(4, 4))
	q := randNormal(rng, nh*hd, 1)
	out, att := make([]float32, nh*hd), make([]float32, nh*n)
	type cache struct{ k, v []uint16 }
	var pm, hm [layers]cache
	for l := range layers {
		k16, v16 := make([]uint16, n*nkv*hd), make([]uint16, n*nkv*hd)
		for i, x := range randNormal(rng, 2*len(k16), 1) {
			if i < len(k16) {
				k16[i] = F32ToF16(x)
			} else {
				v16[i-len(k16)] = F32ToF16(x)
			}
		}
		pm[l] = cache{k16, v16}
		hm[l] = cache{headMajor(k16, n, nkv, hd, room, 0), headMajor(v16, n, nkv, hd, room, 0)}
	}
	for _, c := range []struct {
		name   string
		caches *[layers]cache
		kv     KVLayout
	}{{"pos-major", &pm, PosMajor(nkv, hd)}, {"head-major", &hm, HeadMajor(room, hd)}} {
		b.Run(fmt.Sprintf("%s/n%d/p%d", c.name, n, p.Size()), func(b *testing.B) {
			b.SetBytes(int64(layers * 2 * 2 * n * nkv * hd))
			b.ReportAllocs()
			for b.Loop() {
				for l := range c.caches {
					AttentionF16(p, out, q, c.caches[l].k, c.caches[l].v, c.kv, n, nh, nkv, hd, 0.125, att)
				}
			}
		})
	}
}

// BenchmarkQuantizeAct rounds one 4096-element activation row into each
// vec-dot type.
func BenchmarkQuantizeAct(b *testing.B) {
	x := randNormal(rand.New(rand.NewPCG(3, 3)), 4096, 1)
	for _, xt := range []DType{F16, Q8_0, Q8_1, Q8_K} {
		b.Run(xt.String(), func(b *testing.B) {
			n, _ := xt.RowBytes(len(x))
			y := make([]byte, n)
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				quantizeAct(y, xt, x)
			}
		})
	}
}

// BenchmarkMatVecStream multiplies one token by a stack of 1B-like layer
// matrices (2048x2048, 512x2048 twice, 2048x2048, 5632x2048 twice,
// 2048x5632) repeated until the weights are far larger than the caches, as
// a decode step streams them: MB/s is the bandwidth the kernels reach from
// memory, to set beside MeasureBandwidth.
func BenchmarkMatVecStream(b *testing.B) {
	p := NewPool(0)
	defer p.Close()
	shapes := [][2]int{{2048, 2048}, {512, 2048}, {512, 2048}, {2048, 2048}, {5632, 2048}, {5632, 2048}, {2048, 5632}}
	bw := MeasureBandwidth(p, 256<<20, 3)
	for _, typ := range []DType{F16, Q8_0, Q4_0, Q4_K, Q6_K} {
		b.Run(typ.String(), func(b *testing.B) {
			var ws []Matrix
			total := 0
			for total < 192<<20 {
				for _, s := range shapes {
					w := benchMatrix(b, typ, s[0], s[1]).Packed()
					ws = append(ws, w)
					total += len(w.Data)
				}
			}
			x := randNormal(rand.New(rand.NewPCG(1, 1)), 5632, 1)
			dst := make([]float32, 5632)
			b.SetBytes(int64(total))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for _, w := range ws {
					MatVec(p, dst[:w.Rows], w, x[:w.Cols])
				}
			}
			b.ReportMetric(float64(b.N)*float64(total)/b.Elapsed().Seconds()/bw*100, "%bandwidth")
		})
	}
}

// benchSeed makes each benchMatrix call's data differ.
var benchSeed uint64

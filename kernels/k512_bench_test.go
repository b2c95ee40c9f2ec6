//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// kDotSink keeps the benchmarked results alive.
var kDotSink float32

// BenchmarkKQuant512 times the K-quants' one-token dots, AVX2 against
// AVX-512, as whole matrix-vector products a row at a time on one
// goroutine against one token's Q8_K activations, over 2048-column rows:
// "cache" is 256 rows (in L2 after the first pass), "mem" about 256 MB
// (streamed from memory). MB/s counts weight bytes.
func BenchmarkKQuant512(b *testing.B) {
	const cols = 2048
	nb := cols / QKK
	rng := rand.New(rand.NewPCG(5, 512))
	x := make([]byte, nb*q8_KBytes)
	quantizeQ8_K(x, randNormal(rng, cols, 1))
	type dot = func(w, x []byte, nb int) float32
	for _, k := range []struct {
		typ          DType
		avx2, avx512 dot
	}{
		{Q4_K, dotQ4_KQ8_KAsm, dotQ4_KQ8_KAsm512},
		{Q5_K, dotQ5_KQ8_KAsm, dotQ5_KQ8_KAsm512},
		{Q6_K, dotQ6_KQ8_KAsm, dotQ6_KQ8_KAsm512},
	} {
		rb, _ := k.typ.RowBytes(cols)
		for _, m := range []struct {
			name string
			rows int
		}{{"cache", 256}, {"mem", (256 << 20) / rb}} {
			var w []byte
			for _, impl := range []struct {
				name string
				ok   bool
				dot  dot
			}{{"AVX2", useAVX2, k.avx2}, {"AVX512", useAVX512, k.avx512}} {
				b.Run(k.typ.String()+"/"+m.name+"/"+impl.name, func(b *testing.B) {
					if !impl.ok {
						b.Skip("not on this CPU")
					}
					if w == nil { // random blocks with finite scales, made once for both kernels
						w = make([]byte, m.rows*rb)
						for i := 0; i+8 <= len(w); i += 8 {
							binary.LittleEndian.PutUint64(w[i:], rng.Uint64())
						}
						sanitizeScales(k.typ, w)
					}
					b.SetBytes(int64(len(w)))
					var s float32
					for b.Loop() {
						for r := range m.rows {
							s += impl.dot(w[r*rb:(r+1)*rb], x, nb)
						}
					}
					kDotSink += s
				})
			}
		}
	}
}

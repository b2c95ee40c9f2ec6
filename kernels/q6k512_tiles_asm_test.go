//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"testing"
)

var kt512Q6K = kt512{
	typ: Q6_K, tok4: dotQ6_KQ8_KTok4AVX512, one: dotQ6_KQ8_KAsm512, ref: dotQ6_KQ8_K,
	weights: q6k512Weights, extremes: kt512Q6KExtremes,
	driver: kTiles{Q6_K, dotQ6_KTiles512, dotQ6_KQ8_K, dotQ6_KQ8_KTok4AVX512, []int{q6_KBytes - 1}, true},
}

// kt512Q6KExtremes returns a Q6_K block for every combination of
// all-zero/all-ones low and high quant bits, scales all -128, 127 or 0, and
// d among q6k512Halves (the largest and smallest normal of both signs, 1
// and the smallest subnormal).
func kt512Q6KExtremes() [][]byte {
	var blocks [][]byte
	for _, ql := range []byte{0, 0xff} {
		for _, qh := range []byte{0, 0xff} {
			for _, sc := range []byte{0x80, 0x7f, 0} {
				for _, d := range q6k512Halves {
					w := make([]byte, q6_KBytes)
					for i := range 128 {
						w[i] = ql
					}
					for i := 128; i < 192; i++ {
						w[i] = qh
					}
					for i := 192; i < 208; i++ {
						w[i] = sc
					}
					binary.LittleEndian.PutUint16(w[208:], d)
					blocks = append(blocks, w)
				}
			}
		}
	}
	return blocks
}

// TestKTiles512Q6K checks dotQ6_KQ8_KTok4AVX512 (kt512Test).
func TestKTiles512Q6K(t *testing.T) { kt512Test(t, kt512Q6K, 81) }

// TestKTiles512Q6KDriver checks dotQ6_KTiles512 (kt512DriverTest).
func TestKTiles512Q6KDriver(t *testing.T) { kt512DriverTest(t, kt512Q6K, 83) }

// FuzzKTiles512Q6K fuzzes dotQ6_KQ8_KTok4AVX512 (kt512Fuzz).
func FuzzKTiles512Q6K(f *testing.F) { kt512Fuzz(f, kt512Q6K) }

// BenchmarkKTiles512Q6K compares the Q6_K 4-token kernels and drivers
// (kt512Bench) on 256 rows x 2048 columns x 32 tokens.
func BenchmarkKTiles512Q6K(b *testing.B) {
	kt512Bench(b, kt512Q6K, dotQ6_KTiles, dotQ6_KQ8_KTok4AVX2)
}

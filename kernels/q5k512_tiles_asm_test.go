//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"testing"
)

// kt512Q5K is the Q5_K AVX-512 4-token kernel under test (kt512,
// q4k512_tiles_asm_test.go): random weights from q5kWeights (random or
// extreme fields, block by block).
var kt512Q5K = kt512{
	typ: Q5_K, tok4: dotQ5_KQ8_KTok4AVX512, one: dotQ5_KQ8_KAsm512, ref: dotQ5_KQ8_K,
	weights: q5kWeights, extremes: kt512Q5KExtremes,
	driver: kTiles{Q5_K, dotQ5_KTiles512, dotQ5_KQ8_K, dotQ5_KQ8_KTok4AVX512, []int{1, 3}, true},
}

// kt512Q5KExtremes returns a Q5_K block for every combination of
// all-zero/all-ones scales, fifth bits (qh) and quants (qs), and the largest
// and smallest normal d and dmin of both signs (and 1).
func kt512Q5KExtremes() [][]byte {
	halves := []uint16{0x7bff, 0xfbff, 0x0400, 0x8400, 0x3c00}
	var blocks [][]byte
	for mask := range 8 {
		for _, d := range halves {
			for _, dmin := range halves {
				w := make([]byte, q5_KBytes)
				binary.LittleEndian.PutUint16(w[0:], d)
				binary.LittleEndian.PutUint16(w[2:], dmin)
				for i, r := range [][2]int{{4, 16}, {16, 48}, {48, 176}} {
					if mask>>i&1 != 0 {
						for j := r[0]; j < r[1]; j++ {
							w[j] = 0xff
						}
					}
				}
				blocks = append(blocks, w)
			}
		}
	}
	return blocks
}

// TestKTiles512Q5K checks dotQ5_KQ8_KTok4AVX512 bit for bit against
// dotQ5_KQ8_K and dotQ5_KQ8_KAsm512 (kt512Test): nb 1 to 16, q5kWeights
// and quantized weights by q5kActs, true-sum and q5kRawActs activations,
// padded rows and strided outputs, extreme blocks, no blocks.
func TestKTiles512Q5K(t *testing.T) { kt512Test(t, kt512Q5K, 81) }

// TestKTiles512Q5KDriver checks dotQ5_KTiles512 (kt512DriverTest: leftover
// tokens, two blocks of rows of q4kTileBytes, spans, padded rows).
func TestKTiles512Q5KDriver(t *testing.T) { kt512DriverTest(t, kt512Q5K, 83) }

// TestKTiles512Q5KLanes checks dotQ5_KQ8_KTok4AVX512 on blocks whose
// scales, fifth bits and quants single out one sub-block and one bit each,
// so that a fifth bit taken from the wrong bit of qh, or a weight from the
// wrong chunk or half, changes a result.
func TestKTiles512Q5KLanes(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512 (F, BW, DQ) with VNNI")
	}
	rows := kt512ExtremeActs()
	xrb := q8_KBytes + 12
	x := make([]byte, 3*xrb+q8_KBytes)
	for tok := range 4 {
		copy(x[tok*xrb:], rows[tok])
		for j := range QKK { // distinct quants per element and token
			x[tok*xrb+4+j] = byte(int8(j*7 + 13*tok - 100))
		}
	}
	for s := range 8 {
		for bit := range 8 {
			w := make([]byte, q5_KBytes)
			binary.LittleEndian.PutUint16(w[0:], 0x3c00)
			binary.LittleEndian.PutUint16(w[2:], 0x3800)
			for j := 4; j < 16; j++ {
				w[j] = byte(17*j + s)
			}
			for j := range 32 {
				w[16+j] = byte(1<<bit) | byte(j*s)&0x55
				w[48+j] = byte(j*5 + s)
			}
			kt512Check(t, kt512Q5K, w, x, 1, xrb, 2)
		}
	}
}

// FuzzKTiles512Q5K fuzzes dotQ5_KQ8_KTok4AVX512 (kt512Fuzz).
func FuzzKTiles512Q5K(f *testing.F) { kt512Fuzz(f, kt512Q5K) }

// BenchmarkKTiles512Q5K compares the Q5_K 4-token kernels and drivers
// (kt512Bench) on 256 rows x 2048 columns x 32 tokens, one goroutine:
// AVX2Tok4 is dotQ5_KTiles, AVX512Tok4 dotQ5_KTiles512.
func BenchmarkKTiles512Q5K(b *testing.B) {
	kt512Bench(b, kt512Q5K, dotQ5_KTiles, dotQ5_KQ8_KTok4AVX2)
}

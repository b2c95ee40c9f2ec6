//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// kTiles is one K-quant's 4-token prompt kernel under test: its driver, the
// one-token reference it must match bit for bit, the bare 4-token kernel,
// and where a block's F16 scale bytes lie (whose high bytes raw test
// weights keep finite).
type kTiles struct {
	typ    DType
	tiles  func(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int
	ref    func(w, x []byte, nb int) float32
	tok4   func(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)
	halves []int // offsets of the F16 fields' high bytes in a block
	// anyActs: exact for any activation bytes (quants of -128, group sums
	// unrelated to the quants), not only quantizeQ8_K's.
	anyActs bool
}

var kTileKernels = []kTiles{
	{Q4_K, dotQ4_KTiles, dotQ4_KQ8_K, dotQ4_KQ8_KTok4AVX2, []int{1, 3}, false},
	{Q5_K, dotQ5_KTiles, dotQ5_KQ8_K, dotQ5_KQ8_KTok4AVX2, []int{1, 3}, true},
	{Q6_K, dotQ6_KTiles, dotQ6_KQ8_K, dotQ6_KQ8_KTok4AVX2, []int{q6_KBytes - 1}, false},
}

// ktActs returns n activation rows of cols columns quantized to Q8_K by
// quantizeQ8_K from random normals (row i scaled by scale*2^(i%7-3)), and
// the row size in bytes.
func ktActs(t testing.TB, rng *rand.Rand, n, cols int, scale float64) ([]byte, int) {
	t.Helper()
	xrb, ok := Q8_K.RowBytes(cols)
	if !ok {
		t.Fatalf("no Q8_K rows of %d columns", cols)
	}
	x := make([]byte, n*xrb)
	for i := range n {
		quantizeQ8_K(x[i*xrb:(i+1)*xrb], randNormal(rng, cols, scale*math.Ldexp(1, i%7-3)))
	}
	return x, xrb
}

// ktRawActs returns n raw Q8_K rows of nb blocks: random bytes (quants of
// -128 and arbitrary group sums included) with a finite float32 scale.
func ktRawActs(rng *rand.Rand, n, nb int, exp int) []byte {
	x := make([]byte, n*nb*q8_KBytes)
	for i := range x {
		x[i] = byte(rng.Uint32())
	}
	for b := 0; b < len(x); b += q8_KBytes {
		d := float32(rng.NormFloat64() * math.Ldexp(1, exp))
		binary.LittleEndian.PutUint32(x[b:], math.Float32bits(d))
	}
	return x
}

// ktRawMatrix returns a rows x nb*QKK matrix of k's type from random bytes:
// any scales, mins and quants, with finite F16 fields of either sign (for
// Q5_K, q5kWeights' blocks, extremes included).
func ktRawMatrix(t testing.TB, rng *rand.Rand, k kTiles, rows, nb int) Matrix {
	t.Helper()
	bb := k.typ.BlockBytes()
	data := make([]byte, rows*nb*bb)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for b := 0; b < len(data); b += bb {
		for _, o := range k.halves {
			data[b+o] &= 0xf7 // exponent field at most 29
		}
	}
	if k.typ == Q5_K {
		data = q5kWeights(rng, rows*nb) // random or extreme fields, block by block
	}
	w, err := NewMatrix(k.typ, rows, nb*QKK, data)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// ktCheck runs k's driver over rows [lo, hi) of w by the n rows of x and
// fails unless every element it writes is k's reference bit for bit (two
// NaNs agree whatever their payloads) and it writes nothing else.
func ktCheck(t testing.TB, k kTiles, w Matrix, x []byte, xrb, n, lo, hi int) {
	t.Helper()
	const sentinel = -12345.5
	got := make([]float32, n*w.Rows)
	for i := range got {
		got[i] = sentinel
	}
	if end := k.tiles(got, w, x, xrb, n, lo, hi); end != hi {
		t.Fatalf("%v rows %d x %d, span [%d, %d): returned %d", k.typ, w.Rows, w.Cols, lo, hi, end)
	}
	nb := w.Cols / QKK
	for i := range n {
		for r := range w.Rows {
			g := got[i*w.Rows+r]
			if r < lo || r >= hi {
				if g != sentinel {
					t.Fatalf("%v rows %d x %d, span [%d, %d), n=%d: wrote row %d token %d", k.typ, w.Rows, w.Cols, lo, hi, n, r, i)
				}
				continue
			}
			want := k.ref(w.Row(r), x[i*xrb:(i+1)*xrb], nb)
			if math.Float32bits(g) != math.Float32bits(want) && !(g != g && want != want) {
				t.Fatalf("%v rows %d x %d, span [%d, %d), n=%d: row %d token %d: %g (%#08x), reference %g (%#08x)",
					k.typ, w.Rows, w.Cols, lo, hi, n, r, i, g, math.Float32bits(g), want, math.Float32bits(want))
			}
		}
	}
}

// TestKTilesAsm runs each K-quant's 4-token driver (the 4-token kernel
// and the leftover tokens) over matrices of several shapes, token counts
// with and without leftovers, and row spans, against the one-token
// reference bit for bit: quantized weights, and raw weight blocks (any
// scales and quants), by quantizeQ8_K activations, and for the kernels
// exact for any activations (Q5_K) also raw Q8_K bytes.
func TestKTilesAsm(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 on this CPU")
	}
	rng := rand.New(rand.NewPCG(61, 62))
	for _, k := range kTileKernels {
		for _, kind := range []string{"quantized", "raw-weights", "raw-acts"} {
			if kind == "raw-acts" && !k.anyActs {
				continue
			}
			t.Run(fmt.Sprintf("%v/%s", k.typ, kind), func(t *testing.T) {
				for _, c := range []struct{ rows, nb int }{{1, 1}, {5, 1}, {9, 2}, {16, 8}, {7, 22}, {33, 22}} {
					cols := c.nb * QKK
					w := randMatrix(t, rng, k.typ, c.rows, cols)
					if kind != "quantized" {
						w = ktRawMatrix(t, rng, k, c.rows, c.nb)
					}
					for _, n := range []int{4, 5, 7, 8, 13} {
						x, xrb := ktActs(t, rng, n, cols, 1)
						if kind == "raw-acts" {
							x = ktRawActs(rng, n, c.nb, -7)
						}
						spans := [][2]int{{0, c.rows}}
						if c.rows > 2 {
							spans = append(spans, [2]int{1, c.rows - 1}, [2]int{c.rows / 2, c.rows/2 + 1})
						}
						for _, s := range spans {
							ktCheck(t, k, w, x, xrb, n, s[0], s[1])
						}
					}
				}
			})
		}
	}
}

// TestKTilesAsmPadded runs each 4-token kernel on activation rows with
// padding after each row's blocks (xrb larger than the blocks) and with no
// blocks (nb = 0 writes zeros).
func TestKTilesAsmPadded(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 on this CPU")
	}
	rng := rand.New(rand.NewPCG(63, 64))
	const rows, nb, n = 6, 3, 9
	cols := nb * QKK
	for _, k := range kTileKernels {
		w := randMatrix(t, rng, k.typ, rows, cols)
		x0, xrb0 := ktActs(t, rng, n, cols, 1)
		xrb := xrb0 + 40
		x := make([]byte, n*xrb)
		for i := range n {
			copy(x[i*xrb:], x0[i*xrb0:(i+1)*xrb0])
		}
		ktCheck(t, k, w, x, xrb, n, 0, rows)

		dst := []float32{1, 2, 3, 4}
		k.tok4(&dst[0], 1, &w.Data[0], &x[0], xrb, 0)
		for i, v := range dst {
			if math.Float32bits(v) != 0 {
				t.Fatalf("%v, nb=0: dst[%d] = %g, want +0", k.typ, i, v)
			}
		}
	}
}

// FuzzKTilesAsm checks a K-quant's 4-token driver against its reference on
// quantized or raw weights, by activations quantized by quantizeQ8_K from
// normals of a fuzzed scale or, for the kernels exact for any activations,
// raw Q8_K bytes.
func FuzzKTilesAsm(f *testing.F) {
	if !useAVX2 {
		f.Skip("no AVX2 on this CPU")
	}
	f.Add(uint64(1), uint8(0), uint8(3), uint8(2), uint8(5), int8(0), false, false)
	f.Add(uint64(2), uint8(1), uint8(1), uint8(22), uint8(13), int8(-20), true, true)
	f.Add(uint64(3), uint8(2), uint8(8), uint8(8), uint8(4), int8(30), true, false)
	f.Fuzz(func(t *testing.T, seed uint64, which, rows, nb, n uint8, exp int8, rawWeights, rawActs bool) {
		k := kTileKernels[int(which)%len(kTileKernels)]
		r, b, tok := 1+int(rows%12), 1+int(nb%24), int(n%17)
		rng := rand.New(rand.NewPCG(seed, 65))
		cols := b * QKK
		w := randMatrix(t, rng, k.typ, r, cols)
		if rawWeights {
			w = ktRawMatrix(t, rng, k, r, b)
		}
		x, xrb := ktActs(t, rng, tok, cols, math.Ldexp(1, int(exp%40)))
		if rawActs && k.anyActs {
			x = ktRawActs(rng, tok, b, int(exp%28)-14)
		}
		lo := int(seed>>32) % r
		hi := lo + 1 + int(seed>>40)%(r-lo)
		ktCheck(t, k, w, x, xrb, tok, lo, hi)
	})
}

// BenchmarkKTiles compares, for a 256 x 2048 matrix of each K-quant by 32
// tokens, the 4-token driver with the one-token kernel called per row and
// token.
func BenchmarkKTiles(b *testing.B) {
	if !useAVX2 {
		b.Skip("no AVX2 on this CPU")
	}
	const rows, cols, n = 256, 2048, 32
	rng := rand.New(rand.NewPCG(66, 67))
	for _, k := range kTileKernels {
		w := randMatrix(b, rng, k.typ, rows, cols)
		x, xrb := ktActs(b, rng, n, cols, 1)
		dst := make([]float32, n*rows)
		nb := cols / QKK
		one := fastDot(k.typ, rows, false)
		b.Run(k.typ.String()+"/PerToken", func(b *testing.B) {
			for b.Loop() {
				for r := range rows {
					row := w.Row(r)
					for i := range n {
						dst[i*rows+r] = one(row, x[i*xrb:(i+1)*xrb], nb)
					}
				}
			}
		})
		b.Run(k.typ.String()+"/Tok4", func(b *testing.B) {
			for b.Loop() {
				k.tiles(dst, w, x, xrb, n, 0, rows)
			}
		})
	}
}

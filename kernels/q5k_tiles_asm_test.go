//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// q5ktActs returns n activation rows of cols columns quantized to Q8_K by
// quantizeQ8_K from random normals (row i scaled by 2^(i%7-3)), and the row
// size in bytes.
func q5ktActs(t testing.TB, rng *rand.Rand, n, cols int) ([]byte, int) {
	t.Helper()
	xrb, ok := VecDotType(Q5_K).RowBytes(cols)
	if !ok {
		t.Fatalf("no Q8_K rows of %d columns", cols)
	}
	x := make([]byte, n*xrb)
	for i := range n {
		xf := randNormal(rng, cols, math.Ldexp(1, i%7-3))
		quantizeQ8_K(x[i*xrb:(i+1)*xrb], xf)
	}
	return x, xrb
}

// q5ktRandMatrix returns a rows x nb*QKK Q5_K matrix of q5kWeights blocks
// (random or extreme quants, fifth bits, scales and F16 scales).
func q5ktRandMatrix(t testing.TB, rng *rand.Rand, rows, nb int) Matrix {
	t.Helper()
	w, err := NewMatrix(Q5_K, rows, nb*QKK, q5kWeights(rng, rows*nb))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// q5ktCheck runs dotQ5_KTiles over rows [lo, hi) of w by the n rows of x
// and fails unless every element it writes is dotQ5_KQ8_K bit for bit (two
// NaNs agree whatever their payloads) and it writes nothing else.
func q5ktCheck(t testing.TB, w Matrix, x []byte, xrb, n, lo, hi int) {
	t.Helper()
	const sentinel = -12345.5
	got := make([]float32, n*w.Rows)
	for i := range got {
		got[i] = sentinel
	}
	if end := dotQ5_KTiles(got, w, x, xrb, n, lo, hi); end != hi {
		t.Fatalf("rows %d x %d, span [%d, %d): returned %d", w.Rows, w.Cols, lo, hi, end)
	}
	nb := w.Cols / QKK
	for i := range n {
		for r := range w.Rows {
			g := got[i*w.Rows+r]
			if r < lo || r >= hi {
				if g != sentinel {
					t.Fatalf("rows %d x %d, span [%d, %d), n=%d: wrote row %d token %d", w.Rows, w.Cols, lo, hi, n, r, i)
				}
				continue
			}
			want := dotQ5_KQ8_K(w.Row(r), x[i*xrb:(i+1)*xrb], nb)
			if math.Float32bits(g) != math.Float32bits(want) && !(g != g && want != want) {
				t.Fatalf("rows %d x %d, span [%d, %d), n=%d: row %d token %d: %g (%#08x), reference %g (%#08x)",
					w.Rows, w.Cols, lo, hi, n, r, i, g, math.Float32bits(g), want, math.Float32bits(want))
			}
		}
	}
}

// TestQ5KTilesAsm runs dotQ5_KTiles (the 4-token kernel and the leftover
// tokens) over Q5_K matrices of several shapes, token counts with and
// without leftovers, and row spans, against dotQ5_KQ8_K bit for bit:
// quantized weights by quantizeQ8_K activations, and random/extreme weight
// blocks (q5kWeights) by quantized (q5kActs) and raw (q5kRawActs, quants
// including -128, arbitrary group sums) activations.
func TestQ5KTilesAsm(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 on this CPU")
	}
	rng := rand.New(rand.NewPCG(71, 72))
	for kind, name := range []string{"quantized", "random", "raw"} {
		t.Run(name, func(t *testing.T) {
			for _, c := range []struct{ rows, nb int }{{1, 1}, {5, 1}, {9, 2}, {16, 8}, {7, 22}, {33, 22}} {
				cols := c.nb * QKK
				xrb := c.nb * q8_KBytes
				var w Matrix
				if kind == 0 {
					w = randMatrix(t, rng, Q5_K, c.rows, cols)
				} else {
					w = q5ktRandMatrix(t, rng, c.rows, c.nb)
				}
				for _, n := range []int{4, 5, 7, 8, 13} {
					var x []byte
					switch kind {
					case 0:
						x, xrb = q5ktActs(t, rng, n, cols)
					case 1:
						x = q5kActs(rng, n*c.nb)
					default:
						x = q5kRawActs(rng, n*c.nb)
					}
					spans := [][2]int{{0, c.rows}}
					if c.rows > 2 {
						spans = append(spans, [2]int{1, c.rows - 1}, [2]int{c.rows / 2, c.rows/2 + 1})
					}
					for _, s := range spans {
						q5ktCheck(t, w, x, xrb, n, s[0], s[1])
					}
				}
			}
		})
	}
}

// TestQ5KTilesAsmPadded runs the 4-token kernel on activation rows with
// padding after each row's blocks (xrb larger than the blocks) and with a
// zero-block row (nb = 0 writes zeros).
func TestQ5KTilesAsmPadded(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 on this CPU")
	}
	rng := rand.New(rand.NewPCG(73, 74))
	const rows, nb, n = 6, 3, 9
	cols := nb * QKK
	w := randMatrix(t, rng, Q5_K, rows, cols)
	x0, xrb0 := q5ktActs(t, rng, n, cols)
	xrb := xrb0 + 40
	x := make([]byte, n*xrb)
	for i := range n {
		copy(x[i*xrb:], x0[i*xrb0:(i+1)*xrb0])
	}
	q5ktCheck(t, w, x, xrb, n, 0, rows)

	dst := []float32{1, 2, 3, 4}
	dotQ5_KQ8_KTok4AVX2(&dst[0], 1, &w.Data[0], &x[0], xrb, 0)
	for i, v := range dst {
		if math.Float32bits(v) != 0 {
			t.Fatalf("nb=0: dst[%d] = %g, want +0", i, v)
		}
	}
}

// FuzzQ5KTilesAsm checks dotQ5_KTiles against dotQ5_KQ8_K on Q5_K
// matrices, quantized or of raw random weight bytes (any scales, mins,
// fifth bits, and finite F16 d and dmin of either sign), by activations
// quantized by quantizeQ8_K from normals of a fuzzed scale or, with
// rawActs, raw Q8_K bytes with a finite float32 scale.
func FuzzQ5KTilesAsm(f *testing.F) {
	if !useAVX2 {
		f.Skip("no AVX2 on this CPU")
	}
	f.Add(uint64(1), uint8(3), uint8(2), uint8(5), int8(0), false, false)
	f.Add(uint64(2), uint8(1), uint8(22), uint8(13), int8(-20), true, false)
	f.Add(uint64(3), uint8(8), uint8(8), uint8(4), int8(30), true, true)
	f.Fuzz(func(t *testing.T, seed uint64, rows, nb, n uint8, exp int8, rawWeights, rawActs bool) {
		r, b, k := 1+int(rows%12), 1+int(nb%24), int(n%17)
		rng := rand.New(rand.NewPCG(seed, 75))
		cols := b * QKK
		var w Matrix
		if rawWeights {
			data := make([]byte, r*b*q5_KBytes)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			// Finite halves of either sign for d and dmin (exponent field
			// at most 29).
			for i := 0; i < len(data); i += q5_KBytes {
				data[i+1] &= 0xf7
				data[i+3] &= 0xf7
			}
			var err error
			if w, err = NewMatrix(Q5_K, r, cols, data); err != nil {
				t.Fatal(err)
			}
		} else {
			w = randMatrix(t, rng, Q5_K, r, cols)
		}
		xrb, _ := VecDotType(Q5_K).RowBytes(cols)
		x := make([]byte, k*xrb)
		if rawActs {
			for i := range x {
				x[i] = byte(rng.Uint32())
			}
			for blk := 0; blk < len(x); blk += q8_KBytes {
				d := float32(rng.NormFloat64() * math.Ldexp(1, int(exp%28)-14))
				binary.LittleEndian.PutUint32(x[blk:], math.Float32bits(d))
			}
		} else {
			scale := math.Ldexp(1, int(exp%40))
			for i := range k {
				quantizeQ8_K(x[i*xrb:(i+1)*xrb], randNormal(rng, cols, scale))
			}
		}
		lo := int(seed>>32) % r
		hi := lo + 1 + int(seed>>40)%(r-lo)
		q5ktCheck(t, w, x, xrb, k, lo, hi)
	})
}

// BenchmarkQ5KTiles compares, for a 256 x 2048 Q5_K matrix by 32 tokens,
// dotQ5_KTiles with calling dotQ5_KQ8_KAsm per row and token.
func BenchmarkQ5KTiles(b *testing.B) {
	if !useAVX2 {
		b.Skip("no AVX2 on this CPU")
	}
	const rows, cols, n = 256, 2048, 32
	rng := rand.New(rand.NewPCG(76, 77))
	w := randMatrix(b, rng, Q5_K, rows, cols)
	x, xrb := q5ktActs(b, rng, n, cols)
	dst := make([]float32, n*rows)
	nb := cols / QKK
	var perTok float64
	b.Run("PerToken", func(b *testing.B) {
		for b.Loop() {
			for r := range rows {
				row := w.Row(r)
				for i := range n {
					dst[i*rows+r] = dotQ5_KQ8_KAsm(row, x[i*xrb:(i+1)*xrb], nb)
				}
			}
		}
		perTok = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("Tok4", func(b *testing.B) {
		for b.Loop() {
			dotQ5_KTiles(dst, w, x, xrb, n, 0, rows)
		}
		ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		if perTok > 0 {
			b.ReportMetric(perTok/ns, "speedup")
		}
	})
}

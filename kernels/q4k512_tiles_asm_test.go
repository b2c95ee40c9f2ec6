//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// kt512 is one K-quant's AVX-512 4-token kernel under test.
type kt512 struct {
	typ DType
	// tok4 is the 4-token kernel, one the one-token AVX-512 kernel and ref
	// the reference it must match bit for bit.
	tok4 func(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)
	one  func(w, x []byte, nb int) float32
	ref  func(w, x []byte, nb int) float32
	// weights returns nb random blocks with extreme fields; extremes
	// returns single blocks of every combination of extreme fields.
	weights  func(rng *rand.Rand, nb int) []byte
	extremes func() [][]byte
	// driver is the 4-token driver in kTiles' form (ktiles_asm_test.go).
	driver kTiles
}

var kt512Q4K = kt512{
	typ: Q4_K, tok4: dotQ4_KQ8_KTok4AVX512, one: dotQ4_KQ8_KAsm512, ref: dotQ4_KQ8_K,
	weights: q4k512Weights, extremes: kt512Q4KExtremes,
	driver: kTiles{Q4_K, dotQ4_KTiles512, dotQ4_KQ8_K, dotQ4_KQ8_KTok4AVX512, []int{1, 3}, true},
}

// kt512Q4KExtremes returns a Q4_K block for every combination of
// all-zero/all-ones scales and quants and the largest and smallest normal d
// and dmin of both signs (and 1).
func kt512Q4KExtremes() [][]byte {
	halves := []uint16{0x7bff, 0xfbff, 0x0400, 0x8400, 0x3c00}
	var blocks [][]byte
	for mask := range 4 {
		for _, d := range halves {
			for _, dmin := range halves {
				w := make([]byte, q4_KBytes)
				binary.LittleEndian.PutUint16(w[0:], d)
				binary.LittleEndian.PutUint16(w[2:], dmin)
				for i, r := range [][2]int{{4, 16}, {16, 144}} {
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

// kt512Acts returns 4 activation rows of nb Q8_K blocks each, at a stride
// of xrb bytes (the bytes between rows random): each row made by mk from
// its own random stream, so the 4 rows differ.
func kt512Acts(rng *rand.Rand, nb, xrb int, mk func(*rand.Rand, int) []byte) []byte {
	x := make([]byte, 3*xrb+nb*q8_KBytes)
	for i := range x {
		x[i] = byte(rng.Uint32())
	}
	for t := range 4 {
		copy(x[t*xrb:], mk(rng, nb))
	}
	return x
}

// kt512Same reports whether a and b have the same bits or are both NaN.
func kt512Same(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || a != a && b != b
}

// kt512Check runs k's 4-token kernel on the weight row w of nb blocks and
// the 4 activation rows of x at stride xrb, with outputs at stride ldd, and
// fails unless output t is bitwise k.ref (two NaNs agree whatever their
// payloads) and k.one of w and row t, and nothing else in dst changes.
func kt512Check(t testing.TB, k kt512, w, x []byte, nb, xrb, ldd int) {
	t.Helper()
	const sentinel = -12345.5
	dst := make([]float32, 4*ldd)
	for i := range dst {
		dst[i] = sentinel
	}
	// Cut w and x to what the kernel may read, so that a test with padding
	// (xrb) or the race detector's checks would see an overrun.
	w = w[:nb*k.typ.BlockBytes()]
	x = x[:3*xrb+nb*q8_KBytes]
	wp, xp := new(byte), new(byte)
	if nb > 0 {
		wp, xp = &w[0], &x[0]
	}
	k.tok4(&dst[0], ldd, wp, xp, xrb, nb)
	for i, g := range dst {
		tok := i / ldd
		if i%ldd != 0 {
			if math.Float32bits(g) != math.Float32bits(sentinel) {
				t.Fatalf("%v nb=%d xrb=%d ldd=%d: dst[%d] = %g written", k.typ, nb, xrb, ldd, i, g)
			}
			continue
		}
		xt := x[tok*xrb : tok*xrb+nb*q8_KBytes]
		if want := k.ref(w, xt, nb); !kt512Same(g, want) {
			t.Fatalf("%v nb=%d xrb=%d ldd=%d token %d: %g (%#08x), reference %g (%#08x)",
				k.typ, nb, xrb, ldd, tok, g, math.Float32bits(g), want, math.Float32bits(want))
		}
		if nb == 0 {
			if math.Float32bits(g) != 0 {
				t.Fatalf("%v nb=0: token %d: %g, want +0", k.typ, tok, g)
			}
			continue
		}
		if one := k.one(w, xt, nb); !kt512Same(g, one) {
			t.Fatalf("%v nb=%d xrb=%d ldd=%d token %d: %g (%#08x), one-token AVX-512 %g (%#08x)",
				k.typ, nb, xrb, ldd, tok, g, math.Float32bits(g), one, math.Float32bits(one))
		}
	}
}

// kt512ExtremeActs returns Q8_K blocks of every quant -128, +127, 0 and
// alternating ±127, with their true group sums and scales 2^-7 times 1 to 4.
func kt512ExtremeActs() [][]byte {
	var rows [][]byte
	for i, q := range []int8{-128, 127, 0, 1} {
		x := make([]byte, q8_KBytes)
		binary.LittleEndian.PutUint32(x, math.Float32bits(0x1p-7*float32(i+1)))
		for j := range QKK {
			v := q
			if q == 1 {
				v = int8(127 - 254*(j&1))
			}
			x[4+j] = byte(v)
		}
		for g := range QKK / 16 {
			s := 0
			for j := range 16 {
				s += int(int8(x[4+16*g+j]))
			}
			binary.LittleEndian.PutUint16(x[4+QKK+2*g:], uint16(int16(s)))
		}
		rows = append(rows, x)
	}
	return rows
}

// kt512Test checks k's 4-token kernel bit for bit, each of its 4 outputs
// against the reference (and the one-token AVX-512 kernel) of its own
// activation row, for 1 to 16 blocks: quantized normal weights and random
// blocks with extreme fields, by 4 distinct rows of quantizeQ8_K
// activations of every kind q5kActs makes, of quants with -128 and their
// true group sums, and of raw Q8_K bytes (any quants and group sums); rows
// padded (xrb larger than the blocks, odd paddings included) and outputs
// strided (ldd > 1), so a swapped token or stride shows. Then every
// combination of extreme weight fields by extreme activations in every
// token slot, and no blocks (4 zeros).
func kt512Test(t *testing.T, k kt512, seed uint64) {
	if !useAVX512 {
		t.Skip("no AVX-512 (F, BW, DQ) with VNNI")
	}
	rng := rand.New(rand.NewPCG(seed, 72))
	acts := []struct {
		name string
		mk   func(*rand.Rand, int) []byte
	}{
		{"quantized", q5kActs},
		{"truesums", q4k512TrueSumActs},
		{"raw", q5kRawActs},
	}
	for _, a := range acts {
		for _, wk := range []string{"quantized", "random"} {
			t.Run(a.name+"/"+wk, func(t *testing.T) {
				for nb := 1; nb <= 16; nb++ {
					for range 40 {
						w := k.weights(rng, nb)
						if wk == "quantized" {
							w = Quantize(nil, k.typ, randNormal(rng, nb*QKK, math.Ldexp(1, rng.IntN(20)-10)))
						}
						xrb := nb*q8_KBytes + rng.IntN(3)*(1+rng.IntN(300))
						ldd := 2 + rng.IntN(5)
						kt512Check(t, k, w, kt512Acts(rng, nb, xrb, a.mk), nb, xrb, ldd)
					}
				}
			})
		}
	}
	t.Run("extremes", func(t *testing.T) {
		rows := kt512ExtremeActs()
		for _, w := range k.extremes() {
			for _, nb := range []int{1, 8} {
				wn := make([]byte, 0, nb*len(w))
				for range nb {
					wn = append(wn, w...)
				}
				for rot := range 4 { // each row in each token slot
					xrb := nb*q8_KBytes + 4
					x := make([]byte, 3*xrb+nb*q8_KBytes)
					for tok := range 4 {
						for b := range nb {
							copy(x[tok*xrb+b*q8_KBytes:], rows[(tok+rot)%4])
						}
					}
					kt512Check(t, k, wn, x, nb, xrb, 3)
				}
			}
		}
	})
	t.Run("empty", func(t *testing.T) {
		kt512Check(t, k, nil, make([]byte, 3*40), 0, 40, 2)
	})
}

// kt512DriverTest runs k's 4-token driver (the 4-token kernel and the
// leftover tokens) over matrices of several shapes (one of them two blocks
// of rows of q4kTileBytes), token counts with and without leftovers, and
// row spans, against the reference bit for bit (ktCheck): quantized and raw
// weights by quantizeQ8_K activations and raw Q8_K bytes, and padded
// activation rows.
func kt512DriverTest(t *testing.T, k kt512, seed uint64) {
	if !useAVX512 {
		t.Skip("no AVX-512 (F, BW, DQ) with VNNI")
	}
	rng := rand.New(rand.NewPCG(seed, 74))
	d := k.driver
	for _, kind := range []string{"quantized", "raw-weights", "raw-acts"} {
		t.Run(kind, func(t *testing.T) {
			for _, c := range []struct{ rows, nb int }{{1, 1}, {5, 1}, {9, 2}, {16, 8}, {7, 22}, {33, 22}, {130, 8}} {
				cols := c.nb * QKK
				w := randMatrix(t, rng, d.typ, c.rows, cols)
				if kind != "quantized" {
					w = ktRawMatrix(t, rng, d, c.rows, c.nb)
				}
				for _, n := range []int{1, 4, 5, 7, 8, 13} {
					x, xrb := ktActs(t, rng, n, cols, 1)
					if kind == "raw-acts" {
						x = ktRawActs(rng, n, c.nb, -7)
					}
					spans := [][2]int{{0, c.rows}}
					if c.rows > 2 {
						spans = append(spans, [2]int{1, c.rows - 1}, [2]int{c.rows / 2, c.rows/2 + 1})
					}
					for _, s := range spans {
						ktCheck(t, d, w, x, xrb, n, s[0], s[1])
					}
				}
			}
		})
	}
	t.Run("padded", func(t *testing.T) {
		const rows, nb, n = 6, 3, 9
		cols := nb * QKK
		w := randMatrix(t, rng, d.typ, rows, cols)
		x0, xrb0 := ktActs(t, rng, n, cols, 1)
		xrb := xrb0 + 40
		x := make([]byte, n*xrb)
		for i := range n {
			copy(x[i*xrb:], x0[i*xrb0:(i+1)*xrb0])
		}
		ktCheck(t, d, w, x, xrb, n, 0, rows)
	})
}

// kt512Fuzz checks k's 4-token kernel against the reference bit for bit:
// weights quantized from normals or random blocks with extreme fields, 4
// activation rows quantized by quantizeQ8_K from normals of a fuzzed scale
// or raw Q8_K bytes, a fuzzed row padding and output stride.
func kt512Fuzz(f *testing.F, k kt512) {
	if !useAVX512 {
		f.Skip("no AVX-512 (F, BW, DQ) with VNNI")
	}
	f.Add(uint64(1), uint8(0), uint8(0), uint8(1), int8(0), false, false)
	f.Add(uint64(2), uint8(7), uint8(41), uint8(3), int8(-20), true, true)
	f.Add(uint64(3), uint8(15), uint8(255), uint8(6), int8(30), true, false)
	f.Fuzz(func(t *testing.T, seed uint64, nb, pad, ldd uint8, exp int8, rawWeights, rawActs bool) {
		rng := rand.New(rand.NewPCG(seed, 75))
		b := 1 + int(nb%16)
		w := Quantize(nil, k.typ, randNormal(rng, b*QKK, 0.05))
		if rawWeights {
			w = k.weights(rng, b)
		}
		mk := func(rng *rand.Rand, nb int) []byte {
			x := make([]byte, nb*q8_KBytes)
			if rawActs {
				for i := range x {
					x[i] = byte(rng.Uint32())
				}
				for o := 0; o < len(x); o += q8_KBytes {
					d := float32(rng.NormFloat64() * math.Ldexp(1, int(exp%28)-14))
					binary.LittleEndian.PutUint32(x[o:], math.Float32bits(d))
				}
				return x
			}
			quantizeQ8_K(x, randNormal(rng, nb*QKK, math.Ldexp(1, int(exp%40))))
			return x
		}
		xrb := b*q8_KBytes + int(pad)
		kt512Check(t, k, w, kt512Acts(rng, b, xrb, mk), b, xrb, 1+int(ldd%8))
	})
}

// kt512Bench compares, for a 256 x 2048 matrix of k's type (in L2) by 32
// tokens, one goroutine: the AVX2 4-token driver (avx2, rows outer), the
// AVX-512 one-token kernel per row and token, the AVX-512 4-token driver
// (tokens outer in blocks of rows), the AVX-512 4-token kernel in the AVX2
// driver's loop order, and the AVX2 4-token kernel avx2Tok4 in the AVX-512
// driver's. MB/s counts the weight matrix once
// per product; tok*rows/s is the dot products a second.
func kt512Bench(b *testing.B, k kt512, avx2 func(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int,
	avx2Tok4 func(dst *float32, ldd int, w *byte, x *byte, xrb int, nb int)) {
	const rows, cols, n = 256, 2048, 32
	rng := rand.New(rand.NewPCG(76, 77))
	w := randMatrix(b, rng, k.typ, rows, cols)
	x, xrb := ktActs(b, rng, n, cols, 1)
	dst := make([]float32, n*rows)
	nb := cols / QKK
	perToken := func(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
		for r := lo; r < hi; r++ {
			row := w.Row(r)
			for i := range n {
				dst[i*rows+r] = k.one(row, x[i*xrb:(i+1)*xrb], nb)
			}
		}
		return hi
	}
	tok4RowOuter := func(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
		for r := lo; r < hi; r++ { // the AVX2 driver's loop order
			for i := 0; i+4 <= n; i += 4 {
				k.tok4(&dst[i*rows+r], rows, &w.Row(r)[0], &x[i*xrb], xrb, nb)
			}
		}
		return hi
	}
	avx2Blocked := func(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
		for i := 0; i+4 <= n; i += 4 { // the matrix is one block of rows
			for r := lo; r < hi; r++ {
				avx2Tok4(&dst[i*rows+r], rows, &w.Row(r)[0], &x[i*xrb], xrb, nb)
			}
		}
		return hi
	}
	for _, c := range []struct {
		name  string
		ok    bool
		tiles func(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int
	}{
		{"AVX2Tok4", useAVX2, avx2},
		{"AVX512PerToken", useAVX512, perToken},
		{"AVX512Tok4", useAVX512, k.driver.tiles},
		{"AVX512Tok4RowOuter", useAVX512, tok4RowOuter},
		{"AVX2Tok4Blocked", useAVX2, avx2Blocked},
	} {
		b.Run(c.name, func(b *testing.B) {
			if !c.ok {
				b.Skip("not supported by this CPU")
			}
			b.SetBytes(int64(len(w.Data)))
			for b.Loop() {
				c.tiles(dst, w, x, xrb, n, 0, rows)
			}
			b.ReportMetric(float64(b.N)*rows*n/b.Elapsed().Seconds(), "tok*rows/s")
		})
	}
}

// TestKTiles512Q4K checks dotQ4_KQ8_KTok4AVX512 (kt512Test).
func TestKTiles512Q4K(t *testing.T) { kt512Test(t, kt512Q4K, 71) }

// TestKTiles512Q4KDriver checks dotQ4_KTiles512 (kt512DriverTest).
func TestKTiles512Q4KDriver(t *testing.T) { kt512DriverTest(t, kt512Q4K, 73) }

// FuzzKTiles512Q4K fuzzes dotQ4_KQ8_KTok4AVX512 (kt512Fuzz).
func FuzzKTiles512Q4K(f *testing.F) { kt512Fuzz(f, kt512Q4K) }

// BenchmarkKTiles512 compares the Q4_K 4-token kernels and drivers
// (kt512Bench) on 256 rows x 2048 columns x 32 tokens.
func BenchmarkKTiles512(b *testing.B) {
	kt512Bench(b, kt512Q4K, dotQ4_KTiles, dotQ4_KQ8_KTok4AVX2)
}

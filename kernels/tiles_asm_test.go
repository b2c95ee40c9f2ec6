//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// TestF16TilesAsm runs the batched F16 register tiles directly over row
// ranges that use every tile height (8, 4 and 2 rows at once with AVX-512)
// token counts with and without a last, overlapping tile, and rows long
// enough to take several passes of steps (their tiles then resume from the
// accumulators instead of zero), against sgemmF16 bit for bit; and the
// BF16 tiles (AVX-512, 8 rows at once), rounding each product and fused,
// against sgemmBF16.
func TestF16TilesAsm(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 on this CPU")
	}
	rng := rand.New(rand.NewPCG(43, 44))
	const rows = 40
	type kind struct {
		typ   DType
		tiles func(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int
		act32 func(y []byte, x []float32)
		ref   func(w, x []byte, nb int) float32
	}
	kinds := []kind{{F16, sgemmF16X32Tiles, quantizeAct32, sgemmF16}}
	if useAVX512 {
		bf16 := func(y []byte, x []float32) { quantizeActBF16x32(y, x) }
		kinds = append(kinds, kind{BF16, sgemmBF16X32Tiles, bf16, sgemmBF16},
			kind{BF16, sgemmBF16X32TilesExact, bf16, sgemmBF16}) // exact: normal weights and activations
	}
	for _, k := range kinds {
		for _, c := range []struct{ n, cols int }{{6, 232}, {9, 232}, {10, 232}, {11, 1032}, {13, 1032}, {20, 64}, {7, 2056}} {
			n, cols := c.n, c.cols
			w := randMatrix(t, rng, k.typ, rows, cols)
			xf := randNormal(rng, n*cols, 1)
			x32 := make([]byte, n*4*cols)
			for i := range n {
				k.act32(x32[i*4*cols:(i+1)*4*cols], xf[i*cols:(i+1)*cols])
			}
			for _, span := range [][2]int{{0, rows}, {1, rows - 1}, {3, 17}} {
				got := make([]float32, n*rows)
				end := k.tiles(got, w, x32, 4*cols, n, span[0], span[1])
				if end-span[0] < (span[1]-span[0])&^7 {
					t.Fatalf("%v n=%d rows %v: the tiles stopped at row %d", k.typ, n, span, end)
				}
				for i := range n {
					xh := make([]byte, 2*cols)
					quantizeAct(xh, k.typ, xf[i*cols:(i+1)*cols])
					for r := span[0]; r < end; r++ {
						want := k.ref(w.Data[r*w.RowBytes():(r+1)*w.RowBytes()], xh, 0)
						if g := got[i*rows+r]; math.Float32bits(g) != math.Float32bits(want) {
							t.Fatalf("%v n=%d cols=%d rows %v: row %d token %d: %v, reference %v", k.typ, n, cols, span, r, i, g, want)
						}
					}
				}
			}
		}
	}
}

// TestFloatTilesThroughMatMul runs batched F16 and BF16 products through
// MatMulBatch on 3 workers, with enough tokens for the register tiles and
// row counts (multiples of 4, as sgemm needs, not all of 8) that leave rows
// to the row dots, against sgemmF16 and sgemmBF16 on the rounded
// activations, bit for bit.
func TestFloatTilesThroughMatMul(t *testing.T) {
	rng := rand.New(rand.NewPCG(45, 46))
	p := NewPool(3)
	defer p.Close()
	ref := map[DType]func(w, x []byte, nb int) float32{F16: sgemmF16, BF16: sgemmBF16}
	for _, typ := range []DType{F16, BF16} {
		for _, c := range []struct{ rows, cols, n int }{{44, 256, 6}, {68, 520, 13}, {12, 64, 8}} {
			w := randMatrix(t, rng, typ, c.rows, c.cols)
			x := randNormal(rng, c.n*c.cols, 1)
			got := make([]float32, c.n*c.rows)
			MatMulBatch(p, got, w, x, c.n)
			xh := make([]byte, 2*c.cols)
			for i := range c.n {
				quantizeAct(xh, typ, x[i*c.cols:(i+1)*c.cols])
				for r := range c.rows {
					want := ref[typ](w.Row(r), xh, 0)
					if g := got[i*c.rows+r]; math.Float32bits(g) != math.Float32bits(want) {
						t.Fatalf("%v %+v: row %d token %d: %v, reference %v", typ, c, r, i, g, want)
					}
				}
			}
		}
	}
}

// TestBF16Exact checks the bounds of bf16 magnitudes (the AVX2 scan
// against the Go loop, over zeros, subnormals, infinities and NaNs) and
// that MatMulBatch picks the fused tiles only where every product is exact:
// weights and activations whose products fall below float32's normal range
// still give sgemmBF16's bits.
func TestBF16Exact(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512 on this CPU")
	}
	rng := rand.New(rand.NewPCG(47, 48))
	for _, n := range []int{16, 17, 100, 1000} {
		for _, special := range []uint16{0, 0x8000, 0x0001, 0x807f, 0x7f80, 0xffc1, 0x3f80} {
			b := make([]byte, 2*n)
			for i := range n {
				binary.LittleEndian.PutUint16(b[2*i:], F32ToBF16(float32(rng.NormFloat64())))
			}
			binary.LittleEndian.PutUint16(b[2*rng.IntN(n):], special)
			if got, want := bf16MagsOf(b), bf16MagsGo(b); got != want {
				t.Fatalf("n=%d special %#04x: bf16MagsOf %+v, Go %+v", n, special, got, want)
			}
		}
	}
	if got := bf16MagsOf(make([]byte, 64)); got.lo != 0xffff || got.hi != 0 || !bf16Exact(got, got) {
		t.Fatalf("all zeros: %+v", got)
	}
	p := NewPool(2)
	defer p.Close()
	const rows, cols, n = 16, 64, 6
	for _, c := range []struct {
		wscale, xscale float64
		exact          bool
	}{{1, 1, true}, {0x1p-70, 0x1p-70, false}, {0x1p60, 0x1p70, false}, {0x1p-60, 1, true}} {
		w := randMatrix(t, rng, BF16, rows, cols)
		for i := 0; i < len(w.Data); i += 2 {
			v := BF16ToF32(u16le(w.Data[i:])) * float32(c.wscale)
			binary.LittleEndian.PutUint16(w.Data[i:], F32ToBF16(v))
		}
		w = w.Packed()
		x := randNormal(rng, n*cols, c.xscale)
		var xm bf16Mags
		xs := make([]byte, 4*cols)
		for i := range n {
			m := quantizeActBF16x32(xs, x[i*cols:(i+1)*cols])
			if i == 0 {
				xm = m
			}
			xm = xm.join(m)
		}
		if got := bf16Exact(w.mags, xm); got != c.exact {
			t.Fatalf("weights x%g, activations x%g: bf16Exact %v", c.wscale, c.xscale, got)
		}
		got := make([]float32, n*rows)
		MatMulBatch(p, got, w, x, n)
		xh := make([]byte, 2*cols)
		for i := range n {
			quantizeAct(xh, BF16, x[i*cols:(i+1)*cols])
			for r := range rows {
				if want := sgemmBF16(w.Row(r), xh, 0); math.Float32bits(got[i*rows+r]) != math.Float32bits(want) {
					t.Fatalf("weights x%g, activations x%g: row %d token %d: %v, reference %v", c.wscale, c.xscale, r, i, got[i*rows+r], want)
				}
			}
		}
	}
}

//go:build amd64 && !purego

package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestF16TilesAsm runs the batched F16 register tiles directly over row
// ranges that use every tile height (8, 4 and 2 rows at once with AVX-512)
// token counts with and without a last, overlapping tile, and rows long
// enough to take several passes of steps (their tiles then resume from the
// accumulators instead of zero), against sgemmF16 bit for bit.
func TestF16TilesAsm(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 on this CPU")
	}
	rng := rand.New(rand.NewPCG(43, 44))
	const rows = 40
	for _, c := range []struct{ n, cols int }{{6, 232}, {9, 232}, {10, 232}, {11, 1032}, {13, 1032}, {20, 64}, {7, 2056}} {
		n, cols := c.n, c.cols
		w := randMatrix(t, rng, F16, rows, cols)
		xf := randNormal(rng, n*cols, 1)
		x32 := make([]byte, n*4*cols)
		for i := range n {
			quantizeAct32(x32[i*4*cols:(i+1)*4*cols], xf[i*cols:(i+1)*cols])
		}
		for _, span := range [][2]int{{0, rows}, {1, rows - 1}, {3, 17}} {
			got := make([]float32, n*rows)
			end := sgemmF16X32Tiles(got, w, x32, 4*cols, n, span[0], span[1])
			for i := range n {
				xh := make([]byte, 2*cols)
				quantizeAct(xh, F16, xf[i*cols:(i+1)*cols])
				for r := span[0]; r < end; r++ {
					want := sgemmF16(w.Data[r*w.RowBytes():(r+1)*w.RowBytes()], xh, 0)
					if g := got[i*rows+r]; math.Float32bits(g) != math.Float32bits(want) {
						t.Fatalf("n=%d cols=%d rows %v: row %d token %d: %v, reference %v", n, cols, span, r, i, g, want)
					}
				}
			}
		}
	}
}

package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestMatMulShared checks that a fused product of two or three matrices
// (packed where this CPU packs them, and not) is bitwise the separate
// MatMul calls, and MatMulSharedBatch the separate MatMulBatch calls, over
// pools of 1, 2 and 5 workers, for one token and a few.
func TestMatMulShared(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	pools := []*Pool{nil, NewPool(2), NewPool(5)}
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	const cols = 512
	for _, typ := range supportedTypes {
		for _, packed := range []bool{false, true} {
			for _, rows := range [][]int{{64, 16, 16}, {48, 64}, {67, 24, 8}, {64, 18, 16}, {64, 24, 16}} {
				t.Run(fmt.Sprintf("%v/packed=%v/%v", typ, packed, rows), func(t *testing.T) {
					ws := make([]Matrix, len(rows))
					for j, r := range rows {
						ws[j] = randMatrix(t, rng, typ, r, cols)
						if packed {
							ws[j] = ws[j].Packed()
						}
					}
					for _, n := range []int{1, 3, 7} {
						x := randNormal(rng, n*cols, 1)
						for _, batch := range []bool{false, true} {
							wants := make([][]float32, len(ws))
							for j, w := range ws {
								wants[j] = make([]float32, n*w.Rows)
								if batch {
									MatMulBatch(nil, wants[j], w, x, n)
								} else {
									MatMul(nil, wants[j], w, x, n)
								}
							}
							for _, p := range pools {
								ps := make([]Product, len(ws))
								for j, w := range ws {
									ps[j] = Product{Dst: make([]float32, n*w.Rows), W: w}
								}
								if batch {
									MatMulSharedBatch(p, x, n, ps...)
								} else {
									MatMulShared(p, x, n, ps...)
								}
								for j := range ps {
									if !bitsEqual(ps[j].Dst, wants[j]) {
										t.Errorf("n=%d, batch=%v, %d workers: product %d differs from the separate calls", n, batch, p.Size(), j)
									}
								}
							}
						}
					}
				})
			}
		}
	}
}

//go:build !amd64 || purego

package kernels

// Without assembly (another architecture, or the purego tag) every product
// runs the plain-Go reference kernels.

// fastDot returns nil: matMul keeps the reference dot.
func fastDot(DType, int, bool) func(w, x []byte, nb int) float32 { return nil }

// fastRows8 returns nil: matMul dots one row at a time.
func fastRows8(DType, int, bool) func(dst []float32, w []byte, rb int, x []byte, nb int) {
	return nil
}

// fastTiles returns nil: matMul dots one element at a time.
func fastTiles(DType, bool, int) func(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int {
	return nil
}

// fastDotF32 returns nil: matMul keeps the reference.
func fastDotF32(bool) func(w []byte, x []float32) float32 { return nil }

// asmDots returns nil: there is nothing to compare with the reference.
func asmDots() []dotImpl { return nil }

// quantizeQ8_0Impl is the reference quantizeQ8_0.
func quantizeQ8_0Impl(y []byte, x []float32) { quantizeQ8_0(y, x) }

//go:build !amd64 || purego

package kernels

// Without assembly (another architecture, or the purego tag) every product
// runs the plain-Go reference kernels.

// fastDot returns nil: matMul keeps the reference dot.
func fastDot(DType, int, bool) func(w, x []byte, nb int) float32 { return nil }

// fastRows returns nil: matMul dots one row at a time.
func fastRows(DType, int, int, bool) (func(dst []float32, w []byte, rb int, x []byte, nb int), int) {
	return nil, 0
}

// fastTiles returns nil: matMul dots one element at a time.
func fastTiles(DType, bool, int) (func(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int, int) {
	return nil, 1
}

// fastDotF32 returns nil: matMul keeps the reference.
func fastDotF32(bool) func(w []byte, x []float32) float32 { return nil }

// asmDots returns nil: there is nothing to compare with the reference.
func asmDots() []dotImpl { return nil }

// quantizeQ8_0Impl is the reference quantizeQ8_0.
func quantizeQ8_0Impl(y []byte, x []float32) { quantizeQ8_0(y, x) }

// quantizeQ8_1Impl is the reference quantizeQ8_1.
func quantizeQ8_1Impl(y []byte, x []float32) { quantizeQ8_1(y, x) }

// quantizeF16Impl rounds x to halves, little-endian into y.
func quantizeF16Impl(y []byte, x []float32) {
	for i, v := range x {
		h := F32ToF16(v)
		y[2*i], y[2*i+1] = byte(h), byte(h>>8)
	}
}

// quantizeQ8_KImpl is the reference quantizeQ8_K.
func quantizeQ8_KImpl(y []byte, x []float32) { quantizeQ8_K(y, x) }

// quantizeQ8_KAlts returns nil: there are no other forms of quantizeQ8_K.
func quantizeQ8_KAlts() []func(y []byte, x []float32) { return nil }

// packGroup returns 0: Matrix.Packed keeps the row-major layout.
func packGroup(Matrix) int { return 0 }

// packedHeadsImpl is never called: no matrix is packed here.
func packedHeadsImpl(xs, x []byte, nb int) {}

// packedSumsImpl is never called: no matrix is packed here.
func packedSumsImpl(xs, x []byte, nb int) {}

// dotPacked is never called: no matrix is packed here.
func dotPacked(dst []float32, w Matrix, g0, g1 int, x, xs []byte, stream bool) {}

// dotPackedTok4 does nothing: no matrix is packed here.
func dotPackedTok4(dst []float32, w Matrix, g int, x []byte, xrb int, xs []byte, n int) int { return 0 }

// fastAct32 returns false: activations stay in their vec-dot type.
func fastAct32(DType, bool) bool { return false }

// quantizeAct32 is never called (fastAct32 is false).
func quantizeAct32(y []byte, x []float32) {}

// quantizeActBF16x32 is never called (fastAct32 is false).
func quantizeActBF16x32(y []byte, x []float32) bf16Mags { return bf16Mags{} }

// sgemmBF16X32TilesExact is never called (there are no tiles).
func sgemmBF16X32TilesExact(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int { return lo }

// bf16MagsOf returns unknown bounds: no kernel here uses them.
func bf16MagsOf([]byte) bf16Mags { return bf16Mags{} }

// fastAttnF16 is false: attention runs the reference loops.
const fastAttnF16 = false

// attnScoreF16 is never called (fastAttnF16 is false).
func attnScoreF16(k []uint16, q32 []float32, batch bool) float32 { return 0 }

// attnScoresF16 is never called (fastAttnF16 is false).
func attnScoresF16(att []float32, keys []uint16, off, stride int, q32 []float32, scale float32, batch bool) bool {
	return false
}

// attnValuesF16 is never called (fastAttnF16 is false).
func attnValuesF16(acc []float32, values []uint16, off, stride int, att []float32, hd, lanes int) bool {
	return false
}

// attnRoundQ is never called (fastAttnF16 is false).
func attnRoundQ(q32, q []float32) {}

// attnReduce8 is never called (fastAttnF16 is false).
func attnReduce8(out, acc []float32) {}

// attnReduce32 is never called (fastAttnF16 is false).
func attnReduce32(out, acc []float32) {}

// attnAxpyF16 is never called (fastAttnF16 is false).
func attnAxpyF16(acc []float32, v []uint16, p float32) {}

// expChunks does nothing: softmaxGGML runs in Go.
func expChunks(x []float32, m float32, sum *float64) int { return 0 }

// swigluVec does nothing: SwiGLU runs in Go.
func swigluVec(dst, gate, up []float32) int { return 0 }

// fromF16Vec does nothing: Dequantize widens halves in Go.
func fromF16Vec(dst []float32, src []byte) int { return 0 }

// toF16Vec does nothing: F32sToF16 runs in Go.
func toF16Vec(dst []uint16, src []float32) int { return 0 }

// fastAttnGQA4 is false: attention runs the reference loops.
const fastAttnGQA4 = false

// attnGQA4 is never called (fastAttnGQA4 is false).
func attnGQA4(out, q []float32, keys, values []uint16, off, stride, n, hd int, scale float32, att []float32, lb *laneBuf, batch bool, next []uint16) {
}

// fastAttnGQA4Batch is false: attention runs the reference loops.
const fastAttnGQA4Batch = false

// maxVec leaves the maximum to the caller (ok false).
func maxVec(x []float32) (m float32, ok bool) { return 0, false }

// scaleVec does nothing: the caller scales every element.
func scaleVec(x []float32, s float32) int { return 0 }

// ropeVec leaves the rotation to the caller's loops.
func ropeVec(x []float32, heads, hd, dims int, neox bool, cs, aux []float32) bool { return false }

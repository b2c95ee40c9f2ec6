package kernels

// dotImpl pairs a SIMD row dot with the reference it must equal bit for bit
// (the differential tests run every entry asmDots returns). F32 entries take
// the activations as the bytes of a []float32.
type dotImpl struct {
	name      string
	wt        DType // weight type; the activations are in VecDotType(wt)
	ref, fast func(w, x []byte, nb int) float32
}

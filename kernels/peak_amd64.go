//go:build amd64 && !purego

package kernels

// fmaPeakLoop runs n iterations of 160 FLOP of independent AVX2 fused
// multiply-adds (peak_amd64.s).
//
//go:noescape
func fmaPeakLoop(n int) float32

// fmaLoop is fmaPeakLoop where the CPU has AVX2 and FMA, else nil.
var fmaLoop = func() func(int) float32 {
	if useAVX2 {
		return fmaPeakLoop
	}
	return nil
}()

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

// readStreamAVX2 reads the n bytes at p (n a multiple of 128) with AVX2
// loads, prefetching dist bytes ahead if dist > 0, and returns a fold of
// them (peak_amd64.s).
//
//go:noescape
func readStreamAVX2(p *byte, n, dist int) uint64

// readLoops are the fastest ways this CPU has to stream memory, for
// MeasureBandwidth: AVX2 loads without and with software prefetch.
var readLoops = func() []func([]byte) uint64 {
	if !useAVX2 {
		return nil
	}
	loop := func(dist int) func([]byte) uint64 {
		return func(b []byte) uint64 {
			if n := len(b) &^ 127; n > 0 {
				return readStreamAVX2(&b[0], n, dist)
			}
			return 0
		}
	}
	return []func([]byte) uint64{loop(0), loop(1024)}
}()

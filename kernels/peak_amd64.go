//go:build amd64 && !purego

package kernels

// fmaPeakLoop runs n iterations of 160 FLOP of independent AVX2 fused
// multiply-adds (peak_amd64.s).
//
//go:noescape
func fmaPeakLoop(n int) float32

// fmaPeakLoop512 runs n iterations of 320 FLOP of independent AVX-512
// fused multiply-adds (peak_amd64.s).
//
//go:noescape
func fmaPeakLoop512(n int) float32

// fmaLoop is the widest FMA loop this CPU runs (AVX-512 where the packed
// kernels use it, else AVX2 and FMA), with its FLOP per iteration, or nil.
var fmaLoop, fmaLoopFLOP = func() (func(int) float32, float64) {
	switch {
	case useAVX512:
		return fmaPeakLoop512, 10 * 16 * 2
	case useAVX2:
		return fmaPeakLoop, 10 * 8 * 2
	}
	return nil, 0
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

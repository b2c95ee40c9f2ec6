package kernels

import (
	"math"
	"sync/atomic"
	"time"
)

// MeasureFMAPeak returns the single-precision FMA peak, in FLOP per second,
// that p's workers reach together running independent fused multiply-adds
// of the widest vectors the kernels use (AVX-512 or AVX2) for about d: the
// compute roofline that prefill benchmarks report against. It returns 0 where the assembly is unavailable (another
// architecture, -tags purego, or a CPU without AVX2 and FMA).
func MeasureFMAPeak(p *Pool, d time.Duration) float64 {
	if fmaLoop == nil {
		return 0
	}
	// Calibrate on one core, then run every worker at once.
	n := 1 << 16
	for {
		start := time.Now()
		fmaLoop(n)
		if el := time.Since(start); el > 20*time.Millisecond || n > 1<<34 {
			n = int(float64(n) * d.Seconds() / max(el.Seconds(), 1e-9))
			break
		}
		n *= 4
	}
	workers := max(p.Size(), 1)
	best := 0.0
	for range 3 {
		start := time.Now()
		p.For(workers, func(lo, hi int) {
			for range hi - lo {
				peakSink.Store(math.Float32bits(fmaLoop(n)))
			}
		})
		if f := float64(workers) * float64(n) * fmaLoopFLOP / time.Since(start).Seconds(); f > best {
			best = f
		}
	}
	return best
}

// SIMD names the instructions the fast kernels run on this CPU, for
// benchmark reports: "avx512-vnni" (the packed products over groups of 16
// rows in AVX-512 with VNNI, the rest in AVX2), "avx2" (AVX2, FMA and F16C
// throughout), or "go" (the plain-Go reference: another architecture,
// -tags purego, or a CPU without them). GODEBUG=cpu.avx512f=off, read at
// start-up, turns "avx512-vnni" into "avx2".
func SIMD() string { return simd }

// peakSink keeps the measuring loop's result alive.
var peakSink atomic.Uint32

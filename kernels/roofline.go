package kernels

import (
	"time"
	"unsafe"
)

// MeasureBandwidth returns the best streaming-read bandwidth, in bytes per
// second, that p's workers reach over a buffer of size bytes in passes
// passes. Decode speed is bounded by this figure divided by the weight bytes
// read per token: the roofline that benchmarks report against.
func MeasureBandwidth(p *Pool, size, passes int) float64 {
	buf := make([]uint64, size/8)
	for i := range buf {
		buf[i] = uint64(i) // touch every page before timing
	}
	best := 0.0
	var sink uint64
	for range passes {
		sums := make([]uint64, max(p.Size(), 1)*8)
		chunks := len(sums) / 8
		start := time.Now()
		p.For(chunks, func(lo, hi int) {
			for c := lo; c < hi; c++ {
				part := buf[c*len(buf)/chunks : (c+1)*len(buf)/chunks]
				var a, b, d, e uint64
				for i := 0; i+4 <= len(part); i += 4 {
					a += part[i]
					b += part[i+1]
					d += part[i+2]
					e += part[i+3]
				}
				sums[c*8] = a + b + d + e
			}
		})
		el := time.Since(start).Seconds()
		for i := 0; i < len(sums); i += 8 {
			sink += sums[i]
		}
		if bw := float64(len(buf)) * float64(unsafe.Sizeof(buf[0])) / el; bw > best {
			best = bw
		}
	}
	bandwidthSink = sink
	return best
}

// bandwidthSink keeps the measuring loop from being optimized away.
var bandwidthSink uint64

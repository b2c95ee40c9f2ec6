package kernels

import (
	"encoding/binary"
	"time"
)

// MeasureBandwidth returns the best streaming-read bandwidth, in bytes per
// second, that p's workers reach over a buffer of size bytes in passes
// passes of each read loop it has: a plain-Go loop and, where the CPU has
// AVX2, vector loads without and with software prefetch (the fastest here
// differs from run to run). Decode speed is bounded by this figure divided
// by the weight bytes read per token: the roofline that benchmarks report
// against. Measure over as many bytes as the work reads: caches here hold
// tens of megabytes, and a smaller buffer partly stays in them.
func MeasureBandwidth(p *Pool, size, passes int) float64 {
	buf := make([]byte, max(size, 4096)&^127)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = byte(i >> 12) // touch every page before timing
	}
	loops := append([]func([]byte) uint64{readGo}, readLoops...)
	parts := max(p.Size(), 1) * 8
	sums := make([]uint64, parts*8) // a cache line per part
	best := 0.0
	for range passes {
		for _, read := range loops {
			start := time.Now()
			p.For(parts, func(lo, hi int) {
				for c := lo; c < hi; c++ {
					sums[c*8] = read(buf[c*len(buf)/parts&^127 : (c+1)*len(buf)/parts&^127])
				}
			})
			if bw := float64(len(buf)) / time.Since(start).Seconds(); bw > best {
				best = bw
			}
			for i := 0; i < len(sums); i += 8 {
				bandwidthSink += sums[i]
			}
		}
	}
	return best
}

// readGo reads b eight bytes at a time into four sums: the read loop every
// platform has.
func readGo(b []byte) uint64 {
	var a, c, d, e uint64
	for ; len(b) >= 32; b = b[32:] {
		a += binary.LittleEndian.Uint64(b)
		c += binary.LittleEndian.Uint64(b[8:])
		d += binary.LittleEndian.Uint64(b[16:])
		e += binary.LittleEndian.Uint64(b[24:])
	}
	return a + c + d + e
}

// bandwidthSink keeps the measuring loops from being optimized away.
var bandwidthSink uint64

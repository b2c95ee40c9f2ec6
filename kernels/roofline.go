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
// tens of megabytes, and a smaller buffer partly stays in them. The buffer
// is backed by huge pages where the weights are (adviseHuge), which reads
// faster than 4 KB pages.
func MeasureBandwidth(p *Pool, size, passes int) float64 {
	return NewBandwidthProbe(p, size, passes).best
}

// BandwidthProbe measures the streaming-read bandwidth again and again
// over one buffer, for a roofline taken right beside each step of a
// benchmark: on a shared machine the bandwidth can change twofold from one
// second to the next.
type BandwidthProbe struct {
	buf  []byte
	read func([]byte) uint64
	best float64  // the best rate of the passes NewBandwidthProbe timed
	sums []uint64 // a part's sum every cache line
	cur  func([]byte) uint64
}

// NewBandwidthProbe allocates a buffer of size bytes, touches its pages,
// and times passes passes of each read loop over it with p's workers (as
// MeasureBandwidth does); Measure then uses the loop that was fastest.
func NewBandwidthProbe(p *Pool, size, passes int) *BandwidthProbe {
	b := &BandwidthProbe{buf: make([]byte, max(size, 4096)&^127), read: readGo}
	adviseHuge(b.buf) // as the weights are
	for i := 0; i < len(b.buf); i += 4096 {
		b.buf[i] = byte(i >> 12) // touch every page before timing
	}
	b.sums = make([]uint64, max(p.Size(), 1)*8*8) // 8 parts a worker
	for range passes {
		for _, read := range append([]func([]byte) uint64{readGo}, readLoops...) {
			if bw := b.pass(p, read); bw > b.best {
				b.best, b.read = bw, read
			}
		}
	}
	return b
}

// Measure returns the bandwidth, in bytes per second, of one pass over the
// probe's buffer with its fastest loop.
func (b *BandwidthProbe) Measure(p *Pool) float64 { return b.pass(p, b.read) }

// pass reads the buffer once with read, in contiguous parts spread over
// p's workers, and returns the rate.
func (b *BandwidthProbe) pass(p *Pool, read func([]byte) uint64) float64 {
	b.cur = read
	start := time.Now()
	p.run(len(b.sums)/8, 1, b)
	bw := float64(len(b.buf)) / time.Since(start).Seconds()
	for i := 0; i < len(b.sums); i += 8 {
		bandwidthSink += b.sums[i]
	}
	return bw
}

// run reads parts [lo, hi) of the buffer with the loop of the pass (the
// probe is the pass's task, so that a pass allocates nothing).
func (b *BandwidthProbe) run(lo, hi int) {
	buf, parts := b.buf, len(b.sums)/8
	for c := lo; c < hi; c++ {
		b.sums[c*8] = b.cur(buf[c*len(buf)/parts&^127 : (c+1)*len(buf)/parts&^127])
	}
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

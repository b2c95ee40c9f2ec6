package kernels

import (
	"encoding/binary"
	"slices"
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
// over the same memory, for a roofline taken right beside each step of a
// benchmark: on a shared machine the bandwidth can change twofold from one
// second to the next.
type BandwidthProbe struct {
	bufs [][]byte // what a pass reads, in order
	ends []int    // ends[i]: the bytes of bufs[:i+1]
	read func([]byte) uint64
	best float64  // the best rate of the passes the constructor timed
	sums []uint64 // a part's sum every cache line
	cur  func([]byte) uint64
}

// NewBandwidthProbe allocates a buffer of size bytes, touches its pages,
// and times passes passes of each read loop over it with p's workers (as
// MeasureBandwidth does); Measure then uses the loop that was fastest.
func NewBandwidthProbe(p *Pool, size, passes int) *BandwidthProbe {
	buf := make([]byte, max(size, 4096)&^127)
	adviseHuge(buf) // as the weights are
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = byte(i >> 12) // touch every page before timing
	}
	return NewBandwidthProbeOf(p, [][]byte{buf}, passes)
}

// NewBandwidthProbeOf is NewBandwidthProbe over bufs, read one after
// another in their order, instead of a buffer of its own: give it the
// weights a decoded token streams (Matrix.Streamed), in the order the
// token reads them, for the bound of that model's decode. Where the
// guest's cores and memory are not uniformly near each other (two cores
// on different dies, or sockets, of the host), equal buffers in
// different places stream at different rates: four buffers of 160 MB,
// measured in turn in one process on 2 cores of a Zen 4 guest, read up to
// 11% apart while the cores were far apart, and within 3-5% while they
// were near. A pass reads the bytes as the token does, the last ones
// last, so that what it leaves in the caches is what a previous token
// would have left. The buffers must not change while the probe is in use
// (it reads them, and writes nothing to them).
func NewBandwidthProbeOf(p *Pool, bufs [][]byte, passes int) *BandwidthProbe {
	b := &BandwidthProbe{read: readGo}
	for _, buf := range bufs {
		if len(buf) > 0 {
			b.bufs = append(b.bufs, buf)
			b.ends = append(b.ends, b.size()+len(buf))
		}
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

// size is the bytes of a pass.
func (b *BandwidthProbe) size() int {
	if len(b.ends) == 0 {
		return 0
	}
	return b.ends[len(b.ends)-1]
}

// Measure returns the bandwidth, in bytes per second, of one pass over the
// probe's memory with its fastest loop.
func (b *BandwidthProbe) Measure(p *Pool) float64 { return b.pass(p, b.read) }

// pass reads the probe's memory once with read, in contiguous parts
// spread over p's workers, and returns the rate.
func (b *BandwidthProbe) pass(p *Pool, read func([]byte) uint64) float64 {
	b.cur = read
	start := time.Now()
	p.run(len(b.sums)/8, 1, b)
	bw := float64(b.size()) / time.Since(start).Seconds()
	for i := 0; i < len(b.sums); i += 8 {
		bandwidthSink += b.sums[i]
	}
	return bw
}

// run reads parts [lo, hi) of the probe's memory with the loop of the pass
// (the probe is the pass's task, so that a pass allocates nothing). Part c
// is the bytes [c*size/parts, (c+1)*size/parts) of the buffers laid end to
// end, its ends rounded down to 128 bytes within their buffers.
func (b *BandwidthProbe) run(lo, hi int) {
	size, parts := b.size(), len(b.sums)/8
	for c := lo; c < hi; c++ {
		from, to := c*size/parts, (c+1)*size/parts
		var s uint64
		i, _ := slices.BinarySearch(b.ends, from+1) // the buffer holding byte from
		for ; i < len(b.bufs) && from < to; i++ {
			start := b.ends[i] - len(b.bufs[i])
			a, e := (from-start)&^127, min(to, b.ends[i])-start
			if e < len(b.bufs[i]) {
				e &^= 127
			}
			if a < e {
				s += b.cur(b.bufs[i][a:e])
			}
			from = b.ends[i]
		}
		b.sums[c*8] = s
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

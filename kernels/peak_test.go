package kernels

import (
	"encoding/binary"
	"math"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// TestSIMD checks that SIMD names the instructions of the FMA loop the
// peak is measured with, which the kernels share.
func TestSIMD(t *testing.T) {
	want := map[float64]string{0: "go", 10 * 8 * 2: "avx2", 10 * 16 * 2: "avx512-vnni"}[fmaLoopFLOP]
	if got := SIMD(); got != want || (fmaLoop == nil) != (got == "go") {
		t.Errorf("SIMD() = %q with an FMA loop of %g FLOP, want %q", got, fmaLoopFLOP, want)
	}
}

// TestMeasureFMAPeak checks that the FMA peak, where it can be measured,
// is a plausible figure for one to a few hundred cores.
func TestMeasureFMAPeak(t *testing.T) {
	p := NewPool(0)
	defer p.Close()
	f := MeasureFMAPeak(p, 20*time.Millisecond)
	if fmaLoop == nil {
		if f != 0 {
			t.Errorf("no assembly, yet a peak of %g", f)
		}
		return
	}
	if got := fmaLoop(3); math.Abs(float64(got)-3e-9) > 1e-12 { // ten chains of three 1e-10 steps
		t.Errorf("fmaPeakLoop(3) = %g", got)
	}
	if f < 1e9 || f > 1e14 {
		t.Errorf("FMA peak %g FLOP/s is implausible", f)
	}
	t.Logf("FMA peak with %d workers: %.1f GFLOP/s", p.Size(), f/1e9)
}

// TestReadLoops checks that every read loop of MeasureBandwidth reads every
// byte it is given: the AVX2 loops' fold is the XOR of each 32-byte lane of
// the buffer, whose low word is checked here, and the Go loop's the sum of
// its words.
func TestReadLoops(t *testing.T) {
	b := make([]byte, 128*37)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	var x, s uint64
	for i := 0; i < len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		if i%32 == 0 {
			x ^= w
		}
		s += w
	}
	if got := readGo(b); got != s {
		t.Errorf("readGo = %#x, want %#x", got, s)
	}
	for i, read := range readLoops {
		if got := read(b); got != x {
			t.Errorf("read loop %d = %#x, want %#x", i, got, x)
		}
		if got := read(b[:100]); got != 0 {
			t.Errorf("read loop %d over less than 128 bytes = %#x, want 0", i, got)
		}
	}
}

// TestMeasureBandwidth checks that the bandwidth is a plausible figure.
func TestMeasureBandwidth(t *testing.T) {
	p := NewPool(0)
	defer p.Close()
	bw := MeasureBandwidth(p, 8<<20, 2)
	if bw < 1e8 || bw > 1e13 {
		t.Errorf("bandwidth %g B/s is implausible", bw)
	}
	t.Logf("bandwidth over 8 MB with %d workers: %.1f GB/s", p.Size(), bw/1e9)
}

// TestBandwidthProbe checks that a probe measures again and again over its
// one buffer, with plausible figures, and allocates nothing to do so.
func TestBandwidthProbe(t *testing.T) {
	p := NewPool(0)
	defer p.Close()
	b := NewBandwidthProbe(p, 8<<20, 2)
	for range 3 {
		if bw := b.Measure(p); bw < 1e8 || bw > 1e13 {
			t.Errorf("bandwidth %g B/s is implausible", bw)
		}
	}
	if n := settledAllocs(100, func() { b.Measure(p) }); n > 0 {
		t.Errorf("Measure allocates %v times a call", n)
	}
}

// TestBandwidthProbeOf checks that a probe over given buffers reads each
// byte of them once a pass, whatever
// their sizes and the pool, and touches no byte outside them.
func TestBandwidthProbeOf(t *testing.T) {
	backing := make([]byte, 1<<20)
	bufs := [][]byte{backing[0:1000], nil, backing[4096 : 4096+300000], backing[400000 : 400000+128*1000+64], backing[600000:600001]}
	var want int
	for _, b := range bufs {
		want += len(b)
	}
	for _, n := range []int{1, 2, 3} {
		p := NewPool(n)
		b := NewBandwidthProbeOf(p, bufs, 1)
		if bw := b.Measure(p); bw <= 0 || math.IsInf(bw, 0) {
			t.Errorf("%d workers: bandwidth %g", n, bw)
		}
		seen := make([]byte, len(backing))
		var mu sync.Mutex
		b.pass(p, func(r []byte) uint64 {
			off := int(uintptr(unsafe.Pointer(unsafe.SliceData(r))) - uintptr(unsafe.Pointer(unsafe.SliceData(backing))))
			mu.Lock()
			defer mu.Unlock()
			for i := range r {
				seen[off+i]++
			}
			return uint64(len(r))
		})
		p.Close()
		got := 0
		for i, c := range seen {
			if c > 1 {
				t.Fatalf("%d workers: byte %d read %d times", n, i, c)
			}
			got += int(c)
		}
		for _, r := range bufs {
			if len(r) == 0 {
				continue
			}
			off := int(uintptr(unsafe.Pointer(unsafe.SliceData(r))) - uintptr(unsafe.Pointer(unsafe.SliceData(backing))))
			for i := range r {
				if seen[off+i] != 1 {
					t.Fatalf("%d workers: byte %d of a buffer of %d read %d times", n, i, len(r), seen[off+i])
				}
			}
		}
		if got != want {
			t.Errorf("%d workers: %d bytes read, want %d", n, got, want)
		}
	}
}

package kernels

import (
	"encoding/binary"
	"math"
	"testing"
	"time"
)

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

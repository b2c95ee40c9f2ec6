package kernels

import (
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

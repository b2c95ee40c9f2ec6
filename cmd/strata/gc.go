package main

import (
	"context"
	"os"
	"runtime/debug"
	"time"

	"github.com/strata-llm/strata/kernels"
)

// gcHeadroom is about how much garbage the process lets build up between
// two collections once its heap holds more weights than this.
const gcHeadroom = 512 << 20

// gcPercentFor returns the GC percentage for a heap that holds w bytes of
// weights: Go's default of 100 up to gcHeadroom of them; above, what keeps
// the garbage between collections near gcHeadroom instead of as large as
// the weights (at 100, a node holding 10 GB of weights grows towards 20 GB
// before it collects), down to 5. Weights are pointer-free, so the
// collections this adds mark little.
func gcPercentFor(w int64) int {
	if w <= gcHeadroom {
		return 100
	}
	return max(5, int(100*gcHeadroom/w))
}

// paceGC keeps the GC percentage at gcPercentFor of the weights the
// kernels hold in the heap, as models are loaded and dropped, until ctx
// ends. It leaves GOGC alone when the environment sets it.
func paceGC(ctx context.Context) {
	if os.Getenv("GOGC") != "" {
		return
	}
	last := 100
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if p := gcPercentFor(kernels.HeapWeightBytes()); p != last {
			debug.SetGCPercent(p)
			last = p
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

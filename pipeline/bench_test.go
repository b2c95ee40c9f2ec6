package pipeline

import "testing"

// TestBenchEach checks that BenchEach calls its hook once ahead of each
// decoded token and times each step, the steps adding up to Decode, on
// every reference model.
func TestBenchEach(t *testing.T) {
	for _, rm := range refModels(t) {
		m := load(t, rm.f, 0, rm.layers, rm.dequant)
		calls := 0
		r, err := BenchEach(m, 5, 4, 1, func() { calls++ })
		if err != nil {
			t.Fatalf("%s: %v", rm.name, err)
		}
		if calls != 4 || len(r.Steps) != 4 {
			t.Fatalf("%s: %d calls and %d steps for 4 tokens", rm.name, calls, len(r.Steps))
		}
		var sum int64
		for _, d := range r.Steps {
			if d <= 0 {
				t.Errorf("%s: a step of %v", rm.name, d)
			}
			sum += int64(d)
		}
		if sum != int64(r.Decode) || r.Prefill <= 0 || r.DecodeRate() <= 0 {
			t.Errorf("%s: steps add to %d ns, Decode %v, prefill %v", rm.name, sum, r.Decode, r.Prefill)
		}
	}
}

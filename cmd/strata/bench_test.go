package main

import "testing"

// TestBenchMedian checks that a bench row reports its median round, by the
// share it is chosen for, and the range of the rounds' shares.
func TestBenchMedian(t *testing.T) {
	rounds := []benchRound{{RooflineShare: 0.7, PeakShare: 0.5}, {RooflineShare: 0.5, PeakShare: 0.9}, {RooflineShare: 0.6, PeakShare: 0.6}}
	share := func(r benchRound) float64 { return r.RooflineShare }
	if got := median(rounds, share); got != rounds[2] {
		t.Errorf("median by decode share = %+v, want %+v", got, rounds[2])
	}
	if got := median(rounds, func(r benchRound) float64 { return r.PeakShare }); got != rounds[2] {
		t.Errorf("median by peak share = %+v, want %+v", got, rounds[2])
	}
	if got := median(rounds[:2], share); got != rounds[1] {
		t.Errorf("median of two = %+v, want the lower %+v", got, rounds[1])
	}
	if rounds[0].RooflineShare != 0.7 {
		t.Error("median reordered its argument")
	}
	if got := shareRange(rounds, share); got != "[50-70%]" {
		t.Errorf("shareRange = %q", got)
	}
	if got := shareRange(nil, share); got != "-" {
		t.Errorf("shareRange of no rounds = %q", got)
	}
}

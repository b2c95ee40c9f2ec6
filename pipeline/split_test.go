package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestSplitLayers(t *testing.T) {
	ones := func(n int) []uint64 { return slices.Repeat([]uint64{1}, n) }
	for _, tc := range []struct {
		w    []uint64
		n    int
		want []int
	}{
		{ones(5), 1, []int{0, 5}},
		{ones(5), 2, []int{0, 3, 5}},
		{ones(5), 3, []int{0, 2, 4, 5}},
		{ones(5), 4, []int{0, 2, 3, 4, 5}},
		{ones(5), 5, []int{0, 1, 2, 3, 4, 5}},
		{ones(16), 3, []int{0, 6, 12, 16}},
		{ones(32), 4, []int{0, 8, 16, 24, 32}},
		{[]uint64{10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 2, []int{0, 1, 11}},
		{[]uint64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 10}, 2, []int{0, 10, 11}},
		{[]uint64{4, 4, 8, 4, 4}, 3, []int{0, 2, 3, 5}},
		{[]uint64{0, 0, 0}, 2, []int{0, 2, 3}},
	} {
		t.Run(fmt.Sprint(tc.w, tc.n), func(t *testing.T) {
			got, err := SplitLayers(tc.w, tc.n)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("SplitLayers = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	for _, n := range []int{0, 6, -1} {
		if _, err := SplitLayers(ones(5), n); !errors.Is(err, errBadSplit) {
			t.Errorf("%d stages of 5 layers: %v", n, err)
		}
	}
	// Every split is valid and no heavier than an exhaustive search's best.
	w := []uint64{3, 1, 4, 1, 5, 9, 2, 6}
	for n := 1; n <= len(w); n++ {
		got, err := SplitLayers(w, n)
		if err != nil || checkBounds(got, n, len(w)) != nil {
			t.Fatalf("%d stages: %v, %v", n, got, err)
		}
		best := ^uint64(0)
		for _, b := range compositions(len(w)) {
			if len(b) == n+1 {
				best = min(best, heaviest(w, b))
			}
		}
		if h := heaviest(w, got); h != best {
			t.Errorf("%d stages: %v has a range of %d, best %d", n, got, h, best)
		}
	}
}

func heaviest(w []uint64, bounds []int) uint64 {
	var m uint64
	for i := range len(bounds) - 1 {
		var s uint64
		for _, x := range w[bounds[i]:bounds[i+1]] {
			s += x
		}
		m = max(m, s)
	}
	return m
}

func TestOpenSplit(t *testing.T) {
	path := testdataPath(t, stories)
	s, err := OpenSplit(path, 3, SplitOptions{Threads: 1, Logger: quiet, KVBudget: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got [][2]int
	for _, l := range s.Locals {
		lo, hi := l.Range()
		got = append(got, [2]int{lo, hi})
		if l.budget != 1<<20 {
			t.Errorf("stage %v: budget %d", l, l.budget)
		}
	}
	if want := [][2]int{{0, 2}, {2, 4}, {4, 5}}; !slices.Equal(got, want) {
		t.Errorf("ranges %v, want %v", got, want)
	}
	if s.Config.Layers != 5 || s.Tokenizer.VocabSize() != 512 || len(s.Stages()) != 3 {
		t.Errorf("config %+v, %d stages", s.Config, len(s.Stages()))
	}
	b, err := OpenSplit(path, 2, SplitOptions{Threads: 1, Logger: quiet, Bounds: []int{0, 4, 5}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if lo, hi := b.Locals[1].Range(); lo != 4 || hi != 5 {
		t.Errorf("bounds 0, 4, 5: second stage %d-%d", lo, hi)
	}
	for _, tc := range []struct {
		n      int
		bounds []int
	}{{0, nil}, {6, nil}, {2, []int{0, 5}}, {2, []int{0, 3, 4}}, {2, []int{0, 0, 5}}} {
		if s, err := OpenSplit(path, tc.n, SplitOptions{Threads: 1, Logger: quiet, Bounds: tc.bounds}); !errors.Is(err, errBadSplit) {
			t.Errorf("%d stages, bounds %v: %v", tc.n, tc.bounds, err)
			if err == nil {
				s.Close()
			}
		}
	}
}

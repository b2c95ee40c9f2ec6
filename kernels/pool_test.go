package kernels

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// checkCover runs p.For(n) and checks that every index is covered exactly
// once by non-empty, in-range chunks.
func checkCover(t *testing.T, p *Pool, n int) {
	t.Helper()
	hits := make([]atomic.Int32, max(n, 0))
	var bad atomic.Value
	p.For(n, func(lo, hi int) {
		if lo < 0 || hi > n || lo >= hi {
			bad.Store(fmt.Sprintf("chunk [%d,%d) of %d", lo, hi, n))
			return
		}
		for i := lo; i < hi; i++ {
			hits[i].Add(1)
		}
	})
	if b := bad.Load(); b != nil {
		t.Fatalf("For(%d) on %d workers: bad %s", n, p.Size(), b)
	}
	for i := range hits {
		if c := hits[i].Load(); c != 1 {
			t.Fatalf("For(%d) on %d workers: index %d covered %d times", n, p.Size(), i, c)
		}
	}
}

func TestPoolForCovers(t *testing.T) {
	for _, size := range []int{1, 2, 3, 8} {
		p := NewPool(size)
		if p.Size() != size {
			t.Errorf("NewPool(%d).Size() = %d", size, p.Size())
		}
		for _, n := range []int{0, 1, 2, 3, 5, 7, 8, 31, 33, 100, 1001} {
			checkCover(t, p, n)
		}
		p.Close()
	}
	checkCover(t, nil, 17)
	var zero Pool
	checkCover(t, &zero, 17)
	zero.Close()
	if (*Pool)(nil).Size() != 1 {
		t.Error("nil Pool Size != 1")
	}
	if p := NewPool(0); p.Size() < 1 {
		t.Errorf("NewPool(0).Size() = %d", p.Size())
	} else {
		p.Close()
	}
}

// TestPoolTakesOverSpans checks that a For whose spans no worker takes up
// (both are busy in another For) is done whole by its caller, and that the
// busy workers, when free, finish theirs.
func TestPoolTakesOverSpans(t *testing.T) {
	p := NewPool(3)
	defer p.Close()
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	var ran atomic.Int32
	go func() {
		defer close(done)
		// One index each for the caller and the two workers, each held
		// until release.
		p.For(3, func(lo, hi int) {
			for range hi - lo {
				entered <- struct{}{}
				<-release
				ran.Add(1)
			}
		})
	}()
	for range 3 {
		select {
		case <-entered:
		case <-done:
			t.Fatal("the blocking For returned early")
		}
	}
	covered := make(chan struct{})
	go func() {
		defer close(covered)
		checkCover(t, p, 1000)
	}()
	select {
	case <-covered:
	case <-time.After(time.Minute):
		t.Fatal("a For left to its caller did not finish: spans without an owner were not taken over")
	}
	close(release)
	<-done
	if ran.Load() != 3 {
		t.Errorf("the blocking For ran %d indexes, want 3", ran.Load())
	}
}

// TestPoolUnevenWork checks exact cover when some indexes cost far more
// than others, so that goroutines run out of their own spans at different
// times and take over parts of the others' (run it with -race too).
func TestPoolUnevenWork(t *testing.T) {
	for _, size := range []int{2, 3, 8} {
		p := NewPool(size)
		for _, n := range []int{2, 63, 1000, 4097} {
			for _, slow := range []int{0, n / 3, n - 1} {
				hits := make([]atomic.Int32, n)
				var sink atomic.Int64
				p.For(n, func(lo, hi int) {
					for i := lo; i < hi; i++ {
						spin := 1
						if i <= slow && i >= slow-n/8 {
							spin = 2000
						}
						s := 0
						for k := range spin {
							s += k ^ i
						}
						sink.Add(int64(s))
						hits[i].Add(1)
					}
				})
				for i := range hits {
					if c := hits[i].Load(); c != 1 {
						t.Fatalf("size %d, For(%d), slow around %d: index %d covered %d times", size, n, slow, i, c)
					}
				}
			}
		}
		p.Close()
	}
}

func TestPoolNilInline(t *testing.T) {
	calls := 0
	(*Pool)(nil).For(10, func(lo, hi int) {
		calls++
		if lo != 0 || hi != 10 {
			t.Errorf("nil pool chunk [%d,%d)", lo, hi)
		}
	})
	if calls != 1 {
		t.Errorf("nil pool made %d calls", calls)
	}
	(*Pool)(nil).For(0, func(lo, hi int) { t.Error("For(0) called fn") })
	(*Pool)(nil).Close()
}

func TestPoolConcurrentCallers(t *testing.T) {
	p := NewPool(3)
	defer p.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				n := 1 + (g*31+i*7)%97
				var sum atomic.Int64
				p.For(n, func(lo, hi int) {
					for j := lo; j < hi; j++ {
						sum.Add(int64(j))
					}
				})
				if got, want := sum.Load(), int64(n*(n-1)/2); got != want {
					t.Errorf("For(%d): sum %d, want %d", n, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestPoolNested(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	var total atomic.Int64
	p.For(8, func(lo, hi int) {
		for range hi - lo {
			p.For(10, func(lo, hi int) { total.Add(int64(hi - lo)) })
		}
	})
	if total.Load() != 80 {
		t.Errorf("nested For covered %d, want 80", total.Load())
	}
}

func TestPoolClose(t *testing.T) {
	p := NewPool(4)
	checkCover(t, p, 50)
	p.Close()
	p.Close()            // idempotent
	checkCover(t, p, 50) // runs inline after Close
}

func TestPoolForNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race")
	}
	p := NewPool(2)
	defer p.Close()
	var sink atomic.Int64
	fn := func(lo, hi int) { sink.Add(int64(hi - lo)) }
	p.For(100, fn)
	if a := settledAllocs(100, func() { p.For(100, fn) }); a != 0 {
		t.Errorf("For allocates %v times per call", a)
	}
}

// settledAllocs is testing.AllocsPerRun(runs, f), tried up to three times
// until it reads zero. A worker starved of CPU (other test binaries run
// beside this one) leaves its queued jobs held, so the callers' next calls
// take new ones from the heap: the free list grows once, by as many jobs as
// the queue holds, and never shrinks. Code that allocates on every call
// reads nonzero on every try.
func settledAllocs(runs int, f func()) float64 {
	var a float64
	for range 3 {
		if a = testing.AllocsPerRun(runs, f); a == 0 {
			break
		}
	}
	return a
}

// BenchmarkPoolFor measures a For call's own cost: handing the job to the
// workers, claiming chunks and meeting at the end, over trivial work (one
// write per index, each to its own cache line).
func BenchmarkPoolFor(b *testing.B) {
	p := NewPool(0)
	defer p.Close()
	sink := make([]int, 256*8)
	for _, n := range []int{2, 16, 64, 256} {
		b.Run(fmt.Sprintf("n%d/p%d", n, p.Size()), func(b *testing.B) {
			b.ReportAllocs()
			fn := func(lo, hi int) {
				for i := lo; i < hi; i++ {
					sink[i*8]++
				}
			}
			for b.Loop() {
				p.For(n, fn)
			}
		})
	}
}

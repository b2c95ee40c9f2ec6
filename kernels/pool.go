package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Pool is one persistent set of worker goroutines shared by all kernels. A
// call to For hands out contiguous chunks of an index range to the idle
// workers and to the calling goroutine, which works too; no goroutine is
// started per call. A Pool is safe for concurrent use by several callers
// (their chunks interleave on the workers), and For may be called from inside
// a function that For runs. A nil *Pool (or a zero Pool) is valid
// everywhere and runs all work on the caller's goroutine.
type Pool struct {
	size int
	jobs chan *job
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// task is the work of one For call. Kernels pass pooled structs that
// implement it, so that For allocates nothing.
type task interface{ run(lo, hi int) }

// funcTask adapts a plain function to task without allocating (a func value
// is pointer-shaped).
type funcTask func(lo, hi int)

func (f funcTask) run(lo, hi int) { f(lo, hi) }

// job is one For call in flight. Its range is claimed from next in
// shrinking chunks (guided scheduling: a share of what is left, down to
// least). Each goroutine working on it counts what it ran and takes that
// from left once, when nothing is left to claim; whoever brings left to
// zero signals done, which the caller always receives. (Taking each chunk
// from left as it finished made the two cores pass next's cache line back
// and forth twice per chunk: a For of 64 trivial chunks took 4.1 µs, now
// 1.3.) refs counts the caller and the workers holding the job; the last
// to let go recycles it.
type job struct {
	t       task
	n       int
	least   int // the smallest chunk
	workers int
	next    atomic.Int64
	left    atomic.Int64
	refs    atomic.Int32
	done    chan struct{}
}

var jobs freeList[job]

// finestCut sets the smallest chunk For hands out: 1/finestCut of a
// worker's even share. Chunks start at half a worker's share of what is
// left and shrink as the range runs out, so a product is read in a few long
// runs (each chunk restarts the hardware prefetchers) while the last chunks
// are short: a worker slowed by other load on the machine does not hold
// everyone up, and the others' wait for the last chunk of a decode product
// (idle at the end of every product) stays small.
const finestCut = 32

// NewPool starts a pool of n workers, the caller of For counted as one (so
// n-1 goroutines are started). n <= 0 means runtime.GOMAXPROCS(0); with
// n == 1 every For runs inline. Close stops the workers.
func NewPool(n int) *Pool {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	p := &Pool{size: n, quit: make(chan struct{})}
	if n > 1 {
		p.jobs = make(chan *job, 16*(n-1)) // room for several callers' jobs
		p.wg.Add(n - 1)
		for range n - 1 {
			go p.worker()
		}
	}
	return p
}

// Size returns the number of workers, the caller included; 1 for a nil Pool.
func (p *Pool) Size() int {
	if p == nil {
		return 1
	}
	return max(p.size, 1)
}

// Close stops the worker goroutines and waits for them to exit. Calls of For
// still in progress finish (on their own goroutines); For calls made after
// Close run inline. Close is idempotent.
func (p *Pool) Close() {
	if p == nil || p.quit == nil {
		return
	}
	p.once.Do(func() {
		close(p.quit)
		p.wg.Wait()
	})
}

// spinPolls is how many times an idle worker polls for the next job, and a
// caller waiting for its job's last chunks polls for them, before parking:
// some tens of microseconds, about the gap between the products of a decode
// step, so that each product does not wait for the scheduler to wake a
// thread (llama.cpp's threads poll too). It counts polls, not time, so that
// it ends inside a testing/synctest bubble as well.
const spinPolls = 1 << 14

func (p *Pool) worker() {
	defer p.wg.Done()
	for {
		j := p.poll()
		if j == nil {
			select {
			case j = <-p.jobs:
			case <-p.quit:
				return
			}
		}
		j.work()
		j.release()
	}
}

// poll returns the next job if one comes within spinPolls polls, else nil.
func (p *Pool) poll() *job {
	for range spinPolls {
		select {
		case j := <-p.jobs:
			return j
		default:
		}
	}
	return nil
}

// For splits [0,n) into contiguous chunks, calls fn once per chunk, spread
// over the workers and the calling goroutine, and returns when all calls
// have returned. Chunk boundaries and the number of chunks are unspecified;
// the chunks are disjoint and cover [0,n) exactly once, and fn must be safe
// to call concurrently on different chunks. For does nothing when n <= 0.
// On a nil Pool (or one of size 1) it calls fn(0, n) inline.
func (p *Pool) For(n int, fn func(lo, hi int)) {
	p.run(n, 1, funcTask(fn))
}

// run is For with a minimum chunk length (grain): work smaller than two
// grains runs inline, where waking a worker would cost more than it saves.
func (p *Pool) run(n, grain int, t task) {
	if n <= 0 {
		return
	}
	if p == nil || p.size <= 1 || n < 2*max(grain, 1) {
		t.run(0, n)
		return
	}
	select {
	case <-p.quit:
		t.run(0, n)
		return
	default:
	}
	least := max(grain, 1, (n+p.size*finestCut-1)/(p.size*finestCut))
	j := jobs.get()
	if j.done == nil {
		j.done = make(chan struct{}, 1)
	}
	j.t, j.n, j.least, j.workers = t, n, least, p.size
	j.next.Store(0)
	j.left.Store(int64(n))
	j.refs.Store(1)
	for range min(p.size-1, n/least-1) {
		j.refs.Add(1)
		select {
		case p.jobs <- j:
			continue
		default:
			// Every worker is busy and the queue is full: the caller
			// and whichever workers come free do the chunks.
			j.refs.Add(-1)
		}
		break
	}
	j.work()
	j.wait()
	j.release()
}

// wait returns once the last chunk of j is done. The workers are finishing
// their chunks: it polls for the signal for as long as a worker polls for
// jobs before it parks itself. Parking at once would cost a wake-up through
// the scheduler (tens of microseconds here, with both threads idle) at the
// end of every product.
func (j *job) wait() {
	for range spinPolls {
		select {
		case <-j.done:
			return
		default:
		}
	}
	<-j.done
}

// work runs chunks of j until none is left to claim, then counts them
// done.
func (j *job) work() {
	ran := 0
	for {
		lo := int(j.next.Load())
		if lo >= j.n {
			break
		}
		hi := min(j.n, lo+max(j.least, (j.n-lo)/(2*j.workers)))
		if !j.next.CompareAndSwap(int64(lo), int64(hi)) {
			continue
		}
		j.t.run(lo, hi)
		ran += hi - lo
	}
	if ran > 0 && j.left.Add(int64(-ran)) == 0 {
		j.done <- struct{}{}
	}
}

func (j *job) release() {
	if j.refs.Add(-1) == 0 {
		j.t = nil
		jobs.put(j)
	}
}

package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
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
	// ahead is the product announced to come next (Expect), until a
	// product takes it down.
	ahead atomic.Pointer[Lookahead]
}

// task is the work of one For call. Kernels pass pooled structs that
// implement it, so that For allocates nothing.
type task interface{ run(lo, hi int) }

// funcTask adapts a plain function to task without allocating (a func value
// is pointer-shaped).
type funcTask func(lo, hi int)

func (f funcTask) run(lo, hi int) { f(lo, hi) }

// job is one For call in flight. Its range starts split into one span per
// goroutine it was handed to: span 0 the caller's, span w worker w's (so
// that a worker knows its part of an announced product, see Expect). Each
// works through its own span from the front, in chunks of half of what is
// left of it (least at the smallest), so that it reads one contiguous run
// of memory (each restart of a run costs the hardware prefetchers their
// warm-up) in few calls, and one whose span is empty takes over the back
// half of the largest span left, or all of a span under two chunks.
// Spans no goroutine took up (their worker was busy) are taken over the
// same way; a worker with no span of its own (more workers than spans)
// starts empty. Each goroutine counts what it ran and takes that from left
// once, when nothing is left to claim; whoever brings left to zero signals
// done, which the caller always receives. refs counts the caller and the
// workers holding the job; the last to let go recycles it.
type job struct {
	t     task
	least int // the smallest chunk
	spans []span
	left  atomic.Int64
	refs  atomic.Int32
	done  chan struct{}
}

// span is one goroutine's share of a job's range, [lo, hi) packed into
// one word (lo in the low half) so that its owner's claims at the front
// and a taker's cut at the back are each one compare-and-swap. Each is a
// cache line of its own: owners claim without passing lines between
// cores.
type span struct {
	v atomic.Uint64
	_ [56]byte
}

// maxSpan bounds a job's range: a span's ends are 32-bit.
const maxSpan = 1<<32 - 1

func packSpan(lo, hi int) uint64 { return uint64(lo) | uint64(hi)<<32 }

func unpackSpan(v uint64) (lo, hi int) { return int(v & maxSpan), int(v >> 32) }

var jobs freeList[job]

// finestCut sets the smallest chunk For hands out: 1/finestCut of a
// worker's even share. A goroutine's chunks from its own span follow one
// another in memory, so their size does not break its run; the smallest
// bounds the wait at the end of a product (idle for everyone else), and a
// worker slowed by other load on the machine loses the rest of its span to
// the others. At 32, a worker's last chunk of a 1B F16 model's fused gate
// and up products was 700 KB, some 20 us of streaming from memory, half of
// which the other worker spent idle on average. Whole decoded tokens of
// that model, cuts alternating in one process (460 tokens each, the cores
// far apart): a median 94.9% of the paired roofline at 32, 95.1% at 128,
// 95.4% at 256, 95.6% at 512 (near: 97.4-97.7%); in another run, 93.3%
// at 32 and 95.0% at 256. Q4_0 and Q8_0 came within 0.2% at 32, 256 and
// 512.
const finestCut = 256

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
		for w := 1; w < n; w++ {
			go p.worker(w)
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

// spinTime is how long an idle worker polls for the next job, and a caller
// waiting for its job's last chunks polls for them, before parking (llama.cpp's
// threads poll too). Waking a parked thread takes the scheduler, and under a
// hypervisor the host: on a 2-vCPU guest, workers that parked after about 80
// µs of polling started the first product of most tokens `strata bench`
// decoded 100-190 µs late (its sampling and the next embedding come between
// two tokens), the caller streaming alone meanwhile. With a millisecond,
// whole tokens with 150 µs of the caller's work between them ran 0.7% faster
// while the cores were far apart (where one core streams half the
// bandwidth), the same near. An idle pool costs a core for that long.
const spinTime = time.Millisecond

// spinPolls bounds the polls of one spin as well: inside a testing/synctest
// bubble the clock stands still while goroutines run, and the count ends
// the spin there.
const spinPolls = 1 << 18

// spinning reports whether a goroutine that began to poll at start, and
// has polled i times, should poll again; it reads the clock once every 64
// polls.
func spinning(i int, start time.Time) bool {
	return i < spinPolls && (i&63 != 63 || time.Since(start) < spinTime)
}

// worker runs the jobs of worker w (1 to size-1; the caller of For is 0).
func (p *Pool) worker(w int) {
	defer p.wg.Done()
	for {
		// The product announced last, read ahead already, unless a job
		// (attention between two products, say) ran since.
		var read *Lookahead
		j := p.poll(w, &read)
		if j == nil {
			select {
			case j = <-p.jobs:
			case <-p.quit:
				return
			}
		}
		j.work(w)
		j.release()
	}
}

// poll returns the next job if one comes while it spins (spinning), else nil.
// Meanwhile worker w reads ahead the product Expect announced, once: read
// is the last one it did.
func (p *Pool) poll(w int, read **Lookahead) *job {
	start := time.Now()
	for i := 0; spinning(i, start); i++ {
		select {
		case j := <-p.jobs:
			return j
		default:
		}
		if l := p.ahead.Load(); l != nil && l != *read {
			*read = l
			p.readAhead(l, w)
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
	if p == nil || p.size <= 1 || n < 2*max(grain, 1) || n > maxSpan {
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
	parts := min(p.size, n/least)
	if cap(j.spans) < parts {
		j.spans = make([]span, parts)
	}
	j.spans = j.spans[:parts]
	for i := range j.spans {
		j.spans[i].v.Store(packSpan(i*n/parts, (i+1)*n/parts))
	}
	j.t, j.least = t, least
	j.left.Store(int64(n))
	j.refs.Store(1)
	for range parts - 1 {
		j.refs.Add(1)
		select {
		case p.jobs <- j:
			continue
		default:
			// Every worker is busy and the queue is full: the caller
			// and whichever workers come free take over the spans
			// left without an owner.
			j.refs.Add(-1)
		}
		break
	}
	j.work(0)
	j.wait()
	j.release()
}

// wait returns once the last chunk of j is done. The workers are finishing
// their chunks: it polls for the signal as long as a worker polls for jobs
// (spinTime) before it parks itself. Parking at once would cost a wake-up
// through the scheduler (tens to hundreds of microseconds here) at the end
// of every product.
func (j *job) wait() {
	start := time.Now()
	for i := 0; spinning(i, start); i++ {
		select {
		case <-j.done:
			return
		default:
		}
	}
	<-j.done
}

// work runs chunks of j on goroutine w (0 the caller, else a worker)
// until none is left to claim, then counts them done.
func (j *job) work(w int) {
	own := &span{}
	if w < len(j.spans) {
		own = &j.spans[w]
	}
	ran := 0
	for {
		lo, hi, ok := j.claim(own)
		if !ok {
			break
		}
		j.t.run(lo, hi)
		ran += hi - lo
	}
	if ran > 0 && j.left.Add(int64(-ran)) == 0 {
		j.done <- struct{}{}
	}
}

// claim returns the next chunk from the front of own, taking over part of
// the largest other span first when own is empty; ok is false when every
// span is.
func (j *job) claim(own *span) (lo, hi int, ok bool) {
	for {
		v := own.v.Load()
		if lo, hi := unpackSpan(v); lo < hi {
			end := min(hi, lo+max(j.least, (hi-lo)/2))
			if own.v.CompareAndSwap(v, packSpan(end, hi)) {
				return lo, end, true
			}
			continue
		}
		var from *span
		most := 0
		for i := range j.spans {
			if lo, hi := unpackSpan(j.spans[i].v.Load()); hi-lo > most {
				from, most = &j.spans[i], hi-lo
			}
		}
		if from == nil {
			return 0, 0, false
		}
		v = from.v.Load()
		lo, hi := unpackSpan(v)
		if lo >= hi {
			continue
		}
		cut := lo + (hi-lo)/2
		if hi-lo < 2*j.least {
			cut = lo
		}
		if from.v.CompareAndSwap(v, packSpan(lo, cut)) {
			// Only this goroutine fills an empty own span.
			own.v.Store(packSpan(cut, hi))
		}
	}
}

func (j *job) release() {
	if j.refs.Add(-1) == 0 {
		j.t = nil
		jobs.put(j)
	}
}

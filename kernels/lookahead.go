package kernels

import (
	"runtime"
	"sync/atomic"
)

// Lookahead is the weights one dispatch of a product streams, in the
// order it streams them, for Pool.Expect. Make one per product when the
// weights are loaded (NewLookahead) and keep it: announcing it allocates
// nothing.
type Lookahead struct {
	bufs  [][]byte
	total int
	busy  atomic.Int32 // workers reading it now
}

// NewLookahead returns the Lookahead of the product of ws: one matrix, or
// the matrices of one MatMulShared call in their order.
func NewLookahead(ws ...Matrix) *Lookahead {
	l := &Lookahead{}
	for _, w := range ws {
		if b := w.Streamed(); len(b) > 0 {
			l.bufs = append(l.bufs, b)
			l.total += len(b)
		}
	}
	return l
}

// lookaheadBytes is how much of its part of an announced product a worker
// reads ahead, at most: a quarter of the L2 of the CPUs this was measured
// on (1 MB a core). The 1B shape's Q8_0 decode on two cores, tokens with
// and without it alternating in one process (hundreds of pairs a run, five
// runs): 0.8-1.7% faster while the host had the cores far apart, 0.4-0.8%
// while near; 128 KB, 512 KB and 1 MB came within 0.6% of 256 KB.
const lookaheadBytes = 256 << 10

// Expect announces that the next matrix product on p (MatVec, MatMul,
// MatMulShared or their batched forms) will be l, so that workers idle
// until then read the start of their part of its weights into their
// caches: what the caller does alone between two products (normalizing,
// RoPE, SwiGLU, attention's last heads) then overlaps with streaming the
// next one's weights, which a decoded token is bound by. The next product,
// whichever it is, takes the announcement down as it starts, and no worker
// reads l once that product returns: l's weights must stay mapped until
// then. A later Expect replaces an earlier one; Expect(nil) takes it down.
// A nil Pool, or one of size 1, ignores it.
func (p *Pool) Expect(l *Lookahead) {
	if p == nil || p.size <= 1 {
		return
	}
	if old := p.ahead.Swap(l); old != l {
		old.drain()
	}
}

// takeAhead takes down the announced product, if any, and returns it, for
// the caller to drain once its own product is done.
func (p *Pool) takeAhead() *Lookahead {
	if p == nil {
		return nil
	}
	return p.ahead.Swap(nil)
}

// readAhead reads the first lookaheadBytes of worker w's part of l (the
// bytes from w/size of the way: its span of a product large enough to
// give every goroutine one), a step at a time, while l is still announced
// and no job waits.
func (p *Pool) readAhead(l *Lookahead, w int) {
	l.busy.Add(1)
	defer l.busy.Add(-1)
	const step = 16 << 10
	at, left := w*l.total/p.size&^127, lookaheadBytes
	var sum uint64
	for _, b := range l.bufs {
		if at >= len(b) {
			at -= len(b)
			continue
		}
		for b = b[at:]; len(b) > 0 && left > 0; {
			if p.ahead.Load() != l || len(p.jobs) > 0 {
				left = 0
				break
			}
			k := min(len(b), step, left)
			sum += readAheadLoop(b[:k])
			b, left = b[k:], left-k
		}
		if at = 0; left <= 0 {
			break
		}
	}
	readAheadSink.Add(sum)
}

// readAheadSink keeps the reads of readAhead from being optimized away.
var readAheadSink atomic.Uint64

// readAheadLoop reads b with the loop this CPU streams fastest with where
// it has one (with software prefetch).
func readAheadLoop(b []byte) uint64 {
	if len(readLoops) > 0 {
		return readLoops[len(readLoops)-1](b)
	}
	return readGo(b)
}

// drain returns once no worker reads l; l may be nil. Workers stop at
// their next step once l is no longer announced.
func (l *Lookahead) drain() {
	if l == nil {
		return
	}
	for l.busy.Load() != 0 {
		runtime.Gosched()
	}
}

package kernels

import (
	"math/rand/v2"
	"testing"
)

// TestLookahead checks that a Lookahead holds the weights its matrices
// stream, in order, and that a worker's read ahead stays within them for
// every part of a pool, wherever the part starts.
func TestLookahead(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	q, k := randMatrix(t, rng, Q8_0, 96, 256), randMatrix(t, rng, Q8_0, 32, 256)
	l := NewLookahead(q, k, Matrix{})
	if len(l.bufs) != 2 || l.total != len(q.Streamed())+len(k.Streamed()) {
		t.Fatalf("%d buffers of %d bytes, want 2 of %d", len(l.bufs), l.total, len(q.Streamed())+len(k.Streamed()))
	}
	p := NewPool(5)
	defer p.Close()
	p.Expect(l)
	for w := range p.Size() {
		p.readAhead(l, w) // parts starting in either buffer
	}
	p.Expect(nil)
	if p.ahead.Load() != nil || l.busy.Load() != 0 {
		t.Fatal("Expect(nil) left the announcement up, or a reader on it")
	}
}

// TestExpect checks that the next product takes an announcement down,
// whichever product it is, that no worker reads it once that product
// returns, and that announcing allocates nothing.
func TestExpect(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	p := NewPool(2)
	defer p.Close()
	a, b := randMatrix(t, rng, Q8_0, 4096, 512).Packed(), randMatrix(t, rng, Q8_0, 1024, 512).Packed()
	la, lb := NewLookahead(a), NewLookahead(b)
	x := randNormal(rng, 512, 1)
	dst := make([]float32, 4096)
	for _, l := range []*Lookahead{la, lb} {
		p.Expect(l)
		for range 1000 { // give the worker time to start reading
			if l.busy.Load() != 0 {
				break
			}
		}
		MatVec(p, dst, b, x)
		if p.ahead.Load() != nil || l.busy.Load() != 0 {
			t.Fatal("a product left the announcement up, or a reader on it")
		}
	}
	if a := settledAllocs(50, func() { p.Expect(la); MatVec(p, dst, a, x) }); a != 0 && !raceEnabled {
		t.Errorf("%v allocations announcing and running a product", a)
	}
	var nilPool *Pool
	nilPool.Expect(la) // ignored
	MatVec(nilPool, dst, a, x)
}

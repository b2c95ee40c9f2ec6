package sched

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// source is where a simulation draws its choices: a seeded generator, or
// the bytes of a fuzz input.
type source interface {
	intn(n int) int // in [0, n); n >= 1
	more() bool     // false once a fuzz input is spent
}

type randSource struct{ r *rand.Rand }

func (s randSource) intn(n int) int { return s.r.IntN(n) }
func (s randSource) more() bool     { return true }

type byteSource struct{ b []byte }

func (s *byteSource) intn(n int) int {
	if len(s.b) == 0 {
		return 0
	}
	v := int(s.b[0])
	s.b = s.b[1:]
	if n > 256 && len(s.b) > 0 {
		v = v<<8 | int(s.b[0])
		s.b = s.b[1:]
	}
	return v % n
}
func (s *byteSource) more() bool { return len(s.b) > 0 }

var errStage = errors.New("stage failed")

// simulate drives a checked Scheduler with random operations drawn from
// src, then drains it; the checker checks the invariants after every step
// and, at the end, that every sequence finished and was released exactly
// once.
func simulate(tb testing.TB, src source, ops int) {
	tb.Helper()
	cfg := Config{
		Stages:         1 + src.intn(4),
		MaxBatchTokens: 1 + src.intn(64),
		MaxSeqs:        1 + src.intn(8),
		PrefillChunk:   1 + src.intn(16),
		MaxQueue:       1 + src.intn(8),
		MaxInFlight:    src.intn(6),
		QueueTimeout:   src.intn(2) * src.intn(8),
	}
	c := newChecker(tb, cfg)
	ids := SeqID(0)
	pick := func() SeqID { return SeqID(src.intn(int(ids) + 2)) } // sometimes unknown
	for i := 0; i < ops && src.more(); i++ {
		switch op := src.intn(16); {
		case op < 4: // a new request; now and then a duplicate or a malformed one
			r := Request{ID: ids + 1, Prompt: make([]int, src.intn(40)+1), MaxTokens: 1 + src.intn(10)}
			switch src.intn(16) {
			case 0:
				r.ID = pick()
			case 1:
				r.Prompt = nil
			case 2:
				r.MaxTokens = 0
			case 3, 4, 5: // a cached prefix, sometimes malformed
				r.Cached, r.From = src.intn(len(r.Prompt)+1), pick()
			}
			for j := range r.Prompt {
				r.Prompt[j] = src.intn(1000)
			}
			if c.submit(r) == nil && r.ID > ids {
				ids = r.ID
			}
		case op < 7:
			c.fill()
		case op < 8:
			c.next()
		case op < 12: // a micro-batch comes back, usually the oldest
			if len(c.order) == 0 {
				continue
			}
			b := c.order[0]
			if src.intn(4) == 0 {
				b = c.order[src.intn(len(c.order))]
			}
			c.done(b, randomResults(c, src, b))
		case op < 14:
			c.cancel(pick())
		case op < 15:
			c.tick()
		default: // a driver bug: refused, changing nothing
			if len(c.order) == 0 {
				c.done(c.last+1, nil)
				continue
			}
			b := c.order[src.intn(len(c.order))]
			rs := randomResults(c, src, b)
			rs = append(rs, Result{ID: pick()})
			if len(rs) > 1 && src.intn(2) == 0 {
				rs[len(rs)-1].ID = rs[0].ID // two results for one sequence
			}
			c.done(b, rs) // may be accepted: the extra ID may be in the batch
		}
	}
	c.drain(10000)
}

// randomResults reports on batch b: tokens, stops, errors, missing results,
// in a shuffled order.
func randomResults(c *checker, src source, b uint64) []Result {
	var rs []Result
	for _, ch := range c.flights[b].mb.Chunks {
		r := Result{ID: ch.ID, Token: src.intn(1000)}
		switch k := src.intn(16); {
		case k == 0:
			r.Err = errStage
		case !ch.Logits || k == 1:
			continue // no result: fails the sequence if it wanted logits
		case k < 4:
			r.Stop = true
		}
		rs = append(rs, r)
	}
	for i := len(rs) - 1; i > 0; i-- {
		j := src.intn(i + 1)
		rs[i], rs[j] = rs[j], rs[i]
	}
	return rs
}

func TestRandom(t *testing.T) {
	seeds := 400
	if testing.Short() {
		seeds = 50
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			simulate(t, randSource{rand.New(rand.NewPCG(seed, 0x5eed))}, 400)
		})
	}
}

func FuzzScheduler(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{2, 10, 3, 4, 2, 2, 0, 0, 0, 1, 5, 5, 4, 4, 9, 9, 9, 9, 5, 8, 8, 8, 8})
	f.Add([]byte("continuous batching with chunked prefill across three stages, cancel and fail"))
	f.Fuzz(func(t *testing.T, data []byte) {
		simulate(t, &byteSource{data}, 1<<20)
	})
}

package sched

import "fmt"

// Next returns the next micro-batch to launch, or false when MaxInFlight
// micro-batches are in flight, the token budget is spent, or no sequence is
// ready (every admitted one has a chunk in flight and none can be admitted).
// The driver calls it until it returns false after every Submit, Cancel and
// Done, which may add work or free room.
//
// The micro-batch takes, in this order: its share of the ready decodes; the
// next prompt chunks of admitted sequences, oldest first; the first chunks
// of queued sequences, first in first out, while MaxSeqs allows. The tokens
// of every ready decode are reserved before any prompt token is scheduled.
// The ready work is split over the free slots (at most Stages ways): the
// decodes evenly, and prompt chunks while the micro-batch stays within its
// even share of the tokens (a chunk is cut only by PrefillChunk and the
// token budget, never to balance: in the last free way, one prompt chunk
// goes whatever its size). While other micro-batches are in flight,
// a share is also at most an even split of the work over all of them
// (the steady state's min(MaxInFlight, Stages) groups): of the decodes,
// the ready ones and those in flight that come back to decode; of the
// tokens, the ready ones and those in flight. Ready work beyond it waits
// for the next free slot, so that groups launched one slot at a time (as
// requests arrive one by one) even out instead of one group taking all.
func (s *Scheduler) Next() (MicroBatch, bool) {
	free := s.cfg.MaxInFlight - len(s.flights)
	avail := s.cfg.MaxBatchTokens - s.inTokens
	if free <= 0 || avail <= 0 {
		return MicroBatch{}, false
	}
	ways := min(free, s.cfg.Stages)
	groups := min(s.cfg.MaxInFlight, s.cfg.Stages) // micro-batches in flight in the steady state
	chunk := s.cfg.PrefillChunk

	// The ready work: decodes, and the next prompt chunks of admitted and
	// admissible sequences; and the sequences in flight that will decode
	// when they come back.
	decodes, returning, prefill, prompts := 0, 0, 0, 0
	for _, q := range s.running {
		switch {
		case q.batch != 0: // a zombie is always in flight
			if q.phase != zombie && q.logits {
				returning++
			}
		case q.decoding():
			decodes++
		default:
			prefill += q.promptChunk(chunk)
			prompts++
		}
	}
	admissible := s.queue[:max(0, min(len(s.queue), s.cfg.MaxSeqs-len(s.running)))]
	for _, q := range admissible {
		prefill += q.promptChunk(chunk)
	}
	work := min(decodes+prefill, avail)
	if work == 0 {
		return MicroBatch{}, false
	}
	// This micro-batch's even shares of the tokens and of the decodes.
	target, nd := ceilDiv(work, ways), min(decodes, ceilDiv(decodes, ways), avail)
	if len(s.flights) > 0 {
		target = min(target, ceilDiv(work+s.inTokens, groups))
		nd = min(nd, ceilDiv(decodes+returning, groups))
	}
	budget := avail - decodes // for prompt tokens: every ready decode is reserved
	fed := false              // a prompt chunk is in the micro-batch
	fits := func(mb *MicroBatch, n int) bool {
		// In the last free way, one chunk larger than the share still goes.
		return len(mb.Chunks) == 0 || ways == 1 && !fed || mb.Tokens+n <= target
	}

	f := s.newFlight()
	mb := MicroBatch{Num: s.batch + 1, Chunks: make([]Chunk, 0, nd+prompts+len(admissible))}
	for _, q := range s.running {
		if len(mb.Chunks) == nd {
			break
		}
		if q.batch == 0 && q.decoding() {
			s.add(f, &mb, q, 1, true, false)
		}
	}
	full := false
	for _, q := range s.running {
		if q.batch != 0 || q.decoding() {
			continue
		}
		n := min(q.promptChunk(chunk), budget)
		if n <= 0 || !fits(&mb, n) {
			full = true
			break
		}
		s.add(f, &mb, q, n, q.fed+n == q.prompt, false)
		budget -= n
		fed = true
	}
	for !full && len(s.queue) > 0 && len(s.running) < s.cfg.MaxSeqs {
		q := s.queue[0]
		n := min(q.promptChunk(chunk), budget)
		if n <= 0 || !fits(&mb, n) {
			break
		}
		s.queue[0] = nil
		s.queue = s.queue[1:]
		q.phase = running
		s.running = append(s.running, q)
		s.stats.CachedTokens += uint64(q.fed)
		s.add(f, &mb, q, n, q.fed+n == q.prompt, true)
		budget -= n
		fed = true
	}
	if len(mb.Chunks) == 0 { // not reached: work > 0 leaves room for one chunk
		s.spare = append(s.spare, f)
		return MicroBatch{}, false
	}

	s.batch = mb.Num
	f.tokens = mb.Tokens
	s.flights[mb.Num] = f
	s.inTokens += mb.Tokens
	s.stats.Batches++
	return mb, true
}

// add puts n tokens of q, which has nothing in flight, into micro-batch mb
// and its flight f.
func (s *Scheduler) add(f *flight, mb *MicroBatch, q *seq, n int, logits, open bool) {
	if q.decoding() {
		s.stats.DecodeTokens += uint64(n)
	} else {
		s.stats.PrefillTokens += uint64(n)
	}
	c := Chunk{
		ID:     q.id,
		Tokens: q.tokens[q.fed : q.fed+n : q.fed+n], // never written again: q.tokens only grows
		Pos:    q.fed,
		Logits: logits,
		Open:   open,
	}
	if open {
		c.From = q.from
	}
	mb.Chunks = append(mb.Chunks, c)
	mb.Tokens += n
	f.seqs = append(f.seqs, q)
	q.batch, q.n, q.logits = mb.Num, n, logits
}

// newFlight returns an empty flight, reusing a spare one.
func (s *Scheduler) newFlight() *flight {
	if n := len(s.spare); n > 0 {
		f := s.spare[n-1]
		s.spare = s.spare[:n-1]
		return f
	}
	return &flight{}
}

// Done reports that micro-batch batch came back from the last stage, with a
// Result for each of its chunks that wanted logits, and for any chunk whose
// sequence failed. A sequence with an error, or with no Result where it
// wanted logits (ErrNoResult), fails alone. A sampled token is emitted to
// its client; it finishes the sequence when the driver says Stop or when it
// is the MaxTokens-th. Results of cancelled sequences are ignored.
//
// Done refuses, changing nothing, a batch that is not in flight
// (ErrUnknownBatch) and results that do not match the batch (ErrBadResult):
// an ID not in it, two results for one ID, a token for a chunk that wanted
// no logits. The results are not retained.
func (s *Scheduler) Done(batch uint64, results []Result) error {
	f := s.flights[batch]
	if f == nil {
		return fmt.Errorf("%w: %d", ErrUnknownBatch, batch)
	}
	for i := range results {
		r := &results[i]
		q := s.seqs[r.ID]
		var err error
		switch {
		case q == nil || q.batch != batch:
			err = fmt.Errorf("%w: sequence %d is not in batch %d", ErrBadResult, r.ID, batch)
		case q.res != 0:
			err = fmt.Errorf("%w: two results for sequence %d in batch %d", ErrBadResult, r.ID, batch)
		case !q.logits && r.Err == nil && q.phase != zombie:
			err = fmt.Errorf("%w: a token for sequence %d, which wanted no logits in batch %d", ErrBadResult, r.ID, batch)
		}
		if err != nil {
			for _, r := range results[:i] {
				s.seqs[r.ID].res = 0
			}
			return err
		}
		q.res = i + 1
	}

	delete(s.flights, batch)
	s.inTokens -= f.tokens
	for _, q := range f.seqs {
		var r *Result
		if q.res != 0 {
			r = &results[q.res-1]
		}
		n, logits := q.n, q.logits
		q.batch, q.n, q.logits, q.res = 0, 0, false, 0
		switch {
		case q.phase == zombie:
			s.release(q)
		case r != nil && r.Err != nil:
			s.finish(q, FinishError, r.Err)
		case logits && r == nil:
			s.finish(q, FinishError, fmt.Errorf("%w %d in batch %d", ErrNoResult, q.id, batch))
		default:
			q.fed += n
			if !logits {
				continue
			}
			q.tokens = append(q.tokens, r.Token)
			s.rd.Tokens = append(s.rd.Tokens, Token{ID: q.id, Index: q.generated() - 1, Token: r.Token})
			s.stats.Generated++
			switch {
			case r.Stop:
				s.finish(q, FinishStop, nil)
			case q.generated() >= q.max:
				s.finish(q, FinishLength, nil)
			}
		}
	}
	clear(f.seqs)
	f.seqs = f.seqs[:0]
	s.spare = append(s.spare, f)
	return nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

package sched

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// checker drives a Scheduler through its wrappers and checks it against a
// model after every call: the exact events that Submit, Cancel, Tick and
// Done must cause, and the invariants every micro-batch must keep. It does
// not predict which sequences Next picks (that is policy); it checks that
// the pick is legal.
type checker struct {
	tb      testing.TB
	s       *Scheduler
	cfg     Config
	live    map[SeqID]*mseq // known to the scheduler
	all     []*mseq         // every sequence ever accepted
	queue   []*mseq         // waiting, in Submit order
	flights map[uint64]*mflight
	order   []uint64 // batches in flight, in launch order
	last    uint64   // last batch number seen
	now     int64
	want    Ready    // events the calls since the last sync must cause
	record  bool     // keep the events seen, formatted, in seen
	seen    []string // for scripts
}

type mstate uint8

const (
	mQueued mstate = iota
	mRunning
	mZombie
	mGone
)

// mseq is the model of one sequence.
type mseq struct {
	id       SeqID
	prompt   []int
	max      int
	gen      []int
	pos      int   // the next position to feed
	from     SeqID // the session its first chunk forks
	state    mstate
	admitted bool
	since    int64
	batch    uint64
	finishes int
	releases int
}

func (m *mseq) decoding() bool { return m.pos >= len(m.prompt) }

// mflight is the model of a micro-batch in flight.
type mflight struct {
	mb    MicroBatch
	saved [][]int // copies of the chunks' tokens, to check nobody wrote them
}

func newChecker(tb testing.TB, cfg Config) *checker {
	tb.Helper()
	s, err := New(cfg)
	if err != nil {
		tb.Fatalf("New(%+v): %v", cfg, err)
	}
	return &checker{tb: tb, s: s, cfg: s.Config(), live: map[SeqID]*mseq{}, flights: map[uint64]*mflight{}}
}

func (c *checker) fatalf(format string, args ...any) {
	c.tb.Helper()
	c.tb.Fatalf(format, args...)
}

// running counts the admitted sequences the scheduler still knows.
func (c *checker) running() int {
	n := 0
	for _, m := range c.live {
		if m.state == mRunning || m.state == mZombie {
			n++
		}
	}
	return n
}

func (c *checker) finish(m *mseq, r Reason, err error) {
	m.finishes++
	c.want.Finished = append(c.want.Finished, Finish{ID: m.id, Reason: r, Err: err, Generated: len(m.gen)})
}

func (c *checker) release(m *mseq) {
	m.releases++
	m.state = mGone
	delete(c.live, m.id)
	c.want.Release = append(c.want.Release, m.id)
}

func (c *checker) submit(r Request) error {
	c.tb.Helper()
	var want error
	switch {
	case len(r.Prompt) == 0 || r.MaxTokens < 1 || r.Cached < 0 || r.Cached >= len(r.Prompt) || (r.Cached > 0) != (r.From != 0) || r.Cached > 0 && r.From == r.ID:
		want = ErrInvalid
	case c.live[r.ID] != nil:
		want = ErrDuplicate
	case len(c.queue) >= c.cfg.MaxQueue:
		want = ErrQueueFull
	}
	err := c.s.Submit(r)
	if !errors.Is(err, want) || (err == nil) != (want == nil) {
		c.fatalf("Submit(%d): got error %v, want %v", r.ID, err, want)
	}
	if err == nil {
		m := &mseq{id: r.ID, prompt: slices.Clone(r.Prompt), max: r.MaxTokens, since: c.now, pos: r.Cached, from: r.From}
		c.live[r.ID] = m
		c.all = append(c.all, m)
		c.queue = append(c.queue, m)
	}
	if len(r.Prompt) > 0 {
		r.Prompt[0]++ // Submit copied it: the scheduler must not see this
	}
	c.sync()
	return err
}

func (c *checker) cancel(id SeqID) {
	c.tb.Helper()
	if m := c.live[id]; m != nil {
		switch {
		case m.state == mZombie:
		case m.state == mQueued:
			c.queue = slices.DeleteFunc(c.queue, func(w *mseq) bool { return w == m })
			delete(c.live, id)
			m.state = mGone
			c.finish(m, FinishCancelled, nil)
		case m.batch != 0:
			m.state = mZombie
			c.finish(m, FinishCancelled, nil)
		default:
			c.finish(m, FinishCancelled, nil)
			c.release(m)
		}
	}
	c.s.Cancel(id)
	c.sync()
}

func (c *checker) tick() {
	c.tb.Helper()
	c.now++
	for t := int64(c.cfg.QueueTimeout); t > 0 && len(c.queue) > 0 && c.now-c.queue[0].since >= t; {
		m := c.queue[0]
		c.queue = c.queue[1:]
		delete(c.live, m.id)
		m.state = mGone
		c.finish(m, FinishTimeout, nil)
	}
	c.s.Tick()
	c.sync()
}

// next calls Next once and checks the micro-batch it returns.
func (c *checker) next() (MicroBatch, bool) {
	c.tb.Helper()
	mb, ok := c.s.Next()
	if !ok {
		c.checkStuck()
		c.sync()
		return mb, false
	}
	if len(c.flights) >= c.cfg.MaxInFlight {
		c.fatalf("batch %d launched with %d in flight, MaxInFlight %d", mb.Num, len(c.flights), c.cfg.MaxInFlight)
	}
	if mb.Num <= c.last {
		c.fatalf("batch %d after batch %d", mb.Num, c.last)
	}
	c.last = mb.Num
	if len(mb.Chunks) == 0 {
		c.fatalf("batch %d is empty", mb.Num)
	}
	f := &mflight{mb: mb}
	tokens := 0
	for _, ch := range mb.Chunks {
		m := c.live[ch.ID]
		switch {
		case m == nil:
			c.fatalf("batch %d: unknown or finished sequence %d", mb.Num, ch.ID)
		case m.batch != 0:
			c.fatalf("batch %d: sequence %d is already in batch %d (or twice in this one)", mb.Num, ch.ID, m.batch)
		case m.state == mZombie:
			c.fatalf("batch %d: cancelled sequence %d", mb.Num, ch.ID)
		case ch.Open != !m.admitted:
			c.fatalf("batch %d: sequence %d Open %v, admitted before %v", mb.Num, ch.ID, ch.Open, m.admitted)
		case ch.Open && c.queue[0] != m:
			c.fatalf("batch %d: admits sequence %d before %d, which was queued first", mb.Num, ch.ID, c.queue[0].id)
		case ch.Pos != m.pos:
			c.fatalf("batch %d: sequence %d at position %d, want %d", mb.Num, ch.ID, ch.Pos, m.pos)
		case len(ch.Tokens) == 0:
			c.fatalf("batch %d: sequence %d feeds no token", mb.Num, ch.ID)
		case ch.Open && ch.From != m.from || !ch.Open && ch.From != 0:
			c.fatalf("batch %d: sequence %d (open %v) forks %d, want %d", mb.Num, ch.ID, ch.Open, ch.From, m.from)
		}
		var want []int
		if m.decoding() {
			want = m.gen[len(m.gen)-1:]
		} else {
			if len(ch.Tokens) > c.cfg.PrefillChunk {
				c.fatalf("batch %d: sequence %d chunk of %d tokens, PrefillChunk %d", mb.Num, ch.ID, len(ch.Tokens), c.cfg.PrefillChunk)
			}
			want = m.prompt[m.pos:min(len(m.prompt), m.pos+len(ch.Tokens))]
		}
		if !slices.Equal(ch.Tokens, want) {
			c.fatalf("batch %d: sequence %d feeds %v at %d, want %v", mb.Num, ch.ID, ch.Tokens, ch.Pos, want)
		}
		if wl := m.pos+len(ch.Tokens) >= len(m.prompt); ch.Logits != wl {
			c.fatalf("batch %d: sequence %d at %d+%d Logits %v, want %v", mb.Num, ch.ID, ch.Pos, len(ch.Tokens), ch.Logits, wl)
		}
		if ch.Open {
			c.queue = c.queue[1:]
			m.admitted, m.state = true, mRunning
		}
		m.batch = mb.Num
		tokens += len(ch.Tokens)
		f.saved = append(f.saved, slices.Clone(ch.Tokens))
	}
	if tokens != mb.Tokens {
		c.fatalf("batch %d: Tokens %d, chunks hold %d", mb.Num, mb.Tokens, tokens)
	}
	if in := c.inFlightTokens() + tokens; in > c.cfg.MaxBatchTokens {
		c.fatalf("batch %d: %d tokens in flight, MaxBatchTokens %d", mb.Num, in, c.cfg.MaxBatchTokens)
	}
	c.flights[mb.Num] = f
	c.order = append(c.order, mb.Num)
	c.sync()
	return mb, true
}

// fill calls Next until it returns false.
func (c *checker) fill() []MicroBatch {
	c.tb.Helper()
	var mbs []MicroBatch
	for {
		mb, ok := c.next()
		if !ok {
			return mbs
		}
		mbs = append(mbs, mb)
	}
}

func (c *checker) inFlightTokens() int {
	n := 0
	for _, f := range c.flights {
		n += f.mb.Tokens
	}
	return n
}

// ready counts the admitted sequences with nothing in flight: the decodes,
// and the prompt tokens of the others' next chunks.
func (c *checker) ready() (decodes, prefill int) {
	for _, m := range c.live {
		switch {
		case m.state != mRunning || m.batch != 0:
		case m.decoding():
			decodes++
		default:
			prefill += min(len(m.prompt)-m.pos, c.cfg.PrefillChunk)
		}
	}
	return decodes, prefill
}

// checkStuck checks that Next had a reason to return false: no free slot,
// no budget, or no ready work.
func (c *checker) checkStuck() {
	c.tb.Helper()
	if len(c.flights) >= c.cfg.MaxInFlight || c.inFlightTokens() >= c.cfg.MaxBatchTokens {
		return
	}
	decodes, prefill := c.ready()
	if decodes > 0 || prefill > 0 || len(c.queue) > 0 && c.running() < c.cfg.MaxSeqs {
		c.fatalf("Next returned false with %d in flight, %d tokens in flight, %d decodes and %d prompt tokens ready, %d queued, %d running",
			len(c.flights), c.inFlightTokens(), decodes, prefill, len(c.queue), c.running())
	}
}

// autoResults samples token 100*id+index for every chunk of mb that wants
// logits.
func (c *checker) autoResults(mb MicroBatch) []Result {
	var rs []Result
	for _, ch := range mb.Chunks {
		if m := c.live[ch.ID]; ch.Logits && m != nil {
			rs = append(rs, Result{ID: ch.ID, Token: 100*int(ch.ID) + len(m.gen)})
		}
	}
	return rs
}

func (c *checker) done(batch uint64, results []Result) error {
	c.tb.Helper()
	f := c.flights[batch]
	var want error
	res := map[SeqID]Result{}
	if f == nil {
		want = ErrUnknownBatch
	} else {
		for _, r := range results {
			i := slices.IndexFunc(f.mb.Chunks, func(ch Chunk) bool { return ch.ID == r.ID })
			_, dup := res[r.ID]
			switch {
			case i < 0 || dup:
				want = ErrBadResult
			case !f.mb.Chunks[i].Logits && r.Err == nil && c.live[r.ID].state != mZombie:
				want = ErrBadResult
			}
			res[r.ID] = r
		}
	}
	err := c.s.Done(batch, results)
	if !errors.Is(err, want) || (err == nil) != (want == nil) {
		c.fatalf("Done(%d): got error %v, want %v", batch, err, want)
	}
	if err != nil {
		c.sync()
		return err
	}
	for i, ch := range f.mb.Chunks {
		if !slices.Equal(ch.Tokens, f.saved[i]) {
			c.fatalf("batch %d: sequence %d tokens changed in flight: %v, launched %v", batch, ch.ID, ch.Tokens, f.saved[i])
		}
		m := c.live[ch.ID]
		m.batch = 0
		r, has := res[ch.ID]
		switch {
		case m.state == mZombie:
			c.release(m)
		case has && r.Err != nil:
			c.finish(m, FinishError, r.Err)
			c.release(m)
		case ch.Logits && !has:
			c.finish(m, FinishError, ErrNoResult)
			c.release(m)
		default:
			m.pos += len(ch.Tokens)
			if !ch.Logits {
				continue
			}
			m.gen = append(m.gen, r.Token)
			c.want.Tokens = append(c.want.Tokens, Token{ID: m.id, Index: len(m.gen) - 1, Token: r.Token})
			switch {
			case r.Stop:
				c.finish(m, FinishStop, nil)
				c.release(m)
			case len(m.gen) >= m.max:
				c.finish(m, FinishLength, nil)
				c.release(m)
			}
		}
	}
	delete(c.flights, batch)
	c.order = slices.DeleteFunc(c.order, func(b uint64) bool { return b == batch })
	c.sync()
	return nil
}

// sync takes the scheduler's Ready, checks it is exactly what the model
// expects, and checks the invariants that hold between calls.
func (c *checker) sync() Ready {
	c.tb.Helper()
	if c.s.HasReady() != (len(c.want.Tokens)+len(c.want.Finished)+len(c.want.Release) > 0) {
		c.fatalf("HasReady %v, want events %+v", c.s.HasReady(), c.want)
	}
	rd := c.s.Ready()
	if !slices.Equal(rd.Tokens, c.want.Tokens) {
		c.fatalf("Ready.Tokens %v, want %v", rd.Tokens, c.want.Tokens)
	}
	if !slices.Equal(rd.Release, c.want.Release) {
		c.fatalf("Ready.Release %v, want %v", rd.Release, c.want.Release)
	}
	if !slices.EqualFunc(rd.Finished, c.want.Finished, func(a, b Finish) bool {
		return a.ID == b.ID && a.Reason == b.Reason && a.Generated == b.Generated &&
			(a.Err == nil) == (b.Err == nil) && errors.Is(a.Err, b.Err)
	}) {
		c.fatalf("Ready.Finished %v, want %v", rd.Finished, c.want.Finished)
	}
	c.want = Ready{}
	if c.record {
		c.seen = append(c.seen, formatReady(rd)...)
	}
	if c.s.HasReady() {
		c.fatalf("HasReady after Ready")
	}

	st := c.s.Stats()
	running := c.running()
	if st.Queued != len(c.queue) || st.Running != running || st.InFlight != len(c.flights) || st.InFlightTokens != c.inFlightTokens() {
		c.fatalf("Stats %+v, want queued %d, running %d, in flight %d with %d tokens",
			st, len(c.queue), running, len(c.flights), c.inFlightTokens())
	}
	if running > c.cfg.MaxSeqs || len(c.queue) > c.cfg.MaxQueue {
		c.fatalf("%d running (MaxSeqs %d), %d queued (MaxQueue %d)", running, c.cfg.MaxSeqs, len(c.queue), c.cfg.MaxQueue)
	}
	// Decode priority: the budget always has room for every ready decode.
	if decodes, _ := c.ready(); st.InFlightTokens+decodes > c.cfg.MaxBatchTokens {
		c.fatalf("%d tokens in flight and %d decodes ready, MaxBatchTokens %d", st.InFlightTokens, decodes, c.cfg.MaxBatchTokens)
	}
	for _, m := range c.all {
		if m.finishes > 1 || m.releases > 1 || m.releases > 0 && !m.admitted {
			c.fatalf("sequence %d finished %d times, released %d times, admitted %v", m.id, m.finishes, m.releases, m.admitted)
		}
	}
	return rd
}

// drain runs the pipeline without new requests, cancels or failures until
// every sequence is finished, then checks each finished and released
// exactly once. budget bounds the Done calls.
func (c *checker) drain(budget int) {
	c.tb.Helper()
	for {
		c.fill()
		if len(c.order) == 0 {
			break
		}
		if budget--; budget < 0 {
			c.fatalf("not drained: %+v", c.s.Stats())
		}
		b := c.order[0]
		c.done(b, c.autoResults(c.flights[b].mb))
	}
	if st := c.s.Stats(); st.Queued+st.Running+st.InFlight+st.InFlightTokens != 0 {
		c.fatalf("drained, yet Stats %+v", st)
	}
	for _, m := range c.all {
		if m.finishes != 1 || m.admitted && m.releases != 1 {
			c.fatalf("sequence %d finished %d times, released %d times, admitted %v", m.id, m.finishes, m.releases, m.admitted)
		}
	}
}

func (c *checker) String() string {
	return fmt.Sprintf("%d live, %d queued, %d in flight", len(c.live), len(c.queue), len(c.flights))
}

package sched

import (
	"errors"
	"fmt"
	"slices"
)

// Defaults for the zero fields of a [Config].
const (
	DefaultMaxBatchTokens = 2048
	DefaultMaxSeqs        = 64
	DefaultPrefillChunk   = 512
	DefaultMaxQueue       = 1024
)

// Config sizes a [Scheduler]. The zero value works: a zero field takes its
// default; a negative one is an error.
type Config struct {
	// Stages is the number of pipeline stages, and so the number of ways
	// the ready work is split into micro-batches. Default 1.
	Stages int
	// MaxBatchTokens bounds the tokens (prompt chunks and decode tokens)
	// of the micro-batches in flight at once. Default DefaultMaxBatchTokens.
	MaxBatchTokens int
	// MaxSeqs bounds the sequences admitted at once: those with a KV cache
	// open on the stages. Default DefaultMaxSeqs.
	MaxSeqs int
	// PrefillChunk bounds the prompt tokens of one sequence in one
	// micro-batch. Default DefaultPrefillChunk.
	PrefillChunk int
	// MaxQueue bounds the sequences waiting for admission; Submit refuses
	// more with ErrQueueFull. Default DefaultMaxQueue.
	MaxQueue int
	// MaxInFlight bounds the micro-batches launched and not yet Done.
	// Default Stages.
	MaxInFlight int
	// QueueTimeout, when positive, finishes a request still waiting for
	// admission QueueTimeout ticks after its Submit, with FinishTimeout.
	QueueTimeout int
}

// withDefaults returns c with its zero fields filled in, or an error for a
// negative field.
func (c Config) withDefaults() (Config, error) {
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"Stages", &c.Stages, 1},
		{"MaxBatchTokens", &c.MaxBatchTokens, DefaultMaxBatchTokens},
		{"MaxSeqs", &c.MaxSeqs, DefaultMaxSeqs},
		{"PrefillChunk", &c.PrefillChunk, DefaultPrefillChunk},
		{"MaxQueue", &c.MaxQueue, DefaultMaxQueue},
		{"MaxInFlight", &c.MaxInFlight, 0}, // Stages, below
		{"QueueTimeout", &c.QueueTimeout, 0},
	} {
		if *f.v < 0 {
			return c, fmt.Errorf("sched: config %s is %d, want >= 0", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = c.Stages
	}
	return c, nil
}

// Errors callers branch on.
var (
	// ErrQueueFull refuses a Submit while MaxQueue requests wait.
	ErrQueueFull = errors.New("sched: queue full")
	// ErrDuplicate refuses a Submit whose ID the scheduler still knows: from
	// its Submit until it is finished and, if it was admitted, released.
	ErrDuplicate = errors.New("sched: duplicate sequence id")
	// ErrInvalid refuses a malformed Request.
	ErrInvalid = errors.New("sched: invalid request")
	// ErrUnknownBatch refuses a Done for a batch that is not in flight.
	ErrUnknownBatch = errors.New("sched: unknown batch")
	// ErrBadResult refuses a Done whose results do not match the batch.
	ErrBadResult = errors.New("sched: bad result")
	// ErrNoResult fails a sequence that wanted logits but got no Result.
	ErrNoResult = errors.New("sched: no result for sequence")
)

// SeqID names a sequence; the driver chooses it.
type SeqID uint64

// Request is one generation to schedule.
type Request struct {
	ID        SeqID // unique among the sequences the scheduler knows
	Prompt    []int // token ids, at least one; copied by Submit
	MaxTokens int   // tokens to generate at most, at least one
	// Cached, when positive, is how many of the prompt's first tokens the
	// stages hold already, in session From (a prefix cache's): the first
	// chunk forks From's first Cached positions (Chunk.From) and goes on
	// from there. At least one prompt token is left to feed.
	Cached int
	From   SeqID
}

// MicroBatch is the work of one trip through the pipeline. The driver owns
// it; the token slices in it are shared with the Scheduler and read-only.
type MicroBatch struct {
	Num    uint64  // batch number, increasing from 1; pass it to Done
	Chunks []Chunk // at most one per sequence
	Tokens int     // tokens in all Chunks
}

// Chunk is what one sequence feeds in a micro-batch: a piece of its prompt,
// or the last token it sampled.
type Chunk struct {
	ID     SeqID // the sequence, and the KV cache session on the stages
	Tokens []int // token ids to feed, read-only
	Pos    int   // position of Tokens[0]; the positions before it are cached
	Logits bool  // sample a token from the last position (a prompt's last chunk, or a decode)
	Open   bool  // the sequence's first chunk: open its KV cache on every stage
	From   SeqID // with Open and Pos > 0: the session whose first Pos positions it forks
}

// Result is the driver's report on one sequence of a finished micro-batch.
// A Chunk that wanted logits needs one; a Chunk that did not may have one,
// only to report an error.
type Result struct {
	ID    SeqID // a sequence of the micro-batch, at most once
	Token int   // the sampled token, when Err is nil
	Stop  bool  // Token ends the sequence (end of generation, a stop string); it is still emitted
	Err   error // the sequence failed; the others in the batch go on
}

// Reason tells why a sequence finished.
type Reason uint8

// Reasons a sequence finishes.
const (
	FinishLength    Reason = iota + 1 // MaxTokens generated
	FinishStop                        // the driver reported Stop
	FinishCancelled                   // Cancel
	FinishError                       // a Result carried an error, or was missing
	FinishTimeout                     // QueueTimeout ticks in the queue
)

// String returns the reason in lower case, as in an OpenAI finish_reason.
func (r Reason) String() string {
	switch r {
	case FinishLength:
		return "length"
	case FinishStop:
		return "stop"
	case FinishCancelled:
		return "cancelled"
	case FinishError:
		return "error"
	case FinishTimeout:
		return "timeout"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Token is a sampled token to stream to a client.
type Token struct {
	ID    SeqID // the sequence that sampled it
	Index int   // 0 for the first generated token, then 1, 2...
	Token int   // the token id
}

// Finish ends a sequence's stream.
type Finish struct {
	ID        SeqID  // the sequence that ended
	Reason    Reason // why
	Err       error  // with FinishError
	Generated int    // tokens generated, all of them in Token events
}

// Ready is what happened since the last call to [Scheduler.Ready]. Act on
// it in field order: a sequence's tokens precede its Finish, which precedes
// or comes with its Release.
type Ready struct {
	Tokens   []Token  // in the order they were sampled
	Finished []Finish // each sequence exactly once
	Release  []SeqID  // KV caches to free on every stage, each exactly once
}

// Stats is a snapshot of a Scheduler's load and counters.
type Stats struct {
	Queued         int    // waiting for admission
	Running        int    // admitted and not yet released
	InFlight       int    // micro-batches launched and not Done
	InFlightTokens int    // tokens of those micro-batches
	Batches        uint64 // micro-batches launched
	PrefillTokens  uint64 // prompt tokens launched
	CachedTokens   uint64 // prompt tokens admitted sequences took from a forked session instead
	DecodeTokens   uint64 // decode tokens launched
	Generated      uint64 // tokens sampled and emitted
	Finished       uint64 // sequences finished
}

// phase of a sequence.
type phase uint8

const (
	queued  phase = iota // waiting for admission
	running              // admitted: its KV cache is open
	zombie               // cancelled with a chunk in flight; released when it returns
)

// seq is one sequence's state.
type seq struct {
	id     SeqID
	tokens []int // prompt then generated tokens; (prompt + generated)
	prompt int   // prompt tokens
	max    int   // MaxTokens
	fed    int   // tokens in the KV cache: the next position
	from   SeqID // the session its first chunk forks (Request.From)
	phase  phase
	since  int64 // tick of Submit

	// In flight.
	batch  uint64 // the micro-batch holding a chunk of it; 0 when none
	n      int    // tokens of that chunk
	logits bool   // that chunk wants logits
	res    int    // scratch of Done: index+1 of its Result
}

func (q *seq) generated() int { return len(q.tokens) - q.prompt }
func (q *seq) decoding() bool { return q.fed >= q.prompt }

// promptChunk is the size of the next prompt chunk of q, which is not
// decoding, before any budget.
func (q *seq) promptChunk(prefillChunk int) int {
	return min(q.prompt-q.fed, prefillChunk)
}

// flight is a micro-batch in flight.
type flight struct {
	seqs   []*seq
	tokens int
}

// Scheduler is the continuous-batching state machine. Create it with New.
type Scheduler struct {
	cfg      Config
	seqs     map[SeqID]*seq // every known sequence: queued, running, zombie
	queue    []*seq         // waiting, first in first out
	running  []*seq         // admitted (running and zombie), in admission order
	flights  map[uint64]*flight
	spare    []*flight // Done flights, for reuse
	batch    uint64    // number of the last micro-batch launched
	inTokens int       // tokens in flight
	now      int64     // ticks
	rd       Ready
	stats    Stats
}

// New returns a Scheduler for cfg.
func New(cfg Config) (*Scheduler, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Scheduler{
		cfg:     c,
		seqs:    make(map[SeqID]*seq),
		flights: make(map[uint64]*flight),
	}, nil
}

// Config returns the configuration in effect, defaults filled in.
func (s *Scheduler) Config() Config { return s.cfg }

// Submit queues r for admission. It refuses a malformed request
// (ErrInvalid), an ID the scheduler still knows (ErrDuplicate) and, while
// MaxQueue requests wait, any request (ErrQueueFull). r.Prompt is copied.
func (s *Scheduler) Submit(r Request) error {
	switch {
	case len(r.Prompt) == 0:
		return fmt.Errorf("%w: sequence %d has an empty prompt", ErrInvalid, r.ID)
	case r.MaxTokens < 1:
		return fmt.Errorf("%w: sequence %d has MaxTokens %d, want >= 1", ErrInvalid, r.ID, r.MaxTokens)
	case r.Cached < 0 || r.Cached >= len(r.Prompt) || (r.Cached > 0) != (r.From != 0) || r.From == r.ID && r.Cached > 0:
		return fmt.Errorf("%w: sequence %d forks %d positions of session %d, for a prompt of %d", ErrInvalid, r.ID, r.Cached, r.From, len(r.Prompt))
	}
	if _, ok := s.seqs[r.ID]; ok {
		return fmt.Errorf("%w: %d", ErrDuplicate, r.ID)
	}
	if len(s.queue) >= s.cfg.MaxQueue {
		return ErrQueueFull
	}
	tokens := make([]int, len(r.Prompt), len(r.Prompt)+min(r.MaxTokens, 64))
	copy(tokens, r.Prompt)
	q := &seq{id: r.ID, tokens: tokens, prompt: len(r.Prompt), max: r.MaxTokens, since: s.now, fed: r.Cached, from: r.From}
	s.seqs[r.ID] = q
	s.queue = append(s.queue, q)
	return nil
}

// Cancel ends sequence id because its client went away: a queued one
// leaves the queue; a running one finishes with FinishCancelled at once and
// is released at once, or, when a chunk of it is in flight, when that
// micro-batch is Done (its result is then ignored). Cancelling an unknown or
// already cancelled sequence does nothing.
func (s *Scheduler) Cancel(id SeqID) {
	q := s.seqs[id]
	if q == nil || q.phase == zombie {
		return
	}
	switch {
	case q.phase == queued:
		if i := slices.Index(s.queue, q); i >= 0 {
			s.queue = slices.Delete(s.queue, i, i+1)
		}
		delete(s.seqs, id)
		s.finished(q, FinishCancelled, nil)
	case q.batch != 0:
		q.phase = zombie
		s.finished(q, FinishCancelled, nil)
	default:
		s.finish(q, FinishCancelled, nil)
	}
}

// Tick advances logical time by one tick and times out the requests that
// have waited QueueTimeout ticks for admission.
func (s *Scheduler) Tick() {
	s.now++
	if s.cfg.QueueTimeout <= 0 {
		return
	}
	for len(s.queue) > 0 && s.now-s.queue[0].since >= int64(s.cfg.QueueTimeout) {
		q := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		delete(s.seqs, q.id)
		s.finished(q, FinishTimeout, nil)
	}
}

// HasReady reports whether Ready has anything to say.
func (s *Scheduler) HasReady() bool {
	return len(s.rd.Tokens)+len(s.rd.Finished)+len(s.rd.Release) > 0
}

// Ready returns what happened since the last call and forgets it; the
// caller owns the slices. Events pile up until taken: the driver takes them
// after every call that may cause some (Cancel, Done, Tick).
func (s *Scheduler) Ready() Ready {
	rd := s.rd
	s.rd = Ready{}
	return rd
}

// Stats returns a snapshot of the load and counters.
func (s *Scheduler) Stats() Stats {
	st := s.stats
	st.Queued = len(s.queue)
	st.Running = len(s.running)
	st.InFlight = len(s.flights)
	st.InFlightTokens = s.inTokens
	return st
}

// finished reports q's end to its client.
func (s *Scheduler) finished(q *seq, r Reason, err error) {
	s.rd.Finished = append(s.rd.Finished, Finish{ID: q.id, Reason: r, Err: err, Generated: q.generated()})
	s.stats.Finished++
}

// finish ends admitted sequence q, which has nothing in flight: it is
// finished and released.
func (s *Scheduler) finish(q *seq, r Reason, err error) {
	s.finished(q, r, err)
	s.release(q)
}

// release frees admitted sequence q, which has nothing in flight, and
// forgets it.
func (s *Scheduler) release(q *seq) {
	s.rd.Release = append(s.rd.Release, q.id)
	delete(s.seqs, q.id)
	if i := slices.Index(s.running, q); i >= 0 {
		s.running = slices.Delete(s.running, i, i+1)
	}
}

package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-llm/strata/pipeline/arch"
)

// LocalConfig configures a Local stage. The zero value works: no name but
// the layer range, no budget, no idle timeout.
type LocalConfig struct {
	// Name names the stage in errors and logs; "" means "layers LO-HI".
	Name string
	// KVBudget bounds the bytes of all the stage's KV caches together (what
	// their buffers hold, capacity included); 0 means no bound. A sequence
	// whose new positions would exceed it fails alone with ErrKVBudget.
	KVBudget int64
	// IdleTimeout, when positive, frees a session that no Forward used for
	// that long; Forward checks before admitting a batch.
	IdleTimeout time.Duration
	// Now is the clock of IdleTimeout and Evict; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger // nil: slog.Default()
	// Knobs are test hooks; nil in production.
	Knobs *LocalKnobs
}

// LocalKnobs are a Local's test hooks.
type LocalKnobs struct {
	// BeforeForward is called at the start of every Forward, with the
	// batch as received, before the stage takes its lock: a test blocks
	// in it to hold a micro-batch in the stage, or sleeps in it to slow the
	// stage down.
	BeforeForward func(ctx context.Context, b *Batch)
}

// KVBudgetError is the failure of a sequence whose new positions do not fit
// in a stage's KV cache budget. It matches ErrKVBudget and arch.ErrCacheFull
// with errors.Is.
type KVBudgetError struct {
	Stage  string // the stage's name
	ID     uint64 // the sequence
	Need   int64  // bytes the sequence's cache would grow by
	Used   int64  // bytes the stage's caches held
	Budget int64  // the stage's KVBudget
}

// Error says what was needed and what was in use; the SeqError around it
// in Batch.Failed names the stage and the sequence.
func (e *KVBudgetError) Error() string {
	return fmt.Sprintf("%v: %d more bytes needed, %d of the %d-byte budget in use", ErrKVBudget, e.Need, e.Used, e.Budget)
}

// Unwrap returns ErrKVBudget and arch.ErrCacheFull.
func (e *KVBudgetError) Unwrap() []error { return []error{ErrKVBudget, arch.ErrCacheFull} }

// Local is a Stage over a range of a model's layers in this process, with a
// KV cache per session within a byte budget.
//
// It is safe for concurrent use: Forward calls run one at a time (the
// model's scratch buffers are shared), while End, Evict and the accessors
// take only the session table's lock and never wait for a Forward. It
// starts no goroutine: idle sessions are freed by Forward (IdleTimeout) or
// by the owner calling Evict.
type Local struct {
	m      arch.Model
	cfg    arch.Config
	lo, hi int
	name   string
	budget int64
	idle   time.Duration
	now    func() time.Time
	log    *slog.Logger
	knobs  *LocalKnobs

	run sync.Mutex // held by Forward: the model and the scratch below
	// Scratch of one Forward, under run.
	seqs  []arch.Seq // (live sequences) the model's view of the batch
	sess  []*session // (live sequences) their sessions
	lrows []int      // (sequences with logits) their last rows
	ids   map[uint64]struct{}

	mu       sync.Mutex // the session table
	sessions map[uint64]*session
	used     int64 // bytes accounted to the sessions

	// Load counters (Stats), added to after each Forward.
	forwards, tokens atomic.Uint64
	busy             atomic.Int64 // nanoseconds
}

// session is one sequence's KV cache on the stage.
type session struct {
	id    uint64
	cache *arch.KVCache
	bytes int64     // accounted to the budget: the cache's Bytes, or what Forward will grow it to
	last  time.Time // last Forward that used it
	busy  bool      // in the batch being forwarded
}

// NewLocal returns a stage over m, which it owns from now on (no one else
// may call it).
func NewLocal(m arch.Model, cfg LocalConfig) *Local {
	lo, hi := m.Range()
	l := &Local{
		m: m, cfg: m.Config(), lo: lo, hi: hi,
		name: cfg.Name, budget: cfg.KVBudget, idle: cfg.IdleTimeout,
		now: cfg.Now, log: cfg.Logger, knobs: cfg.Knobs,
		ids:      make(map[uint64]struct{}),
		sessions: make(map[uint64]*session),
	}
	if l.name == "" {
		l.name = fmt.Sprintf("layers %d-%d", lo, hi)
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	return l
}

// String returns the stage's name.
func (l *Local) String() string { return l.name }

// Model returns the model the stage runs, which must not be used while the
// stage may run a Forward.
func (l *Local) Model() arch.Model { return l.m }

// Forks reports that the stage takes forked sessions (Seq.From).
func (l *Local) Forks() bool { return true }

// Range returns the layers [lo, hi) the stage runs.
func (l *Local) Range() (lo, hi int) { return l.lo, l.hi }

// Sessions returns the number of open sessions.
func (l *Local) Sessions() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sessions)
}

// KVBytes returns the bytes accounted to the open sessions' KV caches.
func (l *Local) KVBytes() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.used
}

// LocalStats are a Local's load: its sessions now, and counters since it
// was made.
type LocalStats struct {
	Sessions int           // open sessions
	KVBytes  int64         // bytes accounted to their KV caches
	KVBudget int64         // the budget (0: none)
	Forwards uint64        // Forward calls that computed
	Tokens   uint64        // rows (tokens) they computed
	Busy     time.Duration // time they took, with the stage's lock held
}

// Stats returns the stage's load.
func (l *Local) Stats() LocalStats {
	l.mu.Lock()
	st := LocalStats{Sessions: len(l.sessions), KVBytes: l.used, KVBudget: l.budget}
	l.mu.Unlock()
	st.Forwards, st.Tokens, st.Busy = l.forwards.Load(), l.tokens.Load(), time.Duration(l.busy.Load())
	return st
}

// End frees the sessions ids; unknown ones are ignored. It never fails.
func (l *Local) End(_ context.Context, ids []uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		if s := l.sessions[id]; s != nil {
			l.dropLocked(s)
		}
	}
	return nil
}

// Evict frees the sessions that no Forward has used since olderThan (by
// the stage's clock), except those of a batch being forwarded, and returns
// their IDs, sorted.
func (l *Local) Evict(olderThan time.Time) []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.evictLocked(olderThan)
}

func (l *Local) evictLocked(olderThan time.Time) []uint64 {
	var ids []uint64
	for id, s := range l.sessions {
		if !s.busy && s.last.Before(olderThan) {
			ids = append(ids, id)
			l.dropLocked(s)
		}
	}
	if len(ids) > 0 {
		slices.Sort(ids)
		l.log.Info("evicted idle sessions", "stage", l.name, "seqs", ids)
	}
	return ids
}

func (l *Local) dropLocked(s *session) {
	delete(l.sessions, s.id)
	l.used -= s.bytes
}

// Forward runs the stage's layers over b. See Stage.
//
// When the range starts at layer 0 it embeds b.Tokens into b.X (grown as
// needed); otherwise it reads b.X, (rows, dim). When the range ends at the
// last layer it writes the logits of the last row of every sequence with
// Logits into b.Logits (grown as needed) and sets b.Vocab. A sequence fails
// alone — moved to b.Failed, its rows dropped — for an unknown session
// (ErrNoSession), a fork of a session it does not hold (ErrNoSource),
// a position that does not follow its cache (ErrPosition),
// a token outside the vocabulary (ErrBadToken), or new positions beyond
// the KV budget (a *KVBudgetError). A malformed batch (ErrBadBatch) or an
// ended ctx fails the whole batch.
func (l *Local) Forward(ctx context.Context, b *Batch) (*Batch, error) {
	if k := l.knobs; k != nil && k.BeforeForward != nil {
		k.BeforeForward(ctx, b)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.run.Lock()
	defer l.run.Unlock()
	start := l.now()
	if err := l.check(b); err != nil {
		return nil, fmt.Errorf("stage %s: %w", l.name, err)
	}
	rows := 0
	for _, s := range b.Seqs {
		rows += s.N
	}
	l.admit(b)
	err := l.forward(b)
	l.settle()
	l.forwards.Add(1)
	l.tokens.Add(uint64(rows))
	l.busy.Add(int64(l.now().Sub(start)))
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", l.name, err)
	}
	return b, nil
}

// check refuses a malformed batch.
func (l *Local) check(b *Batch) error {
	clear(l.ids)
	rows := 0
	for _, s := range b.Seqs {
		if s.N <= 0 || s.Pos < 0 {
			return fmt.Errorf("%w: sequence %d has %d rows at position %d", ErrBadBatch, s.ID, s.N, s.Pos)
		}
		if _, dup := l.ids[s.ID]; dup {
			return fmt.Errorf("%w: sequence %d twice", ErrBadBatch, s.ID)
		}
		l.ids[s.ID] = struct{}{}
		rows += s.N
	}
	if l.lo == 0 {
		if len(b.Tokens) != rows {
			return fmt.Errorf("%w: %d tokens for %d rows", ErrBadBatch, len(b.Tokens), rows)
		}
	} else if len(b.X) != rows*l.cfg.Dim {
		return fmt.Errorf("%w: %d activations for %d rows of %d", ErrBadBatch, len(b.X), rows, l.cfg.Dim)
	}
	return nil
}

// admit resolves every sequence's session, opening new ones, frees idle
// sessions, reserves the budget, and drops the sequences that fail. It
// fills l.seqs and l.sess and marks their sessions busy.
func (l *Local) admit(b *Batch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.idle > 0 {
		l.evictLocked(now.Add(-l.idle))
	}
	rows, dim := b.Rows(), 0
	if l.lo != 0 {
		dim = l.cfg.Dim
	}
	l.seqs, l.sess = l.seqs[:0], l.sess[:0]
	row := 0
	for i := 0; i < len(b.Seqs); {
		sq := b.Seqs[i]
		s, err := l.session(b, sq, row, now)
		if err != nil {
			b.fail(i, row, rows, dim, l.name, err)
			rows -= sq.N
			continue
		}
		s.busy, s.last = true, now
		l.seqs = append(l.seqs, arch.Seq{Cache: s.cache, Pos: sq.Pos, N: sq.N})
		l.sess = append(l.sess, s)
		row += sq.N
		i++
	}
}

// session returns sq's session, opened when sq.Open, with the budget for
// sq's rows reserved; row is sq's first row in b.
func (l *Local) session(b *Batch, sq Seq, row int, now time.Time) (*session, error) {
	if l.lo == 0 {
		for _, t := range b.Tokens[row : row+sq.N] {
			if t < 0 || t >= l.cfg.Vocab {
				return nil, fmt.Errorf("%w: token %d, vocabulary %d", ErrBadToken, t, l.cfg.Vocab)
			}
		}
	}
	s := l.sessions[sq.ID]
	var need int64
	if sq.Open {
		var src *session
		switch {
		case sq.From == sq.ID:
			return nil, fmt.Errorf("%w: forked from itself", ErrPosition)
		case sq.From != 0:
			if src = l.sessions[sq.From]; src == nil || src.cache.Len() < sq.Pos {
				return nil, l.noSource(sq, src)
			}
		case sq.Pos != 0:
			return nil, fmt.Errorf("%w: opened at position %d", ErrPosition, sq.Pos)
		}
		if s != nil { // a stale session under the same ID: start over
			l.dropLocked(s)
		}
		if src == nil {
			s = &session{id: sq.ID, cache: l.m.NewCache(), last: now}
		} else {
			room := arch.GrowCap(0, sq.Pos+sq.N, src.cache.Cap())
			if need = int64(room) * l.perPosition(); l.budget > 0 && l.used+need > l.budget {
				return nil, &KVBudgetError{Stage: l.name, ID: sq.ID, Need: need, Used: l.used, Budget: l.budget}
			}
			s = &session{id: sq.ID, cache: src.cache.Clone(sq.Pos, room), last: now}
			src.last = now // forked: in use, not idle
		}
	} else {
		if s == nil {
			return nil, ErrNoSession
		}
		if n := s.cache.Len(); sq.Pos != n {
			return nil, fmt.Errorf("%w: rows at position %d, cache holds %d", ErrPosition, sq.Pos, n)
		}
	}
	need += l.growth(s.cache, sq.N)
	if l.budget > 0 && l.used+need > l.budget {
		return nil, &KVBudgetError{Stage: l.name, ID: sq.ID, Need: need, Used: l.used, Budget: l.budget}
	}
	if sq.Open {
		l.sessions[sq.ID] = s
	}
	s.bytes += need
	l.used += need
	return s, nil
}

// growth predicts how many bytes c's buffers grow by when n more positions
// are reserved, following KVCache.Reserve: every layer's keys and values
// grow together to arch.GrowCap of their room and what they must hold.
// (settle corrects the accounting to the actual Bytes afterwards, and a
// test checks the prediction.)
func (l *Local) growth(c *arch.KVCache, n int) int64 {
	have := c.Room()
	return int64(arch.GrowCap(have, c.Len()+n, c.Cap())-have) * l.perPosition()
}

// perPosition is the bytes a cache's room takes per position: keys and
// values, F16, every layer of the stage.
func (l *Local) perPosition() int64 { return 2 * 2 * int64(l.hi-l.lo) * int64(l.cfg.KVDim()) }

// noSource is the failure of sq, which forks session src (nil: none).
func (l *Local) noSource(sq Seq, src *session) error {
	if src == nil {
		return fmt.Errorf("%w: session %d", ErrNoSource, sq.From)
	}
	return fmt.Errorf("%w: session %d holds %d positions, the fork starts at %d", ErrNoSource, sq.From, src.cache.Len(), sq.Pos)
}

// forward runs the model over the live rows of b.
func (l *Local) forward(b *Batch) error {
	rows := b.Rows()
	if rows == 0 {
		if l.hi == l.cfg.Layers {
			b.Logits, b.Vocab = b.Logits[:0], l.cfg.Vocab
		}
		return nil
	}
	d := l.cfg.Dim
	if l.lo == 0 {
		b.X = growFloats(b.X, rows*d)
		if err := l.m.Embed(b.X, b.Tokens); err != nil {
			return err
		}
	}
	if err := l.m.Forward(b.X, l.seqs); err != nil {
		return err
	}
	if l.hi != l.cfg.Layers {
		return nil
	}
	l.lrows = l.lrows[:0]
	row := 0
	for _, s := range b.Seqs {
		row += s.N
		if s.Logits {
			l.lrows = append(l.lrows, row-1)
		}
	}
	b.Vocab = l.cfg.Vocab
	b.Logits = growFloats(b.Logits, len(l.lrows)*b.Vocab)
	if len(l.lrows) == 0 {
		return nil
	}
	return l.m.Logits(b.Logits, b.X, l.lrows)
}

// settle replaces the budget reserved for the batch's sessions with their
// caches' actual size and marks them idle.
func (l *Local) settle() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, s := range l.sess {
		s.busy = false
		if l.sessions[s.id] == s { // not ended meanwhile
			n := s.cache.Bytes()
			l.used += n - s.bytes
			s.bytes = n
		}
		l.sess[i] = nil
	}
	clear(l.seqs)
}

// growFloats returns s with length n, reallocated when its capacity is
// short (the contents are then lost).
func growFloats(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

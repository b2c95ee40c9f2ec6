package pipeline

import (
	"context"
	"errors"
	"fmt"
)

// Seq is one sequence's share of a Batch: N consecutive rows at positions
// Pos..Pos+N-1 of the sequence, whose KV cache on every stage is the
// session named ID.
type Seq struct {
	ID     uint64 // the session: a KV cache on every stage
	Pos    int    // position of the sequence's first row; the positions before it are cached
	N      int    // rows (tokens) of the sequence in the batch, at least 1
	Logits bool   // the last stage computes logits for the sequence's last row
	Open   bool   // the sequence's first chunk (Pos 0): every stage opens a new KV cache for it
	// From, with Open, forks a session: the new one starts as a copy of
	// session From's first Pos positions (a cached prompt prefix), and the
	// chunk continues it at Pos. Session From is left as it was.
	From uint64
}

// Batch is a micro-batch on its way through a pipeline of stages: many
// sequences, each with its own positions, prefill chunks of several rows
// and single decode tokens mixed. The first stage reads Tokens and writes X;
// every stage transforms X in place; the last stage writes Logits.
//
// A Batch belongs to one goroutine at a time. Stage.Forward takes it and
// returns a Batch, the same one or another; the caller owns what is
// returned (slices included) and must not touch the one it passed in
// unless it got it back. Stages reuse the slices' capacity, so a caller
// that recycles its batches (Reset) allocates nothing per step.
type Batch struct {
	Num    uint64    // micro-batch number, for frames and logs
	Seqs   []Seq     // the live sequences, in row order; IDs distinct
	Tokens []int     // (rows) input token ids, read by a stage that starts at layer 0
	X      []float32 // (rows, dim) activations: written by the first stage, then transformed in place
	Logits []float32 // (sequences with Logits, Vocab): written by the last stage, in Seqs order
	Vocab  int       // columns of Logits; 0 until the last stage
	// Failed lists the sequences a stage dropped (an unknown session, a KV
	// cache budget exhausted): their rows are gone from Tokens and X and
	// they are no longer in Seqs. The other sequences go on.
	Failed []SeqError
}

// Rows is the number of rows (tokens) of the live sequences.
func (b *Batch) Rows() int {
	n := 0
	for _, s := range b.Seqs {
		n += s.N
	}
	return n
}

// LogitsRow returns the logits of the k-th sequence that wanted logits
// (counting in Seqs order), a slice of b.Logits.
func (b *Batch) LogitsRow(k int) []float32 {
	return b.Logits[k*b.Vocab : (k+1)*b.Vocab]
}

// Reset empties b for reuse, keeping the capacity of its slices.
func (b *Batch) Reset() {
	clear(b.Failed) // drop the errors they hold
	*b = Batch{Seqs: b.Seqs[:0], Tokens: b.Tokens[:0], X: b.X[:0], Logits: b.Logits[:0], Failed: b.Failed[:0]}
}

// AddSeq appends a sequence and its input tokens (one row each).
func (b *Batch) AddSeq(s Seq, tokens []int) {
	s.N = len(tokens)
	b.Seqs = append(b.Seqs, s)
	b.Tokens = append(b.Tokens, tokens...)
}

// fail drops b.Seqs[i] and its rows, reporting err from stage. rows is
// the row count of the batch before the drop and dim the width of X (0
// when X holds nothing yet); the rows of Tokens and X are dropped when they
// hold rows rows.
func (b *Batch) fail(i, row, rows, dim int, stage string, err error) {
	s := b.Seqs[i]
	b.Failed = append(b.Failed, SeqError{ID: s.ID, Stage: stage, Err: err})
	if len(b.Tokens) == rows {
		b.Tokens = append(b.Tokens[:row], b.Tokens[row+s.N:]...)
	}
	if dim > 0 && len(b.X) == rows*dim {
		b.X = append(b.X[:row*dim], b.X[(row+s.N)*dim:]...)
	}
	b.Seqs = append(b.Seqs[:i], b.Seqs[i+1:]...)
}

// Stage runs a contiguous range of a model's layers for many sequences,
// each with its own KV cache (its session) on the stage. A Local stage, a
// remote stage and a Chain of stages are interchangeable.
//
// Forward is called by one goroutine at a time per stage (a stage works on
// one micro-batch at a time), unless the stage is a ConcurrentStage, whose
// Forward takes up to MaxInFlight micro-batches at once; End may be called from another goroutine
// while a Forward runs, but never for a session of the batch being
// forwarded. End must not block for long: a Driver calls it from its loop.
// Forward must return soon after ctx ends (a Driver waits for its stage
// goroutines when it stops).
type Stage interface {
	// Forward runs b through the stage's layers and returns it (see Batch
	// for who owns what). A sequence with Open starts a new session; one
	// without must continue an existing session at the position it holds.
	// A sequence that fails alone is moved to Batch.Failed and the others
	// go on; an error fails the whole batch (a broken peer, a malformed
	// batch, ctx ended), and the returned batch is then nil.
	Forward(ctx context.Context, b *Batch) (*Batch, error)
	// End frees the sessions ids (unknown ones are ignored).
	End(ctx context.Context, ids []uint64) error
}

// Forking is implemented by stages that say whether they take forked
// sessions (Seq.From). A stage that does not implement it takes none.
type Forking interface {
	Forks() bool
}

// Forks reports whether s takes forked sessions.
func Forks(s Stage) bool {
	f, ok := s.(Forking)
	return ok && f.Forks()
}

// Keeper is implemented by stages that want to know which sessions a
// Driver's prefix cache keeps: no sequence runs on them any more, they are
// only forked (a stage that replays its sessions elsewhere after a
// failure may leave them out). Keep must not block for long.
type Keeper interface {
	Keep(ids []uint64)
}

// Errors a sequence fails with alone, in a SeqError of Batch.Failed.
var (
	// ErrKVBudget: the stage's KV cache budget cannot hold the sequence's
	// new positions. It is wrapped by a *KVBudgetError.
	ErrKVBudget = errors.New("kv cache budget exhausted")
	// ErrNoSession: a sequence without Open names no session on the stage
	// (it was never opened, was ended, or idled out).
	ErrNoSession = errors.New("no such session")
	// ErrPosition: a sequence's position does not follow its session's
	// cache, or a sequence opens at a position other than 0.
	ErrPosition = errors.New("position does not follow the session")
	// ErrBadToken: a token id outside the vocabulary.
	ErrBadToken = errors.New("token outside the vocabulary")
	// ErrNoSource: a sequence forks (Seq.From) a session the stage does not
	// hold, or one holding fewer positions than the fork starts at. The
	// driver then runs the sequence again from its first token.
	ErrNoSource = errors.New("no session to fork")
)

// ErrBadBatch is wrapped when a stage refuses a whole batch as malformed:
// shapes that disagree, a sequence of no rows, an ID twice.
var ErrBadBatch = errors.New("malformed batch")

// SeqError is the failure of one sequence in one stage.
type SeqError struct {
	ID    uint64 // the sequence
	Stage string // the stage that dropped it
	Err   error
}

// Error names the stage and the sequence, and the cause.
func (e *SeqError) Error() string {
	return fmt.Sprintf("stage %s: sequence %d: %v", e.Stage, e.ID, e.Err)
}

// Unwrap returns the cause.
func (e *SeqError) Unwrap() error { return e.Err }

// StageError is the failure of a whole batch in one stage of a Chain or a
// Driver: the stage's Forward failed, or the hop after it (the activations
// could not be encoded).
type StageError struct {
	Index int    // the stage's place in the chain, from 0
	Name  string // the stage's String(), when it has one
	Err   error
}

// Error names the stage, by place and name, and the cause.
func (e *StageError) Error() string {
	if e.Name != "" {
		return fmt.Sprintf("stage %d (%s): %v", e.Index, e.Name, e.Err)
	}
	return fmt.Sprintf("stage %d: %v", e.Index, e.Err)
}

// Unwrap returns the cause.
func (e *StageError) Unwrap() error { return e.Err }

// stageName is s's String(), or "".
func stageName(s Stage) string {
	if n, ok := s.(fmt.Stringer); ok {
		return n.String()
	}
	return ""
}

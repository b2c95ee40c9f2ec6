package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/strata-llm/strata/pipeline/wire"
)

// Chain is a Stage made of stages in order, with the activations between
// two stages encoded and decoded with a wire.Codec as the network would
// carry them: a chain of Local stages with wire.Lossless gives, bit for
// bit, the logits of one Local stage over all their layers, and with
// another codec it shows in-process what that codec does to them.
//
// A Chain runs one batch at a time, stage after stage; a Driver given the
// same stages overlaps micro-batches across them. Forward calls are
// serialised; End may be called at any time.
type Chain struct {
	stages []Stage
	codec  wire.Codec
	mu     sync.Mutex // Forward: the hops' buffers
	hops   []hop      // hops[i] is between stages[i] and stages[i+1]
}

// Forks reports whether every stage of the chain takes forked sessions.
func (c *Chain) Forks() bool {
	for _, s := range c.stages {
		if !Forks(s) {
			return false
		}
	}
	return true
}

// NewChain returns the chain of stages (at least one) with codec between
// them.
func NewChain(codec wire.Codec, stages ...Stage) (*Chain, error) {
	if len(stages) == 0 {
		return nil, errors.New("chain: no stages")
	}
	if err := codec.Validate(); err != nil {
		return nil, fmt.Errorf("chain: %w", err)
	}
	c := &Chain{stages: slices.Clone(stages), codec: codec, hops: make([]hop, len(stages)-1)}
	for i := range c.hops {
		c.hops[i].codec = codec
	}
	return c, nil
}

// Stages returns the chain's stages in order; the caller must not modify
// the slice.
func (c *Chain) Stages() []Stage { return c.stages }

// Codec returns the codec between the stages.
func (c *Chain) Codec() wire.Codec { return c.codec }

// String names the chain by its stages.
func (c *Chain) String() string {
	s := "chain("
	for i, st := range c.stages {
		if i > 0 {
			s += ", "
		}
		if n := stageName(st); n != "" {
			s += n
		} else {
			s += fmt.Sprint(i)
		}
	}
	return s + ")"
}

// Forward runs b through every stage in order, encoding and decoding the
// activations between two stages. A failing stage or hop fails the batch
// with a *StageError naming it.
func (c *Chain) Forward(ctx context.Context, b *Batch) (*Batch, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.stages {
		out, err := s.Forward(ctx, b)
		if err == nil && i < len(c.hops) {
			err = c.hops[i].apply(out)
		}
		if err != nil {
			return nil, &StageError{Index: i, Name: stageName(s), Err: err}
		}
		b = out
	}
	return b, nil
}

// End ends the sessions on every stage, returning their errors joined.
func (c *Chain) End(ctx context.Context, ids []uint64) error {
	var errs []error
	for i, s := range c.stages {
		if err := s.End(ctx, ids); err != nil {
			errs = append(errs, &StageError{Index: i, Name: stageName(s), Err: err})
		}
	}
	return errors.Join(errs...)
}

// HopStats returns what crossed the hops between the stages so far, summed
// over the hops.
func (c *Chain) HopStats() HopStats {
	var st HopStats
	for i := range c.hops {
		st.add(c.hops[i].stats())
	}
	return st
}

// HopStats counts what crossed the hops between stages.
type HopStats struct {
	Frames uint64 // activation frames
	Rows   uint64 // rows (tokens) in them
	Bytes  uint64 // their encoded size, header and checksum included
}

func (s *HopStats) add(t HopStats) {
	s.Frames += t.Frames
	s.Rows += t.Rows
	s.Bytes += t.Bytes
}

// hop carries a batch's activations from one stage to the next through a
// codec: it encodes them into a frame and decodes the frame back into X,
// reusing its buffers. One goroutine at a time uses a hop; its counters may
// be read from any.
type hop struct {
	codec wire.Codec
	buf   []byte
	in    wire.Header
	out   wire.Header
	seqs  []wire.Seq

	frames, rows, bytes atomic.Uint64
}

// apply sends b.X through the codec. A batch with no rows is left alone.
func (h *hop) apply(b *Batch) error {
	rows := b.Rows()
	if rows == 0 {
		return nil
	}
	if len(b.X) == 0 || len(b.X)%rows != 0 {
		return fmt.Errorf("hop: %w: %d activations for %d rows", ErrBadBatch, len(b.X), rows)
	}
	h.seqs = h.seqs[:0]
	for _, s := range b.Seqs {
		h.seqs = append(h.seqs, wire.Seq{ID: s.ID, Pos: s.Pos, N: s.N})
	}
	h.in = wire.Header{Kind: wire.Activations, Step: b.Num, Seqs: h.seqs, Rows: rows, Cols: len(b.X) / rows, Codec: h.codec}
	buf, err := wire.AppendFrame(h.buf[:0], &h.in, b.X)
	if err != nil {
		return fmt.Errorf("hop: encode activations: %w", err)
	}
	h.buf = buf
	x, err := wire.DecodeFrame(buf, &h.out, b.X[:0])
	if err != nil {
		return fmt.Errorf("hop: decode activations: %w", err)
	}
	if h.out.Rows != rows || h.out.Cols != h.in.Cols {
		return fmt.Errorf("hop: %w: frame of (%d, %d) decoded as (%d, %d)", wire.ErrCorrupt, rows, h.in.Cols, h.out.Rows, h.out.Cols)
	}
	b.X = x
	h.frames.Add(1)
	h.rows.Add(uint64(rows))
	h.bytes.Add(uint64(len(buf)))
	return nil
}

func (h *hop) stats() HopStats {
	return HopStats{Frames: h.frames.Load(), Rows: h.rows.Load(), Bytes: h.bytes.Load()}
}

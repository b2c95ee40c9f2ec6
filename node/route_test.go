package node

import (
	"errors"
	"slices"
	"testing"

	"github.com/strata-llm/strata/pipeline"
)

// TestRouteHistory checks what the gateway records of forked sessions:
// a fork's history starts with the chunks of the session it forked that
// cover its positions (the last whole), nested forks resolve to the
// session that computed the positions, and on a route that takes no forks
// a fork becomes one chunk of its own tokens, or fails with ErrNoSource
// when the gateway has no record of its session.
func TestRouteHistory(t *testing.T) {
	r := &routeStage{hist: map[uint64]*history{}}
	run := func(forked bool, seqs []pipeline.Seq, toks []int) {
		b := &pipeline.Batch{Seqs: seqs, Tokens: toks}
		r.record(saveBatch(b), b, forked)
	}
	run(true, []pipeline.Seq{{ID: 1, N: 5, Open: true}}, []int{10, 11, 12, 13, 14})
	run(true, []pipeline.Seq{{ID: 1, Pos: 5, N: 1}}, []int{15})
	run(true, []pipeline.Seq{{ID: 2, Pos: 4, N: 2, Open: true, From: 1}}, []int{20, 21})
	h := r.hist[2]
	if h.at != 4 || h.len() != 6 || len(h.base.chunks) != 1 || !slices.Equal(h.base.chunks[0], []int{10, 11, 12, 13, 14}) {
		t.Fatalf("fork at 4: %+v, base %+v", h, h.base)
	}
	if got, ok := h.tokens(nil, 6); !ok || !slices.Equal(got, []int{10, 11, 12, 13, 20, 21}) {
		t.Fatalf("tokens %v, %v", got, ok)
	}
	// A fork of the fork within its base: the base's own history.
	run(true, []pipeline.Seq{{ID: 3, Pos: 3, N: 2, Open: true, From: 2}}, []int{30, 31})
	if b := r.hist[3].base; b.base != nil || len(b.chunks) != 1 || r.hist[3].at != 3 {
		t.Fatalf("nested fork: %+v", b)
	}
	// Beyond it: the fork's own chunks, on its base.
	run(true, []pipeline.Seq{{ID: 4, Pos: 5, N: 2, Open: true, From: 2}}, []int{40, 41})
	if b := r.hist[4].base; b.base == nil || b.at != 4 || len(b.chunks) != 1 {
		t.Fatalf("fork past the base: %+v", b)
	}
	if got, _ := r.hist[4].tokens(nil, 7); !slices.Equal(got, []int{10, 11, 12, 13, 20, 40, 41}) {
		t.Fatalf("tokens %v", got)
	}

	// A route that takes no forks.
	b := &pipeline.Batch{}
	b.AddSeq(pipeline.Seq{ID: 5, Pos: 5, Open: true, From: 2, Logits: true}, []int{50, 51})
	b.AddSeq(pipeline.Seq{ID: 1, Pos: 6}, []int{7})
	in := saveBatch(b)
	out, failed := r.unfork(b)
	if len(failed) != 0 || len(out.Seqs) != 2 || out.Seqs[0].From != 0 || out.Seqs[0].Pos != 0 || out.Seqs[0].N != 7 ||
		!slices.Equal(out.Tokens, []int{10, 11, 12, 13, 20, 50, 51, 7}) {
		t.Fatalf("unforked: %+v, %v", out, failed)
	}
	r.record(in, out, false)
	if h := r.hist[5]; h.base != nil || len(h.chunks) != 1 || !slices.Equal(h.chunks[0], []int{10, 11, 12, 13, 20, 50, 51}) {
		t.Fatalf("unforked history: %+v", h)
	}
	b = &pipeline.Batch{}
	b.AddSeq(pipeline.Seq{ID: 6, Pos: 5, Open: true, From: 99}, []int{60})
	if out, failed := r.unfork(b); len(out.Seqs) != 0 || len(failed) != 1 || !errors.Is(&failed[0], pipeline.ErrNoSource) {
		t.Fatalf("a fork of an unknown session: %+v, %v", out, failed)
	}
}

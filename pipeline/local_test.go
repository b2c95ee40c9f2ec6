package pipeline

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-llm/strata/pipeline/arch"
	"github.com/strata-llm/strata/pipeline/wire"
)

// storiesPrompts are three prompts of stories260K of different lengths.
var storiesPrompts = [][]int{
	{1, 403, 407, 261, 378},
	{1, 306, 282, 309, 286, 324, 272, 300, 383, 288, 346, 266},
	{1},
}

// TestLocalBatchedEqualsAlone checks that sequences run together in
// batches that mix prefill chunks and decode tokens get, bit for bit, the
// logits they get alone.
func TestLocalBatchedEqualsAlone(t *testing.T) {
	f := openFile(t, testdataPath(t, stories))
	const steps = 6
	together := NewLocal(load(t, f, 0, 5, false), LocalConfig{})
	var got [][][]float32 // (sequence, step) logits
	next, fed := make([]int, len(storiesPrompts)), make([]int, len(storiesPrompts))
	got = make([][][]float32, len(storiesPrompts))
	for step := 0; ; step++ {
		feeds := schedule(step, storiesPrompts, next, fed, steps)
		if feeds == nil {
			break
		}
		out := forward(t, together, uint64(step+1), feeds)
		for k, fd := range feeds {
			row := append([]float32(nil), out.LogitsRow(k)...)
			got[fd.id-1] = append(got[fd.id-1], row)
			next[fd.id-1] = argmax(row)
		}
		advance(feeds, fed)
	}
	for i, p := range storiesPrompts {
		alone := NewLocal(load(t, f, 0, 5, false), LocalConfig{})
		out := forward(t, alone, 1, []feed{{id: 42, tokens: p, open: true, logits: true}})
		pos := len(p)
		for step := 0; ; step++ {
			if j := firstBitDiff(out.LogitsRow(0), got[i][step]); j >= 0 {
				t.Fatalf("prompt %d, step %d: logit %d differs in a batch", i, step, j)
			}
			if step == steps {
				break
			}
			out = forward(t, alone, 1, []feed{{id: 42, pos: pos, tokens: []int{argmax(out.LogitsRow(0))}, logits: true}})
			pos++
		}
	}
}

// TestLocalGrowth checks the budget's prediction of a cache's growth
// against what KVCache.Reserve does.
func TestLocalGrowth(t *testing.T) {
	f := openFile(t, testdataPath(t, stories))
	for _, r := range [][2]int{{0, 5}, {2, 3}} {
		l := NewLocal(load(t, f, r[0], r[1], false), LocalConfig{})
		c := l.m.NewCache()
		for _, n := range []int{5, 1, 1, 1, 1, 1, 7, 30, 1, 100, 3, 1} {
			before := c.Bytes()
			need := l.growth(c, n)
			if err := c.Reserve(n); err != nil {
				t.Fatal(err)
			}
			c.Commit(n)
			if got := c.Bytes() - before; got != need {
				t.Fatalf("layers %v: %d more positions after %d grew the cache by %d bytes, predicted %d", r, n, c.Len()-n, got, need)
			}
		}
	}
}

// TestLocalKVBudget checks that a sequence whose positions do not fit in a
// stage's budget fails alone with a *KVBudgetError while the others in its
// batch go on, in the first stage (token rows dropped) and in a later one
// (activation rows dropped), at prefill and in the middle of decoding.
func TestLocalKVBudget(t *testing.T) {
	f := openFile(t, testdataPath(t, stories))
	ref := NewLocal(load(t, f, 0, 5, false), LocalConfig{})
	short := storiesPrompts[0]
	long := make([]int, 100)
	for i := range long {
		long[i] = 300 + i
	}
	want := forward(t, ref, 1, []feed{{id: 1, tokens: short, open: true, logits: true}}).LogitsRow(0)

	for _, at := range []int{0, 1} { // the stage with the budget
		// Per position, keys and values in F16: 4·32 bytes a layer.
		// Stage 0 has layers 0-3, stage 1 layers 3-5; the long prompt
		// needs 100 positions, the short one 5.
		budget := int64(40 * 4 * 32 * 3)
		if at == 1 {
			budget = 40 * 4 * 32 * 2
		}
		ls := locals(t, f, []int{0, 3, 5}, false, LocalConfig{})
		ls[at] = NewLocal(ls[at].m, LocalConfig{KVBudget: budget, Name: "tight"})
		c, err := NewChain(wire.Lossless, asStages(ls)...)
		if err != nil {
			t.Fatal(err)
		}
		out := forward(t, c, 1, []feed{
			{id: 2, tokens: long, open: true, logits: true},
			{id: 1, tokens: short, open: true, logits: true},
		})
		if len(out.Seqs) != 1 || out.Seqs[0].ID != 1 || len(out.Failed) != 1 {
			t.Fatalf("budget in stage %d: seqs %v, failed %v", at, out.Seqs, out.Failed)
		}
		if j := firstBitDiff(out.LogitsRow(0), want); j >= 0 || len(out.Logits) != out.Vocab {
			t.Errorf("budget in stage %d: the short sequence's logits differ at %d", at, j)
		}
		fe := out.Failed[0]
		var be *KVBudgetError
		if fe.ID != 2 || !errors.As(&fe, &be) || !errors.Is(&fe, ErrKVBudget) || !errors.Is(&fe, arch.ErrCacheFull) {
			t.Fatalf("budget in stage %d: failure %v", at, &fe)
		}
		if be.ID != 2 || be.Budget != budget || be.Stage != "tight" || be.Need <= budget-be.Used {
			t.Errorf("budget in stage %d: %+v", at, be)
		}
		msg := fe.Error()
		for _, s := range []string{"sequence 2", "tight", "budget"} {
			if !strings.Contains(msg, s) {
				t.Errorf("error %q does not say %q", msg, s)
			}
		}
		t.Logf("budget in stage %d: %v", at, &fe)

		// The short sequence decodes until its cache outgrows the budget.
		pos, tok := len(short), argmax(out.LogitsRow(0))
		for ; ; pos++ {
			out = forward(t, c, uint64(pos), []feed{{id: 1, pos: pos, tokens: []int{tok}, logits: true}})
			if len(out.Failed) > 0 {
				break
			}
			tok = argmax(out.LogitsRow(0))
		}
		if !errors.Is(&out.Failed[0], ErrKVBudget) || len(out.Seqs) != 0 || len(out.Logits) != 0 {
			t.Errorf("budget in stage %d: decoding failed with %v, %d seqs left", at, &out.Failed[0], len(out.Seqs))
		}
		if ls[at].KVBytes() > budget {
			t.Errorf("budget in stage %d: %d bytes held, budget %d", at, ls[at].KVBytes(), budget)
		}
		c.End(context.Background(), []uint64{1, 2})
		for i, l := range ls {
			if l.Sessions() != 0 || l.KVBytes() != 0 {
				t.Errorf("budget in stage %d: stage %d holds %d sessions, %d bytes after End", at, i, l.Sessions(), l.KVBytes())
			}
		}
	}
}

// TestLocalSessionErrors checks the per-sequence failures other than the
// budget: each fails alone, the others in the batch go on.
func TestLocalSessionErrors(t *testing.T) {
	f := openFile(t, testdataPath(t, stories))
	l := NewLocal(load(t, f, 0, 5, false), LocalConfig{})
	forward(t, l, 1, []feed{{id: 1, tokens: []int{1, 300}, open: true}})
	for _, tc := range []struct {
		name string
		bad  feed
		err  error
	}{
		{"no session", feed{id: 9, pos: 2, tokens: []int{5}}, ErrNoSession},
		{"position behind", feed{id: 1, pos: 1, tokens: []int{5}}, ErrPosition},
		{"position ahead", feed{id: 1, pos: 3, tokens: []int{5}}, ErrPosition},
		{"open after 0", feed{id: 9, pos: 4, tokens: []int{5}, open: true}, ErrPosition},
		{"token", feed{id: 9, tokens: []int{1, 512}, open: true}, ErrBadToken},
		{"negative token", feed{id: 9, tokens: []int{-1}, open: true}, ErrBadToken},
		{"fork of no session", feed{id: 9, pos: 1, tokens: []int{5}, open: true, from: 7}, ErrNoSource},
		{"fork past the source", feed{id: 9, pos: 3, tokens: []int{5}, open: true, from: 1}, ErrNoSource},
		{"fork of itself", feed{id: 1, pos: 1, tokens: []int{5}, open: true, from: 1}, ErrPosition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLocal(l.m, LocalConfig{})
			forward(t, l, 1, []feed{{id: 1, tokens: []int{1, 300}, open: true}})
			good := feed{id: 2, tokens: []int{1, 400, 401}, open: true, logits: true}
			out := forward(t, l, 2, []feed{tc.bad, good})
			if len(out.Failed) != 1 || !errors.Is(&out.Failed[0], tc.err) || out.Failed[0].ID != tc.bad.id {
				t.Fatalf("failed %v, want %v", out.Failed, tc.err)
			}
			if len(out.Seqs) != 1 || len(out.Tokens) != 3 || len(out.X) != 3*64 || len(out.Logits) != 512 {
				t.Errorf("left %v, %d tokens, %d activations, %d logits", out.Seqs, len(out.Tokens), len(out.X), len(out.Logits))
			}
		})
	}
	// Opening an open session starts it over.
	out := forward(t, l, 3, []feed{{id: 1, tokens: []int{1, 400, 401}, open: true, logits: true}})
	alone := forward(t, NewLocal(load(t, f, 0, 5, false), LocalConfig{}), 1, []feed{{id: 1, tokens: []int{1, 400, 401}, open: true, logits: true}})
	if firstBitDiff(out.Logits, alone.Logits) >= 0 || l.Sessions() != 1 {
		t.Errorf("reopened session: logits differ or %d sessions", l.Sessions())
	}
	// Malformed batches fail whole.
	for name, b := range map[string]*Batch{
		"no rows":     {Seqs: []Seq{{ID: 1, Pos: 3}}},
		"tokens":      {Seqs: []Seq{{ID: 1, Pos: 3, N: 2}}, Tokens: []int{5}},
		"duplicate":   {Seqs: []Seq{{ID: 5, N: 1, Open: true}, {ID: 5, N: 1, Open: true}}, Tokens: []int{5, 6}},
		"negative":    {Seqs: []Seq{{ID: 1, Pos: -1, N: 1}}, Tokens: []int{5}},
		"activations": {Seqs: []Seq{{ID: 1, Pos: 3, N: 1}}, X: make([]float32, 64)},
	} {
		s := Stage(l)
		if name == "activations" {
			s = NewLocal(load(t, f, 2, 5, false), LocalConfig{})
			b.X = b.X[:63]
		}
		if out, err := s.Forward(context.Background(), b); !errors.Is(err, ErrBadBatch) || out != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// An ended context fails the batch.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Forward(ctx, newBatch(1, []feed{{id: 3, tokens: []int{1}, open: true}})); !errors.Is(err, context.Canceled) {
		t.Errorf("ended context: %v", err)
	}
	// An empty batch passes through the last stage with no logits.
	if out := forward(t, l, 4, nil); len(out.Logits) != 0 || out.Vocab != 512 {
		t.Errorf("empty batch: %d logits, vocab %d", len(out.Logits), out.Vocab)
	}
}

// TestLocalEvict checks idle eviction on the stage's clock: by Evict, and
// by Forward with an IdleTimeout.
func TestLocalEvict(t *testing.T) {
	f := openFile(t, testdataPath(t, stories))
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	m := load(t, f, 0, 5, false)
	for _, idle := range []time.Duration{0, time.Minute} {
		l := NewLocal(m, LocalConfig{Now: clock, IdleTimeout: idle})
		forward(t, l, 1, []feed{{id: 1, tokens: []int{1}, open: true}, {id: 2, tokens: []int{1}, open: true}})
		now = now.Add(50 * time.Second)
		forward(t, l, 2, []feed{{id: 1, pos: 1, tokens: []int{300}}})
		now = now.Add(20 * time.Second) // session 2 idle for 70s, session 1 for 20s
		if idle == 0 {
			if got := l.Evict(now.Add(-time.Minute)); len(got) != 1 || got[0] != 2 {
				t.Errorf("Evict: %v, want [2]", got)
			}
		}
		out := forward(t, l, 3, []feed{{id: 1, pos: 2, tokens: []int{301}}, {id: 2, pos: 1, tokens: []int{300}}})
		if len(out.Failed) != 1 || out.Failed[0].ID != 2 || !errors.Is(&out.Failed[0], ErrNoSession) {
			t.Errorf("idle %v: failed %v, want session 2 gone", idle, out.Failed)
		}
		if l.Sessions() != 1 {
			t.Errorf("idle %v: %d sessions", idle, l.Sessions())
		}
	}
	// A session forked is in use: session 3, forked from 1 at 50s, is
	// not idle at 70s, though no Forward ran on it.
	l := NewLocal(m, LocalConfig{Now: clock, IdleTimeout: time.Minute})
	forward(t, l, 1, []feed{{id: 1, tokens: []int{1, 300, 301, 302, 303, 304}, open: true}})
	now = now.Add(50 * time.Second)
	forward(t, l, 2, []feed{{id: 2, pos: 4, tokens: []int{303, 304}, open: true, from: 1}})
	now = now.Add(20 * time.Second)
	if got := l.Evict(now.Add(-time.Minute)); len(got) != 0 {
		t.Errorf("evicted %v, a session forked 20s ago", got)
	}
}

// TestLocalStats: a stage counts its forwards, the tokens they computed
// and the time they took, beside its sessions and KV bytes.
func TestLocalStats(t *testing.T) {
	f := openFile(t, testdataPath(t, stories))
	var clock time.Time
	l := NewLocal(load(t, f, 0, 5, false), LocalConfig{KVBudget: 1 << 20, Now: func() time.Time {
		clock = clock.Add(time.Millisecond) // each reading a millisecond on
		return clock
	}})
	if st := l.Stats(); st != (LocalStats{KVBudget: 1 << 20}) {
		t.Fatalf("fresh stage: %+v", st)
	}
	forward(t, l, 1, []feed{{id: 1, tokens: storiesPrompts[0], open: true, logits: true}, {id: 2, tokens: storiesPrompts[1], open: true, logits: true}})
	forward(t, l, 2, []feed{{id: 1, pos: len(storiesPrompts[0]), tokens: []int{5}, logits: true}})
	st := l.Stats()
	want := LocalStats{Sessions: 2, KVBytes: l.KVBytes(), KVBudget: 1 << 20, Forwards: 2, Tokens: uint64(len(storiesPrompts[0]) + len(storiesPrompts[1]) + 1)}
	busy := st.Busy
	st.Busy = 0
	if st != want || busy <= 0 {
		t.Errorf("stats %+v, busy %v; want %+v and some busy time", st, busy, want)
	}
}

// TestLocalFork checks that a session forked from another's prefix gets,
// bit for bit, the logits of a session that computed that prefix itself,
// across a chain of stages; that the source goes on unchanged; and that
// the budget accounts for the copy.
func TestLocalFork(t *testing.T) {
	f := openFile(t, testdataPath(t, stories))
	prompt := storiesPrompts[1]
	const at = 8 // the fork's position
	run := func(feeds ...[]feed) (*Chain, []*Local, [][]float32) {
		ls := locals(t, f, []int{0, 3, 5}, false, LocalConfig{})
		c, err := NewChain(wire.Lossless, asStages(ls)...)
		if err != nil {
			t.Fatal(err)
		}
		var logits [][]float32
		for i, fs := range feeds {
			out := forward(t, c, uint64(i+1), fs)
			if len(out.Failed) > 0 {
				t.Fatalf("batch %d: %v", i, &out.Failed[0])
			}
			for k := range len(out.Logits) / max(out.Vocab, 1) {
				logits = append(logits, append([]float32(nil), out.LogitsRow(k)...))
			}
		}
		return c, ls, logits
	}
	// The reference: session 2 computes its whole prompt, in the chunks
	// the fork sees; session 1 computes the prompt and decodes a token.
	_, _, want := run(
		[]feed{{id: 1, tokens: prompt, open: true, logits: true}},
		[]feed{{id: 2, tokens: prompt[:at], open: true}},
		[]feed{{id: 2, pos: at, tokens: prompt[at:], logits: true}, {id: 1, pos: len(prompt), tokens: []int{300}, logits: true}},
	)
	c, ls, got := run(
		[]feed{{id: 1, tokens: prompt, open: true, logits: true}},
		[]feed{{id: 2, pos: at, tokens: prompt[at:], open: true, from: 1, logits: true}, {id: 1, pos: len(prompt), tokens: []int{300}, logits: true}},
	)
	for i := range want {
		if j := firstBitDiff(got[i], want[i]); j >= 0 {
			t.Errorf("row %d: logit %d differs: forked %v, computed %v", i, j, got[i][j], want[i][j])
		}
	}
	for i, l := range ls {
		if l.Sessions() != 2 {
			t.Errorf("stage %d holds %d sessions, want 2", i, l.Sessions())
		}
		per := l.perPosition()
		if got, want := l.KVBytes(), (int64(arch.GrowCap(0, len(prompt), 0))+int64(arch.GrowCap(0, len(prompt), 0)))*per; got < want {
			t.Errorf("stage %d accounts %d bytes, want at least %d", i, got, want)
		}
	}
	c.End(context.Background(), []uint64{1, 2})
	for i, l := range ls {
		if l.Sessions() != 0 || l.KVBytes() != 0 {
			t.Errorf("stage %d holds %d sessions, %d bytes after End", i, l.Sessions(), l.KVBytes())
		}
	}
	// A fork beyond the budget fails alone.
	tight := NewLocal(load(t, f, 0, 5, false), LocalConfig{KVBudget: 20 * 4 * 32 * 5})
	forward(t, tight, 1, []feed{{id: 1, tokens: prompt, open: true}})
	out := forward(t, tight, 2, []feed{{id: 2, pos: at, tokens: prompt[at:], open: true, from: 1, logits: true}})
	if len(out.Failed) != 1 || !errors.Is(&out.Failed[0], ErrKVBudget) || tight.Sessions() != 1 {
		t.Errorf("a fork beyond the budget: failed %v, %d sessions", out.Failed, tight.Sessions())
	}
}

// TestForkMatchesWhole checks, for every reference model (every weight
// type), that a prompt whose prefix is forked from a session that
// computed the whole prompt, and whose last two tokens are computed again,
// gets the logits of the whole prompt bit for bit: rows of a chunk of two
// or more go through the batch kernels, whose results do not depend on how
// many rows the chunk holds. (A single token would go through the vector
// kernels, which round differently: hence the driver leaves two.)
func TestForkMatchesWhole(t *testing.T) {
	for _, m := range refModels(t) {
		t.Run(m.name, func(t *testing.T) {
			prompts := m.prompts
			for _, p := range m.prompts { // and a longer one, of their tokens
				prompts = append(prompts, slices.Repeat(p, 4))
			}
			for _, p := range prompts {
				if len(p) < MinPrefix+2 {
					continue
				}
				l := NewLocal(load(t, m.f, 0, m.layers, m.dequant), LocalConfig{})
				whole := forward(t, l, 1, []feed{{id: 1, tokens: p, open: true, logits: true}})
				want := slices.Clone(whole.Logits)
				at := len(p) - 2
				fork := forward(t, l, 2, []feed{{id: 2, pos: at, tokens: p[at:], open: true, from: 1, logits: true}})
				if j := firstBitDiff(fork.Logits, want); j >= 0 {
					t.Errorf("prompt of %d: logit %d differs after a fork at %d: %v, whole %v", len(p), j, at, fork.Logits[j], want[j])
				}
			}
		})
	}
}

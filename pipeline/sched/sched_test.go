package sched

import (
	"errors"
	"testing"
)

func TestScripts(t *testing.T) {
	for _, tc := range []struct {
		name, script string
	}{
		{"prefill then decode to max tokens", `
config stages=1 tokens=16 chunk=8
> submit 1 len=5 max=3
> next
b1: s1@0:5 open logits
> next
none
> done 1 *
tok s1#0=100
> next
b2: s1@5:1 logits
> done 2 *
tok s1#1=101
> fill
b3: s1@6:1 logits
> done 3 *
tok s1#2=102
fin s1 length gen=3
rel s1
> next
none
> stats
queued=0 running=0 inflight=0/0 batches=3 prefill=5 decode=2 generated=3 finished=1
`},
		{"a cached prefix is forked, the rest chunked", `
config stages=1 tokens=16 chunk=4
> submit 1 len=10 max=2 cached=7 from=9
> fill
b1: s1@7:3 open from=s9 logits
> done 1 *
tok s1#0=100
> submit 2 len=12 max=1 cached=3 from=1
> fill
b2: s1@10:1 logits, s2@3:4 open from=s1
> done 2 *
tok s1#1=101
fin s1 length gen=2
rel s1
> fill
b3: s2@7:4
> done 3 *
> fill
b4: s2@11:1 logits
> done 4 *
tok s2#0=200
fin s2 length gen=1
rel s2
> submit 3 len=4 max=1 cached=4 from=1
error: sched: invalid request: sequence 3 forks 4 positions of session 1, for a prompt of 4
> submit 3 len=4 max=1 cached=2
error: sched: invalid request: sequence 3 forks 2 positions of session 0, for a prompt of 4
> submit 3 len=4 max=1 cached=2 from=3
error: sched: invalid request: sequence 3 forks 2 positions of session 3, for a prompt of 4
> stats
queued=0 running=0 inflight=0/0 batches=4 prefill=12 decode=1 generated=3 finished=2
cached=10
`},
		{"chunked prefill interleaved with decodes", `
config stages=1 tokens=10 chunk=4
> submit 1 len=2 max=6
> fill
b1: s1@0:2 open logits
> done 1 *
tok s1#0=100
> submit 2 len=10 max=2
> fill
b2: s1@2:1 logits, s2@0:4 open
> done 2 *
tok s1#1=101
> fill
b3: s1@3:1 logits, s2@4:4
> done 3 *
tok s1#2=102
> fill
b4: s1@4:1 logits, s2@8:2 logits
> done 4 *
tok s1#3=103
tok s2#0=200
> fill
b5: s1@5:1 logits, s2@10:1 logits
> done 5 *
tok s1#4=104
tok s2#1=201
fin s2 length gen=2
rel s2
> fill
b6: s1@6:1 logits
> done 6 *
tok s1#5=105
fin s1 length gen=6
rel s1
`},
		{"decodes are reserved before prompt tokens", `
config stages=1 tokens=6 chunk=8
> submit 1 len=1 max=9
> submit 2 len=1 max=9
> submit 3 len=1 max=9
> fill
b1: s1@0:1 open logits, s2@0:1 open logits, s3@0:1 open logits
> done 1 *
tok s1#0=100
tok s2#0=200
tok s3#0=300
> submit 4 len=20 max=1
> fill
b2: s1@1:1 logits, s2@1:1 logits, s3@1:1 logits, s4@0:3 open
> done 2 *
tok s1#1=101
tok s2#1=201
tok s3#1=301
> fill
b3: s1@2:1 logits, s2@2:1 logits, s3@2:1 logits, s4@3:3
`},
		{"groups launched one slot at a time even out", `
config stages=2 tokens=64 chunk=16
> submit 1 len=1 max=4
> fill
b1: s1@0:1 open logits
# arrivals while b1 is in flight: one slot left, but only an even share
# of all the work (with s1, coming back) goes into it
> submit 2 len=1 max=4
> submit 3 len=1 max=4
> submit 4 len=1 max=4
> fill
b2: s2@0:1 open logits, s3@0:1 open logits
> done 1 *
tok s1#0=100
> fill
b3: s1@1:1 logits, s4@0:1 open logits
> done 2 *
tok s2#0=200
tok s3#0=300
> fill
b4: s2@1:1 logits, s3@1:1 logits
> done 3 *
tok s1#1=101
tok s4#0=400
> fill
b5: s1@2:1 logits, s4@1:1 logits
`},
		{"work spread over the stages", `
config stages=3 tokens=64 chunk=16
> submit 1 len=4 max=3
> fill
b1: s1@0:4 open logits
> submit 2 len=4 max=3
> submit 3 len=4 max=3
> fill
b2: s2@0:4 open logits
b3: s3@0:4 open logits
> fill
> done 1 *
tok s1#0=100
> fill
b4: s1@4:1 logits
`},
		{"a decode does not wait for a new prompt", `
config stages=2 tokens=64 chunk=16
> submit 1 len=2 max=3
> fill
b1: s1@0:2 open logits
> done 1 *
tok s1#0=100
> submit 2 len=10 max=1
> fill
b2: s1@2:1 logits
b3: s2@0:10 open logits
`},
		{"cancel queued, in flight, running", `
config stages=1 tokens=32 seqs=1 chunk=8
> submit 1 len=3 max=5
> submit 2 len=3 max=5
> fill
b1: s1@0:3 open logits
# queued: leaves the queue, finished, never released
> cancel 2
fin s2 cancelled gen=0
# in flight: finished now, released when its batch returns, result ignored
> cancel 1
fin s1 cancelled gen=0
> cancel 1
> submit 1 len=3 max=5
error: sched: duplicate sequence id: 1
> fill
> done 1 s1=7
rel s1
> cancel 9
> submit 1 len=2 max=5
> fill
b2: s1@0:2 open logits
> done 2 *
tok s1#0=100
# running, nothing in flight: finished and released at once
> cancel 1
fin s1 cancelled gen=1
rel s1
> stats
queued=0 running=0 inflight=0/0 batches=2 prefill=5 decode=0 generated=1 finished=3
`},
		{"cancel in the middle of a prompt", `
config stages=1 tokens=32 chunk=2
> submit 1 len=5 max=5
> fill
b1: s1@0:2 open
> done 1
> cancel 1
fin s1 cancelled gen=0
rel s1
> fill
`},
		{"one sequence fails, the others go on", `
config stages=1 tokens=64 chunk=4
> submit 1 len=2 max=9
> submit 2 len=2 max=4
> submit 3 len=2 max=4
> fill
b1: s1@0:2 open logits, s2@0:2 open logits, s3@0:2 open logits
> done 1 s2=err:kv_budget_exhausted *
tok s1#0=100
tok s3#0=300
fin s2 error gen=0: kv_budget_exhausted
rel s2
> fill
b2: s1@2:1 logits, s3@2:1 logits
# a missing result fails that sequence alone
> done 2 s1=101
tok s1#1=101
fin s3 error gen=1: sched: no result for sequence 3 in batch 2
rel s3
> submit 4 len=6 max=1
> fill
b3: s1@3:1 logits, s4@0:4 open
# an error on a chunk that wanted no logits
> done 3 s4=err:stage_down *
tok s1#2=102
fin s4 error gen=0: stage_down
rel s4
> fill
b4: s1@4:1 logits
> done 4 s1=stop:2
tok s1#3=2
fin s1 stop gen=4
rel s1
`},
		{"queue full, duplicates, invalid requests", `
config seqs=1 queue=2
> submit 1 len=1 max=1
> submit 2 len=1 max=1
> submit 3 len=1 max=1
error: sched: queue full
> submit 2 len=1 max=1
error: sched: duplicate sequence id: 2
> submit 4 len=0 max=1
error: sched: invalid request: sequence 4 has an empty prompt
> submit 4 len=1 max=0
error: sched: invalid request: sequence 4 has MaxTokens 0, want >= 1
> fill
b1: s1@0:1 open logits
> submit 3 len=1 max=1
> submit 4 len=1 max=1
error: sched: queue full
> done 1 *
tok s1#0=100
fin s1 length gen=1
rel s1
> fill
b2: s2@0:1 open logits
`},
		{"bad Done changes nothing", `
config stages=2 tokens=64 chunk=2
> submit 1 len=3 max=2
> submit 2 len=1 max=2
> fill
b1: s1@0:2 open
b2: s2@0:1 open logits
> done 9 *
error: sched: unknown batch: 9
> done 1 s2=5
error: sched: bad result: sequence 2 is not in batch 1
> done 1 s1=5
error: sched: bad result: a token for sequence 1, which wanted no logits in batch 1
> done 2 s2=5 s2=6
error: sched: bad result: two results for sequence 2 in batch 2
> done 2 s2=5
tok s2#0=5
> done 2 s2=5
error: sched: unknown batch: 2
> done 1
> fill
b3: s2@1:1 logits
b4: s1@2:1 logits
`},
		{"queue timeout", `
config seqs=1 timeout=2
> submit 1 len=1 max=2
> submit 2 len=1 max=2
> fill
b1: s1@0:1 open logits
> tick
> submit 3 len=1 max=2
> tick
fin s2 timeout gen=0
> tick
fin s3 timeout gen=0
> stats
queued=0 running=1 inflight=1/1 batches=1 prefill=1 decode=0 generated=0 finished=2
`},
	} {
		t.Run(tc.name, func(t *testing.T) { runScript(t, tc.script) })
	}
}

func TestConfig(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Stages: 1, MaxBatchTokens: DefaultMaxBatchTokens, MaxSeqs: DefaultMaxSeqs,
		PrefillChunk: DefaultPrefillChunk, MaxQueue: DefaultMaxQueue, MaxInFlight: 1}
	if got := s.Config(); got != want {
		t.Errorf("defaults: %+v, want %+v", got, want)
	}
	if s, _ := New(Config{Stages: 4}); s.Config().MaxInFlight != 4 {
		t.Errorf("MaxInFlight defaults to %d with 4 stages, want 4", s.Config().MaxInFlight)
	}
	if _, err := New(Config{MaxSeqs: -1}); err == nil {
		t.Error("New accepts MaxSeqs -1")
	}
}

// pipe runs a checker as a pipeline whose micro-batches come back in launch
// order: after each Done, Next fills the free slots.
func pipe(t *testing.T, cfg Config, prompts []int, maxTokens int, steps int, each func(step int, c *checker, mbs []MicroBatch)) *checker {
	t.Helper()
	c := newChecker(t, cfg)
	for i, n := range prompts {
		prompt := make([]int, n)
		if err := c.submit(Request{ID: SeqID(i + 1), Prompt: prompt, MaxTokens: maxTokens}); err != nil {
			t.Fatal(err)
		}
	}
	mbs := c.fill()
	for step := 0; step < steps && len(c.order) > 0; step++ {
		each(step, c, mbs)
		b := c.order[0]
		c.done(b, c.autoResults(c.flights[b].mb))
		mbs = c.fill()
	}
	return c
}

// TestPipelineFull checks that with S stages and at least S decoding
// sequences, S micro-batches are in flight in the steady state, balanced;
// and that with fewer sequences than stages each one is in flight.
func TestPipelineFull(t *testing.T) {
	t.Run("3 stages, 12 sequences", func(t *testing.T) {
		cfg := Config{Stages: 3, MaxBatchTokens: 256, MaxSeqs: 16, PrefillChunk: 32}
		prompts := []int{8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8}
		pipe(t, cfg, prompts, 40, 100, func(step int, c *checker, launched []MicroBatch) {
			if step == 0 {
				if len(launched) != 3 {
					t.Fatalf("first fill launched %d micro-batches, want 3", len(launched))
				}
			}
			if got := c.s.Stats().InFlight; got != 3 {
				t.Fatalf("step %d: %d micro-batches in flight, want 3", step, got)
			}
			for _, b := range c.order {
				if n := len(c.flights[b].mb.Chunks); n != 4 {
					t.Fatalf("step %d: batch %d holds %d sequences, want 4", step, b, n)
				}
			}
		})
	})
	for _, n := range []int{1, 2} {
		t.Run("3 stages, fewer sequences", func(t *testing.T) {
			prompts := make([]int, n)
			for i := range prompts {
				prompts[i] = 5
			}
			pipe(t, Config{Stages: 3}, prompts, 20, 20, func(step int, c *checker, _ []MicroBatch) {
				if got := c.s.Stats().InFlight; got != n {
					t.Fatalf("step %d: %d micro-batches in flight, want %d", step, got, n)
				}
			})
		})
	}
	t.Run("long prompt among decodes", func(t *testing.T) {
		// 6 decoding sequences and a 300-token prompt: the decodes keep
		// streaming every trip while the prompt goes in chunks.
		cfg := Config{Stages: 3, MaxBatchTokens: 128, PrefillChunk: 64}
		c := pipe(t, cfg, []int{1, 1, 1, 1, 1, 1}, 100, 6, func(int, *checker, []MicroBatch) {})
		if err := c.submit(Request{ID: 99, Prompt: make([]int, 300), MaxTokens: 1}); err != nil {
			t.Fatal(err)
		}
		c.fill()
		before := c.s.Stats()
		for range 30 {
			b := c.order[0]
			c.done(b, c.autoResults(c.flights[b].mb))
			c.fill()
		}
		st := c.s.Stats()
		// Each trip brings back a third of the decodes; all go out again.
		if got := st.DecodeTokens - before.DecodeTokens; got != 2*30 {
			t.Errorf("%d decode tokens in 30 trips with 6 sequences, want %d", got, 2*30)
		}
		if st.PrefillTokens-before.PrefillTokens != 300 {
			t.Errorf("prompt of 300 tokens fed %d tokens in 30 trips", st.PrefillTokens-before.PrefillTokens)
		}
	})
}

func TestReasonString(t *testing.T) {
	for r, want := range map[Reason]string{FinishLength: "length", FinishStop: "stop", FinishCancelled: "cancelled",
		FinishError: "error", FinishTimeout: "timeout", 0: "reason(0)"} {
		if got := r.String(); got != want {
			t.Errorf("Reason(%d) = %q, want %q", r, got, want)
		}
	}
}

func TestErrorsWrap(t *testing.T) {
	s, _ := New(Config{})
	if err := s.Done(1, nil); !errors.Is(err, ErrUnknownBatch) {
		t.Errorf("Done on an empty scheduler: %v", err)
	}
}

package sched

import "testing"

// BenchmarkNextDone measures the scheduler's own cost per micro-batch with
// 256 sequences over 4 stages: one Done of the oldest micro-batch, the
// Ready that follows, a new request for each finished sequence, and Next
// until the pipeline is full again. Prompts are 64 tokens, generations 128.
func BenchmarkNextDone(b *testing.B) {
	const seqs, prompt, gen = 256, 64, 128
	s, err := New(Config{Stages: 4, MaxBatchTokens: 4096, MaxSeqs: seqs, PrefillChunk: 256, MaxQueue: seqs})
	if err != nil {
		b.Fatal(err)
	}
	next := SeqID(0)
	submit := func() {
		next++
		if err := s.Submit(Request{ID: next, Prompt: make([]int, prompt), MaxTokens: gen}); err != nil {
			b.Fatal(err)
		}
	}
	for range seqs {
		submit()
	}
	var order []MicroBatch // in flight, oldest first
	var results []Result
	fill := func() {
		for {
			mb, ok := s.Next()
			if !ok {
				return
			}
			order = append(order, mb)
		}
	}
	fill()

	b.ReportAllocs()
	tokens := 0
	for b.Loop() {
		mb := order[0]
		order = order[1:]
		results = results[:0]
		for _, ch := range mb.Chunks {
			if ch.Logits {
				results = append(results, Result{ID: ch.ID, Token: ch.Pos})
			}
		}
		if err := s.Done(mb.Num, results); err != nil {
			b.Fatal(err)
		}
		rd := s.Ready()
		tokens += len(rd.Tokens)
		for range rd.Finished {
			submit()
		}
		fill()
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tok/s")
	b.ReportMetric(float64(tokens)/float64(b.N), "tok/batch")
}

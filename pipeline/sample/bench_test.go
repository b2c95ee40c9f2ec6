package sample

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// modelLogits returns n logits shaped like a language model's: a bulk drawn
// from N(0, 2.5²) and a head of 32 tokens near 16 that holds most of the
// probability (the top token about 0.45, a top-p 0.9 nucleus about 11
// tokens).
func modelLogits(n int, seed uint64) []float32 {
	l := randomLogits(n, 2.5, seed)
	r := rand.New(rand.NewPCG(seed, 2))
	for range 32 {
		l[r.IntN(n)] = float32(16 + 2*r.NormFloat64())
	}
	return l
}

// BenchmarkSample measures one token's sampling for the vocabularies of
// Llama 2 (32000) and Qwen2 (151936). "flat" logits, N(0, 2.5²) with no
// head, are a worst case for top-p: its 0.9 nucleus holds about 16k tokens.
func BenchmarkSample(b *testing.B) {
	for _, vocab := range []int{32000, 151936} {
		history := make([]int, 512)
		for i := range history {
			history[i] = i * 7919 % vocab
		}
		for _, m := range []struct {
			name   string
			p      Params
			logits []float32
		}{
			{"greedy", Params{}, modelLogits(vocab, 1)},
			{"top-k=40", Params{Temperature: 0.8, TopK: 40, Seed: 1}, modelLogits(vocab, 1)},
			{"top-p=0.9", Params{Temperature: 0.8, TopP: 0.9, Seed: 1}, modelLogits(vocab, 1)},
			{"top-p=0.9/flat", Params{Temperature: 0.8, TopP: 0.9, Seed: 1}, randomLogits(vocab, 2.5, 1)},
			{"top-k=40,top-p=0.9,min-p=0.05,penalties", Params{Temperature: 0.8, TopK: 40, TopP: 0.9, MinP: 0.05, RepeatPenalty: 1.1, PresencePenalty: 0.5, Seed: 1}, modelLogits(vocab, 1)},
		} {
			b.Run(fmt.Sprintf("vocab=%d/%s", vocab, m.name), func(b *testing.B) {
				s := New(m.p)
				s.Sample(m.logits, history) // grow the buffers
				b.ReportAllocs()
				b.SetBytes(int64(4 * vocab))
				n := 0
				for b.Loop() {
					s.Sample(m.logits, history)
					n++
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tok/s")
			})
		}
	}
}

// BenchmarkTopLogprobs measures the top 5 logprobs over Qwen2's vocabulary.
func BenchmarkTopLogprobs(b *testing.B) {
	logits := modelLogits(151936, 1)
	dst := make([]Candidate, 0, 5)
	b.ReportAllocs()
	b.SetBytes(int64(4 * len(logits)))
	for b.Loop() {
		dst = TopLogprobs(logits, 5, dst)
	}
}

package pipeline

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/strata-llm/strata/pipeline/arch"
)

// BenchResult is the outcome of Bench.
type BenchResult struct {
	PrefillTokens int
	Prefill       time.Duration // the whole prompt in one Forward
	DecodeTokens  int
	Decode        time.Duration   // one token per Forward, logits included
	Steps         []time.Duration // each decoded token's share of Decode
}

// PrefillRate is prompt tokens per second.
func (r BenchResult) PrefillRate() float64 {
	return float64(r.PrefillTokens) / r.Prefill.Seconds()
}

// DecodeRate is generated tokens per second.
func (r BenchResult) DecodeRate() float64 {
	return float64(r.DecodeTokens) / r.Decode.Seconds()
}

// Bench times m (a whole model: embedding to logits) on a random prompt of
// prefill tokens in one batch, then decode tokens one at a time, greedily.
func Bench(m arch.Model, prefill, decode int, seed uint64) (BenchResult, error) {
	return BenchEach(m, prefill, decode, seed, nil)
}

// BenchEach is Bench calling before (when not nil) ahead of each decoded
// token, outside the timed steps: a benchmark measures the machine's
// bandwidth there, so that each token's rate has a roofline taken right
// beside it.
func BenchEach(m arch.Model, prefill, decode int, seed uint64, before func()) (BenchResult, error) {
	cfg := m.Config()
	if lo, hi := m.Range(); lo != 0 || hi != cfg.Layers {
		return BenchResult{}, fmt.Errorf("bench: needs every layer, have [%d, %d)", lo, hi)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	tokens := make([]int, prefill)
	for i := range tokens {
		tokens[i] = rng.IntN(cfg.Vocab)
	}
	cache := m.NewCache()
	x := make([]float32, max(prefill, 1)*cfg.Dim)
	logits := make([]float32, cfg.Vocab)
	step := func(toks []int) (int, error) {
		n := len(toks)
		if err := m.Embed(x[:n*cfg.Dim], toks); err != nil {
			return 0, err
		}
		if err := m.Forward(x[:n*cfg.Dim], []arch.Seq{{Cache: cache, Pos: cache.Len(), N: n}}); err != nil {
			return 0, err
		}
		if err := m.Logits(logits, x[:n*cfg.Dim], []int{n - 1}); err != nil {
			return 0, err
		}
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		return best, nil
	}
	r := BenchResult{PrefillTokens: prefill, DecodeTokens: decode}
	start := time.Now()
	next, err := step(tokens)
	if err != nil {
		return r, err
	}
	r.Prefill = time.Since(start)
	r.Steps = make([]time.Duration, 0, decode)
	for range decode {
		if before != nil {
			before()
		}
		start = time.Now()
		if next, err = step([]int{next}); err != nil {
			return r, err
		}
		d := time.Since(start)
		r.Steps = append(r.Steps, d)
		r.Decode += d
	}
	return r, nil
}

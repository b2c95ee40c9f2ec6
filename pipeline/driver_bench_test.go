package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/strata-llm/strata/kernels"
	"github.com/strata-llm/strata/pipeline/arch/llama"
	"github.com/strata-llm/strata/pipeline/sched"
)

// synthModel writes a random-weight llama model for a benchmark: a small
// shape by default, into b.TempDir(); with STRATA_BENCH_1B=1 the 1B shape of
// `strata bench --synth 1b` (dim 2048, 16 layers, 32/8 heads, ffn 5632,
// vocab 32000) in Q8_0, kept in the user cache dir (strata/synth, where
// `strata bench` keeps it too) so that it is written once. big says which.
func synthModel(b *testing.B) (path, shape string, big bool) {
	b.Helper()
	if testing.Short() {
		b.Skip("writes a synthetic model")
	}
	spec := llama.SynthSpec{Dim: 512, Layers: 8, Heads: 8, KVHeads: 4, FFN: 1536, Vocab: 4096, Type: kernels.Q8_0, Seed: 1}
	dir, name := b.TempDir(), "small-q8_0.gguf"
	if big = os.Getenv("STRATA_BENCH_1B") == "1"; big {
		spec = llama.SynthSpec{Dim: 2048, Layers: 16, Heads: 32, KVHeads: 8, FFN: 5632, Vocab: 32000, Type: kernels.Q8_0}
		name = "1b-q8_0.gguf"
		if d, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(d, "strata", "synth")
		}
	}
	path = filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		f, err := os.CreateTemp(dir, name+".*.tmp")
		if err != nil {
			b.Fatal(err)
		}
		err = llama.Synth(f, spec)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(f.Name(), 0o644)
		}
		if err == nil {
			err = os.Rename(f.Name(), path)
		}
		if err != nil {
			os.Remove(f.Name())
			b.Fatal(err)
		}
	}
	return path, fmt.Sprintf("dim %d, %d layers, vocab %d, %v", spec.Dim, spec.Layers, spec.Vocab, spec.Type), big
}

// decodeRequests are batch requests of a prompt tokens long prompt (all
// different) generating n tokens.
func decodeRequests(batch, prompt, n int) []TokenRequest {
	reqs := make([]TokenRequest, batch)
	for i := range reqs {
		p := make([]int, prompt)
		for j := range p {
			p[j] = 300 + i + j
		}
		reqs[i] = TokenRequest{Prompt: p, MaxTokens: n, IgnoreEOS: true}
	}
	return reqs
}

// generateBatch runs reqs at once on d.
func generateBatch(b *testing.B, d *Driver, reqs []TokenRequest) {
	var wg sync.WaitGroup
	for _, r := range reqs {
		wg.Go(func() {
			if _, err := d.Generate(context.Background(), r, func(int) error { return nil }); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
}

func runDriver(b *testing.B, d *Driver) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
}

// BenchmarkDriverDecode measures the aggregate decode rate of batch
// sequences generating together through the Driver, on one stage and on
// two (with the Compact codec between them), over a synthetic model: a
// small shape by default, the 1B shape with STRATA_BENCH_1B=1 (see
// synthModel). Each sequence feeds a 4-token prompt and generates 32
// tokens (8 on the 1B shape, without the warm-up run); tok/s counts the
// generated tokens (prefill included in the time).
func BenchmarkDriverDecode(b *testing.B) {
	path, shape, big := synthModel(b)
	b.Logf("model: %s", shape)
	gen := 32
	if big {
		gen = 8
	}
	for _, stages := range []int{1, 2} {
		for _, batch := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("stages=%d/batch=%d", stages, batch), func(b *testing.B) {
				s, err := OpenSplit(path, stages, SplitOptions{Logger: quiet})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				d, err := s.NewDriver(DriverConfig{Logger: quiet})
				if err != nil {
					b.Fatal(err)
				}
				runDriver(b, d)
				reqs := decodeRequests(batch, 4, gen)
				if !big {
					generateBatch(b, d, reqs) // warm up: buffers grown
				}
				b.ReportAllocs()
				for b.Loop() {
					generateBatch(b, d, reqs)
				}
				b.ReportMetric(float64(b.N*batch*gen)/b.Elapsed().Seconds(), "tok/s")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// BenchmarkMicroBatchOverlap measures what micro-batching buys a pipeline:
// two stages of stories260K, each slowed by a knob that sleeps 4ms a row
// per Forward (standing for compute-bound stages, and dwarfing the tiny
// model's own compute), run 8 sequences (1-token prompts, 8 tokens each)
// with one micro-batch in flight and with two. With one, a stage idles while the other works; with two, both work
// all the time, so the throughput should double.
//
// The requests arrive as a burst: all are waiting when the Driver starts,
// so the scheduler splits them into even micro-batches. speedup is the
// ratio of the two throughputs, the figure the issue asks to be at least
// 1.7. speedup-staggered is the same with the requests arriving one by one
// at a running Driver: the scheduler then launches the first alone, and
// the groups even out because a micro-batch launched while another is in
// flight takes only an even share of all the work (before that rule, one
// group took all the late arrivals and the gain was about 1.1).
func BenchmarkMicroBatchOverlap(b *testing.B) {
	f := openFile(b, testdataPath(b, stories))
	const perRow = 4 * time.Millisecond
	const batch, gen = 8, 8
	knobs := &LocalKnobs{BeforeForward: func(_ context.Context, bt *Batch) {
		time.Sleep(time.Duration(bt.Rows()) * perRow)
	}}
	stages := map[int][]Stage{}
	staggered := map[int]*Driver{}
	for _, inFlight := range []int{1, 2} {
		stages[inFlight] = asStages(locals(b, f, []int{0, 3, 5}, false, LocalConfig{Knobs: knobs}))
		staggered[inFlight] = newBenchDriver(b, asStages(locals(b, f, []int{0, 3, 5}, false, LocalConfig{Knobs: knobs})), inFlight)
		runDriver(b, staggered[inFlight])
	}
	reqs := decodeRequests(batch, 1, gen)
	var took, tookStaggered [3]time.Duration
	for b.Loop() {
		for _, n := range []int{1, 2} {
			took[n] += burst(b, newBenchDriver(b, stages[n], n), reqs)
			start := time.Now()
			generateBatch(b, staggered[n], reqs)
			tookStaggered[n] += time.Since(start)
		}
	}
	tokens := float64(b.N * batch * gen)
	b.ReportMetric(tokens/took[1].Seconds(), "tok/s-1-in-flight")
	b.ReportMetric(tokens/took[2].Seconds(), "tok/s-2-in-flight")
	b.ReportMetric(took[1].Seconds()/took[2].Seconds(), "speedup")
	b.ReportMetric(tookStaggered[1].Seconds()/tookStaggered[2].Seconds(), "speedup-staggered")
	b.ReportMetric(0, "ns/op")
}

func newBenchDriver(b *testing.B, stages []Stage, inFlight int) *Driver {
	d, err := NewDriver(stages, DriverConfig{Logger: quiet, Sched: sched.Config{MaxInFlight: inFlight}})
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// burst submits reqs to d before starting it, and returns how long d took
// to run them all; it stops d then.
func burst(b *testing.B, d *Driver, reqs []TokenRequest) time.Duration {
	var wg sync.WaitGroup
	for _, r := range reqs {
		wg.Go(func() {
			if _, err := d.Generate(context.Background(), r, func(int) error { return nil }); err != nil {
				b.Error(err)
			}
		})
	}
	for {
		d.mu.Lock()
		n := len(d.submits)
		d.mu.Unlock()
		if n == len(reqs) {
			break
		}
		runtime.Gosched()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() { d.Run(ctx); close(done) }()
	wg.Wait()
	took := time.Since(start)
	cancel()
	<-done
	return took
}

// BenchmarkPrefixCacheChat measures what the prefix cache buys a chat:
// a 512-token system prompt, then four turns, each adding a 32-token user
// message to the conversation so far (the last reply included) and
// generating 16 tokens, through two stages of the synthetic model (see
// synthModel), with the cache and without. ttft-ms is the mean time to the
// first token of turns 2 to 4, when the whole conversation before the new
// message is cached; ttft-speedup is the ratio of the two, measured in the
// same run; cached-share is the share of those turns' prompt tokens taken
// from the cache.
func BenchmarkPrefixCacheChat(b *testing.B) {
	path, shape, _ := synthModel(b)
	b.Logf("model: %s", shape)
	const system, user, reply, turns = 512, 32, 16, 4
	var ttft [2]time.Duration
	var prompts, cached int
	chat := func(d *Driver, seed int) (time.Duration, int, int) {
		conv := make([]int, system)
		for i := range conv {
			conv[i] = 300 + (seed*7+i)%3000
		}
		var took time.Duration
		var total, hit int
		for turn := range turns {
			for i := range user {
				conv = append(conv, 300+(seed*13+turn*31+i)%3000)
			}
			start := time.Now()
			var first time.Duration
			res, err := d.Generate(context.Background(), TokenRequest{Prompt: conv, MaxTokens: reply, IgnoreEOS: true}, func(int) error {
				if first == 0 {
					first = time.Since(start)
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			if turn > 0 {
				took += first
				total += len(conv)
				hit += res.Cached
			}
			conv = append(conv, res.Tokens...)
		}
		return took, total, hit
	}
	drivers := [2]*Driver{}
	for i, pc := range []int{0, 8192} {
		s, err := OpenSplit(path, 2, SplitOptions{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		if drivers[i], err = s.NewDriver(DriverConfig{Logger: quiet, PrefixCache: pc}); err != nil {
			b.Fatal(err)
		}
		runDriver(b, drivers[i])
	}
	seed := 0
	for b.Loop() {
		seed++
		for i, d := range drivers {
			took, total, hit := chat(d, seed)
			ttft[i] += took
			if i == 1 {
				prompts, cached = prompts+total, cached+hit
			}
		}
	}
	n := float64(b.N * (turns - 1))
	b.ReportMetric(ttft[0].Seconds()*1e3/n, "ttft-ms-uncached")
	b.ReportMetric(ttft[1].Seconds()*1e3/n, "ttft-ms-cached")
	b.ReportMetric(ttft[0].Seconds()/ttft[1].Seconds(), "ttft-speedup")
	b.ReportMetric(float64(cached)/float64(prompts), "cached-share")
	b.ReportMetric(0, "ns/op")
}

package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-llm/strata/internal/testdata"
	"github.com/strata-llm/strata/pipeline/sample"
	"github.com/strata-llm/strata/pipeline/sched"
	"github.com/strata-llm/strata/pipeline/tokenizer"
	"github.com/strata-llm/strata/pipeline/wire"
)

var quiet = slog.New(slog.DiscardHandler)

// run starts d.Run and stops it when the test ends.
func run(t *testing.T, d *Driver) *Driver {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return d
}

func newDriver(t *testing.T, stages []Stage, cfg DriverConfig) *Driver {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	d, err := NewDriver(stages, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// generate runs req and checks that the result holds what was emitted.
func generate(t *testing.T, ctx context.Context, d *Driver, req TokenRequest) (TokenResult, error) {
	var emitted []int
	res, err := d.Generate(ctx, req, func(tok int) error { emitted = append(emitted, tok); return nil })
	if !slices.Equal(emitted, res.Tokens) {
		t.Errorf("emitted %v, result %v", emitted, res.Tokens)
	}
	return res, err
}

// generateAll runs every request at once and returns their tokens.
func generateAll(t *testing.T, d *Driver, reqs []TokenRequest) [][]int {
	t.Helper()
	out := make([][]int, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() {
			res, err := generate(t, context.Background(), d, r)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
			out[i] = res.Tokens
		})
	}
	wg.Wait()
	return out
}

// engineTokens generates every request alone with the single-sequence
// Engine over all layers.
func engineTokens(t *testing.T, reqs []TokenRequest) [][]int {
	t.Helper()
	eng, err := Open(testdataPath(t, stories), Options{Threads: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	var out [][]int
	for _, r := range reqs {
		res, err := eng.Generate(context.Background(), Request{Tokens: r.Prompt, MaxTokens: r.MaxTokens, Sample: r.Sample, IgnoreEOS: r.IgnoreEOS}, func(string) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res.Tokens)
	}
	return out
}

// storiesRequests are the stories260K reference prompts, generating n
// tokens greedily past end of generation.
func storiesRequests(t *testing.T, n int) []TokenRequest {
	ref := testdata.LoadReference(t, testdataPath(t, "reference/stories260K-f32.json"))
	var reqs []TokenRequest
	for _, c := range ref.Cases {
		reqs = append(reqs, TokenRequest{Prompt: c.PromptTokens, MaxTokens: n, IgnoreEOS: true})
	}
	return reqs
}

func checkSame(t *testing.T, what string, got, want [][]int) {
	t.Helper()
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("%s: request %d: %v, want %v", what, i, got[i], want[i])
		}
	}
}

func checkNoSessions(t *testing.T, ls []*Local) {
	t.Helper()
	for i, l := range ls {
		if n, b := l.Sessions(), l.KVBytes(); n != 0 || b != 0 {
			t.Errorf("stage %d holds %d sessions, %d bytes", i, n, b)
		}
	}
}

// TestDriverMatchesEngine generates the reference prompts, all at once,
// through N in-process stages, N = 1 to 5 (every even split of
// stories260K), and compares with the single-sequence Engine.
func TestDriverMatchesEngine(t *testing.T) {
	n := 32
	if quick() {
		n = 4
	}
	reqs := storiesRequests(t, n)
	want := engineTokens(t, reqs)
	for k := 1; k <= 5; k++ {
		t.Run(fmt.Sprintf("stages=%d", k), func(t *testing.T) {
			s, err := OpenSplit(testdataPath(t, stories), k, SplitOptions{Threads: 1, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			d, err := s.NewDriver(DriverConfig{Codec: wire.Lossless, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			run(t, d)
			checkSame(t, "driver", generateAll(t, d, reqs), want)
			if st := d.Stats(); st.Generated != uint64(n*len(reqs)) || st.Running != 0 || (k > 1 && st.Hops.Frames == 0) {
				t.Errorf("stats %+v", st)
			}
			checkNoSessions(t, s.Locals)
		})
	}
}

// TestDriverBatchedEqualsAlone generates 16 sequences together (greedy and
// seeded sampling, prompts and lengths all different) and each alone, and
// checks that they give the same tokens, and that they were batched.
func TestDriverBatchedEqualsAlone(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	reqs := storiesRequests(t, 0)
	for len(reqs) < 16 {
		p := []int{1}
		for range rng.IntN(20) {
			p = append(p, 3+rng.IntN(509))
		}
		reqs = append(reqs, TokenRequest{Prompt: p})
	}
	for i := range reqs {
		reqs[i].MaxTokens = 6 + i
		if quick() {
			reqs[i].MaxTokens = 2 + i/2
		}
		reqs[i].IgnoreEOS = true
		if i%2 == 1 {
			reqs[i].Sample = sample.Params{Temperature: 0.8, TopK: 40, Seed: uint64(i)}
		}
	}
	var widest atomic.Int64
	knobs := &LocalKnobs{BeforeForward: func(_ context.Context, b *Batch) {
		for n := int64(len(b.Seqs)); n > widest.Load(); {
			if widest.CompareAndSwap(widest.Load(), n) {
				break
			}
		}
	}}
	f := openFile(t, testdataPath(t, stories))
	ls := locals(t, f, []int{0, 3, 5}, false, LocalConfig{Knobs: knobs})
	d := run(t, newDriver(t, asStages(ls), DriverConfig{Codec: wire.Compact}))
	together := generateAll(t, d, reqs)
	if w := widest.Load(); w < 4 {
		t.Errorf("at most %d sequences in a micro-batch", w)
	}
	t.Logf("16 sequences together: up to %d in a micro-batch", widest.Load())
	var alone [][]int
	for _, r := range reqs {
		alone = append(alone, generateAll(t, d, []TokenRequest{r})[0])
	}
	checkSame(t, "together vs alone", together, alone)
	checkNoSessions(t, ls)
}

// TestDriverKVBudget checks that a sequence exhausting a stage's KV budget
// fails alone, with the typed error, while the others complete with the
// tokens they get without a budget, and that its sessions are freed on
// every stage.
func TestDriverKVBudget(t *testing.T) {
	reqs := storiesRequests(t, 8)[:4]
	long := []int{1}
	for i := range 99 {
		long = append(long, 300+i)
	}
	want := engineTokens(t, reqs)
	f := openFile(t, testdataPath(t, stories))
	ls := locals(t, f, []int{0, 3, 5}, false, LocalConfig{})
	// Layers 3-5 hold 2·128 bytes a position: the long prompt needs 25600,
	// the four others at most 6144 each.
	ls[1] = NewLocal(ls[1].m, LocalConfig{KVBudget: 25000})
	d := run(t, newDriver(t, asStages(ls), DriverConfig{}))
	var wg sync.WaitGroup
	var longErr error
	wg.Go(func() {
		_, longErr = generate(t, context.Background(), d, TokenRequest{Prompt: long, MaxTokens: 8})
	})
	got := generateAll(t, d, reqs)
	wg.Wait()
	checkSame(t, "beside a failing sequence", got, want)
	var be *KVBudgetError
	var se *SeqError
	if !errors.As(longErr, &be) || !errors.Is(longErr, ErrKVBudget) || !errors.As(longErr, &se) || se.Stage != "layers 3-5" {
		t.Fatalf("long prompt: %v", longErr)
	}
	t.Logf("long prompt: %v", longErr)
	checkNoSessions(t, ls)
}

// TestDriverCancel checks the ways a generation ends early: its ctx, emit
// saying ErrStop, emit failing. Each frees the sequence's KV caches on
// every stage before Generate returns.
func TestDriverCancel(t *testing.T) {
	f := openFile(t, testdataPath(t, stories))
	ls := locals(t, f, []int{0, 2, 4, 5}, false, LocalConfig{})
	d := run(t, newDriver(t, asStages(ls), DriverConfig{}))
	req := storiesRequests(t, 20)[0]
	want := engineTokens(t, []TokenRequest{req})[0]
	boom := errors.New("client went away")
	for _, tc := range []struct {
		name   string
		after  int // tokens emitted before the emit below
		emit   func(cancel func()) error
		err    error
		finish string
	}{
		{"ctx", 2, func(cancel func()) error { cancel(); return nil }, context.Canceled, ""},
		{"stop", 3, func(func()) error { return ErrStop }, nil, FinishStop},
		{"emit error", 1, func(func()) error { return boom }, boom, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			n := 0
			res, err := d.Generate(ctx, req, func(int) error {
				if n++; n == tc.after {
					return tc.emit(cancel)
				}
				return nil
			})
			if !errors.Is(err, tc.err) || res.FinishReason != tc.finish {
				t.Errorf("err %v, finish %q; want %v, %q", err, res.FinishReason, tc.err, tc.finish)
			}
			if !slices.Equal(res.Tokens, want[:tc.after]) {
				t.Errorf("tokens %v, want %v", res.Tokens, want[:tc.after])
			}
			checkNoSessions(t, ls)
		})
	}
	res, err := generate(t, context.Background(), d, req)
	if err != nil || !slices.Equal(res.Tokens, want) || res.FinishReason != FinishLength {
		t.Errorf("after the cancellations: %v, %s, %v", res.Tokens, res.FinishReason, err)
	}
}

// TestDriverQueue checks a request that never leaves the queue: cancelled
// there, or timed out. The first request is held in stage 0 (a knob) so
// that the second, with MaxSeqs 1, must wait; synctest tells when every
// goroutine is blocked, and its fake clock drives the queue timeout.
func TestDriverQueue(t *testing.T) {
	f := openFile(t, testdataPath(t, stories))
	req := storiesRequests(t, 4)[0]
	for _, timeout := range []bool{false, true} {
		t.Run(fmt.Sprintf("timeout=%v", timeout), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				gate := make(chan struct{})
				var held atomic.Bool
				knobs := &LocalKnobs{BeforeForward: func(context.Context, *Batch) {
					if held.CompareAndSwap(false, true) {
						<-gate
					}
				}}
				ls := locals(t, f, []int{0, 5}, false, LocalConfig{Knobs: knobs})
				cfg := DriverConfig{Sched: sched.Config{MaxSeqs: 1}}
				if timeout {
					cfg.Sched.QueueTimeout, cfg.TickInterval = 3, time.Second
				}
				d := newDriver(t, asStages(ls), cfg)
				ctx, stop := context.WithCancel(context.Background())
				ran := make(chan error)
				go func() { ran <- d.Run(ctx) }()

				first := make(chan error)
				go func() {
					_, err := generate(t, context.Background(), d, req)
					first <- err
				}()
				synctest.Wait() // the first request is held in stage 0
				cctx, cancel := context.WithCancel(context.Background())
				second := make(chan error)
				start := time.Now()
				go func() {
					_, err := generate(t, cctx, d, req)
					second <- err
				}()
				synctest.Wait()
				if st := d.Stats(); st.Queued != 1 || st.Running != 1 {
					t.Errorf("stats %+v, want one queued, one running", st.Stats)
				}
				want := context.Canceled
				if timeout {
					want = ErrQueueTimeout
				} else {
					cancel()
				}
				if err := <-second; !errors.Is(err, want) {
					t.Errorf("queued request: %v, want %v", err, want)
				}
				if timeout && time.Since(start) < 3*time.Second {
					t.Errorf("timed out after %v", time.Since(start))
				}
				close(gate)
				if err := <-first; err != nil {
					t.Errorf("first request: %v", err)
				}
				cancel()
				stop()
				if err := <-ran; err != nil {
					t.Error(err)
				}
				checkNoSessions(t, ls)
			})
		})
	}
}

// TestDriverOverlap shows micro-batches in flight at once: stage 1 is held
// inside micro-batch 1 (a knob) while stage 0 works on micro-batch 2.
// Channels tell the test when each stage is inside its batch; no sleeps.
func TestDriverOverlap(t *testing.T) {
	reqs := storiesRequests(t, 4)[:2]
	want := engineTokens(t, reqs)
	release := make(chan struct{})
	in0, in1 := make(chan uint64, 1), make(chan uint64, 1)
	var calls0, calls1 atomic.Int32
	hold := func(calls *atomic.Int32, nth int32, in chan uint64) *LocalKnobs {
		return &LocalKnobs{BeforeForward: func(_ context.Context, b *Batch) {
			if calls.Add(1) == nth {
				in <- b.Num
				<-release
			}
		}}
	}
	f := openFile(t, testdataPath(t, stories))
	ls := []*Local{
		NewLocal(load(t, f, 0, 3, false), LocalConfig{Knobs: hold(&calls0, 2, in0)}),
		NewLocal(load(t, f, 3, 5, false), LocalConfig{Knobs: hold(&calls1, 1, in1)}),
	}
	d := run(t, newDriver(t, asStages(ls), DriverConfig{}))
	var got [][]int
	done := make(chan struct{})
	go func() {
		got = generateAll(t, d, reqs)
		close(done)
	}()
	n1, n0 := recv(t, in1), recv(t, in0)
	t.Logf("stage 0 is inside micro-batch %d while stage 1 is inside micro-batch %d", n0, n1)
	if n0 <= n1 {
		t.Errorf("stage 0 holds batch %d, stage 1 batch %d", n0, n1)
	}
	close(release)
	<-done
	checkSame(t, "overlapped", got, want)
}

func recv(t *testing.T, c <-chan uint64) uint64 {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(time.Minute):
		t.Fatal("no micro-batch reached the stage: the stages do not overlap")
		return 0
	}
}

// flaky is a stage that fails the batches fail says, and otherwise passes
// them to Stage.
type flaky struct {
	Stage
	fail func(b *Batch) bool
}

var errFlaky = errors.New("peer reset")

func (f *flaky) Forward(ctx context.Context, b *Batch) (*Batch, error) {
	if f.fail(b) {
		return nil, errFlaky
	}
	return f.Stage.Forward(ctx, b)
}

// TestDriverStageError checks that a stage failing a whole batch fails its
// sequences with a StageError naming the stage, frees their sessions on
// the other stages, and that the driver goes on.
func TestDriverStageError(t *testing.T) {
	reqs := storiesRequests(t, 6)[:2]
	want := engineTokens(t, reqs)
	f := openFile(t, testdataPath(t, stories))
	ls := locals(t, f, []int{0, 2, 5}, false, LocalConfig{})
	var failAt atomic.Int32 // stage index +1 to fail the next batch in
	stages := asStages(ls)
	for i := range stages {
		stages[i] = &flaky{Stage: stages[i], fail: func(*Batch) bool { return failAt.CompareAndSwap(int32(i+1), 0) }}
	}
	d := run(t, newDriver(t, stages, DriverConfig{}))
	for i := range stages {
		failAt.Store(int32(i + 1))
		_, err := generate(t, context.Background(), d, reqs[0])
		var se *StageError
		if !errors.As(err, &se) || se.Index != i || !errors.Is(err, errFlaky) {
			t.Errorf("failing stage %d: %v", i, err)
		}
		checkNoSessions(t, ls)
	}
	checkSame(t, "after failures", generateAll(t, d, reqs), want)
}

// TestDriverStops checks that ending Run's ctx fails the generations in
// flight with ErrStopped, ends their sessions on every stage, and leaves no
// goroutine behind.
func TestDriverStops(t *testing.T) {
	f := openFile(t, testdataPath(t, stories))
	base := runtime.NumGoroutine()
	entered := make(chan uint64, 1)
	var once sync.Once
	knobs := &LocalKnobs{BeforeForward: func(ctx context.Context, b *Batch) {
		once.Do(func() {
			entered <- b.Num
			<-ctx.Done() // held until Run's ctx ends
		})
	}}
	ls := []*Local{
		NewLocal(load(t, f, 0, 2, false), LocalConfig{}),
		NewLocal(load(t, f, 2, 5, false), LocalConfig{Knobs: knobs}),
	}
	d := newDriver(t, asStages(ls), DriverConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error)
	go func() { ran <- d.Run(ctx) }()
	req := storiesRequests(t, 8)[0]
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := generate(t, context.Background(), d, req)
			errs <- err
		}()
	}
	recv(t, entered)
	cancel()
	if err := <-ran; err != nil {
		t.Errorf("Run: %v", err)
	}
	for range 3 {
		if err := <-errs; !errors.Is(err, ErrStopped) {
			t.Errorf("generation in flight: %v", err)
		}
	}
	checkNoSessions(t, ls)
	if _, err := d.Generate(context.Background(), req, func(int) error { return nil }); !errors.Is(err, ErrStopped) {
		t.Errorf("Generate after Run: %v", err)
	}
	if err := d.Run(context.Background()); err == nil {
		t.Error("Run ran twice")
	}
	// Goroutines that have sent their last value may still be exiting:
	// yield until they are gone, for a few seconds at most.
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > base; {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
	}
}

// TestDriverInvalid checks the requests a Driver refuses.
func TestDriverInvalid(t *testing.T) {
	if _, err := NewDriver(nil, DriverConfig{}); err == nil {
		t.Error("NewDriver accepted no stages")
	}
	f := openFile(t, testdataPath(t, stories))
	ls := locals(t, f, []int{0, 5}, false, LocalConfig{})
	if _, err := NewDriver(asStages(ls), DriverConfig{Codec: wire.Codec{DType: wire.F32, Shuffle: true}}); err == nil {
		t.Error("NewDriver accepted shuffle without zstd")
	}
	if _, err := NewDriver(asStages(ls), DriverConfig{Sched: sched.Config{MaxSeqs: -1}}); err == nil {
		t.Error("NewDriver accepted MaxSeqs -1")
	}
	d := run(t, newDriver(t, asStages(ls), DriverConfig{}))
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		req  TokenRequest
		err  error
	}{
		{"sampling", TokenRequest{Prompt: []int{1}, MaxTokens: 2, Sample: sample.Params{TopP: 2}}, sample.ErrInvalidParams},
		{"empty prompt", TokenRequest{MaxTokens: 2}, sched.ErrInvalid},
		{"no max tokens", TokenRequest{Prompt: []int{1}}, sched.ErrInvalid},
		{"token", TokenRequest{Prompt: []int{1, 9999}, MaxTokens: 2}, ErrBadToken},
	} {
		if _, err := generate(t, ctx, d, tc.req); !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
	checkNoSessions(t, ls)
}

// overlapped is a ConcurrentStage over a Chain: it takes width
// micro-batches at once, each waiting a (bubble) time that depends on its
// number before it runs through the chain, so that later micro-batches
// overtake earlier ones. It counts the micro-batches in it at once, and
// those that came back before one launched earlier.
type overlapped struct {
	*Chain
	width int

	mu        sync.Mutex
	in        map[uint64]bool // micro-batches inside
	most      int
	overtakes int
}

func (o *overlapped) MaxInFlight() int { return o.width }

func (o *overlapped) Forward(ctx context.Context, b *Batch) (*Batch, error) {
	num := b.Num
	o.mu.Lock()
	o.in[num] = true
	o.most = max(o.most, len(o.in))
	o.mu.Unlock()
	time.Sleep(time.Duration(1+(num*7)%5) * time.Millisecond)
	out, err := o.Chain.Forward(ctx, b)
	o.mu.Lock()
	delete(o.in, num)
	for n := range o.in {
		if n < num {
			o.overtakes++
			break
		}
	}
	o.mu.Unlock()
	return out, err
}

// TestDriverConcurrentStage drives the reference prompts through one
// ConcurrentStage that takes 3 micro-batches at once and returns them out
// of order: the scheduler is sized for it, micro-batches overlap inside
// it, and the greedy tokens are those of the single-sequence Engine.
func TestDriverConcurrentStage(t *testing.T) {
	reqs := storiesRequests(t, 8)
	want := engineTokens(t, reqs)
	f := openFile(t, testdataPath(t, stories))
	synctest.Test(t, func(t *testing.T) {
		ls := locals(t, f, []int{0, 2, 4, 5}, false, LocalConfig{})
		ch, err := NewChain(wire.Lossless, asStages(ls)...)
		if err != nil {
			t.Fatal(err)
		}
		o := &overlapped{Chain: ch, width: 3, in: map[uint64]bool{}}
		d := newDriver(t, []Stage{o}, DriverConfig{})
		if sc := d.SchedConfig(); sc.Stages != 3 || sc.MaxInFlight != 3 {
			t.Errorf("scheduler of %d stages, %d in flight; want 3, 3", sc.Stages, sc.MaxInFlight)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		got := generateAll(t, d, reqs)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		checkSame(t, "concurrent stage", got, want)
		checkNoSessions(t, ls)
		t.Logf("up to %d micro-batches in the stage at once, %d came back before an earlier one", o.most, o.overtakes)
		if o.most < 2 || o.overtakes == 0 {
			t.Errorf("up to %d micro-batches at once, %d out of order: the stage did not overlap them", o.most, o.overtakes)
		}
	})
}

// TestDriverConstraint: a sequence under a constraint gets only the tokens
// it allows, and ends with an end-of-generation token as soon as
// sample.JSON finds the object whole: here the constraint also holds the
// text to one object, greedy and sampled. A constraint that allows nothing
// fails the sequence with ErrConstraint, and the driver goes on.
func TestDriverConstraint(t *testing.T) {
	// stories260K's sentencepiece vocabulary, and the byte-level BPE of
	// the synthetic qwen2 and llama3-style models.
	for _, file := range []string{stories, "models/synth-qwen2.gguf", "models/synth-llama3.gguf"} {
		t.Run(file, func(t *testing.T) { testDriverConstraint(t, file) })
	}
}

func testDriverConstraint(t *testing.T, file string) {
	f := openFile(t, testdataPath(t, file))
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := f.Uint(f.Architecture() + ".block_count")
	ls := []*Local{NewLocal(load(t, f, 0, int(layers), false), LocalConfig{})}
	d := run(t, newDriver(t, asStages(ls), DriverConfig{IsEOG: tok.IsEOG}))
	piece := func(id int) []byte {
		if tok.TokenType(id) == tokenizer.TypeControl {
			return nil
		}
		return tok.Piece(id)
	}
	prompt := tok.Encode("Once upon a time", true, false)
	const want = `{"name": "Lily", "age": 3}`
	for _, temp := range []float32{0, 1} {
		c := &spelling{JSON: sample.NewJSON(piece, tok.IsEOG), piece: piece, text: want}
		res, err := generate(t, context.Background(), d, TokenRequest{Prompt: prompt, MaxTokens: 64,
			Sample: sample.Params{Temperature: temp, Seed: 5}, Constraint: c})
		if err != nil {
			t.Fatal(err)
		}
		n := len(res.Tokens)
		var got []byte
		for _, id := range res.Tokens[:max(n-1, 0)] {
			got = append(got, piece(id)...)
		}
		if string(got) != want || n == 0 || !tok.IsEOG(res.Tokens[n-1]) || res.FinishReason != FinishStop {
			t.Errorf("temperature %v: %q then %v (%s), want %q and end of generation", temp, got, res.Tokens[max(n-1, 0):], res.FinishReason, want)
		}
	}
	if _, err := generate(t, context.Background(), d, TokenRequest{Prompt: prompt, MaxTokens: 8, Constraint: refuseAll{}}); !errors.Is(err, ErrConstraint) {
		t.Errorf("a constraint allowing nothing: %v, want ErrConstraint", err)
	}
	if _, err := generate(t, context.Background(), d, TokenRequest{Prompt: prompt, MaxTokens: 2}); err != nil {
		t.Errorf("after a failed constraint: %v", err)
	}
}

// spelling is sample.JSON held to one text.
type spelling struct {
	*sample.JSON
	piece func(int) []byte
	text  string
	at    int
}

func (s *spelling) Allowed(id int) bool {
	p := s.piece(id)
	return s.JSON.Allowed(id) && strings.HasPrefix(s.text[s.at:], string(p))
}

func (s *spelling) Accept(id int) {
	s.JSON.Accept(id)
	s.at += len(s.piece(id))
}

type refuseAll struct{}

func (refuseAll) Allowed(int) bool { return false }
func (refuseAll) Accept(int)       {}

// TestDriversShareStages runs two drivers (two gateways) over the same
// stages at once: their sessions must not meet on the stages.
func TestDriversShareStages(t *testing.T) {
	reqs := storiesRequests(t, 8)
	want := engineTokens(t, reqs)
	f := openFile(t, testdataPath(t, stories))
	ls := locals(t, f, []int{0, 3, 5}, false, LocalConfig{})
	a := run(t, newDriver(t, asStages(ls), DriverConfig{}))
	b := run(t, newDriver(t, asStages(ls), DriverConfig{}))
	var wg sync.WaitGroup
	var got [2][][]int
	for i, d := range []*Driver{a, b} {
		wg.Go(func() { got[i] = generateAll(t, d, reqs) })
	}
	wg.Wait()
	checkSame(t, "gateway a", got[0], want)
	checkSame(t, "gateway b", got[1], want)
}

package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-llm/strata/pipeline/sample"
	"github.com/strata-llm/strata/pipeline/sched"
	"github.com/strata-llm/strata/pipeline/wire"
)

// DriverConfig configures a Driver. The zero value works.
type DriverConfig struct {
	// Sched sizes the scheduler. Stages defaults to the number of
	// micro-batches the stages take at once (one a stage, MaxInFlight for
	// a ConcurrentStage), and MaxInFlight to Stages: one micro-batch in
	// every stage at once. A MaxInFlight set below a ConcurrentStage's
	// leaves some of its workers idle.
	Sched sched.Config
	// Codec carries the activations between consecutive stages, encoded
	// and decoded as the network would. The zero value is wire.Lossless.
	Codec wire.Codec
	// IsEOG reports the end-of-generation tokens (a tokenizer's IsEOG),
	// which finish a sequence unless its request says IgnoreEOS; nil: none.
	IsEOG func(token int) bool
	// ContextLength, when positive, is the default bound of prompt plus
	// generated tokens of a request that sets no MaxTokens; without it such
	// a request is refused.
	ContextLength int
	// TickInterval is how often the scheduler ticks when
	// Sched.QueueTimeout (counted in ticks) is set; 0 means 100ms.
	TickInterval time.Duration
	Logger       *slog.Logger // nil: slog.Default()
	// StagesCarry says the stages move activations between themselves
	// (RemoteStages, which encode them on the wire): the Driver then does
	// not encode and decode them again between stages, and Stats().Hops
	// stays zero.
	StagesCarry bool
	// ObserveStage, when set, is told how long each Forward of stage i
	// took (for metrics); it is called from the stages' goroutines.
	ObserveStage func(i int, d time.Duration)
	// PrefixCache, when positive, keeps the sessions of finished sequences
	// on the stages, holding that many positions at most in all (least
	// recently used out first), so that a request whose prompt begins
	// with the tokens of one, or of a sequence still running, forks its
	// session (Seq.From) and computes only the rest: the next turn of a
	// chat, a shared system prompt. Every stage must support forks. A
	// session ending because of it counts against no one; a fork that
	// finds its session gone (ErrNoSource) runs again from the first
	// token, and a sequence that runs out of KV budget empties the cache
	// (and, if it had generated nothing yet, runs again once). 0: every
	// session is freed when its sequence ends.
	PrefixCache int
}

// ConcurrentStage is a Stage that takes several micro-batches at once: up
// to MaxInFlight goroutines may call its Forward together, each with a
// different micro-batch (End is called as for any Stage). A stage that
// spans several stages, each busy with a different micro-batch, is one: a
// route of remote stages that forward to one another. A Driver runs
// MaxInFlight workers for it, and its micro-batches may come back out of
// the order they went in.
type ConcurrentStage interface {
	Stage
	MaxInFlight() int
}

// width is the number of micro-batches s takes at once.
func width(s Stage) int {
	if c, ok := s.(ConcurrentStage); ok {
		return max(c.MaxInFlight(), 1)
	}
	return 1
}

// TokenRequest is one generation, in token ids.
type TokenRequest struct {
	Prompt    []int         // at least one token id; not retained after Generate returns
	MaxTokens int           // tokens to generate at most; 0: up to the ContextLength
	Sample    sample.Params // zero: greedy
	IgnoreEOS bool          // keep generating past end-of-generation tokens
	// Logprobs asks for each token's log-probability (Token.Logprob), and
	// TopLogprobs (0 to 20) for that many of the most likely tokens at its
	// position (Token.Top), both under the model's raw distribution.
	Logprobs    bool
	TopLogprobs int
	// Constraint, when not nil, limits the tokens sampled (structured
	// output, such as sample.JSON); it belongs to this request alone. A
	// sequence it leaves no token for fails with ErrConstraint.
	Constraint sample.Constraint
}

// ErrConstraint fails a sequence whose Constraint allows no token at all.
var ErrConstraint = errors.New("pipeline: the output constraint allows no next token")

// Token is one generated token as GenerateTokens emits it.
type Token struct {
	ID      int
	Cached  int                // on the first token: the prompt tokens taken from a cached session (TokenResult.Cached)
	Logprob float32            // set when TokenRequest.Logprobs
	Top     []sample.Candidate // set when TokenRequest.TopLogprobs > 0; owned by the receiver
}

// TokenResult sums up a finished generation.
type TokenResult struct {
	Tokens       []int  // the ids emitted, in order, the stopping one included
	FinishReason string // FinishLength or FinishStop
	Cached       int    // prompt tokens taken from a cached session (DriverConfig.PrefixCache)
}

var (
	// ErrStop is what an emit function returns to end its generation there,
	// as a stop string would: Generate then returns nil with FinishStop. The
	// pipeline may have computed a token more, which is dropped.
	ErrStop = errors.New("stop generating")
	// ErrStopped is returned by Generate when the Driver's Run has ended.
	ErrStopped = errors.New("pipeline: driver stopped")
	// ErrQueueTimeout is returned by Generate when the request waited
	// Sched.QueueTimeout ticks without being admitted.
	ErrQueueTimeout = errors.New("pipeline: request timed out in the queue")
)

// Driver generates for many sequences at once through a pipeline of
// stages: the gateway's loop. It owns a continuous-batching scheduler
// (pipeline/sched), samples every sequence's next token with its own
// sampler, and runs one goroutine per stage, linked by bounded channels, so
// that micro-batches flow through the stages concurrently: while stage i
// works on micro-batch j, stage i+1 works on micro-batch j-1. A
// ConcurrentStage gets MaxInFlight goroutines, pulling from one channel,
// so that micro-batches overlap inside it (a route whose stages forward to
// one another); they come back in any order, and are matched to what was
// launched by their number.
//
// Run is the loop; Generate, safe for many concurrent callers, submits a
// request and streams its tokens. When a caller's ctx ends, its sequence is
// cancelled and its KV caches freed on every stage before Generate returns.
// When Run's ctx ends, every stage goroutine is waited for, every session is
// ended on every stage, and pending Generate calls return ErrStopped.
type Driver struct {
	stages []Stage
	names  []string
	widths []int        // widths[i]: the workers of stage i
	hops   []hop        // hops[i] carries stage i's output to stage i+1
	hopMu  []sync.Mutex // hopMu[i] serialises hops[i] among stage i's workers
	cfg    DriverConfig
	sch    *sched.Scheduler
	log    *slog.Logger

	ids     atomic.Uint64 // the last sequence ID handed out
	prefix  *prefixCache  // nil: no prefix cache; owned by Run's goroutine
	started atomic.Bool
	done    chan struct{} // closed when Run has cleaned up

	// The inbox: what Generate calls tell the loop, taken all at once so
	// that the scheduler sees a burst of requests together.
	mu      sync.Mutex
	submits []*gen // not yet taken by the loop
	cancels []*gen // taken, to cancel
	closed  bool   // Run has ended: nothing more is taken
	wake    chan struct{}

	statsMu sync.Mutex
	stats   sched.Stats
	pstats  PrefixStats

	// Owned by Run's goroutine.
	gens    map[sched.SeqID]*gen
	flights map[uint64][]sched.SeqID // the sequences of each micro-batch in flight
	spare   [][]sched.SeqID
	free    []*Batch
	results []sched.Result
	ended   []uint64
	kept    []uint64
	waiting map[sched.SeqID][]waiter // by leader: requests waiting for its prompt (await)
}

// item is a micro-batch on its way through the stage goroutines.
type item struct {
	num uint64
	b   *Batch
	err error // a stage failed the batch; the later stages pass it on
}

// gen is the state of one Generate call.
type gen struct {
	id  sched.SeqID
	req TokenRequest
	max int

	// Owned by Run's goroutine.
	smp      *sample.Sampler
	history  []int          // (prompt + generated) for the penalties
	admitted bool           // its first chunk was launched: it has sessions to release
	logprobs []tokenLogprob // of sampled tokens the scheduler has not yet emitted
	finished bool
	fin      sched.Finish
	kv       int         // positions every stage holds for it (its first kv tokens of history)
	from     uint64      // the session its first chunk forks, 0: none
	cached   int         // prompt tokens it takes from that session
	retry    bool        // run it again, unforked, once it is released
	retried  bool        // it runs again: no second try, no fork
	leader   sched.SeqID // while it waits for that sequence's prompt (await)

	mu     sync.Mutex
	tokens []Token // sampled, not yet taken by Generate
	end    *ended  // how it ended, once its sessions are freed
	notify chan struct{}
}

// tokenLogprob is what a sampled token's Token carries besides its id.
type tokenLogprob struct {
	lp  float32
	top []sample.Candidate
}

// logSumExp is log Σ exp(x), in float64, for log-softmax values.
func logSumExp(x []float32) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v))
	}
	if math.IsInf(m, 0) {
		return m
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s)
}

type ended struct {
	reason sched.Reason
	err    error
}

func (g *gen) push(tok Token) {
	g.mu.Lock()
	g.tokens = append(g.tokens, tok)
	g.mu.Unlock()
	g.signal()
}

func (g *gen) complete(reason sched.Reason, err error) {
	g.mu.Lock()
	if g.end == nil {
		g.end = &ended{reason, err}
	}
	g.mu.Unlock()
	g.signal()
}

func (g *gen) signal() {
	select {
	case g.notify <- struct{}{}:
	default:
	}
}

// take appends the tokens not yet taken to dst and says how the generation
// ended, nil while it goes on.
func (g *gen) take(dst []Token) ([]Token, *ended) {
	g.mu.Lock()
	defer g.mu.Unlock()
	dst = append(dst, g.tokens...)
	g.tokens = g.tokens[:0]
	return dst, g.end
}

// NewDriver returns a Driver over stages, in order (at least one; the first
// starts at layer 0, the last ends at the last layer). Call Run to start it.
func NewDriver(stages []Stage, cfg DriverConfig) (*Driver, error) {
	if len(stages) == 0 {
		return nil, errors.New("driver: no stages")
	}
	if err := cfg.Codec.Validate(); err != nil {
		return nil, fmt.Errorf("driver: %w", err)
	}
	widths, total := make([]int, len(stages)), 0
	for i, s := range stages {
		widths[i] = width(s)
		total += widths[i]
	}
	if cfg.Sched.Stages == 0 {
		cfg.Sched.Stages = total
	}
	if cfg.PrefixCache > 0 {
		for i, s := range stages {
			if !Forks(s) {
				return nil, fmt.Errorf("driver: a prefix cache needs stages that take forked sessions; stage %d (%s) does not", i, stageName(s))
			}
		}
	}
	sch, err := sched.New(cfg.Sched)
	if err != nil {
		return nil, fmt.Errorf("driver: %w", err)
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 100 * time.Millisecond
	}
	d := &Driver{
		stages:  append([]Stage(nil), stages...),
		widths:  widths,
		hops:    make([]hop, len(stages)-1),
		hopMu:   make([]sync.Mutex, len(stages)-1),
		cfg:     cfg,
		sch:     sch,
		log:     cfg.Logger,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		gens:    make(map[sched.SeqID]*gen),
		flights: make(map[uint64][]sched.SeqID),
	}
	// Sessions are named on stages that several gateways share: each
	// Driver starts its IDs at a random point, below 2^62 (IDs with the
	// top bit set are left to the stages' other users).
	d.ids.Store(rand.Uint64N(1 << 61))
	if cfg.PrefixCache > 0 {
		d.prefix = newPrefixCache(cfg.PrefixCache)
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	for i, s := range stages {
		d.names = append(d.names, stageName(s))
		if i < len(d.hops) {
			d.hops[i].codec = cfg.Codec
		}
	}
	return d, nil
}

// SchedConfig returns the scheduler's configuration, defaults filled in.
func (d *Driver) SchedConfig() sched.Config { return d.sch.Config() }

// DriverStats is a snapshot of a Driver's load and counters.
type DriverStats struct {
	sched.Stats
	Hops   HopStats    // summed over the hops between stages
	Prefix PrefixStats // the prefix cache (DriverConfig.PrefixCache)
}

// Stats returns the scheduler's counters as of the end of the loop's last
// step, and the hops' counters now.
func (d *Driver) Stats() DriverStats {
	d.statsMu.Lock()
	st := DriverStats{Stats: d.stats, Prefix: d.pstats}
	d.statsMu.Unlock()
	for i := range d.hops {
		st.Hops.add(d.hops[i].stats())
	}
	return st
}

// Generate runs req through the pipeline, calling emit with each generated
// token id, in order, from the caller's goroutine. It returns when the
// sequence has finished and its KV caches are freed on every stage.
//
// emit returning ErrStop ends the generation with FinishStop (for a stop
// string); any other error ends it and is returned. When ctx ends, the
// sequence is cancelled and Generate returns ctx.Err(). A sequence that
// failed in a stage returns its error (a *SeqError, or a *StageError for a
// whole batch), the other sequences going on; scheduler refusals wrap
// sched.ErrQueueFull or sched.ErrInvalid. The returned result holds the
// tokens emitted so far in every case.
//
// Generate never blocks on the Driver's loop: it may be called before Run
// starts (the request waits for it) and from many goroutines at once.
func (d *Driver) Generate(ctx context.Context, req TokenRequest, emit func(token int) error) (TokenResult, error) {
	return d.GenerateTokens(ctx, req, func(t Token) error { return emit(t.ID) })
}

// GenerateTokens is Generate with each token's log-probabilities, as the
// request asks for them.
func (d *Driver) GenerateTokens(ctx context.Context, req TokenRequest, emit func(Token) error) (TokenResult, error) {
	var res TokenResult
	if req.TopLogprobs < 0 || req.TopLogprobs > 20 {
		return res, fmt.Errorf("%w: top_logprobs %d outside [0, 20]", sched.ErrInvalid, req.TopLogprobs)
	}
	if err := req.Sample.Validate(); err != nil {
		return res, err
	}
	n := req.MaxTokens
	if n <= 0 && d.cfg.ContextLength > 0 {
		n = max(d.cfg.ContextLength-len(req.Prompt), 1)
	}
	g := &gen{id: sched.SeqID(d.ids.Add(1)), req: req, max: n, notify: make(chan struct{}, 1)}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return res, ErrStopped
	}
	d.submits = append(d.submits, g)
	d.mu.Unlock()
	d.poke()

	var (
		cause     error // why Generate cancelled the sequence
		stopped   bool  // emit said ErrStop
		cancelled bool
		stop      bool // Run ended
		buf       []Token
	)
	ctxDone := ctx.Done()
	cancel := func(err error) {
		if cancelled {
			return
		}
		cancelled, cause = true, err
		d.mu.Lock()
		if i := slices.Index(d.submits, g); i >= 0 { // the loop never saw it
			d.submits = slices.Delete(d.submits, i, i+1)
			g.complete(sched.FinishCancelled, nil)
		} else if !d.closed {
			d.cancels = append(d.cancels, g)
		}
		d.mu.Unlock()
		d.poke()
	}
	for {
		select {
		case <-g.notify:
		case <-ctxDone:
			ctxDone = nil
			cancel(ctx.Err())
		case <-d.done:
			stop = true
		}
		var end *ended
		buf, end = g.take(buf[:0])
		for _, t := range buf {
			if err := ctx.Err(); err != nil {
				cancel(err)
			}
			if cancelled {
				break
			}
			res.Tokens = append(res.Tokens, t.ID)
			if err := emit(t); err != nil {
				if errors.Is(err, ErrStop) {
					stopped = true
					err = nil
				}
				cancel(err)
			}
		}
		switch {
		case end == nil && stop:
			return res, ErrStopped
		case end == nil:
			continue
		}
		res.Cached = g.cached
		switch {
		case stopped:
			res.FinishReason = FinishStop
			return res, nil
		case cause != nil:
			return res, cause
		case end.err != nil:
			return res, end.err
		}
		switch end.reason {
		case sched.FinishLength:
			res.FinishReason = FinishLength
		case sched.FinishStop:
			res.FinishReason = FinishStop
		case sched.FinishTimeout:
			return res, ErrQueueTimeout
		default:
			return res, fmt.Errorf("pipeline: generation ended: %v", end.reason)
		}
		return res, nil
	}
}

// Run drives the pipeline until ctx ends, then stops every stage
// goroutine, ends every open session on every stage and fails the pending
// Generate calls with ErrStopped. It returns nil then; it may be called
// once.
func (d *Driver) Run(ctx context.Context) error {
	if !d.started.CompareAndSwap(false, true) {
		return errors.New("driver: Run called twice")
	}
	// chans[i] feeds stage i; chans[len(stages)] brings micro-batches back.
	// Every channel holds MaxInFlight items, the most there can be, so no
	// send blocks.
	depth := d.sch.Config().MaxInFlight
	chans := make([]chan item, len(d.stages)+1)
	for i := range chans {
		chans[i] = make(chan item, depth)
	}
	var wg sync.WaitGroup
	for i := range d.stages {
		wg.Go(func() { d.stage(ctx, i, chans[i], chans[i+1]) })
	}
	defer d.shutdown(ctx, chans[0], &wg)

	var tick <-chan time.Time
	if d.sch.Config().QueueTimeout > 0 {
		t := time.NewTicker(d.cfg.TickInterval)
		defer t.Stop()
		tick = t.C
	}
	back := chans[len(d.stages)]
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
			d.takeInbox()
		case it := <-back:
			if ctx.Err() != nil {
				// Stopping: a batch that failed because ctx ended must
				// not fail its sequences with that; shutdown ends them
				// all with ErrStopped.
				return nil
			}
			d.onResult(it)
		case <-tick:
			d.sch.Tick()
		}
		d.ready(ctx)
		d.launch(chans[0])
		d.snapshot()
	}
}

// snapshot publishes the scheduler's counters for Stats.
func (d *Driver) snapshot() {
	st := d.sch.Stats()
	var ps PrefixStats
	if d.prefix != nil {
		ps = d.prefix.stats()
	}
	d.statsMu.Lock()
	d.stats, d.pstats = st, ps
	d.statsMu.Unlock()
}

// poke wakes the loop to take its inbox.
func (d *Driver) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// takeInbox submits every request and cancels every sequence that Generate
// calls have left in the inbox, in that order.
func (d *Driver) takeInbox() {
	d.mu.Lock()
	subs, cans := d.submits, d.cancels
	d.submits, d.cancels = nil, nil
	d.mu.Unlock()
	for _, g := range subs {
		d.onSubmit(g)
	}
	for _, g := range cans {
		if !d.unwait(g) {
			d.sch.Cancel(g.id)
		}
	}
}

// stage is the goroutine of stage i: it forwards the micro-batches from in,
// carries their activations over the hop to the next stage, and sends them
// on, with as many workers as the stage takes micro-batches at once. It
// returns when in is closed and its workers are done, closing out unless
// out is the loop's.
func (d *Driver) stage(ctx context.Context, i int, in <-chan item, out chan<- item) {
	if i < len(d.stages)-1 {
		defer close(out)
	}
	if d.widths[i] == 1 {
		d.work(ctx, i, in, out)
		return
	}
	var wg sync.WaitGroup
	for range d.widths[i] {
		wg.Go(func() { d.work(ctx, i, in, out) })
	}
	wg.Wait()
}

// work is a worker of stage i: see stage.
func (d *Driver) work(ctx context.Context, i int, in <-chan item, out chan<- item) {
	last := i == len(d.stages)-1
	for it := range in {
		if it.err == nil {
			start := time.Now()
			b, err := d.stages[i].Forward(ctx, it.b)
			if d.cfg.ObserveStage != nil {
				d.cfg.ObserveStage(i, time.Since(start))
			}
			if err == nil && !last && !d.cfg.StagesCarry {
				d.hopMu[i].Lock()
				err = d.hops[i].apply(b)
				d.hopMu[i].Unlock()
			}
			if err != nil {
				it.b, it.err = nil, &StageError{Index: i, Name: d.names[i], Err: err}
			} else {
				it.b = b
			}
		}
		out <- it
	}
}

// shutdown stops the stage goroutines, ends every session and fails the
// pending generations.
func (d *Driver) shutdown(ctx context.Context, first chan item, wg *sync.WaitGroup) {
	close(first)
	wg.Wait()
	ids := d.ended[:0]
	for id, g := range d.gens {
		if g.admitted {
			ids = append(ids, uint64(id))
		}
	}
	if d.prefix != nil {
		ids = d.prefix.sessions(ids)
	}
	if len(ids) > 0 {
		d.endSessions(context.WithoutCancel(ctx), ids)
	}
	for id, g := range d.gens {
		g.complete(0, ErrStopped)
		delete(d.gens, id)
	}
	for lead, ws := range d.waiting {
		for _, w := range ws {
			w.g.complete(0, ErrStopped)
		}
		delete(d.waiting, lead)
	}
	d.mu.Lock()
	d.closed = true
	for _, g := range d.submits {
		g.complete(0, ErrStopped)
	}
	d.submits, d.cancels = nil, nil
	d.mu.Unlock()
	close(d.done)
}

// onSubmit hands g to the scheduler.
func (d *Driver) onSubmit(g *gen) {
	g.smp = sample.New(g.req.Sample)
	g.history = append(make([]int, 0, len(g.req.Prompt)+min(g.max, 256)), g.req.Prompt...)
	r := sched.Request{ID: g.id, Prompt: g.req.Prompt, MaxTokens: g.max}
	if d.prefix != nil && !g.retried {
		from, n := d.source(g.req.Prompt)
		if d.await(g, n) {
			return
		}
		if n > 0 {
			r.Cached, r.From = n, sched.SeqID(from)
		}
	}
	if err := d.sch.Submit(r); err != nil {
		g.complete(sched.FinishError, err)
		return
	}
	if r.Cached > 0 {
		g.from, g.cached = uint64(r.From), r.Cached
		d.prefix.pin(g.from)
	}
	d.gens[g.id] = g
}

// launch sends the scheduler's next micro-batches into the first stage.
func (d *Driver) launch(first chan<- item) {
	for {
		mb, ok := d.sch.Next()
		if !ok {
			return
		}
		b := d.batch()
		b.Num = mb.Num
		ids := d.seqIDs()
		for _, c := range mb.Chunks {
			b.AddSeq(Seq{ID: uint64(c.ID), Pos: c.Pos, Logits: c.Logits, Open: c.Open, From: uint64(c.From)}, c.Tokens)
			ids = append(ids, c.ID)
			if g := d.gens[c.ID]; c.Open && g != nil {
				g.admitted = true
			}
		}
		d.flights[mb.Num] = ids
		first <- item{num: mb.Num, b: b}
	}
}

// onResult samples the tokens of a micro-batch back from the last stage and
// reports them to the scheduler.
func (d *Driver) onResult(it item) {
	ids := d.flights[it.num]
	delete(d.flights, it.num)
	res := d.results[:0]
	err := it.err
	if err == nil {
		for _, s := range it.b.Seqs {
			g := d.gens[sched.SeqID(s.ID)]
			if g == nil {
				continue
			}
			if g.from != 0 && g.kv == 0 { // the fork went through
				d.prefix.hits++
				d.prefix.tokens += uint64(g.cached)
			}
			g.kv = s.Pos + s.N
		}
		res, err = d.sample(it.b, res)
	}
	if err != nil {
		res = failAll(res[:0], ids, err)
	}
	if derr := d.sch.Done(it.num, res); derr != nil {
		d.log.Error("a stage returned a batch that does not match the one sent", "batch", it.num, "err", derr)
		if derr = d.sch.Done(it.num, failAll(res[:0], ids, derr)); derr != nil {
			d.log.Error("scheduler refused a batch's failure", "batch", it.num, "err", derr)
		}
	}
	clear(res)
	d.results = res[:0]
	if len(d.waiting) > 0 {
		for _, id := range ids {
			if g := d.gens[id]; g != nil {
				d.release(id, g.kv)
			}
		}
	}
	d.spare = append(d.spare, ids[:0])
	if it.b != nil {
		d.free = append(d.free, it.b)
	}
}

func failAll(res []sched.Result, ids []sched.SeqID, err error) []sched.Result {
	for _, id := range ids {
		res = append(res, sched.Result{ID: id, Err: err})
	}
	return res
}

// sample draws the next token of every sequence of b that wanted logits
// and reports the sequences that failed in a stage.
func (d *Driver) sample(b *Batch, res []sched.Result) ([]sched.Result, error) {
	for _, f := range b.Failed {
		res = append(res, sched.Result{ID: sched.SeqID(f.ID), Err: &f})
	}
	k := 0
	for _, s := range b.Seqs {
		if !s.Logits {
			continue
		}
		if b.Vocab <= 0 || len(b.Logits) < (k+1)*b.Vocab {
			return res, fmt.Errorf("%w: no logits for sequence %d (%d logits of %d columns)", ErrBadBatch, s.ID, len(b.Logits), b.Vocab)
		}
		row := b.LogitsRow(k)
		k++
		g := d.gens[sched.SeqID(s.ID)]
		if g == nil || g.finished {
			continue // cancelled meanwhile: the scheduler ignores it
		}
		tok := g.smp.SampleAllowed(row, g.history, g.req.Constraint)
		if tok < 0 {
			res = append(res, sched.Result{ID: sched.SeqID(s.ID), Err: ErrConstraint})
			continue
		}
		if g.req.Constraint != nil {
			g.req.Constraint.Accept(tok)
		}
		g.history = append(g.history, tok)
		if g.req.Logprobs || g.req.TopLogprobs > 0 {
			lp := tokenLogprob{lp: float32(float64(row[tok]) - logSumExp(row))}
			if g.req.TopLogprobs > 0 {
				lp.top = sample.TopLogprobs(row, g.req.TopLogprobs, nil)
			}
			g.logprobs = append(g.logprobs, lp)
		}
		stop := !g.req.IgnoreEOS && d.cfg.IsEOG != nil && d.cfg.IsEOG(tok)
		res = append(res, sched.Result{ID: sched.SeqID(s.ID), Token: tok, Stop: stop})
	}
	return res, nil
}

// ready acts on the scheduler's events: streams the tokens, records the
// finished sequences, frees the released ones' sessions on every stage and
// then completes their Generate calls.
func (d *Driver) ready(ctx context.Context) {
	if !d.sch.HasReady() {
		return
	}
	rd := d.sch.Ready()
	d.snapshot() // before any Generate returns, so its caller sees it finished
	for _, t := range rd.Tokens {
		if g := d.gens[t.ID]; g != nil {
			tok := Token{ID: t.Token}
			if t.Index == 0 {
				tok.Cached = g.cached
			}
			if len(g.logprobs) > 0 {
				tok.Logprob, tok.Top = g.logprobs[0].lp, g.logprobs[0].top
				g.logprobs = g.logprobs[1:]
			}
			g.push(tok)
		}
	}
	ids := d.ended[:0]
	for _, f := range rd.Finished {
		g := d.gens[f.ID]
		if g == nil {
			continue
		}
		g.finished, g.fin = true, f
		if d.prefix != nil && f.Err != nil {
			ids = d.prefixFailure(g, f, ids)
		}
		d.release(f.ID, math.MaxInt)
		if !g.admitted { // never left the queue: nothing to release
			delete(d.gens, f.ID)
			ids = d.unpin(g, ids)
			g.complete(f.Reason, f.Err)
		}
	}
	kept := d.kept[:0]
	for _, id := range rd.Release {
		g := d.gens[id]
		if g == nil {
			ids = append(ids, uint64(id))
			continue
		}
		ids = d.unpin(g, ids)
		if d.prefix != nil && g.fin.Err == nil && !g.retry {
			if ids = d.prefix.keep(uint64(id), slices.Clone(g.history[:g.kv]), ids); !slices.Contains(ids, uint64(id)) {
				kept = append(kept, uint64(id))
			}
		} else {
			ids = append(ids, uint64(id))
		}
	}
	if len(kept) > 0 {
		for _, s := range d.stages {
			if k, ok := s.(Keeper); ok {
				k.Keep(kept)
			}
		}
	}
	d.kept = kept[:0]
	if len(ids) > 0 {
		d.endSessions(ctx, ids)
	}
	d.ended = ids[:0]
	for _, id := range rd.Release {
		g := d.gens[id]
		if g == nil {
			continue
		}
		delete(d.gens, id)
		if g.retry {
			d.again(g)
			continue
		}
		g.complete(g.fin.Reason, g.fin.Err)
	}
}

// endSessions ends ids on every stage, logging failures: a stage that
// cannot free a session frees it when it idles out.
func (d *Driver) endSessions(ctx context.Context, ids []uint64) {
	for i, s := range d.stages {
		if err := s.End(ctx, ids); err != nil {
			d.log.Warn("ending sessions failed", "stage", i, "seqs", ids, "err", err)
		}
	}
}

// batch returns an empty Batch, reusing a returned one.
func (d *Driver) batch() *Batch {
	if n := len(d.free); n > 0 {
		b := d.free[n-1]
		d.free = d.free[:n-1]
		b.Reset()
		return b
	}
	return new(Batch)
}

func (d *Driver) seqIDs() []sched.SeqID {
	if n := len(d.spare); n > 0 {
		s := d.spare[n-1]
		d.spare = d.spare[:n-1]
		return s
	}
	return nil
}

package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/strata-llm/strata/cluster"
	"github.com/strata-llm/strata/node/p2p"
	"github.com/strata-llm/strata/pipeline"
)

// ErrNoRoute: no chain of serving stages covers the model, and none came
// within the failover time.
var ErrNoRoute = errors.New("no route covers the model")

// suspectFor is how long a peer whose hop failed is left out of routes,
// unless the map changes its state first.
const suspectFor = 10 * time.Second

// routeInFlight is how many micro-batches a gateway keeps in flight along
// its route, so that the stages work on different ones at once.
const routeInFlight = 4

// routeStage is a gateway's one pipeline.Stage over the cluster: it runs
// each micro-batch along a route of the map — this member's own stage in
// process, the others as chained routes (each stage forwards to the next,
// the last returns the logits here) — and keeps every live sequence's
// tokens. When a hop fails (its peer died, or its assignment moved) it
// picks a new route, ends the sequences' sessions on it, replays their
// tokens through it to rebuild the KV caches, and runs the micro-batch
// again: the client sees a pause, not an error.
//
// Several micro-batches run at once (MaxInFlight); a change of route waits
// for those on the old one to finish, so that the replay sees every token.
// End may be called from any goroutine.
type routeStage struct {
	m        *Member
	failover time.Duration

	rw    sync.RWMutex // read: a micro-batch on the route; write: changing it
	route *liveRoute   // nil: none
	gen   uint64       // counts route changes
	fresh bool         // the route's sessions hold every sequence of hist
	cur   atomic.Pointer[liveRoute]

	mu      sync.Mutex // guards hist and suspect
	hist    map[uint64]*history
	suspect map[string]time.Time
}

// history is a live sequence's tokens, in the chunks they came in, so
// that a new route's stages can compute its KV cache again exactly as the
// old one's did: the same tokens in the same chunks (the kernels' results
// may depend on how many rows a batch holds). A forked session's history
// starts with the one it forked, as it was then.
type history struct {
	base   *history // the session forked, as it was: nil when none
	at     int      // the positions taken from base
	chunks [][]int  // the chunks the session computed, the first at position at
	kept   bool     // a prefix cache keeps the session: not replayed into a new route
}

// len is the positions h holds.
func (h *history) len() int {
	n := h.at
	for _, c := range h.chunks {
		n += len(c)
	}
	return n
}

// snapshot returns the history of h's first n positions (n at most
// h.len()), for a fork of h at n: the chunks that cover them, the last
// one whole (a fork copies positions from a session that computed that
// chunk whole).
func (h *history) snapshot(n int) *history {
	if h.base != nil && n <= h.at {
		return h.base.snapshot(n) // those positions are the base's, copied
	}
	s := &history{base: h.base, at: h.at}
	for have := h.at; have < n; {
		c := h.chunks[len(s.chunks)]
		s.chunks = append(s.chunks, c)
		have += len(c)
	}
	return s
}

// tokens appends the first n tokens of h to dst, or returns false when it
// holds fewer.
func (h *history) tokens(dst []int, n int) ([]int, bool) {
	if h.base != nil {
		var ok bool
		if dst, ok = h.base.tokens(dst, min(n, h.at)); !ok {
			return dst, false
		}
	}
	for _, c := range h.chunks {
		if len(dst) >= n {
			break
		}
		dst = append(dst, c[:min(len(c), n-len(dst))]...)
	}
	return dst, len(dst) == n
}

// liveRoute is a route the gateway drives: its assignments, and the
// stages that run them, in order.
type liveRoute struct {
	asg     []cluster.Assignment
	segs    []pipeline.Stage
	remotes []*p2p.RemoteRoute
	forks   bool // every segment takes forked sessions

	mu      sync.Mutex // guards epoch and changed
	epoch   uint64
	changed <-chan struct{} // closed when the map changes after epoch
}

// current reports whether the route still stands in the cluster map: the
// map has not changed since it was checked, or every assignment of the
// route is still in the new map and its node serving (valid), and then
// the route is checked against that map from now on. Most changes (a
// loading node's progress, a vote, a join) leave a route standing; the
// micro-batches in flight on it go on, and so do new ones.
func (lr *liveRoute) current(r *routeStage) bool {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if !isClosed(lr.changed) {
		return true
	}
	changed := r.m.cl.Changed() // before the map: a change in between closes it
	mp := r.m.cl.Map()
	if !r.valid(mp, lr.asg) {
		return false
	}
	lr.epoch, lr.changed = mp.Epoch, changed
	return true
}

func (l *liveRoute) close() {
	for _, r := range l.remotes {
		r.Close()
	}
}

func newRouteStage(m *Member, failover time.Duration) *routeStage {
	if failover <= 0 {
		failover = time.Minute
	}
	return &routeStage{m: m, failover: failover, hist: map[uint64]*history{}, suspect: map[string]time.Time{}}
}

// String names the stage.
func (r *routeStage) String() string { return "cluster route" }

// MaxInFlight implements pipeline.ConcurrentStage.
func (r *routeStage) MaxInFlight() int { return routeInFlight }

// Forks implements pipeline.Forking: a route whose stages all take forked
// sessions gets them as they are; on another (a peer of an older version)
// the gateway feeds a fork the tokens of the session it forks instead.
func (r *routeStage) Forks() bool { return true }

// Keep implements pipeline.Keeper: kept sessions are not replayed into a
// new route (a fork of one then finds it gone, and starts over).
func (r *routeStage) Keep(ids []uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if h := r.hist[id]; h != nil {
			h.kept = true
		}
	}
}

// Forward runs b along the route, re-routing and replaying on a failed hop.
func (r *routeStage) Forward(ctx context.Context, b *pipeline.Batch) (*pipeline.Batch, error) {
	in := saveBatch(b)
	deadline := time.Now().Add(r.failover)
	var lastErr error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			b = in.restore()
		}
		r.rw.RLock()
		lr, gen := r.route, r.gen
		if lr == nil || !lr.current(r) {
			r.rw.RUnlock()
			if err := r.rebuild(ctx, gen, deadline, lastErr); err != nil {
				return nil, err
			}
			continue
		}
		var unforked []pipeline.SeqError
		if !lr.forks {
			b, unforked = r.unfork(b)
		}
		out, err := runStages(ctx, lr.segs, b)
		if err == nil {
			out.Failed = append(out.Failed, unforked...)
			r.record(in, out, lr.forks)
		}
		r.rw.RUnlock()
		if err == nil {
			return out, nil
		}
		if ctx.Err() != nil || !retryable(err) {
			return nil, err
		}
		r.m.log.Warn("a hop failed: re-routing and replaying the live sequences", "err", err)
		r.m.metrics.IncFailover()
		var re *p2p.RemoteError
		if errors.As(err, &re) {
			r.m.metrics.IncPeerFault(re.Peer.String(), faultCause(err))
		}
		r.drop(gen, err)
		lastErr = err
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// runStages runs b through every stage in order.
func runStages(ctx context.Context, segs []pipeline.Stage, b *pipeline.Batch) (*pipeline.Batch, error) {
	var err error
	for _, s := range segs {
		if b, err = s.Forward(ctx, b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// faultCause names why a hop failed, for strata_peer_faults_total.
func faultCause(err error) string {
	switch {
	case errors.Is(err, p2p.ErrProtocol):
		return "protocol"
	case errors.Is(err, p2p.ErrStaleRoute), errors.Is(err, p2p.ErrWrongLayers):
		return "stale"
	case errors.Is(err, p2p.ErrStageFailed):
		return "failed"
	}
	return "unreachable"
}

// retryable reports whether a failed hop calls for another route.
func retryable(err error) bool {
	return errors.Is(err, p2p.ErrPeerUnreachable) || errors.Is(err, p2p.ErrClosed) ||
		errors.Is(err, p2p.ErrStaleRoute) || errors.Is(err, p2p.ErrWrongLayers) ||
		errors.Is(err, p2p.ErrProtocol) || errors.Is(err, errMoved)
}

// drop gives up route generation gen after a failed hop, and suspects the
// peer the error names.
func (r *routeStage) drop(gen uint64, err error) {
	var re *p2p.RemoteError
	if errors.As(err, &re) {
		r.mu.Lock()
		r.suspect[re.Peer.String()] = time.Now()
		r.mu.Unlock()
	}
	r.rw.Lock()
	defer r.rw.Unlock()
	if r.gen == gen && r.route != nil {
		r.route.close()
		r.route, r.fresh = nil, false
		r.cur.Store(nil)
		r.gen++
	}
}

// rebuild makes the route current with the map once the micro-batches on
// the old one are done: it keeps the route if the map's change left it
// valid, else builds one (replaying the live sequences into it), waiting
// for the map to offer one until deadline. It does nothing when another
// call changed the route since generation gen.
func (r *routeStage) rebuild(ctx context.Context, gen uint64, deadline time.Time, cause error) error {
	r.rw.Lock()
	defer r.rw.Unlock()
	if r.gen != gen {
		return nil
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if r.route != nil {
			if r.route.current(r) {
				return nil
			}
			r.route.close()
			r.route, r.fresh = nil, false
			r.cur.Store(nil)
		}
		changed := r.m.cl.Changed()
		mp := r.m.cl.Map()
		lr, err := r.build(ctx, mp, changed)
		if err == nil {
			r.route, r.fresh = lr, true
			r.cur.Store(lr)
			r.gen++
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if cause == nil {
			cause = err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w within %v (last failure: %w)", ErrNoRoute, r.failover, cause)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-tick.C:
		}
	}
}

// valid reports whether every assignment of a route is still in the map
// and its node serving.
func (r *routeStage) valid(mp *cluster.Map, asg []cluster.Assignment) bool {
	for _, a := range asg {
		n := mp.Nodes[a.Node]
		if n == nil || n.State != cluster.StateServing || !slices.Contains(mp.Assignments, a) {
			return false
		}
	}
	return true
}

// usable reports whether the gateway may route through node id now.
func (r *routeStage) usable(mp *cluster.Map) func(string) bool {
	now := time.Now()
	r.mu.Lock()
	suspect := map[string]bool{}
	for id, t := range r.suspect {
		if now.Sub(t) > suspectFor {
			delete(r.suspect, id)
		} else {
			suspect[id] = true
		}
	}
	r.mu.Unlock()
	return func(id string) bool {
		n := mp.Nodes[id]
		return n != nil && n.State == cluster.StateServing && !suspect[id]
	}
}

// build picks a route from the map, connects its stages and, unless the
// sessions are fresh, replays the live sequences into it. The caller holds
// the write lock.
func (r *routeStage) build(ctx context.Context, mp *cluster.Map, changed <-chan struct{}) (*liveRoute, error) {
	self := r.m.id.String()
	asg := mp.Route(r.usable(mp), preferSelf(mp, self))
	if asg == nil {
		return nil, fmt.Errorf("%w: layers %v uncovered by serving nodes", ErrNoRoute, mp.Uncovered())
	}
	lr := &liveRoute{asg: asg, epoch: mp.Epoch, changed: changed}
	fail := func(err error) (*liveRoute, error) {
		lr.close()
		var re *p2p.RemoteError
		if errors.As(err, &re) {
			r.mu.Lock()
			r.suspect[re.Peer.String()] = time.Now()
			r.mu.Unlock()
		}
		return nil, err
	}
	// Runs of remote stages become chained routes; this member's own
	// stage runs in process between them.
	var hops []p2p.RouteHop
	flush := func() error {
		if len(hops) == 0 {
			return nil
		}
		rr, err := p2p.DialRoute(ctx, r.m.host, hops, p2p.RemoteConfig{
			Codec: r.m.cfg.Codec, DialTimeout: 3 * time.Second, Logger: r.m.log,
		})
		if err != nil {
			return err
		}
		lr.remotes = append(lr.remotes, rr)
		lr.segs = append(lr.segs, rr)
		hops = nil
		return nil
	}
	for _, a := range asg {
		if a.Node == self {
			if err := flush(); err != nil {
				return fail(err)
			}
			st := r.m.localStage(a)
			if st == nil {
				return fail(fmt.Errorf("%w: layers %d-%d not loaded here yet", errMoved, a.Lo, a.Hi))
			}
			lr.segs = append(lr.segs, st)
			continue
		}
		pid, err := peer.Decode(a.Node)
		if err != nil {
			return fail(err)
		}
		hops = append(hops, p2p.RouteHop{Peer: peer.AddrInfo{ID: pid}, Layers: p2p.LayerRange{Lo: a.Lo, Hi: a.Hi}, Epoch: a.Epoch})
	}
	if err := flush(); err != nil {
		return fail(err)
	}
	lr.forks = !slices.ContainsFunc(lr.segs, func(s pipeline.Stage) bool { return !pipeline.Forks(s) })
	if !r.fresh {
		if err := r.replay(ctx, lr.segs); err != nil {
			return fail(err)
		}
	}
	var desc []string
	for _, a := range asg {
		desc = append(desc, fmt.Sprintf("%s:%d-%d", shortID(a.Node), a.Lo, a.Hi))
	}
	r.m.log.Info("route", "stages", desc, "epoch", mp.Epoch)
	return lr, nil
}

// preferSelf returns the replica this member serves in, so that its own
// stage is used in process.
func preferSelf(mp *cluster.Map, self string) int {
	if a, ok := mp.AssignmentOf(self); ok {
		return a.Replica
	}
	return 0
}

// replay ends every live sequence's sessions on the route and computes
// them again, each from its history, so that every stage's KV cache holds
// what it held on the old route. Kept sessions are left out.
func (r *routeStage) replay(ctx context.Context, segs []pipeline.Stage) error {
	r.mu.Lock()
	ids := make([]uint64, 0, len(r.hist))
	hists := make(map[uint64]*history, len(r.hist))
	kept := 0
	for id, h := range r.hist {
		ids = append(ids, id)
		if h.kept {
			delete(r.hist, id)
			kept++
			continue
		}
		hists[id] = &history{base: h.base, at: h.at, chunks: slices.Clone(h.chunks)}
	}
	r.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	start := time.Now()
	for _, s := range segs {
		if err := s.End(ctx, ids); err != nil {
			return err
		}
	}
	forks := !slices.ContainsFunc(segs, func(s pipeline.Stage) bool { return !pipeline.Forks(s) })
	tokens := 0
	for _, id := range ids {
		if h := hists[id]; h != nil {
			n, err := r.compute(ctx, segs, id, h, forks)
			if err != nil {
				return err
			}
			tokens += n
		}
	}
	r.m.log.Info("replayed the live sequences into the new route", "sequences", len(hists), "kept_left_out", kept, "tokens", tokens, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// compute opens session id on segs and feeds it h's chunks as they first
// came, and returns how many tokens it fed. A forked history first
// computes the session it forked, under a temporary ID, forks it and ends
// it; on stages that take no forks, the forked positions' tokens are fed
// as the first chunk instead.
func (r *routeStage) compute(ctx context.Context, segs []pipeline.Stage, id uint64, h *history, forks bool) (int, error) {
	var b pipeline.Batch
	run := func(s pipeline.Seq, toks []int) error {
		b.Reset()
		b.AddSeq(s, toks)
		out, err := runStages(ctx, segs, &b)
		if err == nil && len(out.Failed) > 0 {
			err = &out.Failed[0]
		}
		if err != nil {
			return fmt.Errorf("replay sequence %d: %w", id, err)
		}
		return nil
	}
	chunks, pos, fed := h.chunks, 0, 0
	var from uint64
	switch {
	case h.base != nil && forks:
		from = rand.Uint64() | 1<<63 // driver IDs stay below 2^62
		n, err := r.compute(ctx, segs, from, h.base, forks)
		if err != nil {
			return 0, err
		}
		defer func() {
			for _, s := range segs {
				s.End(ctx, []uint64{from})
			}
		}()
		pos, fed = h.at, n
	case h.base != nil:
		first, ok := h.tokens(nil, h.at+len(chunks[0]))
		if !ok {
			return 0, fmt.Errorf("replay sequence %d: its history is short", id)
		}
		chunks = append([][]int{first}, chunks[1:]...)
	}
	for i, c := range chunks {
		s := pipeline.Seq{ID: id, Pos: pos, Open: i == 0}
		if i == 0 {
			s.From = from
		}
		if err := run(s, c); err != nil {
			return 0, err
		}
		pos += len(c)
		fed += len(c)
	}
	return fed, nil
}

// record keeps the tokens of a forwarded batch's sequences that went on;
// forked tells whether the route took forks as they were (else unfork
// turned them into chunks of their own tokens).
func (r *routeStage) record(in savedBatch, out *pipeline.Batch, forked bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range out.Failed {
		delete(r.hist, f.ID)
	}
	row := 0
	for _, s := range in.seqs {
		toks := in.tokens[row : row+s.N]
		row += s.N
		if slices.ContainsFunc(out.Failed, func(f pipeline.SeqError) bool { return f.ID == s.ID }) {
			continue
		}
		h := r.hist[s.ID]
		if h == nil || s.Open {
			h = &history{}
			r.hist[s.ID] = h
		}
		if s.Open && s.From != 0 {
			src := r.hist[s.From]
			if src == nil || src.len() < s.Pos { // not reached: the fork found its session
				r.m.log.Warn("a forked session's source is not recorded: it cannot be replayed", "seq", s.ID, "from", s.From)
				delete(r.hist, s.ID)
				continue
			}
			if !forked { // computed as one chunk, as unfork made it
				toks, _ = src.tokens(make([]int, 0, s.Pos+len(toks)), s.Pos)
				toks = append(toks, in.tokens[row-s.N:row]...)
			} else {
				h.base, h.at = src.snapshot(s.Pos), s.Pos
			}
		}
		h.chunks = append(h.chunks, slices.Clone(toks))
	}
}

// unfork returns b with each sequence that forks a session turned into
// one that computes the tokens of that session's prefix itself, for a
// route whose stages do not all take forks; a sequence whose session the
// gateway has no record of is dropped from the batch and returned as
// failed with pipeline.ErrNoSource.
func (r *routeStage) unfork(b *pipeline.Batch) (*pipeline.Batch, []pipeline.SeqError) {
	if !slices.ContainsFunc(b.Seqs, func(s pipeline.Seq) bool { return s.From != 0 }) {
		return b, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := &pipeline.Batch{Num: b.Num}
	var failed []pipeline.SeqError
	row := 0
	for _, s := range b.Seqs {
		toks := b.Tokens[row : row+s.N]
		row += s.N
		if s.From == 0 {
			out.AddSeq(s, toks)
			continue
		}
		var pre []int
		ok := false
		if src := r.hist[s.From]; src != nil {
			pre, ok = src.tokens(make([]int, 0, s.Pos+len(toks)), s.Pos)
		}
		if !ok {
			failed = append(failed, pipeline.SeqError{ID: s.ID, Stage: r.String(), Err: fmt.Errorf("%w: session %d", pipeline.ErrNoSource, s.From)})
			continue
		}
		s.Pos, s.From = 0, 0
		out.AddSeq(s, append(pre, toks...))
	}
	return out, failed
}

// End frees the sequences' sessions along the route and forgets them. It
// does not wait for a change of route.
func (r *routeStage) End(ctx context.Context, ids []uint64) error {
	r.mu.Lock()
	for _, id := range ids {
		delete(r.hist, id)
	}
	r.mu.Unlock()
	lr := r.cur.Load()
	if lr == nil {
		return nil
	}
	var errs []error
	for _, s := range lr.segs {
		if err := s.End(ctx, ids); err != nil && !retryable(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *routeStage) close() {
	r.rw.Lock()
	defer r.rw.Unlock()
	if r.route != nil {
		r.route.close()
		r.route = nil
		r.cur.Store(nil)
	}
}

// savedBatch is a batch's input, kept to run it again on another route.
type savedBatch struct {
	num    uint64
	seqs   []pipeline.Seq
	tokens []int
}

func saveBatch(b *pipeline.Batch) savedBatch {
	return savedBatch{num: b.Num, seqs: slices.Clone(b.Seqs), tokens: slices.Clone(b.Tokens)}
}

func (s savedBatch) restore() *pipeline.Batch {
	return &pipeline.Batch{Num: s.num, Seqs: slices.Clone(s.seqs), Tokens: slices.Clone(s.tokens)}
}

package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
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

// routeStage is a gateway's one pipeline.Stage over the cluster: it runs
// each micro-batch hop by hop along a route of the map (this member's own
// stage in process, the others over the stage protocol) and keeps every
// live sequence's tokens. When a hop fails (its peer died, or its
// assignment moved) it picks a new route, ends the sequences' sessions on
// it, replays their tokens through it to rebuild the KV caches, and runs
// the micro-batch again: the client sees a pause, not an error.
//
// Forward is called by one goroutine at a time (the Driver's); End from
// any.
type routeStage struct {
	m        *Member
	failover time.Duration

	mu      sync.Mutex
	hist    map[uint64]*history // live sequences' tokens, in the chunks they came in
	hops    []hop               // the current route; nil: none yet
	epoch   uint64              // the map epoch hops were checked against
	suspect map[string]time.Time
	remotes map[remoteKey]*p2p.RemoteStage
	fresh   bool // the sessions on hops hold every sequence (no replay needed)
}

type history struct {
	chunks [][]int
}

type hop struct {
	a  cluster.Assignment
	st pipeline.Stage
}

type remoteKey struct {
	node   string
	lo, hi int
	epoch  uint64
}

func newRouteStage(m *Member, failover time.Duration) *routeStage {
	if failover <= 0 {
		failover = time.Minute
	}
	return &routeStage{
		m: m, failover: failover, hist: map[uint64]*history{},
		suspect: map[string]time.Time{}, remotes: map[remoteKey]*p2p.RemoteStage{}, fresh: true,
	}
}

// String names the stage.
func (r *routeStage) String() string { return "cluster route" }

// Forward runs b along the route, re-routing and replaying on a failed hop.
func (r *routeStage) Forward(ctx context.Context, b *pipeline.Batch) (*pipeline.Batch, error) {
	in := saveBatch(b)
	deadline := time.Now().Add(r.failover)
	var lastErr error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			b = in.restore()
		}
		hops, err := r.ready(ctx, deadline, lastErr)
		if err != nil {
			return nil, err
		}
		out, err := runHops(ctx, hops, b)
		if err == nil {
			r.record(in, out)
			return out, nil
		}
		if ctx.Err() != nil || !retryable(err) {
			return nil, err
		}
		r.m.log.Warn("a hop failed: re-routing and replaying the live sequences", "err", err)
		r.fail(err)
		lastErr = err
	}
}

// runHops runs b through every hop in order.
func runHops(ctx context.Context, hops []hop, b *pipeline.Batch) (*pipeline.Batch, error) {
	var err error
	for _, h := range hops {
		if b, err = h.st.Forward(ctx, b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// retryable reports whether a failed hop calls for another route.
func retryable(err error) bool {
	return errors.Is(err, p2p.ErrPeerUnreachable) || errors.Is(err, p2p.ErrClosed) ||
		errors.Is(err, p2p.ErrStaleRoute) || errors.Is(err, p2p.ErrWrongLayers) ||
		errors.Is(err, p2p.ErrProtocol) || errors.Is(err, errMoved)
}

// fail drops the route after a failed hop and suspects the peer it names.
func (r *routeStage) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var re *p2p.RemoteError
	if errors.As(err, &re) {
		r.suspect[re.Peer.String()] = time.Now()
		for k, rs := range r.remotes {
			if k.node == re.Peer.String() {
				rs.Close()
				delete(r.remotes, k)
			}
		}
	}
	r.hops, r.fresh = nil, false
}

// ready returns a route that is current with the map, building one (and
// replaying the live sequences into it) when needed; it waits for the map
// to offer one until deadline.
func (r *routeStage) ready(ctx context.Context, deadline time.Time, cause error) ([]hop, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		changed := r.m.cl.Changed()
		mp := r.m.cl.Map()
		r.mu.Lock()
		hops := r.hops
		if hops != nil && mp.Epoch != r.epoch {
			if !r.stillValid(mp, hops) {
				hops, r.hops, r.fresh = nil, nil, false
			} else {
				r.epoch = mp.Epoch
			}
		}
		r.mu.Unlock()
		if hops != nil {
			return hops, nil
		}
		hops, err := r.build(ctx, mp)
		if err == nil {
			return hops, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if cause == nil {
			cause = err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w within %v (last failure: %w)", ErrNoRoute, r.failover, cause)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		case <-tick.C:
		}
	}
}

// stillValid reports whether every hop's assignment is in the map and its
// node serving.
func (r *routeStage) stillValid(mp *cluster.Map, hops []hop) bool {
	for _, h := range hops {
		n := mp.Nodes[h.a.Node]
		if n == nil || n.State != cluster.StateServing || !slices.Contains(mp.Assignments, h.a) {
			return false
		}
	}
	return true
}

// build picks a route from the map, connects its hops and replays the
// live sequences into it.
func (r *routeStage) build(ctx context.Context, mp *cluster.Map) ([]hop, error) {
	now := time.Now()
	r.mu.Lock()
	for id, t := range r.suspect {
		if now.Sub(t) > suspectFor {
			delete(r.suspect, id)
		}
	}
	suspect := maps(r.suspect)
	r.mu.Unlock()
	self := r.m.id.String()
	route := mp.Route(func(id string) bool {
		n := mp.Nodes[id]
		return n != nil && n.State == cluster.StateServing && !suspect[id]
	}, preferSelf(mp, self))
	if route == nil {
		return nil, fmt.Errorf("%w: layers %v uncovered by serving nodes", ErrNoRoute, mp.Uncovered())
	}
	hops := make([]hop, 0, len(route))
	for _, a := range route {
		st, err := r.stage(ctx, a)
		if err != nil {
			r.fail(err)
			return nil, err
		}
		hops = append(hops, hop{a: a, st: st})
	}
	r.mu.Lock()
	fresh := r.fresh
	r.mu.Unlock()
	if !fresh {
		if err := r.replay(ctx, hops); err != nil {
			r.fail(err)
			return nil, err
		}
	}
	r.mu.Lock()
	r.hops, r.epoch, r.fresh = hops, mp.Epoch, true
	for k, rs := range r.remotes { // close the stages the route left
		if !slices.ContainsFunc(hops, func(h hop) bool { return h.st == pipeline.Stage(rs) }) {
			rs.Close()
			delete(r.remotes, k)
		}
	}
	r.mu.Unlock()
	var desc []string
	for _, h := range hops {
		desc = append(desc, fmt.Sprintf("%s:%d-%d", shortID(h.a.Node), h.a.Lo, h.a.Hi))
	}
	r.m.log.Info("route", "stages", desc, "epoch", mp.Epoch)
	return hops, nil
}

// preferSelf returns the replica this member serves in, so that its own
// stage is used in process.
func preferSelf(mp *cluster.Map, self string) int {
	if a, ok := mp.AssignmentOf(self); ok {
		return a.Replica
	}
	return 0
}

func maps(m map[string]time.Time) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// stage returns the stage serving a: this member's own, or a remote one.
func (r *routeStage) stage(ctx context.Context, a cluster.Assignment) (pipeline.Stage, error) {
	if a.Node == r.m.id.String() {
		if st := r.m.localStage(a); st != nil {
			return st, nil
		}
		return nil, fmt.Errorf("%w: layers %d-%d not loaded here yet", errMoved, a.Lo, a.Hi)
	}
	key := remoteKey{a.Node, a.Lo, a.Hi, a.Epoch}
	r.mu.Lock()
	rs := r.remotes[key]
	r.mu.Unlock()
	if rs != nil {
		return rs, nil
	}
	pid, err := peer.Decode(a.Node)
	if err != nil {
		return nil, err
	}
	rs, err = p2p.DialStage(ctx, r.m.host, peer.AddrInfo{ID: pid}, p2p.RemoteConfig{
		Codec: r.m.cfg.Codec, Layers: p2p.LayerRange{Lo: a.Lo, Hi: a.Hi}, Epoch: a.Epoch,
		DialTimeout: 3 * time.Second, Logger: r.m.log,
	})
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.remotes[key] = rs
	r.mu.Unlock()
	return rs, nil
}

// replay ends every live sequence's sessions on the route and feeds their
// tokens through it again, chunk by chunk as they first came, so that
// every stage's KV cache holds what it held on the old route.
func (r *routeStage) replay(ctx context.Context, hops []hop) error {
	r.mu.Lock()
	ids := make([]uint64, 0, len(r.hist))
	chunks := make(map[uint64][][]int, len(r.hist))
	for id, h := range r.hist {
		ids = append(ids, id)
		chunks[id] = slices.Clone(h.chunks)
	}
	r.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	start := time.Now()
	for _, h := range hops {
		if err := h.st.End(ctx, ids); err != nil {
			return err
		}
	}
	tokens := 0
	var b pipeline.Batch
	for _, id := range ids {
		pos := 0
		for i, c := range chunks[id] {
			b.Reset()
			b.AddSeq(pipeline.Seq{ID: id, Pos: pos, Open: i == 0}, c)
			out, err := runHops(ctx, hops, &b)
			if err != nil {
				return err
			}
			if len(out.Failed) > 0 {
				return fmt.Errorf("replay sequence %d: %w", id, &out.Failed[0])
			}
			pos += len(c)
			tokens += len(c)
		}
	}
	r.m.log.Info("replayed the live sequences into the new route", "sequences", len(ids), "tokens", tokens, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// record keeps the tokens of a forwarded batch's sequences that went on.
func (r *routeStage) record(in savedBatch, out *pipeline.Batch) {
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
		h.chunks = append(h.chunks, slices.Clone(toks))
	}
}

// End frees the sequences' sessions along the route and forgets them.
func (r *routeStage) End(ctx context.Context, ids []uint64) error {
	r.mu.Lock()
	for _, id := range ids {
		delete(r.hist, id)
	}
	hops := r.hops
	r.mu.Unlock()
	var errs []error
	for _, h := range hops {
		if err := h.st.End(ctx, ids); err != nil && !retryable(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *routeStage) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, rs := range r.remotes {
		rs.Close()
		delete(r.remotes, k)
	}
	r.hops = nil
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

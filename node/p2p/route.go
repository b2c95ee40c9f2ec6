package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/strata-llm/strata/pipeline"
)

// RouteHop is one stage of a route: its peer, the layers it must serve,
// and the cluster map epoch of its assignment (0: a static pipeline, any).
type RouteHop struct {
	Peer   peer.AddrInfo
	Layers LayerRange
	Epoch  uint64
}

// RemoteRoute is a pipeline.Stage that spans a whole route of stage
// servers, driven by chain forwarding (StageProtocolV2): Forward sends the
// micro-batch to the first hop with the rest of the route, each hop runs
// its stage and sends the result on to the next itself, and the last hop
// sends the logits (and the sequences dropped on the way) straight back to
// this host on ResultProtocol. With n hops a micro-batch crosses n+1 links
// instead of the 2n of a gateway driving each hop in turn, and the
// activations never come back to the gateway between stages.
//
// Forward may be called by up to MaxInFlight goroutines at once (several
// micro-batches in flight along the route; a pipeline.Driver does so), End
// from any. An error is a *RemoteError naming the hop that failed (a later
// hop reports it back along the route): a stage's refusal, a dead peer
// (ErrPeerUnreachable), a moved assignment (ErrWrongLayers,
// ErrStaleRoute). A sequence a hop dropped is in Batch.Failed with a
// *RemoteError naming that hop. When a Forward's ctx ends, its stream to
// the first hop is reset, and each hop resets its own downstream stream in
// turn.
type RemoteRoute struct {
	h      host.Host
	hops   []RouteHop     // as dialed; addresses from the peerstore when none were given
	stages []*RemoteStage // one a hop, over StageProtocolV2: hello, End, and (the first) chain forwards
	self   peer.AddrInfo  // the gateway, where the last hop delivers
	cfg    RemoteConfig
	mux    *resultMux
	log    *slog.Logger
	wg     sync.WaitGroup // the readers of the first hop's answers
	once   sync.Once
}

// DialRoute connects h to every hop of a route, checks that each serves
// the layers (ErrWrongLayers) under the map epoch (ErrStaleRoute) the hop
// says, as DialStage does, that no hop is reachable only through a relay
// (ErrRelayOnly), and that the layers follow on from one hop to the next.
// A hop that gives no layers takes those its peer says it serves. cfg
// applies to every hop (its Layers and Epoch are the hops'); its
// MaxInFlight bounds the streams to the first hop (0: 4 a hop: a stream
// is held until the route's answer, which comes after the result). Close
// releases the route.
func DialRoute(ctx context.Context, h host.Host, hops []RouteHop, cfg RemoteConfig) (*RemoteRoute, error) {
	if len(hops) == 0 || len(hops) > maxHops {
		return nil, fmt.Errorf("dial route: %d hops, want 1 to %d", len(hops), maxHops)
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4 * len(hops)
	}
	cfg = cfg.withDefaults()
	r := &RemoteRoute{h: h, cfg: cfg, log: cfg.Logger}
	for i, hop := range hops {
		hc := cfg
		hc.Layers, hc.Epoch = hop.Layers, hop.Epoch
		if i > 0 {
			hc.MaxInFlight = 2
		}
		st, err := dialStage(ctx, h, hop.Peer, hc, StageProtocolV2)
		if err != nil {
			r.closeStages()
			return nil, err
		}
		r.stages = append(r.stages, st)
		hop.Layers = st.Layers()
		if len(hop.Peer.Addrs) == 0 {
			hop.Peer.Addrs = h.Peerstore().Addrs(hop.Peer.ID)
		}
		if i > 0 && r.hops[i-1].Layers.Hi != hop.Layers.Lo {
			r.closeStages()
			return nil, fmt.Errorf("dial route: hop %d (%s) serves %v after %v: the layers do not follow on", i, hop.Peer.ID, hop.Layers, r.hops[i-1].Layers)
		}
		r.hops = append(r.hops, hop)
	}
	r.self = peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
	r.mux = acquireMux(h, cfg.Logger)
	return r, nil
}

// Hops returns the route's hops, as dialed; the caller must not modify
// the slice.
func (r *RemoteRoute) Hops() []RouteHop { return r.hops }

// MaxInFlight is the number of micro-batches the route takes at once: one
// a hop, so that every stage is busy with a different one.
func (r *RemoteRoute) MaxInFlight() int { return len(r.hops) }

// Forks reports whether every hop takes forked sessions.
func (r *RemoteRoute) Forks() bool {
	for _, s := range r.stages {
		if !s.Forks() {
			return false
		}
	}
	return true
}

// String names the route by its stages.
func (r *RemoteRoute) String() string {
	names := make([]string, len(r.stages))
	for i, st := range r.stages {
		names[i] = st.String()
	}
	return "route(" + strings.Join(names, ", ") + ")"
}

// Forward sends b along the route and returns b with the last hop's
// output: logits, and the failures every hop added. On error the batch is
// spoiled and nil is returned.
func (r *RemoteRoute) Forward(ctx context.Context, b *pipeline.Batch) (*pipeline.Batch, error) {
	first := r.stages[0]
	p := r.mux.add(r, b)
	rs, err := first.acquire(ctx)
	if err != nil {
		r.mux.remove(p)
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { rs.s.Reset() })
	failed := len(b.Failed)
	rt := chainRoute{req: p.id, gateway: r.self, hops: r.hops}
	if err := first.send(rs, msgChain, func(d []byte, rs *rstream) ([]byte, error) {
		d, err := appendRoute(d, &rt)
		if err != nil {
			return d, err
		}
		// The failures of earlier stages stay here.
		return rs.c.appendBatch(d, b, failed)
	}); err != nil {
		if !stop() {
			err = ctx.Err()
		}
		r.mux.remove(p)
		return nil, first.settle(rs, err)
	}
	// The route answers after the result has come, so the answer is read
	// by a goroutine of the route's, which frees the stream.
	answer := make(chan error, 1)
	r.wg.Go(func() {
		err := first.receive(rs, chainReply)
		if !stop() {
			err = ctx.Err()
		}
		answer <- first.settle(rs, err)
	})
	select {
	case err := <-p.done:
		return r.result(b, err)
	case err := <-answer:
		if err == nil {
			select {
			case err := <-p.done:
				return r.result(b, err)
			default:
			}
			last := len(r.stages) - 1
			err = r.stages[last].fail(fmt.Errorf("%w: the route answered without delivering the result", ErrProtocol))
		}
		if r.mux.remove(p) {
			return nil, err
		}
	case <-ctx.Done():
		if r.mux.remove(p) {
			return nil, first.fail(ctx.Err())
		}
	}
	// The result is being decoded into b: it is complete.
	return r.result(b, <-p.done)
}

func (r *RemoteRoute) result(b *pipeline.Batch, err error) (*pipeline.Batch, error) {
	if err != nil {
		return nil, err
	}
	return b, nil
}

// End ends the sessions ids on every hop, each told directly and all at
// once.
func (r *RemoteRoute) End(ctx context.Context, ids []uint64) error {
	if len(ids) == 0 {
		return nil
	}
	errs := make([]error, len(r.stages))
	var wg sync.WaitGroup
	for i, st := range r.stages {
		wg.Go(func() { errs[i] = st.End(ctx, ids) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close aborts every request in flight on the route and releases its
// streams; later requests fail with ErrClosed.
func (r *RemoteRoute) Close() error {
	r.once.Do(func() {
		r.closeStages()
		r.wg.Wait()
		r.mux.release()
	})
	return nil
}

func (r *RemoteRoute) closeStages() {
	for _, st := range r.stages {
		st.Close()
	}
}

// hopError names hop i of the route for a failure that came from it.
func (r *RemoteRoute) hopError(i int, err error) error {
	return &RemoteError{Peer: r.hops[i].Peer.ID, Layers: r.hops[i].Layers, Err: err}
}

// pending is a Forward waiting for its result.
type pending struct {
	id    uint64
	route *RemoteRoute
	b     *pipeline.Batch
	done  chan error // the result was decoded into b, or could not be
}

// resultMux serves ResultProtocol on a host for every RemoteRoute on it:
// it hands each delivery to the Forward waiting for it, by request ID.
type resultMux struct {
	h    host.Host
	log  *slog.Logger
	refs int // routes using it; under muxes.mu

	mu      sync.Mutex
	pending map[uint64]*pending
	streams map[network.Stream]struct{}
	closed  bool
	wg      sync.WaitGroup
}

// requestIDs numbers the requests of every route in the process, so that
// a late delivery never matches a later request.
var requestIDs atomic.Uint64

// muxes are the result muxes of the hosts that have routes.
var muxes = struct {
	sync.Mutex
	m map[host.Host]*resultMux
}{m: make(map[host.Host]*resultMux)}

// acquireMux returns h's result mux, serving ResultProtocol on h when it
// is the first of h's routes.
func acquireMux(h host.Host, log *slog.Logger) *resultMux {
	muxes.Lock()
	defer muxes.Unlock()
	m := muxes.m[h]
	if m == nil {
		m = &resultMux{h: h, log: log, pending: make(map[uint64]*pending), streams: make(map[network.Stream]struct{})}
		muxes.m[h] = m
		h.SetStreamHandler(ResultProtocol, m.handle)
	}
	m.refs++
	return m
}

// release drops a route's hold on m; the last one stops serving
// ResultProtocol, resets its streams and waits for their goroutines.
func (m *resultMux) release() {
	muxes.Lock()
	m.refs--
	last := m.refs == 0
	if last {
		delete(muxes.m, m.h)
		m.h.RemoveStreamHandler(ResultProtocol)
	}
	muxes.Unlock()
	if !last {
		return
	}
	m.mu.Lock()
	m.closed = true
	for s := range m.streams {
		s.Reset()
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// add registers a Forward of route's for b and returns it.
func (m *resultMux) add(route *RemoteRoute, b *pipeline.Batch) *pending {
	p := &pending{id: requestIDs.Add(1), route: route, b: b, done: make(chan error, 1)}
	m.mu.Lock()
	m.pending[p.id] = p
	m.mu.Unlock()
	return p
}

// remove forgets p and reports whether it was still waiting: false when a
// delivery has taken it, and its done is or will be sent.
func (m *resultMux) remove(p *pending) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending[p.id] != p {
		return false
	}
	delete(m.pending, p.id)
	return true
}

// take takes the request id for a delivery from peer from.
func (m *resultMux) take(id uint64, from peer.ID) *pending {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pending[id]
	if p == nil {
		return nil
	}
	if last := p.route.hops[len(p.route.hops)-1].Peer.ID; last != from {
		m.log.Warn("refused a result from a peer that is not the route's last hop", "peer", from, "request", id, "last", last)
		return nil
	}
	delete(m.pending, id)
	return p
}

// handle serves one ResultProtocol stream: deliveries, one after another.
func (m *resultMux) handle(st network.Stream) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		st.Reset()
		return
	}
	m.streams[st] = struct{}{}
	m.wg.Add(1)
	m.mu.Unlock()
	defer func() {
		st.Reset()
		m.mu.Lock()
		delete(m.streams, st)
		m.mu.Unlock()
		m.wg.Done()
	}()
	from := st.Conn().RemotePeer()
	log := m.log.With("peer", from)
	var (
		in, out []byte
		origins []byte
		c       coder
	)
	for {
		st.SetReadDeadline(time.Now().Add(DefaultIdleTimeout))
		t, body, buf, err := readMessage(st, in, DefaultMaxMessageBytes)
		in = buf
		if err != nil {
			if errors.Is(err, errMessage) {
				log.Warn("refused a message from a peer", "err", err)
			} else if !errors.Is(err, io.EOF) {
				log.Debug("result stream ended", "err", err)
			}
			return
		}
		if t != msgDeliver {
			log.Warn("refused a message from a peer", "err", fmt.Errorf("a %d message on a result stream: %w", t, errMessage))
			return
		}
		id, o, rest, err := decodeDeliver(body, origins)
		origins = o
		if err != nil {
			log.Warn("refused a message from a peer", "err", err)
			return
		}
		if p := m.take(id, from); p != nil {
			p.done <- p.route.decode(&c, rest, origins, p.b)
		} else {
			log.Debug("dropped a result for an unknown or cancelled request", "request", id)
		}
		out, _ = appendMessage(out[:0], msgAck, nil)
		st.SetWriteDeadline(time.Now().Add(DefaultWriteTimeout))
		if _, err := st.Write(out); err != nil {
			log.Debug("write ack", "err", err)
			return
		}
	}
}

// decode decodes a delivery's batch into b, naming the hop that dropped
// each failed sequence from origins.
func (r *RemoteRoute) decode(c *coder, src, origins []byte, b *pipeline.Batch) error {
	c.limits = r.cfg.Limits
	k := 0
	err := c.decodeBatch(src, b, func(e error) error {
		i := len(r.hops) - 1
		if k < len(origins) && int(origins[k]) < len(r.hops) {
			i = int(origins[k])
		}
		k++
		return r.hopError(i, e)
	})
	if err == nil && k != len(origins) {
		err = fmt.Errorf("%d origins for %d failures: %w", len(origins), k, errMessage)
	}
	if err != nil {
		return r.hopError(len(r.hops)-1, fmt.Errorf("%w: result: %w", ErrProtocol, err))
	}
	return nil
}

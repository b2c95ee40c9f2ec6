package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"

	"github.com/strata-llm/strata/pipeline"
	"github.com/strata-llm/strata/pipeline/wire"
)

// StageProtocol is the stage protocol's ID: a gateway (or the stage before)
// sends micro-batches to a stage server and reads back what the stage made
// of them, one request at a time on a stream, any number of streams at
// once. See message.go for the messages.
const StageProtocol protocol.ID = "/strata/stage/1.0.0"

// StageProtocolV2 is version 2 of the stage protocol: every version 1
// message, and chain forwards (message.go), with which the stages of a
// route pass a micro-batch from one to the next themselves. A StageServer
// serves both versions; a RemoteStage speaks version 1, a RemoteRoute
// version 2.
const StageProtocolV2 protocol.ID = "/strata/stage/2.0.0"

// ResultProtocol carries a route's results from its last stage to the
// gateway (a RemoteRoute), keyed by the gateway's request ID.
const ResultProtocol protocol.ID = "/strata/result/1.0.0"

// Errors a RemoteStage fails with, always inside a *RemoteError.
var (
	// ErrPeerUnreachable: the stage's peer could not be reached, or the
	// stream to it broke or timed out (the peer died, the network failed).
	ErrPeerUnreachable = errors.New("stage peer unreachable")
	// ErrProtocol: the peer sent something the stage protocol refuses: a
	// malformed message or frame (wire.ErrCorrupt, wire.ErrNonFinite...
	// are wrapped too), or a reply that does not answer the request.
	ErrProtocol = errors.New("stage protocol violation")
	// ErrStageFailed: the remote stage failed the whole batch; the
	// *PeerCause wrapped beside it says why, and matches the pipeline
	// sentinel it matched on the peer (pipeline.ErrBadBatch...).
	ErrStageFailed = errors.New("remote stage failed the batch")
	// ErrWrongLayers: the peer serves other layers than the route expects
	// (RemoteConfig.Layers).
	ErrWrongLayers = errors.New("stage peer serves other layers")
	// ErrClosed: the RemoteStage or StageServer was closed.
	ErrClosed = errors.New("stage closed")
	// ErrStaleRoute: the peer serves its layers under another cluster map
	// epoch than the route's (RemoteConfig.Epoch): the assignment moved,
	// and the route must be planned again.
	ErrStaleRoute = errors.New("stage serves another map epoch than the route's")
	// ErrRelayOnly: the peer is reachable only through a circuit relay
	// (see RelayOnly), whose links relay v2 limits to a trickle. It comes
	// with ErrPeerUnreachable.
	ErrRelayOnly = errors.New("stage peer reachable only through a relay: never used for activations")
)

// LayerRange is a stage's layers [Lo, Hi).
type LayerRange struct{ Lo, Hi int }

// String returns "layers LO-HI".
func (r LayerRange) String() string { return fmt.Sprintf("layers %d-%d", r.Lo, r.Hi) }

// RemoteError is the failure of a request to a remote stage: it names the
// peer and the layers it serves (zero before they are known).
type RemoteError struct {
	Peer   peer.ID
	Layers LayerRange
	Err    error // wraps a sentinel above, and the cause
}

// Error names the peer, its layers and the cause.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("peer %s (%v): %v", e.Peer, e.Layers, e.Err)
}

// Unwrap returns the cause.
func (e *RemoteError) Unwrap() error { return e.Err }

// Timeouts of the stage protocol, when a configuration leaves them zero.
const (
	DefaultDialTimeout    = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultRequestTimeout = time.Minute
	DefaultIdleTimeout    = 5 * time.Minute
	// DefaultClientIdleTimeout is a RemoteStage's: well below
	// DefaultIdleTimeout, so that a kept stream is never one the server
	// has given up.
	DefaultClientIdleTimeout = time.Minute
)

// ServeOptions configure a stage server. The zero value works for a stage
// that reports its layers (a *pipeline.Local).
type ServeOptions struct {
	// Codec encodes the activations the stage returns; the zero value is
	// wire.Lossless. Logits always travel as f32.
	Codec wire.Codec
	// Limits bound the frames accepted from a client (zero: wire's
	// defaults); MaxMessageBytes bounds a message (0:
	// DefaultMaxMessageBytes).
	Limits          wire.Limits
	MaxMessageBytes int
	// IdleTimeout is how long a stream may wait for its next request
	// (0: DefaultIdleTimeout); WriteTimeout bounds writing a reply (0:
	// DefaultWriteTimeout).
	IdleTimeout  time.Duration
	WriteTimeout time.Duration
	// MaxStreams bounds the streams served at once, from all peers; a
	// stream beyond it is reset (0: DefaultMaxStreams).
	MaxStreams int
	// Layers names the stage's layers in the info it gives clients; when
	// zero it is asked of the stage (a *pipeline.Local's Range).
	Layers LayerRange
	// Epoch is the cluster map epoch of the assignment the stage serves,
	// told to clients in its info (0: a static pipeline).
	Epoch uint64
	// Allow, when set, admits a peer's streams: the others are reset and
	// logged (a cluster admits its members only).
	Allow func(peer.ID) bool
	// Next configures the clients with which the server sends a chain
	// forward's result on: to the route's next stage, or from the last
	// stage to the gateway. Its Codec, Limits, MaxMessageBytes and Logger
	// are the server's; MaxInFlight bounds the streams to each next peer
	// (0: DefaultMaxForwards).
	Next   RemoteConfig
	Logger *slog.Logger // nil: slog.Default()
}

// DefaultMaxForwards bounds a stage server's chain forwards in flight to
// one next peer, when its options set no bound.
const DefaultMaxForwards = 16

// DefaultMaxStreams is a stage server's bound on streams when its options
// set none.
const DefaultMaxStreams = 256

// StageServer serves a pipeline.Stage on a host under StageProtocol and
// StageProtocolV2. Each stream is served by its own goroutine, one request
// after another, with a second goroutine reading the stream's next request
// ahead, so that a client that goes away (resets the stream) cancels the
// request in progress. The stage's Forward is called by one stream at a
// time (a stage forwards one micro-batch at a time), its End from any.
//
// A chain forward (StageProtocolV2) is run through the stage, then sent on
// while the stage takes the next micro-batch: to the route's next peer as
// a chain forward, over a client cached per peer (ServeOptions.Next), or
// from the last stage to the gateway on ResultProtocol. The stream is
// answered once that has answered: an ack, or the error of the hop that
// failed (a dead next peer is one whose stream resets or times out). At
// most MaxStreams requests are served at once, and at most
// Next.MaxInFlight are sent on to each next peer.
type StageServer struct {
	h      host.Host
	stage  pipeline.Stage
	opts   ServeOptions
	name   string
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	fwd    sync.Mutex // serialises Forward calls across streams
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	streams int // being served
	next    map[nextKey]*RemoteStage
}

// nextKey names a client of the server's: a peer, the protocol, and the
// layers the route says the peer serves.
type nextKey struct {
	peer   peer.ID
	proto  protocol.ID
	layers LayerRange
}

// ServeStage registers a handler for StageProtocol on h that serves stage
// until Close. The stage's layers must be known: opts.Layers, or the
// stage's Range method.
func ServeStage(h host.Host, stage pipeline.Stage, opts ServeOptions) (*StageServer, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = DefaultMaxStreams
	}
	if opts.Layers == (LayerRange{}) {
		if r, ok := stage.(interface{ Range() (int, int) }); ok {
			opts.Layers.Lo, opts.Layers.Hi = r.Range()
		}
	}
	if opts.Layers.Lo < 0 || opts.Layers.Lo >= opts.Layers.Hi {
		return nil, fmt.Errorf("serve stage: %v is no layer range", opts.Layers)
	}
	if err := opts.Codec.Validate(); err != nil {
		return nil, fmt.Errorf("serve stage: %w", err)
	}
	next := opts.Next
	next.Codec, next.Limits, next.MaxMessageBytes, next.Logger = opts.Codec, opts.Limits, opts.MaxMessageBytes, opts.Logger
	if next.MaxInFlight <= 0 {
		next.MaxInFlight = DefaultMaxForwards
	}
	opts.Next = next.withDefaults()
	s := &StageServer{h: h, stage: stage, opts: opts, log: opts.Logger, next: make(map[nextKey]*RemoteStage)}
	s.name = opts.Layers.String()
	if n, ok := stage.(fmt.Stringer); ok {
		s.name = n.String()
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	h.SetStreamHandler(StageProtocol, s.handle)
	h.SetStreamHandler(StageProtocolV2, s.handle)
	return s, nil
}

// Close unregisters the handler, aborts every stream and waits for their
// goroutines (a Forward in progress is given a cancelled ctx).
func (s *StageServer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.h.RemoveStreamHandler(StageProtocol)
	s.h.RemoveStreamHandler(StageProtocolV2)
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	next := s.next
	s.next = nil
	s.mu.Unlock()
	for _, r := range next {
		r.Close()
	}
	return nil
}

// read is what a stream's reader read: a message, or why it could not.
type read struct {
	t    msgType
	body []byte // a slice of buf
	buf  []byte
	err  error
}

// handle serves one stream until it ends, fails, or the server closes.
func (s *StageServer) handle(st network.Stream) {
	if s.opts.Allow != nil && !s.opts.Allow(st.Conn().RemotePeer()) {
		s.log.Warn("refused a stage stream from a non-member", "peer", st.Conn().RemotePeer())
		st.Reset()
		return
	}
	s.mu.Lock()
	if s.closed || s.streams >= s.opts.MaxStreams {
		full := !s.closed
		s.mu.Unlock()
		if full {
			s.log.Warn("too many stage streams: refused one", "peer", st.Conn().RemotePeer(), "max_streams", s.opts.MaxStreams)
		}
		st.Reset()
		return
	}
	s.streams++
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.streams--
		s.mu.Unlock()
		s.wg.Done()
	}()
	// ctx, the requests', ends when the server closes or the client goes
	// away: the reader cancels it when a read fails.
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, func() { st.Reset() })
	defer stop()

	// The reader reads each message into the buffer it is handed, as soon
	// as the last one's body has been decoded: while a request is served,
	// it waits on the stream for the next, and so sees the client go away.
	more := make(chan []byte)
	msgs := make(chan read, 1)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for buf := range more {
			st.SetReadDeadline(time.Now().Add(s.opts.IdleTimeout))
			t, body, buf, err := readMessage(st, buf, s.opts.MaxMessageBytes)
			msgs <- read{t, body, buf, err}
			if err != nil {
				cancel()
				return
			}
		}
	}()
	defer func() {
		close(more)
		st.Reset()
		<-readerDone
	}()

	p := st.Conn().RemotePeer()
	v2 := st.Protocol() == StageProtocolV2
	log := s.log.With("peer", p, "stage", s.name)
	var (
		out      []byte
		b        pipeline.Batch
		ids      []uint64
		route    chainRoute
		c        = coder{codec: s.opts.Codec, limits: s.opts.Limits}
		features bool // the last hello asked for the server's features
	)
	refuse := func(err error) {
		log.Warn("refused a message from a peer", "err", err)
	}
	more <- nil
	for {
		m := <-msgs
		if m.err != nil {
			if errors.Is(m.err, errMessage) {
				refuse(m.err)
			} else if !errors.Is(m.err, io.EOF) && s.ctx.Err() == nil {
				log.Debug("stage stream ended", "err", m.err)
			}
			return
		}
		// Decode the body, then hand the buffer back to the reader.
		var err error
		switch m.t {
		case msgHello:
			features = len(m.body) >= 4
		case msgForward:
			b.Reset()
			err = c.decodeBatch(m.body, &b, func(e error) error { return e })
		case msgChain:
			if !v2 {
				err = fmt.Errorf("a chain forward on a %s stream: %w", StageProtocol, errMessage)
				break
			}
			b.Reset()
			var rest []byte
			if rest, err = decodeRoute(m.body, &route); err == nil {
				err = c.decodeBatch(rest, &b, func(e error) error { return e })
			}
			if err == nil && len(route.origins) != len(b.Failed) {
				err = fmt.Errorf("%d origins for %d failures: %w", len(route.origins), len(b.Failed), errMessage)
			}
		case msgEnd:
			ids, err = decodeEnd(m.body, ids)
		default:
			err = fmt.Errorf("a %d message from a client: %w", m.t, errMessage)
		}
		if err != nil {
			refuse(err)
			return
		}
		more <- m.buf

		switch m.t {
		case msgHello:
			out, err = appendMessage(out[:0], msgInfo, func(d []byte) ([]byte, error) {
				in := stageInfo{lo: s.opts.Layers.Lo, hi: s.opts.Layers.Hi, name: s.name, epoch: s.opts.Epoch}
				if pipeline.Forks(s.stage) {
					in.features |= infoForks
				}
				return appendInfo(d, in, features), nil
			})
		case msgForward:
			out, err = s.forward(ctx, &c, &b, out[:0])
		case msgChain:
			out, err = s.chain(ctx, &route, &b, out[:0])
		case msgEnd:
			if endErr := s.stage.End(ctx, ids); endErr != nil {
				out, err = appendMessage(out[:0], msgError, func(d []byte) ([]byte, error) { return appendError(d, endErr), nil })
			} else {
				out, err = appendMessage(out[:0], msgAck, nil)
			}
		}
		if err != nil {
			log.Error("encode reply", "err", err)
			return
		}
		if s.closing() || ctx.Err() != nil {
			// Whatever failed downstream failed because this host is going
			// away: the stream is reset, so upstream blames this stage, not
			// the hop it lost. So also when the request's stream failed
			// (its reader ended ctx): a host closing may drop it before the
			// swarm says it is closing, and the reply (the request's
			// "context canceled") could still reach upstream.
			return
		}
		st.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
		if _, err := st.Write(out); err != nil {
			log.Debug("write reply", "err", err)
			return
		}
	}
}

// closing reports whether the server or its host is shutting down. A
// libp2p swarm marks itself closed before it drops its connections, which
// go one by one; a host without that signal (a mocknet's) is never seen
// closing.
func (s *StageServer) closing() bool {
	if s.ctx.Err() != nil {
		return true
	}
	n, ok := s.h.Network().(interface{ Done() <-chan struct{} })
	if !ok {
		return false
	}
	select {
	case <-n.Done():
		return true
	default:
		return false
	}
}

// run runs b through the stage, one micro-batch at a time.
func (s *StageServer) run(ctx context.Context, b *pipeline.Batch) (*pipeline.Batch, error) {
	s.fwd.Lock()
	defer s.fwd.Unlock()
	return s.stage.Forward(ctx, b)
}

// forward runs b through the stage and appends the reply: the result, or
// the error that failed the batch.
func (s *StageServer) forward(ctx context.Context, c *coder, b *pipeline.Batch, dst []byte) ([]byte, error) {
	out, err := s.run(ctx, b)
	if err == nil {
		var rerr error
		dst, rerr = appendMessage(dst, msgResult, func(d []byte) ([]byte, error) { return c.appendBatch(d, out, 0) })
		if rerr == nil {
			return dst, nil
		}
		err = fmt.Errorf("encode result: %w", rerr) // a NaN from the stage, say
	}
	s.log.Debug("stage failed a batch", "stage", s.name, "err", err)
	return appendMessage(dst, msgError, func(d []byte) ([]byte, error) { return appendError(d, err), nil })
}

// chain serves a chain forward: it runs b through the stage, sends the
// result on along the route, and appends the reply: an ack once the rest
// of the route has answered, or the error of the hop that failed.
func (s *StageServer) chain(ctx context.Context, rt *chainRoute, b *pipeline.Batch, dst []byte) ([]byte, error) {
	err := s.chainErr(ctx, rt, b)
	if err == nil {
		return appendMessage(dst, msgAck, nil)
	}
	s.log.Debug("a chain forward failed", "stage", s.name, "request", rt.req, "err", err)
	return appendMessage(dst, msgHopError, func(d []byte) ([]byte, error) { return appendHopError(d, err), nil })
}

// chainErr is chain's work; its error names the hop that failed.
func (s *StageServer) chainErr(ctx context.Context, rt *chainRoute, b *pipeline.Batch) *RemoteError {
	self := &RemoteError{Peer: s.h.ID(), Layers: s.opts.Layers}
	switch want := rt.hops[0]; {
	case want.Peer.ID != s.h.ID():
		self.Err = fmt.Errorf("%w: a chain forward for peer %s", ErrProtocol, want.Peer.ID)
		return self
	case want.Layers != s.opts.Layers:
		self.Err = fmt.Errorf("%w: the route wants %v", ErrWrongLayers, want.Layers)
		return self
	case want.Epoch != 0 && want.Epoch != s.opts.Epoch:
		self.Err = fmt.Errorf("%w: the route's epoch %d, the stage's %d", ErrStaleRoute, want.Epoch, s.opts.Epoch)
		return self
	}
	out, err := s.run(ctx, b)
	if err != nil {
		self.Err = fmt.Errorf("%w: %w", ErrStageFailed, err)
		return self
	}
	// The stage's own failures come from this hop.
	rt.origins = rt.origins[:min(len(rt.origins), len(out.Failed))]
	for len(rt.origins) < len(out.Failed) {
		rt.origins = append(rt.origins, byte(rt.index))
	}
	var next *RemoteStage
	if len(rt.hops) > 1 {
		h := rt.hops[1]
		next = s.client(h.Peer, StageProtocolV2, h.Layers)
		fwd := chainRoute{req: rt.req, index: rt.index + 1, gateway: rt.gateway, hops: rt.hops[1:], origins: rt.origins}
		err = next.chain(ctx, &fwd, out)
	} else {
		next = s.client(rt.gateway, ResultProtocol, LayerRange{})
		err = next.deliver(ctx, rt.req, rt.origins, out)
	}
	var re *RemoteError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errEncode): // the stage's output, a NaN say
		self.Err = fmt.Errorf("%w: encode result: %w", ErrStageFailed, err)
		return self
	case errors.As(err, &re):
		return re
	}
	return next.fail(err).(*RemoteError)
}

// client returns the server's client for p on proto, dialing it when
// there is none. p's addresses, when given, are added to the peerstore for
// the dial.
func (s *StageServer) client(p peer.AddrInfo, proto protocol.ID, layers LayerRange) *RemoteStage {
	if len(p.Addrs) > 0 && s.h.Network().Connectedness(p.ID) != network.Connected {
		s.h.Peerstore().AddAddrs(p.ID, p.Addrs, peerstore.TempAddrTTL)
	}
	k := nextKey{p.ID, proto, layers}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.next[k]
	if r == nil {
		r = newRemoteStage(s.h, p.ID, s.opts.Next, proto)
		r.layers, r.name = layers, layers.String()
		if s.closed {
			r.Close()
			return r
		}
		s.next[k] = r
	}
	return r
}

// RemoteConfig configures a RemoteStage. The zero value works.
type RemoteConfig struct {
	// Codec encodes the activations sent to the stage; the zero value is
	// wire.Lossless.
	Codec wire.Codec
	// MaxInFlight bounds the requests (Forward and End) in flight to the
	// peer at once, one a stream; a caller beyond it waits (0: 2; for a
	// RemoteRoute, the streams to its first hop, 0: 4 a hop).
	MaxInFlight int
	// DialTimeout bounds connecting and opening a stream (0:
	// DefaultDialTimeout), WriteTimeout writing a request (0:
	// DefaultWriteTimeout), RequestTimeout waiting for its reply, the
	// stage's work included (0: DefaultRequestTimeout).
	DialTimeout    time.Duration
	WriteTimeout   time.Duration
	RequestTimeout time.Duration
	// IdleTimeout is how long a stream is kept unused for the next
	// request (0: DefaultClientIdleTimeout); it must stay below the
	// server's IdleTimeout, after which the server closes it.
	IdleTimeout time.Duration
	// Limits bound the frames accepted from the peer (zero: wire's
	// defaults); MaxMessageBytes a message (0: DefaultMaxMessageBytes).
	Limits          wire.Limits
	MaxMessageBytes int
	// Layers, when set, are the layers the route expects of the peer:
	// DialStage fails with ErrWrongLayers when it serves others.
	Layers LayerRange
	// Epoch, when set, is the cluster map epoch of the route's assignment:
	// DialStage fails with ErrStaleRoute when the peer serves another.
	Epoch  uint64
	Logger *slog.Logger // nil: slog.Default()
}

// RemoteStage is a pipeline.Stage served by a peer over StageProtocol:
// Forward sends the micro-batch (sequences, tokens, activations) and
// reads back the stage's activations or logits and the sequences it
// dropped; End is a control message. Streams are kept and reused, at most
// MaxInFlight at once; every read and write has a deadline, and ctx ending
// aborts the request's stream. Every error is a *RemoteError naming the
// peer and its layers.
//
// It is safe for concurrent use.
type RemoteStage struct {
	h      host.Host
	proto  protocol.ID
	peer   peer.ID
	layers LayerRange
	name   string
	forks  bool // the peer takes forked sessions (set by the hello)
	cfg    RemoteConfig
	log    *slog.Logger
	sem    chan struct{}

	mu     sync.Mutex
	idle   []*rstream
	open   map[*rstream]struct{}
	closed bool
}

// errEncode is wrapped when a request cannot be encoded (a NaN in the
// activations, a malformed batch): nothing was sent.
var errEncode = errors.New("encode request")

// rstream is a stream with its buffers, used by one request at a time.
type rstream struct {
	s       network.Stream
	in, out []byte
	c       coder
	used    time.Time // when it was last released
}

// DialStage connects h to the peer p, asks its stage server which layers
// it serves, and returns a RemoteStage for it. Close releases its streams.
func DialStage(ctx context.Context, h host.Host, p peer.AddrInfo, cfg RemoteConfig) (*RemoteStage, error) {
	return dialStage(ctx, h, p, cfg, StageProtocol)
}

// withDefaults returns cfg with its zero fields set.
func (cfg RemoteConfig) withDefaults() RemoteConfig {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 2
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultClientIdleTimeout
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}

// newRemoteStage returns a client of p's proto streams, without a word to
// p; cfg has its defaults.
func newRemoteStage(h host.Host, p peer.ID, cfg RemoteConfig, proto protocol.ID) *RemoteStage {
	return &RemoteStage{
		h: h, proto: proto, peer: p, cfg: cfg, log: cfg.Logger.With("peer", p),
		sem: make(chan struct{}, cfg.MaxInFlight), open: make(map[*rstream]struct{}),
	}
}

// dialStage is DialStage over proto.
func dialStage(ctx context.Context, h host.Host, p peer.AddrInfo, cfg RemoteConfig, proto protocol.ID) (*RemoteStage, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Codec.Validate(); err != nil {
		return nil, fmt.Errorf("dial stage %s: %w", p.ID, err)
	}
	r := newRemoteStage(h, p.ID, cfg, proto)
	if len(p.Addrs) > 0 {
		dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
		err := h.Connect(dctx, p)
		cancel()
		if err != nil {
			return nil, r.fail(fmt.Errorf("%w: connect: %w", ErrPeerUnreachable, err))
		}
	}
	if RelayOnly(h, p.ID) {
		return nil, r.fail(fmt.Errorf("%w: %w", ErrPeerUnreachable, ErrRelayOnly))
	}
	hello := func(dst []byte, _ *rstream) ([]byte, error) { return appendHello(dst, infoForks), nil }
	err := r.roundTrip(ctx, msgHello, hello, func(t msgType, body []byte, _ *rstream) error {
		if t != msgInfo {
			return fmt.Errorf("%w: a %d message for a hello", ErrProtocol, t)
		}
		in, err := decodeInfo(body)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		lo, hi, epoch := in.lo, in.hi, in.epoch
		r.layers, r.name, r.forks = LayerRange{lo, hi}, in.name, in.features&infoForks != 0
		if cfg.Layers != (LayerRange{}) && cfg.Layers != r.layers {
			return fmt.Errorf("%w: want %v", ErrWrongLayers, cfg.Layers)
		}
		if cfg.Epoch != 0 && cfg.Epoch != epoch {
			return fmt.Errorf("%w: the route's epoch %d, the stage's %d", ErrStaleRoute, cfg.Epoch, epoch)
		}
		return nil
	})
	if err != nil {
		r.Close()
		return nil, err
	}
	r.log = r.log.With("layers", r.layers.String())
	return r, nil
}

// Peer returns the stage's peer.
func (r *RemoteStage) Peer() peer.ID { return r.peer }

// Forks reports whether the peer said it takes forked sessions
// (pipeline.Seq.From); a batch with one must not be sent to one that
// did not.
func (r *RemoteStage) Forks() bool { return r.forks }

// Layers returns the layers the peer said it serves.
func (r *RemoteStage) Layers() LayerRange { return r.layers }

// String names the stage: the peer's stage name at the peer.
func (r *RemoteStage) String() string { return fmt.Sprintf("%s@%s", r.name, r.peer) }

// fail wraps err in a *RemoteError for the stage, unless it holds one
// already: a later hop's, that came back along a route.
func (r *RemoteStage) fail(err error) error {
	var re *RemoteError
	if errors.As(err, &re) {
		return re
	}
	return &RemoteError{Peer: r.peer, Layers: r.layers, Err: err}
}

// Forward sends b to the stage and returns b with the stage's output: its
// sequences, tokens, activations, logits and the failures it added. On
// error the batch is spoiled and nil is returned.
func (r *RemoteStage) Forward(ctx context.Context, b *pipeline.Batch) (*pipeline.Batch, error) {
	failed := len(b.Failed)
	err := r.roundTrip(ctx, msgForward, func(d []byte, rs *rstream) ([]byte, error) {
		// The failures of earlier stages stay here: the peer sees only
		// the live sequences.
		return rs.c.appendBatch(d, b, failed)
	}, func(t msgType, body []byte, rs *rstream) error {
		switch t {
		case msgResult:
			if err := rs.c.decodeBatch(body, b, r.fail); err != nil {
				return fmt.Errorf("%w: %w", ErrProtocol, err)
			}
			return nil
		case msgError:
			cause, err := decodeError(body)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrProtocol, err)
			}
			return fmt.Errorf("%w: %w", ErrStageFailed, cause)
		}
		return fmt.Errorf("%w: a %d message for a forward", ErrProtocol, t)
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// End ends the sessions ids on the stage.
func (r *RemoteStage) End(ctx context.Context, ids []uint64) error {
	if len(ids) == 0 {
		return nil
	}
	if len(ids) > maxEndIDs {
		return r.fail(fmt.Errorf("%w: %d sessions to end in one message", pipeline.ErrBadBatch, len(ids)))
	}
	return r.roundTrip(ctx, msgEnd, func(d []byte, _ *rstream) ([]byte, error) {
		return appendEnd(d, ids), nil
	}, func(t msgType, body []byte, _ *rstream) error {
		switch t {
		case msgAck:
			if len(body) != 0 {
				return fmt.Errorf("%w: ack of %d bytes", ErrProtocol, len(body))
			}
			return nil
		case msgError:
			cause, err := decodeError(body)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrProtocol, err)
			}
			return fmt.Errorf("%w: %w", ErrStageFailed, cause)
		}
		return fmt.Errorf("%w: a %d message for an end", ErrProtocol, t)
	})
}

// Close aborts every stream to the peer; requests in flight fail, later
// ones fail with ErrClosed.
func (r *RemoteStage) Close() error {
	r.mu.Lock()
	r.closed = true
	streams := make([]*rstream, 0, len(r.open))
	for rs := range r.open {
		streams = append(streams, rs)
	}
	r.open, r.idle = nil, nil
	r.mu.Unlock()
	for _, rs := range streams {
		rs.s.Reset()
	}
	return nil
}

// chain sends b as a chain forward along rt (whose first hop is the
// stage's peer) and waits for the answer: nil once every hop after has
// answered, or a *RemoteError naming the hop that failed.
func (r *RemoteStage) chain(ctx context.Context, rt *chainRoute, b *pipeline.Batch) error {
	return r.roundTrip(ctx, msgChain, func(d []byte, rs *rstream) ([]byte, error) {
		d, err := appendRoute(d, rt)
		if err != nil {
			return d, err
		}
		return rs.c.appendBatch(d, b, 0)
	}, chainReply)
}

// chainReply reads the answer to a chain forward or a delivery.
func chainReply(t msgType, body []byte, _ *rstream) error {
	switch t {
	case msgAck:
		if len(body) != 0 {
			return fmt.Errorf("%w: ack of %d bytes", ErrProtocol, len(body))
		}
		return nil
	case msgHopError:
		re, err := decodeHopError(body)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		return re
	case msgError:
		cause, err := decodeError(body)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		return fmt.Errorf("%w: %w", ErrStageFailed, cause)
	}
	return fmt.Errorf("%w: a %d message for a chain forward", ErrProtocol, t)
}

// deliver sends b to the gateway (the peer, on ResultProtocol) as the
// result of its request req, and waits for its ack.
func (r *RemoteStage) deliver(ctx context.Context, req uint64, origins []byte, b *pipeline.Batch) error {
	return r.roundTrip(ctx, msgDeliver, func(d []byte, rs *rstream) ([]byte, error) {
		return rs.c.appendBatch(appendDeliver(d, req, origins), b, 0)
	}, chainReply)
}

// roundTrip sends one request of type t, its body appended by body, on a
// stream of its own, and passes the reply to reply. Errors come back as
// *RemoteError.
func (r *RemoteStage) roundTrip(ctx context.Context, t msgType, body func([]byte, *rstream) ([]byte, error), reply func(msgType, []byte, *rstream) error) error {
	rs, err := r.acquire(ctx)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { rs.s.Reset() })
	err = r.send(rs, t, body)
	if err == nil {
		err = r.receive(rs, reply)
	}
	if !stop() {
		err = ctx.Err()
	}
	return r.settle(rs, err)
}

// acquire takes one of the MaxInFlight slots and a stream; settle gives
// them back.
func (r *RemoteStage) acquire(ctx context.Context) (*rstream, error) {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, r.fail(ctx.Err())
	}
	rs, err := r.stream(ctx)
	if err != nil {
		<-r.sem
		return nil, r.fail(err)
	}
	return rs, nil
}

// settle ends a request on rs that ended with err: it keeps the stream
// when it is still in step, and frees the request's slot. It returns err
// as a *RemoteError.
func (r *RemoteStage) settle(rs *rstream, err error) error {
	defer func() { <-r.sem }()
	if err == nil {
		r.release(rs)
		return nil
	}
	// A stage's refusal of the batch, a later hop's error, or a request
	// that could not be encoded, leaves the stream in step; every other
	// failure may not.
	var re *RemoteError
	if errors.Is(err, ErrStageFailed) || errors.Is(err, errEncode) || errors.As(err, &re) {
		r.release(rs)
	} else {
		r.discard(rs)
	}
	if re == nil && errors.Is(err, ErrProtocol) {
		r.log.Warn("refused a reply from a stage peer", "err", err)
	}
	return r.fail(err)
}

// send writes a request, under a deadline.
func (r *RemoteStage) send(rs *rstream, t msgType, body func([]byte, *rstream) ([]byte, error)) error {
	var enc func([]byte) ([]byte, error)
	if body != nil {
		enc = func(d []byte) ([]byte, error) { return body(d, rs) }
	}
	out, err := appendMessage(rs.out[:0], t, enc)
	rs.out = out
	if err != nil {
		return fmt.Errorf("%w: %w", errEncode, err)
	}
	rs.s.SetWriteDeadline(time.Now().Add(r.cfg.WriteTimeout))
	if _, err := rs.s.Write(out); err != nil {
		return fmt.Errorf("%w: write: %w", ErrPeerUnreachable, err)
	}
	return nil
}

// receive reads the reply, under a deadline, and passes it to reply.
func (r *RemoteStage) receive(rs *rstream, reply func(msgType, []byte, *rstream) error) error {
	rs.s.SetReadDeadline(time.Now().Add(r.cfg.RequestTimeout))
	rt, rbody, buf, err := readMessage(rs.s, rs.in, r.cfg.MaxMessageBytes)
	rs.in = buf
	if err != nil {
		if errors.Is(err, errMessage) {
			return fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		if err := r.unsupported(err); err != nil {
			return err
		}
		return fmt.Errorf("%w: read: %w", ErrPeerUnreachable, err)
	}
	return reply(rt, rbody, rs)
}

// unsupported returns, when err says that the peer does not serve the
// protocol (when opening the stream, or, negotiated lazily, at the first
// read), and that protocol is one a version 1 peer lacks, an error that
// says so; nil otherwise.
func (r *RemoteStage) unsupported(err error) error {
	if r.proto == StageProtocol || !errors.Is(err, msmux.ErrNotSupported[protocol.ID]{}) {
		return nil
	}
	return fmt.Errorf("%w: %w: the peer does not serve %s (an older version?): %w", ErrPeerUnreachable, ErrProtocol, r.proto, err)
}

// stream returns an idle stream, or opens one.
func (r *RemoteStage) stream(ctx context.Context) (*rstream, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	var stale []*rstream
	for len(r.idle) > 0 {
		rs := r.idle[len(r.idle)-1]
		r.idle = r.idle[:len(r.idle)-1]
		if time.Since(rs.used) < r.cfg.IdleTimeout {
			r.mu.Unlock()
			return rs, nil
		}
		delete(r.open, rs)
		stale = append(stale, rs)
	}
	r.mu.Unlock()
	for _, rs := range stale {
		rs.s.Reset()
	}
	// Stage streams never run over a relayed link. libp2p's NewStream
	// refuses a limited connection (relay v2's) unless the context carries
	// network.WithAllowLimitedConn, which this package never sets: it
	// waits for a direct connection (hole punching) until dctx ends, then
	// fails with network.ErrLimitedConn or the context's error. A relay
	// that grants unlimited connections is caught by the address check.
	dctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
	defer cancel()
	s, err := r.h.NewStream(dctx, r.peer, r.proto)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err := r.unsupported(err); err != nil {
			return nil, err
		}
		if errors.Is(err, network.ErrLimitedConn) || RelayOnly(r.h, r.peer) {
			return nil, fmt.Errorf("%w: open stream: %w: %w", ErrPeerUnreachable, ErrRelayOnly, err)
		}
		return nil, fmt.Errorf("%w: open stream: %w", ErrPeerUnreachable, err)
	}
	if isRelayAddr(s.Conn().RemoteMultiaddr()) {
		s.Reset()
		return nil, fmt.Errorf("%w: open stream: %w", ErrPeerUnreachable, ErrRelayOnly)
	}
	rs := &rstream{s: s, c: coder{codec: r.cfg.Codec, limits: r.cfg.Limits}}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		s.Reset()
		return nil, ErrClosed
	}
	r.open[rs] = struct{}{}
	return rs, nil
}

// release keeps rs for the next request.
func (r *RemoteStage) release(rs *rstream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		rs.s.Reset()
		return
	}
	rs.used = time.Now()
	r.idle = append(r.idle, rs)
}

// discard resets rs and forgets it.
func (r *RemoteStage) discard(rs *rstream) {
	rs.s.Reset()
	r.mu.Lock()
	delete(r.open, rs)
	r.mu.Unlock()
}

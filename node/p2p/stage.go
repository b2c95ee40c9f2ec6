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
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/strata-llm/strata/pipeline"
	"github.com/strata-llm/strata/pipeline/wire"
)

// StageProtocol is the stage protocol's ID: a gateway (or the stage before)
// sends micro-batches to a stage server and reads back what the stage made
// of them, one request at a time on a stream, any number of streams at
// once. See message.go for the messages.
const StageProtocol protocol.ID = "/strata/stage/1.0.0"

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
	Allow  func(peer.ID) bool
	Logger *slog.Logger // nil: slog.Default()
}

// DefaultMaxStreams is a stage server's bound on streams when its options
// set none.
const DefaultMaxStreams = 256

// StageServer serves a pipeline.Stage on a host under StageProtocol. Each
// stream is served by its own goroutine, one request after another; the
// stage's Forward is called by one stream at a time (a stage forwards one
// micro-batch at a time), its End from any.
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
	s := &StageServer{h: h, stage: stage, opts: opts, log: opts.Logger}
	s.name = opts.Layers.String()
	if n, ok := stage.(fmt.Stringer); ok {
		s.name = n.String()
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	h.SetStreamHandler(StageProtocol, s.handle)
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
	s.cancel()
	s.wg.Wait()
	return nil
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
	stop := context.AfterFunc(s.ctx, func() { st.Reset() })
	defer stop()

	p := st.Conn().RemotePeer()
	log := s.log.With("peer", p, "stage", s.name)
	var (
		in, out []byte
		b       pipeline.Batch
		ids     []uint64
		c       = coder{codec: s.opts.Codec, limits: s.opts.Limits}
	)
	refuse := func(err error) {
		log.Warn("refused a message from a peer", "err", err)
		st.Reset()
	}
	for {
		st.SetReadDeadline(time.Now().Add(s.opts.IdleTimeout))
		t, body, buf, err := readMessage(st, in, s.opts.MaxMessageBytes)
		in = buf
		if err != nil {
			if errors.Is(err, errMessage) {
				refuse(err)
			} else {
				if !errors.Is(err, io.EOF) && s.ctx.Err() == nil {
					log.Debug("stage stream ended", "err", err)
				}
				st.Reset()
			}
			return
		}
		switch t {
		case msgHello:
			out, err = appendMessage(out[:0], msgInfo, func(d []byte) ([]byte, error) {
				return appendInfo(d, s.opts.Layers.Lo, s.opts.Layers.Hi, s.name, s.opts.Epoch), nil
			})
		case msgForward:
			b.Reset()
			if err := c.decodeBatch(body, &b, func(e error) error { return e }); err != nil {
				refuse(err)
				return
			}
			out, err = s.forward(&c, &b, out[:0])
		case msgEnd:
			if ids, err = decodeEnd(body, ids); err != nil {
				refuse(err)
				return
			}
			if endErr := s.stage.End(s.ctx, ids); endErr != nil {
				out, err = appendMessage(out[:0], msgError, func(d []byte) ([]byte, error) { return appendError(d, endErr), nil })
			} else {
				out, err = appendMessage(out[:0], msgAck, nil)
			}
		default:
			refuse(fmt.Errorf("a %d message from a client: %w", t, errMessage))
			return
		}
		if err != nil {
			log.Error("encode reply", "err", err)
			st.Reset()
			return
		}
		st.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
		if _, err := st.Write(out); err != nil {
			log.Debug("write reply", "err", err)
			st.Reset()
			return
		}
	}
}

// forward runs b through the stage and appends the reply: the result, or
// the error that failed the batch.
func (s *StageServer) forward(c *coder, b *pipeline.Batch, dst []byte) ([]byte, error) {
	s.fwd.Lock()
	out, err := s.stage.Forward(s.ctx, b)
	s.fwd.Unlock()
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

// RemoteConfig configures a RemoteStage. The zero value works.
type RemoteConfig struct {
	// Codec encodes the activations sent to the stage; the zero value is
	// wire.Lossless.
	Codec wire.Codec
	// MaxInFlight bounds the requests (Forward and End) in flight to the
	// peer at once, one a stream; a caller beyond it waits (0: 2).
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
	peer   peer.ID
	layers LayerRange
	name   string
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
	if err := cfg.Codec.Validate(); err != nil {
		return nil, fmt.Errorf("dial stage %s: %w", p.ID, err)
	}
	r := &RemoteStage{
		h: h, peer: p.ID, cfg: cfg, log: cfg.Logger.With("peer", p.ID),
		sem: make(chan struct{}, cfg.MaxInFlight), open: make(map[*rstream]struct{}),
	}
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
	err := r.roundTrip(ctx, msgHello, nil, func(t msgType, body []byte, _ *rstream) error {
		if t != msgInfo {
			return fmt.Errorf("%w: a %d message for a hello", ErrProtocol, t)
		}
		lo, hi, name, epoch, err := decodeInfo(body)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		r.layers, r.name = LayerRange{lo, hi}, name
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

// Layers returns the layers the peer said it serves.
func (r *RemoteStage) Layers() LayerRange { return r.layers }

// String names the stage: the peer's stage name at the peer.
func (r *RemoteStage) String() string { return fmt.Sprintf("%s@%s", r.name, r.peer) }

// fail wraps err in a *RemoteError for the stage.
func (r *RemoteStage) fail(err error) error {
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

// roundTrip sends one request of type t, its body appended by body, on a
// stream of its own, and passes the reply to reply. Errors come back as
// *RemoteError.
func (r *RemoteStage) roundTrip(ctx context.Context, t msgType, body func([]byte, *rstream) ([]byte, error), reply func(msgType, []byte, *rstream) error) error {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return r.fail(ctx.Err())
	}
	defer func() { <-r.sem }()
	rs, err := r.stream(ctx)
	if err != nil {
		return r.fail(err)
	}
	stop := context.AfterFunc(ctx, func() { rs.s.Reset() })
	err = r.exchange(rs, t, body, reply)
	if !stop() {
		r.discard(rs)
		return r.fail(ctx.Err())
	}
	if err != nil {
		// A stage's refusal of the batch, or a request that could not be
		// encoded, leaves the stream in step; every other failure may not.
		if errors.Is(err, ErrStageFailed) || errors.Is(err, errEncode) {
			r.release(rs)
		} else {
			r.discard(rs)
		}
		if errors.Is(err, ErrProtocol) {
			r.log.Warn("refused a reply from a stage peer", "err", err)
		}
		return r.fail(err)
	}
	r.release(rs)
	return nil
}

// exchange writes the request and reads the reply, under deadlines.
func (r *RemoteStage) exchange(rs *rstream, t msgType, body func([]byte, *rstream) ([]byte, error), reply func(msgType, []byte, *rstream) error) error {
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
	rs.s.SetReadDeadline(time.Now().Add(r.cfg.RequestTimeout))
	rt, rbody, buf, err := readMessage(rs.s, rs.in, r.cfg.MaxMessageBytes)
	rs.in = buf
	if err != nil {
		if errors.Is(err, errMessage) {
			return fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		return fmt.Errorf("%w: read: %w", ErrPeerUnreachable, err)
	}
	return reply(rt, rbody, rs)
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
	s, err := r.h.NewStream(dctx, r.peer, StageProtocol)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
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

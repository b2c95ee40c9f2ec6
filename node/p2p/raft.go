package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/gostream"
)

// RaftProtocol is the protocol Raft's RPCs travel on: each stream is one
// of raft.NetworkTransport's pooled connections.
const RaftProtocol protocol.ID = "/strata/raft/1.0.0"

// raftProtectTag is the connection manager tag that keeps Raft peers'
// connections from being trimmed.
const raftProtectTag = "raft"

// ErrRaftAddress: a raft.ServerAddress that is not a peer ID.
var ErrRaftAddress = errors.New("p2p: raft address is not a peer ID")

// RaftStreamLayer implements raft.StreamLayer over libp2p streams under
// RaftProtocol: a server's address is its peer ID (string form), so the
// ServerAddress of a raft.Server is peer.ID.String(). The peers dialed
// and accepted are protected in the host's connection manager (tag
// "raft") until the layer is closed.
//
// Dial is made from Raft's goroutines, and Accept from its listener; all
// methods may be called concurrently.
type RaftStreamLayer struct {
	h     host.Host
	ln    net.Listener
	allow func(peer.ID) bool
	log   *slog.Logger

	mu        sync.Mutex
	protected map[peer.ID]struct{}
	closed    bool
}

var _ raft.StreamLayer = (*RaftStreamLayer)(nil)

// NewRaftStreamLayer listens for RaftProtocol streams on h. Close it (or
// the transport built on it) to stop listening.
func NewRaftStreamLayer(h host.Host) (*RaftStreamLayer, error) {
	ln, err := gostream.Listen(h, RaftProtocol)
	if err != nil {
		return nil, fmt.Errorf("p2p: listen for raft: %w", err)
	}
	return &RaftStreamLayer{h: h, ln: ln, protected: make(map[peer.ID]struct{})}, nil
}

// Accept waits for the next Raft stream from a peer. Its RemoteAddr's
// String is the peer's ID. With an Allow function (RaftTransportConfig),
// streams from peers it refuses are closed and logged.
func (l *RaftStreamLayer) Accept() (net.Conn, error) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return nil, err
		}
		pid, ok := remotePeer(c)
		if l.allow != nil && (!ok || !l.allow(pid)) {
			l.log.Warn("refused a raft stream from a non-member", "peer", pid)
			c.Close()
			continue
		}
		if ok {
			l.protect(pid)
		}
		return c, nil
	}
}

// remotePeer is the peer at the other end of a gostream conn.
func remotePeer(c net.Conn) (peer.ID, bool) {
	if s, ok := c.(network.Stream); ok { // gostream's conn embeds the stream
		return s.Conn().RemotePeer(), true
	}
	pid, err := peer.Decode(c.RemoteAddr().String())
	return pid, err == nil
}

// Close stops accepting streams and unprotects the peers the layer
// protected. Open conns stay open; Raft's transport closes its own.
func (l *RaftStreamLayer) Close() error {
	l.mu.Lock()
	ids := l.protected
	l.protected = nil
	l.closed = true
	l.mu.Unlock()
	for id := range ids {
		l.h.ConnManager().Unprotect(id, raftProtectTag)
	}
	return l.ln.Close()
}

// Addr returns the host's address in Raft's terms: its String is the
// host's peer ID.
func (l *RaftStreamLayer) Addr() net.Addr { return l.ln.Addr() }

// Dial opens a Raft stream to the peer whose ID is address, connecting
// first if need be, giving up after timeout (none when timeout <= 0).
func (l *RaftStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	pid, err := peer.Decode(string(address))
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrRaftAddress, address, err)
	}
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	c, err := gostream.Dial(ctx, l.h, pid, RaftProtocol)
	if err != nil {
		return nil, fmt.Errorf("p2p: raft dial %s: %w", pid, err)
	}
	l.protect(pid)
	return c, nil
}

func (l *RaftStreamLayer) protect(pid peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if _, ok := l.protected[pid]; ok {
		return
	}
	l.protected[pid] = struct{}{}
	l.h.ConnManager().Protect(pid, raftProtectTag)
}

// RaftTransportConfig configures NewRaftTransport. The zero value works.
type RaftTransportConfig struct {
	// MaxPool is the number of idle connections (streams) kept per peer.
	// 0: 3.
	MaxPool int
	// Timeout is the I/O deadline of each RPC (an AppendEntries carrying
	// a large batch or an InstallSnapshot is scaled up from it by Raft).
	// 0: 10s. Raise it for WAN links.
	Timeout time.Duration
	// Allow, when set, admits the peers whose Raft streams are accepted
	// (a cluster's members); the others are closed.
	Allow  func(peer.ID) bool
	Logger *slog.Logger // nil: slog.Default()
}

// NewRaftTransport returns a raft.NetworkTransport whose connections are
// RaftProtocol streams on h (see RaftStreamLayer). Raft closes it on
// Shutdown; close it yourself if it was never handed to raft.NewRaft.
func NewRaftTransport(h host.Host, cfg RaftTransportConfig) (*raft.NetworkTransport, error) {
	if cfg.MaxPool == 0 {
		cfg.MaxPool = 3
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	layer, err := NewRaftStreamLayer(h)
	if err != nil {
		return nil, err
	}
	layer.allow, layer.log = cfg.Allow, cfg.Logger
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: cfg.MaxPool,
		Timeout: cfg.Timeout,
		Logger:  NewRaftLogger(cfg.Logger).Named("raft-net"),
	}), nil
}

// NewRaftLogger adapts log to the hclog.Logger that Raft's Config and
// transport take. Raft is chatty: its Info and Debug lines go to log at
// Debug, its Warn and Error lines at Warn and Error, its Trace lines
// nowhere. A Warn or Error line whose error is a connection's end (a reset
// stream, EOF, a closed connection) goes at Debug too: peers come and go,
// and each departure made the transport log an error per pooled stream.
// The Raft subsystem's name is under the key "logger".
func NewRaftLogger(log *slog.Logger) hclog.Logger {
	if log == nil {
		log = slog.Default()
	}
	// The intercept logger's own output is off; every line reaches the
	// sink, which maps it onto log.
	l := hclog.NewInterceptLogger(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Off})
	l.RegisterSink(slogSink{log})
	return l
}

// slogSink forwards hclog lines to a slog.Logger.
type slogSink struct{ log *slog.Logger }

func (s slogSink) Accept(name string, level hclog.Level, msg string, args ...any) {
	var lvl slog.Level
	switch level {
	case hclog.Trace:
		return
	case hclog.Warn:
		lvl = slog.LevelWarn
	case hclog.Error:
		lvl = slog.LevelError
	default:
		lvl = slog.LevelDebug
	}
	if lvl > slog.LevelDebug && connEnded(args) {
		lvl = slog.LevelDebug
	}
	ctx := context.Background()
	if !s.log.Enabled(ctx, lvl) {
		return
	}
	if name != "" {
		args = append([]any{"logger", name}, args...)
	}
	s.log.Log(ctx, lvl, msg, args...)
}

// connEnded reports whether an hclog line's arguments hold an error that
// is only a connection's end: a reset stream, EOF, or a closed connection.
func connEnded(args []any) bool {
	for _, a := range args {
		if err, ok := a.(error); ok && (errors.Is(err, network.ErrReset) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)) {
			return true
		}
	}
	return false
}

package weights

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// client asks peers for parts under Protocol. It keeps the streams it
// opened for the next requests, one request at a time on each. It is safe
// for concurrent use.
type client struct {
	h           host.Host
	dialTimeout time.Duration
	ioTimeout   time.Duration

	mu     sync.Mutex
	idle   map[peer.ID][]*cstream
	open   map[*cstream]struct{}
	closed bool
}

// cstream is a stream with its buffers, used by one request at a time.
type cstream struct {
	s    network.Stream
	out  []byte
	in   [replyPrefix]byte
	used time.Time // when it was last released
}

func newClient(h host.Host, dialTimeout, ioTimeout time.Duration) *client {
	return &client{
		h: h, dialTimeout: dialTimeout, ioTimeout: ioTimeout,
		idle: make(map[peer.ID][]*cstream), open: make(map[*cstream]struct{}),
	}
}

// get reads [req.off, req.off+req.n) of a part from p into dst, which is
// req.n bytes long. It returns the bytes received (of the part, whether or
// not the request succeeded) and an error wrapping ErrNotHeld,
// ErrRefused, ErrUnreachable, ErrProtocol or ctx's.
func (c *client) get(ctx context.Context, p peer.ID, req request, dst []byte) (int, error) {
	cs, err := c.stream(ctx, p)
	if err != nil {
		return 0, err
	}
	stop := context.AfterFunc(ctx, func() { cs.s.Reset() })
	n, keep, err := c.exchange(cs, req, dst)
	if !stop() {
		c.discard(cs)
		return n, ctx.Err()
	}
	if keep {
		c.release(p, cs)
	} else {
		c.discard(cs)
	}
	return n, err
}

// exchange writes the request and reads its reply, under deadlines. keep
// says whether the stream is still in step for the next request.
func (c *client) exchange(cs *cstream, req request, dst []byte) (n int, keep bool, err error) {
	cs.out = appendRequest(cs.out[:0], req)
	cs.s.SetWriteDeadline(time.Now().Add(c.ioTimeout))
	if _, err := cs.s.Write(cs.out); err != nil {
		return 0, false, fmt.Errorf("%w: write: %w", ErrUnreachable, err)
	}
	cs.s.SetReadDeadline(time.Now().Add(c.ioTimeout))
	if _, err := io.ReadFull(cs.s, cs.in[:]); err != nil {
		return 0, false, fmt.Errorf("%w: read: %w", ErrUnreachable, err)
	}
	status, size, err := replyHeader(cs.in[:], req.n)
	if err != nil {
		return 0, false, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if status != statusOK {
		var reason [maxReasonLen]byte
		if _, err := io.ReadFull(cs.s, reason[:size]); err != nil {
			return 0, false, fmt.Errorf("%w: read: %w", ErrUnreachable, noEOF(err))
		}
		why := string(reason[:size])
		if status == statusNotHeld {
			return 0, true, fmt.Errorf("%w: %s", ErrNotHeld, why)
		}
		return 0, true, fmt.Errorf("%w: %s", ErrRefused, why)
	}
	for n < size {
		cs.s.SetReadDeadline(time.Now().Add(c.ioTimeout))
		m, err := io.ReadFull(cs.s, dst[n:min(size, n+piece)])
		n += m
		if err != nil {
			return n, false, fmt.Errorf("%w: read: %w", ErrUnreachable, noEOF(err))
		}
	}
	return n, true, nil
}

// stream returns an idle stream to p, or opens one.
func (c *client) stream(ctx context.Context, p peer.ID) (*cstream, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errClosed
	}
	var stale []*cstream
	for idle := c.idle[p]; len(idle) > 0; idle = c.idle[p] {
		cs := idle[len(idle)-1]
		c.idle[p] = idle[:len(idle)-1]
		if time.Since(cs.used) < defaultStreamIdle {
			c.mu.Unlock()
			return cs, nil
		}
		delete(c.open, cs)
		stale = append(stale, cs)
	}
	c.mu.Unlock()
	for _, cs := range stale {
		cs.s.Reset()
	}
	dctx, cancel := context.WithTimeout(ctx, c.dialTimeout)
	defer cancel()
	s, err := c.h.NewStream(dctx, p, Protocol)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: open stream: %w", ErrUnreachable, err)
	}
	cs := &cstream{s: s}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		s.Reset()
		return nil, errClosed
	}
	c.open[cs] = struct{}{}
	return cs, nil
}

// release keeps cs for p's next request.
func (c *client) release(p peer.ID, cs *cstream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		cs.s.Reset()
		return
	}
	cs.used = time.Now()
	c.idle[p] = append(c.idle[p], cs)
}

// discard resets cs and forgets it.
func (c *client) discard(cs *cstream) {
	cs.s.Reset()
	c.mu.Lock()
	delete(c.open, cs)
	c.mu.Unlock()
}

// forget drops p's idle streams (a peer that served a bad chunk).
func (c *client) forget(p peer.ID) {
	c.mu.Lock()
	idle := c.idle[p]
	delete(c.idle, p)
	for _, cs := range idle {
		delete(c.open, cs)
	}
	c.mu.Unlock()
	for _, cs := range idle {
		cs.s.Reset()
	}
}

// close resets every stream; requests in flight fail.
func (c *client) close() {
	c.mu.Lock()
	c.closed = true
	streams := make([]*cstream, 0, len(c.open))
	for cs := range c.open {
		streams = append(streams, cs)
	}
	c.open, c.idle = nil, nil
	c.mu.Unlock()
	for _, cs := range streams {
		cs.s.Reset()
	}
}

// errClosed: the fetch that owns the client ended.
var errClosed = errors.New("weights client closed")

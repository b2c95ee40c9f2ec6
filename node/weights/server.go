package weights

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
)

// ServerOptions configure a Server. The zero value works.
type ServerOptions struct {
	// Allow, when set, admits a peer's streams; the others are reset and
	// logged (a cluster serves its members and admitted joiners only).
	Allow func(peer.ID) bool
	// IdleTimeout is how long a stream may wait for its next request (0:
	// DefaultIdleTimeout); IOTimeout bounds writing each piece of a reply
	// (0: DefaultIOTimeout).
	IdleTimeout time.Duration
	IOTimeout   time.Duration
	// MaxStreams bounds the streams served at once, from all peers; a
	// stream beyond it is reset (0: DefaultMaxStreams).
	MaxStreams int
	Logger     *slog.Logger // nil: slog.Default()
	// Knobs are test hooks; nil in production.
	Knobs *ServerKnobs
}

// ServerKnobs are a Server's test hooks.
type ServerKnobs struct {
	// Corrupt, when set, may change the bytes of part at offset off in
	// the part before they are sent (to test a peer serving bad chunks).
	// p is the server's buffer, valid during the call.
	Corrupt func(part string, off int64, p []byte)
}

// Server serves the parts of model files its Sources hold, under Protocol.
// Each stream is served by a goroutine of its own.
type Server struct {
	h      host.Host
	opts   ServerOptions
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	files   map[string]*entry
	closed  bool
	streams int
}

// entry is a served source. Reads hold mu for reading; Remove takes it to
// wait for them.
type entry struct {
	src     Source
	mu      sync.RWMutex
	removed bool
}

// Serve registers a handler for Protocol on h that serves the sources
// added to the Server until Close.
func Serve(h host.Host, opts ServerOptions) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.IOTimeout <= 0 {
		opts.IOTimeout = DefaultIOTimeout
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = DefaultMaxStreams
	}
	s := &Server{h: h, opts: opts, log: opts.Logger, files: make(map[string]*entry)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	h.SetStreamHandler(Protocol, s.handle)
	return s
}

// Add serves src as the file digest, in place of any source added before
// under it.
func (s *Server) Add(digest string, src Source) {
	s.mu.Lock()
	old := s.files[digest]
	s.files[digest] = &entry{src: src}
	s.mu.Unlock()
	if old != nil {
		old.retire()
	}
}

// Remove stops serving the file digest. When it returns, no read of its
// source is in progress or will start: the source may be closed.
func (s *Server) Remove(digest string) {
	s.mu.Lock()
	old := s.files[digest]
	delete(s.files, digest)
	s.mu.Unlock()
	if old != nil {
		old.retire()
	}
}

func (e *entry) retire() {
	e.mu.Lock()
	e.removed = true
	e.mu.Unlock()
}

// Close unregisters the handler, aborts every stream and waits for their
// goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.h.RemoveStreamHandler(Protocol)
	s.cancel()
	s.wg.Wait()
	return nil
}

// handle serves one stream until it ends, fails, or the server closes.
func (s *Server) handle(st network.Stream) {
	p := st.Conn().RemotePeer()
	if s.opts.Allow != nil && !s.opts.Allow(p) {
		s.log.Warn("refused a weights stream from a non-member", "peer", p)
		st.Reset()
		return
	}
	s.mu.Lock()
	if s.closed || s.streams >= s.opts.MaxStreams {
		full := !s.closed
		s.mu.Unlock()
		if full {
			s.log.Warn("too many weights streams: refused one", "peer", p, "max_streams", s.opts.MaxStreams)
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

	log := s.log.With("peer", p)
	var in, out []byte
	buf := make([]byte, 0, piece)
	for {
		st.SetReadDeadline(time.Now().Add(s.opts.IdleTimeout))
		req, b, err := readRequest(st, in)
		in = b
		if err != nil {
			if errors.Is(err, errMessage) {
				log.Warn("refused a weights request", "err", err)
			} else if !errors.Is(err, io.EOF) && s.ctx.Err() == nil {
				log.Debug("weights stream ended", "err", err)
			}
			st.Reset()
			return
		}
		if err := s.serve(st, req, out[:0], buf); err != nil {
			log.Debug("weights reply", "part", partName(req.part), "err", err)
			st.Reset()
			return
		}
	}
}

// serve answers one request on st. An error leaves the stream out of step:
// the caller resets it.
func (s *Server) serve(st network.Stream, req request, out, buf []byte) error {
	s.mu.Lock()
	e := s.files[req.digest]
	s.mu.Unlock()
	write := func(b []byte) error {
		st.SetWriteDeadline(time.Now().Add(s.opts.IOTimeout))
		_, err := st.Write(b)
		return err
	}
	var size int64
	held := false
	if e != nil {
		e.mu.RLock()
		if !e.removed {
			size, held = e.src.Size(req.digest, req.part)
		}
		e.mu.RUnlock()
	}
	switch {
	case !held:
		return write(appendRefusal(out, statusNotHeld, fmt.Sprintf("%s of %s not held", partName(req.part), req.digest)))
	case req.off > size || int64(req.n) > size-req.off:
		return write(appendRefusal(out, statusBadRequest, fmt.Sprintf("[%d, +%d) beyond the %d bytes of %s", req.off, req.n, size, partName(req.part))))
	}
	// Read the first piece before answering, so that a source that fails
	// at once gets a clean refusal.
	first := min(req.n, piece)
	buf = buf[:first]
	if err := s.read(e, req, req.off, buf); err != nil {
		code := byte(statusFailed)
		if errors.Is(err, ErrNotHeld) {
			code = statusNotHeld
		}
		return write(appendRefusal(out, code, err.Error()))
	}
	if err := write(appendReply(out, statusOK, req.n)); err != nil {
		return err
	}
	for done := 0; ; {
		if err := write(buf); err != nil {
			return err
		}
		done += len(buf)
		if done == req.n {
			return nil
		}
		buf = buf[:min(req.n-done, piece)]
		if err := s.read(e, req, req.off+int64(done), buf); err != nil {
			return err // the stream is reset: the client asks again
		}
	}
}

// read reads a piece of the request's part at off into p.
func (s *Server) read(e *entry, req request, off int64, p []byte) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.removed {
		return ErrNotHeld
	}
	if err := e.src.Read(req.digest, req.part, off, p); err != nil {
		return fmt.Errorf("read %s: %w", partName(req.part), err)
	}
	if k := s.opts.Knobs; k != nil && k.Corrupt != nil {
		k.Corrupt(req.part, off, p)
	}
	return nil
}

package weights

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Protocol is the weights protocol's ID. A client sends requests on a
// stream, one after another, each answered before the next is sent; a
// stream serves any number of requests, and a client opens several to
// fetch in parallel.
//
// A request, all integers little-endian, fixed width:
//
//	offset  size  field
//	0       1     version (1)
//	1       1     D: digest length, 1 to 255
//	2       2     P: part name length, 0 to 4096 (0: the header)
//	4       8     offset within the part, below 2^63
//	12      4     length, 1 to MaxRequest
//	16      D     digest of the file, "sha256:HEX"
//	16+D    P     part: a tensor's name, or empty for the header
//
// A reply:
//
//	0       1     status: 0 ok, 1 not held, 2 bad request, 3 failed
//	1       4     L: body length
//	5       L     ok: the part's bytes [offset, offset+length), L equal
//	              to the length asked; otherwise a reason, UTF-8, at
//	              most 1024 bytes
//
// Every length is checked against its bound before anything is allocated
// or read. A server resets the stream on a malformed request; a client
// resets it on a reply that does not answer its request. Reads and writes
// have deadlines on both sides, and a server that fails while sending the
// bytes of an ok reply resets the stream.
const Protocol protocol.ID = "/strata/weights/1.0.0"

// MaxRequest is the most bytes one request asks for.
const MaxRequest = 16 << 20

// Bounds of the wire format.
const (
	wireVersion   = 1
	requestPrefix = 16
	replyPrefix   = 5
	maxDigestLen  = 255
	maxPartLen    = 4096
	maxReasonLen  = 1024
	// piece is how much a server reads from its source and writes at once,
	// and a client reads under one deadline.
	piece = 1 << 20
)

// Statuses of a reply.
const (
	statusOK         = 0
	statusNotHeld    = 1
	statusBadRequest = 2
	statusFailed     = 3
)

// Timeouts of the protocol, when a configuration leaves them zero.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultIOTimeout   = 30 * time.Second // one request's write, or one piece of a reply
	DefaultIdleTimeout = 2 * time.Minute  // a server's wait for a stream's next request
	DefaultMaxStreams  = 256
	defaultStreamIdle  = time.Minute // a client keeps an unused stream this long
)

// Errors of the protocol. A request's failure is a *PeerError that wraps
// one of them and names the peer and the part.
var (
	// ErrNotHeld: the peer (or a Source) does not hold the part.
	ErrNotHeld = errors.New("part not held")
	// ErrRange: a range beyond the part's end.
	ErrRange = errors.New("range beyond the part")
	// ErrUnreachable: the peer could not be reached, or the stream broke
	// or timed out (a peer that refuses the fetcher, see ServerOptions.
	// Allow, resets its streams and reads as this).
	ErrUnreachable = errors.New("weights peer unreachable")
	// ErrProtocol: the peer sent a reply that does not answer the
	// request, or a malformed one.
	ErrProtocol = errors.New("weights protocol violation")
	// ErrRefused: the peer refused the request as malformed or failed to
	// read its source.
	ErrRefused = errors.New("weights request refused")
	// ErrBadChunk: a chunk from the peer does not match the manifest.
	ErrBadChunk = errors.New("chunk does not match the manifest")
	// ErrNoPeer: no peer could serve a chunk (every one failed, served a
	// bad chunk, or does not hold the part).
	ErrNoPeer = errors.New("no peer could serve the part")
)

// errMessage is wrapped by every error about a malformed message.
var errMessage = errors.New("malformed weights message")

// PeerError is a failed request to a peer: it names the peer and the part.
type PeerError struct {
	Peer peer.ID
	Part string // "" for the header
	Err  error
}

// Error names the peer, the part and the cause.
func (e *PeerError) Error() string {
	return fmt.Sprintf("peer %s, part %s: %v", e.Peer, partName(e.Part), e.Err)
}

// Unwrap returns the cause.
func (e *PeerError) Unwrap() error { return e.Err }

// request asks for [off, off+n) of a part of a file.
type request struct {
	digest, part string
	off          int64
	n            int
}

// check checks r against the bounds of the wire format.
func (r request) check() error {
	switch {
	case len(r.digest) == 0 || len(r.digest) > maxDigestLen:
		return fmt.Errorf("%w: digest of %d bytes, want 1 to %d", errMessage, len(r.digest), maxDigestLen)
	case len(r.part) > maxPartLen:
		return fmt.Errorf("%w: part name of %d bytes, more than %d", errMessage, len(r.part), maxPartLen)
	case r.off < 0:
		return fmt.Errorf("%w: offset %d", errMessage, r.off)
	case r.n <= 0 || r.n > MaxRequest:
		return fmt.Errorf("%w: length %d, want 1 to %d", errMessage, r.n, MaxRequest)
	}
	return nil
}

// appendRequest appends r, which passes check, to dst.
func appendRequest(dst []byte, r request) []byte {
	dst = append(dst, wireVersion, byte(len(r.digest)))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(r.part)))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.off))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(r.n))
	dst = append(dst, r.digest...)
	return append(dst, r.part...)
}

// readRequest reads one request from rd, using buf (returned, maybe grown)
// for its bytes. A malformed request is an error wrapping errMessage; an
// rd that ends before a request starts returns io.EOF.
func readRequest(rd io.Reader, buf []byte) (request, []byte, error) {
	buf = grow(buf, requestPrefix)
	if _, err := io.ReadFull(rd, buf[:requestPrefix]); err != nil {
		return request{}, buf, err
	}
	le := binary.LittleEndian
	if v := buf[0]; v != wireVersion {
		return request{}, buf, fmt.Errorf("%w: version %d, want %d", errMessage, v, wireVersion)
	}
	d, p := int(buf[1]), int(le.Uint16(buf[2:]))
	off, n := le.Uint64(buf[4:]), le.Uint32(buf[12:])
	if off > math.MaxInt64 {
		return request{}, buf, fmt.Errorf("%w: offset %d", errMessage, off)
	}
	switch {
	case d == 0:
		return request{}, buf, fmt.Errorf("%w: empty digest", errMessage)
	case p > maxPartLen:
		return request{}, buf, fmt.Errorf("%w: part name of %d bytes, more than %d", errMessage, p, maxPartLen)
	case n == 0 || n > MaxRequest:
		return request{}, buf, fmt.Errorf("%w: length %d, want 1 to %d", errMessage, n, MaxRequest)
	}
	r := request{off: int64(off), n: int(n)}
	buf = grow(buf, d+p)
	if _, err := io.ReadFull(rd, buf[:d+p]); err != nil {
		return request{}, buf, noEOF(err)
	}
	r.digest, r.part = string(buf[:d]), string(buf[d:d+p])
	return r, buf, nil
}

// appendReply appends a reply header of status with a body of n bytes.
func appendReply(dst []byte, status byte, n int) []byte {
	dst = append(dst, status)
	return binary.LittleEndian.AppendUint32(dst, uint32(n))
}

// appendRefusal appends a whole reply of status, with a reason.
func appendRefusal(dst []byte, status byte, reason string) []byte {
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen]
		for !utf8.ValidString(reason) { // do not cut a character
			reason = reason[:len(reason)-1]
		}
	}
	return append(appendReply(dst, status, len(reason)), reason...)
}

// replyHeader checks a reply's header against a request for want bytes:
// for statusOK the body must be exactly want bytes, otherwise at most
// maxReasonLen.
func replyHeader(b []byte, want int) (status byte, n int, err error) {
	status, n = b[0], int(binary.LittleEndian.Uint32(b[1:]))
	switch {
	case status == statusOK && n != want:
		return 0, 0, fmt.Errorf("%w: %d bytes for a request of %d", errMessage, n, want)
	case status > statusFailed:
		return 0, 0, fmt.Errorf("%w: status %d", errMessage, status)
	case status != statusOK && n > maxReasonLen:
		return 0, 0, fmt.Errorf("%w: a reason of %d bytes", errMessage, n)
	}
	return status, n, nil
}

// grow returns buf with a length of at least n.
func grow(buf []byte, n int) []byte {
	if cap(buf) < n {
		return make([]byte, n)
	}
	return buf[:cap(buf)]
}

// noEOF turns an EOF in the middle of a message into ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

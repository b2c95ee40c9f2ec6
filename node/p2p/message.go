package p2p

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/strata-llm/strata/pipeline"
	"github.com/strata-llm/strata/pipeline/wire"
)

// Message layout on a stage stream (and a result stream). All integers
// little-endian, fixed width:
//
//	offset  size  field
//	0       4     magic "STSG"
//	4       1     version: that of the message's type, below (1 or 2)
//	5       1     type (msgHello .. msgDeliver)
//	6       2     reserved, zero
//	8       4     body length
//	12      4     CRC32C (Castagnoli) of the body
//	16      ...   body
//
// Version 1 types, on StageProtocol and StageProtocolV2 streams, byte for
// byte what version 1 peers send and accept:
//
//	hello    (client)  asks for the stage's info: empty, or the features
//	                   the client uses, u32 (bits: 0 forks); a version 1
//	                   server ignores the body
//	info     (server)  lo u32, hi u32, name length u16, name, then
//	                   optionally epoch u64: the cluster map epoch of the
//	                   assignment the stage serves (absent: 0, a static
//	                   pipeline), and, only when the hello had a body,
//	                   after the epoch (then always present) the features
//	                   the server takes, u32 (bit 0: batches may fork
//	                   sessions, infoForks)
//	forward  (client)  a batch (below)
//	result   (server)  a batch: what the stage returned
//	end      (client)  count u32, then count session IDs u64
//	ack      (server)  empty: the end (or, version 2, the chain forward or
//	                   the delivery) was done
//	error    (server)  code u8, message length u16, message: the stage
//	                   failed the whole batch
//
// Version 2 types, for chain forwarding. A version 1 peer refuses them
// (and never sees them: they travel only on StageProtocolV2 and
// ResultProtocol streams, which it does not serve):
//
//	chain    (client)  a chain forward: a route (below), then a batch; the
//	                   server runs its stage and sends the result on, to
//	                   the route's next hop as a chain forward, or from
//	                   the last hop to the gateway as a delivery. It
//	                   answers ack once the rest of the route has answered
//	                   ack, else a hop error
//	hoperr   (server)  a hop error: peer ID length u8, peer ID, lo u32,
//	                   hi u32 (the layers of the hop that failed, which may
//	                   be any hop after the receiver of the chain forward,
//	                   or the gateway with layers 0-0), kinds u8 (bits: 0
//	                   unreachable, 1 protocol, 2 stage failed, 3 wrong
//	                   layers, 4 stale route, 5 relay only, 6 closed: the
//	                   sentinels the error matched there), code u8,
//	                   message length u16, message
//	deliver  (client)  on a ResultProtocol stream, the last hop to the
//	                   gateway: request ID u64, origins (below), a batch:
//	                   the route's result; answered ack (also for a request
//	                   the gateway no longer waits for) or error
//
// A route, in a chain forward:
//
//	0       8     request ID: the gateway's, for its delivery
//	8       1     index: the receiver's place in the route, from 0
//	9       1     hops k (1 to maxHops): the receiver and those after it
//	10      ...   the gateway: a peer entry
//	...     k hop entries: a peer entry, lo u32, hi u32, epoch u64 (the
//	              layers and map epoch the hop must serve; epoch 0: any)
//	...     origins
//
// A peer entry is ID length u8, ID, address count u8 (at most maxAddrs),
// then each address as length u16 and a binary multiaddr: where to dial
// the peer when not connected to it. Origins are count u32, then count
// bytes: for each failure of the batch that follows, in order, the route
// index of the hop that dropped the sequence (the gateway names the peer
// from it).
//
// A batch body:
//
//	0       8     micro-batch number
//	8       4     vocab (columns of the logits frame; 0 before the last stage)
//	12      4     nseq: live sequences
//	16      4     ntok: token ids, 0 or the rows of the sequences
//	20      4     nfail: sequences the stage dropped (results only)
//	24      4     xlen: bytes of the activations frame, 0 for none
//	28      4     llen: bytes of the logits frame, 0 for none
//	32      20·nseq  sequences: ID u64, position u32, rows u32, flags u32
//	                 (bit 0 logits, bit 1 open, bit 2 fork: with open, the
//	                 session starts as a copy of another's first
//	                 position positions; the other bits zero)
//	...     4·ntok   token ids u32
//	...     8·nfork  for each sequence with bit 2, in order, the session it
//	                 forks, u64 (not zero). A peer that does not say it
//	                 takes forks (infoForks) is never sent bit 2: an older
//	                 one refuses it as malformed
//	...     nfail entries: ID u64, code u8, stage length u8, message
//	                 length u16, stage, message
//	...     xlen  a wire frame of kind Activations, (rows, dim), its
//	              sequence table equal to the batch's
//	...     llen  a wire frame of kind Logits, (sequences with logits,
//	              vocab), one row a sequence at the position of its last row
//
// Every length is checked against what the body holds and against the
// reader's limits before anything is allocated for it; the frames carry
// their own CRC.
const (
	msgMagic      = "STSG"
	msgHeaderSize = 16
	batchFixed    = 32
	seqEntry      = 20
	failFixed     = 12
)

// msgType is a message's type byte.
type msgType uint8

const (
	msgHello msgType = 1 + iota
	msgInfo
	msgForward
	msgResult
	msgEnd
	msgAck
	msgError
	// Version 2.
	msgChain
	msgHopError
	msgDeliver
	msgTypes // one past the last
)

// version returns the version that introduced t, which its messages carry.
func (t msgType) version() byte {
	if t >= msgChain {
		return 2
	}
	return 1
}

// Limits of what a stage stream accepts from a peer.
const (
	// DefaultMaxMessageBytes bounds a message when the configuration sets
	// no bound: 256 MiB, the default limit of a wire frame.
	DefaultMaxMessageBytes = 256 << 20
	maxEndIDs              = 1 << 20
	maxNameLen             = 1 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errMessage is wrapped by every refusal of a message's bytes; the stage
// protocol reports it as ErrProtocol.
var errMessage = errors.New("malformed message")

// appendMessage appends a message of type t whose body is appended by
// body (nil for none), and returns the extended slice.
func appendMessage(dst []byte, t msgType, body func([]byte) ([]byte, error)) ([]byte, error) {
	start := len(dst)
	dst = append(dst, msgMagic...)
	dst = append(dst, t.version(), byte(t), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	if body != nil {
		var err error
		if dst, err = body(dst); err != nil {
			return dst[:start], err
		}
	}
	n := len(dst) - start - msgHeaderSize
	if int64(n) > math.MaxUint32 {
		return dst[:start], fmt.Errorf("message body of %d bytes: %w", n, wire.ErrTooLarge)
	}
	h := dst[start:]
	binary.LittleEndian.PutUint32(h[8:], uint32(n))
	binary.LittleEndian.PutUint32(h[12:], crc32.Checksum(h[msgHeaderSize:], castagnoli))
	return dst, nil
}

// readMessage reads one message from r into buf[:0] (grown as needed) and
// returns its type and body, a slice of the returned buffer, which the
// caller owns and may pass back. A body over limit bytes is refused before
// it is read. At a clean end of the stream it returns io.EOF.
func readMessage(r io.Reader, buf []byte, limit int) (msgType, []byte, []byte, error) {
	if cap(buf) < msgHeaderSize {
		buf = make([]byte, msgHeaderSize, 4096)
	}
	buf = buf[:msgHeaderSize]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, buf[:0], err
	}
	le := binary.LittleEndian
	t := msgType(buf[5])
	switch {
	case string(buf[:4]) != msgMagic:
		return 0, nil, buf[:0], fmt.Errorf("magic %q, want %q: %w", buf[:4], msgMagic, errMessage)
	case t == 0 || t >= msgTypes:
		return 0, nil, buf[:0], fmt.Errorf("unknown type %d: %w", t, errMessage)
	case buf[4] != t.version():
		return 0, nil, buf[:0], fmt.Errorf("version %d for a type %d message, want %d: %w", buf[4], t, t.version(), errMessage)
	case buf[6] != 0 || buf[7] != 0:
		return 0, nil, buf[:0], fmt.Errorf("reserved bytes %#x %#x: %w", buf[6], buf[7], errMessage)
	}
	n := int64(le.Uint32(buf[8:]))
	if n > int64(limit) {
		return 0, nil, buf[:0], fmt.Errorf("body of %d bytes, limit %d: %w", n, limit, errMessage)
	}
	sum := le.Uint32(buf[12:])
	// Grow with what arrives, not with what the peer claims.
	for have := int64(0); have < n; {
		step := min(n-have, max(64<<10, have))
		if int64(cap(buf)-len(buf)) < step {
			buf = append(buf[:cap(buf)], make([]byte, step)...)[:len(buf)]
		}
		k, err := io.ReadFull(r, buf[len(buf):len(buf)+int(step)])
		buf = buf[:len(buf)+k]
		have += int64(k)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, buf[:0], err
		}
	}
	body := buf[msgHeaderSize:]
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return 0, nil, buf[:0], fmt.Errorf("checksum %08x, computed %08x: %w", sum, got, errMessage)
	}
	return t, body, buf, nil
}

// Failure codes of a dropped sequence or a failed batch: the sentinel the
// receiver's error matches.
const (
	codeOther uint8 = iota
	codeKVBudget
	codeNoSession
	codePosition
	codeBadToken
	codeBadBatch
	codeNoSource
)

var codeErrs = [...]error{
	codeKVBudget:  pipeline.ErrKVBudget,
	codeNoSession: pipeline.ErrNoSession,
	codePosition:  pipeline.ErrPosition,
	codeBadToken:  pipeline.ErrBadToken,
	codeBadBatch:  pipeline.ErrBadBatch,
	codeNoSource:  pipeline.ErrNoSource,
}

func errCode(err error) uint8 {
	for c, e := range codeErrs {
		if e != nil && errors.Is(err, e) {
			return uint8(c)
		}
	}
	return codeOther
}

// PeerCause is an error as a peer reported it: its message, and the
// pipeline sentinel it matched on the peer (ErrNoSession, ErrKVBudget...),
// if any, which it unwraps to.
//
// A cause that came back along a route in a hop error also matches the
// sentinels of this package the error matched where it arose
// (ErrPeerUnreachable, ErrStageFailed...).
type PeerCause struct {
	Msg   string // the error's text on the peer
	Code  error  // the sentinel, or nil
	kinds uint8  // bits of hopKinds
}

// Error returns the peer's text.
func (e *PeerCause) Error() string { return e.Msg }

// Unwrap returns the sentinel.
func (e *PeerCause) Unwrap() error { return e.Code }

// Is matches the sentinels of this package the error matched on the hop
// where it arose.
func (e *PeerCause) Is(target error) bool {
	for i, k := range hopKinds {
		if e.kinds&(1<<i) != 0 && target == k {
			return true
		}
	}
	return false
}

func causeOf(code uint8, msg string) *PeerCause {
	c := &PeerCause{Msg: msg}
	if int(code) < len(codeErrs) {
		c.Code = codeErrs[code]
	}
	return c
}

// truncate bounds s to n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// coder holds one side's buffers for encoding and decoding batches; one
// goroutine at a time uses it.
type coder struct {
	codec  wire.Codec
	limits wire.Limits
	hdr    wire.Header
	seqs   []wire.Seq
	lseqs  []wire.Seq
	logits []float32
}

// appendBatch appends b as a batch body: its sequences, tokens (when they
// are one a row), the failures from failed on, activations (when X holds
// rows·dim values and the stage wrote no logits) and logits.
func (c *coder) appendBatch(dst []byte, b *pipeline.Batch, failed int) ([]byte, error) {
	le := binary.LittleEndian
	rows := b.Rows()
	ntok := 0
	if rows > 0 && len(b.Tokens) == rows {
		ntok = rows
	}
	start := len(dst)
	dst = le.AppendUint64(dst, b.Num)
	dst = le.AppendUint32(dst, uint32(b.Vocab))
	dst = le.AppendUint32(dst, uint32(len(b.Seqs)))
	dst = le.AppendUint32(dst, uint32(ntok))
	dst = le.AppendUint32(dst, uint32(len(b.Failed)-failed))
	dst = append(dst, make([]byte, 8)...) // frame lengths, filled below
	c.seqs, c.lseqs = c.seqs[:0], c.lseqs[:0]
	for _, s := range b.Seqs {
		if s.N <= 0 || s.Pos < 0 || int64(s.Pos)+int64(s.N) > math.MaxUint32 {
			return dst[:start], fmt.Errorf("sequence %d: %d rows at position %d: %w", s.ID, s.N, s.Pos, pipeline.ErrBadBatch)
		}
		var flags uint32
		if s.Logits {
			flags |= 1
			c.lseqs = append(c.lseqs, wire.Seq{ID: s.ID, Pos: s.Pos + s.N - 1, N: 1})
		}
		if s.Open {
			flags |= 2
		}
		if s.From != 0 {
			if !s.Open {
				return dst[:start], fmt.Errorf("sequence %d forks session %d without opening: %w", s.ID, s.From, pipeline.ErrBadBatch)
			}
			flags |= 4
		}
		dst = le.AppendUint64(dst, s.ID)
		dst = le.AppendUint32(dst, uint32(s.Pos))
		dst = le.AppendUint32(dst, uint32(s.N))
		dst = le.AppendUint32(dst, flags)
		c.seqs = append(c.seqs, wire.Seq{ID: s.ID, Pos: s.Pos, N: s.N})
	}
	for _, t := range b.Tokens[:ntok] {
		if t < 0 || int64(t) > math.MaxUint32 {
			return dst[:start], fmt.Errorf("token %d: %w", t, pipeline.ErrBadBatch)
		}
		dst = le.AppendUint32(dst, uint32(t))
	}
	for _, s := range b.Seqs {
		if s.From != 0 {
			dst = le.AppendUint64(dst, s.From)
		}
	}
	for _, f := range b.Failed[failed:] {
		stage, msg := truncate(f.Stage, math.MaxUint8), truncate(f.Err.Error(), math.MaxUint16)
		dst = le.AppendUint64(dst, f.ID)
		dst = append(dst, errCode(f.Err), byte(len(stage)))
		dst = le.AppendUint16(dst, uint16(len(msg)))
		dst = append(dst, stage...)
		dst = append(dst, msg...)
	}
	var err error
	if rows > 0 && b.Vocab == 0 && len(b.X) > 0 {
		if len(b.X)%rows != 0 {
			return dst[:start], fmt.Errorf("%d activations for %d rows: %w", len(b.X), rows, pipeline.ErrBadBatch)
		}
		c.hdr = wire.Header{Kind: wire.Activations, Step: b.Num, Seqs: c.seqs, Rows: rows, Cols: len(b.X) / rows, Codec: c.codec}
		n := len(dst)
		if dst, err = wire.AppendFrame(dst, &c.hdr, b.X); err != nil {
			return dst[:start], err
		}
		le.PutUint32(dst[start+24:], uint32(len(dst)-n))
	}
	if len(c.lseqs) > 0 && b.Vocab > 0 {
		if len(b.Logits) != len(c.lseqs)*b.Vocab {
			return dst[:start], fmt.Errorf("%d logits for %d sequences of %d: %w", len(b.Logits), len(c.lseqs), b.Vocab, pipeline.ErrBadBatch)
		}
		c.hdr = wire.Header{Kind: wire.Logits, Step: b.Num, Seqs: c.lseqs, Rows: len(c.lseqs), Cols: b.Vocab, Codec: wire.Lossless}
		n := len(dst)
		if dst, err = wire.AppendFrame(dst, &c.hdr, b.Logits); err != nil {
			return dst[:start], err
		}
		le.PutUint32(dst[start+28:], uint32(len(dst)-n))
	}
	return dst, nil
}

// decodeBatch decodes the batch body src into b: Num, Seqs, Tokens, X,
// Logits and Vocab are replaced (reusing their arrays) and failures are
// appended to b.Failed, each SeqError's Err made by wrap from the cause the
// peer sent. Errors wrap errMessage or a wire sentinel; b is then
// unspecified.
func (c *coder) decodeBatch(src []byte, b *pipeline.Batch, wrap func(error) error) error {
	le := binary.LittleEndian
	if len(src) < batchFixed {
		return fmt.Errorf("batch of %d bytes: %w", len(src), errMessage)
	}
	lim := c.limits
	if lim.MaxRows <= 0 {
		lim.MaxRows = wire.DefaultLimits.MaxRows
	}
	num, vocab := le.Uint64(src), int64(le.Uint32(src[8:]))
	nseq, ntok, nfail := int64(le.Uint32(src[12:])), int64(le.Uint32(src[16:])), int64(le.Uint32(src[20:]))
	xlen, llen := int64(le.Uint32(src[24:])), int64(le.Uint32(src[28:]))
	rest := int64(len(src) - batchFixed)
	if nseq*seqEntry+ntok*4+nfail*failFixed+xlen+llen > rest || nseq > int64(lim.MaxRows) {
		return fmt.Errorf("batch of %d sequences, %d tokens, %d failures and frames of %d and %d bytes in %d bytes: %w", nseq, ntok, nfail, xlen, llen, len(src), errMessage)
	}
	b.Num, b.Vocab = num, int(vocab)
	b.Seqs, b.Tokens = b.Seqs[:0], b.Tokens[:0]
	p := src[batchFixed:]
	rows, nlogits, nfork := int64(0), 0, int64(0)
	for range nseq {
		s := pipeline.Seq{ID: le.Uint64(p), Pos: int(le.Uint32(p[8:])), N: int(le.Uint32(p[12:]))}
		flags := le.Uint32(p[16:])
		p = p[seqEntry:]
		if flags&^7 != 0 || flags&6 == 4 || s.N == 0 || int64(s.Pos)+int64(s.N) > math.MaxUint32 {
			return fmt.Errorf("sequence %d: %d rows at position %d, flags %#x: %w", s.ID, s.N, s.Pos, flags, errMessage)
		}
		s.Logits, s.Open = flags&1 != 0, flags&2 != 0
		if s.Logits {
			nlogits++
		}
		if flags&4 != 0 {
			s.From = 1 // a placeholder until the fork table is read
			nfork++
		}
		rows += int64(s.N)
		if rows > int64(lim.MaxRows) {
			return fmt.Errorf("more than %d rows: %w", lim.MaxRows, wire.ErrTooLarge)
		}
		b.Seqs = append(b.Seqs, s)
	}
	if ntok != 0 && ntok != rows {
		return fmt.Errorf("%d tokens for %d rows: %w", ntok, rows, errMessage)
	}
	for range ntok {
		b.Tokens = append(b.Tokens, int(le.Uint32(p)))
		p = p[4:]
	}
	if int64(len(p)) < nfork*8+nfail*failFixed+xlen+llen {
		return fmt.Errorf("%d forks cut short: %w", nfork, errMessage)
	}
	for i := range b.Seqs {
		if b.Seqs[i].From != 0 {
			if b.Seqs[i].From = le.Uint64(p); b.Seqs[i].From == 0 {
				return fmt.Errorf("sequence %d forks session 0: %w", b.Seqs[i].ID, errMessage)
			}
			p = p[8:]
		}
	}
	for range nfail {
		if len(p) < failFixed {
			return fmt.Errorf("failure entry cut short: %w", errMessage)
		}
		id, code, ns, nm := le.Uint64(p), p[8], int(p[9]), int(le.Uint16(p[10:]))
		p = p[failFixed:]
		if len(p) < ns+nm {
			return fmt.Errorf("failure entry cut short: %w", errMessage)
		}
		stage, msg := string(p[:ns]), string(p[ns:ns+nm])
		p = p[ns+nm:]
		b.Failed = append(b.Failed, pipeline.SeqError{ID: id, Stage: stage, Err: wrap(causeOf(code, msg))})
	}
	if int64(len(p)) != xlen+llen {
		return fmt.Errorf("%d bytes left for frames of %d and %d: %w", len(p), xlen, llen, errMessage)
	}
	xf, lf := p[:xlen], p[xlen:]
	b.X = b.X[:0]
	if xlen > 0 {
		x, err := lim.DecodeFrame(xf, &c.hdr, b.X)
		if err != nil {
			return err
		}
		b.X = x
		if c.hdr.Kind != wire.Activations || int64(c.hdr.Rows) != rows || !sameSeqs(c.hdr.Seqs, b.Seqs, false) {
			return fmt.Errorf("activations frame of %v (%d, %d) does not match the batch's %d rows: %w", c.hdr.Kind, c.hdr.Rows, c.hdr.Cols, rows, errMessage)
		}
	}
	b.Logits = b.Logits[:0]
	if llen > 0 {
		l, err := lim.DecodeFrame(lf, &c.hdr, b.Logits)
		if err != nil {
			return err
		}
		b.Logits = l
		if c.hdr.Kind != wire.Logits || c.hdr.Rows != nlogits || int64(c.hdr.Cols) != vocab || !sameSeqs(c.hdr.Seqs, b.Seqs, true) {
			return fmt.Errorf("logits frame of %v (%d, %d) does not match the batch's %d sequences with logits of %d: %w", c.hdr.Kind, c.hdr.Rows, c.hdr.Cols, nlogits, vocab, errMessage)
		}
	}
	return nil
}

// sameSeqs reports whether a frame's sequence table fs describes seqs: all
// of them, or (logits) one row for each sequence with Logits, at its last
// position.
func sameSeqs(fs []wire.Seq, seqs []pipeline.Seq, logits bool) bool {
	k := 0
	for _, s := range seqs {
		want := wire.Seq{ID: s.ID, Pos: s.Pos, N: s.N}
		if logits {
			if !s.Logits {
				continue
			}
			want = wire.Seq{ID: s.ID, Pos: s.Pos + s.N - 1, N: 1}
		}
		if k >= len(fs) || fs[k] != want {
			return false
		}
		k++
	}
	return k == len(fs)
}

// infoForks is the feature bit of hello and info bodies for batches whose
// sequences fork sessions (pipeline.Seq.From).
const infoForks = 1

// stageInfo is an info body.
type stageInfo struct {
	lo, hi   int
	name     string
	epoch    uint64
	features uint32 // what the server takes, when the hello asked
}

// appendHello, appendInfo, appendEnd and appendError append those bodies.
// appendInfo writes the features only when the hello asked (withFeatures).
func appendHello(dst []byte, features uint32) []byte {
	return binary.LittleEndian.AppendUint32(dst, features)
}

func appendInfo(dst []byte, in stageInfo, withFeatures bool) []byte {
	name := truncate(in.name, maxNameLen)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(in.lo))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(in.hi))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(name)))
	dst = append(dst, name...)
	if in.epoch != 0 || withFeatures {
		dst = binary.LittleEndian.AppendUint64(dst, in.epoch)
	}
	if withFeatures {
		dst = binary.LittleEndian.AppendUint32(dst, in.features)
	}
	return dst
}

func decodeInfo(src []byte) (stageInfo, error) {
	var in stageInfo
	if len(src) < 10 {
		return in, fmt.Errorf("info of %d bytes: %w", len(src), errMessage)
	}
	le := binary.LittleEndian
	in.lo, in.hi = int(le.Uint32(src)), int(le.Uint32(src[4:]))
	n := int(le.Uint16(src[8:]))
	if (len(src) != 10+n && len(src) != 18+n && len(src) != 22+n) || in.lo >= in.hi {
		return stageInfo{}, fmt.Errorf("info of layers %d-%d, a name of %d bytes in %d: %w", in.lo, in.hi, n, len(src), errMessage)
	}
	in.name = string(src[10 : 10+n])
	if len(src) >= 18+n {
		in.epoch = le.Uint64(src[10+n:])
	}
	if len(src) == 22+n {
		in.features = le.Uint32(src[18+n:])
	}
	return in, nil
}

func appendEnd(dst []byte, ids []uint64) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(ids)))
	for _, id := range ids {
		dst = binary.LittleEndian.AppendUint64(dst, id)
	}
	return dst
}

func decodeEnd(src []byte, ids []uint64) ([]uint64, error) {
	if len(src) < 4 {
		return ids, fmt.Errorf("end of %d bytes: %w", len(src), errMessage)
	}
	n := int64(binary.LittleEndian.Uint32(src))
	if n > maxEndIDs || int64(len(src)) != 4+8*n {
		return ids, fmt.Errorf("end of %d sessions in %d bytes: %w", n, len(src), errMessage)
	}
	ids = ids[:0]
	for i := range n {
		ids = append(ids, binary.LittleEndian.Uint64(src[4+8*i:]))
	}
	return ids, nil
}

func appendError(dst []byte, err error) []byte {
	msg := truncate(err.Error(), math.MaxUint16)
	dst = append(dst, errCode(err))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(msg)))
	return append(dst, msg...)
}

func decodeError(src []byte) (*PeerCause, error) {
	if len(src) < 3 || len(src) != 3+int(binary.LittleEndian.Uint16(src[1:])) {
		return nil, fmt.Errorf("error of %d bytes: %w", len(src), errMessage)
	}
	return causeOf(src[0], string(src[3:])), nil
}

// Bounds of a route in a chain forward.
const (
	maxHops    = 64
	maxAddrs   = 8
	maxAddrLen = 1 << 10
	peerFixed  = 2  // ID length u8, address count u8
	hopFixed   = 16 // lo u32, hi u32, epoch u64
	routeFixed = 10 // request ID u64, index u8, hops u8
)

// chainRoute is the route of a chain forward: where its result goes.
type chainRoute struct {
	req     uint64        // the gateway's request ID
	index   int           // the receiver's place in the route
	gateway peer.AddrInfo // where the last hop delivers
	hops    []RouteHop    // the receiver, then the hops after it
	origins []byte        // the route index of the hop that dropped each failure of the batch
}

// appendPeer appends a peer entry: the ID and up to maxAddrs of its
// addresses (longer ones are left out).
func appendPeer(dst []byte, p peer.AddrInfo) ([]byte, error) {
	id := []byte(p.ID)
	if len(id) == 0 || len(id) > math.MaxUint8 {
		return dst, fmt.Errorf("peer ID of %d bytes: %w", len(id), pipeline.ErrBadBatch)
	}
	dst = append(dst, byte(len(id)))
	dst = append(dst, id...)
	n := len(dst)
	dst = append(dst, 0)
	for _, a := range p.Addrs {
		if dst[n] == maxAddrs {
			break
		}
		if a == nil || len(a.Bytes()) > maxAddrLen {
			continue
		}
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(a.Bytes())))
		dst = append(dst, a.Bytes()...)
		dst[n]++
	}
	return dst, nil
}

func decodePeer(src []byte) (peer.AddrInfo, []byte, error) {
	var p peer.AddrInfo
	if len(src) < 1 || len(src) < 1+int(src[0])+1 {
		return p, nil, fmt.Errorf("peer entry cut short: %w", errMessage)
	}
	id, err := peer.IDFromBytes(src[1 : 1+int(src[0])])
	if err != nil {
		return p, nil, fmt.Errorf("peer ID: %w: %w", err, errMessage)
	}
	p.ID = id
	src = src[1+int(src[0]):]
	n := int(src[0])
	src = src[1:]
	if n > maxAddrs {
		return p, nil, fmt.Errorf("%d addresses: %w", n, errMessage)
	}
	for range n {
		if len(src) < 2 {
			return p, nil, fmt.Errorf("address cut short: %w", errMessage)
		}
		l := int(binary.LittleEndian.Uint16(src))
		if l > maxAddrLen || len(src) < 2+l {
			return p, nil, fmt.Errorf("address of %d bytes: %w", l, errMessage)
		}
		a, err := ma.NewMultiaddrBytes(src[2 : 2+l])
		if err != nil {
			return p, nil, fmt.Errorf("address: %w: %w", err, errMessage)
		}
		p.Addrs = append(p.Addrs, a)
		src = src[2+l:]
	}
	return p, src, nil
}

// appendOrigins appends a failure origin list.
func appendOrigins(dst, origins []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(origins)))
	return append(dst, origins...)
}

// decodeOrigins decodes an origin list into origins[:0]; every origin must
// be below hops.
func decodeOrigins(src, origins []byte, hops int) ([]byte, []byte, error) {
	if len(src) < 4 {
		return origins, nil, fmt.Errorf("origins cut short: %w", errMessage)
	}
	n := int64(binary.LittleEndian.Uint32(src))
	if n > int64(len(src)-4) {
		return origins, nil, fmt.Errorf("%d origins in %d bytes: %w", n, len(src)-4, errMessage)
	}
	origins = append(origins[:0], src[4:4+n]...)
	for _, o := range origins {
		if int(o) >= hops {
			return origins, nil, fmt.Errorf("a failure from hop %d of %d: %w", o, hops, errMessage)
		}
	}
	return origins, src[4+n:], nil
}

// appendRoute appends r as a chain forward's route.
func appendRoute(dst []byte, r *chainRoute) ([]byte, error) {
	start := len(dst)
	if len(r.hops) == 0 || len(r.hops) > maxHops || r.index < 0 || r.index+len(r.hops) > maxHops {
		return dst, fmt.Errorf("a route of %d hops from hop %d: %w", len(r.hops), r.index, pipeline.ErrBadBatch)
	}
	dst = binary.LittleEndian.AppendUint64(dst, r.req)
	dst = append(dst, byte(r.index), byte(len(r.hops)))
	var err error
	if dst, err = appendPeer(dst, r.gateway); err != nil {
		return dst[:start], err
	}
	for _, h := range r.hops {
		if dst, err = appendPeer(dst, h.Peer); err != nil {
			return dst[:start], err
		}
		if h.Layers.Lo < 0 || h.Layers.Lo >= h.Layers.Hi || int64(h.Layers.Hi) > math.MaxUint32 {
			return dst[:start], fmt.Errorf("hop %s: %v: %w", h.Peer.ID, h.Layers, pipeline.ErrBadBatch)
		}
		dst = binary.LittleEndian.AppendUint32(dst, uint32(h.Layers.Lo))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(h.Layers.Hi))
		dst = binary.LittleEndian.AppendUint64(dst, h.Epoch)
	}
	return appendOrigins(dst, r.origins), nil
}

// decodeRoute decodes a chain forward's route into r, reusing its slices,
// and returns the rest of src: the batch.
func decodeRoute(src []byte, r *chainRoute) ([]byte, error) {
	if len(src) < routeFixed {
		return nil, fmt.Errorf("route of %d bytes: %w", len(src), errMessage)
	}
	r.req, r.index = binary.LittleEndian.Uint64(src), int(src[8])
	n := int(src[9])
	if n == 0 || r.index+n > maxHops {
		return nil, fmt.Errorf("a route of %d hops from hop %d: %w", n, r.index, errMessage)
	}
	var err error
	if r.gateway, src, err = decodePeer(src[routeFixed:]); err != nil {
		return nil, err
	}
	r.hops = r.hops[:0]
	for range n {
		var h RouteHop
		if h.Peer, src, err = decodePeer(src); err != nil {
			return nil, err
		}
		if len(src) < hopFixed {
			return nil, fmt.Errorf("hop entry cut short: %w", errMessage)
		}
		le := binary.LittleEndian
		h.Layers = LayerRange{int(le.Uint32(src)), int(le.Uint32(src[4:]))}
		h.Epoch = le.Uint64(src[8:])
		if h.Layers.Lo >= h.Layers.Hi {
			return nil, fmt.Errorf("hop %s of %v: %w", h.Peer.ID, h.Layers, errMessage)
		}
		src = src[hopFixed:]
		r.hops = append(r.hops, h)
	}
	r.origins, src, err = decodeOrigins(src, r.origins, r.index+n)
	return src, err
}

// appendDeliver appends a delivery's head: the request ID and the origins;
// the batch follows.
func appendDeliver(dst []byte, req uint64, origins []byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, req)
	return appendOrigins(dst, origins)
}

// decodeDeliver decodes a delivery's head into origins[:0] and returns the
// rest of src: the batch.
func decodeDeliver(src, origins []byte) (uint64, []byte, []byte, error) {
	if len(src) < 8 {
		return 0, origins, nil, fmt.Errorf("delivery of %d bytes: %w", len(src), errMessage)
	}
	origins, rest, err := decodeOrigins(src[8:], origins, maxHops)
	return binary.LittleEndian.Uint64(src), origins, rest, err
}

// hopKinds are the sentinels a hop error carries, by bit.
var hopKinds = [...]error{ErrPeerUnreachable, ErrProtocol, ErrStageFailed, ErrWrongLayers, ErrStaleRoute, ErrRelayOnly, ErrClosed}

// appendHopError appends e as a hop error.
func appendHopError(dst []byte, e *RemoteError) []byte {
	id := []byte(e.Peer)
	if len(id) > math.MaxUint8 {
		id = nil
	}
	var kinds uint8
	for i, k := range hopKinds {
		if errors.Is(e.Err, k) {
			kinds |= 1 << i
		}
	}
	msg := truncate(e.Err.Error(), math.MaxUint16)
	dst = append(dst, byte(len(id)))
	dst = append(dst, id...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(max(e.Layers.Lo, 0)))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(max(e.Layers.Hi, 0)))
	dst = append(dst, kinds, errCode(e.Err))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(msg)))
	return append(dst, msg...)
}

// decodeHopError decodes a hop error: a *RemoteError whose Err is a
// *PeerCause that matches the sentinels the error matched where it arose.
func decodeHopError(src []byte) (*RemoteError, error) {
	if len(src) < 1 || len(src) < 1+int(src[0])+12 {
		return nil, fmt.Errorf("hop error of %d bytes: %w", len(src), errMessage)
	}
	e := &RemoteError{}
	if n := int(src[0]); n > 0 {
		id, err := peer.IDFromBytes(src[1 : 1+n])
		if err != nil {
			return nil, fmt.Errorf("hop error's peer: %w: %w", err, errMessage)
		}
		e.Peer = id
	}
	p := src[1+int(src[0]):]
	le := binary.LittleEndian
	e.Layers = LayerRange{int(le.Uint32(p)), int(le.Uint32(p[4:]))}
	kinds, code, n := p[8], p[9], int(le.Uint16(p[10:]))
	if len(p) != 12+n || kinds>>len(hopKinds) != 0 {
		return nil, fmt.Errorf("hop error of %d bytes, kinds %#x: %w", len(src), kinds, errMessage)
	}
	c := causeOf(code, string(p[12:]))
	c.kinds = kinds
	e.Err = c
	return e, nil
}

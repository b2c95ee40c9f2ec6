package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/klauspost/compress/s2"
)

// Frame layout, version 1. All integers little-endian, fixed width:
//
//	offset  size     field
//	0       4        magic "STRW"
//	4       1        version (1)
//	5       1        kind: 1 activations, 2 logits, 3 top-k
//	6       1        dtype: 0 f32, 1 f16, 2 bf16, 3 q8
//	7       1        compression: 0 none, 1 zstd, 2 s2
//	8       4        frame length: every byte of the frame, CRC included
//	12      1        flags: bit 0 shuffle; the other bits zero
//	13      3        reserved, zero
//	16      16       session ID
//	32      8        step (micro-batch sequence number)
//	40      4        rows
//	44      4        cols (values a row; k for a top-k frame)
//	48      4        nseq: entries in the sequence table
//	52      4        payload length (bytes on the wire)
//	56      16·nseq  sequence table, one entry a sequence, in row order:
//	                 ID uint64, start position uint32, row count uint32
//	56+16·nseq       payload (see payload.go), compressed when compression ≠ 0
//	length-4 4       CRC32C (Castagnoli) of bytes [0, length-4)
//
// The first 12 bytes are all a stream reader needs to know how much to
// read (ReadFrame). Bytes 56.. stay 8-aligned for every nseq.
const (
	magic      = "STRW"
	prefixSize = 12 // magic .. frame length
	headerSize = 56
	seqSize    = 16
	crcSize    = 4
	maxFrame   = 1<<32 - 1 // the frame length field is a uint32
)

// Version is the frame format version this package writes and reads.
const Version = 1

// MinFrameSize is the size of the smallest well-formed frame header and
// checksum, without sequences or payload.
const MinFrameSize = headerSize + crcSize

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// The errors a frame is refused with. Every error of DecodeFrame,
// DecodeTopK, DecodeHeader and ReadFrame about the bytes it was given wraps
// one of ErrCorrupt, ErrNonFinite, ErrTooLarge and ErrVersion, so that a
// caller can tell a misbehaving peer (any of them) from its own I/O errors.
var (
	// ErrCorrupt: the frame is malformed: bad magic, bad checksum, lengths
	// or shapes that disagree, a payload that does not decode to its
	// declared size.
	ErrCorrupt = errors.New("wire: corrupt frame")
	// ErrNonFinite: a value is NaN or ±Inf (decoding), or is not finite
	// or not representable in the codec's dtype (encoding: an F16 value
	// beyond ±65504).
	ErrNonFinite = errors.New("wire: non-finite value")
	// ErrTooLarge: the frame, its rows, its cols, or its decoded values
	// exceed the decoder's Limits, or a frame to encode exceeds what the
	// format can describe.
	ErrTooLarge = errors.New("wire: frame too large")
	// ErrVersion: the frame is of a version, kind, dtype, compression or
	// flag this package does not know: the peer speaks another version.
	ErrVersion = errors.New("wire: unsupported frame version")
	// ErrInvalid: the arguments to an encoding function are wrong (a
	// header that does not match its data, an invalid Codec). It is a bug
	// of the caller, never of a peer.
	ErrInvalid = errors.New("wire: invalid frame arguments")
)

// Kind says what a frame carries.
type Kind uint8

// The frame kinds. The numbers are the frame's kind byte; 0 is never
// valid, and numbers above TopK are left for later kinds (errors,
// control), which version 1 decoders refuse with ErrVersion.
const (
	// Activations are a stage's output hidden states, rows×cols values
	// (cols the model's dim), sent to the next stage. Decode with
	// DecodeFrame.
	Activations Kind = 1
	// Logits are the last stage's output, rows×cols values (cols the
	// vocabulary size), sent to the gateway. Decode with DecodeFrame.
	Logits Kind = 2
	// TopK frames carry, for each row, the k best candidates of the last
	// stage as (token id uint32, value float32) pairs, cols = k. Encode
	// with AppendTopK, decode with DecodeTopK.
	TopK Kind = 3
)

var kindNames = [...]string{Activations: "activations", Logits: "logits", TopK: "topk"}

func (k Kind) valid() bool { return k != 0 && int(k) < len(kindNames) }

// String returns the kind's name, or "kind(N)" for an unknown one.
func (k Kind) String() string {
	if k.valid() {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Seq is one sequence's share of a frame's rows: N consecutive rows, at
// positions Pos..Pos+N-1 of sequence ID.
type Seq struct {
	ID  uint64
	Pos int // position of the first row, 0 <= Pos < 2^32
	N   int // rows, at least 1
}

// Header describes a frame: everything but its values.
//
// Seqs list the sequences whose rows the frame holds, in row order: the
// first Seqs[0].N rows are Seqs[0]'s, and so on; their N add up to Rows.
// A decoder does not check that sequence IDs are distinct or that their
// positions follow the receiver's state: that is the receiving stage's
// business.
type Header struct {
	Kind    Kind
	Session [16]byte // the session the frame belongs to
	Step    uint64   // micro-batch (or step) sequence number
	Seqs    []Seq
	Rows    int // rows of values, one a token
	Cols    int // values a row (k for TopK)
	Codec   Codec
}

// Limits bound what a decoder accepts from a peer. A zero field takes the
// default of DefaultLimits.
type Limits struct {
	// MaxFrameBytes bounds a whole frame on the wire and also its decoded
	// values (rows·cols·4 bytes; rows·k·8 for TopK), so that however small
	// a compressed frame is, decoding it allocates at most about twice
	// MaxFrameBytes (the values, and the uncompressed payload on the way).
	// At most 4 GiB - 1, the format's own limit.
	MaxFrameBytes int
	MaxRows       int // rows a frame
	MaxCols       int // values a row
}

// DefaultLimits are the limits of DecodeFrame, DecodeTopK, DecodeHeader,
// and of ReadFrame given no limit: 256 MiB frames, 2^20 rows, 2^20 cols.
var DefaultLimits = Limits{MaxFrameBytes: 256 << 20, MaxRows: 1 << 20, MaxCols: 1 << 20}

func (l Limits) norm() Limits {
	if l.MaxFrameBytes <= 0 {
		l.MaxFrameBytes = DefaultLimits.MaxFrameBytes
	}
	if int64(l.MaxFrameBytes) > maxFrame {
		l.MaxFrameBytes = int(min(maxFrame, math.MaxInt))
	}
	if l.MaxRows <= 0 {
		l.MaxRows = DefaultLimits.MaxRows
	}
	if l.MaxCols <= 0 {
		l.MaxCols = DefaultLimits.MaxCols
	}
	return l
}

// payloadSize is the uncompressed payload size of a frame of h's shape.
func payloadSize(h *Header) int {
	if h.Kind == TopK {
		return h.Rows*h.Cols*4 + valuesSize(h.Codec.DType, h.Rows, h.Cols)
	}
	return valuesSize(h.Codec.DType, h.Rows, h.Cols)
}

// checkHeader validates h for encoding a frame of kind; errors wrap
// ErrInvalid or ErrTooLarge.
func checkHeader(h *Header, kind Kind) error {
	if h.Kind != kind {
		return fmt.Errorf("kind %v, want %v: %w", h.Kind, kind, ErrInvalid)
	}
	if err := h.Codec.Validate(); err != nil {
		return err
	}
	if kind == TopK && h.Codec.DType == Q8 {
		return fmt.Errorf("codec %v: top-k values must be f32, f16 or bf16: %w", h.Codec, ErrInvalid)
	}
	if h.Rows <= 0 || h.Cols <= 0 {
		return fmt.Errorf("shape (%d, %d): %w", h.Rows, h.Cols, ErrInvalid)
	}
	// rows·cols·8 < 4 GiB bounds every payload size, and rows and cols
	// each; then the uncompressed payload must fit in a frame, and S2 must
	// be able to bound its output.
	if int64(h.Rows) > maxFrame/8/int64(h.Cols) || len(h.Seqs) > h.Rows {
		return fmt.Errorf("shape (%d, %d) with %d sequences: %w", h.Rows, h.Cols, len(h.Seqs), ErrTooLarge)
	}
	size := payloadSize(h)
	if int64(MinFrameSize+seqSize*len(h.Seqs))+int64(size) > maxFrame || h.Codec.Compression == S2 && s2.MaxEncodedLen(size) < 0 {
		return fmt.Errorf("shape (%d, %d) in %v: a payload of %d bytes: %w", h.Rows, h.Cols, h.Codec.DType, size, ErrTooLarge)
	}
	rows := 0
	for i, s := range h.Seqs {
		if s.N <= 0 || s.Pos < 0 || int64(s.Pos) > math.MaxUint32 || s.N > h.Rows-rows {
			return fmt.Errorf("seq %d (id %d): %d rows at position %d in a frame of %d rows: %w", i, s.ID, s.N, s.Pos, h.Rows, ErrInvalid)
		}
		rows += s.N
	}
	if rows != h.Rows {
		return fmt.Errorf("sequences hold %d rows, frame %d: %w", rows, h.Rows, ErrInvalid)
	}
	return nil
}

// appendHeader appends h's header and sequence table, with zero frame and
// payload lengths for appendPayload to fill in.
func appendHeader(dst []byte, h *Header) []byte {
	dst = append(dst, magic...)
	var flags byte
	if h.Codec.Shuffle {
		flags |= 1
	}
	dst = append(dst, Version, byte(h.Kind), byte(h.Codec.DType), byte(h.Codec.Compression),
		0, 0, 0, 0, // frame length
		flags, 0, 0, 0)
	dst = append(dst, h.Session[:]...)
	dst = binary.LittleEndian.AppendUint64(dst, h.Step)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(h.Rows))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(h.Cols))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(h.Seqs)))
	dst = binary.LittleEndian.AppendUint32(dst, 0) // payload length
	for _, s := range h.Seqs {
		dst = binary.LittleEndian.AppendUint64(dst, s.ID)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(s.Pos))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(s.N))
	}
	return dst
}

// planes returns the sizes of the byte planes of h's shuffled payload, in
// order, in p[:n]; n is 0 when h.Codec does not shuffle.
func planes(h *Header) (p [8]int, n int) {
	if !h.Codec.Shuffle {
		return p, 0
	}
	add := func(size, count int) {
		for range count {
			p[n] = size
			n++
		}
	}
	values := h.Rows * h.Cols
	if h.Kind == TopK {
		add(values, 4) // ids
	}
	if h.Codec.DType == Q8 {
		add(h.Rows*q8Blocks(h.Cols), 4) // scales
		add(values, 1)                  // quants
	} else {
		add(values, elemSize(h.Codec.DType))
	}
	return p, n
}

// appendPayload appends h's payload, filled by encode over a buffer of the
// uncompressed size and compressed with h's codec, and finishes the frame
// that starts at dst[start:] with its lengths and CRC.
func appendPayload(dst []byte, start int, h *Header, encode func(raw []byte) error) ([]byte, error) {
	p, size, c := len(dst), payloadSize(h), h.Codec.Compression
	if c == None {
		dst = grow(dst, size+crcSize)[:p+size]
		if err := encode(dst[p:]); err != nil {
			return dst[:start], err
		}
	} else {
		raw := getScratch(size)
		err := encode(*raw)
		if err == nil {
			pl, n := planes(h)
			dst = compress(dst, *raw, c, pl[:n])
		}
		putScratch(raw)
		if err != nil {
			return dst[:start], err
		}
	}
	n := int64(len(dst) - start + crcSize)
	if n > maxFrame {
		return dst[:start], fmt.Errorf("frame of %d bytes: %w", n, ErrTooLarge)
	}
	f := dst[start:]
	binary.LittleEndian.PutUint32(f[8:], uint32(n))
	binary.LittleEndian.PutUint32(f[52:], uint32(len(dst)-p))
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(f, castagnoli)), nil
}

// AppendFrame appends to dst a frame of h's header and data, the h.Rows ×
// h.Cols values row-major, encoded with h.Codec, and returns the extended
// slice (which the caller owns; dst is not retained). h.Kind must be
// Activations or Logits.
//
// It fails, returning dst unchanged, when h does not match data or is
// invalid (ErrInvalid), when the frame would exceed the format's 4 GiB
// (ErrTooLarge), or when a value is NaN or ±Inf, or does not fit the dtype
// (F16 beyond ±65504, BF16 beyond ~3.39e38) (ErrNonFinite): a stage that
// produces such values is broken, and a frame never carries them.
func AppendFrame(dst []byte, h *Header, data []float32) ([]byte, error) {
	if h.Kind != Activations && h.Kind != Logits {
		return dst, fmt.Errorf("append frame: kind %v (top-k frames take AppendTopK): %w", h.Kind, ErrInvalid)
	}
	if err := checkHeader(h, h.Kind); err != nil {
		return dst, fmt.Errorf("append frame: %w", err)
	}
	if len(data) != h.Rows*h.Cols {
		return dst, fmt.Errorf("append frame: %d values for shape (%d, %d): %w", len(data), h.Rows, h.Cols, ErrInvalid)
	}
	start := len(dst)
	dst = appendHeader(grow(dst, headerSize+seqSize*len(h.Seqs)), h)
	c := h.Codec
	dst, err := appendPayload(dst, start, h, func(raw []byte) error {
		var bad badValue
		if c.DType == Q8 {
			bad = encodeQ8(raw, data, h.Rows, h.Cols, c.Shuffle)
		} else {
			bad = encodeValues(raw, data, c.DType, c.Shuffle)
		}
		return bad.err(h, c.DType)
	})
	if err != nil {
		return dst, fmt.Errorf("append frame: %w", err)
	}
	return dst, nil
}

// err returns the error for a refused value, nil for none.
func (b badValue) err(h *Header, d DType) error {
	if b.index < 0 {
		return nil
	}
	r, c := b.index/h.Cols, b.index%h.Cols
	if b.finite {
		return fmt.Errorf("value %g at row %d, col %d is out of %v's range: %w", b.value, r, c, d, ErrNonFinite)
	}
	return fmt.Errorf("value %g at row %d, col %d: %w", b.value, r, c, ErrNonFinite)
}

// DecodeHeader checks the frame in src, its checksum and every field of its
// header, under DefaultLimits, and sets *h from it, reusing h.Seqs's array;
// the payload is not decoded. It tells a caller which decoder a frame
// needs (h.Kind), and how big its values are, before decoding it.
func DecodeHeader(src []byte, h *Header) error { return DefaultLimits.DecodeHeader(src, h) }

// DecodeHeader is DecodeHeader under the limits l.
func (l Limits) DecodeHeader(src []byte, h *Header) error {
	_, err := l.parse(src, h)
	if err != nil {
		return fmt.Errorf("decode frame header: %w", err)
	}
	return nil
}

// parse checks the frame in src but for its payload's contents, fills h,
// and returns the payload.
func (l Limits) parse(src []byte, h *Header) ([]byte, error) {
	l = l.norm()
	le := binary.LittleEndian
	if len(src) < MinFrameSize {
		return nil, fmt.Errorf("%d bytes, less than a header: %w", len(src), ErrCorrupt)
	}
	if string(src[:4]) != magic {
		return nil, fmt.Errorf("magic %q, want %q: %w", src[:4], magic, ErrCorrupt)
	}
	if src[4] != Version {
		return nil, fmt.Errorf("version %d, want %d: %w", src[4], Version, ErrVersion)
	}
	if n := le.Uint32(src[8:]); int64(n) > int64(l.MaxFrameBytes) {
		return nil, fmt.Errorf("frame of %d bytes, limit %d: %w", n, l.MaxFrameBytes, ErrTooLarge)
	} else if int64(n) != int64(len(src)) {
		return nil, fmt.Errorf("frame length %d, have %d bytes: %w", n, len(src), ErrCorrupt)
	}
	body := src[:len(src)-crcSize]
	if want, got := le.Uint32(src[len(body):]), crc32.Checksum(body, castagnoli); want != got {
		return nil, fmt.Errorf("checksum %08x, computed %08x: %w", want, got, ErrCorrupt)
	}

	// The frame is what its sender wrote; now whether it makes sense.
	h.Kind = Kind(src[5])
	h.Codec = Codec{DType: DType(src[6]), Compression: Compression(src[7]), Shuffle: src[12]&1 != 0}
	switch {
	case !h.Kind.valid():
		return nil, fmt.Errorf("unknown %v: %w", h.Kind, ErrVersion)
	case !h.Codec.DType.valid():
		return nil, fmt.Errorf("unknown %v: %w", h.Codec.DType, ErrVersion)
	case !h.Codec.Compression.valid():
		return nil, fmt.Errorf("unknown %v: %w", h.Codec.Compression, ErrVersion)
	case src[12]&^1 != 0 || src[13] != 0 || src[14] != 0 || src[15] != 0:
		return nil, fmt.Errorf("unknown flags %#x %#x %#x %#x: %w", src[12], src[13], src[14], src[15], ErrVersion)
	case h.Codec.Shuffle && h.Codec.Compression != Zstd:
		return nil, fmt.Errorf("codec %v: shuffle without zstd: %w", h.Codec, ErrCorrupt)
	case h.Kind == TopK && h.Codec.DType == Q8:
		return nil, fmt.Errorf("top-k frame in %v: %w", h.Codec.DType, ErrCorrupt)
	}
	copy(h.Session[:], src[16:32])
	h.Step = le.Uint64(src[32:])
	rows, cols := int64(le.Uint32(src[40:])), int64(le.Uint32(src[44:]))
	h.Rows, h.Cols = int(rows), int(cols)
	switch {
	case rows == 0 || cols == 0:
		return nil, fmt.Errorf("shape (%d, %d): %w", rows, cols, ErrCorrupt)
	case rows > int64(l.MaxRows):
		return nil, fmt.Errorf("%d rows, limit %d: %w", rows, l.MaxRows, ErrTooLarge)
	case cols > int64(l.MaxCols):
		return nil, fmt.Errorf("%d cols, limit %d: %w", cols, l.MaxCols, ErrTooLarge)
	}
	perValue := int64(4) // decoded bytes a value
	if h.Kind == TopK {
		perValue = 8
	}
	if rows*cols*perValue > int64(l.MaxFrameBytes) {
		return nil, fmt.Errorf("shape (%d, %d) decodes to %d bytes, limit %d: %w", rows, cols, rows*cols*perValue, l.MaxFrameBytes, ErrTooLarge)
	}

	nseq, plen := int64(le.Uint32(src[48:])), int64(le.Uint32(src[52:]))
	if nseq == 0 || nseq > rows {
		return nil, fmt.Errorf("%d sequences for %d rows: %w", nseq, rows, ErrCorrupt)
	}
	if headerSize+seqSize*nseq+plen != int64(len(body)) {
		return nil, fmt.Errorf("%d sequences and a payload of %d bytes in a frame of %d: %w", nseq, plen, len(src), ErrCorrupt)
	}
	h.Seqs = h.Seqs[:0]
	var sum int64
	for i := range nseq {
		e := src[headerSize+seqSize*i:]
		s := Seq{ID: le.Uint64(e), Pos: int(le.Uint32(e[8:])), N: int(le.Uint32(e[12:]))}
		if s.N == 0 || int64(s.N) > rows-sum {
			return nil, fmt.Errorf("seq %d (id %d): %d rows after %d of %d: %w", i, s.ID, s.N, sum, rows, ErrCorrupt)
		}
		sum += int64(s.N)
		h.Seqs = append(h.Seqs, s)
	}
	if sum != rows {
		return nil, fmt.Errorf("sequences hold %d rows, frame %d: %w", sum, rows, ErrCorrupt)
	}
	payload := body[headerSize+seqSize*nseq:]
	if size := payloadSize(h); h.Codec.Compression == None && len(payload) != size {
		return nil, fmt.Errorf("payload of %d bytes, shape (%d, %d) in %v needs %d: %w", len(payload), rows, cols, h.Codec.DType, size, ErrCorrupt)
	}
	return payload, nil
}

// DecodeFrame decodes the Activations or Logits frame in src under
// DefaultLimits: it sets *h from the header (reusing h.Seqs's array) and
// returns the h.Rows × h.Cols values, row-major, in dst[:0] grown as
// needed (the caller owns it; pass the previous result to reuse it).
//
// It refuses, without panicking and before allocating more than the
// limits allow, a frame that is malformed, fails its checksum, has
// inconsistent lengths or shapes, or whose payload does not decode to
// exactly its declared size (ErrCorrupt); one beyond the limits
// (ErrTooLarge); one of an unknown version, kind, dtype, compression or
// flag (ErrVersion); one holding a NaN or ±Inf (ErrNonFinite); and a TopK
// frame (ErrCorrupt). On error *h and the contents of dst are unspecified.
func DecodeFrame(src []byte, h *Header, dst []float32) ([]float32, error) {
	return DefaultLimits.DecodeFrame(src, h, dst)
}

// DecodeFrame is DecodeFrame under the limits l.
func (l Limits) DecodeFrame(src []byte, h *Header, dst []float32) ([]float32, error) {
	payload, err := l.parse(src, h)
	if err != nil {
		return dst[:0], fmt.Errorf("decode frame: %w", err)
	}
	if h.Kind == TopK {
		return dst[:0], fmt.Errorf("decode frame: a %v frame holds no plain values: %w", h.Kind, ErrCorrupt)
	}
	out := growFloats(dst, h.Rows*h.Cols)
	c := h.Codec
	err = withPayload(payload, payloadSize(h), c.Compression, func(raw []byte) error {
		if c.DType == Q8 {
			bad, neg := decodeQ8(out, raw, h.Rows, h.Cols, c.Shuffle)
			if neg {
				return fmt.Errorf("q8 scale %g for row %d, col %d: %w", bad.value, bad.index/h.Cols, bad.index%h.Cols, ErrCorrupt)
			}
			return bad.err(h, c.DType)
		}
		return decodeValues(out, raw, c.DType, c.Shuffle).err(h, c.DType)
	})
	if err != nil {
		return dst[:0], fmt.Errorf("decode frame: %w", err)
	}
	return out, nil
}

// withPayload calls decode with the uncompressed payload, of exactly size
// bytes: payload itself, or its decompression into a pooled buffer.
func withPayload(payload []byte, size int, c Compression, decode func(raw []byte) error) error {
	if c == None {
		return decode(payload)
	}
	raw := getScratch(size)
	defer putScratch(raw)
	if err := decompress(*raw, payload, c); err != nil {
		return err
	}
	return decode(*raw)
}

// growFloats returns dst[:n], reallocated when its capacity is short.
func growFloats(dst []float32, n int) []float32 {
	if cap(dst) < n {
		return make([]float32, n)
	}
	return dst[:n]
}

package wire

import (
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// One zstd encoder and one decoder serve the whole process: EncodeAll and
// DecodeAll are safe for concurrent use and keep a pool of GOMAXPROCS
// block coders each, which are reused across calls. They are made on first
// use, so that a process that never compresses pays nothing.
var (
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderCRC(false), // the frame's CRC32C covers the payload
			zstd.WithEncoderConcurrency(0),
			// Activations have no repeats for the match finder; all that
			// compresses is the skewed distribution of their exponent bytes,
			// which the fastest level leaves alone unless told.
			zstd.WithAllLitEntropyCompression(true),
		)
		if err != nil {
			panic(err) // only bad options fail, and these are constant
		}
		return e
	})
	zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			// DecodeAll may fill only cap(dst)-len(dst) bytes: with dst sized
			// to the declared payload, a payload that decodes to more (a
			// decompression bomb, or a zstd header claiming more) fails
			// before anything is allocated for it.
			zstd.WithDecodeAllCapLimit(true),
		)
		if err != nil {
			panic(err)
		}
		return d
	})
)

// compress appends raw compressed with c to dst. With Zstd, each part of
// raw that planes lists (in order; none: the whole) is compressed as a zstd
// frame of its own: a shuffled payload's byte planes have statistics of
// their own (one nearly random, one holding the exponents), which a single
// frame would mix into one entropy table. Concatenated zstd frames decode as
// the concatenation of their contents, so the decoder needs to know nothing
// of it.
func compress(dst, raw []byte, c Compression, planes []int) []byte {
	switch c {
	case Zstd:
		e := zstdEncoder()
		if len(planes) == 0 {
			return e.EncodeAll(raw, dst)
		}
		for _, n := range planes {
			dst, raw = e.EncodeAll(raw[:n], dst), raw[n:]
		}
		return dst
	case S2:
		n := len(dst)
		dst = grow(dst, s2.MaxEncodedLen(len(raw)))
		out := s2.Encode(dst[n:cap(dst)], raw)
		return dst[:n+len(out)]
	}
	return append(dst, raw...)
}

// decompress decodes payload, compressed with c, into raw, which has
// exactly the declared decoded size; it fails without allocating when the
// payload would decode to anything else.
func decompress(raw, payload []byte, c Compression) error {
	switch c {
	case Zstd:
		out, err := zstdDecoder().DecodeAll(payload, raw[:0:len(raw)])
		if err != nil {
			if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
				return fmt.Errorf("zstd payload decodes to more than the declared %d bytes: %w", len(raw), ErrCorrupt)
			}
			return fmt.Errorf("zstd payload: %v: %w", err, ErrCorrupt)
		}
		if len(out) != len(raw) || len(raw) > 0 && &out[0] != &raw[0] {
			return fmt.Errorf("zstd payload decodes to %d bytes, not the declared %d: %w", len(out), len(raw), ErrCorrupt)
		}
	case S2:
		n, err := s2.DecodedLen(payload)
		if err != nil {
			return fmt.Errorf("s2 payload: %v: %w", err, ErrCorrupt)
		}
		if n != len(raw) {
			return fmt.Errorf("s2 payload decodes to %d bytes, not the declared %d: %w", n, len(raw), ErrCorrupt)
		}
		if _, err := s2.Decode(raw, payload); err != nil {
			return fmt.Errorf("s2 payload: %v: %w", err, ErrCorrupt)
		}
	}
	return nil
}

// scratch holds the uncompressed payload between the encoder and the
// compressor (and back). Buffers are pooled: a steady stream of frames
// allocates nothing.
var scratchPool = sync.Pool{New: func() any { return new([]byte) }}

func getScratch(n int) *[]byte {
	p := scratchPool.Get().(*[]byte)
	if cap(*p) < n {
		*p = make([]byte, n)
	}
	*p = (*p)[:n]
	return p
}

func putScratch(p *[]byte) { scratchPool.Put(p) }

// grow returns b with room for n more bytes, its length unchanged.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n+len(b)/4)
		copy(nb, b)
		b = nb
	}
	return b
}

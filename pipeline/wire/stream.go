package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// readChunk is the most ReadFrame reads ahead of what it has received: the
// buffer grows with the bytes that arrive, not with the length a peer
// claims.
const readChunk = 64 << 10

// ReadFrame reads one frame from r, a stream of frames written one after
// another as AppendFrame and AppendTopK make them (a frame carries its own
// length in its first 12 bytes), into buf[:0] grown as needed, and returns
// it, ready for DecodeFrame or DecodeTopK; the caller owns it and may pass
// it back to read the next frame.
//
// A frame longer than limit bytes (limit <= 0: DefaultLimits.MaxFrameBytes)
// is refused with ErrTooLarge before its body is read; a stream that does
// not start with a frame's magic with ErrCorrupt, one of another version
// with ErrVersion. The buffer grows as bytes arrive, so a peer that claims a
// large frame and stalls holds little memory. At the clean end of the
// stream, before a frame's first byte, ReadFrame returns io.EOF; a stream
// that ends within a frame gives io.ErrUnexpectedEOF. ReadFrame checks
// neither the checksum nor the header past its length: the decoders do.
func ReadFrame(r io.Reader, buf []byte, limit int) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultLimits.MaxFrameBytes
	}
	buf = grow(buf[:0], prefixSize)[:prefixSize]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			return buf[:0], io.EOF
		}
		return buf[:0], fmt.Errorf("read frame: %w", err)
	}
	if string(buf[:4]) != magic {
		return buf[:0], fmt.Errorf("read frame: magic %q, want %q: %w", buf[:4], magic, ErrCorrupt)
	}
	if buf[4] != Version {
		return buf[:0], fmt.Errorf("read frame: version %d, want %d: %w", buf[4], Version, ErrVersion)
	}
	n := int64(binary.LittleEndian.Uint32(buf[8:]))
	switch {
	case n > int64(limit):
		return buf[:0], fmt.Errorf("read frame: %d bytes, limit %d: %w", n, limit, ErrTooLarge)
	case n < MinFrameSize:
		return buf[:0], fmt.Errorf("read frame: length %d, less than a header: %w", n, ErrCorrupt)
	}
	size := int(n)
	for len(buf) < size {
		m := min(size, len(buf)+max(readChunk, len(buf)))
		buf = grow(buf, m-len(buf))
		k, err := io.ReadFull(r, buf[len(buf):m])
		buf = buf[:len(buf)+k]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return buf[:0], fmt.Errorf("read frame: %d of %d bytes: %w", len(buf), size, err)
		}
	}
	return buf, nil
}

package wire

import "fmt"

// AppendTopK appends to dst a TopK frame: for each of the h.Rows rows, the
// h.Cols (k) best candidates of the last stage, ids[r·k+j] with value
// vals[r·k+j] (a logit or a log-probability, as the route agreed), and
// returns the extended slice, which the caller owns. h.Kind must be TopK
// and h.Codec.DType F32, F16 or BF16 (it encodes the values; ids are always
// uint32). The payload is the ids, then the values: see payload.go.
//
// It fails, returning dst unchanged, as AppendFrame does.
func AppendTopK(dst []byte, h *Header, ids []uint32, vals []float32) ([]byte, error) {
	if err := checkHeader(h, TopK); err != nil {
		return dst, fmt.Errorf("append top-k frame: %w", err)
	}
	if n := h.Rows * h.Cols; len(ids) != n || len(vals) != n {
		return dst, fmt.Errorf("append top-k frame: %d ids and %d values for shape (%d, %d): %w", len(ids), len(vals), h.Rows, h.Cols, ErrInvalid)
	}
	start := len(dst)
	dst = appendHeader(grow(dst, headerSize+seqSize*len(h.Seqs)), h)
	c := h.Codec
	dst, err := appendPayload(dst, start, h, func(raw []byte) error {
		n := 4 * len(ids)
		encodeIDs(raw[:n], ids, c.Shuffle)
		return encodeValues(raw[n:], vals, c.DType, c.Shuffle).err(h, c.DType)
	})
	if err != nil {
		return dst, fmt.Errorf("append top-k frame: %w", err)
	}
	return dst, nil
}

// DecodeTopK decodes the TopK frame in src under DefaultLimits: it sets *h
// from the header (reusing h.Seqs's array) and returns the h.Rows × h.Cols
// ids and values in ids[:0] and vals[:0] grown as needed (the caller owns
// them). It refuses what DecodeFrame refuses, and a frame of another kind
// (ErrCorrupt). The ids are not checked against a vocabulary: the caller
// knows its size.
func DecodeTopK(src []byte, h *Header, ids []uint32, vals []float32) ([]uint32, []float32, error) {
	return DefaultLimits.DecodeTopK(src, h, ids, vals)
}

// DecodeTopK is DecodeTopK under the limits l.
func (l Limits) DecodeTopK(src []byte, h *Header, ids []uint32, vals []float32) ([]uint32, []float32, error) {
	payload, err := l.parse(src, h)
	if err != nil {
		return ids[:0], vals[:0], fmt.Errorf("decode top-k frame: %w", err)
	}
	if h.Kind != TopK {
		return ids[:0], vals[:0], fmt.Errorf("decode top-k frame: a %v frame: %w", h.Kind, ErrCorrupt)
	}
	n := h.Rows * h.Cols
	if cap(ids) < n {
		ids = make([]uint32, n)
	}
	ids = ids[:n]
	vals = growFloats(vals, n)
	c := h.Codec
	err = withPayload(payload, payloadSize(h), c.Compression, func(raw []byte) error {
		decodeIDs(ids, raw[:4*n], c.Shuffle)
		return decodeValues(vals, raw[4*n:], c.DType, c.Shuffle).err(h, c.DType)
	})
	if err != nil {
		return ids[:0], vals[:0], fmt.Errorf("decode top-k frame: %w", err)
	}
	return ids, vals, nil
}

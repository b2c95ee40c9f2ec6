package tokenizer

// Piece returns the bytes token id stands for in generated text: "▁"
// becomes a space and a byte token "<0x0A>" the byte 0x0A ("llama"), the
// byte-level characters become their bytes ("gpt2"), user-defined tokens
// are their text; control, unknown and unused tokens, and ids out of range,
// are empty. A piece may be part of a UTF-8 character. The slice is shared
// by all callers and must not be modified.
func (t *Tokenizer) Piece(id int) []byte {
	if id < 0 || id >= len(t.tokens) {
		return nil
	}
	lo, hi := t.pieceOff[id], t.pieceOff[id+1]
	return t.pieceBuf[lo:hi:hi]
}

// Decode returns the text of ids: their pieces concatenated, with the
// space of the dummy prefix removed (when the vocabulary adds one, one
// leading space of the first token's piece is dropped, as llama.cpp's
// detokenizer does; so Decode(Encode(s, false, false)) == s, see Encode).
// A leading BOS
// is a token like any other: it renders as nothing and the space after it
// stays, as in llama.cpp. The result holds the raw bytes, which need not be
// valid UTF-8 when ids split a character.
func (t *Tokenizer) Decode(ids []int) string {
	var b []byte
	for i, id := range ids {
		p := t.Piece(id)
		if i == 0 && t.addSpacePrefix && len(p) > 0 && p[0] == ' ' {
			p = p[1:]
		}
		b = append(b, p...)
	}
	return string(b)
}

// StreamDecoder turns token ids into text one at a time, never splitting a
// UTF-8 character: the bytes of an incomplete character are held back
// until the tokens that complete it arrive. It is not safe for concurrent
// use.
type StreamDecoder struct {
	t         *Tokenizer
	pending   []byte
	stripNext bool
}

// NewStreamDecoder returns a decoder for a new stream of ids. With
// skipLeadingSpace (for a stream that starts the text, as Decode does), one
// leading space is dropped from the first token's piece when the
// vocabulary adds a dummy prefix.
func (t *Tokenizer) NewStreamDecoder(skipLeadingSpace bool) *StreamDecoder {
	return &StreamDecoder{t: t, stripNext: skipLeadingSpace && t.addSpacePrefix}
}

// Add appends the piece of id and returns the text completed by it, which
// may be "". Bytes that can never form a character come out as U+FFFD, one
// per maximal invalid sequence (as Python's and the WHATWG decoders do).
func (d *StreamDecoder) Add(id int) string {
	p := d.t.Piece(id)
	if d.stripNext {
		d.stripNext = false
		if len(p) > 0 && p[0] == ' ' {
			p = p[1:]
		}
	}
	if len(d.pending) == 0 && completeUTF8(p) {
		return string(p) // the common case: nothing held back
	}
	d.pending = append(d.pending, p...)
	var out []byte
	i := 0
	for i < len(d.pending) {
		n, st := scanUTF8(d.pending[i:])
		if st == utf8Incomplete {
			break
		}
		if st == utf8Valid {
			out = append(out, d.pending[i:i+n]...)
		} else {
			out = append(out, "\uFFFD"...)
		}
		i += n
	}
	d.pending = append(d.pending[:0], d.pending[i:]...)
	return string(out)
}

// Flush returns the held-back bytes, an incomplete character, as U+FFFD
// (or "" when none), and leaves the decoder empty.
func (d *StreamDecoder) Flush() string {
	if len(d.pending) == 0 {
		return ""
	}
	d.pending = d.pending[:0]
	return "\uFFFD"
}

// completeUTF8 reports whether b is valid UTF-8 that ends on a character
// boundary.
func completeUTF8(b []byte) bool {
	for i := 0; i < len(b); {
		if b[i] < 0x80 {
			i++
			continue
		}
		n, st := scanUTF8(b[i:])
		if st != utf8Valid {
			return false
		}
		i += n
	}
	return true
}

const (
	utf8Valid = iota
	utf8Invalid
	utf8Incomplete
)

// scanUTF8 reads the UTF-8 sequence at the start of b (len(b) > 0). It
// returns its length and utf8Valid; or the length of the maximal invalid
// subpart (at least 1) and utf8Invalid; or len(b) and utf8Incomplete when
// b is a proper prefix of a valid sequence.
func scanUTF8(b []byte) (int, int) {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF) // range of the second byte
	switch {
	case c < 0x80:
		return 1, utf8Valid
	case c < 0xC2:
		return 1, utf8Invalid
	case c < 0xE0:
		need = 1
	case c < 0xF0:
		need = 2
		if c == 0xE0 {
			lo = 0xA0
		} else if c == 0xED {
			hi = 0x9F
		}
	case c < 0xF5:
		need = 3
		if c == 0xF0 {
			lo = 0x90
		} else if c == 0xF4 {
			hi = 0x8F
		}
	default:
		return 1, utf8Invalid
	}
	for k := 1; k <= need; k++ {
		if k >= len(b) {
			return len(b), utf8Incomplete
		}
		if b[k] < lo || b[k] > hi {
			return k, utf8Invalid
		}
		lo, hi = 0x80, 0xBF
	}
	return need + 1, utf8Valid
}

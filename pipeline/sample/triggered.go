package sample

import "bytes"

// Triggered is a grammar for a reply that runs free until it writes Open;
// the text after each Open must then be, after at most MaxMarkSpace bytes
// of whitespace, one JSON text that Body accepts, then at most
// MaxMarkSpace bytes of whitespace and Close, after which the reply runs
// free again. The reply may end only while it runs free. It holds a
// model's tool calls in the Hermes syntax (<tool_call>{"name": ...,
// "arguments": {...}}</tool_call>) to the functions offered, while the
// model remains free to answer in words instead (a lazy grammar). Open and
// Close must not be empty, and Body's texts should be objects or arrays,
// which end where they close.
type Triggered struct {
	Open, Close string
	Body        *JSONSchema
	// Max bounds the marked sections (0: no bound): an Open beyond the
	// Max-th is refused, as a request for one call at most needs.
	Max int
	// Final makes the sections end the reply: once one closes, only
	// whitespace (at most MaxMarkSpace bytes at a time) and more sections
	// may follow, as calls end a reply that the chat API reads them out of.
	Final bool
}

// MaxMarkSpace bounds the whitespace Triggered allows between Open, the
// JSON text and Close.
const MaxMarkSpace = 8

// The phases of a Triggered reply.
const (
	trFree  uint8 = iota // free text; match bytes of Open are at its end
	trLead               // after Open, before the JSON text
	trBody               // in the JSON text
	trTrail              // after the JSON text, before Close
	trClose              // in Close; match bytes of it written
)

// trState is where a Triggered reply stands.
type trState struct {
	phase uint8
	match int // trFree: bytes of Open at the text's end; trClose: bytes of Close written
	space int // trLead, trTrail: whitespace bytes written
	done  int // sections closed
	body  []schemaState
}

// Constraint implements Grammar.
func (g *Triggered) Constraint(piece func(id int) []byte, isEOG func(id int) bool) Constraint {
	return &triggeredConstraint{g: g, piece: piece, isEOG: isEOG}
}

// Valid reports whether text is a whole reply of the grammar.
func (g *Triggered) Valid(text []byte) bool {
	st, ok := g.step(trState{}, text)
	return ok && g.whole(st)
}

// whole reports whether a reply may end at st: running free, and not
// within an Open that must come (Final).
func (g *Triggered) whole(st trState) bool {
	return st.phase == trFree && !(g.Final && st.done > 0 && st.match > 0)
}

// Prefix reports whether text is the start (or the whole) of a reply.
func (g *Triggered) Prefix(text []byte) bool {
	_, ok := g.step(trState{}, text)
	return ok
}

// String names the grammar, for logs.
func (g *Triggered) String() string {
	return g.Open + g.Body.String() + g.Close
}

// step returns st after text, and false when the grammar refuses text.
// st's body readings are not changed: the result has its own.
func (g *Triggered) step(st trState, text []byte) (trState, bool) {
	for i := 0; i < len(text); i++ {
		b := text[i]
		switch st.phase {
		case trFree:
			if g.Final && st.done > 0 { // between sections: whitespace or the next Open
				switch {
				case st.match == 0 && isSpace(b) && st.space < MaxMarkSpace:
					st.space++
					continue
				case b != g.Open[st.match]:
					return st, false
				}
			}
			st.match = advanceMatch(g.Open, st.match, b)
			if st.match == len(g.Open) {
				if g.Max > 0 && st.done >= g.Max {
					return st, false
				}
				st.phase, st.space, st.match = trLead, 0, 0
			}
		case trLead:
			if isSpace(b) && st.space < MaxMarkSpace {
				st.space++
				continue
			}
			st.phase, st.body = trBody, []schemaState{{root: g.Body.root}}
			i-- // the JSON text's first byte
		case trBody:
			var next []schemaState
			for k := range st.body {
				next = st.body[k].advance(text[i:i+1], next, MaxSchemaReadings)
			}
			if len(next) > 0 {
				st.body = next
				continue
			}
			if !anyAccepting(st.body) {
				return st, false
			}
			st.phase, st.space, st.body = trTrail, 0, nil
			i-- // the byte after the JSON text
		case trTrail:
			if isSpace(b) && st.space < MaxMarkSpace {
				st.space++
				continue
			}
			st.phase, st.match = trClose, 0
			i--
		case trClose:
			if g.Close[st.match] != b {
				return st, false
			}
			if st.match++; st.match == len(g.Close) {
				st.phase, st.match, st.space = trFree, 0, 0
				st.done++
			}
		}
	}
	return st, true
}

// advanceMatch is how many bytes of pat end the text after b, when m
// bytes of it ended the text before b: the longest prefix of pat that
// ends pat[:m]+b.
func advanceMatch(pat string, m int, b byte) int {
	if m < len(pat) && pat[m] == b {
		return m + 1
	}
	for k := m; k > 0; k-- { // pat[:k] ends pat[:m]+b: pat[:k-1] ends pat[:m], pat[k-1] == b
		if pat[k-1] == b && pat[:k-1] == pat[m-k+1:m] {
			return k
		}
	}
	return 0
}

func anyAccepting(sts []schemaState) bool {
	for i := range sts {
		if sts[i].accepting() {
			return true
		}
	}
	return false
}

// triggeredConstraint is Triggered's Constraint.
type triggeredConstraint struct {
	g     *Triggered
	piece func(int) []byte
	isEOG func(int) bool
	st    trState
}

// Allowed implements Constraint.
func (c *triggeredConstraint) Allowed(token int) bool {
	if c.isEOG(token) {
		return c.g.whole(c.st)
	}
	p := c.piece(token)
	if len(p) == 0 {
		return c.st.phase == trFree // no text: not inside a section
	}
	if c.free() && bytes.IndexByte(p, c.g.Open[0]) < 0 {
		return true // free text that cannot begin Open
	}
	_, ok := c.g.step(c.st, p)
	return ok
}

// Accept implements Constraint.
func (c *triggeredConstraint) Accept(token int) {
	if c.isEOG(token) {
		return
	}
	p := c.piece(token)
	if c.free() && bytes.IndexByte(p, c.g.Open[0]) < 0 {
		return
	}
	c.st, _ = c.g.step(c.st, p)
}

// free reports whether the reply runs free with nothing of Open at its
// end, so that a piece without Open's first byte leaves it as it is.
func (c *triggeredConstraint) free() bool {
	return c.st.phase == trFree && c.st.match == 0 && !(c.g.Final && c.st.done > 0)
}

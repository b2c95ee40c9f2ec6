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
			switch bodyTake(&st.body, text[i:i+1]) {
			case bodyTaken:
				continue
			case bodyRefused:
				return st, false
			}
			st.phase, st.space = trTrail, 0
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

// What bodyTake did with a byte.
const (
	bodyTaken   = iota // a reading of the JSON text took it
	bodyEnded          // none did, but the text was whole before it: it follows the text
	bodyRefused        // it cannot come
)

// bodyTake advances the readings *body of a JSON text by the byte b, and
// says how (bodyTaken, bodyEnded or bodyRefused); once the text ended, *body is nil.
func bodyTake(body *[]schemaState, b []byte) int {
	var next []schemaState
	for k := range *body {
		next = (*body)[k].advance(b, next, MaxSchemaReadings)
	}
	switch {
	case len(next) > 0:
		*body = next
		return bodyTaken
	case anyAccepting(*body):
		*body = nil
		return bodyEnded
	}
	return bodyRefused
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

// Leading is a grammar for a reply that is either free text or, when it
// begins (after at most MaxMarkSpace bytes of whitespace) with a byte
// that Body's texts may begin with, one JSON text that Body accepts,
// followed by at most MaxMarkSpace bytes of whitespace and nothing else.
// It holds tool calls written as a bare JSON object (Llama 3's syntax) to
// the functions offered, while the model remains free to answer in words.
// Body's texts should be objects or arrays, which end where they close.
type Leading struct {
	Body *JSONSchema
}

// The phases of a Leading reply.
const (
	ldLead  uint8 = iota // whitespace so far
	ldFree               // free text
	ldBody               // in the JSON text
	ldTrail              // after the JSON text
)

// ldState is where a Leading reply stands.
type ldState struct {
	phase uint8
	space int
	body  []schemaState
}

// Constraint implements Grammar.
func (g *Leading) Constraint(piece func(id int) []byte, isEOG func(id int) bool) Constraint {
	return &leadingConstraint{g: g, piece: piece, isEOG: isEOG}
}

// Valid reports whether text is a whole reply of the grammar.
func (g *Leading) Valid(text []byte) bool {
	st, ok := g.step(ldState{}, text)
	return ok && st.phase != ldBody
}

// Prefix reports whether text is the start (or the whole) of a reply.
func (g *Leading) Prefix(text []byte) bool {
	_, ok := g.step(ldState{}, text)
	return ok
}

// String names the grammar, for logs.
func (g *Leading) String() string { return "text|" + g.Body.String() }

// step returns st after text, and false when the grammar refuses text.
func (g *Leading) step(st ldState, text []byte) (ldState, bool) {
	for i := 0; i < len(text); i++ {
		b := text[i]
		switch st.phase {
		case ldLead:
			switch {
			case isSpace(b) && st.space < MaxMarkSpace:
				st.space++
			case startsWith(g.Body.root, b):
				st.phase, st.body = ldBody, []schemaState{{root: g.Body.root}}
				i--
			default:
				st.phase = ldFree
			}
		case ldFree:
			return st, true
		case ldBody:
			switch bodyTake(&st.body, text[i:i+1]) {
			case bodyTaken:
				continue
			case bodyRefused:
				return st, false
			}
			st.phase, st.space = ldTrail, 0
			i--
		case ldTrail:
			if !isSpace(b) || st.space >= MaxMarkSpace {
				return st, false
			}
			st.space++
		}
	}
	if st.phase == ldBody && anyAccepting(st.body) {
		// Whole: a JSON object or array cannot go on once it is.
		st.phase, st.space, st.body = ldTrail, 0, nil
	}
	return st, true
}

// leadingConstraint is Leading's Constraint.
type leadingConstraint struct {
	g     *Leading
	piece func(int) []byte
	isEOG func(int) bool
	st    ldState
}

// Allowed implements Constraint.
func (c *leadingConstraint) Allowed(token int) bool {
	if c.isEOG(token) {
		return c.st.phase != ldBody
	}
	p := c.piece(token)
	switch {
	case c.st.phase == ldFree:
		return true
	case len(p) == 0:
		return c.st.phase == ldLead
	}
	_, ok := c.g.step(c.st, p)
	return ok
}

// Accept implements Constraint.
func (c *leadingConstraint) Accept(token int) {
	if c.isEOG(token) || c.st.phase == ldFree {
		return
	}
	c.st, _ = c.g.step(c.st, c.piece(token))
}

// startsWith reports whether a text of n may begin with b.
func startsWith(n *snode, b byte) bool {
	if n.kind == kUnion {
		for _, a := range n.alts {
			if startsWith(a, b) {
				return true
			}
		}
		return false
	}
	return bytes.IndexByte(firstBytes(n), b) >= 0
}

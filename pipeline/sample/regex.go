package sample

import (
	"fmt"
	"regexp/syntax"
)

// Grammar is what a reply may be held to: a compiled JSONSchema, or a
// Regex. It is immutable and may serve many sequences at once.
type Grammar interface {
	// Constraint returns a new constraint of the grammar over a
	// vocabulary: piece is a token's text (empty for one that adds none),
	// isEOG whether it ends generation, which is allowed exactly when the
	// text is whole.
	Constraint(piece func(id int) []byte, isEOG func(id int) bool) Constraint
}

// Regex is a regular expression (Go's RE2 syntax, which Python's and
// TGI's grammars share but for lookarounds and backreferences) that a
// whole reply must match: the text of its tokens, as UTF-8, from its first
// character to its last. A character is refused as soon as no text it
// begins can match, and the end only where it does.
type Regex struct {
	p *strPattern
}

// CompileRegex compiles a Regex. Word boundaries, ^ and $ within lines,
// case folding and programs over 256 states are refused.
func CompileRegex(expr string) (*Regex, error) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err == nil {
		re, err = syntax.Parse(`^(?:`+expr+`)$`, syntax.Perl)
	}
	if err != nil {
		return nil, fmt.Errorf("regex %q: %v", expr, err)
	}
	var walk func(re *syntax.Regexp) error
	walk = func(re *syntax.Regexp) error {
		if err := supported(re); err != nil {
			return err
		}
		for _, sub := range re.Sub {
			if err := walk(sub); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(re); err != nil {
		return nil, fmt.Errorf("regex %q: %v", expr, err)
	}
	p, err := newAutomaton(re, expr)
	if err != nil {
		return nil, err
	}
	return &Regex{p: p}, nil
}

// String returns the expression as it was compiled.
func (r *Regex) String() string { return r.p.src }

// Valid reports whether text matches the expression whole.
func (r *Regex) Valid(text []byte) bool {
	st := regexState{ps: r.p.start}
	return st.advance(r.p, text) && st.need == 0 && r.p.matched(&st.ps)
}

// Prefix reports whether text begins some text that matches.
func (r *Regex) Prefix(text []byte) bool {
	st := regexState{ps: r.p.start}
	return st.advance(r.p, text)
}

// Constraint implements Grammar.
func (r *Regex) Constraint(piece func(id int) []byte, isEOG func(id int) bool) Constraint {
	return &regexConstraint{r: r, piece: piece, isEOG: isEOG, st: regexState{ps: r.p.start}}
}

// regexState is a text's progress through a Regex's automaton: its
// states, and a character partly written (as in a string frame: the
// continuation bytes it needs, the range of the next, and its bits).
type regexState struct {
	ps           patSet
	need, lo, hi uint8
	cp           rune
}

// advance moves st past text, or reports false (st is then spoiled).
func (st *regexState) advance(p *strPattern, text []byte) bool {
	for _, b := range text {
		f := frame{ps: st.ps, need: st.need, lo: st.lo, hi: st.hi, cp: st.cp}
		switch {
		case f.need > 0:
			if b < f.lo || b > f.hi {
				return false
			}
			f.need, f.lo, f.hi = f.need-1, 0x80, 0xbf
			f.cp = f.cp<<6 | rune(b&0x3f)
		case b >= 0x80:
			if !f.utf8Lead(b) {
				return false
			}
			f.cp = rune(b) & (0x7f >> (f.need + 1))
		default:
			f.cp = rune(b)
		}
		if !f.patChar(p) {
			return false
		}
		st.ps, st.need, st.lo, st.hi, st.cp = f.ps, f.need, f.lo, f.hi, f.cp
	}
	return true
}

// regexConstraint is a Regex's Constraint.
type regexConstraint struct {
	r     *Regex
	piece func(int) []byte
	isEOG func(int) bool
	st    regexState
}

// Allowed implements Constraint.
func (c *regexConstraint) Allowed(token int) bool {
	if c.isEOG(token) {
		return c.st.need == 0 && c.r.p.matched(&c.st.ps)
	}
	p := c.piece(token)
	if len(p) == 0 {
		return false
	}
	t := c.st
	return t.advance(c.r.p, p)
}

// Accept implements Constraint.
func (c *regexConstraint) Accept(token int) {
	if !c.isEOG(token) {
		c.st.advance(c.r.p, c.piece(token))
	}
}

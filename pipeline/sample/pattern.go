package sample

import (
	"fmt"
	"math/bits"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// strPattern is a string schema's "pattern" as an automaton over the
// characters of the string: a set of states of the regular expression's
// program (syntax.Prog), moved on one character at a time, so that a
// character is refused as soon as no text it begins can match, and the
// string ends only where it does.
//
// JSON Schema's patterns are ECMA-262 regular expressions that match
// anywhere in the string, unless anchored with ^ and $. They are parsed as
// Go's (RE2) syntax, which shares theirs but for lookarounds and
// backreferences (refused), and whose . and \s are made ECMA's (ecmaDot,
// ecmaSpaces). Word boundaries, \S within a class and the classes [] and
// [^] are refused.
type strPattern struct {
	src   string // as the schema wrote it
	insts []syntax.Inst
	start patSet // the states at the string's beginning
	// mid[pc] is the closure of pc at a position inside the string: the
	// states an empty path leads to (^ not passed) that take a character
	// and are live (the match can still be reached from them), and those
	// where the string may end: the match itself, and a $ from which the
	// match is reached.
	mid []patSet
	// ends[pc]: the string may end at the non-character state pc.
	ends []bool
}

// patSet is a set of program states: the program has at most maxPatInsts.
type patSet [maxPatInsts / 64]uint64

// maxPatInsts bounds a pattern's program: a set of its states is held in
// every string frame that has it.
const maxPatInsts = 256

func (s *patSet) add(pc uint32)      { s[pc/64] |= 1 << (pc % 64) }
func (s *patSet) has(pc uint32) bool { return s[pc/64]&(1<<(pc%64)) != 0 }
func (s *patSet) or(t *patSet)       { s[0], s[1], s[2], s[3] = s[0]|t[0], s[1]|t[1], s[2]|t[2], s[3]|t[3] }
func (s *patSet) empty() bool        { return s[0]|s[1]|s[2]|s[3] == 0 }
func (s *patSet) each(f func(pc uint32)) {
	for i, w := range s {
		for ; w != 0; w &= w - 1 {
			f(uint32(64*i + bits.TrailingZeros64(w)))
		}
	}
}

// compilePattern compiles a schema's pattern.
func compilePattern(pattern string) (*strPattern, error) {
	// Parsed alone first: wrapped, a stray ) would close the group.
	src, err := ecmaSpaces(pattern)
	var re *syntax.Regexp
	if err == nil {
		re, err = syntax.Parse(src, syntax.Perl)
	}
	if err == nil {
		re, err = syntax.Parse(`(?s:.*)(?:`+src+`)(?s:.*)`, syntax.Perl)
	}
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %v", pattern, err)
	}
	if err := ecmaDot(re); err != nil {
		return nil, fmt.Errorf("pattern %q: %v", pattern, err)
	}
	return newAutomaton(re, pattern)
}

// newAutomaton compiles the regular expression re (written as src) to a
// strPattern.
func newAutomaton(re *syntax.Regexp, pattern string) (*strPattern, error) {
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %v", pattern, err)
	}
	if len(prog.Inst) > maxPatInsts {
		return nil, fmt.Errorf("pattern %q is too long: %d states, at most %d", pattern, len(prog.Inst), maxPatInsts)
	}
	p := &strPattern{src: pattern, insts: prog.Inst, mid: make([]patSet, len(prog.Inst)), ends: make([]bool, len(prog.Inst))}
	for pc := range p.insts {
		p.ends[pc] = !consumes(p.insts[pc].Op) && p.reaches(uint32(pc))
	}
	live := p.liveStates()
	for pc := range p.insts {
		p.mid[pc] = p.closure(uint32(pc), false, live)
	}
	p.start = p.closure(uint32(prog.Start), true, live)
	if p.start.empty() {
		return nil, fmt.Errorf("pattern %q matches no string", pattern)
	}
	return p, nil
}

// ecmaSpace is ECMA-262's \s as the list of a class: RE2's \s is ASCII
// whitespace only, without \v.
const ecmaSpace = `\t\n\v\f\r \x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}\x{feff}`

// ecmaSpaces rewrites the \s and \S of an ECMA-262 pattern as the classes
// they are there (RE2's \S would take a no-break space, which ECMA's does
// not); a \S within a class is refused.
func ecmaSpaces(pattern string) (string, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case c == '\\' && i+1 < len(pattern):
			i++
			switch d := pattern[i]; {
			case d == 's' && inClass:
				b.WriteString(ecmaSpace)
			case d == 's':
				b.WriteString("[" + ecmaSpace + "]")
			case d == 'S' && inClass:
				return "", fmt.Errorf(`\S within a class is not supported`)
			case d == 'S':
				b.WriteString("[^" + ecmaSpace + "]")
			default:
				b.WriteByte(c)
				b.WriteByte(d)
			}
			continue
		case c == '[' && !inClass:
			inClass = true
			b.WriteByte(c)
			if i+1 < len(pattern) && pattern[i+1] == '^' {
				i++
				b.WriteByte('^')
			}
			if i+1 < len(pattern) && pattern[i+1] == ']' { // RE2 takes it as itself
				return "", fmt.Errorf("[] and [^] are not supported")
			}
			continue
		case c == ']' && inClass:
			inClass = false
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

// ecmaDot makes re's . (any character but a newline) ECMA-262's (any
// character but a line terminator: \n, \r, U+2028, U+2029), and refuses
// what the automaton cannot follow (supported).
func ecmaDot(re *syntax.Regexp) error {
	if re.Op == syntax.OpAnyCharNotNL {
		re.Op, re.Rune = syntax.OpCharClass, []rune{0, '\n' - 1, '\n' + 1, '\r' - 1, '\r' + 1, 0x2027, 0x202a, utf8.MaxRune}
	}
	if err := supported(re); err != nil {
		return err
	}
	for _, sub := range re.Sub {
		if err := ecmaDot(sub); err != nil {
			return err
		}
	}
	return nil
}

// supported refuses what the automaton does not follow at the top of re:
// case folding (a flag ECMA patterns do not have), lines (^ and $ within
// a text) and word boundaries.
func supported(re *syntax.Regexp) error {
	switch re.Op {
	case syntax.OpBeginLine, syntax.OpEndLine:
		return fmt.Errorf("^ and $ within lines are not supported")
	case syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return fmt.Errorf(`\b and \B are not supported`)
	}
	if re.Flags&syntax.FoldCase != 0 {
		return fmt.Errorf("case folding is not supported")
	}
	return nil
}

// consumes reports whether inst takes a character.
func consumes(op syntax.InstOp) bool {
	return op == syntax.InstRune || op == syntax.InstRune1 || op == syntax.InstRuneAny || op == syntax.InstRuneAnyNotNL
}

// liveStates returns, for each state that takes a character, whether
// the match can be reached from it by some string: one whose characters a
// JSON string can hold (any but surrogates), with every ^ on the way
// passed before the first character (never, after this one) and every $
// after the last.
func (p *strPattern) liveStates() []bool {
	// Nodes (pc, ended, consumed) = 4pc + 2ended + consumed; the match is
	// reached backward.
	n := len(p.insts)
	preds := make([][]int, 4*n)
	edge := func(from, to int) { preds[to] = append(preds[to], from) }
	for pc, in := range p.insts {
		for st := 0; st < 4; st++ {
			ended, consumed := st&2 != 0, st&1 != 0
			from := 4*pc + st
			switch in.Op {
			case syntax.InstAlt, syntax.InstAltMatch:
				edge(from, 4*int(in.Out)+st)
				edge(from, 4*int(in.Arg)+st)
			case syntax.InstNop, syntax.InstCapture:
				edge(from, 4*int(in.Out)+st)
			case syntax.InstEmptyWidth:
				e := syntax.EmptyOp(in.Arg)
				if e&syntax.EmptyBeginText != 0 && consumed {
					continue
				}
				to := st
				if e&syntax.EmptyEndText != 0 {
					to |= 2
				}
				edge(from, 4*int(in.Out)+to)
			default:
				if consumes(in.Op) && !ended && writable(&p.insts[pc]) {
					edge(from, 4*int(in.Out)+1)
				}
			}
		}
	}
	reach := make([]bool, 4*n)
	var queue []int
	for pc, in := range p.insts {
		if in.Op == syntax.InstMatch {
			for st := 0; st < 4; st++ {
				reach[4*pc+st] = true
				queue = append(queue, 4*pc+st)
			}
		}
	}
	for len(queue) > 0 {
		v := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, u := range preds[v] {
			if !reach[u] {
				reach[u] = true
				queue = append(queue, u)
			}
		}
	}
	live := make([]bool, n)
	for pc, in := range p.insts {
		live[pc] = consumes(in.Op) && writable(&p.insts[pc]) && reach[4*int(in.Out)+1]
	}
	return live
}

// writable reports whether a character inst takes can be written in a
// JSON string: one that is not a surrogate.
func writable(in *syntax.Inst) bool {
	return in.Op != syntax.InstRune || overlaps(in, 0, 0xd7ff) || overlaps(in, 0xe000, utf8.MaxRune)
}

// closure returns the states of mid (see strPattern) an empty path from
// pc leads to, passing ^ only at the string's beginning (begin).
func (p *strPattern) closure(pc uint32, begin bool, live []bool) patSet {
	var s patSet
	p.emptyPaths(pc, func(e syntax.EmptyOp) bool { return e == syntax.EmptyBeginText && begin }, func(pc uint32) bool {
		switch in := &p.insts[pc]; {
		case in.Op == syntax.InstMatch, live[pc],
			in.Op == syntax.InstEmptyWidth && syntax.EmptyOp(in.Arg)&syntax.EmptyEndText != 0 && p.ends[pc]:
			s.add(pc)
		}
		return false
	})
	return s
}

// reaches reports whether the match is reached from pc by an empty path
// at the string's end: through $, not ^.
func (p *strPattern) reaches(pc uint32) bool {
	return p.emptyPaths(pc, func(e syntax.EmptyOp) bool { return e == syntax.EmptyEndText }, func(pc uint32) bool {
		return p.insts[pc].Op == syntax.InstMatch
	})
}

// emptyPaths follows the empty paths from pc, through the ^ and $ that
// pass lets by, and calls stop for each state where one ends (one that
// takes a character, the match, a ^ or $ not let by, a dead end) until it
// returns true; it reports whether one did.
func (p *strPattern) emptyPaths(pc uint32, pass func(syntax.EmptyOp) bool, stop func(pc uint32) bool) bool {
	var seen patSet
	var stack [2*maxPatInsts + 1]uint32 // each state pushes at most two
	stack[0] = pc
	for n := 1; n > 0; {
		n--
		pc := stack[n]
		if seen.has(pc) {
			continue
		}
		seen.add(pc)
		switch in := &p.insts[pc]; {
		case in.Op == syntax.InstAlt || in.Op == syntax.InstAltMatch:
			stack[n], stack[n+1], n = in.Out, in.Arg, n+2
		case in.Op == syntax.InstNop || in.Op == syntax.InstCapture,
			in.Op == syntax.InstEmptyWidth && pass(syntax.EmptyOp(in.Arg)):
			stack[n], n = in.Out, n+1
		case stop(pc):
			return true
		}
	}
	return false
}

// step returns the states after the character r from the states s.
func (p *strPattern) step(s *patSet, r rune) patSet {
	var t patSet
	s.each(func(pc uint32) {
		if in := &p.insts[pc]; takes(in, r) {
			t.or(&p.mid[in.Out])
		}
	})
	return t
}

// can reports whether some character in [lo, hi] (not a surrogate) moves
// the states s on: the characters a partly written one may still become.
func (p *strPattern) can(s *patSet, lo, hi rune) bool {
	ok := false
	s.each(func(pc uint32) {
		in := &p.insts[pc]
		ok = ok || !p.mid[in.Out].empty() &&
			(overlaps(in, lo, min(hi, 0xd7ff)) || overlaps(in, max(lo, 0xe000), hi))
	})
	return ok
}

// overlaps reports whether the character inst in takes some character in
// [lo, hi].
func overlaps(in *syntax.Inst, lo, hi rune) bool {
	if lo > hi {
		return false
	}
	switch in.Op {
	case syntax.InstRuneAny:
		return true
	case syntax.InstRuneAnyNotNL:
		return lo != '\n' || hi != '\n'
	case syntax.InstRune1:
		return in.Rune[0] >= lo && in.Rune[0] <= hi
	case syntax.InstRune:
		if len(in.Rune) == 1 { // one character (no folding: refused)
			return in.Rune[0] >= lo && in.Rune[0] <= hi
		}
		for i := 0; i+1 < len(in.Rune); i += 2 {
			if in.Rune[i] <= hi && in.Rune[i+1] >= lo {
				return true
			}
		}
	}
	return false
}

// takes reports whether the state in takes the character r.
func takes(in *syntax.Inst, r rune) bool {
	switch in.Op {
	case syntax.InstRuneAny:
		return true
	case syntax.InstRuneAnyNotNL:
		return r != '\n'
	case syntax.InstRune1:
		return r == in.Rune[0]
	case syntax.InstRune:
		return in.MatchRune(r)
	}
	return false
}

// matched reports whether a string at the states s matches as it stands.
func (p *strPattern) matched(s *patSet) bool {
	ok := false
	s.each(func(pc uint32) { ok = ok || p.ends[pc] })
	return ok
}

// patChar moves a string frame's pattern states past the character whose
// bits f.cp holds, or, while it is partly written, checks that some
// character it may become moves them on.
func (f *frame) patChar(p *strPattern) bool {
	var lo, hi rune
	switch {
	case f.need > 0: // a UTF-8 sequence: the next byte in [f.lo, f.hi]
		k := 6 * (uint(f.need) - 1)
		lo = (f.cp<<6 | rune(f.lo&0x3f)) << k
		hi = (f.cp<<6|rune(f.hi&0x3f))<<k | (1<<k - 1)
	case f.phase == pHex && f.hex > 0:
		k := 4 * uint(f.hex)
		lo, hi = f.cp<<k, (f.cp+1)<<k-1
	default:
		f.ps = p.step(&f.ps, f.cp)
		return !f.ps.empty()
	}
	return p.can(&f.ps, lo, hi)
}

// unescape returns the character of the escape \b, for b one of "\/bfnrt.
func unescape(b byte) rune {
	switch b {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return rune(b)
}

// hexVal is the value of the hex digit b.
func hexVal(b byte) byte {
	if isDigit(b) {
		return b - '0'
	}
	return b | 0x20 - 'a' + 10
}

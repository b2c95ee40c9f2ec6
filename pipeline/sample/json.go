package sample

// Constraint limits which tokens may come next, for structured output. A
// sequence has its own Constraint, called by one goroutine at a time.
type Constraint interface {
	// Allowed reports whether token may come next.
	Allowed(token int) bool
	// Accept moves past token, which Allowed allowed.
	Accept(token int)
}

// JSON output limits, so that a constrained model cannot run on forever
// inside the grammar.
const (
	// MaxJSONDepth is how deeply objects and arrays may nest.
	MaxJSONDepth = 32
	// MaxJSONIndent bounds the whitespace between two tokens of the JSON
	// text: one space, or a newline and at most MaxJSONIndent spaces or
	// tabs, room to pretty-print (endless whitespace is JSON too, and
	// small models fall into it).
	MaxJSONIndent = 20
)

// JSON is a Constraint whose tokens spell one JSON object (RFC 8259, with
// at most MaxJSONDepth levels of nesting, whitespace between tokens as
// MaxJSONIndent says, and none before or after it, numbers of at most
// MaxIntDigits, MaxFracDigits and MaxExpDigits digits), followed by an
// end-of-generation token: nothing else may end the sequence, and nothing
// but such a token may follow the object.
type JSON struct {
	piece func(id int) []byte
	isEOG func(id int) bool
	st    jsonState
}

// NewJSON returns a JSON constraint over a vocabulary: piece gives the
// bytes a token adds to the text (nil or empty for tokens that add none,
// which are never allowed, end-of-generation tokens aside), and isEOG
// tells the end-of-generation tokens.
func NewJSON(piece func(id int) []byte, isEOG func(id int) bool) *JSON {
	return &JSON{piece: piece, isEOG: isEOG}
}

// Allowed implements Constraint.
func (j *JSON) Allowed(token int) bool {
	if j.isEOG(token) {
		return j.st.mode == jDone
	}
	p := j.piece(token)
	if len(p) == 0 {
		return false
	}
	st := j.st
	for _, b := range p {
		if !st.step(b) {
			return false
		}
	}
	return true
}

// Accept implements Constraint.
func (j *JSON) Accept(token int) {
	if j.isEOG(token) {
		return
	}
	for _, b := range j.piece(token) {
		j.st.step(b)
	}
}

// Done reports whether the object is complete.
func (j *JSON) Done() bool { return j.st.mode == jDone }

// ValidJSONObject reports whether text is one JSON object as JSON's
// constraint lets a model write it (MaxJSONDepth, MaxJSONIndent,
// MaxIntDigits...).
func ValidJSONObject(text []byte) bool {
	st, ok := scanJSON(text)
	return ok && st.mode == jDone
}

// JSONObjectPrefix reports whether text is the start (or the whole) of a
// JSON object as JSON's constraint lets a model write it: what a reply cut
// short by its token limit is.
func JSONObjectPrefix(text []byte) bool {
	_, ok := scanJSON(text)
	return ok
}

func scanJSON(text []byte) (jsonState, bool) {
	var st jsonState
	for _, b := range text {
		if !st.step(b) {
			return st, false
		}
	}
	return st, true
}

// What a jsonState expects next.
const (
	jStart      uint8 = iota // the top-level '{'
	jValue                   // a value (after ':' or ',' in an array)
	jKeyOrEnd                // after '{': a key or '}'
	jKey                     // after ',' in an object: a key
	jColon                   // after a key: ':'
	jValueOrEnd              // after '[': a value or ']'
	jAfter                   // after a value in a container: ',' or its closing bracket
	jString                  // in a string
	jEscape                  // after '\' in a string
	jHex                     // in a \u escape: hex digits left in hex
	jMinus                   // after '-': a digit
	jZero                    // after a leading 0
	jInt                     // in the integer digits
	jDot                     // after '.': a digit
	jFrac                    // in the fraction digits
	jExp                     // after 'e': a sign or a digit
	jExpSign                 // after the exponent's sign: a digit
	jExpDigits               // in the exponent digits
	jLiteral                 // in true, false or null
	jDone                    // the object is complete
)

var jsonLiterals = [...]string{"true", "false", "null"}

// jsonState is a pushdown recognizer of a JSON object, small enough to
// copy: bit i of stack says whether the container at depth i+1 is an
// array.
type jsonState struct {
	mode   uint8
	digits uint8 // in a number: the digits of its current part
	key    bool  // the string is an object key
	hex    uint8 // jHex: digits left
	lit    uint8 // jLiteral: which of jsonLiterals
	pos    uint8 // jLiteral: bytes of it seen
	space  uint8 // the whitespace run so far (spaceStep)
	depth  uint8
	stack  uint64
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// The most digits a number's parts may have in a constrained reply: JSON
// bounds none, but a model writing digits on and on would run to its token
// limit. 20 hold any 64-bit integer; 3 any float64 exponent.
const (
	MaxIntDigits  = 20
	MaxFracDigits = 20
	MaxExpDigits  = 3
)

// numStep moves a number past b: *mode is where in it (jMinus to
// jExpDigits, or jValue before its first byte), *digits how many digits
// the current part has, integer forbids a fraction and an exponent.
// ended: the number was whole before b, which is not part of it; ok: b
// is (or, when ended, may be) where it stands.
func numStep(mode, digits *uint8, b byte, integer bool) (ok, ended bool) {
	m := *mode
	switch m {
	case jValue, jMinus:
		switch {
		case b == '-' && m == jValue:
			*mode = jMinus
		case b == '0':
			*mode = jZero
		case isDigit(b):
			*mode = jInt
		default:
			return false, false
		}
		*digits = 1
		return true, false
	case jDot, jExpSign:
		if !isDigit(b) {
			return false, false
		}
		*mode, *digits = m+1, 1 // jFrac, jExpDigits
		return true, false
	case jExp:
		switch {
		case b == '+' || b == '-':
			*mode = jExpSign
		case isDigit(b):
			*mode, *digits = jExpDigits, 1
		default:
			return false, false
		}
		return true, false
	}
	// jZero, jInt, jFrac, jExpDigits: whole so far.
	switch {
	case isDigit(b) && m != jZero:
		limit := uint8(MaxIntDigits)
		switch m {
		case jFrac:
			limit = MaxFracDigits
		case jExpDigits:
			limit = MaxExpDigits
		}
		if *digits >= limit {
			return false, false
		}
		*digits++
		return true, false
	case b == '.' && !integer && (m == jZero || m == jInt):
		*mode = jDot
		return true, false
	case (b == 'e' || b == 'E') && !integer && m != jExpDigits:
		*mode = jExp
		return true, false
	}
	return true, true
}

// numWhole reports whether a number at mode is whole.
func numWhole(mode uint8) bool {
	return mode == jZero || mode == jInt || mode == jFrac || mode == jExpDigits
}

// spaceStep moves a whitespace run past the whitespace byte b, or reports
// false: a run is one space, or a newline and at most MaxJSONIndent
// spaces or tabs. *run is 0 before the run, oneSpace after a lone space,
// and 1 plus the indentation after a newline.
func spaceStep(run *uint8, b byte) bool {
	switch {
	case *run == 0 && b == ' ':
		*run = oneSpace
	case *run == 0 && b == '\n':
		*run = 1
	case *run >= 1 && *run <= MaxJSONIndent && (b == ' ' || b == '\t'):
		*run++
	default:
		return false
	}
	return true
}

// oneSpace marks a run that was a lone space.
const oneSpace = 0xff

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

func isHex(b byte) bool { return isDigit(b) || b|0x20 >= 'a' && b|0x20 <= 'f' }

// step moves past b, or reports false (leaving s as it was) when b may not
// come next.
func (s *jsonState) step(b byte) bool {
	switch s.mode {
	case jString:
		switch {
		case b == '"':
			if s.key {
				s.mode = jColon
				return true
			}
			return s.endValue()
		case b == '\\':
			s.mode = jEscape
			return true
		}
		return b >= 0x20
	case jEscape:
		switch b {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			s.mode = jString
			return true
		case 'u':
			s.mode, s.hex = jHex, 4
			return true
		}
		return false
	case jHex:
		if !isHex(b) {
			return false
		}
		if s.hex--; s.hex == 0 {
			s.mode = jString
		}
		return true
	case jLiteral:
		lit := jsonLiterals[s.lit]
		if b != lit[s.pos] {
			return false
		}
		if s.pos++; int(s.pos) == len(lit) {
			return s.endValue()
		}
		return true
	case jMinus, jZero, jInt, jDot, jFrac, jExp, jExpSign, jExpDigits:
		ok, ended := numStep(&s.mode, &s.digits, b, false)
		if !ended {
			return ok
		}
		// The number ended: b must follow a value.
		t := *s
		if !t.endValue() || !t.step(b) {
			return false
		}
		*s = t
		return true
	case jDone:
		return false
	}

	// Between tokens: whitespace, within bounds, and none before the
	// object.
	if isSpace(b) {
		return s.mode != jStart && spaceStep(&s.space, b)
	}
	space := s.space
	s.space = 0
	ok := s.structural(b)
	if !ok {
		s.space = space
	}
	return ok
}

// structural moves past b where a structural token or a value may begin.
func (s *jsonState) structural(b byte) bool {
	switch s.mode {
	case jStart:
		if b != '{' {
			return false
		}
		return s.open(false)
	case jKeyOrEnd, jKey:
		switch {
		case b == '"':
			s.mode, s.key = jString, true
			return true
		case b == '}' && s.mode == jKeyOrEnd:
			return s.close()
		}
		return false
	case jColon:
		if b != ':' {
			return false
		}
		s.mode = jValue
		return true
	case jAfter:
		array := s.stack>>(s.depth-1)&1 == 1
		switch {
		case b == ',':
			if array {
				s.mode = jValue
			} else {
				s.mode = jKey
			}
			return true
		case b == ']' && array, b == '}' && !array:
			return s.close()
		}
		return false
	case jValueOrEnd:
		if b == ']' {
			return s.close()
		}
	}
	// jValue, or jValueOrEnd with a value.
	switch {
	case b == '{':
		return s.open(false)
	case b == '[':
		return s.open(true)
	case b == '"':
		s.mode, s.key = jString, false
	case b == '-' || isDigit(b):
		s.mode = jValue
		ok, _ := numStep(&s.mode, &s.digits, b, false)
		return ok
	case b == 't':
		s.mode, s.lit, s.pos = jLiteral, 0, 1
	case b == 'f':
		s.mode, s.lit, s.pos = jLiteral, 1, 1
	case b == 'n':
		s.mode, s.lit, s.pos = jLiteral, 2, 1
	default:
		return false
	}
	return true
}

// open enters an object or an array.
func (s *jsonState) open(array bool) bool {
	if s.depth >= MaxJSONDepth {
		return false
	}
	s.stack &^= 1 << s.depth
	if array {
		s.stack |= 1 << s.depth
		s.mode = jValueOrEnd
	} else {
		s.mode = jKeyOrEnd
	}
	s.depth++
	return true
}

// close leaves the innermost container: the end of the object at the top
// level, of a value inside another container.
func (s *jsonState) close() bool {
	if s.depth--; s.depth == 0 {
		s.mode = jDone
		return true
	}
	return s.endValue()
}

// endValue follows the end of a value: inside a container, or the whole
// text for a state that began at jValue (any value, for a JSON schema's
// free-form values; JSON's own begins at jStart, an object).
func (s *jsonState) endValue() bool {
	if s.depth == 0 {
		s.mode = jDone
	} else {
		s.mode = jAfter
	}
	return true
}

package tokenizer

import "unicode"

// The gpt2 pre-tokenizers. Each reproduces, with a hand-written scanner over
// code points, the leftmost-first regex alternation of its tokenizer:
//
//	gpt-2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//	llama3: (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//	qwen2:  the llama3 one with \p{N} instead of \p{N}{1,3}
//
// "default" is llama.cpp's fallback for gpt2 vocabularies without a known
// pre-tokenizer: four splits applied one after the other,
//
//	[\p{P}\$\+<=>\^~\|]+   then gpt-2   then \p{N}+   then [0-9][0-9][0-9]
//
// where the text between matches is kept as pieces too.
type preTokenizer int

const (
	preDefault preTokenizer = iota
	preGPT2
	preLlama3
	preQwen2
)

type preInfo struct {
	kind         preTokenizer
	ignoreMerges bool // a pre-token that is a token is taken whole
	addBOS       bool // llama.cpp's add_bos when the GGUF does not say
}

// preTokenizers maps tokenizer.ggml.pre to its pre-tokenizer, as llama.cpp
// does for the names whose splitting it shares.
var preTokenizers = map[string]preInfo{
	"":                 {kind: preDefault},
	"default":          {kind: preDefault},
	"gpt-2":            {kind: preGPT2},
	"phi-2":            {kind: preGPT2},
	"roberta-bpe":      {kind: preGPT2},
	"mpt":              {kind: preGPT2},
	"olmo":             {kind: preGPT2},
	"jais":             {kind: preGPT2},
	"llama3":           {kind: preLlama3, ignoreMerges: true, addBOS: true},
	"llama-v3":         {kind: preLlama3, ignoreMerges: true, addBOS: true},
	"llama-bpe":        {kind: preLlama3, ignoreMerges: true, addBOS: true},
	"falcon3":          {kind: preLlama3, ignoreMerges: true, addBOS: true},
	"dbrx":             {kind: preLlama3},
	"smaug-bpe":        {kind: preLlama3},
	"qwen2":            {kind: preQwen2},
	"stablelm2":        {kind: preQwen2},
	"deepseek-r1-qwen": {kind: preQwen2},
	"megrez":           {kind: preQwen2},
}

// defaultAddBOS is llama.cpp's add_bos when the GGUF has no
// tokenizer.ggml.add_bos_token.
func defaultAddBOS(model, pre string) bool {
	switch model {
	case "llama":
		return true
	case "gpt2":
		return preTokenizers[pre].addBOS
	}
	return false
}

// span is a range of code points [lo, hi).
type span struct{ lo, hi int }

// split appends to dst the pre-tokens of cpts. tmp is scratch space.
func (p preTokenizer) split(cpts []rune, dst []span, tmp *[]span) []span {
	whole := span{0, len(cpts)}
	if len(cpts) == 0 {
		return dst
	}
	switch p {
	case preGPT2:
		return splitGPT2(cpts, whole, dst)
	case preLlama3:
		return splitLlama3(cpts, whole, 3, dst)
	case preQwen2:
		return splitLlama3(cpts, whole, 1, dst)
	}
	// default: four passes, each refining the pieces of the previous one.
	a := splitRuns(cpts, whole, isDefaultPunct, (*tmp)[:0])
	b := dst[:len(dst)]
	start := len(b)
	for _, s := range a {
		b = splitGPT2(cpts, s, b)
	}
	a = a[:0]
	for _, s := range b[start:] {
		a = splitRuns(cpts, s, unicode.IsNumber, a)
	}
	b = b[:start]
	for _, s := range a {
		b = splitDigits3(cpts, s, b)
	}
	*tmp = a
	return b
}

// Code point classes, as llama.cpp's unicode tables define them: \p{L} is
// every letter category, \p{N} every number category, \s the White_Space
// property (Go's unicode.IsSpace is the same set).
const (
	clsOther = iota // anything else: matched by [^\s\p{L}\p{N}]
	clsLetter
	clsNumber
	clsSpace
	clsNone // outside the text
)

var asciiClass [128]uint8

func init() {
	for r := range rune(128) {
		asciiClass[r] = classOfSlow(r)
	}
}

func classOfSlow(r rune) uint8 {
	switch {
	case unicode.IsSpace(r):
		return clsSpace
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	}
	return clsOther
}

func classOf(r rune) uint8 {
	if r < 128 {
		return asciiClass[r]
	}
	return classOfSlow(r)
}

// at returns the class of cpts[i], clsNone outside s.
func at(cpts []rune, s span, i int) uint8 {
	if i < s.lo || i >= s.hi {
		return clsNone
	}
	return classOf(cpts[i])
}

// contraction returns the length (2 or 3) of a contraction starting at i
// ("'s", "'t", "'m", "'d", "'re", "'ve", "'ll"), or 0. foldCase accepts
// upper case letters too.
func contraction(cpts []rune, s span, i int, foldCase bool) int {
	if cpts[i] != '\'' || i+1 >= s.hi {
		return 0
	}
	lower := func(r rune) rune {
		if foldCase && 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}
	switch lower(cpts[i+1]) {
	case 's', 't', 'm', 'd':
		return 2
	}
	if i+2 >= s.hi {
		return 0
	}
	a, b := lower(cpts[i+1]), lower(cpts[i+2])
	if a == 'r' && b == 'e' || a == 'v' && b == 'e' || a == 'l' && b == 'l' {
		return 3
	}
	return 0
}

// splitGPT2 appends the pre-tokens of s by the gpt-2 regex.
func splitGPT2(cpts []rune, s span, dst []span) []span {
	for pos := s.lo; pos < s.hi; {
		start := pos
		// 's|'t|'re|'ve|'m|'ll|'d
		if n := contraction(cpts, s, pos, false); n > 0 {
			pos += n
			dst = append(dst, span{start, pos})
			continue
		}
		// ' ?' before a letter, number or other run
		c := at(cpts, s, pos)
		q := pos
		if cpts[pos] == ' ' {
			q++
			c = at(cpts, s, q)
		}
		switch c {
		case clsLetter, clsNumber, clsOther:
			for at(cpts, s, q) == c {
				q++
			}
			dst = append(dst, span{start, q})
			pos = q
			continue
		}
		// \s+(?!\S)|\s+
		end := pos
		for at(cpts, s, end) == clsSpace {
			end++
		}
		switch {
		case end-pos > 1 && end < s.hi:
			end-- // leave the last space to the word that follows
		case end == pos:
			end++ // no alternative matches: a piece of its own
		}
		dst = append(dst, span{start, end})
		pos = end
	}
	return dst
}

// splitLlama3 appends the pre-tokens of s by the llama3 regex, with number
// runs cut every maxDigits digits (3 for llama3, 1 for qwen2).
func splitLlama3(cpts []rune, s span, maxDigits int, dst []span) []span {
	for pos := s.lo; pos < s.hi; {
		start := pos
		r := cpts[pos]
		c := classOf(r)
		// (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])
		if n := contraction(cpts, s, pos, true); n > 0 {
			pos += n
			dst = append(dst, span{start, pos})
			continue
		}
		// [^\r\n\p{L}\p{N}]?\p{L}+
		if r != '\r' && r != '\n' && c != clsNumber && (c == clsLetter || at(cpts, s, pos+1) == clsLetter) {
			pos++
			for at(cpts, s, pos) == clsLetter {
				pos++
			}
			dst = append(dst, span{start, pos})
			continue
		}
		// \p{N}{1,maxDigits}
		if c == clsNumber {
			for pos < s.hi && pos-start < maxDigits && classOf(cpts[pos]) == clsNumber {
				pos++
			}
			dst = append(dst, span{start, pos})
			continue
		}
		// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
		q := pos
		if r == ' ' {
			q++
		}
		if at(cpts, s, q) == clsOther {
			for at(cpts, s, q) == clsOther {
				q++
			}
			for q < s.hi && (cpts[q] == '\r' || cpts[q] == '\n') {
				q++
			}
			dst = append(dst, span{start, q})
			pos = q
			continue
		}
		// \s*[\r\n]+ : the whitespace run up to its last line break
		end, lastNL := pos, -1
		for at(cpts, s, end) == clsSpace {
			if cpts[end] == '\r' || cpts[end] == '\n' {
				lastNL = end
			}
			end++
		}
		switch {
		case lastNL >= 0:
			end = lastNL + 1
		case end-pos > 1 && end < s.hi:
			end-- // \s+(?!\S)
		case end == pos:
			end++ // no alternative matches
		}
		dst = append(dst, span{start, end})
		pos = end
	}
	return dst
}

// splitRuns appends the maximal runs of code points satisfying in, and the
// pieces between them, of s (a regex "X+" split keeping unmatched text).
func splitRuns(cpts []rune, s span, in func(rune) bool, dst []span) []span {
	for pos := s.lo; pos < s.hi; {
		start := pos
		want := in(cpts[pos])
		for pos < s.hi && in(cpts[pos]) == want {
			pos++
		}
		dst = append(dst, span{start, pos})
	}
	return dst
}

// splitDigits3 appends the pieces of s split by "[0-9][0-9][0-9]": every
// leftmost group of three ASCII digits, and the text between.
func splitDigits3(cpts []rune, s span, dst []span) []span {
	prev := s.lo
	for pos := s.lo; pos+3 <= s.hi; {
		if isDigit(cpts[pos]) && isDigit(cpts[pos+1]) && isDigit(cpts[pos+2]) {
			if pos > prev {
				dst = append(dst, span{prev, pos})
			}
			dst = append(dst, span{pos, pos + 3})
			pos += 3
			prev = pos
			continue
		}
		pos++
	}
	if prev < s.hi {
		dst = append(dst, span{prev, s.hi})
	}
	return dst
}

func isDigit(r rune) bool { return '0' <= r && r <= '9' }

// isDefaultPunct is [\p{P}\$\+<=>\^~\|]: punctuation, and the ASCII symbols
// other than '`'. Non-ASCII white space never counts (llama.cpp collapses
// it to a space before matching).
func isDefaultPunct(r rune) bool {
	if r < 128 {
		return unicode.IsPunct(r) || r == '$' || r == '+' || r == '<' || r == '=' || r == '>' || r == '^' || r == '~' || r == '|'
	}
	return !unicode.IsSpace(r) && unicode.IsPunct(r)
}

// decodeCpts appends the code points of s to dst, decoding as llama.cpp's
// unicode_cpts_from_utf8 does: leniently (overlong forms and surrogates are
// accepted), an invalid byte becoming U+FFFD. Sequences above U+10FFFF, on
// which llama.cpp throws, also become U+FFFD per byte.
func decodeCpts(s string, dst []rune) []rune {
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			dst = append(dst, rune(c))
			i++
			continue
		}
		var r rune
		n := 0
		switch {
		case c&0x40 == 0:
		case c&0x20 == 0:
			if i+1 < len(s) && s[i+1]&0xC0 == 0x80 {
				r, n = rune(c&0x1F)<<6|rune(s[i+1]&0x3F), 2
			}
		case c&0x10 == 0:
			if i+2 < len(s) && s[i+1]&0xC0 == 0x80 && s[i+2]&0xC0 == 0x80 {
				r, n = rune(c&0x0F)<<12|rune(s[i+1]&0x3F)<<6|rune(s[i+2]&0x3F), 3
			}
		case c&0x08 == 0:
			if i+3 < len(s) && s[i+1]&0xC0 == 0x80 && s[i+2]&0xC0 == 0x80 && s[i+3]&0xC0 == 0x80 {
				r, n = rune(c&0x07)<<18|rune(s[i+1]&0x3F)<<12|rune(s[i+2]&0x3F)<<6|rune(s[i+3]&0x3F), 4
				if r > unicode.MaxRune {
					n = 0
				}
			}
		}
		if n == 0 {
			r, n = 0xFFFD, 1
		}
		dst = append(dst, r)
		i += n
	}
	return dst
}

// appendCpt appends the UTF-8 form of r (0 <= r <= U+10FFFF), surrogates
// included, as llama.cpp's unicode_cpt_to_utf8 does.
func appendCpt(b []byte, r rune) []byte {
	switch {
	case r < 0x80:
		return append(b, byte(r))
	case r < 0x800:
		return append(b, 0xC0|byte(r>>6), 0x80|byte(r)&0x3F)
	case r < 0x10000:
		return append(b, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
	}
	return append(b, 0xF0|byte(r>>18), 0x80|byte(r>>12)&0x3F, 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
}

package tokenizer

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file splits a chat template into text and tags (segments), applying
// Jinja's whitespace control as Hugging Face configures it (trim_blocks and
// lstrip_blocks on), and lexes the inside of tags into tokens.

// segKind is the kind of a template segment.
type segKind uint8

const (
	segText segKind = iota // literal text, whitespace control already applied
	segExpr                // {{ ... }}
	segStmt                // {% ... %}
)

// segment is a piece of the template source.
type segment struct {
	kind segKind
	body string // text, or the inside of the tag without delimiters and '-'/'+'
	pos  int    // byte offset in the source, for errors
}

// scanTemplate splits src into segments. Comments are dropped. Whitespace
// control follows Jinja with trim_blocks and lstrip_blocks:
//   - "{%-", "{{-", "{#-" strip all whitespace before the tag, and "-%}",
//     "-}}", "-#}" all whitespace after it;
//   - trim_blocks: the first newline after a block or comment tag is removed;
//   - lstrip_blocks: spaces and tabs from the start of a line up to a block
//     or comment tag are removed, unless the tag opens with "{%+".
//
// A "{% raw %}" block is kept as text up to its "{% endraw %}".
func scanTemplate(src string) ([]segment, error) {
	var segs []segment
	lineStart := true // the text about to be scanned starts a line
	i := 0
	for i < len(src) {
		j := indexTagOpen(src, i)
		if j < 0 {
			segs = append(segs, segment{kind: segText, body: src[i:], pos: i})
			break
		}
		text := src[i:j]
		open := src[j : j+2]
		k := j + 2
		mod := byte(0)
		if k < len(src) && (src[k] == '-' || src[k] == '+') {
			mod = src[k]
			k++
		}
		switch {
		case mod == '-':
			text = strings.TrimRight(text, " \t\r\n\f\v")
		case mod != '+' && open != "{{":
			text = lstripLine(text, lineStart)
		}
		if text != "" {
			segs = append(segs, segment{kind: segText, body: text, pos: i})
		}

		var closer string
		switch open {
		case "{{":
			closer = "}}"
		case "{%":
			closer = "%}"
		default:
			closer = "#}"
		}
		end, bodyEnd, trimAfter, err := findTagClose(src, k, open, closer)
		if err != nil {
			return nil, err
		}
		body := src[k:bodyEnd]
		next := end
		consumed := ""
		if trimAfter {
			n := next
			for n < len(src) && isSpaceByte(src[n]) {
				n++
			}
			consumed, next = src[next:n], n
		} else if open != "{{" { // trim_blocks
			if strings.HasPrefix(src[next:], "\n") {
				consumed, next = "\n", next+1
			} else if strings.HasPrefix(src[next:], "\r\n") {
				consumed, next = "\r\n", next+2
			}
		}
		lineStart = strings.HasSuffix(consumed, "\n")

		switch open {
		case "{{":
			segs = append(segs, segment{kind: segExpr, body: body, pos: j})
		case "{%":
			if kw := firstWord(body); kw == "raw" {
				rawEnd, after, err := findEndRaw(src, next)
				if err != nil {
					return nil, fmt.Errorf("at offset %d: %w", j, err)
				}
				if rawEnd > next {
					segs = append(segs, segment{kind: segText, body: src[next:rawEnd], pos: next})
				}
				next = after
				lineStart = false
				break
			}
			segs = append(segs, segment{kind: segStmt, body: body, pos: j})
		}
		i = next
	}
	return segs, nil
}

// indexTagOpen returns the offset of the next "{{", "{%" or "{#" at or
// after i, or -1.
func indexTagOpen(src string, i int) int {
	for {
		k := strings.IndexByte(src[i:], '{')
		if k < 0 || i+k+1 >= len(src) {
			return -1
		}
		i += k
		switch src[i+1] {
		case '{', '%', '#':
			return i
		}
		i++
	}
}

// findTagClose finds the closer of a tag whose body starts at k. It skips
// string literals inside expression and statement tags, so that "%}" in a
// string does not end the tag. It returns the offset after the closer, the
// end of the body, and whether the closer had a '-' (strip after).
func findTagClose(src string, k int, open, closer string) (end, bodyEnd int, trimAfter bool, err error) {
	i := k
	for i < len(src) {
		c := src[i]
		if open != "{#" && (c == '\'' || c == '"') {
			n := skipString(src, i)
			if n < 0 {
				return 0, 0, false, fmt.Errorf("at offset %d: unterminated string in tag", i)
			}
			i = n
			continue
		}
		if strings.HasPrefix(src[i:], closer) {
			if i > k && src[i-1] == '-' {
				return i + 2, i - 1, true, nil
			}
			return i + 2, i, false, nil
		}
		i++
	}
	return 0, 0, false, fmt.Errorf("at offset %d: %q without %q", k-2, open, closer)
}

// skipString returns the offset just after the string literal at i, or -1
// when it is not terminated.
func skipString(src string, i int) int {
	q := src[i]
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\\':
			j++
		case q:
			return j + 1
		}
	}
	return -1
}

// findEndRaw finds "{% endraw %}" (with optional '-' modifiers) from i and
// returns where the raw text ends and where scanning resumes.
func findEndRaw(src string, i int) (rawEnd, after int, err error) {
	for {
		j := strings.Index(src[i:], "{%")
		if j < 0 {
			return 0, 0, fmt.Errorf("raw block without endraw")
		}
		j += i
		k := j + 2
		strip := false
		if k < len(src) && (src[k] == '-' || src[k] == '+') {
			strip = src[k] == '-'
			k++
		}
		end, bodyEnd, trimAfter, err := findTagClose(src, k, "{%", "%}")
		if err != nil {
			return 0, 0, err
		}
		if strings.TrimSpace(src[k:bodyEnd]) != "endraw" {
			i = j + 2
			continue
		}
		rawEnd = j
		if strip {
			for rawEnd > i && isSpaceByte(src[rawEnd-1]) {
				rawEnd--
			}
		}
		if trimAfter {
			for end < len(src) && isSpaceByte(src[end]) {
				end++
			}
		} else if strings.HasPrefix(src[end:], "\n") {
			end++
		}
		return rawEnd, end, nil
	}
}

// lstripLine removes the spaces and tabs that end text when they run from
// the start of a line (after its last newline, or from the start of text
// when text starts a line), as lstrip_blocks does.
func lstripLine(text string, lineStart bool) string {
	l := strings.LastIndexByte(text, '\n') + 1
	if l == 0 && !lineStart {
		return text
	}
	if strings.Trim(text[l:], " \t") != "" {
		return text
	}
	return text[:l]
}

func isSpaceByte(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// firstWord returns the first identifier of a tag body.
func firstWord(body string) string {
	body = strings.TrimLeft(body, " \t\r\n")
	n := 0
	for n < len(body) && isIdentByte(body[n], n > 0) {
		n++
	}
	return body[:n]
}

func isIdentByte(c byte, notFirst bool) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || notFirst && '0' <= c && c <= '9'
}

// tokKind is the kind of a lexical token inside a tag.
type tokKind uint8

const (
	tokEOF tokKind = iota
	tokName
	tokString
	tokInt
	tokFloat
	tokOp // operators and punctuation; text holds the operator
)

// token is a lexical token of a tag body.
type token struct {
	kind tokKind
	text string // name, operator, or the unescaped value of a string
	i    int64
	f    float64
	pos  int // byte offset in the source
}

// operators, longest first so that "//" wins over "/".
var operators = []string{
	"**", "//", "==", "!=", "<=", ">=",
	"+", "-", "*", "/", "%", "~", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|",
}

// lexTag splits the body of a tag into tokens; base is the body's offset in
// the source.
func lexTag(body string, base int) ([]token, error) {
	var toks []token
	i := 0
	for i < len(body) {
		c := body[i]
		switch {
		case isSpaceByte(c):
			i++
		case isIdentByte(c, false):
			j := i + 1
			for j < len(body) && isIdentByte(body[j], true) {
				j++
			}
			toks = append(toks, token{kind: tokName, text: body[i:j], pos: base + i})
			i = j
		case '0' <= c && c <= '9':
			j := i
			for j < len(body) && ('0' <= body[j] && body[j] <= '9' || body[j] == '_') {
				j++
			}
			isFloat := false
			if j+1 < len(body) && body[j] == '.' && '0' <= body[j+1] && body[j+1] <= '9' {
				isFloat = true
				j++
				for j < len(body) && ('0' <= body[j] && body[j] <= '9' || body[j] == '_') {
					j++
				}
			}
			if j < len(body) && (body[j] == 'e' || body[j] == 'E') {
				k := j + 1
				if k < len(body) && (body[k] == '+' || body[k] == '-') {
					k++
				}
				if k < len(body) && '0' <= body[k] && body[k] <= '9' {
					isFloat = true
					j = k
					for j < len(body) && '0' <= body[j] && body[j] <= '9' {
						j++
					}
				}
			}
			lit := strings.ReplaceAll(body[i:j], "_", "")
			if isFloat {
				f, err := strconv.ParseFloat(lit, 64)
				if err != nil {
					return nil, fmt.Errorf("at offset %d: bad number %q", base+i, body[i:j])
				}
				toks = append(toks, token{kind: tokFloat, f: f, text: body[i:j], pos: base + i})
			} else {
				n, err := strconv.ParseInt(lit, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("at offset %d: bad integer %q", base+i, body[i:j])
				}
				toks = append(toks, token{kind: tokInt, i: n, text: body[i:j], pos: base + i})
			}
			i = j
		case c == '\'' || c == '"':
			j := skipString(body, i)
			if j < 0 {
				return nil, fmt.Errorf("at offset %d: unterminated string", base+i)
			}
			s, err := unescapeString(body[i+1 : j-1])
			if err != nil {
				return nil, fmt.Errorf("at offset %d: %w", base+i, err)
			}
			toks = append(toks, token{kind: tokString, text: s, pos: base + i})
			i = j
		default:
			op := ""
			for _, o := range operators {
				if strings.HasPrefix(body[i:], o) {
					op = o
					break
				}
			}
			if op == "" {
				r, _ := utf8.DecodeRuneInString(body[i:])
				return nil, fmt.Errorf("at offset %d: unexpected character %q", base+i, r)
			}
			toks = append(toks, token{kind: tokOp, text: op, pos: base + i})
			i += len(op)
		}
	}
	return append(toks, token{kind: tokEOF, pos: base + len(body)}), nil
}

// unescapeString interprets the backslash escapes of a Python string
// literal: \n \t \r \\ \' \" \0 \a \b \f \v \xHH \uHHHH \UHHHHHHHH and a
// backslash before a newline. An unknown escape is kept as written, as
// Python does.
func unescapeString(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := s[i]; e {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '0':
			b.WriteByte(0)
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case '\\', '\'', '"':
			b.WriteByte(e)
		case '\n':
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if i+1+n > len(s) {
				return "", fmt.Errorf("truncated \\%c escape", e)
			}
			v, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32)
			if err != nil || v > utf8.MaxRune {
				return "", fmt.Errorf("bad \\%c escape %q", e, s[i+1:i+1+n])
			}
			b.WriteRune(rune(v))
			i += n
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return b.String(), nil
}

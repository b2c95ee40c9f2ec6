package sample

import (
	"encoding/json"
	"testing"
)

// patternSchema has strings under patterns, anchored and not.
const patternSchema = `{"type":"object","properties":{
"id":{"type":"string","pattern":"^[A-Z]{2}-\\d{3}$"},
"tag":{"type":"string","pattern":"é|xy"},
"any":{"type":"string","pattern":"^.?$"}
},"required":["id","tag"]}`

// TestJSONSchemaPatterns checks strings under patterns: what they accept,
// and that a character is refused as soon as no string it begins matches,
// a UTF-8 sequence and a \u escape from their first byte on.
func TestJSONSchemaPatterns(t *testing.T) {
	for _, tc := range []struct {
		pattern   string
		good, bad []string
	}{
		{`^[a-z]{2,4}$`, []string{`"ab"`, `"abcd"`}, []string{`"a"`, `"abcde"`, `"aB"`, `""`}},
		{`a+`, []string{`"xay"`, `"a"`, `"baaa"`, `"\u0061"`}, []string{`""`, `"xyz"`}},
		{`^\d{3}-\d{4}$`, []string{`"555-1234"`}, []string{`"5551234"`, `"555-12345"`, `"x555-1234"`}},
		{`^.$`, []string{`"é"`, `"\u00e9"`, `"x"`, `"\t"`, `"🦙"`}, []string{`"\n"`, `"\r"`, `"\u2028"`, `"ab"`, `""`}},
		{`^é+$`, []string{`"éé"`, `"\u00e9"`, `"\u00E9é"`}, []string{`"e"`, `""`}},
		{`^[^"\\]*$`, []string{`"abc"`, `""`, `"\/"`}, []string{`"a\"b"`, `"\\"`}},
		{`^🦙$|^b$`, []string{`"🦙"`, `"b"`}, []string{`"🦙b"`, `"\ud83e\udd99"`}}, // surrogate escapes: halves, not characters
		{`^$`, []string{`""`}, []string{`"a"`}},
		{`x|^$`, []string{`""`, `"axa"`}, []string{`"a"`}},
		{`^\S+$`, []string{`"ab"`, `"é"`}, []string{`"a b"`, `"a\u00a0b"`, "\"a\u2003\"", `"a\u000bb"`}}, // ECMA's \s, not RE2's
		{`^[\sx]$`, []string{`" "`, `"\u00a0"`, `"\u000b"`, `"x"`}, []string{`"y"`}},
	} {
		doc, _ := json.Marshal(map[string]string{"type": "string", "pattern": tc.pattern})
		s := mustSchema(t, string(doc))
		checkTexts(t, tc.pattern, s.Valid, tc.good, tc.bad)
	}
	for _, tc := range []struct {
		pattern, prefix string
		want            bool
	}{
		{`^[a-z]{2,4}$`, `"ab`, true}, {`^[a-z]{2,4}$`, `"abcde`, false}, {`^[a-z]{2,4}$`, `"A`, false},
		{`^[a-z]+$`, "\"\xc3", false}, {`^é$`, "\"\xc3", true}, {`^é$`, "\"\xc4", false}, {`^é$`, "\"\xc3\xa9", true},
		{`^é$`, `"\`, true}, {`^é$`, `"\u00`, true}, {`^é$`, `"\u01`, false}, {`^é$`, `"\u00e`, true}, {`^é$`, `"\n`, false},
		{`^🦙$`, "\"\xf0\x9f", true}, {`^🦙$`, "\"\xf0\x9e", false}, {`^🦙$`, `"\ud8`, false},
	} {
		doc, _ := json.Marshal(map[string]string{"type": "string", "pattern": tc.pattern})
		if got := mustSchema(t, string(doc)).Prefix([]byte(tc.prefix)); got != tc.want {
			t.Errorf("%s: Prefix(%q) = %v, want %v", tc.pattern, tc.prefix, got, tc.want)
		}
	}
}

// TestPatternAllocs: a string under a pattern takes its characters (ASCII,
// a UTF-8 sequence, a \u escape) without allocating.
func TestPatternAllocs(t *testing.T) {
	s := mustSchema(t, `{"type":"string","pattern":"^[a-zé]+$"}`)
	text := []byte(`"ab` + "\xc3\xa9" + `\u00e9`)
	piece := func(id int) []byte { return text[id : id+1] }
	c := s.Constraint(piece, func(int) bool { return false }).(*schemaConstraint)
	saved := c.sts[0].clone(nil)
	if n := testing.AllocsPerRun(100, func() {
		c.sts[0] = saved.clone(c.sts[0].stack)
		for i := range text {
			if !c.Allowed(i) {
				t.Fatalf("byte %d of %s refused", i, text)
			}
			c.Accept(i)
		}
	}); n != 0 {
		t.Errorf("%v allocations for %d bytes", n, len(text))
	}
}

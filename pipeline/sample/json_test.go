package sample

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestValidJSONObject(t *testing.T) {
	deep := strings.Repeat(`{"a":`, MaxJSONDepth) + "1" + strings.Repeat("}", MaxJSONDepth)
	for _, tc := range []struct {
		text string
		want bool
	}{
		{`{}`, true},
		{`{"a": 1}`, true},
		{` {"a": 1}`, false}, // nothing before the object
		{`{"a":[1,-2.5e+3,0,0.5E-7,true,false,null,"x\"\\\/\b\f\n\r\t\u00e9",{},[]],"b":{"c":[]}}`, true},
		{"{\n  \"k\": \"h\u00e9llo \U0001F999\"\n}", true},
		{deep, true},
		{deep[:len(deep)-1], false},           // unclosed
		{strings.Repeat("[", 1) + "]", false}, // not an object
		{`"a"`, false}, {`1`, false}, {`null`, false}, {``, false},
		{`{} `, false}, // nothing after the object
		{`{}{}`, false},
		{`{"a":1,}`, false}, {`{,}`, false}, {`{"a"}`, false}, {`{a:1}`, false},
		{`{"a":01}`, false}, {`{"a":-}`, false}, {`{"a":1.}`, false}, {`{"a":.5}`, false}, {`{"a":1e}`, false},
		{`{"a":tru}`, false}, {`{"a":True}`, false}, {`{"a":[1,]}`, false}, {`{"a":[1}`, false},
		{"{\"a\":\"\x01\"}", false}, {`{"a":"\x"}`, false}, {`{"a":"\u12g4"}`, false},
		{"{\n" + strings.Repeat(" ", MaxJSONIndent) + `"a": 1}`, true},
		{"{\n\t\t\"a\":\n[1, 2]\n}", true},
		{"{\n" + strings.Repeat(" ", MaxJSONIndent+1) + `"a": 1}`, false},
		{`{  "a": 1}`, false},     // two spaces
		{"{\n\n\"a\": 1}", false}, // two newlines
		{"{\t\"a\": 1}", false},   // a tab first
		{"{\r\n\"a\": 1}", false},
		{strings.Repeat(`{"a":`, MaxJSONDepth+1) + "1" + strings.Repeat("}", MaxJSONDepth+1), false},
	} {
		if got := ValidJSONObject([]byte(tc.text)); got != tc.want {
			t.Errorf("ValidJSONObject(%q) = %v, want %v", tc.text, got, tc.want)
		}
		if tc.want && !json.Valid([]byte(tc.text)) {
			t.Errorf("%q: encoding/json disagrees", tc.text)
		}
	}
}

// FuzzValidJSONObject checks the recognizer against encoding/json: what it
// accepts is a valid JSON object, and every JSON object within its limits,
// compacted, is accepted.
func FuzzValidJSONObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,2,{"b":null}]}`, `{"a":"\u00e9\n"}`, ` {"x": -0.5e3 }`, `[1]`, `{"a":1,}`, "{\"\xff\":1}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if ValidJSONObject(b) {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil || m == nil {
				t.Fatalf("accepted %q, which is not a JSON object: %v", b, err)
			}
		}
		var c bytes.Buffer
		if json.Compact(&c, b) != nil {
			return
		}
		if c.Len() > 0 && c.Bytes()[0] == '{' && depth(c.Bytes()) <= MaxJSONDepth && digitsWithin(c.Bytes()) && !ValidJSONObject(c.Bytes()) {
			t.Fatalf("refused the JSON object %q", c.Bytes())
		}
	})
}

// outsideStrings masks the bytes of a compact JSON text that lie outside
// its strings (quotes excluded).
func outsideStrings(b []byte) []bool {
	out := make([]bool, len(b))
	in, esc := false, false
	for i, c := range b {
		switch {
		case in && esc:
			esc = false
		case in && c == '\\':
			esc = true
		case c == '"':
			in = !in
		default:
			out[i] = !in
		}
	}
	return out
}

// digitsWithin reports whether every number of a compact JSON text has
// parts within MaxIntDigits, MaxFracDigits and MaxExpDigits.
func digitsWithin(b []byte) bool {
	outside := outsideStrings(b)
	for i := 0; i < len(b); i++ {
		if !outside[i] || !isDigit(b[i]) {
			continue
		}
		j := i
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		limit := MaxIntDigits
		switch {
		case i > 0 && b[i-1] == '.':
			limit = MaxFracDigits
		case i > 0 && (b[i-1] == 'e' || b[i-1] == 'E'), i > 1 && (b[i-1] == '+' || b[i-1] == '-') && (b[i-2] == 'e' || b[i-2] == 'E'):
			limit = MaxExpDigits
		}
		if j-i > limit {
			return false
		}
		i = j - 1
	}
	return true
}

// depth is the deepest nesting of a compact JSON text.
func depth(b []byte) int {
	d, most := 0, 0
	for i, out := range outsideStrings(b) {
		switch {
		case out && (b[i] == '{' || b[i] == '['):
			d++
			most = max(most, d)
		case out && (b[i] == '}' || b[i] == ']'):
			d--
		}
	}
	return most
}

// TestSampleAllowedJSON samples from random logits over a small vocabulary
// of JSON pieces under the JSON constraint: every text it makes is a
// prefix the recognizer accepts, and ends as a whole object exactly when
// the end-of-generation token comes.
func TestSampleAllowedJSON(t *testing.T) {
	// As in real vocabularies, every byte is a token too (here the
	// printable ASCII ones), so that no prefix is a dead end.
	vocab := []string{"", `"a"`, `":`, "\n  ", ".5", "e3", "tr", "ue", "null", "\x01", `{"k":`, `"}`, "}}"}
	for b := byte(' '); b < 0x7f; b++ {
		vocab = append(vocab, string(b))
	}
	vocab = append(vocab, "<s>")
	const eog = 0
	piece := func(id int) []byte {
		if id == len(vocab)-1 { // a control token: no text
			return nil
		}
		return []byte(vocab[id])
	}
	isEOG := func(id int) bool { return id == eog }
	rng := rand.New(rand.NewPCG(1, 2))
	ended := 0
	for trial := range 200 {
		p := Params{Temperature: float32(trial % 3), TopK: trial % 5, Seed: uint64(trial)}
		s := New(p)
		c := NewJSON(piece, isEOG)
		var text []byte
		logits := make([]float32, len(vocab))
		for range 64 {
			for i := range logits {
				logits[i] = float32(rng.NormFloat64() * 3)
			}
			logits[eog] = 2 // likely whenever allowed
			tok := s.SampleAllowed(logits, nil, c)
			if tok < 0 {
				t.Fatalf("trial %d: no token after %q", trial, text)
			}
			if !c.Allowed(tok) {
				t.Fatalf("trial %d: sampled %q, which the constraint refuses after %q", trial, vocab[tok], text)
			}
			c.Accept(tok)
			if tok == eog {
				if !ValidJSONObject(text) {
					t.Fatalf("trial %d: ended after %q, not a whole object", trial, text)
				}
				ended++
				break
			}
			text = append(text, piece(tok)...)
		}
		if !JSONObjectPrefix(text) {
			t.Fatalf("trial %d: %q is no prefix of a JSON object", trial, text)
		}
	}
	if ended == 0 {
		t.Error("no trial ended with a whole object")
	}
	t.Logf("%d of 200 trials made a whole object in 64 tokens", ended)
}

// TestSampleAllowedMasks: with the first choices refused, SampleAllowed
// still finds the one token allowed, past maxRejects, and -1 when none is.
func TestSampleAllowedMasks(t *testing.T) {
	logits := make([]float32, 100)
	for i := range logits {
		logits[i] = float32(i) // the last the most likely
	}
	only := allowOnly(3)
	for _, p := range []Params{{}, {Temperature: 1, Seed: 7}, {Temperature: 1, TopK: 5, Seed: 7}, {RepeatPenalty: 1.3, RepeatLastN: 8}} {
		if got := New(p).SampleAllowed(logits, []int{99, 98}, only); got != 3 {
			t.Errorf("%+v: token %d, want 3, the only one allowed", p, got)
		}
	}
	if got := New(Params{}).SampleAllowed(logits, nil, allowOnly(-1)); got != -1 {
		t.Errorf("none allowed: token %d, want -1", got)
	}
	if logits[99] != 99 {
		t.Error("SampleAllowed changed the logits")
	}
	if got := New(Params{}).SampleAllowed(logits, nil, nil); got != 99 {
		t.Errorf("no constraint: %d, want the argmax", got)
	}
}

type allowOnly int

func (a allowOnly) Allowed(tok int) bool { return tok == int(a) }
func (a allowOnly) Accept(int)           {}

// TestNumberDigits: a number's parts are bounded (MaxIntDigits,
// MaxFracDigits, MaxExpDigits) in both recognizers, so that a model cannot
// write digits on and on.
func TestNumberDigits(t *testing.T) {
	d := func(n int) string { return strings.Repeat("7", n) }
	sch := mustSchema(t, `{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"integer"}}}`)
	for _, tc := range []struct {
		num  string
		want bool
	}{
		{d(MaxIntDigits), true}, {d(MaxIntDigits + 1), false}, {"-" + d(MaxIntDigits), true},
		{"1." + d(MaxFracDigits), true}, {"1." + d(MaxFracDigits+1), false},
		{"1e" + d(MaxExpDigits), true}, {"1E-" + d(MaxExpDigits), true}, {"1e+" + d(MaxExpDigits+1), false},
		{d(MaxIntDigits) + "." + d(MaxFracDigits) + "e" + d(MaxExpDigits), true},
	} {
		if got := ValidJSONObject([]byte(`{"a":` + tc.num + `}`)); got != tc.want {
			t.Errorf("JSON mode %s: %v, want %v", tc.num, got, tc.want)
		}
		if got := sch.Valid([]byte(`{"a":` + tc.num + `}`)); got != tc.want {
			t.Errorf("schema number %s: %v, want %v", tc.num, got, tc.want)
		}
		if got := mustSchema(t, `{}`).Valid([]byte(`[` + tc.num + `]`)); got != tc.want {
			t.Errorf("free-form %s: %v, want %v", tc.num, got, tc.want)
		}
	}
	if !sch.Valid([]byte(`{"b":`+d(MaxIntDigits)+`}`)) || sch.Valid([]byte(`{"b":`+d(MaxIntDigits+1)+`}`)) {
		t.Error("integer digits unbounded")
	}
}

package sample

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// callSchema is a tool call of one of two functions, as the chat API
// builds it.
const callSchema = `{"anyOf":[
	{"type":"object","properties":{"name":{"const":"weather"},"arguments":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}},"required":["name","arguments"]},
	{"type":"object","properties":{"name":{"const":"time"},"arguments":{"type":"object"}},"required":["name","arguments"]}]}`

func triggeredCalls(t testing.TB, max int) *Triggered {
	return &Triggered{Open: "<tool_call>", Close: "</tool_call>", Body: mustSchema(t, callSchema), Max: max}
}

func TestTriggered(t *testing.T) {
	g := triggeredCalls(t, 0)
	for _, tc := range []struct {
		text          string
		valid, prefix bool
	}{
		{"", true, true},
		{"It is sunny. <tool_ and <tool_cal are only words", true, true},
		{"<tool_call>\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>", true, true},
		{"Let me look.\n<tool_call>{\"name\":\"time\",\"arguments\":{}}</tool_call>\n<tool_call>\n{\"name\":\"weather\",\"arguments\":{\"city\":\"x\"}}\n</tool_call> Done.", true, true},
		{"<<tool_call>{\"name\":\"time\",\"arguments\":{}}</tool_call>", true, true}, // Open after a stray '<'
		{"<tool_call>\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Os", false, true},
		{"<tool_call>\n{\"name\": \"weather\"}", false, false},                 // arguments required
		{"<tool_call>\n{\"name\": \"rain\", \"arguments\": {}}", false, false}, // no such function
		{"<tool_call>{\"name\":\"time\",\"arguments\":{}}", false, true},       // not closed
		{"<tool_call>{\"name\":\"time\",\"arguments\":{}}</tool", false, true},
		{"<tool_call>{\"name\":\"time\",\"arguments\":{}}x", false, false},
		{"<tool_call>{\"name\":\"time\",\"arguments\":{}}" + "         " + "</tool_call>", false, false}, // 9 spaces
		{"<tool_call>" + "         " + "{", false, false},
		{"<tool_call>Sorry", false, false},
	} {
		if got := g.Valid([]byte(tc.text)); got != tc.valid {
			t.Errorf("Valid(%q) = %v, want %v", tc.text, got, tc.valid)
		}
		if got := g.Prefix([]byte(tc.text)); got != tc.prefix {
			t.Errorf("Prefix(%q) = %v, want %v", tc.text, got, tc.prefix)
		}
	}
	final := triggeredCalls(t, 0)
	final.Final = true
	c := "<tool_call>{\"name\":\"time\",\"arguments\":{}}</tool_call>"
	for _, tc := range []struct {
		text          string
		valid, prefix bool
	}{
		{"Free words first. " + c, true, true},
		{c + "\n\n" + c + " ", true, true},
		{c + " Done.", false, false},
		{c + "<tool_", false, true},
		{c + "<tool_x", false, false},
		{c + "         " + c, false, false}, // 9 spaces
	} {
		if got := final.Valid([]byte(tc.text)); got != tc.valid {
			t.Errorf("Final: Valid(%q) = %v, want %v", tc.text, got, tc.valid)
		}
		if got := final.Prefix([]byte(tc.text)); got != tc.prefix {
			t.Errorf("Final: Prefix(%q) = %v, want %v", tc.text, got, tc.prefix)
		}
	}
	one := triggeredCalls(t, 1)
	two := "<tool_call>{\"name\":\"time\",\"arguments\":{}}</tool_call><tool_call>"
	if one.Prefix([]byte(two)) || !g.Prefix([]byte(two)) {
		t.Errorf("Max 1 lets a second call begin, or Max 0 does not")
	}
	// The sections it lets through are calls, whatever tokens spell them.
	calls := 0
	n := testConstraint(t, g, []string{"", "<tool_call>", "\n{\"name\": \"", "weather\", \"arguments\": {\"city\": \"", "\"}}\n</tool_call>", "Hi", "<tool_", "call>"}, func(text []byte) bool {
		for rest := text; ; {
			i := bytes.Index(rest, []byte("<tool_call>"))
			if i < 0 {
				return true
			}
			rest = rest[i+len("<tool_call>"):]
			j := bytes.Index(rest, []byte("</tool_call>"))
			if j < 0 || !json.Valid(rest[:j]) {
				return false
			}
			calls++
			rest = rest[j:]
		}
	})
	if testConstraint(t, final, []string{"", "<tool_call>", "{\"name\": \"time\", \"arguments\": {}}", "</tool_call>", "\n", "Hi"}, final.Valid) == 0 {
		t.Error("Final: no whole reply")
	}
	if n == 0 || calls == 0 {
		t.Errorf("%d whole replies, %d calls in them", n, calls)
	}
	t.Logf("%d calls", calls)
}

func TestAdvanceMatch(t *testing.T) {
	for _, tc := range []struct {
		pat, text string
		want      int
	}{
		{"<tool_call>", "<tool_", 6}, {"<tool_call>", "<<tool_", 6}, {"<tool_call>", "<tool_x", 0},
		{"aab", "aaa", 2}, {"aab", "aaab", 3}, {"abab", "ababa", 3}, {"abab", "abac", 0},
	} {
		m := 0
		for i := range len(tc.text) {
			m = advanceMatch(tc.pat, m, tc.text[i])
		}
		if m != tc.want {
			t.Errorf("%q after %q: %d, want %d", tc.pat, tc.text, m, tc.want)
		}
	}
}

// FuzzTriggered: a whole reply is a beginning of itself, each of its
// beginnings is one, and each of its sections is a JSON text of the body.
func FuzzTriggered(f *testing.F) {
	for _, seed := range []string{"", "Hi <tool_", "<tool_call>\n{\"name\": \"time\", \"arguments\": {}}\n</tool_call>",
		"x<tool_call>{\"name\":\"weather\",\"arguments\":{\"city\":\"\\u00e9\"}}</tool_call> <tool_call>{\"name\":\"time\",\"arguments\":{\"a\":[1]}}</tool_call>"} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	body := mustSchema(f, callSchema)
	f.Fuzz(func(t *testing.T, text []byte, final bool) {
		g := &Triggered{Open: "<tool_call>", Close: "</tool_call>", Body: body, Final: final}
		if !g.Valid(text) {
			return
		}
		for i := range len(text) + 1 {
			if !g.Prefix(text[:i]) {
				t.Fatalf("%q is whole, but not its beginning %q", text, text[:i])
			}
		}
		for rest := text; ; {
			i := bytes.Index(rest, []byte(g.Open))
			if i < 0 {
				break
			}
			rest = rest[i+len(g.Open):]
			j := bytes.Index(rest, []byte(g.Close))
			if j < 0 || !body.Valid(bytes.TrimSpace(rest[:j])) {
				t.Fatalf("%q: a section that is no call: %q", text, rest)
			}
			rest = rest[j+len(g.Close):]
		}
	})
}

// bareCalls is callSchema with Llama 3's key for the arguments, or a
// list of such calls.
func bareCalls(t testing.TB) *Leading {
	one := strings.ReplaceAll(callSchema, `"arguments"`, `"parameters"`)
	return &Leading{Body: mustSchema(t, `{"anyOf":[`+one+`,{"type":"array","items":`+one+`,"minItems":1}]}`)}
}

func TestLeading(t *testing.T) {
	g := bareCalls(t)
	for _, tc := range []struct {
		text          string
		valid, prefix bool
	}{
		{"", true, true},
		{"  \n", true, true},
		{"It is sunny {not a call}", true, true},
		{`{"name": "time", "parameters": {}}`, true, true},
		{` {"name": "weather", "parameters": {"city": "Oslo"}}` + "\n", true, true},
		{`[{"name": "time", "parameters": {}}, {"name": "weather", "parameters": {"city": "x"}}]`, true, true},
		{`{"name": "weather", "parameters": {"city": "Os`, false, true},
		{`{"name": "rain", "parameters": {}}`, false, false},
		{`{"name": "time", "parameters": {}} and more`, false, false},
		{`[]`, false, false},
		{`{"answer": 42}`, false, false},
		{"         {", true, true}, // past the leading whitespace a brace is text
	} {
		if got := g.Valid([]byte(tc.text)); got != tc.valid {
			t.Errorf("Valid(%q) = %v, want %v", tc.text, got, tc.valid)
		}
		if got := g.Prefix([]byte(tc.text)); got != tc.prefix {
			t.Errorf("Prefix(%q) = %v, want %v", tc.text, got, tc.prefix)
		}
	}
	calls := 0
	testConstraint(t, g, []string{"", `{"name": "`, `weather", "parameters": {"city": "`, `"}}`, "[", "Hi"}, func(text []byte) bool {
		if t := bytes.TrimSpace(text); len(t) > 0 && (t[0] == '{' || t[0] == '[') && bytes.HasPrefix(text, t[:1]) {
			calls++
			return json.Valid(t)
		}
		return true
	})
	if calls == 0 {
		t.Error("no trial wrote a call")
	}
	t.Logf("%d calls", calls)
}

// FuzzLeading: a whole reply is a beginning of itself and of each of its
// beginnings; one that begins with a brace or bracket is a JSON text of the
// body.
func FuzzLeading(f *testing.F) {
	for _, seed := range []string{"", "Hi {", `{"name": "time", "parameters": {}}`, ` [{"name":"weather","parameters":{"city":"\u00e9"}}] `} {
		f.Add([]byte(seed))
	}
	g := bareCalls(f)
	f.Fuzz(func(t *testing.T, text []byte) {
		if !g.Valid(text) {
			return
		}
		for i := range len(text) + 1 {
			if !g.Prefix(text[:i]) {
				t.Fatalf("%q is whole, but not its beginning %q", text, text[:i])
			}
		}
		lead := bytes.TrimLeft(text, " \t\r\n")
		if len(text)-len(lead) <= MaxMarkSpace && len(lead) > 0 && (lead[0] == '{' || lead[0] == '[') && !g.Body.Valid(bytes.TrimSpace(lead)) {
			t.Fatalf("%q: whole, but no call", text)
		}
	})
}

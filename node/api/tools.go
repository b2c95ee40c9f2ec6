package api

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/strata-llm/strata/pipeline/sample"
	"github.com/strata-llm/strata/pipeline/tokenizer"
)

// This file serves OpenAI's function calling on the chat route: the tools
// a request offers, how the model is told of them, how its reply is
// constrained to a call when the request requires one, and how calls are
// read back out of the reply.
//
// How a model writes a call depends on what it was trained on, which its
// chat template tells: Qwen 2.5, Hermes and their kin wrap a JSON object
// {"name", "arguments"} in <tool_call></tool_call>; Llama 3.x writes a bare
// JSON object {"name", "parameters"}; other templates that render the
// tools are taken to want a bare {"name", "arguments"}. A template that
// does not render them at all gets them in a system message of this
// server's, which asks for that bare object.

// toolSet is the tools of one chat request and what it asks of them.
type toolSet struct {
	funcs  []toolFunc
	raw    json.RawMessage // the tools array as sent, for the template
	choice string          // "none", "auto", "required" or "function" (one named)
	named  string          // with "function": the name
	single bool            // parallel_tool_calls false: one call at most
	prompt string          // TGI's tool_prompt: the text before the tools' description
	syntax toolSyntax
	live   bool // the reply is under lazy's grammar: calls stream as they are written
}

// toolFunc is one function offered.
type toolFunc struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

// toolSyntax is how the model writes its calls.
type toolSyntax struct {
	hermes  bool   // wrapped in <tool_call>\n...\n</tool_call>
	argsKey string // "arguments", or "parameters" (Llama 3.x)
	native  bool   // the chat template renders the tools itself
}

// hermesOpen and hermesClose wrap a call in the Hermes syntax.
const (
	hermesOpen  = "<tool_call>"
	hermesClose = "</tool_call>"
)

// syntaxOf reads a chat template's source for how its model calls tools.
func syntaxOf(src string) toolSyntax {
	switch {
	case strings.Contains(src, hermesOpen):
		return toolSyntax{hermes: true, argsKey: "arguments", native: true}
	case strings.Contains(src, "<|python_tag|>") || strings.Contains(src, "Environment: ipython"):
		return toolSyntax{argsKey: "parameters", native: true}
	case strings.Contains(src, "tools"):
		return toolSyntax{argsKey: "arguments", native: true}
	}
	return toolSyntax{argsKey: "arguments"}
}

var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// parseTools checks a chat request's tools and tool_choice. It returns nil
// when the request offers no tools.
func (s *Server) parseTools(req *chatRequest) (*toolSet, *apiError) {
	if isSet(req.Functions) || isSet(req.FunctionCall) {
		return nil, badRequest("functions", "'functions' and 'function_call' are deprecated and not supported by this server; use 'tools' and 'tool_choice'")
	}
	choice, named, aerr := parseToolChoice(req.ToolChoice)
	if aerr != nil {
		return nil, aerr
	}
	if !isSet(req.Tools) {
		if choice == "required" || choice == "function" {
			return nil, badRequest("tool_choice", "tool_choice %q needs 'tools'", choice)
		}
		return nil, nil
	}
	var tools []struct {
		Type     string          `json:"type"`
		Function json.RawMessage `json:"function"`
	}
	if err := json.Unmarshal(req.Tools, &tools); err != nil {
		return nil, badRequest("tools", "'tools' must be an array of {\"type\": \"function\", \"function\": {...}}")
	}
	ts := &toolSet{raw: req.Tools, choice: choice, named: named, syntax: syntaxOf(s.tok.ChatTemplateSource()),
		single: req.ParallelToolCalls != nil && !*req.ParallelToolCalls, prompt: req.ToolPrompt}
	for i, t := range tools {
		var f struct {
			toolFunc
			Strict *bool `json:"strict"`
		}
		if t.Type != "function" {
			return nil, badRequest(fmtf("tools[%d].type", i), "tools[%d] has type %q; only \"function\" is supported", i, t.Type)
		}
		if err := json.Unmarshal(t.Function, &f); err != nil || !isSet(t.Function) {
			return nil, badRequest(fmtf("tools[%d].function", i), "tools[%d].function must be an object with a name", i)
		}
		if !toolName.MatchString(f.Name) {
			return nil, badRequest(fmtf("tools[%d].function.name", i), "tools[%d].function.name %q must be 1 to 64 letters, digits, underscores or dashes", i, f.Name)
		}
		if slices.ContainsFunc(ts.funcs, func(g toolFunc) bool { return g.Name == f.Name }) {
			return nil, badRequest(fmtf("tools[%d].function.name", i), "two tools are named %q", f.Name)
		}
		switch p := bytes.TrimSpace(f.Parameters); {
		case len(p) == 0 || string(p) == "null":
			f.Parameters = json.RawMessage(`{"type":"object","properties":{}}`)
		case p[0] != '{':
			return nil, badRequest(fmtf("tools[%d].function.parameters", i), "tools[%d].function.parameters must be a JSON Schema object", i)
		}
		ts.funcs = append(ts.funcs, f.toolFunc)
	}
	if choice == "function" && !slices.ContainsFunc(ts.funcs, func(f toolFunc) bool { return f.Name == named }) {
		return nil, badRequest("tool_choice", "tool_choice names the function %q, which 'tools' does not offer", named)
	}
	return ts, nil
}

// parseToolChoice reads tool_choice: "none", "auto", "required", or
// {"type": "function", "function": {"name": ...}} (returned as "function"
// and the name). Absent, it is "auto" (or "none" without tools).
func parseToolChoice(raw json.RawMessage) (choice, name string, aerr *apiError) {
	if !isSet(raw) {
		return "auto", "", nil
	}
	if err := json.Unmarshal(raw, &choice); err == nil {
		if !slices.Contains([]string{"none", "auto", "required"}, choice) {
			return "", "", badRequest("tool_choice", "tool_choice %q: expected \"none\", \"auto\", \"required\" or a function", choice)
		}
		return choice, "", nil
	}
	var obj struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Type != "function" || obj.Function.Name == "" {
		return "", "", badRequest("tool_choice", "tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}")
	}
	return "function", obj.Function.Name, nil
}

// required reports whether the reply must be a call.
func (ts *toolSet) required() bool {
	return ts != nil && (ts.choice == "required" || ts.choice == "function")
}

// calls reports whether the reply may hold calls, to be read out of it.
func (ts *toolSet) calls() bool { return ts != nil && ts.choice != "none" }

// schema compiles the JSON Schema of a required call: one object naming
// one of the allowed functions, with its arguments.
func (ts *toolSet) schema() (*sample.JSONSchema, *apiError) {
	calls, aerr := ts.callSchemas(true)
	if aerr != nil {
		return nil, aerr
	}
	doc := calls[0]
	if len(calls) > 1 {
		doc = `{"anyOf":[` + strings.Join(calls, ",") + `]}`
	}
	sch, err := sample.CompileJSONSchema([]byte(doc))
	if err != nil {
		return nil, badRequest("tools", "%v", err)
	}
	return sch, nil
}

// callSchemas returns the JSON Schema of a call of each allowed function
// (the named one alone with tool_choice "function"): an object of its
// name and its arguments. Parameters that do not compile as a schema are
// refused where strict, else they take any object.
func (ts *toolSet) callSchemas(strict bool) ([]string, *apiError) {
	key := ts.syntax.argsKey
	var calls []string
	for _, f := range ts.funcs {
		if ts.choice == "function" && f.Name != ts.named {
			continue
		}
		name, _ := json.Marshal(f.Name)
		call := func(args json.RawMessage) string {
			return fmt.Sprintf(`{"type":"object","properties":{"name":{"const":%s},%q:%s},"required":["name",%q]}`, name, key, args, key)
		}
		c := call(f.Parameters)
		if !isSet(f.Parameters) {
			c = call(json.RawMessage(`{"type":"object"}`))
		}
		if _, err := sample.CompileJSONSchema([]byte(c)); err != nil {
			if strict {
				return nil, badRequest("tools", "the parameters of tool %q: %v", f.Name, err)
			}
			c = call(json.RawMessage(`{"type":"object"}`))
		}
		calls = append(calls, c)
	}
	return calls, nil
}

// lazy is the grammar of a reply that may call the tools (tool_choice
// auto): free text, but a call the model begins must name an offered
// function with arguments its parameters accept (as schema compiles
// them), so that it is read back as a call. A model that writes calls in
// <tool_call> tags may write text before them, and they end the reply
// (sample.Triggered); a model that writes bare JSON calls begins its reply
// with one, or a list of them, which is then the whole reply
// (sample.Leading). Parameters that do not compile as a schema take any
// object (as they did without the grammar). Past the functions that a
// call's name tells apart in one reading (64), there is no grammar (nil).
func (ts *toolSet) lazy() sample.Grammar {
	if !ts.calls() || ts.required() {
		return nil
	}
	calls, _ := ts.callSchemas(false)
	one := `{"anyOf":[` + strings.Join(calls, ",") + `]}`
	if ts.syntax.hermes {
		sch, err := sample.CompileJSONSchema([]byte(one))
		if err != nil {
			return nil
		}
		max := 0
		if ts.single {
			max = 1
		}
		return &sample.Triggered{Open: hermesOpen, Close: hermesClose, Body: sch, Max: max, Final: true}
	}
	most := "" // a list of calls, as read takes it
	if ts.single {
		most = `,"maxItems":1`
	}
	sch, err := sample.CompileJSONSchema([]byte(`{"anyOf":[` + one + `,{"type":"array","items":` + one + `,"minItems":1` + most + `}]}`))
	if err != nil {
		return nil
	}
	return &sample.Leading{Body: sch}
}

// prefill is the text the reply of a required call starts with, written
// into the prompt: the model then writes only the JSON object.
func (ts *toolSet) prefill() string {
	if ts.required() && ts.syntax.hermes {
		return hermesOpen + "\n"
	}
	return ""
}

// vars are the template variables of the tools (none when the template
// does not render them).
func (ts *toolSet) vars() map[string]any {
	if ts == nil || !ts.syntax.native {
		return nil
	}
	return map[string]any{"tools": ts.raw}
}

// instruct adds this server's system message about the tools to msgs, for
// a template that does not render them; TGI's tool_prompt, when given,
// stands in for its first line.
func (ts *toolSet) instruct(msgs []tokenizer.ChatMessage) []tokenizer.ChatMessage {
	if ts == nil || ts.syntax.native || ts.choice == "none" {
		return msgs
	}
	var b strings.Builder
	if ts.prompt != "" {
		b.WriteString(strings.TrimRight(ts.prompt, "\n") + "\n")
	} else {
		b.WriteString("You can call functions. These are available, each described by a JSON object:\n")
	}
	for _, f := range ts.funcs {
		j, _ := json.Marshal(f)
		b.Write(j)
		b.WriteByte('\n')
	}
	b.WriteString(`To call one, reply with only a JSON object: {"name": <the function's name>, "arguments": <an object of its arguments>}.`)
	if len(msgs) > 0 && msgs[0].Role == "system" {
		msgs = slices.Clone(msgs)
		msgs[0].Content = strings.TrimRight(msgs[0].Content, "\n") + "\n\n" + b.String()
		return msgs
	}
	return append([]tokenizer.ChatMessage{{Role: "system", Content: b.String()}}, msgs...)
}

// toolCall is a call read out of a reply, as OpenAI's responses carry it.
// In a stream, a call's first delta has its index, ID, type and name, and
// the arguments come in the deltas after it, with only the index beside
// them (which is why ID, type and name may be empty: always set in a whole
// call).
type toolCall struct {
	Index    *int   `json:"index,omitempty"` // in stream deltas
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"` // a JSON text, or a piece of one
	} `json:"function"`
}

// read reads the calls out of a whole reply (after prefill, if any): the
// text before them, and the calls (the first alone when the request asked
// for no parallel calls); none when the reply is not calls in the model's
// syntax of functions offered.
func (ts *toolSet) read(reply string) (content string, calls []toolCall) {
	content, calls = ts.readAll(reply)
	if ts.single && len(calls) > 1 {
		calls = calls[:1]
	}
	return content, calls
}

func (ts *toolSet) readAll(reply string) (content string, calls []toolCall) {
	text := ts.prefill() + reply
	if ts.syntax.hermes {
		i := strings.Index(text, hermesOpen)
		if i < 0 {
			return reply, nil
		}
		content, rest := strings.TrimSpace(text[:i]), text[i:]
		for rest != "" {
			body, ok := strings.CutPrefix(rest, hermesOpen)
			if !ok {
				return reply, nil
			}
			body, rest = cutCall(body)
			c, ok := ts.call(body)
			if !ok {
				return reply, nil
			}
			calls = append(calls, c)
		}
		return content, calls
	}
	t := strings.TrimSpace(text)
	if strings.HasPrefix(t, "[") {
		var items []json.RawMessage
		if json.Unmarshal([]byte(t), &items) != nil || len(items) == 0 {
			return reply, nil
		}
		for _, it := range items {
			c, ok := ts.call(string(it))
			if !ok {
				return reply, nil
			}
			calls = append(calls, c)
		}
		return "", calls
	}
	c, ok := ts.call(t)
	if !ok {
		return reply, nil
	}
	return "", []toolCall{c}
}

// cutCall cuts the text after a <tool_call> at its </tool_call>: the
// call and what follows the marker. The marker ends the call after its
// JSON object, which may hold the marker's text in a string; the last
// call may be unclosed (rest ""), as the model ended there.
func cutCall(text string) (call, rest string) {
	dec := json.NewDecoder(strings.NewReader(text))
	var obj json.RawMessage
	if dec.Decode(&obj) == nil {
		end := int(dec.InputOffset())
		after := strings.TrimLeft(text[end:], " \t\r\n")
		if r, ok := strings.CutPrefix(after, hermesClose); ok {
			return text[:end], strings.TrimSpace(r)
		}
	}
	if j := strings.Index(text, hermesClose); j >= 0 {
		return text[:j], strings.TrimSpace(text[j+len(hermesClose):])
	}
	return text, ""
}

// call reads one call, a JSON object naming an offered function.
func (ts *toolSet) call(text string) (toolCall, bool) {
	var obj struct {
		Name       string          `json:"name"`
		Arguments  json.RawMessage `json:"arguments"`
		Parameters json.RawMessage `json:"parameters"`
	}
	dec := json.NewDecoder(strings.NewReader(text))
	if err := dec.Decode(&obj); err != nil || dec.More() {
		return toolCall{}, false
	}
	if _, err := dec.Token(); err == nil { // something after the object
		return toolCall{}, false
	}
	args := obj.Arguments
	if !isSet(args) {
		args = obj.Parameters
	}
	if !slices.ContainsFunc(ts.funcs, func(f toolFunc) bool { return f.Name == obj.Name }) {
		return toolCall{}, false
	}
	if s := bytes.TrimSpace(args); len(s) > 0 && s[0] == '"' { // arguments written as a JSON string
		var inner string
		if json.Unmarshal(s, &inner) == nil && json.Valid([]byte(inner)) {
			args = json.RawMessage(inner)
		}
	}
	if !isSet(args) {
		args = json.RawMessage("{}")
	}
	var compact bytes.Buffer
	if json.Compact(&compact, args) != nil || compact.Bytes()[0] != '{' {
		return toolCall{}, false
	}
	c := toolCall{ID: "call_" + rand.Text()[:24], Type: "function"}
	c.Function.Name, c.Function.Arguments = obj.Name, compact.String()
	return c, true
}

// holdsCall reports whether a streamed reply that begins with text (all of
// it so far) may turn out to be calls, so that the stream must hold it back
// from the client until the reply is whole; start is where in text the
// held part begins (the text before it is content).
func (ts *toolSet) holdsCall(text string) (start int, hold bool) {
	if ts.required() {
		return 0, true
	}
	if ts.syntax.hermes {
		if i := strings.Index(text, hermesOpen); i >= 0 {
			return i, true
		}
		// A tail that may be the start of the marker waits for more.
		for k := min(len(hermesOpen)-1, len(text)); k > 0; k-- {
			if strings.HasPrefix(hermesOpen, text[len(text)-k:]) {
				return len(text) - k, true
			}
		}
		return len(text), false
	}
	t := strings.TrimLeft(text, " \t\r\n")
	if t == "" || t[0] == '{' || t[0] == '[' {
		return 0, true
	}
	return len(text), false
}

// toolCalls reads the calls out of a chat outcome: none when the request
// offered no tools to call, or the reply was cut short by its length.
func (j *job) toolCalls(out outcome) (string, []toolCall) {
	if !j.tools.calls() || out.finish == finishLength {
		return out.text, nil
	}
	return j.tools.read(out.text)
}

// nonEmpty returns &s, or nil for "" (a message's null content).
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// toolStream is one streamed choice's text while its reply may turn out
// to be calls: what was sent as content, and what is held back. Under the
// lazy grammar (toolSet.live) calls stream as the model writes them
// instead: each call's name once it is whole, then its arguments piece by
// piece, without the whitespace between JSON tokens, so that the pieces
// add up to the arguments of the whole reply.
type toolStream struct {
	text strings.Builder
	sent int // bytes of text sent as content, or read as calls
	// Calls streamed as they are written:
	calls  int        // calls begun (the next one's index)
	phase  uint8      // where the reader stands (live* below)
	open   int        // where the last <tool_call> began
	args   jsonCursor // in the arguments (liveArgs)
	list   bool       // bare calls in a JSON list
	held   bool       // the first call was none to stream: held back and read at the end
	broken bool       // the text left the syntax after a call began: the rest is dropped
}

// The phases of a live toolStream.
const (
	liveText = iota // before a call, or between calls
	liveHead        // after <tool_call>, before the arguments
	liveArgs        // in the arguments
	liveTail        // after the arguments, before </tool_call> (or the bare call's })
	liveNext        // after a bare call in a list, before , or ]
	liveDone        // after the bare calls: nothing more
)

// add takes the visible text of a step and returns what may be sent as
// content now, and the pieces of calls to send (live).
func (t *toolStream) add(ts *toolSet, visible string) (string, []toolCall) {
	t.text.WriteString(visible)
	if ts.live && !t.held {
		return t.live(ts)
	}
	text := t.text.String()
	start, _ := ts.holdsCall(text)
	if start <= t.sent {
		return "", nil
	}
	out := text[t.sent:start]
	t.sent = start
	return out, nil
}

// live reads what it can of the text past t.sent: content before the
// first call, and the calls, in <tool_call> tags or bare (a JSON object
// or list that begins the reply). When the first call is none it can
// stream (a function not offered, arguments not an object), which the
// grammar never lets a model write, the reply is held back from there and
// read whole at its end, as without the grammar; after a call began, what
// leaves the syntax is dropped.
func (t *toolStream) live(ts *toolSet) (content string, calls []toolCall) {
	text := t.text.String()
	for !t.broken {
		rest := text[t.sent:]
		switch t.phase {
		case liveText:
			if !ts.syntax.hermes { // bare calls begin the reply, or there are none
				lead := strings.TrimLeft(rest, " \t\r\n")
				t.open = t.sent
				switch {
				case lead == "":
					return content, calls
				case lead[0] == '{':
					t.sent = len(text) - len(lead)
				case lead[0] == '[':
					t.sent, t.list = len(text)-len(lead)+1, true
				default:
					t.held = true // content: holdsCall lets it through
					return t.add(ts, "")
				}
				t.phase = liveHead
				continue
			}
			i := strings.Index(rest, hermesOpen)
			if i < 0 { // content up to what may begin a marker; between calls, whitespace only
				if t.calls == 0 {
					start, _ := ts.holdsCall(text)
					content += text[t.sent:max(start, t.sent)]
					t.sent = max(start, t.sent)
				}
				return content, calls
			}
			if t.calls == 0 {
				content += rest[:i]
			}
			if ts.single && t.calls > 0 { // one call at most, as read does
				t.broken = true
				break
			}
			t.open = t.sent + i
			t.sent = t.open + len(hermesOpen)
			t.phase = liveHead
		case liveHead:
			name, n := callHead(rest, ts.syntax.argsKey)
			if n == 0 {
				return content, calls
			}
			if n < 0 || !slices.ContainsFunc(ts.funcs, func(f toolFunc) bool { return f.Name == name }) {
				if t.calls == 0 {
					t.held, t.sent = true, t.open
				}
				t.broken = true
				return content, calls
			}
			k := t.calls
			c := toolCall{Index: &k, ID: "call_" + rand.Text()[:24], Type: "function"}
			c.Function.Name = name
			calls = append(calls, c)
			t.calls++
			t.sent += n
			t.phase, t.args = liveArgs, jsonCursor{}
		case liveNext:
			r := strings.TrimLeft(rest, " \t\r\n")
			switch {
			case r == "":
				return content, calls
			case r[0] == ',' && !ts.single:
				t.sent, t.phase = len(text)-len(r)+1, liveHead
			case r[0] == ']':
				t.sent, t.phase = len(text)-len(r)+1, liveDone
			default:
				t.broken = true
			}
		case liveDone:
			return content, calls
		case liveArgs:
			piece, n, done := t.args.take(rest)
			t.sent += n
			if piece != "" {
				k := t.calls - 1
				c := toolCall{Index: &k}
				c.Function.Arguments = piece
				calls = append(calls, c)
			}
			if !done {
				return content, calls
			}
			t.phase = liveTail
		case liveTail:
			r := strings.TrimLeft(rest, " \t\r\n")
			if r == "" {
				return content, calls
			}
			if r[0] != '}' {
				t.broken = true
				break
			}
			if !ts.syntax.hermes {
				t.sent, t.phase = len(text)-len(r)+1, liveDone
				if t.list {
					t.phase = liveNext
				}
				break
			}
			r = strings.TrimLeft(r[1:], " \t\r\n")
			switch {
			case strings.HasPrefix(r, hermesClose):
				t.sent = len(text) - len(r) + len(hermesClose)
				t.phase = liveText
			case strings.HasPrefix(hermesClose, r):
				return content, calls
			default:
				t.broken = true
			}
		}
	}
	return content, calls
}

// callHead reads the beginning of a call's object at the start of rest,
// up to the first byte of its arguments: {"name": NAME, "KEY": {. It
// returns the name and how many bytes come before that {; n is 0 while
// rest may still grow into such a beginning, and -1 once it cannot.
func callHead(rest, key string) (name string, n int) {
	i := 0
	space := func() {
		for i < len(rest) && isJSONSpace(rest[i]) {
			i++
		}
	}
	// expect reads s after whitespace: 1 when it did, 0 when rest ends
	// within it, -1 when rest does not hold it.
	expect := func(s string) int {
		space()
		switch r := rest[i:]; {
		case strings.HasPrefix(r, s):
			i += len(s)
			return 1
		case strings.HasPrefix(s, r):
			return 0
		}
		return -1
	}
	for _, s := range []string{"{", `"name"`, ":"} {
		if e := expect(s); e < 1 {
			return "", e
		}
	}
	space()
	switch {
	case i == len(rest):
		return "", 0
	case rest[i] != '"':
		return "", -1
	}
	end := -1
	for k := i + 1; k < len(rest) && end < 0; k++ {
		switch rest[k] {
		case '\\':
			k++
		case '"':
			end = k + 1
		}
	}
	if end < 0 {
		return "", 0 // the name is still being written
	}
	if json.Unmarshal([]byte(rest[i:end]), &name) != nil {
		return "", -1
	}
	i = end
	for _, s := range []string{",", `"` + key + `"`, ":", "{"} {
		if e := expect(s); e < 1 {
			return "", e
		}
	}
	return name, i - 1
}

func isJSONSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// jsonCursor follows one JSON object through pieces of its text.
type jsonCursor struct {
	depth       int
	inStr, esc  bool
	begun, done bool
}

// take reads rest up to the end of the object: the bytes it read (n) and
// them without whitespace outside strings (piece), and whether the object
// ended.
func (c *jsonCursor) take(rest string) (piece string, n int, done bool) {
	var b strings.Builder
	for n < len(rest) && !c.done {
		ch := rest[n]
		n++
		switch {
		case c.inStr:
			switch {
			case c.esc:
				c.esc = false
			case ch == '\\':
				c.esc = true
			case ch == '"':
				c.inStr = false
			}
		case isJSONSpace(ch):
			continue
		case ch == '"':
			c.inStr = true
		case ch == '{' || ch == '[':
			c.depth++
			c.begun = true
		case ch == '}' || ch == ']':
			c.depth--
			c.done = c.begun && c.depth == 0
		}
		b.WriteByte(ch)
	}
	return b.String(), n, c.done
}

// end reads the calls out of the whole reply, or returns the text still
// held back, to be sent as content; streamed says that the calls were sent
// as they were written (live), when any were.
func (t *toolStream) end(j *job, f finish) (calls []toolCall, rest string, streamed bool) {
	if t.calls > 0 {
		return nil, "", true
	}
	text := t.text.String()
	if _, calls := j.toolCalls(outcome{text: text, finish: f}); len(calls) > 0 {
		for k := range calls {
			calls[k].Index = &k
		}
		return calls, "", false
	}
	return nil, text[t.sent:], false
}

// toolMessages converts an assistant message's tool_calls for the template.
func toolMessages(raw json.RawMessage, i int) ([]tokenizer.ChatToolCall, *apiError) {
	if !isSet(raw) {
		return nil, nil
	}
	var calls []toolCall // as this server answers them
	if err := json.Unmarshal(raw, &calls); err != nil {
		return nil, badRequest(fmtf("messages[%d].tool_calls", i), "messages[%d].tool_calls must be an array of {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}", i)
	}
	out := make([]tokenizer.ChatToolCall, len(calls))
	for k, c := range calls {
		if c.Function.Name == "" {
			return nil, badRequest(fmtf("messages[%d].tool_calls[%d].function.name", i, k), "messages[%d].tool_calls[%d] names no function", i, k)
		}
		args := json.RawMessage(c.Function.Arguments)
		if !json.Valid(args) { // not JSON: the template gets the string
			args, _ = json.Marshal(c.Function.Arguments)
		}
		out[k] = tokenizer.ChatToolCall{ID: c.ID, Name: c.Function.Name, Arguments: args}
	}
	return out, nil
}

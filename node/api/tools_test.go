package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/strata-llm/strata/node/api"
	"github.com/strata-llm/strata/node/api/apitest"
	"github.com/strata-llm/strata/pipeline/sample"
)

// hermesTemplate renders tools and calls as Qwen 2.5's and Hermes'
// templates do: the tools as JSON in the system turn, each call in
// <tool_call></tool_call>, tool results in the user's turn.
const hermesTemplate = `{%- if tools %}<|im_start|>system
Tools:{% for t in tools %}
{{ t | tojson }}{% endfor %}
Call one as <tool_call>{"name": ..., "arguments": ...}</tool_call><|im_end|>
{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}
{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>
{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}
</tool_call>{% endfor %}{% elif m.role == "tool" %}<tool_response>{{ m.tool_call_id }}: {{ m.content }}</tool_response>{% else %}{{ m.content }}{% endif %}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}`

const weatherTools = `[{"type":"function","function":{"name":"get_weather","description":"The weather in a city","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city"]}}},` +
	`{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"zone":{"type":"string"}},"required":["zone"]}}}]`

// newToolFixture is newFixture with a chat template and a context long
// enough for tools.
func newToolFixture(t *testing.T, template string, gen *apitest.Generator) *fixture {
	t.Helper()
	f := &fixture{gen: gen, pipe: apitest.NewPipeline(testModel, 4096), tok: apitest.NewTokenizer(template)}
	f.api = api.New(api.Config{Logger: slog.New(slog.DiscardHandler)}, f.gen, f.tok, f.pipe)
	f.srv = httptest.NewServer(f.api)
	t.Cleanup(f.srv.Close)
	return f
}

// prompt decodes the prompt of the Generator's last request.
func (f *fixture) prompt(t *testing.T) string {
	t.Helper()
	reqs := f.gen.Requests()
	var b strings.Builder
	for _, id := range reqs[len(reqs)-1].Prompt {
		b.WriteString(f.tok.TokenText(id))
	}
	return b.String()
}

// chatCall is a tool call in a chat response.
type chatCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type chatOut struct {
	Choices []struct {
		Message struct {
			Content   *string    `json:"content"`
			ToolCalls []chatCall `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
}

func chatTools(t *testing.T, f *fixture, extra string) chatOut {
	t.Helper()
	resp, b := f.do(t, "POST", "/v1/chat/completions", `{"model":"`+testModel+`","messages":[{"role":"user","content":"Weather in Paris?"}],"max_tokens":200,"tools":`+weatherTools+extra+`}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var out chatOut
	if err := json.Unmarshal(b, &out); err != nil || len(out.Choices) != 1 {
		t.Fatalf("%s: %v", b, err)
	}
	return out
}

// TestToolsHermes: a template of the Hermes family gets the tools as the
// client sent them, and a reply with a call in <tool_call> tags comes back
// as tool_calls, whole and streamed, the text before it as content.
func TestToolsHermes(t *testing.T) {
	reply := "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>"
	f := newToolFixture(t, hermesTemplate, &apitest.Generator{Reply: reply})
	out := chatTools(t, f, "")
	if p := f.prompt(t); !strings.Contains(p, `{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city"`) {
		t.Errorf("the prompt does not hold the tools in their order:\n%s", p)
	}
	c := out.Choices[0]
	if c.FinishReason != "tool_calls" || c.Message.Content == nil || *c.Message.Content != "Let me look." || len(c.Message.ToolCalls) != 1 {
		t.Fatalf("%+v", c)
	}
	tc := c.Message.ToolCalls[0]
	if tc.Type != "function" || tc.Function.Name != "get_weather" || tc.Function.Arguments != `{"city":"Paris","days":2}` || !strings.HasPrefix(tc.ID, "call_") {
		t.Errorf("call %+v", tc)
	}

	// Streamed: the text before the call as content, the marker never.
	content, calls, finish := streamChat(t, f, `,"max_tokens":200`)
	// The call comes as it is written: its name, then pieces of its
	// arguments, which add up to those of the whole reply.
	whole := streamedCalls(t, calls)
	if content != "Let me look.\n" || finish != "tool_calls" || len(whole) != 1 || len(calls) < 3 {
		t.Errorf("streamed %q, calls %v, finish %q", content, calls, finish)
	}
	if c := whole[0]; c.Function.Name != "get_weather" || c.Function.Arguments != `{"city":"Paris","days":2}` || !strings.HasPrefix(c.ID, "call_") || c.Type != "function" {
		t.Errorf("streamed call %+v", c)
	}

	// Two choices streamed: each gets its call, in its own delta.
	resp, b := f.do(t, "POST", "/v1/chat/completions", `{"model":"`+testModel+`","stream":true,"n":2,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Weather?"}],"max_tokens":200,"tools":`+weatherTools+`}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	perChoice, finishes := map[float64]int{}, map[float64]string{}
	for _, d := range sseData(t, b) {
		var ev struct {
			Choices []struct {
				Index float64 `json:"index"`
				Delta struct {
					ToolCalls []map[string]any `json:"tool_calls"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(d), &ev) != nil {
			continue
		}
		for _, ch := range ev.Choices {
			for _, c := range ch.Delta.ToolCalls {
				if c["id"] != nil {
					perChoice[ch.Index]++
				}
			}
			if ch.FinishReason != nil {
				finishes[ch.Index] = *ch.FinishReason
			}
		}
	}
	if perChoice[0] != 1 || perChoice[1] != 1 || finishes[0] != "tool_calls" || finishes[1] != "tool_calls" {
		t.Errorf("two streamed choices: calls %v, finishes %v", perChoice, finishes)
	}

	// The closing marker's text inside an argument does not end the call.
	odd := newToolFixture(t, hermesTemplate, &apitest.Generator{Reply: "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"a</tool_call>b\"}}\n</tool_call>"})
	if c := chatTools(t, odd, "").Choices[0]; len(c.Message.ToolCalls) != 1 || c.Message.ToolCalls[0].Function.Arguments != `{"city":"a</tool_call>b"}` {
		t.Errorf("a marker in an argument: %+v", c)
	}
	if calls := streamedCalls(t, func() []map[string]any { _, d, _ := streamChat(t, odd, `,"max_tokens":200`); return d }()); len(calls) != 1 || calls[0].Function.Arguments != `{"city":"a</tool_call>b"}` {
		t.Errorf("a marker in an argument, streamed: %+v", calls)
	}

	// Two calls; one with parallel_tool_calls false.
	two := reply + "\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"CET\"}}\n</tool_call>"
	g := newToolFixture(t, hermesTemplate, &apitest.Generator{Reply: two})
	if c := chatTools(t, g, "").Choices[0]; len(c.Message.ToolCalls) != 2 || c.Message.ToolCalls[1].Function.Name != "get_time" || c.Message.ToolCalls[0].ID == c.Message.ToolCalls[1].ID {
		t.Errorf("two calls: %+v", c.Message.ToolCalls)
	}
	if c := chatTools(t, g, `,"parallel_tool_calls":false`).Choices[0]; len(c.Message.ToolCalls) != 1 || c.Message.ToolCalls[0].Function.Name != "get_weather" {
		t.Errorf("parallel_tool_calls false: %+v", c.Message.ToolCalls)
	}
}

// streamedCalls adds up the calls of stream deltas: each begins with a
// delta that has its index, ID, type and name, and the deltas after it
// with that index carry pieces of its arguments.
func streamedCalls(t *testing.T, deltas []map[string]any) []chatCall {
	t.Helper()
	var calls []chatCall
	for _, d := range deltas {
		i, _ := d["index"].(float64)
		fn, _ := d["function"].(map[string]any)
		args, _ := fn["arguments"].(string)
		if id, ok := d["id"].(string); ok {
			if int(i) != len(calls) || d["type"] != "function" || fn["name"] == nil {
				t.Fatalf("a call's first delta %v", d)
			}
			var c chatCall
			c.ID, c.Type, c.Function.Name = id, "function", fn["name"].(string)
			calls = append(calls, c)
		} else if int(i) != len(calls)-1 || d["type"] != nil || fn["name"] != nil {
			t.Fatalf("a delta of arguments %v", d)
		}
		calls[int(i)].Function.Arguments += args
	}
	return calls
}

// streamChat streams a chat with the weather tools and extra fields, and
// returns its content, its calls' deltas and its finish reason.
func streamChat(t *testing.T, f *fixture, extra string) (string, []map[string]any, string) {
	t.Helper()
	resp, b := f.do(t, "POST", "/v1/chat/completions", `{"model":"`+testModel+`","stream":true,"messages":[{"role":"user","content":"Weather?"}],"tools":`+weatherTools+extra+`}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var content strings.Builder
	var calls []map[string]any
	finish := ""
	for _, d := range sseData(t, b) {
		var ev struct {
			Choices []struct {
				Delta struct {
					Content   *string          `json:"content"`
					ToolCalls []map[string]any `json:"tool_calls"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(d), &ev) != nil || len(ev.Choices) == 0 {
			continue
		}
		ch := ev.Choices[0]
		if ch.Delta.Content != nil {
			content.WriteString(*ch.Delta.Content)
		}
		calls = append(calls, ch.Delta.ToolCalls...)
		if ch.FinishReason != nil {
			finish = *ch.FinishReason
		}
	}
	return content.String(), calls, finish
}

// TestToolsStreamedLive: under the lazy grammar, calls stream as they are
// written, in tags or bare: two calls as two, each named in its first
// delta; arguments cut short by max_tokens end the stream with "length";
// with parallel_tool_calls false only the first call is sent.
func TestToolsStreamedLive(t *testing.T) {
	two := "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par\\\"is \\u00e9\", \"days\": [1, {\"a\": \"}\"}]}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"
	f := newToolFixture(t, hermesTemplate, &apitest.Generator{Reply: two})
	content, deltas, finish := streamChat(t, f, `,"max_tokens":300`)
	calls := streamedCalls(t, deltas)
	whole := chatTools(t, f, "").Choices[0].Message.ToolCalls
	if content != "" || finish != "tool_calls" || len(calls) != 2 || len(whole) != 2 {
		t.Fatalf("content %q, finish %q, calls %+v, whole %+v", content, finish, calls, whole)
	}
	for i := range calls {
		if calls[i].Function != whole[i].Function {
			t.Errorf("call %d streamed %+v, whole %+v", i, calls[i].Function, whole[i].Function)
		}
	}
	if calls[0].Function.Arguments != `{"city":"Par\"is \u00e9","days":[1,{"a":"}"}]}` {
		t.Errorf("arguments %s", calls[0].Function.Arguments)
	}

	content, deltas, finish = streamChat(t, f, `,"max_tokens":60`)
	if calls := streamedCalls(t, deltas); content != "" || finish != "length" || len(calls) != 1 || !strings.HasPrefix(`{"city":"Par\"is \u00e9","days":[1,{"a":"}"}]}`, calls[0].Function.Arguments) {
		t.Errorf("cut short: content %q, finish %q, calls %+v", content, finish, calls)
	}

	content, deltas, finish = streamChat(t, f, `,"max_tokens":300,"parallel_tool_calls":false`)
	if calls := streamedCalls(t, deltas); content != "" || finish != "tool_calls" || len(calls) != 1 || calls[0].Function.Name != "get_weather" {
		t.Errorf("parallel_tool_calls false: content %q, finish %q, calls %+v", content, finish, calls)
	}

	// Bare JSON calls, one or a list of them, stream in the same way.
	for _, reply := range []string{
		`{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}`,
		` [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", "arguments": {"zone": "CET"}}]`,
	} {
		g := newToolFixture(t, testTemplate, &apitest.Generator{Reply: reply})
		content, deltas, finish := streamChat(t, g, `,"max_tokens":300`)
		calls := streamedCalls(t, deltas)
		whole := chatTools(t, g, "").Choices[0].Message.ToolCalls
		if content != "" || finish != "tool_calls" || len(calls) != len(whole) || len(whole) == 0 || len(deltas) <= 2*len(whole) {
			t.Fatalf("%s: content %q, finish %q, calls %+v, whole %+v", reply, content, finish, calls, whole)
		}
		for i := range calls {
			if calls[i].Function != whole[i].Function {
				t.Errorf("%s: call %d streamed %+v, whole %+v", reply, i, calls[i].Function, whole[i].Function)
			}
		}
		if _, deltas, _ := streamChat(t, g, `,"max_tokens":300,"parallel_tool_calls":false`); len(streamedCalls(t, deltas)) != 1 {
			t.Errorf("%s: parallel_tool_calls false: %v", reply, deltas)
		}
	}
}

// TestToolsOpenAIClientLive runs testdata/openai-client.mjs (npm's openai
// package) against a server whose reply is two calls: the client's stream
// helper puts the streamed deltas together into the calls of the whole
// reply. It skips when the npm packages are not installed, unless
// STRATA_NODE_CLIENT=1 (as CI sets).
func TestToolsOpenAIClientLive(t *testing.T) {
	nodeBin, err := exec.LookPath("node")
	_, statErr := os.Stat(filepath.Join("testdata", "node_modules", "openai"))
	if err != nil || statErr != nil {
		if os.Getenv("STRATA_NODE_CLIENT") == "1" {
			t.Fatalf("node or the npm openai package missing (STRATA_NODE_CLIENT=1): %v %v", err, statErr)
		}
		t.Skip("node or node/api/testdata/node_modules missing: npm ci --prefix node/api/testdata")
	}
	two := "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"CET\"}}\n</tool_call>"
	f := newToolFixture(t, hermesTemplate, &apitest.Generator{Reply: two})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, "openai-client.mjs")
	cmd.Dir = "testdata"
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "STRATA_API_BASE=") }),
		"STRATA_LIVE_TOOLS_BASE="+f.srv.URL+"/v1", "STRATA_API_KEY=none")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("openai-client.mjs: %v", err)
	}
}

// TestToolsPlainReply: with tools offered, a reply that is no call is
// content, whole and streamed, even one that looks like a call at first.
func TestToolsPlainReply(t *testing.T) {
	for _, tc := range []struct{ template, reply string }{
		{hermesTemplate, "It is sunny <tool_ in Paris."},
		{hermesTemplate, "<tool_call>\n{\"name\": \"launch_rockets\", \"arguments\": {}}\n</tool_call>"}, // not offered
		{testTemplate, `{"name": "get_weather"} and more`},
		{testTemplate, "Sunny."},
	} {
		f := newToolFixture(t, tc.template, &apitest.Generator{Reply: tc.reply})
		c := chatTools(t, f, "").Choices[0]
		if c.FinishReason != "stop" || c.Message.Content == nil || *c.Message.Content != tc.reply || len(c.Message.ToolCalls) != 0 {
			t.Errorf("%q: %+v", tc.reply, c)
		}
		_, b := f.do(t, "POST", "/v1/chat/completions", `{"model":"`+testModel+`","stream":true,"messages":[{"role":"user","content":"Hi"}],"max_tokens":200,"tools":`+weatherTools+`}`)
		var content strings.Builder
		for _, d := range sseData(t, b) {
			var ev struct {
				Choices []struct {
					Delta struct {
						Content *string `json:"content"`
					} `json:"delta"`
				} `json:"choices"`
			}
			if json.Unmarshal([]byte(d), &ev) == nil && len(ev.Choices) > 0 && ev.Choices[0].Delta.Content != nil {
				content.WriteString(*ev.Choices[0].Delta.Content)
			}
		}
		if content.String() != tc.reply {
			t.Errorf("streamed %q, want %q", content.String(), tc.reply)
		}
	}
}

// TestToolsRequired: tool_choice "required" (or a named function)
// constrains the reply to a call: the Generator gets the schema of one,
// and the prompt ends with the Hermes opening tag for that family; a
// template that does not render tools gets this server's system message.
func TestToolsRequired(t *testing.T) {
	f := newToolFixture(t, hermesTemplate, &apitest.Generator{Reply: "{\"name\": \"get_time\", \"arguments\": {\"zone\": \"CET\"}}"})
	c := chatTools(t, f, `,"tool_choice":"required"`).Choices[0]
	if c.FinishReason != "tool_calls" || c.Message.Content != nil || len(c.Message.ToolCalls) != 1 || c.Message.ToolCalls[0].Function.Arguments != `{"zone":"CET"}` {
		t.Errorf("%+v", c)
	}
	reqs := f.gen.Requests()
	sch, _ := reqs[len(reqs)-1].Grammar.(*sample.JSONSchema)
	if sch == nil || !strings.Contains(sch.String(), `"name":"get_weather"`) || !strings.Contains(sch.String(), `"name":"get_time"`) {
		t.Errorf("schema %v", sch)
	}
	if !strings.HasSuffix(f.prompt(t), "<|im_start|>assistant\n<tool_call>\n") {
		t.Errorf("the prompt ends %q", f.prompt(t)[max(0, len(f.prompt(t))-40):])
	}
	if !sch.Valid([]byte(`{"name":"get_weather","arguments":{"city":"Oslo"}}`)) || sch.Valid([]byte(`{"name":"get_weather","arguments":{"zone":"x"}}`)) {
		t.Error("the schema does not hold a call to the arguments of its function")
	}

	g := newToolFixture(t, testTemplate, &apitest.Generator{Reply: `{"name":"get_weather","arguments":{"city":"Oslo"}}`})
	c = chatTools(t, g, `,"tool_choice":{"type":"function","function":{"name":"get_weather"}}`).Choices[0]
	if c.FinishReason != "tool_calls" || len(c.Message.ToolCalls) != 1 || c.Message.ToolCalls[0].Function.Name != "get_weather" {
		t.Errorf("%+v", c)
	}
	reqs = g.gen.Requests()
	if sch, _ := reqs[len(reqs)-1].Grammar.(*sample.JSONSchema); sch == nil || strings.Contains(sch.String(), "get_time") {
		t.Errorf("a named function: schema %v", sch)
	}
	if p := g.prompt(t); !strings.Contains(p, "You can call functions.") || !strings.Contains(p, `"name":"get_time"`) || strings.HasSuffix(p, "<tool_call>\n") {
		t.Errorf("the prompt of a template without tools:\n%s", p)
	}
	// TGI's tool_prompt opens the description.
	chatTools(t, g, `,"tool_choice":"required","tool_prompt":"Use these:"`)
	if p := g.prompt(t); !strings.Contains(p, "Use these:\n{\"name\":\"get_weather\"") || strings.Contains(p, "You can call functions.") {
		t.Errorf("the prompt with a tool_prompt:\n%s", p)
	}
	// /chat_tokenize renders what the chat route feeds the model.
	resp, b := f.do(t, "POST", "/chat_tokenize", `{"model":"`+testModel+`","messages":[{"role":"user","content":"Hi"}],"tools":`+weatherTools+`,"tool_choice":"required"}`)
	var tok struct {
		TemplatedText string `json:"templated_text"`
	}
	if json.Unmarshal(b, &tok); resp.StatusCode != 200 || !strings.Contains(tok.TemplatedText, `"name": "get_time"`) || !strings.HasSuffix(tok.TemplatedText, "<tool_call>\n") {
		t.Errorf("/chat_tokenize: %d %s", resp.StatusCode, b)
	}
	// tool_choice "none": the tools are rendered, nothing is read as a call.
	h := newToolFixture(t, hermesTemplate, &apitest.Generator{Reply: "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"})
	if c := chatTools(t, h, `,"tool_choice":"none"`).Choices[0]; c.FinishReason != "stop" || len(c.Message.ToolCalls) != 0 {
		t.Errorf("tool_choice none: %+v", c)
	}
}

// TestToolsLazyGrammar: offered tools without a required call, a model
// writes freely, but each call it begins is held to a call of an offered
// function with arguments its parameters accept; one at most with
// parallel_tool_calls false. tool_choice none and a response format get no
// such grammar.
func TestToolsLazyGrammar(t *testing.T) {
	f := newToolFixture(t, hermesTemplate, &apitest.Generator{Reply: "Sunny."})
	grammar := func(extra string) sample.Grammar {
		t.Helper()
		chatTools(t, f, extra)
		reqs := f.gen.Requests()
		return reqs[len(reqs)-1].Grammar
	}
	g, _ := grammar("").(*sample.Triggered)
	if g == nil {
		t.Fatal("no lazy grammar for tools in auto mode")
	}
	call := func(name, args string) string {
		return "<tool_call>\n{\"name\": \"" + name + "\", \"arguments\": " + args + "}\n</tool_call>"
	}
	for _, tc := range []struct {
		text string
		want bool
	}{
		{"Sunny in Paris.", true},
		{"Let me look.\n" + call("get_weather", `{"city": "Paris", "days": 2}`), true},
		{call("get_weather", `{"city": "Paris"}`) + "\n" + call("get_time", `{"zone": "CET"}`), true},
		{call("launch_rockets", `{}`), false},
		{call("get_weather", `{"days": 2}`), false}, // city is required
		{call("get_time", `{"zone": 1}`), false},
		{call("get_time", `{"zone": "CET"}`) + " Done.", false}, // the calls end the reply
	} {
		if got := g.Valid([]byte(tc.text)); got != tc.want {
			t.Errorf("%q: Valid %v, want %v", tc.text, got, tc.want)
		}
	}
	if g, _ := grammar(`,"parallel_tool_calls":false`).(*sample.Triggered); g == nil || g.Valid([]byte(call("get_time", `{"zone": "CET"}`)+call("get_time", `{"zone": "UTC"}`))) {
		t.Errorf("parallel_tool_calls false: %v lets two calls through", g)
	}
	for _, extra := range []string{`,"tool_choice":"none"`, `,"response_format":{"type":"json_object"}`} {
		if g := grammar(extra); g != nil {
			t.Errorf("%s: grammar %v", extra, g)
		}
	}
	if g := grammar(`,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"integer"}}}`); g == nil || g.(fmt.Stringer).String() != "integer" {
		t.Errorf("a response format's schema: grammar %v", g)
	}
	// Parameters no schema here holds take any object.
	odd := `[{"type":"function","function":{"name":"even","parameters":{"type":"object","properties":{"n":{"type":"integer","not":{"multipleOf":2}}}}}}]`
	resp, b := f.do(t, "POST", "/v1/chat/completions", `{"model":"`+testModel+`","messages":[{"role":"user","content":"Hi"}],"max_tokens":5,"tools":`+odd+`}`)
	reqs := f.gen.Requests()
	if g, _ := reqs[len(reqs)-1].Grammar.(*sample.Triggered); resp.StatusCode != 200 || g == nil || !g.Valid([]byte(call("even", `{"n": 3, "x": [1]}`))) || g.Valid([]byte(call("odd", `{}`))) {
		t.Errorf("parameters with not: %d %s, grammar %v", resp.StatusCode, b, g)
	}
	var many []string
	for i := range sample.MaxSchemaReadings + 4 {
		many = append(many, fmt.Sprintf(`{"type":"function","function":{"name":"f%d","parameters":{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}}}`, i))
	}
	resp, b = f.do(t, "POST", "/v1/chat/completions", `{"model":"`+testModel+`","messages":[{"role":"user","content":"Hi"}],"max_tokens":5,"tools":[`+strings.Join(many, ",")+`]}`)
	reqs = f.gen.Requests()
	if g, _ := reqs[len(reqs)-1].Grammar.(*sample.Triggered); resp.StatusCode != 200 || g == nil || !g.Valid([]byte(call("f19", `{"a": "x"}`))) ||
		g.Valid([]byte(call("f19", `{}`))) || g.Valid([]byte(call("f20", `{"a": "x"}`))) {
		t.Errorf("%d functions (more than a union's readings, read by name): %d %s, grammar %v", len(many), resp.StatusCode, b, g)
	}
	// Required, they hold the reply to a call of one of them.
	resp, b = f.do(t, "POST", "/v1/chat/completions", `{"model":"`+testModel+`","messages":[{"role":"user","content":"Hi"}],"max_tokens":5,"tool_choice":"required","tools":[`+strings.Join(many, ",")+`]}`)
	reqs = f.gen.Requests()
	if sch, _ := reqs[len(reqs)-1].Grammar.(*sample.JSONSchema); resp.StatusCode != 200 || sch == nil || !sch.Valid([]byte(`{"name":"f7","arguments":{"a":"x"}}`)) || sch.Valid([]byte(`{"name":"f7","arguments":{}}`)) {
		t.Errorf("%d functions, required: %d %s, grammar %v", len(many), resp.StatusCode, b, sch)
	}
	// Past the 64 functions that a call's name tells apart, no grammar.
	wide := &fixture{gen: &apitest.Generator{Reply: "Sunny."}, pipe: apitest.NewPipeline(testModel, 32768), tok: apitest.NewTokenizer(hermesTemplate)}
	wide.api = api.New(api.Config{Logger: slog.New(slog.DiscardHandler)}, wide.gen, wide.tok, wide.pipe)
	wide.srv = httptest.NewServer(wide.api)
	defer wide.srv.Close()
	for i := len(many); i < 70; i++ {
		many = append(many, fmt.Sprintf(`{"type":"function","function":{"name":"f%d","parameters":{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}}}`, i))
	}
	resp, b = wide.do(t, "POST", "/v1/chat/completions", `{"model":"`+testModel+`","messages":[{"role":"user","content":"Hi"}],"max_tokens":5,"tools":[`+strings.Join(many, ",")+`]}`)
	reqs = wide.gen.Requests()
	if g := reqs[len(reqs)-1].Grammar; resp.StatusCode != 200 || g != nil {
		t.Errorf("%d functions: %d %s, grammar %v", len(many), resp.StatusCode, b, g)
	}
	// A model that writes bare JSON calls: a reply that begins with one
	// (or a list of them) is only that.
	h := newToolFixture(t, testTemplate, &apitest.Generator{Reply: "Sunny."})
	for _, extra := range []string{"", `,"parallel_tool_calls":false`} {
		chatTools(t, h, extra)
		reqs := h.gen.Requests()
		g, _ := reqs[len(reqs)-1].Grammar.(*sample.Leading)
		if g == nil {
			t.Fatalf("%s: bare calls: grammar %v", extra, reqs[len(reqs)-1].Grammar)
		}
		for _, tc := range []struct {
			text string
			want bool
		}{
			{"Sunny in Paris.", true},
			{`{"name": "get_weather", "arguments": {"city": "Paris"}}`, true},
			{`[{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", "arguments": {"zone": "CET"}}]`, extra == ""},
			{`[{"name": "get_time", "arguments": {"zone": "CET"}}]`, true},
			{`{"name": "launch_rockets", "arguments": {}}`, false},
			{`{"name": "get_time", "arguments": {"zone": "CET"}} and more`, false},
		} {
			if got := g.Valid([]byte(tc.text)); got != tc.want {
				t.Errorf("%s: %q: Valid %v, want %v", extra, tc.text, got, tc.want)
			}
		}
	}
	resp, b = h.do(t, "POST", "/v1/chat/completions", `{"model":"`+testModel+`","messages":[{"role":"user","content":"Hi"}],"max_tokens":5,"tools":[`+strings.Join(many[:20], ",")+`]}`)
	reqs = h.gen.Requests()
	if g, _ := reqs[len(reqs)-1].Grammar.(*sample.Leading); resp.StatusCode != 200 || g == nil || !g.Valid([]byte(`[{"name": "f19", "arguments": {"a": "x"}}]`)) || g.Valid([]byte(`{"name": "f19", "arguments": {}}`)) {
		t.Errorf("bare calls of 20 functions: %d %s, grammar %v", resp.StatusCode, b, g)
	}
}

// TestToolMessages: an assistant's calls and the tools' answers reach the
// template, and the official client reads the calls of a reply.
func TestToolMessages(t *testing.T) {
	f := newToolFixture(t, hermesTemplate, &apitest.Generator{Reply: "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"UTC\"}}\n</tool_call>"})
	body := `{"model":"` + testModel + `","max_tokens":100,"tools":` + weatherTools + `,"messages":[
		{"role":"user","content":"Weather?"},
		{"role":"assistant","content":null,"tool_calls":[{"id":"call_9","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Rome\"}"}}]},
		{"role":"tool","tool_call_id":"call_9","content":"sunny"}]}`
	if resp, b := f.do(t, "POST", "/v1/chat/completions", body); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	p := f.prompt(t)
	if !strings.Contains(p, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>") ||
		!strings.Contains(p, "<tool_response>call_9: sunny</tool_response>") {
		t.Errorf("prompt:\n%s", p)
	}

	client := openAIClient(f, "")
	params := openai.ChatCompletionNewParams{
		Model:    testModel,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What time is it?")},
		Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
			Name:       "get_time",
			Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"zone": map[string]any{"type": "string"}}},
		})},
	}
	res, err := client.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if calls := res.Choices[0].Message.ToolCalls; len(calls) != 1 || calls[0].Function.Name != "get_time" || calls[0].Function.Arguments != `{"zone":"UTC"}` ||
		res.Choices[0].FinishReason != "tool_calls" {
		t.Errorf("the client read %+v", res.Choices[0])
	}
	// Streamed as it is written, the client's accumulator puts the call
	// together.
	stream := client.Chat.Completions.NewStreaming(context.Background(), params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if calls := acc.Choices[0].Message.ToolCalls; len(calls) != 1 || calls[0].Function.Name != "get_time" || calls[0].Function.Arguments != `{"zone":"UTC"}` ||
		calls[0].ID == "" || acc.Choices[0].FinishReason != "tool_calls" {
		t.Errorf("the client's accumulator read %+v", acc.Choices[0])
	}
}

// TestToolsInvalid: malformed tools and choices are 400s that say why.
func TestToolsInvalid(t *testing.T) {
	f := newToolFixture(t, hermesTemplate, &apitest.Generator{Reply: "x"})
	for _, tc := range []struct{ extra, param string }{
		{`,"tools":[{"type":"retrieval"}]`, "tools[0].type"},
		{`,"tools":[{"type":"function","function":{"name":"a b"}}]`, "tools[0].function.name"},
		{`,"tools":[{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"a"}}]`, "tools[1].function.name"},
		{`,"tools":[{"type":"function","function":{"name":"a","parameters":[]}}]`, "tools[0].function.parameters"},
		{`,"tools":{}`, "tools"},
		{`,"tool_choice":"required"`, "tool_choice"},
		{`,"tool_choice":"sometimes","tools":` + weatherTools, "tool_choice"},
		{`,"tool_choice":{"type":"function","function":{"name":"nope"}},"tools":` + weatherTools, "tool_choice"},
		{`,"functions":[{"name":"a"}]`, "functions"},
		{`,"logprobs":true,"tools":` + weatherTools, "logprobs"},
		{`,"tool_choice":"required","response_format":{"type":"json_object"},"tools":` + weatherTools, "response_format"},
		{`,"tool_choice":"required","tools":[{"type":"function","function":{"name":"a","parameters":{"type":"object","properties":{"x":{"type":"string","multipleOf":3}}}}}]`, "tools"},
		{`,"messages":[{"role":"user","content":"x","tool_calls":[{"id":"1","type":"function","function":{"name":"a","arguments":"{}"}}]}]`, "messages[0].tool_calls"},
	} {
		body := `{"model":"` + testModel + `","messages":[{"role":"user","content":"Hi"}],"max_tokens":5` + tc.extra + `}`
		resp, b := f.do(t, "POST", "/v1/chat/completions", body)
		var e struct {
			Error struct {
				Param string `json:"param"`
			} `json:"error"`
		}
		json.Unmarshal(b, &e)
		if resp.StatusCode != 400 || e.Error.Param != tc.param {
			t.Errorf("%s: status %d, param %q, want 400 %q: %s", tc.extra, resp.StatusCode, e.Error.Param, tc.param, b)
		}
	}
	// An unsupported keyword in parameters is fine when no call is required:
	// the reply is not constrained.
	if resp, b := f.do(t, "POST", "/v1/chat/completions", `{"model":"`+testModel+`","messages":[{"role":"user","content":"Hi"}],"max_tokens":5,"tools":[{"type":"function","function":{"name":"a","parameters":{"type":"object","properties":{"x":{"type":"string","multipleOf":3}}}}}]}`); resp.StatusCode != 200 {
		t.Errorf("status %d: %s", resp.StatusCode, b)
	}
}

package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/strata-llm/strata/node/api"
	"github.com/strata-llm/strata/node/api/apitest"
)

// TestInvalidRequests sends requests that must be refused: each gets a 4xx
// with a clear message, in the error shape of its route (OpenAI's on /v1
// and for 401 everywhere, TGI's on TGI's routes), and nothing panics.
func TestInvalidRequests(t *testing.T) {
	f := newFixture(t, api.Config{APIKeys: []string{testKey}, MaxRequestBytes: 64 << 10}, nil)
	chat := func(extra string) string {
		return `{"model":"strata-test","messages":[{"role":"user","content":"hi"}]` + extra + `}`
	}
	const (
		openAI = "openai"
		tgi    = "tgi"
	)
	long := strings.Repeat("x", testCtxLen+10)
	huge := `{"model":"strata-test","prompt":"` + strings.Repeat("y", 70<<10) + `"}`
	for _, tc := range []struct {
		name, method, path, body string
		auth                     string // Authorization header; "" sends the valid key, "-" none
		status                   int
		shape                    string
		param                    string // the param an OpenAI error names, when it must
		msg                      string // part of the message
	}{
		// Bodies that are not the request.
		{"bad JSON", "POST", "/v1/chat/completions", `{"model":`, "", 400, openAI, "", "not valid JSON"},
		{"trailing garbage", "POST", "/v1/chat/completions", chat("") + "}", "", 400, openAI, "", "not valid JSON"},
		{"empty body", "POST", "/v1/chat/completions", ``, "", 400, openAI, "", "empty"},
		{"array body", "POST", "/v1/chat/completions", `[1,2]`, "", 400, openAI, "", "JSON object"},
		{"too large", "POST", "/v1/completions", huge, "", 413, openAI, "", "larger than"},
		// Wrong types.
		{"max_tokens string", "POST", "/v1/chat/completions", chat(`,"max_tokens":"10"`), "", 400, openAI, "max_tokens", "expected an integer, got a string"},
		{"max_tokens float", "POST", "/v1/chat/completions", chat(`,"max_tokens":1.5`), "", 400, openAI, "max_tokens", "integer"},
		{"max_tokens overflow", "POST", "/v1/chat/completions", chat(`,"max_tokens":1e30`), "", 400, openAI, "max_tokens", "integer"},
		{"messages string", "POST", "/v1/chat/completions", `{"model":"strata-test","messages":"hi"}`, "", 400, openAI, "messages", "expected an array"},
		{"temperature string", "POST", "/v1/chat/completions", chat(`,"temperature":"hot"`), "", 400, openAI, "temperature", "expected a number"},
		{"stream string", "POST", "/v1/chat/completions", chat(`,"stream":"yes"`), "", 400, openAI, "stream", "expected a boolean"},
		{"bad stop type", "POST", "/v1/chat/completions", chat(`,"stop":5`), "", 400, openAI, "stop", "string or an array of strings"},
		{"bad stop element", "POST", "/v1/chat/completions", chat(`,"stop":["a",1]`), "", 400, openAI, "stop", "string or an array of strings"},
		{"content number", "POST", "/v1/chat/completions", `{"model":"strata-test","messages":[{"role":"user","content":42}]}`, "", 400, openAI, "messages.content", "expected a string"},
		// Values out of range.
		{"negative max_tokens", "POST", "/v1/chat/completions", chat(`,"max_tokens":-5`), "", 400, openAI, "max_tokens", "at least 1"},
		{"zero max_completion_tokens", "POST", "/v1/chat/completions", chat(`,"max_completion_tokens":0`), "", 400, openAI, "max_completion_tokens", "at least 1"},
		{"huge max_tokens", "POST", "/v1/chat/completions", chat(`,"max_tokens":1000000`), "", 400, openAI, "max_tokens", "maximum context length is 256"},
		{"oversized prompt", "POST", "/v1/chat/completions", `{"model":"strata-test","messages":[{"role":"user","content":"` + long + `"}]}`, "", 400, openAI, "", "more than the 255 this model accepts"},
		{"temperature too high", "POST", "/v1/chat/completions", chat(`,"temperature":3`), "", 400, openAI, "temperature", "between 0 and 2"},
		{"top_p negative", "POST", "/v1/chat/completions", chat(`,"top_p":-0.1`), "", 400, openAI, "top_p", "between 0 and 1"},
		{"presence_penalty", "POST", "/v1/chat/completions", chat(`,"presence_penalty":2.5`), "", 400, openAI, "presence_penalty", "between -2 and 2"},
		{"top_logprobs 21", "POST", "/v1/chat/completions", chat(`,"logprobs":true,"top_logprobs":21`), "", 400, openAI, "top_logprobs", "between 0 and 20"},
		{"top_logprobs without logprobs", "POST", "/v1/chat/completions", chat(`,"top_logprobs":2`), "", 400, openAI, "top_logprobs", "requires 'logprobs'"},
		{"too many stops", "POST", "/v1/chat/completions", chat(`,"stop":["a","b","c","d","e"]`), "", 400, openAI, "stop", "at most 4"},
		// Requests this server cannot honour.
		{"n=17", "POST", "/v1/chat/completions", chat(`,"n":17`), "", 400, openAI, "n", "between 1 and 16"},
		{"n=0", "POST", "/v1/completions", `{"model":"strata-test","prompt":"hi","n":0}`, "", 400, openAI, "n", "between 1 and 16"},
		{"unknown model", "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, "", 404, openAI, "model", "does not exist"},
		{"missing model", "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`, "", 400, openAI, "model", "provide a model"},
		{"empty messages", "POST", "/v1/chat/completions", `{"model":"strata-test","messages":[]}`, "", 400, openAI, "messages", "at least one message"},
		{"no role", "POST", "/v1/chat/completions", `{"model":"strata-test","messages":[{"content":"hi"}]}`, "", 400, openAI, "messages[0].role", "has no role"},
		{"bad role", "POST", "/v1/chat/completions", `{"model":"strata-test","messages":[{"role":"wizard","content":"hi"}]}`, "", 400, openAI, "messages[0].role", `"wizard"`},
		{"no content", "POST", "/v1/chat/completions", `{"model":"strata-test","messages":[{"role":"user"}]}`, "", 400, openAI, "messages[0].content", "no content"},
		{"image part", "POST", "/v1/chat/completions", `{"model":"strata-test","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, "", 400, openAI, "messages.content", "image_url"},
		{"tools", "POST", "/v1/chat/completions", chat(`,"tools":[{"type":"retrieval"}]`), "", 400, openAI, "tools[0].type", "only \"function\""},
		{"functions", "POST", "/v1/chat/completions", chat(`,"functions":[{"name":"f"}]`), "", 400, openAI, "functions", "use 'tools'"},
		{"json_schema without a schema", "POST", "/v1/chat/completions", chat(`,"response_format":{"type":"json_schema"}`), "", 400, openAI, "response_format", "needs json_schema.schema"},
		{"json_schema not", "POST", "/v1/chat/completions", chat(`,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"integer","not":{"const":2}}}}`), "", 400, openAI, "response_format", `"not" is not supported`},
		{"json_schema allOf of no common type", "POST", "/v1/chat/completions", chat(`,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"allOf":[{"type":"string"},{"type":"integer"}]}}}`), "", 400, openAI, "response_format", "no type in common"},
		{"json_schema lookahead", "POST", "/v1/chat/completions", chat(`,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"string","pattern":"(?=a)"}}}`), "", 400, openAI, "response_format", `pattern "(?=a)"`},
		{"response_format type", "POST", "/v1/chat/completions", chat(`,"response_format":{"type":"xml"}`), "", 400, openAI, "response_format", "not supported"},
		{"TGI grammar regex", "POST", "/generate", `{"inputs":"hi","parameters":{"grammar":{"type":"regex","value":"(?=a)"}}}`, "", 422, tgi, "", "regex"},
		{"TGI grammar regex value", "POST", "/generate", `{"inputs":"hi","parameters":{"grammar":{"type":"regex","value":{"a":1}}}}`, "", 422, tgi, "", "regex needs value"},
		{"TGI grammar type", "POST", "/generate", `{"inputs":"hi","parameters":{"grammar":{"type":"ebnf","value":"x"}}}`, "", 422, tgi, "", "\"regex\" are"},
		{"TGI grammar schema", "POST", "/generate", `{"inputs":"hi","parameters":{"grammar":{"type":"json","value":{"anyOf":[]}}}}`, "", 422, tgi, "", "anyOf"},
		{"logit_bias key", "POST", "/v1/chat/completions", chat(`,"logit_bias":{"x":10}`), "", 400, openAI, "logit_bias", "token ids"},
		{"logit_bias id", "POST", "/v1/chat/completions", chat(`,"logit_bias":{"99999":10}`), "", 400, openAI, "logit_bias", "token ids"},
		{"logit_bias value", "POST", "/v1/completions", `{"model":"strata-test","prompt":"hi","logit_bias":{"5":101}}`, "", 400, openAI, "logit_bias", "[-100, 100]"},
		{"logit_bias type", "POST", "/v1/completions", `{"model":"strata-test","prompt":"hi","logit_bias":{"5":"1"}}`, "", 400, openAI, "logit_bias", "[-100, 100]"},
		{"stream_options without stream", "POST", "/v1/chat/completions", chat(`,"stream_options":{"include_usage":true}`), "", 400, openAI, "stream_options", "only allowed"},
		// Completions.
		{"no prompt", "POST", "/v1/completions", `{"model":"strata-test"}`, "", 400, openAI, "prompt", "provide a prompt"},
		{"empty prompt", "POST", "/v1/completions", `{"model":"strata-test","prompt":[]}`, "", 400, openAI, "", "prompt is empty"},
		{"two prompts", "POST", "/v1/completions", `{"model":"strata-test","prompt":["a","b"]}`, "", 400, openAI, "prompt", "only one prompt"},
		{"token out of vocabulary", "POST", "/v1/completions", `{"model":"strata-test","prompt":[1,99999]}`, "", 400, openAI, "prompt", "outside the vocabulary"},
		{"prompt object", "POST", "/v1/completions", `{"model":"strata-test","prompt":{"a":1}}`, "", 400, openAI, "prompt", "expected a string"},
		{"logprobs 6", "POST", "/v1/completions", `{"model":"strata-test","prompt":"a","logprobs":6}`, "", 400, openAI, "logprobs", "between 0 and 5"},
		{"best_of 2", "POST", "/v1/completions", `{"model":"strata-test","prompt":"a","best_of":2}`, "", 400, openAI, "best_of", "only 1"},
		{"suffix", "POST", "/v1/completions", `{"model":"strata-test","prompt":"a","suffix":"z"}`, "", 400, openAI, "suffix", "not supported"},
		// Authentication, on every route but /health and /metrics.
		{"missing key", "POST", "/v1/chat/completions", chat(""), "-", 401, openAI, "", "missing API key"},
		{"bad key", "POST", "/v1/chat/completions", chat(""), "Bearer nope", 401, openAI, "", "invalid API key"},
		{"basic auth", "POST", "/v1/chat/completions", chat(""), "Basic dXNlcjpwYXNz", 401, openAI, "", "malformed"},
		{"empty bearer", "GET", "/v1/models", "", "Bearer ", 401, openAI, "", "malformed"},
		{"TGI without key", "POST", "/generate", `{"inputs":"hi"}`, "-", 401, openAI, "", "missing API key"},
		{"info without key", "GET", "/info", "", "-", 401, openAI, "", "missing API key"},
		// TGI's routes answer validation errors with 422 in TGI's shape.
		{"TGI bad JSON", "POST", "/generate", `{"inputs":`, "", 422, tgi, "", "not valid JSON"},
		{"TGI empty inputs", "POST", "/generate", `{"inputs":""}`, "", 422, tgi, "", "`inputs` cannot be empty"},
		{"TGI no inputs", "POST", "/generate_stream", `{"parameters":{}}`, "", 422, tgi, "", "`inputs` cannot be empty"},
		{"TGI temperature 0", "POST", "/generate", `{"inputs":"hi","parameters":{"temperature":0}}`, "", 422, tgi, "", "strictly positive"},
		{"TGI max_new_tokens 0", "POST", "/generate", `{"inputs":"hi","parameters":{"max_new_tokens":0}}`, "", 422, tgi, "", "at least 1"},
		{"TGI too long", "POST", "/generate", `{"inputs":"hi","parameters":{"max_new_tokens":500}}`, "", 422, tgi, "", "must be <= 256"},
		{"TGI best_of", "POST", "/generate", `{"inputs":"hi","parameters":{"best_of":2}}`, "", 422, tgi, "", "best_of"},
		{"TGI top_n_tokens", "POST", "/generate", `{"inputs":"hi","parameters":{"top_n_tokens":9}}`, "", 422, tgi, "", "between 0 and 5"},
		{"TGI wrong type", "POST", "/", `{"inputs":"hi","stream":"no"}`, "", 422, tgi, "", "expected a boolean"},
		{"TGI stops", "POST", "/generate", `{"inputs":"hi","parameters":{"stop":["a","b","c","d","e"]}}`, "", 422, tgi, "", "up to 4"},
		// Routing.
		{"wrong method", "GET", "/v1/chat/completions", "", "", 405, openAI, "", "not allowed"},
		{"unknown route", "POST", "/v2/chat", "{}", "", 404, openAI, "", "no route"},
		{"unknown model path", "GET", "/v1/models/other", "", "", 404, openAI, "model", "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth := "Bearer " + testKey
			switch tc.auth {
			case "":
			case "-":
				auth = ""
			default:
				auth = tc.auth
			}
			resp, b := f.do(t, tc.method, tc.path, tc.body, "Authorization", auth)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			var msg string
			switch tc.shape {
			case openAI:
				var e openAIError
				if err := json.Unmarshal(b, &e); err != nil || e.Error == nil || e.Error.Message == "" || e.Error.Type == "" {
					t.Fatalf("not an OpenAI error: %s", b)
				}
				msg = e.Error.Message
				if tc.param != "" && (e.Error.Param == nil || *e.Error.Param != tc.param) {
					t.Errorf("param %v, want %q: %s", e.Error.Param, tc.param, b)
				}
			case tgi:
				var e tgiError
				if err := json.Unmarshal(b, &e); err != nil || e.Error == "" || e.ErrorType != "validation" {
					t.Fatalf("not a TGI validation error: %s", b)
				}
				msg = e.Error
			}
			if !strings.Contains(msg, tc.msg) {
				t.Errorf("message %q does not say %q", msg, tc.msg)
			}
			if tc.status == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if n := len(f.gen.Requests()); n != 0 {
		t.Errorf("%d invalid requests reached the generator", n)
	}
}

// TestChatTemplateRefusal checks that a template's raise_exception is the
// client's 400, with the template's message.
func TestChatTemplateRefusal(t *testing.T) {
	f := newFixture(t, api.Config{}, nil)
	tok := apitest.NewTokenizer(`{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ messages[0]['content'] }}`)
	srv := api.New(api.Config{}, f.gen, tok, f.pipe)
	f.srv.Config.Handler = srv
	resp, b := f.do(t, "POST", "/v1/chat/completions", `{"model":"strata-test","messages":[{"role":"system","content":"x"},{"role":"user","content":"hi"}]}`)
	var e openAIError
	if json.Unmarshal(b, &e); resp.StatusCode != 400 || e.Error == nil || !strings.Contains(e.Error.Message, "System role not supported") {
		t.Errorf("status %d: %s", resp.StatusCode, b)
	}
}

package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/strata-llm/strata/node/api"
)

// TestGuided: vLLM's guided_json, guided_regex and guided_choice reach the
// Generator as grammars on both OpenAI routes; guided_grammar, several
// at once, one beside a response_format, and a bad expression are 400s.
func TestGuided(t *testing.T) {
	f := newFixture(t, api.Config{}, nil)
	const schema = `{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}`
	bodies := map[string]string{
		"/v1/chat/completions": `{"model":"` + testModel + `","messages":[{"role":"user","content":"Hi"}],"max_tokens":2%s}`,
		"/v1/completions":      `{"model":"` + testModel + `","prompt":"Hi","max_tokens":2%s}`,
	}
	for path, body := range bodies {
		for _, tc := range []struct{ extra, want string }{
			{`,"guided_regex":"\\d+"`, `\d+`},
			{`,"guided_choice":["yes","no","a.b"]`, `yes|no|a\.b`},
			{`,"guided_json":` + schema, `{"a":integer}`},
			{`,"guided_json":` + mustQuote(schema), `{"a":integer}`},
		} {
			resp, b := f.do(t, "POST", path, fmt.Sprintf(body, tc.extra))
			if resp.StatusCode != 200 {
				t.Fatalf("%s %s: status %d: %s", path, tc.extra, resp.StatusCode, b)
			}
			reqs := f.gen.Requests()
			if got, ok := reqs[len(reqs)-1].Grammar.(fmt.Stringer); !ok || got.String() != tc.want {
				t.Errorf("%s %s: grammar %v, want %s", path, tc.extra, got, tc.want)
			}
		}
		for _, tc := range []struct{ extra, param string }{
			{`,"guided_grammar":"root ::= \"a\""`, "guided_grammar"},
			{`,"guided_regex":"a","guided_choice":["b"]`, "guided_json"},
			{`,"guided_regex":"(?=a)"`, "guided_regex"},
			{`,"guided_choice":[]`, "guided_choice"},
			{`,"guided_json":{"type":"integer","not":{"const":2}}`, "guided_json"},
		} {
			resp, b := f.do(t, "POST", path, fmt.Sprintf(body, tc.extra))
			var e struct {
				Error struct{ Param string } `json:"error"`
			}
			json.Unmarshal(b, &e)
			if resp.StatusCode != 400 || e.Error.Param != tc.param {
				t.Errorf("%s %s: status %d, param %q, want 400 %q: %s", path, tc.extra, resp.StatusCode, e.Error.Param, tc.param, b)
			}
		}
	}
	resp, b := f.do(t, "POST", "/v1/chat/completions", fmt.Sprintf(bodies["/v1/chat/completions"], `,"guided_regex":"a","response_format":{"type":"json_object"}`))
	if resp.StatusCode != 400 || !strings.Contains(string(b), "guided_") {
		t.Errorf("guided_regex beside json_object: status %d: %s", resp.StatusCode, b)
	}
}

func mustQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

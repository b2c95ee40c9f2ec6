package api_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/strata-llm/strata/node/api"
	"github.com/strata-llm/strata/node/api/apitest"
)

// fuzzServer is a Server for the fuzz targets, answering in memory.
func fuzzServer() *api.Server {
	return api.New(api.Config{Logger: slog.New(slog.DiscardHandler), MaxRequestBytes: 1 << 16},
		&apitest.Generator{Reply: "ok é"}, apitest.NewTokenizer(testTemplate), apitest.NewPipeline(testModel, 64))
}

// checkAnswer fails t unless the response is a success of the route's
// kind, or a 4xx in the route's error shape; a 5xx or a panic fails.
func checkAnswer(t *testing.T, path string, rec *httptest.ResponseRecorder) {
	t.Helper()
	b := rec.Body.Bytes()
	switch {
	case rec.Code == 200 && strings.HasPrefix(rec.Header().Get("Content-Type"), "text/event-stream"):
		if strings.HasPrefix(path, "/v1/") && !bytes.HasSuffix(b, []byte("data: [DONE]\n\n")) {
			t.Fatalf("stream without [DONE]: %s", b)
		}
	case rec.Code == 200:
		if !json.Valid(b) {
			t.Fatalf("200 with a body that is not JSON: %s", b)
		}
	case rec.Code >= 400 && rec.Code < 500:
		if strings.HasPrefix(path, "/v1/") {
			var e openAIError
			if err := json.Unmarshal(b, &e); err != nil || e.Error == nil || e.Error.Message == "" {
				t.Fatalf("%d without an OpenAI error: %s", rec.Code, b)
			}
		} else {
			var e tgiError
			if err := json.Unmarshal(b, &e); err != nil || e.Error == "" || e.ErrorType == "" {
				t.Fatalf("%d without a TGI error: %s", rec.Code, b)
			}
		}
	default:
		t.Fatalf("status %d: %s", rec.Code, b)
	}
}

// FuzzChatRequest posts arbitrary bodies to /v1/chat/completions (and
// /invocations and /chat_tokenize, which take chats too): every one is
// answered, with a success or a 4xx in the route's error shape.
func FuzzChatRequest(f *testing.F) {
	for _, seed := range []string{
		`{"model":"strata-test","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"strata-test","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"a"}]}],"stream":true,"stream_options":{"include_usage":true}}`,
		`{"model":"strata-test","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stop":["l","x"],"logprobs":true,"top_logprobs":2,"seed":-1,"temperature":0.5,"top_p":0.9}`,
		`{"model":"strata-test","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":99999,"n":1,"frequency_penalty":-2,"presence_penalty":2}`,
		`{"model":"strata-test","messages":[{"role":"assistant","content":null},{"role":"tool","content":"x"}],"stop":"o","top_k":3,"min_p":0.1,"repetition_penalty":1.1}`,
		`{"model":"strata-test","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"},"logit_bias":{"5":-100,"6":3}}`,
		`{"model":"strata-test","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"integer"}}}}}],"tool_choice":"required"}`,
		`{"model":"strata-test","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},{"role":"tool","tool_call_id":"c","content":"2"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"f"}},"stream":true}`,
		`{"model":1,"messages":{}}`, `[]`, `null`, `{"messages":[null]}`, `{"model":"strata-test","messages":[{"role":"user","content":"\u0000\ud800"}]}`,
	} {
		f.Add([]byte(seed))
	}
	s := fuzzServer()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/v1/chat/completions", "/invocations", "/chat_tokenize"} {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest("POST", path, bytes.NewReader(body)))
			checkAnswer(t, path, rec)
		}
	})
}

// FuzzGenerateRequest posts arbitrary bodies to the completion routes,
// OpenAI's and TGI's, to /invocations and to /tokenize.
func FuzzGenerateRequest(f *testing.F) {
	for _, seed := range []string{
		`{"model":"strata-test","prompt":"hi","echo":true,"logprobs":2,"stream":true}`,
		`{"model":"strata-test","prompt":[[1,2,3]],"max_tokens":2,"suffix":""}`,
		`{"inputs":"hi","parameters":{"max_new_tokens":3,"details":true,"decoder_input_details":true,"top_n_tokens":2,"stop":["k"]}}`,
		`{"inputs":"hi","stream":true,"parameters":{"do_sample":true,"seed":5,"top_p":0.5,"truncate":1,"return_full_text":true}}`,
		`{"model":"strata-test","prompt":"hi","logit_bias":{"300":1}}`,
		`{"inputs":"","parameters":null}`, `{"inputs":5}`,
	} {
		f.Add([]byte(seed))
	}
	s := fuzzServer()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/v1/completions", "/generate", "/generate_stream", "/", "/invocations", "/tokenize"} {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest("POST", path, bytes.NewReader(body)))
			checkAnswer(t, path, rec)
		}
	})
}

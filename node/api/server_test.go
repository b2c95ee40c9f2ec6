package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/strata-llm/strata/node/api"
	"github.com/strata-llm/strata/node/api/apitest"
)

const (
	testModel  = "strata-test"
	testCtxLen = 256
	testReply  = "Hello there, world!"
	testKey    = "sk-test-key"
)

// testTemplate is ChatML that writes bos_token itself, as many real
// templates do: the server must then not add a second BOS.
const testTemplate = "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}" +
	"{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"

// fixture is a Server over the apitest fakes, on an httptest server.
type fixture struct {
	srv  *httptest.Server
	api  *api.Server
	gen  *apitest.Generator
	pipe *apitest.Pipeline
	tok  *apitest.Tokenizer
}

func newFixture(t *testing.T, cfg api.Config, gen *apitest.Generator) *fixture {
	t.Helper()
	if gen == nil {
		gen = &apitest.Generator{Reply: testReply}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f := &fixture{gen: gen, pipe: apitest.NewPipeline(testModel, testCtxLen), tok: apitest.NewTokenizer(testTemplate)}
	f.api = api.New(cfg, f.gen, f.tok, f.pipe)
	f.srv = httptest.NewServer(f.api)
	t.Cleanup(f.srv.Close)
	return f
}

// do sends a request with a JSON body (none when body is "") and returns
// the response with its body read.
func (f *fixture) do(t *testing.T, method, path, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// sseData returns the payloads of the "data:" lines of a server-sent
// event stream, in order.
func sseData(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if data, ok := strings.CutPrefix(line, "data:"); ok {
			out = append(out, strings.TrimPrefix(data, " "))
		} else if line != "" {
			t.Errorf("unexpected line in the event stream: %q", line)
		}
	}
	return out
}

func openAIClient(f *fixture, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(f.srv.URL+"/v1/"), option.WithAPIKey(key),
		option.WithHTTPClient(f.srv.Client()), option.WithMaxRetries(0))
}

// TestOpenAIClient drives the server with OpenAI's official Go client.
func TestOpenAIClient(t *testing.T) {
	f := newFixture(t, api.Config{APIKeys: []string{testKey}}, nil)
	client := openAIClient(f, testKey)
	ctx := context.Background()
	msgs := []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("Say hello.")}

	t.Run("chat", func(t *testing.T) {
		res, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: testModel, Messages: msgs, Seed: openai.Int(7)})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Choices) != 1 {
			t.Fatalf("%d choices", len(res.Choices))
		}
		c := res.Choices[0]
		if c.Message.Content != testReply || c.FinishReason != "stop" || c.Message.Role != "assistant" {
			t.Errorf("choice %+v; want %q, stop", c, testReply)
		}
		if res.Model != testModel || res.Object != "chat.completion" || !strings.HasPrefix(res.ID, "chatcmpl-") {
			t.Errorf("id %q object %q model %q", res.ID, res.Object, res.Model)
		}
		prompt := f.tok.Encode("<s><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n", false, true)
		want := openai.CompletionUsage{PromptTokens: int64(len(prompt)), CompletionTokens: int64(len(testReply) + 1)}
		want.TotalTokens = want.PromptTokens + want.CompletionTokens
		if res.Usage.PromptTokens != want.PromptTokens || res.Usage.CompletionTokens != want.CompletionTokens || res.Usage.TotalTokens != want.TotalTokens {
			t.Errorf("usage %+v, want %+v", res.Usage, want)
		}
		reqs := f.gen.Requests()
		got := reqs[len(reqs)-1]
		if !slices.Equal(got.Prompt, prompt) {
			t.Errorf("generator prompt %v\nwant (one BOS) %v", got.Prompt, prompt)
		}
		if got.Sampling.Seed != 7 || got.Sampling.Temperature != 1 || got.MaxTokens != testCtxLen-len(prompt) {
			t.Errorf("generator request %+v", got)
		}
	})

	t.Run("chat/stream", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model: testModel, Messages: msgs, MaxTokens: openai.Int(5),
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		acc := openai.ChatCompletionAccumulator{}
		var finish string
		var deltas []string
		for stream.Next() {
			chunk := stream.Current()
			acc.AddChunk(chunk)
			for _, c := range chunk.Choices {
				if c.Delta.Content != "" {
					deltas = append(deltas, c.Delta.Content)
				}
				if c.FinishReason != "" {
					finish = c.FinishReason
				}
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if got := acc.Choices[0].Message.Content; got != testReply[:5] {
			t.Errorf("streamed %q, want %q", got, testReply[:5])
		}
		if len(deltas) != 5 {
			t.Errorf("%d content deltas %q, want one per token", len(deltas), deltas)
		}
		if finish != "length" {
			t.Errorf("finish_reason %q, want length", finish)
		}
		if acc.Usage.CompletionTokens != 5 || acc.Usage.TotalTokens != acc.Usage.PromptTokens+5 {
			t.Errorf("usage %+v", acc.Usage)
		}
	})

	t.Run("completion", func(t *testing.T) {
		res, err := client.Completions.New(ctx, openai.CompletionNewParams{
			Model:  testModel,
			Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
			Stop:   openai.CompletionNewParamsStopUnion{OfString: openai.String(", w")}, // within the default 16 tokens
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Choices[0]; got.Text != "Hello there" || got.FinishReason != "stop" {
			t.Errorf("choice %+v, want %q stop", got, "Hello there")
		}
		if res.Object != "text_completion" || res.Usage.PromptTokens != int64(len("Once upon a time")+1) {
			t.Errorf("object %q usage %+v", res.Object, res.Usage)
		}
	})

	t.Run("completion/stream", func(t *testing.T) {
		stream := client.Completions.NewStreaming(ctx, openai.CompletionNewParams{
			Model:     testModel,
			Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
			MaxTokens: openai.Int(40),
		})
		var text strings.Builder
		var finish string
		for stream.Next() {
			for _, c := range stream.Current().Choices {
				text.WriteString(c.Text)
				if c.FinishReason != "" {
					finish = string(c.FinishReason)
				}
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if text.String() != testReply || finish != "stop" {
			t.Errorf("streamed %q (%s), want %q (stop)", text.String(), finish, testReply)
		}
	})

	t.Run("models", func(t *testing.T) {
		page, err := client.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Data) != 1 || page.Data[0].ID != testModel || page.Data[0].OwnedBy != "strata" {
			t.Errorf("models %+v", page.Data)
		}
		m, err := client.Models.Get(ctx, testModel)
		if err != nil || m.ID != testModel {
			t.Errorf("get model: %+v, %v", m, err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: testModel, Messages: msgs, N: openai.Int(17)})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "n" || apiErr.Type != "invalid_request_error" {
			t.Errorf("n=17: %v, want a 400 about n", err)
		}
		wrong := openAIClient(f, "wrong")
		_, err = wrong.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: testModel, Messages: msgs})
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "invalid_api_key" {
			t.Errorf("wrong key: %v, want a 401 invalid_api_key", err)
		}
		_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: msgs})
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" {
			t.Errorf("unknown model: %v, want a 404 model_not_found", err)
		}
	})
}

// TestOpenAISchemas checks responses and stream chunks against OpenAI's
// OpenAPI document.
func TestOpenAISchemas(t *testing.T) {
	s := loadSpec(t, "openai-openapi.json")
	f := newFixture(t, api.Config{}, nil)
	chat := `{"model":"strata-test","messages":[{"role":"user","content":"hi"}],"logprobs":true,"top_logprobs":2`
	_, b := f.do(t, "POST", "/v1/chat/completions", chat+`}`)
	s.check(t, "CreateChatCompletionResponse", b)
	_, b = f.do(t, "POST", "/v1/chat/completions", chat+`,"stream":true,"stream_options":{"include_usage":true}}`)
	events := sseData(t, b)
	if len(events) < 3 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("events %q: want chunks ending with [DONE]", events)
	}
	for _, e := range events[:len(events)-1] {
		s.check(t, "CreateChatCompletionStreamResponse", []byte(e))
	}
	_, b = f.do(t, "POST", "/v1/completions", `{"model":"strata-test","prompt":"hi","logprobs":2}`)
	s.check(t, "CreateCompletionResponse", b)
	_, b = f.do(t, "GET", "/v1/models", "")
	s.check(t, "ListModelsResponse", b)
	_, b = f.do(t, "POST", "/v1/chat/completions", `{"model":"strata-test","messages":[]}`)
	s.check(t, "ErrorResponse", b)
}

// TestTGIGenerateStream parses /generate_stream as TGI's event stream and
// checks every event against TGI's StreamResponse schema.
func TestTGIGenerateStream(t *testing.T) {
	s := loadSpec(t, "tgi-openapi.json")
	f := newFixture(t, api.Config{}, nil)
	for _, tc := range []struct {
		name, body string
		path       string
		text       string // generated_text
		tokens     int
		finish     string
	}{
		{"eos", `{"inputs":"Hi","parameters":{"max_new_tokens":64}}`, "/generate_stream", testReply, len(testReply) + 1, "eos_token"},
		{"length", `{"inputs":"Hi","parameters":{"max_new_tokens":4,"do_sample":true,"seed":3}}`, "/generate_stream", "Hell", 4, "length"},
		{"stop", `{"inputs":"Hi","parameters":{"stop":["there"],"top_n_tokens":2}}`, "/generate_stream", "Hello there", len("Hello there"), "stop_sequence"},
		{"full text", `{"inputs":"Hi ","parameters":{"max_new_tokens":5,"return_full_text":true}}`, "/generate_stream", "Hi Hello", 5, "length"},
		{"compat", `{"inputs":"Hi","stream":true,"parameters":{"max_new_tokens":3}}`, "/", "Hel", 3, "length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := f.do(t, "POST", tc.path, tc.body)
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("status %d, content type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
			}
			events := sseData(t, b)
			if len(events) != tc.tokens {
				t.Fatalf("%d events, want one per token (%d): %q", len(events), tc.tokens, events)
			}
			var text strings.Builder
			for i, e := range events {
				s.check(t, "StreamResponse", []byte(e))
				var ev tgiStreamResponse
				if err := json.Unmarshal([]byte(e), &ev); err != nil {
					t.Fatal(err)
				}
				if ev.Index != i+1 {
					t.Errorf("event %d has index %d", i, ev.Index)
				}
				if !ev.Token.Special {
					text.WriteString(ev.Token.Text)
				}
				last := i == len(events)-1
				if (ev.GeneratedText != nil) != last || (ev.Details != nil) != last {
					t.Errorf("event %d: generated_text and details must be null except on the last: %s", i, e)
				}
				if last {
					if *ev.GeneratedText != tc.text {
						t.Errorf("generated_text %q, want %q", *ev.GeneratedText, tc.text)
					}
					if ev.Details.FinishReason != tc.finish || ev.Details.GeneratedTokens != tc.tokens {
						t.Errorf("details %+v, want %s after %d tokens", ev.Details, tc.finish, tc.tokens)
					}
				}
			}
			if got := strings.TrimPrefix(tc.text, "Hi "); text.String() != got {
				t.Errorf("token texts make %q, want %q", text.String(), got)
			}
		})
	}
	if got := f.gen.Requests()[1].Sampling; got.Seed != 3 || got.Temperature != 1 {
		t.Errorf("do_sample with seed 3: sampling %+v", got)
	}
	if got := f.gen.Requests()[0].Sampling; got.Temperature != 0 {
		t.Errorf("no sampling parameters: want greedy, got %+v", got)
	}
}

// TestTGIGenerate checks /generate and the compat route against TGI's
// schemas.
func TestTGIGenerate(t *testing.T) {
	s := loadSpec(t, "tgi-openapi.json")
	f := newFixture(t, api.Config{}, nil)
	resp, b := f.do(t, "POST", "/generate", `{"inputs":"Hi","parameters":{"max_new_tokens":5,"decoder_input_details":true,"top_n_tokens":3}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	s.check(t, "GenerateResponse", b)
	var out tgiGenerateResponse
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.GeneratedText != "Hello" || out.Details == nil || out.Details.FinishReason != "length" ||
		len(out.Details.Tokens) != 5 || len(out.Details.Prefill) != 3 || len(out.Details.TopTokens) != 5 || len(out.Details.TopTokens[0]) != 3 {
		t.Errorf("response %s", b)
	}
	if lp := out.Details.Tokens[1].Logprob; lp == nil || *lp != float64(apitest.Logprob(1)) {
		t.Errorf("token logprob %v, want %v", lp, apitest.Logprob(1))
	}

	_, b = f.do(t, "POST", "/generate", `{"inputs":"Hi","parameters":{"details":false}}`)
	if string(b) != `{"generated_text":"`+testReply+`"}`+"\n" {
		t.Errorf("details false: %s", b)
	}
	resp, b = f.do(t, "POST", "/", `{"inputs":"Hi","parameters":{"max_new_tokens":2}}`)
	var arr []tgiGenerateResponse
	if err := json.Unmarshal(b, &arr); resp.StatusCode != 200 || err != nil || len(arr) != 1 || arr[0].GeneratedText != "He" {
		t.Errorf("compat: status %d body %s", resp.StatusCode, b)
	}
	_, b = f.do(t, "POST", "/generate", `{"inputs":""}`)
	s.check(t, "ErrorResponse", b)
}

// TestInfo checks /info against TGI's Info and its pipeline extension.
func TestInfo(t *testing.T) {
	s := loadSpec(t, "tgi-openapi.json")
	f := newFixture(t, api.Config{MaxConcurrent: 8}, nil)
	resp, b := f.do(t, "GET", "/info", "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	s.check(t, "Info", b)
	var info tgiInfo
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	if info.ModelID != testModel || info.MaxTotalTokens != testCtxLen || info.MaxInputTokens != testCtxLen-1 ||
		info.MaxConcurrentRequests != 8 || info.MaxStopSequences != 4 || info.VocabSize != apitest.VocabLen {
		t.Errorf("info %s", b)
	}
	st := info.Pipeline.Stages
	if len(st) != 2 || st[0].Peer != "12D3KooWStageA" || st[0].Layers != [2]int{0, 2} || st[1].Layers != [2]int{2, 4} || st[1].Index != 1 {
		t.Errorf("pipeline %+v", info.Pipeline)
	}
}

// TestHealth checks that /health runs the pipeline's health check: 200
// when it passes, 503 with TGI's error when not.
func TestHealth(t *testing.T) {
	s := loadSpec(t, "tgi-openapi.json")
	f := newFixture(t, api.Config{APIKeys: []string{testKey}}, nil)
	resp, b := f.do(t, "GET", "/health", "")
	if resp.StatusCode != 200 || f.pipe.HealthChecks() != 1 {
		t.Errorf("healthy: status %d, %d checks: %s", resp.StatusCode, f.pipe.HealthChecks(), b)
	}
	f.pipe.SetHealth(errors.New("stage 1 (12D3KooWStageB) did not answer"))
	resp, b = f.do(t, "GET", "/health", "")
	if resp.StatusCode != 503 || !strings.Contains(string(b), "StageB") || resp.Header.Get("Retry-After") == "" {
		t.Errorf("unhealthy: status %d: %s", resp.StatusCode, b)
	}
	s.check(t, "ErrorResponse", b)
	var e tgiError
	if json.Unmarshal(b, &e); e.ErrorType != "healthcheck" {
		t.Errorf("error_type %q, want healthcheck", e.ErrorType)
	}
}

// TestStopStrings checks that OpenAI's routes cut the reply before a stop
// string, also one spread over several tokens, and hold back no text when
// a prefix of a stop string turns out not to be one.
func TestStopStrings(t *testing.T) {
	f := newFixture(t, api.Config{}, nil)
	for _, tc := range []struct {
		stop, want, finish string
	}{
		{`"o"`, "Hell", "stop"},
		{`["xyz", "ere,"]`, "Hello th", "stop"},
		{`["world!!"]`, testReply, "stop"}, // never matched; held-back "world!" is flushed
		{`[]`, testReply, "stop"},
	} {
		for _, stream := range []bool{false, true} {
			body := `{"model":"strata-test","prompt":"x","max_tokens":40,"stop":` + tc.stop + `,"stream":` + map[bool]string{true: "true", false: "false"}[stream] + `}`
			resp, b := f.do(t, "POST", "/v1/completions", body)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: status %d: %s", body, resp.StatusCode, b)
			}
			var text, finish string
			chunks := []string{string(b)}
			if stream {
				chunks = sseData(t, b)
				chunks = chunks[:len(chunks)-1]
			}
			for _, c := range chunks {
				var r completionResponse
				if err := json.Unmarshal([]byte(c), &r); err != nil {
					t.Fatal(err)
				}
				text += r.Choices[0].Text
				if r.Choices[0].FinishReason != nil {
					finish = *r.Choices[0].FinishReason
				}
			}
			if text != tc.want || finish != tc.finish {
				t.Errorf("stop %s stream %v: %q (%s), want %q (%s)", tc.stop, stream, text, finish, tc.want, tc.finish)
			}
		}
	}
}

// TestLogprobs checks chat logprobs and top_logprobs, and completion
// logprobs.
func TestLogprobs(t *testing.T) {
	f := newFixture(t, api.Config{}, nil)
	_, b := f.do(t, "POST", "/v1/chat/completions", `{"model":"strata-test","messages":[{"role":"user","content":"hi"}],"logprobs":true,"top_logprobs":3,"max_tokens":4}`)
	var chat chatResponse
	if err := json.Unmarshal(b, &chat); err != nil {
		t.Fatal(err)
	}
	lp := chat.Choices[0].Logprobs
	if lp == nil || len(lp.Content) != 4 {
		t.Fatalf("logprobs %s", b)
	}
	for i, c := range lp.Content {
		if c.Token != testReply[i:i+1] || c.Logprob != float64(apitest.Logprob(i)) || !slices.Equal(c.Bytes, []int{int(testReply[i])}) ||
			len(c.TopLogprobs) != 3 || c.TopLogprobs[0].Token != c.Token {
			t.Errorf("token %d: %+v", i, c)
		}
	}
	_, b = f.do(t, "POST", "/v1/completions", `{"model":"strata-test","prompt":"hi","logprobs":1,"max_tokens":3}`)
	var comp completionResponse
	if err := json.Unmarshal(b, &comp); err != nil {
		t.Fatal(err)
	}
	clp := comp.Choices[0].Logprobs
	if clp == nil || !slices.Equal(clp.Tokens, []string{"H", "e", "l"}) || !slices.Equal(clp.TextOffset, []int{0, 1, 2}) ||
		len(clp.TopLogprobs) != 3 || clp.TopLogprobs[2]["l"] != float64(apitest.Logprob(2)) {
		t.Errorf("completion logprobs %s", b)
	}
	if r := f.gen.Requests(); !r[0].Logprobs || r[0].TopLogprobs != 3 || r[1].TopLogprobs != 1 {
		t.Errorf("generator requests %+v", r)
	}
}

// TestEcho checks echo and prompts given as token ids.
func TestEcho(t *testing.T) {
	f := newFixture(t, api.Config{}, nil)
	_, b := f.do(t, "POST", "/v1/completions", `{"model":"strata-test","prompt":[72,105],"echo":true,"max_tokens":2}`)
	var r completionResponse
	if err := json.Unmarshal(b, &r); err != nil || r.Choices[0].Text != "HiHe" {
		t.Errorf("echo: %s", b)
	}
	if got := f.gen.Requests()[0].Prompt; !slices.Equal(got, []int{72, 105}) {
		t.Errorf("token prompt %v", got)
	}
}

// TestChatContentParts checks content given as text parts, and the
// developer role mapped to system.
func TestChatContentParts(t *testing.T) {
	f := newFixture(t, api.Config{}, nil)
	resp, b := f.do(t, "POST", "/v1/chat/completions", `{"model":"strata-test","max_tokens":1,"messages":[
		{"role":"developer","content":"Be brief."},
		{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	want := f.tok.Encode("<s><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\na\nb<|im_end|>\n<|im_start|>assistant\n", false, true)
	if got := f.gen.Requests()[0].Prompt; !slices.Equal(got, want) {
		t.Errorf("prompt %v, want %v", got, want)
	}
}

// TestTGITokenize checks /tokenize and /chat_tokenize against TGI's
// schemas: the tokens are those the generation routes feed the model, each
// on its span of the input.
func TestTGITokenize(t *testing.T) {
	s := loadSpec(t, "tgi-openapi.json")
	f := newFixture(t, api.Config{}, nil)
	for _, tc := range []struct {
		inputs string
		want   []simpleToken
	}{
		{"Hi", []simpleToken{{apitest.BOS, "<s>", 0, 0}, {'H', "H", 0, 1}, {'i', "i", 1, 2}}},
		{"<s>a<|im_end|>", []simpleToken{{apitest.BOS, "<s>", 0, 0}, {apitest.BOS, "<s>", 0, 3}, {'a', "a", 3, 4}, {apitest.ImEnd, "<|im_end|>", 4, 14}}},
	} {
		body, _ := json.Marshal(map[string]any{"inputs": tc.inputs, "parameters": map[string]any{"max_new_tokens": 3}})
		resp, b := f.do(t, "POST", "/tokenize", string(body))
		if resp.StatusCode != 200 {
			t.Fatalf("%q: status %d: %s", tc.inputs, resp.StatusCode, b)
		}
		s.check(t, "TokenizeResponse", b)
		var got []simpleToken
		if err := json.Unmarshal(b, &got); err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: tokens %s, want %+v", tc.inputs, b, tc.want)
		}
	}
	for _, body := range []string{`{"inputs":""}`, `{"inputs":"` + strings.Repeat("x", testCtxLen) + `"}`} {
		resp, b := f.do(t, "POST", "/tokenize", body)
		if resp.StatusCode != 422 {
			t.Errorf("empty or too long inputs: status %d: %s", resp.StatusCode, b)
		}
		s.check(t, "ErrorResponse", b)
	}

	resp, b := f.do(t, "POST", "/chat_tokenize", `{"model":"tgi","messages":[{"role":"user","content":"Hi"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("chat_tokenize: status %d: %s", resp.StatusCode, b)
	}
	s.check(t, "ChatTokenizeResponse", b)
	var chat struct {
		TemplatedText    string        `json:"templated_text"`
		TokenizeResponse []simpleToken `json:"tokenize_response"`
	}
	if err := json.Unmarshal(b, &chat); err != nil {
		t.Fatal(err)
	}
	const templated = "<s><|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
	if chat.TemplatedText != templated {
		t.Errorf("templated_text %q, want %q", chat.TemplatedText, templated)
	}
	var ids []int
	var spanned strings.Builder
	for _, tok := range chat.TokenizeResponse {
		ids = append(ids, tok.ID)
		spanned.WriteString(templated[tok.Start:tok.Stop])
	}
	// The same tokens as the chat route's prompt, one BOS, spans covering
	// the text.
	f.do(t, "POST", "/v1/chat/completions", `{"model":"`+testModel+`","messages":[{"role":"user","content":"Hi"}],"max_tokens":1}`)
	if want := f.gen.Requests()[0].Prompt; !slices.Equal(ids, want) || spanned.String() != templated {
		t.Errorf("chat tokens %v spanning %q, want %v spanning the templated text", ids, spanned.String(), want)
	}
	resp, b = f.do(t, "POST", "/chat_tokenize", `{"messages":[]}`)
	if resp.StatusCode != 422 {
		t.Errorf("no messages: status %d: %s", resp.StatusCode, b)
	}
	s.check(t, "ErrorResponse", b)
}

// TestInvocations checks SageMaker's route: each kind of request is
// answered as its own route answers it.
func TestInvocations(t *testing.T) {
	s := loadSpec(t, "tgi-openapi.json")
	f := newFixture(t, api.Config{}, nil)
	for _, tc := range []struct {
		name, body, schema string
	}{
		{"chat", `{"model":"` + testModel + `","messages":[{"role":"user","content":"Hi"}],"max_tokens":2}`, "ChatCompletion"},
		{"completion", `{"model":"` + testModel + `","prompt":"Hi","max_tokens":2}`, "CompletionFinal"},
		{"tgi", `{"inputs":"Hi","parameters":{"max_new_tokens":2}}`, "GenerateResponse"},
	} {
		resp, b := f.do(t, "POST", "/invocations", tc.body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", tc.name, resp.StatusCode, b)
		}
		if tc.schema == "GenerateResponse" { // the compat route answers an array of one
			var arr []json.RawMessage
			if err := json.Unmarshal(b, &arr); err != nil || len(arr) != 1 {
				t.Fatalf("%s: %s", tc.name, b)
			}
			b = arr[0]
		}
		s.check(t, tc.schema, b)
		if !strings.Contains(string(b), `"He`) {
			t.Errorf("%s: no reply in %s", tc.name, b)
		}
	}
	resp, b := f.do(t, "POST", "/invocations", `{"inputs":"Hi","stream":true,"parameters":{"max_new_tokens":2}}`)
	if ev := sseData(t, b); resp.StatusCode != 200 || len(ev) != 2 {
		t.Errorf("streamed: status %d, events %q", resp.StatusCode, ev)
	}
	// Errors have TGI's shape, whichever kind of request failed.
	for _, body := range []string{`[1,2]`, `{"inputs":""}`, `{"messages":[]}`, `{"model":"` + testModel + `","prompt":"Hi","n":17}`} {
		resp, b := f.do(t, "POST", "/invocations", body)
		if resp.StatusCode != 422 {
			t.Errorf("%s: status %d: %s", body, resp.StatusCode, b)
		}
		s.check(t, "ErrorResponse", b)
	}
}

// TestResponseFormat: json_object asks the Generator for a JSON reply,
// text and no response_format do not; json_schema (and TGI's grammar)
// hands the Generator the compiled schema.
func TestResponseFormat(t *testing.T) {
	f := newFixture(t, api.Config{}, nil)
	for i, rf := range []string{`{"type":"json_object"}`, `{"type":"text"}`, `null`} {
		resp, b := f.do(t, "POST", "/v1/chat/completions", `{"model":"`+testModel+`","messages":[{"role":"user","content":"Hi"}],"max_tokens":2,"response_format":`+rf+`}`)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", rf, resp.StatusCode, b)
		}
		if got, want := f.gen.Requests()[i].JSON, i == 0; got != want {
			t.Errorf("response_format %s: Request.JSON %v, want %v", rf, got, want)
		}
	}
	const schema = `{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}`
	const extended = `{"$defs":{"Base":` + schema + `},"allOf":[{"$ref":"#/$defs/Base"},{"properties":{"b":{"type":"string"}}}]}`
	for _, tc := range []struct{ path, body, want string }{
		{"/v1/chat/completions", `{"model":"` + testModel + `","messages":[{"role":"user","content":"Hi"}],"max_tokens":2,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":` + schema + `}}}`, `{"a":integer}`},
		{"/generate", `{"inputs":"Hi","parameters":{"max_new_tokens":2,"grammar":{"type":"json","value":` + schema + `}}}`, `{"a":integer}`},
		{"/generate", `{"inputs":"Hi","parameters":{"max_new_tokens":2,"grammar":{"type":"json","value":` + strconv.Quote(schema) + `}}}`, `{"a":integer}`},
		{"/generate", `{"inputs":"Hi","parameters":{"max_new_tokens":2,"grammar":{"type":"json_schema","value":{"name":"x","schema":` + schema + `}}}}`, `{"a":integer}`},
		{"/generate", `{"inputs":"Hi","parameters":{"max_new_tokens":2,"grammar":{"type":"regex","value":"\\d{3}-[a-z]+"}}}`, `\d{3}-[a-z]+`},
		{"/generate", `{"inputs":"Hi","parameters":{"max_new_tokens":2,"grammar":{"type":"json","value":{"type":"object","properties":{"price":{"type":"number","multipleOf":0.01},"n":{"type":"integer","multipleOf":5}}}}}}`, `{"price"?:number*1e-2,"n"?:integer*5}`},
		// A model extending another, as OpenAPI documents write it.
		{"/v1/chat/completions", `{"model":"` + testModel + `","messages":[{"role":"user","content":"Hi"}],"max_tokens":2,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":` + extended + `}}}`, `{"a":integer,"b"?:string}`},
	} {
		resp, b := f.do(t, "POST", tc.path, tc.body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", tc.body, resp.StatusCode, b)
		}
		reqs := f.gen.Requests()
		if got, ok := reqs[len(reqs)-1].Grammar.(fmt.Stringer); !ok || got.String() != tc.want {
			t.Errorf("%s: grammar %v", tc.body, got)
		}
	}
	// No grammar is nil, not a nil schema in the interface.
	if resp, b := f.do(t, "POST", "/v1/chat/completions", `{"model":"`+testModel+`","messages":[{"role":"user","content":"Hi"}],"max_tokens":2}`); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if reqs := f.gen.Requests(); reqs[len(reqs)-1].Grammar != nil {
		t.Errorf("a chat without response_format has a grammar")
	}
}

// TestLogitBias: logit_bias reaches the Generator's sampling parameters,
// on both OpenAI routes.
func TestLogitBias(t *testing.T) {
	f := newFixture(t, api.Config{}, nil)
	for i, path := range []string{"/v1/chat/completions", "/v1/completions"} {
		body := `{"model":"` + testModel + `","messages":[{"role":"user","content":"Hi"}],"prompt":"Hi","max_tokens":2,"logit_bias":{"72":-100,"101":2.5}}`
		if resp, b := f.do(t, "POST", path, body); resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", path, resp.StatusCode, b)
		}
		if got := f.gen.Requests()[i].Sampling.LogitBias; len(got) != 2 || got[72] != -100 || got[101] != 2.5 {
			t.Errorf("%s: LogitBias %v", path, got)
		}
	}
}

// TestChoices: n choices on both OpenAI routes, whole and streamed: each
// has its index and the whole reply, the usage counts the prompt once and
// every choice's tokens, choice i samples with the request's seed plus i,
// and the responses match OpenAI's schemas.
func TestChoices(t *testing.T) {
	s := loadSpec(t, "openai-openapi.json")
	f := newFixture(t, api.Config{}, nil)
	const n = 3
	for _, tc := range []struct {
		path, body, schema, chunkSchema string
	}{
		{"/v1/chat/completions", `"messages":[{"role":"user","content":"Hi"}]`, "CreateChatCompletionResponse", "CreateChatCompletionStreamResponse"},
		{"/v1/completions", `"prompt":"Hi"`, "CreateCompletionResponse", ""}, // OpenAI's document has no schema for its stream
	} {
		for _, stream := range []bool{false, true} {
			before := len(f.gen.Requests())
			body := fmt.Sprintf(`{"model":%q,%s,"n":%d,"max_tokens":40,"temperature":1,"seed":7,"stream":%v,"stream_options":%s}`,
				testModel, tc.body, n, stream, map[bool]string{true: `{"include_usage":true}`, false: "null"}[stream])
			resp, b := f.do(t, "POST", tc.path, body)
			if resp.StatusCode != 200 {
				t.Fatalf("%s stream %v: status %d: %s", tc.path, stream, resp.StatusCode, b)
			}
			texts := make([]strings.Builder, n)
			finishes := make([]int, n)
			var usage struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
			}
			docs := [][]byte{b}
			if stream {
				docs = nil
				for _, e := range sseData(t, b) {
					if e != "[DONE]" {
						docs = append(docs, []byte(e))
					}
				}
			}
			for _, d := range docs {
				if stream {
					if tc.chunkSchema != "" {
						s.check(t, tc.chunkSchema, d)
					}
				} else {
					s.check(t, tc.schema, d)
				}
				var doc struct {
					Choices []struct {
						Index        int     `json:"index"`
						Text         string  `json:"text"`
						FinishReason *string `json:"finish_reason"`
						Message      struct{ Content string }
						Delta        struct{ Content string }
					} `json:"choices"`
					Usage *struct {
						PromptTokens     int `json:"prompt_tokens"`
						CompletionTokens int `json:"completion_tokens"`
					} `json:"usage"`
				}
				if err := json.Unmarshal(d, &doc); err != nil {
					t.Fatal(err)
				}
				for _, c := range doc.Choices {
					texts[c.Index].WriteString(c.Text + c.Message.Content + c.Delta.Content)
					if c.FinishReason != nil {
						finishes[c.Index]++
					}
				}
				if doc.Usage != nil {
					usage.PromptTokens, usage.CompletionTokens = doc.Usage.PromptTokens, doc.Usage.CompletionTokens
				}
			}
			for i := range n {
				if texts[i].String() != testReply || finishes[i] != 1 {
					t.Errorf("%s stream %v: choice %d: %q, %d finish reasons", tc.path, stream, i, texts[i].String(), finishes[i])
				}
			}
			reqs := f.gen.Requests()[before:]
			if len(reqs) != n || usage.PromptTokens != len(reqs[0].Prompt) || usage.CompletionTokens != n*(len(testReply)+1) {
				t.Errorf("%s stream %v: %d generations, usage %+v", tc.path, stream, len(reqs), usage)
			}
			seeds := map[uint64]bool{}
			for _, r := range reqs {
				seeds[r.Sampling.Seed] = true
			}
			if !seeds[7] || !seeds[8] || !seeds[9] {
				t.Errorf("%s stream %v: seeds %v, want 7, 8 and 9", tc.path, stream, seeds)
			}
		}
	}
}

// TestTGIBestOf: best_of sampled sequences, the one returned and the
// others in best_of_sequences, each with its seed, as TGI's schema has
// them; best_of's conditions are TGI's 422s.
func TestTGIBestOf(t *testing.T) {
	s := loadSpec(t, "tgi-openapi.json")
	f := newFixture(t, api.Config{}, nil)
	resp, b := f.do(t, "POST", "/generate", `{"inputs":"Hi","parameters":{"best_of":3,"do_sample":true,"max_new_tokens":4,"details":true}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	s.check(t, "GenerateResponse", b)
	var out struct {
		GeneratedText string `json:"generated_text"`
		Details       struct {
			Seed            uint64 `json:"seed"`
			BestOfSequences []struct {
				GeneratedText string `json:"generated_text"`
				Seed          uint64 `json:"seed"`
			} `json:"best_of_sequences"`
		} `json:"details"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	seeds := map[uint64]bool{out.Details.Seed: true}
	for _, o := range out.Details.BestOfSequences {
		seeds[o.Seed] = true
		if o.GeneratedText != "Hell" {
			t.Errorf("another sequence: %q", o.GeneratedText)
		}
	}
	if out.GeneratedText != "Hell" || len(out.Details.BestOfSequences) != 2 || len(seeds) != 3 {
		t.Errorf("response %s: want 3 sequences with 3 seeds", b)
	}
	reqs := f.gen.Requests()
	for _, r := range reqs {
		if !seeds[r.Sampling.Seed] {
			t.Errorf("a sequence sampled with seed %d, not reported", r.Sampling.Seed)
		}
	}
	for _, tc := range []struct{ path, body, want string }{
		{"/generate", `{"inputs":"Hi","parameters":{"best_of":2}}`, "sampling"},
		{"/generate", `{"inputs":"Hi","parameters":{"best_of":2,"do_sample":true,"seed":1}}`, "seed"},
		{"/generate_stream", `{"inputs":"Hi","parameters":{"best_of":2,"do_sample":true}}`, "not allowed"},
		{"/", `{"inputs":"Hi","stream":true,"parameters":{"best_of":2,"do_sample":true}}`, "not allowed"},
		{"/generate", `{"inputs":"Hi","parameters":{"best_of":17,"do_sample":true}}`, "Given: 17"},
		{"/generate", `{"inputs":"Hi","parameters":{"best_of":0}}`, "positive"},
	} {
		resp, b := f.do(t, "POST", tc.path, tc.body)
		if resp.StatusCode != 422 || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s %s: status %d: %s; want 422 about %q", tc.path, tc.body, resp.StatusCode, b, tc.want)
		}
		s.check(t, "ErrorResponse", b)
	}
}

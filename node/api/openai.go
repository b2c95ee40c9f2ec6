package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-llm/strata/pipeline/sample"
	"github.com/strata-llm/strata/pipeline/tokenizer"
)

// This file serves OpenAI's /v1/chat/completions and /v1/completions: the
// wire structs of its OpenAPI document, pure translations from them to a
// job, and the writers of their responses and streams.

// chatRequest is OpenAI's CreateChatCompletionRequest, the fields this
// server reads. Unknown fields are ignored; fields it cannot honour are
// refused with a 400 rather than silently dropped.
type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stream              bool            `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
	Stop                stopList        `json:"stop"`
	N                   *int            `json:"n"`
	Logprobs            *bool           `json:"logprobs"`
	TopLogprobs         *int            `json:"top_logprobs"`
	Tools               json.RawMessage `json:"tools"`
	Functions           json.RawMessage `json:"functions"`
	FunctionCall        json.RawMessage `json:"function_call"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls"`
	ToolPrompt          string          `json:"tool_prompt"` // TGI's: the text before the tools' description
	ResponseFormat      *responseFormat `json:"response_format"`
	LogitBias           map[string]any  `json:"logit_bias"`
	Audio               json.RawMessage `json:"audio"`
	Prediction          json.RawMessage `json:"prediction"`
	Modalities          []string        `json:"modalities"`
	samplingFields
	guidedFields
}

// samplingFields are the sampling parameters common to both routes: OpenAI's,
// and the top_k, min_p and repetition_penalty extensions of llama.cpp's and
// vLLM's servers.
type samplingFields struct {
	Temperature       *float64 `json:"temperature"`
	TopP              *float64 `json:"top_p"`
	PresencePenalty   *float64 `json:"presence_penalty"`
	FrequencyPenalty  *float64 `json:"frequency_penalty"`
	Seed              *int64   `json:"seed"`
	TopK              *int     `json:"top_k"`
	MinP              *float64 `json:"min_p"`
	RepetitionPenalty *float64 `json:"repetition_penalty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type responseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name   string          `json:"name"`
		Schema json.RawMessage `json:"schema"`
	} `json:"json_schema"`
}

// chatMessage is one message of a chat request.
type chatMessage struct {
	Role       string          `json:"role"`
	Content    messageContent  `json:"content"`
	Name       string          `json:"name"`
	ToolCalls  json.RawMessage `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
}

// messageContent is a message's content: a string, null, or an array of
// content parts of which only text parts are supported (joined with "\n").
type messageContent struct {
	text string
	set  bool // not absent nor null
}

func (c *messageContent) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		return nil
	case len(b) > 0 && b[0] == '"':
		c.set = true
		return json.Unmarshal(b, &c.text)
	case len(b) > 0 && b[0] == '[':
		var parts []struct {
			Type string  `json:"type"`
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(b, &parts); err != nil {
			return &fieldError{"messages.content", "content parts must be objects like {\"type\": \"text\", \"text\": \"...\"}"}
		}
		var texts []string
		for _, p := range parts {
			if p.Type != "text" || p.Text == nil {
				return &fieldError{"messages.content", fmt.Sprintf("content part of type %q is not supported; only text parts are", p.Type)}
			}
			texts = append(texts, *p.Text)
		}
		c.text, c.set = strings.Join(texts, "\n"), true
		return nil
	}
	return &fieldError{"messages.content", "expected a string or an array of content parts"}
}

// stopList is OpenAI's stop: null, a string, or an array of strings.
type stopList []string

func (s *stopList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		*s = nil
		return nil
	case len(b) > 0 && b[0] == '"':
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = stopList{one}
		return nil
	case len(b) > 0 && b[0] == '[':
		var many []string
		if err := json.Unmarshal(b, &many); err != nil {
			return &fieldError{"stop", "expected a string or an array of strings"}
		}
		*s = many
		return nil
	}
	return &fieldError{"stop", "expected a string or an array of strings"}
}

// completionRequest is OpenAI's CreateCompletionRequest.
type completionRequest struct {
	Model         string         `json:"model"`
	Prompt        promptField    `json:"prompt"`
	MaxTokens     *int           `json:"max_tokens"`
	Stream        bool           `json:"stream"`
	StreamOptions *streamOptions `json:"stream_options"`
	Stop          stopList       `json:"stop"`
	N             *int           `json:"n"`
	BestOf        *int           `json:"best_of"`
	Logprobs      *int           `json:"logprobs"`
	Echo          bool           `json:"echo"`
	Suffix        *string        `json:"suffix"`
	LogitBias     map[string]any `json:"logit_bias"`
	User          string         `json:"user"`
	samplingFields
	guidedFields
}

// promptField is a completion prompt: a string, or an array holding one
// string, or an array of token ids, or an array holding one such array.
type promptField struct {
	text   string
	tokens []int
	isIDs  bool
	set    bool
}

func (p *promptField) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	bad := &fieldError{"prompt", "expected a string, an array of one string, or an array of token ids"}
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		p.text, p.set = s, true
		return nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return bad
	}
	if len(raw) == 0 {
		p.isIDs, p.set = true, true // no tokens: refused as an empty prompt
		return nil
	}
	var ids []int
	if err := json.Unmarshal(b, &ids); err == nil {
		p.tokens, p.isIDs, p.set = ids, true, true
		return nil
	}
	if len(raw) > 1 {
		return &fieldError{"prompt", "only one prompt per request is supported"}
	}
	if err := json.Unmarshal(raw[0], &s); err == nil {
		p.text, p.set = s, true
		return nil
	}
	if err := json.Unmarshal(raw[0], &ids); err == nil {
		p.tokens, p.isIDs, p.set = ids, true, true
		return nil
	}
	return bad
}

// sampling translates the sampling fields, with OpenAI's defaults
// (temperature 1, top_p 1: plain sampling from the model's distribution),
// into the sampler's parameters.
func (f *samplingFields) sampling() (sample.Params, *apiError) {
	p := sample.Params{Temperature: 1, TopP: 1}
	num := func(v *float64, name string, lo, hi float64) (float32, *apiError) {
		if v == nil {
			return 0, nil
		}
		if math.IsNaN(*v) || *v < lo || *v > hi {
			return 0, badRequest(name, "invalid value for '%s': %g; it must be between %g and %g", name, *v, lo, hi)
		}
		return float32(*v), nil
	}
	var err *apiError
	if f.Temperature != nil {
		if p.Temperature, err = num(f.Temperature, "temperature", 0, 2); err != nil {
			return p, err
		}
	}
	if f.TopP != nil {
		if p.TopP, err = num(f.TopP, "top_p", 0, 1); err != nil {
			return p, err
		}
	}
	if p.PresencePenalty, err = num(f.PresencePenalty, "presence_penalty", -2, 2); err != nil {
		return p, err
	}
	if p.FrequencyPenalty, err = num(f.FrequencyPenalty, "frequency_penalty", -2, 2); err != nil {
		return p, err
	}
	if p.MinP, err = num(f.MinP, "min_p", 0, 1); err != nil {
		return p, err
	}
	if f.RepetitionPenalty != nil {
		if p.RepeatPenalty, err = num(f.RepetitionPenalty, "repetition_penalty", math.SmallestNonzeroFloat32, 10); err != nil {
			return p, err
		}
	}
	if f.TopK != nil {
		if *f.TopK < 0 {
			return p, badRequest("top_k", "invalid value for 'top_k': %d; it must be 0 (off) or more", *f.TopK)
		}
		p.TopK = *f.TopK
	}
	if f.Seed != nil {
		p.Seed = uint64(*f.Seed)
	} else {
		p.Seed = mrand.Uint64()
	}
	if verr := p.Validate(); verr != nil {
		return p, badRequest("", "%v", verr)
	}
	return p, nil
}

// checkModel refuses a request for another model than the one served.
func (s *Server) checkModel(name string, info ModelInfo) *apiError {
	served := s.modelName(info)
	switch name {
	case "":
		return badRequest("model", "you must provide a model parameter; this server serves '%s'", served)
	case served:
		return nil
	}
	return &apiError{status: http.StatusNotFound, param: "model", code: "model_not_found",
		message: fmtf("the model '%s' does not exist; this server serves '%s'", name, served)}
}

// maxChoices bounds n, the choices of one request.
const maxChoices = 16

// choices is a request's n, 1 by default.
func choices(n *int) int {
	if n == nil {
		return 1
	}
	return *n
}

// generateChoices generates n choices of j at once (see generate): choice i
// samples with j's seed plus i, and write gets each step with its choice's
// index, from n goroutines when n > 1. The first choice to fail cancels
// the others, and its error is returned.
func (s *Server) generateChoices(ctx context.Context, j *job, n int, write func(i int, st step) error) ([]outcome, error) {
	outs := make([]outcome, n)
	if n == 1 {
		var err error
		outs[0], err = s.generate(ctx, j, func(st step) error { return write(0, st) })
		return outs, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		c := *j
		c.req.Sampling.Seed += uint64(i)
		wg.Go(func() {
			outs[i], errs[i] = s.generate(ctx, &c, func(st step) error { return write(i, st) })
			if errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	for _, err := range errs { // the cause, rather than the cancellations it caused
		if err != nil && !errors.Is(err, context.Canceled) {
			return outs, err
		}
	}
	return outs, errors.Join(errs...)
}

// checkCommon checks what both routes refuse the same way.
func (s *Server) checkCommon(n *int, stream bool, so *streamOptions, stops stopList) *apiError {
	if n != nil && (*n < 1 || *n > maxChoices) {
		return badRequest("n", "invalid value for 'n': %d; it must be between 1 and %d", *n, maxChoices)
	}
	if so != nil && !stream {
		return badRequest("stream_options", "'stream_options' is only allowed when 'stream' is true")
	}
	if len(stops) > s.cfg.MaxStopSequences {
		return badRequest("stop", "invalid value for 'stop': %d sequences given, at most %d are allowed", len(stops), s.cfg.MaxStopSequences)
	}
	return nil
}

// logitBias reads OpenAI's logit_bias: token ids (as strings) to biases in
// [-100, 100]; nil for none.
func logitBias(raw map[string]any, info ModelInfo) (map[int]float32, *apiError) {
	if len(raw) == 0 {
		return nil, nil
	}
	out := make(map[int]float32, len(raw))
	for k, v := range raw {
		id, err := strconv.Atoi(k)
		if err != nil || id < 0 || id >= info.VocabSize {
			return nil, badRequest("logit_bias", "invalid key %q in 'logit_bias': keys are token ids in [0, %d)", k, info.VocabSize)
		}
		b, ok := v.(float64)
		if !ok || !(b >= -100 && b <= 100) {
			return nil, badRequest("logit_bias", "invalid value for token %d in 'logit_bias': %v; biases are numbers in [-100, 100]", id, v)
		}
		out[id] = float32(b)
	}
	return out, nil
}

// isSet reports whether a raw JSON field holds something other than null
// or an empty array.
func isSet(raw json.RawMessage) bool {
	t := strings.TrimSpace(string(raw))
	return t != "" && t != "null" && t != "[]"
}

// chatJob validates a chat request and builds its job.
func (s *Server) chatJob(req *chatRequest, info ModelInfo) (*job, *apiError) {
	if err := s.checkModel(req.Model, info); err != nil {
		return nil, err
	}
	if err := s.checkCommon(req.N, req.Stream, req.StreamOptions, req.Stop); err != nil {
		return nil, err
	}
	text, tools, aerr := s.chatPrompt(req)
	if aerr != nil {
		return nil, aerr
	}
	switch {
	case tools.calls() && (req.Logprobs != nil && *req.Logprobs):
		return nil, badRequest("logprobs", "'logprobs' together with 'tools' is not supported by this server")
	case tools.required() && req.ResponseFormat != nil && req.ResponseFormat.Type != "" && req.ResponseFormat.Type != "text":
		return nil, badRequest("response_format", "response_format %q and a tool_choice that requires a call cannot both hold", req.ResponseFormat.Type)
	case req.ResponseFormat != nil && !slices.Contains([]string{"", "text", "json_object", "json_schema"}, req.ResponseFormat.Type):
		return nil, badRequest("response_format", "response_format %q is not supported by this server; \"text\", \"json_object\" and \"json_schema\" are", req.ResponseFormat.Type)
	case isSet(req.Audio) || isSet(req.Prediction):
		return nil, badRequest("audio", "audio output and predicted outputs are not supported by this server")
	}
	for _, m := range req.Modalities {
		if m != "text" {
			return nil, badRequest("modalities", "modality %q is not supported by this server; only \"text\" is", m)
		}
	}
	logprobs := req.Logprobs != nil && *req.Logprobs
	top := 0
	if req.TopLogprobs != nil {
		top = *req.TopLogprobs
		switch {
		case top < 0 || top > 20:
			return nil, badRequest("top_logprobs", "invalid value for 'top_logprobs': %d; it must be between 0 and 20", top)
		case top > 0 && !logprobs:
			return nil, badRequest("top_logprobs", "'top_logprobs' requires 'logprobs' to be true")
		}
	}
	p, aerr := req.sampling()
	if aerr != nil {
		return nil, aerr
	}
	if p.LogitBias, aerr = logitBias(req.LogitBias, info); aerr != nil {
		return nil, aerr
	}
	var grammar sample.Grammar // nil, not a nil *JSONSchema
	if rf := req.ResponseFormat; rf != nil && rf.Type == "json_schema" {
		if rf.JSONSchema == nil || !isSet(rf.JSONSchema.Schema) {
			return nil, badRequest("response_format", "response_format json_schema needs json_schema.schema")
		}
		schema, err := sample.CompileJSONSchema(rf.JSONSchema.Schema)
		if err != nil {
			return nil, badRequest("response_format", "%v", err)
		}
		grammar = schema
	}
	if tools.required() {
		schema, aerr := tools.schema()
		if aerr != nil {
			return nil, aerr
		}
		grammar = schema
	}
	guided, aerr := req.guidedFields.grammar()
	switch {
	case aerr != nil:
		return nil, aerr
	case guided != nil && (grammar != nil || req.ResponseFormat != nil && req.ResponseFormat.Type == "json_object"):
		return nil, badRequest("response_format", "a guided_ parameter cannot hold beside a response_format or a tool_choice that requires a call")
	case guided != nil:
		grammar = guided
	}
	if grammar == nil && (req.ResponseFormat == nil || req.ResponseFormat.Type != "json_object") {
		if grammar = tools.lazy(); grammar != nil {
			tools.live = true
		}
	}
	prompt := s.encodePrompt(text)
	requested, param := req.MaxCompletionTokens, "max_completion_tokens"
	if requested == nil {
		requested, param = req.MaxTokens, "max_tokens"
	}
	n, aerr := s.limits(info, len(prompt), requested, 0, param)
	if aerr != nil {
		return nil, aerr
	}
	return &job{
		route: "chat",
		req: Request{ID: "chatcmpl-" + rand.Text(), Prompt: prompt, MaxTokens: n, Sampling: p,
			Logprobs: logprobs, TopLogprobs: top, JSON: req.ResponseFormat != nil && req.ResponseFormat.Type == "json_object", Grammar: grammar},
		stops: req.Stop,
		tools: tools,
	}, nil
}

// chatPrompt renders a chat request's messages, with the tools it offers,
// into the text the model continues (with the opening of a required tool
// call), and returns the tools.
func (s *Server) chatPrompt(req *chatRequest) (string, *toolSet, *apiError) {
	tools, aerr := s.parseTools(req)
	if aerr != nil {
		return "", nil, aerr
	}
	text, aerr := s.chatText(req.Messages, tools)
	if aerr != nil {
		return "", nil, aerr
	}
	return text + tools.prefill(), tools, nil
}

// chatText checks a chat's messages and renders them with the model's chat
// template, ready for the assistant's reply, with the tools offered (nil:
// none).
func (s *Server) chatText(messages []chatMessage, tools *toolSet) (string, *apiError) {
	if len(messages) == 0 {
		return "", badRequest("messages", "'messages' must hold at least one message")
	}
	msgs := make([]tokenizer.ChatMessage, len(messages))
	for i, m := range messages {
		role := m.Role
		switch role {
		case "system", "user", "assistant", "tool":
		case "developer":
			role = "system"
		case "":
			return "", badRequest(fmtf("messages[%d].role", i), "messages[%d] has no role", i)
		default:
			return "", badRequest(fmtf("messages[%d].role", i), "messages[%d] has role %q; expected system, developer, user, assistant or tool", i, m.Role)
		}
		if !m.Content.set && role != "assistant" {
			return "", badRequest(fmtf("messages[%d].content", i), "messages[%d] (%s) has no content", i, m.Role)
		}
		calls, aerr := toolMessages(m.ToolCalls, i)
		if aerr != nil {
			return "", aerr
		}
		if len(calls) > 0 && role != "assistant" {
			return "", badRequest(fmtf("messages[%d].tool_calls", i), "messages[%d] (%s) has tool_calls; only an assistant's may", i, m.Role)
		}
		msgs[i] = tokenizer.ChatMessage{Role: role, Content: m.Content.text, Name: m.Name, ToolCalls: calls, ToolCallID: m.ToolCallID}
	}
	msgs = tools.instruct(msgs)
	text, err := s.tok.ApplyChatTemplate(msgs, tokenizer.ChatOptions{AddGenerationPrompt: true, Vars: tools.vars()})
	if err != nil {
		var te *tokenizer.ChatTemplateError
		if errors.As(err, &te) {
			return "", badRequest("messages", "the model's chat template refused the conversation: %s", te.Message)
		}
		return "", &apiError{status: http.StatusInternalServerError, code: "chat_template_failed",
			message: "applying the model's chat template failed: " + err.Error()}
	}
	return text, nil
}

// completionJob validates a completion request and builds its job; it also
// returns the prompt's text, for echo.
func (s *Server) completionJob(req *completionRequest, info ModelInfo) (*job, string, *apiError) {
	if err := s.checkModel(req.Model, info); err != nil {
		return nil, "", err
	}
	if err := s.checkCommon(req.N, req.Stream, req.StreamOptions, req.Stop); err != nil {
		return nil, "", err
	}
	switch {
	case !req.Prompt.set:
		return nil, "", badRequest("prompt", "you must provide a prompt")
	case req.BestOf != nil && *req.BestOf != 1:
		return nil, "", badRequest("best_of", "invalid value for 'best_of': %d; this server supports only 1", *req.BestOf)
	case req.Suffix != nil && *req.Suffix != "":
		return nil, "", badRequest("suffix", "'suffix' is not supported by this server")
	case req.Logprobs != nil && (*req.Logprobs < 0 || *req.Logprobs > 5):
		return nil, "", badRequest("logprobs", "invalid value for 'logprobs': %d; it must be between 0 and 5", *req.Logprobs)
	case req.Echo && req.Logprobs != nil:
		return nil, "", badRequest("echo", "'echo' together with 'logprobs' is not supported by this server")
	}
	var prompt []int
	text := req.Prompt.text
	if req.Prompt.isIDs {
		for _, id := range req.Prompt.tokens {
			if id < 0 || id >= info.VocabSize {
				return nil, "", badRequest("prompt", "token id %d in 'prompt' is outside the vocabulary [0, %d)", id, info.VocabSize)
			}
		}
		prompt = req.Prompt.tokens
		dec := s.tok.NewDecoder()
		var b strings.Builder
		for _, id := range prompt {
			b.WriteString(dec.Add(id))
		}
		b.WriteString(dec.Flush())
		text = b.String()
	} else {
		prompt = s.tok.Encode(text, true, true)
	}
	p, aerr := req.sampling()
	if aerr != nil {
		return nil, "", aerr
	}
	if p.LogitBias, aerr = logitBias(req.LogitBias, info); aerr != nil {
		return nil, "", aerr
	}
	n, aerr := s.limits(info, len(prompt), req.MaxTokens, 16, "max_tokens")
	if aerr != nil {
		return nil, "", aerr
	}
	grammar, aerr := req.guidedFields.grammar()
	if aerr != nil {
		return nil, "", aerr
	}
	j := &job{
		route: "completion",
		req:   Request{ID: "cmpl-" + rand.Text(), Prompt: prompt, MaxTokens: n, Sampling: p, Grammar: grammar},
		stops: req.Stop,
	}
	if req.Logprobs != nil {
		j.req.Logprobs, j.req.TopLogprobs = true, *req.Logprobs
	}
	return j, text, nil
}

// Response wire structs.

type usage struct {
	PromptTokens        int                 `json:"prompt_tokens"`
	CompletionTokens    int                 `json:"completion_tokens"`
	TotalTokens         int                 `json:"total_tokens"`
	PromptTokensDetails promptTokensDetails `json:"prompt_tokens_details"`
}

type promptTokensDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

// usageOf counts a request's tokens: its prompt once, and every choice's
// completion. The cached prompt tokens are the most any choice took from
// the prefix cache.
func usageOf(j *job, outs []outcome) *usage {
	n, cached := 0, 0
	for _, o := range outs {
		n += len(o.tokens)
		if len(o.tokens) > 0 {
			cached = max(cached, o.tokens[0].Cached)
		}
	}
	return &usage{PromptTokens: len(j.req.Prompt), CompletionTokens: n, TotalTokens: len(j.req.Prompt) + n,
		PromptTokensDetails: promptTokensDetails{CachedTokens: cached}}
}

type chatResponse struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	SystemFingerprint string       `json:"system_fingerprint"`
	Choices           []chatChoice `json:"choices"`
	Usage             *usage       `json:"usage"`
}

type chatChoice struct {
	Index        int             `json:"index"`
	Message      responseMessage `json:"message"`
	Logprobs     *chatLogprobs   `json:"logprobs"`
	FinishReason string          `json:"finish_reason"`
}

type responseMessage struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"`
	Refusal   *string    `json:"refusal"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"`
}

type chatLogprobs struct {
	Content []tokenLogprob `json:"content"`
	Refusal []tokenLogprob `json:"refusal"`
}

type tokenLogprob struct {
	Token       string       `json:"token"`
	Logprob     float64      `json:"logprob"`
	Bytes       []int        `json:"bytes"`
	TopLogprobs []topLogprob `json:"top_logprobs"`
}

type topLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

type chatChunk struct {
	ID                string            `json:"id"`
	Object            string            `json:"object"`
	Created           int64             `json:"created"`
	Model             string            `json:"model"`
	SystemFingerprint string            `json:"system_fingerprint"`
	Choices           []chatChunkChoice `json:"choices"`
	Usage             json.RawMessage   `json:"usage,omitempty"`
}

type chatChunkChoice struct {
	Index        int           `json:"index"`
	Delta        chatDelta     `json:"delta"`
	Logprobs     *chatLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
}

type chatDelta struct {
	Role      string     `json:"role,omitempty"`
	Content   *string    `json:"content,omitempty"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"`
}

type completionResponse struct {
	ID                string             `json:"id"`
	Object            string             `json:"object"`
	Created           int64              `json:"created"`
	Model             string             `json:"model"`
	SystemFingerprint string             `json:"system_fingerprint"`
	Choices           []completionChoice `json:"choices"`
	Usage             json.RawMessage    `json:"usage,omitempty"`
}

type completionChoice struct {
	Text         string              `json:"text"`
	Index        int                 `json:"index"`
	Logprobs     *completionLogprobs `json:"logprobs"`
	FinishReason *string             `json:"finish_reason"`
}

type completionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

// fingerprint is the system_fingerprint of every response: the server
// version and the model, so that clients comparing seeds can tell a change.
func (s *Server) fingerprint() string { return "strata-" + Version }

// tokenString is how a token reads in logprobs: its piece, or the
// vocabulary text of a control token.
func (s *Server) tokenString(id int) (string, []byte) {
	p := s.tok.Piece(id)
	if len(p) == 0 {
		t := s.tok.TokenText(id)
		return t, []byte(t)
	}
	return string(p), p
}

func byteInts(b []byte) []int {
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(c)
	}
	return out
}

// finiteLogprob maps -Inf (a token the model gave no chance) to OpenAI's
// -9999, since JSON has no infinity.
func finiteLogprob(l float32) float64 {
	if math.IsInf(float64(l), -1) || math.IsNaN(float64(l)) {
		return -9999
	}
	return float64(l)
}

func (s *Server) chatLogprob(t *genToken) tokenLogprob {
	text, b := s.tokenString(t.Token)
	out := tokenLogprob{Token: text, Logprob: finiteLogprob(t.Logprob), Bytes: byteInts(b), TopLogprobs: []topLogprob{}}
	for _, c := range t.TopLogprobs {
		ct, cb := s.tokenString(c.ID)
		out.TopLogprobs = append(out.TopLogprobs, topLogprob{Token: ct, Logprob: finiteLogprob(c.Logprob), Bytes: byteInts(cb)})
	}
	return out
}

// logprobBuffer holds the tokens whose text is not visible yet (held back
// for a possible stop string, or mid-character), so that logprobs go out
// with the text they belong to; the tokens of a stop string are dropped
// with it.
type logprobBuffer struct{ pending []*genToken }

// take adds st's token and returns the tokens to report with st's text.
func (b *logprobBuffer) take(st step) []*genToken {
	if st.tok != nil && !st.tok.EOG {
		b.pending = append(b.pending, st.tok)
	}
	if st.visible == "" && !st.last {
		return nil
	}
	out := b.pending
	b.pending = nil
	return out
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	info := s.pipe.Info()
	j, aerr := s.chatJob(&req, info)
	if aerr != nil {
		s.writeError(w, r, aerr)
		return
	}
	j.start = requestStart(r)
	release, aerr := s.admit()
	if aerr != nil {
		s.writeError(w, r, aerr)
		return
	}
	defer release()
	name := s.modelName(info)
	created := time.Now().Unix()
	n := choices(req.N)
	lps := make([]logprobBuffer, n) // per choice
	var mu sync.Mutex               // the choices write at once
	if !req.Stream {
		contents := make([][]tokenLogprob, n)
		outs, err := s.generateChoices(r.Context(), j, n, func(i int, st step) error {
			if j.req.Logprobs {
				for _, t := range lps[i].take(st) {
					contents[i] = append(contents[i], s.chatLogprob(t))
				}
			}
			return nil
		})
		if err != nil {
			s.fail(w, r, j, err, false, nil)
			return
		}
		cs := make([]chatChoice, n)
		for i, out := range outs {
			text := out.text
			cs[i] = chatChoice{Index: i, Message: responseMessage{Role: "assistant", Content: &text}, FinishReason: out.finish.openAI()}
			if content, calls := j.toolCalls(out); len(calls) > 0 {
				cs[i].Message.Content, cs[i].Message.ToolCalls, cs[i].FinishReason = nonEmpty(content), calls, "tool_calls"
			}
			if j.req.Logprobs {
				cs[i].Logprobs = &chatLogprobs{Content: nonNil(contents[i]), Refusal: nil}
			}
		}
		writeJSON(w, http.StatusOK, chatResponse{ID: j.req.ID, Object: "chat.completion", Created: created, Model: name,
			SystemFingerprint: s.fingerprint(), Choices: cs, Usage: usageOf(j, outs)})
		s.logDone(j, outs, http.StatusOK)
		return
	}

	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	sse := newSSE(w, "data: ")
	chunk := func(i int, d chatDelta, lps []tokenLogprob, finish *string) chatChunk {
		c := chatChunk{ID: j.req.ID, Object: "chat.completion.chunk", Created: created, Model: name,
			SystemFingerprint: s.fingerprint(), Choices: []chatChunkChoice{{Index: i, Delta: d, FinishReason: finish}}}
		if j.req.Logprobs && lps != nil {
			c.Choices[0].Logprobs = &chatLogprobs{Content: lps}
		}
		if includeUsage {
			c.Usage = json.RawMessage("null")
		}
		return c
	}
	begun := make([]bool, n)
	// The text each choice holds back while its reply may be tool calls.
	streams := make([]toolStream, n)
	begin := func(i int) error { // under mu
		if !sse.started {
			sse.start()
		}
		if begun[i] {
			return nil
		}
		begun[i] = true
		empty := ""
		return sse.send(chunk(i, chatDelta{Role: "assistant", Content: &empty}, nil, nil))
	}
	outs, err := s.generateChoices(r.Context(), j, n, func(i int, st step) error {
		mu.Lock()
		defer mu.Unlock()
		if err := begin(i); err != nil {
			return err
		}
		var tlps []tokenLogprob
		if j.req.Logprobs {
			for _, t := range lps[i].take(st) {
				tlps = append(tlps, s.chatLogprob(t))
			}
		}
		visible := st.visible
		var live []toolCall
		if j.tools.calls() {
			visible, live = streams[i].add(j.tools, st.visible)
		}
		if visible != "" || tlps != nil {
			if err := sse.send(chunk(i, chatDelta{Content: &visible}, nonNil(tlps), nil)); err != nil {
				return err
			}
		}
		if len(live) > 0 {
			if err := sse.send(chunk(i, chatDelta{ToolCalls: live}, nil, nil)); err != nil {
				return err
			}
		}
		if !st.last {
			return nil
		}
		reason := st.finish.openAI()
		if j.tools.calls() {
			calls, rest, streamed := streams[i].end(j, st.finish)
			if streamed && st.finish != finishLength {
				reason = "tool_calls"
			}
			if len(calls) > 0 {
				reason = "tool_calls"
				if err := sse.send(chunk(i, chatDelta{ToolCalls: calls}, nil, nil)); err != nil {
					return err
				}
			} else if rest != "" {
				if err := sse.send(chunk(i, chatDelta{Content: &rest}, nil, nil)); err != nil {
					return err
				}
			}
		}
		return sse.send(chunk(i, chatDelta{}, nil, &reason))
	})
	if err != nil {
		s.fail(w, r, j, err, sse.started, func(e *apiError) { sse.send(e.openAI()) })
		return
	}
	if includeUsage {
		u, _ := json.Marshal(usageOf(j, outs))
		sse.send(chatChunk{ID: j.req.ID, Object: "chat.completion.chunk", Created: created, Model: name,
			SystemFingerprint: s.fingerprint(), Choices: []chatChunkChoice{}, Usage: u})
	}
	sse.done()
	s.logDone(j, outs, http.StatusOK)
}

func (s *Server) handleCompletion(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	info := s.pipe.Info()
	j, promptText, aerr := s.completionJob(&req, info)
	if aerr != nil {
		s.writeError(w, r, aerr)
		return
	}
	j.start = requestStart(r)
	release, aerr := s.admit()
	if aerr != nil {
		s.writeError(w, r, aerr)
		return
	}
	defer release()
	name := s.modelName(info)
	created := time.Now().Unix()
	prefix := ""
	if req.Echo {
		prefix = promptText
	}
	n := choices(req.N)
	var mu sync.Mutex // the choices write at once
	// logprobs: per choice, the tokens and their offsets in the returned
	// text.
	lps := make([]logprobBuffer, n)
	clps := make([]completionLogprobs, n)
	offsets := make([]int, n)
	for i := range offsets {
		offsets[i] = len(prefix)
	}
	addLogprobs := func(i int, st step) *completionLogprobs {
		if !j.req.Logprobs {
			return nil
		}
		toks := lps[i].take(st)
		if toks == nil {
			return nil
		}
		var part completionLogprobs
		for _, t := range toks {
			text, _ := s.tokenString(t.Token)
			part.Tokens = append(part.Tokens, text)
			part.TokenLogprobs = append(part.TokenLogprobs, finiteLogprob(t.Logprob))
			top := map[string]float64{}
			for _, c := range t.TopLogprobs {
				ct, _ := s.tokenString(c.ID)
				if _, dup := top[ct]; !dup {
					top[ct] = finiteLogprob(c.Logprob)
				}
			}
			part.TopLogprobs = append(part.TopLogprobs, top)
			part.TextOffset = append(part.TextOffset, offsets[i])
			offsets[i] += len(t.text)
		}
		clp := &clps[i]
		clp.Tokens = append(clp.Tokens, part.Tokens...)
		clp.TokenLogprobs = append(clp.TokenLogprobs, part.TokenLogprobs...)
		clp.TopLogprobs = append(clp.TopLogprobs, part.TopLogprobs...)
		clp.TextOffset = append(clp.TextOffset, part.TextOffset...)
		return &part
	}
	if !req.Stream {
		outs, err := s.generateChoices(r.Context(), j, n, func(i int, st step) error { addLogprobs(i, st); return nil })
		if err != nil {
			s.fail(w, r, j, err, false, nil)
			return
		}
		cs := make([]completionChoice, n)
		for i, out := range outs {
			reason := out.finish.openAI()
			cs[i] = completionChoice{Index: i, Text: prefix + out.text, FinishReason: &reason}
			if j.req.Logprobs {
				c := clps[i]
				c.Tokens, c.TokenLogprobs, c.TopLogprobs, c.TextOffset = nonNil(c.Tokens), nonNil(c.TokenLogprobs), nonNil(c.TopLogprobs), nonNil(c.TextOffset)
				cs[i].Logprobs = &c
			}
		}
		u, _ := json.Marshal(usageOf(j, outs))
		writeJSON(w, http.StatusOK, completionResponse{ID: j.req.ID, Object: "text_completion", Created: created, Model: name,
			SystemFingerprint: s.fingerprint(), Choices: cs, Usage: u})
		s.logDone(j, outs, http.StatusOK)
		return
	}

	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	sse := newSSE(w, "data: ")
	chunk := func(i int, text string, lps *completionLogprobs, finish *string) completionResponse {
		c := completionResponse{ID: j.req.ID, Object: "text_completion", Created: created, Model: name,
			SystemFingerprint: s.fingerprint(), Choices: []completionChoice{{Index: i, Text: text, Logprobs: lps, FinishReason: finish}}}
		if includeUsage {
			c.Usage = json.RawMessage("null")
		}
		return c
	}
	begun := make([]bool, n)
	begin := func(i int) error { // under mu
		if !sse.started {
			sse.start()
		}
		if begun[i] {
			return nil
		}
		begun[i] = true
		if prefix != "" {
			return sse.send(chunk(i, prefix, nil, nil))
		}
		return nil
	}
	outs, err := s.generateChoices(r.Context(), j, n, func(i int, st step) error {
		mu.Lock()
		defer mu.Unlock()
		if err := begin(i); err != nil {
			return err
		}
		if lps := addLogprobs(i, st); st.visible != "" || lps != nil {
			if err := sse.send(chunk(i, st.visible, lps, nil)); err != nil {
				return err
			}
		}
		if st.last {
			reason := st.finish.openAI()
			return sse.send(chunk(i, "", nil, &reason))
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, j, err, sse.started, func(e *apiError) { sse.send(e.openAI()) })
		return
	}
	if includeUsage {
		u, _ := json.Marshal(usageOf(j, outs))
		sse.send(completionResponse{ID: j.req.ID, Object: "text_completion", Created: created, Model: name,
			SystemFingerprint: s.fingerprint(), Choices: []completionChoice{}, Usage: u})
	}
	sse.done()
	s.logDone(j, outs, http.StatusOK)
}

// fail answers the error that ended a generation: in the response's status
// when nothing was sent yet, else as an event of the stream (sendEvent),
// which then ends without its terminator so that clients see it broke off.
// A client that went away is answered nothing.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, j *job, err error, streaming bool, sendEvent func(*apiError)) {
	e := s.generatorError(err)
	if r.Context().Err() != nil {
		s.log.Info("api: client went away", "request_id", j.req.ID, "route", j.route)
		if !streaming {
			w.WriteHeader(499) // for the metrics; nobody reads it
		}
		return
	}
	if e.status >= 500 {
		s.log.Warn("api: generation failed", "request_id", j.req.ID, "route", j.route, "err", err)
	}
	if streaming {
		sendEvent(e)
		return
	}
	if strings.HasPrefix(j.route, "tgi") {
		writeTGIError(w, e)
		return
	}
	s.writeError(w, r, e)
}

// tgiErrorsKey marks, in a request's context, an OpenAI request that came
// through /invocations, whose errors have TGI's shape.
type tgiErrorsKey struct{}

// writeError answers an OpenAI route's error in OpenAI's shape, or in
// TGI's (validation errors as 422) when the request came through
// /invocations.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	if r.Context().Value(tgiErrorsKey{}) == nil {
		writeOpenAIError(w, e)
		return
	}
	if e.status == http.StatusBadRequest {
		e.status = http.StatusUnprocessableEntity
	}
	writeTGIError(w, e)
}

func (s *Server) logDone(j *job, outs []outcome, status int) {
	u := usageOf(j, outs)
	s.log.Info("api: request done", "request_id", j.req.ID, "route", j.route, "status", status,
		"prompt_tokens", u.PromptTokens, "cached_tokens", u.PromptTokensDetails.CachedTokens, "completion_tokens", u.CompletionTokens, "choices", len(outs),
		"finish", outs[0].finish.openAI(), "duration", time.Since(j.start).Round(time.Millisecond))
}

// nonNil returns s, or an empty slice for nil, so that JSON says [] not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

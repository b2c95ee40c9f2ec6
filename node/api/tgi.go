package api

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/http"

	"github.com/strata-llm/strata/pipeline/sample"
)

// This file serves Hugging Face text-generation-inference's routes:
// /generate, /generate_stream and the compat route /, with the schemas of
// TGI's OpenAPI document (GenerateRequest, GenerateResponse,
// StreamResponse, ErrorResponse). Validation errors are 422, as TGI
// answers them.

// maxTopNTokens bounds top_n_tokens, as TGI's default does.
const maxTopNTokens = 5

// tgiRequest is TGI's GenerateRequest, with CompatGenerateRequest's stream.
type tgiRequest struct {
	Inputs     *string        `json:"inputs"`
	Parameters *tgiParameters `json:"parameters"`
	Stream     bool           `json:"stream"`
}

// tgiParameters is TGI's GenerateParameters.
type tgiParameters struct {
	AdapterID           *string         `json:"adapter_id"`
	BestOf              *int            `json:"best_of"`
	DecoderInputDetails bool            `json:"decoder_input_details"`
	Details             *bool           `json:"details"`
	DoSample            bool            `json:"do_sample"`
	FrequencyPenalty    *float64        `json:"frequency_penalty"`
	Grammar             json.RawMessage `json:"grammar"`
	MaxNewTokens        *int            `json:"max_new_tokens"`
	RepetitionPenalty   *float64        `json:"repetition_penalty"`
	ReturnFullText      *bool           `json:"return_full_text"`
	Seed                *uint64         `json:"seed"`
	Stop                []string        `json:"stop"`
	Temperature         *float64        `json:"temperature"`
	TopK                *int            `json:"top_k"`
	TopNTokens          *int            `json:"top_n_tokens"`
	TopP                *float64        `json:"top_p"`
	Truncate            *int            `json:"truncate"`
	TypicalP            *float64        `json:"typical_p"`
	Watermark           bool            `json:"watermark"`
}

type tgiToken struct {
	ID      int      `json:"id"`
	Text    string   `json:"text"`
	Logprob *float64 `json:"logprob"`
	Special bool     `json:"special"`
}

type tgiPrefillToken struct {
	ID      int      `json:"id"`
	Text    string   `json:"text"`
	Logprob *float64 `json:"logprob"`
}

// tgiSequence is what TGI's Details and BestOfSequence both report of a
// generated sequence.
type tgiSequence struct {
	FinishReason    string            `json:"finish_reason"`
	GeneratedTokens int               `json:"generated_tokens"`
	Seed            *uint64           `json:"seed"`
	Prefill         []tgiPrefillToken `json:"prefill"`
	Tokens          []tgiToken        `json:"tokens"`
	TopTokens       [][]tgiToken      `json:"top_tokens,omitempty"`
}

type tgiDetails struct {
	tgiSequence
	// BestOfSequences are the sequences best_of generated besides the
	// one returned.
	BestOfSequences []tgiBestOfSequence `json:"best_of_sequences,omitempty"`
}

// tgiBestOfSequence is TGI's BestOfSequence.
type tgiBestOfSequence struct {
	GeneratedText string `json:"generated_text"`
	tgiSequence
}

// bestOf is the index of the outcome whose tokens have the highest total
// log-probability, the first of equals.
func bestOf(outs []outcome) int {
	best, bestLP := 0, math.Inf(-1)
	for i, o := range outs {
		lp := 0.0
		for _, t := range o.tokens {
			lp += float64(t.Logprob)
		}
		if lp > bestLP || i == 0 {
			best, bestLP = i, lp
		}
	}
	return best
}

type tgiGenerateResponse struct {
	GeneratedText string      `json:"generated_text"`
	Details       *tgiDetails `json:"details,omitempty"`
}

type tgiStreamDetails struct {
	FinishReason    string  `json:"finish_reason"`
	GeneratedTokens int     `json:"generated_tokens"`
	InputLength     int     `json:"input_length"`
	Seed            *uint64 `json:"seed"`
}

type tgiStreamResponse struct {
	Index         int               `json:"index"`
	Token         tgiToken          `json:"token"`
	TopTokens     []tgiToken        `json:"top_tokens,omitempty"`
	GeneratedText *string           `json:"generated_text"`
	Details       *tgiStreamDetails `json:"details"`
}

// tgiOptions are the parts of a TGI request that shape the response.
type tgiOptions struct {
	inputs         string
	details        bool
	prefill        bool
	returnFullText bool
	seed           *uint64 // reported: set when sampling
	bestOf         int     // sequences to generate, the best returned
}

// tgiJob validates a TGI request, streamed or not, and builds its job.
func (s *Server) tgiJob(req *tgiRequest, info ModelInfo, stream bool) (*job, *tgiOptions, *apiError) {
	invalid := func(param, format string, args ...any) (*job, *tgiOptions, *apiError) {
		e := badRequest(param, format, args...)
		e.status = http.StatusUnprocessableEntity
		return nil, nil, e
	}
	if req.Inputs == nil || *req.Inputs == "" {
		return invalid("inputs", "`inputs` cannot be empty")
	}
	p := req.Parameters
	if p == nil {
		p = &tgiParameters{}
	}
	switch {
	case p.BestOf != nil && *p.BestOf < 1:
		return invalid("best_of", "`best_of` must be strictly positive")
	case p.BestOf != nil && *p.BestOf > maxChoices:
		return invalid("best_of", "`best_of` must be <= %d. Given: %d", maxChoices, *p.BestOf)
	case p.TypicalP != nil && *p.TypicalP < 1:
		return invalid("typical_p", "`typical_p` is not supported by this server")
	case p.Watermark:
		return invalid("watermark", "`watermark` is not supported by this server")
	case p.AdapterID != nil && *p.AdapterID != "":
		return invalid("adapter_id", "`adapter_id` is not supported by this server")
	case len(p.Stop) > s.cfg.MaxStopSequences:
		return invalid("stop", "`stop` supports up to %d stop sequences. Given: %d", s.cfg.MaxStopSequences, len(p.Stop))
	case p.TopNTokens != nil && (*p.TopNTokens < 0 || *p.TopNTokens > maxTopNTokens):
		return invalid("top_n_tokens", "`top_n_tokens` must be between 0 and %d. Given: %d", maxTopNTokens, *p.TopNTokens)
	case p.Truncate != nil && *p.Truncate < 1:
		return invalid("truncate", "`truncate` must be strictly positive. Given: %d", *p.Truncate)
	}

	// Sampling: greedy unless do_sample or a sampling parameter is set, as
	// TGI decides; repetition and frequency penalties apply either way.
	sp := sample.Params{}
	sampling := p.DoSample || p.Temperature != nil || p.TopK != nil || p.TopP != nil
	if sampling {
		sp.Temperature = 1
	}
	if v := p.Temperature; v != nil {
		if !(*v > 0) || math.IsInf(*v, 1) {
			return invalid("temperature", "`temperature` must be strictly positive")
		}
		sp.Temperature = float32(*v)
	}
	if v := p.TopP; v != nil {
		if !(*v > 0 && *v <= 1) {
			return invalid("top_p", "`top_p` must be > 0.0 and <= 1.0")
		}
		sp.TopP = float32(*v)
	}
	if v := p.TopK; v != nil {
		if *v <= 0 {
			return invalid("top_k", "`top_k` must be strictly positive")
		}
		sp.TopK = *v
	}
	if v := p.RepetitionPenalty; v != nil {
		if !(*v > 0) || math.IsInf(*v, 1) {
			return invalid("repetition_penalty", "`repetition_penalty` must be strictly positive")
		}
		sp.RepeatPenalty = float32(*v)
	}
	if v := p.FrequencyPenalty; v != nil {
		if !(*v >= -2 && *v <= 2) {
			return invalid("frequency_penalty", "`frequency_penalty` must be >= -2.0 and <= 2.0")
		}
		sp.FrequencyPenalty = float32(*v)
	}
	opts := &tgiOptions{inputs: *req.Inputs, details: p.Details == nil || *p.Details, bestOf: 1,
		prefill: p.DecoderInputDetails, returnFullText: p.ReturnFullText != nil && *p.ReturnFullText}
	if p.BestOf != nil && *p.BestOf > 1 { // as TGI checks it
		switch {
		case !sampling:
			return invalid("best_of", "you must use sampling when `best_of` is > 1")
		case p.Seed != nil:
			return invalid("seed", "`seed` must not be set when `best_of` > 1")
		case stream:
			return invalid("best_of", "`best_of` != 1 is not allowed for this endpoint")
		}
		opts.bestOf = *p.BestOf
	}
	if p.Seed != nil {
		sp.Seed = *p.Seed
	} else {
		sp.Seed = mrand.Uint64()
	}
	if sampling {
		seed := sp.Seed
		opts.seed = &seed
	}
	if err := sp.Validate(); err != nil {
		return invalid("", "%v", err)
	}

	var grammar sample.Grammar
	if isSet(p.Grammar) {
		var err error
		if grammar, err = tgiGrammar(p.Grammar); err != nil {
			return invalid("grammar", "%v", err)
		}
	}

	prompt := s.tok.Encode(*req.Inputs, true, true)
	if p.Truncate != nil && *p.Truncate < len(prompt) {
		prompt = prompt[len(prompt)-*p.Truncate:]
	}
	if mp := s.maxPrompt(info); len(prompt) > mp {
		return invalid("inputs", "`inputs` must have less than %d tokens. Given: %d", mp+1, len(prompt))
	}
	// Without max_new_tokens, as many as fit, as TGI does.
	n, aerr := s.limits(info, len(prompt), p.MaxNewTokens, 0, "max_new_tokens")
	if aerr != nil {
		aerr.status = http.StatusUnprocessableEntity
		if p.MaxNewTokens != nil && *p.MaxNewTokens >= 1 && aerr.code == "context_length_exceeded" {
			aerr.message = fmtf("`inputs` tokens + `max_new_tokens` must be <= %d. Given: %d `inputs` tokens and %d `max_new_tokens`",
				info.ContextLength, len(prompt), *p.MaxNewTokens)
		}
		return nil, nil, aerr
	}
	top := 0
	if p.TopNTokens != nil {
		top = *p.TopNTokens
	}
	return &job{
		route:    "tgi",
		req:      Request{ID: "gen-" + rand.Text(), Prompt: prompt, MaxTokens: n, Sampling: sp, Logprobs: true, TopLogprobs: top, Grammar: grammar},
		stops:    p.Stop,
		keepStop: true,
	}, opts, nil
}

// tgiGrammar compiles TGI's grammar parameter: a JSON Schema as "json"
// (the schema, or a string holding it) or as "json_schema" ({"schema":
// ...}), or a regular expression the whole text must match as "regex".
func tgiGrammar(raw json.RawMessage) (sample.Grammar, error) {
	var g struct {
		Type  string          `json:"type"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, fmt.Errorf("`grammar` must be {\"type\": ..., \"value\": ...}: %v", err)
	}
	doc := g.Value
	switch g.Type {
	case "json":
		var text string
		if json.Unmarshal(doc, &text) == nil { // the schema as a string
			doc = json.RawMessage(text)
		}
	case "json_schema":
		var v struct {
			Schema json.RawMessage `json:"schema"`
		}
		if err := json.Unmarshal(doc, &v); err != nil || !isSet(v.Schema) {
			return nil, errors.New("`grammar` json_schema needs value.schema")
		}
		doc = v.Schema
	case "regex":
		var expr string
		if err := json.Unmarshal(doc, &expr); err != nil {
			return nil, errors.New("`grammar` regex needs value: a string")
		}
		return sample.CompileRegex(expr)
	default:
		return nil, fmt.Errorf("`grammar` of type %q is not supported by this server; \"json\", \"json_schema\" and \"regex\" are", g.Type)
	}
	schema, err := sample.CompileJSONSchema(doc)
	if err != nil {
		return nil, err
	}
	return schema, nil
}

// tgiRoute is which of TGI's generation routes is served.
type tgiRoute uint8

const (
	tgiGenerate tgiRoute = iota // POST /generate
	tgiStream                   // POST /generate_stream
	tgiCompat                   // POST /: streams when asked, else an array of one response
)

func (s *Server) handleGenerate(w http.ResponseWriter, r *http.Request) {
	s.serveTGI(w, r, tgiGenerate)
}

func (s *Server) handleGenerateStream(w http.ResponseWriter, r *http.Request) {
	s.serveTGI(w, r, tgiStream)
}

func (s *Server) handleCompat(w http.ResponseWriter, r *http.Request) { s.serveTGI(w, r, tgiCompat) }

// serveTGI serves one of TGI's generation routes.
func (s *Server) serveTGI(w http.ResponseWriter, r *http.Request, route tgiRoute) {
	var req tgiRequest
	if !s.decodeTGI(w, r, &req) {
		return
	}
	stream := route == tgiStream || route == tgiCompat && req.Stream
	info := s.pipe.Info()
	j, opts, aerr := s.tgiJob(&req, info, stream)
	if aerr != nil {
		writeTGIError(w, aerr)
		return
	}
	j.start = requestStart(r)
	release, aerr := s.admit()
	if aerr != nil {
		writeTGIError(w, aerr)
		return
	}
	defer release()

	if !stream {
		outs, err := s.generateChoices(r.Context(), j, opts.bestOf, func(int, step) error { return nil })
		if err != nil {
			s.fail(w, r, j, err, false, nil)
			return
		}
		best := bestOf(outs)
		text := func(out *outcome) string {
			if opts.returnFullText {
				return opts.inputs + out.text
			}
			return out.text
		}
		resp := tgiGenerateResponse{GeneratedText: text(&outs[best])}
		if opts.details {
			resp.Details = s.tgiDetails(j, opts, &outs[best], best)
			for i := range outs {
				if i == best {
					continue
				}
				d := s.tgiDetails(j, opts, &outs[i], i)
				resp.Details.BestOfSequences = append(resp.Details.BestOfSequences, tgiBestOfSequence{GeneratedText: text(&outs[i]), tgiSequence: d.tgiSequence})
			}
		}
		if route == tgiCompat {
			writeJSON(w, http.StatusOK, []tgiGenerateResponse{resp})
		} else {
			writeJSON(w, http.StatusOK, resp)
		}
		s.logDone(j, outs, http.StatusOK)
		return
	}

	sse := newSSE(w, "data:")
	index := 0
	var text []byte
	if opts.returnFullText {
		text = append(text, opts.inputs...)
	}
	out, err := s.generate(r.Context(), j, func(st step) error {
		if !sse.started {
			sse.start()
		}
		text = append(text, st.visible...)
		if st.tok == nil {
			return nil // never for TGI: a Generator stopping early is an error
		}
		index++
		ev := tgiStreamResponse{Index: index, Token: s.tgiToken(st.tok)}
		if j.req.TopLogprobs > 0 {
			ev.TopTokens = s.tgiTopTokens(st.tok)
		}
		if st.last {
			gen := string(text)
			ev.GeneratedText = &gen
			if opts.details {
				ev.Details = &tgiStreamDetails{FinishReason: st.finish.tgi(), GeneratedTokens: index,
					InputLength: len(j.req.Prompt), Seed: opts.seed}
			}
		}
		return sse.send(ev)
	})
	if err != nil {
		s.fail(w, r, j, err, sse.started, func(e *apiError) { sse.send(e.tgi()) })
		return
	}
	s.logDone(j, []outcome{out}, http.StatusOK)
}

// decodeTGI reads a TGI route's JSON body into v, or answers why not (a
// malformed body as 422, as TGI answers it) and returns false.
func (s *Server) decodeTGI(w http.ResponseWriter, r *http.Request, v any) bool {
	aerr := s.decode(w, r, v)
	if aerr == nil {
		return true
	}
	if aerr.status == http.StatusBadRequest {
		aerr.status = http.StatusUnprocessableEntity
	}
	writeTGIError(w, aerr)
	return false
}

// tgiToken is a generated token as TGI reports it: special tokens read as
// their vocabulary text, others as the text they completed.
func (s *Server) tgiToken(t *genToken) tgiToken {
	lp := float64(t.Logprob)
	if math.IsInf(lp, 0) || math.IsNaN(lp) {
		lp = -9999
	}
	out := tgiToken{ID: t.Token, Text: t.text, Logprob: &lp, Special: t.EOG || s.tok.IsSpecial(t.Token)}
	if out.Special {
		out.Text = s.tok.TokenText(t.Token)
	}
	return out
}

func (s *Server) tgiTopTokens(t *genToken) []tgiToken {
	out := make([]tgiToken, 0, len(t.TopLogprobs))
	for _, c := range t.TopLogprobs {
		lp := finiteLogprob(c.Logprob)
		text, _ := s.tokenString(c.ID)
		out = append(out, tgiToken{ID: c.ID, Text: text, Logprob: &lp, Special: s.tok.IsSpecial(c.ID)})
	}
	return out
}

// tgiDetails builds the details of a non-streamed response.
func (s *Server) tgiDetails(j *job, opts *tgiOptions, out *outcome, choice int) *tgiDetails {
	seed := opts.seed
	if seed != nil && choice > 0 { // generateChoices' seed for the choice
		v := *seed + uint64(choice)
		seed = &v
	}
	d := &tgiDetails{tgiSequence: tgiSequence{FinishReason: out.finish.tgi(), GeneratedTokens: len(out.tokens), Seed: seed,
		Prefill: []tgiPrefillToken{}, Tokens: make([]tgiToken, 0, len(out.tokens))}}
	if opts.prefill {
		// Prompt logprobs are not computed: the pipeline returns logits
		// for the last position only. TGI's own first prefill token has a
		// null logprob too.
		for _, id := range j.req.Prompt {
			text, _ := s.tokenString(id)
			d.Prefill = append(d.Prefill, tgiPrefillToken{ID: id, Text: text})
		}
	}
	for i := range out.tokens {
		d.Tokens = append(d.Tokens, s.tgiToken(&out.tokens[i]))
		if j.req.TopLogprobs > 0 {
			d.TopTokens = append(d.TopTokens, s.tgiTopTokens(&out.tokens[i]))
		}
	}
	return d
}

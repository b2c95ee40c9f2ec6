package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-llm/strata/pipeline/sample"
	"github.com/strata-llm/strata/pipeline/tokenizer"
)

// Generator runs one sequence through the model: the seam between the
// HTTP layer and the pipeline driver (continuous batching across the
// stages of a route).
//
// Generate admits req, then calls emit once per generated token, in order,
// from one goroutine at a time, and returns when the sequence is over:
//
//   - after emitting req.MaxTokens tokens, or an end-of-generation token
//     (emitted with Chunk.EOG set, and last), it returns nil; it may also
//     return nil earlier when the model's context is full;
//   - when emit returns an error, it stops the sequence (freeing its KV
//     cache along the route) and returns that error, or one wrapping it;
//   - when ctx ends (the client went away, or the server stopped listening
//     to it), it stops the sequence and returns ctx.Err() or one wrapping it;
//   - when it cannot admit the sequence, it returns before any emit an error
//     wrapping ErrOverloaded (its queue is full), ErrLoading (the model is
//     not ready) or ErrShuttingDown (it stops serving), optionally as a
//     *RetryError carrying a retry hint.
//
// emit never blocks on the network: the server queues chunks for its
// writer, so a slow client never stalls a batch. emit must not be called
// after Generate has returned. Generate is called concurrently, once per
// HTTP request. The Chunk's TopLogprobs slice may be reused by the
// Generator once emit returns.
type Generator interface {
	Generate(ctx context.Context, req *Request, emit func(Chunk) error) error
}

// Request is one sequence to generate, in tokens. The server builds it
// after applying the chat template, tokenizing and validating: Prompt is
// never empty, MaxTokens is at least 1, and len(Prompt)+MaxTokens never
// exceeds the model's context length.
type Request struct {
	// ID identifies the request in logs ("chatcmpl-...", "cmpl-...").
	ID string
	// Prompt is the token ids to prefill. The server owns the slice; the
	// Generator must not modify it.
	Prompt []int
	// MaxTokens is the most tokens to generate, the end-of-generation token
	// included.
	MaxTokens int
	// Sampling configures the sampler; it has passed Params.Validate.
	Sampling sample.Params
	// Logprobs asks for Chunk.Logprob.
	Logprobs bool
	// TopLogprobs asks for that many of the most likely tokens in each
	// Chunk.TopLogprobs (0 to 20), as sample.TopLogprobs ranks them.
	TopLogprobs int
	// JSON asks for a reply that is one JSON object (OpenAI's
	// response_format json_object): the Generator samples under
	// sample.JSON's constraint, and ends the sequence only once the object
	// is whole.
	JSON bool
	// Grammar, when set, asks for a reply the grammar accepts: a JSON
	// schema (OpenAI's response_format json_schema and required tool
	// calls, TGI's json grammar) or a regular expression (TGI's regex
	// grammar). The Generator samples under its Constraint.
	Grammar sample.Grammar
}

// Chunk is one generated token.
type Chunk struct {
	// Token is the sampled token id.
	Token int
	// EOG marks an end-of-generation token (EOS, EOT, <|im_end|>, ...): the
	// last chunk of the sequence. Its text is not part of the reply.
	EOG bool
	// Cached, on a sequence's first chunk, is how many of the prompt's
	// tokens the pipeline took from a cached session instead of computing
	// them (OpenAI's usage.prompt_tokens_details.cached_tokens).
	Cached int
	// Logprob is the log-probability of Token under the model's
	// distribution before sampling filters (the log-softmax of the logits);
	// set when Request.Logprobs.
	Logprob float32
	// TopLogprobs are the most likely tokens at this position, most likely
	// first, when Request.TopLogprobs > 0. The Generator may reuse the
	// slice after emit returns.
	TopLogprobs []sample.Candidate
}

// Pipeline describes the served model and checks that it works. The node
// implements it over the live route; Info and Health may be called
// concurrently and at any time.
type Pipeline interface {
	// Info reports the model and the live pipeline. It is called per
	// request (limits) and per /info, so it must be cheap.
	Info() ModelInfo
	// Health pushes one token through every stage of the pipeline and
	// returns nil when it came back, or why not. The server bounds it with
	// Config.HealthTimeout and never runs two at once.
	Health(ctx context.Context) error
}

// ModelInfo describes the served model.
type ModelInfo struct {
	// Name is the model's ID in the API unless Config.ModelName overrides
	// it (general.name, or the file name).
	Name string
	// Architecture is the architecture name ("llama", "qwen2").
	Architecture string
	// ContextLength is the most tokens a sequence holds, prompt and
	// completion together. It must be positive.
	ContextLength int
	// VocabSize is the number of tokens of the vocabulary.
	VocabSize int
	// Layers is the number of transformer layers.
	Layers int
	// Digest identifies the model's content (a sha256), or "".
	Digest string
	// Stages is the live pipeline: the route the gateway drives, in order.
	Stages []StageInfo
}

// StageInfo is one stage of the live pipeline.
type StageInfo struct {
	// Peer is the libp2p peer ID of the node serving the stage, or "local".
	Peer string `json:"peer"`
	// Addr is where the stage is reached, when known.
	Addr string `json:"addr,omitempty"`
	// Start and End are the layer range [Start, End) the stage holds.
	Start int `json:"start"`
	End   int `json:"end"`
	// State is the stage's state ("serving", "loading", ...), when known.
	State string `json:"state,omitempty"`
}

// Tokenizer is the text side of the model for the HTTP layer: chat
// template, tokenization and detokenization. NewTokenizer adapts
// pipeline/tokenizer's types to it. Its methods are called concurrently.
type Tokenizer interface {
	// Encode returns the ids of text; with addSpecial the vocabulary's BOS
	// (and EOS) are added as the model wants, and with parseSpecial the
	// texts of special tokens ("<|im_start|>") become their ids.
	Encode(text string, addSpecial, parseSpecial bool) []int
	// NewDecoder returns a streaming decoder for generated ids.
	NewDecoder() Decoder
	// Piece returns the bytes token id stands for in generated text (empty
	// for control tokens). The caller must not modify the slice.
	Piece(id int) []byte
	// TokenText returns the vocabulary text of id ("</s>", "▁the").
	TokenText(id int) string
	// IsSpecial reports whether id is a control token, such as BOS or EOS.
	IsSpecial(id int) bool
	// BOS returns the id of the beginning-of-sequence token that Encode
	// adds with addSpecial, or -1 when it adds none. The server drops a
	// second BOS when a chat template wrote one too.
	BOS() int
	// ApplyChatTemplate renders a conversation into prompt text with the
	// model's chat template (opts.Now is left to it). A
	// *tokenizer.ChatTemplateError means the template refused the
	// conversation (the client's fault); other errors mean the template
	// failed.
	ApplyChatTemplate(msgs []tokenizer.ChatMessage, opts tokenizer.ChatOptions) (string, error)
	// ChatTemplateSource returns the chat template's Jinja source, which
	// tells how the model writes tool calls.
	ChatTemplateSource() string
}

// Decoder turns a stream of generated ids into text without splitting a
// UTF-8 character. It belongs to one request.
type Decoder interface {
	// Add returns the text completed by id, possibly "".
	Add(id int) string
	// Flush returns what is held back at the end of the stream.
	Flush() string
}

// ErrOverloaded is wrapped by a Generator's error when its queue is full:
// the server answers 429 Too Many Requests with Retry-After.
var ErrOverloaded = errors.New("overloaded")

// ErrLoading is wrapped by a Generator's error while the model is not
// ready to serve (loading weights, no complete route): the server answers
// 503 Service Unavailable with Retry-After.
var ErrLoading = errors.New("model loading")

// ErrShuttingDown is wrapped by a Generator's error when the node stops
// serving (its shutdown's grace period is over): the server answers 503
// Service Unavailable with Retry-After; another node may serve the
// request.
var ErrShuttingDown = errors.New("shutting down")

// RetryError carries a hint of when to retry along with ErrOverloaded or
// ErrLoading. The server sends After, rounded up to whole seconds, as the
// Retry-After header.
type RetryError struct {
	Err   error
	After time.Duration
}

// Error describes the wrapped error and the hint.
func (e *RetryError) Error() string {
	return fmt.Sprintf("%v (retry after %v)", e.Err, e.After)
}

// Unwrap returns the wrapped error.
func (e *RetryError) Unwrap() error { return e.Err }

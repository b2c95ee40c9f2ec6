// Package api is a gateway's HTTP API: OpenAI-compatible
// /v1/chat/completions, /v1/completions and /v1/models; Hugging Face TGI's
// /generate, /generate_stream, / (compat), /info, /health, /tokenize,
// /chat_tokenize and SageMaker's /invocations; Prometheus' /metrics; and
// /dashboard, a page (dashboard.html and dashboard.js, embedded) that
// shows /info, /metrics and, on a cluster member, /cluster/status. It serves them over narrow interfaces that the node
// implements:
//
//   - Generator: Generate(ctx, req, emit) runs one sequence, in tokens,
//     through the pipeline (the driver's continuous batching across stages
//     is behind it), emitting each token;
//   - Tokenizer: the model's chat template, tokenization and streaming
//     detokenization (NewTokenizer adapts pipeline/tokenizer's);
//   - Pipeline: Info (model, limits, live stages) and Health (one token
//     through every stage).
//
// The server owns everything about text: it applies the chat template,
// tokenizes, checks the prompt and max_tokens against the context length,
// decodes tokens into UTF-8-safe text, applies stop strings (holding back
// text that may start one), and writes JSON responses or server-sent
// events. The Generator sees token ids and sampling parameters only.
//
// Gateway behaviour: a Generator whose queue is full returns ErrOverloaded
// (429 with Retry-After), one that is not ready ErrLoading and one that
// stops serving ErrShuttingDown (503 with Retry-After), and
// Config.MaxConcurrent bounds the requests in flight at the gateway
// itself. A client that disconnects cancels its request's
// context, and the Generator then cancels its sequence along the route.
// Streamed responses commit their status only with the first token, so an
// overloaded or loading Generator is still answered with a proper status.
//
// Defaults: OpenAI's temperature 1 and top_p 1 (sampling from the model's
// distribution); max_tokens, when absent, is what fits in the context for
// chat completions and TGI, and 16 for completions, as OpenAI's document
// says; TGI samples only with do_sample or a sampling parameter, as TGI
// does. Requests without a seed get a random one. Chat messages are
// rendered with the model's chat template (see pipeline/tokenizer's
// ChatTemplate: when the model ships none, ChatML if its vocabulary has
// ChatML's markers, else a plain "Role: content" transcript); the prompt
// gets the vocabulary's BOS once, even when the template writes one too.
// Beyond OpenAI's parameters, top_k, min_p and repetition_penalty are
// accepted, as llama.cpp's and vLLM's servers accept them. A chat's
// response_format json_object sets Request.JSON: the reply is one JSON
// object (see pipeline/sample's JSON constraint), whole when it finishes
// with "stop". response_format json_schema, and TGI's grammar of type
// json or json_schema, set Request.Grammar to the schema
// (sample.CompileJSONSchema's subset; any other keyword is a 400, or
// TGI's 422); TGI's grammar of type regex to a sample.Regex, which the
// whole text must match. Both OpenAI routes take vLLM's guided_json,
// guided_regex and guided_choice the same way (guided.go). logit_bias applies after the penalties (-100 bans a token).
// n (up to 16) choices run as that many sequences at once, choice i with
// the seed plus i; the usage counts the prompt once. TGI's best_of runs
// the same way and returns the sequence with the highest total
// log-probability, the others in best_of_sequences.
//
// Chats may offer tools (OpenAI's function calling, tools.go): the chat
// template renders them (or, when it does not, a system message of this
// server's describes them), calls in the reply are read out in the
// syntax the template shows (Hermes' <tool_call> tags, Llama 3's bare
// {"name", "parameters"}, else a bare {"name", "arguments"}) and returned
// as tool_calls with finish_reason "tool_calls", streamed once whole; a
// tool_choice that requires a call constrains the reply to one, with
// arguments the function's parameters accept. Requests this server
// cannot honour (image parts, regular expressions and schema keywords
// beyond the subsets, logprobs beside tools, and best_of on OpenAI's completions) are
// refused with a 400 that says so, never silently ignored.
//
// Errors on the OpenAI routes have OpenAI's shape
// {"error":{"message","type","param","code"}}; errors on TGI's routes have
// TGI's {"error","error_type"}, validation errors being 422 as in TGI. The
// one exception is 401 (a missing or wrong API key), which has OpenAI's
// shape on every route, since it is answered before routing. With
// Config.APIKeys set, every route needs "Authorization: Bearer KEY" except
// /health and /metrics, which stay open for load balancers and scrapers
// (neither reveals prompts or outputs; /info, which names the peers of the
// pipeline, needs a key), and the dashboard's page and script, which hold
// no data (the page asks for the key to read the routes it shows).
//
// Metrics live in a registry per Metrics value, never the global one; the
// pipeline reports stage latency, wire bytes, KV cache use and failovers
// through the Metrics hooks.
//
// Imports: the standard library, prometheus/client_golang, pipeline/sample
// and pipeline/tokenizer. Never libp2p, Raft, or cluster: the node wires
// those behind the interfaces.
package api

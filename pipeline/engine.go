package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/strata-llm/strata/kernels"
	"github.com/strata-llm/strata/pipeline/arch"
	_ "github.com/strata-llm/strata/pipeline/arch/llama" // registers the llama family
	"github.com/strata-llm/strata/pipeline/gguf"
	"github.com/strata-llm/strata/pipeline/sample"
	"github.com/strata-llm/strata/pipeline/tokenizer"
)

// Options configure an Engine. The zero value works.
type Options struct {
	Threads int          // kernel worker threads; 0: GOMAXPROCS
	Logger  *slog.Logger // nil: slog.Default()
}

// Engine is a whole model — every layer, the tokenizer and a sampler — in
// one process. It serves one generation at a time.
type Engine struct {
	File      *gguf.File
	Model     arch.Model
	Tokenizer *tokenizer.Tokenizer
	pool      *kernels.Pool
	log       *slog.Logger
}

// Open loads the GGUF model at path with all its layers.
func Open(path string, opts Options) (*Engine, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	e := &Engine{File: f, log: log, pool: kernels.NewPool(opts.Threads)}
	fail := func(err error) (*Engine, error) {
		e.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	n, _ := f.Uint(f.Architecture() + ".block_count")
	if n == 0 {
		return fail(fmt.Errorf("no %s.block_count in metadata", f.Architecture()))
	}
	if e.Model, err = arch.Load(f, 0, int(n), arch.Options{Pool: e.pool, Logger: log}); err != nil {
		return fail(err)
	}
	if e.Tokenizer, err = tokenizer.FromGGUF(f); err != nil {
		return fail(err)
	}
	if v := e.Tokenizer.VocabSize(); v != e.Model.Config().Vocab {
		return fail(fmt.Errorf("tokenizer has %d tokens, the embedding %d", v, e.Model.Config().Vocab))
	}
	return e, nil
}

// Close releases the model file and the worker pool.
func (e *Engine) Close() error {
	if e.pool != nil {
		e.pool.Close()
	}
	return e.File.Close()
}

// Request is one generation.
type Request struct {
	Prompt    string        // tokenized with the model's special-token rules
	Tokens    []int         // used instead of Prompt when not nil
	MaxTokens int           // tokens to generate; 0: until EOS or the context length
	Sample    sample.Params // zero: greedy
	Stop      []string      // stop strings; the text stops before the first match
	IgnoreEOS bool          // keep generating past end-of-generation tokens
}

// Finish reasons.
const (
	FinishLength = "length" // MaxTokens reached
	FinishStop   = "stop"   // end-of-generation token or stop string
)

// Result sums up a finished generation.
type Result struct {
	PromptTokens []int
	Tokens       []int  // generated ids, the stopping one included
	Text         string // the text emitted
	FinishReason string
}

// ErrEmptyPrompt is returned when a prompt tokenizes to nothing and the
// vocabulary has no BOS token to start from.
var ErrEmptyPrompt = errors.New("empty prompt")

// Generate runs req, calling emit with each piece of text as it becomes
// final (never a partial UTF-8 character, never part of a stop string). It
// stops early, returning ctx.Err(), when ctx ends.
func (e *Engine) Generate(ctx context.Context, req Request, emit func(text string) error) (Result, error) {
	var res Result
	if err := req.Sample.Validate(); err != nil {
		return res, err
	}
	tok := e.Tokenizer
	prompt := req.Tokens
	if prompt == nil {
		prompt = tok.Encode(req.Prompt, true, false)
	}
	if len(prompt) == 0 {
		if tok.BOS() < 0 {
			return res, ErrEmptyPrompt
		}
		prompt = []int{tok.BOS()} // as llama.cpp does for an empty prompt
	}
	res.PromptTokens = prompt
	cfg := e.Model.Config()
	maxTokens := req.MaxTokens
	if maxTokens <= 0 {
		maxTokens = max(cfg.ContextLength-len(prompt), 1)
	}
	if n := len(prompt) + maxTokens; cfg.ContextLength > 0 && n > cfg.ContextLength {
		e.log.Warn("request is longer than the model's trained context; quality may drop",
			"positions", n, "context_length", cfg.ContextLength)
	}

	cache := e.Model.NewCache()
	smp := sample.New(req.Sample)
	dec := tok.NewStreamDecoder(false)
	stop := sample.NewStopper(req.Stop)
	x := make([]float32, len(prompt)*cfg.Dim) // (tokens, dim)
	logits := make([]float32, cfg.Vocab)      // (vocab)
	history := append(make([]int, 0, len(prompt)+maxTokens), prompt...)
	var text []byte
	out := func(s string) error {
		if s == "" {
			return nil
		}
		text = append(text, s...)
		return emit(s)
	}

	next := prompt
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		seq := []arch.Seq{{Cache: cache, Pos: cache.Len(), N: len(next)}}
		if err := e.Model.Embed(x[:len(next)*cfg.Dim], next); err != nil {
			return res, err
		}
		if err := e.Model.Forward(x[:len(next)*cfg.Dim], seq); err != nil {
			return res, err
		}
		if err := e.Model.Logits(logits, x[:len(next)*cfg.Dim], []int{len(next) - 1}); err != nil {
			return res, err
		}
		id := smp.Sample(logits, history)
		history = append(history, id)
		res.Tokens = append(res.Tokens, id)
		if tok.IsEOG(id) && !req.IgnoreEOS {
			res.FinishReason = FinishStop
			break
		}
		s, stopped := stop.Add(dec.Add(id))
		if err := out(s); err != nil {
			return res, err
		}
		if stopped {
			res.FinishReason = FinishStop
			res.Text = string(text)
			return res, nil
		}
		if len(res.Tokens) >= maxTokens {
			res.FinishReason = FinishLength
			break
		}
		next = history[len(history)-1:]
	}
	s, stopped := stop.Add(dec.Flush())
	if !stopped {
		s += stop.Flush()
	}
	if err := out(s); err != nil {
		return res, err
	}
	res.Text = string(text)
	return res, nil
}

package apitest

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/strata-llm/strata/node/api"
	"github.com/strata-llm/strata/pipeline/sample"
	"github.com/strata-llm/strata/pipeline/tokenizer"
)

// Token ids of the fake vocabulary: ids 0 to 255 are the bytes, then the
// special tokens.
const (
	BOS      = 256 // "<s>"
	EOS      = 257 // "</s>"
	ImStart  = 258 // "<|im_start|>"
	ImEnd    = 259 // "<|im_end|>"
	VocabLen = 260
)

var specials = []string{BOS: "<s>", EOS: "</s>", ImStart: "<|im_start|>", ImEnd: "<|im_end|>"}

// Tokenizer is a byte-level api.Tokenizer: every byte is a token and the
// four special tokens have ids from 256. Its chat template is a real one.
type Tokenizer struct {
	chat *tokenizer.ChatTemplate
}

// NewTokenizer returns a Tokenizer rendering chats with the Jinja template
// src ("" means tokenizer.TranscriptTemplate), with "<s>" and "</s>" as
// bos_token and eos_token. It panics when src does not compile.
func NewTokenizer(src string) *Tokenizer {
	if src == "" {
		src = tokenizer.TranscriptTemplate
	}
	c, err := tokenizer.NewChatTemplate(src, specials[BOS], specials[EOS])
	if err != nil {
		panic("apitest: " + err.Error())
	}
	return &Tokenizer{chat: c}
}

// Encode returns the bytes of text as ids, special texts as their ids when
// parseSpecial, after BOS when addSpecial.
func (t *Tokenizer) Encode(text string, addSpecial, parseSpecial bool) []int {
	var ids []int
	if addSpecial {
		ids = append(ids, BOS)
	}
outer:
	for i := 0; i < len(text); i++ {
		if parseSpecial && text[i] == '<' {
			for id := BOS; id < VocabLen; id++ {
				if strings.HasPrefix(text[i:], specials[id]) {
					ids = append(ids, id)
					i += len(specials[id]) - 1
					continue outer
				}
			}
		}
		ids = append(ids, int(text[i]))
	}
	return ids
}

// NewDecoder returns a decoder that holds back incomplete UTF-8.
func (t *Tokenizer) NewDecoder() api.Decoder { return &decoder{} }

// Piece returns the byte of a byte token, nothing for the others.
func (t *Tokenizer) Piece(id int) []byte {
	if id >= 0 && id < 256 {
		return []byte{byte(id)}
	}
	return nil
}

// TokenText returns the byte of a byte token, or a special token's text.
func (t *Tokenizer) TokenText(id int) string {
	switch {
	case id >= 0 && id < 256:
		return string([]byte{byte(id)})
	case id < VocabLen:
		return specials[id]
	}
	return ""
}

// IsSpecial reports whether id is one of the special tokens.
func (t *Tokenizer) IsSpecial(id int) bool { return id >= BOS && id < VocabLen }

// BOS returns BOS.
func (t *Tokenizer) BOS() int { return BOS }

// ApplyChatTemplate renders msgs with the template.
func (t *Tokenizer) ApplyChatTemplate(msgs []tokenizer.ChatMessage, opts tokenizer.ChatOptions) (string, error) {
	return t.chat.Apply(msgs, opts)
}

// ChatTemplateSource returns the template's source.
func (t *Tokenizer) ChatTemplateSource() string { return t.chat.Source() }

type decoder struct{ pending []byte }

func (d *decoder) Add(id int) string {
	if id < 0 || id >= 256 {
		return ""
	}
	d.pending = append(d.pending, byte(id))
	n := 0
	for n < len(d.pending) {
		r, size := utf8.DecodeRune(d.pending[n:])
		if r == utf8.RuneError && size <= 1 {
			if !utf8.FullRune(d.pending[n:]) {
				break // wait for the rest of the character
			}
		}
		n += size
	}
	out := strings.ToValidUTF8(string(d.pending[:n]), "\uFFFD")
	d.pending = d.pending[n:]
	return out
}

func (d *decoder) Flush() string {
	out := strings.ToValidUTF8(string(d.pending), "\uFFFD")
	d.pending = nil
	return out
}

// Generator is a scripted api.Generator: it emits the bytes of Reply as
// tokens, then EOS, cut short by the request's MaxTokens. Its fields are
// set before use; Requests and Finished report what happened.
type Generator struct {
	// Reply is the text generated.
	Reply string
	// Tokens, when set, are generated instead of Reply's bytes, followed by
	// EOG (for a real vocabulary).
	Tokens []int
	// EOG is the end-of-generation id used with Tokens.
	EOG int
	// NoEOS repeats Reply until MaxTokens instead of ending with EOS.
	NoEOS bool
	// Err, when set, is returned at once, before any token (ErrOverloaded,
	// ErrLoading, ...).
	Err error
	// FailAfter, when positive, makes Generate fail with FailErr after
	// that many tokens.
	FailAfter int
	FailErr   error
	// Gate, when not nil, paces the stream: every token after the first
	// waits for a value from it (or the end of the context).
	Gate chan struct{}
	// Started, when not nil, receives a value as each Generate begins
	// (before Err is returned), so that a test knows a request reached the
	// Generator.
	Started chan struct{}
	// Finished, when not nil, receives what each Generate returns.
	Finished chan error

	mu       sync.Mutex
	requests []api.Request
}

// Requests returns copies of the requests received so far.
func (g *Generator) Requests() []api.Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]api.Request(nil), g.requests...)
}

// Generate implements api.Generator.
func (g *Generator) Generate(ctx context.Context, req *api.Request, emit func(api.Chunk) error) (err error) {
	g.mu.Lock()
	r := *req
	r.Prompt = append([]int(nil), req.Prompt...)
	g.requests = append(g.requests, r)
	g.mu.Unlock()
	if g.Finished != nil {
		defer func() { g.Finished <- err }()
	}
	if g.Started != nil {
		select {
		case g.Started <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if g.Err != nil {
		return g.Err
	}
	top := make([]sample.Candidate, 0, 20)
	for i := 0; i < req.MaxTokens; i++ {
		if i > 0 && g.Gate != nil {
			select {
			case <-g.Gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if g.FailAfter > 0 && i == g.FailAfter {
			return g.FailErr
		}
		c := api.Chunk{Token: EOS, EOG: true}
		if g.Tokens != nil {
			c.Token = g.EOG
		}
		switch {
		case g.Tokens != nil:
			if i < len(g.Tokens) {
				c = api.Chunk{Token: g.Tokens[i]}
			}
		case g.NoEOS && len(g.Reply) > 0:
			c = api.Chunk{Token: int(g.Reply[i%len(g.Reply)])}
		case i < len(g.Reply):
			c = api.Chunk{Token: int(g.Reply[i])}
		}
		if req.Logprobs {
			c.Logprob = Logprob(i)
		}
		if req.TopLogprobs > 0 {
			top = top[:0]
			top = append(top, sample.Candidate{ID: c.Token, Logprob: c.Logprob})
			for k := 1; k < req.TopLogprobs; k++ {
				top = append(top, sample.Candidate{ID: (c.Token + k) % 256, Logprob: c.Logprob - float32(k)})
			}
			c.TopLogprobs = top
		}
		if err := emit(c); err != nil {
			return err
		}
		if c.EOG {
			return nil
		}
	}
	return nil
}

// Logprob is the log-probability the Generator gives its i-th token.
func Logprob(i int) float32 { return -0.125 * float32(i%8+1) }

// Pipeline is an api.Pipeline with a fixed ModelInfo and a settable health.
type Pipeline struct {
	Model api.ModelInfo

	mu        sync.Mutex
	healthErr error
	checks    atomic.Int64
}

// NewPipeline returns a healthy Pipeline for a model named name of ctxLen
// tokens, served by two local stages.
func NewPipeline(name string, ctxLen int) *Pipeline {
	return &Pipeline{Model: api.ModelInfo{
		Name: name, Architecture: "llama", ContextLength: ctxLen, VocabSize: VocabLen, Layers: 4,
		Stages: []api.StageInfo{
			{Peer: "12D3KooWStageA", Addr: "/ip4/127.0.0.1/tcp/4001", Start: 0, End: 2, State: "serving"},
			{Peer: "12D3KooWStageB", Addr: "/ip4/127.0.0.1/tcp/4002", Start: 2, End: 4, State: "serving"},
		},
	}}
}

// Info returns p.Model.
func (p *Pipeline) Info() api.ModelInfo { return p.Model }

// Health returns the error set by SetHealth.
func (p *Pipeline) Health(ctx context.Context) error {
	p.checks.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.healthErr
}

// SetHealth sets what Health returns.
func (p *Pipeline) SetHealth(err error) {
	p.mu.Lock()
	p.healthErr = err
	p.mu.Unlock()
}

// HealthChecks returns how many times Health ran.
func (p *Pipeline) HealthChecks() int64 { return p.checks.Load() }

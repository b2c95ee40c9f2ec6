package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-llm/strata/pipeline/sample"
)

// This file runs one generation for any route: it drives the Generator on
// its own goroutine, decodes tokens into text, applies stop strings, and
// hands each step to the route's writer.

// finish is why a generation ended.
type finish uint8

const (
	finishLength finish = iota // max_tokens reached, or the context is full
	finishEOG                  // the model produced an end-of-generation token
	finishStop                 // a stop string was produced
)

// openAI returns OpenAI's finish_reason.
func (f finish) openAI() string {
	if f == finishLength {
		return "length"
	}
	return "stop"
}

// tgi returns TGI's finish_reason.
func (f finish) tgi() string {
	switch f {
	case finishEOG:
		return "eos_token"
	case finishStop:
		return "stop_sequence"
	}
	return "length"
}

// job is a validated generation.
type job struct {
	route string
	req   Request
	stops []string
	// keepStop keeps the text of a stop string in the reply, as TGI does;
	// OpenAI's routes cut the reply right before it.
	keepStop bool
	start    time.Time // when the request arrived
	tools    *toolSet  // the chat route's tools, nil when none
}

// genToken is one generated token, as the routes report it.
type genToken struct {
	Chunk        // TopLogprobs copied: owned here
	text  string // the text this token completed, possibly "" (mid-character)
}

// step is what a route's writer gets per token: the token, the reply text
// that became visible with it (after stop-string holdback, and with any
// text held back until then when it is the last), and whether it is the
// last. Only when a Generator stops early on its own does a last step come
// without a token (tok == nil), to carry the held-back text.
type step struct {
	tok     *genToken
	visible string
	last    bool
	finish  finish // when last
}

// outcome is the result of a finished generation.
type outcome struct {
	text   string // the visible reply
	tokens []genToken
	finish finish
}

// errIncomplete ends a TGI generation whose Generator stopped before
// max_new_tokens without an end-of-generation token: TGI reports that as
// an incomplete generation.
var errIncomplete = &apiError{status: http.StatusInternalServerError, tgiType: "incomplete_generation",
	message: "incomplete generation: the model stopped before max_new_tokens without an end-of-generation token"}

// errStopped is returned by emit once the server wants no more tokens.
var errStopped = errors.New("generation stopped by the server")

// chunkQueue passes chunks from the Generator's goroutine to the request's
// goroutine without ever blocking the Generator. It holds at most the
// request's MaxTokens chunks.
type chunkQueue struct {
	mu      sync.Mutex
	items   []Chunk
	closed  bool
	stopped bool
	signal  chan struct{} // capacity 1: something changed
}

func newChunkQueue() *chunkQueue { return &chunkQueue{signal: make(chan struct{}, 1)} }

func (q *chunkQueue) notify() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// push is the emit function given to the Generator.
func (q *chunkQueue) push(c Chunk) error {
	c.TopLogprobs = slices.Clone(c.TopLogprobs)
	q.mu.Lock()
	if q.stopped || q.closed {
		q.mu.Unlock()
		return errStopped
	}
	q.items = append(q.items, c)
	q.mu.Unlock()
	q.notify()
	return nil
}

// close marks the end of the Generator's chunks.
func (q *chunkQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.notify()
}

// stop makes later pushes fail with errStopped.
func (q *chunkQueue) stop() {
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
}

// next waits for the next chunk. It returns false when the Generator has
// finished and every chunk was taken, or when ctx ends.
func (q *chunkQueue) next(ctx context.Context) (Chunk, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			c := q.items[0]
			q.items[0] = Chunk{}
			q.items = q.items[1:]
			q.mu.Unlock()
			return c, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return Chunk{}, false
		}
		select {
		case <-q.signal:
		case <-ctx.Done():
			return Chunk{}, false
		}
	}
}

// generate runs j, calling write for every step (stream writers send it;
// others may ignore it). It returns the outcome, or the error that ended
// the generation: the Generator's, ctx's, or write's. A Generator that
// refuses the request fails before the first write, so a streaming route
// commits its response headers in its first write and can still answer an
// error in the response's status otherwise.
func (s *Server) generate(ctx context.Context, j *job, write func(step) error) (outcome, error) {
	s.metrics.addPromptTokens(len(j.req.Prompt))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := newChunkQueue()
	done := make(chan error, 1)
	go func() {
		err := s.gen.Generate(ctx, &j.req, q.push)
		q.close()
		done <- err
	}()

	var out outcome
	dec := s.tok.NewDecoder()
	var stopper *sample.Stopper
	if !j.keepStop {
		stopper = sample.NewStopper(j.stops)
	}
	maxStop := 0
	for _, st := range j.stops {
		maxStop = max(maxStop, len(st))
	}
	var text strings.Builder
	var last time.Time
	ended := false // the server ended the generation: EOG, stop string or max tokens
	var werr error
	for !ended {
		c, ok := q.next(ctx)
		if !ok {
			break
		}
		now := time.Now()
		if last.IsZero() {
			s.metrics.observeTTFT(now.Sub(j.start))
		} else {
			s.metrics.observeITL(now.Sub(last))
		}
		last = now
		s.metrics.addGenerated(1)

		t := genToken{Chunk: c}
		var visible string
		inText := 0 // bytes of visible already in text
		if c.EOG {
			t.text = s.tok.TokenText(c.Token)
			out.finish, ended = finishEOG, true
		} else {
			t.text = dec.Add(c.Token)
			if stopper != nil {
				var stopped bool
				if visible, stopped = stopper.Add(t.text); stopped {
					out.finish, ended = finishStop, true
				}
			} else {
				visible = t.text
				prev := text.Len()
				text.WriteString(visible)
				inText = len(visible)
				if hasStopIn(text.String(), prev, maxStop, j.stops) {
					out.finish, ended = finishStop, true
				}
			}
			if !ended && len(out.tokens)+1 >= j.req.MaxTokens {
				out.finish, ended = finishLength, true
			}
		}
		if ended && out.finish != finishStop {
			tail := s.flush(dec, stopper, &out)
			visible += tail
			if !c.EOG {
				t.text += tail
			}
		}
		text.WriteString(visible[inText:])
		out.tokens = append(out.tokens, t)
		if werr = write(step{tok: &out.tokens[len(out.tokens)-1], visible: visible, last: ended, finish: out.finish}); werr != nil {
			break
		}
	}
	if ended || werr != nil {
		q.stop()
		cancel()
	}
	gerr := <-done
	switch {
	case werr != nil:
		return out, werr
	case ended:
		// The Generator's error is only its reaction to being stopped.
	case gerr != nil:
		return out, gerr
	case ctx.Err() != nil:
		return out, ctx.Err()
	case j.keepStop:
		return out, errIncomplete
	default: // the Generator stopped early: a length finish
		out.finish = finishLength
		tail := s.flush(dec, stopper, &out)
		text.WriteString(tail)
		if err := write(step{visible: tail, last: true, finish: finishLength}); err != nil {
			return out, err
		}
	}
	out.text = text.String()
	return out, nil
}

// flush returns the text held back by the decoder and the stopper at the
// end of a generation; a stop string found in it sets out.finish.
func (s *Server) flush(dec Decoder, stopper *sample.Stopper, out *outcome) string {
	tail := dec.Flush()
	if stopper == nil {
		return tail
	}
	emit, stopped := stopper.Add(tail)
	if stopped {
		out.finish = finishStop
		return emit
	}
	return emit + stopper.Flush()
}

// hasStopIn reports whether a stop string ends in text after offset prev.
func hasStopIn(text string, prev, maxStop int, stops []string) bool {
	if maxStop == 0 {
		return false
	}
	tail := text[min(max(0, prev-maxStop+1), len(text)):]
	for _, st := range stops {
		if st != "" && strings.Contains(tail, st) {
			return true
		}
	}
	return false
}

// generatorError maps what ended a generation to the error answered to the
// client, and whether it is worth logging as a server-side failure.
func (s *Server) generatorError(err error) *apiError {
	var ae *apiError
	var re *RetryError
	retry := s.cfg.RetryAfter
	if errors.As(err, &re) && re.After > 0 {
		retry = re.After
	}
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, ErrOverloaded):
		return &apiError{status: http.StatusTooManyRequests, code: "overloaded", retry: retry,
			message: "the server is overloaded: its request queue is full; retry later"}
	case errors.Is(err, ErrLoading):
		return &apiError{status: http.StatusServiceUnavailable, code: "model_loading", retry: retry,
			message: "the model is loading; retry later"}
	case errors.Is(err, ErrShuttingDown):
		return &apiError{status: http.StatusServiceUnavailable, code: "shutting_down", tgiType: "unavailable", retry: retry,
			message: "this node is shutting down; retry, here later or on another node"}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The client is gone; whatever is written is not read.
		return &apiError{status: 499, message: "request canceled", typ: "server_error"}
	}
	return &apiError{status: http.StatusInternalServerError, code: "generation_failed", tgiType: "generation",
		message: "generation failed: " + err.Error()}
}

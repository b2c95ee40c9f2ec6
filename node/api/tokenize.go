package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// This file serves TGI's other routes: /tokenize and /chat_tokenize, which
// show the tokens a prompt becomes, and /invocations, SageMaker's single
// route, which takes any of the chat, completion and TGI requests.

// simpleToken is TGI's SimpleToken: a token and the bytes [start, stop)
// of the input it stands for.
type simpleToken struct {
	ID    int    `json:"id"`
	Text  string `json:"text"`
	Start int    `json:"start"`
	Stop  int    `json:"stop"`
}

// chatTokenizeResponse is TGI's ChatTokenizeResponse.
type chatTokenizeResponse struct {
	TokenizeResponse []simpleToken `json:"tokenize_response"`
	TemplatedText    string        `json:"templated_text"`
}

// handleTokenize answers TGI's /tokenize: the tokens /generate would feed
// the model for the same inputs (BOS and special tokens included), each
// with its span of the input.
func (s *Server) handleTokenize(w http.ResponseWriter, r *http.Request) {
	var req tgiRequest
	if !s.decodeTGI(w, r, &req) {
		return
	}
	if req.Inputs == nil || *req.Inputs == "" {
		e := badRequest("inputs", "`inputs` cannot be empty")
		e.status = http.StatusUnprocessableEntity
		writeTGIError(w, e)
		return
	}
	ids := s.tok.Encode(*req.Inputs, true, true)
	if aerr := s.checkTokenized(len(ids)); aerr != nil {
		writeTGIError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, s.spans(*req.Inputs, ids))
}

// checkTokenized refuses, as the generation routes do, a prompt of more
// tokens than they take: so that a large body cannot make a response many
// times its size.
func (s *Server) checkTokenized(n int) *apiError {
	if mp := s.maxPrompt(s.pipe.Info()); n > mp {
		e := badRequest("inputs", "`inputs` must have less than %d tokens. Given: %d", mp+1, n)
		e.status = http.StatusUnprocessableEntity
		return e
	}
	return nil
}

// handleChatTokenize answers TGI's /chat_tokenize: a chat rendered with
// the model's template (and its tools), and the tokens /v1/chat/completions
// would feed the model for it.
func (s *Server) handleChatTokenize(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if !s.decodeTGI(w, r, &req) {
		return
	}
	text, _, aerr := s.chatPrompt(&req)
	if aerr != nil {
		if aerr.status == http.StatusBadRequest {
			aerr.status = http.StatusUnprocessableEntity
		}
		writeTGIError(w, aerr)
		return
	}
	ids := s.encodePrompt(text)
	if aerr := s.checkTokenized(len(ids)); aerr != nil {
		writeTGIError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, chatTokenizeResponse{TokenizeResponse: s.spans(text, ids), TemplatedText: text})
}

// spans places each of ids, the tokens of text, on the bytes of text it
// stands for, in order. A sentencepiece tokenizer's dummy prefix (the
// space it puts before the text and after a special token in it, which
// text does not have) is not part of a span. A token that stands for no
// bytes of the text (a BOS the tokenizer added, or the dummy prefix alone)
// gets an empty span where it falls, and its own text. Where the tokenizer changed the text in other ways, the
// spans stop following it: the rest are empty, at the end of the text.
func (s *Server) spans(text string, ids []int) []simpleToken {
	pieces := make([]string, len(ids))
	for i, id := range ids {
		if s.tok.IsSpecial(id) {
			pieces[i] = s.tok.TokenText(id)
		} else {
			pieces[i] = string(s.tok.Piece(id))
		}
	}
	first := 0 // the tokens before first were added, not read from text
	if len(ids) > 0 && s.tok.IsSpecial(ids[0]) && (!strings.HasPrefix(text, pieces[0]) || len(ids) > 1 && ids[1] == ids[0]) {
		first = 1
	}
	at := 0 // where the next token's bytes start in text
	if joined := strings.Join(pieces[first:], ""); joined != text && joined == " "+text {
		at = -1 // the dummy prefix
	}
	out := make([]simpleToken, len(ids))
	for i, p := range pieces {
		lo := max(at, 0)
		hi := lo
		switch {
		case i < first:
		case lo-at <= len(p) && strings.HasPrefix(text[lo:], p[lo-at:]):
			at += len(p)
			hi = max(at, 0)
		case i > first && s.tok.IsSpecial(ids[i-1]) && !s.tok.IsSpecial(ids[i]) && strings.HasPrefix(p, " ") && strings.HasPrefix(text[lo:], p[1:]):
			at = lo + len(p) - 1 // a dummy prefix after a special token
			hi = at
		default: // lost
			at, lo, hi = len(text), len(text), len(text)
		}
		out[i] = simpleToken{ID: ids[i], Text: text[lo:hi], Start: lo, Stop: hi}
		if lo == hi {
			out[i].Text = p
		}
	}
	return out
}

// handleInvocations answers SageMaker's /invocations: a body with
// "messages" is a chat completion, one with "prompt" a completion, any
// other TGI's compat request (/), each answered as its own route answers,
// except that errors have TGI's shape, as TGI's document says.
func (s *Server) handleInvocations(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes))
	if err != nil {
		e := decodeError(err)
		if e.status == http.StatusBadRequest {
			e.status = http.StatusUnprocessableEntity
		}
		writeTGIError(w, e)
		return
	}
	var keys map[string]json.RawMessage
	_ = json.Unmarshal(body, &keys) // not an object: the compat route says why
	r.Body = io.NopCloser(bytes.NewReader(body))
	openAI := r.WithContext(context.WithValue(r.Context(), tgiErrorsKey{}, true))
	switch {
	case keys["messages"] != nil:
		s.handleChat(w, openAI)
	case keys["prompt"] != nil:
		s.handleCompletion(w, openAI)
	default:
		s.handleCompat(w, r)
	}
}

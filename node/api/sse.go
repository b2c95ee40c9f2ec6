package api

import (
	"encoding/json"
	"net/http"
)

// sseWriter writes a text/event-stream response: one "data:" line per
// event, each followed by a blank line and flushed at once.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	prefix  string // "data: " (OpenAI) or "data:" (TGI, as its router writes it)
	started bool
	err     error // the first write error: the client is gone
}

func newSSE(w http.ResponseWriter, prefix string) *sseWriter {
	return &sseWriter{w: w, rc: http.NewResponseController(w), prefix: prefix}
}

// start sends the response headers.
func (s *sseWriter) start() {
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	s.w.WriteHeader(http.StatusOK)
	s.started = true
}

// send writes v as one event.
func (s *sseWriter) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.write(b)
}

// done writes OpenAI's terminating event.
func (s *sseWriter) done() { s.write([]byte("[DONE]")) }

func (s *sseWriter) write(data []byte) error {
	if s.err != nil {
		return s.err
	}
	buf := make([]byte, 0, len(s.prefix)+len(data)+2)
	buf = append(append(append(buf, s.prefix...), data...), '\n', '\n')
	if _, err := s.w.Write(buf); err != nil {
		s.err = err
		return err
	}
	if err := s.rc.Flush(); err != nil {
		s.err = err
	}
	return s.err
}

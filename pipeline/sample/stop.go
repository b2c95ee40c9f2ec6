package sample

import "strings"

// Stopper watches generated text for stop strings, holding back text that
// might be the start of one, so a client never sees part of a stop string.
//
// Generation stops at the first point of the text where some stop string
// ends; when several end there, the longest (the one starting earliest)
// wins. The outcome therefore depends only on the text, never on how it was
// split across calls to Add. Stopper works on bytes: feed it whole UTF-8
// sequences, as a streaming detokenizer produces them. A Stopper is not safe
// for concurrent use.
type Stopper struct {
	stops   []string // non-empty
	held    string   // fed but not yet emitted: the longest suffix that is a proper prefix of a stop
	matched string
	stopped bool
}

// NewStopper returns a Stopper for stops. Empty strings are ignored; with no
// stop strings, Add emits its text as it comes. The slice is not retained.
func NewStopper(stops []string) *Stopper {
	s := &Stopper{}
	for _, st := range stops {
		if st != "" {
			s.stops = append(s.stops, st)
		}
	}
	return s
}

// Add feeds newly decoded text. It returns the text that is now safe to
// show, and whether a stop string was found. When stopped, emit ends right
// before the stop string, everything after it is dropped, and later calls
// return "" and true.
func (s *Stopper) Add(text string) (emit string, stopped bool) {
	if s.stopped {
		return "", true
	}
	if len(s.stops) == 0 {
		return text, false
	}
	buf := s.held + text
	// A match that spans calls starts inside held, since held is the longest
	// suffix of the earlier text that could begin one. strings.Index finds
	// each stop's earliest occurrence, which is also its earliest end.
	start, end := -1, -1
	for _, st := range s.stops {
		i := strings.Index(buf, st)
		if i < 0 {
			continue
		}
		if e := i + len(st); end < 0 || e < end || e == end && i < start {
			start, end, s.matched = i, e, st
		}
	}
	if end >= 0 {
		s.stopped, s.held = true, ""
		return buf[:start], true
	}
	k := len(buf) - s.holdLen(buf)
	s.held = buf[k:]
	return buf[:k], false
}

// holdLen returns the length of the longest suffix of buf that is a proper
// prefix of a stop string.
func (s *Stopper) holdLen(buf string) int {
	best := 0
	for _, st := range s.stops {
		for l := min(len(st)-1, len(buf)); l > best; l-- {
			if strings.HasSuffix(buf, st[:l]) {
				best = l
				break
			}
		}
	}
	return best
}

// Flush ends the generation: it returns the text still held back, which
// turned out not to start a stop string, or "" after a stop.
func (s *Stopper) Flush() string {
	h := s.held
	s.held = ""
	return h
}

// Stopped reports whether a stop string was found.
func (s *Stopper) Stopped() bool { return s.stopped }

// Matched returns the stop string that ended generation, or "" when none
// has; the API layer reports it as the stop reason.
func (s *Stopper) Matched() string { return s.matched }

package sample

import (
	"slices"
	"strings"
	"testing"
)

func TestStopper(t *testing.T) {
	tests := []struct {
		name    string
		stops   []string
		chunks  []string
		emits   []string // one per Add
		stopped bool
		matched string
		flush   string
	}{
		{"no stops", nil, []string{"a", "bc", ""}, []string{"a", "bc", ""}, false, "", ""},
		{"only empty stops", []string{"", ""}, []string{"abc"}, []string{"abc"}, false, "", ""},
		{"no match", []string{"STOP"}, []string{"hello", " world"}, []string{"hello", " world"}, false, "", ""},
		{"split across calls", []string{"STOP"}, []string{"xx ST", "O", "P yy"}, []string{"xx ", "", ""}, true, "STOP", ""},
		{"false start is released", []string{"STOP"}, []string{"ST", "Ox", "y"}, []string{"", "STOx", "y"}, false, "", ""},
		{"overlapping prefix", []string{"ab"}, []string{"a", "a", "b"}, []string{"", "a", ""}, true, "ab", ""},
		{"overlapping prefix in one call", []string{"ab"}, []string{"aab"}, []string{"a"}, true, "ab", ""},
		{"self-overlapping stop", []string{"aab"}, []string{"aa", "a", "b"}, []string{"", "a", ""}, true, "aab", ""},
		{"earliest of several", []string{"world", "lo"}, []string{"hello world"}, []string{"hel"}, true, "lo", ""},
		{"earliest of several across calls", []string{"world", "lo"}, []string{"hel", "l", "o world"}, []string{"he", "l", ""}, true, "lo", ""},
		{"same end: longest wins", []string{"b", "ab"}, []string{"xab"}, []string{"x"}, true, "ab", ""},
		{"first to end wins", []string{"abcd", "bc"}, []string{"ab", "c", "d"}, []string{"", "a", ""}, true, "bc", ""},
		{"first to end wins in one call", []string{"abcd", "bc"}, []string{"abcd"}, []string{"a"}, true, "bc", ""},
		{"stop at the very start", []string{"###"}, []string{"###abc"}, []string{""}, true, "###", ""},
		{"stop is the whole first chunk", []string{"</s>"}, []string{"</s>", "more"}, []string{"", ""}, true, "</s>", ""},
		{"held text flushed", []string{"</s>"}, []string{"hi </"}, []string{"hi "}, false, "", "</"},
		{"held text released by a mismatch", []string{"</s>"}, []string{"hi <", " /"}, []string{"hi ", "< /"}, false, "", ""},
		{"multibyte", []string{"。"}, []string{"你好", "。再见"}, []string{"你好", ""}, true, "。", ""},
		{"multibyte prefix held", []string{"再见了"}, []string{"你好再", "见", "吧"}, []string{"你好", "", "再见吧"}, false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStopper(tt.stops)
			var emits []string
			stopped := false
			for _, c := range tt.chunks {
				var e string
				e, stopped = s.Add(c)
				emits = append(emits, e)
			}
			if !slices.Equal(emits, tt.emits) {
				t.Errorf("emits %q, want %q", emits, tt.emits)
			}
			if stopped != tt.stopped || s.Stopped() != tt.stopped {
				t.Errorf("stopped %v (Stopped %v), want %v", stopped, s.Stopped(), tt.stopped)
			}
			if s.Matched() != tt.matched {
				t.Errorf("Matched() = %q, want %q", s.Matched(), tt.matched)
			}
			if f := s.Flush(); f != tt.flush {
				t.Errorf("Flush() = %q, want %q", f, tt.flush)
			}
			if f := s.Flush(); f != "" {
				t.Errorf("second Flush() = %q, want empty", f)
			}
		})
	}
}

// refHold returns the length of the longest suffix of text that is a proper
// prefix of one of stops.
func refHold(text string, stops []string) int {
	for l := len(text); l > 0; l-- {
		for _, st := range stops {
			if l < len(st) && strings.HasPrefix(st, text[len(text)-l:]) {
				return l
			}
		}
	}
	return 0
}

// refStop returns where the first stop string to end in text starts and
// ends, the longest winning a tie, or -1, -1.
func refStop(text string, stops []string) (start, end int) {
	for e := 1; e <= len(text); e++ {
		start = -1
		for _, st := range stops {
			if st != "" && strings.HasSuffix(text[:e], st) && (start < 0 || e-len(st) < start) {
				start = e - len(st)
			}
		}
		if start >= 0 {
			return start, e
		}
	}
	return -1, -1
}

func FuzzStopper(f *testing.F) {
	f.Add("hello world</s> more", "</s>", "lo w", []byte{3, 1, 4, 1, 5, 9})
	f.Add("aaab", "ab", "aab", []byte{1, 1, 1, 1})
	f.Add("abcd", "abcd", "bc", []byte{2, 1, 1})
	f.Add("no stop here", "", "xyz", []byte{})
	f.Fuzz(func(t *testing.T, input, stop1, stop2 string, cuts []byte) {
		stops := []string{stop1, stop2}
		var chunks []string
		rest := input
		for _, c := range cuts {
			if rest == "" {
				break
			}
			n := int(c) % (len(rest) + 1)
			chunks, rest = append(chunks, rest[:n]), rest[n:]
		}
		chunks = append(chunks, rest)

		s := NewStopper(stops)
		var emitted strings.Builder
		fed := 0
		stopped := false
		for _, c := range chunks {
			e, st := s.Add(c)
			emitted.WriteString(e)
			if stopped && (e != "" || !st) {
				t.Fatalf("Add after a stop returned %q, %v", e, st)
			}
			if stopped {
				continue
			}
			fed += len(c)
			if stopped = st; !stopped {
				// Everything fed is out but the longest possible stop start.
				want := input[:fed-refHold(input[:fed], stops)]
				if emitted.String() != want {
					t.Fatalf("after %q emitted %q, want %q", input[:fed], emitted.String(), want)
				}
			}
		}
		flushed := s.Flush()
		start, end := refStop(input, stops)
		if !stopped {
			if start >= 0 {
				t.Fatalf("missed the stop %q at %d", input[start:end], start)
			}
			if got := emitted.String() + flushed; got != input {
				t.Fatalf("emitted+flushed = %q, want the input %q", got, input)
			}
			return
		}
		if flushed != "" {
			t.Fatalf("Flush after a stop = %q", flushed)
		}
		if start < 0 {
			t.Fatalf("stopped on %q, but the input holds no stop", s.Matched())
		}
		if got := emitted.String() + s.Matched(); got != input[:end] || len(emitted.String()) != start {
			t.Fatalf("emitted %q + matched %q, want %q + %q", emitted.String(), s.Matched(), input[:start], input[start:end])
		}
	})
}

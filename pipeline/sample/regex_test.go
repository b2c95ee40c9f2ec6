package sample

import (
	"math/rand/v2"
	"regexp"
	"testing"
	"unicode/utf8"
)

// TestRegex checks what a Regex accepts whole and as a beginning: the
// whole text must match, from its first character to its last.
func TestRegex(t *testing.T) {
	for _, tc := range []struct {
		expr      string
		good, bad []string
		prefixes  []string
		dead      []string
	}{
		{`\d{3}-\d{4}`, []string{"555-1234"}, []string{"555-12345", "x555-1234", "5551234", ""}, []string{"", "55", "555-"}, []string{"a", "5555", "555-12345"}},
		{`(yes|no)`, []string{"yes", "no"}, []string{"yes!", "ye", "n"}, []string{"y", "ye", "n"}, []string{"x", "yess"}},
		{`é+🦙?`, []string{"é", "éé🦙"}, []string{"e", "🦙"}, []string{"\xc3", "é\xf0\x9f"}, []string{"\xc4", "é\xf0\x9e", "\xff"}},
		{`[a-z]*`, []string{"", "abc"}, []string{"A"}, []string{""}, []string{"1"}},
	} {
		r, err := CompileRegex(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range tc.good {
			if !r.Valid([]byte(s)) {
				t.Errorf("%s: refused %q", tc.expr, s)
			}
		}
		for _, s := range tc.bad {
			if r.Valid([]byte(s)) {
				t.Errorf("%s: accepted %q", tc.expr, s)
			}
		}
		for _, s := range tc.prefixes {
			if !r.Prefix([]byte(s)) {
				t.Errorf("%s: %q is no beginning", tc.expr, s)
			}
		}
		for _, s := range tc.dead {
			if r.Prefix([]byte(s)) {
				t.Errorf("%s: %q is a beginning", tc.expr, s)
			}
		}
	}
	for _, expr := range []string{`(?=a)`, `a\b`, `(?i)a`, `(?m)^a$`, `a{300}`, `a)(`, `[^\x00-\x{10FFFF}]`} {
		if _, err := CompileRegex(expr); err == nil {
			t.Errorf("%s: compiled", expr)
		}
	}
}

// TestRegexConstraint samples under a Regex's constraint over a small
// vocabulary (every printable byte a token too): each text is a beginning
// the automaton takes, and each that ends matches whole, by Go's regexp.
func TestRegexConstraint(t *testing.T) {
	const expr = `[A-Z]{2}-\d{2,3}( é+)?`
	r, err := CompileRegex(expr)
	if err != nil {
		t.Fatal(err)
	}
	check := regexp.MustCompile(`^(?:` + expr + `)$`)
	vocab := []string{"", "AB", "-1", "23", " é", "é", "\xc3", "\xa9"}
	for b := byte(' '); b < 0x7f; b++ {
		vocab = append(vocab, string(b))
	}
	pieces := make([][]byte, len(vocab))
	for i, v := range vocab {
		pieces[i] = []byte(v)
	}
	piece := func(id int) []byte { return pieces[id] }
	isEOG := func(id int) bool { return id == 0 }
	rng := rand.New(rand.NewPCG(7, 8))
	ended := 0
	for trial := range 200 {
		c := r.Constraint(piece, isEOG)
		smp := New(Params{Temperature: float32(trial % 3), Seed: uint64(trial)})
		logits := make([]float32, len(vocab))
		var text []byte
		for range 40 {
			for i := range logits {
				logits[i] = float32(rng.NormFloat64() * 2)
			}
			logits[0] = 3
			tok := smp.SampleAllowed(logits, nil, c)
			if tok < 0 {
				t.Fatalf("trial %d: no token after %q", trial, text)
			}
			c.Accept(tok)
			if tok == 0 {
				if !check.Match(text) {
					t.Fatalf("trial %d: ended after %q, which does not match", trial, text)
				}
				ended++
				break
			}
			text = append(text, piece(tok)...)
			if !r.Prefix(text) {
				t.Fatalf("trial %d: %q is no beginning", trial, text)
			}
		}
	}
	if ended < 100 {
		t.Errorf("%d of 200 trials ended", ended)
	}
	c := r.Constraint(piece, isEOG)
	if n := testing.AllocsPerRun(100, func() { c.Allowed(1) }); n != 0 {
		t.Errorf("Allowed allocates %v times", n)
	}
}

// FuzzRegex checks the automaton against Go's regexp: for every
// expression CompileRegex takes and every UTF-8 text, Valid is a whole
// match, and Prefix holds for every beginning of a matching text.
func FuzzRegex(f *testing.F) {
	for _, seed := range [][2]string{
		{`\d{3}-\d{4}`, "555-1234"}, {`(yes|no)+`, "yesno"}, {`é+🦙?`, "éé🦙"}, {`[a-z]*x`, "abx"},
		{`a.c`, "a\nc"}, {`(?s)a.c`, "a\nc"}, {`^a|b$`, "b"}, {`x*`, ""}, {`[^a]+`, "bé"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, expr, text string) {
		r, err := CompileRegex(expr)
		if err != nil || !utf8.ValidString(text) {
			return
		}
		want := regexp.MustCompile(`^(?:` + expr + `)$`).MatchString(text)
		if got := r.Valid([]byte(text)); got != want {
			t.Fatalf("%q on %q: Valid %v, regexp %v", expr, text, got, want)
		}
		if want {
			for i := range len(text) + 1 {
				if !r.Prefix([]byte(text[:i])) {
					t.Fatalf("%q: %q begins %q, which matches, but is no beginning", expr, text[:i], text)
				}
			}
		}
	})
}

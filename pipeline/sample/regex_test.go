package sample

import (
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
		checkTexts(t, tc.expr+" whole", r.Valid, tc.good, tc.bad)
		checkTexts(t, tc.expr+" beginning", r.Prefix, tc.prefixes, tc.dead)
	}
	for _, expr := range []string{`(?=a)`, `a\b`, `(?i)a`, `(?m)^a$`, `a{300}`, `a)(`, `[^\x00-\x{10FFFF}]`} {
		if _, err := CompileRegex(expr); err == nil {
			t.Errorf("%s: compiled", expr)
		}
	}
}

// TestRegexConstraint samples under a Regex's constraint (testConstraint):
// each text that ends matches whole by Go's regexp too; Allowed allocates
// nothing.
func TestRegexConstraint(t *testing.T) {
	const expr = `[A-Z]{2}-\d{2,3}( é+)?`
	r, err := CompileRegex(expr)
	if err != nil {
		t.Fatal(err)
	}
	vocab := []string{"", "AB", "-1", "23", " é", "é", "\xc3", "\xa9"}
	if ended := testConstraint(t, r, vocab, regexp.MustCompile(`^(?:`+expr+`)$`).Match); ended < 100 {
		t.Errorf("%d of 200 trials ended", ended)
	}
	pieces := [][]byte{nil, []byte("AB")}
	c := r.Constraint(func(id int) []byte { return pieces[id] }, func(id int) bool { return id == 0 })
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

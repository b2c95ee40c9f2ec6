package tokenizer

import (
	"slices"
	"testing"
)

// TestPreTokenizers checks the pre-token splits, hand-computed from the
// regexes (and cross-checked against Python's regex module), on the
// strings where the alternatives interact.
func TestPreTokenizers(t *testing.T) {
	tests := []struct {
		in                  string
		gpt2, llama3, qwen2 []string
		dflt                []string // nil: same as gpt2
	}{
		{"   Hello", []string{"  ", " Hello"}, []string{"  ", " Hello"}, []string{"  ", " Hello"}, nil},
		{"\n\n\n", []string{"\n\n\n"}, []string{"\n\n\n"}, []string{"\n\n\n"}, nil},
		{"3333333", []string{"3333333"}, []string{"333", "333", "3"}, []string{"3", "3", "3", "3", "3", "3", "3"},
			[]string{"333", "333", "3"}},
		{"Hello World!!!", []string{"Hello", " World", "!!!"}, []string{"Hello", " World", "!!!"}, []string{"Hello", " World", "!!!"}, nil},
		{"it's", []string{"it", "'s"}, []string{"it", "'s"}, []string{"it", "'s"}, []string{"it", "'", "s"}},
		{"IT'S", []string{"IT", "'", "S"}, []string{"IT", "'S"}, []string{"IT", "'S"}, nil},
		{"🦙🦙 ", []string{"🦙🦙", " "}, []string{"🦙🦙", " "}, []string{"🦙🦙", " "}, nil},
		{"Hello   World", []string{"Hello", "  ", " World"}, []string{"Hello", "  ", " World"}, []string{"Hello", "  ", " World"}, nil},
		{" \n\n  x", []string{" \n\n ", " x"}, []string{" \n\n", " ", " x"}, []string{" \n\n", " ", " x"}, nil},
		{"x \t y", []string{"x", " \t", " y"}, []string{"x", " \t", " y"}, []string{"x", " \t", " y"}, nil},
		{"(hello) world", []string{"(", "hello", ")", " world"}, []string{"(hello", ")", " world"}, []string{"(hello", ")", " world"}, nil},
		{"a\u00a0b", []string{"a", "\u00a0", "b"}, []string{"a", "\u00a0b"}, []string{"a", "\u00a0b"}, nil},
		{"$1,234.56", []string{"$", "1", ",", "234", ".", "56"}, []string{"$", "1", ",", "234", ".", "56"},
			[]string{"$", "1", ",", "2", "3", "4", ".", "5", "6"}, nil},
		{"don't\r\nstop", []string{"don", "'t", "\r", "\n", "stop"}, []string{"don", "'t", "\r\n", "stop"}, []string{"don", "'t", "\r\n", "stop"},
			[]string{"don", "'", "t", "\r", "\n", "stop"}},
		{"\tfoo", []string{"\t", "foo"}, []string{"\tfoo"}, []string{"\tfoo"}, nil},
		{"Hello, world!!! 1234567", []string{"Hello", ",", " world", "!!!", " 1234567"}, []string{"Hello", ",", " world", "!!!", " ", "123", "456", "7"},
			[]string{"Hello", ",", " world", "!!!", " ", "1", "2", "3", "4", "5", "6", "7"},
			[]string{"Hello", ",", " world", "!!!", " ", "123", "456", "7"}},
		{"(a+b)=c", []string{"(", "a", "+", "b", ")=", "c"}, []string{"(a", "+b", ")=", "c"}, []string{"(a", "+b", ")=", "c"}, nil},
		{"x ٣٣٣٣ y", []string{"x", " ٣٣٣٣", " y"}, []string{"x", " ", "٣٣٣", "٣", " y"}, []string{"x", " ", "٣", "٣", "٣", "٣", " y"},
			[]string{"x", " ", "٣٣٣٣", " y"}},
		{"it's a`b", []string{"it", "'s", " a", "`", "b"}, []string{"it", "'s", " a", "`b"}, []string{"it", "'s", " a", "`b"},
			[]string{"it", "'", "s", " a", "`", "b"}},
		{"x  ", []string{"x", "  "}, []string{"x", "  "}, []string{"x", "  "}, nil},
		{"", nil, nil, nil, nil},
	}
	split := func(p preTokenizer, s string) []string {
		cpts := decodeCpts(s, nil)
		var tmp []span
		var out []string
		for _, sp := range p.split(cpts, nil, &tmp) {
			out = append(out, string(cpts[sp.lo:sp.hi]))
		}
		return out
	}
	for _, tt := range tests {
		if tt.dflt == nil {
			tt.dflt = tt.gpt2
		}
		for _, c := range []struct {
			name string
			p    preTokenizer
			want []string
		}{{"gpt-2", preGPT2, tt.gpt2}, {"llama3", preLlama3, tt.llama3}, {"qwen2", preQwen2, tt.qwen2}, {"default", preDefault, tt.dflt}} {
			if got := split(c.p, tt.in); !slices.Equal(got, c.want) {
				t.Errorf("%s %q: got %q, want %q", c.name, tt.in, got, c.want)
			}
		}
	}
}

// TestDecodeCpts checks the lenient UTF-8 reading of llama.cpp.
func TestDecodeCpts(t *testing.T) {
	tests := []struct {
		in   string
		want []rune
	}{
		{"aé🦙", []rune{'a', 'é', '🦙'}},
		{"\xff", []rune{0xFFFD}},
		{"\xe2\x82x", []rune{0xFFFD, 0xFFFD, 'x'}}, // truncated: each byte
		{"\xc0\x80", []rune{0}},                    // overlong, accepted
		{"\xed\xa0\x80", []rune{0xD800}},           // surrogate, accepted
		{"\xf4\x90\x80\x80", []rune{0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}},
	}
	for _, tt := range tests {
		if got := decodeCpts(tt.in, nil); !slices.Equal(got, tt.want) {
			t.Errorf("decodeCpts(%q) = %U, want %U", tt.in, got, tt.want)
		}
		var b []byte
		for _, r := range tt.want {
			b = appendCpt(b, r)
		}
		if r := decodeCpts(string(b), nil); !slices.Equal(r, tt.want) {
			t.Errorf("appendCpt does not round-trip %U", tt.want)
		}
	}
}

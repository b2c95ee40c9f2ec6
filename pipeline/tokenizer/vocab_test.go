package tokenizer

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

// spmVocab is a small SentencePiece vocabulary with special tokens.
func spmVocab() Vocab {
	v := Vocab{Model: "llama", BOS: 1, EOS: 2, UNK: 0, PAD: -1, EOT: -1, AddBOS: true, AddSpacePrefix: true}
	add := func(s string, score float32, typ int32) {
		v.Tokens = append(v.Tokens, s)
		v.Scores = append(v.Scores, score)
		v.Types = append(v.Types, typ)
	}
	add("<unk>", 0, TypeUnknown)        // 0
	add("<s>", 0, TypeControl)          // 1
	add("</s>", 0, TypeControl)         // 2
	add("<|im_start|>", 0, TypeControl) // 3
	add("<|im_end|>", 0, TypeNormal)    // 4: control-looking, made control
	add("<tool>", 0, TypeUserDefined)   // 5
	add("<|im", 0, TypeUserDefined)     // 6: a prefix of 3
	add("▁", -1, TypeNormal)            // 7
	add("a", -2, TypeNormal)            // 8
	add("b", -2, TypeNormal)            // 9
	add("c", -2, TypeNormal)            // 10
	add("▁a", -3, TypeNormal)           // 11
	add("▁b", -3, TypeNormal)           // 12
	add("ab", -4, TypeNormal)           // 13
	add("bc", -5, TypeNormal)           // 14
	add("aa", -6, TypeNormal)           // 15
	add("▁ab", -7, TypeNormal)          // 16
	add("<0x21>", 0, TypeByte)          // 17: '!'
	add("unused", 0, TypeUnused)        // 18
	return v
}

func mustNew(t *testing.T, v Vocab) *Tokenizer {
	t.Helper()
	tok, err := New(v)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestSPMSpecial(t *testing.T) {
	tok := mustNew(t, spmVocab())
	tests := []struct {
		in                       string
		addSpecial, parseSpecial bool
		want                     []int
	}{
		{"ab", false, false, []int{16}},
		{"ab", true, false, []int{1, 16}},
		{"<|im_start|>ab", false, true, []int{3, 16}}, // dummy prefix again after a special token
		{"<|im_start|><|im_end|>", false, true, []int{3, 4}},
		{"a<tool>b", false, false, []int{11, 5, 12}},                             // user-defined: always
		{"a<|im_start|>", false, false, []int{11, 6, 7, 0, 0, 0, 8, 0, 0, 0, 0}}, // "▁_start|>": UNK but for ▁ and a
		{"!", false, false, []int{7, 17}},                                        // byte fallback; '!' is only <0x21>
		{"?", false, false, []int{7, 0}},                                         // no byte token: UNK
		{"<unk>", false, true, []int{0}},
		{"", true, true, []int{1}},
	}
	for _, tt := range tests {
		got := tok.Encode(tt.in, tt.addSpecial, tt.parseSpecial)
		if !slices.Equal(got, tt.want) {
			t.Errorf("Encode(%q, %v, %v) = %v, want %v", tt.in, tt.addSpecial, tt.parseSpecial, got, tt.want)
		}
	}
	if tok.TokenType(4) != TypeControl || !tok.IsEOG(4) || tok.EOT() != 4 {
		t.Errorf("<|im_end|>: type %d, IsEOG %v, EOT() %d; want control, EOG, EOT", tok.TokenType(4), tok.IsEOG(4), tok.EOT())
	}
	if !tok.IsEOG(2) || tok.IsEOG(1) || tok.IsEOG(-1) || tok.IsEOG(100) {
		t.Errorf("IsEOG wrong for EOS, BOS or out of range")
	}
	if got := tok.Decode([]int{3, 16, 5, 12, 4, 18}); got != " ab<tool> b" {
		t.Errorf("Decode = %q", got) // the first token is control: no space to strip
	}
	if got := tok.Decode([]int{16, 5, 12}); got != "ab<tool> b" {
		t.Errorf("Decode = %q", got)
	}
}

// TestSPMMergeOrder checks highest score first, leftmost on ties.
func TestSPMMergeOrder(t *testing.T) {
	v := Vocab{Model: "llama", Tokens: []string{"a", "b", "c", "ab", "bc", "aa"}, BOS: -1, EOS: -1, UNK: -1, PAD: -1, EOT: -1}
	tests := []struct {
		scores []float32
		in     string
		want   []int
	}{
		{[]float32{0, 0, 0, -1, -2, 0}, "abc", []int{3, 2}},
		{[]float32{0, 0, 0, -2, -1, 0}, "abc", []int{0, 4}},
		{[]float32{0, 0, 0, 0, 0, -1}, "aaa", []int{5, 0}},
		{[]float32{0, 0, 0, 0, 0, -1}, "aaaa", []int{5, 5}},
	}
	for _, tt := range tests {
		v.Scores = tt.scores
		if got := mustNew(t, v).Encode(tt.in, false, false); !slices.Equal(got, tt.want) {
			t.Errorf("scores %v: Encode(%q) = %v, want %v", tt.scores, tt.in, got, tt.want)
		}
	}
}

// TestBPEMerges checks merge ranks, ties, ignore_merges and the fallback
// for symbols that are not tokens, on a tiny byte-level vocabulary.
func TestBPEMerges(t *testing.T) {
	v := Vocab{Model: "gpt2", Pre: "gpt-2", BOS: -1, EOS: -1, UNK: -1, PAD: -1, EOT: -1,
		Tokens: []string{"a", "b", "c", "ab", "bc", "abc", "aa", "xyz", "x", "y", "z", "Ġ"},
		Merges: []string{"b c", "a b", "a bc", "a a", "Ġ x"}}
	tests := []struct {
		pre, in string
		want    []int
	}{
		{"gpt-2", "abc", []int{5}},        // "b c" before "a b", then "a bc"
		{"gpt-2", "aaa", []int{6, 0}},     // equal ranks: leftmost
		{"gpt-2", "xyz", []int{8, 9, 10}}, // no merges
		{"llama-bpe", "xyz", []int{7}},    // ignore_merges: a whole pre-token that is a token
		{"llama-bpe", "ab", []int{3}},
		{"gpt-2", " x", []int{8}}, // "Ġx" is merged but no token: the tokens of its bytes (only "x")
		{"gpt-2", "a x", []int{0, 8}},
	}
	for _, tt := range tests {
		v.Pre = tt.pre
		if got := mustNew(t, v).Encode(tt.in, true, false); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Encode(%q) = %v, want %v", tt.pre, tt.in, got, tt.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	ok := func() Vocab {
		return Vocab{Model: "gpt2", Pre: "gpt-2", Tokens: []string{"a", "b", "ab"}, Merges: []string{"a b"},
			BOS: -1, EOS: -1, UNK: -1, PAD: -1, EOT: -1}
	}
	if _, err := New(ok()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*Vocab)
		target error
		text   string
	}{
		{"model", func(v *Vocab) { v.Model = "bert" }, ErrUnsupported, `"bert"`},
		{"pre", func(v *Vocab) { v.Pre = "klingon" }, ErrUnsupported, `"klingon"`},
		{"no tokens", func(v *Vocab) { v.Tokens = nil }, ErrInvalid, "no tokens"},
		{"scores", func(v *Vocab) { v.Scores = []float32{1} }, ErrInvalid, "scores"},
		{"types", func(v *Vocab) { v.Types = []int32{1, 1} }, ErrInvalid, "types"},
		{"bos range", func(v *Vocab) { v.BOS = 3 }, ErrInvalid, "BOS"},
		{"eot range", func(v *Vocab) { v.EOT = -2 }, ErrInvalid, "EOT"},
		{"add bos", func(v *Vocab) { v.AddBOS = true }, ErrInvalid, "BOS"},
		{"add eos", func(v *Vocab) { v.AddEOS = true }, ErrInvalid, "EOS"},
		{"merge", func(v *Vocab) { v.Merges = []string{"ab"} }, ErrInvalid, "merge"},
	}
	for _, tt := range tests {
		v := ok()
		tt.change(&v)
		_, err := New(v)
		if !errors.Is(err, tt.target) || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%s: err = %v, want %v naming %s", tt.name, err, tt.target, tt.text)
		}
	}
}

// TestEmptyAndDuplicateTokens checks llama.cpp's renaming of empty token
// texts and that the last of duplicate texts wins.
func TestEmptyAndDuplicateTokens(t *testing.T) {
	tok := mustNew(t, Vocab{Model: "llama", Tokens: []string{"a", "", "a"}, BOS: -1, EOS: -1, UNK: -1, PAD: -1, EOT: -1})
	if got := tok.TokenText(1); got != "[EMPTY_1]" {
		t.Errorf("TokenText(1) = %q", got)
	}
	if id, _ := tok.ID("a"); id != 2 {
		t.Errorf("ID(a) = %d, want 2", id)
	}
	if got := tok.TokenText(3); got != "" {
		t.Errorf("TokenText(out of range) = %q", got)
	}
}

// TestConcurrentEncode runs Encode from several goroutines (run with -race).
func TestConcurrentEncode(t *testing.T) {
	tok := load(t, vocabGPT2)
	want := tok.Encode(benchText, false, false)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				if got := tok.Encode(benchText, false, false); !slices.Equal(got, want) {
					t.Error("concurrent Encode differs")
					return
				}
			}
		})
	}
	wg.Wait()
}

package tokenizer

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/strata-llm/strata/internal/testdata"
	"github.com/strata-llm/strata/pipeline/gguf"
)

// The two vocabularies whose GGUF is in the test data, with llama.cpp's
// test vectors.
const (
	vocabSPM  = "tokenizer/ggml-vocab-llama-spm.gguf"
	vocabGPT2 = "tokenizer/ggml-vocab-gpt-2.gguf"
)

var (
	loadMu sync.Mutex
	loaded = map[string]*Tokenizer{}
)

// load returns the tokenizer of a GGUF in the test data, built once.
func load(tb testing.TB, rel string) *Tokenizer {
	tb.Helper()
	path := testdata.Path(tb, rel)
	loadMu.Lock()
	defer loadMu.Unlock()
	if t, ok := loaded[rel]; ok {
		return t
	}
	f, err := gguf.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	t, err := FromGGUF(f)
	if err != nil {
		tb.Fatalf("%s: %v", rel, err)
	}
	loaded[rel] = t
	return t
}

// vectors reads llama.cpp's test strings and expected ids for a vocab.
func vectors(tb testing.TB, rel string) (inputs []string, want [][]int) {
	tb.Helper()
	inp, err := os.ReadFile(testdata.Path(tb, rel+".inp"))
	if err != nil {
		tb.Fatal(err)
	}
	out, err := os.ReadFile(testdata.Path(tb, rel+".out"))
	if err != nil {
		tb.Fatal(err)
	}
	inputs = strings.Split(string(inp), "\n__ggml_vocab_test__\n")
	if inputs[len(inputs)-1] != "" {
		tb.Fatalf("%s.inp does not end with the separator", rel)
	}
	inputs = inputs[:len(inputs)-1]
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(inputs) {
		tb.Fatalf("%s: %d inputs, %d outputs", rel, len(inputs), len(lines))
	}
	for _, l := range lines {
		ids := []int{}
		for _, f := range strings.Fields(l) {
			id, err := strconv.Atoi(f)
			if err != nil {
				tb.Fatal(err)
			}
			ids = append(ids, id)
		}
		want = append(want, ids)
	}
	return inputs, want
}

// TestVectors checks llama.cpp's tokenizer test vectors: exact ids without
// special tokens, and the round trip through Decode.
func TestVectors(t *testing.T) {
	for _, rel := range []string{vocabSPM, vocabGPT2} {
		t.Run(strings.TrimSuffix(strings.TrimPrefix(rel, "tokenizer/ggml-vocab-"), ".gguf"), func(t *testing.T) {
			tok := load(t, rel)
			inputs, want := vectors(t, rel)
			passed := 0
			for i, s := range inputs {
				got := tok.Encode(s, false, false)
				ok := true
				if !slices.Equal(got, want[i]) {
					t.Errorf("case %d %q:\n got %v\nwant %v", i, s, got, want[i])
					ok = false
				}
				if d := tok.Decode(got); d != s {
					t.Errorf("case %d: Decode(Encode(%q)) = %q", i, s, d)
					ok = false
				}
				if ok {
					passed++
				}
			}
			t.Logf("%d/%d cases pass", passed, len(inputs))
		})
	}
}

// reference is the part of a reference/*.json file that concerns the
// tokenizer.
type reference struct {
	ModelFile string `json:"model_file"`
	Cases     []struct {
		Prompt         string   `json:"prompt"`
		PromptTokens   []int    `json:"prompt_tokens"`
		TokenizeResult *[]int   `json:"tokenize_result"`
		PromptPieces   []string `json:"prompt_pieces_hex"`
		GreedyTokens   []int    `json:"greedy_tokens"`
		GreedyPieces   []string `json:"greedy_pieces_hex"`
		GreedyText     string   `json:"greedy_text"`
	} `json:"cases"`
}

// TestReferences checks the tokenizers of the reference models against
// llama.cpp's recorded prompt tokens, token pieces and generated text.
func TestReferences(t *testing.T) {
	for _, path := range testdata.Glob(t, "reference/*.json") {
		name := strings.TrimSuffix(path[strings.LastIndex(path, "/")+1:], ".json")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var ref reference
			if err := json.Unmarshal(b, &ref); err != nil {
				t.Fatal(err)
			}
			tok := load(t, ref.ModelFile)
			for _, c := range ref.Cases {
				want := c.PromptTokens
				if c.TokenizeResult != nil {
					want = *c.TokenizeResult
				}
				got := tok.Encode(c.Prompt, true, false)
				if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
					t.Errorf("Encode(%q) = %v, want %v", c.Prompt, got, want)
				}
				checkPieces(t, tok, c.PromptTokens, c.PromptPieces)
				checkPieces(t, tok, c.GreedyTokens, c.GreedyPieces)

				// greedy_text is the pieces, each made valid UTF-8 on its
				// own (so a character split over byte tokens shows as
				// U+FFFDs). A StreamDecoder joins such bytes; it must give
				// the whole byte string made valid.
				var raw []byte
				var pieces strings.Builder
				sd := tok.NewStreamDecoder(false)
				var streamed strings.Builder
				for _, id := range c.GreedyTokens {
					if id == tok.BOS() || id == tok.EOS() {
						continue
					}
					raw = append(raw, tok.Piece(id)...)
					pieces.WriteString(validString(tok.Piece(id)))
					streamed.WriteString(sd.Add(id))
				}
				streamed.WriteString(sd.Flush())
				if pieces.String() != c.GreedyText {
					t.Errorf("%q: pieces of the greedy tokens = %q, want %q", c.Prompt, pieces.String(), c.GreedyText)
				}
				if want := validString(raw); streamed.String() != want {
					t.Errorf("%q: streamed greedy text = %q, want %q", c.Prompt, streamed.String(), want)
				}
			}
		})
	}
}

// checkPieces compares Piece with llama.cpp's pieces (which render control
// tokens as their text; those are left out).
func checkPieces(t *testing.T, tok *Tokenizer, ids []int, hexes []string) {
	t.Helper()
	if len(ids) != len(hexes) {
		t.Fatalf("%d ids, %d pieces", len(ids), len(hexes))
	}
	for i, id := range ids {
		if tok.TokenType(id) == TypeControl {
			continue
		}
		want, err := hex.DecodeString(hexes[i])
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Piece(id); string(got) != string(want) {
			t.Errorf("Piece(%d) = %q, want %q", id, got, want)
		}
	}
}

// TestFromGGUFDefaults checks the values taken when keys are absent.
func TestFromGGUFDefaults(t *testing.T) {
	tests := []struct {
		file               string
		addBOS, addEOS     bool
		bos, eos, unk, eot int
		eogs               []int
		vocab              int
	}{
		// llama2.c conversions: no add_bos_token key, BOS added.
		{"models/stories260K-f32.gguf", true, false, 1, 2, 0, -1, []int{2}, 512},
		// GPT-2 vocab with pre qwen2 and no add_bos_token: no BOS added;
		// "<|endoftext|>" is EOS and, found by text, EOT.
		{"models/synth-qwen2.gguf", false, false, 50256, 50256, -1, 50256, []int{50256}, 50257},
		{vocabSPM, true, false, 1, 2, 0, -1, []int{2}, 32000},
		{vocabGPT2, false, false, 50256, 50256, -1, 50256, []int{50256}, 50257},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			tok := load(t, tt.file)
			if tok.AddBOS() != tt.addBOS || tok.AddEOS() != tt.addEOS {
				t.Errorf("AddBOS, AddEOS = %v, %v, want %v, %v", tok.AddBOS(), tok.AddEOS(), tt.addBOS, tt.addEOS)
			}
			if tok.BOS() != tt.bos || tok.EOS() != tt.eos || tok.UNK() != tt.unk || tok.EOT() != tt.eot {
				t.Errorf("BOS, EOS, UNK, EOT = %d, %d, %d, %d, want %d, %d, %d, %d",
					tok.BOS(), tok.EOS(), tok.UNK(), tok.EOT(), tt.bos, tt.eos, tt.unk, tt.eot)
			}
			if got := tok.EOGs(); !slices.Equal(got, tt.eogs) {
				t.Errorf("EOGs = %v, want %v", got, tt.eogs)
			}
			for _, id := range tt.eogs {
				if !tok.IsEOG(id) {
					t.Errorf("IsEOG(%d) = false", id)
				}
			}
			if tok.IsEOG(tt.bos) && tt.bos != tt.eos {
				t.Errorf("IsEOG(BOS) = true")
			}
			if tok.VocabSize() != tt.vocab {
				t.Errorf("VocabSize = %d, want %d", tok.VocabSize(), tt.vocab)
			}
		})
	}
}

// TestSpecialGPT2 checks parseSpecial on the GPT-2 vocabulary.
func TestSpecialGPT2(t *testing.T) {
	tok := load(t, vocabGPT2)
	text := "Hello<|endoftext|> world"
	if got, want := tok.Encode(text, false, true), []int{15496, 50256, 995}; !slices.Equal(got, want) {
		t.Errorf("parseSpecial: %v, want %v", got, want)
	}
	plain := tok.Encode(text, false, false)
	if slices.Contains(plain, 50256) {
		t.Errorf("without parseSpecial: %v holds <|endoftext|>", plain)
	}
	if d := tok.Decode(plain); d != text {
		t.Errorf("Decode = %q, want %q", d, text)
	}
	if d := tok.Decode([]int{15496, 50256, 995}); d != "Hello world" {
		t.Errorf("Decode with a control token = %q", d)
	}
	if got := tok.TokenText(50256); got != "<|endoftext|>" {
		t.Errorf("TokenText(50256) = %q", got)
	}
}

// TestSpecialSPM checks parseSpecial and BOS/EOS on the Llama 2 vocabulary.
func TestSpecialSPM(t *testing.T) {
	tok := load(t, vocabSPM)
	// After a special token the dummy prefix is added again.
	a := tok.Encode("<s>Hello", false, true)
	b := tok.Encode("Hello", false, false)
	if want := append([]int{1}, b...); !slices.Equal(a, want) {
		t.Errorf("Encode(<s>Hello, parse) = %v, want %v", a, want)
	}
	if got := tok.Encode("<s>", false, false); slices.Contains(got, 1) {
		t.Errorf("Encode(<s>) without parseSpecial = %v", got)
	}
	if got := tok.Encode("", true, false); !slices.Equal(got, []int{1}) {
		t.Errorf("Encode(\"\", addSpecial) = %v, want [1]", got)
	}
	if got := tok.Encode("", false, false); len(got) != 0 {
		t.Errorf("Encode(\"\") = %v, want []", got)
	}
	// A leading BOS keeps the space of the dummy prefix, as in llama.cpp.
	if got := tok.Decode(tok.Encode("Hello", true, false)); got != " Hello" {
		t.Errorf("Decode(Encode(Hello, addSpecial)) = %q", got)
	}
	if got := string(tok.Piece(13)); got != "\n" {
		t.Errorf("Piece(<0x0A>) = %q", got)
	}
	if got := tok.Piece(1); len(got) != 0 {
		t.Errorf("Piece(BOS) = %q", got)
	}
}

// TestByteFallback checks that text outside the SPM vocabulary goes
// through byte tokens and comes back.
func TestByteFallback(t *testing.T) {
	tok := load(t, vocabSPM)
	for _, s := range []string{"\x00\x01\xff", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🦙", "a\xe2\x82b", "\xed\xa0\x80"} {
		ids := tok.Encode(s, false, false)
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("%q: id %d out of range", s, id)
			}
		}
		if d := tok.Decode(ids); d != s {
			t.Errorf("Decode(Encode(%q)) = %q (%v)", s, d, ids)
		}
	}
}

// TestStreamDecoder feeds encoded text one id at a time.
func TestStreamDecoder(t *testing.T) {
	texts := []string{
		"Hello world",
		" leading space",
		"🦙🦙 llamas 🚀 (normal) 😶‍🌫️",
		"我想在apple工作1314151天～",
		"нещо на Български",
		"កាន់តែពិសេសអាចខលចេញ",
		"Cửa Việt\n\n\t tabs",
		"𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
	}
	for _, rel := range []string{vocabSPM, vocabGPT2} {
		tok := load(t, rel)
		for _, s := range texts {
			ids := tok.Encode(s, false, false)
			d := tok.NewStreamDecoder(true)
			var got strings.Builder
			for _, id := range ids {
				chunk := d.Add(id)
				if !isValidUTF8(chunk) {
					t.Errorf("%s %q: chunk %q splits a character", rel, s, chunk)
				}
				got.WriteString(chunk)
			}
			if rest := d.Flush(); rest != "" {
				t.Errorf("%s %q: Flush = %q", rel, s, rest)
			}
			if got.String() != s {
				t.Errorf("%s: streamed %q, want %q", rel, got.String(), s)
			}
		}
	}
}

// TestStreamDecoderInvalid checks the handling of bytes that never form a
// character.
func TestStreamDecoderInvalid(t *testing.T) {
	tok := load(t, vocabSPM)
	byteID := func(b byte) int { return tok.byteToken[b] }
	d := tok.NewStreamDecoder(false)
	steps := []struct {
		id   int
		want string
	}{
		{byteID(0xE2), ""},
		{byteID(0x82), ""},
		{byteID('x'), "\uFFFDx"}, // "\xE2\x82" is one maximal invalid subpart
		{byteID(0xF0), ""},
		{byteID(0x9F), ""},
		{byteID(0xA6), ""},
		{byteID(0x99), "🦙"},
		{byteID(0xFF), "\uFFFD"},
		{byteID(0xC3), ""},
	}
	for i, s := range steps {
		if got := d.Add(s.id); got != s.want {
			t.Errorf("step %d: Add = %q, want %q", i, got, s.want)
		}
	}
	if got := d.Flush(); got != "\uFFFD" {
		t.Errorf("Flush = %q", got)
	}
	if got := d.Flush(); got != "" {
		t.Errorf("second Flush = %q", got)
	}
}

func isValidUTF8(s string) bool {
	for i := 0; i < len(s); {
		n, st := scanUTF8([]byte(s[i:]))
		if st != utf8Valid {
			return false
		}
		i += n
	}
	return true
}

// TestLongInputs encodes 100 KB inputs of the shapes that make naive
// tokenizers quadratic (one huge pre-token, one huge whitespace run, many
// special tokens). Timings are in BenchmarkEncodeLong.
func TestLongInputs(t *testing.T) {
	for _, rel := range []string{vocabSPM, vocabGPT2} {
		tok := load(t, rel)
		for name, s := range longInputs() {
			ids := tok.Encode(s, false, true)
			if d := tok.Decode(ids); d != s && !strings.Contains(s, "<") {
				t.Errorf("%s %s: round trip differs", rel, name)
			}
		}
	}
}

func longInputs() map[string]string {
	const n = 100 << 10
	return map[string]string{
		"letters": strings.Repeat("a", n),
		"spaces":  strings.Repeat(" ", n),
		"digits":  strings.Repeat("3", n),
		"mixed":   strings.Repeat("The quick brown fox, 🦙 jumps 1234 times!\n", n/44),
		"special": strings.Repeat("<s>x<|endoftext|>", n/17),
	}
}

// validString returns b as a string with each maximal invalid UTF-8
// subpart replaced by U+FFFD.
func validString(b []byte) string {
	var out []byte
	for i := 0; i < len(b); {
		n, st := scanUTF8(b[i:])
		if st == utf8Valid {
			out = append(out, b[i:i+n]...)
		} else {
			out = append(out, "\uFFFD"...)
		}
		i += n
	}
	return string(out)
}

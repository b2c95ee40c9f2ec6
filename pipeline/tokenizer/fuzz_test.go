package tokenizer

import (
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/strata-llm/strata/internal/testdata"
)

// FuzzEncode encodes arbitrary text with both reference vocabularies: ids
// in range, lossless round trips for valid UTF-8, and streaming decoding
// that agrees with Decode. (Invalid UTF-8 need not survive: the SPM
// tokenizer cuts characters by their first byte, so "\xc2 " swallows the
// first byte of the "▁" that stands for the space, as in llama.cpp; the
// byte-level one reads invalid bytes as U+FFFD.)
func FuzzEncode(f *testing.F) {
	spm := load(f, vocabSPM)
	gpt2 := load(f, vocabGPT2)
	if inp, err := os.ReadFile(testdata.Path(f, vocabSPM+".inp")); err == nil {
		for _, s := range strings.Split(string(inp), "\n__ggml_vocab_test__\n") {
			f.Add(s)
		}
	}
	f.Add("<s>Hello<|endoftext|> world</s>")
	f.Add("a\xe2\x82b\xff\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80")
	f.Fuzz(func(t *testing.T, s string) {
		for _, tc := range []struct {
			name     string
			tok      *Tokenizer
			lossless bool
		}{
			{"spm", spm, utf8.ValidString(s)},
			{"gpt2", gpt2, utf8.ValidString(s)},
		} {
			ids := tc.tok.Encode(s, false, false)
			for _, id := range ids {
				if id < 0 || id >= tc.tok.VocabSize() {
					t.Fatalf("%s: id %d out of range", tc.name, id)
				}
			}
			d := tc.tok.Decode(ids)
			if tc.lossless && d != s {
				t.Fatalf("%s: Decode(Encode(%q)) = %q", tc.name, s, d)
			}
			sd := tc.tok.NewStreamDecoder(true)
			var streamed strings.Builder
			for _, id := range ids {
				chunk := sd.Add(id)
				if !utf8.ValidString(chunk) {
					t.Fatalf("%s: chunk %q is not valid UTF-8", tc.name, chunk)
				}
				streamed.WriteString(chunk)
			}
			streamed.WriteString(sd.Flush())
			if want := validString([]byte(d)); streamed.String() != want {
				t.Fatalf("%s: streamed %q, want %q", tc.name, streamed.String(), want)
			}
			for _, id := range tc.tok.Encode(s, true, true) {
				if id < 0 || id >= tc.tok.VocabSize() {
					t.Fatalf("%s: id %d out of range with special tokens", tc.name, id)
				}
			}
		}
	})
}

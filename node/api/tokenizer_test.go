package api_test

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/strata-llm/strata/internal/testdata"
	"github.com/strata-llm/strata/node/api"
	"github.com/strata-llm/strata/node/api/apitest"
	"github.com/strata-llm/strata/pipeline/gguf"
	"github.com/strata-llm/strata/pipeline/tokenizer"
)

// loadTokenizer reads the tokenizer and chat template of a GGUF file of
// the test data, and adapts them with NewTokenizer.
func loadTokenizer(t *testing.T, file string) (*tokenizer.Tokenizer, api.Tokenizer) {
	t.Helper()
	f, err := gguf.Open(testdata.Path(t, file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	chat, err := tokenizer.ChatTemplateFromGGUF(f, tok)
	if err != nil {
		t.Fatal(err)
	}
	return tok, api.NewTokenizer(tok, chat)
}

// TestNewTokenizer serves a chat with a real model's tokenizer and its
// fallback chat template (stories260K ships none): the Generator gets the
// transcript's tokens after one BOS, and the reply's tokens come back as
// its text, streamed or not.
func TestNewTokenizer(t *testing.T) {
	tok, text := loadTokenizer(t, "models/stories260K-f32.gguf")
	if text.BOS() != tok.BOS() || !text.IsSpecial(tok.EOS()) || text.IsSpecial(tok.Encode("a", false, false)[0]) {
		t.Errorf("BOS %d, special EOS %v", text.BOS(), text.IsSpecial(tok.EOS()))
	}

	// Generated after the prompt, "Once" is "▁Once": the reply keeps the
	// space, which Encode's dummy prefix stands for here.
	const reply = " Once upon a time, there was a little girl."
	gen := &apitest.Generator{Tokens: tok.Encode(strings.TrimPrefix(reply, " "), false, false), EOG: tok.EOS()}
	pipe := apitest.NewPipeline("stories260K", 128)
	pipe.Model.VocabSize = tok.VocabSize()
	s := api.New(api.Config{Logger: slog.New(slog.DiscardHandler)}, gen, text, pipe)

	for _, stream := range []bool{false, true} {
		body := `{"model":"stories260K","messages":[{"role":"user","content":"Tell me a story."}],"stream":` +
			map[bool]string{true: "true", false: "false"}[stream] + `}`
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body)))
		if rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var got string
		if stream {
			for _, e := range sseData(t, rec.Body.Bytes()) {
				var c struct {
					Choices []struct {
						Delta struct{ Content string } `json:"delta"`
					} `json:"choices"`
				}
				if e != "[DONE]" && json.Unmarshal([]byte(e), &c) == nil && len(c.Choices) > 0 {
					got += c.Choices[0].Delta.Content
				}
			}
		} else {
			var r chatResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			got = r.Choices[0].Message.Content
		}
		if got != reply {
			t.Errorf("stream %v: reply %q, want %q", stream, got, reply)
		}
	}
	want := tok.Encode("User: Tell me a story.\nAssistant:", true, true)
	if got := gen.Requests()[0].Prompt; !slices.Equal(got, want) || got[0] != tok.BOS() || got[1] == tok.BOS() {
		t.Errorf("prompt %v, want %v", got, want)
	}
}

// TestTokenizeSpans checks /tokenize with real vocabularies (sentencepiece
// with its dummy prefix and byte fallback, byte-level BPE): the tokens are
// the generation routes' and their spans cover the input in order.
func TestTokenizeSpans(t *testing.T) {
	inputs := []string{"Once upon a time", " a leading space", "two  spaces", "héllo wörld 🦙", "tab\tand\nnewline", "<s>x</s>"}
	for _, file := range []string{"models/stories260K-f32.gguf", "tokenizer/ggml-vocab-llama-spm.gguf", "tokenizer/ggml-vocab-gpt-2.gguf"} {
		t.Run(file, func(t *testing.T) {
			tok, text := loadTokenizer(t, file)
			s := api.New(api.Config{Logger: slog.New(slog.DiscardHandler)}, &apitest.Generator{}, text, apitest.NewPipeline("m", 128))
			for _, in := range inputs {
				body, _ := json.Marshal(map[string]string{"inputs": in})
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, httptest.NewRequest("POST", "/tokenize", strings.NewReader(string(body))))
				var got []simpleToken
				if err := json.Unmarshal(rec.Body.Bytes(), &got); rec.Code != 200 || err != nil {
					t.Fatalf("%q: status %d: %s", in, rec.Code, rec.Body)
				}
				var ids []int
				var spanned strings.Builder
				at := 0
				for _, st := range got {
					ids = append(ids, st.ID)
					if st.Start != at || st.Stop < st.Start {
						t.Errorf("%q: token %+v does not start where the last stopped (%d)", in, st, at)
						break
					}
					spanned.WriteString(in[st.Start:st.Stop])
					at = st.Stop
				}
				if want := tok.Encode(in, true, true); !slices.Equal(ids, want) {
					t.Errorf("%q: ids %v, want %v", in, ids, want)
				}
				if spanned.String() != in {
					t.Errorf("%q: spans cover %q: %s", in, spanned.String(), rec.Body)
				}
			}
		})
	}
}

package testdata

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// Reference is one of llama.cpp's recorded outputs in reference/*.json (the
// layout is described in that folder's README).
type Reference struct {
	File      string `json:"-"` // path of the JSON file
	ModelFile string `json:"model_file"`
	Input     string `json:"llama_cpp_input"` // set for the .dequant-f32 files
	Cases     []Case `json:"cases"`
}

// Case is one prompt of a Reference.
type Case struct {
	Prompt          string    `json:"prompt"`
	PromptTokens    []int     `json:"prompt_tokens"`
	TokenizeResult  []int     `json:"tokenize_result"` // what the tokenizer returned, when it differs in meaning from PromptTokens
	GreedyTokens    []int     `json:"greedy_tokens"`
	GreedyText      string    `json:"greedy_text"`
	Steps           []Step    `json:"steps_top10"`
	FirstStepLogits []float32 `json:"first_step_logits"`
	ServerCheck     struct {
		CompletionContent string `json:"completion_content"`
	} `json:"server_check"`
}

// TextMatches reports whether generated text agrees with llama.cpp's:
// greedy_text, which replaces invalid UTF-8 piece by piece, or else the text
// llama-server streamed for the same tokens, where byte tokens that together
// form a valid character are joined (as a streaming detokenizer must).
func (c *Case) TextMatches(text string) bool {
	return text == c.GreedyText || (c.ServerCheck.CompletionContent != "" && text == c.ServerCheck.CompletionContent)
}

// Step is the top-10 logits at one generated position.
type Step struct {
	Step   int `json:"step"`
	Chosen int `json:"chosen"`
	Top10  []struct {
		ID    int     `json:"id"`
		Logit float32 `json:"logit"`
	} `json:"top10"`
}

// Gap is the recorded difference between the two highest logits.
func (s Step) Gap() float32 { return s.Top10[0].Logit - s.Top10[1].Logit }

// Dequantized reports whether llama.cpp ran this reference on an F32 copy of
// the model's dequantized weights (the .dequant-f32.json files).
func (r *Reference) Dequantized() bool {
	return strings.HasSuffix(r.File, ".dequant-f32.json")
}

// LoadReference reads a reference file.
func LoadReference(tb testing.TB, path string) *Reference {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	r := &Reference{File: path}
	if err := json.Unmarshal(b, r); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return r
}

// References loads every reference/*.json file.
func References(tb testing.TB) []*Reference {
	tb.Helper()
	var refs []*Reference
	for _, p := range Glob(tb, "reference/*.json") {
		refs = append(refs, LoadReference(tb, p))
	}
	return refs
}

// ModelPath is the path of the reference's model file.
func (r *Reference) ModelPath(tb testing.TB) string {
	tb.Helper()
	return Path(tb, r.ModelFile)
}

package tokenizer

import (
	"fmt"

	"github.com/strata-llm/strata/pipeline/gguf"
)

// VocabFromGGUF reads the tokenizer.ggml.* metadata of f. Absent keys take
// llama.cpp's defaults: for "llama", BOS 1, EOS 2, UNK 0, add_bos_token
// true and add_space_prefix true; for "gpt2", no special ids, add_bos_token
// false (true for the llama3 pre-tokenizers) and add_space_prefix false;
// add_eos_token false. A special id out of range counts as absent, as in
// llama.cpp. The slices of the Vocab are shared with f and must not be
// modified.
func VocabFromGGUF(f *gguf.File) (Vocab, error) {
	v := Vocab{BOS: -1, EOS: -1, UNK: -1, PAD: -1, EOT: -1}
	var ok bool
	if v.Model, ok = f.String("tokenizer.ggml.model"); !ok {
		return Vocab{}, fmt.Errorf("tokenizer: no string tokenizer.ggml.model: %w", ErrInvalid)
	}
	v.Pre, _ = f.String("tokenizer.ggml.pre")
	if v.Tokens, ok = f.Strings("tokenizer.ggml.tokens"); !ok {
		return Vocab{}, fmt.Errorf("tokenizer: no string array tokenizer.ggml.tokens: %w", ErrInvalid)
	}
	if _, present := f.Get("tokenizer.ggml.scores"); present {
		if v.Scores, ok = f.Float32s("tokenizer.ggml.scores"); !ok {
			return Vocab{}, fmt.Errorf("tokenizer: tokenizer.ggml.scores is not a float32 array: %w", ErrInvalid)
		}
	}
	if _, present := f.Get("tokenizer.ggml.token_type"); present {
		if v.Types, ok = f.Int32s("tokenizer.ggml.token_type"); !ok {
			return Vocab{}, fmt.Errorf("tokenizer: tokenizer.ggml.token_type is not an integer array: %w", ErrInvalid)
		}
	}
	switch v.Model {
	case "llama":
		v.BOS, v.EOS, v.UNK = 1, 2, 0
		v.AddSpacePrefix = true
	case "gpt2":
		if v.Merges, ok = f.Strings("tokenizer.ggml.merges"); !ok {
			return Vocab{}, fmt.Errorf("tokenizer: gpt2 vocabulary without tokenizer.ggml.merges: %w", ErrInvalid)
		}
	default:
		return Vocab{}, fmt.Errorf("tokenizer: model %q: %w", v.Model, ErrUnsupported)
	}
	v.AddBOS = defaultAddBOS(v.Model, v.Pre)
	n := uint64(len(v.Tokens))
	for _, k := range []struct {
		key string
		id  *int
	}{
		{"tokenizer.ggml.bos_token_id", &v.BOS},
		{"tokenizer.ggml.eos_token_id", &v.EOS},
		{"tokenizer.ggml.unknown_token_id", &v.UNK},
		{"tokenizer.ggml.padding_token_id", &v.PAD},
		{"tokenizer.ggml.eot_token_id", &v.EOT},
	} {
		if id, ok := f.Uint(k.key); ok && id < n {
			*k.id = int(id)
		}
	}
	for _, id := range []*int{&v.BOS, &v.EOS, &v.UNK} {
		if uint64(*id) >= n { // a default beyond a tiny vocabulary
			*id = -1
		}
	}
	if b, ok := f.Bool("tokenizer.ggml.add_bos_token"); ok {
		v.AddBOS = b
	}
	if b, ok := f.Bool("tokenizer.ggml.add_eos_token"); ok {
		v.AddEOS = b
	}
	if b, ok := f.Bool("tokenizer.ggml.add_space_prefix"); ok {
		v.AddSpacePrefix = b
	}
	return v, nil
}

// FromGGUF builds the Tokenizer that f's tokenizer.ggml.* metadata
// describes (see VocabFromGGUF). The Tokenizer does not refer to f
// afterwards; f may be closed.
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	v, err := VocabFromGGUF(f)
	if err != nil {
		return nil, err
	}
	return New(v)
}

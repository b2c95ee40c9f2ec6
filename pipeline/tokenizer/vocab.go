package tokenizer

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Token types, as stored in tokenizer.ggml.token_type.
const (
	TypeUndefined   = 0
	TypeNormal      = 1
	TypeUnknown     = 2
	TypeControl     = 3
	TypeUserDefined = 4
	TypeUnused      = 5
	TypeByte        = 6
)

// ErrUnsupported is wrapped by the errors about a tokenizer model or
// pre-tokenizer type that this package does not implement.
var ErrUnsupported = errors.New("unsupported tokenizer")

// ErrInvalid is wrapped by the errors about malformed vocabularies.
var ErrInvalid = errors.New("invalid vocabulary")

// Vocab is a tokenizer's description, as a GGUF file stores it under
// tokenizer.ggml.*. New builds a Tokenizer from it; VocabFromGGUF reads it
// from a file, applying llama.cpp's defaults for absent keys.
type Vocab struct {
	// Model is tokenizer.ggml.model: "llama" (SentencePiece-style BPE) or
	// "gpt2" (byte-level BPE).
	Model string
	// Pre is tokenizer.ggml.pre, the gpt2 pre-tokenizer: "gpt-2",
	// "llama-bpe" (aliases "llama3", "llama-v3", "falcon3"), "qwen2", ...,
	// or "default" (also when empty), llama.cpp's fallback, which splits
	// punctuation runs and digit triples apart besides gpt-2's rules. It
	// is ignored for "llama".
	Pre string
	// Tokens are the token texts, indexed by id (tokenizer.ggml.tokens).
	Tokens []string
	// Scores are the SentencePiece merge scores (tokenizer.ggml.scores);
	// nil means all zero.
	Scores []float32
	// Types are the token types (TypeNormal ... TypeByte), from
	// tokenizer.ggml.token_type; nil means all normal.
	Types []int32
	// Merges are the gpt2 merges "left right", highest priority first
	// (tokenizer.ggml.merges). Ignored for "llama".
	Merges []string
	// BOS, EOS, UNK, PAD and EOT are special token ids, -1 when absent
	// (tokenizer.ggml.bos_token_id, eos_token_id, unknown_token_id,
	// padding_token_id, eot_token_id). An absent EOT is looked for by text
	// ("<|eot_id|>", "<|im_end|>", ...) as llama.cpp does.
	BOS, EOS, UNK, PAD, EOT int
	// AddBOS and AddEOS say whether Encode with addSpecial adds BOS / EOS
	// (tokenizer.ggml.add_bos_token, add_eos_token).
	AddBOS, AddEOS bool
	// AddSpacePrefix is tokenizer.ggml.add_space_prefix: "llama" prepends a
	// space to the text (and after each special token), and Decode removes
	// it again from the first token.
	AddSpacePrefix bool
}

// Tokenizer encodes text to token ids and decodes ids to text. It is
// immutable and safe for concurrent use.
type Tokenizer struct {
	spm    bool // "llama"; else "gpt2"
	pre    preTokenizer
	tokens []string
	// scoreKeys are the scores as SPM queue priorities (see scoreKey).
	scoreKeys []uint32
	types     []int32 // effective types, after llama.cpp's overrides
	toID      map[string]int

	bos, eos, unk, pad, eot int
	addBOS, addEOS          bool
	addSpacePrefix          bool
	ignoreMerges            bool

	eog      map[int]bool
	specials []int // control, user-defined and unknown ids, longest text first

	// byteToken is the SPM byte-fallback token of each byte ("<0xXX>",
	// else the byte itself as a token, else UNK; -1 for none).
	byteToken [256]int

	bpe *bpeModel // gpt2 only

	// pieces holds every token's Piece: piece i is
	// pieceBuf[pieceOff[i]:pieceOff[i+1]].
	pieceBuf []byte
	pieceOff []int32
}

// Texts llama.cpp recognizes as special even when the GGUF does not say so
// (llama-vocab.cpp, "auto-detect special tokens by text"). Each found one is
// made a control token.
var (
	eotTexts = []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
		"<|endoftext|>", "<EOT>", "_<EOT>", "<｜end▁of▁sentence｜>"}
	eomTexts    = []string{"<|eom_id|>"}
	fimPreTexts = []string{"<|fim_prefix|>", "<fim-prefix>", "<｜fim▁begin｜>", "<PRE>"}
	fimSufTexts = []string{"<|fim_suffix|>", "<fim-suffix>", "<｜fim▁hole｜>", "<SUF>"}
	fimMidTexts = []string{"<|fim_middle|>", "<fim-middle>", "<｜fim▁end｜>", "<MID>"}
	fimPadTexts = []string{"<|fim_pad|>", "<fim-pad>", "<PAD>"}
	fimRepTexts = []string{"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"}
	fimSepTexts = []string{"<|file_sep|>"}
	// eogTexts end generation wherever they are in the vocabulary.
	eogTexts = []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
		"<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>"}
)

// New validates v and builds its Tokenizer. The Tokenizer copies what it
// keeps; v may be reused.
func New(v Vocab) (*Tokenizer, error) {
	n := len(v.Tokens)
	t := &Tokenizer{
		tokens:         make([]string, n),
		scoreKeys:      make([]uint32, n),
		types:          make([]int32, n),
		toID:           make(map[string]int, n),
		bos:            v.BOS,
		eos:            v.EOS,
		unk:            v.UNK,
		pad:            v.PAD,
		eot:            v.EOT,
		addBOS:         v.AddBOS,
		addEOS:         v.AddEOS,
		addSpacePrefix: v.AddSpacePrefix,
		eog:            make(map[int]bool),
	}
	switch v.Model {
	case "llama":
		t.spm = true
	case "gpt2":
		p, ok := preTokenizers[v.Pre]
		if !ok {
			return nil, fmt.Errorf("tokenizer: pre-tokenizer %q: %w", v.Pre, ErrUnsupported)
		}
		t.pre = p.kind
		t.ignoreMerges = p.ignoreMerges
	default:
		return nil, fmt.Errorf("tokenizer: model %q: %w", v.Model, ErrUnsupported)
	}
	if n == 0 {
		return nil, fmt.Errorf("tokenizer: no tokens: %w", ErrInvalid)
	}
	if v.Scores != nil && len(v.Scores) != n {
		return nil, fmt.Errorf("tokenizer: %d scores for %d tokens: %w", len(v.Scores), n, ErrInvalid)
	}
	if v.Types != nil && len(v.Types) != n {
		return nil, fmt.Errorf("tokenizer: %d token types for %d tokens: %w", len(v.Types), n, ErrInvalid)
	}
	for _, s := range []struct {
		name string
		id   int
	}{{"BOS", v.BOS}, {"EOS", v.EOS}, {"UNK", v.UNK}, {"PAD", v.PAD}, {"EOT", v.EOT}} {
		if s.id < -1 || s.id >= n {
			return nil, fmt.Errorf("tokenizer: %s id %d out of range [0, %d): %w", s.name, s.id, n, ErrInvalid)
		}
	}
	if v.AddBOS && v.BOS < 0 {
		return nil, fmt.Errorf("tokenizer: add_bos_token is set but there is no BOS token: %w", ErrInvalid)
	}
	if v.AddEOS && v.EOS < 0 {
		return nil, fmt.Errorf("tokenizer: add_eos_token is set but there is no EOS token: %w", ErrInvalid)
	}

	for i, s := range v.Tokens {
		if s == "" {
			// llama.cpp renames empty tokens so that they can never match.
			s = "[EMPTY_" + strconv.Itoa(i) + "]"
		}
		t.tokens[i] = s
		t.toID[s] = i // the last of duplicate texts wins, as in llama.cpp
		t.types[i] = TypeNormal
		if v.Types != nil {
			t.types[i] = v.Types[i]
			if t.types[i] < TypeUndefined || t.types[i] > TypeByte {
				t.types[i] = TypeUndefined
			}
		}
	}
	for i := range t.scoreKeys {
		var f float32
		if v.Scores != nil {
			f = v.Scores[i]
		}
		t.scoreKeys[i] = scoreKey(f)
	}

	t.findSpecial()

	for id := range t.tokens {
		switch t.types[id] {
		case TypeControl, TypeUserDefined, TypeUnknown:
			t.specials = append(t.specials, id)
		}
	}
	// Longest first; llama.cpp's sort is unstable, ties here go by id.
	slices.SortStableFunc(t.specials, func(a, b int) int {
		return cmp.Compare(len(t.tokens[b]), len(t.tokens[a]))
	})

	if t.spm {
		const hex = "0123456789ABCDEF"
		for b := range 256 {
			id, ok := t.toID[string([]byte{'<', '0', 'x', hex[b>>4], hex[b&15], '>'})]
			if !ok {
				id, ok = t.toID[string([]byte{byte(b)})]
			}
			if !ok {
				// llama.cpp fails here (std::map::at); UNK is the
				// useful answer.
				id = t.unk
			}
			t.byteToken[b] = id
		}
	} else {
		m, err := newBPEModel(t.toID, n, v.Merges)
		if err != nil {
			return nil, err
		}
		t.bpe = m
	}
	t.buildPieces()
	return t, nil
}

// findSpecial finds EOT, EOM, FIM and end-of-generation tokens by text and
// gives them the control type, as llama.cpp does at load time.
func (t *Tokenizer) findSpecial() {
	find := func(texts []string) int {
		best := -1
		for _, s := range texts {
			if id, ok := t.toID[s]; ok && (best < 0 || id < best) {
				best = id
			}
		}
		if best >= 0 {
			t.types[best] = TypeControl
		}
		return best
	}
	if t.eot < 0 {
		t.eot = find(eotTexts)
	}
	eom := find(eomTexts)
	find(fimPreTexts)
	find(fimSufTexts)
	find(fimMidTexts)
	for _, id := range []int{find(fimPadTexts), find(fimRepTexts), find(fimSepTexts)} {
		if id >= 0 {
			t.eog[id] = true
		}
	}
	for _, s := range eogTexts {
		if id, ok := t.toID[s]; ok {
			t.eog[id] = true
			t.types[id] = TypeControl
		}
	}
	for _, id := range []int{t.eos, t.eot, eom} {
		if id >= 0 {
			t.eog[id] = true
		}
	}
}

// buildPieces renders every token once.
func (t *Tokenizer) buildPieces() {
	t.pieceOff = make([]int32, len(t.tokens)+1)
	for id, s := range t.tokens {
		switch t.types[id] {
		case TypeUserDefined:
			t.pieceBuf = append(t.pieceBuf, s...)
		case TypeNormal:
			if t.spm {
				t.pieceBuf = append(t.pieceBuf, strings.ReplaceAll(s, "▁", " ")...)
			} else {
				t.pieceBuf = appendByteDecoded(t.pieceBuf, s)
			}
		case TypeByte:
			if t.spm {
				t.pieceBuf = append(t.pieceBuf, byteTokenValue(s))
			}
		}
		// Control, unknown, unused and undefined tokens render as nothing
		// (llama.cpp's token_to_piece with special = false).
		t.pieceOff[id+1] = int32(len(t.pieceBuf))
	}
}

// byteTokenValue parses "<0xXX>" as llama.cpp does (strtol of the two
// characters after "<0x"; 0 when they are not hex).
func byteTokenValue(s string) byte {
	if len(s) < 3 {
		return 0
	}
	h := s[3:min(len(s), 5)]
	var v byte
	for i := 0; i < len(h); i++ {
		c := h[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return v
		}
		v = v<<4 | d
	}
	return v
}

// VocabSize returns the number of tokens.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// BOS returns the beginning-of-sequence token id, or -1.
func (t *Tokenizer) BOS() int { return t.bos }

// EOS returns the end-of-sequence token id, or -1.
func (t *Tokenizer) EOS() int { return t.eos }

// EOT returns the end-of-turn token id (from the vocabulary or found by
// text), or -1.
func (t *Tokenizer) EOT() int { return t.eot }

// UNK returns the unknown token id, or -1.
func (t *Tokenizer) UNK() int { return t.unk }

// PAD returns the padding token id, or -1.
func (t *Tokenizer) PAD() int { return t.pad }

// AddBOS reports whether Encode with addSpecial prepends BOS.
func (t *Tokenizer) AddBOS() bool { return t.addBOS }

// AddEOS reports whether Encode with addSpecial appends EOS.
func (t *Tokenizer) AddEOS() bool { return t.addEOS }

// IsEOG reports whether id ends generation: EOS, EOT, and the tokens
// llama.cpp recognizes by text ("<|im_end|>", "<|eot_id|>",
// "<|endoftext|>", "<|eom_id|>", "<end_of_turn>", FIM pad/repo/sep, ...).
func (t *Tokenizer) IsEOG(id int) bool { return t.eog[id] }

// EOGs returns the end-of-generation ids in increasing order, in a new
// slice.
func (t *Tokenizer) EOGs() []int {
	ids := make([]int, 0, len(t.eog))
	for id := range t.eog {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// TokenText returns the vocabulary string of id as stored ("▁the",
// "<0x0A>", "Ġthe", "<s>"), or "" when id is out of range. Empty vocabulary
// strings read "[EMPTY_<id>]", as in llama.cpp.
func (t *Tokenizer) TokenText(id int) string {
	if id < 0 || id >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// TokenType returns the type of id (TypeNormal ... TypeByte) after
// llama.cpp's overrides (control-looking texts such as "<|im_end|>" are
// TypeControl), or TypeUndefined when id is out of range.
func (t *Tokenizer) TokenType(id int) int32 {
	if id < 0 || id >= len(t.types) {
		return TypeUndefined
	}
	return t.types[id]
}

// ID returns the id of the token whose vocabulary string is text.
func (t *Tokenizer) ID(text string) (int, bool) {
	id, ok := t.toID[text]
	return id, ok
}

package api

import (
	"github.com/strata-llm/strata/pipeline/tokenizer"
)

// NewTokenizer adapts a model's tokenizer and chat template (from
// tokenizer.FromGGUF and tokenizer.ChatTemplateFromGGUF) to Tokenizer.
func NewTokenizer(t *tokenizer.Tokenizer, chat *tokenizer.ChatTemplate) Tokenizer {
	return &modelText{t: t, chat: chat}
}

// modelText is the Tokenizer of a real model.
type modelText struct {
	t    *tokenizer.Tokenizer
	chat *tokenizer.ChatTemplate
}

func (m *modelText) Encode(text string, addSpecial, parseSpecial bool) []int {
	return m.t.Encode(text, addSpecial, parseSpecial)
}

// NewDecoder decodes a continuation: the first generated token keeps its
// leading space, since the prompt comes before it.
func (m *modelText) NewDecoder() Decoder { return m.t.NewStreamDecoder(false) }

func (m *modelText) Piece(id int) []byte { return m.t.Piece(id) }

func (m *modelText) TokenText(id int) string { return m.t.TokenText(id) }

func (m *modelText) IsSpecial(id int) bool { return m.t.TokenType(id) == tokenizer.TypeControl }

func (m *modelText) BOS() int {
	if !m.t.AddBOS() {
		return -1
	}
	return m.t.BOS()
}

func (m *modelText) ApplyChatTemplate(msgs []tokenizer.ChatMessage, opts tokenizer.ChatOptions) (string, error) {
	return m.chat.Apply(msgs, opts)
}

func (m *modelText) ChatTemplateSource() string { return m.chat.Source() }

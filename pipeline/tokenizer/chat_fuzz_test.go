package tokenizer

import (
	"errors"
	"testing"
)

// FuzzChatTemplate compiles and renders arbitrary templates: a template
// comes from a model file, so whatever it holds must end in a rendering or
// an error wrapping ErrChatTemplate, within the limits, and never a panic.
func FuzzChatTemplate(f *testing.F) {
	for _, src := range []string{
		tmplLlama2, tmplLlama3, tmplLlama32, tmplChatML, tmplQwen2, tmplQwen25,
		tmplMistralV02, tmplMistralV03, tmplGemma, tmplPhi3, ChatMLTemplate, TranscriptTemplate,
		`{% set ns = namespace(n=0) %}{% for x in range(5) if x is odd %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}`,
		`{% macro m(a, b=2) %}{{ a ~ b }}{% endmacro %}{{ m(1) }}{{ m(1, b=[1, {'a': none}]|tojson) }}`,
		`{{ 'x'[::-1] }}{{ (1, 2)[0] }}{{ {'a': 1}.get('a') }}{{ messages|map(attribute='role')|join }}`,
		"{%- if true -%}\n  {{- 'a' -}}\n{%- endif -%}{% raw %}{{{% endraw %}{# c #}",
	} {
		f.Add(src)
	}
	vars := map[string]any{"tools": []any{weatherTool}}
	f.Fuzz(func(t *testing.T, src string) {
		c, err := NewChatTemplate(src, "<s>", "</s>")
		if err != nil {
			if !errors.Is(err, ErrChatTemplate) {
				t.Fatalf("parse error %v does not wrap ErrChatTemplate", err)
			}
			return
		}
		for _, msgs := range [][]ChatMessage{convSys, convNoSys, nil} {
			out, err := c.Apply(msgs, ChatOptions{AddGenerationPrompt: true, Vars: vars, Now: testNow})
			if err != nil {
				if !errors.Is(err, ErrChatTemplate) {
					t.Fatalf("render error %v does not wrap ErrChatTemplate", err)
				}
				continue
			}
			if len(out) > chatMaxOutput {
				t.Fatalf("output of %d bytes exceeds the limit", len(out))
			}
		}
	})
}

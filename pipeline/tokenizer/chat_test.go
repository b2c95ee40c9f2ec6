package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strata-llm/strata/internal/testdata"
	"github.com/strata-llm/strata/pipeline/gguf"
)

// Conversations of the model template tests. The spaces around "Hello!"
// and after "Hi there." show which templates trim content.
var (
	convSys = []ChatMessage{
		{Role: "system", Content: "You are terse."},
		{Role: "user", Content: " Hello! "},
		{Role: "assistant", Content: "Hi there. "},
		{Role: "user", Content: "What is 2+2?"},
	}
	convNoSys = []ChatMessage{
		{Role: "user", Content: "Hello!"},
		{Role: "assistant", Content: "Hi there."},
		{Role: "user", Content: "What is 2+2?"},
	}
	weatherTool = map[string]any{
		"type": "function",
		"function": map[string]any{
			"name":        "get_weather",
			"description": "Get the weather",
			"parameters": map[string]any{
				"type":       "object",
				"properties": map[string]any{"city": map[string]any{"type": "string"}},
				"required":   []any{"city"},
			},
		},
	}
	testNow = time.Date(2025, time.March, 5, 14, 7, 0, 0, time.UTC)
)

// TestChatTemplateModels renders the templates real models ship, with
// expected prompts written by hand from the templates' Jinja semantics.
func TestChatTemplateModels(t *testing.T) {
	const weatherJSON = `{"function": {"description": "Get the weather", "name": "get_weather", "parameters": {"properties": {"city": {"type": "string"}}, "required": ["city"], "type": "object"}}, "type": "function"}`
	const weatherJSON4 = `{
    "function": {
        "description": "Get the weather",
        "name": "get_weather",
        "parameters": {
            "properties": {
                "city": {
                    "type": "string"
                }
            },
            "required": [
                "city"
            ],
            "type": "object"
        }
    },
    "type": "function"
}`
	tools := map[string]any{"tools": []any{weatherTool}}
	for _, tc := range []struct {
		name     string
		tmpl     string
		bos, eos string
		msgs     []ChatMessage
		gen      bool
		vars     map[string]any
		want     string
	}{
		{
			name: "llama2/system", tmpl: tmplLlama2, bos: "<s>", eos: "</s>", msgs: convSys, gen: true,
			want: "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\n Hello! [/INST] Hi there. </s><s>[INST] What is 2+2? [/INST]",
		},
		{
			name: "llama2/no-system", tmpl: tmplLlama2, bos: "<s>", eos: "</s>", msgs: convNoSys,
			want: "<s>[INST] Hello! [/INST] Hi there. </s><s>[INST] What is 2+2? [/INST]",
		},
		{
			name: "llama3", tmpl: tmplLlama3, bos: "<|begin_of_text|>", eos: "<|eot_id|>", msgs: convSys, gen: true,
			want: "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\nHi there.<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\n",
		},
		{
			name: "llama3/no-generation-prompt", tmpl: tmplLlama3, bos: "<|begin_of_text|>", eos: "<|eot_id|>", msgs: convNoSys[:1],
			want: "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>",
		},
		{
			name: "llama3.2", tmpl: tmplLlama32, bos: "<|begin_of_text|>", eos: "<|eot_id|>", msgs: convSys, gen: true,
			want: "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" +
				"Cutting Knowledge Date: December 2023\nToday Date: 05 Mar 2025\n\nYou are terse.<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\nHi there.<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\n",
		},
		{
			name: "llama3.2/tools", tmpl: tmplLlama32, bos: "<|begin_of_text|>", eos: "<|eot_id|>", gen: true,
			msgs: []ChatMessage{{Role: "user", Content: "Weather in Paris?"}}, vars: tools,
			want: "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" +
				"Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 05 Mar 2025\n\n<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\n" +
				"Given the following functions, please respond with a JSON for a function call " +
				"with its proper arguments that best answers the given prompt.\n\n" +
				`Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.` +
				"Do not use variables.\n\n" + weatherJSON4 + "\n\n" +
				"Weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
		},
		{
			name: "llama3.2/date-string", tmpl: tmplLlama32, bos: "<|begin_of_text|>", msgs: convNoSys[:1],
			vars: map[string]any{"date_string": "01 Jan 2030"},
			want: "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" +
				"Cutting Knowledge Date: December 2023\nToday Date: 01 Jan 2030\n\n<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>",
		},
		{
			name: "chatml", tmpl: tmplChatML, msgs: convSys, gen: true,
			want: "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\n Hello! <|im_end|>\n" +
				"<|im_start|>assistant\nHi there. <|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
		},
		{
			name: "qwen2/default-system", tmpl: tmplQwen2, eos: "<|im_end|>", msgs: convNoSys, gen: true,
			want: "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n" +
				"<|im_start|>assistant\nHi there.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
		},
		{
			name: "qwen2/system", tmpl: tmplQwen2, eos: "<|im_end|>", msgs: convSys[:2],
			want: "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\n Hello! <|im_end|>\n",
		},
		{
			name: "qwen2.5", tmpl: tmplQwen25, msgs: convSys, gen: true,
			want: "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\n Hello! <|im_end|>\n" +
				"<|im_start|>assistant\nHi there. <|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
		},
		{
			name: "qwen2.5/default-system", tmpl: tmplQwen25, msgs: convNoSys[:1], gen: true,
			want: "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
				"<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
		},
		{
			name: "qwen2.5/tools", tmpl: tmplQwen25, gen: true, vars: tools,
			msgs: []ChatMessage{
				{Role: "user", Content: "Weather?"},
				{Role: "tool", Content: `{"temp": 21}`},
				{Role: "tool", Content: `{"rain": 0}`},
			},
			want: "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\n" +
				"You may call one or more functions to assist with the user query.\n\n" +
				"You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" + weatherJSON +
				"\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n" +
				"<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" +
				"<|im_start|>user\nWeather?<|im_end|>\n" +
				"<|im_start|>user\n<tool_response>\n{\"temp\": 21}\n</tool_response>\n<tool_response>\n{\"rain\": 0}\n</tool_response><|im_end|>\n" +
				"<|im_start|>assistant\n",
		},
		{
			// Tools as the client sent them (keys in its order), and an
			// assistant's call with its answer.
			name: "qwen2.5/tool-calls", tmpl: tmplQwen25, gen: true,
			vars: map[string]any{"tools": json.RawMessage(`[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]`)},
			msgs: []ChatMessage{
				{Role: "user", Content: "Weather?"},
				{Role: "assistant", ToolCalls: []ChatToolCall{{ID: "call_1", Name: "get_weather", Arguments: json.RawMessage(`{"city": "Paris", "days": 2}`)}}},
				{Role: "tool", Content: `{"temp": 21}`, ToolCallID: "call_1"},
			},
			want: "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\n" +
				"You may call one or more functions to assist with the user query.\n\n" +
				"You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
				`{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}` +
				"\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n" +
				"<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" +
				"<|im_start|>user\nWeather?<|im_end|>\n" +
				"<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call><|im_end|>\n" +
				"<|im_start|>user\n<tool_response>\n{\"temp\": 21}\n</tool_response><|im_end|>\n" +
				"<|im_start|>assistant\n",
		},
		{
			name: "mistral-v0.2", tmpl: tmplMistralV02, bos: "<s>", eos: "</s>", msgs: convNoSys, gen: true,
			want: "<s>[INST] Hello! [/INST]Hi there.</s>[INST] What is 2+2? [/INST]",
		},
		{
			name: "mistral-v0.3/system", tmpl: tmplMistralV03, bos: "<s>", eos: "</s>", msgs: convSys, gen: true,
			want: "<s>[INST]  Hello! [/INST] Hi there.</s>[INST] You are terse.\n\nWhat is 2+2?[/INST]",
		},
		{
			name: "mistral-v0.3/tools", tmpl: tmplMistralV03, bos: "<s>", eos: "</s>", msgs: convNoSys, gen: true, vars: tools,
			want: "<s>[INST] Hello![/INST] Hi there.</s>" +
				`[AVAILABLE_TOOLS] [{"type": "function", "function": {"description": "Get the weather", "name": "get_weather", ` +
				`"parameters": {"properties": {"city": {"type": "string"}}, "required": ["city"], "type": "object"}}}][/AVAILABLE_TOOLS]` +
				"[INST] What is 2+2?[/INST]",
		},
		{
			name: "gemma", tmpl: tmplGemma, bos: "<bos>", eos: "<eos>", msgs: convNoSys, gen: true,
			want: "<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\nHi there.<end_of_turn>\n" +
				"<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
		},
		{
			name: "phi3", tmpl: tmplPhi3, eos: "<|endoftext|>", msgs: convNoSys, gen: true,
			want: "<|user|>\nHello!<|end|>\n<|assistant|>\nHi there.<|end|>\n<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n",
		},
		{
			name: "phi3/no-generation-prompt", tmpl: tmplPhi3, eos: "<|endoftext|>", msgs: convNoSys[:1],
			want: "<|user|>\nHello!<|end|>\n<|endoftext|>",
		},
		{
			name: "fallback/chatml", tmpl: ChatMLTemplate, msgs: convNoSys[:1], gen: true,
			want: "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
		},
		{
			name: "fallback/transcript", tmpl: TranscriptTemplate, msgs: convSys, gen: true,
			want: "System: You are terse.\nUser: Hello!\nAssistant: Hi there.\nUser: What is 2+2?\nAssistant:",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewChatTemplate(tc.tmpl, tc.bos, tc.eos)
			if err != nil {
				t.Fatalf("NewChatTemplate: %v", err)
			}
			got, err := c.Apply(tc.msgs, ChatOptions{AddGenerationPrompt: tc.gen, Vars: tc.vars, Now: testNow})
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if got != tc.want {
				t.Errorf("rendered\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// TestChatTemplateRaise checks that templates refusing a conversation
// report the template's own message as a *ChatTemplateError.
func TestChatTemplateRaise(t *testing.T) {
	for _, tc := range []struct {
		name, tmpl string
		msgs       []ChatMessage
		want       string
	}{
		{"llama2/order", tmplLlama2, []ChatMessage{{Role: "assistant", Content: "x"}}, "Conversation roles must alternate user/assistant/user/assistant/..."},
		{"mistral-v0.2/system", tmplMistralV02, convSys, "Conversation roles must alternate user/assistant/user/assistant/..."},
		{"mistral-v0.2/role", tmplMistralV02, []ChatMessage{{Role: "user", Content: "a"}, {Role: "tool", Content: "c"}}, "Only user and assistant roles are supported!"},
		{"mistral-v0.3/order", tmplMistralV03, []ChatMessage{{Role: "user", Content: "a"}, {Role: "user", Content: "b"}}, "After the optional system message, conversation roles must alternate user/assistant/user/assistant/..."},
		{"gemma/system", tmplGemma, convSys, "System role not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewChatTemplate(tc.tmpl, "<s>", "</s>")
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Apply(tc.msgs, ChatOptions{})
			var te *ChatTemplateError
			if !errors.As(err, &te) || te.Message != tc.want {
				t.Fatalf("error %v, want a ChatTemplateError %q", err, tc.want)
			}
			if !errors.Is(err, ErrChatTemplate) {
				t.Errorf("%v does not wrap ErrChatTemplate", err)
			}
		})
	}
}

// TestChatTemplateJinja checks expressions, statements and whitespace
// control one feature at a time, against what Python's Jinja prints (with
// trim_blocks and lstrip_blocks, as Hugging Face renders chat templates).
func TestChatTemplateJinja(t *testing.T) {
	vars := map[string]any{
		"msgs":  []any{map[string]any{"role": "user", "content": "a"}, map[string]any{"role": "assistant", "content": "b"}},
		"num":   "41",
		"items": []any{3, 1, 2},
	}
	for _, tc := range []struct{ src, want string }{
		// Arithmetic and precedence.
		{`{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 2 ** 3 ** 2 }}`, "7|9|64"},
		{`{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 7 / 2 }}|{{ 4 / 2 }}`, "3|-4|1|2|3.5|2.0"},
		{`{{ 1.0 }}|{{ 0.1 + 0.2 }}|{{ 1e20 }}|{{ 1.5e-7 }}|{{ 10 / 4 }}`, "1.0|0.30000000000000004|1e+20|1.5e-07|2.5"},
		{`{{ -2|abs }}|{{ -(3) }}|{{ +4 }}`, "2|-3|4"},
		{`{{ 'ab' * 3 }}|{{ [1] * 2 }}|{{ [1] + [2] }}`, "ababab|[1, 1]|[1, 2]"},
		// Strings, printing, concatenation.
		{`{{ 'a' ~ 1 ~ none ~ true ~ missing }}`, "a1NoneTrue"},
		{`{{ "say \"hi\"" }}|{{ 'it\'s' }}|{{ "a\tb" }}|{{ '\u00e9\x41' }}|{{ 'a' 'b' }}`, "say \"hi\"|it's|a\tb|éA|ab"},
		{`{{ [1, 'a', none, true, 1.5, "it's"] }}|{{ {'a': 1, 'b': [2]} }}`, `[1, 'a', None, True, 1.5, "it's"]|{'a': 1, 'b': [2]}`},
		{`{{ missing }}|{{ missing.x is defined if false else 'ok' }}`, "|ok"},
		// Comparisons, logic, membership, conditional expressions.
		{`{{ 1 < 2 < 3 }}|{{ 3 > 2 > 2 }}|{{ 1 == 1.0 }}|{{ true == 1 }}|{{ 'a' != 'b' }}`, "True|False|True|True|True"},
		{`{{ 'ell' in 'hello' }}|{{ 2 not in [1, 2] }}|{{ 'a' in {'a': 1} }}|{{ 'x' in missing }}`, "True|False|True|False"},
		{`{{ not 1 == 2 }}|{{ 0 or 'x' }}|{{ 'a' and 'b' }}|{{ none or none }}`, "True|x|b|None"},
		{`{{ 'yes' if 1 > 0 else 'no' }}|{{ 'x' if false }}|{{ 'a' if false else 'b' if true else 'c' }}`, "yes||b"},
		// Tests.
		{`{{ missing is defined }}|{{ none is none }}|{{ 3 is odd }}|{{ 4 is divisibleby 2 }}|{{ 'a' is string }}|{{ 1 is not string }}`, "False|True|True|True|True|True"},
		{`{{ {} is mapping }}|{{ [] is iterable }}|{{ 1 is number }}|{{ 1.5 is integer }}|{{ true is sameas true }}|{{ 'A' is upper }}`, "True|True|True|False|True|True"},
		{`{{ 1 is eq 1 }}|{{ 2 is gt(1) }}|{{ 'a' is in ['a'] }}|{{ msgs is sequence }}`, "True|True|True|True"},
		// Subscripts, slices, attributes, methods.
		{`{{ 'Hello World'[1:4] }}|{{ 'abc'[::-1] }}|{{ [1,2,3,4][-2:] }}|{{ [1,2,3][5] }}|{{ 'héllo'[1] }}`, "ell|cba|[3, 4]||é"},
		{`{{ msgs[0].role }}|{{ msgs[-1]['content'] }}|{{ msgs[0].nope }}|{{ msgs|length }}`, "user|b||2"},
		{`{{ '  x  '.strip() }}|{{ 'a,b'.split(',') }}|{{ 'a b  c'.split() }}|{{ 'Hi'.upper() }}|{{ 'abc'.startswith(('x', 'a')) }}`, "x|['a', 'b']|['a', 'b', 'c']|HI|True"},
		{`{{ 'xxaxx'.lstrip('x') }}|{{ 'a-b-c'.rsplit('-', 1) }}|{{ 'abc'.find('c') }}|{{ '-'.join(['a', 'b']) }}|{{ '12'.isdigit() }}`, "axx|['a-b', 'c']|2|a-b|True"},
		{`{{ {'a': 1}.get('b', 'd') }}|{{ {'a': 1}.get('a') }}|{{ {'a': 1}.keys()|list }}|{{ {'a': 1}.items()|list|first|join('=') }}`, "d|1|['a']|a=1"},
		// Filters.
		{`{{ items|sort|join(',') }}|{{ items|sort(reverse=true)|first }}|{{ items|max }}|{{ items|min }}|{{ items|sum }}`, "1,2,3|3|3|1|6"},
		{`{{ ['a', 'b']|map('upper')|list }}|{{ msgs|map(attribute='role')|join(' ') }}`, "['A', 'B']|user assistant"},
		{`{{ msgs|selectattr('role', 'equalto', 'user')|list|length }}|{{ msgs|rejectattr('role', 'eq', 'user')|map(attribute='content')|first }}`, "1|b"},
		{`{{ [0, 1, 2]|select|list }}|{{ [1, 2, 3]|reject('odd')|list }}|{{ [1, 1, 2]|unique|list }}|{{ [1, 2]|reverse|list }}`, "[1, 2]|[2]|[1, 2]|[2, 1]"},
		{`{{ '  x  '|trim }}|{{ 'abc'|replace('b', 'x') }}|{{ 'hello world'|title }}|{{ 'hELLO'|capitalize }}|{{ 'Ab'|lower }}`, "x|axc|Hello World|Hello|ab"},
		{`{{ missing|default('dflt') }}|{{ ''|default('dflt', true) }}|{{ ''|d('x') }}|{{ num|int + 1 }}|{{ '2.5'|float }}|{{ 3|string ~ 'x' }}`, "dflt|dflt||42|2.5|3x"},
		{`{{ {'b': 1, 'a': [true, none, 1.5, "é\n"]}|tojson }}|{{ "<it's>"|tojson }}`, `{"b": 1, "a": [true, null, 1.5, "é\n"]}|"<it's>"`},
		{`{{ {'a': [1]}|tojson(indent=2) }}`, "{\n  \"a\": [\n    1\n  ]\n}"},
		{`{{ 'a\nb'|indent(2) }}|{{ 'one two'|wordcount }}|{{ 'x'|length }}|{{ {'b': 1, 'a': 2}|dictsort|map('first')|join }}|{{ 2.567|round(1) }}`, "a\n  b|2|1|ab|2.6"},
		{`{{ '<a>'|e }}|{{ range(3)|list }}|{{ range(1, 10, 3)|list }}|{{ range(3, 0, -1)|list }}|{{ {'a': 1}|items|map('last')|list }}`, "&lt;a&gt;|[0, 1, 2]|[1, 4, 7]|[3, 2, 1]|[1]"},
		{`{{ 'Hi %s, %d items at %.2f%%' % ('Bo', 3, 1.5) }}|{{ '%s!'|format('x') }}|{{ '%r' % 'a' }}|{{ 'n=%d' % 7 }}`, "Hi Bo, 3 items at 1.50%|x!|'a'|n=7"},
		// Statements.
		{`{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}`, "a=1;b=2;"},
		{`{% for x in [1, 2, 3] if x != 2 %}{{ loop.index }}:{{ x }}{{ ',' if not loop.last }}{% endfor %}`, "1:1,2:3"},
		{`{% for x in 'ab' %}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.length }}{{ loop.cycle('o', 'e') }}{{ loop.previtem }}{{ loop.nextitem }};{% endfor %}`, "02True2ob;11False2ea;"},
		{`{% for x in [] %}a{% else %}empty{% endfor %}`, "empty"},
		{`{% for x in [1, 2, 3, 4] %}{% if x == 3 %}{% break %}{% endif %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}`, "2"},
		{`{% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }}{% endfor %}{{ loop.index }}{% endfor %}`, "1x11y212x12y22"},
		{`{% set ns = namespace(n=0) %}{% for x in range(5) %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}`, "10"},
		{`{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}`, "21"},
		{`{% set a, b = 1, 2 %}{{ a + b }}{% set c = (3, 4) %}{{ c[1] }}`, "34"},
		{`{% set s %}inner {{ 1 }}{% endset %}[{{ s }}]`, "[inner 1]"},
		{`{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bo') }} {{ greet('Al', punct='?') }}`, "Hi Bo! Hi Al?"},
		{`{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% endif %}{% endmacro %}{{ fact(5) }}`, "120"},
		{`{% if false %}a{% elif 0 %}b{% elif 'x' %}c{% else %}d{% endif %}`, "c"},
		{`{% generation %}gen{% endgeneration %}`, "gen"},
		{`{% raw %}{{ not parsed }}{% endraw %}`, "{{ not parsed }}"},
		{`{# a comment #}x{# another
		   one #}y`, "xy"},
		// Whitespace control, trim_blocks and lstrip_blocks.
		{"a  {%- if true %}b{% endif %}", "ab"},
		{"{% if true -%}   \n  b{% endif %}", "b"},
		{"{{- ' a ' -}}   ", " a "},
		{"line\n    {% if true %}\n    x\n    {% endif %}\nend", "line\n    x\nend"},
		{"{{ 'a' }}\n{{ 'b' }}", "a\nb"},
		{"  {%+ if true %}x{% endif %}", "  x"},
		{"{# c #}\nx", "x"},
		{"a {% if true %}b{% endif %}", "a b"},
		{"x\n  {{ 1 }}", "x\n  1"},
		{"{% for i in [1, 2] %}\n  {{ i }}\n{% endfor %}\n", "  1\n  2\n"},
		{"{% if true %}\r\nx{% endif %}", "x"},
		{"a\r\nb\rc\n", "a\nb\nc"}, // newlines normalised, the last one dropped
		{"a\n\n", "a\n"},
	} {
		t.Run(tc.src, func(t *testing.T) {
			c, err := NewChatTemplate(tc.src, "<s>", "</s>")
			if err != nil {
				t.Fatalf("NewChatTemplate: %v", err)
			}
			got, err := c.Apply(nil, ChatOptions{Vars: vars})
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestChatTemplateErrors checks that bad and hostile templates fail with an
// error wrapping ErrChatTemplate, at parse or at render time, within the
// limits.
func TestChatTemplateErrors(t *testing.T) {
	deep := strings.Repeat("(", 1000) + "1" + strings.Repeat(")", 1000)
	nested := strings.Repeat("{% if true %}", 1000) + strings.Repeat("{% endif %}", 1000)
	for _, tc := range []struct {
		name, src string
		parse     bool // fails when parsed, not when rendered
		want      string
	}{
		{"empty if", "{% if %}x{% endif %}", true, "unexpected"},
		{"dangling operator", "{{ 1 + }}", true, "unexpected"},
		{"missing endfor", "{% for x in y %}", true, "endfor"},
		{"stray endif", "{% endif %}", true, "unexpected"},
		{"unclosed tag", "{{ x ", true, "without"},
		{"unterminated string", "{{ 'abc }}", true, "unterminated"},
		{"include", "{% include 'x.j2' %}", true, "unsupported statement"},
		{"extends", "{% extends 'base' %}", true, "unsupported statement"},
		{"bad character", "{{ a @ b }}", true, "unexpected character"},
		{"deep expression", "{{ " + deep + " }}", true, "deeper"},
		{"deep blocks", nested, true, "deeper"},
		{"recursive macro", "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", false, "nested deeper"},
		{"huge repeat", "{{ 'x' * 100000000 }}", false, "string over"},
		{"doubling", "{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", false, "evaluation steps"},
		{"list doubling", "{% set ns = namespace(l=[1]) %}{% for i in range(100) %}{% set ns.l = ns.l + ns.l %}{% endfor %}", false, "evaluation steps"},
		{"huge list", "{{ ([1] * 2000000)|length }}", false, "list over"},
		{"big scans", "{% set s = 'x' * 4000000 %}{% for i in range(100000) %}{% if 'y' in s %}{% endif %}{% endfor %}", false, "evaluation steps"},
		{"big map", "{% set s = 'x' * 4000000 %}{{ (['a'] * 100000)|map('replace', 'a', s)|list|length }}", false, "evaluation steps"},
		{"busy loops", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", false, "evaluation steps"},
		{"huge range", "{{ range(10 ** 9)|length }}", false, "range() longer"},
		{"division by zero", "{{ 1 / 0 }}", false, "division by zero"},
		{"undefined attribute", "{{ nothing.attr }}", false, "undefined"},
		{"undefined arithmetic", "{{ nothing + 1 }}", false, "undefined"},
		{"string plus int", "{{ 'a' + 1 }}", false, "unsupported operand"},
		{"unknown filter", "{{ 'a'|frobnicate }}", false, "unknown filter"},
		{"unknown test", "{{ 'a' is frobnicated }}", false, "unknown test"},
		{"not callable", "{{ 'a'() }}", false, "not callable"},
		{"set attribute of non-namespace", "{% set x = 1 %}{% set x.y = 2 %}", false, "not a namespace"},
		{"break outside loop", "{% break %}", false, "outside a loop"},
		{"iterate int", "{% for x in 3 %}{% endfor %}", false, "not iterable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewChatTemplate(tc.src, "", "")
			if err == nil {
				if tc.parse {
					t.Fatalf("parsed; want a parse error containing %q", tc.want)
				}
				_, err = c.Apply(convNoSys, ChatOptions{})
			} else if !tc.parse {
				t.Fatalf("parse error %v; want it at render time", err)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if !errors.Is(err, ErrChatTemplate) {
				t.Errorf("%v does not wrap ErrChatTemplate", err)
			}
		})
	}
}

// TestChatTemplateConcurrent renders one template from many goroutines
// (run with -race): a ChatTemplate is immutable.
func TestChatTemplateConcurrent(t *testing.T) {
	c, err := NewChatTemplate(tmplMistralV03, "<s>", "</s>")
	if err != nil {
		t.Fatal(err)
	}
	want, err := c.Apply(convSys, ChatOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string)
	for range 8 {
		go func() {
			got, _ := c.Apply(convSys, ChatOptions{})
			done <- got
		}()
	}
	for range 8 {
		if got := <-done; got != want {
			t.Errorf("concurrent rendering %q, want %q", got, want)
		}
	}
}

// TestChatTemplateFromGGUF reads the template of a GGUF file, and falls
// back to the transcript template for a model without one and without
// ChatML tokens.
func TestChatTemplateFromGGUF(t *testing.T) {
	path := testdata.Path(t, "models/stories260K-f32.gguf")
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ChatTemplateFromGGUF(f, tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Source() != TranscriptTemplate {
		t.Errorf("model without a template: got source %q, want TranscriptTemplate", c.Source())
	}

	// The same metadata with Llama 2's template added.
	kvs := append([]gguf.KV{}, f.KV...)
	kvs = append(kvs, gguf.KV{Key: "tokenizer.chat_template", Value: gguf.Value{Type: gguf.TypeString, V: tmplLlama2}})
	var buf bytes.Buffer
	if err := gguf.Write(&buf, kvs, nil); err != nil {
		t.Fatal(err)
	}
	g, err := gguf.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	c, err = ChatTemplateFromGGUF(g, tok)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Apply(convNoSys[:1], ChatOptions{AddGenerationPrompt: true})
	if err != nil {
		t.Fatal(err)
	}
	want := tok.TokenText(tok.BOS()) + "[INST] Hello! [/INST]"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}

	// A template that does not compile is reported, not replaced.
	kvs[len(kvs)-1].Value.V = "{% if %}"
	buf.Reset()
	if err := gguf.Write(&buf, kvs, nil); err != nil {
		t.Fatal(err)
	}
	if g, err = gguf.Parse(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if _, err := ChatTemplateFromGGUF(g, tok); !errors.Is(err, ErrChatTemplate) {
		t.Errorf("broken template: error %v, want ErrChatTemplate", err)
	}
}

// TestDefaultChatTemplate picks ChatML when the vocabulary has its markers.
func TestDefaultChatTemplate(t *testing.T) {
	tokens := []string{"<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "a"}
	types := []int32{TypeUnknown, TypeControl, TypeControl, TypeControl, TypeControl, TypeNormal}
	tok, err := New(Vocab{Model: "llama", Tokens: tokens, Scores: make([]float32, len(tokens)), Types: types, BOS: 1, EOS: 2, UNK: 0, PAD: -1, EOT: -1})
	if err != nil {
		t.Fatal(err)
	}
	if got := DefaultChatTemplate(tok).Source(); got != ChatMLTemplate {
		t.Errorf("vocabulary with ChatML markers: got %q", got)
	}
	tok, err = New(Vocab{Model: "llama", Tokens: tokens[:3], Scores: make([]float32, 3), Types: types[:3], BOS: 1, EOS: 2, UNK: 0, PAD: -1, EOT: -1})
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultChatTemplate(tok)
	if c.Source() != TranscriptTemplate {
		t.Errorf("vocabulary without ChatML markers: got %q", c.Source())
	}
	if c.bos != "<s>" || c.eos != "</s>" {
		t.Errorf("bos, eos = %q, %q; want <s>, </s>", c.bos, c.eos)
	}
}

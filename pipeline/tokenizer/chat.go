package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/strata-llm/strata/pipeline/gguf"
)

// ErrChatTemplate is wrapped by every error of parsing or applying a chat
// template, so that callers can tell a template's failure from others.
var ErrChatTemplate = errors.New("chat template")

// ChatTemplateError is the error of a template's raise_exception(message):
// the template refused the conversation (roles out of order, an
// unsupported role), so it is the client's mistake. It wraps
// ErrChatTemplate.
type ChatTemplateError struct {
	Message string
}

// Error returns the template's message.
func (e *ChatTemplateError) Error() string { return "chat template: " + e.Message }

// Unwrap returns ErrChatTemplate.
func (e *ChatTemplateError) Unwrap() error { return ErrChatTemplate }

// ChatMessage is one message of a conversation.
type ChatMessage struct {
	Role    string // "system", "user", "assistant", "tool", ...
	Content string
	Name    string // optional; templates see it as message.name only when set
	// ToolCalls are an assistant's calls of the functions it was offered
	// (templates see message.tool_calls only when there are some), and
	// ToolCallID the call a "tool" message answers (message.tool_call_id,
	// when set).
	ToolCalls  []ChatToolCall
	ToolCallID string
}

// ChatToolCall is a function call in an assistant's message. Templates see
// it as Hugging Face's transformers passes it: {"id", "type": "function",
// "function": {"name", "arguments"}}, the arguments a mapping (in their
// order) when they are a JSON object, else as given.
type ChatToolCall struct {
	ID        string
	Name      string
	Arguments json.RawMessage // one JSON value
}

// ChatOptions are the inputs of a rendering besides the messages.
type ChatOptions struct {
	// AddGenerationPrompt ends the prompt with the header of an assistant
	// turn, for the model to write its reply.
	AddGenerationPrompt bool
	// Vars are extra template variables (a template's "tools",
	// "date_string", ...). Values may be nil, bool, integers, floats,
	// strings, slices and maps with string keys, nested (maps iterate in key
	// order), and json.RawMessage (objects keep their keys' order).
	// messages, add_generation_prompt, bos_token and eos_token cannot be
	// overridden.
	Vars map[string]any
	// Now is the time strftime_now formats; zero means time.Now().
	Now time.Time
}

// ChatTemplate is a compiled chat template: the Jinja template a model
// ships in its tokenizer.chat_template metadata, which turns a list of
// messages into the prompt text the model was trained on.
//
// It implements the subset of Jinja that chat templates use, rendered as
// Hugging Face's transformers renders them (trim_blocks and lstrip_blocks
// on, loop controls, raise_exception, strftime_now, and a tojson that keeps
// key order and does not escape HTML):
//
//   - statements: if/elif/else, for (tuple targets, an inline "if" filter,
//     else, loop.index/index0/revindex/first/last/length/previtem/nextitem/
//     cycle, break, continue), set (names, tuples, namespace attributes,
//     blocks), macro (with defaults, recursion bounded), raw, generation,
//     comments, and whitespace control with "-" and "+";
//   - expressions: literals, lists, tuples, dicts, attributes, subscripts,
//     slices, calls with keyword arguments, the operators of Jinja with its
//     precedence (or, and, not, comparisons with chaining, in, not in, is
//     [not] tests, + - ~ * / // % **, unary minus, "a if c else b", and
//     printf-style "format % args") and filters;
//   - filters: abs, capitalize, count, d/default, dictsort, e/escape, first,
//     float, format, indent, int, items, join, last, length, list, lower, map, max,
//     min, reject, rejectattr, replace, reverse, round, safe, select,
//     selectattr, sort, string, sum, title, tojson, trim, unique, upper,
//     wordcount;
//   - tests: defined, undefined, none, boolean, true, false, integer, float,
//     number, string, mapping, iterable, sequence, callable, odd, even,
//     divisibleby, eq/equalto, ne, lt, le, gt, ge, in, sameas, lower, upper;
//   - globals: range, namespace, dict, raise_exception, strftime_now;
//   - methods: str's strip, lstrip, rstrip, split, rsplit, splitlines,
//     startswith, endswith, upper, lower, title, capitalize, replace, find,
//     rfind, count, join, is*; dict's items, keys, values, get.
//
// Not supported, and refused when parsed: extends, include, import, call
// blocks, filter blocks, recursive loops. Undefined values behave as Jinja's
// default Undefined: they print as "", are false and iterate as empty, and
// fail when used in arithmetic or looked into.
//
// A template is untrusted input (it comes from a model file), so rendering
// is bounded in steps, in the size of every string and list it builds, and
// in macro recursion, and parsing is bounded in nesting depth: a hostile
// template fails with an error wrapping ErrChatTemplate and never panics
// or exhausts memory.
//
// A ChatTemplate is immutable and safe for concurrent use.
type ChatTemplate struct {
	src      string
	root     []node
	bos, eos string
}

// NewChatTemplate compiles src, a Jinja chat template; bosToken and
// eosToken are the texts the template sees as bos_token and eos_token.
func NewChatTemplate(src, bosToken, eosToken string) (*ChatTemplate, error) {
	root, err := parseTemplate(src)
	if err != nil {
		if errors.Is(err, ErrChatTemplate) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrChatTemplate, err)
	}
	return &ChatTemplate{src: src, root: root, bos: bosToken, eos: eosToken}, nil
}

// Source returns the template's Jinja source.
func (c *ChatTemplate) Source() string { return c.src }

// Apply renders msgs into a prompt. The template sees messages (a list of
// dicts with role, content and, when set, name), add_generation_prompt,
// bos_token, eos_token and opts.Vars. An error from the template's
// raise_exception is a *ChatTemplateError; every error wraps
// ErrChatTemplate.
func (c *ChatTemplate) Apply(msgs []ChatMessage, opts ChatOptions) (string, error) {
	root := &scope{}
	keys := make([]string, 0, len(opts.Vars))
	for k := range opts.Vars {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v, err := fromGo(opts.Vars[k], 0)
		if err != nil {
			return "", fmt.Errorf("%w: variable %q: %w", ErrChatTemplate, k, err)
		}
		root.set(k, v)
	}
	list := make([]any, len(msgs))
	for i, m := range msgs {
		d := newDict()
		d.set("role", m.Role)
		d.set("content", m.Content)
		if m.Name != "" {
			d.set("name", m.Name)
		}
		if len(m.ToolCalls) > 0 {
			calls := make([]any, len(m.ToolCalls))
			for j, tc := range m.ToolCalls {
				args, err := fromGo(tc.Arguments, 2)
				if err != nil {
					args = string(tc.Arguments)
				}
				f := newDict()
				f.set("name", tc.Name)
				f.set("arguments", args)
				call := newDict()
				call.set("id", tc.ID)
				call.set("type", "function")
				call.set("function", f)
				calls[j] = call
			}
			d.set("tool_calls", calls)
		}
		if m.ToolCallID != "" {
			d.set("tool_call_id", m.ToolCallID)
		}
		list[i] = d
	}
	root.set("messages", list)
	root.set("add_generation_prompt", opts.AddGenerationPrompt)
	root.set("bos_token", c.bos)
	root.set("eos_token", c.eos)

	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	var out strings.Builder
	ev := &evaluator{out: &out, now: now}
	err := ev.execNodes(c.root, root)
	switch {
	case err == errBreak || err == errContinue:
		return "", fmt.Errorf("%w: %w", ErrChatTemplate, err)
	case err != nil:
		return "", err
	}
	return out.String(), nil
}

// fromJSON converts one JSON value into a template value, objects as
// mappings in their keys' order (as Python's json keeps them), integers as
// integers.
func fromJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := jsonValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("more than one JSON value")
	}
	return v, nil
}

func jsonValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxParseDepth {
		return nil, errors.New("value nested too deeply")
	}
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '{':
			d := newDict()
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := jsonValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				d.set(k.(string), v)
			}
			_, err := dec.Token()
			return d, err
		case '[':
			list := []any{}
			for dec.More() {
				v, err := jsonValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			_, err := dec.Token()
			return list, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i, nil
		}
		return t.Float64()
	}
	return t, nil // string, bool, nil
}

// fromGo converts a Go value into a template value.
func fromGo(v any, depth int) (any, error) {
	if depth > maxParseDepth {
		return nil, errors.New("value nested too deeply")
	}
	switch v := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return fromJSON(v)
	case bool, int64, float64, string:
		return v, nil
	case int:
		return int64(v), nil
	case float32:
		return float64(v), nil
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			y, err := fromGo(x, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = y
		}
		return out, nil
	case []string:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = x
		}
		return out, nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		d := newDict()
		for _, k := range keys {
			y, err := fromGo(v[k], depth+1)
			if err != nil {
				return nil, err
			}
			d.set(k, y)
		}
		return d, nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if rv.Uint() > math.MaxInt64 {
			return float64(rv.Uint()), nil
		}
		return int64(rv.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	}
	return nil, fmt.Errorf("unsupported type %T", v)
}

// ChatMLTemplate is the fallback for a model that ships no chat template
// but knows ChatML's markers: "<|im_start|>role\ncontent<|im_end|>\n" per
// message, and "<|im_start|>assistant\n" as the generation prompt.
const ChatMLTemplate = `{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`

// TranscriptTemplate is the fallback for a model that ships no chat
// template and has no chat markers (a base model): a plain transcript, one
// "Role: content" line per message, and "Assistant:" as the generation
// prompt, which a base model continues naturally.
const TranscriptTemplate = `{% for message in messages %}{{ message['role'] | capitalize + ': ' + message['content'] | trim + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}`

// ChatTemplateFromGGUF compiles the chat template of f's
// tokenizer.chat_template metadata, with t's BOS and EOS texts as bos_token
// and eos_token. When f has none it returns DefaultChatTemplate(t). An
// error means f's template does not compile; a caller that wants to serve
// anyway can fall back to DefaultChatTemplate and say so.
func ChatTemplateFromGGUF(f *gguf.File, t *Tokenizer) (*ChatTemplate, error) {
	src, ok := f.String("tokenizer.chat_template")
	if !ok || strings.TrimSpace(src) == "" {
		return DefaultChatTemplate(t), nil
	}
	bos, eos := specialTexts(t)
	c, err := NewChatTemplate(src, bos, eos)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.chat_template: %w", err)
	}
	return c, nil
}

// DefaultChatTemplate returns the template used when a model ships none:
// ChatMLTemplate when t's vocabulary has the "<|im_start|>" and
// "<|im_end|>" tokens, TranscriptTemplate otherwise.
func DefaultChatTemplate(t *Tokenizer) *ChatTemplate {
	src := TranscriptTemplate
	if _, ok := t.ID("<|im_start|>"); ok {
		if _, ok := t.ID("<|im_end|>"); ok {
			src = ChatMLTemplate
		}
	}
	bos, eos := specialTexts(t)
	c, err := NewChatTemplate(src, bos, eos)
	if err != nil {
		panic("tokenizer: built-in chat template: " + err.Error()) // a bug, caught by tests
	}
	return c
}

// specialTexts returns the texts of t's BOS and EOS tokens, "" when absent.
func specialTexts(t *Tokenizer) (bos, eos string) {
	if id := t.BOS(); id >= 0 {
		bos = t.TokenText(id)
	}
	if id := t.EOS(); id >= 0 {
		eos = t.TokenText(id)
	}
	return bos, eos
}

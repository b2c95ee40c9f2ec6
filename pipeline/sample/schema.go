package sample

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strings"
)

// ErrSchema is wrapped by CompileJSONSchema's errors: a schema it cannot
// turn into a constraint.
var ErrSchema = errors.New("unsupported JSON schema")

// JSONSchema is a compiled JSON Schema: its Constraint lets the tokens
// spell one JSON text that the schema accepts. It supports the subset
// that structured-output APIs use:
//
//   - "type": object, array, string, number, integer, boolean, null, or a
//     list of them;
//   - "anyOf" and "oneOf": alternatives, which may begin alike (two
//     object models, a string and an enum of strings): the recognizer
//     follows every alternative the text so far fits, up to
//     MaxSchemaReadings at once, until the text tells them apart. oneOf is
//     taken as anyOf: a text that two alternatives accept is accepted.
//     Objects that each begin with the same required property of a
//     different string constant (a tool call's name, a discriminated
//     union's tag listed first) are one reading, up to 64 of them
//     (discriminated);
//   - objects: "properties" (written in the schema's order, each at most
//     once, every "required" one present; no others, which
//     "additionalProperties" may allow but never requires);
//   - arrays: "items" (absent: any values), "minItems", "maxItems";
//     tuples: "prefixItems" (items past them follow "items", none if it
//     is false), or "items" as a list with "additionalItems", as drafts
//     before 2020-12 and Pydantic v1 write them;
//   - strings of well-formed UTF-8 (a reply, unlike JSON text in general,
//     may not carry broken sequences);
//   - strings: "minLength" and "maxLength" (characters; an escape counts
//     as one, so a surrogate pair written as two \u escapes counts as two);
//     "format" date, time, date-time (RFC 3339, with a zone) and uuid, as
//     shapes of digits and separators (a date's month may still be 13);
//   - numbers and integers: "minimum", "maximum", "exclusiveMinimum" and
//     "exclusiveMaximum" (also draft 4's boolean form), any bounds for
//     integers and integer bounds for numbers (numRange): a digit is
//     refused once no number it begins can end in range;
//   - "multipleOf": of integers, any (a multiple of 5, up to 2^62 where
//     no maximum says less: a digit is refused once no multiple it begins
//     can end in range); of numbers, an integer (the number is then an
//     integer multiple, written without a fraction) or a power of ten
//     (0.01: at most two fraction digits);
//   - strings: "pattern", an ECMA-262 regular expression that matches
//     anywhere in the string unless anchored (strPattern), without a
//     format, minLength or maxLength beside it;
//   - "enum" and "const" of strings, numbers, booleans and null;
//   - free-form values: a schema with no keyword that constrains (such
//     as {}) takes any JSON value, and an object schema that lists no
//     property (additionalProperties not false) any object;
//   - maps: an object schema that lists no property and whose
//     "additionalProperties" is a schema takes any keys, each value of
//     that schema (Pydantic's dict[str, T]);
//   - "$ref" to the document's "$defs" (or "definitions"), not
//     recursive: what Pydantic writes for nested models, and "allOf" of
//     one schema, in which it wraps a $ref to describe it;
//   - "allOf" of several schemas (or with keywords beside it), as OpenAPI
//     documents extend a model and zod writes an intersection: merged
//     into one schema that accepts what all of them accept (compiler.allOf
//     says how), or refused where that cannot be written, such as two
//     different patterns;
//   - "title", "description", "default", "examples", "$schema" and
//     "$comment", which say nothing about the text.
//
// Any other keyword ("not", "if", ...) or format is
// refused, never ignored: a constraint that ignored it could produce
// text the schema rejects. A JSONSchema is immutable and may serve many
// sequences at once.
type JSONSchema struct {
	root *snode
}

// Constraint returns a new constraint of the schema over a vocabulary, as
// NewJSON takes it: the end-of-generation token is allowed exactly when
// the text is whole, and nothing may follow it.
func (s *JSONSchema) Constraint(piece func(id int) []byte, isEOG func(id int) bool) Constraint {
	return &schemaConstraint{piece: piece, isEOG: isEOG, sts: []schemaState{{root: s.root}}}
}

// Valid reports whether text is one JSON text the constraint lets a model
// write: the schema accepts it, its properties are in the schema's order,
// and it has no whitespace before or after it.
func (s *JSONSchema) Valid(text []byte) bool {
	sts, _ := s.scan(text)
	return slices.ContainsFunc(sts, func(st schemaState) bool { return st.accepting() })
}

// Prefix reports whether text is the start (or the whole) of such a text:
// what a reply cut short by its token limit is.
func (s *JSONSchema) Prefix(text []byte) bool {
	_, ok := s.scan(text)
	return ok
}

func (s *JSONSchema) scan(text []byte) ([]schemaState, bool) {
	st := schemaState{root: s.root}
	out := st.advance(text, nil, MaxSchemaReadings)
	return out, len(out) > 0
}

// The kinds of schema nodes.
const (
	kObject uint8 = iota
	kArray
	kString  // any string
	kLiteral // one of lits: an enum, const, boolean or null
	kNumber
	kInteger
	kUnion     // one of alts; those that begin alike are followed together
	kAny       // any JSON value (a schema with no keyword that says what)
	kAnyObject // any JSON object (an object schema that lists no property)
	kMap       // an object of any keys whose values are items (additionalProperties)
)

// anyString is the node of a map's keys.
var anyString = &snode{kind: kString, max: -1}

type snode struct {
	kind  uint8
	props []sprop // kObject, in the schema's order
	items *snode  // kArray (nil: none past prefix); kMap: the values
	// prefix are a kArray's first items (a tuple): item i < len(prefix)
	// is of prefix[i], the rest of items.
	prefix []*snode
	min    int // kArray: minItems; kString: minLength
	max    int // kArray: maxItems; kString: maxLength; or -1
	// format is a kString's shape (formatHeads): "" for any string.
	format string
	lits   [][]byte    // kLiteral: compact JSON texts
	alts   []*snode    // kUnion; kObject: the branches of a discriminated object (discriminated)
	rng    *numRange   // kNumber, kInteger: the range, or nil
	pat    *strPattern // kString: the pattern, or nil
}

type sprop struct {
	key      []byte // the name as a JSON string, quotes included
	node     *snode
	required bool
}

// maxProps bounds an object's properties and a literal set, so that their
// candidates fit in a bit mask; maxItems bounds minItems and maxItems.
const (
	maxProps = 64
	maxItems = 1 << 15
)

// CompileJSONSchema compiles a JSON Schema document (see JSONSchema).
func CompileJSONSchema(doc []byte) (*JSONSchema, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	v, err := decodeOrdered(dec)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSchema, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: more than one JSON value", ErrSchema)
	}
	c := &compiler{}
	if o, ok := v.(ordered); ok {
		for _, k := range []string{"$defs", "definitions"} {
			if d, ok := o.get(k); ok {
				if c.defs, ok = d.(ordered); !ok {
					return nil, fmt.Errorf("%w: %s must be an object", ErrSchema, k)
				}
				c.defsKey = k
			}
		}
	}
	root, err := c.node(v, "$", 0)
	if err != nil {
		return nil, err
	}
	return &JSONSchema{root: root}, nil
}

// compiler compiles one schema document: its $defs (or definitions), for
// "$ref", and the references being followed, to refuse recursion.
type compiler struct {
	defs    ordered
	defsKey string
	refs    []string
}

// ordered is a JSON object with its keys in order.
type ordered []struct {
	key string
	val any
}

func (o ordered) get(k string) (any, bool) {
	for _, kv := range o {
		if kv.key == k {
			return kv.val, true
		}
	}
	return nil, false
}

// decodeOrdered reads one JSON value, objects as ordered.
func decodeOrdered(dec *json.Decoder) (any, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t {
	case json.Delim('{'):
		var o ordered
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			o = append(o, struct {
				key string
				val any
			}{kt.(string), v})
		}
		_, err := dec.Token()
		return o, err
	case json.Delim('['):
		a := []any{}
		for dec.More() {
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.Token()
		return a, err
	}
	return t, nil
}

// compact encodes a scalar as JSON without HTML escapes.
func compact(v any) ([]byte, bool) {
	switch v.(type) {
	case string, json.Number, bool, nil:
	default:
		return nil, false
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, false
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), true
}

func (c *compiler) node(v any, at string, depth int) (*snode, error) {
	fail := func(format string, args ...any) (*snode, error) {
		return nil, fmt.Errorf("%w: %s: %s", ErrSchema, at, fmt.Sprintf(format, args...))
	}
	if depth >= MaxJSONDepth {
		return fail("nested deeper than %d", MaxJSONDepth)
	}
	o, ok := v.(ordered)
	if !ok {
		return fail("a schema must be an object")
	}
	for _, kv := range o {
		switch kv.key {
		case "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "format", "minLength", "maxLength",
			"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "pattern", "allOf", "prefixItems", "additionalItems",
			"enum", "const", "anyOf", "oneOf", "$ref", "$defs", "definitions",
			"title", "description", "default", "examples", "$schema", "$comment":
		default:
			return fail("keyword %q is not supported", kv.key)
		}
	}
	if r, ok := o.get("$ref"); ok {
		if len(o) > 1 && !onlyNotes(o, "$ref") {
			return fail("$ref beside other keywords is not supported")
		}
		return c.ref(r, at, depth)
	}
	// allOf of one schema is that schema: Pydantic wraps a $ref in one to
	// give it a description. Several (or keywords beside it) merge into
	// one schema.
	if a, ok := o.get("allOf"); ok {
		subs, ok := a.([]any)
		if !ok || len(subs) == 0 {
			return fail("allOf must be a non-empty array")
		}
		if len(subs) == 1 && onlyNotes(o, "allOf") {
			return c.node(subs[0], at+".allOf[0]", depth)
		}
		return c.allOf(o, at, depth)
	}
	// oneOf is anyOf here: alternatives that begin differently never
	// both match.
	key := "anyOf"
	if _, ok := o.get("oneOf"); ok {
		key = "oneOf"
	}
	if a, ok := o.get(key); ok {
		if !onlyNotes(o, key) {
			return fail("%s beside other keywords is not supported", key)
		}
		subs, ok := a.([]any)
		if !ok || len(subs) == 0 {
			return fail("%s must be a non-empty array", key)
		}
		var alts []*snode
		for i, sub := range subs {
			n, err := c.node(sub, fmt.Sprintf("%s.%s[%d]", at, key, i), depth)
			if err != nil {
				return nil, err
			}
			alts = appendAlt(alts, n)
		}
		return union(alts, at)
	}
	// enum and const: literals, whatever the type says.
	var lits []any
	if e, ok := o.get("enum"); ok {
		a, ok := e.([]any)
		if !ok || len(a) == 0 {
			return fail("enum must be a non-empty array")
		}
		lits = a
	}
	if c, ok := o.get("const"); ok {
		lits = []any{c}
	}
	if lits != nil {
		if len(lits) > maxProps {
			return fail("more than %d enum values", maxProps)
		}
		n := &snode{kind: kLiteral}
		for _, l := range lits {
			b, ok := compact(l)
			if !ok {
				return fail("enum values must be strings, numbers, booleans or null")
			}
			n.lits = append(n.lits, b)
		}
		return n, nil
	}
	t, ok := o.get("type")
	if !ok {
		if _, ok := o.get("properties"); ok {
			t = "object"
		} else if onlyNotes(o, "") {
			return &snode{kind: kAny}, nil // {}: any value
		} else {
			return fail("a schema needs a type (or enum, const, properties)")
		}
	}
	var types []string
	switch t := t.(type) {
	case string:
		types = []string{t}
	case []any:
		for _, x := range t {
			s, ok := x.(string)
			if !ok {
				return fail("type must be a string or a list of strings")
			}
			types = append(types, s)
		}
	default:
		return fail("type must be a string or a list of strings")
	}
	for k, want := range map[string]string{"properties": "object", "required": "object", "additionalProperties": "object", "items": "array", "prefixItems": "array", "additionalItems": "array"} {
		if _, ok := o.get(k); ok && !slices.Contains(types, want) {
			return fail("%q applies to the type %s, which %v is not", k, want, types)
		}
	}
	for _, k := range []string{"format", "pattern"} {
		if _, ok := o.get(k); ok && !slices.Contains(types, "string") {
			return fail("%q applies to strings, which %v is not", k, types)
		}
	}
	for k, want := range map[string]string{"minItems": "array", "maxItems": "array", "minLength": "string", "maxLength": "string"} {
		if _, ok := o.get(k); ok && !slices.Contains(types, want) {
			return fail("%q applies to the type %s, which %v is not", k, want, types)
		}
	}
	for _, k := range []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"} {
		if _, ok := o.get(k); ok && !slices.Contains(types, "number") && !slices.Contains(types, "integer") {
			return fail("%q applies to numbers, which %v are not", k, types)
		}
	}
	var alts []*snode
	for _, typ := range types {
		n, err := c.typed(o, typ, at, depth)
		if err != nil {
			return nil, err
		}
		alts = append(alts, n)
	}
	return union(alts, at)
}

// bounds reads the keywords lo and hi (minItems and maxItems, minLength
// and maxLength) into n.min and n.max.
func bounds(o ordered, lo, hi string, n *snode) error {
	for _, k := range []string{lo, hi} {
		v, ok := o.get(k)
		if !ok {
			continue
		}
		num, isNum := v.(json.Number)
		i, err := num.Int64()
		if !isNum || err != nil || i < 0 || i > maxItems {
			return fmt.Errorf("%s must be an integer in [0, %d]", k, maxItems)
		}
		if k == lo {
			n.min = int(i)
		} else {
			n.max = int(i)
		}
	}
	if n.max >= 0 && n.min > n.max {
		return fmt.Errorf("%s %d > %s %d", lo, n.min, hi, n.max)
	}
	return nil
}

// onlyNotes reports whether o has no keyword but key and the notes that
// say nothing about the text.
func onlyNotes(o ordered, key string) bool {
	for _, kv := range o {
		switch kv.key {
		case key, "title", "description", "default", "examples", "$schema", "$comment", "$defs", "definitions":
		default:
			return false
		}
	}
	return true
}

// appendAlt appends n to the alternatives alts: its own alternatives
// where it is a union.
func appendAlt(alts []*snode, n *snode) []*snode {
	if n.kind == kUnion {
		return append(alts, n.alts...)
	}
	return append(alts, n)
}

// union is the node of alts: alts[0] alone, a discriminated object
// (discriminated), or a kUnion.
func union(alts []*snode, at string) (*snode, error) {
	if len(alts) == 1 {
		return alts[0], nil
	}
	if d := discriminated(alts); d != nil {
		return d, nil
	}
	if len(alts) > MaxSchemaReadings {
		return nil, fmt.Errorf("%w: %s: more than %d alternatives", ErrSchema, at, MaxSchemaReadings)
	}
	return &snode{kind: kUnion, alts: alts}, nil
}

// discriminated returns the node of objects alts (or of the branches of
// such nodes) that each begin with the same required property, of one
// string constant, different in each: a tool call's "name", Pydantic's
// discriminated unions that list the discriminator first. Its one
// property is that discriminator, of all the constants; once the
// discriminator's value is written, the object goes on as the branch
// (alts) that the value names (schemaState.pop). Up to maxProps branches
// are read as one reading, where a kUnion would follow every alternative
// until the text told them apart. It returns nil where alts are not such
// objects.
func discriminated(alts []*snode) *snode {
	var branches []*snode
	for _, a := range alts {
		if a.kind == kObject && a.alts != nil {
			branches = append(branches, a.alts...)
		} else {
			branches = append(branches, a)
		}
	}
	if len(branches) > maxProps {
		return nil
	}
	key := &snode{kind: kLiteral}
	for _, b := range branches {
		if b.kind != kObject || b.alts != nil || len(b.props) == 0 || !b.props[0].required ||
			!bytes.Equal(b.props[0].key, branches[0].props[0].key) {
			return nil
		}
		lit := b.props[0].node
		if lit.kind != kLiteral || len(lit.lits) != 1 || lit.lits[0][0] != '"' ||
			slices.ContainsFunc(key.lits, func(l []byte) bool { return bytes.Equal(l, lit.lits[0]) }) {
			return nil
		}
		key.lits = append(key.lits, lit.lits[0])
	}
	return &snode{kind: kObject, props: []sprop{{key: branches[0].props[0].key, node: key, required: true}}, alts: branches}
}

// MaxSchemaReadings bounds the alternatives of an anyOf (or oneOf, or a
// list of types) and the readings of a text that a schema's alternatives
// keep open at once (nested alternatives multiply them): a text that
// would need more is refused.
const MaxSchemaReadings = 16

// ref compiles the schema a "$ref" names: "#/$defs/NAME" (or
// "#/definitions/NAME") of the document; a reference to itself, however
// indirect, is refused.
func (c *compiler) ref(r any, at string, depth int) (*snode, error) {
	name, def, err := c.lookup(r, at)
	if err != nil {
		return nil, err
	}
	c.refs = append(c.refs, name)
	defer func() { c.refs = c.refs[:len(c.refs)-1] }()
	return c.node(def, r.(string), depth)
}

// firstBytes are the bytes a value of n may begin with.
func firstBytes(n *snode) []byte {
	switch n.kind {
	case kObject:
		return []byte{'{'}
	case kArray:
		return []byte{'['}
	case kString:
		return []byte{'"'}
	case kNumber, kInteger:
		return []byte("-0123456789")
	case kAny:
		return []byte(`{["-0123456789tfn`)
	case kAnyObject, kMap:
		return []byte{'{'}
	case kLiteral:
		var bs []byte
		for _, l := range n.lits {
			bs = append(bs, l[0])
		}
		return bs
	}
	return nil
}

func (c *compiler) typed(o ordered, typ, at string, depth int) (*snode, error) {
	fail := func(format string, args ...any) (*snode, error) {
		return nil, fmt.Errorf("%w: %s: %s", ErrSchema, at, fmt.Sprintf(format, args...))
	}
	switch typ {
	case "string":
		n := &snode{kind: kString, max: -1}
		if f, ok := o.get("format"); ok {
			name, _ := f.(string)
			if n.format = formatHeads[name]; n.format == "" {
				return fail("format %q is not supported; date, time, date-time and uuid are", f)
			}
		}
		if err := bounds(o, "minLength", "maxLength", n); err != nil {
			return fail("%v", err)
		}
		if n.format != "" && (n.min > 0 || n.max >= 0) {
			return fail("a format with minLength or maxLength is not supported")
		}
		if pat, ok := o.get("pattern"); ok {
			str, ok := pat.(string)
			if !ok {
				return fail("pattern must be a string")
			}
			if n.format != "" || n.min > 0 || n.max >= 0 {
				return fail("a pattern with a format, minLength or maxLength is not supported")
			}
			var err error
			if n.pat, err = compilePattern(str); err != nil {
				return fail("%v", err)
			}
		}
		return n, nil
	case "number", "integer":
		r, err := numRangeOf(o, typ)
		if err != nil {
			return fail("%v", err)
		}
		if typ == "integer" {
			return &snode{kind: kInteger, rng: r}, nil
		}
		return &snode{kind: kNumber, rng: r}, nil
	case "boolean":
		return &snode{kind: kLiteral, lits: [][]byte{[]byte("true"), []byte("false")}}, nil
	case "null":
		return &snode{kind: kLiteral, lits: [][]byte{[]byte("null")}}, nil
	case "array":
		n := &snode{kind: kArray, max: -1}
		if err := bounds(o, "minItems", "maxItems", n); err != nil {
			return fail("%v", err)
		}
		// A tuple: prefixItems, or (before draft 2020-12) items as a
		// list. Items past them follow items, or additionalItems in the
		// older form; none when it is false, or absent in the older
		// form (which allows any: a tuple that stops there is one of them).
		prefix, hasPrefix := o.get("prefixItems")
		rest, hasRest := o.get("items")
		if list, isList := rest.([]any); isList {
			if hasPrefix {
				return fail("prefixItems beside items as a list")
			}
			prefix, hasPrefix = list, true
			rest, hasRest = o.get("additionalItems")
			if !hasRest {
				rest, hasRest = false, true
			}
		} else if _, ok := o.get("additionalItems"); ok {
			return fail("additionalItems applies to items as a list")
		}
		if hasPrefix {
			list, ok := prefix.([]any)
			if !ok || len(list) == 0 || len(list) > maxProps {
				return fail("prefixItems must be a list of 1 to %d schemas", maxProps)
			}
			for i, sub := range list {
				item, err := c.node(sub, fmt.Sprintf("%s.prefixItems[%d]", at, i), depth+1)
				if err != nil {
					return nil, err
				}
				n.prefix = append(n.prefix, item)
			}
		}
		switch {
		case rest == false:
			if n.max < 0 || n.max > len(n.prefix) {
				n.max = len(n.prefix)
			}
			if n.min > n.max {
				return fail("minItems %d > the %d items allowed", n.min, n.max)
			}
		case !hasRest || rest == true: // any items
			n.items = &snode{kind: kAny}
		default:
			items, err := c.node(rest, at+".items", depth+1)
			if err != nil {
				return nil, err
			}
			n.items = items
		}
		if n.max >= 0 && n.max <= len(n.prefix) {
			n.items = nil // maxItems leaves no room past the tuple
		}
		return n, nil
	case "object":
		n := &snode{kind: kObject}
		if p, ok := o.get("properties"); ok {
			props, ok := p.(ordered)
			if !ok {
				return fail("properties must be an object")
			}
			if len(props) > maxProps {
				return fail("more than %d properties", maxProps)
			}
			for _, kv := range props {
				child, err := c.node(kv.val, at+"."+kv.key, depth+1)
				if err != nil {
					return nil, err
				}
				key, _ := compact(kv.key)
				n.props = append(n.props, sprop{key: key, node: child})
			}
		}
		if r, ok := o.get("required"); ok {
			names, ok := r.([]any)
			if !ok {
				return fail("required must be an array of names")
			}
			for _, name := range names {
				s, _ := name.(string)
				i := -1
				for j, p := range n.props {
					if key, _ := compact(s); bytes.Equal(p.key, key) {
						i = j
					}
				}
				if i < 0 {
					return fail("required property %v is not among the properties", name)
				}
				n.props[i].required = true
			}
		}
		a, hasA := o.get("additionalProperties")
		if sch, ok := a.(ordered); ok { // a map: any keys, values of the schema
			if len(n.props) > 0 {
				return fail("properties beside an additionalProperties schema are not supported")
			}
			values, err := c.node(sch, at+".additionalProperties", depth+1)
			if err != nil {
				return nil, err
			}
			return &snode{kind: kMap, items: values}, nil
		}
		if hasA {
			if _, isBool := a.(bool); !isBool {
				return fail("additionalProperties must be true, false or a schema")
			}
		}
		if len(n.props) == 0 && a != false { // free-form: any object
			return &snode{kind: kAnyObject}, nil
		}
		return n, nil
	}
	return fail("type %q is not supported", typ)
}

// item returns the node of a kArray's item i.
func (n *snode) item(i int) *snode {
	if i < len(n.prefix) {
		return n.prefix[i]
	}
	return n.items
}

// A frame is one value being written, with its progress.
type frame struct {
	node   *snode
	phase  uint8
	next   uint8  // kObject: the properties before next are written or skipped
	cand   uint64 // kObject keys, kLiteral texts: the candidates left
	n      uint16 // bytes of the key or literal matched
	num    uint8  // kNumber, kInteger: where in the number (the j* number modes)
	digits uint8  // kNumber, kInteger: the digits of the number's current part
	// kNumber, kInteger with a range: the sign, the integer part (up to
	// satMag) and whether a fraction digit so far is nonzero.
	neg, fracNZ bool
	mag         int64
	count       uint16    // kArray: items begun; kString: characters begun (an escape is one)
	pos         uint8     // kString with a format: where in it (formatStep)
	js          jsonState // kAny, kAnyObject: the value so far
	// kString: UTF-8 continuation bytes still needed, and the range of
	// the next one.
	need, lo, hi uint8
	hex          uint8 // kString: \u digits left
	// kString with a pattern: the states of its automaton, and the bits
	// of the character being written (a UTF-8 sequence or \u escape) so
	// far.
	ps patSet
	cp rune
}

// Phases of a frame.
const (
	pStart  uint8 = iota // its first byte
	pFirst               // kObject, kArray: after the opening bracket
	pKey                 // kObject: in a key
	pColon               // kObject: after a key
	pValue               // kObject: after ':'; kArray: after ','
	pAfter               // kObject, kArray: after a value
	pNext                // kObject: after ','
	pIn                  // kString: inside; kLiteral, kNumber: under way
	pEscape              // kString: after '\'
	pHex                 // kString: in a \u escape
)

// schemaState recognizes a text of root, frame by frame: one reading of
// it, where alternatives that begin alike (a kUnion) make several.
type schemaState struct {
	root    *snode
	stack   []frame
	started bool // the root began
	done    bool // the root ended
	space   uint8
	// choose is the alternative the next union to resolve becomes (a
	// fork); ambiguous is set, and the step refused, when a union finds
	// several alternatives that fit its first byte and none was chosen.
	choose    *snode
	ambiguous []*snode
}

// clone returns a copy of s with a stack of its own, in buf's array.
func (s *schemaState) clone(buf []frame) schemaState {
	t := *s
	t.stack = append(buf[:0], s.stack...)
	t.ambiguous = nil
	return t
}

// advance appends to out the readings s becomes after text (none: text is
// refused), forking at unions whose alternatives begin alike; it stops
// once out holds limit readings. s is unchanged.
func (s *schemaState) advance(text []byte, out []schemaState, limit int) []schemaState {
	t := s.clone(nil)
	for i, b := range text {
		if t.step(b) {
			continue
		}
		if t.ambiguous == nil {
			return out
		}
		alts := t.ambiguous
		before := s.clone(nil)
		for _, c := range text[:i] { // as t took them: no fork among them
			before.step(c)
		}
		for _, a := range alts {
			u := before.clone(nil)
			u.choose = a
			if u.step(b) {
				if out = u.advance(text[i+1:], out, limit); len(out) >= limit {
					return out[:limit]
				}
			}
		}
		return out
	}
	return append(out, t)
}

func (s *schemaState) top() *frame { return &s.stack[len(s.stack)-1] }

func (s *schemaState) push(n *snode) bool {
	if len(s.stack) >= MaxJSONDepth {
		return false
	}
	s.stack = append(s.stack, frame{node: n})
	return true
}

// popValue ends the top frame, a value that ended without taking the
// byte after it. Where it was the discriminator of a discriminated
// object, the object goes on as the branch its value names.
func (s *schemaState) popValue() {
	f := s.top()
	s.pop()
	if len(s.stack) == 0 {
		return
	}
	if p := s.top(); p.node.kind == kObject && p.node.alts != nil && f.node.kind == kLiteral {
		for c := f.cand; c != 0; c &= c - 1 {
			if i := bits.TrailingZeros64(c); len(f.node.lits[i]) == int(f.n) {
				p.node = p.node.alts[i]
				return
			}
		}
	}
}

// pop ends the top frame.
func (s *schemaState) pop() {
	s.stack = s.stack[:len(s.stack)-1]
	if len(s.stack) == 0 {
		s.done = true
	}
}

// accepting reports whether the text may end here.
func (s *schemaState) accepting() bool {
	if s.done {
		return true
	}
	if len(s.stack) != 1 {
		return false
	}
	return s.stack[0].ends()
}

// ends reports whether f's value is whole as it stands.
func (f *frame) ends() bool {
	switch f.node.kind {
	case kLiteral:
		return f.phase == pIn && f.whole()
	case kNumber, kInteger:
		return f.phase == pIn && numWhole(f.num) && (f.node.rng == nil || f.node.rng.ends(f))
	case kAny:
		return f.phase == pIn && f.js.depth == 0 && numWhole(f.js.mode)
	}
	return false
}

// whole reports whether one of a literal's candidates is fully matched.
func (f *frame) whole() bool {
	for c := f.cand; c != 0; c &= c - 1 {
		if len(f.node.lits[bits.TrailingZeros64(c)]) == int(f.n) {
			return true
		}
	}
	return false
}

// step moves past b, or reports false. On false, s may be changed: step
// is tried on a copy (see schemaConstraint).
func (s *schemaState) step(b byte) bool {
	if s.done {
		return false
	}
	if !s.started {
		s.started = true
		s.push(s.root)
	}
	for {
		f := s.top()
		ok, again := s.frameStep(f, b)
		if !again {
			return ok
		}
		// f ended without taking b: its parent takes it.
		s.popValue()
		if s.done {
			return false
		}
	}
}

// between handles whitespace between tokens, within bounds.
func (s *schemaState) between(b byte) (handled, ok bool) {
	if isSpace(b) {
		return true, spaceStep(&s.space, b)
	}
	s.space = 0
	return false, false
}

// frameStep feeds b to f. again: f's value ended before b, which its
// parent must take.
func (s *schemaState) frameStep(f *frame, b byte) (ok, again bool) {
	n := f.node
	if n.kind == kUnion { // become the alternative b begins
		var fits *snode
		for _, a := range n.alts {
			if bytes.IndexByte(firstBytes(a), b) < 0 {
				continue
			}
			if fits != nil && s.choose == nil { // several: the caller forks
				s.ambiguous = n.alts
				return false, false
			}
			if fits == nil || a == s.choose {
				fits = a
			}
		}
		if fits == nil || s.choose != nil && fits != s.choose {
			return false, false
		}
		s.choose = nil
		*f = frame{node: fits}
		return s.frameStep(f, b)
	}
	switch n.kind {
	case kString:
		switch f.phase {
		case pStart:
			if b != '"' {
				return false, false
			}
			f.phase = pIn
			if n.pat != nil {
				f.ps = n.pat.start
			}
		case pIn:
			switch {
			case n.format != "":
				if b == '"' && formatDone(n.format, f.pos) {
					s.pop()
					return true, false
				}
				p, ok := formatStep(n.format, f.pos, b)
				f.pos = p
				return ok, false
			case f.need > 0: // inside a UTF-8 sequence
				if b < f.lo || b > f.hi {
					return false, false
				}
				f.need, f.lo, f.hi = f.need-1, 0x80, 0xbf
				if n.pat != nil {
					f.cp = f.cp<<6 | rune(b&0x3f)
					return f.patChar(n.pat), false
				}
			case b == '"':
				if int(f.count) < n.min || n.pat != nil && !n.pat.matched(&f.ps) {
					return false, false
				}
				s.pop()
			case b < 0x20:
				return false, false
			default: // a character begins
				if n.max >= 0 && int(f.count) >= n.max {
					return false, false
				}
				f.count++
				switch {
				case b == '\\':
					f.phase = pEscape
					return n.pat == nil || n.pat.can(&f.ps, 0, 0xffff), false
				case b >= 0x80 && !f.utf8Lead(b):
					return false, false
				case n.pat != nil && b >= 0x80:
					f.cp = rune(b) & (0x7f >> (f.need + 1)) // the lead's bits
					return f.patChar(n.pat), false
				case n.pat != nil:
					f.cp = rune(b)
					return f.patChar(n.pat), false
				}
			}
		case pEscape:
			switch b {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				f.phase = pIn
				if n.pat != nil {
					f.cp = unescape(b)
					return f.patChar(n.pat), false
				}
			case 'u':
				f.phase, f.hex, f.cp = pHex, 4, 0
			default:
				return false, false
			}
		case pHex:
			if !isHex(b) {
				return false, false
			}
			f.hex--
			if n.pat != nil {
				f.cp = f.cp<<4 | rune(hexVal(b))
				if f.hex == 0 && f.cp >= 0xd800 && f.cp <= 0xdfff {
					return false, false // a pattern takes characters, not halves of pairs
				}
				if !f.patChar(n.pat) {
					return false, false
				}
			}
			if f.hex == 0 {
				f.phase = pIn
			}
		}
		return true, false

	case kLiteral:
		if f.phase == pStart {
			f.phase, f.cand = pIn, 1<<len(n.lits)-1
			if len(n.lits) == maxProps {
				f.cand = ^uint64(0)
			}
		}
		var next uint64
		for c := f.cand; c != 0; c &= c - 1 {
			i := bits.TrailingZeros64(c)
			if l := n.lits[i]; len(l) > int(f.n) && l[f.n] == b {
				next |= 1 << i
			}
		}
		if next != 0 {
			f.cand, f.n = next, f.n+1
			return true, false
		}
		if f.n > 0 && f.whole() {
			return false, true
		}
		return false, false

	case kNumber, kInteger:
		if f.phase == pStart {
			f.phase, f.num = pIn, jValue
		}
		ok, ended := numStep(&f.num, &f.digits, b, n.kind == kInteger)
		switch {
		case ended && n.rng != nil && !n.rng.ends(f):
			return false, false // out of range: it may not end here
		case ended:
			return false, true
		case ok && n.rng != nil:
			ok = n.rng.step(f, b, n.kind == kInteger)
		}
		return ok, false

	case kAny, kAnyObject:
		if f.phase == pStart {
			if isSpace(b) { // none before the root (a parent takes it before a value)
				return false, false
			}
			f.phase = pIn
			if n.kind == kAny {
				f.js.mode = jValue
			}
		}
		t := f.js
		if t.step(b) {
			if f.js = t; t.mode == jDone {
				s.pop()
			}
			return true, false
		}
		if f.js.depth == 0 && numWhole(f.js.mode) { // a number, ended by b
			return false, true
		}
		return false, false

	case kMap:
		if f.phase == pStart {
			return f.open(b, '{'), false
		}
		if handled, ok := s.between(b); handled {
			return ok, false
		}
		switch f.phase {
		case pFirst, pNext:
			if b == '"' {
				f.phase = pColon
				return s.enter(anyString, b)
			}
			if b == '}' && f.phase == pFirst {
				s.pop()
				return true, false
			}
		case pColon:
			if b == ':' {
				f.phase = pValue
				return true, false
			}
		case pValue:
			f.phase = pAfter
			return s.enter(n.items, b)
		case pAfter:
			switch b {
			case ',':
				f.phase = pNext
				return true, false
			case '}':
				s.pop()
				return true, false
			}
		}
		return false, false

	case kArray:
		if f.phase == pStart {
			return f.open(b, '['), false
		}
		if handled, ok := s.between(b); handled {
			return ok, false
		}
		switch f.phase {
		case pFirst, pValue:
			if b == ']' && f.phase == pFirst && n.min == 0 {
				s.pop()
				return true, false
			}
			if n.max >= 0 && int(f.count) >= n.max {
				return false, false
			}
			f.phase = pAfter
			f.count++
			return s.enter(n.item(int(f.count)-1), b)
		case pAfter:
			switch {
			case b == ',' && (n.max < 0 || int(f.count) < n.max):
				f.phase = pValue
				return true, false
			case b == ']' && int(f.count) >= n.min:
				s.pop()
				return true, false
			}
		}
		return false, false

	case kObject:
		if f.phase == pStart {
			return f.open(b, '{'), false
		}
		if f.phase == pKey {
			var next uint64
			whole := -1
			for c := f.cand; c != 0; c &= c - 1 {
				i := bits.TrailingZeros64(c)
				if k := n.props[i].key; len(k) > int(f.n) && k[f.n] == b {
					next |= 1 << i
					if len(k) == int(f.n)+1 {
						whole = i
					}
				}
			}
			if next == 0 {
				return false, false
			}
			f.cand, f.n = next, f.n+1
			if whole >= 0 { // the closing quote: no key is a prefix of another
				f.next, f.phase = uint8(whole+1), pColon
			}
			return true, false
		}
		if handled, ok := s.between(b); handled {
			return ok, false
		}
		switch f.phase {
		case pFirst, pNext:
			if b == '"' {
				if f.cand = keysFrom(n, int(f.next)); f.cand == 0 {
					return false, false
				}
				f.phase, f.n = pKey, 1
				return true, false
			}
			if b == '}' && f.phase == pFirst && !requiredFrom(n, int(f.next)) {
				s.pop()
				return true, false
			}
		case pColon:
			if b == ':' {
				f.phase = pValue
				return true, false
			}
		case pValue:
			f.phase = pAfter
			return s.enter(n.props[f.next-1].node, b)
		case pAfter:
			switch {
			case b == ',' && keysFrom(n, int(f.next)) != 0:
				f.phase = pNext
				return true, false
			case b == '}' && !requiredFrom(n, int(f.next)):
				s.pop()
				return true, false
			}
		}
		return false, false
	}
	return false, false
}

// enter begins a value of n inside the top frame with its first byte b.
func (s *schemaState) enter(n *snode, b byte) (ok, again bool) {
	if !s.push(n) {
		return false, false
	}
	return s.frameStep(s.top(), b)
}

// open moves an object's or array's frame past its opening bracket c.
func (f *frame) open(b, c byte) bool {
	if b != c {
		return false
	}
	f.phase = pFirst
	return true
}

// utf8Lead starts the UTF-8 sequence that b leads, or reports false when b
// leads none: the continuation bytes it needs and the range of the first
// (which rules out overlong forms, surrogates and code points beyond
// U+10FFFF), as the Unicode standard's table of well-formed sequences has
// them.
func (f *frame) utf8Lead(b byte) bool {
	f.lo, f.hi = 0x80, 0xbf
	switch {
	case b >= 0xc2 && b <= 0xdf:
		f.need = 1
	case b == 0xe0:
		f.need, f.lo = 2, 0xa0
	case b == 0xed:
		f.need, f.hi = 2, 0x9f
	case b >= 0xe1 && b <= 0xef:
		f.need = 2
	case b == 0xf0:
		f.need, f.lo = 3, 0x90
	case b >= 0xf1 && b <= 0xf3:
		f.need = 3
	case b == 0xf4:
		f.need, f.hi = 3, 0x8f
	default:
		return false
	}
	return true
}

// formatHeads are the supported formats' fixed heads: D a digit, H a hex
// digit, anything else itself. A time (and a date-time) goes on after its
// head with an optional fraction of a second and a zone: Z, or +hh:mm or
// -hh:mm, as RFC 3339 writes them.
var formatHeads = map[string]string{
	"date":      "DDDD-DD-DD",
	"time":      "DD:DD:DD",
	"date-time": "DDDD-DD-DDTDD:DD:DD",
	"uuid":      "HHHHHHHH-HHHH-HHHH-HHHH-HHHHHHHHHHHH",
}

// Where a time's tail is, past its head (formatStep's positions).
const (
	tSeconds = 200 + iota // after the seconds: '.', a zone, or the end
	tFrac1                // after '.': a digit
	tFrac                 // in the fraction
	tZone                 // in +hh:mm: tZone+i is its byte i
	tEnd     = tZone + 6  // the zone is whole
)

// formatStep moves past b at pos of head, or reports false.
func formatStep(head string, pos uint8, b byte) (uint8, bool) {
	timed := strings.HasSuffix(head, "DD:DD:DD")
	switch {
	case int(pos) < len(head):
		ok := false
		switch c := head[pos]; c {
		case 'D':
			ok = isDigit(b)
		case 'H':
			ok = isHex(b)
		default:
			ok = b == c
		}
		if !ok {
			return pos, false
		}
		if pos++; int(pos) == len(head) && timed {
			pos = tSeconds
		}
		return pos, true
	case pos == tSeconds || pos == tFrac:
		switch {
		case b == '.' && pos == tSeconds:
			return tFrac1, true
		case isDigit(b) && pos == tFrac:
			return tFrac, true
		case b == 'Z':
			return tEnd, true
		case b == '+' || b == '-':
			return tZone + 1, true
		}
	case pos == tFrac1:
		if isDigit(b) {
			return tFrac, true
		}
	case pos > tZone && pos < tEnd:
		if c := "+DD:DD"[pos-tZone]; c == 'D' && isDigit(b) || c == ':' && b == ':' {
			return pos + 1, true
		}
	}
	return pos, false
}

// formatDone reports whether the string may end at pos of head.
func formatDone(head string, pos uint8) bool {
	if strings.HasSuffix(head, "DD:DD:DD") {
		return pos == tEnd
	}
	return int(pos) == len(head)
}

// keysFrom are the properties that may come next after those before i:
// from i up to the first required one.
func keysFrom(n *snode, i int) uint64 {
	var m uint64
	for ; i < len(n.props); i++ {
		m |= 1 << i
		if n.props[i].required {
			break
		}
	}
	return m
}

// requiredFrom reports whether a required property remains from i on.
func requiredFrom(n *snode, i int) bool {
	for ; i < len(n.props); i++ {
		if n.props[i].required {
			return true
		}
	}
	return false
}

// schemaConstraint is JSONSchema's Constraint: the readings of the text so
// far, one unless alternatives that begin alike keep several open. Allowed
// tries a token on a copy of each reading (its frames in scratch), and
// forks only where a union is ambiguous.
type schemaConstraint struct {
	piece   func(int) []byte
	isEOG   func(int) bool
	sts     []schemaState
	scratch []frame
	next    []schemaState
}

// Allowed implements Constraint.
func (c *schemaConstraint) Allowed(token int) bool {
	if c.isEOG(token) {
		return slices.ContainsFunc(c.sts, func(st schemaState) bool { return st.accepting() })
	}
	p := c.piece(token)
	if len(p) == 0 {
		return false
	}
	for i := range c.sts {
		st := &c.sts[i]
		t := st.clone(c.scratch)
		c.scratch = t.stack[:0]
		ok := true
		for _, b := range p {
			if !t.step(b) {
				ok = false
				break
			}
		}
		if ok || t.ambiguous != nil && len(st.advance(p, c.next[:0], 1)) > 0 {
			return true
		}
	}
	return false
}

// Accept implements Constraint.
func (c *schemaConstraint) Accept(token int) {
	if c.isEOG(token) {
		return
	}
	p := c.piece(token)
	if len(c.sts) == 1 { // one reading that stays one: stepped in scratch, no allocation
		st := &c.sts[0]
		t := st.clone(c.scratch)
		ok := true
		for _, b := range p {
			if !t.step(b) {
				ok = false
				break
			}
		}
		if ok {
			c.scratch = st.stack[:0]
			*st = t
			return
		}
	}
	next := c.next[:0]
	for i := range c.sts {
		next = c.sts[i].advance(p, next, MaxSchemaReadings)
		if len(next) >= MaxSchemaReadings {
			break
		}
	}
	c.sts, c.next = next, c.sts[:0]
}

// String names the schema's shape, for logs and errors.
func (s *JSONSchema) String() string {
	var b strings.Builder
	var walk func(n *snode)
	walk = func(n *snode) {
		switch {
		case n.kind == kObject && n.alts != nil: // as the union of its branches
			walk(&snode{kind: kUnion, alts: n.alts})
			return
		}
		switch n.kind {
		case kObject:
			b.WriteString("{")
			for i, p := range n.props {
				if i > 0 {
					b.WriteString(",")
				}
				b.Write(p.key)
				if !p.required {
					b.WriteString("?")
				}
				b.WriteString(":")
				walk(p.node)
			}
			b.WriteString("}")
		case kArray:
			b.WriteString("[")
			for i, p := range n.prefix {
				if i > 0 {
					b.WriteString(",")
				}
				walk(p)
			}
			if n.items != nil {
				if len(n.prefix) > 0 {
					b.WriteString(",...")
				}
				walk(n.items)
			}
			b.WriteString("]")
		case kString:
			b.WriteString("string")
			if n.pat != nil {
				fmt.Fprintf(&b, "~%q", n.pat.src)
			}
		case kNumber:
			b.WriteString("number")
			n.rng.write(&b)
		case kInteger:
			b.WriteString("integer")
			n.rng.write(&b)
		case kLiteral:
			b.Write(bytes.Join(n.lits, []byte("|")))
		case kAny:
			b.WriteString("any")
		case kAnyObject:
			b.WriteString("{...}")
		case kMap:
			b.WriteString("{string:")
			walk(n.items)
			b.WriteString("}")
		case kUnion:
			for i, a := range n.alts {
				if i > 0 {
					b.WriteString("|")
				}
				walk(a)
			}
		}
	}
	walk(s.root)
	return b.String()
}

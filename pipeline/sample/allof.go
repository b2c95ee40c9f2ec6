package sample

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
)

// errNoValue marks the schemas of an allOf that no value satisfies
// together: no type in common, no value in every enum, a required
// property that another forbids. Such an alternative of an anyOf that
// allOf distributes is dropped.
var errNoValue = errors.New("no value satisfies every schema of allOf")

// allOf compiles o, which has an "allOf" of several schemas (or one with
// other keywords beside it), as one schema that accepts exactly the
// values that all of them accept. The $defs it follows stay on the
// compiler's stack while that schema compiles (a definition that reaches
// itself again is recursive).
//
// The schemas are taken after their own "$ref" and "allOf" are followed,
// with the keywords beside "allOf" as one more. An "anyOf" (or "oneOf")
// among them is distributed: allOf [anyOf [A, B], C] is anyOf [allOf [A,
// C], allOf [B, C]], less the alternatives that no value satisfies. The
// rest merge keyword by keyword (allOfMerge):
//
//   - notes (title, description, ...): the first;
//   - "type": the types all of them allow (an integer is a number);
//   - "properties": each property of any of them, in the order they first
//     appear; one that several list takes the allOf of their schemas;
//   - "required": every name any of them requires;
//   - "additionalProperties": false in any of them leaves only the
//     properties that each of those lists (one that is required and not
//     left is refused: no object could satisfy them all); true says
//     nothing; a schema is kept only where nothing else lists properties;
//   - "items" of several: the allOf of them;
//   - "minItems", "minLength", "minimum" and "exclusiveMinimum": the
//     highest; "maxItems", "maxLength", "maximum" and "exclusiveMaximum":
//     the lowest (draft 4's boolean exclusive forms only where one schema
//     alone bounds numbers);
//   - "enum" and "const": the values in all of them, of the merged type
//     (refused beside other constraints of strings, numbers or arrays);
//   - any other keyword: only where every schema that has it gives it the
//     same value.
//
// What cannot be merged so is refused with an error that says which
// keyword, never ignored.
func (c *compiler) allOf(o ordered, at string, depth int) (*snode, error) {
	var refs []string
	var subs []ordered
	if err := c.flatten(o, at, &subs, &refs, nil); err != nil {
		return nil, err
	}
	c.refs = append(c.refs, refs...)
	defer func() { c.refs = c.refs[:len(c.refs)-len(refs)] }()
	// An anyOf among them: the anyOf of the allOf of each alternative and
	// the others.
	for i, s := range subs {
		key := "anyOf"
		if _, ok := s.get("oneOf"); ok {
			key = "oneOf"
		}
		a, ok := s.get(key)
		if !ok {
			continue
		}
		alts, ok := a.([]any)
		if !ok || len(alts) == 0 {
			return nil, fmt.Errorf("%w: %s: %s must be a non-empty array", ErrSchema, at, key)
		}
		others := make([]any, 0, len(subs))
		for j, t := range subs {
			if j != i {
				others = append(others, t)
			}
		}
		if rest := without(s, key); !onlyNotes(rest, "") {
			others = append(others, rest)
		}
		var nodes []*snode
		for k, alt := range alts {
			n, err := c.node(ordered{{"allOf", append([]any{alt}, others...)}}, fmt.Sprintf("%s.%s[%d]", at, key, k), depth+1)
			if errors.Is(err, errNoValue) {
				continue
			}
			if err != nil {
				return nil, err
			}
			nodes = appendAlt(nodes, n)
		}
		if len(nodes) == 0 {
			return nil, fmt.Errorf("%w: %s: %w", ErrSchema, at, errNoValue)
		}
		return union(nodes, at)
	}
	merged, err := allOfMerge(subs)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSchema, at, err)
	}
	return c.node(merged, at, depth+1)
}

// allOfMerge merges the schemas subs, none of which has an "anyOf",
// "oneOf", "allOf" or "$ref", as allOf describes.
func allOfMerge(subs []ordered) (ordered, error) {
	fail := func(format string, args ...any) (ordered, error) {
		return nil, fmt.Errorf(format, args...)
	}
	var keys []string
	vals := map[string][]any{}
	var props []ordered // each schema's "properties" (nil: none)
	var closed []int    // the schemas whose additionalProperties is false
	for i, s := range subs {
		p, _ := s.get("properties")
		po, ok := p.(ordered)
		if p != nil && !ok {
			return fail("properties must be an object")
		}
		props = append(props, po)
		if ap, ok := s.get("additionalProperties"); ok && ap == false {
			closed = append(closed, i)
		}
		for _, kv := range s {
			if _, seen := vals[kv.key]; !seen {
				keys = append(keys, kv.key)
			}
			vals[kv.key] = append(vals[kv.key], kv.val)
		}
	}
	var out ordered
	put := func(k string, v any) {
		out = append(out, struct {
			key string
			val any
		}{k, v})
	}
	for _, k := range keys {
		vs := vals[k]
		switch k {
		case "title", "description", "default", "examples", "$schema", "$comment":
			put(k, vs[0])
		case "$defs", "definitions", "enum", "const":
			// The document's $defs are the compiler's already; the
			// literals are merged below.
		case "type":
			t, err := mergeTypes(vs)
			if err != nil {
				return nil, err
			}
			put(k, t)
		case "properties":
			put(k, mergeProps(props, closed))
		case "required":
			var names []any
			for _, v := range vs {
				a, ok := v.([]any)
				if !ok {
					return fail("required must be an array of names")
				}
				for _, n := range a {
					if _, ok := n.(string); !ok {
						return fail("required must be an array of names")
					}
					if !slices.Contains(names, n) {
						names = append(names, n)
					}
				}
			}
			put(k, names)
		case "additionalProperties":
			var schemas []any
			for _, v := range vs {
				if _, ok := v.(bool); !ok {
					schemas = append(schemas, v)
				}
			}
			switch {
			case len(closed) > 0:
				put(k, false)
			case len(schemas) == 0:
			case len(schemas) > 1 || slices.ContainsFunc(props, func(p ordered) bool { return p != nil }):
				return fail("additionalProperties as a schema, beside properties or another such schema, is not supported in allOf")
			default:
				put(k, schemas[0])
			}
		case "items":
			if len(vs) == 1 {
				put(k, vs[0])
				break
			}
			for _, v := range vs {
				if _, ok := v.(ordered); !ok {
					return fail("items of several schemas must each be one schema")
				}
			}
			put(k, ordered{{"allOf", vs}})
		case "minItems", "minLength", "minimum", "exclusiveMinimum", "maxItems", "maxLength", "maximum", "exclusiveMaximum":
			v, err := mergeBound(k, vs, subs)
			if err != nil {
				return nil, err
			}
			put(k, v)
		default:
			for _, v := range vs[1:] {
				if !sameJSON(v, vs[0]) {
					return fail("%q differs between the schemas of allOf, which cannot be merged", k)
				}
			}
			put(k, vs[0])
		}
	}
	if r, ok := out.get("required"); ok && len(closed) > 0 {
		merged, _ := out.get("properties")
		props, _ := merged.(ordered)
		for _, n := range r.([]any) {
			name, _ := n.(string)
			if _, ok := props.get(name); !ok {
				return fail("%w: %q is required, but additionalProperties false forbids it", errNoValue, name)
			}
		}
	}
	lits, has, err := mergeLiterals(vals)
	if err != nil {
		return nil, err
	}
	if has {
		for _, k := range []string{"properties", "required", "additionalProperties", "items", "prefixItems", "additionalItems",
			"minItems", "maxItems", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern", "format"} {
			if _, ok := out.get(k); ok {
				return fail("enum or const beside %q in allOf is not supported", k)
			}
		}
		if t, ok := out.get("type"); ok {
			lits = slices.DeleteFunc(lits, func(l any) bool { return !literalOfType(l, t) })
		}
		if len(lits) == 0 {
			return fail("%w: no value is in every enum (or const), of the type", errNoValue)
		}
		out = without(out, "type")
		put("enum", lits)
	}
	return out, nil
}

// flatten appends to subs the schemas that v stands for in an allOf: v
// after its "$ref" (the names followed appended to refs; one already
// followed adds nothing more), or, where it has an "allOf", the schemas of
// that, and its other keywords as one more. stack holds the definitions
// v is within: v referring to one of them is recursive.
func (c *compiler) flatten(v any, at string, subs *[]ordered, refs *[]string, stack []string) error {
	if len(stack) >= MaxJSONDepth {
		return fmt.Errorf("%w: %s: allOf nested deeper than %d", ErrSchema, at, MaxJSONDepth)
	}
	o, ok := v.(ordered)
	if !ok {
		return fmt.Errorf("%w: %s: a schema must be an object", ErrSchema, at)
	}
	if r, ok := o.get("$ref"); ok {
		if !onlyNotes(o, "$ref") {
			return fmt.Errorf("%w: %s: $ref beside other keywords is not supported", ErrSchema, at)
		}
		name, def, err := c.lookup(r, at)
		switch {
		case err != nil:
			return err
		case slices.Contains(stack, name):
			return fmt.Errorf("%w: %s: $ref %v refers to itself: recursive schemas are not supported", ErrSchema, at, r)
		case slices.Contains(*refs, name):
			return nil // allOf [A, A] is A
		}
		*refs = append(*refs, name)
		return c.flatten(def, r.(string), subs, refs, append(stack, name))
	}
	a, ok := o.get("allOf")
	if !ok {
		*subs = append(*subs, o)
		return nil
	}
	all, ok := a.([]any)
	if !ok || len(all) == 0 {
		return fmt.Errorf("%w: %s: allOf must be a non-empty array", ErrSchema, at)
	}
	for i, s := range all {
		if err := c.flatten(s, fmt.Sprintf("%s.allOf[%d]", at, i), subs, refs, append(stack, "")); err != nil {
			return err
		}
	}
	if rest := without(o, "allOf"); !onlyNotes(rest, "") {
		*subs = append(*subs, rest)
	}
	return nil
}

// without is o less the keyword k.
func without(o ordered, k string) ordered {
	return slices.DeleteFunc(slices.Clone(o), func(kv struct {
		key string
		val any
	}) bool {
		return kv.key == k
	})
}

// mergeTypes is the "type" that allows what every one of vs allows.
func mergeTypes(vs []any) (any, error) {
	sets := make([][]string, len(vs))
	for i, v := range vs {
		switch v := v.(type) {
		case string:
			sets[i] = []string{v}
		case []any:
			for _, x := range v {
				s, ok := x.(string)
				if !ok {
					return nil, fmt.Errorf("type must be a string or a list of strings")
				}
				sets[i] = append(sets[i], s)
			}
		default:
			return nil, fmt.Errorf("type must be a string or a list of strings")
		}
	}
	allows := func(set []string, t string) bool {
		return slices.Contains(set, t) || t == "integer" && slices.Contains(set, "number")
	}
	var both []any
	for _, set := range sets {
		for _, t := range set {
			if !slices.Contains(both, any(t)) && !slices.ContainsFunc(sets, func(s []string) bool { return !allows(s, t) }) {
				both = append(both, t)
			}
		}
	}
	switch len(both) {
	case 0:
		return nil, fmt.Errorf("%w: they allow no type in common", errNoValue)
	case 1:
		return both[0], nil
	}
	return both, nil
}

// mergeProps merges the schemas' properties (props[i] of schema i): each
// in the order it first appears, the allOf of its schemas where several
// list it, less those that a schema with additionalProperties false (the
// indices in closed) does not list.
func mergeProps(props []ordered, closed []int) ordered {
	listed := func(i int, name string) bool {
		_, ok := props[i].get(name)
		return ok
	}
	var out ordered
	for _, p := range props {
		for _, kv := range p {
			if _, done := out.get(kv.key); done {
				continue
			}
			if slices.ContainsFunc(closed, func(i int) bool { return !listed(i, kv.key) }) {
				continue // another schema forbids it: never written
			}
			var all []any
			for _, q := range props {
				if s, ok := q.get(kv.key); ok {
					all = append(all, s)
				}
			}
			v := all[0]
			if len(all) > 1 {
				v = ordered{{"allOf", all}}
			}
			out = append(out, struct {
				key string
				val any
			}{kv.key, v})
		}
	}
	return out
}

// mergeBound is the tightest of the bounds vs of keyword k.
func mergeBound(k string, vs []any, subs []ordered) (any, error) {
	if len(vs) == 1 {
		return vs[0], nil
	}
	low := strings.HasPrefix(k, "min") || k == "exclusiveMinimum"
	var best any
	var bestR *big.Rat
	for _, v := range vs {
		n, ok := v.(json.Number)
		if !ok {
			if _, isBool := v.(bool); isBool {
				return nil, fmt.Errorf("%s as a boolean (draft 4) in more than one schema of allOf is not supported", k)
			}
			return nil, fmt.Errorf("%s must be a number", k)
		}
		r, ok := new(big.Rat).SetString(string(n))
		if !ok {
			return nil, fmt.Errorf("%s must be a number", k)
		}
		if bestR == nil || low && r.Cmp(bestR) > 0 || !low && r.Cmp(bestR) < 0 {
			best, bestR = v, r
		}
	}
	// Draft 4's boolean exclusive forms qualify "minimum" and "maximum":
	// bounds of several schemas cannot be merged beside them.
	for _, s := range subs {
		for _, e := range []string{"exclusiveMinimum", "exclusiveMaximum"} {
			if x, ok := s.get(e); ok {
				if _, isBool := x.(bool); isBool && (k == "minimum" || k == "maximum") {
					return nil, fmt.Errorf("%s of several schemas beside a boolean %s (draft 4) is not supported in allOf", k, e)
				}
			}
		}
	}
	return best, nil
}

// mergeLiterals is the values in the enum (or const) of every schema that
// has one; has says whether any has one.
func mergeLiterals(vals map[string][]any) (lits []any, has bool, err error) {
	var sets [][]any
	for _, k := range []string{"enum", "const"} {
		for _, v := range vals[k] {
			if k == "const" {
				sets = append(sets, []any{v})
				continue
			}
			a, ok := v.([]any)
			if !ok || len(a) == 0 {
				return nil, false, fmt.Errorf("enum must be a non-empty array")
			}
			sets = append(sets, a)
		}
	}
	if len(sets) == 0 {
		return nil, false, nil
	}
	for _, l := range sets[0] {
		if !slices.ContainsFunc(sets[1:], func(s []any) bool {
			return !slices.ContainsFunc(s, func(m any) bool { return sameJSON(l, m) })
		}) {
			lits = append(lits, l)
		}
	}
	return lits, true, nil
}

// literalOfType reports whether the literal l is of the type t (a "type"
// value, as mergeTypes leaves it).
func literalOfType(l any, t any) bool {
	var types []any
	switch t := t.(type) {
	case string:
		types = []any{t}
	case []any:
		types = t
	}
	for _, t := range types {
		switch t {
		case "string":
			if _, ok := l.(string); ok {
				return true
			}
		case "number", "integer":
			n, ok := l.(json.Number)
			if !ok {
				continue
			}
			r, ok := new(big.Rat).SetString(string(n))
			if ok && (t == "number" || r.IsInt()) {
				return true
			}
		case "boolean":
			if _, ok := l.(bool); ok {
				return true
			}
		case "null":
			if l == nil {
				return true
			}
		}
	}
	return false
}

// sameJSON reports whether a and b are the same JSON value: objects of
// the same members in any order, numbers of the same value.
func sameJSON(a, b any) bool {
	switch a := a.(type) {
	case ordered:
		b, ok := b.(ordered)
		if !ok || len(a) != len(b) {
			return false
		}
		for _, kv := range a {
			w, ok := b.get(kv.key)
			if !ok || !sameJSON(kv.val, w) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		return ok && len(a) == len(b) && sameList(a, b)
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		ra, okA := new(big.Rat).SetString(string(a))
		rb, okB := new(big.Rat).SetString(string(b))
		return okA && okB && ra.Cmp(rb) == 0
	}
	return a == b
}

// sameList reports whether the lists a and b hold the same values in order.
func sameList(a, b []any) bool {
	for i := range a {
		if !sameJSON(a[i], b[i]) {
			return false
		}
	}
	return true
}

// lookup finds the definition a "$ref" names: "#/$defs/NAME" (or
// "#/definitions/NAME") of the document, and its name.
func (c *compiler) lookup(r any, at string) (string, any, error) {
	s, _ := r.(string)
	name, ok := strings.CutPrefix(s, "#/"+c.defsKey+"/")
	if !ok || c.defsKey == "" {
		return "", nil, fmt.Errorf("%w: %s: $ref %q: only references to the document's $defs are supported", ErrSchema, at, r)
	}
	if slices.Contains(c.refs, name) {
		return "", nil, fmt.Errorf("%w: %s: $ref %q refers to itself: recursive schemas are not supported", ErrSchema, at, s)
	}
	def, ok := c.defs.get(name)
	if !ok {
		return "", nil, fmt.Errorf("%w: %s: $ref %q: no such definition", ErrSchema, at, s)
	}
	return name, def, nil
}

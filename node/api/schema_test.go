package api_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/strata-llm/strata/internal/testdata"
)

// spec is an OpenAPI document whose component schemas responses are
// checked against: the documents in ../shared/specs that the API answers
// to.
type spec struct {
	name    string
	schemas map[string]any
}

var (
	specMu    sync.Mutex
	specCache = map[string]*spec{}
)

// loadSpec reads an OpenAPI document of ../shared/specs (beside the test
// data). It skips the test when absent, or fails it under CI=true.
func loadSpec(t testing.TB, name string) *spec {
	t.Helper()
	specMu.Lock()
	defer specMu.Unlock()
	if s, ok := specCache[name]; ok {
		return s
	}
	path := filepath.Join(filepath.Dir(testdata.Dir()), "specs", name)
	b, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("API spec %s is missing (CI=true): %v", path, err)
		}
		t.Skipf("API spec %s not found: %v", path, err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	s := &spec{name: name, schemas: doc.Components.Schemas}
	specCache[name] = s
	return s
}

// check validates the JSON document raw against the named component
// schema and fails t with every violation.
func (s *spec) check(t testing.TB, schema string, raw []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", schema, err, raw)
	}
	sch, ok := s.schemas[schema]
	if !ok {
		t.Fatalf("%s has no schema %s", s.name, schema)
	}
	if errs := s.validate("$", v, sch, 0); len(errs) > 0 {
		t.Errorf("%s does not match %s's %s:\n  %s\n%s", schema, s.name, schema, strings.Join(errs, "\n  "), raw)
	}
}

// validate checks v against the subset of JSON Schema the OpenAPI
// documents use for these responses: $ref, allOf, anyOf, oneOf, type
// (also as a list), nullable, enum, required, properties, items, minimum
// and maximum. Formats and additionalProperties are not checked.
func (s *spec) validate(path string, v any, schema any, depth int) []string {
	sch, ok := schema.(map[string]any)
	if !ok || depth > 64 {
		return nil
	}
	if v == nil && sch["nullable"] == true { // also beside a $ref, as OpenAI's document uses it
		return nil
	}
	if ref, ok := sch["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		return s.validate(path, v, s.schemas[name], depth+1)
	}
	var errs []string
	if all, ok := sch["allOf"].([]any); ok {
		for _, sub := range all {
			errs = append(errs, s.validate(path, v, sub, depth+1)...)
		}
	}
	for _, key := range []string{"anyOf", "oneOf"} {
		alts, ok := sch[key].([]any)
		if !ok {
			continue
		}
		var tried []string
		matched := false
		for _, sub := range alts {
			e := s.validate(path, v, sub, depth+1)
			if len(e) == 0 {
				matched = true
				break
			}
			tried = append(tried, strings.Join(e, "; "))
		}
		if !matched {
			errs = append(errs, fmt.Sprintf("%s: matches none of %s: [%s]", path, key, strings.Join(tried, " | ")))
		}
	}
	if t, ok := sch["type"]; ok {
		var types []string
		switch t := t.(type) {
		case string:
			types = []string{t}
		case []any:
			for _, x := range t {
				types = append(types, fmt.Sprint(x))
			}
		}
		if !slices.ContainsFunc(types, func(typ string) bool { return jsonIs(v, typ) }) {
			return append(errs, fmt.Sprintf("%s: %s is not of type %v", path, short(v), types))
		}
	}
	if enum, ok := sch["enum"].([]any); ok && v != nil {
		if !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
			errs = append(errs, fmt.Sprintf("%s: %s is not one of %v", path, short(v), enum))
		}
	}
	if f, ok := v.(float64); ok {
		if m, ok := sch["minimum"].(float64); ok && f < m {
			errs = append(errs, fmt.Sprintf("%s: %v < minimum %v", path, f, m))
		}
		if m, ok := sch["maximum"].(float64); ok && f > m {
			errs = append(errs, fmt.Sprintf("%s: %v > maximum %v", path, f, m))
		}
	}
	if obj, ok := v.(map[string]any); ok {
		if req, ok := sch["required"].([]any); ok {
			for _, k := range req {
				if _, ok := obj[k.(string)]; !ok {
					errs = append(errs, fmt.Sprintf("%s: required field %q missing", path, k))
				}
			}
		}
		if props, ok := sch["properties"].(map[string]any); ok {
			for k, pv := range obj {
				if ps, ok := props[k]; ok {
					errs = append(errs, s.validate(path+"."+k, pv, ps, depth+1)...)
				}
			}
		}
	}
	if arr, ok := v.([]any); ok {
		if items, ok := sch["items"]; ok {
			for i, x := range arr {
				errs = append(errs, s.validate(fmt.Sprintf("%s[%d]", path, i), x, items, depth+1)...)
			}
		}
	}
	return errs
}

// jsonIs reports whether v (as encoding/json decodes into any) is of the
// JSON Schema type typ.
func jsonIs(v any, typ string) bool {
	switch typ {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "null":
		return v == nil
	}
	return false
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// TestSchemaChecker checks the checker itself, so that a passing schema
// test means something.
func TestSchemaChecker(t *testing.T) {
	s := loadSpec(t, "tgi-openapi.json")
	for _, tc := range []struct {
		doc  string
		want string // "" when valid, else part of the first error
	}{
		{`{"index":1,"token":{"id":5,"text":"a","logprob":-0.5,"special":false},"generated_text":null,"details":null}`, ""},
		{`{"token":{"id":5,"text":"a","logprob":-0.5,"special":false}}`, `required field "index"`},
		{`{"index":1,"token":{"id":5,"text":"a","special":false}}`, `required field "logprob"`},
		{`{"index":1,"token":{"id":"5","text":"a","logprob":null,"special":false}}`, "not of type"},
		{`{"index":1,"token":{"id":5,"text":"a","logprob":null,"special":false},"details":{"finish_reason":"done","generated_tokens":1,"input_length":2}}`, "not one of"},
		{`{"index":-1,"token":{"id":5,"text":"a","logprob":null,"special":false}}`, "minimum"},
	} {
		var v any
		if err := json.Unmarshal([]byte(tc.doc), &v); err != nil {
			t.Fatal(err)
		}
		errs := s.validate("$", v, s.schemas["StreamResponse"], 0)
		switch {
		case tc.want == "" && len(errs) > 0:
			t.Errorf("%s: unexpected errors %v", tc.doc, errs)
		case tc.want != "" && (len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), tc.want)):
			t.Errorf("%s: errors %v, want one containing %q", tc.doc, errs, tc.want)
		}
	}
}

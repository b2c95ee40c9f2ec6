package sample

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// allOfSchema intersects schemas as OpenAPI documents and zod's
// intersections write them: a model extending another ($ref beside its
// own properties), bounds from two sides, an enum narrowed by a type, a
// closed object that another extends, and two unions.
const allOfSchema = `{"$defs":{
	"Base":{"type":"object","properties":{"id":{"type":"integer","minimum":0},"name":{"type":"string","maxLength":8}},"required":["id"]},
	"Named":{"type":"object","properties":{"name":{"type":"string","minLength":2}},"required":["name"]}},
	"type":"object","properties":{
	"item":{"allOf":[{"$ref":"#/$defs/Base"},{"$ref":"#/$defs/Named"},{"properties":{"tags":{"type":"array","items":{"type":"string"}}}}],"description":"an extended model"},
	"n":{"allOf":[{"type":"integer","minimum":1},{"type":["integer","null"],"maximum":9}]},
	"pick":{"allOf":[{"enum":["a","b",3,null]},{"type":["string","null"]}]},
	"closed":{"allOf":[{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"additionalProperties":false},{"properties":{"b":{"maximum":5},"c":{"type":"string"}},"required":["b"]}]},
	"either":{"allOf":[{"anyOf":[{"type":"string"},{"type":"integer"}]},{"anyOf":[{"type":"integer"},{"type":"null"}]}]},
	"list":{"type":"array","allOf":[{"items":{"type":"integer","minimum":0}},{"items":{"maximum":3}},{"maxItems":2}]}},
	"required":["item"]}`

// allOfParts are allOfSchema's allOfs, each schema of them alone, for the
// independent check: what the merged schema accepts, each of them must.
var allOfParts = map[string][]string{
	"item": {
		`{"type":"object","properties":{"id":{"type":"integer","minimum":0},"name":{"type":"string","maxLength":8}},"required":["id"]}`,
		`{"type":"object","properties":{"name":{"type":"string","minLength":2}},"required":["name"]}`,
		`{"properties":{"tags":{"type":"array","items":{"type":"string"}}}}`,
	},
	"n":    {`{"type":"integer","minimum":1}`, `{"type":["integer","null"],"maximum":9}`},
	"pick": {`{"enum":["a","b",3,null]}`, `{"type":["string","null"]}`},
	"closed": {
		`{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"additionalProperties":false}`,
		`{"type":"object","properties":{"b":{"type":"number","maximum":5},"c":{"type":"string"}},"required":["b"]}`,
	},
	"either": {`{"anyOf":[{"type":"string"},{"type":"integer"}]}`, `{"anyOf":[{"type":"integer"},{"type":"null"}]}`},
	"list":   {`{"type":"array","items":{"type":"integer","minimum":0}}`, `{"type":"array","items":{"type":"number","maximum":3}}`, `{"type":"array","maxItems":2}`},
}

func TestJSONSchemaAllOf(t *testing.T) {
	s := mustSchema(t, allOfSchema)
	const shape = `{"item":{"id":integer[0,),"name":string,"tags"?:[string]},"n"?:integer[1,9],"pick"?:"a"|"b"|null,"closed"?:{"a"?:string,"b":integer(,5]},"either"?:integer,"list"?:[integer[0,3]]}`
	if got := s.String(); got != shape {
		t.Errorf("shape %s, want %s", got, shape)
	}
	for _, tc := range []struct {
		text string
		want bool
	}{
		{`{"item":{"id":0,"name":"ab"}}`, true},
		{`{"item":{"id":7,"name":"abcdefgh","tags":["x"]}}`, true},
		{`{"item":{"id":7}}`, false},                    // Named requires a name
		{`{"item":{"id":7,"name":"a"}}`, false},         // shorter than Named's minLength
		{`{"item":{"id":7,"name":"abcdefghi"}}`, false}, // longer than Base's maxLength
		{`{"item":{"id":-1,"name":"ab"}}`, false},       // below Base's minimum
		{`{"item":{"name":"ab"}}`, false},               // Base requires an id
		{`{"item":{"id":1,"name":"ab"},"n":9}`, true},
		{`{"item":{"id":1,"name":"ab"},"n":0}`, false},
		{`{"item":{"id":1,"name":"ab"},"n":10}`, false},
		{`{"item":{"id":1,"name":"ab"},"n":null}`, false}, // the first allows no null
		{`{"item":{"id":1,"name":"ab"},"pick":null}`, true},
		{`{"item":{"id":1,"name":"ab"},"pick":"b"}`, true},
		{`{"item":{"id":1,"name":"ab"},"pick":3}`, false},
		{`{"item":{"id":1,"name":"ab"},"closed":{"a":"x","b":5}}`, true},
		{`{"item":{"id":1,"name":"ab"},"closed":{"b":6}}`, false},
		{`{"item":{"id":1,"name":"ab"},"closed":{"b":1,"c":"x"}}`, false}, // c is not among the closed object's
		{`{"item":{"id":1,"name":"ab"},"closed":{"a":"x"}}`, false},
		{`{"item":{"id":1,"name":"ab"},"either":-4}`, true},
		{`{"item":{"id":1,"name":"ab"},"either":"x"}`, false},
		{`{"item":{"id":1,"name":"ab"},"either":null}`, false},
		{`{"item":{"id":1,"name":"ab"},"list":[0,3]}`, true},
		{`{"item":{"id":1,"name":"ab"},"list":[4]}`, false},
		{`{"item":{"id":1,"name":"ab"},"list":[1,1,1]}`, false},
	} {
		if got := s.Valid([]byte(tc.text)); got != tc.want {
			t.Errorf("Valid(%s) = %v, want %v", tc.text, got, tc.want)
		}
	}
	// Every instance of the merged schema satisfies each of the schemas
	// it merged, compiled alone (objects as far as their own properties
	// go: none of them is closed but the one Valid checks above).
	parts := map[string][]*JSONSchema{}
	for name, docs := range allOfParts {
		for _, d := range docs {
			parts[name] = append(parts[name], mustSchema(t, d))
		}
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for range 300 {
		text := instance(rng, s.root, 0)
		if !s.Valid([]byte(text)) {
			t.Fatalf("refused %s", text)
		}
		var v map[string]any
		d := json.NewDecoder(strings.NewReader(text))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		for name, ps := range parts {
			x, ok := v[name]
			if !ok {
				continue
			}
			for i, p := range ps {
				if !conforms(p.root, ownProps(p.root, x)) {
					t.Fatalf("%s: %s does not satisfy %s", text, name, allOfParts[name][i])
				}
			}
		}
	}
	testConstraint(t, s, []string{"", `{"item":{"id":`, `1,"name":"`, `ab"}`, `,"n":`, "5", "}", `,"either":`, `,"pick":"`, "null"}, nil)
}

func TestJSONSchemaAllOfRefused(t *testing.T) {
	for _, tc := range []struct {
		doc     string
		noValue bool // refused because no value satisfies it
	}{
		{`{"allOf":[{"type":"string"},{"type":"integer"}]}`, true},
		{`{"allOf":[{"enum":["a","b"]},{"enum":["c"]}]}`, true},
		{`{"allOf":[{"enum":["a",1]},{"type":"boolean"}]}`, true},
		{`{"allOf":[{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false},{"type":"object","properties":{"b":{"type":"string"}},"required":["b"]}]}`, true},
		{`{"allOf":[{"anyOf":[{"type":"string"},{"type":"null"}]},{"type":"integer"}]}`, true},
		{`{"allOf":[{"type":"object","additionalProperties":false},{"required":["a"]}]}`, true},
		{`{"allOf":[]}`, false},
		{`{"allOf":[{"type":"string","pattern":"a"},{"type":"string","pattern":"b"}]}`, false},
		{`{"allOf":[{"type":"string","format":"date"},{"type":"string","format":"uuid"}]}`, false},
		{`{"allOf":[{"type":"integer","minimum":1,"exclusiveMinimum":true},{"type":"integer","minimum":3}]}`, false},
		{`{"allOf":[{"enum":[1,2]},{"type":"integer","minimum":2}]}`, false},
		{`{"allOf":[{"type":"object","additionalProperties":{"type":"string"}},{"type":"object","properties":{"a":{"type":"string"}}}]}`, false},
		{`{"allOf":[{"type":"string"},{"multipleOf":2}]}`, false},
		{`{"allOf":[{"type":"string"},{"$ref":"#/$defs/none"}],"$defs":{}}`, false},
		{`{"$defs":{"n":{"allOf":[{"$ref":"#/$defs/n"},{"type":"string"}]}},"$ref":"#/$defs/n"}`, false},
		{`{"$defs":{"n":{"type":"object","properties":{"c":{"allOf":[{"$ref":"#/$defs/n"},{"type":"object"}]}}}},"$ref":"#/$defs/n"}`, false},
		{`{"$defs":{"n":{"type":"object","properties":{"c":{"type":"string"}}}},"allOf":[{"$ref":"#/$defs/n"},{"properties":{"d":{"allOf":[{"$ref":"#/$defs/n"},{"required":["c"]}]}}}]}`, false},
	} {
		_, err := CompileJSONSchema([]byte(tc.doc))
		if !errors.Is(err, ErrSchema) || errors.Is(err, errNoValue) != tc.noValue {
			t.Errorf("%s: %v, want ErrSchema (no value: %v)", tc.doc, err, tc.noValue)
		}
	}
	// Not recursive: the same definition twice, and in two properties.
	for _, doc := range []string{
		`{"$defs":{"n":{"type":"string"}},"allOf":[{"$ref":"#/$defs/n"},{"$ref":"#/$defs/n"},{"maxLength":2}]}`,
		`{"$defs":{"n":{"type":"string"}},"type":"object","properties":{"a":{"allOf":[{"$ref":"#/$defs/n"},{"maxLength":2}]},"b":{"allOf":[{"$ref":"#/$defs/n"},{"minLength":2}]}}}`,
	} {
		if _, err := CompileJSONSchema([]byte(doc)); err != nil {
			t.Errorf("%s: %v", doc, err)
		}
	}
}

// ownProps is x less the members that n, an object schema, does not list.
func ownProps(n *snode, x any) any {
	o, ok := x.(map[string]any)
	if !ok || n.kind != kObject {
		return x
	}
	own := map[string]any{}
	for _, p := range n.props {
		var name string
		json.Unmarshal(p.key, &name)
		if v, ok := o[name]; ok {
			own[name] = v
		}
	}
	return own
}

// FuzzCompileJSONSchema: any document compiles or is refused with
// ErrSchema, never a panic; what compiles can check a text (the document
// itself) without one. (FuzzJSONSchemaValid checks what texts the
// compiled schemas accept.)
func FuzzCompileJSONSchema(f *testing.F) {
	for _, doc := range []string{personSchema, unionSchema, houseSchema, rangeSchema, patternSchema, allOfSchema,
		`{"allOf":[{"type":"object","additionalProperties":false},{"required":["a"]}]}`,
		`{"allOf":[{"anyOf":[{"type":"string"},{"type":"null"}]},{"type":["integer","null"]}]}`,
		`{"$defs":{"n":{"allOf":[{"$ref":"#/$defs/n"},{"type":"string"}]}},"$ref":"#/$defs/n"}`,
		`{"allOf":[{"enum":["a",1,null]},{"type":"integer"}],"description":"x"}`,
		`{"type":"array","allOf":[{"items":{"type":"integer"}},{"items":false}]}`,
	} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		s, err := CompileJSONSchema(doc)
		if err != nil {
			if !errors.Is(err, ErrSchema) {
				t.Fatalf("%s: %v, want ErrSchema", doc, err)
			}
			return
		}
		_ = s.String()
		_ = s.Valid(doc)
	})
}

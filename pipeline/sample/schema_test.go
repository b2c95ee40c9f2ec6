package sample

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

const personSchema = `{"type":"object","title":"person","properties":{
	"name":{"type":"string","description":"a name"},
	"age":{"type":"integer"},
	"tags":{"type":"array","items":{"type":"string","enum":["a","b<>"]}},
	"score":{"type":["number","null"]},
	"ok":{"type":"boolean"},
	"nested":{"type":"object","properties":{"x":{"const":1},"y":{"enum":[true,"no",null,2.5]}},"required":["x"]}
},"required":["name","age"],"additionalProperties":false}`

func mustSchema(t testing.TB, doc string) *JSONSchema {
	t.Helper()
	s, err := CompileJSONSchema([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCompileJSONSchema(t *testing.T) {
	s := mustSchema(t, personSchema)
	const shape = `{"name":string,"age":integer,"tags"?:["a"|"b<>"],"score"?:number|null,"ok"?:true|false,"nested"?:{"x":1,"y"?:true|"no"|null|2.5}}`
	if got := s.String(); got != shape {
		t.Errorf("shape %s, want %s", got, shape)
	}
	for _, doc := range []string{
		`{"type":"string","pattern":"(?=a)"}`, `{"type":"string","pattern":"\\bword"}`, `{"type":"string","pattern":"(a)\\1"}`,
		`{"type":"string","pattern":"(?i)a"}`, `{"type":"string","pattern":"(?m)^a"}`, `{"type":"string","pattern":"a{300}"}`,
		`{"type":"string","pattern":"a","maxLength":3}`, `{"type":"integer","pattern":"1"}`, `{"type":"string","pattern":"a^b"}`,
		`{"type":"string","pattern":"^[\\x{d800}-\\x{dfff}]$"}`, `{"type":"string","pattern":1}`, `{"type":"string","pattern":"a)(b"}`, `{"type":"string","pattern":"[\\S]"}`, `{"type":"string","pattern":"[]a]"}`, `{"type":"string","format":"email"}`, `{"type":"integer","format":"date"}`,
		`{"type":"number","multipleOf":0.25}`, `{"type":"integer","multipleOf":0}`, `{"type":"integer","multipleOf":-2}`, `{"type":"string","multipleOf":2}`,
		`{"type":"integer","multipleOf":1e30}`, `{"type":"integer","multipleOf":"2"}`, `{"type":"number","multipleOf":1e-21}`,
		`{"type":"number","minimum":0.5}`, `{"type":"integer","minimum":3,"maximum":2}`, `{"type":"number","minimum":2,"exclusiveMaximum":2}`,
		`{"type":"integer","exclusiveMinimum":2.5,"maximum":2.9}`, `{"type":"string","minimum":1}`, `{"type":"integer","maximum":1e30}`, `{"type":"integer","minimum":"1"}`,
		`{"$ref":"#/$defs/x"}`, `{"anyOf":[]}`, `{"anyOf":[` + strings.Repeat(`{"type":"string"},`, MaxSchemaReadings) + `{"type":"null"}]}`,
		`{"anyOf":[{"type":"string"}],"oneOf":[{"type":"null"}]}`, `{"allOf":{"type":"string"}}`,
		`{"$defs":{"n":{"type":"array","items":{"$ref":"#/$defs/n"}}},"$ref":"#/$defs/n"}`,
		`{"$defs":{"n":{"type":"string"}},"$ref":"#/definitions/n"}`, `{"$ref":"http://example.com/s"}`,
		`{"type":"array","items":{"type":"string"},"minItems":3,"maxItems":2}`, `{"type":"string","minItems":1}`,
		`{"type":"array","items":{"type":"string"},"maxItems":-1}`, `{"anyOf":[{"type":"string"}],"type":"string"}`, `{"type":"object","properties":{"a":{"type":"string"}},"required":["b"]}`,
		`{"type":"array","prefixItems":[]}`, `{"type":"array","prefixItems":[{"type":"string"}],"items":[{"type":"string"}]}`,
		`{"type":"array","items":{"type":"string"},"additionalItems":false}`, `{"type":"array","prefixItems":[{"type":"string"}],"items":false,"minItems":2}`,
		`{"type":"string","items":{"type":"string"}}`, `{"type":"string","prefixItems":[{"type":"string"}]}`,
		`{"type":"date"}`, `{"enum":[]}`, `{"enum":[{"a":1}]}`, `[]`, `{"type":"string"} {}`, `{"type":`,
		`{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":{"type":"string"}}`,
		strings.Repeat(`{"type":"array","items":`, MaxJSONDepth+1) + `{"type":"string"}` + strings.Repeat("}", MaxJSONDepth+1),
	} {
		if _, err := CompileJSONSchema([]byte(doc)); !errors.Is(err, ErrSchema) {
			t.Errorf("%s: %v, want ErrSchema", doc, err)
		}
	}
}

func TestJSONSchemaValid(t *testing.T) {
	s := mustSchema(t, personSchema)
	for _, tc := range []struct {
		text string
		want bool
	}{
		{`{"name":"Lily","age":3}`, true},
		{`{"name":"Lily","age":-30,"tags":["a","b<>"],"score":null,"ok":false,"nested":{"x":1}}`, true},
		{"{\n  \"name\": \"L\\u00e9\\n\",\n  \"age\": 0,\n  \"score\": 1.5e-3,\n  \"nested\": {\"x\": 1, \"y\": 2.5}\n}", true},
		{`{"name":"Lily","age":3,"tags":[]}`, true},
		{`{"age":3,"name":"Lily"}`, false},                  // out of order
		{`{"name":"Lily"}`, false},                          // age missing
		{`{"name":"Lily","age":3,"x":1}`, false},            // not a property
		{`{"name":"Lily","age":3.5}`, false},                // not an integer
		{`{"name":"Lily","age":3e2}`, false},                // nor this
		{`{"name":"Lily","age":3,"tags":["c"]}`, false},     // not in the enum
		{`{"name":"Lily","age":3,"tags":["a",]}`, false},    //
		{`{"name":"Lily","age":3,"score":"x"}`, false},      // neither number nor null
		{`{"name":"Lily","age":3,"ok":1}`, false},           //
		{`{"name":"Lily","age":3,"nested":{}}`, false},      // x missing
		{`{"name":"Lily","age":3,"nested":{"x":2}}`, false}, // not the const
		{`{"name":"Lily","age":3,"nested":{"x":1,"y":2}}`, false},
		{`{"name":"Lily","name":"L","age":3}`, false}, // twice
		{` {"name":"Lily","age":3}`, false},           // nothing before
		{`{"name":"Lily","age":3} `, false},           // nor after
		{`{"name":"Lily","age":3`, false},             // unclosed
		{`{"name":Lily,"age":3}`, false},
	} {
		if got := s.Valid([]byte(tc.text)); got != tc.want {
			t.Errorf("Valid(%s) = %v, want %v", tc.text, got, tc.want)
		}
		if tc.want && !json.Valid([]byte(tc.text)) {
			t.Errorf("%s: encoding/json disagrees", tc.text)
		}
	}
	// Roots other than objects.
	for _, tc := range []struct{ schema, text string }{
		{`{"type":"integer"}`, `-12`}, {`{"type":"string"}`, `"x"`}, {`{"enum":["a","ab"]}`, `"ab"`},
		{`{"type":"array","items":{"type":"number"}}`, `[1, 2.5]`}, {`{"type":["string","null"]}`, `null`},
		{`{"oneOf":[{"type":"integer"},{"type":"null"}]}`, `5`}, {`{"oneOf":[{"type":"integer"},{"type":"null"}]}`, `null`},
		{`{}`, `[1, {"a": "b"}, null]`}, {`{"description":"anything"}`, `-2.5e3`}, {`{}`, `"x"`},
		{`{"type":"object"}`, `{"a": [1, true], "b": {}}`}, {`{"type":"object","additionalProperties":true}`, `{}`},
		{`{"type":"object","additionalProperties":{"type":"integer"}}`, `{"a": 1, "b\u00e9": -2}`}, {`{"additionalProperties":{"type":"string"},"type":"object"}`, `{}`},
		{`{"type":"object","properties":{"m":{"type":"object"},"v":{}},"required":["m","v"]}`, `{"m":{"x":1},"v":7}`},
	} {
		if !mustSchema(t, tc.schema).Valid([]byte(tc.text)) {
			t.Errorf("%s: %s refused", tc.schema, tc.text)
		}
	}
}

// unionSchema has alternatives that begin alike, as Pydantic writes a
// Union of two models: objects told apart by their first property, or
// only by a later one; a string beside an enum of strings; integer beside
// number; and a free-form value beside null.
const unionSchema = `{"$defs":{
	"Cat":{"type":"object","properties":{"kind":{"const":"cat"},"lives":{"type":"integer"}},"required":["kind","lives"]},
	"Dog":{"type":"object","properties":{"kind":{"const":"dog"},"good":{"type":"boolean"}},"required":["kind"]},
	"A":{"type":"object","properties":{"id":{"type":"integer"},"a":{"type":"string"}},"required":["id","a"]},
	"B":{"type":"object","properties":{"id":{"type":"integer"},"b":{"type":"array","items":{"type":"integer"}}},"required":["id","b"]}},
	"type":"object","properties":{
	"pet":{"anyOf":[{"$ref":"#/$defs/Cat"},{"$ref":"#/$defs/Dog"}]},
	"ab":{"oneOf":[{"$ref":"#/$defs/A"},{"$ref":"#/$defs/B"}]},
	"word":{"anyOf":[{"type":"string","maxLength":3},{"enum":["hello","hi"]}]},
	"n":{"type":["integer","number"]},
	"any":{"anyOf":[{},{"type":"null"}]}},
	"required":["pet","ab"]}`

// TestJSONSchemaUnions checks alternatives that begin alike: every
// reading is followed until the text tells them apart.
func TestJSONSchemaUnions(t *testing.T) {
	s := mustSchema(t, unionSchema)
	for _, tc := range []struct {
		text string
		want bool
	}{
		{`{"pet":{"kind":"cat","lives":9},"ab":{"id":1,"a":"x"}}`, true},
		{`{"pet":{"kind":"dog"},"ab":{"id":1,"b":[1,2]}}`, true},
		{`{"pet":{"kind":"dog","good":true},"ab":{"id":2,"a":""},"word":"hello","n":2.5,"any":null}`, true},
		{`{"pet":{"kind":"cat"},"ab":{"id":1,"a":"x"}}`, false},           // a cat needs lives
		{`{"pet":{"kind":"dog","lives":9},"ab":{"id":1,"a":"x"}}`, false}, // a dog has none
		{`{"pet":{"kind":"cow"},"ab":{"id":1,"a":"x"}}`, false},
		{`{"pet":{"kind":"dog"},"ab":{"id":1,"b":"x"}}`, false},
		{`{"pet":{"kind":"dog"},"ab":{"id":1,"a":[1]}}`, false},
		{`{"pet":{"kind":"dog"},"ab":{"id":1,"a":"x"},"word":"hell"}`, false}, // too long, not in the enum
		{`{"pet":{"kind":"dog"},"ab":{"id":1,"a":"x"},"word":"abc"}`, true},
		{`{"pet":{"kind":"dog"},"ab":{"id":1,"a":"x"},"n":-3}`, true},
		{`{"pet":{"kind":"dog"},"ab":{"id":1,"a":"x"},"any":{"x":[null]}}`, true},
	} {
		if got := s.Valid([]byte(tc.text)); got != tc.want {
			t.Errorf("Valid(%s) = %v, want %v", tc.text, got, tc.want)
		}
		if got := s.Prefix([]byte(tc.text[:len(tc.text)/2])); !got && tc.want {
			t.Errorf("Prefix of %s refused", tc.text)
		}
	}
	// Through the constraint, byte by byte as a tokenizer of single bytes
	// would spell them, then as one token.
	for _, text := range []string{`{"pet":{"kind":"cat","lives":9},"ab":{"id":1,"a":"x"}}`, `{"pet":{"kind":"dog"},"ab":{"id":1,"b":[]}}`} {
		pieces := [][]byte{[]byte(text)}
		for i := range len(text) {
			pieces = append(pieces, []byte(text[i:i+1]))
		}
		c := s.Constraint(func(id int) []byte { return pieces[id] }, func(id int) bool { return id == len(pieces) })
		for i := 1; i < len(pieces); i++ {
			if !c.Allowed(i) {
				t.Fatalf("%s: byte %d (%q) refused", text, i-1, pieces[i])
			}
			if c.Allowed(len(pieces)) {
				t.Fatalf("%s: the end allowed after %d bytes", text, i-1)
			}
			c.Accept(i)
		}
		if !c.Allowed(len(pieces)) {
			t.Errorf("%s: the end refused once whole", text)
		}
		w := s.Constraint(func(id int) []byte { return pieces[id] }, func(id int) bool { return id == len(pieces) })
		if !w.Allowed(0) {
			t.Errorf("%s: refused as one token", text)
		}
	}
	// Alternatives of alternatives are one list, bounded.
	nest := `{"type":"string"}`
	for range 5 {
		nest = `{"anyOf":[` + nest + `,` + nest + `]}`
	}
	if _, err := CompileJSONSchema([]byte(nest)); !errors.Is(err, ErrSchema) {
		t.Errorf("32 alternatives: %v, want ErrSchema", err)
	}
	// Alternatives within alternatives multiply the readings: five objects
	// whose one property is one of four strings make 20 after {"x":" ;
	// past MaxSchemaReadings the last are dropped, never followed without
	// bound.
	inner := `{"anyOf":[{"type":"string","maxLength":1},{"type":"string","maxLength":2},{"type":"string","maxLength":3},{"type":"string","maxLength":4}]}`
	var alts []string
	for i := range 5 {
		alts = append(alts, fmt.Sprintf(`{"type":"object","properties":{"x":%s,"k%d":{"type":"integer"}},"required":["x","k%d"]}`, inner, i, i))
	}
	many := mustSchema(t, `{"anyOf":[`+strings.Join(alts, ",")+`]}`)
	if !many.Valid([]byte(`{"x":"ab","k0":1}`)) {
		t.Error("the first reading refused")
	}
	if sts, _ := many.scan([]byte(`{"x":"`)); len(sts) != MaxSchemaReadings {
		t.Errorf("%d readings, want %d", len(sts), MaxSchemaReadings)
	}
}

// houseSchema is the kind of schema Pydantic writes: $defs and $ref,
// anyOf for an optional field, bounds on an array.
const houseSchema = `{"$defs":{"Pet":{"properties":{"kind":{"enum":["cat","dog"],"title":"Kind","type":"string"},
	"name":{"anyOf":[{"type":"string"},{"type":"null"}],"default":null,"title":"Name"}},"required":["kind"],"title":"Pet","type":"object"}},
	"properties":{"owner":{"title":"Owner","type":"string","minLength":1,"maxLength":20},"extra":{"title":"Extra","type":"object"},"ages":{"additionalProperties":{"type":"integer"},"type":"object"},"note":{},"since":{"format":"date-time","title":"Since","type":"string"},"pets":{"items":{"$ref":"#/$defs/Pet"},"maxItems":2,"minItems":1,"title":"Pets","type":"array"},
	"best":{"allOf":[{"$ref":"#/$defs/Pet"}],"description":"The favourite, as Pydantic describes a model's field"},
	"pair":{"maxItems":2,"minItems":2,"prefixItems":[{"type":"integer"},{"type":"string"}],"type":"array"},
	"list":{"type":"array"},
	"old":{"type":"array","items":[{"type":"integer"},{"type":"string"}],"additionalItems":{"type":"null"}}},
	"required":["owner","pets"],"title":"House","type":"object"}`

func TestJSONSchemaRefs(t *testing.T) {
	s := mustSchema(t, houseSchema)
	if got, want := s.String(), `{"owner":string,"extra"?:{...},"ages"?:{string:integer},"note"?:any,"since"?:string,"pets":[{"kind":"cat"|"dog","name"?:string|null}],"best"?:{"kind":"cat"|"dog","name"?:string|null},"pair"?:[integer,string],"list"?:[any],"old"?:[integer,string,...null]}`; got != want {
		t.Errorf("shape %s, want %s", got, want)
	}
	for _, tc := range []struct {
		text string
		want bool
	}{
		{`{"owner":"Ann","pets":[{"kind":"cat","name":null}]}`, true},
		{`{"owner":"Ann","pets":[{"kind":"dog"}, {"kind":"cat","name":"Tom"}]}`, true},
		{`{"owner":"Ann","pets":[]}`, false},
		{`{"owner":"Ann","pets":[{"kind":"dog"},{"kind":"dog"},{"kind":"dog"}]}`, false},
		{`{"owner":"Ann","pets":[{"kind":"cow"}]}`, false},
		{`{"owner":"Ann","pets":[{"kind":"cat","name":1}]}`, false},
		{`{"owner":"Ann","pets":[{"kind":"cat"}],"best":{"kind":"dog","name":"Rex"}}`, true},
		{`{"owner":"Ann","pets":[{"kind":"cat"}],"best":{"kind":"cow"}}`, false},
		{`{"owner":"Ann","pets":[{"kind":"cat"}],"pair":[1,"x"]}`, true},
		{`{"owner":"Ann","pets":[{"kind":"cat"}],"pair":[1]}`, false},
		{`{"owner":"Ann","pets":[{"kind":"cat"}],"pair":[1,"x",2]}`, false},
		{`{"owner":"Ann","pets":[{"kind":"cat"}],"pair":["x",1]}`, false},
		{`{"owner":"Ann","pets":[{"kind":"cat"}],"list":[1,"x",true,{"a":[]}]}`, true},
		{`{"owner":"Ann","pets":[{"kind":"cat"}],"old":[1,"x",null,null]}`, true},
		{`{"owner":"Ann","pets":[{"kind":"cat"}],"old":[1,"x",2]}`, false},
	} {
		if got := s.Valid([]byte(tc.text)); got != tc.want {
			t.Errorf("Valid(%s) = %v, want %v", tc.text, got, tc.want)
		}
	}
	rng := rand.New(rand.NewPCG(5, 5))
	for range 300 {
		if text := instance(rng, s.root, 0); !s.Valid([]byte(text)) {
			t.Fatalf("refused %s", text)
		}
	}
}

func TestJSONSchemaLengths(t *testing.T) {
	s := mustSchema(t, `{"type":"string","minLength":2,"maxLength":3}`)
	for text, want := range map[string]bool{
		`"ab"`: true, `"abc"`: true, `"a"`: false, `"abcd"`: false, `""`: false,
		`"é🦙"`: true, `"\u00e9\n"`: true, `"\u00e9\n\t\""`: false, // characters, not bytes; an escape is one
		"\"ab\xa9\"": false, "\"a\xc3\"": false, "\"\xed\xa0\x80a\"": false, "\"\xf4\x90\x80\x80\"": false, // not UTF-8
	} {
		if got := s.Valid([]byte(text)); got != want {
			t.Errorf("Valid(%s) = %v, want %v", text, got, want)
		}
	}
	for _, doc := range []string{`{"type":"string","minLength":3,"maxLength":2}`, `{"type":"string","maxLength":-1}`, `{"type":"string","format":"date","maxLength":3}`, `{"type":"array","items":{"type":"string"},"maxLength":1}`} {
		if _, err := CompileJSONSchema([]byte(doc)); !errors.Is(err, ErrSchema) {
			t.Errorf("%s: %v, want ErrSchema", doc, err)
		}
	}
}

func TestJSONSchemaFormats(t *testing.T) {
	for _, tc := range []struct {
		format string
		good   []string
		bad    []string
	}{
		{"date", []string{"2026-11-29"}, []string{"2026-1-29", "2026/11/29", "2026-11-29T", "", "26-11-29"}},
		{"time", []string{"23:59:60Z", "08:00:00+02:00", "08:00:00.123-05:30"}, []string{"08:00:00", "08:00", "08:00:00.Z", "08:00:00+0200", "08:00:00+02:00Z"}},
		{"date-time", []string{"2026-11-29T16:50:00Z", "2026-11-29T16:50:00.5+01:00"}, []string{"2026-11-29 16:50:00Z", "2026-11-29T16:50:00", "2026-11-29"}},
		{"uuid", []string{"123e4567-e89b-12d3-a456-426614174000", "123E4567-E89B-12D3-A456-426614174000"}, []string{"123e4567e89b12d3a456426614174000", "123e4567-e89b-12d3-a456-42661417400g"}},
	} {
		s := mustSchema(t, `{"type":"string","format":"`+tc.format+`"}`)
		for _, g := range tc.good {
			if !s.Valid([]byte(`"` + g + `"`)) {
				t.Errorf("%s: %q refused", tc.format, g)
			}
		}
		for _, b := range tc.bad {
			if s.Valid([]byte(`"` + b + `"`)) {
				t.Errorf("%s: %q accepted", tc.format, b)
			}
		}
	}
}

// TestJSONSchemaAny: free-form values where a schema says nothing of them,
// and only those.
func TestJSONSchemaAny(t *testing.T) {
	for _, tc := range []struct{ schema, text string }{
		{`{}`, ` 1`}, {`{}`, `1 `}, {`{}`, `{"a":}`}, {`{"type":"object"}`, `[1]`}, {`{"type":"object"}`, `1`},
		{`{"type":"object","additionalProperties":false}`, `{"a":1}`},
		{`{"type":"object","additionalProperties":{"type":"integer"}}`, `{"a":"x"}`},
		{`{"type":"object","additionalProperties":{"type":"integer"}}`, `{"a":1,}`},
		{`{"type":"object","additionalProperties":{"type":"integer"}}`, `{a:1}`},
		{`{"type":"object","properties":{"v":{}},"required":["v"]}`, `{"v":1 2}`},
	} {
		if mustSchema(t, tc.schema).Valid([]byte(tc.text)) {
			t.Errorf("%s: %q accepted", tc.schema, tc.text)
		}
	}
}

// instance writes a random text the schema accepts, in its order.
func instance(rng *rand.Rand, n *snode, depth int) string {
	ws := func() string { return []string{"", "", " ", "\n  "}[rng.IntN(4)] }
	switch n.kind {
	case kObject:
		if n.alts != nil { // discriminated: one of its branches
			return instance(rng, n.alts[rng.IntN(len(n.alts))], depth)
		}
		var parts []string
		for _, p := range n.props {
			if p.required || rng.IntN(2) == 0 {
				parts = append(parts, string(p.key)+":"+ws()+instance(rng, p.node, depth+1))
			}
		}
		return "{" + ws() + strings.Join(parts, ","+ws()) + ws() + "}"
	case kArray:
		var parts []string
		count := n.min + rng.IntN(4)
		if n.max >= 0 {
			count = min(count, n.max)
		}
		for i := range count {
			parts = append(parts, instance(rng, n.item(i), depth+1))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case kString:
		if n.format != "" {
			var b strings.Builder
			for _, c := range n.format {
				switch c {
				case 'D':
					b.WriteByte(byte('0' + rng.IntN(10)))
				case 'H':
					b.WriteByte("0123456789abcdef"[rng.IntN(16)])
				default:
					b.WriteRune(c)
				}
			}
			if strings.HasSuffix(n.format, "DD:DD:DD") {
				b.WriteString([]string{"Z", ".25Z", "+01:00", ".5-08:30"}[rng.IntN(4)])
			}
			return `"` + b.String() + `"`
		}
		if n.min > 0 || n.max >= 0 {
			hi := n.min + 3
			if n.max >= 0 {
				hi = n.max
			}
			return `"` + strings.Repeat("é", n.min+rng.IntN(hi-n.min+1)) + `"`
		}
		return []string{`""`, `"a b"`, `"\"\\\u00e9\n"`, `"é🦙"`}[rng.IntN(4)]
	case kNumber, kInteger:
		if r := n.rng; r != nil {
			return rangeInstance(rng, r, n.kind == kInteger)
		}
		if n.kind == kInteger {
			return []string{"0", "-1", "42"}[rng.IntN(3)]
		}
		return []string{"0", "-1.5", "2e10", "3.25E-2", "17"}[rng.IntN(5)]
	case kLiteral:
		return string(n.lits[rng.IntN(len(n.lits))])
	case kUnion:
		return instance(rng, n.alts[rng.IntN(len(n.alts))], depth)
	case kAny:
		return []string{`null`, `-0.5`, `"s"`, `[1, {"a": [true]}]`, `{}`}[rng.IntN(5)]
	case kMap:
		var parts []string
		for i := range rng.IntN(3) {
			parts = append(parts, fmt.Sprintf(`"k%d": %s`, i, instance(rng, n.items, depth+1)))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case kAnyObject:
		return []string{`{}`, `{"a": 1}`, `{"a": {"b": [null, "x"]}, "c": false}`}[rng.IntN(3)]
	}
	panic(fmt.Sprint("kind ", n.kind))
}

// rangeSchema has numbers and integers of every kind of range.
const rangeSchema = `{"type":"object","properties":{
"n":{"type":"integer","minimum":-5,"maximum":120},
"p":{"type":"number","minimum":0,"maximum":1},
"x":{"type":"number","exclusiveMinimum":0},
"k":{"type":"integer","exclusiveMaximum":-3.5},
"old":{"type":"integer","minimum":10,"exclusiveMinimum":true,"maximum":12},
"m":{"anyOf":[{"type":"number","minimum":-1,"exclusiveMaximum":0},{"type":"string"}]},
"five":{"type":"integer","multipleOf":5,"minimum":-12,"maximum":40},
"seven":{"type":"integer","multipleOf":7},
"cents":{"type":"number","multipleOf":0.01,"minimum":0},
"threes":{"type":"number","multipleOf":3,"exclusiveMaximum":30}
},"required":["n","p"]}`

// rangeInstance returns a random number (an integer if integer) within r,
// in a random spelling: leading zeros of the fraction, trailing zeros.
func rangeInstance(rng *rand.Rand, r *numRange, integer bool) string {
	lo, hi := int64(-1000), int64(1000)
	if r.hasLo {
		lo = r.lo
	}
	if r.hasHi {
		hi = r.hi
	}
	if !r.hasLo {
		lo = min(lo, hi-5)
	}
	if !r.hasHi {
		hi = max(hi, lo+5)
	}
	for {
		v := lo + rng.Int64N(hi-lo+1)
		if r.mult > 0 {
			v -= v % r.mult
		}
		s := fmt.Sprint(v)
		frac := ""
		if !integer && r.mult == 0 && rng.IntN(2) == 0 {
			frac = []string{".5", ".25", ".0", ".000", ".001", ".999"}[rng.IntN(6)]
			if v < 0 || v == 0 && rng.IntN(2) == 0 && frac != ".0" && frac != ".000" {
				s = "-" + strings.TrimPrefix(s, "-")
				if v == 0 {
					v = -1 // -0.x is below 0: test it as such
				}
			}
		}
		if text := s + frac; textInRange(r, text) {
			return text
		}
	}
}

// textInRange checks a number's text against r, by exact arithmetic,
// independently of the recognizer.
func textInRange(r *numRange, text string) bool {
	v, ok := new(big.Rat).SetString(text)
	if !ok {
		return false
	}
	if r.hasLo {
		c := v.Cmp(new(big.Rat).SetInt64(r.lo))
		if c < 0 || c == 0 && r.loEx {
			return false
		}
	}
	if r.hasHi {
		c := v.Cmp(new(big.Rat).SetInt64(r.hi))
		if c > 0 || c == 0 && r.hiEx {
			return false
		}
	}
	if r.mult > 0 && (strings.ContainsAny(text, ".eE") || !new(big.Rat).Quo(v, new(big.Rat).SetInt64(r.mult)).IsInt()) {
		return false // a multiple of an integer, written as one
	}
	if _, frac, ok := strings.Cut(text, "."); r.dec > 0 && ok && len(frac) > int(r.dec) {
		return false // at most dec fraction digits
	}
	return true
}

// TestJSONSchemaRanges checks minimum, maximum and their exclusive forms
// on integers and numbers.
func TestJSONSchemaRanges(t *testing.T) {
	for _, tc := range []struct {
		schema string
		shape  string
		good   []string
		bad    []string
	}{
		{`{"type":"integer","minimum":-5,"maximum":120}`, "integer[-5,120]",
			[]string{"-5", "0", "-0", "7", "99", "100", "120"},
			[]string{"-6", "121", "1000", "-10", "1.5", "1e2", "00"}},
		{`{"type":"integer","minimum":0.5,"exclusiveMaximum":10}`, "integer[1,9]",
			[]string{"1", "9"}, []string{"0", "10", "-1", "-0"}},
		{`{"type":"integer","exclusiveMinimum":-3.5,"maximum":-1.5}`, "integer[-3,-2]",
			[]string{"-3", "-2"}, []string{"-4", "-1", "0", "3"}},
		{`{"type":"number","minimum":0,"maximum":1}`, "number[0,1]",
			[]string{"0", "0.5", "1", "1.0", "1.000", "0.999", "0.0"},
			[]string{"1.001", "-0.5", "2", "-1", "1e0", "0.5e-1", "10", "-0", "-0.0"}}, // -0 is 0, but "0" says it
		{`{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":2}`, "number(0,2)",
			[]string{"0.001", "1", "1.999", "0.1"},
			[]string{"0", "0.0", "-0", "2", "2.0", "-0.5", "2.5"}},
		{`{"type":"number","minimum":-2,"exclusiveMaximum":0}`, "number[-2,0)",
			[]string{"-2", "-2.0", "-1.5", "-0.001", "-1"},
			[]string{"0", "-0", "-0.0", "-2.001", "-3", "1"}},
		{`{"type":"integer","minimum":10,"exclusiveMinimum":true}`, "integer[11,)",
			[]string{"11", "12345678901234567890"}, []string{"10", "9", "-11"}},
		{`{"type":"number","maximum":-10,"exclusiveMaximum":true}`, "number(,-10)",
			[]string{"-11", "-10.5", "-99999"}, []string{"-10", "-10.0", "-9.99", "0", "5"}},
		{`{"type":"integer","exclusiveMinimum":100}`, "integer[101,)",
			[]string{"101", "200", "1000"}, []string{"100", "99", "5", "-101"}},
		// multipleOf: of integers, and of numbers an integer or 10^-k.
		{`{"type":"integer","multipleOf":5}`, "integer*5",
			[]string{"0", "-0", "5", "-15", "100", "4611686018427387900"},
			[]string{"1", "-4", "12", "4611686018427387905", "12345678901234567890", "5.0"}},
		{`{"type":"integer","multipleOf":7,"minimum":-20,"exclusiveMaximum":21}`, "integer*7[-20,20]",
			[]string{"-14", "0", "14", "7"}, []string{"-21", "21", "13", "28"}},
		{`{"type":"integer","multipleOf":2.5}`, "integer*5", // integers that are multiples of 5/2: of 5
			[]string{"5", "-10"}, []string{"2", "7"}},
		{`{"type":"integer","multipleOf":0.5}`, "integer", []string{"1", "-3"}, nil},
		{`{"type":"number","multipleOf":3,"maximum":10}`, "number*3(,10]",
			[]string{"9", "0", "-3", "-300"}, []string{"12", "10", "4", "3.0", "9.5", "3e0"}},
		{`{"type":"number","multipleOf":0.01,"minimum":0}`, "number*1e-2[0,)",
			[]string{"0", "0.5", "1.25", "19.99", "100"}, []string{"0.125", "1.001", "-0.01", "1e2"}},
		{`{"type":"number","multipleOf":0.1}`, "number*1e-1",
			[]string{"-0.5", "3", "2.0"}, []string{"0.05", "2.00"}},
	} {
		s := mustSchema(t, tc.schema)
		if got := s.String(); got != tc.shape {
			t.Errorf("%s: shape %s, want %s", tc.schema, got, tc.shape)
		}
		checkTexts(t, tc.schema, s.Valid, tc.good, tc.bad)
	}
	// Digits are refused as soon as no multiple they begin is in range:
	// none of 31, 32 and 33 is a multiple of 10, nor any longer number
	// they begin up to 40.
	m := mustSchema(t, `{"type":"integer","multipleOf":10,"minimum":25,"maximum":40}`)
	for text, want := range map[string]bool{"3": true, "30": true, "31": false, "4": true, "40": true, "2": false, "-": false, "0": false} {
		if got := m.Prefix([]byte(text)); got != want {
			t.Errorf("multipleOf 10 in [25,40]: Prefix(%s) = %v, want %v", text, got, want)
		}
	}
	if m.Valid([]byte("3")) || !m.Valid([]byte("30")) {
		t.Error("multipleOf 10: 3 whole, or 30 not")
	}
	// Digits are refused as soon as no number they begin is within range.
	s := mustSchema(t, `{"type":"integer","minimum":100,"maximum":150}`)
	for text, want := range map[string]bool{"1": true, "15": true, "16": false, "2": false, "151": false, "-": false, "0": false, "10": true, "100": true} {
		if got := s.Prefix([]byte(text)); got != want {
			t.Errorf("Prefix(%s) = %v, want %v", text, got, want)
		}
	}
	// Near the ends of int64: "1" begins 20-digit numbers past 2^62.
	big := mustSchema(t, `{"type":"integer","minimum":4611686018427387904}`)
	for text, want := range map[string]bool{"1": true, "19": true, "4611686018427387904": true, "4611686018427387903": true, "46": true} { // 2^62-1 may go on to 20 digits
		if got := big.Prefix([]byte(text)); got != want {
			t.Errorf("minimum 2^62: Prefix(%s) = %v, want %v", text, got, want)
		}
	}
	if !big.Valid([]byte("12345678901234567890")) || big.Valid([]byte("4611686018427387903")) {
		t.Error("minimum 2^62: a 20-digit number refused, or 2^62-1 taken")
	}
	// A number in an object ends only within its range.
	o := mustSchema(t, `{"type":"object","properties":{"a":{"type":"integer","maximum":5}},"required":["a"]}`)
	for text, want := range map[string]bool{`{"a":5}`: true, `{"a":6}`: false, `{"a":-100}`: true, `{"a":50}`: false} {
		if got := o.Valid([]byte(text)); got != want {
			t.Errorf("Valid(%s) = %v, want %v", text, got, want)
		}
	}
}

// checkTexts checks that holds takes each of yes and none of no, named
// after what is checked.
func checkTexts(t *testing.T, name string, holds func([]byte) bool, yes, no []string) {
	t.Helper()
	for _, text := range yes {
		if !holds([]byte(text)) {
			t.Errorf("%s: refused %q", name, text)
		}
	}
	for _, text := range no {
		if holds([]byte(text)) {
			t.Errorf("%s: took %q", name, text)
		}
	}
}

// TestJSONSchemaInstances: random texts of the schema, in its order, are
// valid, and none of their proper prefixes is whole.
func TestJSONSchemaInstances(t *testing.T) {
	for _, doc := range []string{personSchema, unionSchema, rangeSchema} {
		testInstances(t, mustSchema(t, doc))
	}
}

func testInstances(t *testing.T, s *JSONSchema) {
	rng := rand.New(rand.NewPCG(1, 1))
	for range 500 {
		text := instance(rng, s.root, 0)
		if !s.Valid([]byte(text)) {
			t.Fatalf("refused %s", text)
		}
		if !json.Valid([]byte(text)) {
			t.Fatalf("generated invalid JSON %s", text)
		}
		for i := 1; i < len(text); i++ {
			if s.Valid([]byte(text[:i])) {
				t.Fatalf("the prefix %s of %s is whole", text[:i], text)
			}
		}
	}
}

// conforms checks a decoded value against the schema, independently of
// the recognizer (order aside).
func conforms(n *snode, v any) bool {
	switch n.kind {
	case kObject:
		if n.alts != nil { // discriminated: one of its branches
			return slices.ContainsFunc(n.alts, func(a *snode) bool { return conforms(a, v) })
		}
		o, ok := v.(map[string]any)
		if !ok {
			return false
		}
		for k := range o {
			if !slices.ContainsFunc(n.props, func(p sprop) bool { b, _ := json.Marshal(k); return string(b) == string(p.key) }) {
				return false
			}
		}
		for _, p := range n.props {
			var name string
			json.Unmarshal(p.key, &name)
			pv, has := o[name]
			if (p.required && !has) || (has && !conforms(p.node, pv)) {
				return false
			}
		}
		return true
	case kArray:
		a, ok := v.([]any)
		if !ok || len(a) < n.min || n.max >= 0 && len(a) > n.max || n.items == nil && len(a) > len(n.prefix) {
			return false
		}
		for i, x := range a {
			if !conforms(n.item(i), x) {
				return false
			}
		}
		return true
	case kString:
		str, ok := v.(string)
		runes := utf8.RuneCountInString(str)
		return ok && runes >= n.min && (n.max < 0 || runes <= n.max) && (n.pat == nil || regexp.MustCompile(n.pat.src).MatchString(str))
	case kNumber, kInteger:
		num, ok := v.(json.Number)
		if !ok || n.kind == kInteger && strings.ContainsAny(string(num), ".eE") {
			return false
		}
		return n.rng == nil || textInRange(n.rng, string(num))
	case kLiteral:
		b, _ := json.Marshal(v)
		return slices.ContainsFunc(n.lits, func(l []byte) bool {
			var lv any
			json.Unmarshal(l, &lv)
			lb, _ := json.Marshal(lv)
			return string(lb) == string(b)
		})
	case kUnion:
		return slices.ContainsFunc(n.alts, func(a *snode) bool { return conforms(a, v) })
	case kAny:
		return true
	case kAnyObject:
		_, ok := v.(map[string]any)
		return ok
	case kMap:
		o, ok := v.(map[string]any)
		for _, x := range o {
			ok = ok && conforms(n.items, x)
		}
		return ok
	}
	return false
}

// FuzzJSONSchemaValid: what the recognizer accepts is JSON that the
// schema accepts.
func FuzzJSONSchemaValid(f *testing.F) {
	s := mustSchema(f, personSchema)
	house := mustSchema(f, houseSchema)
	rng := rand.New(rand.NewPCG(2, 2))
	for range 20 {
		f.Add([]byte(instance(rng, s.root, 0)))
	}
	f.Add([]byte(`{"name":"x","age":1,"x":2}`))
	f.Add([]byte(`{"owner":"` + strings.Repeat("0", 20) + "\xa9" + `", "pets":[{"kind":"cat"}]}`)) // a stray continuation byte: no character
	for range 10 {
		f.Add([]byte(instance(rng, house.root, 0)))
	}
	unions := mustSchema(f, unionSchema)
	for range 10 {
		f.Add([]byte(instance(rng, unions.root, 0)))
	}
	ranges := mustSchema(f, rangeSchema)
	for range 10 {
		f.Add([]byte(instance(rng, ranges.root, 0)))
	}
	f.Add([]byte(`{"n":121,"p":1.5}`))
	patterns := mustSchema(f, patternSchema)
	f.Add([]byte(`{"id":"AB-123","tag":"é","any":"x"}`))
	f.Add([]byte(`{"id":"AB-123","tag":"\u00e9xy"}`))
	allOf := mustSchema(f, allOfSchema)
	for range 10 {
		f.Add([]byte(instance(rng, allOf.root, 0)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, s := range []*JSONSchema{s, house, unions, ranges, patterns, allOf} {
			if !s.Valid(b) {
				continue
			}
			d := json.NewDecoder(strings.NewReader(string(b)))
			d.UseNumber()
			var v any
			if err := d.Decode(&v); err != nil || !conforms(s.root, v) {
				t.Fatalf("accepted %s, which the schema %s does not: %v", b, s, err)
			}
		}
	})
}

// TestJSONSchemaConstraint samples under the schema's constraint over a
// small vocabulary (every printable byte a token too): each text is a
// prefix the recognizer takes, and ends exactly when whole.
func TestJSONSchemaConstraint(t *testing.T) {
	testConstraint(t, mustSchema(t, personSchema), []string{"", `{"name":`, `"Lily"`, `,"age":`, "3", "}", `"a"`, "true", "null", " "}, nil)
	testConstraint(t, mustSchema(t, unionSchema), []string{"", `{"pet":`, `{"kind":"`, `dog"}`, `,"ab":{"id":`, "}", `,"a":"x"`, `cat","lives":`, "9", `,"b":[`}, nil)
	testConstraint(t, mustSchema(t, rangeSchema), []string{"", `{"n":`, `12`, `,"p":`, "0.", "}", "-", "99", "1", `,"m":`}, nil)
	testConstraint(t, mustSchema(t, patternSchema), []string{"", `{"id":"`, `AB-`, `12`, `","tag":"`, "\"}", "é", "xy", "\xc3\xa8", `\u00`}, nil)
}

// checkedGrammar is a grammar that tells whole texts and beginnings of
// them apart, as JSONSchema and Regex do.
type checkedGrammar interface {
	Grammar
	Valid(text []byte) bool
	Prefix(text []byte) bool
}

// testConstraint samples under g's constraint over vocab (its first five
// pieces after the end token made likely) and every printable byte: each
// text is a beginning g takes, and each that ends is whole to g and to
// whole (an independent check, or nil). It returns how many of its 200
// trials ended.
func testConstraint(t *testing.T, g checkedGrammar, vocab []string, whole func([]byte) bool) int {
	for b := byte(' '); b < 0x7f; b++ {
		vocab = append(vocab, string(b))
	}
	piece := func(id int) []byte { return []byte(vocab[id]) }
	isEOG := func(id int) bool { return id == 0 }
	rng := rand.New(rand.NewPCG(3, 4))
	ended := 0
	for trial := range 200 {
		c := g.Constraint(piece, isEOG)
		smp := New(Params{Temperature: float32(trial % 3), Seed: uint64(trial)})
		logits := make([]float32, len(vocab))
		var text []byte
		for range 80 {
			for i := range logits {
				logits[i] = float32(rng.NormFloat64() * 2)
			}
			for i := 1; i <= 5; i++ {
				logits[i] += 3 // the grammar's own pieces, likely
			}
			logits[0] = 4
			tok := smp.SampleAllowed(logits, nil, c)
			if tok < 0 {
				t.Fatalf("trial %d: no token after %q", trial, text)
			}
			c.Accept(tok)
			if tok == 0 {
				if !g.Valid(text) || whole != nil && !whole(text) {
					t.Fatalf("trial %d: ended after %q, not whole", trial, text)
				}
				ended++
				break
			}
			text = append(text, piece(tok)...)
			if !g.Prefix(text) {
				t.Fatalf("trial %d: %q is no beginning", trial, text)
			}
		}
	}
	if ended == 0 {
		t.Error("no trial made a whole text")
	}
	t.Logf("%s: %d of 200 trials made a whole text in 80 tokens", g, ended)
	return ended
}

// TestSchemaConstraintAllocs: a schema without ambiguous alternatives
// allocates nothing per token once its buffers have grown.
func TestSchemaConstraintAllocs(t *testing.T) {
	s := mustSchema(t, personSchema)
	text := []byte(`{"name":"Lily","age":3,"tags":["a"]}`)
	piece := func(id int) []byte { return text[id : id+1] }
	isEOG := func(id int) bool { return id < 0 }
	c := s.Constraint(piece, isEOG)
	for i := range 5 { // grow the buffers
		c.Allowed(i)
		c.Accept(i)
	}
	if n := testing.AllocsPerRun(100, func() {
		c.Allowed(5)
	}); n != 0 {
		t.Errorf("Allowed allocates %v times", n)
	}
	sc := c.(*schemaConstraint)
	saved := sc.sts[0].clone(nil)
	if n := testing.AllocsPerRun(100, func() {
		sc.sts[0] = saved.clone(sc.sts[0].stack)
		c.Accept(5)
	}); n != 0 {
		t.Errorf("Accept allocates %v times", n)
	}
}

// TestJSONSchemaDiscriminated: objects that each begin with the same
// required property, of a different string constant, are read as one
// object that goes on as the branch its first value names, however many
// (up to maxProps): a tool call of one of 40 functions, each with its own
// arguments, where a plain union would have to follow 40 readings.
func TestJSONSchemaDiscriminated(t *testing.T) {
	var alts []string
	for i := range 40 {
		alts = append(alts, fmt.Sprintf(`{"type":"object","properties":{"name":{"const":"f%d"},"arguments":{"type":"object","properties":{"a%d":{"type":"integer"}},"required":["a%d"]}},"required":["name","arguments"]}`, i, i, i))
	}
	s := mustSchema(t, `{"anyOf":[`+strings.Join(alts, ",")+`]}`)
	if n := s.root; n.kind != kObject || len(n.alts) != 40 {
		t.Fatalf("not a discriminated object: %s", s)
	}
	if got := s.String(); !strings.HasPrefix(got, `{"name":"f0","arguments":{"a0":integer}}|{"name":"f1",`) {
		t.Errorf("shape %s", got)
	}
	checkTexts(t, "40 functions", s.Valid,
		[]string{`{"name":"f1","arguments":{"a1":1}}`, `{"name":"f13","arguments":{"a13":-2}}`, `{"name": "f39" , "arguments": {"a39": 0}}`},
		[]string{`{"name":"f1","arguments":{"a13":1}}`, `{"name":"f40","arguments":{}}`, `{"arguments":{"a1":1},"name":"f1"}`, `{"name":"f1"}`, `{"name":"f1","arguments":{"a1":"x"}}`})
	for text, want := range map[string]bool{`{"name":"f1`: true, `{"name":"f13","arguments":{"a1`: true, `{"name":"f13","arguments":{"a2`: false, `{"name":"f4`: true, `{"name":"f40`: false} {
		if got := s.Prefix([]byte(text)); got != want {
			t.Errorf("Prefix(%s) = %v, want %v", text, got, want)
		}
	}
	testInstances(t, s)
	testConstraint(t, s, []string{"", `{"name":"f`, "1", `","arguments":{"a1`, `":5}}`, "3", `","arguments":{"a13":`, "7}}"}, nil)
	// Not discriminated: a constant twice, a first property not required,
	// or not a string; the union then follows its alternatives as before.
	for _, doc := range []string{
		`{"anyOf":[{"type":"object","properties":{"k":{"const":"a"}},"required":["k"]},{"type":"object","properties":{"k":{"const":"a"},"x":{"type":"string"}},"required":["k"]}]}`,
		`{"anyOf":[{"type":"object","properties":{"k":{"const":"a"}}},{"type":"object","properties":{"k":{"const":"b"}},"required":["k"]}]}`,
		`{"anyOf":[{"type":"object","properties":{"k":{"const":1}},"required":["k"]},{"type":"object","properties":{"k":{"const":2}},"required":["k"]}]}`,
	} {
		if n := mustSchema(t, doc).root; n.kind != kUnion {
			t.Errorf("%s: kind %d, want a union", doc, n.kind)
		}
	}
}

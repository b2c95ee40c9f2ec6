package api

import (
	"encoding/json"
	"regexp"
	"strings"

	"github.com/strata-llm/strata/pipeline/sample"
)

// guidedFields are vLLM's guided decoding parameters, extensions of both
// OpenAI routes that its clients send: the reply held to a JSON schema, to
// a regular expression, or to one of a list of strings. guided_grammar (an
// EBNF grammar) is refused; guided_decoding_backend and
// guided_whitespace_pattern, hints to vLLM's own backends, are ignored.
type guidedFields struct {
	GuidedJSON    json.RawMessage `json:"guided_json"`
	GuidedRegex   *string         `json:"guided_regex"`
	GuidedChoice  []string        `json:"guided_choice"`
	GuidedGrammar json.RawMessage `json:"guided_grammar"`
}

// grammar compiles the guided parameter set (at most one), or returns nil
// when none is.
func (g *guidedFields) grammar() (sample.Grammar, *apiError) {
	set := 0
	for _, on := range []bool{isSet(g.GuidedJSON), g.GuidedRegex != nil, g.GuidedChoice != nil} {
		if on {
			set++
		}
	}
	switch {
	case isSet(g.GuidedGrammar):
		return nil, badRequest("guided_grammar", "guided_grammar is not supported by this server; guided_json, guided_regex and guided_choice are")
	case set > 1:
		return nil, badRequest("guided_json", "at most one of guided_json, guided_regex and guided_choice may be set")
	case isSet(g.GuidedJSON):
		doc := g.GuidedJSON
		var text string
		if json.Unmarshal(doc, &text) == nil { // the schema as a string
			doc = json.RawMessage(text)
		}
		schema, err := sample.CompileJSONSchema(doc)
		if err != nil {
			return nil, badRequest("guided_json", "%v", err)
		}
		return schema, nil
	case g.GuidedRegex != nil:
		re, err := sample.CompileRegex(*g.GuidedRegex)
		if err != nil {
			return nil, badRequest("guided_regex", "%v", err)
		}
		return re, nil
	case g.GuidedChoice != nil:
		if len(g.GuidedChoice) == 0 {
			return nil, badRequest("guided_choice", "guided_choice must list at least one string")
		}
		alts := make([]string, len(g.GuidedChoice))
		for i, c := range g.GuidedChoice {
			alts[i] = regexp.QuoteMeta(c)
		}
		re, err := sample.CompileRegex(strings.Join(alts, "|"))
		if err != nil {
			return nil, badRequest("guided_choice", "%v", err)
		}
		return re, nil
	}
	return nil, nil
}

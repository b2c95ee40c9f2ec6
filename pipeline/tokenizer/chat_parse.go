package tokenizer

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// This file parses scanned segments into a tree of statements and
// expressions, following Jinja's grammar and operator precedence.

// maxParseDepth bounds the nesting of blocks and expressions, so that a
// hostile template cannot exhaust the stack while being parsed.
const maxParseDepth = 200

// node is a statement of the template tree.
type node interface{ isNode() }

type (
	textNode   struct{ s string }
	outputNode struct{ x expr }
	ifNode     struct {
		conds  []expr
		bodies [][]node
		els    []node
	}
	forNode struct {
		targets []string // one name, or the names a tuple unpacks into
		iter    expr
		cond    expr // the inline "if" filter, or nil
		body    []node
		els     []node
		pos     int
	}
	setNode struct {
		names []string // one name, or the names a tuple unpacks into
		ns    string   // for "set ns.attr = ...": the namespace variable; names[0] is attr
		x     expr
	}
	setBlockNode struct {
		name string
		body []node
	}
	macroNode struct {
		name     string
		params   []string
		defaults []expr // per param; nil when it has none
		body     []node
	}
	loopCtlNode struct{ brk bool } // break or continue
)

func (textNode) isNode()     {}
func (outputNode) isNode()   {}
func (ifNode) isNode()       {}
func (forNode) isNode()      {}
func (setNode) isNode()      {}
func (setBlockNode) isNode() {}
func (macroNode) isNode()    {}
func (loopCtlNode) isNode()  {}

// expr is an expression of the template tree.
type expr interface{ exprPos() int }

type (
	litExpr  struct{ v any }
	nameExpr struct {
		name string
		pos  int
	}
	listExpr struct {
		items []expr
		pos   int
	}
	dictExpr struct {
		keys, vals []expr
		pos        int
	}
	attrExpr struct {
		x    expr
		name string
		pos  int
	}
	indexExpr struct {
		x, idx expr
		pos    int
	}
	sliceExpr struct {
		x, lo, hi, step expr // lo, hi, step may be nil
		pos             int
	}
	callExpr struct {
		fn   expr
		args []expr
		kw   []kwArg
		pos  int
	}
	filterExpr struct {
		x    expr // nil inside a "filter" of map/select, unused here
		name string
		args []expr
		kw   []kwArg
		pos  int
	}
	testExpr struct {
		x      expr
		name   string
		args   []expr
		negate bool
		pos    int
	}
	unaryExpr struct {
		op  string // "not", "-", "+"
		x   expr
		pos int
	}
	binaryExpr struct {
		op   string // "and", "or", "+", "-", "*", "/", "//", "%", "**", "~"
		l, r expr
		pos  int
	}
	compareExpr struct {
		first expr
		ops   []string // "==", "!=", "<", "<=", ">", ">=", "in", "not in"
		rest  []expr
		pos   int
	}
	condExpr struct {
		cond, a, b expr // b may be nil: undefined
		pos        int
	}
)

// kwArg is a keyword argument of a call.
type kwArg struct {
	name string
	x    expr
}

func (e litExpr) exprPos() int     { return 0 }
func (e nameExpr) exprPos() int    { return e.pos }
func (e listExpr) exprPos() int    { return e.pos }
func (e dictExpr) exprPos() int    { return e.pos }
func (e attrExpr) exprPos() int    { return e.pos }
func (e indexExpr) exprPos() int   { return e.pos }
func (e sliceExpr) exprPos() int   { return e.pos }
func (e callExpr) exprPos() int    { return e.pos }
func (e filterExpr) exprPos() int  { return e.pos }
func (e testExpr) exprPos() int    { return e.pos }
func (e unaryExpr) exprPos() int   { return e.pos }
func (e binaryExpr) exprPos() int  { return e.pos }
func (e compareExpr) exprPos() int { return e.pos }
func (e condExpr) exprPos() int    { return e.pos }

// normalizeNewlines does what Jinja's lexer does to a template first:
// "\n".join(src.splitlines()). Every line break Python knows (\r\n, \r,
// \v, \f, \x1c-\x1e, \x85, U+2028, U+2029) becomes "\n", and a line
// break at the very end is dropped (keep_trailing_newline is off).
func normalizeNewlines(src string) string {
	var b strings.Builder
	changed := false
	for i := 0; i < len(src); {
		r, n := utf8.DecodeRuneInString(src[i:])
		switch r {
		case '\r':
			changed = true
			if i+1 < len(src) && src[i+1] == '\n' {
				n = 2
			}
			b.WriteByte('\n')
		case '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
			changed = true
			b.WriteByte('\n')
		default:
			b.WriteString(src[i : i+n])
		}
		i += n
	}
	out := src
	if changed {
		out = b.String()
	}
	return strings.TrimSuffix(out, "\n")
}

// parser builds the tree from segments.
type parser struct {
	segs  []segment
	i     int
	depth int
}

// parseTemplate scans and parses src.
func parseTemplate(src string) ([]node, error) {
	segs, err := scanTemplate(normalizeNewlines(src))
	if err != nil {
		return nil, err
	}
	p := &parser{segs: segs}
	nodes, end, _, err := p.parseBlock(nil)
	if err != nil {
		return nil, err
	}
	if end != "" {
		return nil, fmt.Errorf("unexpected {%% %s %%}", end)
	}
	return nodes, nil
}

// parseBlock parses statements until a statement tag whose keyword is in
// ends (returned with the rest of its tokens), or the end of the template
// (returned as "", which is an error when ends is not empty).
func (p *parser) parseBlock(ends []string) (nodes []node, end string, rest *tokParser, err error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxParseDepth {
		return nil, "", nil, fmt.Errorf("blocks nested deeper than %d", maxParseDepth)
	}
	for p.i < len(p.segs) {
		seg := p.segs[p.i]
		p.i++
		switch seg.kind {
		case segText:
			nodes = append(nodes, textNode{seg.body})
		case segExpr:
			tp, err := newTokParser(seg)
			if err != nil {
				return nil, "", nil, err
			}
			x, err := tp.parseExpr()
			if err != nil {
				return nil, "", nil, err
			}
			if err := tp.expectEOF(); err != nil {
				return nil, "", nil, err
			}
			nodes = append(nodes, outputNode{x})
		case segStmt:
			tp, err := newTokParser(seg)
			if err != nil {
				return nil, "", nil, err
			}
			kw := tp.next()
			if kw.kind != tokName {
				return nil, "", nil, fmt.Errorf("at offset %d: expected a statement keyword", kw.pos)
			}
			if slices.Contains(ends, kw.text) {
				return nodes, kw.text, tp, nil
			}
			n, err := p.parseStmt(kw, tp)
			if err != nil {
				return nil, "", nil, err
			}
			if n != nil {
				nodes = append(nodes, n...)
			}
		}
	}
	if len(ends) > 0 {
		return nil, "", nil, fmt.Errorf("missing {%% %s %%} at the end of the template", ends[len(ends)-1])
	}
	return nodes, "", nil, nil
}

// parseStmt parses the statement that starts with keyword kw.
func (p *parser) parseStmt(kw token, tp *tokParser) ([]node, error) {
	switch kw.text {
	case "if":
		return p.parseIf(tp)
	case "for":
		return p.parseFor(kw, tp)
	case "set":
		return p.parseSet(tp)
	case "macro":
		return p.parseMacro(tp)
	case "break", "continue":
		if err := tp.expectEOF(); err != nil {
			return nil, err
		}
		return []node{loopCtlNode{brk: kw.text == "break"}}, nil
	case "generation": // Hugging Face's assistant-mask marker: renders its body
		if err := tp.expectEOF(); err != nil {
			return nil, err
		}
		body, _, rest, err := p.parseBlock([]string{"endgeneration"})
		if err != nil {
			return nil, err
		}
		if err := rest.expectEOF(); err != nil {
			return nil, err
		}
		return body, nil
	case "elif", "else", "endif", "endfor", "endset", "endmacro", "endgeneration", "endraw":
		return nil, fmt.Errorf("at offset %d: unexpected {%% %s %%}", kw.pos, kw.text)
	}
	return nil, fmt.Errorf("at offset %d: unsupported statement %q", kw.pos, kw.text)
}

func (p *parser) parseIf(tp *tokParser) ([]node, error) {
	var n ifNode
	for {
		cond, err := tp.parseExpr()
		if err != nil {
			return nil, err
		}
		if err := tp.expectEOF(); err != nil {
			return nil, err
		}
		body, end, rest, err := p.parseBlock([]string{"elif", "else", "endif"})
		if err != nil {
			return nil, err
		}
		n.conds = append(n.conds, cond)
		n.bodies = append(n.bodies, body)
		switch end {
		case "elif":
			tp = rest
			continue
		case "else":
			if err := rest.expectEOF(); err != nil {
				return nil, err
			}
			els, _, rest, err := p.parseBlock([]string{"endif"})
			if err != nil {
				return nil, err
			}
			if err := rest.expectEOF(); err != nil {
				return nil, err
			}
			n.els = els
		default:
			if err := rest.expectEOF(); err != nil {
				return nil, err
			}
		}
		return []node{n}, nil
	}
}

func (p *parser) parseFor(kw token, tp *tokParser) ([]node, error) {
	n := forNode{pos: kw.pos}
	targets, err := tp.parseTargets()
	if err != nil {
		return nil, err
	}
	n.targets = targets
	if t := tp.next(); t.kind != tokName || t.text != "in" {
		return nil, fmt.Errorf("at offset %d: expected 'in' in for", t.pos)
	}
	// The iterable is parsed without the conditional expression, so that a
	// trailing "if" is the loop filter, as in Jinja.
	if n.iter, err = tp.parseOr(); err != nil {
		return nil, err
	}
	if tp.peekName("if") {
		tp.next()
		if n.cond, err = tp.parseOr(); err != nil {
			return nil, err
		}
	}
	if tp.peekName("recursive") {
		return nil, fmt.Errorf("at offset %d: recursive loops are not supported", tp.peek().pos)
	}
	if err := tp.expectEOF(); err != nil {
		return nil, err
	}
	body, end, rest, err := p.parseBlock([]string{"else", "endfor"})
	if err != nil {
		return nil, err
	}
	if err := rest.expectEOF(); err != nil {
		return nil, err
	}
	n.body = body
	if end == "else" {
		els, _, rest, err := p.parseBlock([]string{"endfor"})
		if err != nil {
			return nil, err
		}
		if err := rest.expectEOF(); err != nil {
			return nil, err
		}
		n.els = els
	}
	return []node{n}, nil
}

func (p *parser) parseSet(tp *tokParser) ([]node, error) {
	first := tp.next()
	if first.kind != tokName {
		return nil, fmt.Errorf("at offset %d: expected a name after set", first.pos)
	}
	var n setNode
	switch {
	case tp.peekOp("."):
		tp.next()
		attr := tp.next()
		if attr.kind != tokName {
			return nil, fmt.Errorf("at offset %d: expected an attribute name", attr.pos)
		}
		n.ns, n.names = first.text, []string{attr.text}
	case tp.peekOp(","):
		n.names = []string{first.text}
		for tp.peekOp(",") {
			tp.next()
			t := tp.next()
			if t.kind != tokName {
				return nil, fmt.Errorf("at offset %d: expected a name", t.pos)
			}
			n.names = append(n.names, t.text)
		}
	default:
		n.names = []string{first.text}
	}
	if tp.peek().kind == tokEOF {
		if n.ns != "" || len(n.names) != 1 {
			return nil, fmt.Errorf("at offset %d: a block set takes one name", first.pos)
		}
		body, _, rest, err := p.parseBlock([]string{"endset"})
		if err != nil {
			return nil, err
		}
		if err := rest.expectEOF(); err != nil {
			return nil, err
		}
		return []node{setBlockNode{name: n.names[0], body: body}}, nil
	}
	if t := tp.next(); t.kind != tokOp || t.text != "=" {
		return nil, fmt.Errorf("at offset %d: expected '=' in set", t.pos)
	}
	x, err := tp.parseTupleOrExpr()
	if err != nil {
		return nil, err
	}
	if err := tp.expectEOF(); err != nil {
		return nil, err
	}
	n.x = x
	return []node{n}, nil
}

func (p *parser) parseMacro(tp *tokParser) ([]node, error) {
	name := tp.next()
	if name.kind != tokName {
		return nil, fmt.Errorf("at offset %d: expected a macro name", name.pos)
	}
	n := macroNode{name: name.text}
	if err := tp.expectOp("("); err != nil {
		return nil, err
	}
	for !tp.peekOp(")") {
		pn := tp.next()
		if pn.kind != tokName {
			return nil, fmt.Errorf("at offset %d: expected a parameter name", pn.pos)
		}
		var def expr
		if tp.peekOp("=") {
			tp.next()
			x, err := tp.parseExpr()
			if err != nil {
				return nil, err
			}
			def = x
		}
		n.params = append(n.params, pn.text)
		n.defaults = append(n.defaults, def)
		if !tp.peekOp(",") {
			break
		}
		tp.next()
	}
	if err := tp.expectOp(")"); err != nil {
		return nil, err
	}
	if err := tp.expectEOF(); err != nil {
		return nil, err
	}
	body, _, rest, err := p.parseBlock([]string{"endmacro"})
	if err != nil {
		return nil, err
	}
	if t := rest.peek(); t.kind == tokName && t.text == n.name {
		rest.next()
	}
	if err := rest.expectEOF(); err != nil {
		return nil, err
	}
	n.body = body
	return []node{n}, nil
}

// tokParser parses the tokens of one tag.
type tokParser struct {
	toks  []token
	i     int
	depth int
}

func newTokParser(seg segment) (*tokParser, error) {
	toks, err := lexTag(seg.body, seg.pos+2)
	if err != nil {
		return nil, err
	}
	return &tokParser{toks: toks}, nil
}

func (tp *tokParser) peek() token { return tp.toks[tp.i] }

func (tp *tokParser) next() token {
	t := tp.toks[tp.i]
	if t.kind != tokEOF {
		tp.i++
	}
	return t
}

func (tp *tokParser) peekOp(op string) bool {
	t := tp.peek()
	return t.kind == tokOp && t.text == op
}

func (tp *tokParser) peekName(name string) bool {
	t := tp.peek()
	return t.kind == tokName && t.text == name
}

func (tp *tokParser) expectOp(op string) error {
	if t := tp.next(); t.kind != tokOp || t.text != op {
		return fmt.Errorf("at offset %d: expected %q, found %s", t.pos, op, describe(t))
	}
	return nil
}

func (tp *tokParser) expectEOF() error {
	if t := tp.peek(); t.kind != tokEOF {
		return fmt.Errorf("at offset %d: unexpected %s", t.pos, describe(t))
	}
	return nil
}

// describe names a token for an error message.
func describe(t token) string {
	switch t.kind {
	case tokEOF:
		return "end of tag"
	case tokString:
		return "string"
	}
	return fmt.Sprintf("%q", t.text)
}

// enter guards the recursion of expression parsing.
func (tp *tokParser) enter() error {
	tp.depth++
	if tp.depth > maxParseDepth {
		return fmt.Errorf("at offset %d: expression nested deeper than %d", tp.peek().pos, maxParseDepth)
	}
	return nil
}

func (tp *tokParser) leave() { tp.depth-- }

// parseTargets parses the targets of a for loop: "x", "k, v" or "(k, v)".
func (tp *tokParser) parseTargets() ([]string, error) {
	paren := tp.peekOp("(")
	if paren {
		tp.next()
	}
	var names []string
	for {
		t := tp.next()
		if t.kind != tokName {
			return nil, fmt.Errorf("at offset %d: expected a loop variable", t.pos)
		}
		names = append(names, t.text)
		if !tp.peekOp(",") {
			break
		}
		tp.next()
	}
	if paren {
		if err := tp.expectOp(")"); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// parseTupleOrExpr parses an expression, or a tuple of them without
// parentheses ("a, b"), as the right side of a set.
func (tp *tokParser) parseTupleOrExpr() (expr, error) {
	pos := tp.peek().pos
	x, err := tp.parseExpr()
	if err != nil {
		return nil, err
	}
	if !tp.peekOp(",") {
		return x, nil
	}
	items := []expr{x}
	for tp.peekOp(",") {
		tp.next()
		if tp.peek().kind == tokEOF {
			break
		}
		y, err := tp.parseExpr()
		if err != nil {
			return nil, err
		}
		items = append(items, y)
	}
	return listExpr{items: items, pos: pos}, nil
}

// parseExpr parses a full expression, with the conditional "a if c else b".
func (tp *tokParser) parseExpr() (expr, error) {
	if err := tp.enter(); err != nil {
		return nil, err
	}
	defer tp.leave()
	pos := tp.peek().pos
	x, err := tp.parseOr()
	if err != nil {
		return nil, err
	}
	for tp.peekName("if") {
		tp.next()
		cond, err := tp.parseOr()
		if err != nil {
			return nil, err
		}
		var b expr
		if tp.peekName("else") {
			tp.next()
			if b, err = tp.parseExpr(); err != nil {
				return nil, err
			}
		}
		x = condExpr{cond: cond, a: x, b: b, pos: pos}
	}
	return x, nil
}

func (tp *tokParser) parseOr() (expr, error) {
	x, err := tp.parseAnd()
	if err != nil {
		return nil, err
	}
	for tp.peekName("or") {
		t := tp.next()
		y, err := tp.parseAnd()
		if err != nil {
			return nil, err
		}
		x = binaryExpr{op: "or", l: x, r: y, pos: t.pos}
	}
	return x, nil
}

func (tp *tokParser) parseAnd() (expr, error) {
	x, err := tp.parseNot()
	if err != nil {
		return nil, err
	}
	for tp.peekName("and") {
		t := tp.next()
		y, err := tp.parseNot()
		if err != nil {
			return nil, err
		}
		x = binaryExpr{op: "and", l: x, r: y, pos: t.pos}
	}
	return x, nil
}

func (tp *tokParser) parseNot() (expr, error) {
	if tp.peekName("not") {
		if err := tp.enter(); err != nil {
			return nil, err
		}
		defer tp.leave()
		t := tp.next()
		x, err := tp.parseNot()
		if err != nil {
			return nil, err
		}
		return unaryExpr{op: "not", x: x, pos: t.pos}, nil
	}
	return tp.parseCompare()
}

func (tp *tokParser) parseCompare() (expr, error) {
	pos := tp.peek().pos
	x, err := tp.parseMath1()
	if err != nil {
		return nil, err
	}
	c := compareExpr{first: x, pos: pos}
	for {
		t := tp.peek()
		var op string
		switch {
		case t.kind == tokOp && (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">="):
			op = t.text
			tp.next()
		case t.kind == tokName && t.text == "in":
			op = "in"
			tp.next()
		case t.kind == tokName && t.text == "not" && tp.toks[tp.i+1].kind == tokName && tp.toks[tp.i+1].text == "in":
			op = "not in"
			tp.next()
			tp.next()
		}
		if op == "" {
			break
		}
		y, err := tp.parseMath1()
		if err != nil {
			return nil, err
		}
		c.ops = append(c.ops, op)
		c.rest = append(c.rest, y)
	}
	if len(c.ops) == 0 {
		return x, nil
	}
	return c, nil
}

func (tp *tokParser) parseMath1() (expr, error) {
	x, err := tp.parseConcat()
	if err != nil {
		return nil, err
	}
	for tp.peekOp("+") || tp.peekOp("-") {
		t := tp.next()
		y, err := tp.parseConcat()
		if err != nil {
			return nil, err
		}
		x = binaryExpr{op: t.text, l: x, r: y, pos: t.pos}
	}
	return x, nil
}

func (tp *tokParser) parseConcat() (expr, error) {
	x, err := tp.parseMath2()
	if err != nil {
		return nil, err
	}
	for tp.peekOp("~") {
		t := tp.next()
		y, err := tp.parseMath2()
		if err != nil {
			return nil, err
		}
		x = binaryExpr{op: "~", l: x, r: y, pos: t.pos}
	}
	return x, nil
}

func (tp *tokParser) parseMath2() (expr, error) {
	x, err := tp.parsePow()
	if err != nil {
		return nil, err
	}
	for tp.peekOp("*") || tp.peekOp("/") || tp.peekOp("//") || tp.peekOp("%") {
		t := tp.next()
		y, err := tp.parsePow()
		if err != nil {
			return nil, err
		}
		x = binaryExpr{op: t.text, l: x, r: y, pos: t.pos}
	}
	return x, nil
}

func (tp *tokParser) parsePow() (expr, error) {
	x, err := tp.parseUnary(true)
	if err != nil {
		return nil, err
	}
	for tp.peekOp("**") {
		t := tp.next()
		y, err := tp.parseUnary(true)
		if err != nil {
			return nil, err
		}
		x = binaryExpr{op: "**", l: x, r: y, pos: t.pos}
	}
	return x, nil
}

// parseUnary parses a unary minus or plus, a primary with its postfix
// operators, and (withFilter) its filters and tests, as Jinja does: so
// "-x|abs" filters -x.
func (tp *tokParser) parseUnary(withFilter bool) (expr, error) {
	if err := tp.enter(); err != nil {
		return nil, err
	}
	defer tp.leave()
	var x expr
	var err error
	if tp.peekOp("-") || tp.peekOp("+") {
		t := tp.next()
		y, err := tp.parseUnary(false)
		if err != nil {
			return nil, err
		}
		x = unaryExpr{op: t.text, x: y, pos: t.pos}
	} else if x, err = tp.parsePrimary(); err != nil {
		return nil, err
	}
	if x, err = tp.parsePostfix(x); err != nil {
		return nil, err
	}
	if withFilter {
		return tp.parseFilters(x)
	}
	return x, nil
}

func (tp *tokParser) parsePrimary() (expr, error) {
	t := tp.next()
	switch t.kind {
	case tokName:
		switch t.text {
		case "true", "True":
			return litExpr{true}, nil
		case "false", "False":
			return litExpr{false}, nil
		case "none", "None":
			return litExpr{nil}, nil
		}
		return nameExpr{name: t.text, pos: t.pos}, nil
	case tokString:
		s := t.text
		for tp.peek().kind == tokString { // adjacent literals concatenate
			s += tp.next().text
		}
		return litExpr{s}, nil
	case tokInt:
		return litExpr{t.i}, nil
	case tokFloat:
		return litExpr{t.f}, nil
	case tokOp:
		switch t.text {
		case "(":
			if tp.peekOp(")") {
				tp.next()
				return listExpr{pos: t.pos}, nil
			}
			x, err := tp.parseExpr()
			if err != nil {
				return nil, err
			}
			if tp.peekOp(",") { // a tuple
				items := []expr{x}
				for tp.peekOp(",") {
					tp.next()
					if tp.peekOp(")") {
						break
					}
					y, err := tp.parseExpr()
					if err != nil {
						return nil, err
					}
					items = append(items, y)
				}
				x = listExpr{items: items, pos: t.pos}
			}
			if err := tp.expectOp(")"); err != nil {
				return nil, err
			}
			return x, nil
		case "[":
			l := listExpr{pos: t.pos}
			for !tp.peekOp("]") {
				x, err := tp.parseExpr()
				if err != nil {
					return nil, err
				}
				l.items = append(l.items, x)
				if !tp.peekOp(",") {
					break
				}
				tp.next()
			}
			if err := tp.expectOp("]"); err != nil {
				return nil, err
			}
			return l, nil
		case "{":
			d := dictExpr{pos: t.pos}
			for !tp.peekOp("}") {
				k, err := tp.parseExpr()
				if err != nil {
					return nil, err
				}
				if err := tp.expectOp(":"); err != nil {
					return nil, err
				}
				v, err := tp.parseExpr()
				if err != nil {
					return nil, err
				}
				d.keys = append(d.keys, k)
				d.vals = append(d.vals, v)
				if !tp.peekOp(",") {
					break
				}
				tp.next()
			}
			if err := tp.expectOp("}"); err != nil {
				return nil, err
			}
			return d, nil
		}
	}
	return nil, fmt.Errorf("at offset %d: unexpected %s", t.pos, describe(t))
}

func (tp *tokParser) parsePostfix(x expr) (expr, error) {
	for {
		t := tp.peek()
		if t.kind != tokOp {
			return x, nil
		}
		switch t.text {
		case ".":
			tp.next()
			a := tp.next()
			switch a.kind {
			case tokName:
				x = attrExpr{x: x, name: a.text, pos: a.pos}
			case tokInt:
				x = indexExpr{x: x, idx: litExpr{a.i}, pos: a.pos}
			default:
				return nil, fmt.Errorf("at offset %d: expected an attribute name", a.pos)
			}
		case "[":
			tp.next()
			var err error
			if x, err = tp.parseSubscript(x, t.pos); err != nil {
				return nil, err
			}
		case "(":
			tp.next()
			args, kw, err := tp.parseArgs()
			if err != nil {
				return nil, err
			}
			x = callExpr{fn: x, args: args, kw: kw, pos: t.pos}
		default:
			return x, nil
		}
	}
}

// parseSubscript parses what follows "[": an index or a slice.
func (tp *tokParser) parseSubscript(x expr, pos int) (expr, error) {
	var parts [3]expr
	n := 0
	for {
		if !tp.peekOp(":") && !tp.peekOp("]") {
			y, err := tp.parseExpr()
			if err != nil {
				return nil, err
			}
			parts[n] = y
		}
		if tp.peekOp(":") && n < 2 {
			tp.next()
			n++
			continue
		}
		break
	}
	if err := tp.expectOp("]"); err != nil {
		return nil, err
	}
	if n == 0 {
		if parts[0] == nil {
			return nil, fmt.Errorf("at offset %d: empty subscript", pos)
		}
		return indexExpr{x: x, idx: parts[0], pos: pos}, nil
	}
	return sliceExpr{x: x, lo: parts[0], hi: parts[1], step: parts[2], pos: pos}, nil
}

// parseArgs parses call arguments after "(" up to and including ")".
func (tp *tokParser) parseArgs() ([]expr, []kwArg, error) {
	var args []expr
	var kw []kwArg
	for !tp.peekOp(")") {
		if t := tp.peek(); t.kind == tokName && tp.toks[tp.i+1].kind == tokOp && tp.toks[tp.i+1].text == "=" {
			tp.next()
			tp.next()
			x, err := tp.parseExpr()
			if err != nil {
				return nil, nil, err
			}
			kw = append(kw, kwArg{name: t.text, x: x})
		} else {
			if len(kw) > 0 {
				return nil, nil, fmt.Errorf("at offset %d: positional argument after keyword argument", t.pos)
			}
			x, err := tp.parseExpr()
			if err != nil {
				return nil, nil, err
			}
			args = append(args, x)
		}
		if !tp.peekOp(",") {
			break
		}
		tp.next()
	}
	if err := tp.expectOp(")"); err != nil {
		return nil, nil, err
	}
	return args, kw, nil
}

// parseFilters parses "| filter(args)" and "is [not] test args" after x.
func (tp *tokParser) parseFilters(x expr) (expr, error) {
	for {
		switch {
		case tp.peekOp("|"):
			tp.next()
			name := tp.next()
			if name.kind != tokName {
				return nil, fmt.Errorf("at offset %d: expected a filter name", name.pos)
			}
			f := filterExpr{x: x, name: name.text, pos: name.pos}
			if tp.peekOp("(") {
				tp.next()
				args, kw, err := tp.parseArgs()
				if err != nil {
					return nil, err
				}
				f.args, f.kw = args, kw
			}
			x = f
		case tp.peekName("is"):
			tp.next()
			t := testExpr{x: x}
			if tp.peekName("not") {
				tp.next()
				t.negate = true
			}
			name := tp.next()
			if name.kind != tokName {
				return nil, fmt.Errorf("at offset %d: expected a test name", name.pos)
			}
			t.name, t.pos = name.text, name.pos
			// Jinja's names for none/true/false tests are also keywords.
			if tp.peekOp("(") {
				tp.next()
				args, _, err := tp.parseArgs()
				if err != nil {
					return nil, err
				}
				t.args = args
			} else if a := tp.peek(); a.kind == tokString || a.kind == tokInt || a.kind == tokFloat ||
				a.kind == tokOp && (a.text == "[" || a.text == "{") ||
				a.kind == tokName && !slices.Contains([]string{"else", "or", "and", "if", "in", "not", "is"}, a.text) {
				y, err := tp.parsePrimary()
				if err != nil {
					return nil, err
				}
				if y, err = tp.parsePostfix(y); err != nil {
					return nil, err
				}
				t.args = []expr{y}
			}
			x = t
		default:
			return x, nil
		}
	}
}

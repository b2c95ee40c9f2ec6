package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// This file evaluates a parsed chat template. Values are Go values of a few
// types, mirroring Python's as Jinja sees them:
//
//	nil         None
//	undefined   Jinja's Undefined: renders as "", false, iterates as empty
//	bool        bool
//	int64       int
//	float64     float
//	string      str (indexed and measured in code points, as Python does)
//	[]any       list and tuple (never modified once built)
//	*dict       dict, in insertion order
//	*namespace  the result of namespace(), the one mutable value
//	*macro, builtinFunc, boundMethod, *loopInfo
//
// Evaluation is bounded: by a step budget, by the size of every string and
// list it builds, and by the depth of macro calls, so that a hostile
// template fails with an error instead of exhausting time or memory.

// Limits of one rendering.
const (
	chatMaxSteps     = 2_000_000 // work: statements, loop iterations, and 1 per 16 bytes operated on
	chatMaxOutput    = 8 << 20   // bytes of any string built, the output included
	chatMaxList      = 1 << 20   // elements of any list built
	chatMaxCallDepth = 64        // nested macro calls
)

type undefined struct{ name string }

// dict is an insertion-ordered mapping with comparable keys.
type dict struct {
	keys []any
	m    map[any]any
}

func newDict() *dict { return &dict{m: map[any]any{}} }

func (d *dict) set(k, v any) {
	if _, ok := d.m[k]; !ok {
		d.keys = append(d.keys, k)
	}
	d.m[k] = v
}

func (d *dict) get(k any) (any, bool) {
	v, ok := d.m[dictKey(k)]
	return v, ok
}

// dictKey normalises a key so that 1 and 1.0 (and true and 1) are the same
// key, as in Python.
func dictKey(k any) any {
	switch k := k.(type) {
	case float64:
		if k == math.Trunc(k) && math.Abs(k) < 1<<53 {
			return int64(k)
		}
	case bool:
		if k {
			return int64(1)
		}
		return int64(0)
	}
	return k
}

// namespace is the mutable object namespace() returns.
type namespace struct{ d *dict }

// macro is a macro defined by the template, with the scope it was defined in.
type macro struct {
	n     *macroNode
	scope *scope
}

// builtinFunc is a global function of the template.
type builtinFunc func(ev *evaluator, args []any, kw []kwVal) (any, error)

// boundMethod is a method of a string, dict or loop, looked up by name.
type boundMethod struct {
	recv any
	name string
}

// kwVal is an evaluated keyword argument.
type kwVal struct {
	name string
	v    any
}

// loopInfo is the "loop" variable of a for loop.
type loopInfo struct {
	items []any
	i     int
}

// scope is a frame of variables.
type scope struct {
	vars   map[string]any
	parent *scope
}

func (s *scope) lookup(name string) (any, bool) {
	for ; s != nil; s = s.parent {
		if v, ok := s.vars[name]; ok {
			return v, true
		}
	}
	return nil, false
}

func (s *scope) set(name string, v any) {
	if s.vars == nil {
		s.vars = map[string]any{}
	}
	s.vars[name] = v
}

// evaluator renders one template once.
type evaluator struct {
	out   *strings.Builder
	steps int
	depth int
	now   time.Time
}

// Control flow of break and continue, caught by the enclosing loop.
var (
	errBreak    = errors.New("break outside a loop")
	errContinue = errors.New("continue outside a loop")
)

// errf returns an error at source offset pos, wrapping ErrChatTemplate.
func errf(pos int, format string, args ...any) error {
	return fmt.Errorf("%w: at offset %d: %s", ErrChatTemplate, pos, fmt.Sprintf(format, args...))
}

// step spends n steps of the budget.
func (ev *evaluator) step(pos, n int) error {
	ev.steps += n
	if ev.steps > chatMaxSteps {
		return errf(pos, "template exceeds %d evaluation steps", chatMaxSteps)
	}
	return nil
}

// charge spends the steps of operating on vs: one per 16 bytes of a
// string, half a step per element of a list, one per entry of a dict. Every
// operation whose cost grows with its operands or result is charged, so
// that the budget bounds time and allocation alike.
func (ev *evaluator) charge(pos int, vs ...any) error {
	n := 0
	for _, v := range vs {
		n += sizeOf(v)
	}
	return ev.step(pos, n>>4)
}

// sizeOf is the size of v in bytes, roughly, without walking it.
func sizeOf(v any) int {
	switch v := v.(type) {
	case string:
		return len(v)
	case []any:
		return 8 * len(v)
	case *dict:
		return 16 * len(v.keys)
	case *namespace:
		return 16 * len(v.d.keys)
	}
	return 0
}

// checkString refuses a string longer than the output limit.
func checkString(pos, n int) error {
	if n > chatMaxOutput {
		return errf(pos, "template builds a string over %d bytes", chatMaxOutput)
	}
	return nil
}

func checkList(pos, n int) error {
	if n > chatMaxList {
		return errf(pos, "template builds a list over %d elements", chatMaxList)
	}
	return nil
}

func (ev *evaluator) write(pos int, s string) error {
	if err := ev.charge(pos, s); err != nil {
		return err
	}
	if err := checkString(pos, ev.out.Len()+len(s)); err != nil {
		return err
	}
	ev.out.WriteString(s)
	return nil
}

func (ev *evaluator) execNodes(nodes []node, sc *scope) error {
	for _, n := range nodes {
		if err := ev.exec(n, sc); err != nil {
			return err
		}
	}
	return nil
}

func (ev *evaluator) exec(n node, sc *scope) error {
	if err := ev.step(0, 1); err != nil {
		return err
	}
	switch n := n.(type) {
	case textNode:
		return ev.write(0, n.s)
	case outputNode:
		v, err := ev.eval(n.x, sc)
		if err != nil {
			return err
		}
		s, err := str(v, n.x.exprPos())
		if err != nil {
			return err
		}
		return ev.write(n.x.exprPos(), s)
	case ifNode:
		for i, c := range n.conds {
			v, err := ev.eval(c, sc)
			if err != nil {
				return err
			}
			if truthy(v) {
				return ev.execNodes(n.bodies[i], sc)
			}
		}
		return ev.execNodes(n.els, sc)
	case forNode:
		return ev.execFor(n, sc)
	case setNode:
		v, err := ev.eval(n.x, sc)
		if err != nil {
			return err
		}
		if n.ns != "" {
			nsv, _ := sc.lookup(n.ns)
			ns, ok := nsv.(*namespace)
			if !ok {
				return errf(n.x.exprPos(), "cannot assign attribute %q of %s: not a namespace", n.names[0], typeName(nsv))
			}
			ns.d.set(n.names[0], v)
			return nil
		}
		return assign(sc, n.names, v, n.x.exprPos())
	case setBlockNode:
		s, err := ev.capture(n.body, sc)
		if err != nil {
			return err
		}
		sc.set(n.name, s)
		return nil
	case macroNode:
		sc.set(n.name, &macro{n: &n, scope: sc})
		return nil
	case loopCtlNode:
		if n.brk {
			return errBreak
		}
		return errContinue
	}
	return fmt.Errorf("%w: unknown node %T", ErrChatTemplate, n)
}

// assign binds names to v, unpacking v when there are several names.
func assign(sc *scope, names []string, v any, pos int) error {
	if len(names) == 1 {
		sc.set(names[0], v)
		return nil
	}
	items, ok := v.([]any)
	if !ok || len(items) != len(names) {
		return errf(pos, "cannot unpack %s into %d names", typeName(v), len(names))
	}
	for i, name := range names {
		sc.set(name, items[i])
	}
	return nil
}

// capture renders nodes into a string of their own.
func (ev *evaluator) capture(nodes []node, sc *scope) (string, error) {
	saved := ev.out
	var b strings.Builder
	ev.out = &b
	err := ev.execNodes(nodes, sc)
	ev.out = saved
	return b.String(), err
}

func (ev *evaluator) execFor(n forNode, sc *scope) error {
	v, err := ev.eval(n.iter, sc)
	if err != nil {
		return err
	}
	if err := ev.charge(n.pos, v); err != nil {
		return err
	}
	items, err := iterate(v, n.iter.exprPos())
	if err != nil {
		return err
	}
	if n.cond != nil {
		var kept []any
		for _, it := range items {
			if err := ev.step(n.pos, 1); err != nil {
				return err
			}
			fs := &scope{parent: sc}
			if err := assign(fs, n.targets, it, n.pos); err != nil {
				return err
			}
			c, err := ev.eval(n.cond, fs)
			if err != nil {
				return err
			}
			if truthy(c) {
				kept = append(kept, it)
			}
		}
		items = kept
	}
	if len(items) == 0 {
		return ev.execNodes(n.els, sc)
	}
	loop := &loopInfo{items: items}
	for i, it := range items {
		if err := ev.step(n.pos, 1); err != nil {
			return err
		}
		loop.i = i
		is := &scope{parent: sc}
		if err := assign(is, n.targets, it, n.pos); err != nil {
			return err
		}
		is.set("loop", loop)
		err := ev.execNodes(n.body, is)
		if err == errBreak {
			break
		}
		if err != nil && err != errContinue {
			return err
		}
	}
	return nil
}

// iterate returns the elements a for loop or filter walks over.
func iterate(v any, pos int) ([]any, error) {
	switch v := v.(type) {
	case []any:
		return v, nil
	case *dict:
		return slices.Clone(v.keys), nil
	case string:
		var out []any
		for _, r := range v {
			out = append(out, string(r))
		}
		return out, nil
	case undefined:
		return nil, nil
	case *namespace:
		return slices.Clone(v.d.keys), nil
	}
	return nil, errf(pos, "%s is not iterable", typeName(v))
}

func (ev *evaluator) eval(x expr, sc *scope) (any, error) {
	switch x := x.(type) {
	case litExpr:
		return x.v, nil
	case nameExpr:
		if v, ok := sc.lookup(x.name); ok {
			return v, nil
		}
		if f, ok := globals[x.name]; ok {
			return f, nil
		}
		return undefined{x.name}, nil
	case listExpr:
		out := make([]any, len(x.items))
		for i, it := range x.items {
			v, err := ev.eval(it, sc)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case dictExpr:
		d := newDict()
		for i := range x.keys {
			k, err := ev.eval(x.keys[i], sc)
			if err != nil {
				return nil, err
			}
			if !hashable(k) {
				return nil, errf(x.pos, "unhashable dict key of type %s", typeName(k))
			}
			v, err := ev.eval(x.vals[i], sc)
			if err != nil {
				return nil, err
			}
			d.set(dictKey(k), v)
		}
		return d, nil
	case attrExpr:
		v, err := ev.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		return getAttr(v, x.name, x.pos)
	case indexExpr:
		v, err := ev.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		idx, err := ev.eval(x.idx, sc)
		if err != nil {
			return nil, err
		}
		if _, isStr := v.(string); isStr {
			if err := ev.charge(x.pos, v); err != nil {
				return nil, err
			}
		}
		return getItem(v, idx, x.pos)
	case sliceExpr:
		return ev.evalSlice(x, sc)
	case callExpr:
		return ev.evalCall(x, sc)
	case filterExpr:
		v, err := ev.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		args, kw, err := ev.evalArgs(x.args, x.kw, sc)
		if err != nil {
			return nil, err
		}
		if err := ev.charge(x.pos, append(args, v)...); err != nil {
			return nil, err
		}
		r, err := ev.applyFilter(x.name, v, args, kw, x.pos)
		if err != nil {
			return nil, err
		}
		return r, ev.charge(x.pos, r)
	case testExpr:
		v, err := ev.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		args, _, err := ev.evalArgs(x.args, nil, sc)
		if err != nil {
			return nil, err
		}
		if err := ev.charge(x.pos, append(args, v)...); err != nil {
			return nil, err
		}
		ok, err := applyTest(x.name, v, args, x.pos)
		if err != nil {
			return nil, err
		}
		return ok != x.negate, nil
	case unaryExpr:
		v, err := ev.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		switch x.op {
		case "not":
			return !truthy(v), nil
		case "-":
			switch v := v.(type) {
			case int64:
				return -v, nil
			case float64:
				return -v, nil
			case bool:
				return -boolInt(v), nil
			}
			return nil, errf(x.pos, "bad operand type for unary -: %s", typeName(v))
		default:
			switch v.(type) {
			case int64, float64:
				return v, nil
			case bool:
				return boolInt(v.(bool)), nil
			}
			return nil, errf(x.pos, "bad operand type for unary +: %s", typeName(v))
		}
	case binaryExpr:
		l, err := ev.eval(x.l, sc)
		if err != nil {
			return nil, err
		}
		switch x.op {
		case "and":
			if !truthy(l) {
				return l, nil
			}
			return ev.eval(x.r, sc)
		case "or":
			if truthy(l) {
				return l, nil
			}
			return ev.eval(x.r, sc)
		}
		r, err := ev.eval(x.r, sc)
		if err != nil {
			return nil, err
		}
		if err := ev.charge(x.pos, l, r); err != nil {
			return nil, err
		}
		res, err := binary(x.op, l, r, x.pos)
		if err != nil {
			return nil, err
		}
		return res, ev.charge(x.pos, res)
	case compareExpr:
		l, err := ev.eval(x.first, sc)
		if err != nil {
			return nil, err
		}
		for i, op := range x.ops {
			r, err := ev.eval(x.rest[i], sc)
			if err != nil {
				return nil, err
			}
			if err := ev.charge(x.pos, l, r); err != nil {
				return nil, err
			}
			ok, err := compare(op, l, r, x.pos)
			if err != nil {
				return nil, err
			}
			if !ok {
				return false, nil
			}
			l = r
		}
		return true, nil
	case condExpr:
		c, err := ev.eval(x.cond, sc)
		if err != nil {
			return nil, err
		}
		if truthy(c) {
			return ev.eval(x.a, sc)
		}
		if x.b == nil {
			return undefined{}, nil
		}
		return ev.eval(x.b, sc)
	}
	return nil, fmt.Errorf("%w: unknown expression %T", ErrChatTemplate, x)
}

func (ev *evaluator) evalArgs(args []expr, kw []kwArg, sc *scope) ([]any, []kwVal, error) {
	var av []any
	for _, a := range args {
		v, err := ev.eval(a, sc)
		if err != nil {
			return nil, nil, err
		}
		av = append(av, v)
	}
	var kv []kwVal
	for _, k := range kw {
		v, err := ev.eval(k.x, sc)
		if err != nil {
			return nil, nil, err
		}
		kv = append(kv, kwVal{k.name, v})
	}
	return av, kv, nil
}

func (ev *evaluator) evalSlice(x sliceExpr, sc *scope) (any, error) {
	v, err := ev.eval(x.x, sc)
	if err != nil {
		return nil, err
	}
	if err := ev.charge(x.pos, v, v); err != nil { // the operand and, at most, a result as large
		return nil, err
	}
	var bounds [3]*int64
	for i, e := range []expr{x.lo, x.hi, x.step} {
		if e == nil {
			continue
		}
		b, err := ev.eval(e, sc)
		if err != nil {
			return nil, err
		}
		if b == nil {
			continue
		}
		n, ok := toInt(b)
		if !ok {
			return nil, errf(x.pos, "slice indices must be integers, not %s", typeName(b))
		}
		bounds[i] = &n
	}
	step := int64(1)
	if bounds[2] != nil {
		step = *bounds[2]
		if step == 0 {
			return nil, errf(x.pos, "slice step cannot be zero")
		}
	}
	switch v := v.(type) {
	case []any:
		idx := sliceIndices(int64(len(v)), bounds[0], bounds[1], step)
		out := make([]any, 0, len(idx))
		for _, i := range idx {
			out = append(out, v[i])
		}
		return out, nil
	case string:
		rs := []rune(v)
		idx := sliceIndices(int64(len(rs)), bounds[0], bounds[1], step)
		out := make([]rune, 0, len(idx))
		for _, i := range idx {
			out = append(out, rs[i])
		}
		return string(out), nil
	case undefined:
		return nil, errf(x.pos, "%s is undefined", undefName(v))
	}
	return nil, errf(x.pos, "%s cannot be sliced", typeName(v))
}

// sliceIndices returns the indices of a Python slice of a sequence of n.
func sliceIndices(n int64, lo, hi *int64, step int64) []int64 {
	clamp := func(p *int64, def, low, high int64) int64 {
		if p == nil {
			return def
		}
		i := *p
		if i < 0 {
			i += n
		}
		return max(low, min(i, high))
	}
	var out []int64
	if step > 0 {
		start, stop := clamp(lo, 0, 0, n), clamp(hi, n, 0, n)
		for i := start; i < stop; i += step {
			out = append(out, i)
		}
	} else {
		start, stop := clamp(lo, n-1, -1, n-1), clamp(hi, -1, -1, n-1)
		for i := start; i > stop; i += step {
			out = append(out, i)
		}
	}
	return out
}

func (ev *evaluator) evalCall(x callExpr, sc *scope) (any, error) {
	fn, err := ev.eval(x.fn, sc)
	if err != nil {
		return nil, err
	}
	args, kw, err := ev.evalArgs(x.args, x.kw, sc)
	if err != nil {
		return nil, err
	}
	switch f := fn.(type) {
	case builtinFunc:
		return f(ev, args, kw)
	case *macro:
		return ev.callMacro(f, args, kw, x.pos)
	case boundMethod:
		if err := ev.charge(x.pos, append(args, f.recv)...); err != nil {
			return nil, err
		}
		r, err := ev.callMethod(f, args, kw, x.pos)
		if err != nil {
			return nil, err
		}
		return r, ev.charge(x.pos, r)
	case undefined:
		return nil, errf(x.pos, "%s is undefined and cannot be called", undefName(f))
	}
	return nil, errf(x.pos, "%s is not callable", typeName(fn))
}

func (ev *evaluator) callMacro(m *macro, args []any, kw []kwVal, pos int) (any, error) {
	n := m.n
	if len(args) > len(n.params) {
		return nil, errf(pos, "macro %s takes %d arguments, %d given", n.name, len(n.params), len(args))
	}
	ev.depth++
	defer func() { ev.depth-- }()
	if ev.depth > chatMaxCallDepth {
		return nil, errf(pos, "macro calls nested deeper than %d", chatMaxCallDepth)
	}
	ms := &scope{parent: m.scope}
	for i, p := range n.params {
		switch {
		case i < len(args):
			ms.set(p, args[i])
		case n.defaults[i] != nil:
			v, err := ev.eval(n.defaults[i], m.scope)
			if err != nil {
				return nil, err
			}
			ms.set(p, v)
		default:
			ms.set(p, undefined{p})
		}
	}
	for _, k := range kw {
		if !slices.Contains(n.params, k.name) {
			return nil, errf(pos, "macro %s has no parameter %q", n.name, k.name)
		}
		ms.set(k.name, k.v)
	}
	ms.set(n.name, m) // the macro can call itself, bounded by the depth
	s, err := ev.capture(n.body, ms)
	if err == errBreak || err == errContinue {
		return nil, errf(pos, "%v", err)
	}
	return s, err
}

// truthy is Python's bool().
func truthy(v any) bool {
	switch v := v.(type) {
	case nil, undefined:
		return false
	case bool:
		return v
	case int64:
		return v != 0
	case float64:
		return v != 0
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	case *dict:
		return len(v.keys) > 0
	}
	return true
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// toInt returns v as an integer when it is an int or a bool.
func toInt(v any) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, true
	case bool:
		return boolInt(v), true
	}
	return 0, false
}

// toFloat returns v as a float when it is a number or a bool.
func toFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case int64:
		return float64(v), true
	case float64:
		return v, true
	case bool:
		return float64(boolInt(v)), true
	}
	return 0, false
}

func hashable(v any) bool {
	switch v.(type) {
	case nil, bool, int64, float64, string:
		return true
	}
	return false
}

// typeName names the Python type of v, for errors.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "None"
	case undefined:
		return "undefined"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []any:
		return "list"
	case *dict:
		return "dict"
	case *namespace:
		return "namespace"
	case *macro, builtinFunc, boundMethod:
		return "function"
	case *loopInfo:
		return "loop"
	}
	return fmt.Sprintf("%T", v)
}

func undefName(u undefined) string {
	if u.name == "" {
		return "value"
	}
	return fmt.Sprintf("%q", u.name)
}

// getAttr is Jinja's x.name: an attribute (a method) first, then an item.
func getAttr(v any, name string, pos int) (any, error) {
	switch v := v.(type) {
	case undefined:
		return nil, errf(pos, "%s is undefined and has no attribute %q", undefName(v), name)
	case nil:
		return nil, errf(pos, "None has no attribute %q", name)
	case *dict:
		switch name {
		case "items", "keys", "values", "get":
			return boundMethod{v, name}, nil
		}
		if x, ok := v.get(name); ok {
			return x, nil
		}
		return undefined{name}, nil
	case *namespace:
		if x, ok := v.d.get(name); ok {
			return x, nil
		}
		return undefined{name}, nil
	case string:
		if stringMethods[name] {
			return boundMethod{v, name}, nil
		}
	case *loopInfo:
		return v.attr(name), nil
	}
	return undefined{name}, nil
}

// getItem is Jinja's x[idx]: an item first, then an attribute.
func getItem(v any, idx any, pos int) (any, error) {
	switch v := v.(type) {
	case undefined:
		return nil, errf(pos, "%s is undefined and has no item %s", undefName(v), repr(idx))
	case nil:
		return nil, errf(pos, "None has no item %s", repr(idx))
	case []any:
		if i, ok := toInt(idx); ok {
			if i < 0 {
				i += int64(len(v))
			}
			if i >= 0 && i < int64(len(v)) {
				return v[i], nil
			}
			return undefined{}, nil
		}
	case string:
		if i, ok := toInt(idx); ok {
			rs := []rune(v)
			if i < 0 {
				i += int64(len(rs))
			}
			if i >= 0 && i < int64(len(rs)) {
				return string(rs[i]), nil
			}
			return undefined{}, nil
		}
	case *dict:
		if hashable(idx) {
			if x, ok := v.get(idx); ok {
				return x, nil
			}
		}
	}
	if s, ok := idx.(string); ok {
		return getAttr(v, s, pos)
	}
	return undefined{}, nil
}

func (l *loopInfo) attr(name string) any {
	n := int64(len(l.items))
	i := int64(l.i)
	switch name {
	case "index":
		return i + 1
	case "index0":
		return i
	case "revindex":
		return n - i
	case "revindex0":
		return n - i - 1
	case "first":
		return i == 0
	case "last":
		return i == n-1
	case "length":
		return n
	case "depth":
		return int64(1)
	case "depth0":
		return int64(0)
	case "previtem":
		if i > 0 {
			return l.items[i-1]
		}
	case "nextitem":
		if i < n-1 {
			return l.items[i+1]
		}
	case "cycle":
		return boundMethod{l, "cycle"}
	}
	return undefined{name}
}

// binary applies an arithmetic or concatenation operator.
func binary(op string, l, r any, pos int) (any, error) {
	if op == "~" {
		ls, err := str(l, pos)
		if err != nil {
			return nil, err
		}
		rs, err := str(r, pos)
		if err != nil {
			return nil, err
		}
		if err := checkString(pos, len(ls)+len(rs)); err != nil {
			return nil, err
		}
		return ls + rs, nil
	}
	for _, v := range []any{l, r} {
		if u, ok := v.(undefined); ok {
			return nil, errf(pos, "%s is undefined", undefName(u))
		}
	}
	switch op {
	case "+":
		switch lv := l.(type) {
		case string:
			if rv, ok := r.(string); ok {
				if err := checkString(pos, len(lv)+len(rv)); err != nil {
					return nil, err
				}
				return lv + rv, nil
			}
		case []any:
			if rv, ok := r.([]any); ok {
				if err := checkList(pos, len(lv)+len(rv)); err != nil {
					return nil, err
				}
				return slices.Concat(lv, rv), nil
			}
		}
	case "%":
		if s, ok := l.(string); ok {
			args, isTuple := r.([]any)
			if !isTuple {
				args = []any{r}
			}
			return pyFormat(s, args, pos)
		}
	case "*":
		if s, ok := l.(string); ok {
			return repeatString(s, r, pos)
		}
		if s, ok := r.(string); ok {
			return repeatString(s, l, pos)
		}
		if s, ok := l.([]any); ok {
			return repeatList(s, r, pos)
		}
		if s, ok := r.([]any); ok {
			return repeatList(s, l, pos)
		}
	}
	li, lInt := toInt(l)
	ri, rInt := toInt(r)
	if lInt && rInt {
		switch op {
		case "+":
			return li + ri, nil
		case "-":
			return li - ri, nil
		case "*":
			return li * ri, nil
		case "/":
			if ri == 0 {
				return nil, errf(pos, "division by zero")
			}
			return float64(li) / float64(ri), nil
		case "//":
			if ri == 0 {
				return nil, errf(pos, "integer division by zero")
			}
			q := li / ri
			if (li%ri != 0) && ((li < 0) != (ri < 0)) {
				q--
			}
			return q, nil
		case "%":
			if ri == 0 {
				return nil, errf(pos, "integer modulo by zero")
			}
			m := li % ri
			if m != 0 && (m < 0) != (ri < 0) {
				m += ri
			}
			return m, nil
		case "**":
			if ri >= 0 {
				res, base, e := int64(1), li, ri
				for e > 0 {
					if e&1 == 1 {
						res *= base
					}
					base *= base
					e >>= 1
				}
				if f := math.Pow(float64(li), float64(ri)); math.Abs(f) < 1<<62 {
					return res, nil
				}
				return math.Pow(float64(li), float64(ri)), nil
			}
			return math.Pow(float64(li), float64(ri)), nil
		}
	}
	lf, lNum := toFloat(l)
	rf, rNum := toFloat(r)
	if lNum && rNum {
		switch op {
		case "+":
			return lf + rf, nil
		case "-":
			return lf - rf, nil
		case "*":
			return lf * rf, nil
		case "/":
			if rf == 0 {
				return nil, errf(pos, "float division by zero")
			}
			return lf / rf, nil
		case "//":
			if rf == 0 {
				return nil, errf(pos, "float floor division by zero")
			}
			return math.Floor(lf / rf), nil
		case "%":
			if rf == 0 {
				return nil, errf(pos, "float modulo")
			}
			m := math.Mod(lf, rf)
			if m != 0 && (m < 0) != (rf < 0) {
				m += rf
			}
			return m, nil
		case "**":
			return math.Pow(lf, rf), nil
		}
	}
	return nil, errf(pos, "unsupported operand types for %s: %s and %s", op, typeName(l), typeName(r))
}

func repeatString(s string, n any, pos int) (any, error) {
	k, ok := toInt(n)
	if !ok {
		return nil, errf(pos, "can't multiply a string by %s", typeName(n))
	}
	if k <= 0 || s == "" {
		return "", nil
	}
	if k > chatMaxOutput || checkString(pos, len(s)*int(k)) != nil {
		return nil, errf(pos, "template builds a string over %d bytes", chatMaxOutput)
	}
	return strings.Repeat(s, int(k)), nil
}

func repeatList(l []any, n any, pos int) (any, error) {
	k, ok := toInt(n)
	if !ok {
		return nil, errf(pos, "can't multiply a list by %s", typeName(n))
	}
	if k <= 0 || len(l) == 0 {
		return []any{}, nil
	}
	if k > chatMaxList || checkList(pos, len(l)*int(k)) != nil {
		return nil, errf(pos, "template builds a list over %d elements", chatMaxList)
	}
	out := make([]any, 0, len(l)*int(k))
	for range k {
		out = append(out, l...)
	}
	return out, nil
}

// compare applies a comparison or membership operator.
func compare(op string, l, r any, pos int) (bool, error) {
	switch op {
	case "==":
		return equal(l, r), nil
	case "!=":
		return !equal(l, r), nil
	case "in", "not in":
		ok, err := contains(r, l, pos)
		return ok == (op == "in"), err
	}
	c, err := order(l, r, pos)
	if err != nil {
		return false, err
	}
	switch op {
	case "<":
		return c < 0, nil
	case "<=":
		return c <= 0, nil
	case ">":
		return c > 0, nil
	}
	return c >= 0, nil
}

// equal is Python's ==.
func equal(a, b any) bool {
	if af, ok := toFloat(a); ok {
		bf, ok := toFloat(b)
		if !ok {
			return false
		}
		ai, aInt := toInt(a)
		bi, bInt := toInt(b)
		if aInt && bInt {
			return ai == bi
		}
		return af == bf
	}
	switch a := a.(type) {
	case nil:
		return b == nil
	case undefined:
		_, ok := b.(undefined)
		return ok
	case string:
		bs, ok := b.(string)
		return ok && a == bs
	case []any:
		bl, ok := b.([]any)
		if !ok || len(a) != len(bl) {
			return false
		}
		for i := range a {
			if !equal(a[i], bl[i]) {
				return false
			}
		}
		return true
	case *dict:
		bd, ok := b.(*dict)
		if !ok || len(a.keys) != len(bd.keys) {
			return false
		}
		for _, k := range a.keys {
			bv, ok := bd.m[k]
			if !ok || !equal(a.m[k], bv) {
				return false
			}
		}
		return true
	case *namespace:
		return a == b
	case *macro:
		return a == b
	}
	return false
}

// order compares numbers with numbers and strings with strings.
func order(a, b any, pos int) (int, error) {
	if af, ok := toFloat(a); ok {
		if bf, ok := toFloat(b); ok {
			ai, aInt := toInt(a)
			bi, bInt := toInt(b)
			if aInt && bInt {
				return cmpInt(ai, bi), nil
			}
			switch {
			case af < bf:
				return -1, nil
			case af > bf:
				return 1, nil
			}
			return 0, nil
		}
	}
	if as, ok := a.(string); ok {
		if bs, ok := b.(string); ok {
			return strings.Compare(as, bs), nil
		}
	}
	if al, ok := a.([]any); ok {
		if bl, ok := b.([]any); ok {
			for i := 0; i < len(al) && i < len(bl); i++ {
				if equal(al[i], bl[i]) {
					continue
				}
				return order(al[i], bl[i], pos)
			}
			return cmpInt(int64(len(al)), int64(len(bl))), nil
		}
	}
	return 0, errf(pos, "cannot compare %s with %s", typeName(a), typeName(b))
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// contains is Python's "needle in hay".
func contains(hay, needle any, pos int) (bool, error) {
	switch h := hay.(type) {
	case string:
		n, ok := needle.(string)
		if !ok {
			return false, errf(pos, "'in <string>' requires string as left operand, not %s", typeName(needle))
		}
		return strings.Contains(h, n), nil
	case []any:
		for _, x := range h {
			if equal(x, needle) {
				return true, nil
			}
		}
		return false, nil
	case *dict:
		if !hashable(needle) {
			return false, nil
		}
		_, ok := h.get(needle)
		return ok, nil
	case *namespace:
		if !hashable(needle) {
			return false, nil
		}
		_, ok := h.d.get(needle)
		return ok, nil
	case undefined:
		return false, nil
	}
	return false, errf(pos, "argument of type %s is not iterable", typeName(hay))
}

// str is Python's str() as Jinja prints values; undefined prints as "".
func str(v any, pos int) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case undefined:
		return "", nil
	case *macro, builtinFunc, boundMethod, *loopInfo:
		return "", errf(pos, "cannot print a %s", typeName(v))
	}
	s := repr(v)
	if err := checkString(pos, len(s)); err != nil {
		return "", err
	}
	return s, nil
}

// repr is Python's repr(): strings quoted, lists and dicts in brackets.
func repr(v any) string {
	var b strings.Builder
	writeRepr(&b, v, 0)
	return b.String()
}

func writeRepr(b *strings.Builder, v any, depth int) {
	if depth > maxParseDepth || b.Len() > chatMaxOutput {
		b.WriteString("...")
		return
	}
	switch v := v.(type) {
	case nil:
		b.WriteString("None")
	case undefined:
		b.WriteString("")
	case bool:
		if v {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case float64:
		b.WriteString(formatFloat(v))
	case string:
		if depth == 0 {
			b.WriteString(v)
			return
		}
		b.WriteString(pyQuote(v))
	case []any:
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, x, depth+1)
		}
		b.WriteByte(']')
	case *dict:
		b.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, k, depth+1)
			b.WriteString(": ")
			writeRepr(b, v.m[k], depth+1)
		}
		b.WriteByte('}')
	case *namespace:
		b.WriteString("<Namespace ")
		writeRepr(b, v.d, depth+1)
		b.WriteString(">")
	default:
		b.WriteString("<" + typeName(v) + ">")
	}
}

// pyQuote quotes s as Python's repr does: single quotes unless s holds a
// single quote and no double quote.
func pyQuote(s string) string {
	q := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(q):
			b.WriteByte('\\')
			b.WriteByte(q)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r == utf8.RuneError:
			b.WriteString(`\ufffd`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

// formatFloat is Python's repr of a float.
func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exps, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(exps)
	if exp < -4 || exp >= 16 {
		sign := "+"
		if exp < 0 {
			sign, exp = "-", -exp
		}
		return fmt.Sprintf("%se%s%02d", mant, sign, exp)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

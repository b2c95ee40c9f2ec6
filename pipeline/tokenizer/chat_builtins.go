package tokenizer

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// This file holds the global functions, filters, tests and methods that
// chat templates use: Jinja's built-ins and the additions of Hugging Face's
// chat template environment (raise_exception, strftime_now and a tojson
// that neither sorts keys nor escapes HTML).

// maxRange bounds range(), whose result is a list.
const maxRange = 100_000

var globals map[string]builtinFunc

func init() {
	globals = map[string]builtinFunc{
		"range":           builtinRange,
		"namespace":       builtinNamespace,
		"dict":            builtinDict,
		"raise_exception": builtinRaise,
		"strftime_now":    builtinStrftimeNow,
	}
}

// arg returns positional argument i, or keyword name, or def.
func arg(args []any, kw []kwVal, i int, name string, def any) any {
	for _, k := range kw {
		if k.name == name {
			return k.v
		}
	}
	if i >= 0 && i < len(args) {
		return args[i]
	}
	return def
}

func builtinRange(ev *evaluator, args []any, kw []kwVal) (any, error) {
	var start, stop, step int64 = 0, 0, 1
	ints := make([]int64, len(args))
	for i, a := range args {
		n, ok := toInt(a)
		if !ok {
			return nil, errf(0, "range() argument must be an integer, not %s", typeName(a))
		}
		ints[i] = n
	}
	switch len(ints) {
	case 1:
		stop = ints[0]
	case 2:
		start, stop = ints[0], ints[1]
	case 3:
		start, stop, step = ints[0], ints[1], ints[2]
	default:
		return nil, errf(0, "range() takes 1 to 3 arguments, %d given", len(args))
	}
	if step == 0 {
		return nil, errf(0, "range() step must not be zero")
	}
	var out []any
	for i := start; step > 0 && i < stop || step < 0 && i > stop; i += step {
		if len(out) >= maxRange {
			return nil, errf(0, "range() longer than %d", maxRange)
		}
		out = append(out, i)
	}
	if out == nil {
		out = []any{}
	}
	return out, ev.step(0, len(out))
}

func builtinNamespace(_ *evaluator, args []any, kw []kwVal) (any, error) {
	ns := &namespace{d: newDict()}
	for _, a := range args {
		d, ok := a.(*dict)
		if !ok {
			return nil, errf(0, "namespace() takes keyword arguments or a dict")
		}
		for _, k := range d.keys {
			ns.d.set(k, d.m[k])
		}
	}
	for _, k := range kw {
		ns.d.set(k.name, k.v)
	}
	return ns, nil
}

func builtinDict(_ *evaluator, args []any, kw []kwVal) (any, error) {
	d := newDict()
	for _, a := range args {
		src, ok := a.(*dict)
		if !ok {
			return nil, errf(0, "dict() takes keyword arguments or a dict")
		}
		for _, k := range src.keys {
			d.set(k, src.m[k])
		}
	}
	for _, k := range kw {
		d.set(k.name, k.v)
	}
	return d, nil
}

func builtinRaise(_ *evaluator, args []any, _ []kwVal) (any, error) {
	msg := "raise_exception called"
	if len(args) > 0 {
		msg, _ = str(args[0], 0)
	}
	return nil, &ChatTemplateError{Message: msg}
}

func builtinStrftimeNow(ev *evaluator, args []any, _ []kwVal) (any, error) {
	if len(args) != 1 {
		return nil, errf(0, "strftime_now() takes a format")
	}
	f, ok := args[0].(string)
	if !ok {
		return nil, errf(0, "strftime_now() format must be a string")
	}
	return strftime(ev.now, f), nil
}

// strftime formats t with the C directives templates use.
func strftime(t time.Time, f string) string {
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] != '%' || i+1 == len(f) {
			b.WriteByte(f[i])
			continue
		}
		i++
		switch f[i] {
		case 'Y':
			fmt.Fprintf(&b, "%04d", t.Year())
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'e':
			fmt.Fprintf(&b, "%2d", t.Day())
		case '-': // %-d, %-m: no padding (glibc)
			if i+1 < len(f) {
				i++
				switch f[i] {
				case 'd':
					fmt.Fprintf(&b, "%d", t.Day())
				case 'm':
					fmt.Fprintf(&b, "%d", int(t.Month()))
				case 'H':
					fmt.Fprintf(&b, "%d", t.Hour())
				default:
					b.WriteString("%-" + string(f[i]))
				}
			}
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'I':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			fmt.Fprintf(&b, "%02d", h)
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'p':
			if t.Hour() < 12 {
				b.WriteString("AM")
			} else {
				b.WriteString("PM")
			}
		case 'b', 'h':
			b.WriteString(t.Month().String()[:3])
		case 'B':
			b.WriteString(t.Month().String())
		case 'a':
			b.WriteString(t.Weekday().String()[:3])
		case 'A':
			b.WriteString(t.Weekday().String())
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case 'Z':
			z, _ := t.Zone()
			b.WriteString(z)
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(f[i])
		}
	}
	return b.String()
}

// applyFilter applies filter name to v.
func (ev *evaluator) applyFilter(name string, v any, args []any, kw []kwVal, pos int) (any, error) {
	switch name {
	case "default", "d":
		def := arg(args, kw, 0, "default_value", "")
		boolean := truthy(arg(args, kw, 1, "boolean", false))
		if _, ok := v.(undefined); ok || boolean && !truthy(v) {
			return def, nil
		}
		return v, nil
	case "length", "count":
		switch v := v.(type) {
		case string:
			return int64(utf8.RuneCountInString(v)), nil
		case []any:
			return int64(len(v)), nil
		case *dict:
			return int64(len(v.keys)), nil
		case *namespace:
			return int64(len(v.d.keys)), nil
		case undefined:
			return int64(0), nil
		}
		return nil, errf(pos, "object of type %s has no length", typeName(v))
	case "list":
		items, err := iterate(v, pos)
		if err != nil {
			return nil, err
		}
		return append([]any{}, items...), nil
	case "string":
		return str(v, pos)
	case "safe":
		return v, nil
	case "trim":
		s, err := str(v, pos)
		if err != nil {
			return nil, err
		}
		if c, ok := arg(args, kw, 0, "chars", nil).(string); ok {
			return strings.Trim(s, c), nil
		}
		return strings.TrimFunc(s, unicode.IsSpace), nil
	case "upper", "lower", "title", "capitalize":
		s, ok := v.(string)
		if !ok {
			var err error
			if s, err = str(v, pos); err != nil {
				return nil, err
			}
		}
		return caseMethod(name, s), nil
	case "replace":
		s, err := str(v, pos)
		if err != nil {
			return nil, err
		}
		return replace(s, args, pos)
	case "join":
		items, err := iterate(v, pos)
		if err != nil {
			return nil, err
		}
		sep, _ := arg(args, kw, 0, "d", "").(string)
		attr := arg(args, kw, 1, "attribute", nil)
		var b strings.Builder
		for i, it := range items {
			if i > 0 {
				b.WriteString(sep)
			}
			if attr != nil {
				if it, err = getItem(it, attr, pos); err != nil {
					return nil, err
				}
			}
			s, err := str(it, pos)
			if err != nil {
				return nil, err
			}
			b.WriteString(s)
			if err := checkString(pos, b.Len()); err != nil {
				return nil, err
			}
		}
		return b.String(), nil
	case "first", "last":
		items, err := iterate(v, pos)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return undefined{}, nil
		}
		if name == "first" {
			return items[0], nil
		}
		return items[len(items)-1], nil
	case "reverse":
		if s, ok := v.(string); ok {
			rs := []rune(s)
			slices.Reverse(rs)
			return string(rs), nil
		}
		items, err := iterate(v, pos)
		if err != nil {
			return nil, err
		}
		out := slices.Clone(items)
		slices.Reverse(out)
		return out, nil
	case "tojson":
		indent, _ := toInt(arg(args, kw, 0, "indent", nil))
		var b strings.Builder
		if err := writeJSON(&b, v, int(indent), 0, pos); err != nil {
			return nil, err
		}
		return b.String(), nil
	case "int":
		return toIntFilter(v, arg(args, kw, 0, "default", int64(0))), nil
	case "float":
		return toFloatFilter(v, arg(args, kw, 0, "default", 0.0)), nil
	case "abs":
		switch v := v.(type) {
		case int64:
			if v < 0 {
				return -v, nil
			}
			return v, nil
		case float64:
			return math.Abs(v), nil
		case bool:
			return boolInt(v), nil
		}
		return nil, errf(pos, "bad operand type for abs(): %s", typeName(v))
	case "round":
		f, ok := toFloat(v)
		if !ok {
			return nil, errf(pos, "round of %s", typeName(v))
		}
		prec, _ := toInt(arg(args, kw, 0, "precision", int64(0)))
		method, _ := arg(args, kw, 1, "method", "common").(string)
		p := math.Pow(10, float64(prec))
		switch method {
		case "ceil":
			return math.Ceil(f*p) / p, nil
		case "floor":
			return math.Floor(f*p) / p, nil
		}
		return math.Round(f*p) / p, nil
	case "items":
		switch v := v.(type) {
		case *dict:
			return dictItems(v), nil
		case undefined:
			return []any{}, nil
		}
		return nil, errf(pos, "items of %s", typeName(v))
	case "dictsort":
		d, ok := v.(*dict)
		if !ok {
			return nil, errf(pos, "dictsort of %s", typeName(v))
		}
		items := dictItems(d)
		var serr error
		slices.SortStableFunc(items, func(a, b any) int {
			c, err := order(a.([]any)[0], b.([]any)[0], pos)
			if err != nil {
				serr = err
			}
			return c
		})
		return items, serr
	case "sort":
		items, err := iterate(v, pos)
		if err != nil {
			return nil, err
		}
		out := slices.Clone(items)
		rev := truthy(arg(args, kw, 0, "reverse", false))
		attr := arg(args, kw, 2, "attribute", nil)
		var serr error
		key := func(x any) any {
			if attr != nil {
				x, _ = getItem(x, attr, pos)
			}
			return x
		}
		slices.SortStableFunc(out, func(a, b any) int {
			c, err := order(key(a), key(b), pos)
			if err != nil {
				serr = err
			}
			if rev {
				return -c
			}
			return c
		})
		return out, serr
	case "unique":
		items, err := iterate(v, pos)
		if err != nil {
			return nil, err
		}
		var out []any
		for _, it := range items {
			if err := ev.step(pos, 1+len(out)/16); err != nil {
				return nil, err
			}
			if !slices.ContainsFunc(out, func(x any) bool { return equal(x, it) }) {
				out = append(out, it)
			}
		}
		return out, nil
	case "sum":
		items, err := iterate(v, pos)
		if err != nil {
			return nil, err
		}
		attr := arg(args, kw, 0, "attribute", nil)
		var acc any = arg(args, kw, 1, "start", int64(0))
		for _, it := range items {
			if attr != nil {
				if it, err = getItem(it, attr, pos); err != nil {
					return nil, err
				}
			}
			if acc, err = binary("+", acc, it, pos); err != nil {
				return nil, err
			}
			if err := ev.charge(pos, acc); err != nil {
				return nil, err
			}
		}
		return acc, nil
	case "min", "max":
		items, err := iterate(v, pos)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return undefined{}, nil
		}
		best := items[0]
		for _, it := range items[1:] {
			c, err := order(it, best, pos)
			if err != nil {
				return nil, err
			}
			if name == "min" && c < 0 || name == "max" && c > 0 {
				best = it
			}
		}
		return best, nil
	case "escape", "e":
		s, err := str(v, pos)
		if err != nil {
			return nil, err
		}
		return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s), nil
	case "indent":
		s, err := str(v, pos)
		if err != nil {
			return nil, err
		}
		width := arg(args, kw, 0, "width", int64(4))
		first := truthy(arg(args, kw, 1, "first", false))
		blank := truthy(arg(args, kw, 2, "blank", false))
		pad, ok := width.(string)
		if !ok {
			n, _ := toInt(width)
			pad = strings.Repeat(" ", int(max(0, min(n, 1000))))
		}
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			if i == 0 && !first || !blank && strings.TrimSpace(l) == "" {
				continue
			}
			lines[i] = pad + l
		}
		out := strings.Join(lines, "\n")
		return out, checkString(pos, len(out))
	case "format":
		f, err := str(v, pos)
		if err != nil {
			return nil, err
		}
		return pyFormat(f, args, pos)
	case "wordcount":
		s, err := str(v, pos)
		if err != nil {
			return nil, err
		}
		return int64(len(strings.Fields(s))), nil
	case "map":
		items, err := iterate(v, pos)
		if err != nil {
			return nil, err
		}
		out := make([]any, 0, len(items))
		if attr := arg(nil, kw, -1, "attribute", nil); attr != nil {
			def := arg(nil, kw, -1, "default", nil)
			for _, it := range items {
				x, err := getItemPath(it, attr, pos)
				if err != nil {
					return nil, err
				}
				if _, ok := x.(undefined); ok && def != nil {
					x = def
				}
				out = append(out, x)
			}
			return out, nil
		}
		if len(args) == 0 {
			return nil, errf(pos, "map needs a filter name or attribute=")
		}
		fname, ok := args[0].(string)
		if !ok {
			return nil, errf(pos, "map needs a filter name")
		}
		for _, it := range items {
			x, err := ev.applyFilter(fname, it, args[1:], kw, pos)
			if err != nil {
				return nil, err
			}
			if err := ev.charge(pos, it, x); err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	case "select", "reject", "selectattr", "rejectattr":
		items, err := iterate(v, pos)
		if err != nil {
			return nil, err
		}
		byAttr := strings.HasSuffix(name, "attr")
		want := strings.HasPrefix(name, "select")
		rest := args
		var attr any
		if byAttr {
			if len(rest) == 0 {
				return nil, errf(pos, "%s needs an attribute", name)
			}
			attr, rest = rest[0], rest[1:]
		}
		out := []any{}
		for _, it := range items {
			x := it
			if byAttr {
				if x, err = getItemPath(it, attr, pos); err != nil {
					return nil, err
				}
			}
			var ok bool
			if len(rest) == 0 {
				ok = truthy(x)
			} else {
				tname, isStr := rest[0].(string)
				if !isStr {
					return nil, errf(pos, "%s needs a test name", name)
				}
				if ok, err = applyTest(tname, x, rest[1:], pos); err != nil {
					return nil, err
				}
			}
			if ok == want {
				out = append(out, it)
			}
		}
		return out, nil
	}
	return nil, errf(pos, "unknown filter %q", name)
}

// getItemPath looks up a dotted attribute path ("a.b") as Jinja's
// attribute filters do.
func getItemPath(v any, attr any, pos int) (any, error) {
	s, ok := attr.(string)
	if !ok {
		return getItem(v, attr, pos)
	}
	for _, part := range strings.Split(s, ".") {
		if u, ok := v.(undefined); ok {
			return u, nil
		}
		var key any = part
		if n, err := strconv.ParseInt(part, 10, 64); err == nil {
			if _, isList := v.([]any); isList {
				key = n
			}
		}
		var err error
		if v, err = getItem(v, key, pos); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func dictItems(d *dict) []any {
	out := make([]any, len(d.keys))
	for i, k := range d.keys {
		out[i] = []any{k, d.m[k]}
	}
	return out
}

func toIntFilter(v any, def any) any {
	switch v := v.(type) {
	case int64:
		return v
	case bool:
		return boolInt(v)
	case float64:
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			return int64(v)
		}
	case string:
		s := strings.TrimSpace(v)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return int64(f)
		}
	}
	return def
}

func toFloatFilter(v any, def any) any {
	switch v := v.(type) {
	case int64:
		return float64(v)
	case bool:
		return float64(boolInt(v))
	case float64:
		return v
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			return f
		}
	}
	return def
}

// applyTest applies the test of "x is name args".
func applyTest(name string, v any, args []any, pos int) (bool, error) {
	a0 := func() (any, error) {
		if len(args) == 0 {
			return nil, errf(pos, "test %q needs an argument", name)
		}
		return args[0], nil
	}
	switch name {
	case "defined":
		_, u := v.(undefined)
		return !u, nil
	case "undefined":
		_, u := v.(undefined)
		return u, nil
	case "none":
		return v == nil, nil
	case "boolean":
		_, ok := v.(bool)
		return ok, nil
	case "true":
		b, ok := v.(bool)
		return ok && b, nil
	case "false":
		b, ok := v.(bool)
		return ok && !b, nil
	case "integer":
		_, ok := v.(int64)
		return ok, nil
	case "float":
		_, ok := v.(float64)
		return ok, nil
	case "number":
		_, ok := toFloat(v)
		return ok, nil
	case "string":
		_, ok := v.(string)
		return ok, nil
	case "mapping":
		switch v.(type) {
		case *dict, *namespace:
			return true, nil
		}
		return false, nil
	case "iterable":
		switch v.(type) {
		case string, []any, *dict:
			return true, nil
		}
		return false, nil
	case "sequence":
		switch v.(type) {
		case string, []any, *dict:
			return true, nil
		}
		return false, nil
	case "callable":
		switch v.(type) {
		case *macro, builtinFunc, boundMethod:
			return true, nil
		}
		return false, nil
	case "odd", "even":
		n, ok := toInt(v)
		if !ok {
			return false, errf(pos, "test %s of %s", name, typeName(v))
		}
		return (n%2 != 0) == (name == "odd"), nil
	case "divisibleby":
		a, err := a0()
		if err != nil {
			return false, err
		}
		n, ok1 := toInt(v)
		d, ok2 := toInt(a)
		if !ok1 || !ok2 || d == 0 {
			return false, errf(pos, "divisibleby needs non-zero integers")
		}
		return n%d == 0, nil
	case "eq", "equalto", "==", "sameas":
		a, err := a0()
		if err != nil {
			return false, err
		}
		if name == "sameas" {
			switch v.(type) {
			case nil, bool:
				return v == a, nil
			}
		}
		return equal(v, a), nil
	case "ne", "!=":
		a, err := a0()
		if err != nil {
			return false, err
		}
		return !equal(v, a), nil
	case "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=":
		a, err := a0()
		if err != nil {
			return false, err
		}
		c, err := order(v, a, pos)
		if err != nil {
			return false, err
		}
		switch name {
		case "lt", "lessthan", "<":
			return c < 0, nil
		case "le", "<=":
			return c <= 0, nil
		case "gt", "greaterthan", ">":
			return c > 0, nil
		}
		return c >= 0, nil
	case "in":
		a, err := a0()
		if err != nil {
			return false, err
		}
		return contains(a, v, pos)
	case "lower", "upper":
		s, ok := v.(string)
		if !ok {
			return false, nil
		}
		if name == "lower" {
			return s == strings.ToLower(s), nil
		}
		return s == strings.ToUpper(s), nil
	}
	return false, errf(pos, "unknown test %q", name)
}

// stringMethods are the str methods templates may call.
var stringMethods = map[string]bool{
	"strip": true, "lstrip": true, "rstrip": true, "split": true, "rsplit": true, "splitlines": true,
	"startswith": true, "endswith": true, "upper": true, "lower": true, "title": true,
	"capitalize": true, "replace": true, "find": true, "rfind": true, "count": true, "join": true,
	"isdigit": true, "isalpha": true, "isalnum": true, "isspace": true, "isupper": true, "islower": true,
}

func (ev *evaluator) callMethod(m boundMethod, args []any, kw []kwVal, pos int) (any, error) {
	switch r := m.recv.(type) {
	case string:
		return stringMethod(r, m.name, args, kw, pos)
	case *dict:
		switch m.name {
		case "items":
			return dictItems(r), nil
		case "keys":
			return slices.Clone(r.keys), nil
		case "values":
			out := make([]any, len(r.keys))
			for i, k := range r.keys {
				out[i] = r.m[k]
			}
			return out, nil
		case "get":
			if len(args) == 0 {
				return nil, errf(pos, "get() needs a key")
			}
			if hashable(args[0]) {
				if v, ok := r.get(args[0]); ok {
					return v, nil
				}
			}
			return arg(args, kw, 1, "default", nil), nil
		}
	case *loopInfo:
		if len(args) == 0 {
			return nil, errf(pos, "loop.cycle() needs arguments")
		}
		return args[r.i%len(args)], nil
	}
	return nil, errf(pos, "unknown method %s", m.name)
}

func caseMethod(name, s string) string {
	switch name {
	case "upper":
		return strings.ToUpper(s)
	case "lower":
		return strings.ToLower(s)
	case "capitalize":
		if s == "" {
			return s
		}
		r, n := utf8.DecodeRuneInString(s)
		return string(unicode.ToUpper(r)) + strings.ToLower(s[n:])
	}
	// title: upper case after every non-letter, as Python's str.title.
	var b strings.Builder
	prev := false
	for _, r := range s {
		if prev {
			b.WriteRune(unicode.ToLower(r))
		} else {
			b.WriteRune(unicode.ToTitle(r))
		}
		prev = unicode.IsLetter(r)
	}
	return b.String()
}

func replace(s string, args []any, pos int) (any, error) {
	if len(args) < 2 {
		return nil, errf(pos, "replace() needs old and new")
	}
	old, ok1 := args[0].(string)
	nw, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return nil, errf(pos, "replace() arguments must be strings")
	}
	n := -1
	if len(args) > 2 {
		c, ok := toInt(args[2])
		if !ok {
			return nil, errf(pos, "replace() count must be an integer")
		}
		n = int(max(-1, min(c, math.MaxInt32)))
	}
	if old != "" && len(nw) > len(old) {
		if err := checkString(pos, len(s)+strings.Count(s, old)*(len(nw)-len(old))); err != nil {
			return nil, err
		}
	} else if old == "" {
		if err := checkString(pos, len(s)+(utf8.RuneCountInString(s)+1)*len(nw)); err != nil {
			return nil, err
		}
	}
	return strings.Replace(s, old, nw, n), nil
}

func stringMethod(s, name string, args []any, kw []kwVal, pos int) (any, error) {
	strArg := func(i int, key string) (string, bool, error) {
		v := arg(args, kw, i, key, nil)
		if v == nil {
			return "", false, nil
		}
		a, ok := v.(string)
		if !ok {
			return "", false, errf(pos, "%s() argument must be a string, not %s", name, typeName(v))
		}
		return a, true, nil
	}
	switch name {
	case "strip", "lstrip", "rstrip":
		chars, has, err := strArg(0, "chars")
		if err != nil {
			return nil, err
		}
		trim := func(s string) string { return strings.TrimFunc(s, unicode.IsSpace) }
		switch {
		case has && name == "strip":
			trim = func(s string) string { return strings.Trim(s, chars) }
		case has && name == "lstrip":
			trim = func(s string) string { return strings.TrimLeft(s, chars) }
		case has:
			trim = func(s string) string { return strings.TrimRight(s, chars) }
		case name == "lstrip":
			trim = func(s string) string { return strings.TrimLeftFunc(s, unicode.IsSpace) }
		case name == "rstrip":
			trim = func(s string) string { return strings.TrimRightFunc(s, unicode.IsSpace) }
		}
		return trim(s), nil
	case "split", "rsplit":
		sep, has, err := strArg(0, "sep")
		if err != nil {
			return nil, err
		}
		maxsplit := int64(-1)
		if m, ok := toInt(arg(args, kw, 1, "maxsplit", int64(-1))); ok {
			maxsplit = m
		}
		var parts []string
		switch {
		case !has:
			parts = strings.Fields(s)
			if maxsplit >= 0 && int64(len(parts)) > maxsplit+1 {
				// Rejoining loses the original whitespace; rare enough.
				parts = append(parts[:maxsplit], strings.Join(parts[maxsplit:], " "))
			}
		case sep == "":
			return nil, errf(pos, "empty separator")
		case maxsplit < 0:
			parts = strings.Split(s, sep)
		case name == "split":
			parts = strings.SplitN(s, sep, int(min(maxsplit+1, math.MaxInt32)))
		default:
			parts = rsplitN(s, sep, int(min(maxsplit+1, math.MaxInt32)))
		}
		if err := checkList(pos, len(parts)); err != nil {
			return nil, err
		}
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = p
		}
		return out, nil
	case "splitlines":
		lines := strings.FieldsFunc(strings.ReplaceAll(s, "\r\n", "\n"), func(r rune) bool { return r == '\n' || r == '\r' })
		out := make([]any, len(lines))
		for i, l := range lines {
			out[i] = l
		}
		return out, nil
	case "startswith", "endswith":
		if len(args) == 0 {
			return nil, errf(pos, "%s() needs an argument", name)
		}
		var cands []any
		switch a := args[0].(type) {
		case string:
			cands = []any{a}
		case []any:
			cands = a
		default:
			return nil, errf(pos, "%s() argument must be a string or tuple", name)
		}
		for _, c := range cands {
			cs, ok := c.(string)
			if !ok {
				return nil, errf(pos, "%s() argument must be a string or tuple", name)
			}
			if name == "startswith" && strings.HasPrefix(s, cs) || name == "endswith" && strings.HasSuffix(s, cs) {
				return true, nil
			}
		}
		return false, nil
	case "upper", "lower", "title", "capitalize":
		return caseMethod(name, s), nil
	case "replace":
		return replace(s, args, pos)
	case "find", "rfind", "count":
		sub, has, err := strArg(0, "sub")
		if err != nil || !has {
			return nil, errf(pos, "%s() needs a string", name)
		}
		switch name {
		case "find":
			i := strings.Index(s, sub)
			if i < 0 {
				return int64(-1), nil
			}
			return int64(utf8.RuneCountInString(s[:i])), nil
		case "rfind":
			i := strings.LastIndex(s, sub)
			if i < 0 {
				return int64(-1), nil
			}
			return int64(utf8.RuneCountInString(s[:i])), nil
		}
		if sub == "" {
			return int64(utf8.RuneCountInString(s) + 1), nil
		}
		return int64(strings.Count(s, sub)), nil
	case "join":
		if len(args) == 0 {
			return nil, errf(pos, "join() needs an iterable")
		}
		items, err := iterate(args[0], pos)
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		for i, it := range items {
			x, ok := it.(string)
			if !ok {
				return nil, errf(pos, "join() expects strings, found %s", typeName(it))
			}
			if i > 0 {
				b.WriteString(s)
			}
			b.WriteString(x)
			if err := checkString(pos, b.Len()); err != nil {
				return nil, err
			}
		}
		return b.String(), nil
	case "isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower":
		if s == "" {
			return false, nil
		}
		cased := false
		for _, r := range s {
			var ok bool
			switch name {
			case "isdigit":
				ok = unicode.IsDigit(r)
			case "isalpha":
				ok = unicode.IsLetter(r)
			case "isalnum":
				ok = unicode.IsLetter(r) || unicode.IsDigit(r)
			case "isspace":
				ok = unicode.IsSpace(r)
			case "isupper":
				ok = !unicode.IsLower(r)
				cased = cased || unicode.IsUpper(r)
			case "islower":
				ok = !unicode.IsUpper(r)
				cased = cased || unicode.IsLower(r)
			}
			if !ok {
				return false, nil
			}
		}
		if name == "isupper" || name == "islower" {
			return cased, nil
		}
		return true, nil
	}
	return nil, errf(pos, "str has no method %q", name)
}

// rsplitN splits s around its last n-1 occurrences of sep.
func rsplitN(s, sep string, n int) []string {
	var parts []string
	for len(parts) < n-1 {
		i := strings.LastIndex(s, sep)
		if i < 0 {
			break
		}
		parts = append(parts, s[i+len(sep):])
		s = s[:i]
	}
	parts = append(parts, s)
	slices.Reverse(parts)
	return parts
}

// writeJSON writes v as Python's json.dumps(v, ensure_ascii=False,
// indent=indent) does, keys in insertion order: the tojson of Hugging
// Face's chat template environment.
func writeJSON(b *strings.Builder, v any, indent, depth int, pos int) error {
	if depth > maxParseDepth {
		return errf(pos, "tojson: value nested too deeply")
	}
	if err := checkString(pos, b.Len()); err != nil {
		return err
	}
	nl := func(d int) {
		if indent > 0 {
			b.WriteByte('\n')
			b.WriteString(strings.Repeat(" ", indent*d))
		}
	}
	itemSep := ", "
	if indent > 0 {
		itemSep = ","
	}
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if v {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case float64:
		switch {
		case math.IsNaN(v):
			b.WriteString("NaN")
		case math.IsInf(v, 1):
			b.WriteString("Infinity")
		case math.IsInf(v, -1):
			b.WriteString("-Infinity")
		default:
			b.WriteString(formatFloat(v))
		}
	case string:
		writeJSONString(b, v)
	case []any:
		if len(v) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteString(itemSep)
			}
			nl(depth + 1)
			if err := writeJSON(b, x, indent, depth+1, pos); err != nil {
				return err
			}
		}
		nl(depth)
		b.WriteByte(']')
	case *dict, *namespace:
		d, ok := v.(*dict)
		if !ok {
			d = v.(*namespace).d
		}
		if len(d.keys) == 0 {
			b.WriteString("{}")
			return nil
		}
		b.WriteByte('{')
		for i, k := range d.keys {
			if i > 0 {
				b.WriteString(itemSep)
			}
			nl(depth + 1)
			var ks string
			switch k := k.(type) {
			case string:
				ks = k
			case nil:
				ks = "null"
			case bool:
				ks = map[bool]string{true: "true", false: "false"}[k]
			default:
				ks = repr(k)
			}
			writeJSONString(b, ks)
			b.WriteString(": ")
			if err := writeJSON(b, d.m[k], indent, depth+1, pos); err != nil {
				return err
			}
		}
		nl(depth)
		b.WriteByte('}')
	case undefined:
		return errf(pos, "tojson: %s is undefined", undefName(v))
	default:
		return errf(pos, "tojson: %s is not JSON serializable", typeName(v))
	}
	return nil
}

// writeJSONString writes s quoted as json.dumps does with ensure_ascii off.
func writeJSONString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// pyFormat is Python's printf-style "format % args" for the conversions
// templates use: %s, %r, %d, %i, %f (with an optional precision, as in
// %.2f), %x and %%.
func pyFormat(format string, args []any, pos int) (any, error) {
	var b strings.Builder
	next := 0
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		prec := -1
		if i < len(format) && format[i] == '.' {
			j := i + 1
			for j < len(format) && format[j] >= '0' && format[j] <= '9' {
				j++
			}
			p, err := strconv.Atoi(format[i+1 : j])
			if err != nil || p > 100 {
				return nil, errf(pos, "bad precision in format %q", format)
			}
			prec, i = p, j
		}
		if i >= len(format) {
			return nil, errf(pos, "incomplete format %q", format)
		}
		if format[i] == '%' {
			b.WriteByte('%')
			continue
		}
		if next >= len(args) {
			return nil, errf(pos, "not enough arguments for format %q", format)
		}
		a := args[next]
		next++
		switch format[i] {
		case 's':
			sv, err := str(a, pos)
			if err != nil {
				return nil, err
			}
			b.WriteString(sv)
		case 'r':
			if sv, ok := a.(string); ok {
				b.WriteString(pyQuote(sv))
			} else {
				b.WriteString(repr(a))
			}
		case 'd', 'i', 'x':
			f, ok := toFloat(a)
			if !ok {
				return nil, errf(pos, "%%%c format: a number is required, not %s", format[i], typeName(a))
			}
			base := 10
			if format[i] == 'x' {
				base = 16
			}
			b.WriteString(strconv.FormatInt(int64(f), base))
		case 'f':
			f, ok := toFloat(a)
			if !ok {
				return nil, errf(pos, "%%f format: a number is required, not %s", typeName(a))
			}
			if prec < 0 {
				prec = 6
			}
			b.WriteString(strconv.FormatFloat(f, 'f', prec, 64))
		default:
			return nil, errf(pos, "unsupported format character %q", format[i])
		}
		if err := checkString(pos, b.Len()); err != nil {
			return nil, err
		}
	}
	if next < len(args) {
		return nil, errf(pos, "not all arguments converted during string formatting")
	}
	return b.String(), nil
}

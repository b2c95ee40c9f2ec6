package sample

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
)

// numRange is the range of a number or integer schema ("minimum",
// "maximum", "exclusiveMinimum", "exclusiveMaximum"), held by a number's
// recognizer as it is written: a digit is allowed only while the number
// can still end within the range, and the number ends only within it.
//
// The bounds are integers within ±maxBound (an integer schema's are
// rounded inward, so they come inclusive; a number schema's must be
// integers: 0, 1 and 100 are the bounds schemas give, and an integer bound
// decides a decimal from its integer part and whether its fraction is
// nonzero, exactly). A bounded number has no exponent.
//
// It also holds "multipleOf": of an integer, a multiple of the integer
// mult (integers of magnitude up to maxBound, where a schema has no
// maximum); of a number, mult makes it an integer such multiple (written
// without a fraction), and dec a multiple of 10^-dec (0.01 for cents:
// written with at most dec fraction digits). Numbers take no other
// multipleOf.
type numRange struct {
	lo, hi     int64
	hasLo      bool
	hasHi      bool
	loEx, hiEx bool  // the bound itself is excluded
	mult       int64 // a multiple of mult (0: any)
	dec        uint8 // a number with at most dec fraction digits (0: any)
}

// maxBound bounds the magnitude of a range's ends, so that their negations
// and a magnitude past them stay within int64.
const maxBound = 1 << 62

// numRangeOf reads the range keywords of o for a schema of type typ
// ("number" or "integer"); nil when it has none.
func numRangeOf(o ordered, typ string) (*numRange, error) {
	var r numRange
	// Draft 4 (and OpenAPI 3.0) write an exclusive bound as a boolean
	// beside minimum or maximum.
	exclBool := map[string]bool{}
	for _, k := range []string{"exclusiveMinimum", "exclusiveMaximum"} {
		if b, ok := o.get(k); ok {
			if b, ok := b.(bool); ok {
				exclBool[k] = b
			}
		}
	}
	for _, k := range []string{"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"} {
		v, ok := o.get(k)
		if _, isBool := v.(bool); !ok || isBool {
			continue
		}
		num, isNum := v.(json.Number)
		q, isRat := new(big.Rat).SetString(string(num))
		if !isNum || !isRat {
			return nil, fmt.Errorf("%s must be a number", k)
		}
		lower := k == "minimum" || k == "exclusiveMinimum"
		excl := k == "exclusiveMinimum" || k == "exclusiveMaximum" ||
			k == "minimum" && exclBool["exclusiveMinimum"] || k == "maximum" && exclBool["exclusiveMaximum"]
		if !q.IsInt() && typ == "number" {
			return nil, fmt.Errorf("%s %s: a number's bounds must be integers", k, num)
		}
		// An integer's bounds come inclusive: the least (greatest)
		// integer the bound allows.
		n := floor(q)
		if typ == "integer" {
			switch {
			case lower && (excl || !q.IsInt()): // ceil(q), or q+1
				n.Add(n, big.NewInt(1))
			case !lower && excl && q.IsInt(): // q-1
				n.Sub(n, big.NewInt(1))
			}
			excl = false
		}
		if !n.IsInt64() || n.Int64() > maxBound || n.Int64() < -maxBound {
			return nil, fmt.Errorf("%s %s is beyond ±2^62", k, num)
		}
		if lower {
			if r.hasLo && (n.Int64() < r.lo || n.Int64() == r.lo && !excl) {
				continue // the tighter of minimum and exclusiveMinimum
			}
			r.lo, r.hasLo, r.loEx = n.Int64(), true, excl
		} else {
			if r.hasHi && (n.Int64() > r.hi || n.Int64() == r.hi && !excl) {
				continue
			}
			r.hi, r.hasHi, r.hiEx = n.Int64(), true, excl
		}
	}
	if err := r.multipleOf(o, typ); err != nil {
		return nil, err
	}
	if !r.hasLo && !r.hasHi && r.mult == 0 && r.dec == 0 {
		return nil, nil
	}
	if r.hasLo && r.hasHi && (r.lo > r.hi || r.lo == r.hi && (r.loEx || r.hiEx)) {
		return nil, fmt.Errorf("no %s lies within its minimum and maximum", typ)
	}
	return &r, nil
}

// multipleOf reads o's "multipleOf" into r.
func (r *numRange) multipleOf(o ordered, typ string) error {
	v, ok := o.get("multipleOf")
	if !ok {
		return nil
	}
	num, _ := v.(json.Number)
	q, ok := new(big.Rat).SetString(string(num))
	if !ok || q.Sign() <= 0 {
		return fmt.Errorf("multipleOf must be a number above 0")
	}
	m := q.Num() // an integer is a multiple of a/b (in lowest terms) exactly where a divides it
	switch {
	case typ == "number" && !q.IsInt():
		// 10^-k: at most k fraction digits.
		for k := uint8(1); k <= MaxFracDigits; k++ {
			if q.Cmp(new(big.Rat).SetFrac(big.NewInt(1), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(k)), nil))) == 0 {
				r.dec = k
				return nil
			}
		}
		return fmt.Errorf("multipleOf %s: a number's must be an integer or a power of ten (0.1, 0.01, ...)", num)
	case !m.IsInt64() || m.Int64() > maxBound:
		return fmt.Errorf("multipleOf %s is beyond 2^62", num)
	case m.Int64() > 1 || typ == "number":
		r.mult = m.Int64()
	}
	return nil
}

// hasMultiple reports whether a multiple of m lies within [lo, hi].
func hasMultiple(m, lo, hi int64) bool {
	if lo > hi {
		return false
	}
	first := lo + (m-lo%m)%m // the least multiple at least lo (lo >= 0)
	return first <= hi
}

// floor returns the greatest integer at most q.
func floor(q *big.Rat) *big.Int {
	// Euclidean division by the positive denominator rounds down.
	n, _ := new(big.Int).DivMod(q.Num(), q.Denom(), new(big.Int))
	return n
}

// magEnd is one end of the range of a number's magnitude: n, excluded or
// not; an upper end with n < 0 is none.
type magEnd struct {
	n  int64
	ex bool
}

// magBounds returns the ends a number's magnitude m must keep for the
// number to be in r, given its sign: a <= m <= b (or <, where the end is
// excluded). ok is false when no magnitude of that sign is.
func (r *numRange) magBounds(neg bool) (a, b magEnd, ok bool) {
	a, b = magEnd{0, false}, magEnd{-1, false}
	if !neg { // v = m
		if r.hasLo && (r.lo > 0 || r.lo == 0 && r.loEx) {
			a = magEnd{r.lo, r.loEx}
		}
		if r.hasHi {
			if r.hi < 0 || r.hi == 0 && r.hiEx {
				return a, b, false
			}
			b = magEnd{r.hi, r.hiEx}
		}
		return a, b, true
	}
	// v = -m: v >= lo is m <= -lo, v <= hi is m >= -hi.
	if r.hasLo {
		if r.lo > 0 || r.lo == 0 && r.loEx {
			return a, b, false
		}
		b = magEnd{-r.lo, r.loEx}
	}
	if r.hasHi && (r.hi < 0 || r.hi == 0 && r.hiEx) {
		a = magEnd{-r.hi, r.hiEx}
	}
	return a, b, true
}

// magPoint reports whether the magnitude m itself is within [a, b].
func magPoint(m int64, a, b magEnd) bool {
	return (m > a.n || m == a.n && !a.ex) && (b.n < 0 || m < b.n || m == b.n && !b.ex)
}

// magOpen reports whether some magnitude strictly between m and m+1 is
// within [a, b] (a decimal with integer part m and a nonzero fraction):
// the ends being integers, whether m >= a and m < b.
func magOpen(m int64, a, b magEnd) bool {
	return m >= a.n && (b.n < 0 || m < b.n)
}

// empty reports whether no magnitude (integer, or decimal) is within
// [a, b].
func (a magEnd) empty(b magEnd, integer bool) bool {
	lo, hi := a.span(b, integer)
	return lo > hi
}

// span returns the least and greatest integer parts of the magnitudes
// within [a, b] (hi is maxBound+1 for no upper end): for integers, the
// integers within; for decimals, those of the integers within and of the
// decimals with a nonzero fraction.
func (a magEnd) span(b magEnd, integer bool) (lo, hi int64) {
	in := func(m int64) bool { return magPoint(m, a, b) || !integer && magOpen(m, a, b) }
	lo, hi = a.n, int64(maxBound+1)
	if !in(lo) {
		lo++
	}
	if b.n >= 0 {
		if hi = b.n; !in(hi) {
			hi--
		}
	}
	return lo, hi
}

// satMag is the integer part of a magnitude too great for any bound, to
// which the integer parts written saturate.
const satMag = maxBound + 1

// step records the byte b, which moved f's number to mode f.num, into
// its sign and magnitude, and reports whether the number can still end
// within r.
func (r *numRange) step(f *frame, b byte, integer bool) bool {
	switch {
	case f.num == jDot && r.mult > 0, f.num == jFrac && r.dec > 0 && f.digits > r.dec:
		return false // a number multiple of an integer has no fraction; of 10^-dec, dec digits at most
	case b == '-':
		f.neg = true
	case isDigit(b) && (f.num == jZero || f.num == jInt):
		f.mag = min(mul10(f.mag)+int64(b-'0'), satMag)
	case isDigit(b) && f.num == jFrac:
		f.fracNZ = f.fracNZ || b != '0'
	case f.num == jExp:
		return false
	}
	a, e, ok := r.magBounds(f.neg)
	if !ok {
		return false
	}
	if r.mult > 0 { // integers only, of magnitude up to maxBound
		integer = true
		if e.n < 0 || e.n > maxBound {
			e = magEnd{maxBound, false}
		}
	}
	switch f.num {
	case jMinus: // any magnitude to come; not zero alone, which "0" writes
		if r.mult > 0 {
			lo, hi := a.span(e, true)
			return hasMultiple(r.mult, max(lo, 1), hi)
		}
		return !a.empty(e, integer) && e.n != 0
	case jZero:
		return magPoint(0, a, e) || !integer && magOpen(0, a, e)
	case jDot, jFrac:
		return magOpen(f.mag, a, e) || !f.fracNZ && magPoint(f.mag, a, e)
	}
	// jInt: the integer part is f.mag so far, or in [f.mag*10^j,
	// (f.mag+1)*10^j) with j more digits.
	lo, hi := a.span(e, integer)
	base, width := f.mag, int64(1)
	for j := int(f.digits); base <= hi; j++ {
		top := base + width - 1
		switch {
		case r.mult > 0:
			if top < 0 || top > hi { // < 0: past int64
				top = hi
			}
			if hasMultiple(r.mult, max(base, lo), top) {
				return true
			}
		case top >= lo || top < 0: // < 0: past int64, so past lo
			return true
		}
		if j == MaxIntDigits {
			break
		}
		base, width = mul10(base), mul10(width)
	}
	return false
}

// mul10 is 10x, saturating at satMag.
func mul10(x int64) int64 {
	if x > satMag/10 {
		return satMag
	}
	return x * 10
}

// ends reports whether f's number, whole, is within r.
func (r *numRange) ends(f *frame) bool {
	a, b, ok := r.magBounds(f.neg)
	if !ok {
		return false
	}
	if f.num == jFrac && f.fracNZ {
		return magOpen(f.mag, a, b)
	}
	return magPoint(f.mag, a, b) && (r.mult == 0 || f.mag%r.mult == 0)
}

// write appends r to a schema's shape as an interval: [lo,hi], with ( or
// ) for an end excluded and an end left out for none; nothing for a nil r.
func (r *numRange) write(b *strings.Builder) {
	if r == nil {
		return
	}
	switch {
	case r.mult > 0:
		fmt.Fprintf(b, "*%d", r.mult)
	case r.dec > 0:
		fmt.Fprintf(b, "*1e-%d", r.dec)
	}
	if !r.hasLo && !r.hasHi {
		return
	}
	b.WriteString(map[bool]string{false: "(", true: "["}[r.hasLo && !r.loEx])
	if r.hasLo {
		fmt.Fprint(b, r.lo)
	}
	b.WriteString(",")
	if r.hasHi {
		fmt.Fprint(b, r.hi)
	}
	b.WriteString(map[bool]string{false: ")", true: "]"}[r.hasHi && !r.hiEx])
}

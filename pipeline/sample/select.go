package sample

import (
	"math"
)

// Greedy returns the id of the largest logit, ties going to the lowest id.
// NaN never wins; when every logit is NaN or -Inf it returns the lowest id
// that is not NaN, or 0 when all are NaN. It returns -1 when logits is empty.
func Greedy(logits []float32) int {
	best, id := float32(math.Inf(-1)), -1
	for i, v := range logits {
		if v > best {
			best, id = v, i
		}
	}
	if id >= 0 {
		return id
	}
	for i, v := range logits {
		if v == v {
			return i
		}
	}
	if len(logits) > 0 {
		return 0
	}
	return -1
}

// better reports whether a ranks above b: a higher logit, or the same logit
// and a lower id.
func better(a, b *cand) bool {
	return a.logit > b.logit || a.logit == b.logit && a.id < b.id
}

// worse reports whether a ranks below b.
func worse(a, b *cand) bool { return better(b, a) }

// selectTop appends the k best tokens of logits (0 < k <= len(logits)) to
// dst[:0], which must have a capacity of at least k, and returns them best
// first, NaN counting as -Inf and +Inf as math.MaxFloat32.
func selectTop(dst []cand, logits []float32, k int) []cand {
	h := dst[:0]
	// A heap with the worst of the best k so far at the root. Ids arrive in
	// increasing order, so a newcomer that only ties the root ranks below it.
	for i, v := range logits[:k] {
		if v != v {
			v = float32(math.Inf(-1))
		}
		h = append(h, cand{id: int32(i), logit: min(v, math.MaxFloat32)})
		siftUp(h, len(h)-1, worse)
	}
	for i, v := range logits[k:] {
		if v > h[0].logit { // NaN never passes
			// +Inf counts as math.MaxFloat32, which a root there ties
			// with a lower id.
			if v = min(v, math.MaxFloat32); v > h[0].logit {
				h[0] = cand{id: int32(k + i), logit: v}
				siftDown(h, 0, worse)
			}
		}
	}
	// Heapsort: move the worst to the end until the best is first.
	for end := len(h) - 1; end > 0; end-- {
		h[0], h[end] = h[end], h[0]
		siftDown(h[:end], 0, worse)
	}
	return h
}

// siftUp restores the heap property of h, whose root is the element for
// which first is false against every other, after h[i] was added.
func siftUp[T any](h []T, i int, first func(a, b *T) bool) {
	for i > 0 {
		p := (i - 1) / 2
		if !first(&h[i], &h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

// siftDown restores the heap property of h after h[i] was replaced.
func siftDown[T any](h []T, i int, first func(a, b *T) bool) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		c := l
		if r := l + 1; r < len(h) && first(&h[r], &h[l]) {
			c = r
		}
		if !first(&h[c], &h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// nucleus reorders c so that c[:r] holds the smallest set of its best
// candidates whose w sum to at least target, and returns r; len(c) when the
// whole of c falls short. The set comes back in no particular order. It is a
// quickselect on the running sum, linear on average, so top-p over a large
// vocabulary needs no full sort.
func nucleus(c []cand, target float64) int {
	lo, hi := 0, len(c)
	acc := 0.0 // sum of w over c[:lo], all better than c[lo:hi]; below target
	for hi-lo > 16 {
		j, sum := partition(c[lo:hi], pivot(c[lo:hi]))
		j += lo
		switch {
		case acc+sum >= target: // the better side alone is enough
			hi = j
		case acc+sum+c[j].w >= target:
			return j + 1
		default:
			acc += sum + c[j].w
			lo = j + 1
		}
	}
	for i := lo + 1; i < hi; i++ { // insertion sort, best first
		for j := i; j > lo && better(&c[j], &c[j-1]); j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	for i := lo; i < hi; i++ {
		acc += c[i].w
		if acc >= target {
			return i + 1
		}
	}
	return hi
}

// partition moves the candidates better than c[p] before it and the rest
// after it, and returns its new index and the sum of w before it.
func partition(c []cand, p int) (int, float64) {
	last := len(c) - 1
	c[p], c[last] = c[last], c[p]
	pv := c[last]
	j, sum := 0, 0.0
	for i := range last {
		if better(&c[i], &pv) {
			sum += c[i].w
			c[i], c[j] = c[j], c[i]
			j++
		}
	}
	c[j], c[last] = c[last], c[j]
	return j, sum
}

// pivot returns the index of the median of three elements of c (len(c) >= 3)
// at positions hashed from its length, so that the choice is deterministic
// but no simple input ordering defeats it.
func pivot(c []cand) int {
	n := uint64(len(c))
	x := n * 0x9e3779b97f4a7c15
	pick := func() int {
		x += 0x9e3779b97f4a7c15
		z := (x ^ x>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		return int((z ^ z>>31) % n)
	}
	a, b, d := pick(), pick(), pick()
	if better(&c[b], &c[a]) {
		a, b = b, a
	}
	// Now c[a] ranks above c[b]; the median is b, d or a.
	switch {
	case better(&c[b], &c[d]):
		return b
	case better(&c[a], &c[d]):
		return d
	default:
		return a
	}
}

// Candidate is a token ranked by TopLogprobs.
type Candidate struct {
	ID      int
	Logit   float32 // as given; NaN is reported as -Inf
	Logprob float32 // log-softmax of the logit over the whole vocabulary
}

// TopLogprobs appends to dst[:0] the k tokens with the highest logits,
// highest first, ties going to the lower id, with their log-softmax over all
// of logits computed in float64, and returns the result. It reuses dst's
// array when it has room for k, so a caller that keeps the result across
// calls owns it and pays no allocation. NaN logits count as -Inf. Fewer than
// k come back only when logits is shorter than k.
func TopLogprobs(logits []float32, k int, dst []Candidate) []Candidate {
	dst = dst[:0]
	k = min(k, len(logits))
	if k <= 0 {
		return dst
	}
	maxv := float32(math.Inf(-1))
	for _, v := range logits {
		if v > maxv {
			maxv = v
		}
	}
	// Differences are taken from max, with +Inf as math.MaxFloat32, so that
	// +Inf logits share the probability and the rest get none.
	m := float64(min(maxv, math.MaxFloat32))
	lse := math.Inf(-1) // log of the softmax denominator, relative to m
	if maxv > float32(math.Inf(-1)) {
		z := 0.0
		for _, v := range logits {
			if v > float32(math.Inf(-1)) {
				z += math.Exp(float64(min(v, math.MaxFloat32)) - m)
			}
		}
		lse = math.Log(z)
	}

	worseCandidate := func(a, b *Candidate) bool {
		return a.Logit < b.Logit || a.Logit == b.Logit && a.ID > b.ID
	}
	for i, v := range logits[:k] {
		if v != v {
			v = float32(math.Inf(-1))
		}
		dst = append(dst, Candidate{ID: i, Logit: v})
		siftUp(dst, len(dst)-1, worseCandidate)
	}
	for i, v := range logits[k:] {
		if v > dst[0].Logit {
			dst[0] = Candidate{ID: k + i, Logit: v}
			siftDown(dst, 0, worseCandidate)
		}
	}
	for end := len(dst) - 1; end > 0; end-- {
		dst[0], dst[end] = dst[end], dst[0]
		siftDown(dst[:end], 0, worseCandidate)
	}
	for i := range dst {
		lp := math.Inf(-1)
		if l := dst[i].Logit; l > float32(math.Inf(-1)) {
			lp = float64(min(l, math.MaxFloat32)) - m - lse
		}
		dst[i].Logprob = float32(lp)
	}
	return dst
}

package sample

import (
	"math"
	"math/rand/v2"
)

// pcgStream is the second half of the PCG state; Params.Seed is the first.
const pcgStream = 0x5851f42d4c957f2d

// Sampler draws the next token from a model's logits, applying the chain
// described in the package documentation. It owns a seeded random number
// generator and scratch buffers sized to the vocabulary, so that Sample does
// not allocate once the buffers have grown. A Sampler is not safe for
// concurrent use.
type Sampler struct {
	p Params // as given to New or Reset

	// The parameters made safe to use, whatever Validate thinks of them.
	greedy  bool    // Temperature <= 0 or NaN
	temp    float64 // > 0 when !greedy
	topK    int     // <= 0: off
	topP    float64 // in (0, 1), or 0 for off
	lnMinP  float64 // ln(MinP) in [-Inf, 0]; -Inf is off
	repeat  float32 // > 0 and != 1, or 0 for off
	freq    float32
	pres    float32
	window  int  // ids of history to look at; -1 is all of it
	penalty bool // any penalty on

	rng rand.PCG

	work   []float32 // (vocab) penalised copy of the logits
	counts []int32   // (vocab) occurrences of each id in the window; all 0 between calls
	seen   []int32   // (distinct ids in window) the ids whose count is not 0
	cands  []cand    // (vocab) candidate tokens
}

// cand is a token under consideration.
type cand struct {
	id    int32
	logit float32 // never NaN or +Inf: NaN is -Inf and +Inf is math.MaxFloat32
	w     float64 // unnormalised probability: exp(logit - max), or exp((logit-max)/T) once tempered
}

// New returns a Sampler for p, seeded with p.Seed. It does not validate p;
// call Params.Validate first when p comes from a client.
func New(p Params) *Sampler {
	s := &Sampler{}
	s.Reset(p)
	return s
}

// Reset replaces the Sampler's parameters and reseeds its generator with
// p.Seed, keeping its buffers, so that a pooled Sampler can serve the next
// request without allocating.
func (s *Sampler) Reset(p Params) {
	s.p = p
	s.greedy = !(p.Temperature > 0)
	s.temp = float64(p.Temperature)
	s.topK = p.TopK
	s.topP = 0
	if p.TopP > 0 && p.TopP < 1 {
		s.topP = float64(p.TopP)
	}
	s.lnMinP = math.Inf(-1)
	if p.MinP > 0 {
		s.lnMinP = math.Log(float64(min(p.MinP, 1)))
	}
	s.repeat = 0
	if p.RepeatPenalty > 0 && p.RepeatPenalty != 1 {
		s.repeat = p.RepeatPenalty
	}
	s.freq = zeroNaN(p.FrequencyPenalty)
	s.pres = zeroNaN(p.PresencePenalty)
	switch {
	case p.RepeatLastN == 0:
		s.window = DefaultRepeatLastN
	case p.RepeatLastN < 0:
		s.window = -1
	default:
		s.window = p.RepeatLastN
	}
	s.penalty = s.repeat != 0 || s.freq != 0 || s.pres != 0
	s.rng.Seed(p.Seed, pcgStream)
}

// Params returns the parameters the Sampler was built with.
func (s *Sampler) Params() Params { return s.p }

// Sample returns the next token id given the model's logits, one per
// vocabulary entry, and the history of ids so far, prompt and generated
// (used by the penalties; ids outside the vocabulary are ignored). Neither
// slice is modified or retained. Sample returns -1 only when logits is
// empty.
func (s *Sampler) Sample(logits []float32, history []int) int {
	if len(logits) == 0 {
		return -1
	}
	work := s.adjust(logits, history)
	if s.greedy {
		return Greedy(work)
	}
	c := s.filter(work)
	if len(c) == 0 { // every logit is -Inf or NaN
		return Greedy(work)
	}
	return s.draw(c)
}

// maxRejects is how many of the chain's choices SampleAllowed masks one
// by one before it masks the whole vocabulary at once.
const maxRejects = 16

// SampleAllowed is Sample under a constraint: the token comes from the
// same chain over the logits with the tokens c refuses masked out (as if
// -Inf). It asks c about the chain's choice first, and masks the refused
// choices one at a time, up to maxRejects; then it asks c about the whole
// vocabulary. Top-k and top-p may therefore see a refused token that was
// never drawn. It returns -1 when c allows no token; c nil is Sample.
func (s *Sampler) SampleAllowed(logits []float32, history []int, c Constraint) int {
	if c == nil || len(logits) == 0 {
		return s.Sample(logits, history)
	}
	work := s.adjust(logits, history)
	if &work[0] == &logits[0] { // no penalty: mask a copy
		s.work = append(s.work[:0], logits...)
		work = s.work
	}
	ninf := float32(math.Inf(-1))
	for range maxRejects {
		tok := s.pick(work)
		if tok < 0 || c.Allowed(tok) {
			return tok
		}
		work[tok] = ninf
	}
	for id, v := range work {
		if v > ninf && !c.Allowed(id) {
			work[id] = ninf
		}
	}
	return s.pick(work)
}

// pick is the chain's choice from work, or -1 when every logit is -Inf or
// NaN.
func (s *Sampler) pick(work []float32) int {
	if s.greedy {
		tok := Greedy(work)
		if !(work[tok] > float32(math.Inf(-1))) {
			return -1
		}
		return tok
	}
	c := s.filter(work)
	if len(c) == 0 {
		return -1
	}
	return s.draw(c)
}

// adjust returns logits with the penalties and then the logit biases
// applied: logits itself when neither applies, else a copy in s.work.
func (s *Sampler) adjust(logits []float32, history []int) []float32 {
	work := s.penalise(logits, history)
	if len(s.p.LogitBias) == 0 {
		return work
	}
	if &work[0] == &logits[0] {
		s.work = append(s.work[:0], logits...)
		work = s.work
	}
	for id, b := range s.p.LogitBias {
		switch {
		case uint(id) >= uint(len(work)):
		case b <= -100:
			work[id] = float32(math.Inf(-1))
		default:
			work[id] += b
		}
	}
	return work
}

// penalise returns logits with the penalties applied to the ids in the
// window: logits itself when no penalty applies, else a copy in s.work.
func (s *Sampler) penalise(logits []float32, history []int) []float32 {
	if !s.penalty || len(history) == 0 {
		return logits
	}
	win := history
	if s.window > 0 && len(win) > s.window {
		win = win[len(win)-s.window:]
	}
	n := len(logits)
	if len(s.counts) < n {
		s.counts = make([]int32, n)
	}
	s.seen = s.seen[:0]
	for _, id := range win {
		if uint(id) >= uint(n) {
			continue
		}
		if s.counts[id] == 0 {
			s.seen = append(s.seen, int32(id))
		}
		s.counts[id]++
	}
	if len(s.seen) == 0 {
		return logits
	}
	s.work = grow(s.work, n)
	work := s.work[:n]
	copy(work, logits)
	for _, id := range s.seen {
		work[id] = s.penaltyOf(work[id], s.counts[id])
		s.counts[id] = 0
	}
	return work
}

// penaltyOf returns logit l of a token that occurs count > 0 times in the
// window, penalised: the repeat penalty first, then frequency and presence.
func (s *Sampler) penaltyOf(l float32, count int32) float32 {
	if s.repeat != 0 {
		if l <= 0 {
			l *= s.repeat
		} else {
			l /= s.repeat
		}
	}
	// The conversion rounds the product, so that no platform fuses it into
	// a multiply-add and tokens stay the same across architectures.
	return l - float32(float32(count)*s.freq) - s.pres
}

// filter applies top-k, top-p, min-p and temperature to work and returns the
// surviving candidates, their w tempered; nil when every logit is -Inf or
// NaN. The result lives in s.cands.
func (s *Sampler) filter(work []float32) []cand {
	maxv := float32(math.Inf(-1))
	for _, v := range work {
		if v > maxv {
			maxv = v
		}
	}
	if maxv == float32(math.Inf(-1)) {
		return nil
	}
	maxv = min(maxv, math.MaxFloat32)
	n := len(work)
	s.cands = grow(s.cands, n)

	var c []cand
	tempered := false
	if s.topK > 0 && s.topK < n {
		c = s.topKFilter(work, maxv)
	} else {
		c, tempered = s.fullFilter(work, maxv)
	}
	if !tempered {
		m := float64(maxv)
		for i := range c {
			c[i].w = math.Exp((float64(c[i].logit) - m) / s.temp)
		}
	}
	return c
}

// topKFilter keeps the s.topK best tokens of work, then applies top-p and
// min-p to them. The candidates come back best first with w = exp(logit-max).
func (s *Sampler) topKFilter(work []float32, maxv float32) []cand {
	c := selectTop(s.cands[:0], work, s.topK)
	for len(c) > 1 && c[len(c)-1].logit == float32(math.Inf(-1)) {
		c = c[:len(c)-1]
	}
	m := float64(maxv)
	z := 0.0
	for i := range c {
		c[i].w = math.Exp(float64(c[i].logit) - m)
		z += c[i].w
	}
	r := len(c)
	if s.topP > 0 { // top-p, over the top-k survivors
		target, acc := s.topP*z, 0.0
		for i := range r {
			acc += c[i].w
			if acc >= target {
				r = i + 1
				break
			}
		}
	}
	for r > 1 && float64(c[r-1].logit)-m < s.lnMinP { // min-p: c is sorted, so cut the tail
		r--
	}
	return c[:r]
}

// fullFilter applies min-p and top-p to the whole vocabulary. Without top-p
// the candidates come back in id order with w already tempered (and true);
// with it, in no particular order with w = exp(logit-max) (and false).
func (s *Sampler) fullFilter(work []float32, maxv float32) ([]cand, bool) {
	m := float64(maxv)
	c := s.cands[:0]
	if s.topP == 0 {
		for i, v := range work {
			if !(v > float32(math.Inf(-1))) {
				continue
			}
			d := float64(min(v, math.MaxFloat32)) - m
			if d < s.lnMinP {
				continue
			}
			c = append(c, cand{id: int32(i), logit: min(v, math.MaxFloat32), w: math.Exp(d / s.temp)})
		}
		return c, true
	}
	// Top-p normalises over every token, min-p losers included: min-p keeps
	// a prefix of the ranking, top-p another, and the chain keeps the
	// shorter. So the min-p losers count towards z but need not be
	// candidates.
	z := 0.0
	for _, v := range work {
		if v > float32(math.Inf(-1)) {
			z += math.Exp(float64(min(v, math.MaxFloat32)) - m)
		}
	}
	// Neither need the tokens with w < (1-topP)*z/n: together they weigh
	// less than (1-topP)*z, so the better tokens alone reach the target
	// and the nucleus lies among them. With a model's peaked logits this
	// leaves a few hundred candidates of a vocabulary of 150k.
	cut := max(s.lnMinP, math.Log((1-s.topP)*z/float64(len(work))))
	for i, v := range work {
		if !(v > float32(math.Inf(-1))) {
			continue
		}
		v = min(v, math.MaxFloat32)
		if d := float64(v) - m; d >= cut {
			c = append(c, cand{id: int32(i), logit: v, w: math.Exp(d)})
		}
	}
	return c[:nucleus(c, s.topP*z)], false
}

// draw picks one candidate with probability proportional to its w.
func (s *Sampler) draw(c []cand) int {
	if len(c) == 1 {
		return int(c[0].id)
	}
	sum := 0.0
	for i := range c {
		sum += c[i].w
	}
	u := s.float64() * sum
	last := 0
	for i := range c {
		if c[i].w > 0 {
			u -= c[i].w
			last = i
			if u < 0 {
				return int(c[i].id)
			}
		}
	}
	return int(c[last].id) // rounding left u at or above 0
}

// float64 returns a uniform value in [0, 1).
func (s *Sampler) float64() float64 {
	return float64(s.rng.Uint64()>>11) * 0x1p-53
}

// grow returns buf with a capacity of at least n, reusing it when it has
// one; the contents are not kept.
func grow[T any](buf []T, n int) []T {
	if cap(buf) >= n {
		return buf
	}
	return make([]T, 0, n)
}

// zeroNaN returns v, or 0 when v is NaN.
func zeroNaN(v float32) float32 {
	if v != v {
		return 0
	}
	return v
}

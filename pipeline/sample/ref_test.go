package sample

import (
	"math"
	"slices"
)

// refDist is the plain reference of the sampling chain for valid params:
// copy, penalise, sort the whole vocabulary, cut, temper. It returns the
// final distribution over ids, a single id with probability 1 when greedy.
// ambiguous is true when the top-p cut lies within rounding of its target, so
// that an implementation summing in another order may cut one token off.
// It returns nil when every logit ends up -Inf or NaN.
func refDist(p Params, logits []float32, history []int) (dist map[int]float64, ambiguous bool) {
	n := len(logits)
	l := slices.Clone(logits)

	window := p.RepeatLastN
	switch {
	case window == 0:
		window = DefaultRepeatLastN
	case window < 0:
		window = len(history)
	}
	win := history[max(0, len(history)-window):]
	counts := map[int]int32{}
	for _, id := range win {
		if id >= 0 && id < n {
			counts[id]++
		}
	}
	for id, c := range counts {
		v := l[id]
		if p.RepeatPenalty != 0 && p.RepeatPenalty != 1 {
			if v <= 0 {
				v *= p.RepeatPenalty
			} else {
				v /= p.RepeatPenalty
			}
		}
		l[id] = v - float32(float32(c)*p.FrequencyPenalty) - p.PresencePenalty
	}

	var ids []int
	for i, v := range l {
		switch {
		case v != v:
			l[i] = float32(math.Inf(-1))
		case v > math.MaxFloat32:
			l[i] = math.MaxFloat32
		}
		if l[i] > float32(math.Inf(-1)) {
			ids = append(ids, i)
		}
	}
	if len(ids) == 0 {
		return nil, false
	}
	slices.SortStableFunc(ids, func(a, b int) int {
		switch {
		case l[a] > l[b]:
			return -1
		case l[a] < l[b]:
			return 1
		}
		return 0 // stable: lower id first
	})
	if p.Temperature == 0 {
		return map[int]float64{ids[0]: 1}, false
	}
	if p.TopK > 0 && p.TopK < len(ids) {
		ids = ids[:p.TopK]
	}
	m := float64(l[ids[0]])
	d := func(id int) float64 { return float64(l[id]) - m }
	if p.TopP > 0 && p.TopP < 1 {
		z := 0.0
		for _, id := range ids {
			z += math.Exp(d(id))
		}
		target, acc, prev := float64(p.TopP)*z, 0.0, 0.0
		for i, id := range ids {
			prev = acc
			acc += math.Exp(d(id))
			if acc >= target {
				ambiguous = math.Abs(acc-target) <= 1e-9*z || math.Abs(prev-target) <= 1e-9*z
				ids = ids[:i+1]
				break
			}
		}
	}
	if p.MinP > 0 {
		cut := math.Log(float64(p.MinP))
		for i, id := range ids {
			if d(id) < cut {
				ids = ids[:i]
				break
			}
		}
	}
	dist = map[int]float64{}
	sum := 0.0
	for _, id := range ids {
		w := math.Exp(d(id) / float64(p.Temperature))
		dist[id] = w
		sum += w
	}
	for id := range dist {
		dist[id] /= sum
	}
	return dist, ambiguous
}

// distOf returns the distribution the Sampler would draw from, normalised,
// or a single id when greedy; nil when filter finds nothing.
func distOf(s *Sampler, logits []float32, history []int) map[int]float64 {
	work := s.penalise(logits, history)
	if s.greedy {
		return map[int]float64{Greedy(work): 1}
	}
	c := s.filter(work)
	if len(c) == 0 {
		return nil
	}
	dist := map[int]float64{}
	sum := 0.0
	for _, x := range c {
		dist[int(x.id)] += x.w
		sum += x.w
	}
	for id := range dist {
		dist[id] /= sum
	}
	return dist
}

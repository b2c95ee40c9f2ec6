package sample

import (
	"errors"
	"fmt"
	"math"
)

// ErrInvalidParams is wrapped by every error that [Params.Validate] returns,
// so that callers can answer a client's bad request without matching text.
var ErrInvalidParams = errors.New("invalid sampling parameter")

// DefaultRepeatLastN is the penalty window used when Params.RepeatLastN is 0.
const DefaultRepeatLastN = 64

// Params configures a Sampler. The zero value is greedy decoding with no
// penalties. The error messages of Validate use the wire names given in
// brackets.
type Params struct {
	// Temperature divides the logits of the tokens that survive top-k, top-p
	// and min-p before the draw [temperature]. 0 means greedy decoding:
	// the argmax, ties going to the lowest id.
	Temperature float32
	// TopK keeps the TopK most likely tokens, ties going to the lower id
	// [top_k]. 0 or less is off.
	TopK int
	// TopP keeps the smallest set of the most likely tokens whose
	// probability sums to at least TopP, never fewer than one [top_p].
	// 0 or 1 is off.
	TopP float32
	// MinP keeps the tokens whose probability is at least MinP times that of
	// the most likely token [min_p]. 0 is off.
	MinP float32
	// RepeatPenalty divides positive logits and multiplies the others, for
	// every token in the penalty window, as llama.cpp does
	// [repeat_penalty]. 0 or 1 is off; values in (0, 1) favour repetition.
	RepeatPenalty float32
	// RepeatLastN is how many of the most recent ids of the history the
	// penalties look at [repeat_last_n]. 0 means DefaultRepeatLastN and -1
	// the whole history.
	RepeatLastN int
	// FrequencyPenalty is subtracted from a token's logit once per
	// occurrence in the window, as OpenAI defines it [frequency_penalty].
	FrequencyPenalty float32
	// PresencePenalty is subtracted from the logit of every token that
	// occurs in the window at least once, as OpenAI defines it
	// [presence_penalty].
	PresencePenalty float32
	// Seed seeds the random number generator: the same seed, parameters,
	// logits and history give the same tokens.
	Seed uint64
	// LogitBias is added to the logits of its token ids after the
	// penalties, before the rest of the chain [logit_bias]; -100 bans a
	// token outright. Ids outside the vocabulary are ignored. Values lie
	// in [-100, 100].
	LogitBias map[int]float32
}

// Validate reports the first parameter that is out of range, wrapping
// ErrInvalidParams. NaN is out of every range. A Sampler never panics on
// parameters that fail Validate, but what it does with them is unspecified.
func (p Params) Validate() error {
	switch {
	case !(p.Temperature >= 0) || math.IsInf(float64(p.Temperature), 1):
		return fmt.Errorf("%w: temperature %g must be finite and >= 0", ErrInvalidParams, p.Temperature)
	case !inRange(p.TopP, 0, 1):
		return fmt.Errorf("%w: top_p %g outside [0, 1]", ErrInvalidParams, p.TopP)
	case !inRange(p.MinP, 0, 1):
		return fmt.Errorf("%w: min_p %g outside [0, 1]", ErrInvalidParams, p.MinP)
	case !(p.RepeatPenalty >= 0) || math.IsInf(float64(p.RepeatPenalty), 1):
		return fmt.Errorf("%w: repeat_penalty %g must be finite and >= 0", ErrInvalidParams, p.RepeatPenalty)
	case p.RepeatLastN < -1:
		return fmt.Errorf("%w: repeat_last_n %d must be >= -1", ErrInvalidParams, p.RepeatLastN)
	case !inRange(p.FrequencyPenalty, -2, 2):
		return fmt.Errorf("%w: frequency_penalty %g outside [-2, 2]", ErrInvalidParams, p.FrequencyPenalty)
	case !inRange(p.PresencePenalty, -2, 2):
		return fmt.Errorf("%w: presence_penalty %g outside [-2, 2]", ErrInvalidParams, p.PresencePenalty)
	}
	for id, b := range p.LogitBias {
		if id < 0 || !inRange(b, -100, 100) {
			return fmt.Errorf("%w: logit_bias of token %d: %g; token ids are >= 0 and biases in [-100, 100]", ErrInvalidParams, id, b)
		}
	}
	return nil
}

// inRange reports whether lo <= v <= hi; NaN is never in range.
func inRange(v, lo, hi float32) bool { return v >= lo && v <= hi }

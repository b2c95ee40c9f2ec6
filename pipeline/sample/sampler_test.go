package sample

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

var (
	inf = float32(math.Inf(1))
	nan = float32(math.NaN())
)

// randomLogits returns n logits drawn from N(0, sd²) with a fixed seed.
func randomLogits(n int, sd float64, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	l := make([]float32, n)
	for i := range l {
		l[i] = float32(r.NormFloat64() * sd)
	}
	return l
}

func TestGreedy(t *testing.T) {
	tests := []struct {
		name   string
		logits []float32
		want   int
	}{
		{"empty", nil, -1},
		{"one", []float32{-3}, 0},
		{"max", []float32{1, 5, 2}, 1},
		{"tie goes to lowest id", []float32{1, 5, 2, 5}, 1},
		{"all equal", []float32{7, 7, 7}, 0},
		{"NaN first never wins", []float32{nan, 1, 2}, 2},
		{"NaN last never wins", []float32{1, 2, nan}, 1},
		{"NaN beside -Inf", []float32{nan, -inf, -inf}, 1},
		{"all NaN", []float32{nan, nan}, 0},
		{"all -Inf", []float32{-inf, -inf}, 0},
		{"-Inf loses", []float32{-inf, -1e30}, 1},
		{"+Inf wins", []float32{math.MaxFloat32, inf, inf}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Greedy(tt.logits); got != tt.want {
				t.Errorf("Greedy(%v) = %d, want %d", tt.logits, got, tt.want)
			}
		})
	}
}

func TestSampleDeterministic(t *testing.T) {
	logits := make([]float32, 1000) // uniform: every draw is a fresh chance to differ
	run := func(p Params) []int {
		s := New(p)
		out := make([]int, 100)
		for i := range out {
			out[i] = s.Sample(logits, nil)
		}
		return out
	}
	for _, p := range []Params{
		{Temperature: 1, Seed: 1},
		{Temperature: 0.8, TopK: 500, Seed: 2},
		{Temperature: 1.2, TopP: 0.9, Seed: 3},
		{Temperature: 1, MinP: 0.5, Seed: 4},
	} {
		t.Run(fmt.Sprintf("%+v", p), func(t *testing.T) {
			a, b := run(p), run(p)
			if !slices.Equal(a, b) {
				t.Errorf("same seed gave different tokens:\n%v\n%v", a, b)
			}
			s := New(p)
			s.Sample(logits, nil)
			s.Reset(p)
			if c := s.Sample(logits, nil); c != a[0] {
				t.Errorf("after Reset: got %d, want %d", c, a[0])
			}
			p.Seed++
			if c := run(p); slices.Equal(a, c) {
				t.Errorf("seeds %d and %d gave the same 100 tokens", p.Seed-1, p.Seed)
			}
		})
	}
}

func TestSampleMatchesGreedy(t *testing.T) {
	noTies := randomLogits(5000, 3, 7)
	withTies := []float32{1, 4, 2, 4, 4, -inf, nan, 3}
	tests := []struct {
		name   string
		p      Params
		logits []float32
	}{
		{"temperature 0", Params{}, withTies},
		{"temperature near 0", Params{Temperature: 1e-7, Seed: 1}, noTies},
		{"temperature near 0 after top-k", Params{Temperature: 1e-7, TopK: 50, Seed: 2}, noTies},
		{"temperature near 0 after top-p", Params{Temperature: 1e-7, TopP: 0.95, Seed: 3}, noTies},
		{"top-k 1", Params{Temperature: 1, TopK: 1, Seed: 4}, noTies},
		{"top-k 1 with ties", Params{Temperature: 5, TopK: 1, Seed: 5}, withTies},
		{"top-p tiny", Params{Temperature: 1, TopP: 1e-6, Seed: 6}, noTies},
		{"top-p tiny with ties", Params{Temperature: 2, TopP: 1e-6, Seed: 7}, withTies},
		{"top-p tiny after top-k", Params{Temperature: 2, TopK: 40, TopP: 1e-6, Seed: 8}, noTies},
		{"min-p 1", Params{Temperature: 3, MinP: 1, Seed: 9}, noTies},
		{"min-p high after top-k", Params{Temperature: 3, MinP: 0.999, TopK: 10, Seed: 10}, noTies},
		{"top-k 1 with +Inf ties", Params{Temperature: 1, TopK: 1, Seed: 11}, []float32{1, inf, 1e38, inf}},
		{"top-k 2 with +Inf ties", Params{Temperature: 1, TopK: 2, TopP: 0.01, Seed: 12}, []float32{inf, inf, math.MaxFloat32, inf}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := Greedy(tt.logits)
			s := New(tt.p)
			for range 200 {
				if got := s.Sample(tt.logits, nil); got != want {
					t.Fatalf("Sample = %d, want the greedy %d", got, want)
				}
			}
		})
	}
}

func TestSampleEdgeCases(t *testing.T) {
	tests := []struct {
		name    string
		logits  []float32
		history []int
		allowed []int // ids Sample may return
	}{
		{"empty", nil, nil, []int{-1}},
		{"vocab of 1", []float32{0.5}, []int{0, 0}, []int{0}},
		{"all -Inf", []float32{-inf, -inf, -inf}, nil, []int{0}},
		{"all NaN", []float32{nan, nan}, nil, []int{0}},
		{"NaN and -Inf", []float32{nan, -inf, nan}, nil, []int{1}},
		{"one finite", []float32{-inf, nan, 2, -inf}, nil, []int{2}},
		{"+Inf shares", []float32{1, inf, 1e38, inf}, nil, []int{1, 3}},
		{"all equal", []float32{3, 3, 3}, nil, []int{0, 1, 2}},
		{"history out of range", []float32{1, 2}, []int{-5, 2, 99, 1}, []int{0, 1}},
		{"huge spread", []float32{-math.MaxFloat32, math.MaxFloat32}, nil, []int{1}},
	}
	params := []Params{
		{},
		{Temperature: 1},
		{Temperature: 0.5, TopK: 2},
		{Temperature: 2, TopP: 0.5},
		{Temperature: 1, MinP: 0.1, TopP: 0.9, TopK: 3},
		{Temperature: 1, RepeatPenalty: 1.3, FrequencyPenalty: 2, PresencePenalty: -2, RepeatLastN: -1},
		// Invalid on purpose: Sample must still not panic.
		{Temperature: -1, TopK: -3, TopP: -1, MinP: 7, RepeatPenalty: -2, RepeatLastN: -9},
		{Temperature: nan, TopP: nan, MinP: nan, RepeatPenalty: nan, FrequencyPenalty: nan},
		{Temperature: inf, TopP: 2, PresencePenalty: inf, RepeatPenalty: inf},
	}
	for _, tt := range tests {
		for i, p := range params {
			t.Run(fmt.Sprintf("%s/params%d", tt.name, i), func(t *testing.T) {
				s := New(p)
				for range 20 {
					got := s.Sample(tt.logits, tt.history)
					if p.Validate() == nil && !slices.Contains(tt.allowed, got) {
						t.Fatalf("Sample = %d, want one of %v", got, tt.allowed)
					}
					if len(tt.logits) > 0 && (got < 0 || got >= len(tt.logits)) {
						t.Fatalf("Sample = %d, outside the vocabulary", got)
					}
				}
			})
		}
	}
}

func TestSampleDoesNotModifyInputs(t *testing.T) {
	logits := []float32{1, -2, nan, inf, 0.5, -inf}
	history := []int{0, 1, 2, 3, 1}
	before, hbefore := slices.Clone(logits), slices.Clone(history)
	s := New(Params{Temperature: 1, TopK: 4, TopP: 0.9, MinP: 0.01, RepeatPenalty: 1.5, FrequencyPenalty: 1, PresencePenalty: 1})
	s.Sample(logits, history)
	for i := range logits {
		if math.Float32bits(logits[i]) != math.Float32bits(before[i]) {
			t.Fatalf("logits changed: %v, was %v", logits, before)
		}
	}
	if !slices.Equal(history, hbefore) {
		t.Fatalf("history changed: %v, was %v", history, hbefore)
	}
}

func TestPenalties(t *testing.T) {
	logits := []float32{2, -2, 1, 0.5, 3, 0}
	tests := []struct {
		name    string
		p       Params
		history []int
		want    []float32
	}{
		{"off", Params{}, []int{0, 1}, logits},
		{"repeat penalty 1 is off", Params{RepeatPenalty: 1}, []int{0, 1}, logits},
		{"repeat divides positive, multiplies negative", Params{RepeatPenalty: 2}, []int{0, 1, 5},
			[]float32{1, -4, 1, 0.5, 3, 0}},
		{"repeat below 1 rewards", Params{RepeatPenalty: 0.5}, []int{0, 1},
			[]float32{4, -1, 1, 0.5, 3, 0}},
		{"repeat counts once", Params{RepeatPenalty: 2}, []int{0, 0, 0},
			[]float32{1, -2, 1, 0.5, 3, 0}},
		{"frequency counts", Params{FrequencyPenalty: 0.5}, []int{0, 0, 0, 2},
			[]float32{0.5, -2, 0.5, 0.5, 3, 0}},
		{"negative frequency", Params{FrequencyPenalty: -1}, []int{1, 1},
			[]float32{2, 0, 1, 0.5, 3, 0}},
		{"presence once", Params{PresencePenalty: 0.25}, []int{4, 4, 4, 3},
			[]float32{2, -2, 1, 0.25, 2.75, 0}},
		{"all three", Params{RepeatPenalty: 2, FrequencyPenalty: 0.5, PresencePenalty: 0.25}, []int{0, 1, 0, 2},
			[]float32{-0.25, -4.75, -0.25, 0.5, 3, 0}},
		{"window", Params{FrequencyPenalty: 1, RepeatLastN: 2}, []int{0, 0, 0, 4, 2},
			[]float32{2, -2, 0, 0.5, 2, 0}},
		{"window longer than history", Params{FrequencyPenalty: 1, RepeatLastN: 100}, []int{0, 0},
			[]float32{0, -2, 1, 0.5, 3, 0}},
		{"whole history", Params{PresencePenalty: 1, RepeatLastN: -1}, append(make([]int, 200), 5),
			[]float32{1, -2, 1, 0.5, 3, -1}},
		{"default window is 64", Params{PresencePenalty: 1}, append([]int{4}, make([]int, 64)...),
			[]float32{1, -2, 1, 0.5, 3, 0}},
		{"ids outside the vocabulary", Params{PresencePenalty: 1}, []int{-1, 6, 1 << 40},
			logits},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(tt.p)
			for range 2 { // the second call checks that counts were cleared
				got := s.penalise(logits, tt.history)
				if !slices.Equal(got, tt.want) {
					t.Fatalf("penalised = %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestMinP(t *testing.T) {
	// Probabilities relative to the top: 1, 0.5, 0.25, 0.1, 0.01.
	logits := []float32{0, float32(math.Log(0.5)), float32(math.Log(0.25)), float32(math.Log(0.1)), float32(math.Log(0.01))}
	tests := []struct {
		p    Params
		want []int
	}{
		{Params{Temperature: 1, MinP: 0.3}, []int{0, 1}},
		{Params{Temperature: 1, MinP: 0.2}, []int{0, 1, 2}},
		{Params{Temperature: 1, MinP: 0.05}, []int{0, 1, 2, 3}},
		{Params{Temperature: 1, MinP: 0.2, TopK: 4}, []int{0, 1, 2}},
		{Params{Temperature: 1, MinP: 0.05, TopK: 2}, []int{0, 1}},
		{Params{Temperature: 1, MinP: 0.6, TopK: 3}, []int{0}},
		{Params{Temperature: 5, MinP: 0.2}, []int{0, 1, 2}}, // min-p is applied before temperature
		{Params{Temperature: 1, MinP: 0.2, TopP: 0.99}, []int{0, 1, 2}},
		{Params{Temperature: 1, MinP: 0.05, TopP: 0.55}, []int{0, 1}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%+v", tt.p), func(t *testing.T) {
			dist := distOf(New(tt.p), logits, nil)
			var got []int
			for id := range dist {
				got = append(got, id)
			}
			sort.Ints(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("kept %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTopP(t *testing.T) {
	// Probabilities 0.5, 0.25, 0.125, 0.125.
	ln := func(x float64) float32 { return float32(math.Log(x)) }
	logits := []float32{ln(0.125), ln(0.5), ln(0.25), ln(0.125)}
	tests := []struct {
		topP float32
		topK int
		want []int
	}{
		{0.3, 0, []int{1}},
		{0.6, 0, []int{1, 2}},
		{0.8, 0, []int{0, 1, 2}}, // the tie at 0.125 goes to the lower id
		{0.9, 0, []int{0, 1, 2, 3}},
		{0.6, 2, []int{1}}, // renormalised over the top 2: 2/3, 1/3
		{0.7, 2, []int{1, 2}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("p=%v,k=%d", tt.topP, tt.topK), func(t *testing.T) {
			dist := distOf(New(Params{Temperature: 1, TopP: tt.topP, TopK: tt.topK}), logits, nil)
			var got []int
			for id := range dist {
				got = append(got, id)
			}
			sort.Ints(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("kept %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTopPExactCut checks the top-p cut where running sums hit the target
// exactly: n equal logits give weights of 1, so every sum is exact and the
// kept set must be the ceil(P*n) lowest ids, in whatever order the
// quickselect leaves them.
func TestTopPExactCut(t *testing.T) {
	for _, n := range []int{64, 100, 1000} {
		for _, topP := range []float32{0.5, 0.25, 0.125, 0.75, 0.3} {
			t.Run(fmt.Sprintf("n=%d,p=%v", n, topP), func(t *testing.T) {
				logits := make([]float32, n)
				s := New(Params{Temperature: 1, TopP: topP})
				c := s.filter(logits)
				want := int(math.Ceil(float64(topP) * float64(n)))
				ids := make([]int, len(c))
				for i, x := range c {
					ids[i] = int(x.id)
				}
				sort.Ints(ids)
				if len(ids) != want || ids[len(ids)-1] != want-1 {
					t.Fatalf("kept %d tokens, the last %d; want ids 0..%d", len(ids), ids[len(ids)-1], want-1)
				}
			})
		}
	}
}

// chiSquare returns the chi-square statistic of counts against probabilities
// want over n draws, and its degrees of freedom, merging the bins expected
// to hold fewer than 5 draws into one. A count for an id outside want makes
// it +Inf.
func chiSquare(counts map[int]int, want map[int]float64, n int) (float64, int) {
	for id := range counts {
		if want[id] == 0 {
			return math.Inf(1), 0
		}
	}
	stat, bins := 0.0, 0
	restExp, restObs := 0.0, 0
	for id, p := range want {
		e := p * float64(n)
		if e < 5 {
			restExp += e
			restObs += counts[id]
			continue
		}
		d := float64(counts[id]) - e
		stat += d * d / e
		bins++
	}
	if restExp > 0 {
		d := float64(restObs) - restExp
		stat += d * d / restExp
		bins++
	}
	return stat, bins - 1
}

func TestSampleDistribution(t *testing.T) {
	const draws = 20000
	small := []float32{1, 2, 0.5, -1, 3, 2, 0, 1.5}
	big := randomLogits(2000, 1, 11)
	for i := range 20 { // a head of 20 likely tokens over a long tail
		big[i*97] += 6
	}
	tests := []struct {
		name   string
		p      Params
		logits []float32
	}{
		{"temperature 1", Params{Temperature: 1, Seed: 1}, small},
		{"temperature 0.5", Params{Temperature: 0.5, Seed: 2}, small},
		{"temperature 2 top-k 5", Params{Temperature: 2, TopK: 5, Seed: 3}, small},
		{"top-k top-p", Params{Temperature: 0.7, TopK: 6, TopP: 0.8, Seed: 4}, small},
		{"top-p over a large vocabulary", Params{Temperature: 1.3, TopP: 0.7, Seed: 5}, big},
		{"min-p over a large vocabulary", Params{Temperature: 0.9, MinP: 0.05, Seed: 6}, big},
		{"penalties", Params{Temperature: 1, RepeatPenalty: 1.5, PresencePenalty: 0.5, Seed: 7}, small},
	}
	history := []int{4, 4, 1}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, _ := refDist(tt.p, tt.logits, history)
			s := New(tt.p)
			counts := map[int]int{}
			for range draws {
				counts[s.Sample(tt.logits, history)]++
			}
			stat, df := chiSquare(counts, want, draws)
			// About 4.5 standard deviations above the mean of df; the seed
			// is fixed, so this is a regression bound, not a flaky one.
			if bound := float64(df) + 4.5*math.Sqrt(2*float64(df)) + 5; stat > bound {
				t.Errorf("chi-square %.1f with %d degrees of freedom, above %.1f", stat, df, bound)
			}
		})
	}
}

// TestFilterMatchesReference checks the fast paths (heap top-k, quickselect
// top-p) against the sorting reference on large vocabularies.
func TestFilterMatchesReference(t *testing.T) {
	logits := randomLogits(30000, 2.5, 3)
	logits[17], logits[29999], logits[100] = logits[5], logits[5], nan // ties and a NaN
	history := []int{5, 17, 17, 300, 29999}
	for _, p := range []Params{
		{Temperature: 1},
		{Temperature: 0.7, TopK: 40},
		{Temperature: 1, TopK: 5000},
		{Temperature: 1, TopP: 0.9},
		{Temperature: 1, TopP: 0.999},
		{Temperature: 0.6, TopP: 0.5, MinP: 0.01},
		{Temperature: 1.1, TopK: 200, TopP: 0.95, MinP: 0.001},
		{Temperature: 1, MinP: 0.1, RepeatPenalty: 1.2, FrequencyPenalty: 0.3, PresencePenalty: 0.2},
	} {
		t.Run(fmt.Sprintf("%+v", p), func(t *testing.T) {
			compareDist(t, p, logits, history)
		})
	}
}

// compareDist fails t when the Sampler's distribution differs from refDist's.
func compareDist(t *testing.T, p Params, logits []float32, history []int) {
	t.Helper()
	want, ambiguous := refDist(p, logits, history)
	got := distOf(New(p), logits, history)
	if want == nil {
		if got != nil && p.Temperature > 0 {
			t.Fatalf("reference finds no candidates, Sampler finds %d", len(got))
		}
		return
	}
	if ambiguous && len(got) != len(want) && max(len(got), len(want))-min(len(got), len(want)) == 1 {
		return
	}
	if len(got) != len(want) {
		t.Fatalf("kept %d tokens, reference %d", len(got), len(want))
	}
	for id, pw := range want {
		pg, ok := got[id]
		if !ok {
			t.Fatalf("token %d missing (reference p=%g)", id, pw)
		}
		if math.Abs(pg-pw) > 1e-9+1e-9*pw {
			t.Fatalf("token %d: p=%g, reference %g", id, pg, pw)
		}
	}
}

func FuzzSampleReference(f *testing.F) {
	f.Add([]byte{200, 150, 150, 0, 1, 2, 90}, []byte{1, 1, 2}, uint8(64), uint8(200), uint8(0), uint8(80), int8(3), int8(10), int8(-5), int8(0), uint64(1))
	f.Add([]byte{3, 3, 3, 3}, []byte{}, uint8(1), uint8(0), uint8(255), uint8(0), int8(0), int8(0), int8(0), int8(-1), uint64(2))
	f.Fuzz(func(t *testing.T, lb, hb []byte, temp, topP, minP, rep uint8, topK, freq, pres, lastN int8, seed uint64) {
		logits := make([]float32, len(lb))
		for i, b := range lb {
			switch b {
			case 0:
				logits[i] = nan
			case 1:
				logits[i] = -inf
			case 2:
				logits[i] = inf
			default:
				logits[i] = float32(int(b)-128) / 16
			}
		}
		history := make([]int, len(hb))
		for i, b := range hb {
			history[i] = int(b) - 8 // some outside the vocabulary
		}
		p := Params{
			Temperature:      float32(temp) / 64,
			TopK:             int(topK),
			TopP:             float32(topP) / 255,
			MinP:             float32(minP) / 255,
			RepeatPenalty:    float32(rep) / 64,
			RepeatLastN:      max(int(lastN), -1),
			FrequencyPenalty: float32(freq) / 64,
			PresencePenalty:  float32(pres) / 64,
			Seed:             seed,
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("fuzz params invalid: %v", err)
		}
		compareDist(t, p, logits, history)
		s := New(p)
		got := s.Sample(logits, history)
		if len(logits) > 0 && (got < 0 || got >= len(logits)) {
			t.Fatalf("Sample = %d outside the vocabulary of %d", got, len(logits))
		}
		if want, _ := refDist(p, logits, history); want != nil && want[got] == 0 {
			t.Fatalf("Sample = %d, which the reference gives no chance", got)
		}
	})
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		p       Params
		wantErr bool
	}{
		{"zero value", Params{}, false},
		{"typical", Params{Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, RepeatPenalty: 1.1, RepeatLastN: 64, FrequencyPenalty: 0.5, PresencePenalty: -0.5, Seed: 9}, false},
		{"edges", Params{TopP: 1, MinP: 1, FrequencyPenalty: -2, PresencePenalty: 2, RepeatLastN: -1, TopK: -5}, false},
		{"negative temperature", Params{Temperature: -0.1}, true},
		{"NaN temperature", Params{Temperature: nan}, true},
		{"infinite temperature", Params{Temperature: inf}, true},
		{"top_p below 0", Params{TopP: -0.1}, true},
		{"top_p above 1", Params{TopP: 1.01}, true},
		{"top_p NaN", Params{TopP: nan}, true},
		{"min_p below 0", Params{MinP: -0.5}, true},
		{"min_p above 1", Params{MinP: 2}, true},
		{"negative repeat_penalty", Params{RepeatPenalty: -1}, true},
		{"infinite repeat_penalty", Params{RepeatPenalty: inf}, true},
		{"repeat_last_n below -1", Params{RepeatLastN: -2}, true},
		{"frequency_penalty above 2", Params{FrequencyPenalty: 2.5}, true},
		{"frequency_penalty below -2", Params{FrequencyPenalty: -3}, true},
		{"presence_penalty NaN", Params{PresencePenalty: nan}, true},
		{"presence_penalty above 2", Params{PresencePenalty: 2.01}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidParams) {
				t.Errorf("Validate() = %v, does not wrap ErrInvalidParams", err)
			}
		})
	}
}

func TestSampleAllocs(t *testing.T) {
	logits := randomLogits(32000, 2.5, 5)
	history := make([]int, 300)
	for i := range history {
		history[i] = i * 101 % 32000
	}
	for _, p := range []Params{
		{},
		{RepeatPenalty: 1.1, FrequencyPenalty: 0.1},
		{Temperature: 0.8},
		{Temperature: 0.8, TopK: 40},
		{Temperature: 0.8, TopP: 0.9},
		{Temperature: 0.8, TopK: 40, TopP: 0.9, MinP: 0.05, RepeatPenalty: 1.1, PresencePenalty: 0.5, RepeatLastN: -1},
		{Temperature: 0.8, MinP: 0.05},
	} {
		t.Run(fmt.Sprintf("%+v", p), func(t *testing.T) {
			s := New(p)
			s.Sample(logits, history) // grow the buffers
			if n := testing.AllocsPerRun(20, func() { s.Sample(logits, history) }); n != 0 {
				t.Errorf("%v allocations per Sample, want 0", n)
			}
		})
	}
}

func TestTopLogprobs(t *testing.T) {
	logSoftmax := func(l []float32, id int) float32 {
		m := math.Inf(-1)
		for _, v := range l {
			m = max(m, float64(v))
		}
		z := 0.0
		for _, v := range l {
			z += math.Exp(float64(v) - m)
		}
		return float32(float64(l[id]) - m - math.Log(z))
	}
	plain := []float32{1, 3, -2, 3, 0.5}
	tests := []struct {
		name   string
		logits []float32
		k      int
		want   []Candidate
	}{
		{"top 3 with a tie", plain, 3, []Candidate{
			{1, 3, logSoftmax(plain, 1)}, {3, 3, logSoftmax(plain, 3)}, {0, 1, logSoftmax(plain, 0)}}},
		{"k above vocab", []float32{0, 0}, 5, []Candidate{{0, 0, float32(-math.Ln2)}, {1, 0, float32(-math.Ln2)}}},
		{"k 0", plain, 0, nil},
		{"k negative", plain, -1, nil},
		{"empty", nil, 3, nil},
		{"NaN and -Inf", []float32{nan, -inf, 0}, 3, []Candidate{
			{2, 0, 0}, {0, -inf, -inf}, {1, -inf, -inf}}},
		{"+Inf shares", []float32{inf, 5, inf}, 2, []Candidate{
			{0, inf, float32(-math.Ln2)}, {2, inf, float32(-math.Ln2)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := TopLogprobs(tt.logits, tt.k, nil)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if g.ID != w.ID || g.Logit != w.Logit || math.Abs(float64(g.Logprob-w.Logprob)) > 1e-6 &&
					!(math.IsInf(float64(g.Logprob), -1) && math.IsInf(float64(w.Logprob), -1)) {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}

	t.Run("large vocabulary", func(t *testing.T) {
		l := randomLogits(50000, 3, 9)
		got := TopLogprobs(l, 20, nil)
		ids := make([]int, len(l))
		for i := range ids {
			ids[i] = i
		}
		sort.SliceStable(ids, func(a, b int) bool { return l[ids[a]] > l[ids[b]] })
		for i, c := range got {
			if c.ID != ids[i] || math.Abs(float64(c.Logprob-logSoftmax(l, c.ID))) > 1e-5 {
				t.Fatalf("rank %d: got %+v, want id %d logprob %g", i, c, ids[i], logSoftmax(l, ids[i]))
			}
		}
	})
	t.Run("reuses dst", func(t *testing.T) {
		l := randomLogits(1000, 1, 2)
		dst := make([]Candidate, 0, 10)
		if n := testing.AllocsPerRun(10, func() { dst = TopLogprobs(l, 10, dst) }); n != 0 {
			t.Errorf("%v allocations, want 0", n)
		}
	})
}

// TestLogitBias: a bias moves a token's logit after the penalties, -100
// bans it even from a draw, ids outside the vocabulary are ignored, the
// caller's logits stay as they were, and Validate bounds the biases.
func TestLogitBias(t *testing.T) {
	logits := []float32{1, 3, 2, 0}
	if got := New(Params{LogitBias: map[int]float32{2: 1.5, 9: 50}}).Sample(logits, nil); got != 2 {
		t.Errorf("greedy with +1.5 on token 2: %d, want 2", got)
	}
	if got := New(Params{LogitBias: map[int]float32{1: -100}}).Sample(logits, nil); got != 2 {
		t.Errorf("greedy with the argmax banned: %d, want 2", got)
	}
	// The repeat penalty (1/2 on token 1's 3) comes first: 1.5+1 beats 2.
	if got := New(Params{RepeatPenalty: 2, LogitBias: map[int]float32{1: 1}}).Sample(logits, []int{1}); got != 1 {
		t.Errorf("penalty then bias: %d, want 1", got)
	}
	s := New(Params{Temperature: 5, Seed: 3, LogitBias: map[int]float32{1: -100, 3: -100}})
	for range 500 {
		if got := s.Sample(logits, nil); got == 1 || got == 3 {
			t.Fatalf("drew banned token %d", got)
		}
	}
	if logits[1] != 3 || logits[2] != 2 {
		t.Errorf("the logits changed: %v", logits)
	}
	for _, b := range []map[int]float32{{0: 100.5}, {0: float32(math.NaN())}, {-1: 1}} {
		if err := (Params{LogitBias: b}).Validate(); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("Validate(%v) = %v, want ErrInvalidParams", b, err)
		}
	}
}

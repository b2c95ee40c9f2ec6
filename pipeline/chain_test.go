package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/strata-llm/strata/kernels"
	"github.com/strata-llm/strata/pipeline/wire"
)

// schedule returns the feeds of step step when sequence i (id i+1) feeds
// its prompt at step i, then one token a step, the next of next[i], until
// it has fed steps generated tokens; fed[i] counts its positions. It
// returns nil when every sequence is done. Prefill chunks and decode tokens
// are so mixed in most batches.
func schedule(step int, prompts [][]int, next []int, fed []int, steps int) []feed {
	var feeds []feed
	for i, p := range prompts {
		switch {
		case step < i:
		case step == i:
			feeds = append(feeds, feed{id: uint64(i + 1), tokens: p, open: true, logits: true})
		case fed[i]-len(p) < steps:
			feeds = append(feeds, feed{id: uint64(i + 1), pos: fed[i], tokens: []int{next[i]}, logits: true})
		}
	}
	return feeds
}

func advance(feeds []feed, fed []int) {
	for _, f := range feeds {
		fed[f.id-1] += len(f.tokens)
	}
}

// lockstep feeds the same batches to ref and to every stage of others,
// teacher-forced along ref's greedy tokens, and calls check with each
// sequence's logits from ref and from each other stage.
func lockstep(t *testing.T, prompts [][]int, steps int, ref Stage, others []Stage, check func(o int, seq, step int, want, got []float32)) {
	t.Helper()
	next, fed := make([]int, len(prompts)), make([]int, len(prompts))
	for step := 0; ; step++ {
		feeds := schedule(step, prompts, next, fed, steps)
		if feeds == nil {
			return
		}
		want := forward(t, ref, uint64(step+1), feeds)
		for o, s := range others {
			got := forward(t, s, uint64(step+1), feeds)
			for k, f := range feeds {
				check(o, int(f.id-1), step, want.LogitsRow(k), got.LogitsRow(k))
			}
		}
		for k, f := range feeds {
			next[f.id-1] = argmax(want.LogitsRow(k))
		}
		advance(feeds, fed)
	}
}

// greedyRun decodes every prompt greedily through s, batched as lockstep
// does, and returns the tokens and the top-2 logit gap of every step.
func greedyRun(t *testing.T, s Stage, prompts [][]int, steps int) (tokens [][]int, gaps [][]float32) {
	t.Helper()
	next, fed := make([]int, len(prompts)), make([]int, len(prompts))
	tokens, gaps = make([][]int, len(prompts)), make([][]float32, len(prompts))
	for step := 0; ; step++ {
		feeds := schedule(step, prompts, next, fed, steps)
		if feeds == nil {
			return tokens, gaps
		}
		out := forward(t, s, uint64(step+1), feeds)
		for k, f := range feeds {
			row := out.LogitsRow(k)
			i := int(f.id - 1)
			next[i] = argmax(row)
			tokens[i] = append(tokens[i], next[i])
			gaps[i] = append(gaps[i], topGap(row))
		}
		advance(feeds, fed)
	}
}

func topGap(v []float32) float32 {
	a, b := float32(-1e30), float32(-1e30)
	for _, x := range v {
		switch {
		case x > a:
			a, b = x, a
		case x > b:
			b = x
		}
	}
	return a - b
}

// quick reports whether the numeric sweeps run in their short form: under
// -short, or under the race detector, which slows the pure-Go kernels about
// fifteenfold and is here for the concurrency, not the numbers.
func quick() bool { return testing.Short() || raceEnabled }

// TestChainLossless checks that a chain of Local stages with the lossless
// codec between them gives bit for bit the logits of one stage over every
// layer: for every way of cutting every reference model's layers into
// stages (k = 1 to the layer count), over its reference prompts and a
// greedy continuation, fed in batches that mix prefill chunks and decode
// tokens. The short form takes two splits of stories260K.
func TestChainLossless(t *testing.T) {
	for _, m := range refModels(t) {
		t.Run(m.name, func(t *testing.T) {
			splits := compositions(m.layers)
			steps := 12 // decode steps after each prompt
			if big := load(t, m.f, m.layers-1, m.layers, false).Config().Vocab > 1024; big {
				steps = 4 // the output head dominates: fewer steps
			}
			if quick() {
				if m.name != "stories260K-f32" {
					t.Skip("short form: stories260K-f32 only")
				}
				splits, steps = [][]int{{0, 3, 5}, {0, 1, 2, 3, 4, 5}}, 1
			}
			single := NewLocal(load(t, m.f, 0, m.layers, m.dequant), LocalConfig{})
			var chains []Stage
			var names []string
			for _, b := range splits {
				c, err := NewChain(wire.Lossless, asStages(locals(t, m.f, b, m.dequant, LocalConfig{}))...)
				if err != nil {
					t.Fatal(err)
				}
				chains = append(chains, c)
				names = append(names, fmt.Sprint(b))
			}
			bad := make([]bool, len(chains))
			lockstep(t, m.prompts, steps, single, chains, func(o, seq, step int, want, got []float32) {
				if i := firstBitDiff(want, got); i >= 0 && !bad[o] {
					bad[o] = true
					t.Errorf("split %s, prompt %d, step %d: logit %d is %g, one stage %g", names[o], seq, step, i, got[i], want[i])
				}
			})
			for _, c := range chains {
				if ch := c.(*Chain); len(ch.Stages()) > 1 && ch.HopStats().Frames == 0 {
					t.Errorf("%v: no frames crossed the hops", c)
				}
			}
			t.Logf("%d splits bit-identical to one stage over %d prompts and %d greedy steps", len(chains), len(m.prompts), steps)
		})
	}
}

// codecs are the activation codecs measured by TestChainCodecs.
// Compression is lossless over its dtype, so one compressed codec stands
// for the others.
var codecs = []wire.Codec{
	wire.Lossless, // also wire.Default
	wire.Compact,
	{DType: wire.BF16},
	{DType: wire.Q8},
	{DType: wire.F16, Compression: wire.Zstd, Shuffle: true},
}

// quantizedActivations reports whether m's matrix products round the
// activations to 8-bit blocks, as llama.cpp does for quantized weights:
// there, any change to the activations flips some of those roundings and
// moves the logits by about as much as that rounding does (up to ~0.4 on
// these models), whatever the codec.
func quantizedActivations(m refModel) bool {
	if m.dequant {
		return false
	}
	for _, t := range m.f.Tensors {
		if strings.HasPrefix(t.Name, "blk.") && len(t.Dims) == 2 {
			switch t.Type {
			case kernels.F32, kernels.F16, kernels.BF16:
			default:
				return true
			}
		}
	}
	return false
}

// TestChainCodecs splits every reference model at every layer boundary and
// sends the activations through each codec. It reports the largest logit
// change, teacher-forced along the one-stage greedy tokens, and checks that
// Lossless (the Default codec) changes nothing, and that the Compact (F16)
// codec leaves every greedy continuation unchanged on the models whose
// products take float activations. Where the products round activations to
// 8 bits (quantized weights), it reports the continuations Compact changes
// and only checks
// that each change is at a step whose one-stage top-2 gap is within twice
// the measured logit change. The .dequant-f32 references, which run the
// same files with float products, are left to TestChainLossless.
func TestChainCodecs(t *testing.T) {
	worst := make([]float64, len(codecs))
	for _, m := range refModels(t) {
		t.Run(m.name, func(t *testing.T) {
			if m.dequant {
				t.Skip("same file as the plain reference; see TestChainLossless")
			}
			steps := min(m.steps, 16)
			if quick() {
				if m.name != "stories260K-f32" {
					t.Skip("short form: stories260K-f32 only")
				}
				steps = 2
			}
			single := NewLocal(load(t, m.f, 0, m.layers, m.dequant), LocalConfig{})
			every := make([]int, m.layers+1)
			for i := range every {
				every[i] = i
			}
			var chains []Stage
			for _, c := range codecs {
				ch, err := NewChain(c, asStages(locals(t, m.f, every, m.dequant, LocalConfig{}))...)
				if err != nil {
					t.Fatal(err)
				}
				chains = append(chains, ch)
			}
			delta := make([]float64, len(codecs))
			lockstep(t, m.prompts, steps, single, chains, func(o, _, _ int, want, got []float32) {
				delta[o] = max(delta[o], maxAbsDiff(want, got))
			})
			for o, c := range codecs {
				worst[o] = max(worst[o], delta[o])
				st := chains[o].(*Chain).HopStats()
				t.Logf("codec %-16v max |Δlogit| %.3g, %.0f B/token a hop", c, delta[o], float64(st.Bytes)/float64(st.Rows))
			}
			if delta[0] != 0 {
				t.Errorf("lossless codec moved logits by %g", delta[0])
			}

			// Free-running greedy decoding with the Compact codec, over
			// the references' whole continuations.
			steps = m.steps
			if quick() {
				steps = 4
			}
			want, gaps := greedyRun(t, single, m.prompts, steps)
			got, _ := greedyRun(t, chains[1], m.prompts, steps)
			qa := quantizedActivations(m)
			changed := 0
			for i := range m.prompts {
				j := firstDiff(got[i], want[i])
				if j < 0 {
					continue
				}
				changed++
				msg := fmt.Sprintf("compact codec: prompt %d changes at step %d, where the one-stage top-2 gap is %.4f (max |Δlogit| %.3g)", i, j, gaps[i][j], delta[1])
				switch {
				case !qa:
					t.Error(msg)
				case float64(gaps[i][j]) > 2*delta[1]:
					t.Error(msg + ": not a near-tie")
				default:
					t.Log(msg + ": a near-tie under the 8-bit activation rounding")
				}
			}
			t.Logf("compact codec: %d of %d greedy continuations of %d tokens changed (8-bit activations: %v)", changed, len(m.prompts), steps, qa)
		})
	}
	for o, c := range codecs {
		t.Logf("all reference models, split at every layer: codec %-16v max |Δlogit| %.3g", c, worst[o])
	}
}

// TestChainErrors checks that a failing stage fails the batch with a
// StageError naming it, and that End reaches every stage.
func TestChainErrors(t *testing.T) {
	f := openFile(t, testdataPath(t, stories))
	ls := locals(t, f, []int{0, 2, 5}, false, LocalConfig{})
	c, err := NewChain(wire.Default, asStages(ls)...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewChain(wire.Codec{DType: 9}); err == nil {
		t.Error("NewChain accepted no stages and a bad codec")
	}
	forward(t, c, 1, []feed{{id: 7, tokens: []int{1, 300, 400}, open: true, logits: true}})
	if ls[0].Sessions() != 1 || ls[1].Sessions() != 1 {
		t.Fatalf("sessions %d, %d after one sequence", ls[0].Sessions(), ls[1].Sessions())
	}
	// Layer 2's stage gets a malformed batch: activations of the wrong width.
	bad := &Batch{Seqs: []Seq{{ID: 7, Pos: 3, N: 1}}, X: make([]float32, 3)}
	_, err = ls[1].Forward(context.Background(), bad)
	if !errors.Is(err, ErrBadBatch) {
		t.Errorf("malformed batch: %v", err)
	}
	// A duplicate ID fails the whole batch in the first stage.
	_, err = c.Forward(context.Background(), newBatch(2, []feed{{id: 7, pos: 3, tokens: []int{5}}, {id: 7, pos: 4, tokens: []int{6}}}))
	var se *StageError
	if !errors.As(err, &se) || se.Index != 0 || !errors.Is(err, ErrBadBatch) {
		t.Errorf("duplicate sequence: %v", err)
	}
	if err := c.End(context.Background(), []uint64{7, 8}); err != nil {
		t.Fatal(err)
	}
	if ls[0].Sessions()+ls[1].Sessions() != 0 || ls[0].KVBytes()+ls[1].KVBytes() != 0 {
		t.Errorf("after End: %d, %d sessions, %d, %d bytes", ls[0].Sessions(), ls[1].Sessions(), ls[0].KVBytes(), ls[1].KVBytes())
	}
	if got := c.String(); got != "chain(layers 0-2, layers 2-5)" {
		t.Errorf("String() = %q", got)
	}
	if !slices.Equal(c.Stages(), asStages(ls)) {
		t.Error("Stages() differ")
	}
}

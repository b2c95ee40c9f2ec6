package pipeline

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-llm/strata/internal/testdata"
	"github.com/strata-llm/strata/pipeline/arch"
	"github.com/strata-llm/strata/pipeline/gguf"
)

const stories = "models/stories260K-f32.gguf"

// refModel is a reference model with its prompts: a model file, run with
// dequantized weights for the .dequant-f32 references.
type refModel struct {
	name    string
	f       *gguf.File
	dequant bool
	layers  int
	prompts [][]int
	steps   int // greedy steps recorded
}

// refModels opens the model of every llama.cpp reference.
func refModels(t *testing.T) []refModel {
	t.Helper()
	var ms []refModel
	for _, ref := range testdata.References(t) {
		f := openFile(t, ref.ModelPath(t))
		m := refModel{name: strings.TrimSuffix(filepath.Base(ref.File), ".json"), f: f, dequant: ref.Dequantized()}
		n, _ := f.Uint(f.Architecture() + ".block_count")
		m.layers = int(n)
		for _, c := range ref.Cases {
			if len(c.PromptTokens) > 0 {
				m.prompts = append(m.prompts, c.PromptTokens)
				m.steps = max(m.steps, len(c.GreedyTokens))
			}
		}
		ms = append(ms, m)
	}
	return ms
}

func openFile(t testing.TB, path string) *gguf.File {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// load returns layers [lo, hi) of f (run on the caller's goroutine).
func load(t testing.TB, f *gguf.File, lo, hi int, dequant bool) arch.Model {
	t.Helper()
	m, err := arch.Load(f, lo, hi, arch.Options{DequantizeWeights: dequant})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// locals returns Local stages over f cut at bounds.
func locals(t testing.TB, f *gguf.File, bounds []int, dequant bool, cfg LocalConfig) []*Local {
	t.Helper()
	var ls []*Local
	for i := range len(bounds) - 1 {
		c := cfg
		ls = append(ls, NewLocal(load(t, f, bounds[i], bounds[i+1], dequant), c))
	}
	return ls
}

func asStages(ls []*Local) []Stage {
	var s []Stage
	for _, l := range ls {
		s = append(s, l)
	}
	return s
}

// feed is one sequence's rows in a test batch.
type feed struct {
	id     uint64
	pos    int
	tokens []int
	open   bool
	logits bool
	from   uint64 // with open: the session forked
}

func newBatch(num uint64, feeds []feed) *Batch {
	b := &Batch{Num: num}
	for _, f := range feeds {
		b.AddSeq(Seq{ID: f.id, Pos: f.pos, Logits: f.logits, Open: f.open, From: f.from}, f.tokens)
	}
	return b
}

// forward runs a fresh batch of feeds through s.
func forward(t testing.TB, s Stage, num uint64, feeds []feed) *Batch {
	t.Helper()
	out, err := s.Forward(context.Background(), newBatch(num, feeds))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// maxAbsDiff returns the largest |a[i]-b[i]|.
func maxAbsDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

// firstBitDiff returns the first index where a and b differ in bits, -1
// when they are identical.
func firstBitDiff(a, b []float32) int {
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

// compositions returns every way of cutting layers layers into contiguous
// non-empty ranges, as boundaries from 0 to layers.
func compositions(layers int) [][]int {
	var out [][]int
	for mask := range 1 << (layers - 1) {
		b := []int{0}
		for j := 1; j < layers; j++ {
			if mask&(1<<(j-1)) != 0 {
				b = append(b, j)
			}
		}
		out = append(out, append(b, layers))
	}
	return out
}

func testdataPath(t testing.TB, rel string) string {
	t.Helper()
	return testdata.Path(t, rel)
}

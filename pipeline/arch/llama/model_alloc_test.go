package llama

import (
	"bytes"
	"testing"

	"github.com/strata-llm/strata/kernels"
	"github.com/strata-llm/strata/pipeline/arch"
	"github.com/strata-llm/strata/pipeline/gguf"
)

// TestDecodeAllocs checks that a decode step (embed, forward over every
// layer, logits) allocates nothing once the cache and the scratch have
// grown, for each weight type's kernels (Q4_0 and Q8_0 packed on AVX2).
func TestDecodeAllocs(t *testing.T) {
	pool := kernels.NewPool(2)
	defer pool.Close()
	for _, typ := range []kernels.DType{kernels.F32, kernels.F16, kernels.Q8_0, kernels.Q4_0} {
		t.Run(typ.String(), func(t *testing.T) {
			var buf bytes.Buffer
			spec := SynthSpec{Dim: 256, Layers: 2, Heads: 4, KVHeads: 2, FFN: 768, Vocab: 1024, Context: 512, Type: typ}
			if err := Synth(&buf, spec); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Parse(buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			m, err := Load(f, 0, spec.Layers, arch.Options{Pool: pool})
			if err != nil {
				t.Fatal(err)
			}
			c := m.NewCache()
			x := make([]float32, spec.Dim)        // (dim)
			logits := make([]float32, spec.Vocab) // (vocab)
			seqs := make([]arch.Seq, 1)
			tokens, rows := make([]int, 1), make([]int, 1)
			step := func() {
				tokens[0] = (tokens[0] + 7) % spec.Vocab
				if err := m.Embed(x, tokens); err != nil {
					t.Fatal(err)
				}
				seqs[0] = arch.Seq{Cache: c, Pos: c.Len(), N: 1}
				if err := m.Forward(x, seqs); err != nil {
					t.Fatal(err)
				}
				if err := m.Logits(logits, x, rows); err != nil {
					t.Fatal(err)
				}
			}
			for range 200 { // grow the cache and the scratch
				step()
			}
			// Up to three tries: a kernel worker starved of CPU by other
			// test binaries leaves the callers to take new jobs from the
			// heap until the pool's free list holds as many as its queue
			// (kernels.settledAllocs); a per-token allocation reads nonzero
			// every time.
			a := testing.AllocsPerRun(50, step)
			for try := 1; try < 3 && a != 0; try++ {
				a = testing.AllocsPerRun(50, step)
			}
			if a != 0 {
				t.Errorf("%v allocations per decoded token, want 0", a)
			}
		})
	}
}

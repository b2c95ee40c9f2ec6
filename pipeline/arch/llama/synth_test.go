package llama

import (
	"bytes"
	"testing"

	"github.com/strata-llm/strata/kernels"
	"github.com/strata-llm/strata/pipeline/gguf"
)

// TestSynthFileType checks that a synthetic file names its type in
// llama.cpp's file-type numbering, not as a tensor type number (llama.cpp
// printed a Q8_0 file as Q5_0 when it was).
func TestSynthFileType(t *testing.T) {
	for typ, want := range map[kernels.DType]uint64{kernels.F16: 1, kernels.Q4_0: 2, kernels.Q8_0: 7, kernels.Q6_K: 18} {
		var buf bytes.Buffer
		spec := SynthSpec{Dim: 256, Layers: 1, Heads: 4, KVHeads: 2, FFN: 256, Vocab: 300, Context: 64, Type: typ}
		if err := Synth(&buf, spec); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Parse(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := f.Uint("general.file_type"); !ok || got != want {
			t.Errorf("%v: general.file_type = %d (%v), want %d", typ, got, ok, want)
		}
	}
}

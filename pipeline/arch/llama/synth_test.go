package llama

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/strata-llm/strata/kernels"
	"github.com/strata-llm/strata/pipeline/arch"
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

// TestStreamed checks that a model lists the weights a decoded token
// streams, each matrix once in the order of the forward pass, the head
// last, and that they add up to the file's tensors but the embedding
// table.
func TestStreamed(t *testing.T) {
	var buf bytes.Buffer
	spec := SynthSpec{Dim: 256, Layers: 2, Heads: 4, KVHeads: 2, FFN: 512, Vocab: 300, Context: 64, Type: kernels.Q8_0}
	if err := Synth(&buf, spec); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int{{0, 2}, {0, 1}, {1, 2}} {
		m, err := Load(f, r[0], r[1], arch.Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := m.Streamed()
		want := 7 * (r[1] - r[0])
		if r[1] == spec.Layers {
			want++
		}
		if len(got) != want {
			t.Fatalf("layers %v: %d buffers, want %d", r, len(got), want)
		}
		L := m.Layers[len(m.Layers)-1]
		if d := got[len(m.Layers)*7-1]; &d[0] != &L.Down.Streamed()[0] {
			t.Errorf("layers %v: buffer %d is not the last layer's ffn_down", r, len(m.Layers)*7-1)
		}
		var total, file uint64
		for _, b := range got {
			total += uint64(len(b))
		}
		for _, tn := range f.Tensors {
			if len(tn.Dims) != 2 || tn.Name == "token_embd.weight" {
				continue
			}
			var blk int
			if _, err := fmt.Sscanf(tn.Name, "blk.%d.", &blk); err == nil && (blk < r[0] || blk >= r[1]) {
				continue
			}
			if tn.Name == "output.weight" && r[1] != spec.Layers {
				continue
			}
			file += tn.Size
		}
		if total != file {
			t.Errorf("layers %v: %d bytes streamed, the file's tensors hold %d", r, total, file)
		}
	}
}

package gguf

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/strata-llm/strata/internal/testdata"
	"github.com/strata-llm/strata/kernels"
)

// realFiles returns every GGUF in the shared test data.
func realFiles(t testing.TB) []string {
	t.Helper()
	return append(testdata.Glob(t, "models/*.gguf"), testdata.Glob(t, "tokenizer/*.gguf")...)
}

// TestRealFiles opens every GGUF of the test data, checks what must hold of
// any valid file, and rewrites it through Write: llama.cpp's writers lay
// files out as Write does, so the rewrite must be byte for byte the file.
func TestRealFiles(t *testing.T) {
	for _, path := range realFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := Open(path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer f.Close()
			if f.Version != 3 || f.Alignment != 32 || f.Architecture() == "" {
				t.Errorf("Version %d, Alignment %d, Architecture %q", f.Version, f.Alignment, f.Architecture())
			}
			if tokens, ok := f.Strings("tokenizer.ggml.tokens"); !ok || len(tokens) < 512 {
				t.Errorf("tokenizer.ggml.tokens: %d strings, %v", len(tokens), ok)
			}
			for i := range f.Tensors {
				ti := &f.Tensors[i]
				if data := f.TensorData(ti); uint64(len(data)) != ti.Size || ti.Size == 0 {
					t.Errorf("tensor %q: %d bytes of data, Size %d", ti.Name, len(data), ti.Size)
				}
			}

			var b bytes.Buffer
			if err := Write(&b, f.KV, tensorsOf(f)); err != nil {
				t.Fatalf("Write: %v", err)
			}
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.Bytes(), orig) {
				t.Errorf("rewritten file differs from the original (%d bytes, want %d)", b.Len(), len(orig))
			}
			g, err := Parse(b.Bytes())
			if err != nil {
				t.Fatalf("Parse(rewritten): %v", err)
			}
			if d := diffKVs(g.KV, f.KV); d != "" {
				t.Errorf("rewritten metadata differ: %s", d)
			}
			for i := range f.Tensors {
				a, b := &f.Tensors[i], &g.Tensors[i]
				if a.Name != b.Name || a.Type != b.Type || !slices.Equal(a.Dims, b.Dims) || a.Size != b.Size ||
					!bytes.Equal(f.TensorData(a), g.TensorData(b)) {
					t.Errorf("rewritten tensor %d differs: %+v, want %+v", i, *b, *a)
				}
			}
		})
	}
}

func TestStories260K(t *testing.T) {
	f, err := Open(testdata.Path(t, "models/stories260K-f32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.Architecture(); got != "llama" {
		t.Errorf("architecture %q, want llama", got)
	}
	for key, want := range map[string]uint64{
		"llama.embedding_length":          64,
		"llama.feed_forward_length":       172,
		"llama.block_count":               5,
		"llama.attention.head_count":      8,
		"llama.attention.head_count_kv":   4,
		"llama.context_length":            128,
		"llama.rope.dimension_count":      8,
		"tokenizer.ggml.bos_token_id":     1,
		"tokenizer.ggml.eos_token_id":     2,
		"tokenizer.ggml.unknown_token_id": 0,
	} {
		if got, ok := f.Uint(key); !ok || got != want {
			t.Errorf("%s = %d, %v; want %d", key, got, ok, want)
		}
	}
	if eps, ok := f.Float("llama.attention.layer_norm_rms_epsilon"); !ok || float32(eps) != 1e-5 {
		t.Errorf("rms epsilon = %v, %v", eps, ok)
	}
	if _, ok := f.Get("llama.rope.freq_base"); ok {
		t.Error("llama.rope.freq_base present; the test data says it is absent")
	}

	tokens, ok := f.Strings("tokenizer.ggml.tokens")
	if !ok || len(tokens) != 512 || tokens[0] != "<unk>" || tokens[1] != "<s>" || tokens[3] != "<0x00>" {
		t.Errorf("tokens: %d, %v, first %q", len(tokens), ok, tokens[:min(4, len(tokens))])
	}
	if scores, ok := f.Float32s("tokenizer.ggml.scores"); !ok || len(scores) != 512 {
		t.Errorf("scores: %d, %v", len(scores), ok)
	}
	types, ok := f.Int32s("tokenizer.ggml.token_type")
	if !ok || len(types) != 512 || types[0] != 2 || types[1] != 3 || types[2] != 3 || types[3] != 6 || types[258] != 6 || types[259] != 1 {
		t.Errorf("token types: %d, %v", len(types), ok)
	}

	if len(f.Tensors) != 3+5*9 {
		t.Errorf("%d tensors, want %d", len(f.Tensors), 3+5*9)
	}
	for _, tc := range []struct {
		name string
		dims []uint64
	}{
		{"token_embd.weight", []uint64{64, 512}},
		{"output.weight", []uint64{64, 512}},
		{"output_norm.weight", []uint64{64}},
		{"blk.0.attn_k.weight", []uint64{64, 32}}, // 4 KV heads of 8
		{"blk.4.ffn_down.weight", []uint64{172, 64}},
	} {
		ti, ok := f.Tensor(tc.name)
		if !ok {
			t.Errorf("no tensor %q", tc.name)
			continue
		}
		size := uint64(4)
		for _, n := range tc.dims {
			size *= n
		}
		if ti.Type != kernels.F32 || !slices.Equal(ti.Dims, tc.dims) || ti.Size != size {
			t.Errorf("%s: %s %v size %d, want F32 %v size %d", tc.name, ti.Type, ti.Dims, ti.Size, tc.dims, size)
		}
	}
	// output.weight is a copy of token_embd.weight.
	emb, _ := f.Tensor("token_embd.weight")
	out, _ := f.Tensor("output.weight")
	if !bytes.Equal(f.TensorData(emb), f.TensorData(out)) {
		t.Error("output.weight differs from token_embd.weight")
	}
}

func TestQuantizedFiles(t *testing.T) {
	t.Run("stories260K-q8_0", func(t *testing.T) {
		f, err := Open(testdata.Path(t, "models/stories260K-q8_0.gguf"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for name, want := range map[string]kernels.DType{
			"token_embd.weight":      kernels.Q8_0,
			"blk.0.ffn_down.weight":  kernels.F16, // rows of 172: no whole Q8_0 blocks
			"blk.0.attn_norm.weight": kernels.F32,
		} {
			if ti, ok := f.Tensor(name); !ok || ti.Type != want {
				t.Errorf("%s: %v, want %s", name, ti, want)
			}
		}
		if ti, _ := f.Tensor("token_embd.weight"); ti.Size != 64/32*34*512 {
			t.Errorf("token_embd.weight: %d bytes, want %d", ti.Size, 64/32*34*512)
		}
	})
	t.Run("synth-mixed-quants", func(t *testing.T) {
		f, err := Open(testdata.Path(t, "models/synth-mixed-quants.gguf"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for name, want := range map[string]kernels.DType{
			"token_embd.weight":        kernels.Q4_K,
			"output.weight":            kernels.Q8_0,
			"blk.1.attn_q.weight":      kernels.Q4_0,
			"blk.1.attn_k.weight":      kernels.Q4_1,
			"blk.1.attn_v.weight":      kernels.Q5_0,
			"blk.1.attn_output.weight": kernels.Q5_1,
			"blk.1.ffn_gate.weight":    kernels.Q4_K,
			"blk.1.ffn_up.weight":      kernels.Q5_K,
			"blk.1.ffn_down.weight":    kernels.Q6_K,
			"blk.1.ffn_norm.weight":    kernels.F32,
		} {
			if ti, ok := f.Tensor(name); !ok || ti.Type != want {
				t.Errorf("%s: %v, want %s", name, ti, want)
			}
		}
		count := map[kernels.DType]int{}
		for _, ti := range f.Tensors {
			count[ti.Type]++
		}
		// llama.cpp's own count for this file (models/README.md).
		want := map[kernels.DType]int{kernels.F32: 5, kernels.Q4_0: 2, kernels.Q4_1: 2, kernels.Q5_0: 2,
			kernels.Q5_1: 2, kernels.Q8_0: 1, kernels.Q4_K: 3, kernels.Q5_K: 2, kernels.Q6_K: 2}
		if !maps.Equal(count, want) {
			t.Errorf("tensor types %v, want %v", count, want)
		}
		if ti, _ := f.Tensor("blk.0.ffn_down.weight"); !slices.Equal(ti.Dims, []uint64{512, 256}) || ti.Size != 2*210*256 {
			t.Errorf("ffn_down: %v %d bytes", ti.Dims, ti.Size)
		}
	})
	t.Run("synth-qwen2", func(t *testing.T) {
		f, err := Open(testdata.Path(t, "models/synth-qwen2.gguf"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if f.Architecture() != "qwen2" {
			t.Errorf("architecture %q", f.Architecture())
		}
		if _, ok := f.Tensor("output.weight"); ok {
			t.Error("tied model has output.weight")
		}
		if ti, ok := f.Tensor("token_embd.weight"); !ok || ti.Type != kernels.F16 || !slices.Equal(ti.Dims, []uint64{64, 50257}) {
			t.Errorf("token_embd.weight: %v", ti)
		}
		if merges, ok := f.Strings("tokenizer.ggml.merges"); !ok || len(merges) != 50000 {
			t.Errorf("merges: %d, %v", len(merges), ok)
		}
		if base, ok := f.Float("qwen2.rope.freq_base"); !ok || base != 1e6 {
			t.Errorf("rope base %v, %v", base, ok)
		}
	})
}

// BenchmarkOpen opens and closes the largest test model: the cost of
// mapping it and decoding its header (a 50k-token vocabulary and 50k
// merges), not of reading its tensors.
func BenchmarkOpen(b *testing.B) {
	var path string
	var size int64
	for _, p := range realFiles(b) {
		if st, err := os.Stat(p); err == nil && st.Size() > size {
			path, size = p, st.Size()
		}
	}
	f, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: %d bytes, header %d bytes", filepath.Base(path), size, f.DataOffset)
	b.SetBytes(int64(f.DataOffset)) // the bytes decoded
	f.Close()
	b.ReportAllocs()
	for b.Loop() {
		f, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

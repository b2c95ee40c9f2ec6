package llama

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"

	"github.com/strata-llm/strata/kernels"
	"github.com/strata-llm/strata/pipeline/gguf"
)

// SynthSpec is the shape of a random-weight llama model, for tests and for
// benchmarks at real sizes.
type SynthSpec struct {
	Dim, Layers, Heads, KVHeads, FFN, Vocab int
	Type                                    kernels.DType // 2-D weights (attention, feed-forward, embedding)
	OutputType                              kernels.DType // the output head; 0 (F32) means Type
	Context                                 int           // context_length; 0: 2048
	Seed                                    uint64
}

// Synth writes spec as a GGUF llama model with random weights whose scales
// keep activations O(1), and a byte-fallback SentencePiece vocabulary, so
// the model loads, tokenizes and runs like a real one (its text is
// gibberish). Tensors are generated row by row while they are written: memory
// stays small for multi-GB models.
func Synth(w io.Writer, s SynthSpec) error {
	if s.Dim <= 0 || s.Layers <= 0 || s.Heads <= 0 || s.KVHeads <= 0 || s.FFN <= 0 || s.Vocab < 259 {
		return fmt.Errorf("synth: every size must be positive and the vocabulary at least 259 tokens")
	}
	if s.Dim%s.Heads != 0 || s.Heads%s.KVHeads != 0 {
		return fmt.Errorf("synth: heads %d must divide dim %d and be a multiple of KV heads %d", s.Heads, s.Dim, s.KVHeads)
	}
	if s.OutputType == kernels.F32 {
		s.OutputType = s.Type
	}
	for _, t := range []kernels.DType{s.Type, s.OutputType} {
		if !t.Supported() {
			return fmt.Errorf("synth: tensor type %v is not supported", t)
		}
		for _, cols := range []int{s.Dim, s.FFN} {
			if cols%t.BlockSize() != 0 {
				return fmt.Errorf("synth: rows of %d elements are not whole %v blocks of %d", cols, t, t.BlockSize())
			}
		}
	}
	if s.Context == 0 {
		s.Context = 2048
	}
	headDim := s.Dim / s.Heads
	kvDim := s.KVHeads * headDim
	kvs := []gguf.KV{
		kv("general.architecture", gguf.TypeString, "llama"),
		kv("general.name", gguf.TypeString, fmt.Sprintf("synth-%dx%d", s.Dim, s.Layers)),
		kv("general.file_type", gguf.TypeUint32, fileType(s.Type)),
		kv("llama.context_length", gguf.TypeUint32, uint32(s.Context)),
		kv("llama.embedding_length", gguf.TypeUint32, uint32(s.Dim)),
		kv("llama.block_count", gguf.TypeUint32, uint32(s.Layers)),
		kv("llama.feed_forward_length", gguf.TypeUint32, uint32(s.FFN)),
		kv("llama.attention.head_count", gguf.TypeUint32, uint32(s.Heads)),
		kv("llama.attention.head_count_kv", gguf.TypeUint32, uint32(s.KVHeads)),
		kv("llama.rope.dimension_count", gguf.TypeUint32, uint32(headDim)),
		kv("llama.attention.layer_norm_rms_epsilon", gguf.TypeFloat32, float32(1e-5)),
	}
	kvs = append(kvs, synthVocab(s.Vocab)...)

	seed := s.Seed
	mat := func(name string, t kernels.DType, rows, cols int, std float64) gguf.WriteTensor {
		seed++
		sd := seed
		return gguf.WriteTensor{Name: name, Type: t, Dims: []uint64{uint64(cols), uint64(rows)},
			WriteTo: func(w io.Writer) error { return randomRows(w, t, rows, cols, std, 0, sd) }}
	}
	norm := func(name string, n int) gguf.WriteTensor {
		seed++
		sd := seed
		return gguf.WriteTensor{Name: name, Type: kernels.F32, Dims: []uint64{uint64(n)},
			WriteTo: func(w io.Writer) error { return randomRows(w, kernels.F32, 1, n, 0.1, 1, sd) }}
	}
	inv := func(n int) float64 { return 1 / math.Sqrt(float64(n)) }
	ts := []gguf.WriteTensor{
		mat("token_embd.weight", s.Type, s.Vocab, s.Dim, 0.3),
		norm("output_norm.weight", s.Dim),
		mat("output.weight", s.OutputType, s.Vocab, s.Dim, 3*inv(s.Dim)),
	}
	for l := 0; l < s.Layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		ts = append(ts,
			norm(p+"attn_norm.weight", s.Dim),
			mat(p+"attn_q.weight", s.Type, s.Dim, s.Dim, 2*inv(s.Dim)),
			mat(p+"attn_k.weight", s.Type, kvDim, s.Dim, 2*inv(s.Dim)),
			mat(p+"attn_v.weight", s.Type, kvDim, s.Dim, inv(s.Dim)),
			mat(p+"attn_output.weight", s.Type, s.Dim, s.Dim, 0.5*inv(s.Dim)),
			norm(p+"ffn_norm.weight", s.Dim),
			mat(p+"ffn_gate.weight", s.Type, s.FFN, s.Dim, inv(s.Dim)),
			mat(p+"ffn_up.weight", s.Type, s.FFN, s.Dim, inv(s.Dim)),
			mat(p+"ffn_down.weight", s.Type, s.Dim, s.FFN, 2*inv(s.FFN)),
		)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	if err := gguf.Write(bw, kvs, ts); err != nil {
		return err
	}
	return bw.Flush()
}

func kv(key string, t gguf.ValueType, v any) gguf.KV {
	return gguf.KV{Key: key, Value: gguf.Value{Type: t, V: v}}
}

// randomRows writes rows rows of cols normal(mean, std) values encoded as t.
func randomRows(w io.Writer, t kernels.DType, rows, cols int, std, mean float64, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	row := make([]float32, cols)
	var buf []byte
	for r := 0; r < rows; r++ {
		for i := range row {
			row[i] = float32(mean + std*rng.NormFloat64())
		}
		buf = kernels.Quantize(buf[:0], t, row)
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// synthVocab is a SentencePiece-style vocabulary of n tokens: <unk>, <s>,
// </s>, the 256 byte tokens, then filler pieces.
func synthVocab(n int) []gguf.KV {
	tokens := make([]string, n)
	scores := make([]float32, n)
	types := make([]int32, n)
	tokens[0], tokens[1], tokens[2] = "<unk>", "<s>", "</s>"
	types[0], types[1], types[2] = 2, 3, 3
	for b := 0; b < 256; b++ {
		tokens[3+b] = fmt.Sprintf("<0x%02X>", b)
		types[3+b] = 6
	}
	for i := 259; i < n; i++ {
		tokens[i] = fmt.Sprintf("\u2581t%d", i)
		scores[i] = -float32(i)
		types[i] = 1
	}
	arr := func(key string, elem gguf.ValueType, v any) gguf.KV {
		return gguf.KV{Key: key, Value: gguf.Value{Type: gguf.TypeArray, Elem: elem, V: v}}
	}
	return []gguf.KV{
		kv("tokenizer.ggml.model", gguf.TypeString, "llama"),
		arr("tokenizer.ggml.tokens", gguf.TypeString, tokens),
		arr("tokenizer.ggml.scores", gguf.TypeFloat32, scores),
		arr("tokenizer.ggml.token_type", gguf.TypeInt32, types),
		kv("tokenizer.ggml.bos_token_id", gguf.TypeUint32, uint32(1)),
		kv("tokenizer.ggml.eos_token_id", gguf.TypeUint32, uint32(2)),
		kv("tokenizer.ggml.unknown_token_id", gguf.TypeUint32, uint32(0)),
	}
}

// fileType is the general.file_type of a file whose 2-D weights are of
// type t: llama.cpp's own numbering of whole-file types, which differs from
// the tensor type numbers (Q8_0 is 7 there, 8 as a tensor type). A file of
// all Q4_K or Q5_K weights is the "S" (small) variant of those types.
func fileType(t kernels.DType) uint32 {
	switch t {
	case kernels.Q4_1:
		return 3
	case kernels.Q5_0:
		return 8
	case kernels.Q5_1:
		return 9
	case kernels.Q8_0:
		return 7
	case kernels.Q2_K:
		return 10
	case kernels.Q3_K:
		return 11 // Q3_K_S
	case kernels.Q4_K:
		return 14 // Q4_K_S
	case kernels.Q5_K:
		return 16 // Q5_K_S
	case kernels.Q6_K:
		return 18
	case kernels.BF16:
		return 32
	}
	return uint32(t) // F32 0, F16 1, Q4_0 2: the same numbers
}

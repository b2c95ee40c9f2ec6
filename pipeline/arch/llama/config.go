package llama

import (
	"fmt"

	"github.com/strata-llm/strata/kernels"
	"github.com/strata-llm/strata/pipeline/arch"
	"github.com/strata-llm/strata/pipeline/gguf"
)

// Architectures lists the general.architecture names this package loads.
var Architectures = []string{"llama", "mistral", "qwen2"}

func init() {
	for _, a := range Architectures {
		arch.Register(a, func(f *gguf.File, lo, hi int, opts arch.Options) (arch.Model, error) {
			return Load(f, lo, hi, opts)
		})
	}
}

// ReadConfig reads the hyperparameters of a llama-family model from f's
// metadata, applying llama.cpp's defaults for absent keys.
func ReadConfig(f *gguf.File) (arch.Config, error) {
	a := f.Architecture()
	known := false
	for _, k := range Architectures {
		known = known || k == a
	}
	if !known {
		return arch.Config{}, fmt.Errorf("llama: architecture %q: %w", a, arch.ErrUnsupported)
	}
	c := arch.Config{Arch: a}
	c.Name, _ = f.String("general.name")
	req := func(key string) (int, error) {
		v, ok := f.Uint(a + "." + key)
		if !ok || v == 0 || v > 1<<24 {
			return 0, fmt.Errorf("llama: metadata %s.%s missing or out of range", a, key)
		}
		return int(v), nil
	}
	var err error
	if c.Dim, err = req("embedding_length"); err != nil {
		return c, err
	}
	if c.Layers, err = req("block_count"); err != nil {
		return c, err
	}
	if c.FFN, err = req("feed_forward_length"); err != nil {
		return c, err
	}
	if c.Heads, err = req("attention.head_count"); err != nil {
		return c, err
	}
	c.KVHeads = c.Heads
	if v, ok := f.Uint(a + ".attention.head_count_kv"); ok {
		c.KVHeads = int(v)
	}
	if c.KVHeads <= 0 || c.KVHeads > c.Heads || c.Heads%c.KVHeads != 0 {
		return c, fmt.Errorf("llama: %d KV heads do not divide %d heads", c.KVHeads, c.Heads)
	}
	c.HeadDim = c.Dim / c.Heads
	if v, ok := f.Uint(a + ".attention.key_length"); ok {
		c.HeadDim = int(v)
	}
	if v, ok := f.Uint(a + ".attention.value_length"); ok && int(v) != c.HeadDim {
		return c, fmt.Errorf("llama: value length %d differs from key length %d: %w", v, c.HeadDim, arch.ErrUnsupported)
	}
	if c.HeadDim <= 0 || c.HeadDim%2 != 0 {
		return c, fmt.Errorf("llama: head dimension %d is not a positive even number", c.HeadDim)
	}
	if v, ok := f.Uint(a + ".context_length"); ok {
		c.ContextLength = int(v)
	}
	if n, ok := f.Uint(a + ".expert_count"); ok && n > 0 {
		return c, fmt.Errorf("llama: mixture of experts (%d experts): %w", n, arch.ErrUnsupported)
	}
	c.NormEps = 1e-5
	if v, ok := f.Float(a + ".attention.layer_norm_rms_epsilon"); ok {
		c.NormEps = float32(v)
	}
	c.RoPE = kernels.RoPE{Dims: c.HeadDim, Base: 10000, FreqScale: 1, NEOX: a == "qwen2"}
	if v, ok := f.Uint(a + ".rope.dimension_count"); ok {
		c.RoPE.Dims = int(v)
	}
	if c.RoPE.Dims <= 0 || c.RoPE.Dims > c.HeadDim || c.RoPE.Dims%2 != 0 {
		return c, fmt.Errorf("llama: rope dimension count %d does not fit head dimension %d", c.RoPE.Dims, c.HeadDim)
	}
	if v, ok := f.Float(a + ".rope.freq_base"); ok && v > 0 {
		c.RoPE.Base = float32(v)
	}
	scaling, _ := f.String(a + ".rope.scaling.type")
	switch scaling {
	case "", "none":
	case "linear":
		if v, ok := f.Float(a + ".rope.scaling.factor"); ok && v > 0 {
			c.RoPE.FreqScale = float32(1 / v)
		}
	default:
		return c, fmt.Errorf("llama: rope scaling %q: %w", scaling, arch.ErrUnsupported)
	}
	if v, ok := f.Float(a + ".rope.freq_scale"); ok && v > 0 {
		c.RoPE.FreqScale = float32(v)
	}
	// The vocabulary: the embedding matrix's rows; in a slice of the file
	// without it (a middle stage's layers), the vocab_size key the slice
	// carries, else the tokenizer's tokens.
	if t, ok := f.Tensor("token_embd.weight"); ok && len(t.Dims) == 2 {
		c.Vocab = int(t.Dims[1])
	} else if v, ok := f.Uint(a + ".vocab_size"); ok && v > 0 && v < 1<<31 {
		c.Vocab = int(v)
	} else if toks, ok := f.Strings("tokenizer.ggml.tokens"); ok {
		c.Vocab = len(toks)
	}
	if c.Vocab == 0 {
		return c, fmt.Errorf("llama: no token_embd.weight matrix, vocab_size or tokens to size the vocabulary")
	}
	return c, nil
}

// Package llama implements the llama family of transformers — llama
// (1/2/3), mistral and qwen2 — as they are stored in GGUF files: RMSNorm,
// rotary position embeddings (normal or NEOX pairing, any base, linear
// scaling, per-frequency factors), grouped-query attention over an F16 KV
// cache, optional Q/K/V biases, a SwiGLU feed-forward, and a tied or
// separate output head.
//
// A Model covers any contiguous layer range [lo, hi): that range is what a
// pipeline stage serves. Running [0, k) and then [k, n) gives bit-identical
// results to [0, n). The code follows llama.cpp's CPU numerics closely
// enough to agree with its logits to about 1e-3 on F32 models.
//
// It imports kernels, pipeline/gguf and pipeline/arch.
package llama

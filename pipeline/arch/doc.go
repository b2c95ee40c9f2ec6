// Package arch defines what a model architecture provides to the pipeline —
// a Model that runs any contiguous range of a model's transformer layers —
// and a registry of architectures by their GGUF name.
//
// Architectures live in subpackages (arch/llama for the llama family) and
// register themselves in init; a program that wants them imports them for
// that side effect. arch may import kernels and pipeline/gguf, nothing above.
package arch

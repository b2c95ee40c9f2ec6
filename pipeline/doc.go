// Package pipeline runs a model's layers: today a whole model in one process
// (Engine); with the pipeline-stages work, Stage, Chain and the batching
// Driver over layer ranges.
//
// It knows nothing of networks. It may import kernels and its own
// subpackages (gguf, arch, tokenizer, sample), nothing above.
package pipeline

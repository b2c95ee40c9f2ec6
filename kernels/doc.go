// Package kernels is Strata's tensor math: conversions between float
// encodings, GGML block (de)quantization, matrix-vector and matrix-matrix
// products over quantized weights, and the small vector operations of a
// transformer layer (RMSNorm, softmax, SwiGLU, RoPE, attention for one query
// position). It knows nothing about models, files or the network.
//
// # Numerics
//
// The kernels reproduce the float arithmetic of llama.cpp's CPU backend
// (commit c392e50, AVX2+FMA+F16C build, as used for the reference logits in
// shared/testdata) operation for operation, so that an engine built on them
// gets llama.cpp's logits bit for bit rather than merely close:
//
//   - A matrix product first rounds its activations into the weight type's
//     vec-dot type (VecDotType: F16, BF16, or 8-bit Q8_0, Q8_1 and Q8_K
//     blocks, rounded half to even as the AVX2 quantizers do) and then dots
//     block by block with exact integer sums, keeping ggml's 8-lane (or
//     4x8-lane) float accumulators, its fused multiply-adds and its
//     horizontal reductions (ggml_vec_dot_*; the repacked gemv for Q4_0
//     matrices whose row count is a multiple of 8).
//   - Dequantization is bit-exact to ggml's dequantize_row_*.
//   - Attention rounds q and the probabilities to F16 and sums like
//     ggml_vec_dot_f16; its softmax and SwiGLU use ggml's vectorized exp.
//   - RoPE uses the fused multiply-adds GCC emits for ggml's rotation.
//
// llama.cpp computes a batch of two or more tokens with other kernels
// (llamafile's sgemm) for float weights; MatMulBatch and AttentionF16Batch
// reproduce that path. An engine that wants llama.cpp's prompt logits bit
// for bit uses them for multi-token batches, computes the last layer's
// feed-forward and the output only for the rows whose logits it needs (as
// llama.cpp does, with MatMul), and calls SwiGLURow once per row when the
// feed-forward width is not a multiple of 8.
//
// Every float expression whose rounding matters is written with explicit
// float32 conversions or fma32, so the Go compiler cannot fuse or reorder
// it: results do not depend on GOAMD64. The golden digests in testdata pin
// the output bits; the pipeline's reference tests check them against
// llama.cpp end to end.
//
// This code is plain Go and is the reference (oracle) for faster SIMD
// versions: the per-type dot functions (dotQ8_0Q8_0 and friends) and the
// activation quantizers (quantizeQ8_0, quantizeQ8_1, quantizeQ8_K) are the
// primitives such versions replace, keeping the same lane layout so that
// they can match bit for bit.
//
// # Concurrency and allocation
//
// Work is spread over rows (or heads) on one persistent worker Pool shared by
// all kernels; a nil *Pool runs everything on the caller's goroutine.
// Results never depend on the pool. MatMulShared runs products of the same
// activations (a layer's q, k and v; gate and up) in one dispatch, so that
// the workers meet once for them. Pool.Expect announces the next product
// (a Lookahead made at load), so that workers waiting on the caller's
// serial work read the start of their part of its weights meanwhile. In
// steady state MatVec, MatMul, MatMulShared and the attention kernels
// allocate nothing.
//
// # Contracts
//
// Shapes are checked once by callers (where a stage is built, e.g. with
// NewMatrix); the kernels validate nothing per call and may panic on
// inconsistent lengths. Unless a function says otherwise, it keeps no
// reference to the slices it is given and returns none it owns.
//
// The package imports the standard library, golang.org/x/sys/cpu (to pick
// the AVX2 kernels of dot_amd64.s and its neighbours (with the packed
// Q4_0, Q8_0, Q4_K and wide F16 products) and, on CPUs with AVX-512 VNNI,
// the packed Q4_0, Q8_0, Q5_0, Q4_1, Q5_1, Q4_K, Q5_K and Q6_K products of
// dot512_amd64.s, all bitwise equal to the plain-Go ones; the
// purego build tag or another architecture keeps the plain Go) and, on
// Linux, golang.org/x/sys/unix (to back weights with huge pages: slabBuf
// for buffers under 16 MB, adviseHuge for the others).
package kernels

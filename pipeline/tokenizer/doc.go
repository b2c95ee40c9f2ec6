// Package tokenizer turns text into token ids and back, for the tokenizers
// that GGUF files describe in their tokenizer.ggml.* metadata. It matches
// llama.cpp (commit c392e50) token for token:
//
//   - "llama": SentencePiece-style BPE over UTF-8 characters, merged by
//     vocabulary score, with the "▁" dummy prefix and byte fallback
//     (<0xXX> tokens);
//   - "gpt2": byte-level BPE, merged by merge rank, after a pre-tokenizer
//     chosen by tokenizer.ggml.pre ("default", "gpt-2", "llama-bpe" (Llama 3),
//     "qwen2" and their aliases).
//
// Special tokens: with parseSpecial, the texts of control, user-defined and
// unknown tokens in the input become their ids (user-defined texts always do,
// as in llama.cpp). End-of-generation tokens are found as llama.cpp finds
// them: EOS, EOT, and control-looking texts such as "<|im_end|>".
//
// Decoding renders each token as the bytes it stands for (Piece); a
// StreamDecoder does so incrementally without ever splitting a UTF-8
// character, for streaming generated text.
//
// A Tokenizer is immutable once built and safe for concurrent use.
//
// Imports: the standard library and pipeline/gguf.
package tokenizer

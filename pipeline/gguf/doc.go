// Package gguf reads and writes GGUF files, the model format of llama.cpp:
// a little-endian header, typed key-value metadata, a table of tensor infos,
// and an aligned data section holding the tensors.
//
// Open maps a file read-only and Parse reads an in-memory image; both
// validate the whole header up front (counts against the bytes left, array
// nesting, alignment, tensor shapes and types, tensor data within the file
// and not overlapping) so that a malformed or truncated file is refused with
// an error wrapping ErrFormat instead of a panic or a huge allocation.
// Metadata is decoded into Go values owned by the caller's File and stays
// valid after Close; tensor data is never copied: TensorData returns a view
// of the mapping that is valid until Close. Versions 2 and 3 are read
// (little-endian only); Write produces version 3.
//
// Write is used for synthetic test models and, later, for the slices of a
// model's layers that a pipeline stage loads. It validates its input the same
// way and keeps to llama.cpp's limits, so that llama.cpp can load what it
// writes.
//
// The package imports only the standard library, golang.org/x/sys (for mmap
// on unix; other systems read the whole file) and kernels (for tensor types).
package gguf

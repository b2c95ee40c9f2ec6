package gguf

import (
	"math"
	"math/bits"
)

// File is an opened GGUF file.
//
// Its metadata (KV, Tensors and what the accessors return) is decoded into
// Go values that stay valid after Close; slices that the accessors return
// are shared with the File and must not be modified. Tensor data is not
// copied: see TensorData. The exported fields are for reading: Get and
// Tensor use indexes built by Parse.
//
// DataOffset is aligned; in a file without tensors it may lie past the end
// of the file (llama.cpp writes no padding there).
//
// A File is safe for concurrent reads; Close must not run concurrently with
// any other method.
type File struct {
	Version    uint32
	Alignment  uint64       // general.alignment, default 32
	KV         []KV         // metadata in file order
	Tensors    []TensorInfo // in file order
	DataOffset uint64       // absolute offset of the tensor data section

	data  []byte         // the whole file; nil after Close
	keys  map[string]int // key -> index in KV
	names map[string]int // tensor name -> index in Tensors
	unmap func() error   // releases data; nil when there is nothing to release
}

// Close releases the file's mapping (for a File from Open). Views returned by
// TensorData are invalid after it, and TensorData returns nil; the metadata
// stays valid. Closing twice is harmless.
func (f *File) Close() error {
	f.data = nil
	unmap := f.unmap
	f.unmap = nil
	if unmap == nil {
		return nil
	}
	return unmap()
}

// Get returns the value of the metadata key.
func (f *File) Get(key string) (Value, bool) {
	i, ok := f.keys[key]
	if !ok {
		return Value{}, false
	}
	return f.KV[i].Value, true
}

// String returns the value of a string key.
func (f *File) String(key string) (string, bool) {
	v, _ := f.Get(key)
	s, ok := v.V.(string)
	return s, ok
}

// Uint returns the value of a key of any integer type whose value is not
// negative.
func (f *File) Uint(key string) (uint64, bool) {
	v, _ := f.Get(key)
	return v.uint()
}

// Int returns the value of a key of any integer type whose value fits in an
// int64.
func (f *File) Int(key string) (int64, bool) {
	v, _ := f.Get(key)
	return v.int()
}

// Float returns the value of a float32 or float64 key, or of a key of any
// integer type, as a float64.
func (f *File) Float(key string) (float64, bool) {
	v, _ := f.Get(key)
	return v.float()
}

// Bool returns the value of a bool key.
func (f *File) Bool(key string) (bool, bool) {
	v, _ := f.Get(key)
	b, ok := v.V.(bool)
	return b, ok
}

// Strings returns the value of a key holding an array of strings. The slice
// is shared with the File and must not be modified.
func (f *File) Strings(key string) ([]string, bool) {
	v, _ := f.Get(key)
	s, ok := v.V.([]string)
	return s, ok && v.Type == TypeArray
}

// Float32s returns the value of a key holding an array of float32. The slice
// is shared with the File and must not be modified.
func (f *File) Float32s(key string) ([]float32, bool) {
	v, _ := f.Get(key)
	s, ok := v.V.([]float32)
	return s, ok && v.Type == TypeArray
}

// Int32s returns the value of a key holding an array of int32, or of
// uint32, int16, uint16, int8 or uint8 converted to int32 (false when a
// uint32 does not fit). An []int32 is shared with the File and must not be
// modified; a converted slice belongs to the caller.
func (f *File) Int32s(key string) ([]int32, bool) {
	v, _ := f.Get(key)
	if v.Type != TypeArray {
		return nil, false
	}
	switch s := v.V.(type) {
	case []int32:
		return s, true
	case []uint32:
		out := make([]int32, len(s))
		for i, x := range s {
			if x > math.MaxInt32 {
				return nil, false
			}
			out[i] = int32(x)
		}
		return out, true
	case []int16:
		return widen(s), true
	case []uint16:
		return widen(s), true
	case []int8:
		return widen(s), true
	case []uint8:
		return widen(s), true
	}
	return nil, false
}

func widen[T int8 | uint8 | int16 | uint16](s []T) []int32 {
	out := make([]int32, len(s))
	for i, x := range s {
		out[i] = int32(x)
	}
	return out
}

// Architecture returns general.architecture ("llama", "qwen2"), or "" when
// the key is absent or not a string.
func (f *File) Architecture() string {
	s, _ := f.String("general.architecture")
	return s
}

// Tensor returns the info of the named tensor, which points into f.Tensors.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.names[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// TensorData returns the bytes of tensor t: a zero-copy view of the file
// (of the mapping, for a File from Open), owned by the File and valid until
// Close. It must not be written to: the mapping is read-only and writing
// faults. It returns nil after Close or when t's range is not within the
// file (as it always is for an info from f.Tensors).
func (f *File) TensorData(t *TensorInfo) []byte {
	if t == nil {
		return nil
	}
	start, c1 := bits.Add64(f.DataOffset, t.Offset, 0)
	end, c2 := bits.Add64(start, t.Size, 0)
	if c1|c2 != 0 || end > uint64(len(f.data)) {
		return nil
	}
	return f.data[start:end:end]
}

package gguf

// API CONTRACT (written first so that other packages can build against it;
// the implementation replaces the bodies marked "unimplemented").

import (
	"errors"

	"github.com/strata-llm/strata/kernels"
)

// ValueType is the type tag of a metadata value, as numbered by the GGUF spec.
type ValueType uint32

// The metadata value types of GGUF.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

// Value is one metadata value. Scalars hold the Go type of the same width
// (uint8, int8, uint16, int16, uint32, int32, float32, bool, string, uint64,
// int64, float64); arrays hold a typed slice of those ([]uint8 ... []string)
// or, for an array of arrays, []Value.
type Value struct {
	Type ValueType // TypeArray for arrays
	Elem ValueType // element type when Type is TypeArray
	V    any
}

// KV is one metadata entry, in file order.
type KV struct {
	Key   string
	Value Value
}

// TensorInfo describes one tensor. Dims are GGML's ne: Dims[0] is the
// contiguous (innermost) axis, so a weight matrix with R rows of C elements
// has Dims = [C, R].
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   kernels.DType
	Offset uint64 // from the start of the data section, aligned
	Size   uint64 // bytes, derived from Dims and Type
}

// ErrFormat is wrapped by every error about malformed file contents, so
// callers can tell a bad file from an I/O failure with errors.Is.
var ErrFormat = errors.New("malformed gguf")

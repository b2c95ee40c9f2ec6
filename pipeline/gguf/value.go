package gguf

import (
	"errors"
	"math"
	"strconv"

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

var valueTypeNames = [...]string{
	TypeUint8:   "uint8",
	TypeInt8:    "int8",
	TypeUint16:  "uint16",
	TypeInt16:   "int16",
	TypeUint32:  "uint32",
	TypeInt32:   "int32",
	TypeFloat32: "float32",
	TypeBool:    "bool",
	TypeString:  "string",
	TypeArray:   "array",
	TypeUint64:  "uint64",
	TypeInt64:   "int64",
	TypeFloat64: "float64",
}

// String returns the spec's name of the type ("uint32", "string", "array"),
// or "ValueType(n)" for a number the spec does not define.
func (t ValueType) String() string {
	if t.valid() {
		return valueTypeNames[t]
	}
	return "ValueType(" + strconv.FormatUint(uint64(t), 10) + ")"
}

func (t ValueType) valid() bool { return t <= TypeFloat64 }

// minSize is the fewest bytes a value of type t takes in a file: its width
// for a scalar, the length prefix for a string, and the element type and
// count for an array. It bounds every count read from a file before anything
// is allocated for it.
func (t ValueType) minSize() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64, TypeString:
		return 8
	case TypeArray:
		return 4 + 8
	}
	return 0
}

// plural names a run of values of type t in messages: "strings", "arrays",
// "uint32 values".
func (t ValueType) plural() string {
	switch t {
	case TypeString:
		return "strings"
	case TypeArray:
		return "arrays"
	}
	return t.String() + " values"
}

// uint returns v as a uint64 when it is an integer of any width with a
// non-negative value.
func (v Value) uint() (uint64, bool) {
	switch x := v.V.(type) {
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	case int8:
		if x < 0 {
			return 0, false
		}
		return uint64(x), true
	case int16:
		if x < 0 {
			return 0, false
		}
		return uint64(x), true
	case int32:
		if x < 0 {
			return 0, false
		}
		return uint64(x), true
	case int64:
		if x < 0 {
			return 0, false
		}
		return uint64(x), true
	}
	return 0, false
}

// int returns v as an int64 when it is an integer of any width whose value
// fits.
func (v Value) int() (int64, bool) {
	switch x := v.V.(type) {
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	}
	return 0, false
}

// float returns v as a float64 when it is a float or an integer of any width.
func (v Value) float() (float64, bool) {
	switch x := v.V.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	if i, ok := v.int(); ok {
		return float64(i), true
	}
	if u, ok := v.uint(); ok {
		return float64(u), true
	}
	return 0, false
}

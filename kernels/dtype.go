package kernels

import "fmt"

// DType is the encoding of a tensor's elements. The values are GGML's type
// numbers, so a GGUF tensor's type field converts directly.
type DType uint32

// The encodings Strata knows. Quantized types pack a block of BlockSize
// elements into BlockBytes bytes.
const (
	F32  DType = 0
	F16  DType = 1
	Q4_0 DType = 2
	Q4_1 DType = 3
	Q5_0 DType = 6
	Q5_1 DType = 7
	Q8_0 DType = 8
	Q8_1 DType = 9
	Q2_K DType = 10
	Q3_K DType = 11
	Q4_K DType = 12
	Q5_K DType = 13
	Q6_K DType = 14
	Q8_K DType = 15
	BF16 DType = 30
)

// QK is the block length of the 32-element formats; QKK of the K-quants.
const (
	QK  = 32
	QKK = 256
)

type dtypeInfo struct {
	name       string
	blockSize  int // elements per block
	blockBytes int // bytes per block
	supported  bool
}

// dtypes is indexed by type number, not a map: the kernels look a type's
// block size up on every product call, and a map lookup there cost 2% of a
// long prompt's prefill. An entry without a name is an unknown type.
var dtypes = [...]dtypeInfo{
	F32:  {"F32", 1, 4, true},
	F16:  {"F16", 1, 2, true},
	BF16: {"BF16", 1, 2, true},
	Q4_0: {"Q4_0", QK, 2 + QK/2, true},
	Q4_1: {"Q4_1", QK, 4 + QK/2, true},
	Q5_0: {"Q5_0", QK, 2 + 4 + QK/2, true},
	Q5_1: {"Q5_1", QK, 4 + 4 + QK/2, true},
	Q8_0: {"Q8_0", QK, 2 + QK, true},
	Q8_1: {"Q8_1", QK, 4 + QK, false},
	Q2_K: {"Q2_K", QKK, QKK/16 + QKK/4 + 4, false},
	Q3_K: {"Q3_K", QKK, QKK/8 + QKK/4 + 12 + 2, false},
	Q4_K: {"Q4_K", QKK, 4 + 12 + QKK/2, true},
	Q5_K: {"Q5_K", QKK, 4 + 12 + QKK/8 + QKK/2, true},
	Q6_K: {"Q6_K", QKK, QKK/2 + QKK/4 + QKK/16 + 2, true},
	Q8_K: {"Q8_K", QKK, 4 + QKK + QKK/16*2, false},
}

// info returns t's entry in dtypes, and whether t is known.
func (t DType) info() (dtypeInfo, bool) {
	if int(t) >= len(dtypes) || dtypes[t].name == "" {
		return dtypeInfo{}, false
	}
	return dtypes[t], true
}

// String returns GGML's name for the type, or "DType(n)" for an unknown one.
func (t DType) String() string {
	if i, ok := t.info(); ok {
		return i.name
	}
	return fmt.Sprintf("DType(%d)", uint32(t))
}

// Known reports whether t is a GGML type whose block layout Strata knows
// (it may still lack kernels; see Supported).
func (t DType) Known() bool { _, ok := t.info(); return ok }

// Supported reports whether the kernels can dequantize and multiply t.
func (t DType) Supported() bool { i, _ := t.info(); return i.supported }

// BlockSize is the number of elements in one block (1 for float types).
// It is 0 for an unknown type.
func (t DType) BlockSize() int { i, _ := t.info(); return i.blockSize }

// BlockBytes is the size in bytes of one block. It is 0 for an unknown type.
func (t DType) BlockBytes() int { i, _ := t.info(); return i.blockBytes }

// RowBytes returns the bytes taken by n elements of type t, and false when t
// is unknown or n is not a whole number of blocks.
func (t DType) RowBytes(n int) (int, bool) {
	i, ok := t.info()
	if !ok || n < 0 || n%i.blockSize != 0 {
		return 0, false
	}
	return n / i.blockSize * i.blockBytes, true
}

// ParseDType returns the type with GGML's name s (case-insensitive, e.g.
// "q4_0", "F16").
func ParseDType(s string) (DType, error) {
	for t, i := range dtypes {
		if i.name != "" && equalFold(i.name, s) {
			return DType(t), nil
		}
	}
	return 0, fmt.Errorf("unknown tensor type %q", s)
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

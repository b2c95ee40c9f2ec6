package kernels

import (
	"errors"
	"fmt"
)

// ErrUnsupported is returned (wrapped) by NewMatrix for a tensor type the
// kernels cannot multiply.
var ErrUnsupported = errors.New("unsupported tensor type")

// ErrShape is returned (wrapped) by NewMatrix when the dimensions and the
// data disagree.
var ErrShape = errors.New("bad matrix shape")

// Matrix is a 2-D weight tensor of Rows rows of Cols elements each, stored
// row-major in Type's encoding. It is a zero-copy view: Data may point into
// an mmapped GGUF file, whose dims for it are [Cols, Rows]. Build it with
// NewMatrix, which checks the shape once; the kernels trust it afterwards.
type Matrix struct {
	Type       DType
	Rows, Cols int
	Data       []byte
}

// NewMatrix returns a view of data as a rows x cols matrix of type t. It
// fails when t is not Supported, when cols is not a whole number of t's
// blocks, or when len(data) is not exactly rows rows. The matrix keeps data.
func NewMatrix(t DType, rows, cols int, data []byte) (Matrix, error) {
	if !t.Supported() {
		return Matrix{}, fmt.Errorf("matrix of %v: %w", t, ErrUnsupported)
	}
	rb, ok := t.RowBytes(cols)
	if !ok || rows < 0 || cols <= 0 {
		return Matrix{}, fmt.Errorf("%v matrix %dx%d: %w: columns must be a positive multiple of %d", t, rows, cols, ErrShape, t.BlockSize())
	}
	if len(data) != rows*rb {
		return Matrix{}, fmt.Errorf("%v matrix %dx%d: %w: %d bytes, want %d", t, rows, cols, ErrShape, len(data), rows*rb)
	}
	return Matrix{Type: t, Rows: rows, Cols: cols, Data: data}, nil
}

// RowBytes returns the size in bytes of one row.
func (m Matrix) RowBytes() int { return m.Cols / m.Type.BlockSize() * m.Type.BlockBytes() }

// Row returns the encoded bytes of row i, a subslice of m.Data (capacity
// capped at the row's end).
func (m Matrix) Row(i int) []byte {
	rb := m.RowBytes()
	return m.Data[i*rb : (i+1)*rb : (i+1)*rb]
}

// DequantizeRow decodes row i into dst[:m.Cols].
func (m Matrix) DequantizeRow(dst []float32, i int) {
	Dequantize(dst[:m.Cols], m.Type, m.Row(i))
}

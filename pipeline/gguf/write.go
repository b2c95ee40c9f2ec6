package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"

	"github.com/strata-llm/strata/kernels"
)

// maxWriteNameLen is the longest tensor name Write accepts: GGML_MAX_NAME
// (64) less the terminating NUL, which llama.cpp enforces when loading.
const maxWriteNameLen = 63

// WriteTensor is one tensor for Write: its info and a source for its bytes.
type WriteTensor struct {
	Name string
	Type kernels.DType
	Dims []uint64 // ne order, as TensorInfo

	// Data holds the tensor's bytes; or it is nil and WriteTo is set.
	Data []byte
	// WriteTo streams exactly the tensor's size in bytes to w (for
	// multi-GB synthetic models). Writing more, or returning after fewer,
	// fails the Write.
	WriteTo func(w io.Writer) error
}

// Write writes a GGUF v3 file to w: the metadata kvs in order, the tensor
// infos, padding to the alignment (general.alignment from kvs when present,
// which must then be a uint32, else 32), and each tensor's data, in order,
// each at an aligned offset and followed by padding.
//
// It validates everything before writing anything: keys non-empty, unique
// and at most 65535 bytes; each Value's Go type matching its Type (as Parse
// produces them; arrays nest at most 8 deep); tensor names non-empty,
// unique and at most 63 bytes (llama.cpp's limit); 1 to 4 dims, none 0;
// the type known and the row length a multiple of its block size; and Data
// exactly the tensor's size. Those errors wrap ErrFormat; errors from w and
// from WriteTo are returned wrapped as they are.
func Write(w io.Writer, kvs []KV, tensors []WriteTensor) error {
	alignment, err := checkKVs(kvs)
	if err != nil {
		return err
	}
	infos, err := layout(tensors, alignment)
	if err != nil {
		return err
	}

	e := &encoder{w: bufio.NewWriterSize(w, 1<<16)}
	e.write([]byte(magic))
	e.u32(3)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(kvs)))
	for _, kv := range kvs {
		e.str(kv.Key)
		e.u32(uint32(kv.Value.Type))
		e.value(kv.Value)
	}
	for _, t := range infos {
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, n := range t.Dims {
			e.u64(n)
		}
		e.u32(uint32(t.Type))
		e.u64(t.Offset)
	}
	if len(tensors) > 0 {
		e.pad(alignment)
	}
	dataOffset := e.n
	for i, t := range tensors {
		if e.err != nil {
			break
		}
		if e.n != dataOffset+infos[i].Offset {
			return fmt.Errorf("gguf: internal error: tensor %s at offset %d, want %d", quote(t.Name), e.n-dataOffset, infos[i].Offset)
		}
		if t.Data != nil {
			e.write(t.Data)
		} else if err := e.stream(t, infos[i].Size); err != nil {
			return err
		}
		e.pad(alignment)
	}
	if e.err != nil {
		return fmt.Errorf("gguf: write: %w", e.err)
	}
	if err := e.w.Flush(); err != nil {
		return fmt.Errorf("gguf: write: %w", err)
	}
	return nil
}

// checkKVs validates the metadata and returns the alignment it asks for.
func checkKVs(kvs []KV) (uint64, error) {
	alignment := uint64(defaultAlignment)
	seen := make(map[string]int, len(kvs))
	for i, kv := range kvs {
		switch {
		case kv.Key == "":
			return 0, errorf("metadata key %d: empty key", i)
		case len(kv.Key) > maxKeyLen:
			return 0, errorf("metadata key %d: key of %d bytes is longer than the %d GGUF allows", i, len(kv.Key), maxKeyLen)
		}
		if j, dup := seen[kv.Key]; dup {
			return 0, errorf("metadata key %d (%s): duplicate of key %d", i, quote(kv.Key), j)
		}
		seen[kv.Key] = i
		if err := checkValue(kv.Value, 0); err != nil {
			return 0, within(err, "metadata key %d (%s)", i, quote(kv.Key))
		}
		if kv.Key == keyAlignment {
			if kv.Value.Type != TypeUint32 {
				return 0, errorf("%s is a %s, want a uint32", keyAlignment, kv.Value.Type)
			}
			a, err := alignmentOf(kv.Value)
			if err != nil {
				return 0, err
			}
			alignment = a
		}
	}
	return alignment, nil
}

// checkValue checks that v's Go type matches its Type, for a value nested
// depth arrays deep (0 at the top).
func checkValue(v Value, depth int) error {
	var ok bool
	switch v.Type {
	case TypeUint8:
		_, ok = v.V.(uint8)
	case TypeInt8:
		_, ok = v.V.(int8)
	case TypeUint16:
		_, ok = v.V.(uint16)
	case TypeInt16:
		_, ok = v.V.(int16)
	case TypeUint32:
		_, ok = v.V.(uint32)
	case TypeInt32:
		_, ok = v.V.(int32)
	case TypeFloat32:
		_, ok = v.V.(float32)
	case TypeBool:
		_, ok = v.V.(bool)
	case TypeString:
		_, ok = v.V.(string)
	case TypeUint64:
		_, ok = v.V.(uint64)
	case TypeInt64:
		_, ok = v.V.(int64)
	case TypeFloat64:
		_, ok = v.V.(float64)
	case TypeArray:
		return checkArray(v, depth+1)
	default:
		return errorf("unknown value type %d", uint32(v.Type))
	}
	if !ok {
		return errorf("value of type %s holds a Go %T", v.Type, v.V)
	}
	return nil
}

func checkArray(v Value, depth int) error {
	if depth > maxArrayDepth {
		return errorf("arrays nested deeper than %d", maxArrayDepth)
	}
	var ok bool
	switch v.Elem {
	case TypeUint8:
		_, ok = v.V.([]uint8)
	case TypeInt8:
		_, ok = v.V.([]int8)
	case TypeUint16:
		_, ok = v.V.([]uint16)
	case TypeInt16:
		_, ok = v.V.([]int16)
	case TypeUint32:
		_, ok = v.V.([]uint32)
	case TypeInt32:
		_, ok = v.V.([]int32)
	case TypeFloat32:
		_, ok = v.V.([]float32)
	case TypeBool:
		_, ok = v.V.([]bool)
	case TypeString:
		_, ok = v.V.([]string)
	case TypeUint64:
		_, ok = v.V.([]uint64)
	case TypeInt64:
		_, ok = v.V.([]int64)
	case TypeFloat64:
		_, ok = v.V.([]float64)
	case TypeArray:
		s, isArrays := v.V.([]Value)
		if !isArrays {
			break
		}
		for i, x := range s {
			if x.Type != TypeArray {
				return errorf("element %d of an array of arrays is a %s", i, x.Type)
			}
			if err := checkArray(x, depth+1); err != nil {
				return within(err, "element %d", i)
			}
		}
		return nil
	default:
		return errorf("array of unknown value type %d", uint32(v.Elem))
	}
	if !ok {
		return errorf("array of %s holds a Go %T", v.Elem.plural(), v.V)
	}
	return nil
}

// layout validates the tensors and returns their infos, with offsets in the
// data section: in order, each aligned.
func layout(tensors []WriteTensor, alignment uint64) ([]TensorInfo, error) {
	infos := make([]TensorInfo, len(tensors))
	seen := make(map[string]int, len(tensors))
	off := uint64(0)
	for i, t := range tensors {
		switch {
		case t.Name == "":
			return nil, errorf("tensor %d: empty name", i)
		case len(t.Name) > maxWriteNameLen:
			return nil, errorf("tensor %d (%s): name of %d bytes is longer than GGML's limit of %d", i, quote(t.Name), len(t.Name), maxWriteNameLen)
		}
		if j, dup := seen[t.Name]; dup {
			return nil, errorf("tensor %d (%s): duplicate of tensor %d", i, quote(t.Name), j)
		}
		seen[t.Name] = i
		size, err := tensorSize(t.Type, t.Dims)
		if err != nil {
			return nil, within(err, "tensor %s", quote(t.Name))
		}
		switch {
		case t.Data != nil && t.WriteTo != nil:
			return nil, errorf("tensor %s: both Data and WriteTo are set", quote(t.Name))
		case t.Data == nil && t.WriteTo == nil:
			return nil, errorf("tensor %s: neither Data nor WriteTo is set", quote(t.Name))
		case t.Data != nil && uint64(len(t.Data)) != size:
			return nil, errorf("tensor %s: %d bytes of data, want %d for %s %v", quote(t.Name), len(t.Data), size, t.Type, t.Dims)
		}
		end, c1 := bits.Add64(off, size, 0)
		_, c2 := bits.Add64(end, alignment-1, 0)
		if c1|c2 != 0 {
			return nil, errorf("tensor %s: data section larger than 2^64 bytes", quote(t.Name))
		}
		infos[i] = TensorInfo{Name: t.Name, Dims: t.Dims, Type: t.Type, Offset: off, Size: size}
		off = alignUp(end, alignment)
	}
	return infos, nil
}

// encoder writes little-endian values, counting the bytes; its first error
// sticks.
type encoder struct {
	w   *bufio.Writer
	n   uint64
	err error
	buf [8]byte
}

func (e *encoder) write(p []byte) {
	if e.err != nil {
		return
	}
	m, err := e.w.Write(p)
	e.n += uint64(m)
	e.err = err
}

func (e *encoder) u8(x uint8) { e.buf[0] = x; e.write(e.buf[:1]) }

func (e *encoder) u16(x uint16) {
	binary.LittleEndian.PutUint16(e.buf[:], x)
	e.write(e.buf[:2])
}

func (e *encoder) u32(x uint32) {
	binary.LittleEndian.PutUint32(e.buf[:], x)
	e.write(e.buf[:4])
}

func (e *encoder) u64(x uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], x)
	e.write(e.buf[:8])
}

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	if e.err == nil {
		m, err := e.w.WriteString(s)
		e.n += uint64(m)
		e.err = err
	}
}

var zeros [4096]byte

// pad writes zeros up to the next multiple of alignment.
func (e *encoder) pad(alignment uint64) {
	for k := alignUp(e.n, alignment) - e.n; k > 0 && e.err == nil; {
		m := min(k, uint64(len(zeros)))
		e.write(zeros[:m])
		k -= m
	}
}

// value writes a value checked by checkValue.
func (e *encoder) value(v Value) {
	switch x := v.V.(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case bool:
		e.u8(b2u(x))
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	case string:
		e.str(x)
	default:
		e.array(v)
	}
}

func (e *encoder) array(v Value) {
	e.u32(uint32(v.Elem))
	switch s := v.V.(type) {
	case []uint8:
		e.u64(uint64(len(s)))
		e.write(s)
	case []int8:
		each(e, s, func(x int8) { e.u8(uint8(x)) })
	case []bool:
		each(e, s, func(x bool) { e.u8(b2u(x)) })
	case []uint16:
		each(e, s, e.u16)
	case []int16:
		each(e, s, func(x int16) { e.u16(uint16(x)) })
	case []uint32:
		each(e, s, e.u32)
	case []int32:
		each(e, s, func(x int32) { e.u32(uint32(x)) })
	case []float32:
		each(e, s, func(x float32) { e.u32(math.Float32bits(x)) })
	case []uint64:
		each(e, s, e.u64)
	case []int64:
		each(e, s, func(x int64) { e.u64(uint64(x)) })
	case []float64:
		each(e, s, func(x float64) { e.u64(math.Float64bits(x)) })
	case []string:
		each(e, s, e.str)
	case []Value:
		each(e, s, e.array)
	}
}

func each[T any](e *encoder, s []T, put func(T)) {
	e.u64(uint64(len(s)))
	for _, x := range s {
		put(x)
	}
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// stream writes tensor t through its WriteTo, which must write exactly size
// bytes.
func (e *encoder) stream(t WriteTensor, size uint64) error {
	if e.err != nil {
		return nil
	}
	tw := &tensorWriter{e: e, name: t.Name, size: size, left: size}
	if err := t.WriteTo(tw); err != nil {
		if tw.err != nil && e.err == nil {
			return tw.err
		}
		return fmt.Errorf("gguf: write tensor %s: %w", quote(t.Name), err)
	}
	if tw.err != nil {
		return tw.err
	}
	if tw.left != 0 && e.err == nil {
		return errorf("tensor %s: WriteTo wrote %d bytes, want %d", quote(t.Name), size-tw.left, size)
	}
	return nil
}

// tensorWriter passes at most a tensor's size in bytes on to the encoder.
type tensorWriter struct {
	e    *encoder
	name string
	size uint64
	left uint64
	err  error // set when WriteTo writes too much
}

func (w *tensorWriter) Write(p []byte) (int, error) {
	if uint64(len(p)) > w.left {
		w.err = errorf("tensor %s: WriteTo wrote more than the tensor's %d bytes", quote(w.name), w.size)
		return 0, w.err
	}
	w.e.write(p)
	if w.e.err != nil {
		return 0, w.e.err
	}
	w.left -= uint64(len(p))
	return len(p), nil
}

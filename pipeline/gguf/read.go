package gguf

import (
	"cmp"
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"strings"

	"github.com/strata-llm/strata/kernels"
)

// Limits of the format, from the GGUF spec and GGML.
const (
	magic            = "GGUF"
	defaultAlignment = 32
	maxDims          = 4 // GGML_MAX_DIMS
	maxArrayDepth    = 8 // arrays of arrays nest at most this deep
	maxKeyLen        = 1<<16 - 1
	maxNameLen       = 1<<16 - 1 // read; Write keeps to GGML's 63 (maxWriteNameLen)
	maxAlignment     = 1 << 24   // a sane bound; real files use 32
	maxPrealloc      = 1 << 10   // entries allocated ahead of reading them

	// The fewest bytes one metadata entry and one tensor info take: they
	// bound the counts in the header before anything is allocated.
	minKVBytes         = 8 + 1 + 4 + 1         // key length, 1-byte key, type, 1-byte value
	minTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8 // name length, 1-byte name, n_dims, one dim, type, offset
)

// Parse parses an in-memory GGUF image. The File keeps referencing data (its
// TensorData views are subslices of it), so data must not be modified while
// the File is in use. Close on a parsed File only drops the reference.
//
// Every error about the contents wraps ErrFormat.
func Parse(data []byte) (*File, error) { return parse(data, true) }

// parse parses a GGUF image; without withData it reads only the header and
// does not require the tensors' data to lie within data (see ParseHeader).
func parse(data []byte, withData bool) (*File, error) {
	if len(data) < len(magic) {
		return nil, errorf("file of %d bytes is too short for a GGUF header", len(data))
	}
	if m := string(data[:len(magic)]); m != magic {
		switch m {
		case "lmgg", "fmgg", "tjgg":
			return nil, errorf("legacy GGML/GGJT file (magic %q): convert it to GGUF", m)
		}
		return nil, errorf("bad magic %q, want %q: not a GGUF file", m, magic)
	}
	d := decoder{b: data, off: len(magic)}
	version, err := d.u32("version")
	if err != nil {
		return nil, err
	}
	switch {
	case version == 2 || version == 3:
	case version == 1:
		return nil, errorf("version 1 is not supported (it used 32-bit counts); convert the file with a current llama.cpp")
	case bits.ReverseBytes32(version) >= 1 && bits.ReverseBytes32(version) <= 3:
		return nil, errorf("version %d looks byte-swapped: big-endian GGUF files are not supported", bits.ReverseBytes32(version))
	default:
		return nil, errorf("unsupported version %d, want 2 or 3", version)
	}
	nTensors, err := d.u64("tensor count")
	if err != nil {
		return nil, err
	}
	nKV, err := d.u64("metadata count")
	if err != nil {
		return nil, err
	}
	rem := uint64(d.rem())
	if nKV > rem/minKVBytes {
		return nil, errorf("%d metadata entries do not fit in the %d remaining bytes", nKV, rem)
	}
	rem -= nKV * minKVBytes
	if nTensors > rem/minTensorInfoBytes {
		return nil, errorf("%d tensor infos do not fit in the %d remaining bytes (after %d metadata entries of at least %d bytes)",
			nTensors, d.rem(), nKV, minKVBytes)
	}

	// The counts fit in the file, but a KV or a TensorInfo takes more memory
	// than its least size in the file: preallocate for typical files only,
	// and let the rest grow as entries are actually read.
	f := &File{
		Version:   version,
		Alignment: defaultAlignment,
		KV:        make([]KV, 0, min(nKV, maxPrealloc)),
		Tensors:   make([]TensorInfo, 0, min(nTensors, maxPrealloc)),
		keys:      make(map[string]int, min(nKV, maxPrealloc)),
		names:     make(map[string]int, min(nTensors, maxPrealloc)),
	}
	for i := range int(nKV) {
		if err := f.readKV(&d, i); err != nil {
			return nil, err
		}
	}
	if i, ok := f.keys[keyAlignment]; ok {
		a, err := alignmentOf(f.KV[i].Value)
		if err != nil {
			return nil, err
		}
		f.Alignment = a
	}
	for i := range int(nTensors) {
		if err := f.readTensorInfo(&d, i); err != nil {
			return nil, err
		}
	}
	f.DataOffset = alignUp(uint64(d.off), f.Alignment)
	n := uint64(math.MaxUint64) // without the data, only overflow and overlap
	if withData {
		n = uint64(len(data))
	}
	if err := f.checkData(n); err != nil {
		return nil, err
	}
	if withData {
		f.data = data
	}
	return f, nil
}

const keyAlignment = "general.alignment"

// alignmentOf checks a general.alignment value: any non-negative integer
// type (the spec says uint32), a power of two no larger than maxAlignment.
func alignmentOf(v Value) (uint64, error) {
	a, ok := v.uint()
	switch {
	case !ok:
		if i, isInt := v.int(); isInt {
			return 0, errorf("%s %d is negative", keyAlignment, i)
		}
		return 0, errorf("%s is a %s, want an unsigned integer", keyAlignment, v.Type)
	case a == 0:
		return 0, errorf("%s is 0", keyAlignment)
	case a&(a-1) != 0:
		return 0, errorf("%s %d is not a power of two", keyAlignment, a)
	case a > maxAlignment:
		return 0, errorf("%s %d is larger than the %d allowed", keyAlignment, a, maxAlignment)
	}
	return a, nil
}

func alignUp(x, a uint64) uint64 { return (x + a - 1) &^ (a - 1) }

func (f *File) readKV(d *decoder, i int) error {
	key, err := d.str("key")
	if err != nil {
		return within(err, "metadata key %d", i)
	}
	if len(key) == 0 {
		return errorf("metadata key %d: empty key", i)
	}
	if len(key) > maxKeyLen {
		return errorf("metadata key %d: key of %d bytes is longer than the %d GGUF allows", i, len(key), maxKeyLen)
	}
	k := string(key)
	if j, dup := f.keys[k]; dup {
		return errorf("metadata key %d (%s): duplicate of key %d", i, quote(k), j)
	}
	t, err := d.u32("value type")
	if err != nil {
		return within(err, "metadata key %d (%s)", i, quote(k))
	}
	v, err := d.value(ValueType(t))
	if err != nil {
		return within(err, "metadata key %d (%s)", i, quote(k))
	}
	f.keys[k] = len(f.KV)
	f.KV = append(f.KV, KV{Key: k, Value: v})
	return nil
}

func (f *File) readTensorInfo(d *decoder, i int) error {
	b, err := d.str("name")
	if err != nil {
		return within(err, "tensor %d", i)
	}
	if len(b) == 0 {
		return errorf("tensor %d: empty name", i)
	}
	if len(b) > maxNameLen {
		return errorf("tensor %d: name of %d bytes is longer than the %d allowed", i, len(b), maxNameLen)
	}
	name := string(b)
	if j, dup := f.names[name]; dup {
		return errorf("tensor %d (%s): duplicate of tensor %d", i, quote(name), j)
	}
	nDims, err := d.u32("dimension count")
	if err != nil {
		return within(err, "tensor %s", quote(name))
	}
	if nDims == 0 || nDims > maxDims {
		return errorf("tensor %s: %d dimensions, want 1 to %d", quote(name), nDims, maxDims)
	}
	dims := make([]uint64, nDims)
	for j := range dims {
		if dims[j], err = d.u64("dimension"); err != nil {
			return within(err, "tensor %s", quote(name))
		}
	}
	typ, err := d.u32("type")
	if err != nil {
		return within(err, "tensor %s", quote(name))
	}
	off, err := d.u64("data offset")
	if err != nil {
		return within(err, "tensor %s", quote(name))
	}
	size, err := tensorSize(kernels.DType(typ), dims)
	if err != nil {
		return within(err, "tensor %s", quote(name))
	}
	if off%f.Alignment != 0 {
		return errorf("tensor %s: data offset %d is not a multiple of the alignment %d", quote(name), off, f.Alignment)
	}
	f.names[name] = len(f.Tensors)
	f.Tensors = append(f.Tensors, TensorInfo{Name: name, Dims: dims, Type: kernels.DType(typ), Offset: off, Size: size})
	return nil
}

// tensorSize checks a tensor's shape and type and returns its size in bytes:
// the bytes of a row of dims[0] elements times the other dims.
func tensorSize(t kernels.DType, dims []uint64) (uint64, error) {
	if len(dims) == 0 || len(dims) > maxDims {
		return 0, errorf("%d dimensions, want 1 to %d", len(dims), maxDims)
	}
	elems := uint64(1)
	for j, n := range dims {
		if n == 0 {
			return 0, errorf("dims %v: dimension %d is 0", dims, j)
		}
		hi, lo := bits.Mul64(elems, n)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, errorf("dims %v: element count overflows", dims)
		}
		elems = lo
	}
	if !t.Known() {
		return 0, errorf("unknown tensor type %d", uint32(t))
	}
	if dims[0] > math.MaxInt || dims[0]/uint64(t.BlockSize()) > uint64(math.MaxInt/t.BlockBytes()) {
		return 0, errorf("dims %v: size in bytes overflows", dims) // RowBytes would overflow
	}
	row, ok := t.RowBytes(int(dims[0]))
	if !ok {
		return 0, errorf("dims %v: row of %d elements is not a multiple of the %s block size %d", dims, dims[0], t, t.BlockSize())
	}
	size := uint64(row)
	for _, n := range dims[1:] {
		hi, lo := bits.Mul64(size, n)
		if hi != 0 {
			return 0, errorf("dims %v: size in bytes overflows", dims)
		}
		size = lo
	}
	return size, nil
}

// checkData checks that every tensor's data lies within a file of n bytes
// and that no two tensors overlap.
func (f *File) checkData(n uint64) error {
	for i := range f.Tensors {
		t := &f.Tensors[i]
		start, c1 := bits.Add64(f.DataOffset, t.Offset, 0)
		end, c2 := bits.Add64(start, t.Size, 0)
		if c1|c2 != 0 {
			return errorf("tensor %s: data offset %d + size %d overflows", quote(t.Name), t.Offset, t.Size)
		}
		if end > n {
			return errorf("tensor %s: data [%d, %d) beyond end of file (size %d)", quote(t.Name), start, end, n)
		}
	}
	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(f.Tensors[a].Offset, f.Tensors[b].Offset) })
	for k := 1; k < len(order); k++ {
		p, q := &f.Tensors[order[k-1]], &f.Tensors[order[k]]
		if p.Offset+p.Size > q.Offset {
			return errorf("tensors %s at [%d, %d) and %s at [%d, %d) overlap",
				quote(p.Name), f.DataOffset+p.Offset, f.DataOffset+p.Offset+p.Size,
				quote(q.Name), f.DataOffset+q.Offset, f.DataOffset+q.Offset+q.Size)
		}
	}
	return nil
}

// decoder reads little-endian values from b, never past its end.
type decoder struct {
	b   []byte
	off int
}

func (d *decoder) rem() int { return len(d.b) - d.off }

// take returns the next n bytes; what names them in the error.
func (d *decoder) take(n int, what string) ([]byte, error) {
	if n > d.rem() {
		return nil, errorf("%s at offset %d: need %d bytes, %d remain (truncated file?)", what, d.off, n, d.rem())
	}
	p := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return p, nil
}

func (d *decoder) u32(what string) (uint32, error) {
	p, err := d.take(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(p), nil
}

func (d *decoder) u64(what string) (uint64, error) {
	p, err := d.take(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(p), nil
}

// str reads a length-prefixed string and returns its bytes, which alias b.
func (d *decoder) str(what string) ([]byte, error) {
	if d.rem() < 8 { // not d.u64(what + " length"): that would allocate per string
		return nil, errorf("%s length at offset %d: need 8 bytes, %d remain (truncated file?)", what, d.off, d.rem())
	}
	n := binary.LittleEndian.Uint64(d.b[d.off:])
	d.off += 8
	if n > uint64(d.rem()) {
		return nil, errorf("%s of %d bytes at offset %d does not fit in the %d remaining bytes", what, n, d.off-8, d.rem())
	}
	return d.take(int(n), what)
}

// value reads a value of type t.
func (d *decoder) value(t ValueType) (Value, error) {
	switch t {
	case TypeString:
		p, err := d.str("string")
		if err != nil {
			return Value{}, err
		}
		return Value{Type: t, V: string(p)}, nil
	case TypeArray:
		return d.array(1)
	}
	if !t.valid() {
		return Value{}, errorf("unknown value type %d", uint32(t))
	}
	p, err := d.take(t.minSize(), t.String())
	if err != nil {
		return Value{}, err
	}
	return Value{Type: t, V: scalar(t, p)}, nil
}

// scalar decodes a fixed-width value of type t from p.
func scalar(t ValueType, p []byte) any {
	le := binary.LittleEndian
	switch t {
	case TypeUint8:
		return p[0]
	case TypeInt8:
		return int8(p[0])
	case TypeBool:
		return p[0] != 0
	case TypeUint16:
		return le.Uint16(p)
	case TypeInt16:
		return int16(le.Uint16(p))
	case TypeUint32:
		return le.Uint32(p)
	case TypeInt32:
		return int32(le.Uint32(p))
	case TypeFloat32:
		return math.Float32frombits(le.Uint32(p))
	case TypeUint64:
		return le.Uint64(p)
	case TypeInt64:
		return int64(le.Uint64(p))
	case TypeFloat64:
		return math.Float64frombits(le.Uint64(p))
	}
	panic("gguf: scalar of type " + t.String()) // unreachable: callers check t
}

// array reads an array (its element type, count and elements) nested depth
// arrays deep (1 for a top-level value).
func (d *decoder) array(depth int) (Value, error) {
	if depth > maxArrayDepth {
		return Value{}, errorf("arrays nested deeper than %d", maxArrayDepth)
	}
	e, err := d.u32("array element type")
	if err != nil {
		return Value{}, err
	}
	et := ValueType(e)
	if !et.valid() {
		return Value{}, errorf("array of unknown value type %d", e)
	}
	count, err := d.u64("array length")
	if err != nil {
		return Value{}, err
	}
	if count > uint64(d.rem()/et.minSize()) {
		return Value{}, errorf("array of %d %s does not fit in the %d remaining bytes", count, et.plural(), d.rem())
	}
	n := int(count)
	v := Value{Type: TypeArray, Elem: et}
	switch et {
	case TypeString:
		v.V, err = d.strings(n)
	case TypeArray:
		v.V, err = d.arrays(n, depth)
	default:
		p, _ := d.take(n*et.minSize(), "") // fits: checked above
		v.V = numbers(et, p, n)
	}
	if err != nil {
		return Value{}, err
	}
	return v, nil
}

// arrays reads n arrays. The slice grows as they are read: a Value takes
// twice the least size of an array in the file, and nested arrays that each
// preallocated for the bytes left could together claim many times the file.
func (d *decoder) arrays(n, depth int) ([]Value, error) {
	out := make([]Value, 0, min(n, maxPrealloc))
	for i := range n {
		v, err := d.array(depth + 1)
		if err != nil {
			return nil, within(err, "element %d", i)
		}
		out = append(out, v)
	}
	return out, nil
}

// strings reads n strings. They share one allocation: a vocabulary of 50k
// tokens costs two allocations, not 50k.
func (d *decoder) strings(n int) ([]string, error) {
	start, total := d.off, 0
	for i := range n {
		p, err := d.str("string")
		if err != nil {
			return nil, within(err, "element %d", i)
		}
		total += len(p)
	}
	end := d.off
	var sb strings.Builder
	sb.Grow(total)
	for d.off = start; d.off < end; {
		p, _ := d.str("")
		sb.Write(p)
	}
	all := sb.String()
	out := make([]string, n)
	pos := 0
	d.off = start
	for i := range out {
		p, _ := d.str("")
		out[i] = all[pos : pos+len(p)]
		pos += len(p)
	}
	return out, nil
}

// numbers decodes n fixed-width values of type t from p into a typed slice.
func numbers(t ValueType, p []byte, n int) any {
	le := binary.LittleEndian
	switch t {
	case TypeUint8:
		out := make([]uint8, n)
		copy(out, p)
		return out
	case TypeInt8:
		return conv(make([]int8, n), func(i int) int8 { return int8(p[i]) })
	case TypeBool:
		return conv(make([]bool, n), func(i int) bool { return p[i] != 0 })
	case TypeUint16:
		return conv(make([]uint16, n), func(i int) uint16 { return le.Uint16(p[2*i:]) })
	case TypeInt16:
		return conv(make([]int16, n), func(i int) int16 { return int16(le.Uint16(p[2*i:])) })
	case TypeUint32:
		return conv(make([]uint32, n), func(i int) uint32 { return le.Uint32(p[4*i:]) })
	case TypeInt32:
		return conv(make([]int32, n), func(i int) int32 { return int32(le.Uint32(p[4*i:])) })
	case TypeFloat32:
		return conv(make([]float32, n), func(i int) float32 { return math.Float32frombits(le.Uint32(p[4*i:])) })
	case TypeUint64:
		return conv(make([]uint64, n), func(i int) uint64 { return le.Uint64(p[8*i:]) })
	case TypeInt64:
		return conv(make([]int64, n), func(i int) int64 { return int64(le.Uint64(p[8*i:])) })
	case TypeFloat64:
		return conv(make([]float64, n), func(i int) float64 { return math.Float64frombits(le.Uint64(p[8*i:])) })
	}
	panic("gguf: numbers of type " + t.String()) // unreachable: callers check t
}

func conv[T any](out []T, at func(i int) T) []T {
	for i := range out {
		out[i] = at(i)
	}
	return out
}

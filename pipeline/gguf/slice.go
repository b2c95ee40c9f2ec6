package gguf

import (
	"bufio"
	"bytes"
	"math"
	"math/bits"
	"slices"
)

// ParseHeader parses the header of a GGUF file: b holds [0, DataOffset) of
// the file, or more. It validates the metadata and the tensor table as
// Parse does (tensor shapes and types, overflow, overlap) except that the
// tensors' data need not lie within b. The File does not reference b (its
// metadata is copied out), and its TensorData returns nil for every tensor.
//
// DataOffset tells how long the header is: a caller reading a file from
// the network parses a prefix, and fetches the rest once it knows where
// the data starts. Every error about the contents wraps ErrFormat.
func ParseHeader(b []byte) (*File, error) { return parse(b, false) }

// SliceLayout is the layout of a GGUF slice: a file holding the metadata of
// another GGUF file and some of its tensors. Writing Header at offset 0 and
// each tensor's bytes at its Offset, in a file of TotalSize bytes (zeros
// elsewhere), makes a GGUF file that Open reads.
type SliceLayout struct {
	// Header is the slice's header: magic, metadata, tensor table and the
	// padding up to DataOffset. It belongs to the caller.
	Header     []byte
	DataOffset int64
	// Tensors are the slice's tensors, in the order of the source file's
	// tensor table.
	Tensors []SliceTensor
	// TotalSize is the size of the slice file, the padding after the last
	// tensor included (as Write lays it out).
	TotalSize int64
}

// SliceTensor is where one tensor lies in a slice and in its source file.
type SliceTensor struct {
	Name string
	// Offset is absolute in the slice file; Source absolute in the source
	// file (DataOffset plus the tensor's Offset).
	Offset, Source int64
	Size           int64
}

// PlanSlice lays out a GGUF file holding h's metadata, then extra (a key of
// extra that h has replaces its value in place; the others are appended),
// and the tensors of h named in names, in h's order and with h's
// alignment. The layout is that of Write: the slice is what Write would
// make of the same metadata and tensors, except that it keeps h's
// general.alignment as it is (of any integer type), keeps to no limit of
// Write's on tensor names, and pads the header to the alignment even when
// there are no tensors.
//
// An unknown or repeated name, or an extra KV that is malformed or sets
// general.alignment, is an error wrapping ErrFormat.
func PlanSlice(h *File, names []string, extra []KV) (*SliceLayout, error) {
	if _, err := checkKVs(extra); err != nil {
		return nil, within(err, "slice metadata")
	}
	kvs := slices.Clone(h.KV)
	for _, kv := range extra {
		if kv.Key == keyAlignment {
			return nil, errorf("slice metadata: %s cannot be changed", keyAlignment)
		}
		if i, ok := h.keys[kv.Key]; ok {
			kvs[i] = kv
		} else {
			kvs = append(kvs, kv)
		}
	}
	idx := make([]int, 0, len(names))
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		i, ok := h.names[n]
		switch {
		case !ok:
			return nil, errorf("slice: no tensor %s in the file", quote(n))
		case seen[n]:
			return nil, errorf("slice: tensor %s named twice", quote(n))
		}
		seen[n] = true
		idx = append(idx, i)
	}
	slices.Sort(idx)

	// The data section: each tensor at the next aligned offset.
	a := h.Alignment
	rel := make([]uint64, len(idx))
	off := uint64(0)
	for k, i := range idx {
		t := &h.Tensors[i]
		rel[k] = off
		end, c1 := bits.Add64(off, t.Size, 0)
		_, c2 := bits.Add64(end, a-1, 0)
		if c1|c2 != 0 || end > math.MaxInt64 {
			return nil, errorf("slice: data section too large at tensor %s", quote(t.Name))
		}
		off = alignUp(end, a)
	}
	dataSize := off

	var buf bytes.Buffer
	e := &encoder{w: bufio.NewWriter(&buf)}
	e.write([]byte(magic))
	e.u32(3)
	e.u64(uint64(len(idx)))
	e.u64(uint64(len(kvs)))
	for _, kv := range kvs {
		e.str(kv.Key)
		e.u32(uint32(kv.Value.Type))
		e.value(kv.Value)
	}
	for k, i := range idx {
		t := &h.Tensors[i]
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, n := range t.Dims {
			e.u64(n)
		}
		e.u32(uint32(t.Type))
		e.u64(rel[k])
	}
	e.pad(a)
	if e.err == nil {
		e.err = e.w.Flush()
	}
	if e.err != nil { // a bytes.Buffer fails only by panicking; kept for form
		return nil, e.err
	}
	header := buf.Bytes()
	dataOffset := uint64(len(header))
	total, c := bits.Add64(dataOffset, dataSize, 0)
	if c != 0 || total > math.MaxInt64 || dataSize > math.MaxInt64 {
		return nil, errorf("slice: file larger than 2^63 bytes")
	}
	l := &SliceLayout{
		Header:     header,
		DataOffset: int64(dataOffset),
		Tensors:    make([]SliceTensor, len(idx)),
		TotalSize:  int64(total),
	}
	for k, i := range idx {
		t := &h.Tensors[i]
		src, c := bits.Add64(h.DataOffset, t.Offset, 0)
		if c != 0 || src > math.MaxInt64 || t.Size > math.MaxInt64-src {
			return nil, errorf("slice: tensor %s lies beyond 2^63 bytes in the source", quote(t.Name))
		}
		l.Tensors[k] = SliceTensor{Name: t.Name, Offset: int64(dataOffset + rel[k]), Source: int64(src), Size: int64(t.Size)}
	}
	return l, nil
}

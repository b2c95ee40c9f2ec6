package kernels

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"testing"
)

// This file holds a minimal, test-only GGUF tensor locator: kernels must not
// import pipeline/gguf, and the tests only need each tensor's type, dims and
// bytes.

type ggufTensor struct {
	Name string
	Type DType
	Dims []uint64 // GGUF order: Dims[0] is the row length
	Data []byte
}

// Rows and Cols of a 1-D or 2-D tensor.
func (t ggufTensor) Cols() int { return int(t.Dims[0]) }
func (t ggufTensor) Rows() int {
	r := 1
	for _, d := range t.Dims[1:] {
		r *= int(d)
	}
	return r
}

type ggufReader struct {
	b   []byte
	off int
	err error
}

func (r *ggufReader) next(n int) []byte {
	if r.err != nil || n < 0 || r.off+n > len(r.b) {
		if r.err == nil {
			r.err = io.ErrUnexpectedEOF
		}
		return make([]byte, max(n, 0))
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}
func (r *ggufReader) u32() uint32 { return binary.LittleEndian.Uint32(r.next(4)) }
func (r *ggufReader) u64() uint64 { return binary.LittleEndian.Uint64(r.next(8)) }
func (r *ggufReader) str() string { return string(r.next(int(r.u64()))) }
func (r *ggufReader) skip(typ uint32) {
	sizes := map[uint32]int{0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
	switch typ {
	case 8:
		r.str()
	case 9:
		et, n := r.u32(), r.u64()
		for range n {
			r.skip(et)
			if r.err != nil {
				return
			}
		}
	default:
		sz, ok := sizes[typ]
		if !ok {
			r.err = fmt.Errorf("gguf value type %d", typ)
			return
		}
		r.next(sz)
	}
}

// readGGUF returns the tensors of a GGUF v2/v3 file in file order.
func readGGUF(tb testing.TB, path string) []ggufTensor {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	r := &ggufReader{b: b}
	if string(r.next(4)) != "GGUF" {
		tb.Fatalf("%s: not a GGUF file", path)
	}
	if v := r.u32(); v < 2 {
		tb.Fatalf("%s: GGUF version %d", path, v)
	}
	nt, nkv := r.u64(), r.u64()
	align := uint64(32)
	for range nkv {
		key, typ := r.str(), r.u32()
		if key == "general.alignment" && typ == 4 {
			align = uint64(r.u32())
			continue
		}
		r.skip(typ)
	}
	type info struct {
		t   ggufTensor
		off uint64
	}
	infos := make([]info, nt)
	for i := range infos {
		t := &infos[i].t
		t.Name = r.str()
		t.Dims = make([]uint64, r.u32())
		for d := range t.Dims {
			t.Dims[d] = r.u64()
		}
		t.Type = DType(r.u32())
		infos[i].off = r.u64()
	}
	if r.err != nil {
		tb.Fatalf("%s: %v", path, r.err)
	}
	base := (uint64(r.off) + align - 1) / align * align
	out := make([]ggufTensor, nt)
	for i, in := range infos {
		t := in.t
		n := 1
		for _, d := range t.Dims {
			n *= int(d)
		}
		size, ok := t.Type.RowBytes(n)
		if !ok || base+in.off+uint64(size) > uint64(len(b)) {
			tb.Fatalf("%s: tensor %s (%v %v) out of bounds", path, t.Name, t.Type, t.Dims)
		}
		t.Data = b[base+in.off : base+in.off+uint64(size)]
		out[i] = t
	}
	return out
}

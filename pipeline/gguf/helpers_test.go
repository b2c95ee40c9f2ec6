package gguf

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"reflect"
	"testing"

	"github.com/strata-llm/strata/kernels"
)

// arr builds an array value.
func arr[T any](elem ValueType, s []T) Value {
	return Value{Type: TypeArray, Elem: elem, V: s}
}

func arrays(s ...Value) Value {
	if s == nil {
		s = []Value{} // as Parse returns an empty array
	}
	return Value{Type: TypeArray, Elem: TypeArray, V: s}
}

// diffKVs describes the first difference between two metadata lists, or
// returns "".
func diffKVs(got, want []KV) string {
	for i := range min(len(got), len(want)) {
		if !reflect.DeepEqual(got[i], want[i]) {
			return fmt.Sprintf("entry %d:\n got %#v\nwant %#v", i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d entries, want %d", len(got), len(want))
	}
	return ""
}

// allKVs has a value of every type: every scalar, an array of every element
// type, empty arrays, and arrays of arrays nested three deep. Its strings
// are not all valid UTF-8, as in some vocabularies.
func allKVs() []KV {
	return []KV{
		{"general.architecture", Value{Type: TypeString, V: "llama"}},
		{"test.uint8", Value{Type: TypeUint8, V: uint8(200)}},
		{"test.int8", Value{Type: TypeInt8, V: int8(-100)}},
		{"test.uint16", Value{Type: TypeUint16, V: uint16(60000)}},
		{"test.int16", Value{Type: TypeInt16, V: int16(-30000)}},
		{"test.uint32", Value{Type: TypeUint32, V: uint32(4_000_000_000)}},
		{"test.int32", Value{Type: TypeInt32, V: int32(-2_000_000_000)}},
		{"test.float32", Value{Type: TypeFloat32, V: float32(1.5)}},
		{"test.bool", Value{Type: TypeBool, V: true}},
		{"test.string", Value{Type: TypeString, V: "h\u00e9llo\x00\xff"}},
		{"test.empty_string", Value{Type: TypeString, V: ""}},
		{"test.uint64", Value{Type: TypeUint64, V: uint64(1<<63 + 5)}},
		{"test.int64", Value{Type: TypeInt64, V: int64(-1 << 62)}},
		{"test.float64", Value{Type: TypeFloat64, V: math.Pi}},
		{"test.uint8s", arr(TypeUint8, []uint8{0, 1, 255})},
		{"test.int8s", arr(TypeInt8, []int8{-128, 0, 127})},
		{"test.uint16s", arr(TypeUint16, []uint16{1, 65535})},
		{"test.int16s", arr(TypeInt16, []int16{-32768, 32767})},
		{"test.uint32s", arr(TypeUint32, []uint32{7, math.MaxUint32})},
		{"test.int32s", arr(TypeInt32, []int32{2, 3, -6})},
		{"test.float32s", arr(TypeFloat32, []float32{0, -1.25, float32(math.Inf(1))})},
		{"test.bools", arr(TypeBool, []bool{true, false, true})},
		{"test.strings", arr(TypeString, []string{"<unk>", "", "\xe2\x96\x81the", "\xff\xfe"})},
		{"test.uint64s", arr(TypeUint64, []uint64{math.MaxUint64})},
		{"test.int64s", arr(TypeInt64, []int64{math.MinInt64, 0})},
		{"test.float64s", arr(TypeFloat64, []float64{math.SmallestNonzeroFloat64, -0.5})},
		{"test.empty_uint8s", arr(TypeUint8, []uint8{})},
		{"test.empty_strings", arr(TypeString, []string{})},
		{"test.empty_arrays", arrays()},
		{"test.arrays", arrays(
			arr(TypeInt32, []int32{1, 2}),
			arr(TypeString, []string{"x", "yz"}),
			arr(TypeFloat64, []float64{}),
			arrays(arrays(arr(TypeBool, []bool{true})), arrays()),
		)},
	}
}

// fill returns n deterministic bytes that differ with seed.
func fill(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// someTensors has tensors of several types and ranks, the last streamed.
func someTensors() []WriteTensor {
	ts := []WriteTensor{
		{Name: "token_embd.weight", Type: kernels.Q4_0, Dims: []uint64{64, 3}},
		{Name: "blk.0.attn_q.weight", Type: kernels.F32, Dims: []uint64{4, 3}},
		{Name: "blk.0.ffn_down.weight", Type: kernels.Q6_K, Dims: []uint64{256, 2}},
		{Name: "blk.0.attn_norm.weight", Type: kernels.F16, Dims: []uint64{7}},
		{Name: "output.weight", Type: kernels.Q8_0, Dims: []uint64{32, 1, 2}},
		{Name: "blk.0.ffn_gate.weight", Type: kernels.Q4_K, Dims: []uint64{256, 1}},
	}
	for i := range ts {
		ts[i].Data = fill(mustSize(ts[i].Type, ts[i].Dims), byte(i))
	}
	streamed := fill(2*2*2*2*2, 99)
	ts = append(ts, WriteTensor{
		Name: "rope_freqs.weight", Type: kernels.BF16, Dims: []uint64{2, 2, 2, 2},
		WriteTo: func(w io.Writer) error {
			for p := streamed; len(p) > 0; { // in odd-sized pieces
				n := min(5, len(p))
				if _, err := w.Write(p[:n]); err != nil {
					return err
				}
				p = p[n:]
			}
			return nil
		},
	})
	return ts
}

// tensorBytes returns what t writes.
func tensorBytes(t *testing.T, wt WriteTensor) []byte {
	t.Helper()
	if wt.Data != nil {
		return wt.Data
	}
	var b bytes.Buffer
	if err := wt.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func mustSize(t kernels.DType, dims []uint64) int {
	n, err := tensorSize(t, dims)
	if err != nil {
		panic(err)
	}
	return int(n)
}

// build writes kvs and tensors to memory.
func build(t testing.TB, kvs []KV, ts []WriteTensor) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, kvs, ts); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return b.Bytes()
}

// tensorsOf returns f's tensors as WriteTensors viewing f's data.
func tensorsOf(f *File) []WriteTensor {
	ts := make([]WriteTensor, len(f.Tensors))
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		ts[i] = WriteTensor{Name: ti.Name, Type: ti.Type, Dims: ti.Dims, Data: f.TensorData(ti)}
	}
	return ts
}

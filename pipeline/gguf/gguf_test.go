package gguf

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/strata-llm/strata/kernels"
)

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		alignment uint32 // 0: no general.alignment key
		tensors   bool
	}{
		{"default alignment", 0, true},
		{"alignment 64", 64, true},
		{"alignment 1", 1, true},
		{"metadata only", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kvs := allKVs()
			want := uint64(32)
			if tc.alignment != 0 {
				kvs = append(kvs, KV{"general.alignment", Value{Type: TypeUint32, V: tc.alignment}})
				want = uint64(tc.alignment)
			}
			var ts []WriteTensor
			if tc.tensors {
				ts = someTensors()
			}
			data := build(t, kvs, ts)

			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			parsed, err := Parse(data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			opened, err := Open(path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer opened.Close()

			for _, f := range []*File{parsed, opened} {
				if f.Version != 3 || f.Alignment != want || f.DataOffset%want != 0 {
					t.Errorf("Version %d, Alignment %d, DataOffset %d; want 3, %d, aligned", f.Version, f.Alignment, f.DataOffset, want)
				}
				if d := diffKVs(f.KV, kvs); d != "" {
					t.Errorf("KV differ: %s", d)
				}
				if len(f.Tensors) != len(ts) {
					t.Fatalf("%d tensors, want %d", len(f.Tensors), len(ts))
				}
				for i, wt := range ts {
					ti := &f.Tensors[i]
					size := uint64(mustSize(wt.Type, wt.Dims))
					if ti.Name != wt.Name || ti.Type != wt.Type || !slices.Equal(ti.Dims, wt.Dims) || ti.Size != size || ti.Offset%want != 0 {
						t.Errorf("tensor %d: %+v, want %s %s %v size %d at an aligned offset", i, *ti, wt.Name, wt.Type, wt.Dims, size)
					}
					if got, ok := f.Tensor(wt.Name); !ok || got != ti {
						t.Errorf("Tensor(%q) = %p, %v; want %p", wt.Name, got, ok, ti)
					}
					if got := f.TensorData(ti); !bytes.Equal(got, tensorBytes(t, wt)) {
						t.Errorf("tensor %q: data differ", wt.Name)
					}
				}
				if _, ok := f.Tensor("absent"); ok {
					t.Error(`Tensor("absent") found`)
				}
			}
			// Write(Parse(x)) reproduces x.
			if again := build(t, parsed.KV, tensorsOf(parsed)); !bytes.Equal(again, data) {
				t.Error("rewriting the parsed file changed its bytes")
			}
		})
	}
}

func TestAccessors(t *testing.T) {
	f, err := Parse(build(t, allKVs(), nil))
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		v  any
		ok bool
	}
	two := func(v any, ok bool) res { return res{v, ok} }
	for _, tc := range []struct {
		name      string
		got, want res
	}{
		{"String", two(f.String("test.string")), res{"h\u00e9llo\x00\xff", true}},
		{"String of int", two(f.String("test.int8")), res{"", false}},
		{"String absent", two(f.String("nope")), res{"", false}},
		{"Uint uint8", two(f.Uint("test.uint8")), res{uint64(200), true}},
		{"Uint uint64", two(f.Uint("test.uint64")), res{uint64(1<<63 + 5), true}},
		{"Uint int32 negative", two(f.Uint("test.int32")), res{uint64(0), false}},
		{"Uint float", two(f.Uint("test.float32")), res{uint64(0), false}},
		{"Int int8", two(f.Int("test.int8")), res{int64(-100), true}},
		{"Int uint32", two(f.Int("test.uint32")), res{int64(4_000_000_000), true}},
		{"Int uint64 too big", two(f.Int("test.uint64")), res{int64(0), false}},
		{"Int string", two(f.Int("test.string")), res{int64(0), false}},
		{"Float float32", two(f.Float("test.float32")), res{1.5, true}},
		{"Float float64", two(f.Float("test.float64")), res{math.Pi, true}},
		{"Float int16", two(f.Float("test.int16")), res{-30000.0, true}},
		{"Float uint64", two(f.Float("test.uint64")), res{float64(1<<63 + 5), true}},
		{"Float bool", two(f.Float("test.bool")), res{0.0, false}},
		{"Bool", two(f.Bool("test.bool")), res{true, true}},
		{"Bool of uint8", two(f.Bool("test.uint8")), res{false, false}},
		{"Strings", two(f.Strings("test.strings")), res{[]string{"<unk>", "", "\xe2\x96\x81the", "\xff\xfe"}, true}},
		{"Strings empty", two(f.Strings("test.empty_strings")), res{[]string{}, true}},
		{"Strings of string", two(f.Strings("test.string")), res{[]string(nil), false}},
		{"Float32s", two(f.Float32s("test.float32s")), res{[]float32{0, -1.25, float32(math.Inf(1))}, true}},
		{"Float32s of float64s", two(f.Float32s("test.float64s")), res{[]float32(nil), false}},
		{"Int32s", two(f.Int32s("test.int32s")), res{[]int32{2, 3, -6}, true}},
		{"Int32s of uint8s", two(f.Int32s("test.uint8s")), res{[]int32{0, 1, 255}, true}},
		{"Int32s of int8s", two(f.Int32s("test.int8s")), res{[]int32{-128, 0, 127}, true}},
		{"Int32s of uint16s", two(f.Int32s("test.uint16s")), res{[]int32{1, 65535}, true}},
		{"Int32s of int16s", two(f.Int32s("test.int16s")), res{[]int32{-32768, 32767}, true}},
		{"Int32s of uint32s too big", two(f.Int32s("test.uint32s")), res{[]int32(nil), false}},
		{"Int32s of int64s", two(f.Int32s("test.int64s")), res{[]int32(nil), false}},
		{"Int32s of int32", two(f.Int32s("test.int32")), res{[]int32(nil), false}},
		{"Architecture", res{f.Architecture(), true}, res{"llama", true}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
	if v, ok := f.Get("test.arrays"); !ok || v.Type != TypeArray || v.Elem != TypeArray || len(v.V.([]Value)) != 4 {
		t.Errorf("Get(test.arrays) = %#v, %v", v, ok)
	}
	if _, ok := f.Get("nope"); ok {
		t.Error("Get(nope) found")
	}

	small, err := Parse(build(t, []KV{{"x.uint32s", arr(TypeUint32, []uint32{0, math.MaxInt32})}}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := small.Int32s("x.uint32s"); !ok || !slices.Equal(got, []int32{0, math.MaxInt32}) {
		t.Errorf("Int32s of small uint32s = %v, %v", got, ok)
	}
	if got := small.Architecture(); got != "" {
		t.Errorf("Architecture without the key = %q", got)
	}
}

func TestClose(t *testing.T) {
	data := build(t, allKVs(), someTensors())
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ti := &f.Tensors[0]
	if f.TensorData(ti) == nil {
		t.Fatal("no data before Close")
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := f.TensorData(ti); got != nil {
		t.Errorf("TensorData after Close = %d bytes, want nil", len(got))
	}
	if got := f.Architecture(); got != "llama" {
		t.Errorf("metadata after Close: Architecture = %q", got)
	}
	if got := f.TensorData(&TensorInfo{Offset: math.MaxUint64 - 3, Size: 8}); got != nil {
		t.Errorf("TensorData of an overflowing range = %d bytes", len(got))
	}
	if got := f.TensorData(nil); got != nil {
		t.Error("TensorData(nil) != nil")
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "absent.gguf")); err == nil || errors.Is(err, ErrFormat) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(absent) = %v, want a not-exist error that is not ErrFormat", err)
	}
	for name, data := range map[string][]byte{
		"empty.gguf": nil,
		"text.gguf":  []byte("hello, world"),
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path)
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), path) {
			t.Errorf("Open(%s) = %v, want ErrFormat naming the path", name, err)
		}
	}
}

func TestWriteErrors(t *testing.T) {
	okKV := []KV{{"a", Value{Type: TypeUint32, V: uint32(1)}}}
	okT := func() WriteTensor {
		return WriteTensor{Name: "w", Type: kernels.F32, Dims: []uint64{2, 2}, Data: make([]byte, 16)}
	}
	with := func(change func(*WriteTensor)) []WriteTensor {
		t := okT()
		change(&t)
		return []WriteTensor{t}
	}
	deep := arr(TypeUint8, []uint8{})
	for range maxArrayDepth {
		deep = arrays(deep)
	}
	for _, tc := range []struct {
		name    string
		kvs     []KV
		tensors []WriteTensor
		want    string
	}{
		{"empty key", []KV{{"", Value{Type: TypeBool, V: true}}}, nil, "metadata key 0: empty key"},
		{"long key", []KV{{strings.Repeat("k", 1<<16), Value{Type: TypeBool, V: true}}}, nil, "key of 65536 bytes"},
		{"duplicate key", append(okKV, okKV...), nil, `metadata key 1 ("a"): duplicate of key 0`},
		{"mismatched scalar", []KV{{"a", Value{Type: TypeUint32, V: 1}}}, nil, `metadata key 0 ("a"): value of type uint32 holds a Go int`},
		{"mismatched array", []KV{{"a", arr(TypeString, []int32{1})}}, nil, "array of strings holds a Go []int32"},
		{"nil array", []KV{{"a", Value{Type: TypeArray, Elem: TypeInt32}}}, nil, "array of int32 values holds a Go <nil>"},
		{"unknown type", []KV{{"a", Value{Type: 13, V: 1}}}, nil, "unknown value type 13"},
		{"unknown elem type", []KV{{"a", Value{Type: TypeArray, Elem: 42, V: 1}}}, nil, "array of unknown value type 42"},
		{"array of non-arrays", []KV{{"a", arrays(Value{Type: TypeUint8, V: uint8(1)})}}, nil, "element 0 of an array of arrays is a uint8"},
		{"nested too deep", []KV{{"a", deep}}, nil, "nested deeper than 8"},
		{"alignment type", []KV{{"general.alignment", Value{Type: TypeUint64, V: uint64(32)}}}, nil, "general.alignment is a uint64, want a uint32"},
		{"alignment 0", []KV{{"general.alignment", Value{Type: TypeUint32, V: uint32(0)}}}, nil, "general.alignment is 0"},
		{"alignment 24", []KV{{"general.alignment", Value{Type: TypeUint32, V: uint32(24)}}}, nil, "not a power of two"},
		{"alignment 1<<31", []KV{{"general.alignment", Value{Type: TypeUint32, V: uint32(1 << 31)}}}, nil, "larger than"},
		{"empty name", nil, with(func(t *WriteTensor) { t.Name = "" }), "tensor 0: empty name"},
		{"long name", nil, with(func(t *WriteTensor) { t.Name = strings.Repeat("n", 64) }), "name of 64 bytes is longer than GGML's limit of 63"},
		{"duplicate name", nil, append(with(func(*WriteTensor) {}), okT()), `tensor 1 ("w"): duplicate of tensor 0`},
		{"no dims", nil, with(func(t *WriteTensor) { t.Dims = nil }), "0 dimensions, want 1 to 4"},
		{"5 dims", nil, with(func(t *WriteTensor) { t.Dims = []uint64{1, 1, 1, 1, 1} }), "5 dimensions"},
		{"zero dim", nil, with(func(t *WriteTensor) { t.Dims = []uint64{4, 0} }), "dimension 1 is 0"},
		{"overflow", nil, with(func(t *WriteTensor) { t.Dims = []uint64{1 << 32, 1 << 32} }), "element count overflows"},
		{"unknown type", nil, with(func(t *WriteTensor) { t.Type = 99 }), "unknown tensor type 99"},
		{"partial block", nil, with(func(t *WriteTensor) { t.Type = kernels.Q4_0; t.Dims = []uint64{48} }), "row of 48 elements is not a multiple of the Q4_0 block size 32"},
		{"short data", nil, with(func(t *WriteTensor) { t.Data = t.Data[:15] }), `tensor "w": 15 bytes of data, want 16 for F32 [2 2]`},
		{"no data", nil, with(func(t *WriteTensor) { t.Data = nil }), "neither Data nor WriteTo"},
		{"both", nil, with(func(t *WriteTensor) { t.WriteTo = func(io.Writer) error { return nil } }), "both Data and WriteTo"},
		{"streamed short", nil, with(func(t *WriteTensor) {
			t.Data = nil
			t.WriteTo = func(w io.Writer) error { _, err := w.Write(make([]byte, 15)); return err }
		}), `tensor "w": WriteTo wrote 15 bytes, want 16`},
		{"streamed long", nil, with(func(t *WriteTensor) {
			t.Data = nil
			t.WriteTo = func(w io.Writer) error { _, err := w.Write(make([]byte, 17)); return err }
		}), `tensor "w": WriteTo wrote more than the tensor's 16 bytes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			err := Write(&b, tc.kvs, tc.tensors)
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Write = %v, want ErrFormat with %q", err, tc.want)
			}
			if strings.HasPrefix(tc.name, "streamed") {
				return // the header went out before the tensor failed
			}
			if b.Len() != 0 {
				t.Errorf("Write wrote %d bytes before failing validation", b.Len())
			}
		})
	}
}

type failWriter struct{ left int }

var errDisk = errors.New("disk full")

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		w.left = 0
		return n, errDisk
	}
	w.left -= len(p)
	return len(p), nil
}

func TestWriteIOErrors(t *testing.T) {
	kvs, ts := allKVs(), someTensors()
	size := len(build(t, kvs, ts))
	for _, n := range []int{0, 10, size / 2, size - 1} {
		if err := Write(&failWriter{left: n}, kvs, ts); !errors.Is(err, errDisk) || errors.Is(err, ErrFormat) {
			t.Errorf("Write to a writer failing after %d bytes = %v, want the writer's error", n, err)
		}
	}
	errGen := errors.New("generator failed")
	bad := []WriteTensor{{Name: "w", Type: kernels.F32, Dims: []uint64{4}, WriteTo: func(io.Writer) error { return errGen }}}
	if err := Write(io.Discard, nil, bad); !errors.Is(err, errGen) || !strings.Contains(err.Error(), `"w"`) {
		t.Errorf("Write with a failing WriteTo = %v", err)
	}
}

func TestValueTypeString(t *testing.T) {
	if got := TypeFloat64.String(); got != "float64" {
		t.Errorf("TypeFloat64 = %q", got)
	}
	if got := ValueType(13).String(); got != "ValueType(13)" {
		t.Errorf("ValueType(13) = %q", got)
	}
}

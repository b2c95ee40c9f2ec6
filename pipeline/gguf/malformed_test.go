package gguf

import (
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/strata-llm/strata/kernels"
)

// raw builds GGUF bytes field by field, valid or not.
type raw []byte

func header(version uint32, nTensors, nKV uint64) raw {
	return raw("GGUF").u32(version).u64(nTensors).u64(nKV)
}

func (r raw) u32(x uint32) raw { return binary.LittleEndian.AppendUint32(r, x) }
func (r raw) u64(x uint64) raw { return binary.LittleEndian.AppendUint64(r, x) }
func (r raw) str(s string) raw { return append(r.u64(uint64(len(s))), s...) }
func (r raw) zeros(n int) raw  { return append(r, make([]byte, n)...) }

// kv appends a key and a value type; the value follows.
func (r raw) kv(key string, t ValueType) raw { return r.str(key).u32(uint32(t)) }

func (r raw) tensor(name string, typ kernels.DType, off uint64, dims ...uint64) raw {
	r = r.str(name).u32(uint32(len(dims)))
	for _, n := range dims {
		r = r.u64(n)
	}
	return r.u32(uint32(typ)).u64(off)
}

// data pads r to 32 and appends n bytes of tensor data.
func (r raw) data(n int) raw { return r.zeros(int(alignUp(uint64(len(r)), 32)) - len(r) + n) }

// nested returns an array value nested depth arrays deep (the type tag of
// the outermost is not included).
func nested(depth int) raw {
	var r raw
	for range depth - 1 {
		r = r.u32(uint32(TypeArray)).u64(1)
	}
	return r.u32(uint32(TypeUint8)).u64(0)
}

func TestMalformed(t *testing.T) {
	f32 := kernels.F32
	for _, tc := range []struct {
		name string
		data raw
		want string
	}{
		{"empty", nil, "file of 0 bytes is too short"},
		{"bad magic", raw("GGUX").u32(3).u64(0).u64(0), `bad magic "GGUX"`},
		{"ggjt", raw("tjgg").u32(3), "legacy GGML/GGJT file"},
		{"no version", raw("GGUF").zeros(2), "version at offset 4: need 4 bytes, 2 remain"},
		{"version 1", header(1, 0, 0), "version 1 is not supported (it used 32-bit counts)"},
		{"big-endian", header(3<<24, 0, 0), "version 3 looks byte-swapped: big-endian"},
		{"version 4", header(4, 0, 0), "unsupported version 4, want 2 or 3"},
		{"no counts", raw("GGUF").u32(3).u64(0), "metadata count at offset 16: need 8 bytes, 0 remain"},
		{"huge kv count", header(3, 0, 1<<62), "4611686018427387904 metadata entries do not fit in the 0 remaining bytes"},
		{"max kv count", header(3, 0, 1<<64-1).zeros(100), "18446744073709551615 metadata entries do not fit in the 100 remaining bytes"},
		{"huge tensor count", header(3, 1<<62, 0).zeros(64), "4611686018427387904 tensor infos do not fit in the 64 remaining bytes"},
		{"kvs leave no room for tensors", header(3, 1, 2).zeros(28 + 32), "1 tensor infos do not fit"},
		{"truncated kv", header(3, 0, 1).kv("general.name", TypeString).u64(5).zeros(2),
			`metadata key 0 ("general.name"): string of 5 bytes at offset 48 does not fit in the 2 remaining bytes`},
		{"huge string array", header(3, 0, 1).kv("tokenizer.ggml.tokens", TypeArray).u32(uint32(TypeString)).u64(4294967295).zeros(1200),
			`gguf: metadata key 0 ("tokenizer.ggml.tokens"): array of 4294967295 strings does not fit in the 1200 remaining bytes`},
		{"huge uint32 array", header(3, 0, 1).kv("a", TypeArray).u32(uint32(TypeUint32)).u64(301).zeros(1200),
			`metadata key 0 ("a"): array of 301 uint32 values does not fit in the 1200 remaining bytes`},
		{"huge array of arrays", header(3, 0, 1).kv("a", TypeArray).u32(uint32(TypeArray)).u64(1 << 40).zeros(1200),
			"array of 1099511627776 arrays does not fit"},
		{"string in array too long", header(3, 0, 1).kv("a", TypeArray).u32(uint32(TypeString)).u64(2).str("ok").u64(1 << 60).zeros(8),
			`metadata key 0 ("a"): element 1: string of 1152921504606846976 bytes`},
		{"huge key", header(3, 0, 1).u64(1 << 63).zeros(20), "metadata key 0: key of 9223372036854775808 bytes at offset 24 does not fit in the 20 remaining bytes"},
		{"empty key", header(3, 0, 1).kv("", TypeBool).zeros(5), "metadata key 0: empty key"},
		{"long key", header(3, 0, 1).kv(strings.Repeat("k", 1<<16), TypeBool).zeros(1), "metadata key 0: key of 65536 bytes is longer than the 65535 GGUF allows"},
		{"duplicate key", header(3, 0, 2).kv("a", TypeUint8).zeros(1).kv("a", TypeUint8).zeros(1), `metadata key 1 ("a"): duplicate of key 0`},
		{"unknown value type", header(3, 0, 1).kv("a", 13).zeros(8), `metadata key 0 ("a"): unknown value type 13`},
		{"unknown element type", header(3, 0, 1).kv("a", TypeArray).u32(42).u64(0), `metadata key 0 ("a"): array of unknown value type 42`},
		{"arrays nested 9 deep", append(header(3, 0, 1).kv("a", TypeArray), nested(9)...), "element 0: arrays nested deeper than 8"},
		{"truncated scalar", header(3, 0, 1).kv("a", TypeUint64).zeros(7), `metadata key 0 ("a"): uint64 at offset 37: need 8 bytes, 7 remain`},
		{"long key is quoted short", header(3, 0, 2).kv(strings.Repeat("x", 1000), TypeUint8).zeros(1).kv(strings.Repeat("x", 1000), TypeUint8).zeros(1),
			`metadata key 1 ("` + strings.Repeat("x", 80) + `"...): duplicate`},
		{"alignment 0", header(3, 0, 1).kv("general.alignment", TypeUint32).u32(0), "general.alignment is 0"},
		{"alignment 48", header(3, 0, 1).kv("general.alignment", TypeUint32).u32(48), "general.alignment 48 is not a power of two"},
		{"alignment 2^30", header(3, 0, 1).kv("general.alignment", TypeUint32).u32(1 << 30), "general.alignment 1073741824 is larger than the 16777216 allowed"},
		{"alignment negative", header(3, 0, 1).kv("general.alignment", TypeInt32).u32(1<<32 - 32), "general.alignment -32 is negative"},
		{"alignment string", header(3, 0, 1).kv("general.alignment", TypeString).str("32"), "general.alignment is a string, want an unsigned integer"},
		{"tensor name truncated", header(3, 1, 0).u64(100).zeros(30), "tensor 0: name of 100 bytes at offset 24 does not fit in the 30 remaining bytes"},
		{"empty tensor name", header(3, 1, 0).tensor("", f32, 0, 4).data(16), "tensor 0: empty name"},
		{"duplicate tensor", header(3, 2, 0).tensor("w", f32, 0, 4).tensor("w", f32, 32, 4).data(48), `tensor 1 ("w"): duplicate of tensor 0`},
		{"0 dims", header(3, 1, 0).tensor("w", f32, 0).zeros(40), `tensor "w": 0 dimensions, want 1 to 4`},
		{"5 dims", header(3, 1, 0).tensor("w", f32, 0, 1, 1, 1, 1, 1).data(4), `tensor "w": 5 dimensions, want 1 to 4`},
		{"huge n_dims", header(3, 1, 0).str("w").u32(1 << 31).zeros(64), `tensor "w": 2147483648 dimensions`},
		{"dim 0", header(3, 1, 0).tensor("w", f32, 0, 4, 0).data(16), `tensor "w": dims [4 0]: dimension 1 is 0`},
		{"dims overflow", header(3, 1, 0).tensor("w", f32, 0, 1<<32, 1<<32).data(16), `tensor "w": dims [4294967296 4294967296]: element count overflows`},
		{"row size overflow", header(3, 1, 0).tensor("w", f32, 0, 1<<61, 2).data(16), `tensor "w": dims [2305843009213693952 2]: size in bytes overflows`},
		{"size overflow", header(3, 1, 0).tensor("w", f32, 0, 2, 1<<61).data(16), `tensor "w": dims [2 2305843009213693952]: size in bytes overflows`},
		{"huge size", header(3, 1, 0).tensor("w", f32, 0, 1<<40, 1<<20).data(16), `tensor "w": data [96, 4611686018427388000) beyond end of file (size 112)`},
		{"unknown type", header(3, 1, 0).tensor("w", 99, 0, 4).data(16), `tensor "w": unknown tensor type 99`},
		{"partial block", header(3, 1, 0).tensor("w", kernels.Q8_0, 0, 48).data(64), `tensor "w": dims [48]: row of 48 elements is not a multiple of the Q8_0 block size 32`},
		{"unaligned offset", header(3, 2, 0).tensor("a", f32, 0, 4).tensor("w", f32, 16, 4).data(64), `tensor "w": data offset 16 is not a multiple of the alignment 32`},
		{"beyond end", header(3, 1, 0).tensor("blk.3.attn_q.weight", f32, 0, 16).data(32),
			`gguf: tensor "blk.3.attn_q.weight": data [96, 160) beyond end of file (size 128)`},
		{"offset beyond end", header(3, 1, 0).tensor("w", f32, 1<<40, 4).data(16), `tensor "w": data [1099511627840, 1099511627856) beyond end of file`},
		{"offset overflows", header(3, 1, 0).tensor("w", f32, 1<<64-32, 4).data(16), `tensor "w": data offset 18446744073709551584 + size 16 overflows`},
		{"truncated data", header(3, 1, 0).tensor("w", f32, 0, 4), `tensor "w": data [64, 80) beyond end of file (size 57)`},
		{"overlap", header(3, 2, 0).tensor("a", f32, 0, 16).tensor("b", f32, 32, 16).data(96),
			`tensors "a" at [96, 160) and "b" at [128, 192) overlap`},
		{"same offset", header(3, 2, 0).tensor("b", f32, 0, 8).tensor("a", f32, 0, 8).data(32), "overlap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(tc.data)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", f)
			}
			if !errors.Is(err, ErrFormat) || !strings.HasPrefix(err.Error(), "gguf: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v\nwant an ErrFormat containing %q", err, tc.want)
			}
		})
	}
}

// TestMalformedEdges checks inputs at the edge of the limits that must
// parse.
func TestMalformedEdges(t *testing.T) {
	for _, tc := range []struct {
		name string
		data raw
	}{
		{"version 2", header(2, 0, 0)},
		{"arrays nested 8 deep", append(header(3, 0, 1).kv("a", TypeArray), nested(8)...)},
		{"alignment 1", header(3, 1, 1).kv("general.alignment", TypeUint32).u32(1).tensor("w", kernels.F32, 0, 1).zeros(4)},
		{"alignment as uint64", header(3, 1, 1).kv("general.alignment", TypeUint64).u64(64).tensor("w", kernels.F32, 0, 1).zeros(64)},
		{"4 dims", header(3, 1, 0).tensor("w", kernels.F32, 0, 1, 2, 1, 2).data(16)},
		{"tensors out of order", header(3, 2, 0).tensor("b", kernels.F32, 32, 8).tensor("a", kernels.F32, 0, 8).data(64)},
		{"no tensors, no padding", header(3, 0, 1).kv("a", TypeBool).zeros(1)},
		{"non-UTF-8 strings", header(3, 0, 1).kv("a", TypeArray).u32(uint32(TypeString)).u64(2).str("\xff").str("\xc3")},
		{"bool 2", header(3, 0, 1).kv("a", TypeBool).append(2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.data); err != nil {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
}

func (r raw) append(b ...byte) raw { return append(r, b...) }

// TestTruncated parses every prefix of a small valid file: those that cut
// into the header or a tensor must fail with ErrFormat (and never panic);
// those that cut only the padding after the last tensor still parse.
func TestTruncated(t *testing.T) {
	kvs := append(allKVs(), KV{"general.alignment", Value{Type: TypeUint32, V: uint32(64)}})
	data := build(t, kvs, someTensors())
	full, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	need := full.DataOffset
	for _, ti := range full.Tensors {
		need = max(need, full.DataOffset+ti.Offset+ti.Size)
	}
	if need == uint64(len(data)) {
		t.Fatal("test file has no padding at its end; the test expects some")
	}
	for n := range len(data) {
		_, err := Parse(data[:n])
		switch {
		case uint64(n) >= need && err != nil:
			t.Errorf("Parse(first %d of %d bytes) = %v; the data ends at %d", n, len(data), err, need)
		case uint64(n) < need && (err == nil || !errors.Is(err, ErrFormat)):
			t.Errorf("Parse(first %d of %d bytes) = %v, want ErrFormat", n, len(data), err)
		}
	}
}

// TestAllocationBound parses inputs whose counts claim all the bytes left
// but whose contents end early: what Parse allocates must follow what it
// actually read, not what the counts claim.
func TestAllocationBound(t *testing.T) {
	const size = 1 << 20
	pad := func(r raw) raw { return r.zeros(size - len(r)) }
	// arrays nested 8 deep, each claiming as many arrays as fit, each
	// holding one, the innermost broken.
	deep := header(3, 0, 1).kv("a", TypeArray)
	for range maxArrayDepth - 1 {
		deep = deep.u32(uint32(TypeArray)).u64(size / 12)
	}
	deep = deep.u32(99)
	for _, tc := range []struct {
		name string
		data raw
	}{
		{"kv count", pad(header(3, 0, size/14).kv("a", TypeUint8).append(1).u64(1 << 62))},
		{"tensor count", pad(header(3, size/40, 0).tensor("w", kernels.F32, 0, 4).u64(1 << 62))},
		{"nested arrays", pad(deep)},
		{"string array", pad(header(3, 0, 1).kv("a", TypeArray).u32(uint32(TypeString)).u64(size / 8).u64(1 << 62))},
		{"array count", pad(header(3, 0, 1).kv("a", TypeArray).u32(uint32(TypeArray)).u64(size / 12))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Parse(tc.data)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 256<<10 {
				t.Errorf("Parse allocated %d bytes for a %d-byte input (%v)", got, len(tc.data), err)
			}
		})
	}
}

package gguf

import (
	"bytes"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-llm/strata/kernels"
)

var update = flag.Bool("update", false, "rewrite the seed corpus in testdata/fuzz/FuzzParse")

// seeds are the starting inputs of FuzzParse, stored in testdata/fuzz/FuzzParse
// (see TestFuzzSeeds) and also added with f.Add.
func seeds(t testing.TB) map[string][]byte {
	small := build(t, allKVs(), someTensors())
	vocab := build(t, []KV{
		{"general.architecture", Value{Type: TypeString, V: "llama"}},
		{"general.alignment", Value{Type: TypeUint32, V: uint32(64)}},
		{"tokenizer.ggml.tokens", arr(TypeString, []string{"<unk>", "<s>", "</s>", "\xe2\x96\x81a", "\xff"})},
		{"tokenizer.ggml.scores", arr(TypeFloat32, []float32{0, 0, 0, -1, -2})},
		{"tokenizer.ggml.token_type", arr(TypeInt32, []int32{2, 3, 3, 1, 6})},
		{"llama.block_count", Value{Type: TypeUint32, V: uint32(1)}},
	}, []WriteTensor{
		{Name: "token_embd.weight", Type: kernels.Q8_0, Dims: []uint64{32, 5}, Data: fill(5*34, 1)},
		{Name: "output_norm.weight", Type: kernels.F32, Dims: []uint64{32}, Data: fill(128, 2)},
	})
	return map[string][]byte{
		"small":           small,
		"small-truncated": small[:len(small)/2],
		"vocab":           vocab,
		"vocab-header":    vocab[:200],
		"huge-array": header(3, 0, 1).kv("tokenizer.ggml.tokens", TypeArray).
			u32(uint32(TypeString)).u64(4294967295).str("a").str("b"),
		"nested": append(header(3, 0, 1).kv("a", TypeArray), nested(8)...),
		"overlap": header(3, 2, 0).tensor("a", kernels.F32, 0, 16).
			tensor("b", kernels.Q4_0, 32, 32).data(96),
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
		for _, n := range []int{4, 8, 16, 24, 25, 32, len(s) - 1} {
			if n < len(s) {
				f.Add(s[:n])
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) || !strings.HasPrefix(err.Error(), "gguf: ") {
				t.Fatalf("Parse error %q does not wrap ErrFormat or lacks the prefix", err)
			}
			return
		}
		checkParsed(t, file, data)
	})
}

// checkParsed checks what must hold of any File that Parse accepted, and
// that Write reproduces it.
func checkParsed(t *testing.T, f *File, data []byte) {
	n := uint64(len(data))
	if f.Version != 2 && f.Version != 3 {
		t.Fatalf("Version %d", f.Version)
	}
	if a := f.Alignment; a == 0 || a&(a-1) != 0 || a > maxAlignment || f.DataOffset%a != 0 {
		t.Fatalf("Alignment %d, DataOffset %d", a, f.DataOffset)
	}
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		start, end := f.DataOffset+ti.Offset, f.DataOffset+ti.Offset+ti.Size
		if end > n || end < start || ti.Size == 0 {
			t.Fatalf("tensor %q: [%d, %d) out of the %d bytes", ti.Name, start, end, n)
		}
		view := f.TensorData(ti)
		if uint64(len(view)) != ti.Size || cap(view) != len(view) || !bytes.Equal(view, data[start:end]) {
			t.Fatalf("tensor %q: view of %d bytes (cap %d), want [%d, %d)", ti.Name, len(view), cap(view), start, end)
		}
		if size, err := tensorSize(ti.Type, ti.Dims); err != nil || size != ti.Size {
			t.Fatalf("tensor %q: Size %d, recomputed %d, %v", ti.Name, ti.Size, size, err)
		}
		if got, ok := f.Tensor(ti.Name); !ok || got != ti {
			t.Fatalf("Tensor(%q) = %p, want %p", ti.Name, got, ti)
		}
	}
	byOffset := slices.Clone(f.Tensors)
	slices.SortFunc(byOffset, func(a, b TensorInfo) int { return cmp.Compare(a.Offset, b.Offset) })
	for i := 1; i < len(byOffset); i++ {
		if byOffset[i-1].Offset+byOffset[i-1].Size > byOffset[i].Offset {
			t.Fatalf("tensors %q and %q overlap", byOffset[i-1].Name, byOffset[i].Name)
		}
	}
	for _, kv := range f.KV {
		if v, ok := f.Get(kv.Key); !ok || v.Type != kv.Value.Type {
			t.Fatalf("Get(%q) = %v, %v", kv.Key, v, ok)
		}
		_, isString := f.String(kv.Key)
		if isString != (kv.Value.Type == TypeString) {
			t.Fatalf("String(%q) ok = %v for a %s", kv.Key, isString, kv.Value.Type)
		}
		f.Uint(kv.Key)
		f.Int(kv.Key)
		f.Float(kv.Key)
		f.Bool(kv.Key)
		f.Strings(kv.Key)
		f.Float32s(kv.Key)
		f.Int32s(kv.Key)
	}
	f.Architecture()

	// What Parse accepts, Write reproduces, unless it breaks a limit that
	// only Write keeps (llama.cpp's: tensor names of 63 bytes, a uint32
	// alignment). Skip huge alignments, whose padding is slow to write.
	if f.Alignment > 4096 {
		return
	}
	var b bytes.Buffer
	if err := Write(&b, f.KV, tensorsOf(f)); err != nil {
		if !errors.Is(err, ErrFormat) {
			t.Fatalf("Write: %v", err)
		}
		return
	}
	g, err := Parse(b.Bytes())
	if err != nil {
		t.Fatalf("Parse(Write(f)): %v", err)
	}
	if len(g.KV) != len(f.KV) || len(g.Tensors) != len(f.Tensors) || g.Alignment != f.Alignment {
		t.Fatalf("Parse(Write(f)): %d keys, %d tensors, alignment %d; want %d, %d, %d",
			len(g.KV), len(g.Tensors), g.Alignment, len(f.KV), len(f.Tensors), f.Alignment)
	}
	for i := range f.Tensors {
		if !bytes.Equal(f.TensorData(&f.Tensors[i]), g.TensorData(&g.Tensors[i])) {
			t.Fatalf("Parse(Write(f)): tensor %q data differ", f.Tensors[i].Name)
		}
	}
	// Compare metadata by bytes (NaNs defeat reflect.DeepEqual).
	var c bytes.Buffer
	if err := Write(&c, g.KV, tensorsOf(g)); err != nil || !bytes.Equal(b.Bytes(), c.Bytes()) {
		t.Fatalf("Write(Parse(Write(f))) differs from Write(f) (%v)", err)
	}
}

// TestFuzzSeeds keeps the stored seed corpus equal to seeds (rewrite it with
// -update) and runs the fuzz checks on each seed.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	want := seeds(t)
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range want {
			file := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(file), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, data := range want {
		t.Run(name, func(t *testing.T) {
			file, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("%v (run go test -run TestFuzzSeeds -update)", err)
			}
			if len(file) > 20<<10 {
				t.Errorf("seed file of %d bytes; keep seeds under 20 KiB", len(file))
			}
			q, ok := strings.CutPrefix(string(file), "go test fuzz v1\n[]byte(")
			q, ok2 := strings.CutSuffix(q, ")\n")
			got, err := strconv.Unquote(q)
			if !ok || !ok2 || err != nil {
				t.Fatalf("not a corpus file of one []byte: %v", err)
			}
			if got != string(data) {
				t.Fatal("stored seed differs from seeds() (run go test -run TestFuzzSeeds -update)")
			}
			if f, err := Parse(data); err == nil {
				checkParsed(t, f, data)
			} else if !errors.Is(err, ErrFormat) {
				t.Fatal(err)
			}
		})
	}
}

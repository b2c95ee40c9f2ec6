package gguf

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/strata-llm/strata/internal/testdata"
	"github.com/strata-llm/strata/kernels"
)

// checkHeader checks that ParseHeader of data's header agrees with Parse
// of the whole of data.
func checkHeader(t *testing.T, data []byte) {
	t.Helper()
	full, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	n := min(full.DataOffset, uint64(len(data)))
	h, err := ParseHeader(data[:n])
	if err != nil {
		t.Fatalf("ParseHeader of %d bytes: %v", n, err)
	}
	if h.DataOffset != full.DataOffset || h.Alignment != full.Alignment || h.Version != full.Version {
		t.Fatalf("DataOffset, Alignment, Version %d, %d, %d; want %d, %d, %d",
			h.DataOffset, h.Alignment, h.Version, full.DataOffset, full.Alignment, full.Version)
	}
	if d := diffKVs(h.KV, full.KV); d != "" {
		t.Fatal(d)
	}
	if !reflect.DeepEqual(h.Tensors, full.Tensors) {
		t.Fatalf("tensors differ")
	}
	for i := range h.Tensors {
		if h.TensorData(&h.Tensors[i]) != nil {
			t.Fatalf("TensorData(%q) of a header is not nil", h.Tensors[i].Name)
		}
		if got, ok := h.Tensor(h.Tensors[i].Name); !ok || got != &h.Tensors[i] {
			t.Fatalf("Tensor(%q) = %p, %v", h.Tensors[i].Name, got, ok)
		}
	}
}

func TestParseHeader(t *testing.T) {
	small := build(t, allKVs(), someTensors())
	real, err := os.ReadFile(testdata.Path(t, "models/stories260K-f32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"small": small, "stories260K": real, "no-tensors": build(t, allKVs(), nil)} {
		t.Run(name, func(t *testing.T) { checkHeader(t, data) })
	}
	t.Run("truncated", func(t *testing.T) {
		h, err := ParseHeader(small)
		if err != nil {
			t.Fatal(err)
		}
		// Cut inside the tensor table (the padding before the data may go).
		_, err = ParseHeader(small[:h.DataOffset-h.Alignment])
		if !errors.Is(err, ErrFormat) {
			t.Fatalf("ParseHeader of a cut header: %v, want ErrFormat", err)
		}
	})
	t.Run("overlap", func(t *testing.T) {
		b := header(3, 2, 0).tensor("a", kernels.F32, 0, 16).tensor("b", kernels.Q4_0, 32, 32)
		if _, err := ParseHeader(b); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "overlap") {
			t.Fatalf("ParseHeader of overlapping tensors: %v", err)
		}
	})
}

// assemble writes a slice file from l and src's tensors, as a fetcher would:
// the header at 0, each tensor at its offset, in a file of TotalSize bytes.
func assemble(t *testing.T, l *SliceLayout, src []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "slice.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(l.TotalSize); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(l.Header, 0); err != nil {
		t.Fatal(err)
	}
	for _, st := range l.Tensors {
		if _, err := f.WriteAt(src[st.Source:st.Source+st.Size], st.Offset); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestPlanSlice(t *testing.T) {
	path := testdata.Path(t, "models/stories260K-f32.gguf")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHeader(src)
	if err != nil {
		t.Fatal(err)
	}
	var blk12, all []string
	for _, ti := range h.Tensors {
		all = append(all, ti.Name)
		if strings.HasPrefix(ti.Name, "blk.1.") || strings.HasPrefix(ti.Name, "blk.2.") {
			blk12 = append(blk12, ti.Name)
		}
	}
	// Names out of order: the slice keeps h's order.
	reversed := make([]string, len(blk12))
	for i, n := range blk12 {
		reversed[len(blk12)-1-i] = n
	}
	layers := KV{"strata.slice.layers", arr(TypeInt32, []int32{1, 3})}
	renamed := KV{"general.name", Value{Type: TypeString, V: "sliced"}}

	tests := []struct {
		name  string
		names []string
		extra []KV
		err   string // a substring of the error; "" for none
	}{
		{name: "blk.1-2", names: reversed, extra: []KV{layers}},
		{name: "all", names: all},
		{name: "none", names: nil, extra: []KV{layers}},
		{name: "replace key", names: blk12[:2], extra: []KV{renamed, layers}},
		{name: "unknown tensor", names: []string{"blk.9.attn_q.weight"}, err: "no tensor"},
		{name: "repeated tensor", names: []string{blk12[0], blk12[0]}, err: "named twice"},
		{name: "alignment", extra: []KV{{"general.alignment", Value{Type: TypeUint32, V: uint32(64)}}}, err: "alignment"},
		{name: "malformed extra", extra: []KV{{"x", Value{Type: TypeUint32, V: "no"}}}, err: "holds a Go string"},
		{name: "repeated extra", extra: []KV{layers, layers}, err: "duplicate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := PlanSlice(h, tc.names, tc.extra)
			if tc.err != "" {
				if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("PlanSlice: %v, want an ErrFormat with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(l.Header)) != l.DataOffset || l.DataOffset%int64(h.Alignment) != 0 {
				t.Fatalf("header of %d bytes, DataOffset %d", len(l.Header), l.DataOffset)
			}
			g, err := Open(assemble(t, l, src))
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if g.DataOffset != uint64(l.DataOffset) || len(g.Tensors) != len(l.Tensors) {
				t.Fatalf("slice: DataOffset %d, %d tensors; layout %d, %d", g.DataOffset, len(g.Tensors), l.DataOffset, len(l.Tensors))
			}
			wantKV := append([]KV(nil), h.KV...)
			for _, kv := range tc.extra {
				if i, ok := h.keys[kv.Key]; ok {
					wantKV[i] = kv
				} else {
					wantKV = append(wantKV, kv)
				}
			}
			if d := diffKVs(g.KV, wantKV); d != "" {
				t.Fatal(d)
			}
			var prev int64 = -1
			var ws []WriteTensor
			for i, st := range l.Tensors {
				ti, ok := h.Tensor(st.Name)
				if !ok || !slices.Contains(tc.names, st.Name) {
					t.Fatalf("slice tensor %q was not asked for", st.Name)
				}
				gi := &g.Tensors[i]
				if gi.Name != st.Name || !reflect.DeepEqual(gi.Dims, ti.Dims) || gi.Type != ti.Type || gi.Size != ti.Size {
					t.Fatalf("slice tensor %d: %+v, want %+v", i, *gi, *ti)
				}
				if int64(g.DataOffset+gi.Offset) != st.Offset || st.Size != int64(ti.Size) || st.Source != int64(h.DataOffset+ti.Offset) {
					t.Fatalf("slice tensor %q at %d (%d bytes, from %d), layout %+v", st.Name, g.DataOffset+gi.Offset, ti.Size, h.DataOffset+ti.Offset, st)
				}
				if idx := h.names[st.Name]; int64(idx) <= prev {
					t.Fatalf("slice tensor %q out of the file's order", st.Name)
				} else {
					prev = int64(idx)
				}
				want := src[st.Source : st.Source+st.Size]
				if !bytes.Equal(g.TensorData(gi), want) {
					t.Fatalf("slice tensor %q: data differ", st.Name)
				}
				ws = append(ws, WriteTensor{Name: ti.Name, Type: ti.Type, Dims: ti.Dims, Data: want})
			}
			if len(l.Tensors) != len(tc.names) {
				t.Fatalf("%d tensors in the slice, want %d", len(l.Tensors), len(tc.names))
			}
			// The slice is what Write makes of the same metadata and tensors.
			if len(ws) > 0 {
				var b bytes.Buffer
				if err := Write(&b, wantKV, ws); err != nil {
					t.Fatal(err)
				}
				file, err := os.ReadFile(assemble(t, l, src))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(file, b.Bytes()) {
					t.Fatalf("slice of %d bytes differs from Write's %d", len(file), b.Len())
				}
			}
		})
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
		if h, err := ParseHeader(s); err == nil && h.DataOffset < uint64(len(s)) {
			f.Add(s[:h.DataOffset])
		}
	}
	extra := []KV{{"strata.slice.digest", Value{Type: TypeString, V: "sha256:00"}}}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHeader(data)
		full, ferr := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) || !strings.HasPrefix(err.Error(), "gguf: ") {
				t.Fatalf("ParseHeader error %q does not wrap ErrFormat or lacks the prefix", err)
			}
			if ferr == nil {
				t.Fatalf("Parse accepted what ParseHeader refused: %v", err)
			}
			return
		}
		if ferr == nil {
			checkHeader(t, data)
		}
		for i := range h.Tensors {
			if h.TensorData(&h.Tensors[i]) != nil {
				t.Fatalf("TensorData(%q) of a header is not nil", h.Tensors[i].Name)
			}
		}
		if h.Alignment > 4096 {
			return // padding the slice header is slow to fuzz
		}
		// A slice of every other tensor parses back to the same infos.
		var names []string
		for i := 0; i < len(h.Tensors); i += 2 {
			names = append(names, h.Tensors[i].Name)
		}
		l, err := PlanSlice(h, names, extra)
		if err != nil {
			if _, dup := h.keys[extra[0].Key]; !dup || !errors.Is(err, ErrFormat) {
				t.Logf("PlanSlice: %v", err) // possible: offsets near 2^63
			}
			return
		}
		g, err := ParseHeader(l.Header)
		if err != nil {
			t.Fatalf("ParseHeader(PlanSlice): %v", err)
		}
		if g.DataOffset != uint64(l.DataOffset) || len(g.Tensors) != len(names) || g.Alignment != h.Alignment {
			t.Fatalf("slice: DataOffset %d, %d tensors, alignment %d; want %d, %d, %d",
				g.DataOffset, len(g.Tensors), g.Alignment, l.DataOffset, len(names), h.Alignment)
		}
		for i, st := range l.Tensors {
			gi, hi := &g.Tensors[i], h.Tensors[2*i]
			if gi.Name != hi.Name || gi.Size != hi.Size || gi.Type != hi.Type || int64(g.DataOffset+gi.Offset) != st.Offset {
				t.Fatalf("slice tensor %d: %+v, from %+v", i, *gi, hi)
			}
		}
		if full != nil {
			full.Close()
		}
	})
}

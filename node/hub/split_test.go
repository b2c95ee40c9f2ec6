package hub

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/strata-llm/strata/pipeline/gguf"
)

// splitModel splits the GGUF at path into n parts as llama.cpp's gguf-split
// does: all metadata in the first part, the split.* keys in every part, the
// tensors spread over the parts in order.
func splitModel(t *testing.T, path string, n int) [][]byte {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parts := make([][]byte, n)
	per := (len(f.Tensors) + n - 1) / n
	for i := range n {
		kvs := []gguf.KV{
			{Key: keySplitNo, Value: gguf.Value{Type: gguf.TypeUint16, V: uint16(i)}},
			{Key: keySplitCount, Value: gguf.Value{Type: gguf.TypeUint16, V: uint16(n)}},
			{Key: keySplitTensors, Value: gguf.Value{Type: gguf.TypeInt32, V: int32(len(f.Tensors))}},
		}
		if i == 0 {
			kvs = append(f.KV[:len(f.KV):len(f.KV)], kvs...)
		}
		var ts []gguf.WriteTensor
		for j := i * per; j < min((i+1)*per, len(f.Tensors)); j++ {
			ti := &f.Tensors[j]
			ts = append(ts, gguf.WriteTensor{Name: ti.Name, Type: ti.Type, Dims: ti.Dims, Data: f.TensorData(ti)})
		}
		var buf bytes.Buffer
		if err := gguf.Write(&buf, kvs, ts); err != nil {
			t.Fatal(err)
		}
		parts[i] = buf.Bytes()
	}
	return parts
}

// sameModel checks that the GGUF at got has want's metadata and tensors.
func sameModel(t *testing.T, got, want string) {
	t.Helper()
	g, err := gguf.Open(got)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	w, err := gguf.Open(want)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !reflect.DeepEqual(g.KV, w.KV) {
		t.Errorf("metadata differs: %d keys, want %d", len(g.KV), len(w.KV))
	}
	if len(g.Tensors) != len(w.Tensors) {
		t.Fatalf("%d tensors, want %d", len(g.Tensors), len(w.Tensors))
	}
	for i := range w.Tensors {
		gt, wt := &g.Tensors[i], &w.Tensors[i]
		if gt.Name != wt.Name || gt.Type != wt.Type || !reflect.DeepEqual(gt.Dims, wt.Dims) {
			t.Errorf("tensor %d: %s %v %v, want %s %v %v", i, gt.Name, gt.Type, gt.Dims, wt.Name, wt.Type, wt.Dims)
		}
		if !bytes.Equal(g.TensorData(gt), w.TensorData(wt)) {
			t.Errorf("tensor %s: data differs", wt.Name)
		}
	}
}

// TestPullSplitMerge pulls a model split in two (naming either part) and
// gets one GGUF with the original's metadata and tensors; the parts are
// gone and the merged model comes from the cache next time.
func TestPullSplitMerge(t *testing.T) {
	src, _ := model(t)
	parts := splitModel(t, src, 2)
	for _, name := range []string{"stories-00001-of-00002.gguf", "stories-00002-of-00002.gguf"} {
		t.Run(name, func(t *testing.T) {
			h := newFakeHub(t)
			h.add("o/r/main/q/stories-00001-of-00002.gguf", fakeFile{data: parts[0]})
			h.add("o/r/main/q/stories-00002-of-00002.gguf", fakeFile{data: parts[1]})
			opts := Options{Endpoint: h.hub.URL, CacheDir: t.TempDir()}
			ref := mustRef(t, "hf://o/r/q/"+name)
			path, err := Pull(context.Background(), ref, opts)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(opts.CacheDir, "o", "r", "main", "q")
			if want := filepath.Join(dir, "stories.gguf"); path != want {
				t.Errorf("path %s, want %s", path, want)
			}
			sameModel(t, path, src)
			entries, _ := os.ReadDir(dir)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if strings.Join(names, " ") != "stories.gguf stories.gguf.sha256" {
				t.Errorf("cache holds %v", names)
			}
			h.requests()
			if again, err := Pull(context.Background(), ref, opts); err != nil || again != path {
				t.Fatalf("second pull: %q, %v", again, err)
			}
			if r := h.requests(); len(r) != 0 {
				t.Errorf("second pull made %d requests", len(r))
			}
		})
	}
}

// TestMergeSplitMismatch refuses parts that do not make the split their
// keys describe.
func TestMergeSplitMismatch(t *testing.T) {
	src, _ := model(t)
	parts := splitModel(t, src, 2)
	dir := t.TempDir()
	p0, p1 := filepath.Join(dir, "a-00001-of-00002.gguf"), filepath.Join(dir, "a-00002-of-00002.gguf")
	for p, b := range map[string][]byte{p0: parts[0], p1: parts[1]} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, in := range map[string][]string{"one of two": {p0}, "swapped": {p1, p0}} {
		if _, err := mergeSplit(filepath.Join(dir, "a.gguf"), in); err == nil || !strings.Contains(err.Error(), "split.") {
			t.Errorf("%s: err %v, want a split.* mismatch", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a.gguf")); !os.IsNotExist(err) {
		t.Errorf("a failed merge left a.gguf: %v", err)
	}
}

func TestParseSplit(t *testing.T) {
	tests := []struct {
		in    string
		ok    bool
		name  string
		count int
	}{
		{"m-00001-of-00003.gguf", true, "m", 3},
		{"Qwen2.5-7B-Q4_K_M-00003-of-00003.gguf", true, "Qwen2.5-7B-Q4_K_M", 3},
		{"m-00004-of-00003.gguf", false, "", 0},
		{"m-00000-of-00003.gguf", false, "", 0},
		{"m-1-of-3.gguf", false, "", 0},
		{"-00001-of-00002.gguf", false, "", 0},
		{"m.gguf", false, "", 0},
	}
	for _, tt := range tests {
		s, ok := parseSplit(tt.in)
		if ok != tt.ok || s.name != tt.name || s.count != tt.count {
			t.Errorf("parseSplit(%q) = %+v, %v", tt.in, s, ok)
		}
	}
	if got := (split{"m", 3}).part(2); got != "m-00002-of-00003.gguf" {
		t.Errorf("part(2) = %q", got)
	}
}

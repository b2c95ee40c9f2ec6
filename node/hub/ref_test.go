package hub

import (
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	tests := []struct {
		in   string
		want Ref // zero: an error
	}{
		{"hf://o/r/f.gguf", Ref{"o", "r", "main", "f.gguf"}},
		{"hf://TheBloke/Llama-2-7B-GGUF/llama-2-7b.Q4_0.gguf", Ref{"TheBloke", "Llama-2-7B-GGUF", "main", "llama-2-7b.Q4_0.gguf"}},
		{"hf://o/r@v1.0/f.gguf", Ref{"o", "r", "v1.0", "f.gguf"}},
		{"hf://o/r@0123abc/sub/dir/f.gguf", Ref{"o", "r", "0123abc", "sub/dir/f.gguf"}},
		{"hf://o.x/r_y-z/a b.gguf", Ref{"o.x", "r_y-z", "main", "a b.gguf"}},
		{"o/r/f.gguf", Ref{}},
		{"hf:/o/r/f.gguf", Ref{}},
		{"https://o/r/f.gguf", Ref{}},
		{"hf://o/r", Ref{}},
		{"hf://o/r/", Ref{}},
		{"hf://o//f.gguf", Ref{}},
		{"hf:///r/f.gguf", Ref{}},
		{"hf://o/r@/f.gguf", Ref{}},
		{"hf://o/r@a@b/f.gguf", Ref{}},
		{"hf://../r/f.gguf", Ref{}},
		{"hf://o/../f.gguf", Ref{}},
		{"hf://o/r@../f.gguf", Ref{}},
		{"hf://o/r@./f.gguf", Ref{}},
		{"hf://o/r/../f.gguf", Ref{}},
		{"hf://o/r/a/../../f.gguf", Ref{}},
		{"hf://o/r/./f.gguf", Ref{}},
		{"hf://o/r//f.gguf", Ref{}},
		{"hf://o/r/a//f.gguf", Ref{}},
		{"hf://o/r/dir/", Ref{}},
		{"hf://o/r/a\\..\\f.gguf", Ref{}},
		{"hf://o/r/f\x00.gguf", Ref{}},
		{"hf://o/r/f\n.gguf", Ref{}},
		{"hf://o w/r/f.gguf", Ref{}},
		{"hf://o/r?x/f.gguf", Ref{}},
	}
	for _, tt := range tests {
		got, err := ParseRef(tt.in)
		if tt.want == (Ref{}) {
			if err == nil {
				t.Errorf("ParseRef(%q) = %+v, want an error", tt.in, got)
			} else if !errors.Is(err, ErrRef) {
				t.Errorf("ParseRef(%q): %v does not wrap ErrRef", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestRefStringAndURL(t *testing.T) {
	r := Ref{"o", "r", "main", "sub/a b#c.gguf"}
	if got, want := r.String(), "hf://o/r/sub/a b#c.gguf"; got != want {
		t.Errorf("String %q, want %q", got, want)
	}
	if got, want := r.URL("https://hub.example/"), "https://hub.example/o/r/resolve/main/sub/a%20b%23c.gguf"; got != want {
		t.Errorf("URL %q, want %q", got, want)
	}
	r.Revision = "v2"
	if got, want := r.String(), "hf://o/r@v2/sub/a b#c.gguf"; got != want {
		t.Errorf("String %q, want %q", got, want)
	}
	if !IsRef("hf://x") || IsRef("/models/x.gguf") {
		t.Error("IsRef")
	}
}

// FuzzParseRef: whatever ParseRef accepts prints back to itself, maps to a
// path inside the cache, and makes a URL whose path names the same file.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{
		"hf://o/r/f.gguf", "hf://o/r@v1/a/b.gguf", "hf://o/r/../x", "hf://o/r@../x",
		"hf://o/r/a b%2F.gguf", "hf://o/r/a?b#c", "hf://..//", "hf://o/r@@/f", "hf://o/r/\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRef(s)
		if err != nil {
			if !errors.Is(err, ErrRef) {
				t.Fatalf("ParseRef(%q): %v does not wrap ErrRef", s, err)
			}
			return
		}
		back, err := ParseRef(r.String())
		if err != nil || back != r {
			t.Fatalf("ParseRef(%q) = %+v; String %q parses to %+v, %v", s, r, r.String(), back, err)
		}
		rel := r.relPath()
		if !filepath.IsLocal(rel) {
			t.Fatalf("ParseRef(%q): cache path %q is not local", s, rel)
		}
		for _, part := range strings.Split(filepath.ToSlash(rel), "/") {
			if part == ".." || part == "." || part == "" {
				t.Fatalf("ParseRef(%q): cache path %q holds %q", s, rel, part)
			}
		}
		u, err := url.Parse(r.URL("https://hub.example"))
		if err != nil {
			t.Fatalf("ParseRef(%q): URL %q: %v", s, r.URL("https://hub.example"), err)
		}
		if want := "/" + r.Owner + "/" + r.Repo + "/resolve/" + r.Revision + "/" + r.File; u.Path != want || u.Host != "hub.example" || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("ParseRef(%q): URL %q has path %q, want %q", s, u, u.Path, want)
		}
	})
}

package hub

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const modelKey = "o/r/main/stories260K-f32.gguf"

func mustRef(t *testing.T, s string) Ref {
	t.Helper()
	r, err := ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes differ from the source's %d", path, len(got), len(want))
	}
}

// TestPullFreshThenCached pulls a file through the redirect to the CDN (and
// an inline file from the hub itself), then again from the cache without a
// single request.
func TestPullFreshThenCached(t *testing.T) {
	_, data := model(t)
	for _, inline := range []bool{false, true} {
		t.Run("inline="+strconv.FormatBool(inline), func(t *testing.T) {
			h := newFakeHub(t)
			h.add(modelKey, fakeFile{data: data, inline: inline})
			opts := Options{Endpoint: h.hub.URL, CacheDir: t.TempDir()}
			ref := mustRef(t, "hf://o/r/stories260K-f32.gguf")

			path, err := Pull(context.Background(), ref, opts)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(opts.CacheDir, "o", "r", "main", "stories260K-f32.gguf"); path != want {
				t.Errorf("path %s, want %s", path, want)
			}
			checkFile(t, path, data)
			servers := map[string]int{}
			for _, r := range h.requests() {
				servers[r.server]++
			}
			if inline && (servers["hub"] != 1 || servers["cdn"] != 0) || !inline && (servers["hub"] != 1 || servers["cdn"] != 1) {
				t.Errorf("requests per server %v", servers)
			}
			if _, err := os.Stat(path + ".part"); !os.IsNotExist(err) {
				t.Errorf("%s.part left behind: %v", path, err)
			}

			again, err := Pull(context.Background(), ref, opts)
			if err != nil || again != path {
				t.Fatalf("second pull: %q, %v", again, err)
			}
			if r := h.requests(); len(r) != 0 {
				t.Errorf("second pull made %d requests: %v", len(r), r)
			}
		})
	}
}

// TestPullRevisionAndFolder pulls a file in a folder at a named revision.
func TestPullRevisionAndFolder(t *testing.T) {
	_, data := model(t)
	h := newFakeHub(t)
	h.add("o/r/v1.0/sub/dir/m.gguf", fakeFile{data: data})
	opts := Options{Endpoint: h.hub.URL + "/", CacheDir: t.TempDir()}
	path, err := Pull(context.Background(), mustRef(t, "hf://o/r@v1.0/sub/dir/m.gguf"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(opts.CacheDir, "o", "r", "v1.0", "sub", "dir", "m.gguf"); path != want {
		t.Errorf("path %s, want %s", path, want)
	}
	checkFile(t, path, data)
}

// TestPullResume cuts the first download after half the bytes: Pull fails
// and leaves FILE.part; the next Pull asks for the rest with a Range.
func TestPullResume(t *testing.T) {
	_, data := model(t)
	h := newFakeHub(t)
	h.add(modelKey, fakeFile{data: data})
	h.cutNext = 1
	opts := Options{Endpoint: h.hub.URL, CacheDir: t.TempDir()}
	ref := mustRef(t, "hf://o/r/stories260K-f32.gguf")

	if _, err := Pull(context.Background(), ref, opts); err == nil {
		t.Fatal("a cut download succeeded")
	} else {
		t.Logf("cut: %v", err)
	}
	part := filepath.Join(opts.CacheDir, "o", "r", "main", "stories260K-f32.gguf.part")
	st, err := os.Stat(part)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() == 0 || st.Size() > int64(len(data)/2) {
		t.Fatalf("%s has %d bytes after a cut at %d", part, st.Size(), len(data)/2)
	}
	h.requests()

	path, err := Pull(context.Background(), ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, data)
	var ranges []string
	for _, r := range h.requests() {
		ranges = append(ranges, r.server+":"+r.rng)
	}
	want := "bytes=" + strconv.FormatInt(st.Size(), 10) + "-"
	if len(ranges) != 2 || ranges[0] != "hub:"+want || ranges[1] != "cdn:"+want {
		t.Errorf("resume requests %v, want hub and cdn with %s", ranges, want)
	}
}

// TestPullRangeIgnored: a server that answers 200 to a range request makes
// the download start over from byte 0.
func TestPullRangeIgnored(t *testing.T) {
	_, data := model(t)
	h := newFakeHub(t)
	h.add(modelKey, fakeFile{data: data})
	h.cutNext = 1
	opts := Options{Endpoint: h.hub.URL, CacheDir: t.TempDir()}
	ref := mustRef(t, "hf://o/r/stories260K-f32.gguf")
	if _, err := Pull(context.Background(), ref, opts); err == nil {
		t.Fatal("a cut download succeeded")
	}
	h.noRange = true
	path, err := Pull(context.Background(), ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, data)
}

// TestPullChecksumMismatch: the hub advertises a sha256 the bytes do not
// have; Pull refuses them and keeps nothing.
func TestPullChecksumMismatch(t *testing.T) {
	_, data := model(t)
	h := newFakeHub(t)
	bad := strings.Repeat("ab", 32)
	h.add(modelKey, fakeFile{data: data, etag: bad})
	opts := Options{Endpoint: h.hub.URL, CacheDir: t.TempDir()}
	_, err := Pull(context.Background(), mustRef(t, "hf://o/r/stories260K-f32.gguf"), opts)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("err %v, want ErrChecksum", err)
	}
	if !strings.Contains(err.Error(), "the hub says "+bad) {
		t.Errorf("err %q does not say what the hub says", err)
	}
	dir := filepath.Join(opts.CacheDir, "o", "r", "main")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		t.Errorf("left in the cache: %s", e.Name())
	}
}

// TestPullCorruptCache: a cached file whose content no longer has the
// recorded sha256 is pulled again.
func TestPullCorruptCache(t *testing.T) {
	_, data := model(t)
	h := newFakeHub(t)
	h.add(modelKey, fakeFile{data: data})
	opts := Options{Endpoint: h.hub.URL, CacheDir: t.TempDir()}
	ref := mustRef(t, "hf://o/r/stories260K-f32.gguf")
	path, err := Pull(context.Background(), ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data[:100], 0o644); err != nil {
		t.Fatal(err)
	}
	h.requests()
	if _, err := Pull(context.Background(), ref, opts); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, data)
	if len(h.requests()) == 0 {
		t.Error("a corrupt cache entry was served")
	}
}

// TestPullToken: the token goes to the hub, never to the CDN's host.
func TestPullToken(t *testing.T) {
	_, data := model(t)
	h := newFakeHub(t)
	h.add(modelKey, fakeFile{data: data})
	h.token = "hf_secret"
	opts := Options{Endpoint: h.hub.URL, CacheDir: t.TempDir(), Token: "hf_secret"}
	path, err := Pull(context.Background(), mustRef(t, "hf://o/r/stories260K-f32.gguf"), opts)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, data)
	for _, r := range h.requests() {
		switch {
		case r.server == "hub" && r.auth != "Bearer hf_secret":
			t.Errorf("hub saw Authorization %q", r.auth)
		case r.server == "cdn" && r.auth != "":
			t.Errorf("the CDN saw Authorization %q", r.auth)
		}
	}
}

// TestPullHubErrors: 404 and 401 say what is wrong and where.
func TestPullHubErrors(t *testing.T) {
	_, data := model(t)
	tests := []struct {
		name      string
		hubToken  string
		sentToken string
		file      string
		want      error
		says      []string
	}{
		{"missing", "", "", "nope.gguf", ErrNotFound, []string{"hf://o/r/nope.gguf: not found (404) at ", "/o/r/resolve/main/nope.gguf"}},
		{"no token", "hf_x", "", "stories260K-f32.gguf", ErrUnauthorized, []string{"(401)", "needs a token: set HF_TOKEN"}},
		{"wrong token", "hf_x", "hf_y", "stories260K-f32.gguf", ErrUnauthorized, []string{"(401)", "refused the token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHub(t)
			h.add(modelKey, fakeFile{data: data})
			h.token = tt.hubToken
			opts := Options{Endpoint: h.hub.URL, CacheDir: t.TempDir(), Token: tt.sentToken}
			_, err := Pull(context.Background(), mustRef(t, "hf://o/r/"+tt.file), opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err %q does not say %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "hf_") {
				t.Errorf("err %q shows a token", err)
			}
		})
	}
}

// TestPullCanceled: a canceled context stops the pull.
func TestPullCanceled(t *testing.T) {
	_, data := model(t)
	h := newFakeHub(t)
	h.add(modelKey, fakeFile{data: data})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Pull(ctx, mustRef(t, "hf://o/r/stories260K-f32.gguf"), Options{Endpoint: h.hub.URL, CacheDir: t.TempDir()})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

// TestPullBadEndpoint refuses an endpoint that is not an http(s) URL.
func TestPullBadEndpoint(t *testing.T) {
	_, err := Pull(context.Background(), mustRef(t, "hf://o/r/f.gguf"), Options{Endpoint: "ftp://x", CacheDir: t.TempDir()})
	if err == nil {
		t.Fatal("ftp endpoint accepted")
	}
}

// TestPullProgressPlain: a writer that is not a terminal gets log-style
// lines, one per 10% step.
func TestPullProgressPlain(t *testing.T) {
	_, data := model(t)
	h := newFakeHub(t)
	h.add(modelKey, fakeFile{data: data})
	var buf bytes.Buffer
	opts := Options{Endpoint: h.hub.URL, CacheDir: t.TempDir(), Progress: &buf}
	if _, err := Pull(context.Background(), mustRef(t, "hf://o/r/stories260K-f32.gguf"), opts); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, "\r") {
		t.Errorf("plain progress holds a \\r: %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	last := -1
	for _, l := range lines {
		rest, ok := strings.CutPrefix(l, "pull stories260K-f32.gguf: ")
		pct, _, ok2 := strings.Cut(rest, "%")
		p, err := strconv.Atoi(pct)
		if !ok || !ok2 || err != nil {
			t.Fatalf("line %q", l)
		}
		if p <= last {
			t.Errorf("%d%% after %d%%", p, last)
		}
		last = p
	}
	if !strings.HasPrefix(lines[0], "pull stories260K-f32.gguf: 0% (0 B of 1.1 MiB)") || !strings.HasPrefix(lines[len(lines)-1], "pull stories260K-f32.gguf: 100% (1.1 MiB of 1.1 MiB)") || len(lines) > 11 {
		t.Errorf("progress lines:\n%s", out)
	}
}

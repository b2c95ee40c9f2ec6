package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-llm/strata/internal/testdata"
)

// testHub serves the shared test models under o/r at main as the hub's
// resolve URLs do: a 302 to a CDN server with the file's sha256 in
// X-Linked-Etag. It counts the requests it gets.
func testHub(t *testing.T) (url string, requests *atomic.Int64) {
	t.Helper()
	requests = new(atomic.Int64)
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		b, err := os.ReadFile(filepath.Join(testdata.Dir(), "models", filepath.Base(r.URL.Path)))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	}))
	t.Cleanup(cdn.Close)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /o/r/resolve/main/{file}", func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		name := r.PathValue("file")
		b, err := os.ReadFile(filepath.Join(testdata.Dir(), "models", name))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		sum := sha256.Sum256(b)
		w.Header().Set("X-Linked-Etag", `"`+hex.EncodeToString(sum[:])+`"`)
		w.Header().Set("X-Linked-Size", strconv.Itoa(len(b)))
		http.Redirect(w, r, cdn.URL+"/blobs/"+name, http.StatusFound)
	})
	hub := httptest.NewServer(mux)
	t.Cleanup(hub.Close)
	return hub.URL, requests
}

// TestPullCommand: `strata pull` prints the cached file's path, which holds
// the model; a second pull makes no request.
func TestPullCommand(t *testing.T) {
	src := testdata.Path(t, "models/stories260K-f32.gguf")
	url, requests := testHub(t)
	t.Setenv("HF_ENDPOINT", url)
	t.Setenv("HF_TOKEN", "")
	dir := t.TempDir()
	args := []string{"pull", "--cache", dir, "hf://o/r/stories260K-f32.gguf"}
	for i := range 2 {
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, nil, &out, &errb); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errb.String())
		}
		want := filepath.Join(dir, "o", "r", "main", "stories260K-f32.gguf")
		if out.String() != want+"\n" {
			t.Fatalf("stdout %q, want %q", out.String(), want+"\n")
		}
		got, _ := os.ReadFile(want)
		orig, _ := os.ReadFile(src)
		if !bytes.Equal(got, orig) {
			t.Fatal("the pulled file differs from the source")
		}
		if i == 0 && !strings.Contains(errb.String(), "100%") {
			t.Errorf("no progress on stderr: %q", errb.String())
		}
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("%d requests for two pulls, want 2 (hub and CDN, once)", n)
	}

	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"pull", "--cache", dir, "hf://o/r/missing.gguf"}, nil, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "not found (404)") {
		t.Errorf("missing file: %v", err)
	}
	if err := run(context.Background(), []string{"pull", "o/r/x.gguf"}, nil, &out, &errb); err == nil {
		t.Error("a reference without hf:// was accepted")
	}
}

// TestPullRunModel: `strata run --model hf://...` pulls the model into the
// cache and generates from it; the next run reads the cache only.
func TestPullRunModel(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	c := ref.Cases[0]
	url, requests := testHub(t)
	t.Setenv("HF_ENDPOINT", url)
	t.Setenv("STRATA_HUB_CACHE", t.TempDir())
	args := []string{"run", "--model", "hf://o/r/stories260K-f32.gguf", "--temperature", "0", "--max-tokens", "8", c.Prompt}
	var first string
	for i := range 2 {
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, strings.NewReader(""), &out, &errb); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errb.String())
		}
		got := strings.TrimSuffix(out.String(), "\n")
		t.Logf("run %d: stdout %q\nstderr:\n%s", i, got, errb.String())
		if got == "" || !strings.HasPrefix(c.GreedyText, strings.TrimSpace(got)) && !strings.HasPrefix(c.GreedyText, got) {
			t.Errorf("run %d: %q is not the start of llama.cpp's %q", i, got, c.GreedyText)
		}
		if i == 0 {
			first = got
		} else if got != first {
			t.Errorf("second run %q, first %q", got, first)
		}
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("%d requests for two runs, want 2", n)
	}
}

package hub

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/strata-llm/strata/internal/testdata"
)

// fakeHub answers like the hub's resolve URLs: LFS files get a 302 to a
// second server acting as the CDN, with X-Linked-Etag, X-Linked-Size and
// X-Repo-Commit; inline files are served by the hub itself with an ETag.
type fakeHub struct {
	hub, cdn *httptest.Server

	mu      sync.Mutex
	files   map[string]fakeFile // "OWNER/REPO/REVISION/FILE"
	blobs   map[string][]byte   // sha256 hex -> content
	token   string              // required when set
	cutNext int                 // CDN requests to cut after half the bytes
	noRange bool                // the CDN answers 200 to range requests
	seen    []seenRequest
}

type fakeFile struct {
	data   []byte
	inline bool   // served by the hub, not redirected to the CDN
	etag   string // X-Linked-Etag to advertise; "": the real sha256
}

// seenRequest is what a server saw of one request.
type seenRequest struct {
	server string // "hub" or "cdn"
	path   string
	rng    string // the Range header
	auth   string // the Authorization header
}

func newFakeHub(t *testing.T) *fakeHub {
	t.Helper()
	h := &fakeHub{files: map[string]fakeFile{}, blobs: map[string][]byte{}}
	hubMux := http.NewServeMux()
	hubMux.HandleFunc("GET /{owner}/{repo}/resolve/{rev}/{file...}", h.resolve)
	cdnMux := http.NewServeMux()
	cdnMux.HandleFunc("GET /blobs/{sha}", h.blob)
	h.hub = httptest.NewServer(h.record("hub", hubMux))
	h.cdn = httptest.NewServer(h.record("cdn", cdnMux))
	t.Cleanup(h.hub.Close)
	t.Cleanup(h.cdn.Close)
	return h
}

// add serves data as OWNER/REPO/REVISION/FILE.
func (h *fakeHub) add(key string, f fakeFile) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sum := sha256.Sum256(f.data)
	h.files[key] = f
	h.blobs[hex.EncodeToString(sum[:])] = f.data
}

func (h *fakeHub) record(server string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.seen = append(h.seen, seenRequest{server, r.URL.Path, r.Header.Get("Range"), r.Header.Get("Authorization")})
		h.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// requests returns the requests seen so far and forgets them.
func (h *fakeHub) requests() []seenRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.seen
	h.seen = nil
	return s
}

func (h *fakeHub) resolve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	f, ok := h.files[r.PathValue("owner")+"/"+r.PathValue("repo")+"/"+r.PathValue("rev")+"/"+r.PathValue("file")]
	token := h.token
	h.mu.Unlock()
	if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
		w.Header().Set("X-Error-Message", "Invalid credentials in Authorization header")
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if !ok {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.Error(w, "Entry not found", http.StatusNotFound)
		return
	}
	sum := sha256.Sum256(f.data)
	w.Header().Set("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567")
	if f.inline {
		w.Header().Set("ETag", `"da39a3ee5e6b4b0d3255bfef95601890afd80709"`) // a git blob sha1, not a sha256
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.data))
		return
	}
	etag := f.etag
	if etag == "" {
		etag = hex.EncodeToString(sum[:])
	}
	w.Header().Set("X-Linked-Etag", `"`+etag+`"`)
	w.Header().Set("X-Linked-Size", strconv.Itoa(len(f.data)))
	http.Redirect(w, r, h.cdn.URL+"/blobs/"+hex.EncodeToString(sum[:])+"?X-Amz-Signature=secret", http.StatusFound)
}

func (h *fakeHub) blob(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	data, ok := h.blobs[r.PathValue("sha")]
	cut := h.cutNext > 0
	if cut {
		h.cutNext--
	}
	noRange := h.noRange
	h.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	switch {
	case cut:
		// Promise every byte, send half, and drop the connection.
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	case noRange:
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
	default:
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}
}

// model returns the bytes of the small real model.
func model(t *testing.T) (path string, data []byte) {
	t.Helper()
	path = testdata.Path(t, "models/stories260K-f32.gguf")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, data
}

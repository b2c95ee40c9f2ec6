package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultEndpoint is the hub's address when Options.Endpoint is empty.
const DefaultEndpoint = "https://huggingface.co"

// maxRedirects bounds the redirects one request follows.
const maxRedirects = 10

// Errors that callers may branch on; Pull's errors wrap them with the
// reference, the status and the URL.
var (
	// ErrNotFound: the hub has no such repository, revision or file (404).
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized: the hub wants a token, or refused the one sent (401,
	// 403).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrChecksum: the downloaded bytes do not have the sha256 the hub
	// publishes; nothing is kept.
	ErrChecksum = errors.New("checksum mismatch")
)

// Options configure Pull. The zero value pulls from huggingface.co without
// a token into the user's cache folder, silently.
type Options struct {
	// Endpoint is the hub's base URL; empty: DefaultEndpoint.
	Endpoint string
	// Token is sent as "Authorization: Bearer TOKEN" to the endpoint's host
	// only, never to the host a download is redirected to; empty: none.
	Token string
	// CacheDir holds pulled files as OWNER/REPO/REVISION/FILE; empty:
	// os.UserCacheDir()/strata/hub.
	CacheDir string
	// Progress receives a download's progress: a bar redrawn in place when
	// it is a terminal (an *os.File), plain lines every 10% otherwise; nil:
	// none.
	Progress io.Writer
	// Client makes the requests; nil: http.DefaultClient. Pull follows
	// redirects itself, so the client's CheckRedirect is not used.
	Client *http.Client
	// Logger receives a line per file pulled, resumed or reused; nil: none.
	Logger *slog.Logger
}

// Pull makes ref's file available in the cache and returns its local path.
//
// A file in the cache with its sidecar (FILE.sha256, written once the file
// was verified) is returned without any request. Otherwise the file is
// downloaded into FILE.part, resuming from the bytes a previous Pull left
// there, checked against the sha256 the hub publishes for LFS files
// (X-Linked-Etag; a mismatch deletes the download and returns an error
// wrapping ErrChecksum) and renamed into place. When the download fails
// otherwise, FILE.part stays for the next Pull to resume.
//
// A file named like NAME-00001-of-00003.gguf (llama.cpp's gguf-split; any
// of the parts may be named) pulls every part and merges them into
// NAME.gguf, whose path is returned; the parts are deleted once merged.
//
// A cached revision is never checked against the hub again: a reference to
// a branch such as main keeps the file first pulled until it is deleted
// from the cache or a commit is named with @REVISION. Two Pulls of the same
// file must not run at the same time.
func Pull(ctx context.Context, ref Ref, opts Options) (string, error) {
	if err := ref.Validate(); err != nil {
		return "", fmt.Errorf("%w %s: %w", ErrRef, ref, err)
	}
	p, err := newPuller(opts)
	if err != nil {
		return "", err
	}
	if s, ok := parseSplit(path.Base(ref.File)); ok {
		return p.pullSplit(ctx, ref, s)
	}
	return p.pullFile(ctx, ref)
}

// puller is one Pull's settings, defaults applied.
type puller struct {
	endpoint string
	hub      *url.URL // the endpoint, parsed: tokens go to its scheme and host only
	token    string
	cache    string
	progress io.Writer
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time
}

func newPuller(opts Options) (*puller, error) {
	p := &puller{
		endpoint: strings.TrimRight(opts.Endpoint, "/"),
		token:    opts.Token,
		cache:    opts.CacheDir,
		progress: opts.Progress,
		log:      opts.Logger,
		now:      time.Now,
	}
	if p.endpoint == "" {
		p.endpoint = DefaultEndpoint
	}
	u, err := url.Parse(p.endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("hub endpoint %q: want http(s)://HOST", p.endpoint)
	}
	p.hub = u
	if p.cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("hub cache: %w", err)
		}
		p.cache = filepath.Join(dir, "strata", "hub")
	}
	c := http.DefaultClient
	if opts.Client != nil {
		c = opts.Client
	}
	own := *c
	own.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	p.client = &own
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// pullFile pulls one file, from the cache when it is there.
func (p *puller) pullFile(ctx context.Context, ref Ref) (string, error) {
	dest := filepath.Join(p.cache, ref.relPath())
	if sum, ok := p.cached(dest); ok {
		p.log.Info("hub cache hit", "ref", ref.String(), "path", dest, "sha256", sum)
		return dest, nil
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return "", fmt.Errorf("pull %s: %w", ref, err)
	}
	if err := p.download(ctx, ref, dest); err != nil {
		return "", fmt.Errorf("pull %s: %w", ref, err)
	}
	return dest, nil
}

// download fetches ref into dest through dest.part, verifies it and writes
// its sidecar.
func (p *puller) download(ctx context.Context, ref Ref, dest string) error {
	part := dest + ".part"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	off, err := io.Copy(h, f) // what a previous Pull left; f ends up at its end
	if err != nil {
		return fmt.Errorf("read %s: %w", part, err)
	}
	reset := func() error {
		h.Reset()
		off = 0
		if err := f.Truncate(0); err != nil {
			return err
		}
		_, err := f.Seek(0, io.SeekStart)
		return err
	}

	src := ref.URL(p.endpoint)
	var (
		resp  *http.Response
		md    meta
		total int64 = -1 // bytes in the whole file; -1 when unknown
	)
	for tries := 0; ; tries++ {
		if tries > 1 {
			return fmt.Errorf("get %s: the server answers range requests inconsistently", src)
		}
		resp, md, err = p.get(ctx, src, off)
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && off > 0 {
			// Maybe the previous Pull got every byte but stopped before the
			// rename; else the part is not a prefix of this file.
			resp.Body.Close()
			if _, size, ok := parseContentRange(resp.Header.Get("Content-Range")); ok && size == off {
				total, resp = off, nil
				break
			}
			p.log.Info("hub restart download", "ref", ref.String(), "reason", "range not satisfiable", "offset", off)
			if err := reset(); err != nil {
				return err
			}
			continue
		}
		if err := statusError(resp, ref); err != nil {
			resp.Body.Close()
			return err
		}
		switch resp.StatusCode {
		case http.StatusOK:
			if off > 0 {
				p.log.Info("hub restart download", "ref", ref.String(), "reason", "server ignored the range", "offset", off)
				if err := reset(); err != nil {
					resp.Body.Close()
					return err
				}
			}
			total = resp.ContentLength
		case http.StatusPartialContent:
			start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
			if off == 0 || !ok || start != off {
				resp.Body.Close()
				if err := reset(); err != nil {
					return err
				}
				continue
			}
			total = size
			p.log.Info("hub resume download", "ref", ref.String(), "offset", off)
		default:
			resp.Body.Close()
			return fmt.Errorf("get %s: unexpected %s", redact(resp.Request.URL), resp.Status)
		}
		break
	}
	if md.size > 0 && total >= 0 && md.size != total {
		if resp != nil {
			resp.Body.Close()
		}
		return fmt.Errorf("get %s: the download has %d bytes, the hub says %d", src, total, md.size)
	}
	if total < 0 {
		total = md.size
	}
	if resp != nil {
		p.log.Info("hub download", "ref", ref.String(), "bytes", total, "offset", off, "commit", md.commit)
		err := p.copyBody(f, h, resp.Body, path.Base(ref.File), off, total)
		resp.Body.Close()
		if err != nil {
			return err
		}
	}

	st, err := f.Stat()
	if err != nil {
		return err
	}
	if total >= 0 && st.Size() != total {
		return fmt.Errorf("get %s: got %d bytes, want %d (pull again to resume)", src, st.Size(), total)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if md.sha256 != "" && sum != md.sha256 {
		f.Close()
		if err := os.Remove(part); err != nil {
			p.log.Warn("hub remove", "path", part, "err", err)
		}
		return fmt.Errorf("%w: got %s, the hub says %s (the download is deleted)", ErrChecksum, sum, md.sha256)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(part, dest); err != nil {
		return err
	}
	if err := writeSidecar(dest, sum); err != nil {
		return err
	}
	verified := "sha256 checked"
	if md.sha256 == "" {
		verified = "no sha256 from the hub"
	}
	p.log.Info("hub pulled", "ref", ref.String(), "path", dest, "bytes", st.Size(), "sha256", sum, "verified", verified)
	return nil
}

// copyBody appends body to f and h, reporting progress.
func (p *puller) copyBody(f *os.File, h hash.Hash, body io.Reader, name string, off, total int64) error {
	m := newMeter(p.progress, name, total, off, p.now())
	defer func() { m.finish(p.now()) }()
	w := io.MultiWriter(f, h, meterWriter{m, p.now})
	if _, err := io.Copy(w, body); err != nil {
		return fmt.Errorf("download %s: %w (pull again to resume)", name, err)
	}
	return nil
}

// meterWriter counts bytes into a meter.
type meterWriter struct {
	m   *meter
	now func() time.Time
}

func (w meterWriter) Write(b []byte) (int, error) {
	if w.m != nil {
		w.m.add(int64(len(b)), w.now())
	}
	return len(b), nil
}

// meta is what the hub says about a file.
type meta struct {
	sha256 string // hex; "" when the hub gave none (a non-LFS file)
	size   int64  // 0 when unknown
	commit string
}

// note records the hub's headers, those of the first response that has
// them.
func (m *meta) note(h http.Header) {
	if m.sha256 == "" {
		m.sha256 = etagSHA256(h.Get("X-Linked-Etag"))
	}
	if m.size == 0 {
		m.size, _ = strconv.ParseInt(h.Get("X-Linked-Size"), 10, 64)
	}
	if m.commit == "" {
		m.commit = h.Get("X-Repo-Commit")
	}
}

// etagSHA256 returns the lowercase hex sha256 in an etag ("HEX", W/"HEX"),
// or "" when it holds none.
func etagSHA256(e string) string {
	e = strings.TrimPrefix(strings.TrimSpace(e), "W/")
	e = strings.ToLower(strings.Trim(e, `"`))
	if len(e) != 2*sha256.Size {
		return ""
	}
	if _, err := hex.DecodeString(e); err != nil {
		return ""
	}
	return e
}

// get sends GET src (from byte off on), following redirects itself: the
// token goes to the hub only, and the hub's metadata is read from its own
// responses (the redirect to the CDN carries it; the CDN's do not).
func (p *puller) get(ctx context.Context, src string, off int64) (*http.Response, meta, error) {
	var md meta
	target := src
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return nil, md, fmt.Errorf("get %s: %w", target, err)
		}
		if off > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
		}
		req.Header.Set("User-Agent", "strata")
		onHub := req.URL.Scheme == p.hub.Scheme && req.URL.Host == p.hub.Host
		if onHub && p.token != "" {
			req.Header.Set("Authorization", "Bearer "+p.token)
		}
		resp, err := p.client.Do(req)
		if err != nil {
			return nil, md, fmt.Errorf("get %s: %w", redact(req.URL), err)
		}
		if onHub {
			md.note(resp.Header)
		}
		if !isRedirect(resp.StatusCode) {
			return resp, md, nil
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if loc == "" {
			return nil, md, fmt.Errorf("get %s: %s without a Location", redact(req.URL), resp.Status)
		}
		if hop == maxRedirects {
			return nil, md, fmt.Errorf("get %s: more than %d redirects", src, maxRedirects)
		}
		next, err := req.URL.Parse(loc)
		if err != nil {
			return nil, md, fmt.Errorf("get %s: redirect to %q: %w", redact(req.URL), loc, err)
		}
		target = next.String()
	}
}

func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// redact returns u without its query (a CDN's signature) or user info.
func redact(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment = nil, "", false, ""
	return c.String()
}

// statusError returns nil for a 2xx status, else an error for ref that
// says what went wrong, wrapping ErrNotFound or ErrUnauthorized where it
// applies.
func statusError(resp *http.Response, ref Ref) error {
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	at := redact(resp.Request.URL)
	hasToken := resp.Request.Header.Get("Authorization") != ""
	switch {
	case code == http.StatusNotFound:
		return fmt.Errorf("%s: %w (404) at %s", ref, ErrNotFound, at)
	case (code == http.StatusUnauthorized || code == http.StatusForbidden) && !hasToken:
		return fmt.Errorf("%s: %w (%d) at %s: the repository is gated, private or missing, and needs a token: set HF_TOKEN", ref, ErrUnauthorized, code, at)
	case code == http.StatusUnauthorized:
		return fmt.Errorf("%s: %w (401) at %s: the hub refused the token (HF_TOKEN)", ref, ErrUnauthorized, at)
	case code == http.StatusForbidden:
		return fmt.Errorf("%s: %w (403) at %s: the token may not read this repository (a gated model's terms are accepted on its page)", ref, ErrUnauthorized, at)
	}
	msg := resp.Header.Get("X-Error-Message")
	if msg == "" {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		msg = strings.TrimSpace(string(b))
	}
	if msg != "" {
		return fmt.Errorf("%s: %s at %s: %s", ref, resp.Status, at, msg)
	}
	return fmt.Errorf("%s: %s at %s", ref, resp.Status, at)
}

// parseContentRange parses "bytes START-END/SIZE" or "bytes */SIZE"; start
// is -1 in the second form. It fails when SIZE is "*".
func parseContentRange(s string) (start, size int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, sz, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	size, err := strconv.ParseInt(sz, 10, 64)
	if err != nil || size < 0 {
		return 0, 0, false
	}
	if rng == "*" {
		return -1, size, true
	}
	a, _, found := strings.Cut(rng, "-")
	start, err = strconv.ParseInt(a, 10, 64)
	if !found || err != nil || start < 0 {
		return 0, 0, false
	}
	return start, size, true
}

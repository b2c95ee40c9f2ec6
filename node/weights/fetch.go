package weights

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/strata-llm/strata/cluster"
	"github.com/strata-llm/strata/pipeline/gguf"
)

// FetchConfig configures a Fetch. Host, Manifest, Digest, Peers and Dst
// are required.
type FetchConfig struct {
	Host     host.Host
	Manifest *cluster.Manifest
	Digest   string // the model file's, "sha256:HEX"
	// Parts are the tensors to fetch, by name; the header is always
	// fetched.
	Parts []string
	// Peers returns who may hold part ("" for the header), in order of
	// preference. Chunks are spread over them round-robin; a peer that
	// fails is asked after the others.
	Peers func(part string) []peer.ID
	// Dst is the path of the slice to write. While the fetch runs it
	// writes Dst.part, Dst.progress and Dst.header.part beside it.
	Dst string
	// Parallel bounds the chunks fetched at once (0: 4); each holds a
	// chunk in memory.
	Parallel int
	// Extra are metadata added to the slice (e.g. the layers it serves).
	Extra []gguf.KV
	// Header, when set, is the original file's header as an earlier fetch
	// got it: used (once verified against the manifest) instead of
	// fetching it again.
	Header []byte
	// OnBadPeer, when set, is called once for each peer that served a
	// chunk that does not match the manifest; that peer is not asked again
	// in this fetch. It is called from the fetch's goroutines, one call
	// at a time.
	OnBadPeer func(peer.ID, error)
	// Progress, when set, is called as chunks are written: done and total
	// are bytes of the header and the tensors, done counting what an
	// earlier run left. It is called from the fetch's goroutines, one call
	// at a time; it may cancel the fetch's context.
	Progress func(done, total int64)
	// DialTimeout bounds opening a stream to a peer (0:
	// DefaultDialTimeout); IOTimeout writing a request and reading each
	// piece of a reply (0: DefaultIOTimeout).
	DialTimeout time.Duration
	IOTimeout   time.Duration
	Logger      *slog.Logger // nil: slog.Default()
}

// FetchStats tell what a Fetch did.
type FetchStats struct {
	// Bytes are the bytes of the header and the tensors received from
	// peers, bad chunks included.
	Bytes int64
	// Chunks were fetched and verified; Refetched were asked of another
	// peer after one failed or served a bad chunk; Resumed were found
	// complete in an earlier run's file.
	Chunks, Refetched, Resumed int
	// BadPeers served chunks that do not match the manifest.
	BadPeers []peer.ID
	Duration time.Duration
}

// The files of a fetch in progress, beside Dst.
const (
	suffixPart     = ".part"
	suffixProgress = ".progress"
	suffixHeader   = ".header.part"
	syncEvery      = 64 // progress records between fsyncs
)

// Fetch fetches the header and the tensors cfg.Parts of the model
// cfg.Digest from peers and writes them as a GGUF slice at cfg.Dst, with
// the original header in its sidecar (HeaderPath). Every chunk is verified
// against the manifest before it is written.
//
// A Dst that already is such a slice (CheckSlice, its sidecar checked
// against the manifest) is kept and nothing is fetched. A fetch that ends
// early (ctx, an error) leaves its files, and the next Fetch to Dst
// resumes: the chunks it recorded are hashed again in Dst.part before they
// are trusted, and only the others are fetched.
//
// A chunk no peer could serve fails the fetch with an error that wraps
// ErrNoPeer and names the part and the chunk.
func Fetch(ctx context.Context, cfg FetchConfig) (FetchStats, error) {
	start := time.Now()
	if err := cfg.check(); err != nil {
		return FetchStats{}, err
	}
	if CheckSlice(cfg.Dst, cfg.Digest, cfg.Parts, cfg.Manifest) == nil {
		cfg.Logger.Info("slice already complete", "dst", cfg.Dst, "digest", cfg.Digest)
		return FetchStats{Duration: time.Since(start)}, nil
	}
	f := &fetcher{
		cfg: cfg, m: cfg.Manifest, log: cfg.Logger.With("digest", cfg.Digest, "dst", cfg.Dst),
		c:       newClient(cfg.Host, cfg.DialTimeout, cfg.IOTimeout),
		bad:     make(map[peer.ID]bool),
		notHeld: make(map[string]map[peer.ID]bool),
		failed:  make(map[peer.ID]int),
	}
	defer f.c.close()
	err := f.fetch(ctx)
	f.stats.Duration = time.Since(start)
	if err != nil {
		return f.stats, fmt.Errorf("fetch weights %s: %w", cfg.Digest, err)
	}
	mbps := float64(f.stats.Bytes) / 1e6 / f.stats.Duration.Seconds()
	f.log.Info("fetched weights", "bytes", f.stats.Bytes, "chunks", f.stats.Chunks, "resumed", f.stats.Resumed,
		"refetched", f.stats.Refetched, "bad_peers", len(f.stats.BadPeers), "duration", f.stats.Duration, "mb_per_s", mbps)
	return f.stats, nil
}

func (cfg *FetchConfig) check() error {
	switch {
	case cfg.Host == nil:
		return errors.New("fetch weights: no host")
	case cfg.Digest == "" || len(cfg.Digest) > maxDigestLen:
		return fmt.Errorf("fetch weights: digest %q", cfg.Digest)
	case cfg.Peers == nil:
		return errors.New("fetch weights: no Peers")
	case cfg.Dst == "":
		return errors.New("fetch weights: no Dst")
	}
	if err := checkManifest(cfg.Manifest); err != nil {
		return fmt.Errorf("fetch weights %s: %w", cfg.Digest, err)
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.IOTimeout <= 0 {
		cfg.IOTimeout = DefaultIOTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return nil
}

// fetcher is one Fetch's state.
type fetcher struct {
	cfg FetchConfig
	m   *cluster.Manifest
	log *slog.Logger
	c   *client

	mu      sync.Mutex
	stats   FetchStats
	bad     map[peer.ID]bool
	notHeld map[string]map[peer.ID]bool // by part
	failed  map[peer.ID]int             // requests that failed, by peer
	done    int64
	total   int64

	cb sync.Mutex // serialises the callbacks
}

// job is one chunk of a part.
type job struct {
	seq   int // in the fetch's list (recorded in the progress file)
	part  string
	chunk int   // in the part
	off   int64 // in the part
	n     int
	hash  string // hex sha256, from the manifest
	dst   int64  // absolute in the slice (tensors)
}

// jobs cuts a part into chunk jobs, numbered from seq.
func (f *fetcher) jobs(part string, p *cluster.Part, dst int64, seq int) []job {
	out := make([]job, len(p.Hashes))
	cs := f.m.ChunkSize
	for i := range out {
		off := int64(i) * cs
		out[i] = job{seq: seq + i, part: part, chunk: i, off: off, n: int(min(cs, p.Size-off)), hash: p.Hashes[i], dst: dst + off}
	}
	return out
}

func (f *fetcher) fetch(ctx context.Context) error {
	byName := make(map[string]*cluster.TensorPart, len(f.m.Tensors))
	for i := range f.m.Tensors {
		byName[f.m.Tensors[i].Name] = &f.m.Tensors[i]
	}
	f.total = f.m.Header.Size
	for _, name := range f.cfg.Parts {
		t, ok := byName[name]
		if !ok {
			return fmt.Errorf("%w: no tensor %q", ErrManifest, name)
		}
		f.total += t.Size
	}

	header, err := f.header(ctx)
	if err != nil {
		return err
	}
	h, err := gguf.ParseHeader(header)
	if err != nil {
		return fmt.Errorf("header: %w", err) // it matched the manifest: the manifest is of a bad file
	}
	if err := agree(f.m, h); err != nil {
		return err
	}
	sum := sha256.Sum256(header)
	extra := append([]gguf.KV{
		{Key: KeySliceDigest, Value: gguf.Value{Type: gguf.TypeString, V: f.cfg.Digest}},
		{Key: KeySliceHeader, Value: gguf.Value{Type: gguf.TypeString, V: hex.EncodeToString(sum[:])}},
	}, f.cfg.Extra...)
	l, err := gguf.PlanSlice(h, f.cfg.Parts, extra)
	if err != nil {
		return fmt.Errorf("plan slice: %w", err)
	}
	var jobs []job
	for _, st := range l.Tensors {
		jobs = append(jobs, f.jobs(st.Name, &byName[st.Name].Part, st.Offset, len(jobs))...)
	}

	out, todo, err := f.open(ctx, l, jobs)
	if err != nil {
		return err
	}
	defer out.Close()
	prog, err := os.OpenFile(f.cfg.Dst+suffixProgress, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer prog.Close()
	rec := &recorder{f: prog}
	err = f.run(ctx, todo, f.m.ChunkSize, func(ctx context.Context, j job, buf []byte) error {
		buf = buf[:j.n]
		if err := f.chunk(ctx, j, buf); err != nil {
			return err
		}
		if _, err := out.WriteAt(buf, j.dst); err != nil {
			return err
		}
		if err := rec.record(j.seq); err != nil {
			return fmt.Errorf("record progress: %w", err)
		}
		f.advance(int64(j.n))
		return nil
	})
	if serr := rec.sync(); err == nil && serr != nil {
		err = fmt.Errorf("record progress: %w", serr)
	}
	if err != nil {
		return err
	}
	return f.finish(out)
}

// finish makes the slice and its sidecar durable and puts them in place.
func (f *fetcher) finish(out *os.File) error {
	dst := f.cfg.Dst
	if err := out.Sync(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Rename(dst+suffixHeader, HeaderPath(dst)); err != nil {
		return err
	}
	if err := os.Rename(dst+suffixPart, dst); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	if err := os.Remove(dst + suffixProgress); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// agree checks that the header h describes the file of the manifest m.
func agree(m *cluster.Manifest, h *gguf.File) error {
	if len(h.Tensors) != len(m.Tensors) {
		return fmt.Errorf("%w: %d tensors, the header has %d", ErrManifest, len(m.Tensors), len(h.Tensors))
	}
	if want := int64(min(h.DataOffset, uint64(m.FileSize))); m.Header.Size != want {
		return fmt.Errorf("%w: a header of %d bytes, the header says %d", ErrManifest, m.Header.Size, want)
	}
	for i, t := range h.Tensors {
		mt := &m.Tensors[i]
		if mt.Name != t.Name || mt.Offset != int64(h.DataOffset+t.Offset) || mt.Size != int64(t.Size) {
			return fmt.Errorf("%w: tensor %d is %q at %d (%d bytes), the header says %q at %d (%d bytes)",
				ErrManifest, i, mt.Name, mt.Offset, mt.Size, t.Name, h.DataOffset+t.Offset, t.Size)
		}
	}
	return nil
}

// header returns the original file's header, verified: from the sidecar
// an earlier run left, or fetched and then saved there.
func (f *fetcher) header(ctx context.Context) ([]byte, error) {
	path := f.cfg.Dst + suffixHeader
	hp := &f.m.Header
	if b := f.cfg.Header; int64(len(b)) == hp.Size {
		if _, err := verifyPart(b, hp, f.m.ChunkSize); err == nil {
			if err := writeFileSync(path, b); err != nil {
				return nil, err
			}
			f.advance(hp.Size)
			return b, nil
		}
	}
	if b, err := readAtMost(path, hp.Size); err == nil {
		if _, err := verifyPart(b, hp, f.m.ChunkSize); err == nil {
			f.advance(hp.Size)
			return b, nil
		}
	}
	b := make([]byte, hp.Size)
	err := f.run(ctx, f.jobs("", hp, 0, 0), 0, func(ctx context.Context, j job, _ []byte) error {
		if err := f.chunk(ctx, j, b[j.off:j.off+int64(j.n)]); err != nil {
			return err
		}
		f.advance(int64(j.n))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := writeFileSync(path, b); err != nil {
		return nil, err
	}
	return b, nil
}

// open opens Dst.part for the slice l: the one an earlier run left when it
// was for the same slice, its recorded chunks verified, or a new one. It
// returns the jobs left to do.
func (f *fetcher) open(ctx context.Context, l *gguf.SliceLayout, jobs []job) (*os.File, []job, error) {
	path := f.cfg.Dst + suffixPart
	if out, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
		if same(out, l) {
			todo, err := f.resume(ctx, out, jobs)
			if err != nil {
				out.Close()
				return nil, nil, err
			}
			return out, todo, nil
		}
		out.Close()
	}
	if err := os.Remove(f.cfg.Dst + suffixProgress); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	out, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, nil, err
	}
	err = out.Truncate(l.TotalSize)
	if err == nil {
		_, err = out.WriteAt(l.Header, 0)
	}
	if err != nil {
		out.Close()
		return nil, nil, err
	}
	return out, jobs, nil
}

// same reports whether out is laid out as l: its size and header.
func same(out *os.File, l *gguf.SliceLayout) bool {
	st, err := out.Stat()
	if err != nil || st.Size() != l.TotalSize {
		return false
	}
	b := make([]byte, len(l.Header))
	if _, err := out.ReadAt(b, 0); err != nil {
		return false
	}
	return bytes.Equal(b, l.Header)
}

// resume reads the progress an earlier run recorded, hashes the chunks it
// names in out, and returns the jobs that are not done.
func (f *fetcher) resume(ctx context.Context, out *os.File, jobs []job) ([]job, error) {
	recorded := readProgress(f.cfg.Dst+suffixProgress, len(jobs))
	var check []job
	for seq := range recorded {
		check = append(check, jobs[seq])
	}
	slices.SortFunc(check, func(a, b job) int { return a.seq - b.seq })
	ok := make([]bool, len(jobs))
	var mu sync.Mutex
	err := f.run(ctx, check, f.m.ChunkSize, func(_ context.Context, j job, buf []byte) error {
		buf = buf[:j.n]
		if _, err := out.ReadAt(buf, j.dst); err != nil {
			return err
		}
		if hashHex(buf) == j.hash {
			mu.Lock()
			ok[j.seq] = true
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var todo []job
	resumed, bytes := 0, int64(0)
	for _, j := range jobs {
		if ok[j.seq] {
			resumed++
			bytes += int64(j.n)
		} else {
			todo = append(todo, j)
		}
	}
	f.mu.Lock()
	f.stats.Resumed = resumed
	f.mu.Unlock()
	f.log.Info("resuming a fetch", "recorded", len(check), "verified", resumed, "left", len(todo))
	f.advance(bytes)
	return todo, nil
}

// readProgress returns the chunk numbers below n recorded at path; a line
// that does not parse (a torn last write) is skipped.
func readProgress(path string, n int) map[int]bool {
	out := make(map[int]bool)
	fd, err := os.Open(path)
	if err != nil {
		return out
	}
	defer fd.Close()
	sc := bufio.NewScanner(fd)
	for sc.Scan() {
		seq, err := strconv.Atoi(sc.Text())
		if err == nil && seq >= 0 && seq < n {
			out[seq] = true
		}
	}
	return out
}

// recorder appends the numbers of written chunks to the progress file,
// fsyncing it every syncEvery records. The records need not be durable
// before the chunks they name: a resumed fetch hashes every recorded chunk
// again.
type recorder struct {
	mu   sync.Mutex
	f    *os.File
	n    int
	line []byte
}

func (r *recorder) record(seq int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.line = strconv.AppendInt(r.line[:0], int64(seq), 10)
	r.line = append(r.line, '\n')
	if _, err := r.f.Write(r.line); err != nil {
		return err
	}
	if r.n++; r.n%syncEvery == 0 {
		return r.f.Sync()
	}
	return nil
}

func (r *recorder) sync() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Sync()
}

// run runs do on each job from Parallel goroutines, each with a buffer of
// bufSize bytes, and returns the first error (which stops the others).
func (f *fetcher) run(ctx context.Context, jobs []job, bufSize int64, do func(context.Context, job, []byte) error) error {
	if len(jobs) == 0 {
		return ctx.Err()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ch := make(chan job)
	var wg sync.WaitGroup
	for range min(f.cfg.Parallel, len(jobs)) {
		wg.Go(func() {
			buf := make([]byte, bufSize)
			for j := range ch {
				if ctx.Err() != nil {
					continue
				}
				if err := do(ctx, j, buf); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for _, j := range jobs {
		select {
		case ch <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// chunk fetches job j into dst (j.n bytes) and verifies it, trying the
// peers that may hold its part in turn.
func (f *fetcher) chunk(ctx context.Context, j job, dst []byte) error {
	var (
		last  error
		tried int
	)
	for _, p := range f.candidates(j) {
		if f.isBad(p) {
			continue
		}
		if tried > 0 {
			f.mu.Lock()
			f.stats.Refetched++
			f.mu.Unlock()
		}
		tried++
		err := f.get(ctx, p, j, dst)
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if err == nil {
			if got := hashHex(dst); got != j.hash {
				err = &PeerError{Peer: p, Part: j.part, Err: fmt.Errorf("%w: chunk %d hashes to %s, want %s", ErrBadChunk, j.chunk, got, j.hash)}
				f.badPeer(p, err)
				last = err
				continue
			}
			f.mu.Lock()
			f.stats.Chunks++
			f.mu.Unlock()
			return nil
		}
		err = &PeerError{Peer: p, Part: j.part, Err: err}
		f.mu.Lock()
		if errors.Is(err, ErrNotHeld) {
			if f.notHeld[j.part] == nil {
				f.notHeld[j.part] = make(map[peer.ID]bool)
			}
			f.notHeld[j.part][p] = true
		} else {
			f.failed[p]++
		}
		f.mu.Unlock()
		f.log.Debug("chunk request failed", "peer", p, "part", j.part, "chunk", j.chunk, "err", err)
		last = err
	}
	if last == nil {
		return fmt.Errorf("part %s chunk %d: %w: no peer to ask", partName(j.part), j.chunk, ErrNoPeer)
	}
	return fmt.Errorf("part %s chunk %d: %w (asked %d): %w", partName(j.part), j.chunk, ErrNoPeer, tried, last)
}

// get fetches j from p into dst, in requests of at most MaxRequest.
func (f *fetcher) get(ctx context.Context, p peer.ID, j job, dst []byte) error {
	for done := 0; done < j.n; {
		n := min(j.n-done, MaxRequest)
		got, err := f.c.get(ctx, p, request{digest: f.cfg.Digest, part: j.part, off: j.off + int64(done), n: n}, dst[done:done+n])
		f.mu.Lock()
		f.stats.Bytes += int64(got)
		f.mu.Unlock()
		if err != nil {
			return err
		}
		done += n
	}
	return nil
}

// candidates returns the peers to ask for j, in order: those Peers names
// for its part, but the bad ones and those that said they do not hold it,
// rotated by the chunk's number (round-robin), those that failed before
// last.
func (f *fetcher) candidates(j job) []peer.ID {
	var ps []peer.ID
	for _, p := range f.cfg.Peers(j.part) {
		if !slices.Contains(ps, p) && p != f.cfg.Host.ID() {
			ps = append(ps, p)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ps = slices.DeleteFunc(ps, func(p peer.ID) bool { return f.bad[p] || f.notHeld[j.part][p] })
	if len(ps) == 0 {
		return nil
	}
	k := j.seq % len(ps)
	ps = slices.Concat(ps[k:], ps[:k])
	slices.SortStableFunc(ps, func(a, b peer.ID) int { return min(f.failed[a], 1) - min(f.failed[b], 1) })
	return ps
}

func (f *fetcher) isBad(p peer.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bad[p]
}

// badPeer marks p bad, once, and tells OnBadPeer.
func (f *fetcher) badPeer(p peer.ID, err error) {
	f.mu.Lock()
	first := !f.bad[p]
	f.bad[p] = true
	if first {
		f.stats.BadPeers = append(f.stats.BadPeers, p)
	}
	f.mu.Unlock()
	if !first {
		return
	}
	f.log.Warn("a peer served a bad chunk: not asking it again", "peer", p, "err", err)
	f.c.forget(p)
	if f.cfg.OnBadPeer != nil {
		f.cb.Lock()
		f.cfg.OnBadPeer(p, err)
		f.cb.Unlock()
	}
}

// advance counts n more bytes in place and tells Progress.
func (f *fetcher) advance(n int64) {
	f.cb.Lock()
	defer f.cb.Unlock()
	f.mu.Lock()
	f.done += n
	done, total := f.done, f.total
	f.mu.Unlock()
	if f.cfg.Progress != nil {
		f.cfg.Progress(done, total)
	}
}

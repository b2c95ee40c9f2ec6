package weights

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/strata-llm/strata/cluster"
	"github.com/strata-llm/strata/internal/testdata"
	"github.com/strata-llm/strata/node/p2p"
	"github.com/strata-llm/strata/pipeline/gguf"
)

var quiet = slog.New(slog.DiscardHandler)

// newHost starts a libp2p host on loopback TCP, closed with the test.
func newHost(tb testing.TB) host.Host {
	tb.Helper()
	h, err := p2p.NewHost(context.Background(), p2p.HostConfig{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

// know tells h where the others listen.
func know(h host.Host, others ...host.Host) {
	for _, o := range others {
		h.Peerstore().AddAddrs(o.ID(), o.Addrs(), peerstore.PermanentAddrTTL)
	}
}

// holder is a node serving a file.
type holder struct {
	h   host.Host
	srv *Server
}

// newHolder serves the file at path (full or slice) under digest.
func newHolder(tb testing.TB, path, digest string, opts ServerOptions) *holder {
	tb.Helper()
	h := newHost(tb)
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	srv := Serve(h, opts)
	tb.Cleanup(func() { srv.Close() })
	if path != "" {
		src, err := OpenSource(path)
		if err != nil {
			tb.Fatal(err)
		}
		srv.Add(digest, src)
		tb.Cleanup(func() { srv.Remove(digest); src.Close() })
	}
	return &holder{h: h, srv: srv}
}

// model is a GGUF file with its manifest.
type model struct {
	path   string
	m      *cluster.Manifest
	digest string
	f      *gguf.File // open for the test
}

func newModel(tb testing.TB, path string, chunk int64) *model {
	tb.Helper()
	m, digest, err := BuildManifest(path, chunk)
	if err != nil {
		tb.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return &model{path: path, m: m, digest: digest, f: f}
}

func stories(tb testing.TB, chunk int64) *model {
	return newModel(tb, testdata.Path(tb, "models/stories260K-f32.gguf"), chunk)
}

// layers returns the names of the tensors of blocks [lo, hi).
func (md *model) layers(lo, hi int) []string {
	var out []string
	for _, t := range md.m.Tensors {
		if t.Layer >= lo && t.Layer < hi {
			out = append(out, t.Name)
		}
	}
	return out
}

// bytesOf returns the bytes of the named tensors plus the header.
func (md *model) bytesOf(names []string) int64 {
	n := md.m.Header.Size
	for _, t := range md.m.Tensors {
		for _, name := range names {
			if t.Name == name {
				n += t.Size
			}
		}
	}
	return n
}

// checkSlice checks that the slice at path holds exactly names, with the
// source's bytes.
func (md *model) checkSlice(t *testing.T, path string, names []string) {
	t.Helper()
	g, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if len(g.Tensors) != len(names) {
		t.Fatalf("slice holds %d tensors, want %d", len(g.Tensors), len(names))
	}
	for _, name := range names {
		gt, ok := g.Tensor(name)
		st, _ := md.f.Tensor(name)
		if !ok || !bytes.Equal(g.TensorData(gt), md.f.TensorData(st)) {
			t.Fatalf("slice tensor %q differs from the source's", name)
		}
	}
	if d, _ := g.String(KeySliceDigest); d != md.digest {
		t.Fatalf("slice digest %q, want %q", d, md.digest)
	}
	if arch, blocks := g.Architecture(), uint64(0); arch != md.f.Architecture() {
		t.Fatalf("slice architecture %q, want %q", arch, md.f.Architecture())
	} else if blocks, _ = g.Uint(arch + ".block_count"); blocks == 0 {
		t.Fatalf("slice lost %s.block_count", arch)
	}
	if err := VerifySlice(path, md.digest, md.m); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{suffixPart, suffixProgress, suffixHeader} {
		if _, err := os.Stat(path + suffix); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (%v)", path+suffix, err)
		}
	}
}

// fetchConfig is a fetch of names from holders into a fresh directory.
func (md *model) fetchConfig(t testing.TB, h host.Host, names []string, holders ...*holder) FetchConfig {
	var ids []peer.ID
	for _, x := range holders {
		know(h, x.h)
		ids = append(ids, x.h.ID())
	}
	return FetchConfig{
		Host: h, Manifest: md.m, Digest: md.digest, Parts: names,
		Peers:  func(string) []peer.ID { return ids },
		Dst:    filepath.Join(t.TempDir(), "slice.gguf"),
		Logger: quiet,
	}
}

func TestLayerOf(t *testing.T) {
	for name, want := range map[string]int{
		"blk.0.attn_q.weight": 0, "blk.17.ffn_up.weight": 17, "token_embd.weight": -1,
		"output.weight": -1, "blk.x.attn_q.weight": -1, "blk.3": -1, "blk..a": -1,
		"blk.+1.a": -1, "blk.-1.a": -1, "blk.01.a": -1, "blk.99999999999.a": -1,
	} {
		if got := LayerOf(name); got != want {
			t.Errorf("LayerOf(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestBuildManifest(t *testing.T) {
	path := testdata.Path(t, "models/stories260K-f32.gguf")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := gguf.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	for _, chunk := range []int64{0, 16 << 10, 1000, 1 << 30 >> 10} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			m, digest, err := BuildManifest(path, chunk)
			if err != nil {
				t.Fatal(err)
			}
			cs := chunk
			if cs == 0 {
				cs = DefaultChunkSize
			}
			if digest != "sha256:"+hex.EncodeToString(sum[:]) || m.ChunkSize != cs || m.FileSize != int64(len(data)) {
				t.Fatalf("digest %s, chunk %d, size %d", digest, m.ChunkSize, m.FileSize)
			}
			if err := checkManifest(m); err != nil {
				t.Fatal(err)
			}
			check := func(name string, p *cluster.Part) {
				for i, got := range p.Hashes {
					lo := p.Offset + int64(i)*cs
					if want := hashHex(data[lo:min(p.Offset+p.Size, lo+cs)]); got != want {
						t.Fatalf("%s chunk %d: %s, want %s", name, i, got, want)
					}
				}
			}
			if m.Header.Offset != 0 || m.Header.Size != int64(h.DataOffset) {
				t.Fatalf("header [%d, +%d), want [0, %d)", m.Header.Offset, m.Header.Size, h.DataOffset)
			}
			check("header", &m.Header)
			if len(m.Tensors) != len(h.Tensors) {
				t.Fatalf("%d tensors, want %d", len(m.Tensors), len(h.Tensors))
			}
			for i, ti := range h.Tensors {
				mt := &m.Tensors[i]
				if mt.Name != ti.Name || mt.Offset != int64(h.DataOffset+ti.Offset) || mt.Size != int64(ti.Size) || mt.Layer != LayerOf(ti.Name) {
					t.Fatalf("tensor %d: %+v, want %q at %d (%d bytes)", i, mt, ti.Name, h.DataOffset+ti.Offset, ti.Size)
				}
				check(mt.Name, &mt.Part)
			}
		})
	}
	if _, _, err := BuildManifest(path, -1); err == nil {
		t.Error("BuildManifest with a chunk size of -1 did not fail")
	}
	if _, _, err := BuildManifest(filepath.Join(t.TempDir(), "none.gguf"), 0); err == nil {
		t.Error("BuildManifest of a missing file did not fail")
	}
}

func TestFetch(t *testing.T) {
	md := stories(t, 16<<10)
	a := newHolder(t, md.path, md.digest, ServerOptions{})
	b := newHolder(t, md.path, md.digest, ServerOptions{})
	names := md.layers(2, 4)
	fetcher := newHost(t)
	cfg := md.fetchConfig(t, fetcher, names, a, b)
	var progress []int64
	cfg.Progress = func(done, total int64) { progress = append(progress, done) }
	cfg.Extra = []gguf.KV{{Key: "strata.slice.layers", Value: gguf.Value{Type: gguf.TypeString, V: "2-4"}}}
	st, err := Fetch(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	md.checkSlice(t, cfg.Dst, names)
	want := md.bytesOf(names)
	t.Logf("fetched %d tensors: %+v; header and tensors %d bytes", len(names), st, want)
	if st.Bytes < want || float64(st.Bytes) > 1.05*float64(want) {
		t.Errorf("fetched %d bytes, want %d to 5%% more", st.Bytes, want)
	}
	if st.Chunks < 20 || st.Refetched != 0 || len(st.BadPeers) != 0 || st.Resumed != 0 {
		t.Errorf("stats %+v", st)
	}
	if len(progress) == 0 || progress[len(progress)-1] != want {
		t.Errorf("progress ended at %v, want %d", progress[len(progress)-1:], want)
	}
	if !SliceHas(cfg.Dst, md.digest, names) || SliceHas(cfg.Dst, md.digest, md.layers(1, 4)) || SliceHas(cfg.Dst, "sha256:00", names) {
		t.Error("SliceHas is wrong about the slice")
	}

	t.Run("reuse", func(t *testing.T) {
		st, err := Fetch(context.Background(), cfg)
		if err != nil || st.Bytes != 0 || st.Chunks != 0 {
			t.Fatalf("a second fetch: %+v, %v", st, err)
		}
	})

	t.Run("from a slice", func(t *testing.T) {
		// A node holding only the slice serves its tensors and the
		// original header to the next joiner.
		c := newHolder(t, cfg.Dst, md.digest, ServerOptions{})
		cfg2 := md.fetchConfig(t, newHost(t), names[:3], c)
		if _, err := Fetch(context.Background(), cfg2); err != nil {
			t.Fatal(err)
		}
		md.checkSlice(t, cfg2.Dst, names[:3])

		// What it does not hold, it says so, and the error names the part.
		cfg3 := md.fetchConfig(t, newHost(t), md.layers(4, 5), c)
		_, err := Fetch(context.Background(), cfg3)
		t.Logf("%v", err)
		if !errors.Is(err, ErrNoPeer) || !errors.Is(err, ErrNotHeld) || !strings.Contains(err.Error(), `"blk.4.`) {
			t.Fatalf("fetch of a part no peer holds: %v", err)
		}
	})
}

func TestFetchBadPeer(t *testing.T) {
	md := stories(t, 16<<10)
	corrupt := func(part string, off int64, p []byte) { p[len(p)/2] ^= 0x40 }
	bad := newHolder(t, md.path, md.digest, ServerOptions{Knobs: &ServerKnobs{Corrupt: corrupt}})
	good := newHolder(t, md.path, md.digest, ServerOptions{})
	names := md.layers(0, 2)
	cfg := md.fetchConfig(t, newHost(t), names, bad, good)
	var (
		mu     sync.Mutex
		called []peer.ID
	)
	cfg.OnBadPeer = func(p peer.ID, err error) {
		mu.Lock()
		defer mu.Unlock()
		called = append(called, p)
		var pe *PeerError
		if !errors.As(err, &pe) || pe.Peer != p || !errors.Is(err, ErrBadChunk) {
			t.Errorf("OnBadPeer(%s, %v)", p, err)
		}
	}
	st, err := Fetch(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	md.checkSlice(t, cfg.Dst, names)
	t.Logf("stats %+v", st)
	if len(called) != 1 || called[0] != bad.h.ID() {
		t.Fatalf("OnBadPeer called for %v, want once for %s", called, bad.h.ID())
	}
	if len(st.BadPeers) != 1 || st.BadPeers[0] != bad.h.ID() || st.Refetched == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFetchResume(t *testing.T) {
	md := stories(t, 16<<10)
	a := newHolder(t, md.path, md.digest, ServerOptions{})
	b := newHolder(t, md.path, md.digest, ServerOptions{})
	names := md.layers(1, 5)
	want := md.bytesOf(names)
	cfg := md.fetchConfig(t, newHost(t), names, a, b)
	ctx, cancel := context.WithCancel(context.Background())
	cfg.Progress = func(done, total int64) {
		if done > total/2 {
			cancel()
		}
	}
	st1, err := Fetch(ctx, cfg)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled fetch: %v", err)
	}
	if st1.Bytes == 0 || st1.Bytes >= want {
		t.Fatalf("the cancelled fetch got %d of %d bytes", st1.Bytes, want)
	}
	// Spoil a recorded chunk: it is hashed again and fetched again.
	recorded := readProgress(cfg.Dst+suffixProgress, 1<<20)
	if len(recorded) == 0 {
		t.Fatal("no progress recorded")
	}
	l := planOf(t, md, names)
	part, err := os.OpenFile(cfg.Dst+suffixPart, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := part.WriteAt([]byte("spoilt"), l.Tensors[0].Offset); err != nil {
		t.Fatal(err)
	}
	part.Close()

	cfg.Progress = nil
	st2, err := Fetch(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	md.checkSlice(t, cfg.Dst, names)
	t.Logf("cancelled: %+v; resumed: %+v; %d bytes, %d chunks recorded", st1, st2, want, len(recorded))
	wantResumed := len(recorded)
	if recorded[0] {
		wantResumed-- // spoilt
	}
	if st2.Bytes >= want || st2.Resumed != wantResumed {
		t.Fatalf("the resumed fetch: %+v (of %d bytes, %d chunks recorded)", st2, want, len(recorded))
	}
	if st1.Bytes+st2.Bytes < want || float64(st1.Bytes+st2.Bytes) > 1.3*float64(want) {
		t.Errorf("the two fetches got %d + %d bytes, want about %d", st1.Bytes, st2.Bytes, want)
	}
}

// planOf is the layout Fetch makes for names.
func planOf(t *testing.T, md *model, names []string) *gguf.SliceLayout {
	t.Helper()
	b, err := os.ReadFile(md.path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := gguf.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b[:md.m.Header.Size])
	l, err := gguf.PlanSlice(h, names, []gguf.KV{
		{Key: KeySliceDigest, Value: gguf.Value{Type: gguf.TypeString, V: md.digest}},
		{Key: KeySliceHeader, Value: gguf.Value{Type: gguf.TypeString, V: hex.EncodeToString(sum[:])}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestFetchNoHolder(t *testing.T) {
	md := stories(t, 16<<10)
	names := md.layers(0, 1)
	empty := newHolder(t, "", "", ServerOptions{}) // serves nothing
	tests := []struct {
		name    string
		holders []*holder
		is      []error
		says    string
	}{
		{"no peers", nil, []error{ErrNoPeer}, "header chunk 0"},
		{"not held", []*holder{empty}, []error{ErrNoPeer, ErrNotHeld}, "header chunk 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := md.fetchConfig(t, newHost(t), names, tc.holders...)
			_, err := Fetch(context.Background(), cfg)
			for _, is := range tc.is {
				if !errors.Is(err, is) {
					t.Errorf("error %v is not %v", err, is)
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %v does not say %q", err, tc.says)
			}
		})
	}
	t.Run("unknown tensor", func(t *testing.T) {
		cfg := md.fetchConfig(t, newHost(t), []string{"blk.9.none"})
		if _, err := Fetch(context.Background(), cfg); !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), "blk.9.none") {
			t.Errorf("fetch of an unknown tensor: %v", err)
		}
	})
}

func TestAllow(t *testing.T) {
	md := stories(t, 16<<10)
	member, stranger := newHost(t), newHost(t)
	var (
		mu    sync.Mutex
		asked []peer.ID
	)
	allow := func(p peer.ID) bool {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, p)
		return p == member.ID()
	}
	a := newHolder(t, md.path, md.digest, ServerOptions{Allow: allow})
	names := md.layers(0, 1)

	cfg := md.fetchConfig(t, stranger, names, a)
	_, err := Fetch(context.Background(), cfg)
	if !errors.Is(err, ErrNoPeer) || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("a stranger's fetch: %v", err)
	}
	mu.Lock()
	if len(asked) == 0 || asked[0] != stranger.ID() {
		t.Errorf("Allow asked about %v", asked)
	}
	mu.Unlock()

	cfg = md.fetchConfig(t, member, names, a)
	if _, err := Fetch(context.Background(), cfg); err != nil {
		t.Fatalf("a member's fetch: %v", err)
	}
	md.checkSlice(t, cfg.Dst, names)
}

// TestServer asks a server directly: statuses, ranges, Remove.
func TestServer(t *testing.T) {
	md := stories(t, 16<<10)
	a := newHolder(t, md.path, md.digest, ServerOptions{})
	h := newHost(t)
	know(h, a.h)
	c := newClient(h, DefaultDialTimeout, DefaultIOTimeout)
	defer c.close()
	ctx := context.Background()
	t0 := md.m.Tensors[0]
	whole, _ := os.ReadFile(md.path)
	tests := []struct {
		name string
		req  request
		is   error
	}{
		{"header", request{digest: md.digest, off: 10, n: 100}, nil},
		{"tensor", request{digest: md.digest, part: t0.Name, off: 3, n: int(t0.Size) - 3}, nil},
		{"other file", request{digest: "sha256:00", n: 1}, ErrNotHeld},
		{"unknown tensor", request{digest: md.digest, part: "blk.99.x", n: 1}, ErrNotHeld},
		{"past the end", request{digest: md.digest, part: t0.Name, off: t0.Size - 1, n: 2}, ErrRefused},
		{"offset past the end", request{digest: md.digest, part: t0.Name, off: t0.Size + 1, n: 1}, ErrRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]byte, tc.req.n)
			_, err := c.get(ctx, a.h.ID(), tc.req, dst)
			if tc.is != nil {
				if !errors.Is(err, tc.is) {
					t.Fatalf("get: %v, want %v", err, tc.is)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			base := int64(0)
			if tc.req.part != "" {
				base = t0.Offset
			}
			if !bytes.Equal(dst, whole[base+tc.req.off:base+tc.req.off+int64(tc.req.n)]) {
				t.Fatal("wrong bytes")
			}
		})
	}
	a.srv.Remove(md.digest)
	if _, err := c.get(ctx, a.h.ID(), request{digest: md.digest, n: 1}, make([]byte, 1)); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("after Remove: %v", err)
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add(appendRequest(nil, request{digest: "sha256:ab", part: "blk.0.attn_q.weight", off: 1 << 40, n: 4096}))
	f.Add(appendRequest(nil, request{digest: "d", n: MaxRequest}))
	f.Add([]byte{1, 0, 0, 0})
	f.Add(appendReply(nil, statusOK, 7))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, _, err := readRequest(bytes.NewReader(data), nil)
		if err == nil {
			if err := r.check(); err != nil {
				t.Fatalf("readRequest returned a request that fails check: %v", err)
			}
			enc := appendRequest(nil, r)
			if !bytes.HasPrefix(data, enc) {
				t.Fatalf("request %+v re-encodes to %x, read from %x", r, enc, data)
			}
		}
		if len(data) >= replyPrefix {
			want := int(uint(len(data)) % (MaxRequest + 1))
			status, n, err := replyHeader(data[:replyPrefix], want)
			if err == nil && (status > statusFailed || (status == statusOK && n != want) || (status != statusOK && n > maxReasonLen)) {
				t.Fatalf("replyHeader(%x, %d) = %d, %d", data[:replyPrefix], want, status, n)
			}
		}
	})
}

package p2p

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/strata-llm/strata/internal/testdata"
	"github.com/strata-llm/strata/pipeline"
	_ "github.com/strata-llm/strata/pipeline/arch/llama"
)

var quiet = slog.New(slog.DiscardHandler)

const stories = "models/stories260K-f32.gguf"

// cluster is a gateway and one stage server a host on a mocknet (or on
// loopback TCP), the stages from a split of stories260K.
type cluster struct {
	mn      mocknet.Mocknet
	gateway host.Host
	hosts   []host.Host
	split   *pipeline.Split
	servers []*StageServer
	remotes []*RemoteStage
	tcp     bool // real hosts on loopback TCP, not mocknet peers
	once    sync.Once
}

// gate is a stage that can be made to hold its next Forward until
// released or its ctx ends (then closing cancelled, when set), or to fail
// every batch.
type gate struct {
	*pipeline.Local
	mu        sync.Mutex
	hold      bool
	fail      error
	entered   chan struct{}
	release   chan struct{}
	cancelled chan struct{}
}

func (g *gate) Forward(ctx context.Context, b *pipeline.Batch) (*pipeline.Batch, error) {
	g.mu.Lock()
	hold, fail := g.hold, g.fail
	g.hold = false // the next Forward passes
	g.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	if hold {
		close(g.entered)
		select {
		case <-g.release:
		case <-ctx.Done():
			if g.cancelled != nil {
				close(g.cancelled)
			}
			return nil, ctx.Err()
		}
	}
	return g.Local.Forward(ctx, b)
}

// holdNext makes g hold its next Forward.
func (g *gate) holdNext() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold, g.entered, g.release, g.cancelled = true, make(chan struct{}), make(chan struct{}), make(chan struct{})
}

func newCluster(t testing.TB, n int, log *slog.Logger, cfg RemoteConfig) *cluster {
	t.Helper()
	return newClusterLatency(t, n, log, cfg, 0)
}

// newClusterLatency is newCluster with every mocknet link delaying its
// traffic by latency.
func newClusterLatency(t testing.TB, n int, log *slog.Logger, cfg RemoteConfig, latency time.Duration) *cluster {
	t.Helper()
	return newClusterWith(t, n, clusterOptions{log: log, cfg: cfg, latency: latency})
}

// clusterOptions shape a test cluster.
type clusterOptions struct {
	log     *slog.Logger
	cfg     RemoteConfig  // the gateway's RemoteStages'
	latency time.Duration // of every link
	serve   ServeOptions  // of every stage server; Layers and Logger are set
	// wrap, when set, stands in for each host (the gateway's first) in
	// what the cluster builds over it.
	wrap func(host.Host) host.Host
	// tcp puts every host on a real libp2p host over loopback TCP instead
	// of the mocknet.
	tcp bool
}

// newClusterWith builds a cluster of n stages.
func newClusterWith(t testing.TB, n int, o clusterOptions) *cluster {
	t.Helper()
	log, cfg, latency := o.log, o.cfg, o.latency
	if o.wrap == nil {
		o.wrap = func(h host.Host) host.Host { return h }
	}
	path := testdata.Path(t, stories)
	split, err := pipeline.OpenSplit(path, n, pipeline.SplitOptions{Threads: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{mn: mocknet.New(), split: split, tcp: o.tcp}
	t.Cleanup(c.close)
	genPeer := c.mn.GenPeer
	if o.tcp {
		genPeer = func() (host.Host, error) {
			return NewHost(context.Background(), HostConfig{Listen: []string{loopTCP}, Logger: quiet})
		}
	}
	if c.gateway, err = genPeer(); err != nil {
		t.Fatal(err)
	}
	c.gateway = o.wrap(c.gateway)
	for _, l := range split.Locals {
		h, err := genPeer()
		if err != nil {
			t.Fatal(err)
		}
		h = o.wrap(h)
		c.hosts = append(c.hosts, h)
		so := o.serve
		so.Layers, so.Logger = rangeOf(l), log
		srv, err := ServeStage(h, &gate{Local: l}, so)
		if err != nil {
			t.Fatal(err)
		}
		c.servers = append(c.servers, srv)
	}
	if o.tcp {
		all := append([]host.Host{c.gateway}, c.hosts...)
		for i, a := range all {
			for _, b := range all[i+1:] {
				if err := a.Connect(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
					t.Fatal(err)
				}
			}
		}
	} else {
		c.mn.SetLinkDefaults(mocknet.LinkOptions{Latency: latency})
		if err := c.mn.LinkAll(); err != nil {
			t.Fatal(err)
		}
		if err := c.mn.ConnectAllButSelf(); err != nil {
			t.Fatal(err)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = log
	}
	for _, h := range c.hosts {
		r, err := DialStage(context.Background(), c.gateway, peer.AddrInfo{ID: h.ID()}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.remotes = append(c.remotes, r)
	}
	return c
}

func rangeOf(l *pipeline.Local) LayerRange {
	lo, hi := l.Range()
	return LayerRange{lo, hi}
}

func (c *cluster) stages() []pipeline.Stage {
	var s []pipeline.Stage
	for _, r := range c.remotes {
		s = append(s, r)
	}
	return s
}

func (c *cluster) close() {
	c.once.Do(func() {
		for _, r := range c.remotes {
			r.Close()
		}
		for _, s := range c.servers {
			s.Close()
		}
		if c.tcp {
			for _, h := range append([]host.Host{c.gateway}, c.hosts...) {
				h.Close()
			}
		}
		c.mn.Close()
		c.split.Close()
	})
}

// runDriver starts a Driver over stages and stops it when the test ends.
func runDriver(t testing.TB, stages []pipeline.Stage) *pipeline.Driver {
	t.Helper()
	d, err := pipeline.NewDriver(stages, pipeline.DriverConfig{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return d
}

// generateAll runs every request at once and returns their tokens.
func generateAll(t testing.TB, d *pipeline.Driver, reqs []pipeline.TokenRequest) [][]int {
	t.Helper()
	out := make([][]int, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() {
			res, err := d.Generate(context.Background(), r, func(int) error { return nil })
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
			out[i] = res.Tokens
		})
	}
	wg.Wait()
	return out
}

func storiesRequests(t testing.TB, n int) []pipeline.TokenRequest {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	var reqs []pipeline.TokenRequest
	for _, c := range ref.Cases {
		reqs = append(reqs, pipeline.TokenRequest{Prompt: c.PromptTokens, MaxTokens: n, IgnoreEOS: true})
	}
	return reqs
}

func TestRemoteStagesMatchLocal(t *testing.T) {
	reqs := storiesRequests(t, 24)
	local, err := pipeline.OpenSplit(testdata.Path(t, stories), 3, pipeline.SplitOptions{Threads: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	want := generateAll(t, runDriver(t, local.Stages()), reqs)

	c := newCluster(t, 3, quiet, RemoteConfig{})
	for i, r := range c.remotes {
		if got, want := r.Layers(), rangeOf(c.split.Locals[i]); got != want {
			t.Errorf("stage %d says %v, want %v", i, got, want)
		}
	}
	got := generateAll(t, runDriver(t, c.stages()), reqs)
	for i := range want {
		if len(want[i]) == 0 || !slices.Equal(got[i], want[i]) {
			t.Errorf("request %d: remote %v, local %v", i, got[i], want[i])
		}
	}
	for i, l := range c.split.Locals {
		if n := l.Sessions(); n != 0 {
			t.Errorf("stage %d holds %d sessions after the requests", i, n)
		}
	}
}

func TestRemoteStageSequenceFailure(t *testing.T) {
	c := newCluster(t, 3, quiet, RemoteConfig{})
	b := &pipeline.Batch{}
	b.AddSeq(pipeline.Seq{ID: 1, Pos: 3}, []int{5}) // no such session
	b.AddSeq(pipeline.Seq{ID: 2, Open: true}, []int{1, 5})
	out, err := c.remotes[0].Forward(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Seqs) != 1 || out.Seqs[0].ID != 2 || len(out.X) != 2*c.split.Config.Dim {
		t.Fatalf("out seqs %v, %d activations", out.Seqs, len(out.X))
	}
	var re *RemoteError
	if len(out.Failed) != 1 || out.Failed[0].ID != 1 || !errors.Is(out.Failed[0].Err, pipeline.ErrNoSession) ||
		!errors.As(out.Failed[0].Err, &re) || re.Peer != c.hosts[0].ID() {
		t.Errorf("failed %v", out.Failed)
	}
	// A whole batch refused: the second stage given no activations.
	b = &pipeline.Batch{}
	b.AddSeq(pipeline.Seq{ID: 3, Open: true}, []int{1})
	_, err = c.remotes[1].Forward(context.Background(), b)
	if !errors.Is(err, ErrStageFailed) || !errors.Is(err, pipeline.ErrBadBatch) || !errors.As(err, &re) || re.Layers != rangeOf(c.split.Locals[1]) {
		t.Errorf("forward without activations: %v", err)
	}
	if err := c.remotes[0].End(context.Background(), []uint64{2}); err != nil {
		t.Fatal(err)
	}
	if n := c.split.Locals[0].Sessions(); n != 0 {
		t.Errorf("%d sessions after End", n)
	}
}

// stageGoroutines lists the goroutines running this package's code, but
// for the tests'.
func stageGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "node/p2p.(*") {
			out = append(out, g)
		}
	}
	return out
}

func TestKilledStageFailsFast(t *testing.T) {
	c := newCluster(t, 3, quiet, RemoteConfig{RequestTimeout: time.Minute, DialTimeout: time.Second})
	g := c.servers[1].stage.(*gate)
	g.hold, g.entered, g.release = true, make(chan struct{}), make(chan struct{})

	b := &pipeline.Batch{}
	b.AddSeq(pipeline.Seq{ID: 1, Open: true, Logits: true}, []int{1, 5, 9})
	b, err := c.remotes[0].Forward(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.remotes[1].Forward(context.Background(), b)
		errc <- err
	}()
	<-g.entered
	c.hosts[1].Close()
	start := time.Now()
	select {
	case err = <-errc:
	case <-time.After(2 * time.Second):
		t.Fatal("the request to a killed stage still waits after 2s")
	}
	var re *RemoteError
	if !errors.As(err, &re) || re.Peer != c.hosts[1].ID() || re.Layers != rangeOf(c.split.Locals[1]) || !errors.Is(err, ErrPeerUnreachable) {
		t.Fatalf("err %v, want a RemoteError for peer %s, %v", err, c.hosts[1].ID(), rangeOf(c.split.Locals[1]))
	}
	t.Logf("failed after %v: %v", time.Since(start), err)

	c.close()
	deadline := time.Now().Add(5 * time.Second)
	for left := stageGoroutines(); len(left) > 0; left = stageGoroutines() {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left:\n%s", strings.Join(left, "\n\n"))
		}
		runtime.Gosched()
	}
}

// TestCorruptMessageRefused writes garbage on a raw stream: the server
// refuses it, logs the peer, and resets the stream.
func TestCorruptMessageRefused(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	c := newCluster(t, 1, log, RemoteConfig{})
	for _, tc := range []struct {
		name string
		want string // in the log
		msg  func() []byte
	}{
		{"garbage", "malformed message", func() []byte { return []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n") }},
		{"corrupt frame", "wire: corrupt frame", func() []byte {
			b := testBatch(c.split.Config.Dim, 0)
			msg := encodeBatch(t, b)
			msg[len(msg)-20] ^= 0xff // in the frame's payload
			// Recompute the message CRC so that only the frame is wrong.
			fixed, _ := appendMessage(nil, msgForward, func(d []byte) ([]byte, error) { return append(d, msg[msgHeaderSize:]...), nil })
			return fixed
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			logs.Reset()
			mu.Unlock()
			s, err := c.gateway.NewStream(context.Background(), c.hosts[0].ID(), StageProtocol)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Reset()
			if _, err := s.Write(tc.msg()); err != nil {
				t.Fatal(err)
			}
			s.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := s.Read(make([]byte, 16)); err == nil {
				t.Errorf("the server answered garbage with %d bytes", n)
			}
			mu.Lock()
			got := logs.String()
			mu.Unlock()
			if !strings.Contains(got, "refused a message") || !strings.Contains(got, tc.want) || !strings.Contains(got, "peer="+c.gateway.ID().String()) {
				t.Errorf("log does not name the peer:\n%s", got)
			}
		})
	}
	// The server still serves well-formed requests.
	b := &pipeline.Batch{}
	b.AddSeq(pipeline.Seq{ID: 1, Open: true, Logits: true}, []int{1})
	if _, err := c.remotes[0].Forward(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestForwardCancelled(t *testing.T) {
	c := newCluster(t, 1, quiet, RemoteConfig{})
	g := c.servers[0].stage.(*gate)
	g.hold, g.entered, g.release = true, make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		b := &pipeline.Batch{}
		b.AddSeq(pipeline.Seq{ID: 1, Open: true, Logits: true}, []int{1})
		_, err := c.remotes[0].Forward(ctx, b)
		errc <- err
	}()
	<-g.entered
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
	g.mu.Lock()
	g.hold = false
	g.mu.Unlock()
	close(g.release)
	// A new stream serves the next request.
	b := &pipeline.Batch{}
	b.AddSeq(pipeline.Seq{ID: 2, Open: true, Logits: true}, []int{1})
	if _, err := c.remotes[0].Forward(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// TestInFlightBound holds one request in the stage with MaxInFlight 1: a
// second waits for the first, and gives up when its ctx ends, having
// opened no second stream.
func TestInFlightBound(t *testing.T) {
	c := newCluster(t, 1, quiet, RemoteConfig{MaxInFlight: 1})
	g := c.servers[0].stage.(*gate)
	g.hold, g.entered, g.release = true, make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		b := &pipeline.Batch{}
		b.AddSeq(pipeline.Seq{ID: 1, Open: true, Logits: true}, []int{1})
		_, err := c.remotes[0].Forward(context.Background(), b)
		errc <- err
	}()
	<-g.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := &pipeline.Batch{}
	b.AddSeq(pipeline.Seq{ID: 2, Open: true, Logits: true}, []int{1})
	if _, err := c.remotes[0].Forward(ctx, b); !errors.Is(err, context.Canceled) {
		t.Errorf("second request: %v, want context.Canceled", err)
	}
	if err := c.remotes[0].End(ctx, []uint64{1}); !errors.Is(err, context.Canceled) {
		t.Errorf("end beyond the bound: %v, want context.Canceled", err)
	}
	c.servers[0].mu.Lock()
	n := c.servers[0].streams
	c.servers[0].mu.Unlock()
	if n != 1 {
		t.Errorf("%d streams served, want 1", n)
	}
	close(g.release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestServeStageNeedsLayers(t *testing.T) {
	mn := mocknet.New()
	defer mn.Close()
	h, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ServeStage(h, echoStage{}, ServeOptions{Logger: quiet}); err == nil {
		t.Error("served a stage of unknown layers")
	}
}

func TestDialStageChecksLayers(t *testing.T) {
	c := newCluster(t, 2, quiet, RemoteConfig{})
	want := rangeOf(c.split.Locals[1])
	r, err := DialStage(context.Background(), c.gateway, peer.AddrInfo{ID: c.hosts[1].ID()}, RemoteConfig{Layers: want, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	_, err = DialStage(context.Background(), c.gateway, peer.AddrInfo{ID: c.hosts[0].ID()}, RemoteConfig{Layers: want, Logger: quiet})
	var re *RemoteError
	if !errors.Is(err, ErrWrongLayers) || !errors.As(err, &re) || re.Peer != c.hosts[0].ID() {
		t.Errorf("err %v, want ErrWrongLayers from %s", err, c.hosts[0].ID())
	}
}

// TestKilledStageFailsGenerate kills the middle stage of a route while the
// Driver has a micro-batch in it: Generate fails within 2s with an error
// naming that peer, and the Driver goes on serving nothing else stuck.
func TestKilledStageFailsGenerate(t *testing.T) {
	c := newCluster(t, 3, quiet, RemoteConfig{DialTimeout: 500 * time.Millisecond})
	g := c.servers[1].stage.(*gate)
	g.hold, g.entered, g.release = true, make(chan struct{}), make(chan struct{})
	d := runDriver(t, c.stages())
	errc := make(chan error, 1)
	go func() {
		_, err := d.Generate(context.Background(), pipeline.TokenRequest{Prompt: []int{1, 5, 9}, MaxTokens: 4}, func(int) error { return nil })
		errc <- err
	}()
	<-g.entered
	c.hosts[1].Close()
	var err error
	select {
	case err = <-errc:
	case <-time.After(2 * time.Second):
		t.Fatal("Generate still waits 2s after its stage died")
	}
	var re *RemoteError
	if !errors.As(err, &re) || re.Peer != c.hosts[1].ID() || !errors.Is(err, ErrPeerUnreachable) {
		t.Fatalf("err %v, want a RemoteError naming %s", err, c.hosts[1].ID())
	}
}

package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/strata-llm/strata/internal/testdata"
	"github.com/strata-llm/strata/pipeline"
	"github.com/strata-llm/strata/pipeline/wire"
)

// routeHops are the hops of c's stages, in order.
func (c *cluster) routeHops() []RouteHop {
	var hops []RouteHop
	for i, h := range c.hosts {
		hops = append(hops, RouteHop{Peer: peer.AddrInfo{ID: h.ID()}, Layers: rangeOf(c.split.Locals[i])})
	}
	return hops
}

// dialRoute dials a route over c's stages, closed when the test ends.
func dialRoute(t testing.TB, c *cluster, cfg RemoteConfig) *RemoteRoute {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	r, err := DialRoute(context.Background(), c.gateway, c.routeHops(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// step is one micro-batch of the lockstep runs: two sequences, prefilled
// then decoded with the greedy tokens of the reference stage.
func stepBatch(num uint64, toks [][]int, pos []int) *pipeline.Batch {
	b := &pipeline.Batch{Num: num}
	for i, t := range toks {
		b.AddSeq(pipeline.Seq{ID: uint64(i + 1), Pos: pos[i], Open: pos[i] == 0, Logits: true}, t)
	}
	return b
}

func argmaxOf(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// TestRouteMatchesLocal runs prefill and decode steps of two sequences
// through a route of 3 stages and through one in-process stage over every
// layer: with the lossless codec the logits are bit for bit the same; with
// f16 they are bit for bit those of an in-process chain with the same
// codec between its stages, and the greedy tokens are the one stage's.
func TestRouteMatchesLocal(t *testing.T) {
	path := testdata.Path(t, stories)
	for _, codec := range []wire.Codec{wire.Lossless, wire.Compact} {
		t.Run(codec.String(), func(t *testing.T) {
			one, err := pipeline.OpenSplit(path, 1, pipeline.SplitOptions{Threads: 1, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer one.Close()
			three, err := pipeline.OpenSplit(path, 3, pipeline.SplitOptions{Threads: 1, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer three.Close()
			chain, err := pipeline.NewChain(codec, three.Stages()...)
			if err != nil {
				t.Fatal(err)
			}
			c := newClusterWith(t, 3, clusterOptions{log: quiet, serve: ServeOptions{Codec: codec}})
			r := dialRoute(t, c, RemoteConfig{Codec: codec})

			toks := [][]int{{1, 403, 407, 261, 378}, {1, 365}}
			pos := []int{0, 0}
			ctx := context.Background()
			var worst float64
			for step := range 6 {
				want, err := one.Locals[0].Forward(ctx, stepBatch(uint64(step), toks, pos))
				if err != nil {
					t.Fatal(err)
				}
				ref, err := chain.Forward(ctx, stepBatch(uint64(step), toks, pos))
				if err != nil {
					t.Fatal(err)
				}
				got, err := r.Forward(ctx, stepBatch(uint64(step), toks, pos))
				if err != nil {
					t.Fatal(err)
				}
				if len(got.Failed) != 0 || len(got.Logits) != len(want.Logits) || got.Vocab != want.Vocab {
					t.Fatalf("step %d: %d logits of %d, failed %v; want %d of %d", step, len(got.Logits), got.Vocab, got.Failed, len(want.Logits), want.Vocab)
				}
				if codec == wire.Lossless && !slices.Equal(got.Logits, want.Logits) {
					t.Fatalf("step %d: lossless logits differ from one stage's", step)
				}
				if !slices.Equal(got.Logits, ref.Logits) {
					t.Fatalf("step %d: logits differ from an in-process chain's with %v", step, codec)
				}
				for k := range toks {
					w, g := want.LogitsRow(k), got.LogitsRow(k)
					for j := range w {
						worst = max(worst, math.Abs(float64(w[j]-g[j])))
					}
					if argmaxOf(g) != argmaxOf(w) {
						t.Errorf("step %d, sequence %d: greedy token %d, one stage's %d", step, k, argmaxOf(g), argmaxOf(w))
					}
					pos[k] += len(toks[k])
					toks[k] = []int{argmaxOf(w)}
				}
			}
			t.Logf("%v: max |Δlogit| against one stage %.3g", codec, worst)
			if err := r.End(ctx, []uint64{1, 2}); err != nil {
				t.Fatal(err)
			}
			for i, l := range c.split.Locals {
				if n := l.Sessions(); n != 0 {
					t.Errorf("stage %d holds %d sessions after End", i, n)
				}
			}
		})
	}
}

// TestRouteDriverMatchesLocal drives the reference prompts through a
// route, one stage to the Driver taking 3 micro-batches at once, and
// through 3 in-process stages: the greedy tokens are the same.
func TestRouteDriverMatchesLocal(t *testing.T) {
	reqs := storiesRequests(t, 16)
	local, err := pipeline.OpenSplit(testdata.Path(t, stories), 3, pipeline.SplitOptions{Threads: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	want := generateAll(t, runDriver(t, local.Stages()), reqs)

	c := newCluster(t, 3, quiet, RemoteConfig{})
	r := dialRoute(t, c, RemoteConfig{})
	d := runDriver(t, []pipeline.Stage{r})
	if sc := d.SchedConfig(); sc.Stages != 3 || sc.MaxInFlight != 3 {
		t.Errorf("scheduler of %d stages, %d in flight; want 3, 3", sc.Stages, sc.MaxInFlight)
	}
	got := generateAll(t, d, reqs)
	for i := range want {
		if len(want[i]) == 0 || !slices.Equal(got[i], want[i]) {
			t.Errorf("request %d: route %v, local %v", i, got[i], want[i])
		}
	}
	for i, l := range c.split.Locals {
		if n := l.Sessions(); n != 0 {
			t.Errorf("stage %d holds %d sessions after the requests", i, n)
		}
	}
}

// counting is a host whose streams count the bytes they carry, by
// protocol and remote peer.
type counting struct {
	host.Host
	mu          sync.Mutex
	read, wrote map[flow]int64
}

type flow struct {
	proto protocol.ID
	peer  peer.ID
}

func newCounting(h host.Host) host.Host {
	return &counting{Host: h, read: map[flow]int64{}, wrote: map[flow]int64{}}
}

func (c *counting) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := c.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	return &countingStream{Stream: s, c: c}, nil
}

func (c *counting) SetStreamHandler(pid protocol.ID, h network.StreamHandler) {
	c.Host.SetStreamHandler(pid, func(s network.Stream) { h(&countingStream{Stream: s, c: c}) })
}

// add counts n bytes read or written on s. It picks the map under the
// lock: snapshot swaps both for new ones while streams are in use.
func (c *counting) add(write bool, s network.Stream, n int) {
	f := flow{s.Protocol(), s.Conn().RemotePeer()}
	c.mu.Lock()
	if write {
		c.wrote[f] += int64(n)
	} else {
		c.read[f] += int64(n)
	}
	c.mu.Unlock()
}

func (c *counting) snapshot() (read, wrote map[flow]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	read, wrote = c.read, c.wrote
	c.read, c.wrote = map[flow]int64{}, map[flow]int64{}
	return read, wrote
}

type countingStream struct {
	network.Stream
	c *counting
}

func (s *countingStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	s.c.add(false, s.Stream, n)
	return n, err
}

func (s *countingStream) Write(p []byte) (int, error) {
	n, err := s.Stream.Write(p)
	s.c.add(true, s.Stream, n)
	return n, err
}

// settled waits until the route has read every answer.
func settled(t *testing.T, r *RemoteRoute) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(r.stages[0].sem) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the route's answers never came")
		}
		runtime.Gosched()
	}
}

// TestRouteChainsDirectly counts the bytes on every host's streams while
// a route runs micro-batches: the gateway sends each to the first stage
// and reads nothing back from it but an ack, each stage sends its
// activations to the next only, and the last sends the logits straight
// back to the gateway.
func TestRouteChainsDirectly(t *testing.T) {
	c := newClusterWith(t, 3, clusterOptions{log: quiet, wrap: newCounting})
	r := dialRoute(t, c, RemoteConfig{})
	gw := c.gateway.(*counting)
	for _, h := range append([]host.Host{gw}, c.hosts...) {
		h.(*counting).snapshot()
	}
	const steps = 4
	ctx := context.Background()
	toks, pos := [][]int{{1, 403, 407, 261}}, []int{0}
	for step := range steps {
		out, err := r.Forward(ctx, stepBatch(uint64(step), toks, pos))
		if err != nil {
			t.Fatal(err)
		}
		if out.Vocab == 0 || len(out.Logits) != out.Vocab {
			t.Fatalf("step %d: %d logits of %d", step, len(out.Logits), out.Vocab)
		}
		pos[0] += len(toks[0])
		toks[0] = []int{argmaxOf(out.Logits)}
	}
	settled(t, r)
	ids := []peer.ID{c.hosts[0].ID(), c.hosts[1].ID(), c.hosts[2].ID()}
	read, wrote := gw.snapshot()
	if n := read[flow{StageProtocolV2, ids[0]}]; n != steps*msgHeaderSize {
		t.Errorf("the gateway read %d bytes from the first stage, want %d acks", n, steps)
	}
	for _, id := range ids[1:] {
		if n := read[flow{StageProtocolV2, id}] + wrote[flow{StageProtocolV2, id}]; n != 0 {
			t.Errorf("the gateway exchanged %d bytes with a later stage %s", n, id)
		}
	}
	if read[flow{ResultProtocol, ids[2]}] == 0 || len(read) != 2 {
		t.Errorf("the gateway read %v, want acks from the first stage and results from the last", read)
	}
	if wrote[flow{StageProtocolV2, ids[0]}] == 0 {
		t.Error("the gateway sent nothing to the first stage")
	}
	// Each stage reads its input from the one before (the first from the
	// gateway) and writes its output to the one after (the last to the
	// gateway).
	from := []peer.ID{gw.ID(), ids[0], ids[1]}
	for i, h := range c.hosts {
		read, wrote := h.(*counting).snapshot()
		in := read[flow{StageProtocolV2, from[i]}]
		var out int64
		if i < 2 {
			out = wrote[flow{StageProtocolV2, ids[i+1]}]
		} else {
			out = wrote[flow{ResultProtocol, gw.ID()}]
		}
		t.Logf("stage %d read %d bytes from its upstream and wrote %d downstream", i, in, out)
		if in == 0 || out == 0 {
			t.Errorf("stage %d: read %v, wrote %v", i, read, wrote)
		}
		for f, n := range read {
			if f.peer != from[i] && n > msgHeaderSize*steps {
				t.Errorf("stage %d read %d bytes of %s from %s, not its upstream", i, n, f.proto, f.peer)
			}
		}
	}
}

// kill kills stage i's host. A real host is closed. A mocknet one is
// unlinked from every other (closed but linked, it still takes new
// connections), cut from the gateway and the stages before it, then
// closed: a killed process sends nothing more, while a closing mocknet
// host drops its connections one at a time, in no set order, and gives
// no sign that it is closing, so the stage would still reply upstream
// about the downstream connection it lost first.
func (c *cluster) kill(i int) {
	victim := c.hosts[i].ID()
	if !c.tcp {
		up := append([]host.Host{c.gateway}, c.hosts[:i]...)
		for _, h := range append(up, c.hosts[i+1:]...) {
			c.mn.UnlinkPeers(h.ID(), victim)
		}
		for _, h := range up {
			c.mn.DisconnectPeers(h.ID(), victim)
		}
	}
	c.hosts[i].Close()
}

// checkNoGoroutines waits, within a bound, for this package's goroutines
// to end and the goroutine count to settle back to base.
func checkNoGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for left := stageGoroutines(); len(left) > 0 || runtime.NumGoroutine() > base; left = stageGoroutines() {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before; this package's left:\n%s", runtime.NumGoroutine(), base, strings.Join(left, "\n\n"))
		}
		runtime.Gosched()
	}
}

// TestRouteKilledMiddleStage closes the middle stage's host while two
// micro-batches are in flight on the route, one held inside that stage and
// one inside the first: both Forwards fail within 2s with an error naming
// the middle peer, reported by the first stage, and nothing is left
// running once all is closed.
func TestRouteKilledMiddleStage(t *testing.T) {
	t.Run("mocknet", func(t *testing.T) { testRouteKilledMiddleStage(t, false) })
	// On real hosts the stage sees its own host closing.
	t.Run("tcp", func(t *testing.T) { testRouteKilledMiddleStage(t, true) })
}

func testRouteKilledMiddleStage(t *testing.T, tcp bool) {
	base := runtime.NumGoroutine()
	c := newClusterWith(t, 3, clusterOptions{log: quiet, cfg: RemoteConfig{DialTimeout: time.Second}, tcp: tcp})
	r := dialRoute(t, c, RemoteConfig{DialTimeout: time.Second})
	ctx := context.Background()
	for id := uint64(1); id <= 2; id++ {
		b := &pipeline.Batch{}
		b.AddSeq(pipeline.Seq{ID: id, Open: true, Logits: true}, []int{1, 5, 9})
		if _, err := r.Forward(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	errc := make(chan error, 2)
	send := func(id uint64) {
		b := &pipeline.Batch{Num: id}
		b.AddSeq(pipeline.Seq{ID: id, Pos: 3, Logits: true}, []int{7})
		_, err := r.Forward(ctx, b)
		errc <- err
	}
	first, middle := c.servers[0].stage.(*gate), c.servers[1].stage.(*gate)
	middle.holdNext()
	go send(1)
	<-middle.entered
	first.holdNext()
	go send(2)
	<-first.entered
	c.kill(1)
	close(first.release)
	start := time.Now()
	for range 2 {
		var err error
		select {
		case err = <-errc:
		case <-time.After(2 * time.Second):
			t.Fatal("a request through a killed stage still waits after 2s")
		}
		var re *RemoteError
		if !errors.As(err, &re) || re.Peer != c.hosts[1].ID() || re.Layers != rangeOf(c.split.Locals[1]) || !errors.Is(err, ErrPeerUnreachable) {
			t.Fatalf("err %v, want a RemoteError for peer %s, %v", err, c.hosts[1].ID(), rangeOf(c.split.Locals[1]))
		}
		t.Logf("failed after %v: %v", time.Since(start), err)
	}
	r.Close()
	c.close()
	checkNoGoroutines(t, base)
}

// TestRouteLastStageFails checks that the failures of the last stage name
// it: a whole batch refused there, and a sequence it dropped, beside one
// the first stage dropped.
func TestRouteLastStageFails(t *testing.T) {
	c := newCluster(t, 3, quiet, RemoteConfig{})
	r := dialRoute(t, c, RemoteConfig{})
	ctx := context.Background()
	b := &pipeline.Batch{}
	b.AddSeq(pipeline.Seq{ID: 1, Open: true, Logits: true}, []int{1, 5})
	b.AddSeq(pipeline.Seq{ID: 2, Open: true, Logits: true}, []int{1, 9})
	if _, err := r.Forward(ctx, b); err != nil {
		t.Fatal(err)
	}
	// Sequence 2's session is gone from the last stage only; sequence 3
	// has none anywhere.
	if err := c.remotes[2].End(ctx, []uint64{2}); err != nil {
		t.Fatal(err)
	}
	b = &pipeline.Batch{}
	b.AddSeq(pipeline.Seq{ID: 1, Pos: 2, Logits: true}, []int{7})
	b.AddSeq(pipeline.Seq{ID: 2, Pos: 2, Logits: true}, []int{7})
	b.AddSeq(pipeline.Seq{ID: 3, Pos: 2, Logits: true}, []int{7})
	out, err := r.Forward(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Seqs) != 1 || out.Seqs[0].ID != 1 || len(out.Logits) != out.Vocab {
		t.Errorf("out seqs %v, %d logits of %d", out.Seqs, len(out.Logits), out.Vocab)
	}
	wantFrom := map[uint64]int{3: 0, 2: 2}
	if len(out.Failed) != 2 {
		t.Fatalf("failed %v", out.Failed)
	}
	for _, f := range out.Failed {
		var re *RemoteError
		i, ok := wantFrom[f.ID]
		if !ok || !errors.As(f.Err, &re) || re.Peer != c.hosts[i].ID() || re.Layers != rangeOf(c.split.Locals[i]) || !errors.Is(f.Err, pipeline.ErrNoSession) {
			t.Errorf("sequence %d failed with %v, want ErrNoSession from stage %d (%s)", f.ID, f.Err, i, c.hosts[i].ID())
		}
	}

	// The last stage refuses the whole batch.
	g := c.servers[2].stage.(*gate)
	g.mu.Lock()
	g.fail = fmt.Errorf("%w: a test's refusal", pipeline.ErrBadBatch)
	g.mu.Unlock()
	b = &pipeline.Batch{}
	b.AddSeq(pipeline.Seq{ID: 1, Pos: 3, Logits: true}, []int{7})
	_, err = r.Forward(ctx, b)
	var re *RemoteError
	if !errors.As(err, &re) || re.Peer != c.hosts[2].ID() || re.Layers != rangeOf(c.split.Locals[2]) ||
		!errors.Is(err, ErrStageFailed) || !errors.Is(err, pipeline.ErrBadBatch) || errors.Is(err, ErrPeerUnreachable) {
		t.Errorf("err %v, want ErrStageFailed from the last stage %s", err, c.hosts[2].ID())
	}
}

// TestRouteForwardCancelled cancels a Forward held in the last stage: it
// returns at once, and the cancellation reaches that stage hop by hop.
func TestRouteForwardCancelled(t *testing.T) {
	c := newCluster(t, 3, quiet, RemoteConfig{})
	r := dialRoute(t, c, RemoteConfig{})
	g := c.servers[2].stage.(*gate)
	g.holdNext()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		b := &pipeline.Batch{}
		b.AddSeq(pipeline.Seq{ID: 1, Open: true, Logits: true}, []int{1})
		_, err := r.Forward(ctx, b)
		errc <- err
	}()
	<-g.entered
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
	select {
	case <-g.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the last stage's Forward never saw the cancellation")
	}
	g.mu.Lock()
	g.hold = false
	g.mu.Unlock()
	b := &pipeline.Batch{}
	b.AddSeq(pipeline.Seq{ID: 2, Open: true, Logits: true}, []int{1})
	if _, err := r.Forward(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// TestDialRouteChecks checks what DialRoute refuses: a hop serving other
// layers, or another epoch, layers that do not follow on, and a peer that
// serves only version 1 of the stage protocol.
func TestDialRouteChecks(t *testing.T) {
	c := newClusterWith(t, 3, clusterOptions{log: quiet, serve: ServeOptions{Epoch: 5}})
	ctx := context.Background()
	dial := func(hops []RouteHop) error {
		r, err := DialRoute(ctx, c.gateway, hops, RemoteConfig{Logger: quiet})
		if err == nil {
			r.Close()
		}
		return err
	}
	hops := c.routeHops()
	if err := dial(hops); err != nil {
		t.Fatal(err)
	}
	wrong := slices.Clone(hops)
	wrong[1].Layers = hops[2].Layers
	var re *RemoteError
	if err := dial(wrong); !errors.Is(err, ErrWrongLayers) || !errors.As(err, &re) || re.Peer != c.hosts[1].ID() {
		t.Errorf("wrong layers: %v", err)
	}
	stale := slices.Clone(hops)
	stale[2].Epoch = 4
	if err := dial(stale); !errors.Is(err, ErrStaleRoute) || !errors.As(err, &re) || re.Peer != c.hosts[2].ID() {
		t.Errorf("stale epoch: %v", err)
	}
	gap := []RouteHop{hops[0], hops[2]}
	if err := dial(gap); err == nil {
		t.Error("dialed a route with a gap in its layers")
	}
	c.hosts[1].RemoveStreamHandler(StageProtocolV2)
	if err := dial(hops); !errors.Is(err, ErrProtocol) || !errors.As(err, &re) || re.Peer != c.hosts[1].ID() {
		t.Errorf("version 1 peer: %v", err)
	}
	// A version 1 client still gets served.
	b := &pipeline.Batch{}
	b.AddSeq(pipeline.Seq{ID: 1, Open: true}, []int{1})
	if _, err := c.remotes[0].Forward(ctx, b); err != nil {
		t.Fatal(err)
	}
}

// TestChainMessagesRoundTrip encodes and decodes a route, a delivery's
// head and a hop error.
func TestChainMessagesRoundTrip(t *testing.T) {
	gw, hops := testRoute(t)
	in := chainRoute{req: 42, index: 1, gateway: gw, hops: hops, origins: []byte{0, 1}}
	body, err := appendRoute(nil, &in)
	if err != nil {
		t.Fatal(err)
	}
	body = append(body, "batch"...)
	var out chainRoute
	rest, err := decodeRoute(body, &out)
	if err != nil || string(rest) != "batch" {
		t.Fatalf("decodeRoute: %q, %v", rest, err)
	}
	if out.req != 42 || out.index != 1 || out.gateway.ID != gw.ID || !out.gateway.Addrs[0].Equal(gw.Addrs[0]) ||
		len(out.hops) != 2 || !bytes.Equal(out.origins, in.origins) {
		t.Fatalf("decoded %+v, want %+v", out, in)
	}
	for i := range hops {
		if out.hops[i].Peer.ID != hops[i].Peer.ID || out.hops[i].Layers != hops[i].Layers || out.hops[i].Epoch != hops[i].Epoch || len(out.hops[i].Peer.Addrs) != len(hops[i].Peer.Addrs) {
			t.Errorf("hop %d: %+v, want %+v", i, out.hops[i], hops[i])
		}
	}
	// An origin beyond the route is refused.
	in.origins = []byte{3}
	body, _ = appendRoute(nil, &in)
	if _, err := decodeRoute(body, &out); !errors.Is(err, errMessage) {
		t.Errorf("origin beyond the route: %v", err)
	}

	e := &RemoteError{Peer: hops[1].Peer.ID, Layers: LayerRange{2, 4}, Err: fmt.Errorf("%w: %w", ErrStageFailed, pipeline.ErrKVBudget)}
	got, err := decodeHopError(appendHopError(nil, e))
	if err != nil {
		t.Fatal(err)
	}
	if got.Peer != e.Peer || got.Layers != e.Layers || got.Err.Error() != e.Err.Error() ||
		!errors.Is(got, ErrStageFailed) || !errors.Is(got, pipeline.ErrKVBudget) || errors.Is(got, ErrPeerUnreachable) {
		t.Errorf("hop error %v, want %v", got, e)
	}
	// Passed on again, it stays the same.
	again, err := decodeHopError(appendHopError(nil, got))
	if err != nil || again.Err.Error() != e.Err.Error() || !errors.Is(again, ErrStageFailed) || !errors.Is(again, pipeline.ErrKVBudget) {
		t.Errorf("hop error passed on: %v, %v", again, err)
	}
}

func testRoute(t testing.TB) (peer.AddrInfo, []RouteHop) {
	var ids []peer.ID
	for i := range 3 {
		_, pub, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{byte(i + 1)}, 64)))
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	addr := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	gw := peer.AddrInfo{ID: ids[0], Addrs: []ma.Multiaddr{addr}}
	return gw, []RouteHop{
		{Peer: peer.AddrInfo{ID: ids[1], Addrs: []ma.Multiaddr{addr, ma.StringCast("/ip6/::1/udp/4001/quic-v1")}}, Layers: LayerRange{0, 2}, Epoch: 3},
		{Peer: peer.AddrInfo{ID: ids[2]}, Layers: LayerRange{2, 5}},
	}
}

// FuzzChainMessage feeds arbitrary bytes to the decoders of the version 2
// bodies: they must refuse or accept without panicking, and what they
// accept must encode back to what decodes the same.
func FuzzChainMessage(f *testing.F) {
	gw, hops := testRoute(f)
	route, _ := appendRoute(nil, &chainRoute{req: 7, gateway: gw, hops: hops, origins: []byte{1}})
	f.Add(route)
	f.Add(appendHopError(nil, &RemoteError{Peer: hops[0].Peer.ID, Layers: LayerRange{0, 2}, Err: fmt.Errorf("%w: x", ErrPeerUnreachable)}))
	f.Add(appendDeliver(nil, 9, []byte{0, 1}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var rt chainRoute
		if rest, err := decodeRoute(data, &rt); err == nil {
			again, err := appendRoute(nil, &rt)
			if err != nil {
				return // addresses beyond what an entry may hold are left out
			}
			var rt2 chainRoute
			rest2, err := decodeRoute(append(again, rest...), &rt2)
			if err != nil || !bytes.Equal(rest, rest2) || rt2.req != rt.req || len(rt2.hops) != len(rt.hops) || !bytes.Equal(rt2.origins, rt.origins) {
				t.Fatalf("route round trip: %+v vs %+v, %v", rt, rt2, err)
			}
		}
		if e, err := decodeHopError(data); err == nil {
			e2, err := decodeHopError(appendHopError(nil, e))
			if err != nil || e2.Peer != e.Peer || e2.Layers != e.Layers || e2.Err.Error() != e.Err.Error() {
				t.Fatalf("hop error round trip: %v vs %v, %v", e, e2, err)
			}
		}
		decodeDeliver(data, nil)
	})
}

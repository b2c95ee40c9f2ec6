package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/strata-llm/strata/cluster"
	"github.com/strata-llm/strata/internal/testdata"
	"github.com/strata-llm/strata/node/gpu"
	"github.com/strata-llm/strata/node/p2p"
	"github.com/strata-llm/strata/pipeline/gguf"
)

// testMember is an in-process cluster member on loopback.
type testMember struct {
	m      *Member
	api    string
	cancel context.CancelFunc
	done   chan error
}

// fastTimeouts make elections and failure detection quick on loopback.
var fastTimeouts = cluster.Timeouts{Heartbeat: 300 * time.Millisecond, Election: 300 * time.Millisecond, LeaderLease: 150 * time.Millisecond, Commit: 20 * time.Millisecond}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("STRATA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// startMember starts a member and runs it until the test ends (or kill).
func startMember(t *testing.T, cfg MemberConfig) *testMember {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.API = "127.0.0.1:0"
	cfg.Timeouts = fastTimeouts
	cfg.DeadAfter = time.Second
	cfg.Failover = 30 * time.Second
	if cfg.Inventory == nil {
		cfg.Inventory = gpu.Fake{Inventory: gpu.Inventory{CPUCores: 2, RAMBytes: 8 << 30, RAMAvailable: 4 << 30}}
	}
	cfg.Logger = testLogger(t)
	cfg.ModelName = "stories"
	ctx, cancel := context.WithCancel(context.Background())
	m, err := StartMember(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("start member: %v", err)
	}
	tm := &testMember{m: m, cancel: cancel, done: make(chan error, 1)}
	apiAddr := make(chan string, 1)
	m.cfg.Listening = func(_, api string) { apiAddr <- api }
	go func() { tm.done <- m.Run(ctx) }()
	select {
	case tm.api = <-apiAddr:
	case err := <-tm.done:
		t.Fatalf("member run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("member did not start serving")
	}
	t.Cleanup(tm.kill)
	return tm
}

// kill stops the member at once, as a crash would (its host goes away).
func (tm *testMember) kill() {
	if tm.cancel == nil {
		return
	}
	tm.cancel()
	<-tm.done
	tm.m.Close()
	tm.cancel = nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.After(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func modelBytes(t *testing.T, path string) int64 {
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	for _, tn := range f.Tensors {
		n += int64(tn.Size)
	}
	return n
}

// agreed reports whether every member has applied the same map with every
// layer served.
func agreed(ms []*testMember) bool {
	var first []byte
	for _, tm := range ms {
		mp := tm.m.Cluster().Map()
		if !mp.Covered() {
			return false
		}
		for _, n := range mp.Nodes {
			if n.State != cluster.StateServing {
				return false
			}
		}
		b, _ := json.Marshal(struct {
			A []cluster.Assignment
			E uint64
			N int
		}{mp.Assignments, mp.Epoch, len(mp.Nodes)})
		if first == nil {
			first = b
		} else if string(b) != string(first) {
			return false
		}
	}
	return true
}

func complete(t *testing.T, api, prompt string, n int) string {
	t.Helper()
	code, body := post(t, "http://"+api+"/v1/completions", map[string]any{
		"model": "stories", "prompt": prompt, "max_tokens": n, "temperature": 0,
	})
	if code != http.StatusOK {
		t.Fatalf("completion on %s: %d %s", api, code, body)
	}
	var resp struct {
		Choices []struct{ Text string } `json:"choices"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.Choices[0].Text
}

// TestClusterInProcess: five members on libp2p loopback hosts with bbolt
// stores: init plus four joins give every layer an assignment and the same
// map everywhere; every member answers the reference text; killing the
// leader brings a new leader with the map intact, and a join still works.
func TestClusterInProcess(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	model := ref.ModelPath(t)
	capacity := modelBytes(t, model) * 6 / 10 // two stages per replica

	first := startMember(t, MemberConfig{Model: model, Init: true, Capacity: capacity})
	ms := []*testMember{first}
	tok, err := tokenOf(first)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		ms = append(ms, startMember(t, MemberConfig{Model: model, Join: first.m.Addr(), Token: tok, Capacity: capacity}))
	}
	waitFor(t, "the same covered map on every member", 60*time.Second, func() bool { return agreed(ms) })
	mp := first.m.Cluster().Map()
	if len(mp.Nodes) != 5 {
		t.Fatalf("%d nodes in the map, want 5", len(mp.Nodes))
	}
	replicas := map[int]bool{}
	for _, a := range mp.Assignments {
		replicas[a.Replica] = true
	}
	if len(replicas) != 2 {
		t.Errorf("assignments %v: want 2 replicas", mp.Assignments)
	}
	voters := 0
	for _, n := range mp.Nodes {
		if n.Voter {
			voters++
		}
	}
	waitFor(t, "3 voters", 20*time.Second, func() bool {
		f := first.m.Cluster().Raft().GetConfiguration()
		if f.Error() != nil {
			return false
		}
		v := 0
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == 0 { // raft.Voter
				v++
			}
		}
		return v == 3
	})
	c := ref.Cases[0]
	for i, tm := range ms {
		if got := complete(t, tm.api, c.Prompt, 32); !c.TextMatches(got) {
			t.Errorf("member %d: %q, want %q", i, got, c.GreedyText)
		}
	}

	// Kill the leader.
	var leader *testMember
	for _, tm := range ms {
		if tm.m.Cluster().IsLeader() {
			leader = tm
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	before := leader.m.Cluster().Map()
	leader.kill()
	rest := slices.DeleteFunc(slices.Clone(ms), func(tm *testMember) bool { return tm == leader })
	var next *testMember
	waitFor(t, "a new leader", 30*time.Second, func() bool {
		for _, tm := range rest {
			if tm.m.Cluster().IsLeader() {
				next = tm
				return true
			}
		}
		return false
	})
	after := next.m.Cluster().Map()
	if after.Cluster != before.Cluster || after.Model.Digest != before.Model.Digest || len(after.Nodes) != len(before.Nodes) {
		t.Fatalf("map after the leader's death: %+v, before %+v", after, before)
	}
	waitFor(t, "the old leader marked dead", 30*time.Second, func() bool {
		n := next.m.Cluster().Map().Nodes[leader.m.ID().String()]
		return n != nil && n.State == cluster.StateDead
	})

	// A join through the new leader still works.
	tok2, err := tokenOf(next)
	if err != nil {
		t.Fatal(err)
	}
	joined := startMember(t, MemberConfig{Model: model, Join: next.m.Addr(), Token: tok2, Capacity: capacity})
	rest = append(rest, joined)
	waitFor(t, "the joiner in every member's map, every layer served", 60*time.Second, func() bool {
		for _, tm := range rest {
			mp := tm.m.Cluster().Map()
			if mp.Nodes[joined.m.ID().String()] == nil || !mp.Covered() {
				return false
			}
		}
		return true
	})
	if got := complete(t, joined.api, c.Prompt, 32); !c.TextMatches(got) {
		t.Errorf("the new member: %q, want %q", got, c.GreedyText)
	}
}

// TestJoinRefused: a join with a wrong, expired, unrecorded or revoked
// token is refused with a clear error.
func TestJoinRefused(t *testing.T) {
	model := testdata.Path(t, "models/stories260K-f32.gguf")
	first := startMember(t, MemberConfig{Model: model, Init: true})
	waitFor(t, "layers served", 30*time.Second, func() bool { return first.m.Cluster().Map().Covered() })
	mp := first.m.Cluster().Map()
	expired := cluster.SignToken(mp.Cluster, mp.Secret, time.Now().Add(-2*time.Hour), time.Hour)
	other := cluster.SignToken(mp.Cluster, []byte("another cluster's secret, 32 by"), time.Now(), time.Hour)
	unrecorded := cluster.SignToken(mp.Cluster, mp.Secret, time.Now(), time.Hour) // signed, but never issued
	revoked, err := first.m.Token(context.Background(), time.Hour, "revoked below")
	if err != nil {
		t.Fatal(err)
	}
	if err := first.m.RevokeToken(context.Background(), revoked.ID); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
		want        error
	}{
		{"expired", expired, cluster.ErrTokenExpired},
		{"not on record", unrecorded, cluster.ErrTokenRevoked},
		{"revoked", revoked.Token, cluster.ErrTokenRevoked},
		{"wrong secret", other, cluster.ErrTokenSignature},
		{"garbage", "strata1.abc", cluster.ErrTokenMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := StartMember(context.Background(), MemberConfig{
				Model: model, Join: first.m.Addr(), Token: tc.token, DataDir: t.TempDir(),
				Inventory: gpu.Fake{Inventory: gpu.Inventory{CPUCores: 1, RAMBytes: 1 << 30}}, Logger: testLogger(t),
			})
			if !errors.Is(err, ErrJoinRefused) || !strings.Contains(err.Error(), tc.want.Error()) {
				t.Fatalf("join with a bad token: %v, want ErrJoinRefused saying %q", err, tc.want)
			}
			t.Logf("refused: %v", err)
		})
	}
	if n := len(first.m.Cluster().Map().Nodes); n != 1 {
		t.Errorf("%d nodes after refused joins, want 1", n)
	}
}

// TestStageStreamNonMember: a peer outside the cluster cannot open the
// stage protocol on a member (the stream is reset), while a member can.
func TestStageStreamNonMember(t *testing.T) {
	model := testdata.Path(t, "models/stories260K-f32.gguf")
	first := startMember(t, MemberConfig{Model: model, Init: true})
	waitFor(t, "layers served", 30*time.Second, func() bool { return first.m.Cluster().Map().Covered() })
	ctx := context.Background()
	h, err := p2p.NewHost(ctx, p2p.HostConfig{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ai := peer.AddrInfo{ID: first.m.ID(), Addrs: first.m.host.Addrs()}
	_, err = p2p.DialStage(ctx, h, ai, p2p.RemoteConfig{DialTimeout: 5 * time.Second, RequestTimeout: 5 * time.Second})
	if err == nil {
		t.Fatal("a non-member opened a stage stream")
	}
	t.Logf("non-member refused: %v", err)
}

// TestClusterFetchWeights: only the first member has the model file; two
// members join without it, fetch exactly the tensors of the layers they
// are given (and the header) from their peers, and serve: every member
// answers the reference text, and each fetched within 5% of its layers'
// bytes plus the header.
func TestClusterFetchWeights(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	model := ref.ModelPath(t)
	capacity := modelBytes(t, model) * 45 / 100 // three stages
	first := startMember(t, MemberConfig{Model: model, Init: true, Capacity: capacity, ChunkSize: 32 << 10})
	tok, err := tokenOf(first)
	if err != nil {
		t.Fatal(err)
	}
	ms := []*testMember{first}
	for range 2 {
		ms = append(ms, startMember(t, MemberConfig{Join: first.m.Addr(), Token: tok, Capacity: capacity}))
	}
	waitFor(t, "every layer served by the 3 members", 60*time.Second, func() bool { return agreed(ms) })
	mp := first.m.Cluster().Map()
	if len(mp.Assignments) != 3 {
		t.Fatalf("assignments %v: want 3 stages", mp.Assignments)
	}
	man := mp.Model.Manifest
	size := map[string]int64{}
	for _, tp := range man.Tensors {
		size[tp.Name] = tp.Size
	}
	for _, tm := range ms[1:] {
		a, ok := mp.AssignmentOf(tm.m.ID().String())
		if !ok {
			t.Fatalf("member %s has no layers", tm.m.ID())
		}
		want := man.Header.Size
		for _, p := range partsFor(man, a.Lo, a.Hi, mp.Model.Layers) {
			want += size[p]
		}
		var got int64
		for _, st := range tm.m.FetchStats() {
			got += st.Bytes
		}
		ratio := float64(got) / float64(want)
		t.Logf("member serving layers %d-%d fetched %d bytes for %d of layers and header (%.3f); the whole file is %d", a.Lo, a.Hi, got, want, ratio, man.FileSize)
		if ratio < 0.95 || ratio > 1.05 {
			t.Errorf("fetched %d bytes, want within 5%% of %d", got, want)
		}
	}
	for i, tm := range ms {
		for _, c := range ref.Cases[:2] {
			if got := complete(t, tm.api, c.Prompt, 32); !c.TextMatches(got) {
				t.Errorf("member %d: %q: %q, want %q", i, c.Prompt, got, c.GreedyText)
			}
		}
	}
}

// TestMemberLeave: a member serving layers drains: the spare takes its
// layers, it leaves the map and Raft, its Run returns, and the cluster
// still answers the reference text.
func TestMemberLeave(t *testing.T) {
	ref, ms := threeMembers(t)
	first := ms[0]
	mp := first.m.Cluster().Map()
	var leaving *testMember
	for _, tm := range ms[1:] {
		if _, ok := mp.AssignmentOf(tm.m.ID().String()); ok {
			leaving = tm
			break
		}
	}
	if leaving == nil {
		t.Fatalf("no joiner holds layers: %v", mp.Assignments)
	}
	if err := RequestLeave(context.Background(), leaving.api, ""); err != nil {
		t.Fatalf("leave: %v", err)
	}
	select {
	case err := <-leaving.done:
		if err != nil {
			t.Errorf("Run after leaving: %v", err)
		}
		leaving.m.Close()
		leaving.cancel()
		leaving.cancel = nil
	case <-time.After(30 * time.Second):
		t.Fatal("the member did not stop after leaving")
	}
	rest := slices.DeleteFunc(slices.Clone(ms), func(tm *testMember) bool { return tm == leaving })
	waitFor(t, "the map without the member, every layer served", 30*time.Second, func() bool {
		if !agreed(rest) {
			return false
		}
		mp := first.m.Cluster().Map()
		return mp.Nodes[leaving.m.ID().String()] == nil && len(mp.Nodes) == 2
	})
	c := ref.Cases[0]
	for _, tm := range rest {
		if got := complete(t, tm.api, c.Prompt, 32); !c.TextMatches(got) {
			t.Errorf("after the leave: %q, want %q", got, c.GreedyText)
		}
	}
}

// TestRouteSurvivesMapChange: a change of the map that leaves a gateway's
// route standing (here a vote recorded again) neither rebuilds the route
// nor waits for the micro-batches in flight on it: a request completes
// while one holds the route (its read lock), as one in flight would.
func TestRouteSurvivesMapChange(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	model := ref.ModelPath(t)
	capacity := modelBytes(t, model) * 6 / 10 // two stages
	first := startMember(t, MemberConfig{Model: model, Init: true, Capacity: capacity})
	tok, _ := tokenOf(first)
	second := startMember(t, MemberConfig{Model: model, Join: first.m.Addr(), Token: tok, Capacity: capacity})
	ms := []*testMember{first, second}
	waitFor(t, "the same covered map on both members", 60*time.Second, func() bool { return agreed(ms) })
	c := ref.Cases[0]
	if got := complete(t, first.api, c.Prompt, 32); !c.TextMatches(got) {
		t.Fatalf("first completion %q, want %q", got, c.GreedyText)
	}
	r := first.m.route
	r.rw.RLock()
	gen := r.gen
	changed := first.m.Cluster().Changed()
	me := first.m.Cluster().Map().Nodes[first.m.ID().String()]
	if err := first.m.apply(context.Background(), &cluster.Command{Type: cluster.CmdSetVoter, NodeID: me.ID, Voter: me.Voter}); err != nil {
		r.rw.RUnlock()
		t.Fatal(err)
	}
	<-changed // the map changed, on this member too
	type answer struct {
		text string
		err  error
	}
	done := make(chan answer, 1)
	go func() { // no t.Fatal off the test's goroutine
		body, _ := json.Marshal(map[string]any{"model": "stories", "prompt": c.Prompt, "max_tokens": 32, "temperature": 0})
		resp, err := http.Post("http://"+first.api+"/v1/completions", "application/json", bytes.NewReader(body))
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		var out struct {
			Choices []struct{ Text string } `json:"choices"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		if err == nil && len(out.Choices) == 0 {
			err = fmt.Errorf("status %d, no choices", resp.StatusCode)
		}
		if err != nil {
			done <- answer{err: err}
			return
		}
		done <- answer{text: out.Choices[0].Text}
	}()
	select {
	case got := <-done:
		r.rw.RUnlock()
		if got.err != nil {
			t.Fatalf("completion after the change: %v", got.err)
		}
		if !c.TextMatches(got.text) {
			t.Errorf("completion after the change %q, want %q", got.text, c.GreedyText)
		}
	case <-time.After(30 * time.Second):
		r.rw.RUnlock()
		<-done
		t.Fatal("the request waited for the micro-batch in flight: the route was rebuilt")
	}
	r.rw.RLock()
	defer r.rw.RUnlock()
	if r.gen != gen {
		t.Errorf("route generation %d after the change, %d before: rebuilt", r.gen, gen)
	}
}

// TestAddrsReported: what a member finds out about its reachability after
// joining reaches the map: AutoNAT finding it private (an event on its
// host's bus, as AutoNAT emits it), and an address it starts to listen on
// (as a relayed address appears once AutoRelay reserves a slot).
func TestAddrsReported(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	model := ref.ModelPath(t)
	first := startMember(t, MemberConfig{Model: model, Init: true})
	tok, _ := tokenOf(first)
	second := startMember(t, MemberConfig{Model: model, Join: first.m.Addr(), Token: tok, NAT: true})
	id := second.m.ID().String()
	waitFor(t, "the joiner in the map", 30*time.Second, func() bool { return first.m.Cluster().Map().Nodes[id] != nil })
	if n := first.m.Cluster().Map().Nodes[id]; n.Reach != "" {
		t.Fatalf("reachability %q at join on loopback, want unknown", n.Reach)
	}

	em, err := second.m.host.EventBus().Emitter(new(event.EvtLocalReachabilityChanged), eventbus.Stateful)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	if err := em.Emit(event.EvtLocalReachabilityChanged{Reachability: network.ReachabilityPrivate}); err != nil {
		t.Fatal(err)
	}
	extra, err := ma.NewMultiaddr("/ip4/127.0.0.1/tcp/0")
	if err != nil {
		t.Fatal(err)
	}
	if err := second.m.host.Network().Listen(extra); err != nil {
		t.Fatal(err)
	}
	want := second.m.addrStrings()
	waitFor(t, "the joiner's reachability and new address in the leader's map", 30*time.Second, func() bool {
		n := first.m.Cluster().Map().Nodes[id]
		return n.Reach == cluster.ReachPrivate && len(n.Addrs) == len(want) && len(want) >= 2
	})
	got := first.m.Cluster().Map().Nodes[id].Addrs
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("addresses in the map %v, want the host's %v", got, want)
	}
}

// tokenOf issues a join token through tm, valid for an hour.
func tokenOf(tm *testMember) (string, error) {
	tok, err := tm.m.Token(context.Background(), time.Hour, "test")
	return tok.Token, err
}

// TestMemberDrain: a drained member's layers move to the others and it
// stays a member holding none, still answering the API; undrained, it
// serves again. Undraining a member that is not draining is refused.
func TestMemberDrain(t *testing.T) {
	ref, ms := threeMembers(t)
	first := ms[0]
	mp := first.m.Cluster().Map()
	var drained *testMember
	for _, tm := range ms {
		if _, ok := mp.AssignmentOf(tm.m.ID().String()); ok {
			drained = tm
			break
		}
	}
	ctx := context.Background()
	if err := RequestUndrain(ctx, drained.api, ""); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("undraining a serving member: %v, want 409", err)
	}
	if err := RequestDrain(ctx, drained.api, ""); err != nil {
		t.Fatalf("drain: %v", err)
	}
	id := drained.m.ID().String()
	mp = first.m.Cluster().Map()
	if _, has := mp.AssignmentOf(id); has || mp.Nodes[id].State != cluster.StateDraining || !mp.Covered() {
		t.Errorf("after the drain: %+v, assignments %v", mp.Nodes[id], mp.Assignments)
	}
	c := ref.Cases[0]
	if got := complete(t, drained.api, c.Prompt, 32); !c.TextMatches(got) {
		t.Errorf("through the drained member: %q, want %q", got, c.GreedyText)
	}
	if err := RequestUndrain(ctx, drained.api, ""); err != nil {
		t.Fatalf("undrain: %v", err)
	}
	waitFor(t, "the member serving again", 30*time.Second, func() bool {
		n := first.m.Cluster().Map().Nodes[id]
		return n != nil && n.State == cluster.StateServing && agreed(ms)
	})
	select {
	case err := <-drained.done:
		t.Fatalf("the drained member stopped: %v", err)
	default:
	}
}

// threeMembers starts a cluster of three members of stories260K, each
// offering 60% of it (one replica of two stages, and a spare), and waits
// until they agree on a covered map; the first is the cluster's first.
func threeMembers(t *testing.T) (*testdata.Reference, []*testMember) {
	t.Helper()
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	model := ref.ModelPath(t)
	capacity := modelBytes(t, model) * 6 / 10
	first := startMember(t, MemberConfig{Model: model, Init: true, Capacity: capacity})
	tok, _ := tokenOf(first)
	ms := []*testMember{first}
	for range 2 {
		ms = append(ms, startMember(t, MemberConfig{Model: model, Join: first.m.Addr(), Token: tok, Capacity: capacity}))
	}
	waitFor(t, "the same covered map on every member", 60*time.Second, func() bool { return agreed(ms) })
	return ref, ms
}

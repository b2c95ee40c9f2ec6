package node

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/strata-llm/strata/internal/testdata"
	"github.com/strata-llm/strata/node/p2p"
)

// TestLoadMeter: the meter keeps about the last minute of samples: the
// newest one at least a minute old, and all after it.
func TestLoadMeter(t *testing.T) {
	var lm loadMeter
	if _, ok := lm.oldest(); ok {
		t.Fatal("an empty meter has a sample")
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 20 { // every 5 s for 95 s
		lm.add(loadSample{at: t0.Add(time.Duration(i) * loadEvery), tokens: uint64(i)})
	}
	s, ok := lm.oldest()
	if want := t0.Add(95*time.Second - loadWindow); !ok || !s.at.Equal(want) || s.tokens != 7 {
		t.Errorf("oldest %+v, want the sample at %v", s, want)
	}
	if n := len(lm.samples); n != 13 {
		t.Errorf("%d samples kept, want 13", n)
	}
}

// TestStatusLoad: GET /cluster/status carries every live member's load,
// asked over the status protocol: both stages computed the completions'
// tokens, the gateway generated them, and the other member's round trip
// is measured; /metrics has each member's view of the cluster, and the
// dashboard shows it; a
// non-member's status stream is refused.
func TestStatusLoad(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	model := ref.ModelPath(t)
	capacity := modelBytes(t, model) * 6 / 10 // two stages
	first := startMember(t, MemberConfig{Model: model, Init: true, Capacity: capacity})
	tok, err := tokenOf(first)
	if err != nil {
		t.Fatal(err)
	}
	second := startMember(t, MemberConfig{Model: model, Join: first.m.Addr(), Token: tok, Capacity: capacity})
	waitFor(t, "both members serving", 60*time.Second, func() bool { return agreed([]*testMember{first, second}) })
	for range 3 {
		complete(t, first.api, ref.Cases[0].Prompt, 16)
	}
	ctx := context.Background()
	st, err := FetchStatus(ctx, first.api, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Load) != 2 {
		t.Fatalf("load of %d members, want 2: %+v", len(st.Load), st.Load)
	}
	for _, l := range st.Load {
		if l.Err != "" || l.StageTokensPerSec <= 0 || l.StageBusy <= 0 || l.StageBusy > 1 {
			t.Errorf("member %s: %+v; want its stage's tokens and busy share", shortID(l.Node), l)
		}
		switch l.Node {
		case first.m.ID().String():
			if l.GeneratedPerSec <= 0 || l.RTTMillis != 0 {
				t.Errorf("the gateway: %+v; want tokens generated and no round trip", l)
			}
		case second.m.ID().String():
			if l.RTTMillis <= 0 {
				t.Errorf("the other member: %+v; want its round trip", l)
			}
		}
	}
	// Within loadsFresh, for the same map, the answer is reused, and the
	// caller owns what it gets.
	mp := first.m.Cluster().Map()
	l1 := first.m.Loads(ctx, mp)
	l1[0].Node = "changed"
	r := &first.m.recent
	r.Lock()
	kept := r.loads[0].Node
	r.at, r.index, r.loads = time.Now(), mp.Index, []NodeLoad{{Node: "reused"}}
	r.Unlock()
	if kept == "changed" {
		t.Error("the caller's copy of the loads is the cache's")
	}
	if l := first.m.Loads(ctx, mp); len(l) != 1 || l[0].Node != "reused" {
		t.Errorf("loads asked again at once: %+v, want the answer reused", l)
	}
	r.Lock()
	r.at = time.Now().Add(-loadsFresh)
	r.Unlock()
	if l := first.m.Loads(ctx, mp); len(l) != 2 {
		t.Errorf("loads asked after loadsFresh: %+v, want both members asked", l)
	}
	var b strings.Builder
	if err := WriteStatus(&b, st); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "load over the last minute") || !strings.Contains(b.String(), " ms") {
		t.Errorf("strata status without the load:\n%s", b.String())
	}
	t.Logf("\n%s", b.String())
	resp, err := http.Get("http://" + first.api + "/cluster/status?load=false")
	if err != nil {
		t.Fatal(err)
	}
	var bare Status
	err = json.NewDecoder(resp.Body).Decode(&bare)
	resp.Body.Close()
	if err != nil || len(bare.Nodes) != 2 || len(bare.Load) != 0 {
		t.Errorf("status?load=false: %+v, %v; want the map without the load", bare, err)
	}

	// The same view on /metrics.
	for _, c := range []struct {
		tm   *testMember
		want []string
	}{
		{first, []string{`strata_cluster_nodes{state="serving"} 2`, `strata_cluster_nodes{state="dead"} 0`, "strata_cluster_is_leader 1",
			"strata_cluster_uncovered_layers 0", "strata_cluster_voters 2", "strata_cluster_volunteers 0", "strata_cluster_revoked_nodes 0"}},
		{second, []string{`strata_cluster_nodes{state="serving"} 2`, "strata_cluster_is_leader 0"}},
	} {
		resp, err := http.Get("http://" + c.tm.api + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, w := range c.want {
			if !strings.Contains(string(b), w+"\n") {
				t.Errorf("member %s: no %q in /metrics", shortID(c.tm.m.ID().String()), w)
			}
		}
		if !regexp.MustCompile(`(?m)^strata_stage_tokens_total [1-9]`).Match(b) || !strings.Contains(string(b), "strata_stage_busy_seconds_total ") {
			t.Errorf("member %s: no stage counters in /metrics", shortID(c.tm.m.ID().String()))
		}
	}

	// The dashboard shows both members and their load.
	if node, err := exec.LookPath("node"); err == nil {
		cmd := exec.CommandContext(ctx, node, "dashboard-check.mjs")
		cmd.Dir = filepath.Join("api", "testdata")
		cmd.Env = append(os.Environ(), "STRATA_API_BASE=http://"+first.api,
			"STRATA_EXPECT_NODES="+first.m.ID().String()+","+second.m.ID().String())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("the dashboard check failed: %v\n%s", err, out)
		}
	} else if os.Getenv("STRATA_NODE_CLIENT") == "1" {
		t.Error("node is not installed (STRATA_NODE_CLIENT=1)")
	}

	h, err := p2p.NewHost(ctx, p2p.HostConfig{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.Peerstore().AddAddrs(first.m.ID(), first.m.host.Addrs(), time.Minute)
	if s, err := h.NewStream(ctx, first.m.ID(), StatusProtocol); err == nil {
		var l NodeLoad
		if err := readControl(s, &l); err == nil {
			t.Errorf("a non-member read a member's load: %+v", l)
		}
		s.Close()
	}
}

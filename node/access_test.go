package node

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/strata-llm/strata/cluster"
	"github.com/strata-llm/strata/internal/testdata"
)

// runErr waits for tm's Run to return and gives its error, leaving it for
// kill.
func runErr(t *testing.T, tm *testMember, d time.Duration) error {
	t.Helper()
	select {
	case err := <-tm.done:
		tm.done <- err
		return err
	case <-time.After(d):
		t.Fatalf("member %s still running after %v", shortID(tm.m.ID().String()), d)
		return nil
	}
}

// raftServers returns the IDs in tm's Raft configuration.
func raftServers(tm *testMember) []string {
	f := tm.m.Cluster().Raft().GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var ids []string
	for _, s := range f.Configuration().Servers {
		ids = append(ids, string(s.ID))
	}
	slices.Sort(ids)
	return ids
}

// TestRevokeNode: tokens issued through the admin API admit joiners; a
// member revoked by its short ID stops, leaves the map and Raft, and the
// others refuse its connections and serve without it; lifting the
// revocation unbans it; and a revoked leader hands the cluster on.
func TestRevokeNode(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	model := ref.ModelPath(t)
	capacity := modelBytes(t, model) * 6 / 10 // two stages per replica
	ctx := context.Background()

	first := startMember(t, MemberConfig{Model: model, Init: true, Capacity: capacity})
	tok, err := RequestToken(ctx, first.api, "", 10*time.Minute, "two hosts", false)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Join != first.m.Addr() || tok.ID == "" || tok.Note != "two hosts" || tok.By != first.m.ID().String() || time.Until(tok.Expires) > 10*time.Minute {
		t.Fatalf("issued %+v", tok)
	}
	listed, err := FetchTokens(ctx, first.api, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(listed, func(r cluster.TokenInfo) bool { return r.ID == tok.ID && r.Note == "two hosts" }) || len(listed) != 2 {
		t.Fatalf("tokens %+v: want the init token and %s", listed, tok.ID)
	}
	second := startMember(t, MemberConfig{Model: model, Join: tok.Join, Token: tok.Token, Capacity: capacity})
	third := startMember(t, MemberConfig{Model: model, Join: tok.Join, Token: tok.Token, Capacity: capacity})
	waitFor(t, "the same covered map on every member", 60*time.Second, func() bool { return agreed([]*testMember{first, second, third}) })

	// Revoke the second member by the ID `strata status` shows.
	victim := second.m.ID()
	rev, err := RequestRevoke(ctx, third.api, "", shortID(victim.String()), "lost laptop")
	if err != nil {
		t.Fatal(err)
	}
	if rev.Node != victim.String() || rev.Reason != "lost laptop" || rev.By != third.m.ID().String() {
		t.Errorf("revocation %+v: want the victim, the reason, and the member asked", rev)
	}
	if err := runErr(t, second, 30*time.Second); !errors.Is(err, ErrRevoked) || !strings.Contains(err.Error(), "lost laptop") {
		t.Errorf("the revoked member's Run: %v, want ErrRevoked with the reason", err)
	}
	rest := []*testMember{first, third}
	waitFor(t, "the rest serving every layer without it", 60*time.Second, func() bool { return agreed(rest) })
	for _, tm := range rest {
		mp := tm.m.Cluster().Map()
		if mp.Nodes[victim.String()] != nil || mp.Revoked[victim.String()].Reason != "lost laptop" {
			t.Errorf("member %s: node %v, revocation %+v", shortID(tm.m.ID().String()), mp.Nodes[victim.String()], mp.Revoked[victim.String()])
		}
		if !tm.m.gater.IsBanned(victim) {
			t.Errorf("member %s does not ban the revoked node", shortID(tm.m.ID().String()))
		}
	}
	waitFor(t, "the revoked node out of Raft", 20*time.Second, func() bool {
		return !slices.Contains(raftServers(first), victim.String())
	})
	// Its key is refused: it cannot connect and act as a member.
	second.m.host.Peerstore().AddAddrs(first.m.ID(), first.m.host.Addrs(), time.Minute)
	_, err = second.m.control(ctx, first.m.ID(), &controlRequest{Op: "apply", Command: &cluster.Command{Type: cluster.CmdSetVoter, NodeID: victim.String(), Voter: true}})
	if err == nil {
		t.Error("the revoked node applied a command through a member")
	}
	t.Logf("the revoked node refused: %v", err)
	c := ref.Cases[0]
	if got := complete(t, third.api, c.Prompt, 32); !c.TextMatches(got) {
		t.Errorf("after the revocation: %q, want %q", got, c.GreedyText)
	}
	if st, err := FetchStatus(ctx, first.api, ""); err != nil || len(st.Revoked) != 1 || st.Revoked[0].Node != victim.String() {
		t.Errorf("status: %+v, %v; want the revocation listed", st, err)
	}

	// Lifting it unbans the node everywhere.
	if err := RequestLiftRevocation(ctx, first.api, "", victim.String()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the node unbanned", 20*time.Second, func() bool {
		return !first.m.gater.IsBanned(victim) && !third.m.gater.IsBanned(victim)
	})
	if err := RequestLiftRevocation(ctx, first.api, "", victim.String()); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("lifting it again: %v, want 404", err)
	}

	// Revoking the leader through the other member: it stops, and the
	// other leads a Raft of one.
	leader, other := first, third
	if third.m.Cluster().IsLeader() {
		leader, other = third, first
	}
	if _, err := RequestRevoke(ctx, other.api, "", leader.m.ID().String(), ""); err != nil {
		t.Fatal(err)
	}
	if err := runErr(t, leader, 30*time.Second); !errors.Is(err, ErrRevoked) {
		t.Errorf("the revoked leader's Run: %v, want ErrRevoked", err)
	}
	waitFor(t, "the other member leading alone", 30*time.Second, func() bool {
		return other.m.Cluster().IsLeader() && slices.Equal(raftServers(other), []string{other.m.ID().String()})
	})
	if _, err := RequestRevoke(ctx, other.api, "", other.m.ID().String(), ""); err == nil || !strings.Contains(err.Error(), "only live member") {
		t.Errorf("revoking the last member: %v, want a refusal", err)
	}
	if got := raft.Leader; other.m.Cluster().Raft().State() != got {
		t.Errorf("the last member is %v, want leader", other.m.Cluster().Raft().State())
	}
}

// TestAdminRoutes: the admin routes that change the cluster or list its
// tokens refuse remote clients of an API without keys, and answer bad
// requests with 4xx.
func TestAdminRoutes(t *testing.T) {
	model := testdata.Path(t, "models/stories260K-f32.gguf")
	first := startMember(t, MemberConfig{Model: model, Init: true})
	h := first.m.adminHandler()
	for _, tc := range []struct {
		method, path, body, remote string
		want                       int
	}{
		{"GET", "/cluster/tokens", "", "192.0.2.1:1234", 403},
		{"GET", "/cluster/tokens", "", "127.0.0.1:1234", 200},
		{"GET", "/cluster/status", "", "192.0.2.1:1234", 200},
		{"POST", "/cluster/tokens", `{}`, "192.0.2.1:1234", 403},
		{"POST", "/cluster/leave", ``, "192.0.2.1:1234", 403},
		{"POST", "/cluster/revocations", `{"node":"x"}`, "[2001:db8::1]:1234", 403},
		{"POST", "/cluster/tokens", `{"ttl_seconds":60}`, "127.0.0.1:1234", 200},
		{"POST", "/cluster/tokens", `{"ttl_seconds":-1}`, "127.0.0.1:1234", 400},
		{"POST", "/cluster/tokens", `{"ttl":60}`, "127.0.0.1:1234", 400},
		{"POST", "/cluster/tokens", `{"note":`, "127.0.0.1:1234", 400},
		{"DELETE", "/cluster/tokens/nope", "", "[::1]:1234", 404},
		{"POST", "/cluster/revocations", `{"node":"nobody"}`, "127.0.0.1:1234", 404},
		{"POST", "/cluster/revocations", `{"node":"` + first.m.ID().String() + `"}`, "127.0.0.1:1234", 409},
		{"DELETE", "/cluster/revocations/nobody", "", "127.0.0.1:1234", 404},
	} {
		r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		r.RemoteAddr = tc.remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s %s %s from %s: %d %s, want %d", tc.method, tc.path, tc.body, tc.remote, w.Code, strings.TrimSpace(w.Body.String()), tc.want)
		}
	}
	if n := len(first.m.Tokens()); n != 2 {
		t.Errorf("%d tokens on record, want the init token and one issued", n)
	}
	if _, err := http.Get("http://" + first.api + "/cluster/tokens"); err != nil {
		t.Error(err)
	}
}

// TestRemovedWhileAway: two members are cut off until the cluster reaps
// them; when they come back, each finds out from a member that it was
// removed: the one whose token still admits it joins again and serves,
// the one whose token was revoked stops with ErrRemoved.
func TestRemovedWhileAway(t *testing.T) {
	model := testdata.Path(t, "models/stories260K-f32.gguf")
	cfg := func(c MemberConfig) MemberConfig {
		c.Model, c.Voters, c.ReapAfter, c.LeaderLostAfter = model, 1, 2*time.Second, time.Second
		return c
	}
	first := startMember(t, cfg(MemberConfig{Init: true}))
	ctx := context.Background()
	tokA, err := first.m.Token(ctx, time.Hour, "a")
	if err != nil {
		t.Fatal(err)
	}
	tokB, err := first.m.Token(ctx, time.Hour, "b")
	if err != nil {
		t.Fatal(err)
	}
	second := startMember(t, cfg(MemberConfig{Join: first.m.Addr(), Token: tokA.Token}))
	third := startMember(t, cfg(MemberConfig{Join: first.m.Addr(), Token: tokB.Token}))
	waitFor(t, "three members serving", 60*time.Second, func() bool { return agreed([]*testMember{first, second, third}) })
	if err := first.m.RevokeToken(ctx, tokB.ID); err != nil {
		t.Fatal(err)
	}

	// Cut the two off from everyone, until the cluster reaps them.
	away := []*testMember{second, third}
	for _, tm := range away {
		for _, other := range []*testMember{first, second, third} {
			if other != tm {
				tm.m.gater.Ban(other.m.ID())
				tm.m.host.Network().ClosePeer(other.m.ID())
			}
		}
	}
	waitFor(t, "both reaped", 30*time.Second, func() bool {
		mp := first.m.Cluster().Map()
		return mp.Nodes[second.m.ID().String()] == nil && mp.Nodes[third.m.ID().String()] == nil
	})
	for _, tm := range away {
		for _, other := range []*testMember{first, second, third} {
			tm.m.gater.Unban(other.m.ID())
			// The refused dials left a backoff that would delay the
			// reconnection for minutes.
			tm.m.host.Network().(*swarm.Swarm).Backoff().Clear(other.m.ID())
		}
	}

	if err := runErr(t, third, 30*time.Second); !errors.Is(err, ErrRemoved) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("the member with a revoked token: Run = %v, want ErrRemoved saying its token was revoked", err)
	}
	waitFor(t, "the other back and serving", 60*time.Second, func() bool {
		n := first.m.Cluster().Map().Nodes[second.m.ID().String()]
		return n != nil && n.State == cluster.StateServing
	})
	select {
	case err := <-second.done:
		t.Fatalf("the member that joined again stopped: %v", err)
	default:
	}
}

// TestRevokedWhileAway: a member revoked while cut off from the others
// (so that it missed the leader's notice) finds out when it can reach
// them again, and stops with ErrRevoked and the reason, instead of
// waiting for a leader forever.
func TestRevokedWhileAway(t *testing.T) {
	model := testdata.Path(t, "models/stories260K-f32.gguf")
	cfg := func(c MemberConfig) MemberConfig {
		c.Model, c.LeaderLostAfter = model, time.Second
		return c
	}
	first := startMember(t, cfg(MemberConfig{Init: true}))
	ctx := context.Background()
	tok, err := first.m.Token(ctx, time.Hour, "")
	if err != nil {
		t.Fatal(err)
	}
	second := startMember(t, cfg(MemberConfig{Join: first.m.Addr(), Token: tok.Token}))
	third := startMember(t, cfg(MemberConfig{Join: first.m.Addr(), Token: tok.Token}))
	all := []*testMember{first, second, third}
	waitFor(t, "three members serving", 60*time.Second, func() bool { return agreed(all) })

	for _, other := range []*testMember{first, third} {
		second.m.gater.Ban(other.m.ID())
		second.m.host.Network().ClosePeer(other.m.ID())
	}
	victim := second.m.ID().String()
	if _, err := RequestRevoke(ctx, first.api, "", victim, "stolen while offline"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the revocation on record", 20*time.Second, func() bool {
		_, ok := third.m.Cluster().Map().Revoked[victim]
		return ok
	})
	for _, other := range []*testMember{first, third} {
		second.m.gater.Unban(other.m.ID())
		second.m.host.Network().(*swarm.Swarm).Backoff().Clear(other.m.ID())
	}
	if err := runErr(t, second, 30*time.Second); !errors.Is(err, ErrRevoked) || !strings.Contains(err.Error(), "stolen while offline") {
		t.Errorf("the member revoked while away: Run = %v, want ErrRevoked with the reason", err)
	}
}

// TestVolunteer: a node admitted with a volunteer token serves layers but
// never votes, and its requests beyond its own entry are refused: issuing
// a token or revoking a member through its admin API (403), changing
// another member's state over the control protocol, telling a member it
// was revoked, or passing a command on as if from a member; changing its
// own entry is allowed.
func TestVolunteer(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	model := ref.ModelPath(t)
	capacity := modelBytes(t, model) * 6 / 10 // two stages
	ctx := context.Background()
	first := startMember(t, MemberConfig{Model: model, Init: true, Capacity: capacity})
	tok, err := RequestToken(ctx, first.api, "", time.Hour, "swarm", true)
	if err != nil {
		t.Fatal(err)
	}
	if listed, _ := FetchTokens(ctx, first.api, ""); !slices.ContainsFunc(listed, func(r cluster.TokenInfo) bool { return r.ID == tok.ID && r.Volunteer }) {
		t.Errorf("tokens %+v: want %s as a volunteer token", listed, tok.ID)
	}
	vol := startMember(t, MemberConfig{Model: model, Join: first.m.Addr(), Token: tok.Token, Capacity: capacity})
	waitFor(t, "both serving", 60*time.Second, func() bool { return agreed([]*testMember{first, vol}) })
	c := ref.Cases[0]
	if got := complete(t, vol.api, c.Prompt, 32); !c.TextMatches(got) {
		t.Errorf("through the volunteer: %q, want %q", got, c.GreedyText)
	}
	time.Sleep(time.Second) // a few rounds of the leader's duties
	mp := first.m.Cluster().Map()
	if n := mp.Nodes[vol.m.ID().String()]; n == nil || !n.Volunteer || n.Voter {
		t.Fatalf("the volunteer in the map: %+v", n)
	}
	for _, sv := range first.m.Cluster().Raft().GetConfiguration().Configuration().Servers {
		if string(sv.ID) == vol.m.ID().String() && sv.Suffrage != raft.Nonvoter {
			t.Errorf("the volunteer is a %v in Raft", sv.Suffrage)
		}
	}

	if _, err := RequestToken(ctx, vol.api, "", time.Hour, "", false); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("a token through the volunteer: %v, want 403", err)
	}
	if _, err := RequestRevoke(ctx, vol.api, "", vol.m.ID().String(), ""); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("a revocation through the volunteer: %v, want 403", err)
	}
	firstID := first.m.ID().String()
	for name, req := range map[string]*controlRequest{
		"another's state":   {Op: "apply", Command: &cluster.Command{Type: cluster.CmdSetState, NodeID: firstID, State: cluster.StateDraining}},
		"vote":              {Op: "apply", Command: &cluster.Command{Type: cluster.CmdSetVoter, NodeID: vol.m.ID().String(), Voter: true}},
		"as if from first":  {Op: "apply", Origin: firstID, Command: &cluster.Command{Type: cluster.CmdSetState, NodeID: firstID, State: cluster.StateDraining}},
		"rejoin as another": {Op: "join", Node: &cluster.Node{ID: firstID, Addrs: []string{"/ip4/10.9.9.9/tcp/1"}}},
	} {
		if _, err := vol.m.control(ctx, first.m.ID(), req); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s: %v, want ErrForbidden", name, err)
		}
	}
	if _, err := vol.m.control(ctx, first.m.ID(), &controlRequest{Op: "revoked", Revocation: &cluster.Revocation{Node: firstID}}); err == nil {
		t.Error("a volunteer told a member it was revoked")
	}
	if n := first.m.Cluster().Map().Nodes[firstID]; n.State != cluster.StateServing || first.m.Cluster().Map().Revoked != nil {
		t.Errorf("after the volunteer's attempts: first %+v, revoked %v", n, first.m.Cluster().Map().Revoked)
	}
	select {
	case err := <-first.done:
		t.Fatalf("the member stopped: %v", err)
	default:
	}
	// Its own entry it may change: its reachability, with the addresses it
	// has (other addresses the member would soon report over again).
	volID := vol.m.ID().String()
	addrs := first.m.Cluster().Map().Nodes[volID].Addrs
	if _, err := vol.m.control(ctx, first.m.ID(), &controlRequest{Op: "apply", Command: &cluster.Command{Type: cluster.CmdSetAddrs, NodeID: volID, Addrs: addrs, Reach: "public"}}); err != nil {
		t.Errorf("the volunteer changing its own entry: %v", err)
	}
	if n := first.m.Cluster().Map().Nodes[volID]; !slices.Equal(n.Addrs, addrs) || n.Reach != "public" {
		t.Errorf("the volunteer's entry: addresses %v, reach %q; want %v, public", n.Addrs, n.Reach, addrs)
	}
	// The only member that may vote can neither be revoked nor leave:
	// volunteers alone would have no Raft.
	if _, err := RequestRevoke(ctx, first.api, "", firstID, ""); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("revoking the only voter-capable member: %v, want 409", err)
	}
	if err := RequestLeave(ctx, first.api, ""); err == nil || !strings.Contains(err.Error(), "only live member that may vote") {
		t.Errorf("the only voter-capable member leaving: %v, want a refusal", err)
	}
}

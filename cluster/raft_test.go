package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// testTimeouts keep elections and heartbeats fast for in-memory members.
var testTimeouts = Timeouts{Heartbeat: 100 * time.Millisecond, Election: 100 * time.Millisecond, LeaderLease: 50 * time.Millisecond, Commit: 10 * time.Millisecond}

// member is one Cluster of a test, with its transport and its Run loop.
type member struct {
	id    string
	dir   string
	trans *raft.InmemTransport
	c     *Cluster
	stop  context.CancelFunc // ends Run; nil when Run was not started
	done  chan error         // Run's result
}

// openMember opens a Cluster named id in dir on a fresh in-memory
// transport, closed at the end of the test unless closed before.
func openMember(t *testing.T, id, dir string, bootstrap bool) *member {
	t.Helper()
	_, trans := raft.NewInmemTransport(raft.ServerAddress(id))
	c, err := Open(Config{
		DataDir:   dir,
		ID:        id,
		Transport: trans,
		Bootstrap: bootstrap,
		Timeouts:  testTimeouts,
		DeadAfter: 500 * time.Millisecond,
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("Open(%s): %v", id, err)
	}
	m := &member{id: id, dir: dir, trans: trans, c: c}
	t.Cleanup(func() { m.close(t) })
	return m
}

// run starts the member's Run loop.
func (m *member) run() {
	ctx, cancel := context.WithCancel(context.Background())
	m.stop, m.done = cancel, make(chan error, 1)
	go func() { m.done <- m.c.Run(ctx) }()
}

// close ends Run, then closes the Cluster; it may be called again.
func (m *member) close(t *testing.T) {
	t.Helper()
	if m.stop != nil {
		m.stop()
		select {
		case err := <-m.done:
			if err != nil {
				t.Errorf("%s: Run = %v", m.id, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: Run did not return after its context ended", m.id)
		}
		m.stop = nil
	}
	if m.c != nil {
		if err := m.c.Close(); err != nil {
			t.Errorf("%s: Close: %v", m.id, err)
		}
		m.c = nil
	}
}

// connect lets every member reach every other.
func connect(ms ...*member) {
	for _, a := range ms {
		for _, b := range ms {
			if a != b {
				a.trans.Connect(raft.ServerAddress(b.id), b.trans)
			}
		}
	}
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.After(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("after %s, still not %s: %v", d, what, err)
		}
	}
}

// leaderOf returns the member that leads, or an error.
func leaderOf(ms ...*member) (*member, error) {
	for _, m := range ms {
		if m.c != nil && m.c.IsLeader() {
			return m, nil
		}
	}
	return nil, errors.New("no leader")
}

// raftServers returns the suffrage of each server in c's Raft configuration.
func raftServers(c *Cluster) (map[string]raft.ServerSuffrage, error) {
	f := c.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	out := map[string]raft.ServerSuffrage{}
	for _, s := range f.Configuration().Servers {
		out[string(s.ID)] = s.Suffrage
	}
	return out, nil
}

// rNode is the node a member admits for itself: one that holds the whole
// test model.
func rNode(id string) Node {
	n := fsmNode(id, 1000)
	n.Addrs = []string{"/ip4/10.0.0.1/udp/4001/quic-v1"}
	return *n
}

func TestOpenRefuses(t *testing.T) {
	_, trans := raft.NewInmemTransport("x")
	defer trans.Close()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no ID", Config{DataDir: t.TempDir(), Transport: trans}},
		{"no transport", Config{DataDir: t.TempDir(), ID: "x"}},
		{"no data dir", Config{ID: "x", Transport: trans}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := Open(tt.cfg); err == nil {
				c.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

func TestTimeoutsWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Timeouts
		want Timeouts
	}{
		{"zero", Timeouts{}, DefaultTimeouts},
		{"test", testTimeouts, Timeouts{Heartbeat: 100 * time.Millisecond, Election: 100 * time.Millisecond,
			LeaderLease: 50 * time.Millisecond, Commit: 10 * time.Millisecond, Apply: DefaultTimeouts.Apply}},
		{"lease capped by heartbeat", Timeouts{Heartbeat: 200 * time.Millisecond}, Timeouts{Heartbeat: 200 * time.Millisecond,
			Election: DefaultTimeouts.Election, LeaderLease: 200 * time.Millisecond, Commit: DefaultTimeouts.Commit, Apply: DefaultTimeouts.Apply}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.withDefaults(); got != tt.want {
				t.Errorf("withDefaults = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNotLeaderError(t *testing.T) {
	tests := []struct {
		leader, want string
	}{
		{"", "cluster: not the leader, and no leader is known"},
		{"n1", "cluster: not the leader; the leader is n1"},
	}
	for _, tt := range tests {
		var err error = &NotLeaderError{Leader: tt.leader}
		if err.Error() != tt.want || !errors.Is(fmt.Errorf("wrapped: %w", err), ErrNotLeader) {
			t.Errorf("NotLeaderError{%q} = %q (is ErrNotLeader: %v), want %q", tt.leader, err, errors.Is(err, ErrNotLeader), tt.want)
		}
	}
}

func TestClusterThreeMembers(t *testing.T) {
	n1 := openMember(t, "n1", t.TempDir(), true)
	n2 := openMember(t, "n2", t.TempDir(), false)
	n3 := openMember(t, "n3", t.TempDir(), false)
	all := []*member{n1, n2, n3}
	connect(all...)

	waitFor(t, 5*time.Second, "n1 leading", func() error {
		if !n1.c.IsLeader() {
			return fmt.Errorf("n1 is %v", n1.c.Raft().State())
		}
		return nil
	})
	cluster, secret := NewSecret()
	for _, cmd := range []*Command{
		{Type: CmdInit, Cluster: cluster, Secret: secret},
		{Type: CmdRegisterModel, Model: fsmModel(fsmDigest)},
	} {
		if err := n1.c.Apply(cmd); err != nil {
			t.Fatalf("Apply(%s): %v", cmd.Type, err)
		}
	}
	// A command that does not validate is refused before the log.
	if err := n1.c.Apply(&Command{Type: CmdSetState, NodeID: "n1", State: "asleep"}); !errors.Is(err, ErrBadCommand) {
		t.Errorf("Apply(bad state) = %v, want ErrBadCommand", err)
	}
	// A command the FSM refuses returns the FSM's error.
	if err := n1.c.Apply(&Command{Type: CmdRegisterModel, Model: fsmModel("sha256:other")}); !errors.Is(err, ErrModelMismatch) {
		t.Errorf("Apply(another model) = %v, want ErrModelMismatch", err)
	}
	for _, m := range all {
		if err := n1.c.Admit(rNode(m.id)); err != nil {
			t.Fatalf("Admit(%s): %v", m.id, err)
		}
	}
	for _, m := range all {
		m.run()
	}

	// Every member has the same map: three voting nodes.
	waitFor(t, 5*time.Second, "three voters with one map", func() error {
		want := mapJSON(t, n1.c.Map())
		for _, m := range all {
			mm := m.c.Map()
			if got := mapJSON(t, mm); got != want {
				return fmt.Errorf("%s's map differs from n1's:\n%s\n%s", m.id, got, want)
			}
			if len(mm.Nodes) != 3 {
				return fmt.Errorf("%s has %d nodes", m.id, len(mm.Nodes))
			}
			for id, n := range mm.Nodes {
				if !n.Voter {
					return fmt.Errorf("%s's map: %s not a voter", m.id, id)
				}
			}
			servers, err := raftServers(m.c)
			if err != nil {
				return err
			}
			for _, o := range all {
				if s, ok := servers[o.id]; !ok || s != raft.Voter {
					return fmt.Errorf("%s's raft configuration %v: %s not a voter", m.id, servers, o.id)
				}
			}
		}
		return nil
	})
	leader, err := leaderOf(all...)
	if err != nil {
		t.Fatal(err)
	}
	m := n1.c.Map()
	if m.Cluster != cluster || m.Model == nil || m.Model.Digest != fsmDigest || !m.Covered() {
		t.Errorf("map = %s; want cluster %s serving %s", mapJSON(t, m), cluster, fsmDigest)
	}
	if ids := m.NodeIDs(); fmt.Sprint(ids) != "[n1 n2 n3]" {
		t.Errorf("seniority = %v, want [n1 n2 n3]", ids)
	}

	// A follower refuses commands and names the leader.
	var follower, victim *member
	for _, m := range all {
		if m != leader {
			if follower == nil {
				follower = m
			} else {
				victim = m
			}
		}
	}
	for name, try := range map[string]func() error{
		"Apply": func() error { return follower.c.Apply(&Command{Type: CmdSetVoter, NodeID: "n1", Voter: true}) },
		"Admit": func() error { return follower.c.Admit(rNode("n9")) },
	} {
		err := try()
		var nle *NotLeaderError
		if !errors.As(err, &nle) || !errors.Is(err, ErrNotLeader) || nle.Leader != leader.id {
			t.Errorf("%s on follower %s = %v; want a *NotLeaderError naming %s", name, follower.id, err, leader.id)
		}
	}

	// The victim drops off the network and stops: the leader marks it
	// dead and takes its vote.
	victim.trans.DisconnectAll()
	for _, m := range all {
		if m != victim {
			m.trans.Disconnect(raft.ServerAddress(victim.id))
		}
	}
	victim.close(t)
	live := []*member{leader, follower}
	waitFor(t, 5*time.Second, victim.id+" dead and not voting", func() error {
		l, err := leaderOf(live...)
		if err != nil {
			return err
		}
		mm := l.c.Map()
		if n := mm.Nodes[victim.id]; n == nil || n.State != StateDead || n.Voter {
			return fmt.Errorf("%s in the map: %+v", victim.id, n)
		}
		if _, ok := mm.AssignmentOf(victim.id); ok {
			return fmt.Errorf("dead %s keeps an assignment", victim.id)
		}
		servers, err := raftServers(l.c)
		if err != nil {
			return err
		}
		if s, ok := servers[victim.id]; ok && s == raft.Voter {
			return fmt.Errorf("raft configuration %v: %s still votes", servers, victim.id)
		}
		for _, m := range live {
			if got, want := mapJSON(t, m.c.Map()), mapJSON(t, mm); got != want {
				return fmt.Errorf("%s's map differs from the leader's", m.id)
			}
		}
		return nil
	})
	// The two survivors still commit.
	l, err := leaderOf(live...)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.c.Remove(victim.id); err != nil {
		t.Fatalf("Remove(%s): %v", victim.id, err)
	}
	if n := l.c.Map().Nodes[victim.id]; n != nil {
		t.Errorf("removed %s still in the map: %+v", victim.id, n)
	}
	if servers, err := raftServers(l.c); err != nil || len(servers) != 2 {
		t.Errorf("raft configuration after Remove = %v, %v; want the two survivors", servers, err)
	}
}

func TestClusterRestart(t *testing.T) {
	dir := t.TempDir()
	a := openMember(t, "n1", dir, true)
	waitFor(t, 5*time.Second, "n1 leading", func() error {
		if !a.c.IsLeader() {
			return fmt.Errorf("n1 is %v", a.c.Raft().State())
		}
		return nil
	})
	cluster, secret := NewSecret()
	for _, cmd := range []*Command{
		{Type: CmdInit, Cluster: cluster, Secret: secret},
		{Type: CmdRegisterModel, Model: fsmModel(fsmDigest)},
	} {
		if err := a.c.Apply(cmd); err != nil {
			t.Fatalf("Apply(%s): %v", cmd.Type, err)
		}
	}
	if err := a.c.Admit(rNode("n1")); err != nil {
		t.Fatalf("Admit(n1): %v", err)
	}
	if err := a.c.Apply(&Command{Type: CmdSetState, NodeID: "n1", State: StateServing, Epoch: 1}); err != nil {
		t.Fatalf("Apply(serving): %v", err)
	}
	want := a.c.Map()
	if len(want.Nodes) != 1 || want.Nodes["n1"].State != StateServing || len(want.Assignments) != 1 {
		t.Fatalf("map before restart = %s", mapJSON(t, want))
	}
	a.close(t)

	// Bootstrap on a data dir with Raft state starts from that state.
	b := openMember(t, "n1", dir, true)
	waitFor(t, 5*time.Second, "the map restored", func() error {
		if got := mapJSON(t, b.c.Map()); got != mapJSON(t, want) {
			return fmt.Errorf("map %s, want %s", got, mapJSON(t, want))
		}
		return nil
	})
	waitFor(t, 5*time.Second, "n1 leading again", func() error {
		if !b.c.IsLeader() {
			return fmt.Errorf("n1 is %v", b.c.Raft().State())
		}
		return nil
	})
	// The first init still counts, and the log goes on.
	other, otherSecret := NewSecret()
	if err := b.c.Apply(&Command{Type: CmdInit, Cluster: other, Secret: otherSecret}); err != nil {
		t.Fatal(err)
	}
	if err := b.c.Apply(&Command{Type: CmdSetState, NodeID: "n1", State: StateDraining}); err != nil {
		t.Fatal(err)
	}
	m := b.c.Map()
	if m.Cluster != cluster || m.Nodes["n1"].State != StateDraining || len(m.Assignments) != 0 || m.Index <= want.Index {
		t.Errorf("map after restart and two commands = %s", mapJSON(t, m))
	}
}

// TestReconcileVoterFlag: a node that is in the map but not in the Raft
// configuration (a dead member reconcile just removed from Raft, or one
// whose AddNonvoter has not happened yet) is not recorded as a voter
// (raft.Voter is the zero ServerSuffrage, so a missing entry must not
// read as one).
func TestReconcileVoterFlag(t *testing.T) {
	a := openMember(t, "n1", t.TempDir(), true)
	waitFor(t, 5*time.Second, "n1 leading", func() error {
		if !a.c.IsLeader() {
			return fmt.Errorf("n1 is %v", a.c.Raft().State())
		}
		return nil
	})
	if err := a.c.Admit(rNode("n1")); err != nil {
		t.Fatal(err)
	}
	// A dead member that has left the Raft configuration.
	gone := rNode("n2")
	gone.State = StateDead
	if err := a.c.Apply(&Command{Type: CmdAddNode, Node: &gone}); err != nil {
		t.Fatal(err)
	}
	a.c.reconcile()
	servers, err := raftServers(a.c)
	if err != nil {
		t.Fatal(err)
	}
	m := a.c.Map()
	if _, in := servers["n2"]; in || !m.Nodes["n1"].Voter {
		t.Fatalf("raft configuration %v, n1 voter %v; want n1 alone, voting", servers, m.Nodes["n1"].Voter)
	}
	if m.Nodes["n2"].Voter {
		t.Errorf("n2 is not in the Raft configuration %v, yet the map records it as a voter", servers)
	}
}

// threeVoters starts n1 (bootstrapping), n2 and n3 with reapAfter, admits
// all three and waits until they all vote.
func threeVoters(t *testing.T, reapAfter time.Duration, clock func() time.Time) []*member {
	t.Helper()
	all := []*member{openMember(t, "n1", t.TempDir(), true), openMember(t, "n2", t.TempDir(), false), openMember(t, "n3", t.TempDir(), false)}
	connect(all...)
	for _, m := range all {
		m.c.cfg.ReapAfter, m.c.cfg.Clock = reapAfter, clock // before Run reads them
	}
	waitFor(t, 5*time.Second, "n1 leading", func() error {
		if !all[0].c.IsLeader() {
			return fmt.Errorf("n1 is %v", all[0].c.Raft().State())
		}
		return nil
	})
	cluster, secret := NewSecret()
	for _, cmd := range []*Command{{Type: CmdInit, Cluster: cluster, Secret: secret}, {Type: CmdRegisterModel, Model: fsmModel(fsmDigest)}} {
		if err := all[0].c.Apply(cmd); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range all {
		if err := all[0].c.Admit(rNode(m.id)); err != nil {
			t.Fatal(err)
		}
		m.run()
	}
	waitFor(t, 5*time.Second, "three voters", func() error {
		servers, err := raftServers(all[0].c)
		if err != nil {
			return err
		}
		for _, m := range all {
			if servers[m.id] != raft.Voter {
				return fmt.Errorf("raft configuration %v", servers)
			}
		}
		return nil
	})
	return all
}

// isolate cuts m off from the others, both ways.
func isolate(m *member, all []*member) {
	m.trans.DisconnectAll()
	for _, o := range all {
		if o != m {
			o.trans.Disconnect(raft.ServerAddress(m.id))
		}
	}
}

// TestDeadVoterReturns: a voter cut off for longer than DeadAfter is marked
// dead and demoted, but stays in the Raft configuration: when it comes
// back it catches up with the log, sees itself dead and, once it reports
// itself joining (as its member does), votes again.
func TestDeadVoterReturns(t *testing.T) {
	all := threeVoters(t, time.Hour, nil)
	leader, err := leaderOf(all...)
	if err != nil {
		t.Fatal(err)
	}
	var victim *member
	for _, m := range all {
		if m != leader {
			victim = m
			break
		}
	}
	isolate(victim, all)
	waitFor(t, 5*time.Second, victim.id+" dead and demoted", func() error {
		l, err := leaderOf(all...)
		if err != nil {
			return err
		}
		if n := l.c.Map().Nodes[victim.id]; n == nil || n.State != StateDead {
			return fmt.Errorf("%s in the map: %+v", victim.id, n)
		}
		servers, err := raftServers(l.c)
		if err != nil {
			return err
		}
		if s, in := servers[victim.id]; !in || s != raft.Nonvoter {
			return fmt.Errorf("raft configuration %v: want %s a non-voter", servers, victim.id)
		}
		return nil
	})
	connect(all...)
	waitFor(t, 10*time.Second, victim.id+" following the log again", func() error {
		l, err := leaderOf(all...)
		if err != nil {
			return err
		}
		if n := victim.c.Map().Nodes[victim.id]; n == nil || n.State != StateDead {
			return fmt.Errorf("%s's own map: %+v", victim.id, n)
		}
		if got, want := mapJSON(t, victim.c.Map()), mapJSON(t, l.c.Map()); got != want {
			return fmt.Errorf("%s's map differs from the leader's", victim.id)
		}
		return nil
	})
	waitFor(t, 10*time.Second, victim.id+" voting again after it rejoined", func() error {
		l, err := leaderOf(all...)
		if err != nil {
			return err
		}
		if n := l.c.Map().Nodes[victim.id]; n.State == StateDead {
			if err := l.c.Apply(&Command{Type: CmdSetState, NodeID: victim.id, State: StateJoining}); err != nil {
				return err
			}
		}
		servers, err := raftServers(l.c)
		if err != nil {
			return err
		}
		if servers[victim.id] != raft.Voter {
			return fmt.Errorf("raft configuration %v", servers)
		}
		return nil
	})
}

// TestDeadNodeReaped: a member dead for ReapAfter leaves the map and the
// Raft configuration.
func TestDeadNodeReaped(t *testing.T) {
	all := threeVoters(t, time.Second, nil)
	leader, err := leaderOf(all...)
	if err != nil {
		t.Fatal(err)
	}
	var victim *member
	var live []*member
	for _, m := range all {
		if m != leader && victim == nil {
			victim = m
		} else {
			live = append(live, m)
		}
	}
	isolate(victim, all)
	victim.close(t)
	waitFor(t, 10*time.Second, victim.id+" reaped", func() error {
		l, err := leaderOf(live...)
		if err != nil {
			return err
		}
		if n := l.c.Map().Nodes[victim.id]; n != nil {
			return fmt.Errorf("%s in the map: %+v", victim.id, n)
		}
		servers, err := raftServers(l.c)
		if err != nil {
			return err
		}
		if _, in := servers[victim.id]; in {
			return fmt.Errorf("raft configuration %v", servers)
		}
		return nil
	})
}

// TestReapClockSurvivesLeaderChange: the map keeps when a member was
// marked dead, so a leader that takes over later reaps it ReapAfter after
// its death, not ReapAfter after taking over.
func TestReapClockSurvivesLeaderChange(t *testing.T) {
	var skew atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	all := threeVoters(t, time.Minute, clock)
	leader, err := leaderOf(all...)
	if err != nil {
		t.Fatal(err)
	}
	var victim, heir *member
	for _, m := range all {
		switch {
		case m == leader:
		case victim == nil:
			victim = m
		default:
			heir = m
		}
	}
	isolate(victim, all)
	victim.close(t)
	waitFor(t, 10*time.Second, victim.id+" marked dead", func() error {
		if n := leader.c.Map().Nodes[victim.id]; n == nil || n.State != StateDead || n.DeadSince.IsZero() {
			return fmt.Errorf("%s: %+v", victim.id, n)
		}
		return nil
	})
	if err := leader.c.Raft().LeadershipTransferToServer(raft.ServerID(heir.id), raft.ServerAddress(heir.id)).Error(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, heir.id+" leading", func() error {
		if !heir.c.IsLeader() {
			return fmt.Errorf("%s is %v", heir.id, heir.c.Raft().State())
		}
		return nil
	})
	skew.Store(int64(2 * time.Minute)) // the victim died two minutes ago
	waitFor(t, 10*time.Second, victim.id+" reaped by the new leader", func() error {
		if n := heir.c.Map().Nodes[victim.id]; n != nil {
			return fmt.Errorf("%s in the map: %+v", victim.id, n)
		}
		return nil
	})
}

// TestRevokeOnlyVoter: revoking the cluster's only voter (its leader)
// first makes the other member a voter, which then leads: Raft is never
// left without a voter.
func TestRevokeOnlyVoter(t *testing.T) {
	all := admitted(t, 2, 1)
	n1, n2 := all[0], all[1]
	waitFor(t, 5*time.Second, "n2 following as a non-voter", func() error {
		servers, err := raftServers(n1.c)
		if err != nil || servers["n1"] != raft.Voter || servers["n2"] != raft.Nonvoter {
			return fmt.Errorf("raft configuration %v, %v", servers, err)
		}
		return nil
	})
	if err := n1.c.Apply(&Command{Type: CmdRevokeNode, NodeID: "n1", Time: time.Now()}); err != nil {
		t.Fatalf("revoke the only voter: %v", err)
	}
	waitFor(t, 10*time.Second, "n2 leading alone", func() error {
		if !n2.c.IsLeader() {
			return fmt.Errorf("n2 is %v", n2.c.Raft().State())
		}
		servers, err := raftServers(n2.c)
		if err != nil || len(servers) != 1 || servers["n2"] != raft.Voter {
			return fmt.Errorf("raft configuration %v, %v", servers, err)
		}
		return nil
	})
	if mp := n2.c.Map(); mp.Nodes["n1"] != nil || mp.Revoked["n1"].Node != "n1" {
		t.Errorf("n2's map: node %v, revocation %+v", mp.Nodes["n1"], mp.Revoked["n1"])
	}
}

// TestVolunteersNeverVote: with room for three voters, the leader makes
// the members voters but never a volunteer, and a volunteer's rejoin
// (CmdAddNode without the flag) keeps it a volunteer.
func TestVolunteersNeverVote(t *testing.T) {
	all := admitted(t, 3, 3, "n2")
	n1 := all[0]
	waitFor(t, 5*time.Second, "n1 and n3 voting, n2 not", func() error {
		servers, err := raftServers(n1.c)
		if err != nil || servers["n1"] != raft.Voter || servers["n3"] != raft.Voter || servers["n2"] != raft.Nonvoter {
			return fmt.Errorf("raft configuration %v, %v", servers, err)
		}
		return nil
	})
	if err := n1.c.Apply(&Command{Type: CmdAddNode, Node: &Node{ID: "n2", Addrs: []string{"/ip4/10.0.0.2/tcp/1"}}}); err != nil {
		t.Fatal(err)
	}
	if n := n1.c.Map().Nodes["n2"]; !n.Volunteer || n.Voter {
		t.Errorf("n2 after its rejoin: %+v, want a volunteer that does not vote", n)
	}
}

// admitted returns n members n1..nN (n1 bootstrapped) of a cluster of up
// to voters voters, each admitted and running; the IDs in volunteers are
// admitted as volunteers.
func admitted(t *testing.T, n, voters int, volunteers ...string) []*member {
	t.Helper()
	var all []*member
	for i := range n {
		all = append(all, openMember(t, fmt.Sprintf("n%d", i+1), t.TempDir(), i == 0))
	}
	connect(all...)
	for _, m := range all {
		m.c.cfg.Voters = voters // before Run reads it
	}
	n1 := all[0]
	waitFor(t, 5*time.Second, "n1 leading", func() error {
		if !n1.c.IsLeader() {
			return fmt.Errorf("n1 is %v", n1.c.Raft().State())
		}
		return nil
	})
	cluster, secret := NewSecret()
	if err := n1.c.Apply(&Command{Type: CmdInit, Cluster: cluster, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		nd := rNode(m.id)
		nd.Volunteer = slices.Contains(volunteers, m.id)
		if err := n1.c.Admit(nd); err != nil {
			t.Fatal(err)
		}
		m.run()
	}
	return all
}

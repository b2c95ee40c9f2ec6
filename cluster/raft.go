package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// ErrNotLeader: a command was given to a member that is not the leader.
// The *NotLeaderError it comes in names the leader, when one is known.
var ErrNotLeader = errors.New("cluster: not the leader")

// NotLeaderError is returned by Apply and Admit on a follower.
type NotLeaderError struct{ Leader string }

// Error names the leader.
func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return "cluster: not the leader, and no leader is known"
	}
	return "cluster: not the leader; the leader is " + e.Leader
}

// Unwrap returns ErrNotLeader.
func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

// Timeouts are Raft's; raise them for members on slow or distant links.
// Zero fields take the Default values.
type Timeouts struct {
	Heartbeat   time.Duration
	Election    time.Duration
	LeaderLease time.Duration
	Commit      time.Duration
	// Apply bounds how long a command may wait to be committed.
	Apply time.Duration
}

// DefaultTimeouts suit members on one LAN or a good WAN.
var DefaultTimeouts = Timeouts{
	Heartbeat:   time.Second,
	Election:    time.Second,
	LeaderLease: 500 * time.Millisecond,
	Commit:      50 * time.Millisecond,
	Apply:       10 * time.Second,
}

func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts
	if t.Heartbeat > 0 {
		d.Heartbeat = t.Heartbeat
	}
	if t.Election > 0 {
		d.Election = t.Election
	}
	if t.LeaderLease > 0 {
		d.LeaderLease = t.LeaderLease
	}
	if t.Commit > 0 {
		d.Commit = t.Commit
	}
	if t.Apply > 0 {
		d.Apply = t.Apply
	}
	if d.LeaderLease > d.Heartbeat {
		d.LeaderLease = d.Heartbeat
	}
	return d
}

// Config configures a Cluster member.
type Config struct {
	// DataDir holds the Raft log and stable store (raft.db) and the
	// snapshots; it is created if absent.
	DataDir string
	// ID is this member's Raft server ID, which is also its address for
	// the Transport (a libp2p peer ID).
	ID string
	// Transport carries Raft's RPCs (the caller owns it and closes it).
	Transport raft.Transport
	// Bootstrap starts a new cluster with this member as its only voter,
	// unless the data dir already holds Raft state.
	Bootstrap bool
	Timeouts  Timeouts
	// Voters is how many members vote (0: 3); the most senior live
	// members do, the others follow the log as non-voters.
	Voters int
	// DeadAfter is how long the leader waits, once heartbeats to a member
	// fail, before it marks the member dead (0: 5 s).
	DeadAfter time.Duration
	// ReapAfter is how long a member stays dead in the map before the
	// leader removes it from the map and from Raft (0: 24 h). Until then
	// it follows the log as a non-voter, so that it rejoins by itself when
	// it comes back; after, it must join again with a token. The time
	// counts from when it was marked dead, as the map records it, so a
	// change of leader does not restart it.
	ReapAfter time.Duration
	// Clock stands in for time.Now in the leader's duties (for tests);
	// nil: time.Now.
	Clock  func() time.Time
	Logger *slog.Logger // nil: slog.Default()
	// RaftLogger takes Raft's own log lines (nil: they are dropped).
	RaftLogger hclog.Logger
}

// Cluster is this process's membership in the cluster: a Raft member whose
// FSM holds the map. The leader also admits joiners, marks members dead
// when their heartbeats fail, and keeps the voter set (Run).
type Cluster struct {
	cfg   Config
	t     Timeouts
	log   *slog.Logger
	fsm   *FSM
	store *BoltStore
	raft  *raft.Raft
	obs   chan raft.Observation
	obsr  *raft.Observer

	mu      sync.Mutex
	failing map[string]time.Time // peer -> since when heartbeats fail (leader only)
	dead    map[string]time.Time // node -> since when it is dead: the map's time, else when this leader first saw it (reconcile's)
}

// Open starts a Raft member over cfg.Transport with its state in
// cfg.DataDir.
func Open(cfg Config) (*Cluster, error) {
	if cfg.ID == "" || cfg.Transport == nil || cfg.DataDir == "" {
		return nil, errors.New("cluster: an ID, a transport and a data dir are needed")
	}
	if cfg.Voters <= 0 {
		cfg.Voters = 3
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = 5 * time.Second
	}
	if cfg.ReapAfter <= 0 {
		cfg.ReapAfter = 24 * time.Hour
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	t := cfg.Timeouts.withDefaults()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	store, err := OpenBoltStore(filepath.Join(cfg.DataDir, "raft.db"))
	if err != nil {
		return nil, err
	}
	rlog := cfg.RaftLogger
	if rlog == nil {
		rlog = hclog.NewNullLogger()
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, rlog)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("cluster: snapshot store: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = t.Heartbeat
	rc.ElectionTimeout = t.Election
	rc.LeaderLeaseTimeout = t.LeaderLease
	rc.CommitTimeout = t.Commit
	rc.Logger = rlog
	rc.SnapshotThreshold = 1024
	c := &Cluster{cfg: cfg, t: t, log: log, fsm: NewFSM(), store: store, failing: map[string]time.Time{}, dead: map[string]time.Time{}}
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(store, store, snaps)
		if err != nil {
			store.Close()
			return nil, fmt.Errorf("cluster: read raft state: %w", err)
		}
		if !has {
			conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: raft.ServerAddress(cfg.ID)}}}
			if err := raft.BootstrapCluster(rc, store, store, snaps, cfg.Transport, conf); err != nil {
				store.Close()
				return nil, fmt.Errorf("cluster: bootstrap: %w", err)
			}
		}
	}
	r, err := raft.NewRaft(rc, c.fsm, store, store, snaps, cfg.Transport)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("cluster: start raft: %w", err)
	}
	c.raft = r
	c.obs = make(chan raft.Observation, 64)
	c.obsr = raft.NewObserver(c.obs, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(c.obsr)
	return c, nil
}

// ID returns this member's ID.
func (c *Cluster) ID() string { return c.cfg.ID }

// Map returns a copy of the map as this member has applied it.
func (c *Cluster) Map() *Map { return c.fsm.Map() }

// Changed returns a channel closed at the next change of the map.
func (c *Cluster) Changed() <-chan struct{} { return c.fsm.Changed() }

// Raft returns the Raft member, for status and tests.
func (c *Cluster) Raft() *raft.Raft { return c.raft }

// IsLeader reports whether this member leads.
func (c *Cluster) IsLeader() bool { return c.raft.State() == raft.Leader }

// Leader returns the leader's ID, or "" when none is known.
func (c *Cluster) Leader() string {
	_, id := c.raft.LeaderWithID()
	return string(id)
}

// Apply commits a command through the log and returns once this member
// applied it. On a follower it fails with a *NotLeaderError.
func (c *Cluster) Apply(cmd *Command) error {
	if err := cmd.validate(); err != nil {
		return err
	}
	b, err := cmd.Encode()
	if err != nil {
		return err
	}
	if !c.IsLeader() {
		return &NotLeaderError{Leader: c.Leader()}
	}
	f := c.raft.Apply(b, c.t.Apply)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return &NotLeaderError{Leader: c.Leader()}
		}
		return fmt.Errorf("cluster: apply %s: %w", cmd.Type, err)
	}
	if r, ok := f.Response().(ApplyResult); ok && r.Err != nil {
		return r.Err
	}
	if cmd.Type == CmdRemoveNode || cmd.Type == CmdRevokeNode {
		return c.dropServer(cmd.NodeID)
	}
	return nil
}

// dropServer takes a node that left the map out of Raft at once, while
// the others still count it: Raft counts a change's quorum in the new
// configuration, so the rest agree on it even if the node is gone. A
// leader that drops itself steps down once the change commits; where
// leadership moves on first, the next leader removes the node
// (reconcile). If it is the only voter, the most senior live member still
// in Raft is made a voter first: Raft needs one, and a cluster left
// without any would never elect a leader again.
func (c *Cluster) dropServer(id string) error {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("cluster: remove %s from raft: %w", id, err)
	}
	in, voters := map[string]bool{}, 0
	var gone *raft.Server
	for _, s := range f.Configuration().Servers {
		in[string(s.ID)] = true
		if s.Suffrage == raft.Voter {
			voters++
		}
		if string(s.ID) == id {
			gone = &s
		}
	}
	if gone == nil {
		return nil
	}
	if gone.Suffrage == raft.Voter && voters == 1 {
		m := c.Map()
		for _, n := range m.NodeIDs() {
			if n != id && in[n] && m.Nodes[n].State.Live() && !m.Nodes[n].Volunteer {
				c.log.Info("promoting to voter before removing the only one", "node", n, "removed", id)
				if err := c.raft.AddVoter(raft.ServerID(n), raft.ServerAddress(n), 0, c.t.Apply).Error(); err != nil {
					return fmt.Errorf("cluster: promote %s before removing %s: %w", n, id, err)
				}
				break
			}
		}
	}
	if err := c.raft.RemoveServer(raft.ServerID(id), 0, c.t.Apply).Error(); err != nil {
		if errors.Is(err, raft.ErrLeadershipTransferInProgress) || errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			// The leader is handing over: a revoked leader steps down as
			// soon as it sees its revocation applied. The command has
			// committed, and the next leader takes the node out of Raft
			// as it reconciles Raft with the map.
			c.log.Info("leaving a node's removal from raft to the next leader", "node", id, "err", err)
			return nil
		}
		return fmt.Errorf("cluster: remove %s from raft: %w", id, err)
	}
	return nil
}

// LeaveRaft takes this node out of Raft as dropServer does, for a leader
// that left the map (revoked, removed) and is stopping: the rest then
// elect a leader among themselves, where a transfer of leadership would
// race dropServer's removal of it and could leave a stopped voter in the
// configuration.
func (c *Cluster) LeaveRaft() error { return c.dropServer(c.cfg.ID) }

// Admit adds a node to the map and to Raft as a non-voter (Run promotes
// voters). Leader only.
func (c *Cluster) Admit(n Node) error {
	if err := c.Apply(&Command{Type: CmdAddNode, Node: &n}); err != nil {
		return err
	}
	if n.ID == c.cfg.ID {
		return nil
	}
	if c.inConfig(n.ID) {
		return nil
	}
	f := c.raft.AddNonvoter(raft.ServerID(n.ID), raft.ServerAddress(n.ID), 0, c.t.Apply)
	if err := f.Error(); err != nil {
		return fmt.Errorf("cluster: add %s to raft: %w", n.ID, err)
	}
	c.reconcile()
	return nil
}

// Remove takes a node out of the map and out of Raft. Leader only.
func (c *Cluster) Remove(id string) error {
	return c.Apply(&Command{Type: CmdRemoveNode, NodeID: id})
}

func (c *Cluster) inConfig(id string) bool {
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			return true
		}
	}
	return false
}

// Run does the leader's duties until ctx ends: it marks members dead whose
// heartbeats have failed for DeadAfter (a dead voter is demoted to a
// non-voter, which follows the log and so finds out, when it comes back,
// that it must rejoin), removes those dead for ReapAfter, and keeps Voters
// senior live members voting. On a follower it only watches.
func (c *Cluster) Run(ctx context.Context) error {
	tick := time.NewTicker(max(c.cfg.DeadAfter/5, 50*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case o := <-c.obs:
			c.observe(o)
		case <-tick.C:
			if c.IsLeader() {
				c.reconcile()
			}
		}
	}
}

func (c *Cluster) observe(o raft.Observation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch d := o.Data.(type) {
	case raft.FailedHeartbeatObservation:
		id := string(d.PeerID)
		if _, ok := c.failing[id]; !ok {
			since := d.LastContact
			if since.IsZero() {
				since = c.now()
			}
			c.failing[id] = since
			c.log.Info("heartbeats failing", "peer", id)
		}
	case raft.ResumedHeartbeatObservation:
		delete(c.failing, string(d.PeerID))
	case raft.LeaderObservation:
		clear(c.failing) // failures are the leader's own observations
		clear(c.dead)    // and so is the time a node has been dead
		c.log.Info("raft leader", "leader", string(d.LeaderID))
	}
}

// reconcile is one round of the leader's duties.
func (c *Cluster) reconcile() {
	m := c.Map()
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	servers := f.Configuration().Servers
	suffrage := map[string]raft.ServerSuffrage{}
	for _, s := range servers {
		suffrage[string(s.ID)] = s.Suffrage
	}
	now := c.now()
	c.mu.Lock()
	var dead []string
	for id, since := range c.failing {
		if _, in := suffrage[id]; !in {
			delete(c.failing, id)
			continue
		}
		if n := m.Nodes[id]; n != nil && n.State != StateDead && now.Sub(since) >= c.cfg.DeadAfter {
			dead = append(dead, id)
		}
	}
	failing := make(map[string]bool, len(c.failing))
	for id := range c.failing {
		failing[id] = true
	}
	c.mu.Unlock()
	for _, id := range dead {
		c.log.Warn("marking node dead", "node", id, "after", c.cfg.DeadAfter)
		if err := c.Apply(&Command{Type: CmdSetState, NodeID: id, State: StateDead, Time: now}); err != nil {
			c.log.Warn("mark node dead", "node", id, "err", err)
			return
		}
	}
	if len(dead) > 0 {
		m = c.Map()
	}
	// Members dead for ReapAfter leave the map.
	c.mu.Lock()
	var reap []string
	for id := range c.dead {
		if n := m.Nodes[id]; n == nil || n.State != StateDead {
			delete(c.dead, id)
		}
	}
	for _, id := range m.NodeIDs() {
		if m.Nodes[id].State != StateDead || id == c.cfg.ID {
			continue
		}
		since, ok := c.dead[id]
		if !ok {
			if since = m.Nodes[id].DeadSince; since.IsZero() {
				since = now
			}
			c.dead[id] = since
		}
		if now.Sub(since) >= c.cfg.ReapAfter {
			reap = append(reap, id)
		}
	}
	c.mu.Unlock()
	for _, id := range reap {
		c.log.Warn("removing a node dead too long: it must join again", "node", id, "after", c.cfg.ReapAfter)
		if err := c.Apply(&Command{Type: CmdRemoveNode, NodeID: id}); err != nil {
			c.log.Warn("remove dead node", "node", id, "err", err)
			return
		}
	}
	if len(reap) > 0 {
		m = c.Map()
	}
	// Dead voters stop voting but follow the log, so that they rejoin
	// when they come back; members that left the map leave Raft.
	for _, s := range servers {
		id := string(s.ID)
		n := m.Nodes[id]
		if id == c.cfg.ID {
			continue
		}
		switch {
		case n == nil && !c.inConfig(id): // reaped above
			delete(suffrage, id)
		case n == nil:
			c.log.Info("removing raft server", "node", id)
			if err := c.raft.RemoveServer(s.ID, 0, c.t.Apply).Error(); err != nil {
				c.log.Warn("remove raft server", "node", id, "err", err)
				return
			}
			delete(suffrage, id)
		case n.State == StateDead && s.Suffrage == raft.Voter:
			c.log.Info("demoting a dead voter", "node", id)
			if err := c.raft.DemoteVoter(s.ID, 0, c.t.Apply).Error(); err != nil {
				c.log.Warn("demote raft voter", "node", id, "err", err)
				return
			}
			suffrage[id] = raft.Nonvoter
		}
	}
	// The most senior live, reachable members vote; volunteers never do.
	voters := 0
	for _, s := range suffrage {
		if s == raft.Voter {
			voters++
		}
	}
	// Directly reachable members first: one behind NAT (AutoNAT says
	// private) votes only when too few others can.
	candidates := m.NodeIDs()
	slices.SortStableFunc(candidates, func(a, b string) int {
		pa, pb := m.Nodes[a].Reach == ReachPrivate, m.Nodes[b].Reach == ReachPrivate
		switch {
		case pa == pb:
			return 0
		case pb:
			return -1
		}
		return 1
	})
	for _, id := range candidates {
		if voters >= c.cfg.Voters {
			break
		}
		n := m.Nodes[id]
		s, in := suffrage[id]
		if !in || s == raft.Voter || !n.State.Live() || n.Volunteer || failing[id] {
			continue
		}
		c.log.Info("promoting to voter", "node", id)
		if err := c.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(id), 0, c.t.Apply).Error(); err != nil {
			c.log.Warn("promote voter", "node", id, "err", err)
			return
		}
		suffrage[id] = raft.Voter
		voters++
	}
	// Live members missing from Raft (an add that failed) are added back.
	for _, id := range m.NodeIDs() {
		if _, in := suffrage[id]; !in && m.Nodes[id].State.Live() && id != c.cfg.ID {
			if err := c.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(id), 0, c.t.Apply).Error(); err != nil {
				c.log.Warn("add raft non-voter", "node", id, "err", err)
				return
			}
			suffrage[id] = raft.Nonvoter
		}
	}
	// The map shows who votes.
	for _, id := range m.NodeIDs() {
		s, in := suffrage[id]
		v := in && s == raft.Voter
		if m.Nodes[id].Voter != v {
			if err := c.Apply(&Command{Type: CmdSetVoter, NodeID: id, Voter: v}); err != nil {
				return
			}
		}
	}
}

// now is the leader's clock: Config.Clock, or time.Now.
func (c *Cluster) now() time.Time {
	if c.cfg.Clock != nil {
		return c.cfg.Clock()
	}
	return time.Now()
}

// Close stops the Raft member and closes its store; the transport stays
// the caller's.
func (c *Cluster) Close() error {
	c.raft.DeregisterObserver(c.obsr)
	err := c.raft.Shutdown().Error()
	if cerr := c.store.Close(); err == nil {
		err = cerr
	}
	return err
}

package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// ErrUnknownNode: a command names a node the map does not have.
var ErrUnknownNode = errors.New("cluster: unknown node")

// ErrModelMismatch: the cluster already serves another model.
var ErrModelMismatch = errors.New("cluster: another model is registered")

// ErrRevoked: the node was revoked; the cluster refuses it.
var ErrRevoked = errors.New("cluster: node revoked")

// ErrUnknownToken: no token with that ID is on record (never issued,
// revoked, or expired and forgotten).
var ErrUnknownToken = errors.New("cluster: no such join token")

// ErrNotRevoked: lifting the revocation of a node that has none.
var ErrNotRevoked = errors.New("cluster: node not revoked")

// FSM is the cluster map as a raft.FSM. Apply changes the map by one
// command and re-plans the assignments whenever nodes or the model change;
// the planner is deterministic, so every member computes the same plan
// from the same log.
//
// Readers take copies with Map; Changed tells them when to look again.
type FSM struct {
	mu      sync.Mutex
	m       *Map
	changed chan struct{} // closed and replaced on every change
}

// NewFSM returns an FSM holding an empty map.
func NewFSM() *FSM {
	return &FSM{m: emptyMap(), changed: make(chan struct{})}
}

func emptyMap() *Map { return &Map{Nodes: map[string]*Node{}} }

// Map returns a copy of the current map; the caller owns it.
func (f *FSM) Map() *Map {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m.Clone()
}

// Changed returns a channel that is closed at the next change of the map.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// ApplyResult is what FSM.Apply returns for a log entry: the error of the
// command, if it was refused.
type ApplyResult struct{ Err error }

// Apply implements raft.FSM: it applies one command. A malformed entry is
// refused (the map is unchanged) and its error returned as ApplyResult.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return ApplyResult{}
	}
	c, err := DecodeCommand(l.Data)
	if err != nil {
		return ApplyResult{Err: err}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	err = apply(f.m, c, l.Index)
	f.m.Index = l.Index
	close(f.changed)
	f.changed = make(chan struct{})
	return ApplyResult{Err: err}
}

// apply changes m by c, made at log index idx.
func apply(m *Map, c *Command, idx uint64) error {
	replan := false
	switch c.Type {
	case CmdInit:
		if m.Cluster == "" {
			m.Cluster, m.Secret = c.Cluster, slices.Clone(c.Secret)
		}
	case CmdAddNode:
		if _, ok := m.Revoked[c.Node.ID]; ok {
			return fmt.Errorf("%w: %s", ErrRevoked, c.Node.ID)
		}
		n := *c.Node
		n.Addrs = slices.Clone(n.Addrs)
		if old, ok := m.Nodes[n.ID]; ok {
			n.Joined, n.Voter, n.Volunteer = old.Joined, old.Voter, old.Volunteer
		} else {
			n.Joined, n.Voter = idx, false
		}
		if n.State == "" {
			n.State = StateJoining
		}
		m.Nodes[n.ID] = &n
		replan = true
	case CmdSetState:
		n, ok := m.Nodes[c.NodeID]
		if !ok {
			return fmt.Errorf("%w %s", ErrUnknownNode, c.NodeID)
		}
		if c.State == StateServing {
			a, has := m.AssignmentOf(n.ID)
			if has && a.Epoch > c.Epoch {
				return nil // reported for an assignment that has since changed
			}
		}
		n.Progress = 0
		if c.State == StateLoading {
			n.Progress = c.Progress
		}
		switch {
		case c.State != StateDead:
			n.DeadSince = time.Time{}
		case n.State != StateDead:
			n.DeadSince = c.Time
		}
		if n.State == c.State {
			return nil
		}
		replan = n.State.Live() != c.State.Live()
		n.State = c.State
	case CmdSetVoter:
		n, ok := m.Nodes[c.NodeID]
		if !ok {
			return fmt.Errorf("%w %s", ErrUnknownNode, c.NodeID)
		}
		n.Voter = c.Voter
	case CmdSetAddrs:
		n, ok := m.Nodes[c.NodeID]
		if !ok {
			return fmt.Errorf("%w %s", ErrUnknownNode, c.NodeID)
		}
		n.Addrs, n.Reach = slices.Clone(c.Addrs), c.Reach
	case CmdRemoveNode:
		if _, ok := m.Nodes[c.NodeID]; !ok {
			return nil
		}
		delete(m.Nodes, c.NodeID)
		replan = true
	case CmdRevokeNode:
		if m.Revoked == nil {
			m.Revoked = map[string]Revocation{}
		}
		m.Revoked[c.NodeID] = Revocation{Node: c.NodeID, At: c.Time, Reason: c.Reason, By: c.By}
		if _, ok := m.Nodes[c.NodeID]; ok {
			delete(m.Nodes, c.NodeID)
			replan = true
		}
	case CmdLiftRevocation:
		return forget(&m.Revoked, c.NodeID, ErrNotRevoked)
	case CmdAddToken:
		t := *c.Token
		maps.DeleteFunc(m.Tokens, func(_ string, r TokenInfo) bool { return !r.Expires.After(t.Issued) })
		if m.Tokens == nil {
			m.Tokens = map[string]TokenInfo{}
		}
		m.Tokens[t.ID] = t
	case CmdRevokeToken:
		return forget(&m.Tokens, c.TokenID, ErrUnknownToken)
	case CmdRegisterModel:
		if m.Model != nil {
			if m.Model.Digest != c.Model.Digest {
				return fmt.Errorf("%w: %s (%s), not %s", ErrModelMismatch, m.Model.Name, m.Model.Digest, c.Model.Digest)
			}
			return nil
		}
		mm := *c.Model
		mm.LayerBytes = slices.Clone(mm.LayerBytes)
		m.Model = &mm
		replan = true
	}
	if replan {
		replanMap(m)
	}
	return nil
}

// forget deletes key's record from *records (nil once empty), or fails
// with missing when there is none.
func forget[V any](records *map[string]V, key string, missing error) error {
	if _, ok := (*records)[key]; !ok {
		return fmt.Errorf("%w: %s", missing, key)
	}
	delete(*records, key)
	if len(*records) == 0 {
		*records = nil
	}
	return nil
}

// replanMap runs the planner and installs its plan: a new epoch when the
// assignments change, and nodes whose assignment changed go to loading.
// A plan short of capacity is installed as far as it goes.
func replanMap(m *Map) {
	next, _ := Plan(m)
	if slices.Equal(next, m.Assignments) {
		return
	}
	m.Epoch++
	for _, a := range next {
		old, had := m.AssignmentOf(a.Node)
		n := m.Nodes[a.Node]
		if n == nil {
			continue
		}
		if !had || old.Lo != a.Lo || old.Hi != a.Hi || old.Epoch != a.Epoch {
			if n.State == StateServing || n.State == StateJoining {
				n.State = StateLoading
			}
		}
	}
	m.Assignments = next
}

// Snapshot implements raft.FSM.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := json.Marshal(f.m)
	if err != nil {
		return nil, fmt.Errorf("snapshot map: %w", err)
	}
	return snapshot(append([]byte{CommandVersion}, b...)), nil
}

// Restore implements raft.FSM: it replaces the map with a snapshot's.
func (f *FSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("restore map: %w", err)
	}
	m, err := decodeSnapshot(b)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m = m
	close(f.changed)
	f.changed = make(chan struct{})
	return nil
}

// decodeSnapshot parses a snapshot written by FSM.Snapshot.
func decodeSnapshot(b []byte) (*Map, error) {
	if len(b) == 0 || b[0] != CommandVersion {
		return nil, fmt.Errorf("%w: snapshot of an unknown version", ErrBadCommand)
	}
	m := emptyMap()
	if err := json.Unmarshal(b[1:], m); err != nil {
		return nil, fmt.Errorf("%w: snapshot: %w", ErrBadCommand, err)
	}
	if m.Nodes == nil {
		m.Nodes = map[string]*Node{}
	}
	for id, n := range m.Nodes {
		if n == nil || n.ID != id {
			return nil, fmt.Errorf("%w: snapshot: node %q malformed", ErrBadCommand, id)
		}
	}
	if m.Model != nil && len(m.Model.LayerBytes) != m.Model.Layers {
		return nil, fmt.Errorf("%w: snapshot: model layers", ErrBadCommand)
	}
	for id, t := range m.Tokens {
		if t.ID != id {
			return nil, fmt.Errorf("%w: snapshot: token %q malformed", ErrBadCommand, id)
		}
	}
	for id, r := range m.Revoked {
		if r.Node != id {
			return nil, fmt.Errorf("%w: snapshot: revocation %q malformed", ErrBadCommand, id)
		}
	}
	for _, a := range m.Assignments {
		if m.Model == nil || a.Lo < 0 || a.Lo >= a.Hi || a.Hi > m.Model.Layers {
			return nil, fmt.Errorf("%w: snapshot: assignment %v out of the model's layers", ErrBadCommand, a)
		}
	}
	return m, nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s snapshot) Release() {}

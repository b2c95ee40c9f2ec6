package node

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/strata-llm/strata/cluster"
)

// ControlProtocol carries the cluster's control requests between nodes: a
// joiner's request to join (with its token), and a member's command for
// the leader. One request and one reply a stream, each a 4-byte
// big-endian length and a JSON document.
const ControlProtocol protocol.ID = "/strata/cluster/1.0.0"

const (
	maxControlBytes = 1 << 20
	controlTimeout  = 15 * time.Second
)

// Errors of control requests.
var (
	// ErrJoinRefused: the cluster refused a join (a bad or expired token,
	// a wrong cluster); the wrapped text says why.
	ErrJoinRefused = errors.New("refused by the cluster")
	// ErrNotMember: a control request or a stage stream from a peer that
	// is not a member of the cluster.
	ErrNotMember = errors.New("not a member of the cluster")
	// ErrForbidden: a volunteer member asked for a change beyond its own
	// entry in the map.
	ErrForbidden = errors.New("not allowed to a volunteer")
)

// controlRequest is a control request: Op "join" (Token, Node), "apply"
// (Command), "check" (whether the asker is a member) or "revoked"
// (Revocation).
type controlRequest struct {
	Op      string           `json:"op"`
	Token   string           `json:"token,omitempty"`
	Node    *cluster.Node    `json:"node,omitempty"`
	Command *cluster.Command `json:"command,omitempty"`
	// Revocation tells a node it was revoked (Op "revoked"): the leader
	// sends it before cutting the node off, which would otherwise never
	// learn of the log entry that revoked it.
	Revocation *cluster.Revocation `json:"revocation,omitempty"`
	// Origin is the peer a trusted member passes the request on for (a
	// volunteer's is not believed): the leader authorizes the origin.
	Origin string `json:"origin,omitempty"`
}

// controlReply answers a control request: Err is empty on success; Code
// says what kind of failure ("token", "not_member", "forbidden",
// "not_leader", "revoked", "failed").
type controlReply struct {
	Err    string `json:"err,omitempty"`
	Code   string `json:"code,omitempty"`
	Leader string `json:"leader,omitempty"`
	// Index is the map's index on the member that did the request, once
	// done: a member that passed it on waits for its own map to get there.
	Index uint64 `json:"index,omitempty"`
}

func writeControl(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err = w.Write(append(buf, b...))
	return err
}

func readControl(r io.Reader, v any) error {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxControlBytes {
		return fmt.Errorf("control message of %d bytes, at most %d", size, maxControlBytes)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// handleControl serves one control stream.
func (m *Member) handleControl(st network.Stream) {
	defer st.Close()
	st.SetDeadline(time.Now().Add(controlTimeout))
	from := st.Conn().RemotePeer()
	var req controlRequest
	if err := readControl(st, &req); err != nil {
		m.log.Warn("refused a control request", "peer", from, "err", err)
		st.Reset()
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, controlTimeout)
	defer cancel()
	idx, err := m.serveControl(ctx, from, &req)
	rep := controlReply{Index: idx}
	if err != nil {
		rep.Err = err.Error()
		switch {
		case errors.Is(err, ErrJoinRefused):
			rep.Code = "token"
		case errors.Is(err, ErrNotMember):
			rep.Code = "not_member"
		case errors.Is(err, ErrForbidden):
			rep.Code = "forbidden"
		case errors.Is(err, ErrRevoked):
			rep.Code = "revoked"
		case errors.Is(err, cluster.ErrNotLeader):
			rep.Code, rep.Leader = "not_leader", m.cl.Leader()
		default:
			rep.Code = "failed"
		}
	}
	if err := writeControl(st, &rep); err != nil {
		m.log.Debug("write control reply", "peer", from, "err", err)
	}
	if rep.Code == "revoked" { // told: nothing more to say to it
		time.AfterFunc(time.Second, func() { m.host.Network().ClosePeer(from) })
	}
}

// serveControl does what a control request asks, here or, on a follower,
// by passing it to the leader.
func (m *Member) serveControl(ctx context.Context, from peer.ID, req *controlRequest) (uint64, error) {
	mp := m.cl.Map()
	member := mp.Nodes[from.String()] != nil
	origin := from.String()
	if req.Origin != "" && trusted(mp, origin) {
		origin = req.Origin
	}
	req.Origin = origin // for the leader, if this member passes it on
	switch req.Op {
	case "join":
		if req.Node == nil || req.Node.ID == "" {
			return 0, fmt.Errorf("a join without a node")
		}
		if req.Node.ID != from.String() && !member {
			return 0, fmt.Errorf("%w: %s asked to join as %s", ErrJoinRefused, from, req.Node.ID)
		}
		if mp.Nodes[req.Node.ID] != nil && req.Node.ID != origin && !trusted(mp, origin) {
			return 0, fmt.Errorf("%w: %s may rejoin only itself, not %s", ErrForbidden, origin, req.Node.ID)
		}
		if r, ok := mp.Revoked[req.Node.ID]; ok {
			m.log.Warn("refused a join from a revoked node", "peer", req.Node.ID)
			return 0, fmt.Errorf("%w: node %s was revoked at %s", ErrJoinRefused, r.Node, r.At.Format(time.RFC3339))
		}
		if !m.cl.IsLeader() {
			return m.toLeader(ctx, req)
		}
		node := *req.Node
		if mp.Nodes[node.ID] == nil { // a rejoining member needs no token, and stays what it was
			tok, err := mp.CheckToken(req.Token, time.Now())
			if err != nil {
				m.log.Warn("refused a join", "peer", node.ID, "err", err)
				return 0, fmt.Errorf("%w: %w", ErrJoinRefused, err)
			}
			node.Volunteer = tok.Volunteer
		}
		if mp.Model != nil && req.Node.Model != mp.Model.Digest {
			m.log.Warn("a node joined with another model file: it gets no layers", "peer", req.Node.ID, "model", req.Node.Model, "cluster_model", mp.Model.Digest)
		}
		m.log.Info("admitting node", "peer", node.ID, "capacity", node.Resources.Capacity, "volunteer", node.Volunteer)
		m.gater.Allow(peer.ID(node.ID))
		if err := m.cl.Admit(node); err != nil {
			return 0, err
		}
		return m.cl.Map().Index, nil
	case "apply":
		if !member {
			return 0, fmt.Errorf("%w: %s", ErrNotMember, from)
		}
		if req.Command == nil {
			return 0, fmt.Errorf("an apply without a command")
		}
		if err := authorize(mp, origin, req.Command); err != nil {
			m.log.Warn("refused a command", "from", origin, "err", err)
			return 0, err
		}
		if !m.cl.IsLeader() {
			return m.toLeader(ctx, req)
		}
		if err := m.cl.Apply(req.Command); err != nil {
			return 0, err
		}
		return m.cl.Map().Index, nil
	case "check": // is the asker still a member, as this member sees it?
		if mp.Nodes[m.id.String()] == nil {
			return 0, errors.New("this node is not a member itself: it cannot tell")
		}
		if r, ok := mp.Revoked[from.String()]; ok {
			return mp.Index, revokedError(r)
		}
		if !member {
			return mp.Index, fmt.Errorf("%w: %s is not in the cluster's map", ErrNotMember, from)
		}
		return mp.Index, nil
	case "revoked":
		if !trusted(mp, from.String()) || req.Revocation == nil || req.Revocation.Node != m.id.String() {
			return 0, fmt.Errorf("%w: %s sent a revocation", ErrNotMember, from)
		}
		m.markRevoked(*req.Revocation)
		return m.cl.Map().Index, nil
	}
	return 0, fmt.Errorf("unknown control op %q", req.Op)
}

// toLeader passes a request on to the leader.
func (m *Member) toLeader(ctx context.Context, req *controlRequest) (uint64, error) {
	leader := m.cl.Leader()
	if leader == "" || leader == m.id.String() {
		return 0, &cluster.NotLeaderError{Leader: leader}
	}
	id, err := peer.Decode(leader)
	if err != nil {
		return 0, err
	}
	return m.control(ctx, id, req)
}

// control sends a request to a peer and waits for its reply: the map
// index at which the peer did it, or why it did not (with the peer's
// index, for a "not a member" answer).
func (m *Member) control(ctx context.Context, to peer.ID, req *controlRequest) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	st, err := m.host.NewStream(ctx, to, ControlProtocol)
	if err != nil {
		return 0, fmt.Errorf("control stream to %s: %w", to, err)
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(controlTimeout))
	if err := writeControl(st, req); err != nil {
		st.Reset()
		return 0, fmt.Errorf("control request to %s: %w", to, err)
	}
	var rep controlReply
	if err := readControl(st, &rep); err != nil {
		st.Reset()
		return 0, fmt.Errorf("control reply from %s: %w", to, err)
	}
	if rep.Err == "" {
		return rep.Index, nil
	}
	switch rep.Code {
	case "token":
		return 0, fmt.Errorf("%w: %s", ErrJoinRefused, strings.TrimPrefix(rep.Err, ErrJoinRefused.Error()+": "))
	case "not_member":
		return rep.Index, fmt.Errorf("%w: %s", ErrNotMember, rep.Err)
	case "forbidden":
		return 0, fmt.Errorf("%w: %s", ErrForbidden, strings.TrimPrefix(rep.Err, ErrForbidden.Error()+": "))
	case "not_leader":
		return 0, &cluster.NotLeaderError{Leader: rep.Leader}
	case "revoked":
		return rep.Index, fmt.Errorf("%w%s", ErrRevoked, strings.TrimPrefix(rep.Err, ErrRevoked.Error()))
	}
	return 0, fmt.Errorf("%s: %s", to, rep.Err)
}

// apply commits a command through the leader, wherever it is, retrying
// while leadership moves, and returns once this member's map shows it
// too (or a moment later: a reader of this member's map then sees what it
// wrote).
func (m *Member) apply(ctx context.Context, cmd *cluster.Command) error {
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var err error
		if m.cl.IsLeader() {
			err = m.cl.Apply(cmd)
		} else {
			var idx uint64
			if idx, err = m.toLeader(ctx, &controlRequest{Op: "apply", Command: cmd}); err == nil {
				m.catchUp(ctx, idx)
			}
		}
		if !errors.Is(err, cluster.ErrNotLeader) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("apply %s: %w (%w)", cmd.Type, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// catchUp waits, for at most catchUpWait, until this member's map has
// applied index idx.
func (m *Member) catchUp(ctx context.Context, idx uint64) {
	deadline := time.NewTimer(catchUpWait)
	defer deadline.Stop()
	for {
		ch := m.cl.Changed()
		if m.cl.Map().Index >= idx {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-ch:
		}
	}
}

// catchUpWait bounds catchUp: a follower a moment behind the leader.
const catchUpWait = 2 * time.Second

// trusted reports whether id is a member that is not a volunteer.
func trusted(mp *cluster.Map, id string) bool {
	n := mp.Nodes[id]
	return n != nil && !n.Volunteer
}

// authorize checks that the member origin may have cmd applied: a member
// anything, a volunteer only changes to its own entry (its state,
// addresses, rejoin and leaving).
func authorize(mp *cluster.Map, origin string, cmd *cluster.Command) error {
	n := mp.Nodes[origin]
	if n == nil {
		return fmt.Errorf("%w: %s", ErrNotMember, origin)
	}
	if !n.Volunteer {
		return nil
	}
	self := false
	switch cmd.Type {
	case cluster.CmdSetState, cluster.CmdSetAddrs, cluster.CmdRemoveNode:
		self = cmd.NodeID == origin
	case cluster.CmdAddNode:
		self = cmd.Node != nil && cmd.Node.ID == origin
	}
	if !self {
		return fmt.Errorf("%w: volunteer %s may change only its own entry (asked for %s)", ErrForbidden, shortID(origin), cmd.Type)
	}
	return nil
}

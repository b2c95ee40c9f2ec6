package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// CommandVersion is the version of the command encoding this build writes
// and reads. A command of another version is refused, not guessed at.
const CommandVersion = 1

// CommandType names what a command does to the map.
type CommandType string

// The commands.
const (
	// CmdInit names the cluster and sets the secret its join tokens are
	// signed with; only the first one counts.
	CmdInit CommandType = "init"
	// CmdAddNode adds a node (or updates one that rejoins: its addresses,
	// API and resources; it keeps its seniority).
	CmdAddNode CommandType = "node.add"
	// CmdSetState sets a node's state. A node reporting StateServing names
	// the Epoch of the assignment it loaded; an older epoch is ignored.
	CmdSetState CommandType = "node.state"
	// CmdSetVoter records whether a node is a Raft voter.
	CmdSetVoter CommandType = "node.voter"
	// CmdSetAddrs records how others reach a node, as it finds out after
	// joining: its addresses (a node behind NAT gains relayed ones once
	// AutoNAT finds it private) and its reachability.
	CmdSetAddrs CommandType = "node.addrs"
	// CmdRemoveNode removes a node and its assignments.
	CmdRemoveNode CommandType = "node.remove"
	// CmdRegisterModel sets the model the cluster serves.
	CmdRegisterModel CommandType = "model.register"
	// CmdAddToken records a join token the cluster issued (Token), and
	// forgets the records of those expired by the time it was issued.
	CmdAddToken CommandType = "token.add"
	// CmdRevokeToken deletes a token's record (TokenID): it admits no one
	// from then on.
	CmdRevokeToken CommandType = "token.revoke"
	// CmdRevokeNode removes a node (NodeID) and its assignments, and
	// refuses it from then on (Reason, at Time).
	CmdRevokeNode CommandType = "node.revoke"
	// CmdLiftRevocation lifts a node's revocation (NodeID): it may join
	// again, with a token.
	CmdLiftRevocation CommandType = "node.unrevoke"
)

// Command is one change to the map, as the Raft log carries it. Which
// fields count depends on Type.
type Command struct {
	Type    CommandType `json:"type"`
	Cluster string      `json:"cluster,omitempty"` // CmdInit
	Secret  []byte      `json:"secret,omitempty"`  // CmdInit
	Node    *Node       `json:"node,omitempty"`    // CmdAddNode
	NodeID  string      `json:"node_id,omitempty"` // CmdSetState, CmdSetVoter, CmdSetAddrs, CmdRemoveNode
	State   NodeState   `json:"state,omitempty"`   // CmdSetState
	Epoch   uint64      `json:"epoch,omitempty"`   // CmdSetState to serving
	// Progress of a node loading its layers (CmdSetState to loading).
	Progress float64 `json:"progress,omitempty"`
	Voter    bool    `json:"voter,omitempty"` // CmdSetVoter
	Model    *Model  `json:"model,omitempty"` // CmdRegisterModel
	// Addrs and Reach of a node (CmdSetAddrs), as Node's.
	Addrs []string `json:"addrs,omitempty"`
	Reach string   `json:"reach,omitempty"`
	// Token is the record of a token issued (CmdAddToken), TokenID the
	// one revoked (CmdRevokeToken).
	Token   *TokenInfo `json:"token,omitempty"`
	TokenID string     `json:"token_id,omitempty"`
	// Reason for a revocation (CmdRevokeNode), and By the member that
	// asked for it.
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
	// Time is the leader's clock when it made the command (CmdRevokeNode,
	// CmdSetState to dead): the map keeps no clock of its own, so that
	// every member applies the same change.
	Time time.Time `json:"time,omitzero"`
}

// Limits on what commands carry.
const (
	maxTokenID = 64
	maxNote    = 256
)

// ErrBadCommand: a log entry is not a command this build understands.
var ErrBadCommand = errors.New("cluster: bad command")

// Encode returns the command as a log entry: a version byte, then JSON.
func (c *Command) Encode() ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode command %s: %w", c.Type, err)
	}
	return append([]byte{CommandVersion}, b...), nil
}

// DecodeCommand parses a log entry written by Encode.
func DecodeCommand(b []byte) (*Command, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBadCommand)
	}
	if b[0] != CommandVersion {
		return nil, fmt.Errorf("%w: version %d, this build reads version %d", ErrBadCommand, b[0], CommandVersion)
	}
	var c Command
	if err := json.Unmarshal(b[1:], &c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCommand, err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// validate checks that the fields Type needs are there and sane.
func (c *Command) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrBadCommand, c.Type, fmt.Sprintf(format, a...))
	}
	switch c.Type {
	case CmdInit:
		if c.Cluster == "" || len(c.Secret) < 16 {
			return bad("needs a cluster ID and a secret of at least 16 bytes")
		}
	case CmdAddNode:
		if c.Node == nil || c.Node.ID == "" {
			return bad("needs a node with an ID")
		}
		if c.Node.Resources.Capacity < 0 {
			return bad("negative capacity")
		}
		switch c.Node.State {
		case "", StateJoining, StateLoading, StateServing, StateDraining, StateDead:
		default:
			return bad("unknown state %q", c.Node.State)
		}
	case CmdSetState:
		switch c.State {
		case StateJoining, StateLoading, StateServing, StateDraining, StateDead:
		default:
			return bad("unknown state %q", c.State)
		}
		if c.NodeID == "" {
			return bad("needs a node ID")
		}
		if c.Progress < 0 || c.Progress > 1 || c.Progress != c.Progress {
			return bad("progress %v outside [0, 1]", c.Progress)
		}
	case CmdSetVoter, CmdRemoveNode, CmdLiftRevocation:
		if c.NodeID == "" {
			return bad("needs a node ID")
		}
	case CmdRevokeNode:
		if c.NodeID == "" || c.Time.IsZero() {
			return bad("needs a node ID and a time")
		}
		if len(c.Reason) > maxNote || len(c.By) > maxNote {
			return bad("a reason or author of more than %d bytes", maxNote)
		}
	case CmdAddToken:
		t := c.Token
		if t == nil || t.ID == "" || len(t.ID) > maxTokenID || t.Issued.IsZero() || !t.Expires.After(t.Issued) {
			return bad("needs a token with an ID of at most %d bytes, issued before it expires", maxTokenID)
		}
		if len(t.Note) > maxNote || len(t.By) > maxNote {
			return bad("a note or author of more than %d bytes", maxNote)
		}
	case CmdRevokeToken:
		if c.TokenID == "" {
			return bad("needs a token ID")
		}
	case CmdSetAddrs:
		if c.NodeID == "" {
			return bad("needs a node ID")
		}
		switch c.Reach {
		case "", ReachPublic, ReachPrivate:
		default:
			return bad("unknown reachability %q", c.Reach)
		}
	case CmdRegisterModel:
		m := c.Model
		if m == nil || m.Digest == "" || m.Layers <= 0 || len(m.LayerBytes) != m.Layers {
			return bad("needs a model with a digest and the bytes of each layer")
		}
		for _, b := range m.LayerBytes {
			if b < 0 {
				return bad("negative layer bytes")
			}
		}
		if m.EmbedBytes < 0 || m.HeadBytes < 0 {
			return bad("negative bytes")
		}
	default:
		return bad("unknown command type")
	}
	return nil
}

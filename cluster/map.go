package cluster

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"
)

// NodeState is where a node is in its life in the cluster.
type NodeState string

// The states of a node.
const (
	// StateJoining: admitted, not yet given layers or not yet loading.
	StateJoining NodeState = "joining"
	// StateLoading: loading the layers of its assignment.
	StateLoading NodeState = "loading"
	// StateServing: serving the layers of its assignment (or a spare with
	// none, ready to take some).
	StateServing NodeState = "serving"
	// StateDraining: leaving; the planner moves its layers away.
	StateDraining NodeState = "draining"
	// StateDead: missed its heartbeats; its layers are planned elsewhere.
	StateDead NodeState = "dead"
)

// Live reports whether a node in state s may hold layers.
func (s NodeState) Live() bool {
	return s == StateJoining || s == StateLoading || s == StateServing
}

// GPU is one accelerator of a node, as its inventory measured it.
type GPU struct {
	Index       int    `json:"index"`
	Name        string `json:"name"`
	UUID        string `json:"uuid,omitempty"`
	MemoryTotal uint64 `json:"memory_total"` // bytes
	MemoryFree  uint64 `json:"memory_free"`  // bytes
}

// Resources is what a node has and what it offers the cluster.
type Resources struct {
	GPUs     []GPU  `json:"gpus,omitempty"`
	CPUCores int    `json:"cpu_cores"`
	RAMBytes uint64 `json:"ram_bytes"`
	// Capacity is the bytes of weights the node offers to hold: what its
	// inventory measured, or less where the operator capped it.
	Capacity int64 `json:"capacity"`
}

// Node is a member of the cluster. Its ID is its libp2p peer ID, which is
// also its Raft server ID and address.
type Node struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`         // multiaddrs, without /p2p/ID
	API   string   `json:"api,omitempty"` // host:port of its HTTP API
	// Resources are as the node reported them when it joined.
	Resources Resources `json:"resources"`
	State     NodeState `json:"state"`
	Voter     bool      `json:"voter"`
	// Joined is the map index at which the node joined: the order of
	// seniority (the first nodes become voters).
	Joined uint64 `json:"joined"`
	// Model is the digest of the model file the node has locally ("" when
	// it has none).
	Model string `json:"model,omitempty"`
	// Fetch: the node fetches the weights of the layers it is given from
	// its peers, so it may serve any layers of the model.
	Fetch bool `json:"fetch,omitempty"`
	// Progress is how far a loading node has fetched and loaded its
	// layers, from 0 to 1.
	Progress float64 `json:"progress,omitempty"`
	// Reach is how others reach the node, as AutoNAT found when it joined:
	// ReachPublic, ReachPrivate (behind NAT), or "" when unknown.
	Reach string `json:"reach,omitempty"`
	// Volunteer: the node joined with a volunteer token. It serves layers
	// like any member but never votes in Raft, and may change only its
	// own entry in the map. The leader sets it at admission, from the
	// token's record; a rejoin keeps it.
	Volunteer bool `json:"volunteer,omitempty"`
	// DeadSince is when the leader marked the node dead, by its clock;
	// zero unless the node is dead.
	DeadSince time.Time `json:"dead_since,omitzero"`
}

// What AutoNAT found of a node's reachability.
const (
	ReachPublic  = "public"
	ReachPrivate = "private"
)

// Model is a model the cluster serves, identified by the digest of its
// GGUF file.
type Model struct {
	Name   string `json:"name"`
	Digest string `json:"digest"` // "sha256:HEX" of the GGUF file
	Layers int    `json:"layers"`
	// LayerBytes are the weight bytes of each transformer layer; the first
	// stage also holds EmbedBytes (token embeddings), the last HeadBytes
	// (output norm and head).
	LayerBytes []int64 `json:"layer_bytes"`
	EmbedBytes int64   `json:"embed_bytes"`
	HeadBytes  int64   `json:"head_bytes"`
	// Manifest lists the file's parts with a hash per chunk, so that nodes
	// without the file fetch exactly the tensors they serve from peers and
	// verify every chunk; nil when the registering node made none.
	Manifest *Manifest `json:"manifest,omitempty"`
}

// Manifest describes a GGUF file as chunks with their hashes: the header
// (metadata and tensor table, [0, DataOffset)) and each tensor's bytes.
type Manifest struct {
	// ChunkSize is the size of every chunk but the last of a part.
	ChunkSize int64 `json:"chunk_size"`
	// FileSize is the size of the whole file.
	FileSize int64 `json:"file_size"`
	// Header is the file's [0, DataOffset): the metadata and tensor table.
	Header Part `json:"header"`
	// Tensors in file order.
	Tensors []TensorPart `json:"tensors"`
}

// Part is a byte range of the file, hashed chunk by chunk.
type Part struct {
	Offset int64 `json:"offset"` // absolute, in the file
	Size   int64 `json:"size"`
	// Hashes are the hex sha256 of each chunk: [Offset+i*ChunkSize,
	// min(Offset+Size, Offset+(i+1)*ChunkSize)).
	Hashes []string `json:"hashes"`
}

// TensorPart is one tensor's bytes in the file.
type TensorPart struct {
	Name string `json:"name"`
	// Layer is the transformer block the tensor belongs to ("blk.N."),
	// or -1 for the others (embeddings, output norm and head).
	Layer int `json:"layer"`
	Part
}

// StageBytes returns the weight bytes a stage serving [lo, hi) of m holds.
func (m *Model) StageBytes(lo, hi int) int64 {
	var n int64
	for _, b := range m.LayerBytes[lo:hi] {
		n += b
	}
	if lo == 0 {
		n += m.EmbedBytes
	}
	if hi == m.Layers {
		n += m.HeadBytes
	}
	return n
}

// TotalBytes returns the bytes of the whole model.
func (m *Model) TotalBytes() int64 { return m.StageBytes(0, m.Layers) }

// Assignment gives a node the layers [Lo, Hi) of a model. Replica numbers
// the pipelines: the assignments of one replica cover every layer once.
type Assignment struct {
	Model   string `json:"model"` // the model's digest
	Lo      int    `json:"lo"`
	Hi      int    `json:"hi"`
	Node    string `json:"node"`
	Replica int    `json:"replica"`
	// Epoch is the map epoch at which this assignment was made; it stays
	// when a re-plan keeps the assignment.
	Epoch uint64 `json:"epoch"`
}

// String returns "NODE:LO-HI".
func (a Assignment) String() string { return fmt.Sprintf("%s:%d-%d", a.Node, a.Lo, a.Hi) }

// Map is the cluster map: the state the Raft log replicates. A Map is a
// value; the FSM hands out copies.
type Map struct {
	// Cluster is the cluster's ID, chosen at init.
	Cluster string `json:"cluster"`
	// Secret signs join tokens; every member has it, joiners never see it.
	Secret []byte           `json:"secret"`
	Nodes  map[string]*Node `json:"nodes"`
	// Model is the model the cluster serves (one per cluster for now).
	Model *Model `json:"model,omitempty"`
	// Assignments sorted by (Replica, Lo).
	Assignments []Assignment `json:"assignments"`
	// Epoch counts the plans: it grows by one each time the assignments
	// change.
	Epoch uint64 `json:"epoch"`
	// Index is the Raft index of the last command applied.
	Index uint64 `json:"index"`
	// Tokens are the join tokens issued and not revoked, by ID. A token
	// admits a joiner only while its record is here (and it has not
	// expired): revoking one deletes its record.
	Tokens map[string]TokenInfo `json:"tokens,omitempty"`
	// Revoked are the nodes the cluster refuses for good, by ID: members
	// close their connections and refuse new ones, and a join is refused
	// whatever its token, until the revocation is lifted.
	Revoked map[string]Revocation `json:"revoked,omitempty"`
}

// TokenInfo is the record of a join token the cluster issued. The token
// itself is not kept, nor what it is signed over: its ID is TokenID of
// the token.
type TokenInfo struct {
	ID      string    `json:"id"`
	Issued  time.Time `json:"issued"`
	Expires time.Time `json:"expires"`
	// Note says what the token is for, as its issuer wrote it.
	Note string `json:"note,omitempty"`
	// Volunteer: the nodes it admits are volunteers (Node.Volunteer).
	Volunteer bool `json:"volunteer,omitempty"`
	// By is the member that issued it (through its admin API).
	By string `json:"by,omitempty"`
}

// Revocation records a node the cluster refuses.
type Revocation struct {
	Node string    `json:"node"`
	At   time.Time `json:"at"`
	// Reason is the operator's, as given.
	Reason string `json:"reason,omitempty"`
	// By is the member that revoked it (through its admin API).
	By string `json:"by,omitempty"`
}

// Clone returns a deep copy of m.
func (m *Map) Clone() *Map {
	c := *m
	c.Secret = slices.Clone(m.Secret)
	c.Nodes = make(map[string]*Node, len(m.Nodes))
	for id, n := range m.Nodes {
		nn := *n
		nn.Addrs = slices.Clone(n.Addrs)
		nn.Resources.GPUs = slices.Clone(n.Resources.GPUs)
		c.Nodes[id] = &nn
	}
	if m.Model != nil {
		mm := *m.Model
		mm.LayerBytes = slices.Clone(m.Model.LayerBytes)
		c.Model = &mm
	}
	c.Assignments = slices.Clone(m.Assignments)
	c.Tokens = maps.Clone(m.Tokens)
	c.Revoked = maps.Clone(m.Revoked)
	return &c
}

// NodeIDs returns the IDs of the nodes in order of seniority.
func (m *Map) NodeIDs() []string {
	ids := make([]string, 0, len(m.Nodes))
	for id := range m.Nodes {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := m.Nodes[ids[i]], m.Nodes[ids[j]]
		if a.Joined != b.Joined {
			return a.Joined < b.Joined
		}
		return a.ID < b.ID
	})
	return ids
}

// AssignmentOf returns node's assignment, if it has one.
func (m *Map) AssignmentOf(node string) (Assignment, bool) {
	for _, a := range m.Assignments {
		if a.Node == node {
			return a, true
		}
	}
	return Assignment{}, false
}

// Covered reports whether every layer of the model has an assignment.
func (m *Map) Covered() bool {
	if m.Model == nil {
		return false
	}
	return len(m.Uncovered()) == 0
}

// Uncovered returns the layers of the model no assignment covers.
func (m *Map) Uncovered() []int {
	if m.Model == nil {
		return nil
	}
	cov := make([]bool, m.Model.Layers)
	for _, a := range m.Assignments {
		for l := a.Lo; l < a.Hi && l < len(cov); l++ {
			cov[l] = true
		}
	}
	var out []int
	for l, c := range cov {
		if !c {
			out = append(out, l)
		}
	}
	return out
}

// Route returns a chain of assignments that covers [0, Layers) of the
// model, end to end, using only nodes for which usable returns true,
// preferring to stay within one replica (lowest first, rotated by
// prefer). It returns nil when no such chain exists.
func (m *Map) Route(usable func(node string) bool, prefer int) []Assignment {
	if m.Model == nil {
		return nil
	}
	var replicas []int
	for _, a := range m.Assignments {
		if !slices.Contains(replicas, a.Replica) {
			replicas = append(replicas, a.Replica)
		}
	}
	slices.Sort(replicas)
	if len(replicas) == 0 {
		return nil
	}
	start := ((prefer % len(replicas)) + len(replicas)) % len(replicas)
	for k := range replicas {
		r := replicas[(start+k)%len(replicas)]
		if route := m.chain(usable, r); route != nil {
			return route
		}
	}
	return nil
}

// chain walks from layer 0 to the last, at each layer taking an
// assignment of replica r where one starts there, else any other.
func (m *Map) chain(usable func(string) bool, r int) []Assignment {
	var route []Assignment
	at := 0
	for at < m.Model.Layers {
		best := -1
		for i, a := range m.Assignments {
			if a.Lo != at || a.Hi <= a.Lo || !usable(a.Node) {
				continue
			}
			if best < 0 || (a.Replica == r && m.Assignments[best].Replica != r) {
				best = i
			}
		}
		if best < 0 {
			return nil
		}
		route = append(route, m.Assignments[best])
		at = m.Assignments[best].Hi
	}
	return route
}

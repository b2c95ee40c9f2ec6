package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

const fsmDigest = "sha256:fsm-model"

var fsmSecret = []byte("0123456789abcdef") // 16 bytes: the shortest secret allowed

// fsmModel is a 1000-byte model: 10 layers of 100 bytes.
func fsmModel(digest string) *Model {
	return &Model{Name: "m", Digest: digest, Layers: 10, LayerBytes: []int64{100, 100, 100, 100, 100, 100, 100, 100, 100, 100}}
}

// fsmNode returns a node that has the test model and offers capacity.
func fsmNode(id string, capacity int64) *Node {
	return &Node{ID: id, Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}, API: "127.0.0.1:8080", Model: fsmDigest,
		Resources: Resources{Capacity: capacity, CPUCores: 8, GPUs: []GPU{{Index: 0, Name: "H100", MemoryTotal: 80 << 30}}}}
}

// Shorthands for the commands of the scripts.
func cmdInit(cluster string) *Command {
	return &Command{Type: CmdInit, Cluster: cluster, Secret: fsmSecret}
}
func cmdAdd(n *Node) *Command { return &Command{Type: CmdAddNode, Node: n} }
func cmdState(id string, s NodeState, epoch uint64) *Command {
	return &Command{Type: CmdSetState, NodeID: id, State: s, Epoch: epoch}
}
func cmdRegister(digest string) *Command {
	return &Command{Type: CmdRegisterModel, Model: fsmModel(digest)}
}
func cmdRemove(id string) *Command { return &Command{Type: CmdRemoveNode, NodeID: id} }

// fsmT0 is the scripts' clock.
var fsmT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// cmdToken records token id, issued at issued and valid for ttl.
func cmdToken(id string, issued time.Time, ttl time.Duration) *Command {
	return &Command{Type: CmdAddToken, Token: &TokenInfo{ID: id, Issued: issued, Expires: issued.Add(ttl), Note: "for " + id}}
}

// allCommands holds one valid command of every CommandType.
func allCommands() []*Command {
	return []*Command{
		cmdInit("c1"),
		cmdAdd(fsmNode("n1", 600)),
		cmdState("n1", StateServing, 7),
		{Type: CmdSetVoter, NodeID: "n1", Voter: true},
		{Type: CmdSetAddrs, NodeID: "n1", Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}, Reach: ReachPrivate},
		cmdRemove("n1"),
		cmdRegister(fsmDigest),
		cmdToken("t1", fsmT0, time.Hour),
		{Type: CmdRevokeToken, TokenID: "t1"},
		{Type: CmdRevokeNode, NodeID: "n1", Reason: "lost laptop", Time: fsmT0},
		{Type: CmdLiftRevocation, NodeID: "n1"},
	}
}

func mustEncode(t testing.TB, c *Command) []byte {
	t.Helper()
	b, err := c.Encode()
	if err != nil {
		t.Fatalf("Encode(%+v): %v", c, err)
	}
	return b
}

// withVersion prefixes a JSON body with the command version byte.
func withVersion(s string) []byte { return append([]byte{CommandVersion}, s...) }

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range allCommands() {
		t.Run(string(c.Type), func(t *testing.T) {
			b := mustEncode(t, c)
			if b[0] != CommandVersion {
				t.Fatalf("version byte = %d, want %d", b[0], CommandVersion)
			}
			got, err := DecodeCommand(b)
			if err != nil {
				t.Fatalf("DecodeCommand: %v", err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Errorf("DecodeCommand(Encode(c)) = %+v, want %+v", got, c)
			}
		})
	}
}

func TestDecodeCommandRefuses(t *testing.T) {
	enc := func(c *Command) []byte {
		b, err := c.Encode() // Encode does not validate
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	valid := mustEncode(t, cmdInit("c1"))
	wrongVersion := append([]byte{CommandVersion + 1}, valid[1:]...)
	negLayer := fsmModel(fsmDigest)
	negLayer.LayerBytes[3] = -1
	negEmbed := fsmModel(fsmDigest)
	negEmbed.EmbedBytes = -1
	negHead := fsmModel(fsmDigest)
	negHead.HeadBytes = -1
	short := fsmModel(fsmDigest)
	short.LayerBytes = short.LayerBytes[:9]
	zero := &Model{Digest: fsmDigest}
	noDigest := fsmModel("")
	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"no version byte", []byte(`{"type":"init"}`)},
		{"wrong version", wrongVersion},
		{"version only", []byte{CommandVersion}},
		{"bad JSON", withVersion(`{"type":`)},
		{"JSON array", withVersion(`[]`)},
		{"trailing garbage", append(slicesClone(valid), '}')},
		{"wrong field type", withVersion(`{"type":"node.voter","node_id":5}`)},
		{"unknown type", withVersion(`{"type":"node.explode","node_id":"n1"}`)},
		{"no type", withVersion(`{"node_id":"n1"}`)},
		{"init no cluster", enc(&Command{Type: CmdInit, Secret: fsmSecret})},
		{"init short secret", enc(&Command{Type: CmdInit, Cluster: "c1", Secret: fsmSecret[:15]})},
		{"init no secret", enc(&Command{Type: CmdInit, Cluster: "c1"})},
		{"add no node", enc(&Command{Type: CmdAddNode})},
		{"add node without ID", enc(cmdAdd(&Node{Addrs: []string{"x"}}))},
		{"add negative capacity", enc(cmdAdd(fsmNode("n1", -1)))},
		{"state missing node ID", enc(cmdState("", StateServing, 1))},
		{"state empty", enc(cmdState("n1", "", 0))},
		{"state bad", enc(cmdState("n1", "asleep", 0))},
		{"voter missing node ID", enc(&Command{Type: CmdSetVoter, Voter: true})},
		{"remove missing node ID", enc(&Command{Type: CmdRemoveNode})},
		{"addrs missing node ID", enc(&Command{Type: CmdSetAddrs, Reach: ReachPublic})},
		{"addrs bad reachability", enc(&Command{Type: CmdSetAddrs, NodeID: "n1", Reach: "everywhere"})},
		{"register no model", enc(&Command{Type: CmdRegisterModel})},
		{"register no digest", enc(&Command{Type: CmdRegisterModel, Model: noDigest})},
		{"register zero layers", enc(&Command{Type: CmdRegisterModel, Model: zero})},
		{"register without layer bytes", enc(&Command{Type: CmdRegisterModel, Model: &Model{Digest: fsmDigest, Layers: 10}})},
		{"register short layer bytes", enc(&Command{Type: CmdRegisterModel, Model: short})},
		{"register negative layer bytes", enc(&Command{Type: CmdRegisterModel, Model: negLayer})},
		{"register negative embed bytes", enc(&Command{Type: CmdRegisterModel, Model: negEmbed})},
		{"register negative head bytes", enc(&Command{Type: CmdRegisterModel, Model: negHead})},
		{"token no record", enc(&Command{Type: CmdAddToken})},
		{"token no ID", enc(cmdToken("", fsmT0, time.Hour))},
		{"token long ID", enc(cmdToken(strings.Repeat("a", 65), fsmT0, time.Hour))},
		{"token not issued", enc(cmdToken("t1", time.Time{}, time.Hour))},
		{"token expires when issued", enc(cmdToken("t1", fsmT0, 0))},
		{"token expired before issued", enc(cmdToken("t1", fsmT0, -time.Hour))},
		{"token long note", enc(&Command{Type: CmdAddToken, Token: &TokenInfo{ID: "t1", Issued: fsmT0, Expires: fsmT0.Add(time.Hour), Note: strings.Repeat("n", 257)}})},
		{"token revoke no ID", enc(&Command{Type: CmdRevokeToken})},
		{"revoke no node", enc(&Command{Type: CmdRevokeNode, Time: fsmT0})},
		{"revoke no time", enc(&Command{Type: CmdRevokeNode, NodeID: "n1"})},
		{"revoke long reason", enc(&Command{Type: CmdRevokeNode, NodeID: "n1", Time: fsmT0, Reason: strings.Repeat("r", 257)})},
		{"revoke long author", enc(&Command{Type: CmdRevokeNode, NodeID: "n1", Time: fsmT0, By: strings.Repeat("b", 257)})},
		{"token long author", enc(&Command{Type: CmdAddToken, Token: &TokenInfo{ID: "t1", Issued: fsmT0, Expires: fsmT0.Add(time.Hour), By: strings.Repeat("b", 257)}})},
		{"lift no node", enc(&Command{Type: CmdLiftRevocation})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := DecodeCommand(tt.b)
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("DecodeCommand(%q) = %+v, %v; want ErrBadCommand", tt.b, c, err)
			}
			if c != nil {
				t.Errorf("DecodeCommand returned %+v with its error", c)
			}
		})
	}
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range allCommands() {
		f.Add(mustEncode(f, c))
	}
	f.Add([]byte{})
	f.Add([]byte{CommandVersion})
	f.Add(withVersion(`{"type":"node.add","node":{"id":"n","addrs":[],"resources":{"gpus":[]}}}`))
	f.Add(withVersion(`{"type":"model.register","model":{"digest":"d","layers":1,"layer_bytes":[-1]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("error %v does not wrap ErrBadCommand", err)
			}
			if c != nil {
				t.Fatalf("DecodeCommand returned %+v with its error", c)
			}
			return
		}
		// A decoded command is valid: it re-encodes, decodes again, and
		// from then on the encoding is a fixed point.
		enc, err := c.Encode()
		if err != nil {
			t.Fatalf("Encode(%+v): %v", c, err)
		}
		c2, err := DecodeCommand(enc)
		if err != nil {
			t.Fatalf("DecodeCommand(Encode(%+v)) = %v", c, err)
		}
		enc2, err := c2.Encode()
		if err != nil {
			t.Fatalf("Encode(%+v): %v", c2, err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("re-encoding changed the command:\n%s\n%s", enc, enc2)
		}
		c3, err := DecodeCommand(enc2)
		if err != nil || !reflect.DeepEqual(c2, c3) {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", c2, c3, err)
		}
		// Applying it to an empty map or to a populated one must not panic.
		NewFSM().Apply(&raft.Log{Type: raft.LogCommand, Index: 1, Data: enc})
		scriptFSM(t).Apply(&raft.Log{Type: raft.LogCommand, Index: 100, Data: enc})
	})
}

// applyCmd applies c to f at index idx and returns the command's error.
func applyCmd(t testing.TB, f *FSM, idx uint64, c *Command) error {
	t.Helper()
	r, ok := f.Apply(&raft.Log{Type: raft.LogCommand, Index: idx, Data: mustEncode(t, c)}).(ApplyResult)
	if !ok {
		t.Fatalf("Apply returned a %T, want ApplyResult", r)
	}
	return r.Err
}

// scriptFSM returns an FSM with a cluster, the model and three nodes
// forming two replicas, every node serving.
func scriptFSM(t testing.TB) *FSM {
	t.Helper()
	f := NewFSM()
	for i, c := range []*Command{
		cmdInit("c1"), cmdRegister(fsmDigest),
		cmdAdd(fsmNode("n1", 600)), cmdAdd(fsmNode("n2", 600)), cmdAdd(fsmNode("n3", 1000)),
		cmdState("n1", StateServing, 3), cmdState("n2", StateServing, 3), cmdState("n3", StateServing, 3),
	} {
		if err := applyCmd(t, f, uint64(i+1), c); err != nil {
			t.Fatalf("script command %d (%s): %v", i, c.Type, err)
		}
	}
	return f
}

// fmtAssignments formats assignments as "r0 n1:0-6@1, r0 n2:6-10@2".
func fmtAssignments(as []Assignment) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = fmt.Sprintf("r%d %s@%d", a.Replica, a, a.Epoch)
		if a.Model != fsmDigest {
			s[i] += " model " + a.Model
		}
	}
	return strings.Join(s, ", ")
}

func mapJSON(t testing.TB, m *Map) string {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("marshal map: %v", err)
	}
	return string(b)
}

// fsmStep is one command of a script and what the map looks like after.
type fsmStep struct {
	cmd     *Command
	wantErr error // nil: the command is accepted
	// unchanged: the map is as before but for Index.
	unchanged bool
	cluster   string
	assign    string               // fmtAssignments of the assignments
	epoch     uint64               // the map's epoch
	states    map[string]NodeState // the states of exactly these nodes
	check     func(t *testing.T, m *Map)
}

func TestFSMScript(t *testing.T) {
	steps := []fsmStep{
		{cmd: cmdInit("c1"), cluster: "c1", states: map[string]NodeState{}},
		// Only the first init counts.
		{cmd: &Command{Type: CmdInit, Cluster: "c2", Secret: []byte("another secret, longer")}, cluster: "c1", states: map[string]NodeState{},
			check: func(t *testing.T, m *Map) {
				if !bytes.Equal(m.Secret, fsmSecret) {
					t.Errorf("secret = %q, want the first %q", m.Secret, fsmSecret)
				}
			}},
		// A model and no nodes: no plan, no epoch.
		{cmd: cmdRegister(fsmDigest), cluster: "c1", states: map[string]NodeState{},
			check: func(t *testing.T, m *Map) {
				if m.Model == nil || m.Model.Digest != fsmDigest || m.Model.TotalBytes() != 1000 {
					t.Errorf("model = %+v, want %s", m.Model, fsmDigest)
				}
			}},
		// One node of 600 bytes cannot hold the model: a partial plan.
		{cmd: cmdAdd(fsmNode("n1", 600)), cluster: "c1", assign: "r0 n1:0-6@1", epoch: 1,
			states: map[string]NodeState{"n1": StateLoading},
			check: func(t *testing.T, m *Map) {
				if n := m.Nodes["n1"]; n.Joined != 4 || n.Voter || n.API != "127.0.0.1:8080" || len(n.Resources.GPUs) != 1 {
					t.Errorf("n1 = %+v, want joined at 4, not a voter, with its API and GPU", n)
				}
				if m.Covered() {
					t.Error("Covered with 600 of 1000 bytes")
				}
			}},
		// A second one completes replica 0; n1 keeps its assignment and epoch.
		{cmd: cmdAdd(fsmNode("n2", 600)), cluster: "c1", assign: "r0 n1:0-6@1, r0 n2:6-10@2", epoch: 2,
			states: map[string]NodeState{"n1": StateLoading, "n2": StateLoading},
			check: func(t *testing.T, m *Map) {
				if !m.Covered() {
					t.Errorf("not covered; uncovered %v", m.Uncovered())
				}
			}},
		// A node that holds the whole model is a second replica.
		{cmd: cmdAdd(fsmNode("n3", 1000)), cluster: "c1", assign: "r0 n1:0-6@1, r0 n2:6-10@2, r1 n3:0-10@3", epoch: 3,
			states: map[string]NodeState{"n1": StateLoading, "n2": StateLoading, "n3": StateLoading}},
		// n1 loaded its epoch-1 assignment: serving.
		{cmd: cmdState("n1", StateServing, 1), cluster: "c1", assign: "r0 n1:0-6@1, r0 n2:6-10@2, r1 n3:0-10@3", epoch: 3,
			states: map[string]NodeState{"n1": StateServing, "n2": StateLoading, "n3": StateLoading}},
		// n2 reports serving an epoch older than its assignment: ignored.
		{cmd: cmdState("n2", StateServing, 1), unchanged: true},
		// With the right epoch it is accepted; a newer one too.
		{cmd: cmdState("n2", StateServing, 2), cluster: "c1", assign: "r0 n1:0-6@1, r0 n2:6-10@2, r1 n3:0-10@3", epoch: 3,
			states: map[string]NodeState{"n1": StateServing, "n2": StateServing, "n3": StateLoading}},
		{cmd: cmdState("n3", StateServing, 9), cluster: "c1", assign: "r0 n1:0-6@1, r0 n2:6-10@2, r1 n3:0-10@3", epoch: 3,
			states: map[string]NodeState{"n1": StateServing, "n2": StateServing, "n3": StateServing}},
		// The same state again changes nothing.
		{cmd: cmdState("n3", StateServing, 3), unchanged: true},
		// A rejoin keeps the seniority and the assignment.
		{cmd: cmdAdd(&Node{ID: "n1", Addrs: []string{"/ip4/10.0.0.1/tcp/1"}, Model: fsmDigest, State: StateServing, Resources: Resources{Capacity: 600}}),
			cluster: "c1", assign: "r0 n1:0-6@1, r0 n2:6-10@2, r1 n3:0-10@3", epoch: 3,
			states: map[string]NodeState{"n1": StateServing, "n2": StateServing, "n3": StateServing},
			check: func(t *testing.T, m *Map) {
				if n := m.Nodes["n1"]; n.Joined != 4 || n.Addrs[0] != "/ip4/10.0.0.1/tcp/1" {
					t.Errorf("rejoined n1 = %+v, want joined 4 and the new address", n)
				}
			}},
		// n2 dies: replica 0 cannot be repaired (n3 is in replica 1), so
		// n1 and n2 lose their assignments and the epoch grows.
		{cmd: cmdState("n2", StateDead, 0), cluster: "c1", assign: "r1 n3:0-10@3", epoch: 4,
			states: map[string]NodeState{"n1": StateServing, "n2": StateDead, "n3": StateServing},
			check: func(t *testing.T, m *Map) {
				if _, ok := m.AssignmentOf("n2"); ok {
					t.Error("dead n2 kept an assignment")
				}
			}},
		// Removing a node without an assignment: no new plan.
		{cmd: cmdRemove("n2"), cluster: "c1", assign: "r1 n3:0-10@3", epoch: 4,
			states: map[string]NodeState{"n1": StateServing, "n3": StateServing}},
		// Removing it again is a no-op.
		{cmd: cmdRemove("n2"), unchanged: true},
		// n4 and the spare n1 form a new replica 0: n1's assignment
		// changed, so the serving n1 goes to loading.
		{cmd: cmdAdd(fsmNode("n4", 400)), cluster: "c1", assign: "r0 n1:0-6@5, r0 n4:6-10@5, r1 n3:0-10@3", epoch: 5,
			states: map[string]NodeState{"n1": StateLoading, "n3": StateServing, "n4": StateLoading}},
		// Voters are recorded.
		{cmd: &Command{Type: CmdSetVoter, NodeID: "n3", Voter: true}, cluster: "c1", assign: "r0 n1:0-6@5, r0 n4:6-10@5, r1 n3:0-10@3", epoch: 5,
			states: map[string]NodeState{"n1": StateLoading, "n3": StateServing, "n4": StateLoading},
			check: func(t *testing.T, m *Map) {
				if !m.Nodes["n3"].Voter || m.Nodes["n1"].Voter {
					t.Errorf("voters: n3 %v, n1 %v; want true, false", m.Nodes["n3"].Voter, m.Nodes["n1"].Voter)
				}
			}},
		// Addresses and reachability are recorded, and move nothing.
		{cmd: &Command{Type: CmdSetAddrs, NodeID: "n3", Addrs: []string{"/ip4/10.0.0.3/tcp/1"}, Reach: ReachPrivate}, cluster: "c1",
			assign: "r0 n1:0-6@5, r0 n4:6-10@5, r1 n3:0-10@3", epoch: 5,
			states: map[string]NodeState{"n1": StateLoading, "n3": StateServing, "n4": StateLoading},
			check: func(t *testing.T, m *Map) {
				if n := m.Nodes["n3"]; !slices.Equal(n.Addrs, []string{"/ip4/10.0.0.3/tcp/1"}) || n.Reach != ReachPrivate {
					t.Errorf("n3 addrs %v, reach %q", n.Addrs, n.Reach)
				}
			}},
		// Removing n3 repairs nothing (replica 1 has no spare) and drops it.
		{cmd: cmdRemove("n3"), cluster: "c1", assign: "r0 n1:0-6@5, r0 n4:6-10@5", epoch: 6,
			states: map[string]NodeState{"n1": StateLoading, "n4": StateLoading}},
		// A draining node leaves its layers.
		{cmd: cmdState("n4", StateDraining, 0), cluster: "c1", assign: "r0 n1:0-6@5", epoch: 7,
			states: map[string]NodeState{"n1": StateLoading, "n4": StateDraining}},
		// Another model is refused; the same one again is a no-op.
		{cmd: cmdRegister("sha256:other"), wantErr: ErrModelMismatch, unchanged: true},
		{cmd: cmdRegister(fsmDigest), unchanged: true},
		// Commands on an unknown node.
		{cmd: cmdState("ghost", StateServing, 1), wantErr: ErrUnknownNode, unchanged: true},
		{cmd: &Command{Type: CmdSetVoter, NodeID: "ghost", Voter: true}, wantErr: ErrUnknownNode, unchanged: true},
		{cmd: &Command{Type: CmdSetAddrs, NodeID: "ghost"}, wantErr: ErrUnknownNode, unchanged: true},
	}

	f := NewFSM()
	for i, s := range steps {
		idx := uint64(i + 1)
		name := fmt.Sprintf("%d_%s", idx, s.cmd.Type)
		before := f.Map()
		changed := f.Changed()
		err := applyCmd(t, f, idx, s.cmd)
		if !errors.Is(err, s.wantErr) || (err != nil && s.wantErr == nil) {
			t.Fatalf("step %s: Apply = %v, want %v", name, err, s.wantErr)
		}
		select {
		case <-changed:
		default:
			t.Fatalf("step %s: Changed() not closed by Apply", name)
		}
		m := f.Map()
		if m.Index != idx {
			t.Errorf("step %s: Index = %d, want %d", name, m.Index, idx)
		}
		if s.unchanged {
			before.Index = idx
			if got, want := mapJSON(t, m), mapJSON(t, before); got != want {
				t.Fatalf("step %s: map changed:\n got %s\nwant %s", name, got, want)
			}
			continue
		}
		if m.Cluster != s.cluster {
			t.Errorf("step %s: cluster = %q, want %q", name, m.Cluster, s.cluster)
		}
		if got := fmtAssignments(m.Assignments); got != s.assign {
			t.Errorf("step %s: assignments = %q, want %q", name, got, s.assign)
		}
		if m.Epoch != s.epoch {
			t.Errorf("step %s: epoch = %d, want %d", name, m.Epoch, s.epoch)
		}
		got := map[string]NodeState{}
		for id, n := range m.Nodes {
			got[id] = n.State
			if n.ID != id {
				t.Errorf("step %s: node %q has ID %q", name, id, n.ID)
			}
		}
		if !reflect.DeepEqual(got, s.states) {
			t.Errorf("step %s: states = %v, want %v", name, got, s.states)
		}
		if s.check != nil {
			s.check(t, m)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

func TestFSMApplyIgnoresAndRefuses(t *testing.T) {
	tests := []struct {
		name    string
		log     *raft.Log
		wantErr error
		changed bool
	}{
		{"not a command", &raft.Log{Type: raft.LogNoop, Index: 50}, nil, false},
		{"configuration", &raft.Log{Type: raft.LogConfiguration, Index: 50, Data: []byte("junk")}, nil, false},
		{"malformed", &raft.Log{Type: raft.LogCommand, Index: 50, Data: []byte("junk")}, ErrBadCommand, false},
		{"invalid", &raft.Log{Type: raft.LogCommand, Index: 50, Data: withVersion(`{"type":"node.state","node_id":"n1","state":"asleep"}`)}, ErrBadCommand, false},
		{"unknown node", &raft.Log{Type: raft.LogCommand, Index: 50, Data: mustEncode(t, cmdState("ghost", StateDead, 0))}, ErrUnknownNode, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := scriptFSM(t)
			before := mapJSON(t, f.Map())
			ch := f.Changed()
			r, ok := f.Apply(tt.log).(ApplyResult)
			if !ok || !errors.Is(r.Err, tt.wantErr) || (r.Err != nil && tt.wantErr == nil) {
				t.Fatalf("Apply = %#v, want ApplyResult{%v}", r, tt.wantErr)
			}
			m := f.Map()
			if tt.changed {
				m.Index = 8 // only the index moved
			}
			if got := mapJSON(t, m); got != before {
				t.Errorf("map changed:\n got %s\nwant %s", got, before)
			}
			select {
			case <-ch:
				if !tt.changed {
					t.Error("Changed() closed though nothing was applied")
				}
			default:
				if tt.changed {
					t.Error("Changed() not closed")
				}
			}
		})
	}
}

func TestFSMMapIsACopy(t *testing.T) {
	f := scriptFSM(t)
	want := mapJSON(t, f.Map())
	m := f.Map()
	m.Cluster = "x"
	m.Secret[0] ^= 0xff
	m.Nodes["n1"].State = StateDead
	m.Nodes["n1"].Addrs[0] = "changed"
	m.Nodes["n1"].Resources.GPUs[0].Name = "changed"
	m.Nodes["zz"] = &Node{ID: "zz"}
	delete(m.Nodes, "n2")
	m.Model.LayerBytes[0] = 12345
	m.Model.Name = "changed"
	m.Assignments[0].Node = "changed"
	m.Epoch = 99
	if got := mapJSON(t, f.Map()); got != want {
		t.Errorf("mutating the copy changed the FSM:\n got %s\nwant %s", got, want)
	}
}

// bufferSink is a raft.SnapshotSink writing to memory.
type bufferSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *bufferSink) ID() string    { return "test" }
func (s *bufferSink) Cancel() error { s.cancelled = true; return nil }
func (s *bufferSink) Close() error  { s.closed = true; return nil }

// snapshotBytes returns the snapshot f persists.
func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	var sink bufferSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("Persist left the sink closed=%v cancelled=%v, want closed", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

func TestFSMSnapshotRestore(t *testing.T) {
	f := scriptFSM(t)
	want := mapJSON(t, f.Map())
	b := snapshotBytes(t, f)
	// Changes after the snapshot are not in it.
	if err := applyCmd(t, f, 9, cmdRemove("n3")); err != nil {
		t.Fatal(err)
	}

	g := NewFSM()
	ch := g.Changed()
	if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := mapJSON(t, g.Map()); got != want {
		t.Errorf("restored map:\n got %s\nwant %s", got, want)
	}
	select {
	case <-ch:
	default:
		t.Error("Changed() not closed by Restore")
	}
	// Restore replaces a map, and the restored FSM goes on as the
	// original would.
	if err := f.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatalf("Restore over a map: %v", err)
	}
	if got := mapJSON(t, f.Map()); got != want {
		t.Errorf("map restored over another:\n got %s\nwant %s", got, want)
	}
	for _, h := range []*FSM{f, g} {
		if err := applyCmd(t, h, 9, cmdState("n1", StateDead, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := mapJSON(t, f.Map()), mapJSON(t, g.Map()); a != b {
		t.Errorf("after one more command:\n%s\n%s", a, b)
	}
	// An empty map round-trips too.
	e := NewFSM()
	h := scriptFSM(t)
	if err := h.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, e)))); err != nil {
		t.Fatalf("Restore empty: %v", err)
	}
	if got, want := mapJSON(t, h.Map()), mapJSON(t, e.Map()); got != want {
		t.Errorf("restored empty map = %s, want %s", got, want)
	}
}

// failingSink fails every write.
type failingSink struct{ bufferSink }

func (s *failingSink) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestFSMSnapshotPersistFails(t *testing.T) {
	snap, err := scriptFSM(t).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink failingSink
	if err := snap.Persist(&sink); err == nil || !sink.cancelled || sink.closed {
		t.Errorf("Persist = %v, cancelled %v, closed %v; want an error and the sink cancelled", err, sink.cancelled, sink.closed)
	}
}

// errReader fails after its data.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("read failed") }

func TestFSMRestoreRefuses(t *testing.T) {
	good := snapshotBytes(t, scriptFSM(t))
	body := func(s string) []byte { return withVersion(s) }
	wrongVersion := append([]byte{CommandVersion + 1}, good[1:]...)
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"garbage", []byte("garbage")},
		{"wrong version", wrongVersion},
		{"version only", []byte{CommandVersion}},
		{"truncated", good[:len(good)/2]},
		{"not an object", body(`[1,2]`)},
		{"node ID mismatch", body(`{"cluster":"c","nodes":{"n1":{"id":"n2","state":"serving"}}}`)},
		{"node without ID", body(`{"nodes":{"n1":{"state":"serving"}}}`)},
		{"null node", body(`{"nodes":{"n1":null}}`)},
		{"model layers", body(`{"nodes":{},"model":{"digest":"d","layers":3,"layer_bytes":[1,2]}}`)},
		{"wrong field type", body(`{"epoch":"one"}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := scriptFSM(t)
			want := mapJSON(t, f.Map())
			ch := f.Changed()
			if err := f.Restore(io.NopCloser(bytes.NewReader(tt.b))); !errors.Is(err, ErrBadCommand) {
				t.Errorf("Restore = %v, want ErrBadCommand", err)
			}
			if got := mapJSON(t, f.Map()); got != want {
				t.Errorf("map changed by a refused restore:\n got %s\nwant %s", got, want)
			}
			select {
			case <-ch:
				t.Error("Changed() closed by a refused restore")
			default:
			}
		})
	}
	t.Run("read error", func(t *testing.T) {
		f := scriptFSM(t)
		want := mapJSON(t, f.Map())
		if err := f.Restore(io.NopCloser(errReader{})); err == nil {
			t.Error("Restore of a failing reader succeeded")
		}
		if got := mapJSON(t, f.Map()); got != want {
			t.Errorf("map changed by a failed restore")
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(snapshotBytes(f, scriptFSM(f)))
	f.Add(snapshotBytes(f, NewFSM()))
	f.Add([]byte{})
	f.Add([]byte{CommandVersion})
	f.Add(withVersion(`null`))
	f.Add(withVersion(`{"nodes":null,"model":{"layers":0}}`))
	f.Add(withVersion(`{"nodes":{"a":{"id":"a","state":"serving","model":"d","resources":{"capacity":5}}},"model":{"digest":"d","layers":2,"layer_bytes":[1,2]},"assignments":[{"model":"d","lo":-1,"hi":9,"node":"a"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeSnapshot(b)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("error %v does not wrap ErrBadCommand", err)
			}
			return
		}
		if m.Nodes == nil {
			t.Fatal("decoded map has nil Nodes")
		}
		// What a restored map goes through must not panic either.
		c := m.Clone()
		c.NodeIDs()
		c.Route(func(string) bool { return true }, 1)
		replanMap(c)
		if err := apply(c, cmdAdd(fsmNode("fuzz", 1000)), c.Index+1); err != nil {
			t.Fatalf("apply add to a restored map: %v", err)
		}
	})
}

// fsmLog is a log mixing accepted, ignored and refused commands.
func fsmLog(t testing.TB) []*raft.Log {
	cmds := []*Command{
		cmdInit("c1"), cmdAdd(fsmNode("n1", 300)), cmdRegister(fsmDigest),
		cmdAdd(fsmNode("n2", 700)), cmdAdd(fsmNode("n3", 500)), cmdAdd(fsmNode("n4", 500)),
		cmdAdd(fsmNode("n5", 1000)), cmdState("n2", StateServing, 1), cmdState("n5", StateServing, 5),
		cmdState("ghost", StateServing, 1), cmdRegister("sha256:other"),
		cmdState("n3", StateDead, 0), cmdRemove("n4"), cmdAdd(fsmNode("n6", 600)),
		{Type: CmdSetVoter, NodeID: "n6", Voter: true}, cmdState("n5", StateDraining, 0),
		cmdAdd(fsmNode("n3", 500)),
	}
	var logs []*raft.Log
	for i, c := range cmds {
		logs = append(logs, &raft.Log{Type: raft.LogCommand, Index: uint64(i + 1), Data: mustEncode(t, c)})
	}
	logs = append(logs, &raft.Log{Type: raft.LogCommand, Index: uint64(len(logs) + 1), Data: []byte("junk")})
	return logs
}

func TestFSMDeterministic(t *testing.T) {
	logs := fsmLog(t)
	a, b := NewFSM(), NewFSM()
	for i, l := range logs {
		ra, rb := a.Apply(l).(ApplyResult), b.Apply(l).(ApplyResult)
		if (ra.Err == nil) != (rb.Err == nil) {
			t.Fatalf("entry %d: results %v and %v", i, ra.Err, rb.Err)
		}
		if ja, jb := mapJSON(t, a.Map()), mapJSON(t, b.Map()); ja != jb {
			t.Fatalf("entry %d: maps differ:\n%s\n%s", i, ja, jb)
		}
	}
	m := a.Map()
	if len(m.Assignments) == 0 || m.Epoch == 0 {
		t.Errorf("the log planned nothing: %s", mapJSON(t, m))
	}
	// A member that restores a snapshot taken midway and applies the rest
	// gets the same map too.
	c := NewFSM()
	for _, l := range logs[:9] {
		c.Apply(l)
	}
	d := NewFSM()
	if err := d.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, c)))); err != nil {
		t.Fatal(err)
	}
	for _, l := range logs[9:] {
		d.Apply(l)
	}
	if ja, jd := mapJSON(t, a.Map()), mapJSON(t, d.Map()); ja != jd {
		t.Errorf("snapshot + rest differs from the whole log:\n%s\n%s", ja, jd)
	}
}

// TestDecodeSnapshotAssignmentRange: a snapshot whose assignments fall
// outside the model's layers (found by the fuzzer: Uncovered then indexed
// its coverage by a.Lo = -1) is refused.
func TestDecodeSnapshotAssignmentRange(t *testing.T) {
	b := withVersion(`{"nodes":{},"model":{"digest":"d","layers":2,"layer_bytes":[1,2]},"assignments":[{"model":"d","lo":-1,"hi":1,"node":"a"}]}`)
	m, err := decodeSnapshot(b)
	if err != nil {
		if !errors.Is(err, ErrBadCommand) {
			t.Fatalf("decodeSnapshot = %v, want ErrBadCommand", err)
		}
		return // refused: fixed
	}
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("decodeSnapshot accepted assignment lo -1, and Uncovered panics: %v", r)
		}
	}()
	m.Uncovered()
}

// TestFSMDeadSince: the map keeps when a node was marked dead, by the
// leader's clock in the command, until it lives again.
func TestFSMDeadSince(t *testing.T) {
	f := scriptFSM(t)
	dead := func(at time.Time) *Command {
		c := cmdState("n2", StateDead, 0)
		c.Time = at
		return c
	}
	for i, s := range []struct {
		cmd  *Command
		want time.Time
	}{
		{dead(fsmT0), fsmT0},
		{dead(fsmT0.Add(time.Hour)), fsmT0}, // still dead since then
		{cmdState("n2", StateJoining, 0), time.Time{}},
		{dead(time.Time{}), time.Time{}}, // a command without a time
		{cmdState("n2", StateJoining, 0), time.Time{}},
		{dead(fsmT0.Add(2 * time.Hour)), fsmT0.Add(2 * time.Hour)},
	} {
		if err := applyCmd(t, f, uint64(100+i), s.cmd); err != nil {
			t.Fatal(err)
		}
		if got := f.Map().Nodes["n2"].DeadSince; !got.Equal(s.want) {
			t.Errorf("step %d (%s): dead since %v, want %v", i, s.cmd.State, got, s.want)
		}
	}
}

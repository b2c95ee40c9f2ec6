package cluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

const planDigest = "sha256:model"

// planModel returns a model of layers layers of size bytes each.
func planModel(layers int, size, embed, head int64) *Model {
	lb := make([]int64, layers)
	for i := range lb {
		lb[i] = size
	}
	return &Model{Name: "m", Digest: planDigest, Layers: layers, LayerBytes: lb, EmbedBytes: embed, HeadBytes: head}
}

// planNodeOf returns an eligible-looking node; state and model may be
// overridden by the caller.
func planNodeOf(id string, capacity int64, joined uint64, state NodeState) *Node {
	return &Node{ID: id, State: state, Joined: joined, Model: planDigest, Resources: Resources{Capacity: capacity}}
}

// planMap builds a map from nodes, model, previous assignments and epoch.
func planMap(md *Model, nodes []*Node, prev []Assignment, epoch uint64) *Map {
	m := &Map{Nodes: make(map[string]*Node), Model: md, Assignments: slices.Clone(prev), Epoch: epoch}
	for _, n := range nodes {
		m.Nodes[n.ID] = n
	}
	return m
}

// planA is shorthand for an assignment of the test model.
func planA(node string, lo, hi, replica int, epoch uint64) Assignment {
	return Assignment{Model: planDigest, Lo: lo, Hi: hi, Node: node, Replica: replica, Epoch: epoch}
}

// four600 is a 1000-byte model over four nodes of 600 bytes each: two
// replicas of two stages.
func four600() []*Node {
	return []*Node{
		planNodeOf("n1", 600, 1, StateServing),
		planNodeOf("n2", 600, 2, StateServing),
		planNodeOf("n3", 600, 3, StateServing),
		planNodeOf("n4", 600, 4, StateServing),
	}
}

// fourPlan is Plan of four600 at epoch 0.
var fourPlan = []Assignment{
	planA("n1", 0, 6, 0, 1), planA("n2", 6, 10, 0, 1),
	planA("n3", 0, 6, 1, 1), planA("n4", 6, 10, 1, 1),
}

// planWith returns nodes with the node id changed by f.
func planWith(nodes []*Node, id string, f func(*Node)) []*Node {
	for _, n := range nodes {
		if n.ID == id {
			f(n)
		}
	}
	return nodes
}

func TestPlan(t *testing.T) {
	ten := planModel(10, 100, 0, 0) // 1000 bytes
	tests := []struct {
		name    string
		model   *Model
		nodes   []*Node
		prev    []Assignment
		epoch   uint64
		want    []Assignment
		wantErr error
		moves   int // Moves(prev, got); -1 to skip
	}{
		{
			name:  "no model",
			nodes: four600(),
			moves: -1,
		},
		{
			name:  "one big node one stage",
			model: planModel(10, 100, 50, 70),
			nodes: []*Node{planNodeOf("big", 2000, 1, StateJoining)},
			epoch: 4,
			want:  []Assignment{planA("big", 0, 10, 0, 5)},
			moves: 1,
		},
		{
			name:  "four nodes at 60 percent two replicas",
			model: ten,
			nodes: four600(),
			want:  fourPlan,
			moves: 4,
		},
		{
			name:  "embed and head weigh on the end stages",
			model: planModel(10, 100, 200, 300), // 1500 bytes
			nodes: []*Node{planNodeOf("a", 800, 1, StateServing), planNodeOf("b", 800, 2, StateServing)},
			// a: embed 200 + 6 layers; b: 4 layers + head 300 = 700.
			want:  []Assignment{planA("a", 0, 6, 0, 1), planA("b", 6, 10, 0, 1)},
			moves: 2,
		},
		{
			name:  "last stage goes to the smallest node that holds it",
			model: ten,
			nodes: []*Node{
				planNodeOf("a", 700, 1, StateServing), planNodeOf("b", 700, 2, StateServing),
				planNodeOf("c", 300, 3, StateServing), planNodeOf("d", 300, 4, StateServing),
			},
			want: []Assignment{
				planA("a", 0, 7, 0, 1), planA("c", 7, 10, 0, 1),
				planA("b", 0, 7, 1, 1), planA("d", 7, 10, 1, 1),
			},
			moves: 4,
		},
		{
			name:    "nodes too small partial cover",
			model:   ten,
			nodes:   []*Node{planNodeOf("a", 300, 1, StateServing), planNodeOf("b", 350, 2, StateServing)},
			want:    []Assignment{planA("b", 0, 3, 0, 1), planA("a", 3, 6, 0, 1)},
			wantErr: ErrCapacity,
			moves:   2,
		},
		{
			name:    "no eligible node",
			model:   ten,
			nodes:   []*Node{planNodeOf("a", 5000, 1, StateDead)},
			wantErr: ErrCapacity,
			moves:   0,
		},
		{
			name:  "dead draining wrong model and empty nodes excluded",
			model: ten,
			nodes: []*Node{
				planNodeOf("dead", 5000, 1, StateDead),
				planNodeOf("drain", 5000, 2, StateDraining),
				planWith([]*Node{planNodeOf("other", 5000, 3, StateServing)}, "other", func(n *Node) { n.Model = "sha256:other" })[0],
				planNodeOf("empty", 0, 4, StateServing),
				planNodeOf("ok", 1000, 5, StateLoading),
			},
			want:  []Assignment{planA("ok", 0, 10, 0, 1)},
			moves: 1,
		},
		{
			name:  "joining node to a covered cluster moves nothing",
			model: ten,
			nodes: append(four600(), planNodeOf("n5", 600, 5, StateJoining)),
			prev:  fourPlan,
			epoch: 1,
			want:  fourPlan,
			moves: 0,
		},
		{
			name:  "joining node makes a new replica with a spare",
			model: ten,
			nodes: append(four600(), planNodeOf("n5", 400, 5, StateServing), planNodeOf("n6", 600, 6, StateJoining)),
			prev:  fourPlan,
			epoch: 1,
			want:  append(slices.Clone(fourPlan), planA("n6", 0, 6, 2, 2), planA("n5", 6, 10, 2, 2)),
			moves: 2,
		},
		{
			name:  "lost node of replica 0 replaced by a spare",
			model: ten,
			nodes: planWith(append(four600(), planNodeOf("n5", 400, 5, StateServing)), "n2", func(n *Node) { n.State = StateDead }),
			prev:  fourPlan,
			epoch: 1,
			want: []Assignment{
				planA("n1", 0, 6, 0, 1), planA("n5", 6, 10, 0, 2),
				planA("n3", 0, 6, 1, 1), planA("n4", 6, 10, 1, 1),
			},
			moves: 1,
		},
		{
			name:  "gap given to the smallest spare that holds it",
			model: ten,
			nodes: planWith(append(four600(),
				planNodeOf("s9", 900, 5, StateServing), planNodeOf("s4", 450, 6, StateServing), planNodeOf("s5", 500, 7, StateServing)),
				"n2", func(n *Node) { n.State = StateDraining }),
			prev:  fourPlan,
			epoch: 1,
			// The other spares then make replica 2.
			want: []Assignment{
				planA("n1", 0, 6, 0, 1), planA("s4", 6, 10, 0, 2),
				planA("n3", 0, 6, 1, 1), planA("n4", 6, 10, 1, 1),
				planA("s9", 0, 9, 2, 2), planA("s5", 9, 10, 2, 2),
			},
			moves: 3,
		},
		{
			name:  "gap too big for the spares dissolves the replica",
			model: ten,
			nodes: planWith(append(four600(), planNodeOf("s1", 150, 5, StateServing), planNodeOf("s2", 150, 6, StateServing)),
				"n1", func(n *Node) { n.State = StateDead }),
			prev:  fourPlan,
			epoch: 1,
			// s1 and s2 hold [0,2) of the 600-byte gap; n2, freed, cannot
			// make a new replica with them either.
			want:  []Assignment{planA("n3", 0, 6, 1, 1), planA("n4", 6, 10, 1, 1)},
			moves: 0,
		},
		{
			name:  "lost node without spare dissolves that replica",
			model: ten,
			nodes: planWith(four600(), "n2", func(n *Node) { n.State = StateDead }),
			prev:  fourPlan,
			epoch: 1,
			want:  []Assignment{planA("n3", 0, 6, 1, 1), planA("n4", 6, 10, 1, 1)},
			moves: 0,
		},
		{
			name:  "shrunk capacity counts as lost",
			model: ten,
			nodes: planWith(append(four600(), planNodeOf("n5", 600, 5, StateServing)), "n3", func(n *Node) { n.Resources.Capacity = 500 }),
			prev:  fourPlan,
			epoch: 1,
			want: []Assignment{
				planA("n1", 0, 6, 0, 1), planA("n2", 6, 10, 0, 1),
				planA("n5", 0, 6, 1, 2), planA("n4", 6, 10, 1, 1),
			},
			moves: 1,
		},
		{
			name:  "new replicas take the lowest unused numbers",
			model: ten,
			nodes: []*Node{
				planNodeOf("a", 1000, 1, StateServing), planNodeOf("b", 1000, 2, StateServing), planNodeOf("c", 1000, 3, StateServing),
			},
			prev:  []Assignment{planA("b", 0, 10, 1, 3)},
			epoch: 3,
			want:  []Assignment{planA("a", 0, 10, 0, 4), planA("b", 0, 10, 1, 3), planA("c", 0, 10, 2, 4)},
			moves: 2,
		},
		{
			name:  "assignments of another model are dropped",
			model: ten,
			nodes: []*Node{planNodeOf("a", 1000, 1, StateServing)},
			prev:  []Assignment{{Model: "sha256:old", Lo: 0, Hi: 4, Node: "a", Replica: 0, Epoch: 2}},
			epoch: 2,
			want:  []Assignment{planA("a", 0, 10, 0, 3)},
			moves: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := planMap(tt.model, tt.nodes, tt.prev, tt.epoch)
			before := m.Clone()
			got, err := Plan(m)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Plan error = %v, want %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Plan =\n  %v\nwant\n  %v", planFmt(got), planFmt(tt.want))
			}
			if tt.moves >= 0 {
				if n := Moves(tt.prev, got); n != tt.moves {
					t.Errorf("Moves = %d, want %d", n, tt.moves)
				}
			}
			if !planMapsEqual(m, before) {
				t.Errorf("Plan changed its input map")
			}
		})
	}
}

func TestPlanSplitRepair(t *testing.T) {
	// Replica 0 loses n2 ([6,10), 400 bytes); no single spare holds 400,
	// two do together: the biggest takes what it can, the smallest that
	// holds the rest takes the rest.
	nodes := planWith(append(four600(),
		planNodeOf("s1", 150, 5, StateServing), planNodeOf("s2", 250, 6, StateServing), planNodeOf("s3", 300, 7, StateServing)),
		"n2", func(n *Node) { n.State = StateDead })
	got, err := Plan(planMap(planModel(10, 100, 0, 0), nodes, fourPlan, 1))
	if err != nil {
		t.Fatal(err)
	}
	want := []Assignment{
		planA("n1", 0, 6, 0, 1), planA("s3", 6, 9, 0, 2), planA("s1", 9, 10, 0, 2),
		planA("n3", 0, 6, 1, 1), planA("n4", 6, 10, 1, 1),
	}
	if !slices.Equal(got, want) {
		t.Errorf("Plan =\n  %v\nwant\n  %v", planFmt(got), planFmt(want))
	}
}

func TestPlanCapacityError(t *testing.T) {
	m := planMap(planModel(10, 100, 0, 50), []*Node{planNodeOf("a", 300, 1, StateServing)}, nil, 0)
	got, err := Plan(m)
	if !errors.Is(err, ErrCapacity) {
		t.Fatalf("err = %v, want ErrCapacity", err)
	}
	// [3,10) plus the head: 750 bytes missing.
	if !strings.Contains(err.Error(), "750 of 1050 bytes missing") {
		t.Errorf("err = %q, want it to say 750 of 1050 bytes missing", err)
	}
	if want := []Assignment{planA("a", 0, 3, 0, 1)}; !slices.Equal(got, want) {
		t.Errorf("partial cover = %v, want %v", planFmt(got), planFmt(want))
	}
}

func TestPlanBadModel(t *testing.T) {
	tests := []struct {
		name  string
		model *Model
	}{
		{"short layer bytes", &Model{Digest: planDigest, Layers: 3, LayerBytes: []int64{1, 2}}},
		{"negative layer", &Model{Digest: planDigest, Layers: 2, LayerBytes: []int64{1, -2}}},
		{"negative head", &Model{Digest: planDigest, Layers: 1, LayerBytes: []int64{1}, HeadBytes: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Plan(planMap(tt.model, four600(), nil, 0))
			if err == nil || errors.Is(err, ErrCapacity) {
				t.Errorf("err = %v, want a model error", err)
			}
		})
	}
}

func TestMoves(t *testing.T) {
	tests := []struct {
		name       string
		prev, next []Assignment
		want       int
	}{
		{"both empty", nil, nil, 0},
		{"all new", nil, fourPlan, 4},
		{"same", fourPlan, fourPlan, 0},
		{"dropped ones do not count", fourPlan, fourPlan[:2], 0},
		{"replica and epoch ignored", []Assignment{planA("a", 0, 4, 0, 1)}, []Assignment{planA("a", 0, 4, 3, 9)}, 0},
		{"range changed", []Assignment{planA("a", 0, 4, 0, 1)}, []Assignment{planA("a", 0, 5, 0, 1)}, 1},
		{"node changed", []Assignment{planA("a", 0, 4, 0, 1)}, []Assignment{planA("b", 0, 4, 0, 1)}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Moves(tt.prev, tt.next); got != tt.want {
				t.Errorf("Moves = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestPlanProperties checks the invariants of Plan over random clusters.
func TestPlanProperties(t *testing.T) {
	var covered, multi, repaired int
	for seed := range uint64(400) {
		r := rand.New(rand.NewPCG(seed, 0x5eed))
		m := planRandomMap(r)
		name := fmt.Sprintf("seed%d", seed)

		got, err := Plan(m)
		planCheck(t, name, m, got, err)

		// Deterministic: twice on clones, and over a map built in
		// another order.
		again, err2 := Plan(m.Clone())
		if !slices.Equal(got, again) || (err == nil) != (err2 == nil) {
			t.Fatalf("%s: Plan not deterministic on a clone:\n  %v\n  %v", name, planFmt(got), planFmt(again))
		}
		shuffled := planShuffled(r, m)
		if again, _ := Plan(shuffled); !slices.Equal(got, again) {
			t.Fatalf("%s: Plan depends on node order:\n  %v\n  %v", name, planFmt(got), planFmt(again))
		}

		// Stable: re-planning its own plan changes nothing.
		m2 := m.Clone()
		m2.Assignments, m2.Epoch = got, m.Epoch+1
		if again, _ := Plan(m2); !slices.Equal(got, again) {
			t.Fatalf("%s: re-plan of own plan changed it:\n  %v\n  %v", name, planFmt(got), planFmt(again))
		}
		if err != nil {
			continue
		}
		covered++
		if got[len(got)-1].Replica > 0 {
			multi++
		}

		// Join: every previous assignment stays.
		joined := m2.Clone()
		id := "zz-new"
		joined.Nodes[id] = &Node{ID: id, State: StateJoining, Joined: 1 << 40, Model: planDigest,
			Resources: Resources{Capacity: planRandomCap(r, m.Model.TotalBytes())}}
		next, err := Plan(joined)
		planCheck(t, name+"/join", joined, next, err)
		if err != nil {
			t.Fatalf("%s/join: %v after a join to a covered cluster", name, err)
		}
		if n := Moves(next, got); n != 0 {
			t.Fatalf("%s/join: %d previous assignments moved:\n  %v\n  %v", name, n, planFmt(got), planFmt(next))
		}
		for _, a := range got {
			if !slices.Contains(next, a) {
				t.Fatalf("%s/join: assignment %v changed", name, a)
			}
		}

		// Leave: the replicas the dead node was not in stay unchanged.
		if len(got) == 0 {
			continue
		}
		dead := got[r.IntN(len(got))]
		left := m2.Clone()
		left.Nodes[dead.Node].State = StateDead
		next, err = Plan(left)
		planCheck(t, name+"/leave", left, next, err)
		if slices.ContainsFunc(next, func(a Assignment) bool { return a.Replica == dead.Replica && a.Epoch == left.Epoch+1 }) &&
			slices.ContainsFunc(next, func(a Assignment) bool { return a.Replica == dead.Replica && a.Epoch <= left.Epoch }) {
			repaired++
		}
		for _, a := range got {
			if a.Replica != dead.Replica && !slices.Contains(next, a) {
				t.Fatalf("%s/leave: %s died, untouched %v moved:\n  %v\n  %v", name, dead.Node, a, planFmt(got), planFmt(next))
			}
		}
	}
	t.Logf("400 clusters: %d covered, %d with several replicas, %d repaired after a loss", covered, multi, repaired)
}

// planCheck checks the invariants of one plan of m.
func planCheck(t *testing.T, name string, m *Map, got []Assignment, err error) {
	t.Helper()
	md := m.Model
	if err != nil && !errors.Is(err, ErrCapacity) {
		t.Fatalf("%s: unexpected error %v", name, err)
	}
	if !slices.IsSortedFunc(got, func(a, b Assignment) int {
		if a.Replica != b.Replica {
			return a.Replica - b.Replica
		}
		return a.Lo - b.Lo
	}) {
		t.Fatalf("%s: not sorted by (Replica, Lo): %v", name, planFmt(got))
	}
	seen := make(map[string]bool)
	for _, a := range got {
		n := m.Nodes[a.Node]
		switch {
		case n == nil || !n.State.Live() || n.Model != md.Digest || n.Resources.Capacity <= 0:
			t.Fatalf("%s: ineligible node %s assigned", name, a.Node)
		case seen[a.Node]:
			t.Fatalf("%s: node %s assigned twice: %v", name, a.Node, planFmt(got))
		case md.StageBytes(a.Lo, a.Hi) > n.Resources.Capacity:
			t.Fatalf("%s: %v needs %d bytes, node has %d", name, a, md.StageBytes(a.Lo, a.Hi), n.Resources.Capacity)
		case a.Model != md.Digest || a.Epoch > m.Epoch+1 || a.Epoch == 0:
			t.Fatalf("%s: bad model or epoch in %+v (map epoch %d)", name, a, m.Epoch)
		}
		seen[a.Node] = true
	}
	byReplica := make(map[int][]Assignment)
	for _, a := range got {
		byReplica[a.Replica] = append(byReplica[a.Replica], a)
	}
	if err != nil {
		if len(byReplica) > 1 {
			t.Fatalf("%s: error with %d replicas", name, len(byReplica))
		}
		for _, as := range byReplica {
			if !planCovers(as, 0, as[len(as)-1].Hi) || as[len(as)-1].Hi >= md.Layers {
				t.Fatalf("%s: bad partial cover %v", name, planFmt(as))
			}
		}
		return
	}
	if len(got) == 0 {
		t.Fatalf("%s: nil error and no assignments", name)
	}
	for r, as := range byReplica {
		if !planCovers(as, 0, md.Layers) {
			t.Fatalf("%s: replica %d does not cover [0,%d) once: %v", name, r, md.Layers, planFmt(as))
		}
	}
}

// planRandomMap returns a random cluster: random layer, embed and head
// bytes, 0 to 12 nodes of random capacity, state and model.
func planRandomMap(r *rand.Rand) *Map {
	layers := 1 + r.IntN(40)
	md := &Model{Name: "rand", Digest: planDigest, Layers: layers, LayerBytes: make([]int64, layers)}
	for i := range md.LayerBytes {
		md.LayerBytes[i] = r.Int64N(1000)
	}
	if r.IntN(4) > 0 {
		md.EmbedBytes = r.Int64N(5000)
		md.HeadBytes = r.Int64N(5000)
	}
	total := md.TotalBytes()
	states := []NodeState{StateJoining, StateLoading, StateServing, StateServing, StateServing, StateDraining, StateDead}
	m := &Map{Nodes: make(map[string]*Node), Model: md, Epoch: r.Uint64N(10)}
	for i := range r.IntN(13) {
		id := fmt.Sprintf("n%02d", i)
		n := &Node{ID: id, State: states[r.IntN(len(states))], Joined: r.Uint64N(6), Model: planDigest,
			Resources: Resources{Capacity: planRandomCap(r, total)}}
		if r.IntN(10) == 0 {
			n.Model = "sha256:other"
		}
		m.Nodes[id] = n
	}
	return m
}

// planRandomCap returns a capacity from tiny to several times total.
func planRandomCap(r *rand.Rand, total int64) int64 {
	switch r.IntN(5) {
	case 0:
		return r.Int64N(100)
	case 1:
		return total + r.Int64N(3*total+1)
	default:
		return 1 + r.Int64N(total+1)
	}
}

// planShuffled returns a copy of m whose node map was filled in a random
// order.
func planShuffled(r *rand.Rand, m *Map) *Map {
	c := m.Clone()
	ids := m.NodeIDs()
	r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	c.Nodes = make(map[string]*Node, len(ids))
	for _, id := range ids {
		n := *m.Nodes[id]
		c.Nodes[id] = &n
	}
	return c
}

// planMapsEqual compares the parts of two maps Plan reads.
func planMapsEqual(a, b *Map) bool {
	if !slices.Equal(a.Assignments, b.Assignments) || a.Epoch != b.Epoch || len(a.Nodes) != len(b.Nodes) {
		return false
	}
	for id, n := range a.Nodes {
		o := b.Nodes[id]
		if o == nil || n.State != o.State || n.Resources.Capacity != o.Resources.Capacity || n.Model != o.Model {
			return false
		}
	}
	return true
}

// planFmt formats assignments as "r0 n1:0-6@1 ...".
func planFmt(as []Assignment) string {
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "r%d %s@%d  ", a.Replica, a, a.Epoch)
	}
	return b.String()
}

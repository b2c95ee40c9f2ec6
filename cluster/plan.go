package cluster

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// ErrCapacity is returned (wrapped) by Plan when the eligible nodes cannot
// hold the whole model once.
var ErrCapacity = errors.New("cluster: eligible nodes cannot hold the whole model once")

// Plan returns the assignments the map's model should have over the map's
// nodes, sorted by (Replica, Lo). It is pure and deterministic: it reads m,
// never changes it, and the same map gives the same plan. The caller owns
// the returned slice.
//
// Only live nodes that have the model's file and offer some capacity are
// eligible. Plan moves as little as it can from m.Assignments, the previous
// plan: it keeps every previous replica whose nodes are all eligible and
// still fit; it repairs a replica that lost nodes by giving each gap to
// spare nodes, keeping the survivors; it dissolves a replica it cannot
// repair; then it builds as many new replicas from the free nodes as they
// allow, the biggest nodes first, each taking as many layers as it can
// hold. Unchanged assignments keep their Epoch; new or changed ones get
// m.Epoch+1. Kept and repaired replicas keep their number; new replicas
// take the lowest unused numbers.
//
// When no complete replica can be formed, Plan returns the partial cover
// the greedy build reached, from layer 0, with an error wrapping
// ErrCapacity that says how many bytes are missing. With no model it
// returns nil, nil.
func Plan(m *Map) ([]Assignment, error) {
	if m == nil || m.Model == nil {
		return nil, nil
	}
	md := m.Model
	if err := planCheckModel(md); err != nil {
		return nil, err
	}
	if md.Layers == 0 {
		return nil, nil
	}
	p := newPlanner(m)

	// The previous replicas of this model, by number.
	prev := make(map[int][]Assignment)
	for _, a := range m.Assignments {
		if a.Model == md.Digest {
			prev[a.Replica] = append(prev[a.Replica], a)
		}
	}
	nums := make([]int, 0, len(prev))
	for r := range prev {
		nums = append(nums, r)
	}
	slices.Sort(nums)

	var out []Assignment
	taken := make(map[int]bool)

	// 1. Keep the intact replicas unchanged.
	var damaged []int
	for _, r := range nums {
		as := prev[r]
		slices.SortFunc(as, func(a, b Assignment) int { return cmp.Compare(a.Lo, b.Lo) })
		surv := p.survivors(as)
		if len(surv) == len(as) && planCovers(surv, 0, md.Layers) {
			p.take(surv)
			out = append(out, surv...)
			taken[r] = true
			continue
		}
		damaged = append(damaged, r)
	}

	// 2. Repair the damaged replicas. All survivors are reserved first so
	// that one repair cannot take another replica's survivors; a replica
	// that cannot be repaired frees its survivors for the ones after it.
	surv := make(map[int][]Assignment, len(damaged))
	for _, r := range damaged {
		s := p.survivors(prev[r])
		p.take(s)
		surv[r] = s
	}
	for _, r := range damaged {
		s := surv[r]
		if len(s) == 0 {
			continue
		}
		fill, ok := p.repair(s)
		if !ok {
			p.release(s)
			continue
		}
		for i := range fill {
			fill[i].Replica = r
		}
		out = append(out, s...)
		out = append(out, fill...)
		taken[r] = true
	}

	// 3. Build new replicas from the free nodes.
	next := 0
	for {
		stages, at := p.chain(0, md.Layers)
		if at < md.Layers {
			if len(out) > 0 {
				break
			}
			r := planLowest(taken, &next)
			for i := range stages {
				stages[i].Replica = r
			}
			out = planFinish(m, stages)
			return out, fmt.Errorf("plan %q: layers %d-%d uncovered, %d of %d bytes missing: %w",
				md.Name, at, md.Layers, md.StageBytes(at, md.Layers), md.TotalBytes(), ErrCapacity)
		}
		r := planLowest(taken, &next)
		for i := range stages {
			stages[i].Replica = r
		}
		out = append(out, stages...)
	}
	return planFinish(m, out), nil
}

// Moves returns the number of (node, range) pairs in next that are not in
// prev: the assignments a re-plan asks nodes to load.
func Moves(prev, next []Assignment) int {
	type key struct {
		node   string
		lo, hi int
	}
	have := make(map[key]bool, len(prev))
	for _, a := range prev {
		have[key{a.Node, a.Lo, a.Hi}] = true
	}
	n := 0
	for _, a := range next {
		if !have[key{a.Node, a.Lo, a.Hi}] {
			n++
		}
	}
	return n
}

// planCheckModel rejects a model whose layer sizes do not match its layer
// count or whose sizes are negative.
func planCheckModel(md *Model) error {
	if md.Layers < 0 || len(md.LayerBytes) != md.Layers {
		return fmt.Errorf("plan %q: %d layer sizes for %d layers", md.Name, len(md.LayerBytes), md.Layers)
	}
	if md.EmbedBytes < 0 || md.HeadBytes < 0 || slices.ContainsFunc(md.LayerBytes, func(b int64) bool { return b < 0 }) {
		return fmt.Errorf("plan %q: negative byte count", md.Name)
	}
	return nil
}

// planFinish stamps the model and epochs on out and sorts it by (Replica,
// Lo). An assignment equal to a previous one (node, range, replica) keeps
// the previous epoch; any other gets m.Epoch+1.
func planFinish(m *Map, out []Assignment) []Assignment {
	type key struct {
		node       string
		lo, hi, re int
	}
	epochs := make(map[key]uint64, len(m.Assignments))
	for _, a := range m.Assignments {
		if a.Model == m.Model.Digest {
			epochs[key{a.Node, a.Lo, a.Hi, a.Replica}] = a.Epoch
		}
	}
	for i := range out {
		a := &out[i]
		a.Model = m.Model.Digest
		if e, ok := epochs[key{a.Node, a.Lo, a.Hi, a.Replica}]; ok {
			a.Epoch = e
		} else {
			a.Epoch = m.Epoch + 1
		}
	}
	slices.SortFunc(out, func(a, b Assignment) int {
		if c := cmp.Compare(a.Replica, b.Replica); c != 0 {
			return c
		}
		return cmp.Compare(a.Lo, b.Lo)
	})
	return out
}

// planLowest returns the lowest replica number from *next up that taken
// does not hold, and marks it taken.
func planLowest(taken map[int]bool, next *int) int {
	for taken[*next] {
		*next++
	}
	taken[*next] = true
	return *next
}

// planCovers reports whether as, sorted by Lo, covers [lo, hi) exactly
// once, contiguously.
func planCovers(as []Assignment, lo, hi int) bool {
	at := lo
	for _, a := range as {
		if a.Lo != at || a.Hi <= a.Lo {
			return false
		}
		at = a.Hi
	}
	return at == hi
}

// planNode is an eligible node as the planner sees it.
type planNode struct {
	id     string
	cap    int64
	joined uint64
}

// planner holds the eligible nodes of one Plan call and which are in use.
type planner struct {
	model *Model
	nodes map[string]planNode
	// bySeniority and bySize order the eligible nodes: by (Joined, ID),
	// and by (Capacity descending, Joined, ID).
	bySeniority []planNode
	bySize      []planNode
	used        map[string]bool
}

// newPlanner collects the eligible nodes of m.
func newPlanner(m *Map) *planner {
	p := &planner{model: m.Model, nodes: make(map[string]planNode), used: make(map[string]bool)}
	for id, n := range m.Nodes {
		if n == nil || !n.State.Live() || (n.Model != m.Model.Digest && !n.Fetch) || n.Resources.Capacity <= 0 {
			continue
		}
		pn := planNode{id: id, cap: n.Resources.Capacity, joined: n.Joined}
		p.nodes[id] = pn
		p.bySeniority = append(p.bySeniority, pn)
	}
	slices.SortFunc(p.bySeniority, func(a, b planNode) int {
		if c := cmp.Compare(a.joined, b.joined); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	p.bySize = slices.Clone(p.bySeniority)
	slices.SortStableFunc(p.bySize, func(a, b planNode) int { return cmp.Compare(b.cap, a.cap) })
	return p
}

// survivors returns the assignments of as (sorted by Lo) that may stay:
// a valid range, an eligible node not in use and not seen earlier in as,
// that still fits the range, not overlapping an earlier survivor.
func (p *planner) survivors(as []Assignment) []Assignment {
	var out []Assignment
	seen := make(map[string]bool)
	at := 0
	for _, a := range as {
		n, ok := p.nodes[a.Node]
		if !ok || p.used[a.Node] || seen[a.Node] || a.Lo < at || a.Hi <= a.Lo || a.Hi > p.model.Layers ||
			p.model.StageBytes(a.Lo, a.Hi) > n.cap {
			continue
		}
		seen[a.Node] = true
		out = append(out, a)
		at = a.Hi
	}
	return out
}

// take marks the nodes of as in use.
func (p *planner) take(as []Assignment) {
	for _, a := range as {
		p.used[a.Node] = true
	}
}

// release marks the nodes of as free.
func (p *planner) release(as []Assignment) {
	for _, a := range as {
		delete(p.used, a.Node)
	}
}

// repair covers the gaps that surv (sorted by Lo) leaves in [0, Layers)
// with free nodes: each gap by the smallest single node that holds it
// (then the most senior), else by a chain of the biggest. It returns the
// new assignments, with their nodes in use, or false and nothing in use.
func (p *planner) repair(surv []Assignment) ([]Assignment, bool) {
	var fill []Assignment
	at := 0
	gap := func(lo, hi int) bool {
		if lo == hi {
			return true
		}
		if id, ok := p.smallestFit(lo, hi); ok {
			p.used[id] = true
			fill = append(fill, Assignment{Lo: lo, Hi: hi, Node: id})
			return true
		}
		stages, end := p.chain(lo, hi)
		fill = append(fill, stages...)
		return end == hi
	}
	for _, a := range surv {
		if !gap(at, a.Lo) {
			p.release(fill)
			return nil, false
		}
		at = a.Hi
	}
	if !gap(at, p.model.Layers) {
		p.release(fill)
		return nil, false
	}
	return fill, true
}

// smallestFit returns the free node with the least capacity that holds
// [lo, hi), the most senior among equals.
func (p *planner) smallestFit(lo, hi int) (string, bool) {
	need := p.model.StageBytes(lo, hi)
	best := -1
	for i, n := range p.bySeniority {
		if p.used[n.id] || n.cap < need {
			continue
		}
		if best < 0 || n.cap < p.bySeniority[best].cap {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	return p.bySeniority[best].id, true
}

// chain covers [lo, hi) greedily with free nodes, biggest first, each
// taking as many layers as it holds; the last stage goes to the smallest
// free node that holds the rest, so that bigger nodes stay free for the
// next replica without adding a stage. It returns the stages, their nodes
// in use, and where the cover ends (hi when complete).
func (p *planner) chain(lo, hi int) ([]Assignment, int) {
	var stages []Assignment
	at := lo
	for at < hi {
		if id, ok := p.smallestFit(at, hi); ok {
			p.used[id] = true
			stages = append(stages, Assignment{Lo: at, Hi: hi, Node: id})
			return stages, hi
		}
		i := slices.IndexFunc(p.bySize, func(n planNode) bool { return !p.used[n.id] })
		if i < 0 {
			break
		}
		n := p.bySize[i]
		end := p.maxEnd(at, hi, n.cap)
		if end == at {
			break
		}
		p.used[n.id] = true
		stages = append(stages, Assignment{Lo: at, Hi: end, Node: n.id})
		at = end
	}
	return stages, at
}

// maxEnd returns the largest end in [at, hi] with StageBytes(at, end) <=
// capacity (at when not even one layer fits).
func (p *planner) maxEnd(at, hi int, capacity int64) int {
	md := p.model
	var sum int64
	if at == 0 {
		sum = md.EmbedBytes
	}
	end := at
	for end < hi {
		add := md.LayerBytes[end]
		if end+1 == md.Layers {
			add += md.HeadBytes
		}
		if sum+add > capacity {
			break
		}
		sum += add
		end++
	}
	return end
}

package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-llm/strata/cluster"
)

// clusterCollector exports a member's view of the cluster and its stage's
// counters on /metrics, read at each scrape:
//
//	strata_cluster_nodes{state}           members by state
//	strata_cluster_voters                 members that vote in Raft
//	strata_cluster_volunteers             members admitted as volunteers
//	strata_cluster_is_leader              1 on the Raft leader
//	strata_cluster_epoch                  the plan's epoch
//	strata_cluster_map_index              the Raft index of the map
//	strata_cluster_uncovered_layers       layers no member is assigned
//	strata_cluster_revoked_nodes          nodes refused for good
//	strata_stage_tokens_total             tokens this member's stage computed
//	strata_stage_busy_seconds_total       time it spent computing them
//
// An alert on uncovered layers or on no leader covers most of what can
// go wrong with a cluster.
type clusterCollector struct {
	m *Member

	nodes, voters, volunteers, leader, epoch, index, uncovered, revoked, tokens, busy *prometheus.Desc
}

func newClusterCollector(m *Member) *clusterCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &clusterCollector{
		m:          m,
		nodes:      d("strata_cluster_nodes", "Members of the cluster by state, as this member's map has them.", "state"),
		voters:     d("strata_cluster_voters", "Members that vote in Raft."),
		volunteers: d("strata_cluster_volunteers", "Members admitted as volunteers (they never vote)."),
		leader:     d("strata_cluster_is_leader", "1 if this member is the Raft leader, else 0."),
		epoch:      d("strata_cluster_epoch", "The epoch of the cluster's plan."),
		index:      d("strata_cluster_map_index", "The Raft index of the last command this member applied."),
		uncovered:  d("strata_cluster_uncovered_layers", "Layers of the model that no member is assigned."),
		revoked:    d("strata_cluster_revoked_nodes", "Nodes the cluster refuses."),
		tokens:     d("strata_stage_tokens_total", "Tokens (rows) this member's stage computed since it was loaded."),
		busy:       d("strata_stage_busy_seconds_total", "Time this member's stage spent computing, since it was loaded."),
	}
}

// Describe implements prometheus.Collector.
func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.nodes, c.voters, c.volunteers, c.leader, c.epoch, c.index, c.uncovered, c.revoked, c.tokens, c.busy} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	mp := c.m.cl.Map()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	states := map[cluster.NodeState]int{}
	voters, volunteers := 0, 0
	for _, n := range mp.Nodes {
		states[n.State]++
		if n.Voter {
			voters++
		}
		if n.Volunteer {
			volunteers++
		}
	}
	for _, s := range []cluster.NodeState{cluster.StateJoining, cluster.StateLoading, cluster.StateServing, cluster.StateDraining, cluster.StateDead} {
		gauge(c.nodes, float64(states[s]), string(s))
	}
	leader := 0.0
	if c.m.cl.IsLeader() {
		leader = 1
	}
	gauge(c.voters, float64(voters))
	gauge(c.volunteers, float64(volunteers))
	gauge(c.leader, leader)
	gauge(c.epoch, float64(mp.Epoch))
	gauge(c.index, float64(mp.Index))
	gauge(c.uncovered, float64(len(mp.Uncovered())))
	gauge(c.revoked, float64(len(mp.Revoked)))
	s := c.m.sample()
	ch <- prometheus.MustNewConstMetric(c.tokens, prometheus.CounterValue, float64(s.tokens))
	ch <- prometheus.MustNewConstMetric(c.busy, prometheus.CounterValue, s.busy.Seconds())
}

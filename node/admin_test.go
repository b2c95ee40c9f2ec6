package node

import (
	"strings"
	"testing"

	"github.com/strata-llm/strata/cluster"
)

// TestWriteStatusReach: the status table shows what AutoNAT found of each
// node, "-" while unknown.
func TestWriteStatusReach(t *testing.T) {
	st := &Status{
		Cluster: "c1", Self: "12D3KooWAAAAAAAA", Leader: "12D3KooWAAAAAAAA",
		Nodes: []cluster.Node{
			{ID: "12D3KooWAAAAAAAA", State: cluster.StateServing, Reach: cluster.ReachPublic, Addrs: []string{"/ip4/10.0.0.1/tcp/4001"}},
			{ID: "12D3KooWBBBBBBBB", State: cluster.StateServing, Reach: cluster.ReachPrivate},
			{ID: "12D3KooWCCCCCCCC", State: cluster.StateJoining},
		},
	}
	var b strings.Builder
	if err := WriteStatus(&b, st); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	var header string
	rows := map[string]string{}
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "NODE"):
			header = l
		case strings.Contains(l, "serving") || strings.Contains(l, "joining"):
			rows[strings.Fields(l)[0]] = l
		}
	}
	if !strings.Contains(header, "REACH") {
		t.Fatalf("no REACH column in %q", header)
	}
	col := strings.Index(header, "REACH")
	for id, want := range map[string]string{"AAAAAAAA*": "public", "BBBBBBBB": "private", "CCCCCCCC": "-"} {
		row, ok := rows[id]
		if !ok {
			t.Fatalf("no row for %s in:\n%s", id, b.String())
		}
		if got := strings.Fields(row[col:])[0]; got != want {
			t.Errorf("%s: REACH %q, want %q\n%s", id, got, want, b.String())
		}
	}
}

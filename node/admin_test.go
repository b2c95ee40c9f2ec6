package node

import (
	"strings"
	"testing"
	"time"

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

// TestWriteStatusDeadAndRevoked: a dead node shows how long it has been
// dead, and the revoked nodes are listed with their reasons.
func TestWriteStatusDeadAndRevoked(t *testing.T) {
	st := &Status{
		Cluster: "c1", Self: "12D3KooWAAAAAAAA", Leader: "12D3KooWAAAAAAAA",
		Nodes: []cluster.Node{
			{ID: "12D3KooWAAAAAAAA", State: cluster.StateServing},
			{ID: "12D3KooWBBBBBBBB", State: cluster.StateDead, DeadSince: time.Now().Add(-2 * time.Hour)},
		},
		Revoked: []cluster.Revocation{{Node: "12D3KooWCCCCCCCC", At: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Reason: "lost laptop", By: "12D3KooWAAAAAAAA"}},
	}
	var b strings.Builder
	if err := WriteStatus(&b, st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"dead 2h0m0s", "revoked (refused until lifted):", "12D3KooWCCCCCCCC  2026-03-01T12:00:00Z  lost laptop  (by AAAAAAAA)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in:\n%s", want, b.String())
		}
	}
}

package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-llm/strata/cluster"
	"github.com/strata-llm/strata/node/hub"
)

// Status is the cluster as one member sees it: what `strata status`
// prints and GET /cluster/status answers.
type Status struct {
	Cluster     string               `json:"cluster"`
	Self        string               `json:"self"`
	Leader      string               `json:"leader"`
	Epoch       uint64               `json:"epoch"`
	Index       uint64               `json:"index"`
	Model       *cluster.Model       `json:"model,omitempty"`
	Nodes       []cluster.Node       `json:"nodes"`
	Assignments []cluster.Assignment `json:"assignments"`
	Uncovered   []int                `json:"uncovered"`
}

// Status returns the cluster as this member sees it.
func (m *Member) Status() Status {
	mp := m.cl.Map()
	st := Status{
		Cluster: mp.Cluster, Self: m.id.String(), Leader: m.cl.Leader(), Epoch: mp.Epoch, Index: mp.Index,
		Model: mp.Model, Assignments: mp.Assignments, Uncovered: mp.Uncovered(),
	}
	for _, id := range mp.NodeIDs() {
		n := *mp.Nodes[id]
		n.Model = "" // the cluster's model, or not: the planner says
		st.Nodes = append(st.Nodes, n)
	}
	if st.Assignments == nil {
		st.Assignments = []cluster.Assignment{}
	}
	return st
}

// adminHandler serves /cluster/status and /cluster/leave.
func (m *Member) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cluster/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(m.Status())
	})
	mux.HandleFunc("POST /cluster/leave", func(w http.ResponseWriter, r *http.Request) {
		if err := m.Leave(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
		fmt.Fprintln(w, "left the cluster")
	})
	return mux
}

// FetchStatus asks the member whose API is at base (http://HOST:PORT)
// for the cluster's status.
func FetchStatus(ctx context.Context, base, key string) (*Status, error) {
	b, err := adminCall(ctx, http.MethodGet, base, "/cluster/status", key, 15*time.Second)
	if err != nil {
		return nil, err
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("status from %s: %w", base, err)
	}
	return &st, nil
}

// RequestLeave asks the member whose API is at base to drain and leave
// the cluster, and waits until it has.
func RequestLeave(ctx context.Context, base, key string) error {
	_, err := adminCall(ctx, http.MethodPost, base, "/cluster/leave", key, 3*time.Minute)
	return err
}

func adminCall(ctx context.Context, method, base, path, key string, timeout time.Duration) ([]byte, error) {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// WriteStatus prints a status as `strata status` shows it.
func WriteStatus(w io.Writer, st *Status) error {
	model := "none"
	if st.Model != nil {
		model = fmt.Sprintf("%s (%s, %d layers, %s)", st.Model.Name, shortDigest(st.Model.Digest), st.Model.Layers, hub.FormatBytes(st.Model.TotalBytes()))
	}
	cover := "every layer covered"
	if len(st.Uncovered) > 0 {
		cover = fmt.Sprintf("layers %v NOT COVERED", st.Uncovered)
	}
	fmt.Fprintf(w, "cluster %s  leader %s  epoch %d  index %d\nmodel %s: %s\n\n", st.Cluster, shortID(st.Leader), st.Epoch, st.Index, model, cover)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tVOTER\tLAYERS\tREPLICA\tEPOCH\tCAPACITY\tRESOURCES\tREACH\tAPI\tADDR")
	for _, n := range st.Nodes {
		layers, replica, epoch := "-", "-", "-"
		for _, a := range st.Assignments {
			if a.Node == n.ID {
				layers, replica, epoch = fmt.Sprintf("%d-%d", a.Lo, a.Hi), fmt.Sprint(a.Replica), fmt.Sprint(a.Epoch)
			}
		}
		name := shortID(n.ID)
		if n.ID == st.Leader {
			name += "*"
		}
		if n.ID == st.Self {
			name += " (this)"
		}
		res := fmt.Sprintf("%d cores, %s RAM", n.Resources.CPUCores, hub.FormatBytes(int64(n.Resources.RAMBytes)))
		if len(n.Resources.GPUs) > 0 {
			res = fmt.Sprintf("%d GPUs, ", len(n.Resources.GPUs)) + res
		}
		addr := ""
		if len(n.Addrs) > 0 {
			addr = n.Addrs[0]
		}
		state := string(n.State)
		if n.State == cluster.StateLoading && n.Progress > 0 {
			state = fmt.Sprintf("loading %.0f%%", 100*n.Progress)
		}
		if n.Fetch {
			res += ", fetches weights"
		}
		reach := n.Reach // what AutoNAT found: public, private (behind NAT)
		if reach == "" {
			reach = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, state, n.Voter, layers, replica, epoch,
			hub.FormatBytes(n.Resources.Capacity), res, reach, n.API, addr)
	}
	return tw.Flush()
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

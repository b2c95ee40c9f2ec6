package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
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
	// Revoked are the nodes the cluster refuses, by time of revocation.
	Revoked []cluster.Revocation `json:"revoked,omitempty"`
	// Load is every member's load but the dead's, as they answered the
	// member asked (GET /cluster/status?load=false leaves it out).
	Load []NodeLoad `json:"load,omitempty"`
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
	for _, r := range mp.Revoked {
		st.Revoked = append(st.Revoked, r)
	}
	slices.SortFunc(st.Revoked, func(a, b cluster.Revocation) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.Node, b.Node)
	})
	return st
}

// adminHandler serves the cluster's admin routes: its status, draining,
// leaving, join tokens and revocations. A route that changes the cluster,
// or lists its tokens, answers only loopback clients when the API has no
// keys (with keys, the API has checked the caller's).
func (m *Member) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cluster/status", func(w http.ResponseWriter, r *http.Request) {
		st := m.Status()
		if r.URL.Query().Get("load") != "false" {
			st.Load = m.Loads(r.Context(), m.cl.Map())
		}
		writeJSON(w, st)
	})
	change := func(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if len(m.cfg.APIKeys) == 0 && m.cfg.APIKeyFile == "" && !loopback(r.RemoteAddr) {
				http.Error(w, "this route needs an API key (--api-key) when asked from another host", http.StatusForbidden)
				return
			}
			if err := h(w, r); err != nil {
				http.Error(w, err.Error(), adminStatus(err))
			}
		})
	}
	change("POST /cluster/leave", func(w http.ResponseWriter, r *http.Request) error {
		if err := m.Leave(r.Context()); err != nil {
			return err
		}
		fmt.Fprintln(w, "left the cluster")
		return nil
	})
	change("POST /cluster/drain", func(w http.ResponseWriter, r *http.Request) error {
		if err := m.Drain(r.Context()); err != nil {
			return err
		}
		fmt.Fprintln(w, "drained: this member holds no layers until undrained")
		return nil
	})
	change("POST /cluster/undrain", func(w http.ResponseWriter, r *http.Request) error {
		if err := m.Undrain(r.Context()); err != nil {
			return err
		}
		fmt.Fprintln(w, "undrained: this member may be given layers again")
		return nil
	})
	change("GET /cluster/tokens", func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, tokenList{Tokens: m.Tokens()}) // their notes may say whom they are for
		return nil
	})
	change("POST /cluster/tokens", func(w http.ResponseWriter, r *http.Request) error {
		var req tokenRequest
		if err := readJSON(r, &req); err != nil {
			return err
		}
		if req.TTLSeconds < 0 {
			return fmt.Errorf("%w: ttl_seconds %d is negative", errBadRequest, req.TTLSeconds)
		}
		issue := m.Token
		if req.Volunteer {
			issue = m.VolunteerToken
		}
		tok, err := issue(r.Context(), time.Duration(req.TTLSeconds)*time.Second, req.Note)
		if err != nil {
			return err
		}
		writeJSON(w, tok)
		return nil
	})
	change("DELETE /cluster/tokens/{id}", func(w http.ResponseWriter, r *http.Request) error {
		if err := m.RevokeToken(r.Context(), r.PathValue("id")); err != nil {
			return err
		}
		fmt.Fprintln(w, "token revoked")
		return nil
	})
	change("POST /cluster/revocations", func(w http.ResponseWriter, r *http.Request) error {
		var req revokeRequest
		if err := readJSON(r, &req); err != nil {
			return err
		}
		rev, err := m.Revoke(r.Context(), req.Node, req.Reason)
		if err != nil {
			return err
		}
		writeJSON(w, rev)
		return nil
	})
	change("DELETE /cluster/revocations/{node}", func(w http.ResponseWriter, r *http.Request) error {
		if err := m.LiftRevocation(r.Context(), r.PathValue("node")); err != nil {
			return err
		}
		fmt.Fprintln(w, "revocation lifted")
		return nil
	})
	return mux
}

// The bodies of the admin routes.
type (
	tokenRequest struct {
		TTLSeconds int64  `json:"ttl_seconds"` // 0: 24 h
		Note       string `json:"note"`
		Volunteer  bool   `json:"volunteer"`
	}
	tokenList struct {
		Tokens []cluster.TokenInfo `json:"tokens"`
	}
	revokeRequest struct {
		Node   string `json:"node"`
		Reason string `json:"reason"`
	}
)

// errBadRequest: an admin request's body is malformed.
var errBadRequest = errors.New("bad request")

// adminStatus is the HTTP status an admin route answers err with.
func adminStatus(err error) int {
	switch {
	case errors.Is(err, errBadRequest), errors.Is(err, cluster.ErrBadCommand):
		return http.StatusBadRequest
	case errors.Is(err, cluster.ErrUnknownNode), errors.Is(err, cluster.ErrUnknownToken), errors.Is(err, cluster.ErrNotRevoked):
		return http.StatusNotFound
	case errors.Is(err, errRefused):
		return http.StatusConflict
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	}
	return http.StatusServiceUnavailable
}

// loopback reports whether a request's remote address is a loopback one.
func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readJSON decodes a request's body (at most 64 KB, one JSON object of
// known fields) into v.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: data after the JSON object", errBadRequest)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// FetchStatus asks the member whose API is at base (http://HOST:PORT)
// for the cluster's status.
func FetchStatus(ctx context.Context, base, key string) (*Status, error) {
	b, err := adminCall(ctx, http.MethodGet, base, "/cluster/status", key, nil, 15*time.Second)
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
	_, err := adminCall(ctx, http.MethodPost, base, "/cluster/leave", key, nil, 3*time.Minute)
	return err
}

// RequestDrain asks the member whose API is at base to move its layers to
// others and hold none until undrained (Member.Drain), and waits until it
// has.
func RequestDrain(ctx context.Context, base, key string) error {
	_, err := adminCall(ctx, http.MethodPost, base, "/cluster/drain", key, nil, 3*time.Minute)
	return err
}

// RequestUndrain asks the member whose API is at base to take layers
// again (Member.Undrain).
func RequestUndrain(ctx context.Context, base, key string) error {
	_, err := adminCall(ctx, http.MethodPost, base, "/cluster/undrain", key, nil, 30*time.Second)
	return err
}

// RequestToken asks the member whose API is at base to issue a join token
// valid for ttl (0: 24 h), with a note saying what it is for; a volunteer
// token admits volunteers (Member.VolunteerToken).
func RequestToken(ctx context.Context, base, key string, ttl time.Duration, note string, volunteer bool) (IssuedToken, error) {
	var tok IssuedToken
	err := adminJSON(ctx, http.MethodPost, base, "/cluster/tokens", key, tokenRequest{TTLSeconds: int64(ttl / time.Second), Note: note, Volunteer: volunteer}, &tok)
	return tok, err
}

// FetchTokens asks the member whose API is at base for the join tokens
// that admit joiners now.
func FetchTokens(ctx context.Context, base, key string) ([]cluster.TokenInfo, error) {
	var l tokenList
	err := adminJSON(ctx, http.MethodGet, base, "/cluster/tokens", key, nil, &l)
	return l.Tokens, err
}

// RequestRevokeToken asks the member whose API is at base to revoke the
// join token with that ID.
func RequestRevokeToken(ctx context.Context, base, key, id string) error {
	_, err := adminCall(ctx, http.MethodDelete, base, "/cluster/tokens/"+url.PathEscape(id), key, nil, 30*time.Second)
	return err
}

// RequestRevoke asks the member whose API is at base to revoke a node
// (Member.Revoke), for reason.
func RequestRevoke(ctx context.Context, base, key, node, reason string) (cluster.Revocation, error) {
	var r cluster.Revocation
	err := adminJSON(ctx, http.MethodPost, base, "/cluster/revocations", key, revokeRequest{Node: node, Reason: reason}, &r)
	return r, err
}

// RequestLiftRevocation asks the member whose API is at base to lift a
// node's revocation.
func RequestLiftRevocation(ctx context.Context, base, key, node string) error {
	_, err := adminCall(ctx, http.MethodDelete, base, "/cluster/revocations/"+url.PathEscape(node), key, nil, 30*time.Second)
	return err
}

// adminJSON makes an admin call with body (nil: none) as JSON and decodes
// the reply into out.
func adminJSON(ctx context.Context, method, base, path, key string, body, out any) error {
	b, err := adminCall(ctx, method, base, path, key, body, 30*time.Second)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

func adminCall(ctx context.Context, method, base, path, key string, body any, timeout time.Duration) ([]byte, error) {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
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
		if n.State == cluster.StateDead && !n.DeadSince.IsZero() {
			state = "dead " + time.Since(n.DeadSince).Round(time.Minute).String()
		}
		if n.Fetch {
			res += ", fetches weights"
		}
		reach := n.Reach // what AutoNAT found: public, private (behind NAT)
		if reach == "" {
			reach = "-"
		}
		voter := fmt.Sprint(n.Voter)
		if n.Volunteer {
			voter = "volunteer"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, state, voter, layers, replica, epoch,
			hub.FormatBytes(n.Resources.Capacity), res, reach, n.API, addr)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Load) > 0 {
		fmt.Fprintf(w, "\nload over the last minute:\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tSTAGE TOK/S\tBUSY\tSESSIONS\tKV CACHE\tGENERATED TOK/S\tRUNNING\tQUEUED\tRTT")
		for _, l := range st.Load {
			if l.Err != "" {
				fmt.Fprintf(tw, "%s\tno answer: %s\n", shortID(l.Node), l.Err)
				continue
			}
			kv := hub.FormatBytes(l.KVBytes)
			if l.KVBudget > 0 {
				kv += " of " + hub.FormatBytes(l.KVBudget)
			}
			rtt := "-" // this member's own
			if l.RTTMillis > 0 {
				rtt = fmt.Sprintf("%.1f ms", l.RTTMillis)
			}
			fmt.Fprintf(tw, "%s\t%.1f\t%.0f%%\t%d\t%s\t%.1f\t%d\t%d\t%s\n", shortID(l.Node), l.StageTokensPerSec, 100*l.StageBusy,
				l.Sessions, kv, l.GeneratedPerSec, l.Running, l.Queued, rtt)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(st.Revoked) > 0 {
		fmt.Fprintf(w, "\nrevoked (refused until lifted):\n")
		for _, r := range st.Revoked {
			reason := r.Reason
			if reason == "" {
				reason = "no reason given"
			}
			by := ""
			if r.By != "" {
				by = "  (by " + shortID(r.By) + ")"
			}
			fmt.Fprintf(w, "  %s  %s  %s%s\n", r.Node, r.At.Format(time.RFC3339), reason, by)
		}
	}
	return nil
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

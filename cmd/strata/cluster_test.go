package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-llm/strata/cluster"
	"github.com/strata-llm/strata/internal/testdata"
	"github.com/strata-llm/strata/node"
)

// clusterProc is a `strata init` or `strata join` process.
type clusterProc struct {
	cmd    *exec.Cmd
	api    string
	dir    string
	stderr *syncBuffer
}

// syncBuffer is a bytes.Buffer that a process writes while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startCluster starts `strata init` and n `strata join` processes on
// 127.0.0.1 with extra flags, and waits until every member sees every
// layer served by serving members only.
func startCluster(t *testing.T, bin, model string, n int, extra ...string) []*clusterProc {
	t.Helper()
	var procs []*clusterProc
	start := func(args ...string) *clusterProc {
		p := &clusterProc{api: freeAddr(t), dir: t.TempDir(), stderr: &syncBuffer{}}
		args = append(args, "--model", model, "--data", p.dir, "--api", p.api, "--listen", "/ip4/127.0.0.1/tcp/0")
		p.cmd = exec.Command(bin, append(args, extra...)...)
		p.cmd.Stderr = p.stderr
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			p.cmd.Process.Signal(syscall.SIGTERM)
			p.cmd.Wait()
			if t.Failed() {
				t.Logf("%s %s stderr:\n%s", args[0], p.api, p.stderr.String())
			}
		})
		procs = append(procs, p)
		return p
	}
	first := start("init")
	joinFile := filepath.Join(first.dir, "join")
	waitUntil(t, "the join file", 60*time.Second, func() bool { _, err := os.Stat(joinFile); return err == nil })
	for range n {
		start("join", "--join-file", joinFile)
	}
	waitUntil(t, "every layer served, as every member sees it", 60*time.Second, func() bool {
		for _, p := range procs {
			st := status(p.api)
			if st == nil || len(st.Nodes) != n+1 || len(st.Uncovered) > 0 {
				return false
			}
			for _, nd := range st.Nodes {
				if nd.State != cluster.StateServing || nd.API == "" {
					return false
				}
			}
		}
		return true
	})
	return procs
}

func status(api string) *node.Status {
	resp, err := http.Get("http://" + api + "/cluster/status")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st node.Status
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return nil
	}
	return &st
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.After(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// TestClusterProcesses: `strata init` plus 2 × `strata join` on 127.0.0.1;
// `strata status` shows every layer covered, and POST /v1/completions on
// every member returns the reference greedy text.
func TestClusterProcesses(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	model := ref.ModelPath(t)
	bin := buildBinary(t)
	st, _ := os.Stat(model)
	procs := startCluster(t, bin, model, 2, "--capacity", itoa(st.Size()*6/10))
	out, err := exec.Command(bin, "status", "--api", procs[1].api).CombinedOutput()
	if err != nil {
		t.Fatalf("strata status: %v\n%s", err, out)
	}
	t.Logf("strata status:\n%s", out)
	if !strings.Contains(string(out), "every layer covered") || strings.Count(string(out), "serving") != 3 {
		t.Errorf("strata status does not show 3 serving nodes covering every layer:\n%s", out)
	}
	for _, p := range procs {
		for _, c := range ref.Cases[:2] {
			code, text, err := complete("http://"+p.api, c.Prompt)
			if err != nil || code != http.StatusOK {
				t.Fatalf("member %s: %q: %d %s %v", p.api, c.Prompt, code, text, err)
			}
			if !c.TextMatches(text) {
				t.Errorf("member %s: %q: %q, llama.cpp %q", p.api, c.Prompt, text, c.GreedyText)
			}
		}
	}

	// Tokens and revocations from the command line.
	strata := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out = []byte(strata("token", "create", "--ttl", "10m", "--note", "rack 2", "--api", procs[1].api))
	if !strings.Contains(string(out), "strata join /ip4/127.0.0.1/") || !strings.Contains(string(out), "--token strata1.") {
		t.Errorf("strata token create:\n%s", out)
	}
	id := strings.Fields(string(out))[2]
	if list := strata("token", "list", "--api", procs[1].api); !strings.Contains(list, id) || !strings.Contains(list, "rack 2") {
		t.Errorf("strata token list does not show token %s:\n%s", id, list)
	}
	strata("token", "revoke", id, "--api", procs[0].api)
	if list := strata("token", "list", "--api", procs[0].api); strings.Contains(list, id) {
		t.Errorf("strata token list shows revoked token %s:\n%s", id, list)
	}
	victim := status(procs[2].api).Self
	strata("revoke", "--reason", "decommissioned", victim[len(victim)-8:], "--api", procs[0].api)
	waitUntil(t, "the revoked member to stop", 30*time.Second, func() bool {
		return strings.Contains(procs[2].stderr.String(), "this node was revoked from the cluster")
	})
	waitUntil(t, "the rest serving every layer", 60*time.Second, func() bool {
		st := status(procs[0].api)
		return st != nil && len(st.Nodes) == 2 && len(st.Uncovered) == 0 && len(st.Revoked) == 1
	})
	if st := strata("status", "--api", procs[1].api); !strings.Contains(st, victim) || !strings.Contains(st, "decommissioned") {
		t.Errorf("strata status does not list the revocation:\n%s", st)
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// streamTokens streams a greedy completion of 64 tokens from api and
// returns the text of each token and the longest wait between two; after
// the k-th token it calls at (k < 0: never).
func streamTokens(t *testing.T, api, prompt string, k int, at func()) ([]string, time.Duration) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": "synth", "prompt": prompt, "max_tokens": 64, "temperature": 0, "stream": true, "ignore_eos": true})
	resp, err := http.Post("http://"+api+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %s", resp.Status)
	}
	var toks []string
	var pause time.Duration
	last := time.Now()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || line == "[DONE]" {
			continue
		}
		var ev struct {
			Choices []struct {
				Text         string  `json:"text"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("stream event %q: %v", line, err)
		}
		if ev.Error != nil {
			t.Fatalf("the stream failed after %d tokens: %s", len(toks), ev.Error.Message)
		}
		if len(ev.Choices) == 0 || (ev.Choices[0].FinishReason != nil && ev.Choices[0].Text == "") {
			continue
		}
		now := time.Now()
		if len(toks) > 0 {
			pause = max(pause, now.Sub(last))
		}
		last = now
		toks = append(toks, ev.Choices[0].Text)
		if len(toks) == k {
			at()
		}
	}
	return toks, pause
}

// TestClusterFailover: 4 members each offering about 60% of a model, so
// that it spans 2 stages and every layer has a replica; `kill -9` of the
// stage process after this member's own while a 64-token greedy stream is
// in flight: the stream completes with exactly the tokens of an
// uninterrupted run, and the map shows the node dead and its layers
// served by others. The stream forks the session the prefix cache kept of
// an earlier one, so the replay into the new route computes that session's
// chunks and forks it again.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 50 MB model and runs 4 processes")
	}
	bin := buildBinary(t)
	model := filepath.Join(t.TempDir(), "synth.gguf")
	if out, err := exec.Command(bin, "model", "synth", "--dim", "384", "--layers", "8", "--heads", "6", "--kv-heads", "2",
		"--ffn", "1024", "--vocab", "2000", "--type", "f32", model).CombinedOutput(); err != nil {
		t.Fatalf("synth: %v\n%s", err, out)
	}
	fi, _ := os.Stat(model)
	procs := startCluster(t, bin, model, 3, "--capacity", itoa(fi.Size()*6/10), "--model-name", "synth",
		"--heartbeat", "300ms", "--dead-after", "1s")
	gw := procs[0]
	st := status(gw.api)
	replicas := map[int]bool{}
	for _, a := range st.Assignments {
		replicas[a.Replica] = true
	}
	if len(replicas) != 2 || len(st.Assignments) != 4 {
		t.Fatalf("want 2 replicas of 2 stages, got %+v", st.Assignments)
	}
	// The gateway's route runs through its own stage, then the next stage
	// of its replica: that is the process to kill.
	var mine, next cluster.Assignment
	for _, a := range st.Assignments {
		if a.Node == st.Self {
			mine = a
		}
	}
	for _, a := range st.Assignments {
		if a.Replica == mine.Replica && a.Lo == mine.Hi {
			next = a
		}
	}
	var victim *clusterProc
	for i, nd := range st.Nodes {
		if nd.ID == next.Node {
			for _, p := range procs {
				if p.api == st.Nodes[i].API {
					victim = p
				}
			}
		}
	}
	if victim == nil || mine.Node == "" {
		t.Fatalf("no stage after the gateway's own in %+v", st)
	}

	const prompt = "hello world"
	want, _ := streamTokens(t, gw.api, prompt, -1, nil)
	if len(want) != 64 {
		t.Fatalf("the uninterrupted stream gave %d tokens", len(want))
	}
	// The prefix cache kept the first stream's session: the same prompt
	// again forks it, with the same tokens.
	forked, _ := streamTokens(t, gw.api, prompt, -1, nil)
	if strings.Join(forked, "\x00") != strings.Join(want, "\x00") {
		t.Fatalf("the stream forked from the first differs:\n got %q\nwant %q", forked, want)
	}
	got, pause := streamTokens(t, gw.api, prompt, 8, func() {
		victim.cmd.Process.Kill() // kill -9
	})
	victim.cmd.Wait()
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		t.Fatalf("the stream through the failure differs:\n got %q\nwant %q", got, want)
	}
	if !strings.Contains(gw.stderr.String(), "re-routing") {
		t.Fatalf("the stream finished without a failover; the kill came too late")
	}
	t.Logf("pause in the stream across the failover: %v", pause)
	resp, err := http.Get("http://" + gw.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^strata_failovers_total [1-9]`).Match(metrics) ||
		!regexp.MustCompile(`(?m)^strata_peer_faults_total\{cause="unreachable",peer="`+next.Node+`"\} [1-9]`).Match(metrics) {
		t.Errorf("the gateway's /metrics do not count the failover and the dead peer's fault:\n%s", grepLines(string(metrics), "strata_failovers_total", "strata_peer_faults_total"))
	}

	waitUntil(t, "the killed node marked dead and its layers served by others", 30*time.Second, func() bool {
		st := status(gw.api)
		if st == nil || len(st.Uncovered) > 0 {
			return false
		}
		for _, nd := range st.Nodes {
			if nd.ID == next.Node && nd.State != cluster.StateDead {
				return false
			}
		}
		for _, a := range st.Assignments {
			if a.Node == next.Node {
				return false
			}
		}
		return true
	})
	out, _ := exec.Command(bin, "status", "--api", gw.api).CombinedOutput()
	t.Logf("strata status after the kill:\n%s", out)
	// And the cluster still answers, the same tokens.
	for _, p := range procs[1:] {
		if p == victim {
			continue
		}
		again, _ := streamTokens(t, p.api, prompt, -1, nil)
		if strings.Join(again, "\x00") != strings.Join(want, "\x00") {
			t.Errorf("member %s after the failover: %q, want %q", p.api, again, want)
		}
	}
}

// grepLines returns the lines of s that start with one of prefixes.
func grepLines(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}

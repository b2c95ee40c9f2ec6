package sched

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// A script is a list of commands, each line starting with "> ", each
// followed by the lines it must print. The first line configures the
// scheduler:
//
//	config stages=S tokens=B seqs=N chunk=C queue=Q inflight=F timeout=T
//
// Commands:
//
//	submit ID len=N max=M [cached=K from=F]
//	                        prompt ID*1000, ID*1000+1, ...; the first K
//	                        held by session F; prints only errors
//	next                    one Next: "bN: chunk chunk..." or "none"
//	fill                    Next until it returns false
//	done B RESULT...        Done; RESULT is ID=TOKEN, ID=stop:TOKEN, ID=err:MSG,
//	                        or * for token 100*ID+index on every chunk wanting
//	                        logits that no other RESULT names
//	cancel ID
//	tick
//	stats
//
// A chunk prints as sID@POS:N with "open" and "logits" when set. After every
// command the events of Ready print: "tok sID#INDEX=TOKEN",
// "fin sID REASON gen=N[: err]", "rel sID". Every call goes through a
// checker, so the invariants are checked after every step too.
func runScript(t *testing.T, script string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(script), "\n")
	cfg := parseConfig(t, strings.TrimSpace(lines[0]))
	c := newChecker(t, cfg)
	c.record = true

	var got, want strings.Builder
	printf := func(format string, args ...any) { fmt.Fprintf(&got, format+"\n", args...) }
	for _, line := range lines[1:] {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, "> ") {
			want.WriteString(line + "\n")
			continue
		}
		want.WriteString(line + "\n")
		got.WriteString(line + "\n")
		f := strings.Fields(line[2:])
		switch f[0] {
		case "submit":
			id := SeqID(atoi(t, f[1]))
			kv := keyValues(t, f[2:])
			prompt := make([]int, kv["len"])
			for i := range prompt {
				prompt[i] = 1000*int(id) + i
			}
			if err := c.submit(Request{ID: id, Prompt: prompt, MaxTokens: kv["max"], Cached: kv["cached"], From: SeqID(kv["from"])}); err != nil {
				printf("error: %v", err)
			}
		case "next":
			if mb, ok := c.next(); ok {
				printf("%s", formatBatch(mb))
			} else {
				printf("none")
			}
		case "fill":
			for _, mb := range c.fill() {
				printf("%s", formatBatch(mb))
			}
		case "done":
			batch := uint64(atoi(t, f[1]))
			var rs []Result
			auto := false
			for _, a := range f[2:] {
				if a == "*" {
					auto = true
					continue
				}
				id, v, ok := strings.Cut(a, "=")
				if !ok {
					t.Fatalf("%s: bad result %q", line, a)
				}
				r := Result{ID: SeqID(atoi(t, strings.TrimPrefix(id, "s")))}
				switch {
				case strings.HasPrefix(v, "err:"):
					r.Err = errors.New(v[4:])
				case strings.HasPrefix(v, "stop:"):
					r.Token, r.Stop = atoi(t, v[5:]), true
				default:
					r.Token = atoi(t, v)
				}
				rs = append(rs, r)
			}
			if f := c.flights[batch]; auto && f != nil {
				for _, r := range c.autoResults(f.mb) {
					if !containsID(rs, r.ID) {
						rs = append(rs, r)
					}
				}
			}
			if err := c.done(batch, rs); err != nil {
				printf("error: %v", err)
			}
		case "cancel":
			c.cancel(SeqID(atoi(t, f[1])))
		case "tick":
			c.tick()
		case "stats":
			st := c.s.Stats()
			printf("queued=%d running=%d inflight=%d/%d batches=%d prefill=%d decode=%d generated=%d finished=%d",
				st.Queued, st.Running, st.InFlight, st.InFlightTokens, st.Batches,
				st.PrefillTokens, st.DecodeTokens, st.Generated, st.Finished)
			if st.CachedTokens > 0 {
				printf("cached=%d", st.CachedTokens)
			}
		default:
			t.Fatalf("unknown command %q", line)
		}
		// The wrappers drained Ready into the checker; replay what they saw.
		for _, l := range c.seen {
			printf("%s", l)
		}
		c.seen = c.seen[:0]
	}
	if got.String() != want.String() {
		t.Errorf("script output differs\n--- got\n%s--- want\n%s", got.String(), want.String())
	}
}

func containsID(rs []Result, id SeqID) bool {
	for _, r := range rs {
		if r.ID == id {
			return true
		}
	}
	return false
}

func formatBatch(mb MicroBatch) string {
	var b strings.Builder
	fmt.Fprintf(&b, "b%d:", mb.Num)
	for _, ch := range mb.Chunks {
		fmt.Fprintf(&b, " s%d@%d:%d", ch.ID, ch.Pos, len(ch.Tokens))
		if ch.Open {
			b.WriteString(" open")
		}
		if ch.From != 0 {
			fmt.Fprintf(&b, " from=s%d", ch.From)
		}
		if ch.Logits {
			b.WriteString(" logits")
		}
		b.WriteString(",")
	}
	return strings.TrimSuffix(b.String(), ",")
}

// formatReady renders the events of rd, one a line.
func formatReady(rd Ready) []string {
	var out []string
	for _, tk := range rd.Tokens {
		out = append(out, fmt.Sprintf("tok s%d#%d=%d", tk.ID, tk.Index, tk.Token))
	}
	for _, f := range rd.Finished {
		l := fmt.Sprintf("fin s%d %s gen=%d", f.ID, f.Reason, f.Generated)
		if f.Err != nil {
			l += ": " + f.Err.Error()
		}
		out = append(out, l)
	}
	for _, id := range rd.Release {
		out = append(out, fmt.Sprintf("rel s%d", id))
	}
	return out
}

func parseConfig(t *testing.T, line string) Config {
	t.Helper()
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "config" {
		t.Fatalf("script starts with %q, want a config line", line)
	}
	kv := keyValues(t, f[1:])
	return Config{
		Stages:         kv["stages"],
		MaxBatchTokens: kv["tokens"],
		MaxSeqs:        kv["seqs"],
		PrefillChunk:   kv["chunk"],
		MaxQueue:       kv["queue"],
		MaxInFlight:    kv["inflight"],
		QueueTimeout:   kv["timeout"],
	}
}

func keyValues(t *testing.T, f []string) map[string]int {
	t.Helper()
	kv := map[string]int{}
	for _, a := range f {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			t.Fatalf("bad argument %q, want key=value", a)
		}
		kv[k] = atoi(t, v)
	}
	return kv
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("bad number %q", s)
	}
	return n
}

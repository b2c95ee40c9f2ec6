package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/strata-llm/strata/cluster"
)

// StatusProtocol is how members ask each other for their load, for
// `strata status`: a stream carries one reply, a NodeLoad framed as a
// control message. Members only.
const StatusProtocol protocol.ID = "/strata/status/1.0.0"

// NodeLoad is a member's load: its stage's and its gateway's, rates over
// the last minute.
type NodeLoad struct {
	Node string `json:"node"`
	// Its stage: open KV sessions and their bytes (of the budget, 0: none),
	// tokens computed a second, and the share of the time it computed.
	Sessions          int     `json:"sessions"`
	KVBytes           int64   `json:"kv_bytes"`
	KVBudget          int64   `json:"kv_budget,omitempty"`
	StageTokensPerSec float64 `json:"stage_tokens_per_sec"`
	StageBusy         float64 `json:"stage_busy"`
	// Its gateway: sequences running and waiting, tokens generated a
	// second.
	Running         int     `json:"running"`
	Queued          int     `json:"queued"`
	GeneratedPerSec float64 `json:"generated_per_sec"`
	// RTTMillis is the round trip of the status request, as the asking
	// member measured it; Err says why the node did not answer.
	RTTMillis float64 `json:"rtt_ms,omitempty"`
	Err       string  `json:"err,omitempty"`
}

// loadWindow is how far back NodeLoad's rates look, and loadEvery how
// often the meter samples its counters.
const (
	loadWindow = time.Minute
	loadEvery  = 5 * time.Second
	// loadTimeout bounds the wait for another member's load, and
	// loadAsks how many members are asked at once.
	loadTimeout = 2 * time.Second
	loadAsks    = 32
)

// loadSample is the member's counters at one time.
type loadSample struct {
	at        time.Time
	tokens    uint64        // the stage's
	busy      time.Duration // the stage's
	generated uint64        // the gateway's
	stage     any           // the stage the stage's counters are of
	loaded    time.Time     // when that stage was loaded
}

// loadMeter keeps the samples of about the last loadWindow, to compute
// rates from.
type loadMeter struct {
	mu      sync.Mutex
	samples []loadSample
}

// add records s and drops the samples it makes unneeded: those before
// the newest one that is at least loadWindow old.
func (lm *loadMeter) add(s loadSample) {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	lm.samples = append(lm.samples, s)
	i := 0
	for i+1 < len(lm.samples) && s.at.Sub(lm.samples[i+1].at) >= loadWindow {
		i++
	}
	lm.samples = lm.samples[i:]
}

// oldest returns the oldest sample kept, and whether there is one: rates
// run from it to now.
func (lm *loadMeter) oldest() (loadSample, bool) {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	if len(lm.samples) == 0 {
		return loadSample{}, false
	}
	return lm.samples[0], true
}

// sample reads the member's counters now.
func (m *Member) sample() loadSample {
	s := loadSample{at: time.Now()}
	m.mu.Lock()
	if m.loaded != nil {
		st := m.loaded.stage.st.Stats()
		s.tokens, s.busy, s.stage, s.loaded = st.Tokens, st.Busy, m.loaded.stage.st, m.loaded.since
	}
	m.mu.Unlock()
	if d := m.drv.Load(); d != nil {
		s.generated = d.Stats().Generated
	}
	return s
}

// meter samples the member's counters every loadEvery until ctx ends.
func (m *Member) meter(ctx context.Context) error {
	tick := time.NewTicker(loadEvery)
	defer tick.Stop()
	for {
		m.loads.add(m.sample())
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Load returns this member's load now.
func (m *Member) Load() NodeLoad {
	l := NodeLoad{Node: m.id.String()}
	now := m.sample()
	m.mu.Lock()
	if m.loaded != nil {
		st := m.loaded.stage.st.Stats()
		l.Sessions, l.KVBytes, l.KVBudget = st.Sessions, st.KVBytes, st.KVBudget
	}
	m.mu.Unlock()
	if d := m.drv.Load(); d != nil {
		st := d.Stats()
		l.Running, l.Queued = st.Running, st.Queued
	}
	if then, ok := m.loads.oldest(); ok {
		if secs := now.at.Sub(then.at).Seconds(); secs > 0 && now.generated >= then.generated {
			l.GeneratedPerSec = float64(now.generated-then.generated) / secs
		}
		if then.stage != now.stage { // loaded since: its counters start at 0
			then = loadSample{at: now.loaded}
		}
		if secs := now.at.Sub(then.at).Seconds(); secs > 0 && now.stage != nil {
			l.StageTokensPerSec = float64(now.tokens-then.tokens) / secs
			l.StageBusy = min((now.busy-then.busy).Seconds()/secs, 1)
		}
	}
	return l
}

// handleStatus answers a member's status stream with this member's load;
// a non-member's stream is reset.
func (m *Member) handleStatus(st network.Stream) {
	if !m.gater.IsMember(st.Conn().RemotePeer()) {
		m.log.Warn("refused a status stream from a non-member", "peer", st.Conn().RemotePeer())
		st.Reset()
		return
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(loadTimeout))
	if err := writeControl(st, m.Load()); err != nil {
		m.log.Debug("write status", "peer", st.Conn().RemotePeer(), "err", err)
	}
}

// Loads asks every member of mp that is not dead for its load, up to
// loadAsks at once, each within loadTimeout, and returns them in mp's
// order of seniority; one that did not answer has Err set. An answer
// less than loadsFresh old, for the same map, is reused: dashboards and
// status scripts polling several members at once ask the cluster once.
func (m *Member) Loads(ctx context.Context, mp *cluster.Map) []NodeLoad {
	r := &m.recent
	r.Lock()
	if r.loads != nil && r.index == mp.Index && time.Since(r.at) < loadsFresh {
		out := slices.Clone(r.loads)
		r.Unlock()
		return out
	}
	r.Unlock()
	out := m.askLoads(ctx, mp)
	r.Lock()
	r.at, r.index, r.loads = time.Now(), mp.Index, slices.Clone(out)
	r.Unlock()
	return out
}

// loadsFresh is how long Loads reuses an answer.
const loadsFresh = 2 * time.Second

// askLoads is Loads without the reuse.
func (m *Member) askLoads(ctx context.Context, mp *cluster.Map) []NodeLoad {
	ids := mp.NodeIDs()
	out := make([]NodeLoad, 0, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, loadAsks)
	for _, id := range ids {
		if mp.Nodes[id].State == cluster.StateDead {
			continue
		}
		out = append(out, NodeLoad{Node: id})
		l := &out[len(out)-1]
		if id == m.id.String() {
			*l = m.Load()
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			*l = m.askLoad(ctx, id)
			<-sem
		})
	}
	wg.Wait()
	return out
}

// askLoad asks member id for its load.
func (m *Member) askLoad(ctx context.Context, id string) NodeLoad {
	fail := func(err error) NodeLoad { return NodeLoad{Node: id, Err: err.Error()} }
	pid, err := peer.Decode(id)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	start := time.Now()
	st, err := m.host.NewStream(ctx, pid, StatusProtocol)
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	if d, ok := ctx.Deadline(); ok {
		st.SetDeadline(d)
	}
	var l NodeLoad
	if err := readControl(st, &l); err != nil {
		st.Reset()
		return fail(err)
	}
	if l.Node != id {
		return fail(fmt.Errorf("answered as %q", l.Node))
	}
	l.RTTMillis, l.Err = float64(time.Since(start).Microseconds())/1000, ""
	return l
}

package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/strata-llm/strata/cluster"
	"github.com/strata-llm/strata/kernels"
	"github.com/strata-llm/strata/node/api"
	"github.com/strata-llm/strata/node/gpu"
	"github.com/strata-llm/strata/node/p2p"
	"github.com/strata-llm/strata/node/weights"
	"github.com/strata-llm/strata/pipeline"
	"github.com/strata-llm/strata/pipeline/arch"
	"github.com/strata-llm/strata/pipeline/arch/llama"
	"github.com/strata-llm/strata/pipeline/gguf"
	"github.com/strata-llm/strata/pipeline/sched"
	"github.com/strata-llm/strata/pipeline/tokenizer"
	"github.com/strata-llm/strata/pipeline/wire"
)

// MemberConfig configures a cluster member: `strata init` (Init) or
// `strata join` (Join and Token). Every member holds a local copy of the
// model, serves the layers the map assigns it, and answers the API as a
// gateway over the cluster's current route.
type MemberConfig struct {
	// Model is the GGUF path of this host's copy of the model. A joiner
	// may have none: it then fetches the header and the tensors of the
	// layers it is given from its peers (verified against the cluster's
	// manifest) into slices under DataDir/models, and serves from those.
	Model   string
	DataDir string   // identity, Raft state, the join file; "" is refused
	Listen  []string // libp2p multiaddrs; none: /ip4/127.0.0.1/tcp/0
	API     string   // HTTP listen address; "": 127.0.0.1:8080
	APIKeys []string
	// APIKeyFile holds more API keys, reread when it changes (api.Config's).
	APIKeyFile string
	PSK        []byte // private network key (TCP only), or nil
	// Discovery and NAT traversal, as p2p.HostConfig has them: bootstrap
	// peers, mDNS on the LAN, the DHT, AutoNAT with hole punching and relay
	// client, and serving as a relay for others.
	Bootstrap    []string
	MDNS         bool
	DHT          p2p.DHTMode
	NAT          bool
	RelayService bool

	// Init starts a new cluster (or restarts this member of one, when the
	// data dir has its state).
	Init bool
	// Join is a member's full address (with /p2p/ID) to join through, and
	// Token the join token `strata init` printed.
	Join  string
	Token string
	// TokenTTL is how long the join token written at init is valid (0: 24 h).
	TokenTTL time.Duration
	// ChunkSize is the manifest's chunk size, at init (0:
	// weights.DefaultChunkSize).
	ChunkSize int64

	// Capacity caps the bytes of weights this node offers (0: what the
	// inventory measures).
	Capacity  int64
	Inventory gpu.Prober // nil: gpu.NVML

	Timeouts  cluster.Timeouts
	DeadAfter time.Duration // 0: 5 s
	// ReapAfter is how long a dead member stays in the map before it is
	// removed and must join again with a token (0: 24 h).
	ReapAfter time.Duration
	// LeaderLostAfter is how long the member goes without a known leader
	// before it asks its peers whether it is still a member (and then
	// how often it asks again): one removed while away joins again with
	// Token if that still admits it, or stops (0: 1 min).
	LeaderLostAfter time.Duration
	Voters          int // 0: 3
	// Failover bounds how long a request waits for a new route after a
	// stage fails (0: 60 s).
	Failover time.Duration

	ModelName string
	Codec     wire.Codec
	Threads   int
	KVBudget  int64
	MaxSeqs   int
	MaxQueue  int
	// PrefixCache is how many positions of finished sequences the gateway
	// keeps on the stages for requests that begin with their tokens
	// (pipeline.DriverConfig.PrefixCache); 0: the model's context length,
	// negative: none.
	PrefixCache int
	Logger      *slog.Logger
	// Listening, when set, is called once the member serves its API, with
	// the member's full libp2p address and its API address.
	Listening func(addr, api string)
}

// Member is a running cluster member.
type Member struct {
	cfg   MemberConfig
	log   *slog.Logger
	ctx   context.Context
	host  *p2p.Host
	id    peer.ID
	gater *p2p.Gater
	trans *raft.NetworkTransport
	cl    *cluster.Cluster
	file  *gguf.File
	acfg  arch.Config
	tok   *tokenizer.Tokenizer
	model cluster.Model
	pool  *kernels.Pool
	self  cluster.Node
	route *routeStage
	wsrv  *weights.Server
	full  *weights.FileSource // the whole model file, when this host has it
	// header is the model file's header, fetched and verified, when this
	// host has no copy of the file.
	header []byte
	// knowsMembers is set once this node has seen the members in its map.
	knowsMembers atomic.Bool
	// addrsReported is when reconcile last reported this member's
	// addresses (reportAddrs); reconcile's own.
	addrsReported time.Time

	// metrics is the API's, once Run has made it (the route counts its
	// failovers there).
	metrics *api.Metrics
	// drv is the gateway's driver, once Run has made it; loads samples
	// its counters and the stage's (meter).
	drv   atomic.Pointer[pipeline.Driver]
	loads loadMeter
	// recent is Loads' last answer, which it reuses for loadsFresh.
	recent struct {
		sync.Mutex
		at    time.Time
		index uint64 // the map's
		loads []NodeLoad
	}
	// halt is closed when this member must stop (haltWith): revoked (in
	// the map or by the leader's word), or found removed while away and
	// unable to join again. Run then stops and returns haltErr.
	halt     chan struct{}
	haltOnce sync.Once
	haltErr  error // set before halt is closed

	mu     sync.Mutex
	loaded *loadedStage // the layers this member serves, if any
	leave  chan struct{}
	left   bool
	// fetched are the stats of this member's fetches of weights.
	fetched []weights.FetchStats
}

// loadedStage is the assignment this member serves: its layers on a
// Local, behind the stage protocol.
type loadedStage struct {
	a     cluster.Assignment
	stage *lockedStage
	srv   *p2p.StageServer
	slice *weights.FileSource // the fetched slice it serves from, if any
	since time.Time           // when it was loaded
}

// lockedStage serialises Forward on a stage used both by the stage server
// and by this member's own gateway; once closed it fails every call with
// errMoved.
type lockedStage struct {
	mu     sync.Mutex
	st     *pipeline.Local
	closed bool
}

// errMoved: this member's stage was unloaded (its assignment moved).
var errMoved = errors.New("the local stage moved")

func (l *lockedStage) Forward(ctx context.Context, b *pipeline.Batch) (*pipeline.Batch, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errMoved
	}
	return l.st.Forward(ctx, b)
}

func (l *lockedStage) End(ctx context.Context, ids []uint64) error {
	return l.st.End(ctx, ids)
}

// Forks implements pipeline.Forking: a Local takes forked sessions.
func (l *lockedStage) Forks() bool { return l.st.Forks() }

func (l *lockedStage) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

// StartMember starts a member: its host, its Raft member, and, for init,
// a new cluster; for join, its admission through cfg.Join. It returns
// once the member is in the cluster; Run serves.
func StartMember(ctx context.Context, cfg MemberConfig) (_ *Member, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.DataDir == "" {
		return nil, errors.New("member: a data dir is needed")
	}
	if !cfg.Init && cfg.Join == "" {
		return nil, errors.New("member: init a cluster or join one")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	m := &Member{cfg: cfg, log: log, ctx: ctx, leave: make(chan struct{}), halt: make(chan struct{})}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if cfg.Model != "" {
		if m.full, err = weights.OpenSource(cfg.Model); err != nil {
			return nil, err
		}
		m.file = m.full.File()
		if err := m.readModel(); err != nil {
			return nil, err
		}
		if m.model, err = describeModel(cfg.Model, m.file, m.acfg, cfg.DataDir, cfg.ChunkSize); err != nil {
			return nil, err
		}
	} else if cfg.Init {
		return nil, errors.New("member: a cluster starts from a local copy of the model (--model)")
	}
	m.pool = kernels.NewPool(cfg.Threads)
	listen := cfg.Listen
	if len(listen) == 0 {
		listen = []string{"/ip4/127.0.0.1/tcp/0"}
	}
	m.gater = p2p.NewGater()
	if m.host, err = p2p.NewHost(ctx, p2p.HostConfig{
		DataDir: cfg.DataDir, Listen: listen, PSK: cfg.PSK, Gater: m.gater, Logger: log,
		Bootstrap: cfg.Bootstrap, MDNS: cfg.MDNS, DHT: cfg.DHT, NAT: cfg.NAT, RelayService: cfg.RelayService,
	}); err != nil {
		return nil, err
	}
	m.id = m.host.ID()
	m.log = log.With("node", shortID(m.id.String()))
	// Raft streams are taken from members only, once this node knows
	// them; before that (a joiner), from the leader that admits it.
	allowRaft := func(p peer.ID) bool {
		return m.gater.IsMember(p) || !m.knowsMembers.Load()
	}
	if m.trans, err = p2p.NewRaftTransport(m.host, p2p.RaftTransportConfig{Logger: log, Allow: allowRaft}); err != nil {
		return nil, err
	}
	if m.cl, err = cluster.Open(cluster.Config{
		DataDir: filepath.Join(cfg.DataDir, "raft"), ID: m.id.String(), Transport: m.trans,
		Bootstrap: cfg.Init, Timeouts: cfg.Timeouts, Voters: cfg.Voters, DeadAfter: cfg.DeadAfter, ReapAfter: cfg.ReapAfter, Logger: m.log,
		RaftLogger: p2p.NewRaftLogger(log),
	}); err != nil {
		return nil, err
	}
	if m.self, err = m.describeSelf(ctx); err != nil {
		return nil, err
	}
	m.host.SetStreamHandler(ControlProtocol, m.handleControl)
	m.host.SetStreamHandler(StatusProtocol, m.handleStatus)
	m.wsrv = weights.Serve(m.host, weights.ServerOptions{Allow: m.gater.IsMember, Logger: m.log})
	if m.full != nil {
		m.wsrv.Add(m.model.Digest, m.full)
	}
	if cfg.Init {
		err = m.initCluster(ctx)
	} else {
		err = m.joinCluster(ctx)
	}
	if err != nil {
		return nil, err
	}
	if m.full == nil {
		if err := m.fetchHeader(ctx); err != nil {
			return nil, err
		}
	}
	m.route = newRouteStage(m, cfg.Failover)
	return m, nil
}

// readModel reads the hyperparameters and the tokenizer of m.file.
func (m *Member) readModel() error {
	var err error
	if m.acfg, err = llama.ReadConfig(m.file); err != nil {
		return err
	}
	m.tok, err = tokenizer.FromGGUF(m.file)
	return err
}

// fetchHeader gets the cluster's model header (metadata, tokenizer,
// tensor table) from peers, for a member without the model file.
func (m *Member) fetchHeader(ctx context.Context) error {
	var mp *cluster.Map
	deadline := time.After(60 * time.Second)
	for {
		ch := m.cl.Changed()
		if mp = m.cl.Map(); mp.Model != nil {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return errors.New("the cluster has no model registered")
		case <-ch:
		}
	}
	if mp.Model.Manifest == nil {
		return fmt.Errorf("the cluster's model %s has no manifest to fetch it by: give this node a copy (--model)", mp.Model.Name)
	}
	m.model = *mp.Model
	dst := m.slicePath("header")
	st, err := m.fetch(ctx, nil, dst, nil)
	if err != nil {
		return fmt.Errorf("fetch the model's header: %w", err)
	}
	b, err := os.ReadFile(weights.HeaderPath(dst))
	if err != nil {
		return err
	}
	if m.file, err = gguf.ParseHeader(b); err != nil {
		return err
	}
	m.header = b
	m.log.Info("fetched the model's header", "model", m.model.Name, "bytes", st.Bytes)
	return m.readModel()
}

// slicePath is where this member keeps a slice of the model.
func (m *Member) slicePath(name string) string {
	return filepath.Join(m.cfg.DataDir, "models", strings.TrimPrefix(m.model.Digest, "sha256:"), name+".gguf")
}

// fetch fetches parts of the model from the peers that hold them into the
// slice dst, reporting progress through report (nil: none).
func (m *Member) fetch(ctx context.Context, parts []string, dst string, report func(done, total int64)) (weights.FetchStats, error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return weights.FetchStats{}, err
	}
	var extra []gguf.KV
	if m.acfg.Vocab > 0 {
		extra = append(extra, gguf.KV{Key: m.acfg.Arch + ".vocab_size", Value: gguf.Value{Type: gguf.TypeUint32, V: uint32(m.acfg.Vocab)}})
	}
	st, err := weights.Fetch(ctx, weights.FetchConfig{
		Host: m.host, Manifest: m.model.Manifest, Digest: m.model.Digest, Parts: parts, Dst: dst, Header: m.header,
		Peers: m.holders, Extra: extra, Progress: report, Logger: m.log,
		OnBadPeer: func(p peer.ID, err error) {
			m.log.Warn("a peer served weights that do not match the manifest: not asking it again", "peer", p, "err", err)
		},
	})
	if err == nil {
		m.mu.Lock()
		m.fetched = append(m.fetched, st)
		m.mu.Unlock()
		if st.Bytes > 0 {
			m.log.Info("fetch done", "parts", len(parts), "bytes", st.Bytes, "chunks", st.Chunks, "refetched", st.Refetched,
				"bad_peers", len(st.BadPeers), "took", st.Duration.Round(time.Millisecond),
				"mb_per_s", fmt.Sprintf("%.1f", float64(st.Bytes)/1e6/max(st.Duration.Seconds(), 1e-9)))
		}
	}
	return st, err
}

// FetchStats returns the stats of this member's fetches of weights.
func (m *Member) FetchStats() []weights.FetchStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.fetched)
}

// holders are the peers that may hold a part of the model, in order of
// preference: those with the whole file, then those serving its layer.
func (m *Member) holders(part string) []peer.ID {
	mp := m.cl.Map()
	layer := weights.LayerOf(part)
	var full, some []peer.ID
	for _, id := range mp.NodeIDs() {
		n := mp.Nodes[id]
		pid, err := peer.Decode(id)
		if err != nil || pid == m.id || n.State == cluster.StateDead {
			continue
		}
		if n.Model == m.model.Digest {
			full = append(full, pid)
			continue
		}
		a, ok := mp.AssignmentOf(id)
		if ok && (part == "" || layer < 0 || (a.Lo <= layer && layer < a.Hi)) {
			some = append(some, pid)
		}
	}
	return append(full, some...)
}

// partsFor are the tensors a stage serving [lo, hi) needs: its blocks',
// the embeddings on the first stage, the output norm and head on the last
// (the embeddings again when the head is tied to them), and the few
// tensors outside any block that every stage may use.
func partsFor(man *cluster.Manifest, lo, hi, layers int) []string {
	tied := !slices.ContainsFunc(man.Tensors, func(t cluster.TensorPart) bool { return t.Name == "output.weight" })
	var parts []string
	for _, t := range man.Tensors {
		var need bool
		switch {
		case t.Layer >= 0:
			need = lo <= t.Layer && t.Layer < hi
		case t.Name == "token_embd.weight":
			need = lo == 0 || (hi == layers && tied)
		case t.Name == "output.weight" || t.Name == "output_norm.weight":
			need = hi == layers
		default:
			need = true
		}
		if need {
			parts = append(parts, t.Name)
		}
	}
	return parts
}

// describeSelf is this node as the map shows it.
func (m *Member) describeSelf(ctx context.Context) (cluster.Node, error) {
	prober := m.cfg.Inventory
	if prober == nil {
		prober = gpu.NVML{Logger: m.log}
	}
	inv, err := prober.Probe(ctx)
	if err != nil {
		return cluster.Node{}, fmt.Errorf("inventory: %w", err)
	}
	res := cluster.Resources{CPUCores: inv.CPUCores, RAMBytes: inv.RAMBytes, Capacity: inv.Capacity()}
	for _, g := range inv.GPUs {
		res.GPUs = append(res.GPUs, cluster.GPU{Index: g.Index, Name: g.Name, UUID: g.UUID, MemoryTotal: g.MemoryTotal, MemoryFree: g.MemoryFree})
	}
	if m.cfg.Capacity > 0 && (res.Capacity <= 0 || m.cfg.Capacity < res.Capacity) {
		res.Capacity = m.cfg.Capacity
	}
	m.log.Info("inventory", "inventory", inv.String(), "capacity", res.Capacity)
	return cluster.Node{ID: m.id.String(), Addrs: m.addrStrings(), Resources: res, State: cluster.StateJoining, Model: m.model.Digest, Fetch: m.full == nil, Reach: m.reach()}, nil
}

// reach returns what AutoNAT has found of this member's reachability, as
// the map records it: public, private, or "" while unknown.
func (m *Member) reach() string {
	if r := m.host.Reachability(); r == p2p.ReachPublic || r == p2p.ReachPrivate {
		return r
	}
	return ""
}

// addrStrings returns the host's addresses, as the map holds them.
func (m *Member) addrStrings() []string {
	var addrs []string
	for _, a := range m.host.Addrs() {
		addrs = append(addrs, a.String())
	}
	return addrs
}

// addrsEvery is the least time between two reports of a member's
// addresses, so that addresses that come and go do not flood the log.
const addrsEvery = 10 * time.Second

// reportAddrs records in the map how others reach this member now, where
// it differs from what the map holds: the host's addresses (a node behind
// NAT gains relayed ones after it joined, once AutoNAT finds it private
// and AutoRelay reserves a slot) and its reachability, once AutoNAT has
// found one (voters are chosen among the directly reachable first). At
// most once every addrsEvery.
func (m *Member) reportAddrs(ctx context.Context, mp *cluster.Map) {
	me := mp.Nodes[m.id.String()]
	if me == nil || me.State == cluster.StateDead || time.Since(m.addrsReported) < addrsEvery {
		return
	}
	addrs, reach := m.addrStrings(), m.reach()
	if reach == "" {
		reach = me.Reach // a finding is not forgotten while AutoNAT looks again
	}
	if reach == me.Reach && slices.Equal(slices.Sorted(slices.Values(addrs)), slices.Sorted(slices.Values(me.Addrs))) {
		return
	}
	m.addrsReported = time.Now()
	if err := m.apply(ctx, &cluster.Command{Type: cluster.CmdSetAddrs, NodeID: me.ID, Addrs: addrs, Reach: reach}); err != nil {
		m.log.Debug("report addresses", "err", err)
		return
	}
	m.log.Info("reported addresses", "addrs", addrs, "reachability", reach)
}

// initCluster bootstraps (or rejoins) the cluster this member started.
func (m *Member) initCluster(ctx context.Context) error {
	if err := m.waitLeader(ctx, 30*time.Second); err != nil {
		return err
	}
	mp := m.cl.Map()
	if mp.Cluster == "" {
		id, secret := cluster.NewSecret()
		if err := m.apply(ctx, &cluster.Command{Type: cluster.CmdInit, Cluster: id, Secret: secret}); err != nil {
			return err
		}
		model := m.model
		if err := m.apply(ctx, &cluster.Command{Type: cluster.CmdRegisterModel, Model: &model}); err != nil {
			return err
		}
	}
	if m.cl.IsLeader() {
		if err := m.cl.Admit(m.self); err != nil {
			return err
		}
	} else if err := m.apply(ctx, &cluster.Command{Type: cluster.CmdAddNode, Node: &m.self}); err != nil {
		return err
	}
	return m.writeJoinFile()
}

// writeJoinFile writes "ADDR TOKEN" to DataDir/join for other hosts to
// join with.
func (m *Member) writeJoinFile() error {
	tok, err := m.Token(m.ctx, m.cfg.TokenTTL, "written at init")
	if err != nil {
		return err
	}
	tmp := filepath.Join(m.cfg.DataDir, "join.tmp")
	if err := os.WriteFile(tmp, []byte(m.Addr()+" "+tok.Token+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(m.cfg.DataDir, "join"))
}

// joinCluster asks the member at cfg.Join to admit this node, and waits
// until this member's copy of the map shows it.
func (m *Member) joinCluster(ctx context.Context) error {
	ai, err := peer.AddrInfoFromString(m.cfg.Join)
	if err != nil {
		return fmt.Errorf("join address %q: %w", m.cfg.Join, err)
	}
	m.gater.Allow(ai.ID)
	cctx, cancel := context.WithTimeout(ctx, controlTimeout)
	err = m.host.Connect(cctx, *ai)
	cancel()
	if err != nil {
		return fmt.Errorf("join: connect to %s: %w", ai.ID, err)
	}
	self := m.self
	if _, err := m.control(ctx, ai.ID, &controlRequest{Op: "join", Token: m.cfg.Token, Node: &self}); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	deadline := time.After(60 * time.Second)
	for {
		ch := m.cl.Changed()
		if mp := m.cl.Map(); mp.Nodes[m.id.String()] != nil {
			m.learnPeers(mp)
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return errors.New("join: admitted, but the map did not reach this node within 60 s")
		}
	}
}

func (m *Member) waitLeader(ctx context.Context, d time.Duration) error {
	deadline := time.After(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for m.cl.Leader() == "" {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return errors.New("no raft leader")
		case <-tick.C:
		}
	}
	return nil
}

// Addr returns the member's full libp2p address (with /p2p/ID).
func (m *Member) Addr() string {
	addrs := m.host.Addrs()
	if len(addrs) == 0 {
		return "/p2p/" + m.id.String()
	}
	return fmt.Sprintf("%s/p2p/%s", addrs[0], m.id)
}

// ID returns the member's peer ID.
func (m *Member) ID() peer.ID { return m.id }

// Cluster returns the member's Raft member and map.
func (m *Member) Cluster() *cluster.Cluster { return m.cl }

// Run serves until ctx ends or the member has left the cluster: the
// leader's duties, loading the assigned layers, the stage protocol and the
// HTTP API.
func (m *Member) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	metrics := api.NewMetrics()
	metrics.Registry().MustRegister(newClusterCollector(m))
	m.metrics = metrics
	drv, err := pipeline.NewDriver([]pipeline.Stage{m.route}, pipeline.DriverConfig{
		StagesCarry:   true,
		Sched:         sched.Config{MaxSeqs: m.cfg.MaxSeqs, MaxQueue: m.cfg.MaxQueue},
		IsEOG:         m.tok.IsEOG,
		ContextLength: m.acfg.ContextLength,
		Logger:        m.log,
		PrefixCache:   prefixCache(m.cfg.PrefixCache, m.acfg.ContextLength),
	})
	if err != nil {
		return err
	}
	sp := &servedPipeline{file: m.file, cfg: m.acfg, tok: m.tok, remote: true, kvBytes: m.kvBytes}
	srv, gw := newAPI(sp, drv, m.cfg.Model, api.Config{
		ModelName: m.cfg.ModelName, APIKeys: m.cfg.APIKeys, APIKeyFile: m.cfg.APIKeyFile, Metrics: metrics, Logger: m.log, Admin: m.adminHandler(),
	})
	gw.info.Digest = m.model.Digest
	gw.stages = m.stageInfos
	addr := m.cfg.API
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	m.self.API = ln.Addr().String()
	self := m.self
	if err := m.apply(ctx, &cluster.Command{Type: cluster.CmdAddNode, Node: &self}); err != nil {
		ln.Close()
		return fmt.Errorf("report the API address: %w", err)
	}

	m.drv.Store(drv)
	// The driver outlives ctx until the API has let the requests in
	// flight finish (api.Config.ShutdownTimeout): stopping it with ctx
	// failed them at once.
	drvCtx, stopDrv := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDrv()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	wg.Go(func() { errs <- m.meter(ctx) })
	wg.Go(func() { errs <- m.cl.Run(ctx) })
	wg.Go(func() { errs <- drv.Run(drvCtx) })
	wg.Go(func() { errs <- m.reconcile(ctx) })
	wg.Go(func() { errs <- m.watchLeader(ctx) })
	wg.Go(func() {
		errs <- srv.Serve(ctx, ln)
		stopDrv()
	})
	m.log.Info("member serving", "addr", m.Addr(), "api", ln.Addr().String())
	if m.cfg.Listening != nil {
		m.cfg.Listening(m.Addr(), ln.Addr().String())
	}
	var all []error
	select {
	case <-ctx.Done():
	case <-m.leave:
	case <-m.halt:
		all = append(all, m.stopHalted())
	}
	cancel()
	wg.Wait()
	close(errs)
	for e := range errs {
		all = append(all, e)
	}
	return errors.Join(all...)
}

// kvBytes is the KV cache this member's stage holds.
func (m *Member) kvBytes() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.loaded == nil {
		return 0
	}
	return m.loaded.stage.st.KVBytes()
}

// stageInfos describes the cluster's current route for /info.
func (m *Member) stageInfos() []api.StageInfo {
	mp := m.cl.Map()
	route := mp.Route(func(id string) bool { n := mp.Nodes[id]; return n != nil && n.State == cluster.StateServing }, 0)
	infos := make([]api.StageInfo, 0, len(route))
	for _, a := range route {
		infos = append(infos, api.StageInfo{Peer: a.Node, Start: a.Lo, End: a.Hi, State: string(mp.Nodes[a.Node].State)})
	}
	return infos
}

// reconcile makes this member what the map says it is, at every change:
// it knows every member's addresses, loads the layers it is assigned,
// reports them served, rejoins after being marked dead, and keeps its own
// addresses and reachability current in the map.
func (m *Member) reconcile(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		ch := m.cl.Changed()
		mp := m.cl.Map()
		m.learnPeers(mp)
		if err := m.converge(ctx, mp); err != nil && ctx.Err() == nil {
			m.log.Warn("reconcile", "err", err)
		}
		m.reportAddrs(ctx, mp)
		select {
		case <-ctx.Done(): // the stage stays for the requests in flight; Close unloads it
			return nil
		case <-ch:
		case <-tick.C:
		}
	}
}

// learnPeers puts every member's addresses in the peerstore, lets members
// through the gater, and bans the revoked, closing their connections.
func (m *Member) learnPeers(mp *cluster.Map) {
	m.banRevoked(mp)
	ids := make([]peer.ID, 0, len(mp.Nodes))
	for id, n := range mp.Nodes {
		pid, err := peer.Decode(id)
		if err != nil {
			continue
		}
		ids = append(ids, pid)
		if pid == m.id {
			continue
		}
		for _, s := range n.Addrs {
			if a, err := ma.NewMultiaddr(s); err == nil {
				m.host.Peerstore().AddAddr(pid, a, peerstore.PermanentAddrTTL)
			}
		}
	}
	m.gater.SetMembers(ids)
	if len(ids) > 0 {
		m.knowsMembers.Store(true)
	}
}

// converge takes one step towards the map's view of this member.
func (m *Member) converge(ctx context.Context, mp *cluster.Map) error {
	me := mp.Nodes[m.id.String()]
	if me == nil {
		return nil // removed: Leave handles the exit
	}
	m.mu.Lock()
	left := m.left
	m.mu.Unlock()
	if left {
		return nil
	}
	if me.State == cluster.StateDead {
		m.log.Warn("the cluster marked this node dead; rejoining")
		return m.apply(ctx, &cluster.Command{Type: cluster.CmdSetState, NodeID: me.ID, State: cluster.StateJoining})
	}
	a, has := mp.AssignmentOf(me.ID)
	m.mu.Lock()
	cur := m.loaded
	m.mu.Unlock()
	switch {
	case !has:
		if cur != nil {
			m.unload()
		}
		if me.State == cluster.StateJoining || me.State == cluster.StateLoading {
			return m.apply(ctx, &cluster.Command{Type: cluster.CmdSetState, NodeID: me.ID, State: cluster.StateServing})
		}
		return nil
	case cur != nil && cur.a == a:
		if me.State != cluster.StateServing && me.State != cluster.StateDraining {
			return m.apply(ctx, &cluster.Command{Type: cluster.CmdSetState, NodeID: me.ID, State: cluster.StateServing, Epoch: a.Epoch})
		}
		return nil
	}
	if err := m.load(ctx, a); err != nil {
		return err
	}
	return m.apply(ctx, &cluster.Command{Type: cluster.CmdSetState, NodeID: me.ID, State: cluster.StateServing, Epoch: a.Epoch})
}

// load serves assignment a in place of what this member served.
func (m *Member) load(ctx context.Context, a cluster.Assignment) error {
	m.unload()
	start := time.Now()
	file := m.file
	var slice *weights.FileSource
	if m.full == nil {
		var err error
		if slice, err = m.fetchLayers(ctx, a); err != nil {
			return err
		}
		file = slice.File()
	}
	mdl, err := arch.Load(file, a.Lo, a.Hi, arch.Options{Pool: m.pool, Logger: m.log})
	if err != nil {
		if slice != nil {
			slice.Close()
		}
		return fmt.Errorf("load layers %d-%d: %w", a.Lo, a.Hi, err)
	}
	ls := &lockedStage{st: pipeline.NewLocal(mdl, pipeline.LocalConfig{KVBudget: m.cfg.KVBudget, IdleTimeout: 10 * time.Minute, Logger: m.log})}
	srv, err := p2p.ServeStage(m.host, ls, p2p.ServeOptions{
		Layers: p2p.LayerRange{Lo: a.Lo, Hi: a.Hi}, Epoch: a.Epoch, Codec: m.cfg.Codec, Logger: m.log,
		Allow: func(p peer.ID) bool { return m.gater.IsMember(p) },
	})
	if err != nil {
		if slice != nil {
			slice.Close()
		}
		return err
	}
	if slice != nil {
		m.wsrv.Add(m.model.Digest, slice)
	}
	m.mu.Lock()
	m.loaded = &loadedStage{a: a, stage: ls, srv: srv, slice: slice, since: time.Now()}
	m.mu.Unlock()
	m.log.Info("serving layers", "layers", fmt.Sprintf("%d:%d", a.Lo, a.Hi), "epoch", a.Epoch, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// fetchLayers fetches the tensors of assignment a from peers (or finds
// them in the slice an earlier run fetched) and opens the slice,
// reporting its progress in the map.
func (m *Member) fetchLayers(ctx context.Context, a cluster.Assignment) (*weights.FileSource, error) {
	dst := m.slicePath(fmt.Sprintf("layers-%d-%d", a.Lo, a.Hi))
	var last time.Time
	report := func(done, total int64) {
		if time.Since(last) < time.Second || total == 0 {
			return
		}
		last = time.Now()
		p := float64(done) / float64(total)
		if err := m.apply(ctx, &cluster.Command{Type: cluster.CmdSetState, NodeID: m.id.String(), State: cluster.StateLoading, Progress: p}); err != nil {
			m.log.Debug("report progress", "err", err)
		}
	}
	if _, err := m.fetch(ctx, partsFor(m.model.Manifest, a.Lo, a.Hi, m.model.Layers), dst, report); err != nil {
		return nil, fmt.Errorf("fetch layers %d-%d: %w", a.Lo, a.Hi, err)
	}
	return weights.OpenSource(dst)
}

// unload stops serving this member's layers.
func (m *Member) unload() {
	m.mu.Lock()
	cur := m.loaded
	m.loaded = nil
	m.mu.Unlock()
	if cur == nil {
		return
	}
	cur.stage.close()
	cur.srv.Close()
	if cur.slice != nil {
		m.wsrv.Remove(m.model.Digest)
		cur.slice.Close()
	}
	m.log.Info("stopped serving layers", "layers", fmt.Sprintf("%d:%d", cur.a.Lo, cur.a.Hi))
}

// localStage returns this member's stage when it serves exactly a.
func (m *Member) localStage(a cluster.Assignment) pipeline.Stage {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.loaded != nil && m.loaded.a == a {
		return m.loaded.stage
	}
	return nil
}

// Drain moves this member's layers to the others, for maintenance: the
// cluster plans them elsewhere, and Drain returns once they are served
// again without it. The member stays one, holding no layers (it still
// answers the API as a gateway) until Undrain.
func (m *Member) Drain(ctx context.Context) error {
	id := m.id.String()
	if err := m.apply(ctx, &cluster.Command{Type: cluster.CmdSetState, NodeID: id, State: cluster.StateDraining}); err != nil {
		return err
	}
	deadline := time.After(2 * time.Minute)
	for {
		ch := m.cl.Changed()
		mp := m.cl.Map()
		_, has := mp.AssignmentOf(id)
		covered := mp.Route(func(n string) bool {
			nn := mp.Nodes[n]
			return n != id && nn != nil && nn.State == cluster.StateServing
		}, 0) != nil
		if !has && (covered || mp.Model == nil) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return errors.New("the cluster did not move this node's layers within 2 minutes")
		case <-ch:
		}
	}
}

// Undrain ends a Drain: the member may be given layers again.
func (m *Member) Undrain(ctx context.Context) error {
	id := m.id.String()
	me := m.cl.Map().Nodes[id]
	switch {
	case me == nil:
		return fmt.Errorf("%w: %s", ErrNotMember, id)
	case me.State != cluster.StateDraining:
		return fmt.Errorf("%w: this member is %s, not draining", errRefused, me.State)
	}
	return m.apply(ctx, &cluster.Command{Type: cluster.CmdSetState, NodeID: id, State: cluster.StateJoining})
}

// Leave drains this member: the cluster plans its layers elsewhere, it
// waits until they are served again without it, and then leaves the map
// and Raft; Run returns.
func (m *Member) Leave(ctx context.Context) error {
	id := m.id.String()
	if mp := m.cl.Map(); len(mp.Nodes) > 1 && trusted(mp, id) && !trustedBesides(mp, id) {
		return fmt.Errorf("%w: this is the only live member that may vote; volunteers cannot carry the cluster on", errRefused)
	}
	if err := m.Drain(ctx); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	m.mu.Lock()
	m.left = true
	m.mu.Unlock()
	m.unload()
	if m.cl.IsLeader() {
		if err := m.cl.Raft().LeadershipTransfer().Error(); err != nil {
			m.log.Warn("leadership transfer", "err", err)
		}
	}
	if err := m.apply(ctx, &cluster.Command{Type: cluster.CmdRemoveNode, NodeID: id}); err != nil {
		return err
	}
	m.log.Info("left the cluster")
	m.mu.Lock()
	if m.leave != nil {
		select {
		case <-m.leave:
		default:
			close(m.leave)
		}
	}
	m.mu.Unlock()
	return nil
}

// Close stops the member's stage, Raft member and host.
func (m *Member) Close() error {
	m.unload()
	if m.route != nil {
		m.route.close()
	}
	var errs []error
	if m.wsrv != nil {
		errs = append(errs, m.wsrv.Close())
	}
	if m.cl != nil {
		errs = append(errs, m.cl.Close())
	}
	if m.trans != nil {
		errs = append(errs, m.trans.Close())
	}
	if m.host != nil {
		errs = append(errs, m.host.Close())
	}
	if m.pool != nil {
		m.pool.Close()
	}
	if m.full != nil {
		errs = append(errs, m.full.Close())
	}
	return errors.Join(errs...)
}

// RunMember starts a member and serves until ctx ends or it leaves.
func RunMember(ctx context.Context, cfg MemberConfig) error {
	m, err := StartMember(ctx, cfg)
	if err != nil {
		return err
	}
	defer m.Close()
	return m.Run(ctx)
}

// describeModel describes the model file for the map: its digest (the
// sha256 of the file, cached in dataDir beside the file's size and time)
// and the bytes of each layer.
func describeModel(path string, f *gguf.File, c arch.Config, dataDir string, chunkSize int64) (cluster.Model, error) {
	man, digest, err := manifest(path, dataDir, chunkSize)
	if err != nil {
		return cluster.Model{}, err
	}
	per, _ := pipeline.LayerBytes(f)
	md := cluster.Model{Name: c.Name, Digest: digest, Layers: c.Layers, LayerBytes: make([]int64, c.Layers), Manifest: man}
	if md.Name == "" {
		md.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	for i := range md.LayerBytes {
		if i < len(per) {
			md.LayerBytes[i] = int64(per[i])
		}
	}
	for _, t := range f.Tensors {
		switch {
		case t.Name == "token_embd.weight":
			md.EmbedBytes += int64(t.Size)
		case !strings.HasPrefix(t.Name, "blk."):
			md.HeadBytes += int64(t.Size)
		}
	}
	return md, nil
}

// manifest returns the model file's manifest and digest, from a cache in
// dir while the file's size, time and the chunk size stay the same.
func manifest(path, dir string, chunkSize int64) (*cluster.Manifest, string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, "", err
	}
	abs, _ := filepath.Abs(path)
	key := fmt.Sprintf("%s %d %d %d", abs, st.Size(), st.ModTime().UnixNano(), chunkSize)
	cache := filepath.Join(dir, "model.manifest")
	var c struct {
		Key      string            `json:"key"`
		Digest   string            `json:"digest"`
		Manifest *cluster.Manifest `json:"manifest"`
	}
	if b, err := os.ReadFile(cache); err == nil && json.Unmarshal(b, &c) == nil && c.Key == key && c.Manifest != nil {
		return c.Manifest, c.Digest, nil
	}
	man, digest, err := weights.BuildManifest(path, chunkSize)
	if err != nil {
		return nil, "", err
	}
	c.Key, c.Digest, c.Manifest = key, digest, man
	if b, err := json.Marshal(&c); err == nil {
		_ = os.WriteFile(cache, b, 0o600)
	}
	return man, digest, nil
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[len(id)-8:]
	}
	return id
}

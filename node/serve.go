package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-llm/strata/node/api"
	"github.com/strata-llm/strata/node/p2p"
	"github.com/strata-llm/strata/pipeline"
	"github.com/strata-llm/strata/pipeline/arch"
	"github.com/strata-llm/strata/pipeline/arch/llama"
	"github.com/strata-llm/strata/pipeline/gguf"
	"github.com/strata-llm/strata/pipeline/sample"
	"github.com/strata-llm/strata/pipeline/sched"
	"github.com/strata-llm/strata/pipeline/tokenizer"
	"github.com/strata-llm/strata/pipeline/wire"
)

// ServeConfig configures Serve: one host running a model as in-process
// pipeline stages behind the HTTP API. The zero value of every field but
// Model works.
type ServeConfig struct {
	Model   string   // GGUF path
	Stages  int      // in-process stages; 0: 1
	API     string   // HTTP listen address, host:port; "": 127.0.0.1:8080
	APIKeys []string // accepted bearer keys; none (and no APIKeyFile): the API is open
	// APIKeyFile holds more keys, reread when it changes (api.Config's).
	APIKeyFile string
	ModelName  string // the model's ID in the API; "": general.name or the file name
	// Codec carries activations between the stages, encoded and decoded as
	// the network will; the zero value is lossless.
	Codec    wire.Codec
	Threads  int   // kernel threads; 0: GOMAXPROCS
	KVBudget int64 // bytes of KV cache per stage; 0: no limit
	MaxSeqs  int   // sequences decoded together; 0: the scheduler's default
	MaxQueue int   // requests waiting before 429; 0: the scheduler's default
	// PrefixCache is how many positions of finished sequences are kept on
	// the stages for requests that begin with their tokens
	// (pipeline.DriverConfig.PrefixCache); 0: the model's context length,
	// negative: none. Stage nodes of an older version (Route) take no
	// forked sessions: the cache is then off.
	PrefixCache int
	// Route, when set, is the pipeline: the full libp2p addresses (with
	// /p2p/ID) of stage processes (`strata node`) whose layer ranges cover
	// the model in order. Stages, Threads and KVBudget then do not apply;
	// Codec is what the stages send back.
	Route   []string
	DataDir string // the gateway's libp2p identity, with Route; "": a fresh one
	PSK     []byte // the private network's key, with Route
	Logger  *slog.Logger
	// Listening, when set, is called with the API's address once it
	// accepts connections (tests use it with API "127.0.0.1:0").
	Listening func(addr string)
}

// prefixCache is the positions a gateway's prefix cache keeps for a
// configured n (0: the context length, negative: none).
func prefixCache(n, contextLength int) int {
	switch {
	case n < 0:
		return 0
	case n == 0:
		return contextLength
	}
	return n
}

// Serve serves the OpenAI- and TGI-compatible API on cfg.API until ctx
// ends, over cfg.Stages in-process stages of cfg.Model, or, when cfg.Route
// is set, over the stage processes at those addresses (the gateway then
// reads only the tokenizer and hyperparameters of its copy of the model).
func Serve(ctx context.Context, cfg ServeConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	metrics := api.NewMetrics()
	var pipe *servedPipeline
	var err error
	if len(cfg.Route) > 0 {
		pipe, err = openRoute(ctx, cfg, log)
	} else {
		pipe, err = openLocal(cfg, log)
	}
	if err != nil {
		return err
	}
	defer pipe.close()
	pc := prefixCache(cfg.PrefixCache, pipe.cfg.ContextLength)
	if pc > 0 && slices.ContainsFunc(pipe.stages, func(s pipeline.Stage) bool { return !pipeline.Forks(s) }) {
		log.Warn("a stage node takes no forked sessions (an older version): the prefix cache is off")
		pc = 0
	}
	drv, err := pipeline.NewDriver(pipe.stages, pipeline.DriverConfig{
		PrefixCache:   pc,
		Codec:         pipe.codec,
		StagesCarry:   pipe.remote,
		Sched:         sched.Config{MaxSeqs: cfg.MaxSeqs, MaxQueue: cfg.MaxQueue},
		IsEOG:         pipe.tok.IsEOG,
		ContextLength: pipe.cfg.ContextLength,
		Logger:        log,
		ObserveStage: func(i int, d time.Duration) {
			metrics.ObserveStage(strconv.Itoa(i), d)
		},
	})
	if err != nil {
		return err
	}
	srv, _ := newAPI(pipe, drv, cfg.Model, api.Config{ModelName: cfg.ModelName, APIKeys: cfg.APIKeys, APIKeyFile: cfg.APIKeyFile, Metrics: metrics, Logger: log})

	addr := cfg.API
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	for i, st := range pipe.infos {
		log.Info("stage ready", "stage", i, "layers", fmt.Sprintf("%d:%d", st.Start, st.End), "peer", st.Peer)
	}
	if cfg.Listening != nil {
		cfg.Listening(ln.Addr().String())
	}

	// The driver outlives ctx until the API has let the requests in flight
	// finish (api.Config.ShutdownTimeout): stopping it with ctx failed
	// them at once.
	drvCtx, stopDrv := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDrv()
	runErr := make(chan error, 1)
	go func() { runErr <- drv.Run(drvCtx) }()
	err = srv.Serve(ctx, ln)
	stopDrv()
	return errors.Join(err, <-runErr)
}

// newAPI builds the HTTP API over a gateway that drives drv through pipe:
// the model's chat template (a default when it does not compile), the
// pipeline's gauges read at every scrape, and the active sequences gauge.
// cfg.Metrics must be set.
func newAPI(pipe *servedPipeline, drv *pipeline.Driver, modelPath string, cfg api.Config) (*api.Server, *gateway) {
	chat, err := tokenizer.ChatTemplateFromGGUF(pipe.file, pipe.tok)
	if err != nil {
		cfg.Logger.Warn("the model's chat template does not compile; using a default", "err", err)
		chat = tokenizer.DefaultChatTemplate(pipe.tok)
	}
	gw := newGateway(pipe, drv, modelPath)
	metrics := cfg.Metrics
	metrics.OnScrape(func() { gw.refresh(metrics) })
	metrics.Registry().MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_sequences_active", Help: "Sequences admitted or queued and not yet finished.",
	}, func() float64 { st := drv.Stats(); return float64(st.Queued + st.Running) }))
	return api.New(cfg, gw, api.NewTokenizer(pipe.tok, chat), gw), gw
}

// servedPipeline is what a gateway serves: the stages, in order, with the
// model's tokenizer and hyperparameters.
type servedPipeline struct {
	file    *gguf.File
	cfg     arch.Config
	tok     *tokenizer.Tokenizer
	stages  []pipeline.Stage
	infos   []api.StageInfo
	codec   wire.Codec   // between in-process stages
	remote  bool         // the stages are remote and carry activations themselves
	kvBytes func() int64 // KV cache in use on this host
	close   func()
}

// openLocal splits the model into in-process stages.
func openLocal(cfg ServeConfig, log *slog.Logger) (*servedPipeline, error) {
	split, err := pipeline.OpenSplit(cfg.Model, max(cfg.Stages, 1), pipeline.SplitOptions{Threads: cfg.Threads, Logger: log, KVBudget: cfg.KVBudget})
	if err != nil {
		return nil, err
	}
	p := &servedPipeline{
		file: split.File, cfg: split.Config, tok: split.Tokenizer, stages: split.Stages(), codec: cfg.Codec,
		close: func() { split.Close() },
		kvBytes: func() int64 {
			var kv int64
			for _, l := range split.Locals {
				kv += l.KVBytes()
			}
			return kv
		},
	}
	for _, l := range split.Locals {
		lo, hi := l.Range()
		p.infos = append(p.infos, api.StageInfo{Peer: "local", Start: lo, End: hi, State: "serving"})
	}
	return p, nil
}

// openRoute dials the stage processes of cfg.Route, in order, and checks
// that their layer ranges cover the model.
func openRoute(ctx context.Context, cfg ServeConfig, log *slog.Logger) (*servedPipeline, error) {
	f, err := gguf.Open(cfg.Model)
	if err != nil {
		return nil, err
	}
	p := &servedPipeline{file: f, remote: true, kvBytes: func() int64 { return 0 }}
	var h *p2p.Host
	var remotes []interface{ Close() error }
	p.close = func() {
		for _, r := range remotes {
			r.Close()
		}
		if h != nil {
			h.Close()
		}
		f.Close()
	}
	fail := func(err error) (*servedPipeline, error) { p.close(); return nil, err }
	if p.cfg, err = llama.ReadConfig(f); err != nil {
		return fail(err)
	}
	if p.tok, err = tokenizer.FromGGUF(f); err != nil {
		return fail(err)
	}
	if h, err = p2p.NewHost(ctx, p2p.HostConfig{DataDir: cfg.DataDir, PSK: cfg.PSK, Logger: log}); err != nil {
		return fail(err)
	}
	var hops []p2p.RouteHop
	for _, a := range cfg.Route {
		ai, err := peer.AddrInfoFromString(a)
		if err != nil {
			return fail(fmt.Errorf("route address %q: %w", a, err))
		}
		hops = append(hops, p2p.RouteHop{Peer: *ai})
	}
	// The stages forward to each other (one hop a stage); the last sends
	// the logits back here.
	route, err := p2p.DialRoute(ctx, h, hops, p2p.RemoteConfig{Codec: cfg.Codec, Logger: log})
	if err != nil {
		return fail(err)
	}
	remotes = append(remotes, route)
	next := 0
	for i, hop := range route.Hops() {
		if hop.Layers.Lo != next {
			return fail(fmt.Errorf("route: %s serves layers %d-%d, but the route needs layer %d next", cfg.Route[i], hop.Layers.Lo, hop.Layers.Hi, next))
		}
		next = hop.Layers.Hi
		p.infos = append(p.infos, api.StageInfo{Peer: hop.Peer.ID.String(), Addr: cfg.Route[i], Start: hop.Layers.Lo, End: hop.Layers.Hi, State: "serving"})
	}
	p.stages = []pipeline.Stage{route}
	if next != p.cfg.Layers {
		return fail(fmt.Errorf("route: its stages end at layer %d of %d", next, p.cfg.Layers))
	}
	return p, nil
}

// gateway adapts the pipeline Driver to the API's Generator and Pipeline.
type gateway struct {
	pipe *servedPipeline
	drv  *pipeline.Driver
	info api.ModelInfo
	// stages, when set, describes the live route for Info (a cluster's
	// changes).
	stages func() []api.StageInfo

	mu               sync.Mutex // guards the wire byte totals already reported
	lastRaw, lastEnc int64
}

func newGateway(s *servedPipeline, d *pipeline.Driver, path string) *gateway {
	name := s.cfg.Name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	info := api.ModelInfo{
		Name:          name,
		Architecture:  s.cfg.Arch,
		ContextLength: s.cfg.ContextLength,
		VocabSize:     s.cfg.Vocab,
		Layers:        s.cfg.Layers,
		Stages:        s.infos,
	}
	if info.ContextLength <= 0 {
		info.ContextLength = 2048
	}
	return &gateway{pipe: s, drv: d, info: info}
}

// Generate implements api.Generator over the Driver.
func (g *gateway) Generate(ctx context.Context, req *api.Request, emit func(api.Chunk) error) error {
	tok := g.pipe.tok
	treq := pipeline.TokenRequest{
		Prompt:      req.Prompt,
		MaxTokens:   req.MaxTokens,
		Sample:      req.Sampling,
		Logprobs:    req.Logprobs,
		TopLogprobs: req.TopLogprobs,
	}
	piece := func(id int) []byte {
		if tok.TokenType(id) == tokenizer.TypeControl {
			return nil // adds no text
		}
		return tok.Piece(id)
	}
	switch {
	case req.Grammar != nil:
		treq.Constraint = req.Grammar.Constraint(piece, tok.IsEOG)
	case req.JSON:
		treq.Constraint = sample.NewJSON(piece, tok.IsEOG)
	}
	_, err := g.drv.GenerateTokens(ctx, treq, func(t pipeline.Token) error {
		return emit(api.Chunk{Token: t.ID, EOG: tok.IsEOG(t.ID), Cached: t.Cached, Logprob: t.Logprob, TopLogprobs: t.Top})
	})
	switch {
	case errors.Is(err, sched.ErrQueueFull):
		return fmt.Errorf("%w: %w", api.ErrOverloaded, err)
	case errors.Is(err, pipeline.ErrStopped):
		return fmt.Errorf("%w: %w", api.ErrShuttingDown, err)
	}
	return err
}

// Info implements api.Pipeline.
func (g *gateway) Info() api.ModelInfo {
	info := g.info
	if g.stages != nil {
		info.Stages = g.stages()
	}
	return info
}

// Health implements api.Pipeline: one token through every stage.
func (g *gateway) Health(ctx context.Context) error {
	start := g.pipe.tok.BOS()
	if start < 0 {
		start = 0
	}
	_, err := g.drv.Generate(ctx, pipeline.TokenRequest{Prompt: []int{start}, MaxTokens: 1, IgnoreEOS: true},
		func(int) error { return nil })
	return err
}

// refresh reads the pipeline's gauges into the API's metrics; it runs on
// every scrape of /metrics.
func (g *gateway) refresh(m *api.Metrics) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.drv.Stats()
	m.SetQueueDepth(st.Queued)
	m.SetKVBytes(g.pipe.kvBytes(), 0)
	m.SetPrefixCache(st.Prefix.Sessions, st.Prefix.Positions, st.Prefix.Hits, st.Prefix.Tokens)
	raw, enc := int64(st.Hops.Rows)*int64(4*g.pipe.cfg.Dim), int64(st.Hops.Bytes)
	m.AddWireBytes(raw-g.lastRaw, enc-g.lastEnc)
	g.lastRaw, g.lastEnc = raw, enc
}

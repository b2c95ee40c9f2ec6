package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-llm/strata/node/api"
	"github.com/strata-llm/strata/pipeline"
	"github.com/strata-llm/strata/pipeline/sched"
	"github.com/strata-llm/strata/pipeline/tokenizer"
	"github.com/strata-llm/strata/pipeline/wire"
)

// ServeConfig configures Serve: one host running a model as in-process
// pipeline stages behind the HTTP API. The zero value of every field but
// Model works.
type ServeConfig struct {
	Model     string   // GGUF path
	Stages    int      // in-process stages; 0: 1
	API       string   // HTTP listen address, host:port; "": 127.0.0.1:8080
	APIKeys   []string // accepted bearer keys; none: the API is open
	ModelName string   // the model's ID in the API; "": general.name or the file name
	// Codec carries activations between the stages, encoded and decoded as
	// the network will; the zero value is lossless.
	Codec    wire.Codec
	Threads  int   // kernel threads; 0: GOMAXPROCS
	KVBudget int64 // bytes of KV cache per stage; 0: no limit
	MaxSeqs  int   // sequences decoded together; 0: the scheduler's default
	MaxQueue int   // requests waiting before 429; 0: the scheduler's default
	Logger   *slog.Logger
	// Listening, when set, is called with the API's address once it
	// accepts connections (tests use it with API "127.0.0.1:0").
	Listening func(addr string)
}

// Serve loads cfg.Model as cfg.Stages in-process stages and serves the
// OpenAI- and TGI-compatible API on cfg.API until ctx ends.
func Serve(ctx context.Context, cfg ServeConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	n := max(cfg.Stages, 1)
	split, err := pipeline.OpenSplit(cfg.Model, n, pipeline.SplitOptions{Threads: cfg.Threads, Logger: log, KVBudget: cfg.KVBudget})
	if err != nil {
		return err
	}
	defer split.Close()
	metrics := api.NewMetrics()
	drv, err := split.NewDriver(pipeline.DriverConfig{
		Codec:  cfg.Codec,
		Sched:  sched.Config{MaxSeqs: cfg.MaxSeqs, MaxQueue: cfg.MaxQueue},
		Logger: log,
		ObserveStage: func(i int, d time.Duration) {
			metrics.ObserveStage(strconv.Itoa(i), d)
		},
	})
	if err != nil {
		return err
	}
	chat, err := tokenizer.ChatTemplateFromGGUF(split.File, split.Tokenizer)
	if err != nil {
		log.Warn("the model's chat template does not compile; using a default", "err", err)
		chat = tokenizer.DefaultChatTemplate(split.Tokenizer)
	}
	gw := newGateway(split, drv, cfg.Model)
	srv := api.New(api.Config{
		ModelName: cfg.ModelName,
		APIKeys:   cfg.APIKeys,
		Metrics:   metrics,
		Logger:    log,
	}, gw, api.NewTokenizer(split.Tokenizer, chat), gw)

	addr := cfg.API
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	for i, l := range split.Locals {
		lo, hi := l.Range()
		log.Info("stage ready", "stage", i, "layers", fmt.Sprintf("%d:%d", lo, hi))
	}
	if cfg.Listening != nil {
		cfg.Listening(ln.Addr().String())
	}

	metrics.OnScrape(func() { gw.refresh(metrics) })
	metrics.Registry().MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_sequences_active", Help: "Sequences admitted or queued and not yet finished.",
	}, func() float64 { st := drv.Stats(); return float64(st.Queued + st.Running) }))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- drv.Run(ctx) }()
	err = srv.Serve(ctx, ln)
	cancel()
	return errors.Join(err, <-runErr)
}

// gateway adapts the pipeline Driver to the API's Generator and Pipeline.
type gateway struct {
	split *pipeline.Split
	drv   *pipeline.Driver
	info  api.ModelInfo

	mu               sync.Mutex // guards the wire byte totals already reported
	lastRaw, lastEnc int64
}

func newGateway(s *pipeline.Split, d *pipeline.Driver, path string) *gateway {
	name := s.Config.Name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	info := api.ModelInfo{
		Name:          name,
		Architecture:  s.Config.Arch,
		ContextLength: s.Config.ContextLength,
		VocabSize:     s.Config.Vocab,
		Layers:        s.Config.Layers,
	}
	if info.ContextLength <= 0 {
		info.ContextLength = 2048
	}
	for _, l := range s.Locals {
		lo, hi := l.Range()
		info.Stages = append(info.Stages, api.StageInfo{Peer: "local", Start: lo, End: hi, State: "serving"})
	}
	return &gateway{split: s, drv: d, info: info}
}

// Generate implements api.Generator over the Driver.
func (g *gateway) Generate(ctx context.Context, req *api.Request, emit func(api.Chunk) error) error {
	tok := g.split.Tokenizer
	_, err := g.drv.GenerateTokens(ctx, pipeline.TokenRequest{
		Prompt:      req.Prompt,
		MaxTokens:   req.MaxTokens,
		Sample:      req.Sampling,
		Logprobs:    req.Logprobs,
		TopLogprobs: req.TopLogprobs,
	}, func(t pipeline.Token) error {
		return emit(api.Chunk{Token: t.ID, EOG: tok.IsEOG(t.ID), Logprob: t.Logprob, TopLogprobs: t.Top})
	})
	switch {
	case errors.Is(err, sched.ErrQueueFull):
		return fmt.Errorf("%w: %w", api.ErrOverloaded, err)
	case errors.Is(err, pipeline.ErrStopped):
		return fmt.Errorf("%w: %w", api.ErrLoading, err)
	}
	return err
}

// Info implements api.Pipeline.
func (g *gateway) Info() api.ModelInfo { return g.info }

// Health implements api.Pipeline: one token through every stage.
func (g *gateway) Health(ctx context.Context) error {
	start := g.split.Tokenizer.BOS()
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
	var kv int64
	for _, l := range g.split.Locals {
		kv += l.KVBytes()
	}
	m.SetKVBytes(kv, 0)
	raw, enc := int64(st.Hops.Rows)*int64(4*g.split.Config.Dim), int64(st.Hops.Bytes)
	m.AddWireBytes(raw-g.lastRaw, enc-g.lastEnc)
	g.lastRaw, g.lastEnc = raw, enc
}

package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/strata-llm/strata/kernels"
	"github.com/strata-llm/strata/node/p2p"
	"github.com/strata-llm/strata/pipeline"
	"github.com/strata-llm/strata/pipeline/arch"
	_ "github.com/strata-llm/strata/pipeline/arch/llama" // registers the llama family
	"github.com/strata-llm/strata/pipeline/gguf"
)

// StageConfig configures RunStage: one process serving a layer range of a
// model over libp2p, for a static pipeline driven by a gateway's route.
type StageConfig struct {
	Model    string   // GGUF path
	Lo, Hi   int      // the layer range [Lo, Hi)
	Listen   []string // libp2p multiaddrs; none: /ip4/127.0.0.1/tcp/0
	DataDir  string   // identity and the addr file; "" is refused
	PSK      []byte   // private network key (TCP only), or nil
	Threads  int      // kernel threads; 0: GOMAXPROCS
	KVBudget int64    // bytes of KV cache; 0: no limit
	Logger   *slog.Logger
	// Listening, when set, is called with the full address (with /p2p/ID)
	// once the stage accepts streams.
	Listening func(addr string)
}

// RunStage loads layers [Lo, Hi) of the model, serves them on the stage
// protocol until ctx ends, and writes its full address to DataDir/addr.
func RunStage(ctx context.Context, cfg StageConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.DataDir == "" {
		return fmt.Errorf("stage: a data dir is needed for the node's identity")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	f, err := gguf.Open(cfg.Model)
	if err != nil {
		return err
	}
	defer f.Close()
	pool := kernels.NewPool(cfg.Threads)
	defer pool.Close()
	m, err := arch.Load(f, cfg.Lo, cfg.Hi, arch.Options{Pool: pool, Logger: log})
	if err != nil {
		return err
	}
	local := pipeline.NewLocal(m, pipeline.LocalConfig{KVBudget: cfg.KVBudget, Logger: log})
	listen := cfg.Listen
	if len(listen) == 0 {
		listen = []string{"/ip4/127.0.0.1/tcp/0"}
	}
	h, err := p2p.NewHost(ctx, p2p.HostConfig{DataDir: cfg.DataDir, Listen: listen, PSK: cfg.PSK, Logger: log})
	if err != nil {
		return err
	}
	defer h.Close()
	srv, err := p2p.ServeStage(h, local, p2p.ServeOptions{Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close()
	addrs := h.Addrs()
	if len(addrs) == 0 {
		return fmt.Errorf("stage: the host listens on no address")
	}
	addr := fmt.Sprintf("%s/p2p/%s", addrs[0], h.ID())
	tmp := filepath.Join(cfg.DataDir, "addr.tmp")
	if err := os.WriteFile(tmp, []byte(addr+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(cfg.DataDir, "addr")); err != nil {
		return err
	}
	log.Info("stage serving", "layers", fmt.Sprintf("%d:%d", cfg.Lo, cfg.Hi), "addr", addr)
	if cfg.Listening != nil {
		cfg.Listening(addr)
	}
	<-ctx.Done()
	return nil
}

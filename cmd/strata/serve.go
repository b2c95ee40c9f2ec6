package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/strata-llm/strata/node"
	"github.com/strata-llm/strata/node/api"
	"github.com/strata-llm/strata/pipeline/wire"
)

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg node.ServeConfig
	fs.StringVar(&cfg.Model, "model", "", "GGUF model `path` (default $STRATA_MODEL)")
	fs.IntVar(&cfg.Stages, "stages", 1, "in-process pipeline stages to split the layers into")
	fs.StringVar(&cfg.API, "api", "127.0.0.1:8080", "HTTP API listen `address` (host:port)")
	fs.StringVar(&cfg.ModelName, "model-name", "", "the model's ID in the API (default: the file's general.name)")
	codec := fs.String("codec", "f32", "activation codec between stages: f32 (lossless), f16, bf16, q8, with +zstd, +s2, +shuffle")
	apiKey := fs.String("api-key", "", "require this bearer key on the API")
	keyFile := fs.String("api-key-file", "", "require one of the keys in this `file` (one per line, # comments; reread when it changes)")
	fs.IntVar(&cfg.Threads, "threads", 0, "kernel threads (0: all cores)")
	fs.Int64Var(&cfg.KVBudget, "kv-budget", 0, "KV cache `bytes` per stage (0: no limit)")
	fs.IntVar(&cfg.MaxSeqs, "max-seqs", 0, "sequences decoded together (0: default 64)")
	fs.IntVar(&cfg.MaxQueue, "max-queue", 0, "requests waiting before 429 (0: default 1024)")
	fs.IntVar(&cfg.PrefixCache, "prefix-cache", 0, "`positions` of finished sequences kept on the stages for requests that begin with their tokens (0: the context length, -1: off)")
	route := fs.String("route", "", "stage node `addresses` (full, with /p2p/ID), comma-separated, covering the layers in order: serve through them instead of in-process stages")
	fs.StringVar(&cfg.DataDir, "data", "", "data `dir` for the gateway's libp2p identity (with --route)")
	pskFile := fs.String("psk-file", "", "private network key `file` (64 hex digits), with --route")
	verbose := fs.Bool("v", false, "debug logging on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: strata serve --model PATH [--stages N | --route ADDR1,ADDR2,...] [--api HOST:PORT] [flags]\n\nServes the model, split into N in-process pipeline stages (or through the\nstage nodes of --route), through the\nOpenAI-compatible (/v1/chat/completions, /v1/completions, /v1/models) and\nTGI-compatible (/generate, /generate_stream, /info, /health, /tokenize,\n/chat_tokenize, /invocations) HTTP API, with /metrics for Prometheus and a\ndashboard at /dashboard.\n\nFlags:")
		fs.PrintDefaults()
	}
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var err error
	if cfg.Model, err = modelFlag(ctx, cfg.Model, stderr); err != nil {
		return err
	}
	if cfg.Codec, err = wire.ParseCodec(*codec); err != nil {
		return err
	}
	if *apiKey != "" {
		cfg.APIKeys = append(cfg.APIKeys, *apiKey)
	}
	if *keyFile != "" {
		if _, err := api.LoadAPIKeys(*keyFile); err != nil { // fail now rather than serve refusing everyone
			return err
		}
		cfg.APIKeyFile = *keyFile
	}
	if *route != "" {
		cfg.Route = strings.Split(*route, ",")
	}
	if cfg.PSK, err = readPSK(*pskFile); err != nil {
		return err
	}
	cfg.Logger = newLogger(stderr, *verbose)
	return node.Serve(ctx, cfg)
}

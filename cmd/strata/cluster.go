package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/strata-llm/strata/cluster"
	"github.com/strata-llm/strata/node"
	"github.com/strata-llm/strata/node/api"
	"github.com/strata-llm/strata/node/p2p"
	"github.com/strata-llm/strata/pipeline/wire"
)

// memberFlags are the flags `strata init` and `strata join` share.
func memberFlags(fs *flag.FlagSet, cfg *node.MemberConfig) func(ctx context.Context, stderr io.Writer) error {
	fs.StringVar(&cfg.Model, "model", "", "GGUF model `path` or hf:// reference of this host's copy (default $STRATA_MODEL; a joiner without one fetches the weights of its layers from its peers)")
	fs.StringVar(&cfg.DataDir, "data", "", "data `dir`: identity, Raft log and snapshots, the join file")
	listen := fs.String("listen", "/ip4/127.0.0.1/tcp/0", "libp2p listen `multiaddrs`, comma-separated (TCP; QUIC as /udp/PORT/quic-v1, not with a PSK)")
	fs.StringVar(&cfg.API, "api", "127.0.0.1:8080", "HTTP API listen `address`")
	apiKey := fs.String("api-key", "", "bearer `key` the API requires (default $STRATA_API_KEY; none: open)")
	keyFile := fs.String("api-key-file", "", "the API also takes the keys in this `file` (one per line, # comments; reread when it changes)")
	pskFile := fs.String("psk-file", "", "private network key `file` (64 hex digits); libp2p allows private networks over TCP only")
	capacity := fs.String("capacity", "", "`bytes` of weights this node offers, like 600M or 12G (default: what the inventory measures)")
	codec := fs.String("codec", "f32", "activation `codec` on the wire: f32 (lossless), f16, bf16, q8, with +zstd, +s2, +shuffle")
	fs.IntVar(&cfg.Threads, "threads", 0, "kernel threads (0: all cores)")
	fs.Int64Var(&cfg.KVBudget, "kv-budget", 0, "KV cache `bytes` (0: no limit)")
	fs.IntVar(&cfg.MaxSeqs, "max-seqs", 0, "sequences decoded together (0: the default)")
	fs.IntVar(&cfg.PrefixCache, "prefix-cache", 0, "`positions` of finished sequences kept on the stages for requests that begin with their tokens (0: the context length, -1: off)")
	fs.StringVar(&cfg.ModelName, "model-name", "", "the model's `id` in the API (default: the file's general.name)")
	heartbeat := fs.Duration("heartbeat", 0, "Raft heartbeat and election timeout (default 1s; raise it for WAN links)")
	fs.DurationVar(&cfg.DeadAfter, "dead-after", 0, "how long a member's heartbeats may fail before it is marked dead (default 5s)")
	fs.DurationVar(&cfg.ReapAfter, "reap-after", 0, "how long a dead member stays in the map before it is removed and must join again with a token (default 24h)")
	fs.IntVar(&cfg.Voters, "voters", 0, "Raft voters, 3 or 5 (default 3)")
	bootstrap := fs.String("bootstrap", "", "bootstrap peers' full `multiaddrs` (with /p2p/ID), comma-separated: dialed at start, seeds of the DHT, static relays with --nat")
	fs.BoolVar(&cfg.MDNS, "mdns", false, "find peers on the LAN with mDNS")
	dht := fs.String("dht", "", "take part in the Strata DHT to find peers beyond the LAN: client, server or auto")
	fs.BoolVar(&cfg.NAT, "nat", false, "behind NAT: port mapping, AutoNAT, hole punching and relay links (relayed peers never carry activations)")
	fs.BoolVar(&cfg.RelayService, "relay-service", false, "be a circuit relay for peers behind NAT (a host with a public address)")
	return func(ctx context.Context, stderr io.Writer) error {
		var err error
		if cfg.Model == "" && os.Getenv("STRATA_MODEL") == "" && !cfg.Init {
			// A joiner without a copy fetches its layers from its peers.
		} else if cfg.Model, err = modelFlag(ctx, cfg.Model, stderr); err != nil {
			return err
		}
		if cfg.DataDir == "" {
			return errors.New("--data DIR is required (the node's identity and Raft state live there)")
		}
		cfg.Listen = strings.Split(*listen, ",")
		if *bootstrap != "" {
			cfg.Bootstrap = strings.Split(*bootstrap, ",")
		}
		cfg.DHT = p2p.DHTMode(*dht)
		if cfg.PSK, err = readPSK(*pskFile); err != nil {
			return err
		}
		if cfg.Capacity, err = parseBytes(*capacity); err != nil {
			return fmt.Errorf("--capacity: %w", err)
		}
		if cfg.Codec, err = wire.ParseCodec(*codec); err != nil {
			return fmt.Errorf("--codec: %w", err)
		}
		if *heartbeat > 0 {
			cfg.Timeouts = cluster.Timeouts{Heartbeat: *heartbeat, Election: *heartbeat, LeaderLease: *heartbeat / 2}
		}
		if k := firstNonEmpty(*apiKey, os.Getenv("STRATA_API_KEY")); k != "" {
			cfg.APIKeys = []string{k}
		}
		if *keyFile != "" {
			if _, err := api.LoadAPIKeys(*keyFile); err != nil { // fail now rather than serve refusing everyone
				return err
			}
			cfg.APIKeyFile = *keyFile
		}
		return nil
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// parseBytes reads "123", "600K", "1.5G" (powers of 1024); "" is 0.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(s), "B"), "I"))
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	switch s[len(s)-1] {
	case 'K':
		mult = 1 << 10
	case 'M':
		mult = 1 << 20
	case 'G':
		mult = 1 << 30
	case 'T':
		mult = 1 << 40
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size like 600M or 12G", s)
	}
	return int64(v * float64(mult)), nil
}

func initCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg node.MemberConfig
	finish := memberFlags(fs, &cfg)
	fs.DurationVar(&cfg.TokenTTL, "token-ttl", 24*time.Hour, "how long the printed join token is valid")
	verbose := fs.Bool("v", false, "debug logging on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: strata init --model PATH --data DIR [--listen MULTIADDR] [--api HOST:PORT] [flags]\n\nStarts a cluster with this node as its first member (or restarts this member\nwhen DIR holds its state). It prints a join token and this node's address,\nand writes `ADDR TOKEN` to DIR/join; other hosts run `strata join ADDR --token TOKEN`.\n\nFlags:")
		fs.PrintDefaults()
	}
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg.Init = true
	if err := finish(ctx, stderr); err != nil {
		return err
	}
	cfg.Logger = newLogger(stderr, *verbose)
	cfg.Listening = func(addr, api string) {
		b, _ := os.ReadFile(cfg.DataDir + "/join")
		_, tok, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
		fmt.Fprintf(stdout, "cluster member at %s\nAPI at http://%s\njoin token (valid %v): %s\n\nJoin another host with:\n  strata join %s --token %s --data DIR [--model PATH]\n(without --model, the host fetches the tensors of its layers from its peers)\n",
			addr, api, cfg.TokenTTL, tok, addr, tok)
	}
	return node.RunMember(ctx, cfg)
}

func joinCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("join", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg node.MemberConfig
	finish := memberFlags(fs, &cfg)
	fs.StringVar(&cfg.Token, "token", "", "the join `token` strata init printed")
	joinFile := fs.String("join-file", "", "read `ADDR TOKEN` from this file (the first member's DIR/join)")
	verbose := fs.Bool("v", false, "debug logging on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: strata join ADDR --token TOKEN --data DIR [--model PATH] [--listen MULTIADDR] [--api HOST:PORT] [flags]\n\nJoins the cluster that the member at ADDR (a full multiaddr with /p2p/ID) belongs\nto. The cluster gives this node layers to serve, from its local copy of the\nmodel (the same file as the cluster's) or, without one, from the tensors of\nthose layers fetched from its peers and verified chunk by chunk; it answers\nthe API like any member.\n\nFlags:")
		fs.PrintDefaults()
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := finish(ctx, stderr); err != nil {
		return err
	}
	if *joinFile != "" {
		b, err := os.ReadFile(*joinFile)
		if err != nil {
			return err
		}
		addr, tok, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
		if !ok {
			return fmt.Errorf("%s: want `ADDR TOKEN`", *joinFile)
		}
		pos = append([]string{addr}, pos...)
		if cfg.Token == "" {
			cfg.Token = tok
		}
	}
	if len(pos) != 1 {
		return errors.New("join: want one ADDR, a member's full multiaddr with /p2p/ID")
	}
	cfg.Join = pos[0]
	cfg.Logger = newLogger(stderr, *verbose)
	cfg.Listening = func(addr, api string) {
		fmt.Fprintf(stdout, "cluster member at %s\nAPI at http://%s\n", addr, api)
	}
	return node.RunMember(ctx, cfg)
}

func leaveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("leave", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := fs.String("api", "127.0.0.1:8080", "the leaving member's API `address`")
	apiKey := fs.String("api-key", "", "bearer `key` (default $STRATA_API_KEY)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: strata leave [--api HOST:PORT]\n\nDrains the member whose API is at HOST:PORT: the cluster moves its layers to\nother members, and once they serve them it leaves the cluster and exits.\n\nFlags:")
		fs.PrintDefaults()
	}
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := node.RequestLeave(ctx, *api, firstNonEmpty(*apiKey, os.Getenv("STRATA_API_KEY"))); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "left the cluster")
	return nil
}

func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := fs.String("api", "127.0.0.1:8080", "any member's API `address`")
	apiKey := fs.String("api-key", "", "bearer `key` (default $STRATA_API_KEY)")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: strata status [--api HOST:PORT] [--json]\n\nPrints the cluster map as a member sees it: nodes, resources, layer ranges,\nstates, the leader and the epoch.\n\nFlags:")
		fs.PrintDefaults()
	}
	if _, err := parse(fs, args); err != nil {
		return err
	}
	st, err := node.FetchStatus(ctx, *api, firstNonEmpty(*apiKey, os.Getenv("STRATA_API_KEY")))
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return node.WriteStatus(stdout, st)
}

package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/strata-llm/strata/node"
)

func nodeCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg node.StageConfig
	fs.StringVar(&cfg.Model, "model", "", "GGUF model `path` (default $STRATA_MODEL)")
	layers := fs.String("layers", "", "the layer range A:B this stage serves (layers A to B-1)")
	listen := fs.String("listen", "/ip4/127.0.0.1/tcp/0", "libp2p listen `multiaddrs`, comma-separated (TCP; QUIC as /udp/PORT/quic-v1, not with a PSK)")
	fs.StringVar(&cfg.DataDir, "data", "", "data `dir`: the node's identity, and its full address in DIR/addr")
	pskFile := fs.String("psk-file", "", "private network key `file` (64 hex digits); libp2p allows private networks over TCP only")
	fs.IntVar(&cfg.Threads, "threads", 0, "kernel threads (0: all cores)")
	fs.Int64Var(&cfg.KVBudget, "kv-budget", 0, "KV cache `bytes` (0: no limit)")
	verbose := fs.Bool("v", false, "debug logging on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: strata node --model PATH --layers A:B --data DIR [--listen MULTIADDR] [flags]\n\nServes layers [A, B) of the model to gateways over libp2p (a static pipeline:\n`strata serve --route ADDR1,ADDR2,...`). Once listening it prints its full\naddress, with /p2p/ID, and writes it to DIR/addr.\n\nFlags:")
		fs.PrintDefaults()
	}
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var err error
	if cfg.Model, err = modelFlag(ctx, cfg.Model, stderr); err != nil {
		return err
	}
	a, b, ok := strings.Cut(*layers, ":")
	if cfg.Lo, err = strconv.Atoi(a); !ok || err != nil {
		return fmt.Errorf("--layers %q: want A:B", *layers)
	}
	if cfg.Hi, err = strconv.Atoi(b); err != nil {
		return fmt.Errorf("--layers %q: want A:B", *layers)
	}
	if cfg.DataDir == "" {
		return errors.New("--data DIR is required (the node's identity lives there)")
	}
	cfg.Listen = strings.Split(*listen, ",")
	if cfg.PSK, err = readPSK(*pskFile); err != nil {
		return err
	}
	cfg.Logger = newLogger(stderr, *verbose)
	cfg.Listening = func(addr string) { fmt.Fprintln(stdout, addr) }
	return node.RunStage(ctx, cfg)
}

// readPSK reads a private network key file of 64 hex digits; "" is none.
func readPSK(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != 32 {
		return nil, fmt.Errorf("psk file %s: want 64 hex digits (a 32-byte key)", path)
	}
	return k, nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/strata-llm/strata/node/hub"
)

const usage = `strata serves large language models across many machines.

Usage:
  strata run   --model PATH [--max-tokens N] [--temperature T] [--seed S] [PROMPT]
                 generate a continuation of PROMPT on this host (all layers);
                 with no PROMPT, an interactive prompt
  strata serve --model PATH [--stages N | --route ADDR,...] [--api HOST:PORT] [--api-key KEY]
                 serve the OpenAI- and TGI-compatible HTTP API, the model split
                 into N in-process pipeline stages or served by stage nodes
  strata node  --model PATH --layers A:B --data DIR [--listen MULTIADDR]
                 serve layers [A, B) over libp2p for a gateway's --route
  strata init  --model PATH --data DIR [--listen MULTIADDR] [--api HOST:PORT] [--capacity BYTES]
                 start a cluster; prints a join token and this node's address
  strata join  ADDR --token TOKEN --data DIR [--model PATH] [--listen ...] [--api ...]
                 join the cluster of the member at ADDR; the cluster gives this
                 node layers to serve (from its copy of the model, or fetched
                 from its peers without one), and every member answers the API
  strata leave [--api HOST:PORT]
                 drain a member: its layers move elsewhere, then it leaves
  strata drain [--undo] [--api HOST:PORT]
                 for maintenance: a member's layers move elsewhere, it stays
  strata status [--api HOST:PORT]
                 the cluster map: nodes, resources, layer ranges, leader, epoch
  strata token create [--ttl D] [--note TEXT] | list | revoke ID
                 issue, list and revoke the join tokens that admit new nodes
  strata revoke [--reason TEXT] [--lift] NODE
                 remove a node for good: members refuse its key until lifted
  strata pull  [--cache DIR] hf://OWNER/REPO[@REV]/FILE.gguf
                 download a model from the Hugging Face Hub into the cache and
                 print its path; --model takes hf://... too and pulls it first
  strata model inspect PATH
                 metadata, tensor table and bytes per layer of a GGUF file
  strata model synth --dim D --layers L --heads H --kv-heads K --ffn F --vocab V --type T OUT.gguf
                 write a random-weight llama model of a real shape
  strata bench [--model PATH | --synth 1b] [--type f16,q8_0,q4_0] [--tokens N]
                 decode throughput beside the memory-bandwidth roofline

Run 'strata COMMAND -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go paceGC(ctx)
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "strata:", err)
		}
		os.Exit(2)
	}
}

// run dispatches a command line; tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return runCmd(ctx, rest, stdin, stdout, stderr)
	case "model":
		if len(rest) == 0 {
			return errors.New("model: want 'inspect' or 'synth'")
		}
		switch rest[0] {
		case "inspect":
			return inspectCmd(rest[1:], stdout, stderr)
		case "synth":
			return synthCmd(rest[1:], stdout, stderr)
		}
		return fmt.Errorf("model: unknown subcommand %q (want inspect or synth)", rest[0])
	case "node":
		return nodeCmd(ctx, rest, stdout, stderr)
	case "serve":
		return serveCmd(ctx, rest, stderr)
	case "init":
		return initCmd(ctx, rest, stdout, stderr)
	case "join":
		return joinCmd(ctx, rest, stdout, stderr)
	case "leave":
		return leaveCmd(ctx, rest, stdout, stderr)
	case "status":
		return statusCmd(ctx, rest, stdout, stderr)
	case "token":
		return tokenCmd(ctx, rest, stdout, stderr)
	case "revoke":
		return revokeCmd(ctx, rest, stdout, stderr)
	case "drain":
		return drainCmd(ctx, rest, stdout, stderr)
	case "bench":
		return benchCmd(ctx, rest, stdout, stderr)
	case "pull":
		return pullCmd(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// parse parses flags that may come before or after the positional
// arguments, and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseOne parses flags around exactly one positional argument and
// returns it; without one it prints the usage and fails with want.
func parseOne(fs *flag.FlagSet, args []string, want string) (string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		fs.Usage()
		return "", fmt.Errorf("%s: want %s", fs.Name(), want)
	}
	return pos[0], nil
}

// newLogger logs to w (stderr) at Info, or Debug with verbose.
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	lvl := slog.LevelInfo
	if verbose {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// modelFlag returns the model path from the flag or STRATA_MODEL; an
// hf://OWNER/REPO/FILE reference is pulled into the cache first (progress on
// stderr) and its local path returned.
func modelFlag(ctx context.Context, v string, stderr io.Writer) (string, error) {
	if v == "" {
		v = os.Getenv("STRATA_MODEL")
	}
	if v == "" {
		return "", errors.New("no model: pass --model PATH or set STRATA_MODEL")
	}
	if hub.IsRef(v) {
		return pullModel(ctx, v, "", stderr, false)
	}
	return v, nil
}

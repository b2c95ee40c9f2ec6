package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/strata-llm/strata/pipeline"
	"github.com/strata-llm/strata/pipeline/sample"
)

func runCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "GGUF model `path` (default $STRATA_MODEL)")
	maxTokens := fs.Int("max-tokens", 256, "tokens to generate at most")
	temp := fs.Float64("temperature", 0.8, "sampling temperature; 0 is greedy")
	topK := fs.Int("top-k", 40, "sample among the k most likely tokens (0: all)")
	topP := fs.Float64("top-p", 0.95, "nucleus sampling threshold (1: off)")
	minP := fs.Float64("min-p", 0.05, "drop tokens below this share of the top probability (0: off)")
	repeat := fs.Float64("repeat-penalty", 1, "repetition penalty over the last 64 tokens (1: off)")
	seed := fs.Uint64("seed", 0, "random seed (0: a fixed default)")
	threads := fs.Int("threads", 0, "kernel threads (0: all cores)")
	verbose := fs.Bool("v", false, "debug logging on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: strata run --model PATH [flags] [PROMPT]\n\nPrints the continuation of PROMPT to stdout as it is generated; logs go to stderr.\nWith no PROMPT, reads prompts interactively, one per line.\n\nFlags:")
		fs.PrintDefaults()
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	path, err := modelFlag(ctx, *model, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, *verbose)
	eng, err := pipeline.Open(path, pipeline.Options{Threads: *threads, Logger: log})
	if err != nil {
		return err
	}
	defer eng.Close()
	req := pipeline.Request{
		MaxTokens: *maxTokens,
		Sample: sample.Params{
			Temperature: float32(*temp), TopK: *topK, TopP: float32(*topP), MinP: float32(*minP),
			RepeatPenalty: float32(*repeat), Seed: *seed,
		},
	}
	emit := func(s string) error { _, err := io.WriteString(stdout, s); return err }
	if len(pos) > 0 {
		req.Prompt = strings.Join(pos, " ")
		_, err := eng.Generate(ctx, req, emit)
		fmt.Fprintln(stdout)
		return err
	}
	// Interactive: one prompt per line until EOF.
	in := bufio.NewScanner(stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for {
		fmt.Fprint(stderr, "> ")
		if !in.Scan() {
			fmt.Fprintln(stderr)
			return in.Err()
		}
		req.Prompt = in.Text()
		if _, err := eng.Generate(ctx, req, emit); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
	}
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/strata-llm/strata/node/hub"
)

// pullCmd runs `strata pull [--cache DIR] hf://OWNER/REPO/FILE.gguf`: the
// file lands in the cache and its local path is printed on stdout; progress
// and logs go to stderr.
func pullCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pull", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cache := fs.String("cache", "", "cache `dir` (default $STRATA_HUB_CACHE, else the user cache dir's strata/hub)")
	verbose := fs.Bool("v", false, "debug logging on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: strata pull [--cache DIR] hf://OWNER/REPO[@REVISION]/FILE.gguf\n\nDownloads a GGUF file from the Hugging Face Hub into the cache (resuming an\ninterrupted download, checking the hub's sha256; the parts of a split model\nNAME-00001-of-0000N.gguf are merged into NAME.gguf) and prints its local path.\nA file already in the cache is not downloaded again.\n\nEnvironment: HF_TOKEN (for gated and private repositories), HF_ENDPOINT\n(default https://huggingface.co), STRATA_HUB_CACHE.\n\nFlags:")
		fs.PrintDefaults()
	}
	ref, err := parseOne(fs, args, "one hf://OWNER/REPO/FILE reference")
	if err != nil {
		return err
	}
	path, err := pullModel(ctx, ref, *cache, stderr, *verbose)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, path)
	return err
}

// pullModel pulls the hub reference s into the cache (dir, or the default
// one) and returns its local path, with progress and logs on stderr.
func pullModel(ctx context.Context, s, dir string, stderr io.Writer, verbose bool) (string, error) {
	ref, err := hub.ParseRef(s)
	if err != nil {
		return "", err
	}
	if dir == "" {
		dir = os.Getenv("STRATA_HUB_CACHE")
	}
	return hub.Pull(ctx, ref, hub.Options{
		Endpoint: os.Getenv("HF_ENDPOINT"),
		Token:    os.Getenv("HF_TOKEN"),
		CacheDir: dir,
		Progress: stderr,
		Logger:   newLogger(stderr, verbose),
	})
}

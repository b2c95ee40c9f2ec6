package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/strata-llm/strata/node"
)

// adminFlags adds the flags every admin command has: a member's API (as
// usage says) and its key.
func adminFlags(fs *flag.FlagSet, usage string) (api, key func() string) {
	a := fs.String("api", "127.0.0.1:8080", usage)
	k := fs.String("api-key", "", "bearer `key` (default $STRATA_API_KEY)")
	return func() string { return *a }, func() string { return firstNonEmpty(*k, os.Getenv("STRATA_API_KEY")) }
}

// tokenCmd is `strata token create|list|revoke`.
func tokenCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const help = "usage: strata token create [--ttl DURATION] [--note TEXT] [--volunteer] [--api HOST:PORT]\n" +
		"       strata token list [--json] [--api HOST:PORT]\n" +
		"       strata token revoke ID [--api HOST:PORT]\n\n" +
		"Issues, lists and revokes the cluster's join tokens. A token admits new\n" +
		"nodes until it expires or is revoked; nodes it admitted stay members."
	if len(args) == 0 {
		fmt.Fprintln(stderr, help)
		return errors.New("token: want create, list or revoke")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("token "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	api, key := adminFlags(fs, "any member's API `address`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, help+"\n\nFlags:")
		fs.PrintDefaults()
	}
	switch sub {
	case "create":
		ttl := fs.Duration("ttl", 24*time.Hour, "how long the token admits joiners")
		note := fs.String("note", "", "`text` saying what the token is for, shown by strata token list")
		volunteer := fs.Bool("volunteer", false, "admit volunteers: they serve layers but never vote, and change only their own entry in the map")
		if _, err := parse(fs, args); err != nil {
			return err
		}
		if *ttl < time.Second {
			return fmt.Errorf("token create: --ttl %v: at least a second", *ttl)
		}
		tok, err := node.RequestToken(ctx, api(), key(), *ttl, *note, *volunteer)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "join token %s (valid until %s):\n%s\n\nJoin another host with:\n  strata join %s --token %s --data DIR [--model PATH]\n(without --model, the host fetches the tensors of its layers from its peers)\n",
			tok.ID, tok.Expires.Local().Format(time.RFC3339), tok.Token, tok.Join, tok.Token)
		return nil
	case "list":
		asJSON := fs.Bool("json", false, "print the tokens as JSON")
		if _, err := parse(fs, args); err != nil {
			return err
		}
		toks, err := node.FetchTokens(ctx, api(), key())
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(toks)
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tADMITS\tISSUED\tBY\tEXPIRES\tNOTE")
		for _, t := range toks {
			admits := "members"
			if t.Volunteer {
				admits = "volunteers"
			}
			by := t.By
			if len(by) > 8 {
				by = by[len(by)-8:]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, admits, t.Issued.Local().Format(time.RFC3339), by, t.Expires.Local().Format(time.RFC3339), t.Note)
		}
		return tw.Flush()
	case "revoke":
		id, err := parseOne(fs, args, "one token ID")
		if err != nil {
			return err
		}
		if err := node.RequestRevokeToken(ctx, api(), key(), id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "token %s revoked: it admits no one\n", id)
		return nil
	}
	fmt.Fprintln(stderr, help)
	return fmt.Errorf("token: unknown subcommand %q (want create, list or revoke)", sub)
}

// revokeCmd is `strata revoke [--lift] NODE`.
func revokeCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("revoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api, key := adminFlags(fs, "any member's API `address`")
	reason := fs.String("reason", "", "`text` saying why, recorded in the map and shown by strata status")
	lift := fs.Bool("lift", false, "lift the node's revocation instead: it may join again, with a token")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: strata revoke NODE [--reason TEXT] [--api HOST:PORT]\n       strata revoke --lift NODE [--api HOST:PORT]\n\n"+
			"Removes a node from the cluster for good: its layers move to others, every\n"+
			"member closes its connections and refuses its key, and it cannot join again,\n"+
			"whatever its token, until the revocation is lifted. The node stops when it\n"+
			"learns of it. NODE is a peer ID, or the end of one as `strata status` shows it.\n\nFlags:")
		fs.PrintDefaults()
	}
	who, err := parseOne(fs, args, "one node")
	if err != nil {
		return err
	}
	if *lift {
		if err := node.RequestLiftRevocation(ctx, api(), key(), who); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revocation of %s lifted: it may join again with a token\n", who)
		return nil
	}
	r, err := node.RequestRevoke(ctx, api(), key(), who, *reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "node %s revoked at %s\n", r.Node, r.At.Local().Format(time.RFC3339))
	return nil
}

// drainCmd is `strata drain [--undo]`.
func drainCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api, key := adminFlags(fs, "the draining member's API `address`")
	undo := fs.Bool("undo", false, "end the drain instead: the member may be given layers again")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: strata drain [--undo] [--api HOST:PORT]\n\n"+
			"Drains the member whose API is at HOST:PORT, for maintenance: the cluster moves\n"+
			"its layers to other members, and once they serve them the command returns. The\n"+
			"member stays in the cluster, holding no layers (it still answers the API), until\n"+
			"`strata drain --undo`. To take a member out for good, use `strata leave`.\n\nFlags:")
		fs.PrintDefaults()
	}
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *undo {
		if err := node.RequestUndrain(ctx, api(), key()); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "undrained: the member may be given layers again")
		return nil
	}
	if err := node.RequestDrain(ctx, api(), key()); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "drained: the member holds no layers until `strata drain --undo`")
	return nil
}

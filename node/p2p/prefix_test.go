package p2p

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/strata-llm/strata/internal/testdata"
	"github.com/strata-llm/strata/pipeline"
)

// TestPrefixCacheRemote runs the turns of a chat with a prefix cache over
// remote stages, one by one and as a chained route: every turn after the
// first forks the last one's session on every peer, and the replies are
// those of in-process stages. A session a peer lost makes the next turn
// run again from its first token, with the same reply.
func TestPrefixCacheRemote(t *testing.T) {
	const gen = 6
	local, err := pipeline.OpenSplit(testdata.Path(t, stories), 3, pipeline.SplitOptions{Threads: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	ref := runDriver(t, local.Stages())
	reply := func(p []int) []int {
		return generateAll(t, ref, []pipeline.TokenRequest{{Prompt: p, MaxTokens: gen, IgnoreEOS: true}})[0]
	}
	prompt := storiesRequests(t, gen)[0].Prompt
	var prompts [][]int
	for i := range 4 {
		prompts = append(prompts, prompt)
		prompt = append(append(slices.Clone(prompt), reply(prompt)...), 300+i, 301+i)
	}

	for _, chained := range []bool{false, true} {
		c := newCluster(t, 3, quiet, RemoteConfig{})
		stages := c.stages()
		if chained {
			stages = []pipeline.Stage{dialRoute(t, c, RemoteConfig{})}
		}
		for i, s := range stages {
			if !pipeline.Forks(s) {
				t.Fatalf("chained %v: stage %d does not say it takes forks", chained, i)
			}
		}
		d, err := pipeline.NewDriver(stages, pipeline.DriverConfig{Logger: quiet, PrefixCache: 1000})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		for i, p := range prompts {
			if i == 3 { // the middle peer loses the kept session
				if ids := c.split.Locals[1].Evict(time.Now().Add(time.Hour)); len(ids) != 1 {
					t.Fatalf("evicted %v", ids)
				}
			}
			res, err := d.Generate(context.Background(), pipeline.TokenRequest{Prompt: p, MaxTokens: gen, IgnoreEOS: true}, func(int) error { return nil })
			if err != nil {
				t.Fatalf("chained %v, turn %d: %v", chained, i, err)
			}
			if want := reply(p); !slices.Equal(res.Tokens, want) {
				t.Errorf("chained %v, turn %d: %v, want %v", chained, i, res.Tokens, want)
			}
			if wantCached := i > 0 && i < 3; (res.Cached > 0) != wantCached {
				t.Errorf("chained %v, turn %d: %d tokens cached", chained, i, res.Cached)
			}
		}
		if st := d.Stats().Prefix; st.Hits != 2 || st.Sessions != 1 {
			t.Errorf("chained %v: %+v", chained, st)
		}
		cancel()
		<-done
		for i, l := range c.split.Locals {
			if n := l.Sessions(); n != 0 {
				t.Errorf("chained %v: stage %d holds %d sessions after the driver stopped", chained, i, n)
			}
		}
		c.close()
	}
}

// TestHelloFeatures checks both sides of the feature bits: a hello
// without a body (a version 1 client) gets the info it always got, and a
// peer that says nothing of forks takes none.
func TestHelloFeatures(t *testing.T) {
	in := stageInfo{lo: 2, hi: 5, name: "layers 2-5", epoch: 9, features: infoForks}
	old := appendInfo(nil, in, false)
	if len(old) != 18+len(in.name) {
		t.Fatalf("an info for a hello without a body is %d bytes, want %d", len(old), 18+len(in.name))
	}
	got, err := decodeInfo(old)
	if err != nil || got.features != 0 || got.epoch != 9 {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	in.epoch = 0
	got, err = decodeInfo(appendInfo(nil, in, true))
	if err != nil || got != in {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, in)
	}
	if got, _ := decodeInfo(appendInfo(nil, in, false)); got.features != 0 || got.epoch != 0 {
		t.Fatalf("decoded %+v", got)
	}
}

package pipeline

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-llm/strata/pipeline/sched"
)

// TestPrefixCache checks the cache's bookkeeping: matches, a longer entry
// making its prefixes redundant, least-recently-used eviction, and pins
// deferring the end of the sessions they hold.
func TestPrefixCache(t *testing.T) {
	seq := func(n int, from int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = from + i
		}
		return s
	}
	c := newPrefixCache(30)
	if end := c.keep(1, seq(3, 0), nil); !slices.Equal(end, []uint64{1}) {
		t.Fatalf("a session shorter than MinPrefix: ended %v, want [1]", end)
	}
	if end := c.keep(1, seq(31, 0), nil); !slices.Equal(end, []uint64{1}) {
		t.Fatalf("a session longer than the cache: ended %v, want [1]", end)
	}
	if end := c.keep(2, seq(10, 0), nil); len(end) != 0 {
		t.Fatalf("ended %v", end)
	}
	if e, n := c.match(append(seq(6, 0), 99, 98)); e == nil || e.id != 2 || n != 6 {
		t.Fatalf("match: %v, %d", e, n)
	}
	if e, n := c.match(seq(10, 0)); e == nil || n != 8 {
		t.Fatalf("a prompt equal to the entry: %v, %d; want 8 (its last two tokens computed)", e, n)
	}
	if e, _ := c.match(append(seq(3, 0), 99)); e != nil {
		t.Fatalf("a match shorter than MinPrefix: %v", e)
	}
	// A longer session makes session 2 redundant.
	if end := c.keep(3, seq(14, 0), nil); !slices.Equal(end, []uint64{2}) || c.used != 14 || len(c.entries) != 1 {
		t.Fatalf("keep 3: ended %v, %d positions in %d entries", end, c.used, len(c.entries))
	}
	// Another line; then a third evicts the least recently used, 3, unless
	// it was used since.
	c.keep(4, seq(10, 100), nil)
	c.match(seq(8, 0)) // uses 3
	if end := c.keep(5, seq(10, 200), nil); !slices.Equal(end, []uint64{4}) || c.used != 24 {
		t.Fatalf("keep 5: ended %v, %d positions", end, c.used)
	}
	// A session whose tokens begin an entry's is not kept.
	if end := c.keep(10, seq(12, 0), nil); !slices.Equal(end, []uint64{10}) || c.used != 24 {
		t.Fatalf("keep a prefix of an entry: ended %v, %d positions", end, c.used)
	}
	// A pinned entry evicted (3, now the least recently used) stays until
	// its last pin goes.
	c.pin(3)
	c.pin(3)
	if end := c.keep(6, seq(20, 300), nil); len(end) != 0 {
		t.Fatalf("keep 6: ended %v, want none (3 pinned)", end)
	}
	if e, _ := c.match(seq(8, 0)); e != nil {
		t.Fatal("a dropped entry matched")
	}
	if c.unpin(3) {
		t.Fatal("the first unpin ended 3")
	}
	if !c.unpin(3) || c.used != 30 || len(c.entries) != 2 {
		t.Fatalf("the last unpin: %d positions in %d entries", c.used, len(c.entries))
	}
	// A running sequence's session kept for its forks though too long.
	c.pin(7)
	if end := c.keep(7, seq(40, 0), nil); len(end) != 0 {
		t.Fatalf("a pinned session too long to keep was ended: %v", end)
	}
	if !c.unpin(7) {
		t.Fatal("unpinning the pinned session too long to keep did not end it")
	}
	if end := c.forget(6, nil); !slices.Equal(end, []uint64{6}) || len(c.entries) != 1 || c.used != 10 {
		t.Fatalf("forget: ended %v, %d entries, %d positions", end, len(c.entries), c.used)
	}
	c.keep(8, seq(10, 0), nil)
	c.keep(9, seq(10, 100), nil)
	c.pin(9)
	if end := c.flush(nil); !slices.Equal(end, []uint64{5, 8}) || len(c.entries) != 1 {
		t.Fatalf("flush: ended %v, %d entries", end, len(c.entries))
	}
	if got := c.sessions(nil); !slices.Equal(got, []uint64{9}) {
		t.Fatalf("sessions %v", got)
	}
}

// turns returns the prompts of a chat of three turns from prompt: each
// turn's prompt is the last one, its reply, and more tokens.
func turns(t *testing.T, prompt []int, reply func([]int) []int) [][]int {
	p := [][]int{prompt}
	for i := range 2 {
		next := append(slices.Clone(p[i]), reply(p[i])...)
		next = append(next, 300+i, 301+i, 302+i)
		p = append(p, next)
	}
	return p
}

// TestDriverPrefixCache runs a chat of three turns through three stages
// with a prefix cache: each turn forks the last one's session, and every
// reply is the single-sequence engine's.
func TestDriverPrefixCache(t *testing.T) {
	const gen = 6
	reqs := storiesRequests(t, gen)
	eng := func(p []int) []int {
		return engineTokens(t, []TokenRequest{{Prompt: p, MaxTokens: gen, IgnoreEOS: true}})[0]
	}
	prompts := turns(t, reqs[0].Prompt, eng)
	f := openFile(t, testdataPath(t, stories))
	ls := locals(t, f, []int{0, 2, 4, 5}, false, LocalConfig{})
	d := newDriver(t, asStages(ls), DriverConfig{PrefixCache: 1000})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var cached int
	for i, p := range prompts {
		res, err := generate(t, context.Background(), d, TokenRequest{Prompt: p, MaxTokens: gen, IgnoreEOS: true})
		if err != nil {
			t.Fatal(err)
		}
		if want := eng(p); !slices.Equal(res.Tokens, want) {
			t.Errorf("turn %d: %v, want %v", i, res.Tokens, want)
		}
		// The last turn's session holds its prompt and all its reply but
		// the last token.
		want := 0
		if i > 0 {
			want = len(prompts[i-1]) + gen - 1
		}
		if res.Cached != want {
			t.Errorf("turn %d: %d tokens cached, want %d", i, res.Cached, want)
		}
		cached += res.Cached
	}
	st := d.Stats()
	if st.Prefix.Hits != 2 || st.Prefix.Tokens != uint64(cached) || st.CachedTokens != uint64(cached) || st.Prefix.Sessions != 1 {
		t.Errorf("stats %+v, cached tokens %d", st.Prefix, st.CachedTokens)
	}
	if st.PrefillTokens != uint64(len(prompts[0])+len(prompts[1])+len(prompts[2])-cached) {
		t.Errorf("%d prompt tokens computed", st.PrefillTokens)
	}
	for i, l := range ls {
		if n := l.Sessions(); n != 1 {
			t.Errorf("stage %d holds %d sessions, want the last turn's", i, n)
		}
	}
	cancel()
	<-done
	checkNoSessions(t, ls)
}

// TestDriverPrefixLost checks that a request whose cached session a stage
// no longer holds runs again from its first token, with the same reply.
func TestDriverPrefixLost(t *testing.T) {
	const gen = 6
	reqs := storiesRequests(t, gen)
	eng := func(p []int) []int {
		return engineTokens(t, []TokenRequest{{Prompt: p, MaxTokens: gen, IgnoreEOS: true}})[0]
	}
	prompts := turns(t, reqs[1].Prompt, eng)
	f := openFile(t, testdataPath(t, stories))
	ls := locals(t, f, []int{0, 3, 5}, false, LocalConfig{Logger: quiet})
	d := run(t, newDriver(t, asStages(ls), DriverConfig{PrefixCache: 1000}))
	if _, err := generate(t, context.Background(), d, TokenRequest{Prompt: prompts[0], MaxTokens: gen, IgnoreEOS: true}); err != nil {
		t.Fatal(err)
	}
	if ids := ls[1].Evict(time.Now().Add(time.Hour)); len(ids) != 1 {
		t.Fatalf("evicted %v, want the kept session", ids)
	}
	res, err := generate(t, context.Background(), d, TokenRequest{Prompt: prompts[1], MaxTokens: gen, IgnoreEOS: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := eng(prompts[1]); !slices.Equal(res.Tokens, want) || res.Cached != 0 {
		t.Errorf("after a lost session: %v (%d cached), want %v", res.Tokens, res.Cached, want)
	}
	if st := d.Stats(); st.Prefix.Hits != 0 || st.Prefix.Sessions != 1 {
		t.Errorf("stats %+v", st.Prefix)
	}
	for i, l := range ls {
		if n := l.Sessions(); n != 1 {
			t.Errorf("stage %d holds %d sessions, want 1", i, n)
		}
	}
}

// TestDriverPrefixBudget checks that a sequence that finds the KV budget
// spent by kept sessions empties the cache and runs again.
func TestDriverPrefixBudget(t *testing.T) {
	reqs := storiesRequests(t, 8)[:2]
	long := []int{1}
	for i := range 69 {
		long = append(long, 300+i)
	}
	reqs = append(reqs, TokenRequest{Prompt: long, MaxTokens: 8, IgnoreEOS: true})
	want := engineTokens(t, reqs)
	f := openFile(t, testdataPath(t, stories))
	ls := locals(t, f, []int{0, 3, 5}, false, LocalConfig{})
	// Layers 3-5 hold 256 bytes a position: the long prompt's cache grows
	// to 87 positions (22272 bytes), beside the kept sessions of the
	// others it does not fit.
	ls[1] = NewLocal(ls[1].m, LocalConfig{KVBudget: 25000})
	d := run(t, newDriver(t, asStages(ls), DriverConfig{PrefixCache: 1000}))
	for i, r := range reqs {
		res, err := generate(t, context.Background(), d, r)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if !slices.Equal(res.Tokens, want[i]) {
			t.Errorf("request %d: %v, want %v", i, res.Tokens, want[i])
		}
	}
	// The long prompt's first try counts as a sequence finished.
	if st := d.Stats(); st.Prefix.Sessions != 1 || st.Finished != 4 {
		t.Errorf("stats %+v, %d finished", st.Prefix, st.Finished)
	}
}

// TestDriverPrefixLive checks that a request can fork a sequence still
// generating, as far as the stages hold it.
func TestDriverPrefixLive(t *testing.T) {
	reqs := storiesRequests(t, 40)
	f := openFile(t, testdataPath(t, stories))
	slow := LocalConfig{Knobs: &LocalKnobs{BeforeForward: func(context.Context, *Batch) { time.Sleep(2 * time.Millisecond) }}}
	ls := locals(t, f, []int{0, 3, 5}, false, slow)
	d := run(t, newDriver(t, asStages(ls), DriverConfig{PrefixCache: 1000}))
	a := reqs[0]
	seen := make(chan []int, 1)
	var first []int
	done := make(chan error, 1)
	go func() {
		_, err := d.Generate(context.Background(), a, func(tok int) error {
			if first = append(first, tok); len(first) == 5 {
				seen <- slices.Clone(first)
			}
			return nil
		})
		done <- err
	}()
	prompt := append(slices.Clone(a.Prompt), <-seen...)[:len(a.Prompt)+4]
	prompt = append(prompt, 300)
	res, err := generate(t, context.Background(), d, TokenRequest{Prompt: prompt, MaxTokens: 6, IgnoreEOS: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := engineTokens(t, []TokenRequest{{Prompt: prompt, MaxTokens: 6, IgnoreEOS: true}})[0]
	if !slices.Equal(res.Tokens, want) || res.Cached != len(prompt)-2 {
		t.Errorf("forked from a running sequence: %v (%d cached), want %v (%d)", res.Tokens, res.Cached, want, len(prompt)-2)
	}
}

// TestDriverPrefixShared sends requests for the same prompt at once (as
// n choices do): the first computes it, the others wait for it and fork
// it, and every reply is the engine's. A request that waits and is
// cancelled returns at once.
func TestDriverPrefixShared(t *testing.T) {
	reqs := storiesRequests(t, 6)
	prompt := slices.Repeat(reqs[1].Prompt, 3)
	same := make([]TokenRequest, 4)
	for i := range same {
		same[i] = TokenRequest{Prompt: prompt, MaxTokens: 6, IgnoreEOS: true}
	}
	want := engineTokens(t, same[:1])[0]
	f := openFile(t, testdataPath(t, stories))
	ls := locals(t, f, []int{0, 3, 5}, false, LocalConfig{})
	d := newDriver(t, asStages(ls), DriverConfig{PrefixCache: 1000})
	// Submitted before Run starts, the four reach the loop together.
	var got [][]int
	done := make(chan struct{})
	go func() { got = generateAll(t, d, same); close(done) }()
	pending := func() int {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.submits)
	}
	for pending() < len(same) {
		time.Sleep(time.Millisecond)
	}
	run(t, d)
	<-done
	for i := range got {
		if !slices.Equal(got[i], want) {
			t.Errorf("request %d: %v, want %v", i, got[i], want)
		}
	}
	st := d.Stats()
	if n := len(prompt); st.PrefillTokens != uint64(n+3*2) || st.CachedTokens != uint64(3*(n-2)) || st.Prefix.Hits != 3 {
		t.Errorf("prompt of %d: %d prompt tokens computed, %d cached, %d hits", n, st.PrefillTokens, st.CachedTokens, st.Prefix.Hits)
	}

	// A waiter cancelled: the leader is held in its first stage.
	hold := make(chan struct{})
	ls[0].knobs = &LocalKnobs{BeforeForward: func(context.Context, *Batch) { <-hold }}
	long := append(slices.Clone(prompt), 400, 401, 402)
	lead := make(chan error, 1)
	go func() {
		_, err := generate(t, context.Background(), d, TokenRequest{Prompt: long, MaxTokens: 2})
		lead <- err
	}()
	for d.Stats().InFlight == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := generate(t, ctx, d, TokenRequest{Prompt: append(slices.Clone(long), 403), MaxTokens: 2}); err != context.DeadlineExceeded {
		t.Errorf("a cancelled waiter: %v", err)
	}
	close(hold)
	if err := <-lead; err != nil {
		t.Fatal(err)
	}
}

// TestDriverPrefixRandom runs many requests at once through a prefix
// cache too small for them all and a KV budget that runs out: prompts that
// share prefixes in every way (equal, one the start of another, the same
// system prompt), some cancelled, some forking sequences still running.
// Every reply that completes is the engine's, and once the driver stops no
// stage holds a session.
func TestDriverPrefixRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	base := [][]int{slices.Repeat([]int{1, 300, 301, 302}, 3), slices.Repeat([]int{1, 400}, 5), {1, 500, 501, 502, 503, 504, 505}}
	var reqs []TokenRequest
	for range 40 {
		p := slices.Clone(base[rng.IntN(len(base))])
		for range rng.IntN(6) {
			p = append(p, 300+rng.IntN(200))
		}
		reqs = append(reqs, TokenRequest{Prompt: p, MaxTokens: 1 + rng.IntN(8), IgnoreEOS: true})
	}
	want := engineTokens(t, reqs)
	f := openFile(t, testdataPath(t, stories))
	ls := locals(t, f, []int{0, 2, 5}, false, LocalConfig{})
	// Layers 2-5 hold 384 bytes a position: 6 sequences running take up to
	// about 58 KB, the cache's 60 positions (with their room) 29 KB more.
	ls[1] = NewLocal(ls[1].m, LocalConfig{KVBudget: 80 << 10})
	d := newDriver(t, asStages(ls), DriverConfig{PrefixCache: 60, Sched: sched.Config{MaxSeqs: 6}})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var wg sync.WaitGroup
	for i, r := range reqs {
		delay := time.Duration(rng.IntN(3)) * time.Millisecond
		wg.Go(func() {
			time.Sleep(delay)
			rctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if i%7 == 3 {
				cancel()
			}
			res, err := d.Generate(rctx, r, func(int) error { return nil })
			switch {
			case i%7 == 3:
			case errors.Is(err, ErrKVBudget):
				t.Logf("request %d: %v", i, err) // ran out of budget after it generated: it fails, not the others
			case err != nil:
				t.Errorf("request %d: %v", i, err)
			case !slices.Equal(res.Tokens, want[i]):
				t.Errorf("request %d (%d cached): %v, want %v", i, res.Cached, res.Tokens, want[i])
			}
		})
	}
	wg.Wait()
	st := d.Stats()
	t.Logf("prefix cache: %+v; %d prompt tokens computed, %d cached", st.Prefix, st.PrefillTokens, st.CachedTokens)
	if st.Prefix.Hits == 0 {
		t.Error("no request forked a session")
	}
	if st.Prefix.Positions > 60 {
		t.Errorf("%d positions kept, more than the cache's 60", st.Prefix.Positions)
	}
	stop()
	<-done
	checkNoSessions(t, ls)
}

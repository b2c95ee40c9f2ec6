package pipeline

import (
	"errors"
	"slices"

	"github.com/strata-llm/strata/pipeline/sched"
)

// MinPrefix is the fewest prompt tokens a request takes from a cached
// session: below it the fork saves too little to be worth a session.
const MinPrefix = 4

// prefixCache is a Driver's record of the sessions it keeps on the stages
// after their sequences finished, by the tokens their KV caches hold, so
// that a new request whose prompt begins with those tokens forks one
// instead of computing them again. It is owned by Run's goroutine.
//
// A session that a launched fork has not yet copied is pinned: it is not
// ended (evicted, or made redundant by a longer one) until the forks
// pinning it are released; until then it stays, marked dropped, and no
// new request forks it.
type prefixCache struct {
	max     int            // positions kept at most; 0: none
	used    int            // positions of the entries
	entries []*prefixEntry // least recently used first
	pins    map[uint64]int // session: forks launched from it and not yet released
	hits    uint64         // requests whose fork of an entry or a live sequence went through
	tokens  uint64         // prompt tokens they took from it
}

// prefixEntry is a kept session.
type prefixEntry struct {
	id      uint64
	tokens  []int // the tokens at its positions
	dropped bool  // evicted while pinned: ended when the last pin goes
}

func newPrefixCache(max int) *prefixCache {
	return &prefixCache{max: max, pins: make(map[uint64]int)}
}

// common is how many of prompt's tokens a fork of a session holding tokens
// may take: their common prefix, leaving at least the prompt's last two
// tokens to compute. One is needed for the logits of the first sample; two
// make them the batch kernels' (as for the whole prompt), whose rows come
// out bit for bit as they would in any chunk, where a single token would go
// through the vector kernels, which round differently. (The positions
// copied are bit for bit the whole prompt's only where the session
// computed them as a prompt, not where it generated them.)
func common(tokens, prompt []int) int {
	n := min(len(tokens), len(prompt)-2)
	for i := range n {
		if tokens[i] != prompt[i] {
			return i
		}
	}
	return max(n, 0)
}

// match returns the entry that holds the longest prefix of prompt usable
// by a fork, at least MinPrefix tokens, and that length; the most recently
// used wins a tie. It marks the entry used.
func (c *prefixCache) match(prompt []int) (*prefixEntry, int) {
	best, n := -1, 0
	for i, e := range c.entries {
		if e.dropped {
			continue
		}
		if k := common(e.tokens, prompt); k >= MinPrefix && k >= n {
			best, n = i, k
		}
	}
	if best < 0 {
		return nil, 0
	}
	e := c.entries[best]
	c.entries = append(slices.Delete(c.entries, best, best+1), e)
	return e, n
}

// pin and unpin count the forks launched from session id; unpin returns
// whether id is a dropped entry that the last pin kept, which the caller
// must now end.
func (c *prefixCache) pin(id uint64) { c.pins[id]++ }

func (c *prefixCache) unpin(id uint64) bool {
	if c.pins[id] > 1 {
		c.pins[id]--
		return false
	}
	delete(c.pins, id)
	for i, e := range c.entries {
		if e.id == id && e.dropped {
			c.entries = slices.Delete(c.entries, i, i+1)
			c.used -= len(e.tokens)
			return true
		}
	}
	return false
}

// keep adds session id, which holds tokens (kept as given), as the most
// recently used entry, unless it is shorter than MinPrefix or longer than
// the cache, or its tokens are the start of an entry's (which serves every
// fork of it). It drops the entries whose tokens are a prefix of it (every
// fork of one is a fork of it) and then the least recently used ones until
// the entries not dropped fit, and appends to end the sessions the caller
// must end: those dropped unpinned, and id itself when it was not kept.
// (Dropped entries that pins keep do not count against max: their
// sessions are on their way out.)
func (c *prefixCache) keep(id uint64, tokens []int, end []uint64) []uint64 {
	covered := slices.ContainsFunc(c.entries, func(e *prefixEntry) bool {
		return !e.dropped && len(tokens) <= len(e.tokens) && slices.Equal(tokens, e.tokens[:len(tokens)])
	})
	if len(tokens) < MinPrefix || len(tokens) > c.max || covered {
		if c.pins[id] > 0 { // a running sequence that forks have yet to copy
			c.entries = append(c.entries, &prefixEntry{id: id, tokens: tokens, dropped: true})
			c.used += len(tokens)
			return end
		}
		return append(end, id)
	}
	for _, e := range c.entries {
		if !e.dropped && len(e.tokens) <= len(tokens) && slices.Equal(e.tokens, tokens[:len(e.tokens)]) {
			end = c.drop(e, end)
		}
	}
	c.entries = append(c.entries, &prefixEntry{id: id, tokens: tokens})
	c.used += len(tokens)
	live := 0
	for _, e := range c.entries {
		if !e.dropped {
			live += len(e.tokens)
		}
	}
	for _, e := range c.entries {
		if live <= c.max {
			break
		}
		if !e.dropped {
			end = c.drop(e, end)
			live -= len(e.tokens)
		}
	}
	c.compact()
	return end
}

// drop evicts e: an unpinned entry goes now (its session appended to end),
// a pinned one when its last pin goes.
func (c *prefixCache) drop(e *prefixEntry, end []uint64) []uint64 {
	e.dropped = true
	if c.pins[e.id] == 0 {
		end = append(end, e.id)
	}
	return end
}

// compact forgets the dropped entries that no pin keeps.
func (c *prefixCache) compact() {
	c.entries = slices.DeleteFunc(c.entries, func(e *prefixEntry) bool {
		if e.dropped && c.pins[e.id] == 0 {
			c.used -= len(e.tokens)
			return true
		}
		return false
	})
}

// forget drops session id, if it is an entry (a fork of it failed: some
// stage lost it), appending it to end unless a pin keeps it.
func (c *prefixCache) forget(id uint64, end []uint64) []uint64 {
	for _, e := range c.entries {
		if e.id == id && !e.dropped {
			end = c.drop(e, end)
		}
	}
	c.compact()
	return end
}

// flush drops every entry (a stage's KV budget ran out), appending the
// sessions to end as drop does.
func (c *prefixCache) flush(end []uint64) []uint64 {
	for _, e := range c.entries {
		if !e.dropped {
			end = c.drop(e, end)
		}
	}
	c.compact()
	return end
}

// sessions returns the sessions of every entry, dropped ones included (to
// end them all when the Driver stops).
func (c *prefixCache) sessions(ids []uint64) []uint64 {
	for _, e := range c.entries {
		ids = append(ids, e.id)
	}
	return ids
}

// PrefixStats are a Driver's prefix cache figures.
type PrefixStats struct {
	Sessions  int    // sessions kept
	Positions int    // positions they hold
	Hits      uint64 // requests whose fork of a kept session or a live sequence went through
	Tokens    uint64 // prompt tokens those requests did not compute
}

func (c *prefixCache) stats() PrefixStats {
	return PrefixStats{Sessions: len(c.entries), Positions: c.used, Hits: c.hits, Tokens: c.tokens}
}

// source returns the session whose cached positions prompt can best
// start from, and how many of its tokens: a kept session, or a sequence
// still running (its prompt and the tokens it generated, as far as every
// stage holds them). n is 0 when none shares MinPrefix tokens.
func (d *Driver) source(prompt []int) (id uint64, n int) {
	if e, k := d.prefix.match(prompt); e != nil {
		id, n = e.id, k
	}
	for gid, g := range d.gens {
		if !g.admitted || g.finished || g.kv < MinPrefix {
			continue
		}
		if k := common(g.history[:g.kv], prompt); k >= max(n+1, MinPrefix) {
			id, n = uint64(gid), k
		}
	}
	return id, n
}

// waiter is a request waiting for a running sequence to compute a prefix
// of its prompt, need tokens, so that it forks them rather than computing
// them too.
type waiter struct {
	g    *gen
	need int
}

// await holds g back, unless it would fork n tokens already, when a
// sequence that is running or queued, and not waiting itself, has a prompt
// that shares more with g's and has not computed them yet: requests for
// the same prompt at once (n choices, a burst sharing a system prompt)
// compute it once. It reports whether g waits; release submits it once the
// leader has computed those tokens, or has finished. The waiters count
// against the scheduler's queue bound.
func (d *Driver) await(g *gen, n int) bool {
	var lead *gen
	need := max(n+1, MinPrefix)
	for _, l := range d.gens {
		if l.finished || l.retry {
			continue
		}
		if k := common(l.req.Prompt, g.req.Prompt); k >= need && l.kv < k {
			lead, need = l, k
		}
	}
	if lead == nil {
		return false
	}
	waiting := 0
	for _, ws := range d.waiting {
		waiting += len(ws)
	}
	if d.sch.Stats().Queued+waiting >= d.sch.Config().MaxQueue {
		return false
	}
	if d.waiting == nil {
		d.waiting = make(map[sched.SeqID][]waiter)
	}
	g.leader = lead.id
	d.waiting[lead.id] = append(d.waiting[lead.id], waiter{g, need})
	return true
}

// release submits the requests waiting for leader that need at most kv
// tokens (all of them for kv = math.MaxInt: the leader finished).
func (d *Driver) release(leader sched.SeqID, kv int) {
	ws := d.waiting[leader]
	if len(ws) == 0 {
		return
	}
	var ready []*gen
	ws = slices.DeleteFunc(ws, func(w waiter) bool {
		if w.need <= kv {
			ready = append(ready, w.g)
			return true
		}
		return false
	})
	if len(ws) == 0 {
		delete(d.waiting, leader)
	} else {
		d.waiting[leader] = ws
	}
	for _, g := range ready {
		g.leader = 0
		d.onSubmit(g)
	}
}

// unwait takes g out of the waiters and completes it as cancelled; it
// reports false when g was not waiting.
func (d *Driver) unwait(g *gen) bool {
	if g.leader == 0 {
		return false
	}
	ws := d.waiting[g.leader]
	if i := slices.IndexFunc(ws, func(w waiter) bool { return w.g == g }); i >= 0 {
		d.waiting[g.leader] = slices.Delete(ws, i, i+1)
		if len(d.waiting[g.leader]) == 0 {
			delete(d.waiting, g.leader)
		}
	}
	g.leader = 0
	g.complete(sched.FinishCancelled, nil)
	return true
}

// unpin releases g's pin on the session it forked, appending that session
// to end when it was an evicted entry kept only for g.
func (d *Driver) unpin(g *gen, end []uint64) []uint64 {
	if g.from != 0 && d.prefix.unpin(g.from) {
		end = append(end, g.from)
	}
	return end
}

// prefixFailure reacts to g's failure f: a fork that found its session
// gone drops it from the cache and runs g again unforked; a KV budget
// exhausted empties the cache, and runs g again if it had generated
// nothing yet. The sessions to end are appended to end.
func (d *Driver) prefixFailure(g *gen, f sched.Finish, end []uint64) []uint64 {
	switch {
	case errors.Is(f.Err, ErrNoSource) && g.from != 0:
		end = d.prefix.forget(g.from, end)
		g.retry = !g.retried && g.admitted
		d.log.Info("a cached session was gone: running the sequence again", "seq", g.id, "session", g.from, "err", f.Err)
	case errors.Is(f.Err, ErrKVBudget) && len(d.prefix.entries) > 0:
		end = d.prefix.flush(end)
		g.retry = !g.retried && g.admitted && f.Generated == 0
		d.log.Info("KV budget exhausted: emptied the prefix cache", "seq", g.id, "retry", g.retry, "err", f.Err)
	}
	return end
}

// again submits g, released after a failure that calls for another try,
// as a new sequence that forks nothing.
func (d *Driver) again(g *gen) {
	g.id = sched.SeqID(d.ids.Add(1))
	g.retry, g.retried, g.admitted, g.finished, g.fin = false, true, false, false, sched.Finish{}
	g.kv, g.from, g.cached, g.logprobs = 0, 0, 0, nil
	d.onSubmit(g)
}

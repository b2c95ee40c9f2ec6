package arch

import (
	"errors"
	"fmt"

	"github.com/strata-llm/strata/kernels"
)

// ErrCacheFull is returned when a sequence would outgrow its KV cache's
// capacity.
var ErrCacheFull = errors.New("kv cache full")

// KVCache holds one sequence's keys and values for a range of layers, in
// half precision (as llama.cpp's default cache, so that logits agree with it).
// It grows as positions are added, up to its capacity. Each layer's keys
// (and values) are head-major: each KV head's positions lie in one run, so
// that attention over a head streams one stretch of memory
// (kernels.HeadMajor).
type KVCache struct {
	kvHeads, headDim int
	cap              int        // capacity in positions; 0 means unbounded
	n                int        // positions held
	room             int        // positions each head's run has room for
	k, v             [][]uint16 // per layer: (kvHeads, room, headDim)
}

// NewKVCache returns an empty cache for layers layers of kvHeads heads of
// headDim, holding at most capacity positions (0: no limit).
func NewKVCache(layers, kvHeads, headDim, capacity int) *KVCache {
	return &KVCache{kvHeads: kvHeads, headDim: headDim, cap: capacity, k: make([][]uint16, layers), v: make([][]uint16, layers)}
}

// Len is the number of positions the cache holds.
func (c *KVCache) Len() int { return c.n }

// Cap is the capacity in positions (0: no limit).
func (c *KVCache) Cap() int { return c.cap }

// Room is how many positions the buffers hold before they must grow.
func (c *KVCache) Room() int { return c.room }

// Bytes is the memory the cache's contents take.
func (c *KVCache) Bytes() int64 {
	return int64(len(c.k)) * 2 * 2 * int64(c.room*c.kvHeads*c.headDim)
}

// Reserve makes room for n more positions in every layer; it fails with
// ErrCacheFull beyond the capacity. Growing moves every head's run to
// the new room (to GrowCap of the old room and what must fit).
func (c *KVCache) Reserve(n int) error {
	if c.cap > 0 && c.n+n > c.cap {
		return fmt.Errorf("%w: %d positions held, %d more requested, capacity %d", ErrCacheFull, c.n, n, c.cap)
	}
	if c.n+n <= c.room {
		return nil
	}
	room := GrowCap(c.room, c.n+n, c.cap)
	for l := range c.k {
		c.k[l], c.v[l] = c.regrow(c.k[l], room), c.regrow(c.v[l], room)
	}
	c.room = room
	return nil
}

// regrow returns a buffer with room positions for each head, holding s's
// held positions, each head's run moved to its new place.
func (c *KVCache) regrow(s []uint16, room int) []uint16 {
	hd := c.headDim
	t := make([]uint16, c.kvHeads*room*hd)
	for h := range c.kvHeads {
		copy(t[h*room*hd:][:c.n*hd], s[h*c.room*hd:][:c.n*hd])
	}
	return t
}

// Clone returns a new cache, of c's capacity, holding c's first n
// positions (n at most Len), with room for at least room positions: a
// session forked from c's prefix. Only the held positions are copied.
func (c *KVCache) Clone(n, room int) *KVCache {
	n = min(max(n, 0), c.n)
	room = max(room, n)
	if c.cap > 0 {
		room = min(room, max(c.cap, n))
	}
	d := &KVCache{kvHeads: c.kvHeads, headDim: c.headDim, cap: c.cap, n: n, room: room,
		k: make([][]uint16, len(c.k)), v: make([][]uint16, len(c.v))}
	if room == 0 {
		return d
	}
	hd := c.headDim
	for l := range c.k {
		d.k[l], d.v[l] = make([]uint16, c.kvHeads*room*hd), make([]uint16, c.kvHeads*room*hd)
		for h := range c.kvHeads {
			copy(d.k[l][h*room*hd:][:n*hd], c.k[l][h*c.room*hd:][:n*hd])
			copy(d.v[l][h*room*hd:][:n*hd], c.v[l][h*c.room*hd:][:n*hd])
		}
	}
	return d
}

// Layer returns layer l's keys and values and their layout; positions up
// to Len and what Reserve made room for beyond it are valid to read
// (after Put) and write. The slices alias the cache until it grows.
func (c *KVCache) Layer(l int) (k, v []uint16, layout kernels.KVLayout) {
	return c.k[l], c.v[l], kernels.HeadMajor(c.room, c.headDim)
}

// Put stores, rounded to half precision, the keys k and values v of every
// KV head (kvHeads*headDim each, head after head) at position pos of
// layer l, which Reserve has made room for.
func (c *KVCache) Put(l, pos int, k, v []float32) {
	hd, kc, vc := c.headDim, c.k[l], c.v[l]
	for h := range c.kvHeads {
		o := h*c.room*hd + pos*hd
		kernels.F32sToF16(kc[o:o+hd], k[h*hd:(h+1)*hd])
		kernels.F32sToF16(vc[o:o+hd], v[h*hd:(h+1)*hd])
	}
}

// Commit records n more positions as held, after Forward wrote them.
func (c *KVCache) Commit(n int) { c.n += n }

// Truncate drops every position from n on (to rewind a sequence).
func (c *KVCache) Truncate(n int) {
	if n < c.n {
		c.n = n
	}
}

// GrowCap is the room, in positions, a cache of room have grows to when it
// must hold need positions: the larger of twice have and need plus a
// quarter, but no more than limit where limit > 0 (the cache's capacity).
// The quarter is for a prompt: grown to exactly its positions, the
// buffers had to be copied whole on the first decoded token (tens of
// milliseconds after a long prompt, in the gap between two tokens); with it,
// a prompt's cache takes a quarter as many decoded tokens before it grows.
func GrowCap(have, need, limit int) int {
	if need <= have {
		return have
	}
	c := max(2*have, need+need/4)
	if limit > 0 {
		c = max(min(c, limit), need)
	}
	return c
}

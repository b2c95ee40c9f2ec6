package arch

import (
	"errors"
	"fmt"
)

// ErrCacheFull is returned when a sequence would outgrow its KV cache's
// capacity.
var ErrCacheFull = errors.New("kv cache full")

// KVCache holds one sequence's keys and values for a range of layers, in
// half precision (as llama.cpp's default cache, so that logits agree with it).
// It grows as positions are added, up to its capacity.
type KVCache struct {
	kvDim int
	cap   int        // capacity in positions; 0 means unbounded
	n     int        // positions held
	k, v  [][]uint16 // per layer: (positions, kvDim)
}

// NewKVCache returns an empty cache for layers layers of width kvDim,
// holding at most capacity positions (0: no limit).
func NewKVCache(layers, kvDim, capacity int) *KVCache {
	return &KVCache{kvDim: kvDim, cap: capacity, k: make([][]uint16, layers), v: make([][]uint16, layers)}
}

// Len is the number of positions the cache holds.
func (c *KVCache) Len() int { return c.n }

// Cap is the capacity in positions (0: no limit).
func (c *KVCache) Cap() int { return c.cap }

// Bytes is the memory the cache's contents take.
func (c *KVCache) Bytes() int64 {
	var b int64
	for l := range c.k {
		b += int64(cap(c.k[l])+cap(c.v[l])) * 2
	}
	return b
}

// Reserve makes room for n more positions in every layer; it fails with
// ErrCacheFull beyond the capacity.
func (c *KVCache) Reserve(n int) error {
	if c.cap > 0 && c.n+n > c.cap {
		return fmt.Errorf("%w: %d positions held, %d more requested, capacity %d", ErrCacheFull, c.n, n, c.cap)
	}
	for l := range c.k {
		c.k[l] = grow(c.k[l], (c.n+n)*c.kvDim, c.cap*c.kvDim)
		c.v[l] = grow(c.v[l], (c.n+n)*c.kvDim, c.cap*c.kvDim)
	}
	return nil
}

// Layer returns layer l's keys and values for positions [0, n), where n may
// exceed Len by what Reserve made room for. The slices alias the cache.
func (c *KVCache) Layer(l, n int) (k, v []uint16) {
	return c.k[l][:n*c.kvDim], c.v[l][:n*c.kvDim]
}

// Commit records n more positions as held, after Forward wrote them.
func (c *KVCache) Commit(n int) { c.n += n }

// Truncate drops every position from n on (to rewind a sequence).
func (c *KVCache) Truncate(n int) {
	if n < c.n {
		c.n = n
	}
}

// grow returns s with length n, keeping its contents and reallocating to
// GrowCap elements when it must.
func grow(s []uint16, n, limit int) []uint16 {
	if n <= cap(s) {
		return s[:n]
	}
	t := make([]uint16, n, GrowCap(cap(s), n, limit))
	copy(t, s)
	return t
}

// GrowCap is the capacity a cache's buffer of capacity have reallocates to
// when it must hold need elements: the larger of twice have and need plus a
// quarter, but no more than limit where limit > 0 (the cache's capacity). The quarter is for a prompt: grown to exactly its positions, the
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

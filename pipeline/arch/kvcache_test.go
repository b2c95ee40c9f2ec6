package arch

import (
	"errors"
	"testing"
)

// TestKVCacheHeadroom checks that a prompt's reservation leaves room for a
// quarter as many decoded positions without moving the buffers, that the
// capacity bounds both the positions and the buffers, and that contents
// survive a reallocation.
func TestKVCacheHeadroom(t *testing.T) {
	const kvDim = 4
	c := NewKVCache(2, kvDim, 0)
	if err := c.Reserve(400); err != nil {
		t.Fatal(err)
	}
	k, _ := c.Layer(1, 400)
	k[399*kvDim] = 7
	c.Commit(400)
	first := &k[0]
	for range 100 {
		if err := c.Reserve(1); err != nil {
			t.Fatal(err)
		}
		c.Commit(1)
		if k, _ := c.Layer(1, c.Len()); &k[0] != first {
			t.Fatalf("the cache moved at %d positions, after a prompt of 400", c.Len())
		}
	}
	if err := c.Reserve(1); err != nil {
		t.Fatal(err)
	}
	if k, _ := c.Layer(1, c.Len()+1); &k[0] == first || k[399*kvDim] != 7 {
		t.Fatalf("growing past the headroom: moved %v, kept %v", &k[0] != first, k[399*kvDim])
	}

	c = NewKVCache(1, kvDim, 450)
	if err := c.Reserve(400); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Bytes(), int64(2*2*450*kvDim); got != want {
		t.Errorf("a cache of capacity 450 holds %d bytes after 400 positions, want %d", got, want)
	}
	c.Commit(400)
	if err := c.Reserve(51); !errors.Is(err, ErrCacheFull) {
		t.Errorf("51 positions past 400 in a cache of 450: %v, want ErrCacheFull", err)
	}
}

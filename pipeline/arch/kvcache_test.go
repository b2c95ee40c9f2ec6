package arch

import (
	"errors"
	"testing"

	"github.com/strata-llm/strata/kernels"
)

// TestKVCacheHeadroom checks that a prompt's reservation leaves room for a
// quarter as many decoded positions without moving the buffers, that the
// capacity bounds both the positions and the buffers, and that contents
// survive a reallocation.
func TestKVCacheHeadroom(t *testing.T) {
	const heads, hd = 2, 2
	c := NewKVCache(2, heads, hd, 0)
	if err := c.Reserve(400); err != nil {
		t.Fatal(err)
	}
	c.Put(1, 399, []float32{1, 2, 3, 4}, []float32{5, 6, 7, 8})
	c.Commit(400)
	k, _, _ := c.Layer(1)
	first := &k[0]
	for range 100 {
		if err := c.Reserve(1); err != nil {
			t.Fatal(err)
		}
		c.Commit(1)
		if k, _, _ := c.Layer(1); &k[0] != first {
			t.Fatalf("the cache moved at %d positions, after a prompt of 400", c.Len())
		}
	}
	if err := c.Reserve(1); err != nil {
		t.Fatal(err)
	}
	k, v, kv := c.Layer(1)
	if &k[0] == first {
		t.Fatal("growing past the headroom did not move the cache")
	}
	for h := range heads {
		o := h*kv.Head + 399*kv.Pos
		if k[o] != kernels.F32ToF16(float32(1+2*h)) || v[o+1] != kernels.F32ToF16(float32(6+2*h)) {
			t.Fatalf("head %d's entries at position 399 lost in the move: %v, %v", h, k[o:o+hd], v[o:o+hd])
		}
	}

	c = NewKVCache(1, heads, hd, 450)
	if err := c.Reserve(400); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Bytes(), int64(2*2*450*heads*hd); got != want {
		t.Errorf("a cache of capacity 450 holds %d bytes after 400 positions, want %d", got, want)
	}
	c.Commit(400)
	if err := c.Reserve(51); !errors.Is(err, ErrCacheFull) {
		t.Errorf("51 positions past 400 in a cache of 450: %v, want ErrCacheFull", err)
	}
}

// TestKVCacheLayout checks that Put writes where Layer's layout says, in
// every layer, across moves of the buffers, and that the entries read
// through the layout are the ones put.
func TestKVCacheLayout(t *testing.T) {
	const layers, heads, hd = 3, 4, 8
	c := NewKVCache(layers, heads, hd, 0)
	val := func(l, pos, h, d int, isV bool) float32 {
		x := float32(l*1000 + pos*10 + h + d)
		if isV {
			x = -x
		}
		return x
	}
	for pos := range 300 {
		if err := c.Reserve(1); err != nil {
			t.Fatal(err)
		}
		for l := range layers {
			k, v := make([]float32, heads*hd), make([]float32, heads*hd)
			for h := range heads {
				for d := range hd {
					k[h*hd+d], v[h*hd+d] = val(l, pos, h, d, false), val(l, pos, h, d, true)
				}
			}
			c.Put(l, pos, k, v)
		}
		c.Commit(1)
	}
	for l := range layers {
		k, v, kv := c.Layer(l)
		for pos := range c.Len() {
			for h := range heads {
				for d := range hd {
					o := h*kv.Head + pos*kv.Pos + d
					if k[o] != kernels.F32ToF16(val(l, pos, h, d, false)) || v[o] != kernels.F32ToF16(val(l, pos, h, d, true)) {
						t.Fatalf("layer %d position %d head %d element %d: %v %v", l, pos, h, d, k[o], v[o])
					}
				}
			}
		}
	}
}

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

// TestKVCacheClone checks that a clone holds the prefix it was asked for,
// in its own buffers, with the room asked for, and leaves the original
// alone.
func TestKVCacheClone(t *testing.T) {
	const heads, hd = 2, 3
	c := NewKVCache(2, heads, hd, 0)
	if err := c.Reserve(10); err != nil {
		t.Fatal(err)
	}
	val := func(l, pos, h, i int) float32 { return float32(l*1000 + pos*10 + h*5 + i) }
	for l := range 2 {
		for pos := range 10 {
			k, v := make([]float32, heads*hd), make([]float32, heads*hd)
			for h := range heads {
				for i := range hd {
					k[h*hd+i], v[h*hd+i] = val(l, pos, h, i), -val(l, pos, h, i)
				}
			}
			c.Put(l, pos, k, v)
		}
	}
	c.Commit(10)
	d := c.Clone(6, 9)
	if d.Len() != 6 || d.Room() != 9 || d.Cap() != 0 {
		t.Fatalf("clone holds %d positions in room for %d, capacity %d; want 6, 9, 0", d.Len(), d.Room(), d.Cap())
	}
	for l := range 2 {
		k, v, kv := d.Layer(l)
		for pos := range 6 {
			for h := range heads {
				for i := range hd {
					o := h*kv.Head + pos*kv.Pos + i
					if got, want := kernels.F16ToF32(k[o]), val(l, pos, h, i); got != want {
						t.Fatalf("layer %d pos %d head %d: key %v, want %v", l, pos, h, got, want)
					}
					if got, want := kernels.F16ToF32(v[o]), -val(l, pos, h, i); got != want {
						t.Fatalf("layer %d pos %d head %d: value %v, want %v", l, pos, h, got, want)
					}
				}
			}
		}
		ck, _, _ := c.Layer(l)
		if &k[0] == &ck[0] {
			t.Fatal("the clone shares the original's buffer")
		}
	}
	d.Put(0, 0, make([]float32, heads*hd), make([]float32, heads*hd))
	if k, _, kv := c.Layer(0); kernels.F16ToF32(k[kv.Head]) != val(0, 0, 1, 0) {
		t.Fatal("writing the clone changed the original")
	}
	if e := c.Clone(20, 0); e.Len() != 10 || e.Room() != 10 {
		t.Fatalf("a clone past the held positions holds %d in %d, want 10 in 10", e.Len(), e.Room())
	}
	b := NewKVCache(1, 1, 2, 8)
	if e := b.Clone(0, 20); e.Room() != 8 || e.Cap() != 8 {
		t.Fatalf("a clone of a capped cache has room %d, capacity %d; want 8 and 8", e.Room(), e.Cap())
	}
}

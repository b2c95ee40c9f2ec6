package kernels

import (
	"sync"
	"sync/atomic"
)

// freeList recycles the per-call state of the kernels (for jobs, matrix
// products and attention calls). Unlike sync.Pool it never drops an item,
// and an item put back on one P is found from any other, so a kernel call
// allocates nothing once as many items exist as calls ever ran at once.
// Items, with the scratch buffers they own, are kept for the life of the
// process.
//
// The first items wait in slots taken and filled with single atomic
// operations, so that two cores recycling at once (every chunk of an
// attention call gets and puts its scratch) do not queue on a lock; more
// go to a list under a mutex.
type freeList[T any] struct {
	slots [freeSlots]atomic.Pointer[T]
	mu    sync.Mutex
	items []*T
}

// freeSlots is how many items a freeList keeps lock-free.
const freeSlots = 8

// get returns a recycled item, or a new zero one.
func (f *freeList[T]) get() *T {
	for i := range f.slots {
		if t := f.slots[i].Swap(nil); t != nil {
			return t
		}
	}
	f.mu.Lock()
	if n := len(f.items); n > 0 {
		t := f.items[n-1]
		f.items[n-1] = nil
		f.items = f.items[:n-1]
		f.mu.Unlock()
		return t
	}
	f.mu.Unlock()
	return new(T)
}

// put hands t back for reuse.
func (f *freeList[T]) put(t *T) {
	for i := range f.slots {
		if f.slots[i].CompareAndSwap(nil, t) {
			return
		}
	}
	f.mu.Lock()
	f.items = append(f.items, t)
	f.mu.Unlock()
}

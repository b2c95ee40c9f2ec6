package kernels

import "sync"

// freeList recycles the per-call state of the kernels (for jobs, matrix
// products and attention calls). Unlike sync.Pool it never drops an item,
// and an item put back on one P is found from any other, so a kernel call
// allocates nothing once as many items exist as calls ever ran at once.
// Items, with the scratch buffers they own, are kept for the life of the
// process.
type freeList[T any] struct {
	mu    sync.Mutex
	items []*T
}

// get returns a recycled item, or a new zero one.
func (f *freeList[T]) get() *T {
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
	f.mu.Lock()
	f.items = append(f.items, t)
	f.mu.Unlock()
}

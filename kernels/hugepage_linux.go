//go:build linux

package kernels

import (
	"bytes"
	"os"
	"runtime"
	"sync"
	"unsafe"
	"weak"

	"golang.org/x/sys/unix"
)

// hugePage is the size of a transparent huge page on the platforms Linux
// runs the kernels on (amd64 and arm64 with 4 KB base pages).
const hugePage = 2 << 20

// thpOff reports whether the operator turned transparent huge pages off
// ("never" in /sys/kernel/mm/transparent_hugepage/enabled); the kernels
// then leave their buffers to the system's default.
var thpOff = sync.OnceValue(func() bool {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err != nil || bytes.Contains(b, []byte("[never]"))
})

// adviseHuge asks Linux to back b, a fresh buffer its caller is about to
// fill, with transparent huge pages: MADV_HUGEPAGE over the 2 MB pages b
// touches (where THP is "madvise", the default of most distributions, the
// Go heap otherwise never gets them), then MADV_COLLAPSE over those that
// lie wholly inside b, for any the runtime had already faulted in as 4 KB
// pages. Both are advice: the contents of b and of its neighbours in the
// heap are unchanged, and an error (an older kernel, no huge page free)
// leaves b as it was.
//
// Weights streamed once per token read 4 KB pages markedly slower: each
// page costs a TLB walk (nested, under a hypervisor), and the hardware
// prefetchers stop at each page's end. Over one 99 MB packed Q4_0 matrix
// on 2 cores of a Zen 4 guest, alternating in one process, its product
// streamed 28.2 GB/s from the Go heap's 4 KB pages and 31.7 from huge
// pages while the memory was in its slower phase, 35.2 and 47.1 in its
// faster one, where a bare read loop went from 47.8 to 55.7.
func adviseHuge(b []byte) {
	if len(b) < hugePage || thpOff() {
		return
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	end := start + uintptr(len(b))
	lo, hi := start&^(hugePage-1), (end+hugePage-1)&^(hugePage-1)
	if madvise(lo, hi, unix.MADV_HUGEPAGE) == nil {
		lo, hi = (start+hugePage-1)&^(hugePage-1), end&^(hugePage-1)
		if lo < hi {
			_ = madvise(lo, hi, unix.MADV_COLLAPSE)
		}
	}
	runtime.KeepAlive(b)
}

// Weight buffers are cut from shared slabs of huge pages up to slabMax
// bytes: only the 2 MB pages wholly inside a buffer of its own are
// collapsed (adviseHuge), so that one under 2 MB (a GQA model's k and v
// matrices: 1.1 MB each in Q8_0 at the 1B shape) got 4 KB pages only, and
// 20 buffers of 12 MB, filled right after, were 70% huge pages. Cut from a
// slab, each lies on huge pages from end to end. On 2 cores of a Zen 4
// guest, the k and v products of 8 such layers streamed at 78-90% of a
// bare read of the same bytes from 4 KB pages and at 87-107% from a slab,
// and the fused q, k, v product 4-8 points faster, alternating in one
// process.
const (
	slabMin   = 256 << 10 // smaller ones are not worth a huge page
	slabMax   = 16 << 20  // larger ones are mostly huge pages by themselves
	slabBytes = 64 << 20
)

// slab is the memory of one: huge pages and one more, for alignment.
type slab [slabBytes + hugePage]byte

// weightSlab is the current slab, held weakly (a slab lives as long as a
// buffer cut from it, not longer), the offset of its first 2 MB page and
// that of the next buffer from there (64-byte aligned).
var weightSlab struct {
	mu   sync.Mutex
	w    weak.Pointer[slab]
	off  int
	next int
}

// slabBuf returns n bytes of zeroed memory cut from a slab of huge pages,
// or nil where n is outside [slabMin, slabMax) or huge pages are off. A
// slab is one Go allocation, 2 MB aligned and advised for huge pages as a
// whole, whose 2 MB pages are collapsed as buffers reach them: the pages
// past the last buffer are not touched. It is freed once no buffer cut
// from it is reachable.
func slabBuf(n int) []byte {
	if n < slabMin || n >= slabMax || thpOff() {
		return nil
	}
	ws := &weightSlab
	ws.mu.Lock()
	defer ws.mu.Unlock()
	sl := ws.w.Value()
	if sl == nil || slabBytes-ws.next < n {
		sl = new(slab)
		ws.w = weak.Make(sl)
		ws.off, ws.next = int(-uintptr(unsafe.Pointer(sl))&(hugePage-1)), 0
		lo := uintptr(unsafe.Pointer(&sl[ws.off]))
		_ = madvise(lo, lo+slabBytes, unix.MADV_HUGEPAGE)
	}
	s := sl[ws.off : ws.off+slabBytes]
	b := s[ws.next : ws.next+n : ws.next+n]
	// Collapse every 2 MB page b touches: they all lie in the slab.
	lo, hi := ws.next&^(hugePage-1), min((ws.next+n+hugePage-1)&^(hugePage-1), slabBytes)
	base := uintptr(unsafe.Pointer(&s[0]))
	_ = madvise(base+uintptr(lo), base+uintptr(hi), unix.MADV_COLLAPSE)
	runtime.KeepAlive(sl)
	ws.next = (ws.next + n + 63) &^ 63
	return b
}

// madvise gives advice for the addresses [lo, hi), which may reach past
// one Go object (so they are not a slice).
func madvise(lo, hi uintptr, advice int) error {
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, lo, hi-lo, uintptr(advice)); e != 0 {
		return e
	}
	return nil
}

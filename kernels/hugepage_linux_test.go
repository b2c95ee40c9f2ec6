//go:build linux

package kernels

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"unsafe"
	"weak"
)

// TestWeightBufHugePages checks that a weight buffer's memory is advised
// for transparent huge pages (the "hg" flag of its mapping in
// /proc/self/smaps) and logs how much of it the kernel backs with them,
// which depends on the free memory's fragmentation; and that the advice
// changes no byte.
func TestWeightBufHugePages(t *testing.T) {
	if thpOff() {
		t.Skip("transparent huge pages are off on this system")
	}
	b := weightBuf(16 << 20)
	for i := range b {
		b[i] = byte(i)
	}
	// Advice over memory already filled, reaching past the slice it is
	// given (as a weight buffer's neighbours in the heap are), keeps it.
	adviseHuge(b[1<<20+5 : 9<<20+7])
	for i := range b {
		if b[i] != byte(i) {
			t.Fatalf("byte %d changed to %d by adviseHuge", i, b[i])
		}
	}
	addr := uintptr(unsafe.Pointer(&b[0]))
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	defer f.Close()
	var in bool
	var huge, flags string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x", &lo, &hi); n == 2 { // a mapping's first line
			in = lo <= addr && addr < hi
			continue
		}
		if !in {
			continue
		}
		switch {
		case strings.HasPrefix(line, "AnonHugePages:"):
			huge = strings.TrimSpace(strings.TrimPrefix(line, "AnonHugePages:"))
		case strings.HasPrefix(line, "VmFlags:"):
			flags = line
		}
	}
	if flags == "" {
		t.Fatalf("no mapping in smaps holds %#x", addr)
	}
	if !strings.Contains(flags, " hg") {
		t.Errorf("weight buffer's mapping is not advised for huge pages: %s", flags)
	}
	t.Logf("huge pages backing the mapping: %s", huge)
	runtime.KeepAlive(b)
}

// TestSlabBuf checks that weight buffers between slabMin and slabMax are
// cut from 2 MB-aligned slabs: each zeroed, on a cache line, of the length
// and capacity asked for, apart from every other, and that sizes outside
// the range are not.
func TestSlabBuf(t *testing.T) {
	if thpOff() {
		if slabBuf(1<<20) != nil {
			t.Error("a slab buffer with transparent huge pages off")
		}
		t.Skip("transparent huge pages are off on this system")
	}
	if slabBuf(slabMin-1) != nil || slabBuf(slabMax) != nil {
		t.Error("slabBuf cut a buffer of a size outside its range")
	}
	weightSlab.mu.Lock()
	weightSlab.w = weak.Pointer[slab]{} // a slab of this test's own
	weightSlab.mu.Unlock()
	sizes := []int{slabMin, 1<<20 + 3, 5 << 20, 12<<20 + 64, 1 << 20, slabMax - 1, 3 << 20} // one slab's worth
	var bufs [][]byte
	for i, n := range sizes {
		b := slabBuf(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("slabBuf(%d): len %d, cap %d", n, len(b), cap(b))
		}
		if a := uintptr(unsafe.Pointer(unsafe.SliceData(b))); a%64 != 0 {
			t.Errorf("slabBuf(%d) at %#x, not on a cache line", n, a)
		}
		base := uintptr(unsafe.Pointer(&weightSlab.w.Value()[weightSlab.off]))
		if a := uintptr(unsafe.Pointer(unsafe.SliceData(b))); base%hugePage != 0 || a < base || a+uintptr(n) > base+slabBytes {
			t.Errorf("slabBuf(%d) at %#x, outside the slab [%#x, %#x)", n, a, base, base+slabBytes)
		}
		for j, c := range b {
			if c != 0 {
				t.Fatalf("slabBuf(%d): byte %d is %d", n, j, c)
			}
		}
		for j := range b {
			b[j] = byte(i + 1)
		}
		bufs = append(bufs, b)
	}
	for i, b := range bufs {
		for j, c := range b {
			if c != byte(i+1) {
				t.Fatalf("buffer %d (of %d bytes): byte %d is %d, written by another buffer", i, len(b), j, c)
			}
		}
	}
	if w := weightBuf(1 << 20); len(w) != 1<<20 {
		t.Errorf("weightBuf(1 MB) has %d bytes", len(w))
	}
	// The slab goes with its buffers.
	bufs = nil
	for i := 0; weightSlab.w.Value() != nil; i++ {
		if i == 100 {
			t.Fatal("the slab outlived every buffer cut from it")
		}
		runtime.GC()
	}
}

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

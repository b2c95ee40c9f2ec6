//go:build !linux

package kernels

// adviseHuge is a no-op where the kernels know no way to ask for huge
// pages (see the Linux version).
func adviseHuge(b []byte) {}

// slabBuf returns nil: weight buffers are plain allocations here.
func slabBuf(n int) []byte { return nil }

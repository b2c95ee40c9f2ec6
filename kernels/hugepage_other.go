//go:build !linux

package kernels

// adviseHuge is a no-op where the kernels know no way to ask for huge
// pages (see the Linux version).
func adviseHuge(b []byte) {}

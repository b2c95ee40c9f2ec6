//go:build unix

package gguf

import (
	"fmt"
	"math"
	"os"

	"golang.org/x/sys/unix"
)

// Open maps the GGUF file at path read-only and parses it. Tensor data is
// read through the mapping on demand: opening a multi-GB model costs only
// its header. The file must not be truncated while it is open (reading a
// view of a truncated mapping faults).
//
// Errors about the contents wrap ErrFormat; others are I/O errors.
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	size := st.Size()
	if size == 0 {
		_, err := Parse(nil)
		return nil, within(err, "%s", path)
	}
	if size > math.MaxInt {
		return nil, fmt.Errorf("gguf: %s: %d bytes is too large to map", path, size)
	}
	data, err := unix.Mmap(int(fd.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("gguf: mmap %s: %w", path, err)
	}
	f, err := Parse(data)
	if err != nil {
		unix.Munmap(data)
		return nil, within(err, "%s", path)
	}
	f.unmap = func() error { return unix.Munmap(data) }
	return f, nil
}

//go:build !unix

package gguf

import (
	"fmt"
	"os"
)

// Open reads the GGUF file at path and parses it. On this system the whole
// file is read into memory (on unix it is mapped instead).
//
// Errors about the contents wrap ErrFormat; others are I/O errors.
func Open(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, within(err, "%s", path)
	}
	return f, nil
}

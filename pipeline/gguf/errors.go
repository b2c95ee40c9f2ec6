package gguf

import (
	"errors"
	"fmt"
	"strconv"
)

// formatError is the error for malformed contents (or, from Write, invalid
// input). It reads "gguf: <what is wrong>" and wraps ErrFormat.
type formatError struct{ msg string }

func (e *formatError) Error() string { return "gguf: " + e.msg }
func (e *formatError) Unwrap() error { return ErrFormat }

func errorf(format string, args ...any) error {
	return &formatError{fmt.Sprintf(format, args...)}
}

// within prefixes a formatError's message with context ("metadata key 3
// (\"general.name\")"); other errors are returned unchanged.
func within(err error, format string, args ...any) error {
	var fe *formatError
	if errors.As(err, &fe) {
		return &formatError{fmt.Sprintf(format, args...) + ": " + fe.msg}
	}
	return err
}

// maxQuoted is how much of a key or name an error message quotes: keys in a
// corrupt file can be 64 KiB of garbage.
const maxQuoted = 80

// quote returns s quoted for a message, shortened to maxQuoted bytes.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:maxQuoted]) + "..."
}

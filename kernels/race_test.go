//go:build race

package kernels

// raceEnabled reports a -race build: sync.Pool then drops items on purpose,
// so allocation counts mean nothing.
const raceEnabled = true

//go:build !amd64 || purego

package kernels

// fmaLoop is nil without the assembly: the FMA peak is then unknown.
var fmaLoop func(int) float32

//go:build !amd64 || purego

package kernels

// fmaLoop is nil without the assembly: the FMA peak is then unknown.
var (
	fmaLoop     func(int) float32
	fmaLoopFLOP float64
)

// simd is SIMD's answer: no assembly.
const simd = "go"

// readLoops is empty without the assembly: MeasureBandwidth then uses its
// plain-Go loop only.
var readLoops []func([]byte) uint64

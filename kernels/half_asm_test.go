//go:build amd64 && !purego

package kernels

import (
	"math"
	"os"
	"testing"
)

// TestQuantizeAct32 checks the SIMD rounding of activations to half
// precision (VCVTPS2PH) against F32ToF16 on a stride through every float32
// bit pattern, with the specials and the rounding boundaries around every
// half; STRATA_EXHAUSTIVE=1 runs all 2^32.
func TestQuantizeAct32(t *testing.T) {
	if !useAVX2 {
		t.Skip("no F16C on this CPU")
	}
	stride := uint64(4099)
	if os.Getenv("STRATA_EXHAUSTIVE") != "" {
		stride = 1
	}
	const chunk = 1 << 16
	x := make([]float32, 0, chunk+64)
	y := make([]byte, 4*(chunk+64))
	check := func() {
		quantizeAct32(y, x)
		got := f32View(y[:4*len(x)])
		for i, v := range x {
			want := F16ToF32(F32ToF16(v))
			if math.Float32bits(got[i]) != math.Float32bits(want) {
				t.Fatalf("%#08x: SIMD %#08x, reference %#08x", math.Float32bits(v), math.Float32bits(got[i]), math.Float32bits(want))
			}
		}
		x = x[:0]
	}
	add := func(b uint32) {
		x = append(x, math.Float32frombits(b))
		if len(x) >= chunk {
			check()
		}
	}
	for h := range uint32(1 << 16) { // every half, and the float32s around its rounding boundaries
		f := math.Float32bits(F16ToF32(uint16(h)))
		for _, d := range []uint32{0, 1, 0xfff, 0x1000, 0x1001, 0x1fff} {
			add(f + d)
			add(f - d)
		}
	}
	for b := uint64(0); b < 1<<32; b += stride {
		add(uint32(b))
	}
	add(0x7f800000)
	add(0xff800000)
	add(0x7fc00001)
	add(0xffbfffff)
	add(0x00000001) // odd length: the Go tail
	check()
}

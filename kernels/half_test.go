package kernels

import (
	"encoding/binary"
	"math"
	"testing"
)

func TestF16RoundTripExhaustive(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		f := F16ToF32(h)
		exp, man := h>>10&0x1f, h&0x3ff
		if exp == 0x1f && man != 0 {
			// NaN: stays NaN with its sign, made quiet, payload kept.
			b := math.Float32bits(f)
			if f == f || b>>31 != uint32(h>>15) || b&0x3fffff != uint32(man&0x1ff)<<13 {
				t.Fatalf("F16ToF32(%#04x) = %#08x, want quiet NaN with the same sign and payload", h, b)
			}
			if got, want := F32ToF16(f), h|0x200; got != want {
				t.Fatalf("F32ToF16(F16ToF32(%#04x)) = %#04x, want %#04x", h, got, want)
			}
			continue
		}
		if got := F32ToF16(f); got != h {
			t.Fatalf("F32ToF16(F16ToF32(%#04x) = %g) = %#04x", h, f, got)
		}
		// The value itself, from the definition.
		var want float64
		if exp == 0 {
			want = float64(man) * math.Ldexp(1, -24)
		} else if exp == 0x1f {
			want = math.Inf(1)
		} else {
			want = (1 + float64(man)/1024) * math.Ldexp(1, int(exp)-15)
		}
		if h>>15 == 1 {
			want = -want
		}
		if float64(f) != want || math.Signbit(float64(f)) != (h>>15 == 1) {
			t.Fatalf("F16ToF32(%#04x) = %g, want %g", h, f, want)
		}
	}
}

// TestF32ToF16Rounding checks every midpoint between adjacent halves and
// the values just beside it: below rounds down, above rounds up, the
// midpoint goes to the even neighbour.
func TestF32ToF16Rounding(t *testing.T) {
	for i := range 0x7c00 - 1 { // positive finite halves a, and a+1
		a, b := uint16(i), uint16(i+1)
		fa, fb := float64(F16ToF32(a)), float64(F16ToF32(b))
		mid := float32((fa + fb) / 2) // exact: halves have 11 significant bits
		if float64(mid) != (fa+fb)/2 {
			t.Fatalf("midpoint of %#04x and %#04x not exact", a, b)
		}
		even := a
		if a&1 == 1 {
			even = b
		}
		below := math.Nextafter32(mid, 0)
		above := math.Nextafter32(mid, float32(math.Inf(1)))
		for _, c := range []struct {
			f    float32
			want uint16
		}{{mid, even}, {below, a}, {above, b}, {-mid, even | 0x8000}, {-above, b | 0x8000}} {
			if got := F32ToF16(c.f); got != c.want {
				t.Fatalf("F32ToF16(%g (%#08x)) = %#04x, want %#04x", c.f, math.Float32bits(c.f), got, c.want)
			}
		}
	}
}

func TestF32ToF16Special(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, c := range []struct {
		f    float32
		want uint16
	}{
		{0, 0},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{65504, 0x7bff},               // largest half
		{65519.996, 0x7bff},           // just below the midpoint to Inf
		{65520, 0x7c00},               // midpoint: ties to even = Inf
		{1e6, 0x7c00},                 // overflow
		{-1e6, 0xfc00},                // overflow
		{inf, 0x7c00},                 // Inf
		{-inf, 0xfc00},                // -Inf
		{math.MaxFloat32, 0x7c00},     // overflow
		{0x1p-24, 0x0001},             // smallest subnormal
		{0x1p-25, 0x0000},             // half of it: ties to even = 0
		{0x1.000002p-25, 0x0001},      // just above the midpoint
		{0x1.8p-24, 0x0002},           // 1.5 ulp: ties to even = 2
		{0x1p-14, 0x0400},             // smallest normal
		{0x1.ffcp-15, 0x0400},         // midpoint 1023.5 ulp: ties to even = smallest normal
		{0x1p-149, 0x0000},            // float32 subnormal
		{-0x1p-149, 0x8000},           // negative float32 subnormal
		{float32(math.NaN()), 0x7e00}, // quiet NaN
		{math.Float32frombits(0x7f800001), 0x7e00}, // signaling NaN made quiet
		{math.Float32frombits(0xffc02000), 0xfe01}, // payload top bits kept
	} {
		if got := F32ToF16(c.f); got != c.want {
			t.Errorf("F32ToF16(%g (%#08x)) = %#04x, want %#04x", c.f, math.Float32bits(c.f), got, c.want)
		}
	}
}

func TestBF16(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		f := BF16ToF32(h)
		if math.Float32bits(f) != uint32(h)<<16 {
			t.Fatalf("BF16ToF32(%#04x) = %#08x", h, math.Float32bits(f))
		}
		want := h
		if f != f {
			want |= 0x40 // NaN made quiet
		}
		if got := F32ToBF16(f); got != want {
			t.Fatalf("F32ToBF16(BF16ToF32(%#04x)) = %#04x, want %#04x", h, got, want)
		}
	}
	for _, c := range []struct {
		bits uint32
		want uint16
	}{
		{0x3f808000, 0x3f80}, // midpoint, even below
		{0x3f818000, 0x3f82}, // midpoint, even above
		{0x3f808001, 0x3f81}, // above midpoint
		{0x3f807fff, 0x3f80}, // below midpoint
		{0x7f7fffff, 0x7f80}, // rounds to Inf
		{0x00018000, 0x0002}, // subnormal, midpoint to even (not flushed)
		{0x7f800001, 0x7fc0}, // signaling NaN made quiet
		{0xff810000, 0xffc1}, // payload kept
		{0x80000000, 0x8000}, // -0
	} {
		if got := F32ToBF16(math.Float32frombits(c.bits)); got != c.want {
			t.Errorf("F32ToBF16(%#08x) = %#04x, want %#04x", c.bits, got, c.want)
		}
	}
}

// TestDequantizeF16 widens every half through Dequantize (F16C where the
// CPU has it, by 8s, the rest in Go) at every alignment of a row's length
// and start, and checks each against F16ToF32 bit for bit (NaNs too: both
// quiet them the same way).
func TestDequantizeF16(t *testing.T) {
	src := make([]byte, 2<<16)
	for i := range 1 << 16 {
		binary.LittleEndian.PutUint16(src[2*i:], uint16(i))
	}
	dst := make([]float32, 1<<16)
	for _, span := range [][2]int{{0, 1 << 16}, {3, 1<<16 - 3}, {5, 12}, {7, 7}, {0, 0}} {
		lo, n := span[0], span[1]
		clear(dst)
		Dequantize(dst[:n], F16, src[2*lo:])
		for i := range n {
			h := uint16(lo + i)
			if got, want := math.Float32bits(dst[i]), math.Float32bits(F16ToF32(h)); got != want {
				t.Fatalf("row [%d, %d): half %#04x widened to %#08x, want %#08x", lo, lo+n, h, got, want)
			}
		}
	}
}

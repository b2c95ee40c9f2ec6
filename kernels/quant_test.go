package kernels

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The hand blocks below are built byte by byte from the layouts in the
// brief (ggml's block structs); the expected values come from the block's
// definition element by element, not from the decoding loops.

func le16(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func cat(parts ...[]byte) []byte { return slices.Concat(parts...) }

func checkDequant(t *testing.T, typ DType, block []byte, want []float32) {
	t.Helper()
	if len(block) != typ.BlockBytes() {
		t.Fatalf("%v block is %d bytes, want %d", typ, len(block), typ.BlockBytes())
	}
	got := make([]float32, len(want))
	Dequantize(got, typ, block)
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%v element %d = %g, want %g", typ, i, got[i], want[i])
		}
	}
}

func TestDequantizeHandBlocks(t *testing.T) {
	t.Run("F32/F16/BF16", func(t *testing.T) {
		checkDequant(t, F32, le32(0xc0490fdb), []float32{-3.1415927})
		checkDequant(t, F16, le16(0x3555), []float32{0.33325195})
		checkDequant(t, BF16, le16(0xbf80), []float32{-1})
	})
	t.Run("Q4_0", func(t *testing.T) {
		qs := make([]byte, 16)
		want := make([]float32, 32)
		for j := range 16 {
			qs[j] = byte(j) | byte(15-j)<<4
			want[j] = float32(j-8) * 0.5
			want[j+16] = float32(7-j) * 0.5
		}
		checkDequant(t, Q4_0, cat(le16(0x3800), qs), want) // d = 0.5
		if want[0] != -4 || want[15] != 3.5 || want[16] != 3.5 || want[31] != -4 {
			t.Fatal("bad hand expectation")
		}
	})
	t.Run("Q4_1", func(t *testing.T) {
		qs := make([]byte, 16)
		want := make([]float32, 32)
		for j := range 16 {
			qs[j] = byte(j) | byte(15-j)<<4
			want[j] = float32(j)*0.25 - 1
			want[j+16] = float32(15-j)*0.25 - 1
		}
		checkDequant(t, Q4_1, cat(le16(0x3400), le16(0xbc00), qs), want) // d = 0.25, m = -1
	})
	const qh = 0xaaaa5555 // bits 0..15 alternate from 1, bits 16..31 from 0
	t.Run("Q5_0", func(t *testing.T) {
		qs := make([]byte, 16)
		want := make([]float32, 32)
		for j := range 16 {
			qs[j] = byte(j) | byte(15-j)<<4
			want[j] = float32(j+16*(1-j%2)-16) * 0.25
			want[j+16] = float32(15-j+16*(j%2)-16) * 0.25
		}
		checkDequant(t, Q5_0, cat(le16(0x3400), le32(qh), qs), want)
		// Spot values worked out by hand.
		if want[0] != 0 || want[1] != -3.75 || want[16] != -0.25 || want[17] != 3.5 {
			t.Fatal("bad hand expectation")
		}
	})
	t.Run("Q5_1", func(t *testing.T) {
		qs := make([]byte, 16)
		want := make([]float32, 32)
		for j := range 16 {
			qs[j] = byte(j) | byte(15-j)<<4
			want[j] = float32(j+16*(1-j%2))*0.5 + 2
			want[j+16] = float32(15-j+16*(j%2))*0.5 + 2
		}
		checkDequant(t, Q5_1, cat(le16(0x3800), le16(0x4000), le32(qh), qs), want) // d = 0.5, m = 2
	})
	t.Run("Q8_0", func(t *testing.T) {
		qs := make([]byte, 32)
		want := make([]float32, 32)
		for j := range 32 {
			q := int8(j*9 - 128)
			qs[j] = byte(q)
			want[j] = float32(q) * -2
		}
		checkDequant(t, Q8_0, cat(le16(0xc000), qs), want) // d = -2
	})

	// K-quants: scales sc and mins m of the 8 sub-blocks, and their 12-byte
	// packing worked out by hand: bytes 0-3 hold sc[0..3] and the top two
	// bits of sc[4..7]; bytes 4-7 m[0..3] and the top bits of m[4..7]; bytes
	// 8-11 the low nibbles of sc[4..7] | m[4..7]<<4.
	sc := [8]uint8{1, 2, 3, 4, 33, 34, 35, 63}
	mn := [8]uint8{5, 6, 7, 8, 40, 41, 62, 63}
	scales := []byte{0x81, 0x82, 0x83, 0xc4, 0x85, 0x86, 0xc7, 0xc8, 0x81, 0x92, 0xe3, 0xff}
	t.Run("scaleMinK4", func(t *testing.T) {
		s := (*[12]byte)(scales)
		for j := range 8 {
			if gs, gm := scaleMinK4(j, s); gs != sc[j] || gm != mn[j] {
				t.Errorf("sub-block %d: scale %d min %d, want %d %d", j, gs, gm, sc[j], mn[j])
			}
		}
		var packed [12]byte
		packScaleMinK4(&packed, &sc, &mn)
		if !slices.Equal(packed[:], scales) {
			t.Errorf("packScaleMinK4 = % x, want % x", packed, scales)
		}
	})
	qs := make([]byte, 128)
	for i := range qs {
		qs[i] = byte(i*37 + 11)
	}
	qhK := make([]byte, 32)
	for l := range qhK {
		qhK[l] = byte(l*73 + 5)
	}
	t.Run("Q4_K", func(t *testing.T) {
		want := make([]float32, 256)
		for e := range want {
			c, r := e/64, e%64
			sub, l := 2*c+r/32, r%32
			q := qs[32*c+l] >> (4 * (r / 32)) & 0xf
			want[e] = 1.5*float32(sc[sub])*float32(q) - 0.25*float32(mn[sub])
		}
		checkDequant(t, Q4_K, cat(le16(0x3e00), le16(0x3400), scales, qs), want) // d = 1.5, dmin = 0.25
	})
	t.Run("Q5_K", func(t *testing.T) {
		want := make([]float32, 256)
		for e := range want {
			c, r := e/64, e%64
			sub, l := 2*c+r/32, r%32
			q := qs[32*c+l]>>(4*(r/32))&0xf | (qhK[l]>>sub&1)<<4
			want[e] = 1.5*float32(sc[sub])*float32(q) - 0.25*float32(mn[sub])
		}
		checkDequant(t, Q5_K, cat(le16(0x3e00), le16(0x3400), scales, qhK, qs), want)
	})
	t.Run("Q6_K", func(t *testing.T) {
		ql := make([]byte, 128)
		qh6 := make([]byte, 64)
		sc6 := make([]byte, 16)
		for i := range ql {
			ql[i] = byte(i*29 + 3)
		}
		for i := range qh6 {
			qh6[i] = byte(i*53 + 17)
		}
		for i := range sc6 {
			sc6[i] = byte(int8(i*19 - 128))
		}
		want := make([]float32, 256)
		for e := range want {
			n, r := e/128, e%128
			k, l := r/32, r%32
			lo := ql[64*n+l+32*(k&1)] >> (4 * (k >> 1)) & 0xf
			hi := qh6[32*n+l] >> (2 * k) & 3
			q := int(lo|hi<<4) - 32
			want[e] = 0.25 * float32(int8(sc6[e/16])) * float32(q)
		}
		checkDequant(t, Q6_K, cat(ql, qh6, sc6, le16(0x3400)), want) // d = 0.25
	})
}

func TestQuantizeRefQ8_0Exact(t *testing.T) {
	// amax = 127 makes d = 1 (F16 0x3c00) and 1/d = 1, so q = roundf(x):
	// halves round away from zero.
	x := make([]float32, 32)
	copy(x, []float32{127, -2.5, 2.5, 0.5, -0.5, 1.49, -126.5, 3.7, -0.49})
	want := cat(le16(0x3c00), []byte{127, 0xfd, 3, 1, 0xff, 1, 0x81, 4, 0}, make([]byte, 23))
	if got := Quantize(nil, Q8_0, x); !slices.Equal(got, want) {
		t.Errorf("Quantize Q8_0 = % x\nwant % x", got, want)
	}
	// An all-zero block: d = 0, q = 0.
	if got := Quantize(nil, Q8_0, make([]float32, 32)); !slices.Equal(got, make([]byte, 34)) {
		t.Errorf("Quantize Q8_0 of zeros = % x", got)
	}
	// d = amax/127 rounded to F16; q = roundf(x * (1/d)).
	x = make([]float32, 32)
	for i := range x {
		x[i] = float32(i) / 10
	}
	got := Quantize(nil, Q8_0, x)
	d := float32(3.1) / 127
	if h := binary.LittleEndian.Uint16(got); h != F32ToF16(d) {
		t.Errorf("d = %#04x, want %#04x", h, F32ToF16(d))
	}
	for i, v := range x {
		if q := int8(got[2+i]); q != int8(math.Round(float64(v*(1/d)))) {
			t.Errorf("q[%d] = %d", i, q)
		}
	}
	// Appends.
	if got := Quantize([]byte{9}, Q8_0, make([]float32, 32)); len(got) != 35 || got[0] != 9 {
		t.Errorf("Quantize does not append: % x", got)
	}
}

func TestQuantizeRefSmallFormats(t *testing.T) {
	// Q4_0: max = -8 gives d = 1 and q = min(15, trunc(x + 8.5)).
	x := make([]float32, 32)
	copy(x, []float32{-8, 7.6, 0.5, -0.5, 7.4, 8})
	got := Quantize(nil, Q4_0, x)
	wantQ := []byte{0, 15, 9, 8, 15, 15} // x+8.5 = 0.5, 16.1, 9, 8, 15.9, 16.5
	for j, w := range wantQ {
		if q := got[2+j] & 0xf; q != w {
			t.Errorf("Q4_0 q[%d] = %d, want %d", j, q, w)
		}
	}
	if h := binary.LittleEndian.Uint16(got); h != 0x3c00 {
		t.Errorf("Q4_0 d = %#04x, want 0x3c00", h)
	}
	if hi := got[2] >> 4; hi != 8 { // element 16 is 0: trunc(8.5) = 8
		t.Errorf("Q4_0 q[16] = %d, want 8", hi)
	}
	// Q5_1 of 0..31 (min 0, max 31): d = 1, m = 0, q = x.
	for i := range x {
		x[i] = float32(i)
	}
	got = Quantize(nil, Q5_1, x)
	dq := make([]float32, 32)
	Dequantize(dq, Q5_1, got)
	if !slices.Equal(dq, x) {
		t.Errorf("Q5_1 of 0..31 = %v", dq)
	}
	// Q5_0 of -16..15 scaled: max = -16 gives d = 1.
	for i := range x {
		x[i] = float32(i - 16)
	}
	got = Quantize(nil, Q5_0, x)
	Dequantize(dq, Q5_0, got)
	if !slices.Equal(dq, x) {
		t.Errorf("Q5_0 of -16..15 = %v", dq)
	}
	// Q4_1 of 0..15 twice: exact.
	for i := range x {
		x[i] = float32(i % 16)
	}
	got = Quantize(nil, Q4_1, x)
	Dequantize(dq, Q4_1, got)
	if !slices.Equal(dq, x) {
		t.Errorf("Q4_1 of 0..15 = %v", dq)
	}
}

// TestQuantizeRoundTrip checks Dequantize(Quantize(x)) against error bounds
// per block derived from each format's step size.
func TestQuantizeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 8 * 256
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
		if i%97 == 0 {
			x[i] *= 4 // outliers
		}
	}
	for i := 256; i < 288; i++ {
		x[i] = 0 // a zero block
	}
	for i := 512; i < 544; i++ {
		x[i] = 3 // a constant block: the error bounds hold there too
	}
	const f16e = 1.0 / 1024 // relative error of an F16-rounded scale, with margin
	for _, c := range []struct {
		t     DType
		block int
		// bound returns the largest allowed |error| in a block with
		// minimum lo, maximum hi, and largest magnitude amax.
		bound   func(lo, hi, amax float32) float32
		maxRMSE float64 // over the whole vector, for unit variance
	}{
		{F32, 1, func(lo, hi, amax float32) float32 { return 0 }, 0},
		{F16, 1, func(lo, hi, amax float32) float32 { return amax / 2048 }, 1e-3},
		{BF16, 1, func(lo, hi, amax float32) float32 { return amax / 256 }, 4e-3},
		{Q8_0, QK, func(lo, hi, amax float32) float32 { return amax/127/2 + amax*f16e }, 0.01},
		{Q4_0, QK, func(lo, hi, amax float32) float32 { return amax/8 + amax*f16e }, 0.12},
		{Q4_1, QK, func(lo, hi, amax float32) float32 { return (hi-lo)/15/2 + 2*amax*f16e }, 0.12},
		{Q5_0, QK, func(lo, hi, amax float32) float32 { return amax/16 + amax*f16e }, 0.06},
		{Q5_1, QK, func(lo, hi, amax float32) float32 { return (hi-lo)/31/2 + 2*amax*f16e }, 0.06},
		{Q4_K, QKK, func(lo, hi, amax float32) float32 { return (hi - lo) / 15 }, 0.12},
		{Q5_K, QKK, func(lo, hi, amax float32) float32 { return (hi - lo) / 31 }, 0.06},
		{Q6_K, QKK, func(lo, hi, amax float32) float32 { return amax / 32 }, 0.03},
	} {
		t.Run(c.t.String(), func(t *testing.T) {
			q := Quantize(nil, c.t, x)
			if want, _ := c.t.RowBytes(n); len(q) != want {
				t.Fatalf("encoded %d bytes, want %d", len(q), want)
			}
			y := make([]float32, n)
			Dequantize(y, c.t, q)
			var se float64
			for b := 0; b < n; b += c.block {
				xb, yb := x[b:b+c.block], y[b:b+c.block]
				lo, hi := minMax(xb)
				_, amax := absMax(xb)
				bound := c.bound(lo, hi, amax)
				for i := range xb {
					e := absf(xb[i] - yb[i])
					if e > bound || e != e {
						t.Fatalf("element %d: %g -> %g, error %g > bound %g", b+i, xb[i], yb[i], e, bound)
					}
					se += float64(e) * float64(e)
				}
			}
			if rmse := math.Sqrt(se / n); rmse > c.maxRMSE {
				t.Errorf("RMS error %g > %g", rmse, c.maxRMSE)
			} else {
				t.Logf("RMS error %.4g", rmse)
			}
			// A zero block comes back exactly.
			for i := 256; i < 288; i++ {
				if y[i] != 0 {
					t.Fatalf("zero block element %d = %g", i, y[i])
				}
			}
		})
	}
}

func TestActivationQuantizers(t *testing.T) {
	t.Run("Q8_0", func(t *testing.T) {
		// amax = 127 makes d = 1 and id = 1: halves round to even.
		x := make([]float32, 64)
		copy(x, []float32{127, -2.5, 2.5, 0.5, -0.5, 1.5, -126.5, 3.7})
		y := make([]byte, 2*q8_0Bytes)
		quantizeQ8_0(y, x)
		want := cat(le16(0x3c00), []byte{127, 0xfe, 2, 0, 0, 2, 0x82, 4}, make([]byte, 24), make([]byte, 34))
		if !slices.Equal(y, want) {
			t.Errorf("quantizeQ8_0 = % x\nwant % x", y, want)
		}
		// id = 127/amax, not 1/d: amax = 3 gives id = 42.333332.
		copy(x, []float32{3, 1, -1})
		clear(x[3:])
		quantizeQ8_0(y, x)
		if h := binary.LittleEndian.Uint16(y); h != F32ToF16(float32(3)/127) {
			t.Errorf("d = %#04x", h)
		}
		if q := []int8{int8(y[2]), int8(y[3]), int8(y[4])}; q[0] != 127 || q[1] != 42 || q[2] != -42 {
			t.Errorf("q = %v, want [127 42 -42]", q)
		}
	})
	t.Run("Q8_1", func(t *testing.T) {
		x := make([]float32, 32)
		for i := range x {
			x[i] = float32(i) - 10
		}
		y := make([]byte, q8_1Bytes)
		quantizeQ8_1(y, x)
		d := float32(21) / 127
		id := float32(127) / 21
		var sum int32
		for i, v := range x {
			q := int8(math.RoundToEven(float64(v * id)))
			if int8(y[4+i]) != q {
				t.Errorf("q[%d] = %d, want %d", i, int8(y[4+i]), q)
			}
			sum += int32(q)
		}
		if h := binary.LittleEndian.Uint16(y[0:]); h != F32ToF16(d) {
			t.Errorf("d = %#04x, want %#04x", h, F32ToF16(d))
		}
		if h := binary.LittleEndian.Uint16(y[2:]); h != F32ToF16(d*float32(sum)) {
			t.Errorf("s = %#04x, want F16(%g*%d) = %#04x", h, d, sum, F32ToF16(d*float32(sum)))
		}
	})
	t.Run("Q8_K", func(t *testing.T) {
		x := make([]float32, 256)
		x[0], x[1], x[2], x[3], x[17] = -127, 2.5, -3.5, 127, 1
		y := make([]byte, q8_KBytes)
		quantizeQ8_K(y, x)
		// The first of the two largest magnitudes is -127: iscale = 1, d = 1.
		if d := math.Float32frombits(binary.LittleEndian.Uint32(y)); d != 1 {
			t.Errorf("d = %g, want 1", d)
		}
		if q := []int8{int8(y[4]), int8(y[5]), int8(y[6]), int8(y[7])}; !slices.Equal(q, []int8{-127, 2, -4, 127}) {
			t.Errorf("q = %v, want [-127 2 -4 127]", q)
		}
		if b0, b1 := int16(binary.LittleEndian.Uint16(y[260:])), int16(binary.LittleEndian.Uint16(y[262:])); b0 != -2 || b1 != 1 {
			t.Errorf("bsums = %d %d, want -2 1", b0, b1)
		}
		// A positive maximum flips the signs: iscale = -1, d = -1.
		x[0] = 100
		quantizeQ8_K(y, x)
		if d := math.Float32frombits(binary.LittleEndian.Uint32(y)); d != -1 {
			t.Errorf("d = %g, want -1", d)
		}
		if q := []int8{int8(y[4]), int8(y[5]), int8(y[6]), int8(y[7])}; !slices.Equal(q, []int8{-100, -2, 4, -127}) {
			t.Errorf("q = %v, want [-100 -2 4 -127]", q)
		}
		quantizeQ8_K(y, make([]float32, 256))
		if !slices.Equal(y, make([]byte, q8_KBytes)) {
			t.Error("zero block not all zero")
		}
	})
}

func FuzzDequantize(f *testing.F) {
	types := []DType{F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K}
	for i := range types {
		f.Add(uint8(i), make([]byte, 300))
		f.Add(uint8(i), slices.Repeat([]byte{0xff}, 300))
		f.Add(uint8(i), slices.Repeat([]byte{0x7c, 0x00, 0x7e, 0x01}, 100))
	}
	f.Fuzz(func(t *testing.T, ti uint8, data []byte) {
		typ := types[int(ti)%len(types)]
		nb := len(data) / typ.BlockBytes()
		data = data[:nb*typ.BlockBytes()]
		dst := make([]float32, nb*typ.BlockSize())
		Dequantize(dst, typ, data)
		// Row by row through a Matrix too.
		if nb > 0 {
			m, err := NewMatrix(typ, nb, typ.BlockSize(), data)
			if err != nil {
				t.Fatal(err)
			}
			row := make([]float32, typ.BlockSize())
			m.DequantizeRow(row, nb-1)
			for i, v := range row {
				if w := dst[len(dst)-len(row)+i]; math.Float32bits(v) != math.Float32bits(w) {
					t.Fatalf("DequantizeRow element %d = %g, Dequantize %g", i, v, w)
				}
			}
		}
	})
}

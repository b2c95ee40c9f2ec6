package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The tests in this file run every SIMD kernel this CPU has (asmDots,
// quantizers) against its plain-Go reference and require bitwise equality.
// Where there is none (another architecture, the purego tag, an older CPU)
// they skip.

// dotCase builds one weight row of type wt and one activation row in
// VecDotType(wt) of nb blocks (for F16 and F32: nb*32 + extra elements).
// raw makes the weights random bytes (finite scales, for F16 and F32
// finite values of any magnitude) instead of quantized normals; the
// activations are then raw too, except that quants avoid -128, which the
// quantizers never make, and Q8_K group sums are those of the quants.
func dotCase(rng *rand.Rand, wt DType, nb, extra int, raw bool) (w, x []byte) {
	n := nb * wt.BlockSize()
	if plainType(wt) {
		n = nb*32 + extra
	}
	if raw {
		switch wt {
		case F16, BF16:
			finite := finiteHalf
			if wt == BF16 {
				finite = finiteBF16
			}
			w, x = make([]byte, 2*n), make([]byte, 2*n)
			for i := range n {
				binary.LittleEndian.PutUint16(w[2*i:], finite(rng))
				binary.LittleEndian.PutUint16(x[2*i:], finite(rng))
			}
			return w, x
		case F32:
			wf, xf := make([]float32, n), make([]float32, n)
			for i := range n {
				wf[i] = float32(rng.NormFloat64() * math.Ldexp(1, rng.IntN(40)-20))
				xf[i] = float32(rng.NormFloat64() * math.Ldexp(1, rng.IntN(40)-20))
			}
			return f32Bytes(wf), f32Bytes(xf)
		}
		rb, _ := wt.RowBytes(n)
		w = make([]byte, rb)
		for i := range w {
			w[i] = byte(rng.Uint32())
		}
		sanitizeScales(wt, w)
		xt := VecDotType(wt)
		xb, _ := xt.RowBytes(n)
		x = make([]byte, xb)
		for i := range x {
			x[i] = byte(rng.Uint32())
			if x[i] == 0x80 {
				x[i] = 0x81
			}
		}
		sanitizeScales(xt, x)
		if xt == Q8_K {
			// Keep the float32 scale finite and make the group sums those
			// of the quants, as quantizeQ8_K does (the kernels rely on it).
			for o := 0; o < len(x); o += q8_KBytes {
				d := float32(rng.NormFloat64() * 0x1p-7)
				binary.LittleEndian.PutUint32(x[o:], math.Float32bits(d))
				for g := range QKK / 16 {
					var sum int16
					for _, q := range x[o+4+16*g : o+4+16*g+16] {
						sum += int16(int8(q))
					}
					binary.LittleEndian.PutUint16(x[o+4+QKK+2*g:], uint16(sum))
				}
			}
		}
		return w, x
	}
	sd := math.Ldexp(1, rng.IntN(20)-10)
	wf := randNormal(rng, n, sd)
	xf := randNormal(rng, n, 1)
	if nb > 1 && rng.IntN(3) == 0 {
		clear(xf[:32]) // a zero block
	}
	if wt == F32 {
		return f32Bytes(wf), f32Bytes(xf)
	}
	w = Quantize(nil, wt, wf)
	xt := VecDotType(wt)
	xb, _ := xt.RowBytes(n)
	x = make([]byte, xb)
	quantizeAct(x, xt, xf)
	return w, x
}

// plainType reports whether wt is a float type without blocks: dotCase
// then makes rows of 32 elements per block plus extra.
func plainType(wt DType) bool { return wt == F16 || wt == BF16 || wt == F32 }

// finiteBF16 returns random bfloat16 bits that are not Inf or NaN.
func finiteBF16(rng *rand.Rand) uint16 {
	for {
		if h := uint16(rng.Uint32()); h&0x7f80 != 0x7f80 {
			return h
		}
	}
}

// finiteHalf returns random half bits that are not Inf or NaN.
func finiteHalf(rng *rand.Rand) uint16 {
	for {
		if h := uint16(rng.Uint32()); h&0x7c00 != 0x7c00 {
			return h
		}
	}
}

// noQ8Min makes the -128 quants of the Q8_0 blocks in w -127.
func noQ8Min(w []byte) {
	for o := 0; o+q8_0Bytes <= len(w); o += q8_0Bytes {
		for i := o + 2; i < o+q8_0Bytes; i++ {
			if w[i] == 0x80 {
				w[i] = 0x81
			}
		}
	}
}

func checkDot(t *testing.T, d dotImpl, w, x []byte, nb int) {
	t.Helper()
	want, got := d.ref(w, x, nb), d.fast(w, x, nb)
	if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
		t.Fatalf("%s, %d blocks: SIMD %g (%#08x), reference %g (%#08x)",
			d.name, nb, got, math.Float32bits(got), want, math.Float32bits(want))
	}
}

func TestDotAsm(t *testing.T) {
	impls := asmDots()
	if len(impls) == 0 {
		t.Skip("no SIMD kernels on this CPU or build")
	}
	rng := rand.New(rand.NewPCG(31, 32))
	for _, d := range impls {
		t.Run(d.name, func(t *testing.T) {
			for _, nb := range []int{0, 1, 2, 3, 7, 64, 73} { // 73: F16X256STEP and single steps after
				for _, extra := range []int{0, 5, 31} {
					if extra != 0 && !plainType(d.wt) {
						continue
					}
					for rep := range 50 {
						w, x := dotCase(rng, d.wt, nb, extra, rep%2 == 1)
						if d.wt == Q8_0 && rep%4 == 3 {
							noQ8Min(w) // raw quants for the packed AVX2 kernels that sign the weights by x
						}
						checkDot(t, d, w, x, nb)
					}
				}
			}
		})
	}
}

// TestMatVecAsm checks whole products (every row, the pool, the Q4_0
// repacked path and its 8-row kernel, the same matrices Packed — Q5_0's,
// Q4_1's and Q5_1's too — one token and several) against the reference
// dots.
func TestMatVecAsm(t *testing.T) {
	if len(asmDots()) == 0 {
		t.Skip("no SIMD kernels on this CPU or build")
	}
	rng := rand.New(rand.NewPCG(33, 34))
	p := NewPool(2)
	defer p.Close()
	// F16 four times: with leftover columns, 32 to a step (the 16-row
	// kernel with AVX-512, the 2-row one for 5 tokens), wider than a band
	// (Packed lays 16 rows out in bands, the last one narrower), and wide
	// enough for bands but in one.
	for i, typ := range []DType{F32, F16, F16, F16, F16, Q8_0, Q4_0, Q5_0, Q4_1, Q5_1, Q4_K, Q5_K, Q6_K} {
		for _, rows := range []int{8, 13, 40, 1024} { // 1024: pool chunks
			cols := 7*32 + 5 // F32 and F16: leftovers
			switch typ {
			case Q8_0, Q4_0, Q5_0, Q4_1, Q5_1:
				cols = 7 * 32 // Q4_0 with 8 rows: the 4-block loop and its tail
			case Q4_K, Q5_K, Q6_K:
				cols = 3 * QKK
			case F16:
				switch i {
				case 2:
					cols = 9 * 32
				case 3:
					cols = 2*f16Band + 3*32
				case 4:
					cols = f16BandsFrom + 32
				}
			}
			w := randMatrix(t, rng, typ, rows, cols)
			for _, n := range []int{1, 5} {
				xf := randNormal(rng, n*cols, 1)
				got := make([]float32, n*rows)
				MatMul(p, got, w, xf, n)
				want := make([]float32, n*rows)
				xt := VecDotType(typ)
				xb, _ := xt.RowBytes(cols)
				x := make([]byte, xb)
				for i := range n {
					xi := xf[i*cols : (i+1)*cols]
					quantizeAct(x, xt, xi)
					for r := range rows {
						row := w.Data[r*w.RowBytes() : (r+1)*w.RowBytes()]
						switch {
						case typ == F32:
							want[i*rows+r] = dotF32(row, xi)
						case typ == Q4_0 && rows%8 == 0:
							want[i*rows+r] = dotQ4_0Q8_0x8(row, x, cols/QK)
						default:
							want[i*rows+r] = rowDot(typ)(row, x, cols/typ.BlockSize())
						}
					}
				}
				if !bitsEqual(got, want) {
					t.Errorf("%v %dx%d n=%d: MatMul %v, reference %v", typ, rows, cols, n, got, want)
				}
				packed := make([]float32, n*rows)
				MatMul(p, packed, w.Packed(), xf, n)
				if !bitsEqual(packed, want) {
					t.Errorf("%v %dx%d n=%d: MatMul of Packed %v, reference %v", typ, rows, cols, n, packed, want)
				}
			}
		}
	}
}

// TestMatMulBatchAsm checks the batched float products (llama.cpp's sgemm
// lanes; for F16 on the 2x6 register tiles, with odd row chunks from the
// pool and leftover tokens) against the reference sgemm dots.
func TestMatMulBatchAsm(t *testing.T) {
	if len(asmDots()) == 0 {
		t.Skip("no SIMD kernels on this CPU or build")
	}
	rng := rand.New(rand.NewPCG(39, 40))
	p := NewPool(2)
	defer p.Close()
	const rows = 40 // F16 chunks of 7 rows at n = 9
	for _, typ := range []DType{F32, F16} {
		for _, c := range []struct{ n, cols int }{{3, 232}, {4, 232}, {9, 232}, {13, 232}, {13, 1032}} { // 1032: blocks of columns
			n, cols := c.n, c.cols
			w := randMatrix(t, rng, typ, rows, cols)
			xf := randNormal(rng, n*cols, 1)
			got := make([]float32, n*rows)
			MatMulBatch(p, got, w, xf, n)
			want := make([]float32, n*rows)
			for i := range n {
				xi := xf[i*cols : (i+1)*cols]
				xh := make([]byte, 2*cols)
				quantizeAct(xh, F16, xi)
				for r := range rows {
					row := w.Data[r*w.RowBytes() : (r+1)*w.RowBytes()]
					if typ == F32 {
						want[i*rows+r] = sgemmF32(row, xi)
					} else {
						want[i*rows+r] = sgemmF16(row, xh, 0)
					}
				}
			}
			if !bitsEqual(got, want) {
				t.Errorf("%v n=%d: MatMulBatch %v, reference %v", typ, n, got, want)
			}
		}
	}
}

// FuzzDotAsm is the differential fuzz of every SIMD row dot against its
// reference.
func FuzzDotAsm(f *testing.F) {
	impls := asmDots()
	if len(impls) == 0 {
		f.Skip("no SIMD kernels on this CPU or build")
	}
	f.Add(uint64(1), uint8(0), uint8(1), uint8(0), false)
	f.Add(uint64(2), uint8(1), uint8(7), uint8(5), true)
	f.Add(uint64(3), uint8(3), uint8(64), uint8(31), false)
	f.Fuzz(func(t *testing.T, seed uint64, which, nb, extra uint8, raw bool) {
		d := impls[int(which)%len(impls)]
		rng := rand.New(rand.NewPCG(seed, uint64(which)))
		w, x := dotCase(rng, d.wt, int(nb)%130, int(extra)%32, raw)
		checkDot(t, d, w, x, int(nb)%130)
	})
}

// quantCase returns nb blocks of activations: normal values of a random
// scale, with (if special) zero blocks, tiny and huge values, Inf and NaN.
func quantCase(rng *rand.Rand, nb int, special bool) []float32 {
	x := randNormal(rng, nb*QK, math.Ldexp(1, rng.IntN(40)-20))
	if !special {
		return x
	}
	for b := range nb {
		xb := x[b*QK : (b+1)*QK]
		switch rng.IntN(6) {
		case 0:
			clear(xb)
		case 1:
			for i := range xb {
				xb[i] *= 0x1p-120 // subnormal half scales, or zero
			}
		case 2:
			xb[rng.IntN(QK)] = float32(rng.NormFloat64() * 0x1p30) // F16 overflow
		case 3:
			xb[rng.IntN(QK)] = float32(math.Inf(1 - 2*rng.IntN(2)))
		case 4:
			xb[rng.IntN(QK)] = float32(math.NaN())
		}
	}
	return x
}

func checkQuantizeQ8_0(t *testing.T, x []float32) {
	t.Helper()
	checkQuantizer(t, x, QK, q8_0Bytes, quantizeQ8_0, quantizeQ8_0Impl)
}

// checkQuantizer compares the blocks of qk elements (bb bytes) that impl
// and the reference ref write for x, byte for byte; every byte impl
// leaves unwritten shows as 0xa5.
func checkQuantizer(t *testing.T, x []float32, qk, bb int, ref, impl func(y []byte, x []float32)) {
	t.Helper()
	nb := len(x) / qk
	want, got := make([]byte, nb*bb), make([]byte, nb*bb)
	for i := range got {
		got[i] = 0xa5
	}
	ref(want, x)
	impl(got, x)
	for b := range nb {
		if w, g := want[b*bb:(b+1)*bb], got[b*bb:(b+1)*bb]; string(w) != string(g) {
			t.Fatalf("block %d of %d (x %v):\nSIMD      % x\nreference % x", b, nb, x[b*qk:(b+1)*qk], g, w)
		}
	}
}

// TestQuantizeQ8_0Asm checks quantizeQ8_0Impl (the SIMD quantizer where
// there is one) against quantizeQ8_0, byte for byte.
func TestQuantizeQ8_0Asm(t *testing.T) {
	rng := rand.New(rand.NewPCG(35, 36))
	for _, nb := range []int{0, 1, 2, 3, 7, 64} {
		for rep := range 100 {
			checkQuantizeQ8_0(t, quantCase(rng, nb, rep%2 == 1))
		}
	}
	// Ties: x*id exactly halfway between integers rounds to even.
	x := make([]float32, QK)
	x[0] = 127
	for i := 1; i < QK; i++ {
		x[i] = float32(i) - 15.5
	}
	checkQuantizeQ8_0(t, x)
}

// FuzzQuantizeQ8_0Asm is the differential fuzz of the Q8_0 activation
// quantizer on arbitrary float32 bits.
func FuzzQuantizeQ8_0Asm(f *testing.F) { fuzzQuantizer(f, checkQuantizeQ8_0) }

// fuzzQuantizer fuzzes check (a quantizer's SIMD version against its
// reference) on arbitrary float32 bits, in whole blocks of 32.
func fuzzQuantizer(f *testing.F, check func(t *testing.T, x []float32)) {
	f.Add(make([]byte, 4*QK))
	f.Add([]byte("\x00\x00\x80\x7f\x00\x00\xc0\x7f\x01\x00\x00\x00\xff\xff\x7f\x7f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		x := make([]float32, (len(data)/4+QK-1)/QK*QK)
		for i := range len(data) / 4 {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		check(t, x)
	})
}

func checkQuantizeQ8_1(t *testing.T, x []float32) {
	t.Helper()
	checkQuantizer(t, x, QK, q8_1Bytes, quantizeQ8_1, quantizeQ8_1Impl)
}

// TestQuantizeQ8_1Asm checks quantizeQ8_1Impl against quantizeQ8_1, byte
// for byte, on the cases of TestQuantizeQ8_0Asm; a block's sum of quants
// reaches its extremes (all 127, all -127) too.
func TestQuantizeQ8_1Asm(t *testing.T) {
	rng := rand.New(rand.NewPCG(39, 40))
	for _, nb := range []int{0, 1, 2, 3, 7, 64} {
		for rep := range 100 {
			checkQuantizeQ8_1(t, quantCase(rng, nb, rep%2 == 1))
		}
	}
	x := make([]float32, 3*QK)
	x[0] = 127
	for i := 1; i < QK; i++ {
		x[i] = float32(i) - 15.5 // ties
	}
	for i := QK; i < 2*QK; i++ {
		x[i] = 3.25
	}
	for i := 2 * QK; i < 3*QK; i++ {
		x[i] = -1e-3
	}
	checkQuantizeQ8_1(t, x)
}

// FuzzQuantizeQ8_1Asm is the differential fuzz of the Q8_1 activation
// quantizer on arbitrary float32 bits.
func FuzzQuantizeQ8_1Asm(f *testing.F) { fuzzQuantizer(f, checkQuantizeQ8_1) }

func checkQuantizeQ8_K(t *testing.T, x []float32) {
	t.Helper()
	checkQuantizer(t, x, QKK, q8_KBytes, quantizeQ8_K, quantizeQ8_KImpl)
	for _, alt := range quantizeQ8_KAlts() {
		checkQuantizer(t, x, QKK, q8_KBytes, quantizeQ8_K, alt)
	}
}

// TestQuantizeQ8_KAsm checks quantizeQ8_KImpl against quantizeQ8_K, byte
// for byte: random blocks, with zeros, infinities, NaNs and magnitudes
// past 2^22 (quantCase), ties of the largest magnitude, blocks of zeros
// or NaNs only, and one whose scale overflows.
func TestQuantizeQ8_KAsm(t *testing.T) {
	rng := rand.New(rand.NewPCG(37, 38))
	for _, nb := range []int{0, 1, 2, 3, 8} {
		for rep := range 100 {
			checkQuantizeQ8_K(t, quantCase(rng, nb*QKK/QK, rep%2 == 1))
		}
	}
	x := make([]float32, 4*QKK)
	for i := range QKK {
		x[i] = float32(i%50) - 24.5 // ties: x*iscale halfway between integers
	}
	x[200], x[7] = -90, 90 // the first of two magnitudes wins
	for i := range QKK {
		x[2*QKK+i] = float32(math.NaN())
	}
	x[3*QKK+255] = -3
	checkQuantizeQ8_K(t, x)
	// A subnormal largest magnitude: iscale = -127/max overflows to
	// -Inf, and the quants (truncated to a byte) come out 0.
	x = make([]float32, QKK)
	x[0] = 4.42539e-39
	checkQuantizeQ8_K(t, x)
}

// FuzzQuantizeQ8_KAsm is the differential fuzz of the Q8_K activation
// quantizer on arbitrary float32 bits.
func FuzzQuantizeQ8_KAsm(f *testing.F) {
	f.Add(make([]byte, 4*QKK))
	f.Add([]byte("\x00\x00\x80\x7f\x00\x00\xc0\x7f\x01\x00\x00\x00\xff\xff\x7f\x7f\x00\x00\x80\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		x := make([]float32, (len(data)/4+QKK-1)/QKK*QKK)
		for i := range len(data) / 4 {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		checkQuantizeQ8_K(t, x)
	})
}

// BenchmarkDotAsm times one row of 4096 columns (cache-resident) through
// each SIMD dot and its reference; SetBytes counts the weight bytes.
func BenchmarkDotAsm(b *testing.B) {
	rng := rand.New(rand.NewPCG(37, 38))
	for _, d := range asmDots() {
		if d.name == "Q4_0x8rows" || d.name == "Q8_0tok4" {
			continue // test harnesses around multi-row kernels: BenchmarkMatVec and BenchmarkMatMul time those
		}
		nb := 4096 / d.wt.BlockSize()
		if plainType(d.wt) {
			nb = 4096 / 32
		}
		w, x := dotCase(rng, d.wt, nb, 0, false)
		for _, impl := range []struct {
			name string
			f    func(w, x []byte, nb int) float32
		}{{"asm", d.fast}, {"ref", d.ref}} {
			b.Run(d.name+"/"+impl.name, func(b *testing.B) {
				b.SetBytes(int64(len(w)))
				for b.Loop() {
					impl.f(w, x, nb)
				}
			})
		}
	}
}

// BenchmarkMatMulBatch is a 16-token prefill batch through llama.cpp's
// sgemm path (MatMulBatch) for float weights; compare with -tags purego for
// the plain-Go reference.
func BenchmarkMatMulBatch(b *testing.B) {
	const n = 16
	p := NewPool(0)
	defer p.Close()
	for _, typ := range []DType{F32, F16} {
		s := benchShapes[0]
		b.Run(fmt.Sprintf("%v/%dx%d/n%d/p%d", typ, s[0], s[1], n, p.Size()), func(b *testing.B) {
			w := benchMatrix(b, typ, s[0], s[1])
			x := randNormal(rand.New(rand.NewPCG(1, 1)), n*w.Cols, 1)
			dst := make([]float32, n*w.Rows)
			b.SetBytes(int64(len(w.Data)))
			b.ReportAllocs()
			for b.Loop() {
				MatMulBatch(p, dst, w, x, n)
			}
			b.ReportMetric(float64(b.N)*n*2*float64(w.Rows*w.Cols)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// TestPackedSumsAsm checks the SIMD packedSums and packedHeads against
// the Go loops on random blocks, every quant byte included, and
// packedHeads' records against the start of packedSums'.
func TestPackedSumsAsm(t *testing.T) {
	if len(asmDots()) == 0 {
		t.Skip("no SIMD kernels on this CPU or build")
	}
	rng := rand.New(rand.NewPCG(3, 9))
	for _, nb := range []int{1, 2, 7, 64, 176} {
		x := make([]byte, nb*q8_0Bytes)
		for i := range x {
			x[i] = byte(rng.Uint32())
		}
		for b := range nb {
			binary.LittleEndian.PutUint16(x[b*q8_0Bytes:], finiteHalf(rng))
		}
		want, got := make([]byte, nb*xsBlock), make([]byte, nb*xsBlock)
		packedSums(want, x, nb)
		packedSumsImpl(got, x, nb)
		if string(got) != string(want) {
			t.Fatalf("nb %d: packedSumsImpl differs from packedSums:\n got %x\nwant %x", nb, got, want)
		}
		heads, ref := make([]byte, nb*xsHead), make([]byte, nb*xsHead)
		packedHeads(ref, x, nb)
		packedHeadsImpl(heads, x, nb)
		for b := range nb {
			if string(ref[xsHead*b:][:xsHead]) != string(want[xsBlock*b:][:xsHead]) {
				t.Fatalf("nb %d block %d: packedHeads %x, packedSums' record starts %x", nb, b, ref[xsHead*b:][:xsHead], want[xsBlock*b:][:xsHead])
			}
		}
		if string(heads) != string(ref) {
			t.Fatalf("nb %d: packedHeadsImpl differs from packedHeads:\n got %x\nwant %x", nb, heads, ref)
		}
	}
}

// TestPackedQ8Min checks a Q8_0 matrix holding a -128 quant, which ggml
// never writes but a file may: the packed AVX2 kernels that sign the
// weights by x cannot take it, and Packed marks it for the ones that take
// any weights. Its products stay bitwise those of one row at a time.
func TestPackedQ8Min(t *testing.T) {
	if len(asmDots()) == 0 {
		t.Skip("no SIMD kernels on this CPU or build")
	}
	rng := rand.New(rand.NewPCG(41, 42))
	p := NewPool(2)
	defer p.Close()
	const rows, cols = 16, 256
	w := randMatrix(t, rng, Q8_0, rows, cols)
	if hasQ8Min(w.Data) {
		t.Fatalf("hasQ8Min finds a -128 quant in quantized weights")
	}
	w.Data[3*w.RowBytes()+q8_0Bytes+2+5] = 0x80 // row 3, block 1, column 37
	if !hasQ8Min(w.Data) {
		t.Fatalf("hasQ8Min misses a -128 quant")
	}
	packed := w.Packed()
	if packed.group == 8 && !packed.q8Min {
		t.Fatalf("Packed leaves a -128 quant to the kernels that cannot take it")
	}
	for _, n := range []int{1, 5} {
		xf := randNormal(rng, n*cols, 1)
		for i := range n {
			xf[i*cols+37] = float32(2*(i%2)-1) * 0.7 // at the -128 quant: negative, then positive
		}
		got := make([]float32, n*rows)
		MatMul(p, got, packed, xf, n)
		want := make([]float32, n*rows)
		x := make([]byte, cols/QK*q8_0Bytes)
		for i := range n {
			quantizeAct(x, Q8_0, xf[i*cols:(i+1)*cols])
			for r := range rows {
				want[i*rows+r] = dotQ8_0Q8_0(w.Data[r*w.RowBytes():(r+1)*w.RowBytes()], x, cols/QK)
			}
		}
		if !bitsEqual(got, want) {
			t.Errorf("n=%d: MatMul of Packed %v, reference %v", n, got, want)
		}
	}
}

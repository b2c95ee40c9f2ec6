package kernels

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
	"unsafe"
)

// supportedTypes lists every type the kernels multiply.
var supportedTypes = []DType{F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K}

// f32Bytes views x as its little-endian bytes.
func f32Bytes(x []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), 4*len(x))
}

func randNormal(rng *rand.Rand, n int, sd float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * sd)
	}
	return x
}

// randMatrix quantizes a random normal rows x cols matrix to t.
func randMatrix(t testing.TB, rng *rand.Rand, typ DType, rows, cols int) Matrix {
	t.Helper()
	m, err := NewMatrix(typ, rows, cols, Quantize(nil, typ, randNormal(rng, rows*cols, 1/math.Sqrt(float64(cols)))))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// dequantTerms decodes row r of w twice: as the part that grows with the
// quant (d*q) and as the offset part (m, or -dmin*m for the K-quants), by
// zeroing the other field of each block. Their absolute values bound the
// rounding of the kernel's two-term block formulas.
func dequantTerms(w Matrix, r int) (a, b []float32) {
	row := w.Row(r)
	a, b = make([]float32, w.Cols), make([]float32, w.Cols)
	var offAt int // byte offset of the offset field in a block, -1 if none
	switch w.Type {
	case Q4_1, Q5_1, Q4_K, Q5_K:
		offAt = 2
	default:
		w.DequantizeRow(a, r)
		return a, b
	}
	bb := w.Type.BlockBytes()
	ra, rb := slices.Clone(row), slices.Clone(row)
	for o := 0; o < len(row); o += bb {
		ra[o+offAt], ra[o+offAt+1] = 0, 0 // no offset
		rb[o], rb[o+1] = 0, 0             // no d
	}
	Dequantize(a, w.Type, ra)
	Dequantize(b, w.Type, rb)
	return a, b
}

// actValues decodes activations in vec-dot type xt to float64.
func actValues(xt DType, xq []byte, x []float32) []float64 {
	out := make([]float64, len(x))
	switch xt {
	case F32:
		for i, v := range x {
			out[i] = float64(v)
		}
	case F16, BF16, Q8_0:
		tmp := make([]float32, len(x))
		Dequantize(tmp, xt, xq)
		for i, v := range tmp {
			out[i] = float64(v)
		}
	case Q8_1:
		for b := range len(x) / QK {
			d := float64(f16(xq[b*q8_1Bytes:]))
			for j := range QK {
				out[b*QK+j] = d * float64(int8(xq[b*q8_1Bytes+4+j]))
			}
		}
	case Q8_K:
		var tmp [QKK]float32
		for b := range len(x) / QKK {
			dequantQ8_K(&tmp, (*[q8_KBytes]byte)(xq[b*q8_KBytes:]))
			for j, v := range tmp {
				out[b*QKK+j] = float64(v)
			}
		}
	}
	return out
}

// refRow is the straightforward reference for row r of w times x: the
// float64 dot of the dequantized weights with the activations rounded to
// the vec-dot type and decoded. It returns the value and a rigorous bound
// on the kernel's deviation from it: float32 rounding over the accumulation
// chain, relative to the sum of |term|*|x|, plus, for Q4_1/Q5_1, ggml's use of the
// Q8_1 block sum s = F16(d*Σq) in place of F16(d)*Σq.
func refRow(w Matrix, r int, x []float32) (ref, tol float64) {
	xt := VecDotType(w.Type)
	xq := make([]byte, 0)
	if xt != F32 {
		n, _ := xt.RowBytes(len(x))
		xq = make([]byte, n)
		quantizeAct(xq, xt, x)
	}
	xv := actValues(xt, xq, x)
	wv := make([]float32, w.Cols)
	w.DequantizeRow(wv, r)
	a, b := dequantTerms(w, r)
	var mag float64
	for k := range xv {
		ref += float64(wv[k]) * xv[k]
		mag += (math.Abs(float64(a[k])) + math.Abs(float64(b[k]))) * math.Abs(xv[k])
	}
	// Each float32 operation errs by at most 2^-24 of a value bounded by
	// mag: the chain of additions across blocks (or across each of the 8
	// lanes, then their reduction), and a few roundings in each block's
	// products and in the reference's own float32 dequantization.
	chain := w.Cols / w.Type.BlockSize()
	if w.Type.BlockSize() == 1 {
		chain = w.Cols/8 + 3
	}
	tol = float64(chain+8)*0x1p-24*mag + 1e-30
	if xt == Q8_1 {
		row := w.Row(r)
		bb := w.Type.BlockBytes()
		for blk := range w.Cols / QK {
			m := float64(f16(row[blk*bb+2:]))
			d := float64(f16(xq[blk*q8_1Bytes:]))
			s := float64(f16(xq[blk*q8_1Bytes+2:]))
			var sum float64
			for j := range QK {
				sum += float64(int8(xq[blk*q8_1Bytes+4+j]))
			}
			tol += math.Abs(m) * math.Abs(s-d*sum)
		}
	}
	return ref, tol
}

func TestMatVecReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := NewPool(3)
	defer p.Close()
	for _, typ := range supportedTypes {
		for _, shape := range [][2]int{{7, 256}, {33, 512}, {64, 4096}} {
			rows, cols := shape[0], shape[1]
			t.Run(fmt.Sprintf("%v/%dx%d", typ, rows, cols), func(t *testing.T) {
				w := randMatrix(t, rng, typ, rows, cols)
				x := randNormal(rng, cols, 1)
				x[3] = 0 // an exact zero and a large outlier in the mix
				x[5] = 9
				dst := make([]float32, rows)
				MatVec(p, dst, w, x)
				for r := range rows {
					ref, tol := refRow(w, r, x)
					if d := math.Abs(float64(dst[r]) - ref); !(d <= tol) {
						t.Fatalf("row %d: %g, reference %g, |diff| %g > %g", r, dst[r], ref, d, tol)
					}
				}
			})
		}
	}
}

// TestMatMulMatchesMatVec checks MatMul against MatVec token by token, and
// both over pools of 1, 2 and 5 workers: results must be bitwise equal.
func TestMatMulMatchesMatVec(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	pools := []*Pool{nil, NewPool(1), NewPool(2), NewPool(5)}
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	const n = 5
	for _, typ := range supportedTypes {
		t.Run(typ.String(), func(t *testing.T) {
			rows, cols := 67, 512
			w := randMatrix(t, rng, typ, rows, cols)
			x := randNormal(rng, n*cols, 1)
			want := make([]float32, n*rows)
			for i := range n {
				MatVec(nil, want[i*rows:(i+1)*rows], w, x[i*cols:(i+1)*cols])
			}
			for _, p := range pools {
				got := make([]float32, n*rows)
				MatMul(p, got, w, x, n)
				if !bitsEqual(got, want) {
					t.Fatalf("MatMul on %d workers differs from MatVec", p.Size())
				}
				MatVec(p, got[:rows], w, x[:cols])
				if !bitsEqual(got[:rows], want[:rows]) {
					t.Fatalf("MatVec on %d workers differs from 1 worker", p.Size())
				}
			}
		})
	}
}

func bitsEqual(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

func TestNewMatrix(t *testing.T) {
	if _, err := NewMatrix(Q8_0, 2, 64, make([]byte, 2*2*34)); err != nil {
		t.Errorf("valid matrix: %v", err)
	}
	for _, c := range []struct {
		typ        DType
		rows, cols int
		n          int
	}{
		{Q8_0, 2, 48, 2 * 2 * 34}, // cols not whole blocks
		{Q8_0, 2, 64, 2*2*34 - 1}, // short data
		{Q8_0, 2, 64, 2*2*34 + 1}, // long data
		{Q4_K, 1, 128, 144},       // half a super-block
		{F32, 1, 0, 0},            // no columns
	} {
		if _, err := NewMatrix(c.typ, c.rows, c.cols, make([]byte, c.n)); !errors.Is(err, ErrShape) {
			t.Errorf("NewMatrix(%v, %d, %d, %d bytes) = %v, want ErrShape", c.typ, c.rows, c.cols, c.n, err)
		}
	}
	for _, typ := range []DType{Q8_1, Q2_K, Q3_K, Q8_K, DType(99)} {
		if _, err := NewMatrix(typ, 1, 256, make([]byte, 1024)); !errors.Is(err, ErrUnsupported) {
			t.Errorf("NewMatrix(%v) = %v, want ErrUnsupported", typ, err)
		}
	}
	m, _ := NewMatrix(F16, 3, 4, make([]byte, 24))
	if r := m.Row(2); len(r) != 8 || cap(r) != 8 || &r[0] != &m.Data[16] {
		t.Errorf("Row(2) is not the 8 bytes at 16")
	}
}

func TestSupportedSet(t *testing.T) {
	var got []DType
	for _, typ := range []DType{F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, BF16} {
		if typ.Supported() {
			got = append(got, typ)
		}
	}
	if want := []DType{F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, BF16}; !slices.Equal(got, want) {
		t.Errorf("Supported types %v, want %v", got, want)
	}
}

func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	p := NewPool(2)
	defer p.Close()
	for _, typ := range supportedTypes {
		w := randMatrix(t, rng, typ, 256, 1024)
		x := randNormal(rng, 4*1024, 1)
		dst := make([]float32, 4*256)
		for _, pool := range []*Pool{nil, p} {
			MatVec(pool, dst, w, x) // warm the pools
			if a := settledAllocs(50, func() { MatVec(pool, dst, w, x[:1024]) }); a != 0 {
				t.Errorf("MatVec %v on %d workers: %v allocations per call", typ, pool.Size(), a)
			}
			MatMul(pool, dst, w, x, 4)
			if a := settledAllocs(20, func() { MatMul(pool, dst, w, x, 4) }); a != 0 {
				t.Errorf("MatMul %v on %d workers: %v allocations per call", typ, pool.Size(), a)
			}
			if a := settledAllocs(20, func() { MatMulBatch(pool, dst, w, x, 4) }); a != 0 {
				t.Errorf("MatMulBatch %v on %d workers: %v allocations per call", typ, pool.Size(), a)
			}
		}
	}
	const n, nh, nkv, hd = 100, 8, 2, 64
	q := randNormal(rng, nh*hd, 1)
	k32, v32 := randNormal(rng, n*nkv*hd, 1), randNormal(rng, n*nkv*hd, 1)
	k16, v16 := make([]uint16, len(k32)), make([]uint16, len(v32))
	for i := range k32 {
		k16[i], v16[i] = F32ToF16(k32[i]), F32ToF16(v32[i])
	}
	out, att := make([]float32, nh*hd), make([]float32, nh*n)
	for _, pool := range []*Pool{nil, p} {
		AttentionF16(pool, out, q, k16, v16, PosMajor(nkv, hd), n, nh, nkv, hd, 0.125, att)
		if a := settledAllocs(50, func() { AttentionF16(pool, out, q, k16, v16, PosMajor(nkv, hd), n, nh, nkv, hd, 0.125, att) }); a != 0 {
			t.Errorf("AttentionF16 on %d workers: %v allocations per call", pool.Size(), a)
		}
		if a := settledAllocs(50, func() { AttentionF16Batch(pool, out, q, k16, v16, PosMajor(nkv, hd), n, nh, nkv, hd, 0.125, att) }); a != 0 {
			t.Errorf("AttentionF16Batch on %d workers: %v allocations per call", pool.Size(), a)
		}
		if a := settledAllocs(50, func() { AttentionF32(pool, out, q, k32, v32, PosMajor(nkv, hd), n, nh, nkv, hd, 0.125, att) }); a != 0 {
			t.Errorf("AttentionF32 on %d workers: %v allocations per call", pool.Size(), a)
		}
	}
	r := RoPE{Dims: 64, Base: 10000}
	if a := settledAllocs(50, func() { r.Apply(q, nh, hd, 17) }); a != 0 {
		t.Errorf("RoPE.Apply: %v allocations per call", a)
	}
}

// FuzzMatVecDiff is the differential harness for the matrix kernels: MatVec
// on one worker against several workers (bitwise), MatMul against MatVec
// (bitwise), and every row against the straightforward float64 reference
// (within the rounding bound). A SIMD version of the dot primitives is to be
// added here as one more path.
func FuzzMatVecDiff(f *testing.F) {
	for i := range supportedTypes {
		f.Add(uint64(i), uint8(i), uint8(5), uint8(1), uint8(3), false)
		f.Add(uint64(i+100), uint8(i), uint8(17), uint8(2), uint8(2), true)
	}
	f.Fuzz(func(t *testing.T, seed uint64, ti, rows, cb, workers uint8, raw bool) {
		typ := supportedTypes[int(ti)%len(supportedTypes)]
		nr := 1 + int(rows)%40
		cols := (1 + int(cb)%4) * max(typ.BlockSize(), 32)
		rng := rand.New(rand.NewPCG(seed, 99))
		var w Matrix
		if raw && typ.BlockSize() > 1 {
			// Random block bytes, with every scale field forced finite
			// and small so the reference stays meaningful.
			data := make([]byte, nr*typ.BlockBytes()*(cols/typ.BlockSize()))
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			sanitizeScales(typ, data)
			w, _ = NewMatrix(typ, nr, cols, data)
		} else {
			w = randMatrix(t, rng, typ, nr, cols)
		}
		x := randNormal(rng, 2*cols, 1)
		if seed%3 == 0 {
			clear(x[:cols/2]) // zero blocks
		}
		want := make([]float32, nr)
		MatVec(nil, want, w, x[:cols])
		p := NewPool(1 + int(workers)%6)
		defer p.Close()
		got := make([]float32, 2*nr)
		MatVec(p, got[:nr], w, x[:cols])
		if !bitsEqual(got[:nr], want) {
			t.Fatalf("%v: MatVec on %d workers differs from 1 worker", typ, p.Size())
		}
		MatMul(p, got, w, x, 2)
		if !bitsEqual(got[:nr], want) {
			t.Fatalf("%v: MatMul token 0 differs from MatVec", typ)
		}
		batch := make([]float32, 2*nr)
		MatMulBatch(p, batch, w, x, 2)
		batch1 := make([]float32, 2*nr)
		MatMulBatch(nil, batch1, w, x, 2)
		if !bitsEqual(batch, batch1) {
			t.Fatalf("%v: MatMulBatch on %d workers differs from 1 worker", typ, p.Size())
		}
		for r := range nr {
			ref, tol := refRow(w, r, x[:cols])
			if d := math.Abs(float64(batch[r]) - ref); !(d <= tol) {
				t.Fatalf("%v row %d: MatMulBatch %g, reference %g", typ, r, batch[r], ref)
			}
		}
		for r := range nr {
			ref, tol := refRow(w, r, x[:cols])
			if d := math.Abs(float64(want[r]) - ref); !(d <= tol) {
				t.Fatalf("%v row %d: %g, reference %g, |diff| %g > %g", typ, r, want[r], ref, d, tol)
			}
		}
	})
}

// sanitizeScales overwrites the F16 scale fields of every block in data with
// finite values of moderate size (random bytes make NaN and Inf scales).
func sanitizeScales(typ DType, data []byte) {
	bb := typ.BlockBytes()
	var fields []int
	switch typ {
	case Q4_0, Q5_0, Q8_0:
		fields = []int{0}
	case Q4_1, Q5_1, Q4_K, Q5_K:
		fields = []int{0, 2}
	case Q6_K:
		fields = []int{208}
	}
	for o := 0; o < len(data); o += bb {
		for _, f := range fields {
			h := binary.LittleEndian.Uint16(data[o+f:])
			h = h&0x83ff | 0x2000 // exponent 8: |value| in [2^-7, 2^-6)
			binary.LittleEndian.PutUint16(data[o+f:], h)
		}
	}
}

// TestMatMulBatch checks the batched (llamafile sgemm) emulation: against
// the reference within rounding, independent of the pool and of n, equal to
// MatMul wherever llama.cpp would not use sgemm, and summed in 8 lanes.
func TestMatMulBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	p := NewPool(3)
	defer p.Close()
	const n = 3
	for _, typ := range supportedTypes {
		for _, shape := range [][2]int{{8, 256}, {12, 512}, {6, 512}, {8, 264}} {
			rows, cols := shape[0], shape[1]
			if cols%typ.BlockSize() != 0 {
				continue
			}
			w := randMatrix(t, rng, typ, rows, cols)
			x := randNormal(rng, n*cols, 1)
			got := make([]float32, n*rows)
			MatMulBatch(p, got, w, x, n)
			one := make([]float32, n*rows)
			MatMulBatch(nil, one, w, x, n)
			if !bitsEqual(got, one) {
				t.Fatalf("%v %dx%d: MatMulBatch depends on the pool", typ, rows, cols)
			}
			plain := make([]float32, n*rows)
			MatMul(nil, plain, w, x, n)
			if !sgemmApplies(w) && !bitsEqual(got, plain) {
				t.Fatalf("%v %dx%d: MatMulBatch differs from MatMul where sgemm does not apply", typ, rows, cols)
			}
			for i := range n {
				for r := range rows {
					ref, tol := refRow(w, r, x[i*cols:(i+1)*cols])
					if d := math.Abs(float64(got[i*rows+r]) - ref); !(d <= tol) {
						t.Fatalf("%v %dx%d token %d row %d: %g, reference %g", typ, rows, cols, i, r, got[i*rows+r], ref)
					}
				}
			}
			single := make([]float32, rows)
			MatMulBatch(p, single, w, x[:cols], 1)
			if !bitsEqual(single, plain[:rows]) {
				t.Fatalf("%v: MatMulBatch with n=1 differs from MatVec", typ)
			}
		}
	}
	// 8 lanes: with a huge first element and small ones in lanes 1..7, the
	// hsum8 tree decides which small ones survive.
	w := make([]float32, 8)
	x := make([]float32, 8)
	for i := range x {
		w[i], x[i] = 1, 3
	}
	w[0], x[0] = 0x1p25, 1
	var lanes [8]float32
	for i := range lanes {
		lanes[i] = w[i] * x[i]
	}
	if got, want := sgemmF32(f32Bytes(w), x), hsum8(&lanes); got != want {
		t.Errorf("sgemmF32 = %v, want %v", got, want)
	}
}

// TestHeapWeightBytes: Packed's copies count in HeapWeightBytes while they
// live, and stop counting once the garbage collector frees them. (No test
// of this package runs in parallel, so the global count moves only here.)
func TestHeapWeightBytes(t *testing.T) {
	// Let earlier tests' copies go first: collect until the count holds.
	before := HeapWeightBytes()
	for stable := 0; stable < 3; {
		runtime.GC()
		time.Sleep(time.Millisecond) // cleanups run on their own goroutine
		if n := HeapWeightBytes(); n == before {
			stable++
		} else {
			before, stable = n, 0
		}
	}
	// 16 MiB of F16 rows, 2048 wide: copied in every build (copyBytes),
	// never repacked, and too large to share a slab of huge pages with
	// others (slabMax), which would live as long as any of them.
	w := randMatrix(t, rand.New(rand.NewPCG(7, 7)), F16, 4096, 2048).Packed()
	if got := HeapWeightBytes() - before; got != int64(len(w.Data)) {
		t.Fatalf("HeapWeightBytes grew by %d for a %d-byte copy", got, len(w.Data))
	}
	runtime.KeepAlive(w)
	for i := 0; HeapWeightBytes() != before; i++ {
		if i == 100 {
			t.Fatalf("HeapWeightBytes %d after the copy was dropped, %d before", HeapWeightBytes(), before)
		}
		runtime.GC()
		time.Sleep(time.Millisecond) // cleanups run on their own goroutine
	}
}

// TestActBufs checks that small products round into actRing buffers in
// turn, xq and xs apart, and larger ones into buffers of their own that
// they keep.
func TestActBufs(t *testing.T) {
	var m mulTask
	seen := map[*byte]int{}
	for i := range 2 * actRing {
		m.actBufs(2200, 64*xsBlock)
		if len(m.xq) != 2200 || len(m.xs) != 64*xsBlock {
			t.Fatalf("call %d: %d and %d bytes", i, len(m.xq), len(m.xs))
		}
		q, s := unsafe.SliceData(m.xq), unsafe.SliceData(m.xs)
		if off := uintptr(unsafe.Pointer(s)) - uintptr(unsafe.Pointer(q)); off != 2240 {
			t.Fatalf("call %d: xs %d bytes after xq", i, off)
		}
		if j, ok := seen[q]; ok && j != i-actRing {
			t.Fatalf("call %d rounds into call %d's buffer", i, j)
		}
		seen[q] = i
	}
	if len(seen) != actRing {
		t.Fatalf("%d buffers in turn, want %d", len(seen), actRing)
	}
	m.actBufs(actRingBytes, 8)
	big := unsafe.SliceData(m.xq)
	m.actBufs(100, 0)
	if a := testing.AllocsPerRun(10, func() { m.actBufs(actRingBytes, 8); m.actBufs(100, 0) }); a != 0 {
		t.Errorf("%v allocations alternating small and large products", a)
	}
	m.actBufs(actRingBytes-10, 64)
	if unsafe.SliceData(m.xq) != big {
		t.Error("a large product took a new buffer")
	}
}

package kernels

import (
	"encoding/binary"
	"math"
	"slices"
)

// VecDotType returns the type llama.cpp rounds a matrix product's
// activations into before dotting them with weights of type t: t itself for
// F32, F16 and BF16; Q8_0 for Q4_0, Q5_0 and Q8_0; Q8_1 for Q4_1 and Q5_1;
// Q8_K for the K-quants.
func VecDotType(t DType) DType {
	switch t {
	case Q4_0, Q5_0, Q8_0:
		return Q8_0
	case Q4_1, Q5_1:
		return Q8_1
	case Q4_K, Q5_K, Q6_K:
		return Q8_K
	}
	return t
}

// quantizeAct rounds x (whole blocks) into vec-dot type t, writing y.
func quantizeAct(y []byte, t DType, x []float32) {
	switch t {
	case Q8_0:
		quantizeQ8_0Impl(y, x) // SIMD where available (dot_amd64.go)
	case Q8_1:
		quantizeQ8_1Impl(y, x) // SIMD where available (dot_amd64.go)
	case Q8_K:
		quantizeQ8_KImpl(y, x) // SIMD where available (dot_amd64.go)
	case F16:
		quantizeF16Impl(y, x) // SIMD where available (dot_amd64.go)
	case BF16:
		for i, v := range x {
			h := F32ToBF16(v)
			y[2*i], y[2*i+1] = byte(h), byte(h>>8)
		}
	}
}

// rowDot returns the dot function of weights of type t with activations in
// VecDotType(t), or nil for F32 (handled apart).
func rowDot(t DType) func(w, x []byte, nb int) float32 {
	switch t {
	case Q4_0:
		return dotQ4_0Q8_0
	case Q5_0:
		return dotQ5_0Q8_0
	case Q8_0:
		return dotQ8_0Q8_0
	case Q4_1:
		return dotQ4_1Q8_1
	case Q5_1:
		return dotQ5_1Q8_1
	case Q4_K:
		return dotQ4_KQ8_K
	case Q5_K:
		return dotQ5_KQ8_K
	case Q6_K:
		return dotQ6_KQ8_K
	case F16:
		return func(w, x []byte, _ int) float32 { return dotF16(w, x) }
	case BF16:
		return func(w, x []byte, _ int) float32 { return dotBF16(w, x) }
	}
	return nil
}

// mulTask is one MatMul call: first the activations are rounded into the
// vec-dot type (phase 0, over tokens), then rows are dotted (phase 1). It
// is pooled, with its activation buffer, so MatVec allocates nothing.
type mulTask struct {
	dst   []float32
	w     Matrix
	x     []float32 // n rows of w.Cols
	n     int
	xt    DType  // vec-dot type of the activations
	xq    []byte // n rows of xrb bytes
	xrb   int
	phase int
	dot   func(w, x []byte, nb int) float32
	// rows, where not nil, computes rowsK rows of dot at once
	// (dot_amd64.go).
	rows  func(dst []float32, w []byte, rb int, x []byte, nb int)
	rowsK int
	// tiles, where not nil, computes rows [lo, hi) for all n tokens in
	// register tiles and returns the first row it left (dot_amd64.go).
	tiles  func(dst []float32, w Matrix, x []byte, xrb, n, lo, hi int) int
	tilesK int // the rows tiles takes at once at its best
	// xmags bounds each token's bf16 activations (x32 BF16 products), and
	// xmag all of them, once phase 0 is done.
	xmags []bf16Mags
	xmag  bf16Mags
	batch bool // llama.cpp's batched (sgemm) float products
	// xs, for a packed matrix (Matrix.Packed), holds per token and
	// block of xq its sums and scale (packedSums); phase 1 then runs over
	// the matrix's groups of rows.
	xs []byte
	// x32: xq holds the activations rounded to the vec-dot type but as
	// float32 values, 4 bytes each (quantizeAct32), for the dot fastDot
	// returned (dot_amd64.go).
	x32 bool
	// parts, where nparts > 0, are the products of a fused call
	// (MatMulShared); phase 1 then runs over their units in turn, and dst
	// and w are the first part's.
	parts  [maxShared]Product
	nparts int
	// ring holds the buffers small products round into in turn (see
	// actRing), turn the next one's index; bigq and bigs are larger
	// products' xq and xs.
	ring       [actRing][]byte
	turn       int
	bigq, bigs []byte
}

// actRing is how many buffers a product task rounds small activations
// (n*xrb and the sums together at most actRingBytes, as in decode) into in
// turn, so that the lines the caller writes were last read by the other
// workers products ago, not in the product just before. A core writing a
// line another core holds waits for that core to let go of it. On two
// cores of a Zen 4 guest, rounding the activations of a 1B-shaped Q8_0
// layer's four products took 19.9 µs into the buffer just read and 10.1
// µs in turn while the cores sat on different dies of the host (down's
// 5632 columns 8.9 and 4.3 µs), and 6.8 and 5.0 µs while they were near.
const (
	actRing      = 8
	actRingBytes = 64 << 10
)

// maxShared is the most products MatMulShared fuses into one dispatch.
const maxShared = 3

// Product is one matrix product of a MatMulShared call: W times the shared
// activations into Dst.
type Product struct {
	Dst []float32
	W   Matrix
}

var mulTasks freeList[mulTask]

// rowGrain is the fewest weight bytes worth a chunk of their own: smaller
// products run on the caller's goroutine, where waking a worker would cost
// more than it saves.
const rowGrain = 32 << 10

func (t *mulTask) run(lo, hi int) {
	w := t.w
	cols := w.Cols
	if t.phase == 0 {
		for i := lo; i < hi; i++ {
			if t.x32 && t.xt == BF16 {
				t.xmags[i] = quantizeActBF16x32(t.xq[i*t.xrb:(i+1)*t.xrb], t.x[i*cols:(i+1)*cols])
				continue
			}
			if t.x32 {
				quantizeAct32(t.xq[i*t.xrb:(i+1)*t.xrb], t.x[i*cols:(i+1)*cols])
				continue
			}
			quantizeAct(t.xq[i*t.xrb:(i+1)*t.xrb], t.xt, t.x[i*cols:(i+1)*cols])
			if readsSums(w) {
				nb := cols / QK
				packedXSums(t.xs[i*nb*xsBlock:(i+1)*nb*xsBlock], t.xq[i*t.xrb:(i+1)*t.xrb], w, t.n == 1)
			}
		}
		return
	}
	if t.nparts == 0 {
		t.rowsOf(t.dst, w, lo, hi)
		return
	}
	off := 0 // a fused product: [lo, hi) runs over the parts' units in turn
	for j := range t.nparts {
		pt := &t.parts[j]
		u := t.productUnits(pt.W)
		if a, b := max(lo-off, 0), min(hi-off, u); a < b {
			t.rowsOf(pt.Dst, pt.W, a, b)
		}
		off += u
	}
}

// unitRows is how many rows of w one unit of phase 1 covers: a packed
// matrix's group, else the rows kernel's count, else the tiles kernel's
// (so that a chunk's edges do not split its rows into one-row dots or
// smaller tiles), else one.
func (t *mulTask) unitRows(w Matrix) int {
	switch {
	case t.packed(w):
		return w.group
	case t.rows != nil:
		return t.rowsK
	case t.tiles != nil:
		return t.tilesK
	}
	return 1
}

// packed reports whether the product runs over w's packed layout: always
// where it has one, but for F16's bands, which the batched products (of a
// prompt, the tiles of sgemm) do not read: they read Data.
func (t *mulTask) packed(w Matrix) bool {
	return w.packed != nil && (w.Type != F16 || !t.batch)
}

// readsSums reports whether the packed products of w read packedXSums'
// records beside the activations: all but F16's.
func readsSums(w Matrix) bool { return w.packed != nil && w.Type != F16 }

// productUnits is the length of the index range phase 1 of a product of w
// runs over: its rows in units of unitRows (the last one maybe short).
func (t *mulTask) productUnits(w Matrix) int {
	k := t.unitRows(w)
	return (w.Rows + k - 1) / k
}

// rowsOf computes units [lo, hi) (see productUnits) of the product of w
// with t's activations into dst.
func (t *mulTask) rowsOf(dst []float32, w Matrix, lo, hi int) {
	cols := w.Cols
	if t.packed(w) { // lo, hi count groups of rows
		nb := cols / QK
		if t.n == 1 {
			dotPacked(dst, w, lo, hi, t.xq, t.xs, true)
			return
		}
		for g := lo; g < hi; g++ { // each group's rows stay in cache over the tokens
			for i := dotPackedTok4(dst, w, g, t.xq, t.xrb, t.xs, t.n); i < t.n; i++ {
				var xs []byte
				if readsSums(w) {
					xs = t.xs[i*nb*xsBlock : (i+1)*nb*xsBlock]
				}
				dotPacked(dst[i*w.Rows:(i+1)*w.Rows], w, g, g+1, t.xq[i*t.xrb:(i+1)*t.xrb], xs, false)
			}
		}
		return
	}
	u := t.unitRows(w)
	lo, hi = lo*u, min(hi*u, w.Rows)
	rb := w.RowBytes()
	if w.Type == F32 {
		dot := dotF32
		if t.batch {
			dot = sgemmF32
		}
		if f := fastDotF32(t.batch); f != nil {
			dot = f // the SIMD version, bitwise equal (dot_amd64.go)
		}
		for r := lo; r < hi; r++ {
			row := w.Data[r*rb : (r+1)*rb]
			for i := range t.n {
				dst[i*w.Rows+r] = dot(row, t.x[i*cols:(i+1)*cols])
			}
		}
		return
	}
	nb := cols / w.Type.BlockSize()
	if t.rows != nil { // SIMD rows, bitwise as dot (dot_amd64.go)
		k := t.rowsK
		for ; lo+k <= hi; lo += k {
			for i := range t.n {
				t.rows(dst[i*w.Rows+lo:][:k], w.Data[lo*rb:(lo+k)*rb], rb, t.xq[i*t.xrb:(i+1)*t.xrb], nb)
			}
		}
	}
	if t.tiles != nil { // SIMD tiles, bitwise as dot (dot_amd64.go)
		tiles := t.tiles
		if w.Type == BF16 && bf16Exact(w.mags, t.xmag) {
			tiles = sgemmBF16X32TilesExact // fused where every product is exact
		}
		lo = tiles(dst, w, t.xq, t.xrb, t.n, lo, hi)
	}
	dot := t.dot
	for r := lo; r < hi; r++ {
		row := w.Data[r*rb : (r+1)*rb]
		for i := range t.n {
			dst[i*w.Rows+r] = dot(row, t.xq[i*t.xrb:(i+1)*t.xrb], nb)
		}
	}
}

// sgemmApplies reports whether llama.cpp (AVX2 build) computes a product of
// w with a batch of two or more tokens with llamafile's sgemm, whose float
// sums differ from the single-token kernels: float weights, a row length
// that is a multiple of 8 and a row count that is a multiple of 4.
func sgemmApplies(w Matrix) bool {
	switch w.Type {
	case F32, F16, BF16:
		return w.Cols%8 == 0 && w.Rows%4 == 0
	}
	return false
}

// MatVec sets dst[r] = w.Row(r)·x for r < w.Rows, parallel over rows on p.
// x has w.Cols elements; it is first rounded into VecDotType(w.Type) as
// llama.cpp does (see the package comment). dst must not overlap x.
func MatVec(p *Pool, dst []float32, w Matrix, x []float32) {
	MatMul(p, dst, w, x, 1)
}

// MatMul multiplies w by n activation rows: for i < n and r < w.Rows,
// dst[i*w.Rows+r] = w.Row(r)·x[i*w.Cols:(i+1)*w.Cols]. Each element is
// computed exactly as MatVec computes it (bitwise equal), whatever n and the
// pool. dst must not overlap x.
func MatMul(p *Pool, dst []float32, w Matrix, x []float32, n int) {
	matMul(p, dst, w, x, n, false)
}

// MatMulBatch is MatMul as llama.cpp computes a batch of two or more tokens
// in one call (prompt processing): where its AVX2 build then uses
// llamafile's sgemm (F32, F16 and BF16 weights with Cols a multiple of 8 and
// Rows a multiple of 4), each element is summed in 8 lanes (element k in lane
// k%8, fused multiply-adds) and reduced by hsum8, instead of MatVec's 32
// lanes; every other case is MatMul. Use it for a batch of n >= 2 tokens to
// reproduce llama.cpp's prompt logits bit for bit; for n == 1 it is MatVec.
// Rows are still independent of n and of the pool.
func MatMulBatch(p *Pool, dst []float32, w Matrix, x []float32, n int) {
	matMul(p, dst, w, x, n, n >= 2 && sgemmApplies(w))
}

// MatMulShared is MatMul of the same n activation rows x by up to three
// matrices (ps[j].Dst gets ps[j].W times x), bitwise as separate MatMul
// calls, in one dispatch on p where the matrices share their type, column
// count and layout (Packed in groups of one size, or not): the
// activations are rounded once and the pool's workers meet once instead
// of once per matrix, as for a layer's q, k and v products. Otherwise, or
// for more than three, it makes the MatMul calls one after another.
func MatMulShared(p *Pool, x []float32, n int, ps ...Product) {
	matMulShared(p, x, n, false, ps)
}

// MatMulSharedBatch is MatMulShared with each product as MatMulBatch
// computes it: for a prompt's n >= 2 tokens.
func MatMulSharedBatch(p *Pool, x []float32, n int, ps ...Product) {
	matMulShared(p, x, n, true, ps)
}

func matMulShared(p *Pool, x []float32, n int, batch bool, ps []Product) {
	sgemm := func(w Matrix) bool { return batch && n >= 2 && sgemmApplies(w) }
	fuse := len(ps) >= 2 && len(ps) <= maxShared && n > 0
	for _, q := range ps[min(1, len(ps)):] {
		w0 := ps[0].W
		fuse = fuse && q.W.Type == w0.Type && q.W.Cols == w0.Cols && (q.W.packed == nil) == (w0.packed == nil) && q.W.group == w0.group &&
			q.W.Rows%8 == w0.Rows%8 && q.W.Rows > 0 && sgemm(q.W) == sgemm(w0)
	}
	if !fuse || ps[0].W.Rows == 0 {
		for _, q := range ps {
			matMul(p, q.Dst, q.W, x, n, sgemm(q.W))
		}
		return
	}
	t := mulTasks.get()
	t.nparts = copy(t.parts[:], ps)
	for j := range t.nparts {
		q := &t.parts[j]
		q.Dst = q.Dst[:n*q.W.Rows]
	}
	matMulTask(p, t, ps[0].Dst, ps[0].W, x, n, sgemm(ps[0].W))
}

func matMul(p *Pool, dst []float32, w Matrix, x []float32, n int, batch bool) {
	if n <= 0 || w.Rows == 0 {
		return
	}
	matMulTask(p, mulTasks.get(), dst, w, x, n, batch)
}

// matMulTask runs the product t (its parts set for a fused one, else
// none) of x by w into dst and puts t back.
func matMulTask(p *Pool, t *mulTask, dst []float32, w Matrix, x []float32, n int, batch bool) {
	t.batch = batch
	t.dst, t.w, t.x, t.n = dst[:n*w.Rows], w, x[:n*w.Cols], n
	if w.Type != F32 {
		t.xt = VecDotType(w.Type)
		t.xrb, _ = t.xt.RowBytes(w.Cols)
		// A packed F16 matrix (one token's product of a wide one) reads
		// its activations as halves: half the bytes in L1 beside the
		// weights streaming past.
		if t.x32 = fastAct32(w.Type, batch) && !(w.Type == F16 && t.packed(w)); t.x32 {
			t.xrb = 4 * w.Cols
		}
		nq, ns := n*t.xrb, 0
		if readsSums(w) {
			ns = n * w.Cols / QK * xsBlock
		}
		t.actBufs(nq, ns)
		t.dot = rowDot(w.Type)
		switch {
		case w.Type == Q4_0 && w.Rows%8 == 0:
			t.dot = dotQ4_0Q8_0x8 // llama.cpp's AVX2 build repacks these
		case batch && w.Type == F16:
			t.dot = sgemmF16
		case batch && w.Type == BF16:
			t.dot = sgemmBF16
		}
		if f := fastDot(w.Type, w.Rows, batch); f != nil {
			t.dot = f // the SIMD version, bitwise equal (dot_amd64.go)
		}
		t.rows, t.rowsK = fastRows(w.Type, w.Rows, n, batch)
		t.tiles, t.tilesK = fastTiles(w.Type, batch, n)
		if t.x32 && t.xt == BF16 {
			t.xmags = slices.Grow(t.xmags[:0], n)[:n]
		}
		t.phase = 0
		p.run(n, max(1, rowGrain/max(1, t.xrb)), t)
		t.xmag = bf16Mags{}
		if t.x32 && t.xt == BF16 {
			t.xmag = bf16Mags{lo: 0xffff, known: true}
			for _, m := range t.xmags {
				t.xmag = t.xmag.join(m)
			}
		}
	}
	t.phase = 1
	units, unitBytes := t.productUnits(w), w.RowBytes()*n*t.unitRows(w)
	for j := 1; j < t.nparts; j++ {
		units += t.productUnits(t.parts[j].W)
	}
	ahead := p.takeAhead() // workers reading ahead stop at their next step
	p.run(units, max(1, rowGrain/max(1, unitBytes)), t)
	ahead.drain()
	t.dst, t.w.Data, t.w.packed, t.x, t.dot, t.rows, t.rowsK, t.tiles, t.tilesK = nil, nil, nil, nil, nil, nil, 0, nil, 0
	t.parts, t.nparts = [maxShared]Product{}, 0
	mulTasks.put(t)
}

// actBufs sets t.xq to nq bytes and t.xs to ns bytes for the product's
// rounded activations and their sums: the next buffer of t.ring where both
// fit in it (xs from the first cache line after xq), else bigq and bigs,
// grown as needed.
func (t *mulTask) actBufs(nq, ns int) {
	at := (nq + 63) &^ 63
	if at+ns > actRingBytes {
		if cap(t.bigq) < nq {
			t.bigq = make([]byte, nq)
		}
		if cap(t.bigs) < ns {
			t.bigs = make([]byte, ns)
		}
		t.xq, t.xs = t.bigq[:nq], t.bigs[:ns]
		return
	}
	b := t.ring[t.turn]
	if b == nil {
		b = make([]byte, actRingBytes)
		t.ring[t.turn] = b
	}
	t.turn = (t.turn + 1) % actRing
	t.xq, t.xs = b[:nq:nq], b[at:at+ns:at+ns]
}

// bf16Mags bounds the magnitudes of a run of bf16 values, as their bits
// without the sign: lo is one less than the least nonzero (0xffff when all
// are zero), hi the greatest.
type bf16Mags struct {
	lo, hi uint16
	known  bool
}

// join returns the bounds of both runs.
func (a bf16Mags) join(b bf16Mags) bf16Mags {
	return bf16Mags{min(a.lo, b.lo), max(a.hi, b.hi), a.known && b.known}
}

// bf16Exact reports whether every product of a bf16 within w by one within
// x is exact in float32: a product of two bf16s has at most 16 significant
// bits, so it is unless it falls below the normal range or overflows (and
// neither side holds a subnormal, an infinity or a NaN). Then a fused
// multiply-add gives the bits of a multiply and an add.
func bf16Exact(w, x bf16Mags) bool {
	if !w.known || !x.known {
		return false
	}
	// Biased exponents: of the least nonzero (512 when all are zero), of
	// the greatest.
	wlo, xlo := (uint32(w.lo)+1)>>7, (uint32(x.lo)+1)>>7
	whi, xhi := uint32(w.hi)>>7, uint32(x.hi)>>7
	return wlo >= 1 && xlo >= 1 && wlo+xlo >= 128 && whi <= 254 && xhi <= 254 && whi+xhi <= 380
}

// bf16MagsGo is bf16MagsOf in plain Go.
func bf16MagsGo(b []byte) bf16Mags {
	m := bf16Mags{lo: 0xffff, known: true}
	for i := 0; i+1 < len(b); i += 2 {
		a := u16le(b[i:]) & 0x7fff
		m.hi = max(m.hi, a)
		m.lo = min(m.lo, a-1)
	}
	return m
}

// xsBlock is the size of packedSums' record of a block.
const xsBlock = 40

// packedSums writes, for each of the nb Q8_0 blocks of x, a record of
// xsBlock bytes into xs: 8 times the sum of its quants (int32), its scale
// F16(d) as a float32, then for each 4 quants in turn -128 times their sum
// (int32). The packed kernels subtract the first for Q4_0's nibble offset,
// add the last for the 128 Q8_0 weights are stored plus (AVX-512), and
// multiply the weights' scales by d.
func packedSums(xs, x []byte, nb int) {
	xs = xs[:xsBlock*nb]
	for b := range nb {
		blk := (*[q8_0Bytes]byte)(x[b*q8_0Bytes:])
		rec := xs[xsBlock*b:][:xsBlock]
		var s int32
		for i := range 8 {
			var si int32
			for _, q := range blk[2+4*i : 6+4*i] {
				si += int32(int8(q))
			}
			binary.LittleEndian.PutUint32(rec[8+4*i:], uint32(-128*si))
			s += si
		}
		binary.LittleEndian.PutUint32(rec, uint32(8*s))
		binary.LittleEndian.PutUint32(rec[4:], math.Float32bits(f16(blk[:])))
	}
}

// xsHead is the size of packedHeads' record of a block.
const xsHead = 8

// packedHeads writes, for each of the nb Q8_0 blocks of x, the first
// xsHead bytes of packedSums' record into xs, xsHead bytes apart: all
// that the packed Q4_0 kernel reads of it.
func packedHeads(xs, x []byte, nb int) {
	for b := range nb {
		blk := (*[q8_0Bytes]byte)(x[b*q8_0Bytes:])
		var s int32
		for _, q := range blk[2:] {
			s += int32(int8(q))
		}
		binary.LittleEndian.PutUint32(xs[xsHead*b:], uint32(8*s))
		binary.LittleEndian.PutUint32(xs[xsHead*b+4:], math.Float32bits(f16(blk[:])))
	}
}

// streamHeads reports whether one token's product of the packed matrix w
// reads x's records xsHead bytes apart rather than xsBlock: Q4_0's (then
// packedHeads', not packedSums') and Q4_1's and Q5_1's (packedScalesQ8_1's),
// whose kernels' stream versions read xsHead bytes of each record.
func streamHeads(w Matrix) bool {
	return w.group > 0 && (w.Type == Q4_0 || w.Type == Q4_1 || w.Type == Q5_1)
}

// packedXSums writes into xs what the packed products of w read beside one
// activation row xq, quantized to VecDotType(w.Type): packedSums, or for
// the Q8_1 and Q8_K activations the records of their own; for one token's
// product (stream, as dotPacked's) of a matrix that streamHeads, its
// records xsHead bytes apart (Q4_0's packedHeads), and of a Q8_0 one
// nothing. It writes at most w.Cols/QK*xsBlock bytes.
func packedXSums(xs, xq []byte, w Matrix, stream bool) {
	if stream && w.Type == Q8_0 {
		return // its stream kernels read none
	}
	nb, rec := w.Cols/QK, xsBlock
	if stream && streamHeads(w) {
		rec = xsHead
	}
	switch {
	case w.Type == Q4_0 && rec == xsHead:
		packedHeadsImpl(xs, xq, nb)
	case w.Type == Q4_1 || w.Type == Q5_1:
		packedScalesQ8_1(xs, xq, nb, rec)
	case w.Type == Q4_K || w.Type == Q5_K:
		packedSumsQ8_K(xs, xq, w.Cols/QKK)
	case w.Type == Q6_K:
		packedSumsQ6_K(xs, xq, w.Cols/QKK)
	default:
		packedSumsImpl(xs, xq, nb)
	}
}

// q6KRecord is the size of packedSumsQ6_K's record of a super-block.
const q6KRecord = 128

// packedSumsQ6_K is packedSums for the Q8_K activations of the packed
// Q6_K products: super-block b's record at q6KRecord*b holds, for each 4
// quants in turn, -32 times their sum (an int16: at most 16384 in
// magnitude), the offset of Q6_K's weights. The kernel reads each as the
// low half of 4 bytes, 2 bytes past the last record.
func packedSumsQ6_K(xs, x []byte, nb int) {
	xs, x = xs[:q6KRecord*nb], x[:q8_KBytes*nb]
	for b := range nb {
		_, qs, _ := q8K((*[q8_KBytes]byte)(x[b*q8_KBytes:]))
		rec := xs[q6KRecord*b:][:q6KRecord]
		for g := range 64 {
			s := int16(int8(qs[4*g])) + int16(int8(qs[4*g+1])) + int16(int8(qs[4*g+2])) + int16(int8(qs[4*g+3]))
			binary.LittleEndian.PutUint16(rec[2*g:], uint16(-32*s))
		}
	}
}

// packedSumsQ8_K is packedSums for the Q8_K activations of the packed
// Q4_K products: super-block b's record at 32*b holds its scale d and -d
// as float32, then for each pair k of 32-element sub-blocks their sums
// (bsum32 of 2k and 2k+1) as two int16 in one word, the pairs of
// VPDPWSSD against the rows' mins.
func packedSumsQ8_K(xs, x []byte, nb int) {
	xs, x = xs[:32*nb], x[:q8_KBytes*nb]
	for b := range nb {
		d, _, bsums := q8K((*[q8_KBytes]byte)(x[b*q8_KBytes:]))
		rec := xs[32*b:][:32]
		binary.LittleEndian.PutUint32(rec, math.Float32bits(d))
		binary.LittleEndian.PutUint32(rec[4:], math.Float32bits(-d))
		for k := range 4 {
			binary.LittleEndian.PutUint16(rec[8+4*k:], uint16(int16(bsum32(bsums, 2*k))))
			binary.LittleEndian.PutUint16(rec[10+4*k:], uint16(int16(bsum32(bsums, 2*k+1))))
		}
	}
}

// packedScalesQ8_1 is packedSums for the Q8_1 activations of the packed
// Q4_1 and Q5_1 products: block b's record, rec bytes apart (xsBlock, or
// xsHead for one token's product: streamHeads), holds as float32 its sum
// term F16(s) at rec*b and its scale F16(d) after it.
func packedScalesQ8_1(xs, x []byte, nb, rec int) {
	xs, x = xs[:rec*nb], x[:q8_1Bytes*nb]
	for b := range nb {
		blk := x[b*q8_1Bytes:]
		binary.LittleEndian.PutUint32(xs[rec*b:], math.Float32bits(f16(blk[2:])))
		binary.LittleEndian.PutUint32(xs[rec*b+4:], math.Float32bits(f16(blk[:])))
	}
}

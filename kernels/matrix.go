package kernels

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
)

// ErrUnsupported is returned (wrapped) by NewMatrix for a tensor type the
// kernels cannot multiply.
var ErrUnsupported = errors.New("unsupported tensor type")

// ErrShape is returned (wrapped) by NewMatrix when the dimensions and the
// data disagree.
var ErrShape = errors.New("bad matrix shape")

// Matrix is a 2-D weight tensor of Rows rows of Cols elements each, stored
// row-major in Type's encoding. It is a zero-copy view: Data may point into
// an mmapped GGUF file, whose dims for it are [Cols, Rows]. Build it with
// NewMatrix, which checks the shape once; the kernels trust it afterwards.
type Matrix struct {
	Type       DType
	Rows, Cols int
	Data       []byte
	// packed, where not nil, holds the same weights rearranged for this
	// CPU's fastest kernel (see Packed) in groups of group rows; products
	// read it instead of Data.
	packed []byte
	group  int
	// q8Min says that a Q8_0 matrix holds a quant of -128 (hasQ8Min), for
	// the packed kernels that cannot take one (Q8R8 in dot_amd64.s).
	q8Min bool
	// mags, for BF16 weights that Packed saw, bounds their magnitudes
	// (bf16Mags); products may then fuse multiply-adds where every
	// product is exact (bf16Exact).
	mags bf16Mags
}

// Packed returns m with a copy of its weights rearranged for the fastest
// product kernel of this CPU, as llama.cpp repacks them at load. Today that
// is Q4_0, Q8_0, Q5_0, Q4_1, Q5_1, Q4_K, Q5_K and Q6_K with AVX-512 VNNI,
// in groups of 16 rows (a multiple of 16 rows), else Q4_0 and Q8_0 with
// AVX2 in groups of 8 (a multiple of 8) and Q4_K in groups of 16 (a
// multiple of 16), interleaved so that a product
// streams one run of memory instead of 16 or 8 and shares each block of
// activations among the group's rows (Q4_K's and Q5_K's scales unpacked on
// the way: packK16; Q6_K's laid out by packQ6K16); and
// F16 wider than 2048 columns with AVX2, in bands of columns by groups
// of 16 rows (packF16Bands). Data, Row and DequantizeRow are unchanged
// (Data is kept, not read by products but F16's batched ones). Any
// other matrix of 2 MiB or more gets a plain copy of Data in memory of its
// own, which becomes the result's Data (decode streams a mapped file's pages
// markedly slower than its own heap memory, measured on F16 models); a
// smaller one is returned unchanged. BF16 weights are also scanned for the
// bounds of their magnitudes, which let batched products fuse their
// multiply-adds where no product can round. Products of the result are
// bitwise those of m. A copy is owned by the result and as large as Data
// (Q4_K's, 37/36 of it; Q5_K's, 45/44; Q6_K's, 32 bytes more a group of
// rows whose rows hold an odd number of super-blocks), and backed by huge
// pages where the system allows (adviseHuge): a product streams them
// faster.
func (m Matrix) Packed() Matrix {
	if m.Type == BF16 && !m.mags.known {
		m.mags = bf16MagsOf(m.Data)
	}
	switch g := packGroup(m); {
	case m.packed != nil:
	case g > 0:
		m.packed, m.group = packRows(m, g), g
		m.q8Min = m.Type == Q8_0 && g == 8 && hasQ8Min(m.Data)
	case len(m.Data) >= copyBytes:
		// No other layout, but a copy in memory of our own: a product
		// streams it faster than the pages of a mapped file.
		d := weightBuf(len(m.Data))
		copy(d, m.Data)
		m.Data = d
	}
	return m
}

// hasQ8Min reports whether any quant of the Q8_0 blocks in data is -128.
// ggml quantizes to -127..127, so only a file made otherwise has one.
func hasQ8Min(data []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for o := 0; o+q8_0Bytes <= len(data); o += q8_0Bytes {
		q := data[o+2 : o+q8_0Bytes]
		for i := 0; i < 32; i += 8 {
			v := binary.LittleEndian.Uint64(q[i:]) ^ highs // a -128 quant is a zero byte
			if (v-ones)&^v&highs != 0 {
				return true
			}
		}
	}
	return false
}

// heapWeightBytes counts the bytes of weights Packed holds in the Go heap.
var heapWeightBytes atomic.Int64

// weightBuf returns a new n-byte buffer for Packed's copy of a matrix,
// counted in HeapWeightBytes until the garbage collector frees it, and
// backed by huge pages where the system allows: cut from a slab of them
// (slabBuf), or a buffer of its own advised for them (adviseHuge).
func weightBuf(n int) []byte {
	b := slabBuf(n) // one under a huge page, cut from huge pages
	if b == nil {
		b = make([]byte, n)
		adviseHuge(b)
	}
	if n > 0 {
		heapWeightBytes.Add(int64(n))
		runtime.AddCleanup(&b[0], func(n int64) { heapWeightBytes.Add(-n) }, int64(n))
	}
	return b
}

// HeapWeightBytes returns how many bytes of weights Packed has copied or
// rearranged into the Go heap and the garbage collector has not freed.
// They count toward the collector's heap goal like any live memory: at
// the default GOGC of 100, a process holding 10 GB of weights lets up to
// 10 GB of garbage build up between two collections. A long-running
// server may lower its GC percentage by this figure.
func HeapWeightBytes() int64 { return heapWeightBytes.Load() }

// copyBytes is the size from which Packed copies a matrix it does not
// rearrange.
const copyBytes = 2 << 20

// packRows interleaves the rows of a Q4_0, Q8_0, Q5_0, Q4_1, Q5_1, Q4_K or
// Q5_K matrix by groups of g: for Q4_0 and Q8_0, group k's nb blocks of g rows at
// k*nb*g*BlockBytes, in pairs: both blocks' quants (g rows', as below), then
// both blocks' F16 scales (g rows'); a last odd block: its quants, then its
// scales. Every 64-byte load of quants (32-byte with g == 8) is then aligned
// where the matrix is: a pair is 9 (Q4_0) or 17 (Q8_0) cache lines with g ==
// 16, half that with 8. With each block's scales first, every other block's
// loads of quants crossed a line, each counted twice against the two loads a
// cycle: the pairs made in-cache Q4_0 products 17% faster and Q8_0 decode
// 12-25% faster (Zen 5).
//
// Groups of 8 (the AVX2 kernels): Q8_0 keeps the rows in order (32 bytes
// each); Q4_0 pairs them (0,4), (1,5), (2,6), (3,7), the first of each
// pair in the low 16 bytes of 32.
//
// Groups of 16 (the AVX-512 VNNI kernels): the quants go by 4-byte words,
// word i of every row in turn (row r's at 4*(16*i+r)), so that one 64-byte
// load holds the same 4 columns of all 16 rows. Q4_0's byte j holds
// elements j and j+16, so word i holds elements 4i..4i+3 in its low
// nibbles and 16+4i.. in its high ones. Q8_0's quants are stored plus 128
// (their top bit flipped), as the unsigned operand of VPDPBUSD.
//
// Q5_0, Q4_1 and Q5_1 (groups of 16 only) pack their nibbles as Q4_0's,
// and their fifth bits as the byte masks of those loads: packNibbles16.
// Q4_K and Q5_K (groups of 16 only) have a layout of their own: packK16;
// Q6_K another: packQ6K16.
func packRows(m Matrix, g int) []byte {
	switch m.Type {
	case Q5_0, Q4_1, Q5_1:
		return packNibbles16(m)
	case Q4_K, Q5_K:
		return packK16(m)
	case Q6_K:
		return packQ6K16(m)
	case F16:
		return packF16Bands(m)
	}
	rb, nb, bb := m.RowBytes(), m.Cols/QK, m.Type.BlockBytes()
	qb := bb - 2 // quant bytes a block: 16 or 32
	out := weightBuf(len(m.Data))
	for k := 0; k < m.Rows/g; k++ {
		rows := m.Data[k*g*rb : (k+1)*g*rb]
		for r := range g {
			row := rows[r*rb : (r+1)*rb]
			for b, o := 0, k*nb*g*bb; b < nb; b, o = b+1, o+g*bb {
				src := row[b*bb : (b+1)*bb]
				qo, so := o, o+g*qb // a last odd block
				if b/2*2+1 < nb {   // a block of a pair
					pair := o - b%2*g*bb
					qo, so = pair+b%2*g*qb, pair+2*g*qb+b%2*2*g
				}
				out[so+2*r], out[so+2*r+1] = src[0], src[1]
				q := out[qo : qo+g*qb]
				if g == 16 {
					var flip uint32
					if m.Type == Q8_0 {
						flip = 0x80808080
					}
					for i := range qb / 4 {
						binary.LittleEndian.PutUint32(q[4*(16*i+r):], binary.LittleEndian.Uint32(src[2+4*i:])^flip)
					}
					continue
				}
				slot := r // Q8_0: row order
				if m.Type == Q4_0 {
					slot = 2*(r%4) + r/4 // pairs (r, r+4)
				}
				dst := q[qb*slot:][:qb]
				if qb == 16 { // fixed-size copies compile to moves, not memmove calls
					*(*[16]byte)(dst) = *(*[16]byte)(src[2:])
				} else {
					*(*[32]byte)(dst) = *(*[32]byte)(src[2:])
				}
			}
		}
	}
	return out
}

// f16BandsFrom is the width, in columns, beyond which Packed lays an F16
// matrix out in bands (packF16Bands), and its one-token products read
// their activations as halves.
const f16BandsFrom = 2048

// f16Band is the width, in columns, of the bands of a wide F16 matrix
// (packF16Bands): 8 KB of activations as halves.
const f16Band = 4096

// f16OneBand is the widest F16 row that packF16Bands keeps in one band
// (11 KB of activations as halves). Streaming 2048x5632 matrices with the
// guest's two cores far apart, alternating in one process, whole rows ran
// 3.5-4.2% faster than bands of 4096 and 1536 columns, and those 2.7%
// faster than two bands of 2816 (near: 0.3-0.8% and 0.5%); 2048x8192 ran
// fastest in bands of 4096, 10% slower in bands of 6144 and 2048, and 25%
// slower whole.
const f16OneBand = 5632

// f16BandOf is the width of the bands packF16Bands cuts rows of cols
// columns into (the last one narrower).
func f16BandOf(cols int) int {
	if cols <= f16OneBand {
		return cols
	}
	return f16Band
}

// packF16Bands lays out an F16 matrix wider than f16BandsFrom (groups of 16
// only) by groups of 16 rows and, within a group, by bands of
// f16BandOf(Cols) columns: band j holds the 16 rows' columns [j*band,
// (j+1)*band), row after row. A single token's product reads it in order,
// one stream a thread, with the activations as halves (dotF16Bands), and
// each band of them stays in L1 over the 16 rows. Row by row, a row 5632
// columns wide read 22 KB of float32 activations beside its 11 KB of
// weights, which evicted them from the 32 KB L1 before the next row came
// back to them: on Zen 4, matrices of 1B-like shapes streamed at 82% of the
// bandwidth 5632 columns wide (64% at times of fast memory) and 70% at
// 8192, against 94-96% at 2048. Bands of 2048 float32 activations (8 KB)
// then streamed 2048x5632 at 94-96% of a bare read of the same weights
// while memory was slow, but at 73-87% while it was fast (the guest's two
// cores far apart on the host); bands of 4096 halves (8 KB too, and the
// whole 11 KB of a row's halves stays within L1) streamed at 98% and 82% of
// it, alternating in one process. The batched products (prompts) keep to
// the rows as they are in Data.
func packF16Bands(m Matrix) []byte {
	rb, band := m.RowBytes(), f16BandOf(m.Cols)
	out := weightBuf(len(m.Data))
	o := 0
	for k := 0; k < m.Rows/16; k++ {
		for c0 := 0; c0 < m.Cols; c0 += band {
			n := 2 * min(band, m.Cols-c0)
			for r := range 16 {
				o += copy(out[o:], m.Data[(16*k+r)*rb+2*c0:][:n])
			}
		}
	}
	return out
}

// packNibbles16 interleaves the rows of a Q5_0, Q4_1 or Q5_1 matrix by
// groups of 16, for the dot*x16PackedAVX512 kernels: group k's nb blocks of
// 16 rows at k*nb*16*BlockBytes, in pairs: both blocks' nibbles (256 bytes
// each, by words as Q4_0's), then both blocks' masks (Q5_0 and Q5_1, 64
// bytes each), then both blocks' F16 scales (32 bytes each), then both
// blocks' F16 mins (Q4_1 and Q5_1, 32 bytes each); a last odd block: its
// own, in that order. A block's masks are 8 words of 64 bits, a bit per
// byte of a 64-byte load of nibbles: bit 4r+j of word i (i < 4) is the
// fifth bit of row r's element 4i+j (the low nibble of byte j of its word
// i), and bit 4r+j of word 4+i that of element 16+4i+j (the high nibble).
// The matrix keeps its size; a pair is 10 (Q4_1), 11 (Q5_0) or 12 (Q5_1)
// cache lines.
func packNibbles16(m Matrix) []byte {
	const g = 16
	bb := m.Type.BlockBytes()
	rb, nb := m.RowBytes(), m.Cols/QK
	hasMin := m.Type != Q5_0
	qhAt, qsAt, mb := 2, 6, 64 // source offsets of qh and qs; mask bytes a block
	switch m.Type {
	case Q4_1:
		qhAt, qsAt, mb = -1, 4, 0
	case Q5_1:
		qhAt, qsAt = 4, 8
	}
	out := weightBuf(len(m.Data))
	for k := 0; k < m.Rows/g; k++ {
		rows := m.Data[k*g*rb : (k+1)*g*rb]
		for b, o := 0, k*nb*g*bb; b < nb; b, o = b+1, o+g*bb {
			qo, mo, so := o, o+256, o+256+mb // a last odd block
			mno := so + 32
			if b/2*2+1 < nb { // a block of a pair
				pair, h := o-b%2*g*bb, b%2
				qo, mo, so = pair+256*h, pair+512+mb*h, pair+512+2*mb+32*h
				mno = pair + 512 + 2*mb + 64 + 32*h
			}
			var masks [8]uint64
			for r := range g {
				src := rows[r*rb+b*bb:][:bb]
				out[so+2*r], out[so+2*r+1] = src[0], src[1]
				if hasMin {
					out[mno+2*r], out[mno+2*r+1] = src[2], src[3]
				}
				for i := range 4 {
					copy(out[qo+4*(16*i+r):][:4], src[qsAt+4*i:][:4])
				}
				if qhAt < 0 {
					continue
				}
				qh := binary.LittleEndian.Uint32(src[qhAt:])
				for i := range 4 {
					for j := range 4 {
						masks[i] |= uint64(qh>>(4*i+j)&1) << (4*r + j)
						masks[4+i] |= uint64(qh>>(16+4*i+j)&1) << (4*r + j)
					}
				}
			}
			for i, w := range masks[:mb/8] {
				binary.LittleEndian.PutUint64(out[mo+8*i:], w)
			}
		}
	}
	return out
}

// q4KPacked and q5KPacked are the sizes of a super-block of 16 rows
// packed by packK16.
const (
	q4KPacked = 2048 + 2*32 + 8*16 + 4*32
	q5KPacked = 2048 + 512 + 2*32 + 8*16 + 4*32
)

// q6KPacked is the size of a super-block of 16 rows packed by packQ6K16:
// as many bytes as unpacked.
const q6KPacked = 16 * q6_KBytes

// q6KGroupBytes is the size of a group of 16 rows of nb super-blocks
// packed by packQ6K16: a last odd super-block is padded by 32 bytes.
func q6KGroupBytes(nb int) int { return nb*q6KPacked + 32*(nb%2) }

// packQ6K16 interleaves the rows of a Q6_K matrix by groups of 16, for
// dotQ6_KQ8_Kx16PackedAVX512: group k's nb super-blocks of 16 rows at
// k*q6KGroupBytes(nb), by pairs: the first's scales and d (288 bytes),
// the second's, then both super-blocks' quants (3072 bytes each); a last
// odd super-block: its scales and d, 32 bytes of padding, its quants. So
// every 64-byte load of quants is aligned where the matrix is, and the
// kernel reads the bytes in the order they lie in. A
// super-block's quants go by halves n (128 elements) and words i (4
// elements of each of the half's four chunks of 32), three loads a word,
// row r's 4 bytes at 4r of each: at 1536n+192i its ql bytes 64n+4i..
// (chunk 0 in the low nibbles, chunk 2 in the high), at +64 its ql bytes
// 64n+32+4i.. (chunks 1 and 3), at +128 its qh bytes 32n+4i.. (the two
// high bits of all four chunks). Its scales follow (sub-block j's 16 rows
// at 16j, 256 bytes), then the rows' F16 d (32 bytes).
func packQ6K16(m Matrix) []byte {
	const g = 16
	rb, nb := m.RowBytes(), m.Cols/QKK
	gb := q6KGroupBytes(nb)
	out := weightBuf(m.Rows / g * gb)
	for k := 0; k < m.Rows/g; k++ {
		grp := out[k*gb:][:gb]
		for b := range nb {
			p := b / 2 * 2 * q6KPacked
			qo, so := p+2*288+3072*(b%2), p+288*(b%2)
			if b == nb-1 && nb%2 == 1 {
				qo, so = p+320, p
			}
			for r := range g {
				src := m.Data[(k*g+r)*rb+b*q6_KBytes:][:q6_KBytes]
				for n := range 2 {
					for i := range 8 {
						o := qo + 1536*n + 192*i + 4*r
						copy(grp[o:][:4], src[64*n+4*i:])
						copy(grp[o+64:][:4], src[64*n+32+4*i:])
						copy(grp[o+128:][:4], src[128+32*n+4*i:])
					}
				}
				for j := range 16 {
					grp[so+16*j+r] = src[192+j]
				}
				copy(grp[so+256+2*r:][:2], src[208:210])
			}
		}
	}
	return out
}

// packK16 interleaves the rows of a Q4_K or Q5_K matrix by groups of 16,
// for dotQ4_KQ8_Kx16PackedAVX512 and dotQ5_KQ8_Kx16PackedAVX512: group k's
// nb super-blocks of 16 rows at k*nb*size (q4KPacked or q5KPacked), each
// in the order the kernels read it: the rows' F16 d (32 bytes) and dmin
// (32 bytes), the 6-bit scales unpacked to bytes (sub-block j's 16 rows at
// 64+16j), the mins unpacked to bytes by pairs of sub-blocks (pair k's at
// 192+32k: row r's m_2k at 2r, m_2k+1 at 2r+1); then chunk by chunk (c
// of 4, at 320+512c, Q5_K's at 320+640c) its quants (512 bytes: word i of
// every row in turn, row r's at 64i+4r, so that one 64-byte load holds the
// same 8 elements of all 16 rows: 64c+4i.. in the low nibbles, of
// sub-block 2c, and 64c+32+4i.. in the high ones, of 2c+1) and for Q5_K
// the fifth bits, as the byte masks of those loads (word i's at 512+16i:
// bit 4r+j of the first 8 bytes is the fifth bit of row r's element
// 64c+4i+j, of the next 8 that of element 64c+32+4i+j). 37 (Q4_K) or 45
// (Q5_K) cache lines a super-block, against 36 and 44 unpacked. With the
// quants first and the rest after them, which the kernels read first, and
// the masks after all the quants, the products streamed from memory at
// 85% (Q4_K) and 53% (Q5_K) of a bare read's bandwidth, against 100% and
// 97% in this order (one 96000x2048 matrix, 2 cores, memory in its slower
// phase).
func packK16(m Matrix) []byte {
	const g = 16
	bb, size, qsAt, hb := q4_KBytes, q4KPacked, 16, 0
	if m.Type == Q5_K {
		bb, size, qsAt, hb = q5_KBytes, q5KPacked, 48, 512
	}
	rb, nb := m.RowBytes(), m.Cols/QKK
	out := weightBuf(m.Rows / g * nb * size)
	for k := 0; k < m.Rows/g; k++ {
		for b := range nb {
			o := out[(k*nb+b)*size:][:size]
			const dOff, scOff, mnOff = 0, 64, 192
			cs := 512 + hb/4     // a chunk's quants, then (Q5_K) its masks
			var masks [64]uint64 // Q5_K: word 8c+i's low and high masks
			for r := range g {
				src := m.Data[(k*g+r)*rb+b*bb:][:bb]
				copy(o[dOff+2*r:][:2], src[0:2])
				copy(o[dOff+32+2*r:][:2], src[2:4])
				scales := (*[12]byte)(src[4:])
				for j := range 8 {
					sc, mn := scaleMinK4(j, scales)
					o[scOff+16*j+r] = sc
					o[mnOff+32*(j/2)+2*r+j%2] = mn
				}
				for w := range 32 { // word w = 8c+i: bytes qsAt+4w.. of the row's quants
					copy(o[320+cs*(w/8)+64*(w%8)+4*r:][:4], src[qsAt+4*w:][:4])
					if hb == 0 {
						continue
					}
					c, i := w/8, w%8
					for j := range 4 {
						h := src[16+4*i+j] // qh[4i+j]: bit 2c for the low nibble, 2c+1 for the high
						masks[2*w] |= uint64(h>>(2*c)&1) << (4*r + j)
						masks[2*w+1] |= uint64(h>>(2*c+1)&1) << (4*r + j)
					}
				}
			}
			for i, w := range masks[:hb/8] { // word 8c+j's two at 320+cs*c+512+16j
				binary.LittleEndian.PutUint64(o[320+cs*(i/16)+512+8*(i%16):], w)
			}
		}
	}
	return out
}

// NewMatrix returns a view of data as a rows x cols matrix of type t. It
// fails when t is not Supported, when cols is not a whole number of t's
// blocks, or when len(data) is not exactly rows rows. The matrix keeps data.
func NewMatrix(t DType, rows, cols int, data []byte) (Matrix, error) {
	if !t.Supported() {
		return Matrix{}, fmt.Errorf("matrix of %v: %w", t, ErrUnsupported)
	}
	rb, ok := t.RowBytes(cols)
	if !ok || rows < 0 || cols <= 0 {
		return Matrix{}, fmt.Errorf("%v matrix %dx%d: %w: columns must be a positive multiple of %d", t, rows, cols, ErrShape, t.BlockSize())
	}
	if len(data) != rows*rb {
		return Matrix{}, fmt.Errorf("%v matrix %dx%d: %w: %d bytes, want %d", t, rows, cols, ErrShape, len(data), rows*rb)
	}
	return Matrix{Type: t, Rows: rows, Cols: cols, Data: data}, nil
}

// Streamed returns the bytes a product of m with one token reads: the
// packed copy where Packed made one, else Data. A roofline over a model's
// own weights reads these (NewBandwidthProbeOf).
func (m Matrix) Streamed() []byte {
	if m.packed != nil {
		return m.packed
	}
	return m.Data
}

// RowBytes returns the size in bytes of one row.
func (m Matrix) RowBytes() int { return m.Cols / m.Type.BlockSize() * m.Type.BlockBytes() }

// Row returns the encoded bytes of row i, a subslice of m.Data (capacity
// capped at the row's end).
func (m Matrix) Row(i int) []byte {
	rb := m.RowBytes()
	return m.Data[i*rb : (i+1)*rb : (i+1)*rb]
}

// DequantizeRow decodes row i into dst[:m.Cols].
func (m Matrix) DequantizeRow(dst []float32, i int) {
	Dequantize(dst[:m.Cols], m.Type, m.Row(i))
}

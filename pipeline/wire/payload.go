package wire

import (
	"encoding/binary"
	"math"

	"github.com/strata-llm/strata/kernels"
)

// The uncompressed payload of a values frame (Activations, Logits) is the
// rows×cols values, row-major, in the frame's dtype:
//
//	F32        rows·cols × uint32 (float32 bits)
//	F16, BF16  rows·cols × uint16
//	Q8         rows·ceil(cols/Q8Block) × uint32 (float32 scales, row by
//	           row, block by block), then rows·cols × int8
//
// and that of a TopK frame is rows·k × uint32 ids, then rows·k values in
// the frame's dtype (F32, F16 or BF16). All little-endian. With Shuffle,
// each run of multi-byte elements above (n elements of w bytes) is stored
// as w planes of n bytes: byte j of element i at offset j·n + i; and the
// zstd payload is then the concatenation of one zstd frame a plane (and one
// for Q8's int8 values), which decodes as one stream all the same.

// elemSize is the width in bytes of one value of an F32, F16 or BF16
// payload; 0 for Q8.
func elemSize(d DType) int {
	switch d {
	case F32:
		return 4
	case F16, BF16:
		return 2
	}
	return 0
}

// q8Blocks is the number of Q8 blocks in a row of cols values.
func q8Blocks(cols int) int { return (cols + Q8Block - 1) / Q8Block }

// valuesSize is the size of rows×cols values in dtype d, uncompressed.
func valuesSize(d DType, rows, cols int) int {
	if d == Q8 {
		return rows*q8Blocks(cols)*4 + rows*cols
	}
	return rows * cols * elemSize(d)
}

// badValue describes the first value that an encoder or decoder refused: its
// index in the values, and whether it was finite (so out of the dtype's
// range) or not. index < 0: none.
type badValue struct {
	index  int
	finite bool
	value  float32
}

var noBad = badValue{index: -1}

func isFinite32(bits uint32) bool { return bits&0x7f800000 != 0x7f800000 }

// encodeValues writes data in dtype d (F32, F16 or BF16) into raw, which is
// exactly len(data)·elemSize(d) bytes.
func encodeValues(raw []byte, data []float32, d DType, shuffle bool) badValue {
	n := len(data)
	switch d {
	case F32:
		if shuffle {
			p0, p1, p2, p3 := raw[:n], raw[n:2*n], raw[2*n:3*n], raw[3*n:4*n]
			for i, v := range data {
				b := math.Float32bits(v)
				if !isFinite32(b) {
					return badValue{i, false, v}
				}
				p0[i], p1[i], p2[i], p3[i] = byte(b), byte(b>>8), byte(b>>16), byte(b>>24)
			}
			return noBad
		}
		raw = raw[:4*n]
		for i, v := range data {
			b := math.Float32bits(v)
			if !isFinite32(b) {
				return badValue{i, false, v}
			}
			binary.LittleEndian.PutUint32(raw[4*i:], b)
		}
	case F16:
		lo, hi := raw[:n], raw[n:2*n]
		raw = raw[:2*n]
		for i, v := range data {
			// kernels.F32ToF16, with the path of the values whose half is
			// normal (nearly every activation) inlined: rebias the
			// exponent, then round the 13 dropped mantissa bits to nearest
			// even (a carry into the exponent is right, up to Inf).
			b := math.Float32bits(v)
			var h uint16
			if abs := b & 0x7fffffff; abs-0x38800000 < 0x477ff000-0x38800000 { // 2^-14 <= |v| < 65520
				h = uint16(b>>16)&0x8000 | uint16((abs-0x38000000+0xfff+(abs>>13)&1)>>13)
			} else {
				h = kernels.F32ToF16(v)
			}
			if h&0x7c00 == 0x7c00 {
				return badValue{i, isFinite32(math.Float32bits(v)), v}
			}
			if shuffle {
				lo[i], hi[i] = byte(h), byte(h>>8)
			} else {
				binary.LittleEndian.PutUint16(raw[2*i:], h)
			}
		}
	case BF16:
		lo, hi := raw[:n], raw[n:2*n]
		raw = raw[:2*n]
		for i, v := range data {
			h := kernels.F32ToBF16(v)
			if h&0x7f80 == 0x7f80 {
				return badValue{i, isFinite32(math.Float32bits(v)), v}
			}
			if shuffle {
				lo[i], hi[i] = byte(h), byte(h>>8)
			} else {
				binary.LittleEndian.PutUint16(raw[2*i:], h)
			}
		}
	}
	return noBad
}

// f16ToF32 is kernels.F16ToF32 with an inlined fast path for normal halves.
func f16ToF32(h uint16) float32 {
	if e := h & 0x7c00; e != 0 && e != 0x7c00 {
		return math.Float32frombits(uint32(h&0x8000)<<16 | (uint32(h&0x7fff)<<13 + 0x38000000))
	}
	return kernels.F16ToF32(h)
}

// decodeValues writes the len(out) values in raw, dtype d (F32, F16 or
// BF16), into out, stopping at the first that is not finite.
func decodeValues(out []float32, raw []byte, d DType, shuffle bool) badValue {
	n := len(out)
	switch d {
	case F32:
		if shuffle {
			p0, p1, p2, p3 := raw[:n], raw[n:2*n], raw[2*n:3*n], raw[3*n:4*n]
			for i := range out {
				b := uint32(p0[i]) | uint32(p1[i])<<8 | uint32(p2[i])<<16 | uint32(p3[i])<<24
				if !isFinite32(b) {
					return badValue{i, false, math.Float32frombits(b)}
				}
				out[i] = math.Float32frombits(b)
			}
			return noBad
		}
		raw = raw[:4*n]
		for i := range out {
			b := binary.LittleEndian.Uint32(raw[4*i:])
			if !isFinite32(b) {
				return badValue{i, false, math.Float32frombits(b)}
			}
			out[i] = math.Float32frombits(b)
		}
	case F16:
		lo, hi := raw[:n], raw[n:2*n]
		raw = raw[:2*n]
		for i := range out {
			var h uint16
			if shuffle {
				h = uint16(lo[i]) | uint16(hi[i])<<8
			} else {
				h = binary.LittleEndian.Uint16(raw[2*i:])
			}
			if h&0x7c00 == 0x7c00 {
				return badValue{i, false, kernels.F16ToF32(h)}
			}
			out[i] = f16ToF32(h)
		}
	case BF16:
		lo, hi := raw[:n], raw[n:2*n]
		raw = raw[:2*n]
		for i := range out {
			var h uint16
			if shuffle {
				h = uint16(lo[i]) | uint16(hi[i])<<8
			} else {
				h = binary.LittleEndian.Uint16(raw[2*i:])
			}
			if h&0x7f80 == 0x7f80 {
				return badValue{i, false, kernels.BF16ToF32(h)}
			}
			out[i] = kernels.BF16ToF32(h)
		}
	}
	return noBad
}

// encodeQ8 writes data, (rows, cols), as Q8 into raw, which is exactly
// valuesSize(Q8, rows, cols) bytes. With shuffle the scales are stored as
// byte planes.
func encodeQ8(raw []byte, data []float32, rows, cols int, shuffle bool) badValue {
	nb := q8Blocks(cols)
	ns := rows * nb // scales
	scales, quants := raw[:4*ns], raw[4*ns:4*ns+rows*cols]
	s := 0
	for r := range rows {
		row := data[r*cols : (r+1)*cols]
		for b0 := 0; b0 < cols; b0 += Q8Block {
			blk := row[b0:min(b0+Q8Block, cols)]
			var amax float32
			for i, v := range blk {
				if !isFinite32(math.Float32bits(v)) {
					return badValue{r*cols + b0 + i, false, v}
				}
				amax = max(amax, float32(math.Abs(float64(v))))
			}
			d := amax / 127
			for math.IsInf(float64(127*d), 0) {
				d = math.Nextafter32(d, 0) // keep 127·d finite near MaxFloat32
			}
			q := quants[r*cols+b0 : r*cols+b0+len(blk)]
			if d == 0 {
				clear(q)
			} else {
				id := 1 / float64(d)
				for i, v := range blk {
					// Round half away from zero; |x| <= 127 but for the last
					// float32 rounding of d, which the clamp takes care of.
					x := float64(v) * id
					r := int32(x + math.Copysign(0.5, x))
					q[i] = byte(int8(max(-127, min(127, r))))
				}
			}
			putScale(scales, s, ns, math.Float32bits(d), shuffle)
			s++
		}
	}
	return noBad
}

func putScale(scales []byte, i, n int, b uint32, shuffle bool) {
	if shuffle {
		scales[i], scales[n+i], scales[2*n+i], scales[3*n+i] = byte(b), byte(b>>8), byte(b>>16), byte(b>>24)
		return
	}
	binary.LittleEndian.PutUint32(scales[4*i:], b)
}

func getScale(scales []byte, i, n int, shuffle bool) uint32 {
	if shuffle {
		return uint32(scales[i]) | uint32(scales[n+i])<<8 | uint32(scales[2*n+i])<<16 | uint32(scales[3*n+i])<<24
	}
	return binary.LittleEndian.Uint32(scales[4*i:])
}

// decodeQ8 decodes a Q8 payload of (rows, cols) values into out, stopping
// at the first value or scale that is not finite, or at a negative scale
// (negScale).
func decodeQ8(out []float32, raw []byte, rows, cols int, shuffle bool) (bad badValue, negScale bool) {
	nb := q8Blocks(cols)
	ns := rows * nb
	scales, quants := raw[:4*ns], raw[4*ns:4*ns+rows*cols]
	s := 0
	for r := range rows {
		for b0 := 0; b0 < cols; b0 += Q8Block {
			i0, i1 := r*cols+b0, r*cols+min(b0+Q8Block, cols)
			bits := getScale(scales, s, ns, shuffle)
			s++
			if !isFinite32(bits) {
				return badValue{i0, false, math.Float32frombits(bits)}, false
			}
			if bits>>31 != 0 {
				return badValue{i0, true, math.Float32frombits(bits)}, true
			}
			d := math.Float32frombits(bits)
			o, q := out[i0:i1], quants[i0:i1]
			for i := range o {
				v := float32(int8(q[i])) * d
				if !isFinite32(math.Float32bits(v)) {
					return badValue{i0 + i, false, v}, false
				}
				o[i] = v
			}
		}
	}
	return noBad, false
}

// encodeIDs writes ids as uint32 into raw, exactly 4·len(ids) bytes.
func encodeIDs(raw []byte, ids []uint32, shuffle bool) {
	n := len(ids)
	for i, id := range ids {
		putScale(raw, i, n, id, shuffle)
	}
}

// decodeIDs reads len(out) uint32 ids from raw.
func decodeIDs(out []uint32, raw []byte, shuffle bool) {
	n := len(out)
	for i := range out {
		out[i] = getScale(raw, i, n, shuffle)
	}
}

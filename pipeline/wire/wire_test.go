package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/strata-llm/strata/kernels"
)

// allCodecs is every valid codec.
func allCodecs() []Codec {
	var cs []Codec
	for d := range DType(len(dtypeNames)) {
		for c := range Compression(len(compressionNames)) {
			cs = append(cs, Codec{DType: d, Compression: c})
			if c == Zstd {
				cs = append(cs, Codec{DType: d, Compression: c, Shuffle: true})
			}
		}
	}
	return cs
}

// activations returns rows×dim values shaped like a transformer's residual
// stream between layers: mostly N(0, 1), plus a few fixed outlier channels
// (about one in 700, at least 2) of magnitude 20 to 100 with a fixed sign
// and ±10% jitter from row to row — the "massive activations" that every
// llama-family model shows in a handful of channels. The benchmarks and the
// accuracy tests use it, so that byte counts and Q8's error are those of
// real hidden states rather than of uniform noise.
func activations(seed uint64, rows, dim int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0x5712a7a))
	x := make([]float32, rows*dim)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	orng := rand.New(rand.NewPCG(0xc0ffee, uint64(dim))) // same channels for every row
	for range max(2, dim/700) {
		ch := orng.IntN(dim)
		mag := 20 + 80*orng.Float64()
		if orng.IntN(2) == 0 {
			mag = -mag
		}
		for r := range rows {
			x[r*dim+ch] = float32(mag * (0.9 + 0.2*rng.Float64()))
		}
	}
	return x
}

func header(kind Kind, c Codec, rows, cols int) *Header {
	h := &Header{Kind: kind, Step: 42, Rows: rows, Cols: cols, Codec: c}
	copy(h.Session[:], "session-0123456789")
	// Split the rows into up to three sequences.
	for i, left := 0, rows; left > 0; i++ {
		n := max(1, left/2)
		if i == 2 {
			n = left
		}
		h.Seqs = append(h.Seqs, Seq{ID: uint64(100 + i), Pos: 7 * i, N: n})
		left -= n
	}
	return h
}

func mustFrame(t testing.TB, h *Header, data []float32) []byte {
	t.Helper()
	b, err := AppendFrame(nil, h, data)
	if err != nil {
		t.Fatalf("AppendFrame %v: %v", h.Codec, err)
	}
	return b
}

// checkValues compares decoded values with the originals within the bound
// each dtype documents.
func checkValues(t testing.TB, d DType, cols int, in, out []float32) {
	t.Helper()
	if len(in) != len(out) {
		t.Fatalf("%v: %d values decoded, want %d", d, len(out), len(in))
	}
	var amax []float32 // Q8: per value, its block's largest magnitude
	if d == Q8 {
		amax = make([]float32, len(in))
		for b0 := 0; b0 < len(in); {
			r := b0 / cols
			b1 := min(b0+Q8Block, (r+1)*cols)
			var m float32
			for _, v := range in[b0:b1] {
				m = max(m, float32(math.Abs(float64(v))))
			}
			for i := b0; i < b1; i++ {
				amax[i] = m
			}
			b0 = b1
		}
	}
	for i, v := range in {
		got := out[i]
		switch d {
		case F32:
			if math.Float32bits(got) != math.Float32bits(v) {
				t.Fatalf("f32 value %d: %g (%#x), want %g (%#x)", i, got, math.Float32bits(got), v, math.Float32bits(v))
			}
		case F16:
			want := kernels.F16ToF32(kernels.F32ToF16(v))
			if math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("f16 value %d: %g, want %g", i, got, want)
			}
			if e := math.Abs(float64(got - v)); e > math.Max(math.Abs(float64(v))/2048, 1.0/(1<<25)) {
				t.Fatalf("f16 value %d: %g for %g, error %g beyond the bound", i, got, v, e)
			}
		case BF16:
			want := kernels.BF16ToF32(kernels.F32ToBF16(v))
			if math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("bf16 value %d: %g, want %g", i, got, want)
			}
			if e := math.Abs(float64(got - v)); e > math.Max(math.Abs(float64(v))/256, 0x1p-134) {
				t.Fatalf("bf16 value %d: %g for %g, error %g beyond the bound", i, got, v, e)
			}
		case Q8:
			bound := float64(amax[i])/254*(1+0x1p-15) + 0x1p-140
			if e := math.Abs(float64(got) - float64(v)); e > bound {
				t.Fatalf("q8 value %d: %g for %g, error %g > bound %g (block amax %g)", i, got, v, e, bound, amax[i])
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	shapes := []struct{ rows, cols int }{{1, 1}, {1, 7}, {3, 33}, {2, 64}, {16, 2048}}
	for _, c := range allCodecs() {
		for _, s := range shapes {
			for _, kind := range []Kind{Activations, Logits} {
				t.Run(c.String(), func(t *testing.T) {
					h := header(kind, c, s.rows, s.cols)
					in := activations(uint64(s.rows*s.cols), s.rows, s.cols)
					frame := mustFrame(t, h, in)
					var got Header
					out, err := DecodeFrame(frame, &got, nil)
					if err != nil {
						t.Fatalf("(%d, %d): %v", s.rows, s.cols, err)
					}
					if got.Kind != h.Kind || got.Session != h.Session || got.Step != h.Step || got.Rows != h.Rows ||
						got.Cols != h.Cols || got.Codec != h.Codec || !equalSeqs(got.Seqs, h.Seqs) {
						t.Fatalf("header %+v, want %+v", got, *h)
					}
					checkValues(t, c.DType, s.cols, in, out)

					// Appending to a non-empty buffer and decoding into a
					// reused one give the same.
					prefix := []byte("xyz")
					frame2 := mustFrame(t, h, in)
					framed, err := AppendFrame(prefix, h, in)
					if err != nil || !bytes.Equal(framed[3:], frame2) || string(framed[:3]) != "xyz" {
						t.Fatalf("AppendFrame to a prefix: %v", err)
					}
					out2, err := DecodeFrame(frame, &got, make([]float32, 5, len(in)+5))
					if err != nil || len(out2) != len(in) || !equalBits(out, out2) {
						t.Fatalf("decode into a reused buffer: %v", err)
					}
				})
			}
		}
	}
}

func equalSeqs(a, b []Seq) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestF32SpecialValues(t *testing.T) {
	special := []float32{
		0, float32(math.Copysign(0, -1)), 1, -1,
		math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32,
		math.Float32frombits(0x007fffff), math.Float32frombits(0x807fffff), // largest subnormals
		math.Float32frombits(0x00800000), // smallest normal
		math.MaxFloat32, -math.MaxFloat32, 65504, 65520, 1e-30, 3.14159265,
	}
	for _, c := range allCodecs() {
		if c.DType != F32 {
			continue
		}
		t.Run(c.String(), func(t *testing.T) {
			h := header(Activations, c, 1, len(special))
			var got Header
			out, err := DecodeFrame(mustFrame(t, h, special), &got, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkValues(t, F32, len(special), special, out)
		})
	}
	// The same values (less those F16 cannot hold) through F16 and BF16,
	// and all of them through Q8, within their bounds.
	for _, d := range []DType{F16, BF16, Q8} {
		var vals []float32
		for _, v := range special {
			if d == BF16 && math.Abs(float64(v)) > 3e38 || d == F16 && math.Abs(float64(v)) > 65504 {
				continue
			}
			vals = append(vals, v)
		}
		h := header(Activations, Codec{DType: d}, 1, len(vals))
		var got Header
		out, err := DecodeFrame(mustFrame(t, h, vals), &got, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkValues(t, d, len(vals), vals, out)
	}
}

func TestEncodeRefusesNonFinite(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	cases := []struct {
		d DType
		v float32
	}{
		{F32, nan}, {F32, inf}, {F32, -inf},
		{F16, nan}, {F16, inf}, {F16, 65520}, {F16, -1e6},
		{BF16, nan}, {BF16, -inf}, {BF16, math.MaxFloat32},
		{Q8, nan}, {Q8, inf},
	}
	for _, tc := range cases {
		for _, c := range []Codec{{DType: tc.d}, {DType: tc.d, Compression: Zstd, Shuffle: true}} {
			data := activations(1, 2, 40)
			data[45] = tc.v
			dst := []byte("keep")
			out, err := AppendFrame(dst, header(Activations, c, 2, 40), data)
			if !errors.Is(err, ErrNonFinite) {
				t.Errorf("%v with %g: err %v, want ErrNonFinite", c, tc.v, err)
			}
			if string(out) != "keep" {
				t.Errorf("%v with %g: dst changed to %q", c, tc.v, out)
			}
		}
	}
	// Top-k values too.
	h := header(TopK, Codec{DType: F16}, 1, 2)
	if _, err := AppendTopK(nil, h, []uint32{1, 2}, []float32{1, 7e4}); !errors.Is(err, ErrNonFinite) {
		t.Errorf("top-k f16 7e4: err %v, want ErrNonFinite", err)
	}
}

// reframe builds a frame of h whose uncompressed payload is raw, as a peer
// that encodes whatever it likes would.
func reframe(h *Header, raw []byte) []byte {
	dst := appendHeader(nil, h)
	dst, err := appendPayload(dst, 0, h, func(b []byte) error {
		copy(b, raw)
		return nil
	})
	if err != nil {
		panic(err)
	}
	return dst
}

// recrc rewrites the frame's checksum after a test edited it.
func recrc(f []byte) []byte {
	n := len(f) - crcSize
	binary.LittleEndian.PutUint32(f[n:], crc32.Checksum(f[:n], castagnoli))
	return f
}

func TestDecodeRefusesNonFinite(t *testing.T) {
	const rows, cols = 2, 40
	for _, c := range allCodecs() {
		h := header(Activations, c, rows, cols)
		size := valuesSize(c.DType, rows, cols)
		patches := []struct {
			name string
			edit func(raw []byte)
			want error
		}{}
		switch c.DType {
		case F32:
			for _, bits := range []uint32{0x7fc00000, 0x7f800000, 0xff800000, 0x7f800001} {
				patches = append(patches, struct {
					name string
					edit func([]byte)
					want error
				}{"bits", func(raw []byte) { putScale(raw, 45, rows*cols, bits, c.Shuffle) }, ErrNonFinite})
			}
		case F16, BF16:
			for _, bits := range []uint16{0x7c00, 0xfc00, 0x7e00, 0x7f80, 0xff81} {
				if c.DType == BF16 && bits&0x7f80 != 0x7f80 || c.DType == F16 && bits&0x7c00 != 0x7c00 {
					continue
				}
				patches = append(patches, struct {
					name string
					edit func([]byte)
					want error
				}{"bits", func(raw []byte) {
					n := rows * cols
					if c.Shuffle {
						raw[45], raw[n+45] = byte(bits), byte(bits>>8)
					} else {
						binary.LittleEndian.PutUint16(raw[90:], bits)
					}
				}, ErrNonFinite})
			}
		case Q8:
			ns := rows * q8Blocks(cols)
			patches = append(patches,
				struct {
					name string
					edit func([]byte)
					want error
				}{"nan scale", func(raw []byte) { putScale(raw, 1, ns, 0x7fc00000, c.Shuffle) }, ErrNonFinite},
				struct {
					name string
					edit func([]byte)
					want error
				}{"inf scale", func(raw []byte) { putScale(raw, 2, ns, 0x7f800000, c.Shuffle) }, ErrNonFinite},
				struct {
					name string
					edit func([]byte)
					want error
				}{"negative scale", func(raw []byte) { putScale(raw, 0, ns, 0xbf800000, c.Shuffle) }, ErrCorrupt},
				struct {
					name string
					edit func([]byte)
					want error
				}{"overflowing product", func(raw []byte) {
					putScale(raw, 3, ns, math.Float32bits(math.MaxFloat32/100), c.Shuffle)
					raw[4*ns+rows*cols-1] = 0x80 // -128 · MaxFloat32/100
				}, ErrNonFinite},
			)
		}
		for _, p := range patches {
			raw := make([]byte, size)
			if c.DType == Q8 {
				encodeQ8(raw, activations(3, rows, cols), rows, cols, c.Shuffle)
			} else {
				encodeValues(raw, activations(3, rows, cols), c.DType, c.Shuffle)
			}
			var got Header
			if _, err := DecodeFrame(reframe(h, raw), &got, nil); err != nil {
				t.Fatalf("%v: unpatched frame: %v", c, err)
			}
			p.edit(raw)
			if _, err := DecodeFrame(reframe(h, raw), &got, nil); !errors.Is(err, p.want) {
				t.Errorf("%v %s: err %v, want %v", c, p.name, err, p.want)
			}
		}
	}
	// Top-k values.
	h := header(TopK, Codec{DType: F32, Compression: S2}, 1, 2)
	raw := make([]byte, 16)
	binary.LittleEndian.PutUint32(raw[12:], 0x7fc00000)
	if _, _, err := DecodeTopK(reframe(h, raw), &Header{}, nil, nil); !errors.Is(err, ErrNonFinite) {
		t.Errorf("top-k NaN: err %v, want ErrNonFinite", err)
	}
}

func TestShapes(t *testing.T) {
	data := activations(1, 4, 8)
	bad := []struct {
		name string
		edit func(h *Header)
		data []float32
	}{
		{"seqs short of rows", func(h *Header) { h.Seqs[0].N-- }, data},
		{"seqs beyond rows", func(h *Header) { h.Seqs[0].N++ }, data},
		{"no seqs", func(h *Header) { h.Seqs = nil }, data},
		{"empty seq", func(h *Header) { h.Seqs = append(h.Seqs, Seq{ID: 9}) }, data},
		{"negative pos", func(h *Header) { h.Seqs[0].Pos = -1 }, data},
		{"pos beyond uint32", func(h *Header) { h.Seqs[0].Pos = int(min(1<<32, math.MaxInt)) }, data},
		{"data short", func(*Header) {}, data[:31]},
		{"data long", func(*Header) {}, append(data[:32:32], 1)},
		{"zero cols", func(h *Header) { h.Cols = 0 }, nil},
		{"kind topk", func(h *Header) { h.Kind = TopK }, data},
		{"kind zero", func(h *Header) { h.Kind = 0 }, data},
		{"bad dtype", func(h *Header) { h.Codec.DType = 9 }, data},
		{"bad compression", func(h *Header) { h.Codec.Compression = 9 }, data},
		{"shuffle alone", func(h *Header) { h.Codec.Shuffle = true }, data},
		{"shuffle with s2", func(h *Header) { h.Codec.Shuffle, h.Codec.Compression = true, S2 }, data},
	}
	for _, tc := range bad {
		if tc.name == "pos beyond uint32" && math.MaxInt == math.MaxInt32 {
			continue // every int is a uint32 position
		}
		h := header(Activations, Lossless, 4, 8)
		tc.edit(h)
		if _, err := AppendFrame(nil, h, tc.data); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", tc.name, err)
		}
	}
	h := header(Activations, Lossless, 4, 8)
	h.Rows, h.Cols, h.Seqs = 1<<30, 1<<30, []Seq{{N: 1 << 30}}
	if _, err := AppendFrame(nil, h, nil); !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrInvalid) {
		t.Errorf("huge shape: err %v", err)
	}

	// The same mistakes made by a peer, with a good checksum.
	good := mustFrame(t, header(Activations, Lossless, 4, 8), data)
	seq0 := headerSize // first sequence entry
	edits := []struct {
		name string
		edit func(f []byte)
		want error
	}{
		{"seqs short of rows", func(f []byte) { f[seq0+12]-- }, ErrCorrupt},
		{"seqs beyond rows", func(f []byte) { f[seq0+12]++ }, ErrCorrupt},
		{"zero rows", func(f []byte) { clear(f[40:44]) }, ErrCorrupt},
		{"zero cols", func(f []byte) { clear(f[44:48]) }, ErrCorrupt},
		{"rows beyond payload", func(f []byte) { f[40] = 8 }, ErrCorrupt},
		{"cols beyond payload", func(f []byte) { f[44] = 9 }, ErrCorrupt},
		{"no seqs", func(f []byte) { clear(f[48:52]) }, ErrCorrupt},
		{"more seqs", func(f []byte) { f[48]++ }, ErrCorrupt},
		{"payload length", func(f []byte) { f[52]-- }, ErrCorrupt},
		{"rows beyond limit", func(f []byte) { binary.LittleEndian.PutUint32(f[40:], 1<<20+1) }, ErrTooLarge},
		{"cols beyond limit", func(f []byte) { binary.LittleEndian.PutUint32(f[44:], 1<<21) }, ErrTooLarge},
		{"rows×cols beyond limit", func(f []byte) {
			binary.LittleEndian.PutUint32(f[40:], 1<<20)
			binary.LittleEndian.PutUint32(f[44:], 1<<20)
		}, ErrTooLarge},
		{"version", func(f []byte) { f[4] = 2 }, ErrVersion},
		{"kind 0", func(f []byte) { f[5] = 0 }, ErrVersion},
		{"kind 4", func(f []byte) { f[5] = 4 }, ErrVersion},
		{"dtype", func(f []byte) { f[6] = 4 }, ErrVersion},
		{"compression", func(f []byte) { f[7] = 3 }, ErrVersion},
		{"flags", func(f []byte) { f[12] = 2 }, ErrVersion},
		{"reserved", func(f []byte) { f[15] = 1 }, ErrVersion},
		{"shuffle uncompressed", func(f []byte) { f[12] = 1 }, ErrCorrupt},
		{"shuffle with s2", func(f []byte) { f[12], f[7] = 1, byte(S2) }, ErrCorrupt},
		{"kind topk", func(f []byte) { f[5] = byte(TopK) }, ErrCorrupt},
		{"magic", func(f []byte) { f[0] = 's' }, ErrCorrupt},
	}
	for _, tc := range edits {
		f := bytes.Clone(good)
		tc.edit(f)
		var got Header
		if _, err := DecodeFrame(recrc(f), &got, nil); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
	// A frame whose length field disagrees with its bytes, or is beyond
	// the limit.
	f := bytes.Clone(good)
	f[8]++
	if _, err := DecodeFrame(recrc(f), &Header{}, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("length field: err %v, want ErrCorrupt", err)
	}
	small := Limits{MaxFrameBytes: len(good) - 1}
	if _, err := small.DecodeFrame(good, &Header{}, nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("frame beyond MaxFrameBytes: err %v, want ErrTooLarge", err)
	}
	if _, err := (Limits{MaxRows: 3}).DecodeFrame(good, &Header{}, nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("rows beyond MaxRows: err %v, want ErrTooLarge", err)
	}
	if _, err := (Limits{MaxCols: 7}).DecodeFrame(good, &Header{}, nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("cols beyond MaxCols: err %v, want ErrTooLarge", err)
	}
	if _, err := (Limits{MaxFrameBytes: 4*8*4 - 1}).DecodeFrame(good, &Header{}, nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("values beyond MaxFrameBytes: err %v, want ErrTooLarge", err)
	}
	if _, err := (Limits{MaxRows: 4, MaxCols: 8, MaxFrameBytes: len(good)}).DecodeFrame(good, &Header{}, nil); err != nil {
		t.Errorf("frame at the limits: %v", err)
	}
}

// validFrames returns a frame of every codec and kind, small enough to
// mutate byte by byte.
func validFrames(t testing.TB) [][]byte {
	var frames [][]byte
	for _, c := range allCodecs() {
		for _, kind := range []Kind{Activations, TopK} {
			if kind == TopK && c.DType == Q8 {
				continue
			}
			frames = append(frames, sampleFrame(t, kind, c, 3, 40))
		}
	}
	return frames
}

func sampleFrame(t testing.TB, kind Kind, c Codec, rows, cols int) []byte {
	h := header(kind, c, rows, cols)
	vals := activations(uint64(rows*cols), rows, cols)
	if kind != TopK {
		return mustFrame(t, h, vals)
	}
	ids := make([]uint32, rows*cols)
	for i := range ids {
		ids[i] = uint32(i*7919) % 32000
	}
	f, err := AppendTopK(nil, h, ids, vals)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// decodeAny decodes f with the decoder for its kind, checking the
// invariants of any decoder result.
func decodeAny(t testing.TB, l Limits, f []byte) error {
	var h Header
	var err error
	var n int
	if len(f) > 5 && Kind(f[5]) == TopK {
		var ids []uint32
		var vals []float32
		ids, vals, err = l.DecodeTopK(f, &h, nil, nil)
		if err == nil && len(ids) != len(vals) {
			t.Fatalf("DecodeTopK: %d ids, %d values", len(ids), len(vals))
		}
		n = len(vals)
		for _, v := range vals {
			if !isFinite32(math.Float32bits(v)) {
				t.Fatalf("DecodeTopK returned %g", v)
			}
		}
	} else {
		var vals []float32
		vals, err = l.DecodeFrame(f, &h, nil)
		n = len(vals)
		for _, v := range vals {
			if !isFinite32(math.Float32bits(v)) {
				t.Fatalf("DecodeFrame returned %g", v)
			}
		}
	}
	if err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNonFinite) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrVersion) {
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		return err
	}
	if n != h.Rows*h.Cols {
		t.Fatalf("%d values for shape (%d, %d)", n, h.Rows, h.Cols)
	}
	sum := 0
	for _, s := range h.Seqs {
		sum += s.N
	}
	if sum != h.Rows {
		t.Fatalf("seqs hold %d rows of %d", sum, h.Rows)
	}
	return nil
}

func TestCorruptionRefused(t *testing.T) {
	for _, f := range validFrames(t) {
		if err := decodeAny(t, DefaultLimits, f); err != nil {
			t.Fatalf("valid frame: %v", err)
		}
		name := Codec{DType: DType(f[6]), Compression: Compression(f[7]), Shuffle: f[12] != 0}.String() + "/" + Kind(f[5]).String()
		// Every byte flipped, with the checksum left alone: refused.
		for i := range f {
			g := bytes.Clone(f)
			g[i] ^= 0xff
			if decodeAny(t, DefaultLimits, g) == nil {
				t.Fatalf("%s: byte %d flipped: accepted", name, i)
			}
			g[i] ^= 0x7f // a single bit
			if decodeAny(t, DefaultLimits, g) == nil {
				t.Fatalf("%s: bit 7 of byte %d flipped: accepted", name, i)
			}
		}
		// Every truncation, and a byte too many: refused.
		for n := range f {
			if decodeAny(t, DefaultLimits, f[:n]) == nil {
				t.Fatalf("%s: truncated to %d bytes: accepted", name, n)
			}
		}
		if decodeAny(t, DefaultLimits, append(bytes.Clone(f), 0)) == nil {
			t.Fatalf("%s: a byte appended: accepted", name)
		}
		// Every byte changed with the checksum made good again, as a buggy
		// or hostile peer would send it: no panic, and either a sentinel
		// error or a result that keeps the invariants.
		for i := range len(f) - crcSize {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				g := bytes.Clone(f)
				g[i] ^= x
				decodeAny(t, DefaultLimits, recrc(g))
			}
		}
	}
}

// zstdBomb returns a zstd frame that decodes to blocks×128 KiB of zeros
// from a few bytes a block, declaring contentSize when it is not 0, and
// else a window of 2^windowLog bytes.
func zstdBomb(contentSize uint64, windowLog byte, blocks int) []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd}
	if contentSize != 0 {
		b = append(b, 0xe0) // 8-byte content size, single segment
		b = binary.LittleEndian.AppendUint64(b, contentSize)
	} else {
		b = append(b, 0x00, (windowLog-10)<<3) // no content size
	}
	for i := range blocks {
		hdr := uint32(1<<1 | (128<<10)<<3) // RLE block of 128 KiB
		if i == blocks-1 {
			hdr |= 1 // last
		}
		b = append(b, byte(hdr), byte(hdr>>8), byte(hdr>>16), 0)
	}
	return b
}

func TestDecompressionBomb(t *testing.T) {
	const rows, cols = 1, 64
	h := header(Activations, Codec{DType: F32, Compression: Zstd}, rows, cols)
	// A good frame first, so that the decoder's own buffers exist.
	if _, err := DecodeFrame(mustFrame(t, h, activations(1, rows, cols)), &Header{}, nil); err != nil {
		t.Fatal(err)
	}
	withPayload := func(h *Header, payload []byte) []byte {
		dst := appendHeader(nil, h)
		dst = append(dst, payload...)
		binary.LittleEndian.PutUint32(dst[8:], uint32(len(dst)+crcSize))
		binary.LittleEndian.PutUint32(dst[52:], uint32(len(payload)))
		return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst, castagnoli))
	}
	s2h := header(Activations, Codec{DType: F32, Compression: S2}, rows, cols)
	s2claim := binary.AppendUvarint(nil, 1<<31)
	bombs := []struct {
		name  string
		frame []byte
	}{
		{"zstd claims 1 TiB", withPayload(h, zstdBomb(1<<40, 0, 2))},
		{"zstd claims 256 MiB, holds it", withPayload(h, zstdBomb(256<<20, 0, 2048))},
		{"zstd 256 MiB without a size", withPayload(h, zstdBomb(0, 17, 2048))},
		{"zstd 256 MiB in a 256 MiB window", withPayload(h, zstdBomb(0, 28, 2048))},
		{"zstd claims one byte more", withPayload(h, zstdBomb(rows*cols*4+1, 0, 1))},
		{"s2 claims 2 GiB", withPayload(s2h, append(s2claim, 0, 0, 0))},
		{"s2 claims one byte more", withPayload(s2h, s2Encode(make([]byte, rows*cols*4+1)))},
		{"s2 claims one byte less", withPayload(s2h, s2Encode(make([]byte, rows*cols*4-1)))},
	}
	for _, b := range bombs {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := DecodeFrame(b.frame, &Header{}, nil)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v, want ErrCorrupt", b.name, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("%s: %d bytes allocated to refuse it", b.name, n)
		}
	}
}

func s2Encode(b []byte) []byte { return compress(nil, b, S2, nil) }

func TestTopK(t *testing.T) {
	for _, c := range allCodecs() {
		if c.DType == Q8 {
			if _, err := AppendTopK(nil, header(TopK, c, 1, 1), []uint32{1}, []float32{1}); !errors.Is(err, ErrInvalid) {
				t.Errorf("q8 top-k: err %v, want ErrInvalid", err)
			}
			continue
		}
		const rows, k = 5, 40
		h := header(TopK, c, rows, k)
		vals := activations(7, rows, k)
		ids := make([]uint32, rows*k)
		for i := range ids {
			ids[i] = uint32(i) * 2654435761 % 151936
		}
		ids[3] = math.MaxUint32
		f, err := AppendTopK(nil, h, ids, vals)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		var got Header
		gids, gvals, err := DecodeTopK(f, &got, make([]uint32, 0, 1), nil)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		if got.Kind != TopK || got.Rows != rows || got.Cols != k || got.Codec != c || !equalSeqs(got.Seqs, h.Seqs) {
			t.Fatalf("%v: header %+v", c, got)
		}
		for i := range ids {
			if gids[i] != ids[i] {
				t.Fatalf("%v: id %d: %d, want %d", c, i, gids[i], ids[i])
			}
		}
		checkValues(t, c.DType, k, vals, gvals)
		if _, err := DecodeFrame(f, &got, nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%v: DecodeFrame of a top-k frame: err %v, want ErrCorrupt", c, err)
		}
		if err := DecodeHeader(f, &got); err != nil || got.Kind != TopK {
			t.Errorf("%v: DecodeHeader: %v, kind %v", c, err, got.Kind)
		}
	}
	act := sampleFrame(t, Activations, Compact, 1, 8)
	if _, _, err := DecodeTopK(act, &Header{}, nil, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("DecodeTopK of an activations frame: err %v, want ErrCorrupt", err)
	}
	h := header(TopK, Lossless, 2, 2)
	if _, err := AppendTopK(nil, h, []uint32{1, 2, 3}, []float32{1, 2, 3, 4}); !errors.Is(err, ErrInvalid) {
		t.Errorf("top-k with 3 ids for 4: err %v, want ErrInvalid", err)
	}
	if _, err := AppendFrame(nil, h, []float32{1, 2, 3, 4}); !errors.Is(err, ErrInvalid) {
		t.Errorf("AppendFrame of a top-k header: err %v, want ErrInvalid", err)
	}
}

func TestParseCodec(t *testing.T) {
	good := []struct {
		in   string
		want Codec
		str  string
	}{
		{"f32", Lossless, "f32"},
		{"F16", Codec{DType: F16}, "f16"},
		{"bf16+zstd", Codec{DType: BF16, Compression: Zstd}, "bf16+zstd"},
		{"f16+zstd+shuffle", Codec{DType: F16, Compression: Zstd, Shuffle: true}, "f16+shuffle+zstd"},
		{" q8+none ", Codec{DType: Q8}, "q8"},
		{"q8+s2", Codec{DType: Q8, Compression: S2}, "q8+s2"},
	}
	for _, tc := range good {
		c, err := ParseCodec(tc.in)
		if err != nil || c != tc.want || c.String() != tc.str {
			t.Errorf("ParseCodec(%q) = %v (%q), %v; want %v (%q)", tc.in, c, c.String(), err, tc.want, tc.str)
		}
		var u Codec
		if text, err := c.MarshalText(); err != nil || u.UnmarshalText(text) != nil || u != c {
			t.Errorf("text round trip of %v: %q, %v, %v", c, text, err, u)
		}
	}
	for _, c := range allCodecs() {
		if p, err := ParseCodec(c.String()); err != nil || p != c {
			t.Errorf("ParseCodec(%q) = %v, %v", c.String(), p, err)
		}
	}
	for _, in := range []string{"", "f64", "f16+", "f16+gzip", "f16+zstd+s2", "f16+shuffle", "f32+shuffle+s2", "f16+shuffle+shuffle+zstd", "zstd+f16", "f16+zstd+zstd"} {
		if c, err := ParseCodec(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseCodec(%q) = %v, %v; want ErrInvalid", in, c, err)
		}
	}
	var u Codec
	if err := u.UnmarshalText([]byte("f8")); err == nil {
		t.Error("UnmarshalText(f8) succeeded")
	}
	if _, err := (Codec{DType: 7}).MarshalText(); err == nil {
		t.Error("MarshalText of dtype 7 succeeded")
	}
	if s := (Codec{DType: 7, Compression: 9}).String(); s != "dtype(7)+compression(9)" {
		t.Errorf("String of an unknown codec: %q", s)
	}
	if s := Kind(9).String(); s != "kind(9)" {
		t.Errorf("Kind(9).String() = %q", s)
	}
	if err := Compact.Validate(); err != nil {
		t.Errorf("Compact: %v", err)
	}
}

func TestReadFrame(t *testing.T) {
	var stream bytes.Buffer
	var frames [][]byte
	for _, c := range []Codec{Lossless, Default, {DType: BF16, Compression: Zstd, Shuffle: true}} {
		f := sampleFrame(t, Activations, c, 16, 2048) // beyond one read chunk
		frames = append(frames, f)
		stream.Write(f)
	}
	frames = append(frames, sampleFrame(t, TopK, Default, 2, 4))
	stream.Write(frames[len(frames)-1])
	whole := bytes.Clone(stream.Bytes())

	var buf []byte
	for i, want := range frames {
		var err error
		buf, err = ReadFrame(&stream, buf, 0)
		if err != nil || !bytes.Equal(buf, want) {
			t.Fatalf("frame %d: %d bytes, %v", i, len(buf), err)
		}
		if err := decodeAny(t, DefaultLimits, buf); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if _, err := ReadFrame(&stream, buf, 0); err != io.EOF {
		t.Fatalf("at the end: err %v, want io.EOF", err)
	}

	// Truncated anywhere within a frame.
	for _, n := range []int{1, prefixSize - 1, prefixSize, 100, len(frames[0]) - 1} {
		if _, err := ReadFrame(bytes.NewReader(whole[:n]), nil, 0); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("truncated to %d bytes: err %v, want io.ErrUnexpectedEOF", n, err)
		}
	}
	// Beyond the limit: refused before the body is read.
	r := bytes.NewReader(whole)
	if _, err := ReadFrame(r, nil, len(frames[0])-1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("beyond the limit: err %v, want ErrTooLarge", err)
	}
	if r.Len() != len(whole)-prefixSize {
		t.Errorf("read %d bytes of a refused frame", len(whole)-r.Len())
	}
	bad := bytes.Clone(whole[:prefixSize])
	bad[0] = 'X'
	if _, err := ReadFrame(bytes.NewReader(bad), nil, 0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("bad magic: err %v, want ErrCorrupt", err)
	}
	bad = bytes.Clone(whole[:prefixSize])
	bad[4] = 9
	if _, err := ReadFrame(bytes.NewReader(bad), nil, 0); !errors.Is(err, ErrVersion) {
		t.Errorf("version 9: err %v, want ErrVersion", err)
	}
	bad = bytes.Clone(whole[:prefixSize])
	binary.LittleEndian.PutUint32(bad[8:], 20)
	if _, err := ReadFrame(bytes.NewReader(bad), nil, 0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("length 20: err %v, want ErrCorrupt", err)
	}
	// A peer that claims 256 MiB and sends 1000 bytes holds little memory.
	claim := bytes.Clone(whole[:prefixSize])
	binary.LittleEndian.PutUint32(claim[8:], 256<<20)
	got, err := ReadFrame(io.MultiReader(bytes.NewReader(claim), bytes.NewReader(make([]byte, 1000))), nil, 0)
	if !errors.Is(err, io.ErrUnexpectedEOF) || cap(got) > 2*readChunk {
		t.Errorf("stalled claim of 256 MiB: err %v, buffer of %d bytes", err, cap(got))
	}
}

func TestAllocations(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts")
	}
	const rows, cols = 4, 2048
	data := activations(5, rows, cols)
	for _, c := range allCodecs() {
		h := header(Activations, c, rows, cols)
		buf := mustFrame(t, h, data)
		out := make([]float32, rows*cols)
		var got Header
		got.Seqs = make([]Seq, 0, 4)
		run := func() {
			var err error
			buf, err = AppendFrame(buf[:0], h, data)
			if err != nil {
				t.Fatal(err)
			}
			out, err = DecodeFrame(buf, &got, out)
			if err != nil {
				t.Fatal(err)
			}
		}
		// Warm up every pooled zstd coder (one a P), which allocate their
		// tables on first use with a kind of data.
		for range 8 * runtime.GOMAXPROCS(0) {
			run()
		}
		allocs := testing.AllocsPerRun(20, run)
		if allocs > 0 {
			t.Errorf("%v: %.1f allocations per encode and decode, want 0", c, allocs)
		}
	}
}

func TestConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i, c := range allCodecs() {
				h := header(Activations, c, 2, 256)
				in := activations(uint64(g*100+i), 2, 256)
				f, err := AppendFrame(nil, h, in)
				if err != nil {
					t.Error(err)
					return
				}
				out, err := DecodeFrame(f, &Header{}, nil)
				if err != nil {
					t.Error(err)
					return
				}
				checkValues(t, c.DType, 256, in, out)
			}
		})
	}
	wg.Wait()
}

// TestHalfFastPaths checks the F16 encoder's and decoder's inlined paths
// against kernels' conversions: every half, and float32s in steps that
// touch every exponent, around every rounding boundary of the normal range.
func TestHalfFastPaths(t *testing.T) {
	out := make([]float32, 1)
	raw := make([]byte, 2)
	for h := range 1 << 16 {
		binary.LittleEndian.PutUint16(raw, uint16(h))
		bad := decodeValues(out, raw, F16, false)
		want := kernels.F16ToF32(uint16(h))
		if h&0x7c00 == 0x7c00 {
			if bad.index != 0 {
				t.Fatalf("half %#04x: accepted", h)
			}
			continue
		}
		if bad.index >= 0 || math.Float32bits(out[0]) != math.Float32bits(want) {
			t.Fatalf("half %#04x: %g, want %g", h, out[0], want)
		}
	}
	check := func(b uint32) {
		v := math.Float32frombits(b)
		want := kernels.F32ToF16(v)
		bad := encodeValues(raw, []float32{v}, F16, false)
		if want&0x7c00 == 0x7c00 {
			if bad.index != 0 {
				t.Fatalf("float32 %#08x (%g): accepted", b, v)
			}
			return
		}
		if got := binary.LittleEndian.Uint16(raw); bad.index >= 0 || got != want {
			t.Fatalf("float32 %#08x (%g): half %#04x, want %#04x", b, v, got, want)
		}
	}
	for b := uint64(0); b < 1<<32; b += 65521 {
		check(uint32(b))
	}
	for e := uint32(0); e < 256; e++ {
		for _, m := range []uint32{0, 1, 0xfff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3000, 0x7fefff, 0x7ff000, 0x7fffff} {
			check(e<<23 | m)
			check(1<<31 | e<<23 | m)
		}
	}
}

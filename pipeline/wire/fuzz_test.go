package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/strata-llm/strata/kernels"
)

// FuzzDecodeFrame feeds arbitrary bytes to the decoders, as they are and
// with a good length field and checksum (as a buggy or hostile peer would
// wrap garbage), so that the fuzzer gets past the checksum to the header and
// payload checks: the decoders must never panic, must refuse with a
// sentinel error or return values that keep the invariants, and a frame
// they accept uncompressed (outside Q8) must be exactly the frame that
// re-encoding its result gives: the encoding is canonical.
func FuzzDecodeFrame(f *testing.F) {
	for _, fr := range validFrames(f) {
		f.Add(fr)
	}
	f.Add(sampleFrame(f, Logits, Codec{DType: Q8, Compression: Zstd}, 2, 70))
	f.Add([]byte(magic))
	limits := Limits{MaxFrameBytes: 1 << 20, MaxRows: 64, MaxCols: 4096}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, limits, b)
		if len(b) >= MinFrameSize && len(b) <= limits.MaxFrameBytes {
			g := bytes.Clone(b)
			binary.LittleEndian.PutUint32(g[8:], uint32(len(g)))
			checkDecode(t, limits, recrc(g))
		}
	})
}

// checkDecode decodes b with every decoder and checks what they return.
func checkDecode(t *testing.T, limits Limits, b []byte) {
	var h Header
	herr := limits.DecodeHeader(b, &h)
	err := decodeAny(t, limits, b)
	if (herr == nil) != (err == nil) && !errors.Is(err, ErrNonFinite) && !errors.Is(err, ErrCorrupt) {
		t.Fatalf("DecodeHeader: %v, decoder: %v", herr, err)
	}
	if err != nil || h.Codec.Compression != None || h.Codec.DType == Q8 {
		return
	}
	var again []byte
	if h.Kind == TopK {
		ids, vals, err := limits.DecodeTopK(b, &h, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		again, err = AppendTopK(nil, &h, ids, vals)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	} else {
		vals, err := limits.DecodeFrame(b, &h, nil)
		if err != nil {
			t.Fatal(err)
		}
		again, err = AppendFrame(nil, &h, vals)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	}
	if !bytes.Equal(again, b) {
		t.Fatalf("re-encoded frame differs:\n%x\n%x", again, b)
	}
}

// FuzzRoundTrip encodes arbitrary values with every codec: the encoder
// refuses exactly the values its dtype cannot carry, and what it encodes
// decodes within the dtype's bound (F32 bit for bit).
func FuzzRoundTrip(f *testing.F) {
	codecs := allCodecs()
	for i := range codecs {
		vals := make([]byte, 0, 4*70)
		for _, v := range activations(uint64(i), 1, 70) {
			vals = binary.LittleEndian.AppendUint32(vals, math.Float32bits(v))
		}
		f.Add(uint8(i), false, uint8(1), uint16(70), vals)
		f.Add(uint8(i), true, uint8(3), uint16(5), vals)
	}
	f.Add(uint8(0), false, uint8(0), uint16(2), []byte{0, 0, 0x80, 0x7f, 1, 0, 0, 0x80}) // +Inf, -subnormal
	f.Fuzz(func(t *testing.T, ci uint8, topk bool, rows8 uint8, cols16 uint16, raw []byte) {
		c := codecs[int(ci)%len(codecs)]
		rows, cols := 1+int(rows8%8), 1+int(cols16%300)
		n := rows * cols
		data := make([]float32, n)
		ids := make([]uint32, n)
		if len(raw) >= 4 {
			for i := range data {
				j := 4 * i % (len(raw) - len(raw)%4)
				ids[i] = binary.LittleEndian.Uint32(raw[j:])
				data[i] = math.Float32frombits(ids[i])
			}
		}
		if topk && c.DType == Q8 {
			c.DType = F16
		}
		representable := true
		for _, v := range data {
			switch c.DType {
			case F16:
				representable = representable && kernels.F32ToF16(v)&0x7c00 != 0x7c00
			case BF16:
				representable = representable && kernels.F32ToBF16(v)&0x7f80 != 0x7f80
			default:
				representable = representable && isFinite32(math.Float32bits(v))
			}
		}
		kind := Activations
		if topk {
			kind = TopK
		}
		h := header(kind, c, rows, cols)
		var frame []byte
		var err error
		if topk {
			frame, err = AppendTopK(nil, h, ids, data)
		} else {
			frame, err = AppendFrame(nil, h, data)
		}
		if !representable {
			if !errors.Is(err, ErrNonFinite) {
				t.Fatalf("%v: err %v for values it cannot carry, want ErrNonFinite", c, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		var got Header
		var out []float32
		if topk {
			var gids []uint32
			gids, out, err = DecodeTopK(frame, &got, nil, nil)
			if err == nil {
				for i := range ids {
					if gids[i] != ids[i] {
						t.Fatalf("%v: id %d: %d, want %d", c, i, gids[i], ids[i])
					}
				}
			}
		} else {
			out, err = DecodeFrame(frame, &got, nil)
		}
		if err != nil {
			t.Fatalf("%v: decode: %v", c, err)
		}
		checkValues(t, c.DType, cols, data, out)
	})
}

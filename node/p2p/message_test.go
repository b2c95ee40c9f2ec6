package p2p

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/strata-llm/strata/pipeline"
	"github.com/strata-llm/strata/pipeline/wire"
)

// testBatch is a batch of two sequences, three rows of dim activations,
// with logits of vocab columns for the second when vocab > 0.
func testBatch(dim, vocab int) *pipeline.Batch {
	b := &pipeline.Batch{Num: 7}
	b.AddSeq(pipeline.Seq{ID: 11, Pos: 0, Open: true}, []int{1, 2})
	b.AddSeq(pipeline.Seq{ID: 12, Pos: 5, Logits: true}, []int{3})
	b.AddSeq(pipeline.Seq{ID: 14, Pos: 4, Open: true, From: 9}, []int{4})
	for i := range 4 * dim {
		b.X = append(b.X, float32(i)*0.25-1)
	}
	if vocab > 0 {
		b.Vocab = vocab
		for i := range vocab {
			b.Logits = append(b.Logits, float32(i)-0.5)
		}
		b.X = b.X[:0]
	}
	b.Failed = append(b.Failed, pipeline.SeqError{ID: 13, Stage: "layers 0-2", Err: pipeline.ErrNoSession})
	return b
}

func encodeBatch(t testing.TB, b *pipeline.Batch) []byte {
	t.Helper()
	var c coder
	msg, err := appendMessage(nil, msgResult, func(d []byte) ([]byte, error) { return c.appendBatch(d, b, 0) })
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestBatchRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name       string
		dim, vocab int
	}{{"activations", 8, 0}, {"logits", 8, 5}} {
		t.Run(tc.name, func(t *testing.T) {
			in := testBatch(tc.dim, tc.vocab)
			msg := encodeBatch(t, in)
			typ, body, _, err := readMessage(bytes.NewReader(msg), nil, 1<<20)
			if err != nil || typ != msgResult {
				t.Fatalf("readMessage: %v, %v", typ, err)
			}
			var c coder
			out := &pipeline.Batch{}
			if err := c.decodeBatch(body, out, func(e error) error { return e }); err != nil {
				t.Fatal(err)
			}
			if out.Num != in.Num || !slices.Equal(out.Seqs, in.Seqs) || !slices.Equal(out.Tokens, in.Tokens) ||
				!slices.Equal(out.X, in.X) || !slices.Equal(out.Logits, in.Logits) || out.Vocab != in.Vocab {
				t.Errorf("decoded %+v, want %+v", out, in)
			}
			if len(out.Failed) != 1 || out.Failed[0].ID != 13 || !errors.Is(out.Failed[0].Err, pipeline.ErrNoSession) {
				t.Errorf("failures %v", out.Failed)
			}
		})
	}
}

func TestReadMessageRefuses(t *testing.T) {
	good := encodeBatch(t, testBatch(4, 0))
	flip := func(i int) []byte { b := slices.Clone(good); b[i] ^= 0x40; return b }
	for _, tc := range []struct {
		name string
		msg  []byte
		want error
	}{
		{"magic", flip(0), errMessage},
		{"version", flip(4), errMessage},
		{"type", flip(5), errMessage},
		{"reserved", flip(6), errMessage},
		{"checksum", flip(len(good) - 1), errMessage},
		{"too large", good, errMessage},
		{"cut", good[:len(good)-3], io.ErrUnexpectedEOF},
		{"empty", nil, io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit := 1 << 20
			if tc.name == "too large" {
				limit = 10
			}
			_, _, _, err := readMessage(bytes.NewReader(tc.msg), nil, limit)
			if !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDecodeBatchRefusesMismatchedFrame(t *testing.T) {
	b := testBatch(4, 0)
	var c coder
	body, err := c.appendBatch(nil, b, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Claim one row fewer for the second sequence: the frame no longer
	// matches the batch.
	bad := slices.Clone(body)
	bad[batchFixed+seqEntry+12]++ // rows of the second sequence
	if err := c.decodeBatch(bad, &pipeline.Batch{}, func(e error) error { return e }); err == nil {
		t.Error("decoded a batch whose frame does not match its sequences")
	}
	// A corrupt frame byte fails the frame's CRC.
	bad = slices.Clone(body)
	bad[len(bad)-10] ^= 1
	if err := c.decodeBatch(bad, &pipeline.Batch{}, func(e error) error { return e }); !errors.Is(err, wire.ErrCorrupt) {
		t.Errorf("corrupt frame: %v, want wire.ErrCorrupt", err)
	}
}

// FuzzReadMessage feeds arbitrary bytes to the message reader and the
// body decoders: they must refuse or accept without panicking, and what
// they accept must encode back to a body that decodes the same.
func FuzzReadMessage(f *testing.F) {
	f.Add(encodeBatch(f, testBatch(4, 0)))
	f.Add(encodeBatch(f, testBatch(2, 3)))
	end, _ := appendMessage(nil, msgEnd, func(d []byte) ([]byte, error) { return appendEnd(d, []uint64{1, 2}), nil })
	f.Add(end)
	info, _ := appendMessage(nil, msgInfo, func(d []byte) ([]byte, error) {
		return appendInfo(d, stageInfo{lo: 0, hi: 3, name: "layers 0-3", epoch: 7}, false), nil
	})
	f.Add(info)
	info, _ = appendMessage(nil, msgInfo, func(d []byte) ([]byte, error) {
		return appendInfo(d, stageInfo{lo: 0, hi: 3, name: "layers 0-3", features: infoForks}, true), nil
	})
	f.Add(info)

	f.Add([]byte("STSG\x01\x03\x00\x00\xff\xff\xff\xff\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, body, _, err := readMessage(bytes.NewReader(data), nil, 1<<20)
		if err != nil {
			return
		}
		switch typ {
		case msgForward, msgResult:
			var c coder
			c.limits = wire.Limits{MaxFrameBytes: 1 << 20, MaxRows: 1 << 12, MaxCols: 1 << 12}
			b := &pipeline.Batch{}
			if err := c.decodeBatch(body, b, func(e error) error { return e }); err != nil {
				return
			}
			again, err := c.appendBatch(nil, b, 0)
			if err != nil {
				return // a batch without tokens or frames may not re-encode alike
			}
			b2 := &pipeline.Batch{}
			if err := c.decodeBatch(again, b2, func(e error) error { return e }); err != nil {
				t.Fatalf("re-encoded batch refused: %v", err)
			}
			if !slices.Equal(b.Seqs, b2.Seqs) || !slices.Equal(b.Tokens, b2.Tokens) || len(b.Failed) != len(b2.Failed) ||
				!slices.Equal(b.Logits, b2.Logits) || b.Vocab == 0 && !slices.Equal(b.X, b2.X) {
				t.Fatalf("round trip differs: %+v vs %+v", b, b2)
			}
		case msgEnd:
			decodeEnd(body, nil)
		case msgInfo:
			if in, err := decodeInfo(body); err == nil {
				again, err := decodeInfo(appendInfo(nil, in, in.features != 0))
				if err != nil || again != in {
					t.Fatalf("info %+v re-encodes to %+v (%v)", in, again, err)
				}
			}
		case msgError:
			decodeError(body)
		}
	})
}

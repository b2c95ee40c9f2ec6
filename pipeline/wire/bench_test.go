package wire

import (
	"fmt"
	"math"
	"testing"
)

// BenchmarkCodec encodes and decodes one frame of activations per
// iteration with every codec, at the hidden sizes of 1-3B (2048) and 7-8B
// (4096) models, for a decode step of one token (rows=1) and a micro-batch
// of 16. The values are residual-stream-like (see activations): N(0, 1)
// with a few outlier channels of magnitude 20-100.
//
// Metrics: B/token, the frame's bytes per token on one hop, header
// included; µs/token, encode plus decode time per token; relerr, the
// decoded values' RMS error relative to the values' RMS.
//
// Byte shuffling, measured with these activations (B/token at dim 4096;
// the uncompressed frame is 16460 B for f32, 8268 for f16 and bf16, 4684
// for q8, at rows=1, and 69 B/token less at rows=16):
//
//	              rows=1            rows=16
//	codec         plain  shuffled   plain  shuffled
//	f32+zstd      15242  13860      15151  13883
//	f16+zstd       7671   7077       7540   6941
//	bf16+zstd      6500   5649       6376   5691
//	q8+zstd        4694   4626       4616   4485
//	f32+s2        16466  16466      16391  16391
//	f16+s2         8273   8273       8199   8199
//	bf16+s2        8273   7567       8199   8199
//	q8+s2          4689   4689       4615   4615
//
// Shuffling (with each byte plane its own zstd frame) takes 8-13% off what
// zstd makes of f32, f16 and bf16, 1.5-3% for q8 (only its scales are
// multi-byte). S2 finds nothing to match in activations, shuffled or not
// (its one gain, bf16 at rows=1, vanishes at rows=16), and has no entropy
// coder for the exponents: so Shuffle is kept for zstd only. Without the
// per-plane frames, zstd gained from shuffling 0% on f16 and 5% on f32 at
// rows=1; without WithAllLitEntropyCompression it compressed nothing.
func BenchmarkCodec(b *testing.B) {
	for _, c := range allCodecs() {
		for _, dim := range []int{2048, 4096} {
			for _, rows := range []int{1, 16} {
				b.Run(fmt.Sprintf("codec=%v/dim=%d/rows=%d", c, dim, rows), func(b *testing.B) {
					benchCodec(b, c, rows, dim)
				})
			}
		}
	}
}

func benchCodec(b *testing.B, c Codec, rows, dim int) {
	data := activations(uint64(dim), rows, dim)
	h := header(Activations, c, rows, dim)
	buf, err := AppendFrame(nil, h, data)
	if err != nil {
		b.Fatal(err)
	}
	var got Header
	out, err := DecodeFrame(buf, &got, nil)
	if err != nil {
		b.Fatal(err)
	}
	var se, ss float64
	for i, v := range data {
		d := float64(out[i]) - float64(v)
		se += d * d
		ss += float64(v) * float64(v)
	}
	b.SetBytes(int64(rows * dim * 4))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendFrame(buf[:0], h, data)
		out, _ = DecodeFrame(buf, &got, out)
	}
	b.ReportMetric(float64(len(buf))/float64(rows), "B/token")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N*rows), "µs/token")
	b.ReportMetric(math.Sqrt(se/ss), "relerr")
}

// BenchmarkTopK encodes and decodes the top 40 candidates of 16 rows.
func BenchmarkTopK(b *testing.B) {
	for _, c := range []Codec{Lossless, Compact, {DType: F16, Compression: Zstd, Shuffle: true}} {
		b.Run("codec="+c.String(), func(b *testing.B) {
			const rows, k = 16, 40
			h := header(TopK, c, rows, k)
			vals := activations(1, rows, k)
			ids := make([]uint32, rows*k)
			for i := range ids {
				ids[i] = uint32(i) * 2654435761 % 128256
			}
			buf, err := AppendTopK(nil, h, ids, vals)
			if err != nil {
				b.Fatal(err)
			}
			var got Header
			gids, gvals := make([]uint32, rows*k), make([]float32, rows*k)
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = AppendTopK(buf[:0], h, ids, vals)
				gids, gvals, _ = DecodeTopK(buf, &got, gids, gvals)
			}
			b.ReportMetric(float64(len(buf))/rows, "B/token")
		})
	}
}

package tokenizer

import (
	"strings"
	"testing"
)

// benchText is a few KB of plain English prose.
var benchText = strings.Repeat(`It was the best of times, it was the worst of times, it was the age of
wisdom, it was the age of foolishness, it was the epoch of belief, it was the
epoch of incredulity, it was the season of Light, it was the season of
Darkness, it was the spring of hope, it was the winter of despair, we had
everything before us, we had nothing before us, we were all going direct to
Heaven, we were all going direct the other way - in short, the period was so
far like the present period, that some of its noisiest authorities insisted on
its being received, for good or for evil, in the superlative degree of
comparison only. There were 2 kings and 1 queen in 1775.
`, 6)

func BenchmarkEncode(b *testing.B) {
	for _, rel := range []string{vocabSPM, vocabGPT2} {
		b.Run(strings.TrimSuffix(strings.TrimPrefix(rel, "tokenizer/ggml-vocab-"), ".gguf"), func(b *testing.B) {
			tok := load(b, rel)
			n := len(tok.Encode(benchText, false, false))
			b.SetBytes(int64(len(benchText)))
			b.ReportAllocs()
			for b.Loop() {
				tok.Encode(benchText, false, false)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}

// BenchmarkEncodeLong encodes 100 KB inputs of the shapes that would expose
// quadratic behaviour.
func BenchmarkEncodeLong(b *testing.B) {
	for _, rel := range []string{vocabSPM, vocabGPT2} {
		for name, s := range longInputs() {
			b.Run(strings.TrimSuffix(strings.TrimPrefix(rel, "tokenizer/ggml-vocab-"), ".gguf")+"/"+name, func(b *testing.B) {
				tok := load(b, rel)
				b.SetBytes(int64(len(s)))
				b.ReportAllocs()
				for b.Loop() {
					tok.Encode(s, false, true)
				}
			})
		}
	}
}

func BenchmarkStreamDecode(b *testing.B) {
	tok := load(b, vocabGPT2)
	ids := tok.Encode(benchText, false, false)
	b.ReportAllocs()
	for b.Loop() {
		d := tok.NewStreamDecoder(true)
		for _, id := range ids {
			d.Add(id)
		}
		d.Flush()
	}
	b.ReportMetric(float64(len(ids))*float64(b.N)/b.Elapsed().Seconds(), "tok/s")
}

package weights

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-llm/strata/kernels"
	"github.com/strata-llm/strata/pipeline/gguf"
)

// synthModel writes a GGUF file of layers blocks of two 1024x1024 f32
// matrices (8 MiB a block) of random bytes.
func synthModel(tb testing.TB, layers int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "synth.gguf")
	rng := rand.NewChaCha8([32]byte{7})
	var ts []gguf.WriteTensor
	for l := range layers {
		for _, name := range []string{"attn_q", "ffn_up"} {
			b := make([]byte, 1024*1024*4)
			rng.Read(b)
			ts = append(ts, gguf.WriteTensor{Name: fmt.Sprintf("blk.%d.%s.weight", l, name), Type: kernels.F32, Dims: []uint64{1024, 1024}, Data: b})
		}
	}
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: gguf.Value{Type: gguf.TypeString, V: "llama"}},
		{Key: "llama.block_count", Value: gguf.Value{Type: gguf.TypeUint32, V: uint32(layers)}},
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := gguf.Write(f, kvs, ts); err != nil {
		tb.Fatal(err)
	}
	return path
}

// BenchmarkFetch fetches every tensor of a 50 MB model from two peers over
// loopback TCP (Noise, yamux) into a slice, fsync included, and reports
// MB/s beside a plain copy of the file (io.Copy and fsync) in the same run.
func BenchmarkFetch(b *testing.B) {
	md := newModel(b, synthModel(b, 6), 0)
	a := newHolder(b, md.path, md.digest, ServerOptions{})
	c := newHolder(b, md.path, md.digest, ServerOptions{})
	var names []string
	for _, t := range md.m.Tensors {
		names = append(names, t.Name)
	}
	total := md.bytesOf(names)
	cfg := md.fetchConfig(b, newHost(b), names, a, c)
	dir := b.TempDir()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		cfg.Dst = filepath.Join(dir, fmt.Sprintf("slice-%d.gguf", i))
		i++
		st, err := Fetch(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		if st.Bytes != total {
			b.Fatalf("fetched %d bytes, want %d", st.Bytes, total)
		}
		os.Remove(cfg.Dst)
		os.Remove(HeaderPath(cfg.Dst))
	}
	b.ReportMetric(float64(total)*float64(b.N)/1e6/b.Elapsed().Seconds(), "MB/s")

	start := time.Now()
	for i := range b.N {
		copyFile(b, md.path, filepath.Join(dir, fmt.Sprintf("copy-%d", i)))
	}
	b.ReportMetric(float64(md.m.FileSize)*float64(b.N)/1e6/time.Since(start).Seconds(), "copy-MB/s")
}

func copyFile(b *testing.B, src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(dst)
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	if err := out.Sync(); err != nil {
		b.Fatal(err)
	}
}

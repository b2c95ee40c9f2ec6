package p2p

import (
	"context"
	"fmt"
	"testing"

	"github.com/strata-llm/strata/pipeline"
)

// echoStage returns every batch as it came: a stage of no layers, so that
// a round trip through it measures the hop alone.
type echoStage struct{}

func (echoStage) Forward(_ context.Context, b *pipeline.Batch) (*pipeline.Batch, error) {
	return b, nil
}
func (echoStage) End(context.Context, []uint64) error { return nil }

// BenchmarkHop measures one hop of the stage protocol over loopback TCP
// (Noise, yamux): a batch of dim-2048 activations sent to a stage that
// returns them as they are, lossless. us/token is the round trip's time a
// row; bytes/hop what crosses the stream one way.
func BenchmarkHop(b *testing.B) {
	const dim = 2048
	srv := newHost(b, HostConfig{Listen: []string{loopTCP}})
	s, err := ServeStage(srv, echoStage{}, ServeOptions{Layers: LayerRange{0, 1}, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	cli := newHost(b, HostConfig{})
	r, err := DialStage(context.Background(), cli, srv.AddrInfo(), RemoteConfig{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for _, rows := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			batch := &pipeline.Batch{}
			for i := range rows {
				batch.AddSeq(pipeline.Seq{ID: uint64(i + 1), Pos: 10}, []int{i})
			}
			for i := range rows * dim {
				batch.X = append(batch.X, float32(i%97)*0.01)
			}
			var c coder
			body, err := c.appendBatch(nil, batch, 0)
			if err != nil {
				b.Fatal(err)
			}
			bytes := msgHeaderSize + len(body)
			b.SetBytes(int64(2 * bytes))
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				out, err := r.Forward(ctx, batch)
				if err != nil {
					b.Fatal(err)
				}
				batch = out
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(rows), "us/token")
			b.ReportMetric(float64(bytes), "bytes/hop")
		})
	}
}

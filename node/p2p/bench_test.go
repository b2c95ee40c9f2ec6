package p2p

import (
	"context"
	"fmt"
	"testing"
	"time"

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

// BenchmarkMocknetDecode runs 3 stages of stories260K on a mocknet whose
// links each add 20 ms, driven hop by hop from a gateway (a hub: 2 links
// a stage for every micro-batch), and compares the aggregate decode rate of
// 12 sequences generating together with that of one sequence at a time
// (tok/s counts generated tokens, prefill included); ms/token is the time
// between two tokens of one sequence alone. BenchmarkMocknetRoute is the
// same over a RemoteRoute (chain forwarding: n+1 links for n stages).
func BenchmarkMocknetDecode(b *testing.B) {
	if testing.Short() {
		b.Skip("seconds of simulated latency")
	}
	c := newClusterLatency(b, 3, quiet, RemoteConfig{}, 20*time.Millisecond)
	mocknetDecode(b, runDriver(b, c.stages()))
}

// BenchmarkMocknetRoute is BenchmarkMocknetDecode with the stages
// forwarding to one another along a RemoteRoute, the Driver keeping 3
// micro-batches in flight on it.
func BenchmarkMocknetRoute(b *testing.B) {
	if testing.Short() {
		b.Skip("seconds of simulated latency")
	}
	c := newClusterLatency(b, 3, quiet, RemoteConfig{}, 20*time.Millisecond)
	r := dialRoute(b, c, RemoteConfig{})
	mocknetDecode(b, runDriver(b, []pipeline.Stage{r}))
}

func mocknetDecode(b *testing.B, d *pipeline.Driver) {
	const tokens = 8
	base := storiesRequests(b, tokens)[:4] // the non-empty prompts
	var reqs []pipeline.TokenRequest
	for i := range 12 {
		reqs = append(reqs, base[i%len(base)])
	}
	for b.Loop() {
		start := time.Now()
		var first, last time.Time
		for i, r := range reqs[:2] {
			n := 0
			if _, err := d.Generate(context.Background(), r, func(int) error {
				if n++; i == 0 && n == 1 {
					first = time.Now()
				}
				last = time.Now()
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			if i == 0 {
				b.ReportMetric(float64(last.Sub(first))/float64(time.Millisecond)/float64(tokens-1), "ms/token")
			}
		}
		alone := float64(2*tokens) / time.Since(start).Seconds()
		start = time.Now()
		generateAll(b, d, reqs)
		together := float64(len(reqs)*tokens) / time.Since(start).Seconds()
		b.ReportMetric(alone, "tok/s-1-at-a-time")
		b.ReportMetric(together, "tok/s-12-together")
		b.ReportMetric(together/alone, "speedup")
	}
}

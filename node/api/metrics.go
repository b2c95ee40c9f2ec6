package api

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds a node's Prometheus metrics in a registry of its own (never
// the global one, so that several servers live in one process and in
// tests). The server feeds the HTTP and generation metrics; the node feeds
// the pipeline ones through the Observe/Set/Add/Inc hooks, which are safe
// for concurrent use and do nothing on a nil *Metrics, so that the pipeline
// can call them unconditionally.
//
// Exposed (all prefixed strata_):
//
//	http_requests_total{route,code}        requests answered, by route pattern and status
//	http_request_duration_seconds{route}   time to the end of the response
//	http_requests_in_flight                requests being served
//	queue_depth                            sequences waiting for admission (SetQueueDepth)
//	time_to_first_token_seconds            request arrival to first token
//	inter_token_latency_seconds            between consecutive tokens of a sequence
//	prompt_tokens_total                    prompt tokens admitted
//	generated_tokens_total                 tokens generated
//	stage_forward_seconds{stage}           forward latency per stage (ObserveStage)
//	wire_bytes_total{kind="raw"|"encoded"} activation bytes before and after the codec (AddWireBytes)
//	wire_codec_ratio                       raw / encoded over all bytes so far
//	kv_cache_bytes, kv_cache_capacity_bytes KV cache use (SetKVBytes)
//	prefix_cache_sessions, prefix_cache_positions  sessions kept for reuse and the positions they hold (SetPrefixCache)
//	prefix_cache_hits_total                requests that forked a cached session (SetPrefixCache)
//	prefix_cached_tokens_total             prompt tokens those requests did not compute (SetPrefixCache)
//	failovers_total                        route repairs after a failed hop (IncFailover)
//	peer_faults_total{peer,cause}          failed hops by the peer at fault and why (IncPeerFault)
//
// and the Go runtime and process collectors.
type Metrics struct {
	reg *prometheus.Registry

	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	inFlight        prometheus.Gauge
	queueDepth      prometheus.Gauge
	ttft            prometheus.Histogram
	itl             prometheus.Histogram
	promptTokens    prometheus.Counter
	generated       prometheus.Counter
	stageForward    *prometheus.HistogramVec
	wireBytes       *prometheus.CounterVec
	kvBytes         prometheus.Gauge
	kvCapacity      prometheus.Gauge
	failovers       prometheus.Counter
	peerFaults      *prometheus.CounterVec
	prefixSessions  prometheus.Gauge
	prefixPositions prometheus.Gauge
	prefixHits      prometheus.Counter
	prefixTokens    prometheus.Counter

	prefixMu                     sync.Mutex
	lastPrefixHits, lastPrefixed uint64 // the totals last reported

	wireRaw, wireEncoded atomic.Int64 // totals, for the codec ratio
	onScrape             func()       // set before serving; see OnScrape
}

// NewMetrics returns Metrics registered in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	latency := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	fast := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_http_requests_total", Help: "HTTP requests answered, by route pattern and status code.",
	}, []string{"route", "code"})
	m.requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "strata_http_request_duration_seconds", Help: "Time from request arrival to the end of the response, by route.",
		Buckets: []float64{.01, .05, .1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
	}, []string{"route"})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "strata_http_requests_in_flight", Help: "HTTP requests being served.",
	})
	m.queueDepth = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "strata_queue_depth", Help: "Sequences waiting for admission into the batch.",
	})
	m.ttft = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "strata_time_to_first_token_seconds", Help: "Time from request arrival to its first generated token.",
		Buckets: latency,
	})
	m.itl = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "strata_inter_token_latency_seconds", Help: "Time between consecutive tokens of a sequence.",
		Buckets: fast,
	})
	m.promptTokens = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strata_prompt_tokens_total", Help: "Prompt tokens of admitted requests.",
	})
	m.generated = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strata_generated_tokens_total", Help: "Tokens generated.",
	})
	m.stageForward = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "strata_stage_forward_seconds", Help: "Forward latency of a pipeline stage, by stage.",
		Buckets: fast,
	}, []string{"stage"})
	m.wireBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_wire_bytes_total", Help: "Activation bytes between stages: raw before the codec, encoded on the wire.",
	}, []string{"kind"})
	codecRatio := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_wire_codec_ratio", Help: "Raw over encoded activation bytes so far (1 before any).",
	}, m.codecRatio)
	m.kvBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "strata_kv_cache_bytes", Help: "KV cache bytes in use.",
	})
	m.kvCapacity = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "strata_kv_cache_capacity_bytes", Help: "KV cache bytes available in all.",
	})
	m.failovers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strata_failovers_total", Help: "Route repairs after a failed hop.",
	})
	m.peerFaults = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_peer_faults_total", Help: "Failed hops, by the peer at fault and the cause: unreachable, protocol (malformed or non-finite activations), stale (its layers moved), failed (it failed the batch).",
	}, []string{"peer", "cause"})
	m.prefixSessions = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "strata_prefix_cache_sessions", Help: "Sessions of finished sequences kept on the stages for requests that begin with their tokens.",
	})
	m.prefixPositions = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "strata_prefix_cache_positions", Help: "Positions (tokens) the kept sessions hold.",
	})
	m.prefixHits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strata_prefix_cache_hits_total", Help: "Requests that forked a kept session or a running sequence instead of computing their prompt's prefix.",
	})
	m.prefixTokens = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strata_prefix_cached_tokens_total", Help: "Prompt tokens taken from kept sessions or running sequences.",
	})
	m.reg.MustRegister(m.requests, m.requestDuration, m.inFlight, m.queueDepth, m.ttft, m.itl,
		m.promptTokens, m.generated, m.stageForward, m.wireBytes, codecRatio, m.kvBytes, m.kvCapacity,
		m.failovers, m.peerFaults, m.prefixSessions, m.prefixPositions, m.prefixHits, m.prefixTokens,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.wireBytes.WithLabelValues("raw")
	m.wireBytes.WithLabelValues("encoded")
	return m
}

// Registry returns the registry, for a node that adds metrics of its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.onScrape != nil {
			m.onScrape()
		}
		h.ServeHTTP(w, r)
	})
}

// OnScrape sets fn to run before every scrape, so that a node can refresh
// the gauges it reads on demand (queue depth, KV cache use). Call it before
// the server starts; fn may be called concurrently.
func (m *Metrics) OnScrape(fn func()) { m.onScrape = fn }

func (m *Metrics) codecRatio() float64 {
	raw, enc := m.wireRaw.Load(), m.wireEncoded.Load()
	if enc <= 0 {
		return 1
	}
	return float64(raw) / float64(enc)
}

// ObserveStage records one forward pass of stage (its index or peer ID)
// that took d.
func (m *Metrics) ObserveStage(stage string, d time.Duration) {
	if m == nil {
		return
	}
	m.stageForward.WithLabelValues(stage).Observe(d.Seconds())
}

// SetKVBytes reports the KV cache bytes in use and available in all.
func (m *Metrics) SetKVBytes(used, capacity int64) {
	if m == nil {
		return
	}
	m.kvBytes.Set(float64(used))
	m.kvCapacity.Set(float64(capacity))
}

// AddWireBytes counts activation bytes sent between stages: raw before the
// codec and encoded as sent. Negative counts are ignored.
func (m *Metrics) AddWireBytes(raw, encoded int64) {
	if m == nil || raw < 0 || encoded < 0 {
		return
	}
	m.wireBytes.WithLabelValues("raw").Add(float64(raw))
	m.wireBytes.WithLabelValues("encoded").Add(float64(encoded))
	m.wireRaw.Add(raw)
	m.wireEncoded.Add(encoded)
}

// SetPrefixCache reports the prefix cache: the sessions kept and the
// positions they hold now, and the totals so far of requests that forked
// one and of the prompt tokens they took (the counters advance by what
// the totals grew since the last call).
func (m *Metrics) SetPrefixCache(sessions, positions int, hits, tokens uint64) {
	if m == nil {
		return
	}
	m.prefixSessions.Set(float64(sessions))
	m.prefixPositions.Set(float64(positions))
	m.prefixMu.Lock()
	defer m.prefixMu.Unlock()
	if hits > m.lastPrefixHits {
		m.prefixHits.Add(float64(hits - m.lastPrefixHits))
	}
	if tokens > m.lastPrefixed {
		m.prefixTokens.Add(float64(tokens - m.lastPrefixed))
	}
	m.lastPrefixHits, m.lastPrefixed = max(hits, m.lastPrefixHits), max(tokens, m.lastPrefixed)
}

// IncFailover counts one route repair after a failed hop.
func (m *Metrics) IncFailover() {
	if m == nil {
		return
	}
	m.failovers.Inc()
}

// IncPeerFault counts one failed hop of peer's, for cause.
func (m *Metrics) IncPeerFault(peer, cause string) {
	if m == nil {
		return
	}
	m.peerFaults.WithLabelValues(peer, cause).Inc()
}

// SetQueueDepth reports how many sequences wait for admission.
func (m *Metrics) SetQueueDepth(n int) {
	if m == nil {
		return
	}
	m.queueDepth.Set(float64(n))
}

func (m *Metrics) observeRequest(route string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.requestDuration.WithLabelValues(route).Observe(d.Seconds())
}

func (m *Metrics) addInFlight(n int) {
	if m != nil {
		m.inFlight.Add(float64(n))
	}
}

func (m *Metrics) observeTTFT(d time.Duration) {
	if m != nil {
		m.ttft.Observe(math.Max(0, d.Seconds()))
	}
}

func (m *Metrics) observeITL(d time.Duration) {
	if m != nil {
		m.itl.Observe(math.Max(0, d.Seconds()))
	}
}

func (m *Metrics) addPromptTokens(n int) {
	if m != nil {
		m.promptTokens.Add(float64(n))
	}
}

func (m *Metrics) addGenerated(n int) {
	if m != nil {
		m.generated.Add(float64(n))
	}
}

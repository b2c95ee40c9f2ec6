package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-llm/strata/node/api"
	"github.com/strata-llm/strata/node/api/apitest"
)

// waitTimeout bounds how long a test waits for something that must happen;
// it is a failure deadline, never a sleep.
const waitTimeout = 10 * time.Second

func waitFinished(t *testing.T, gen *apitest.Generator) error {
	t.Helper()
	select {
	case err := <-gen.Finished:
		return err
	case <-time.After(waitTimeout):
		t.Fatal("the generator did not return")
		return nil
	}
}

// openStream sends a streaming request and returns the response, whose
// body the caller reads, and a cancel func that drops the connection.
func openStream(t *testing.T, f *fixture, path, body string) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return resp, cancel
}

// nextData reads the next "data:" payload of an event stream.
func nextData(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		if data, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "data:"); ok {
			return strings.TrimPrefix(data, " ")
		}
	}
}

// TestOverloaded checks that a Generator's ErrOverloaded, ErrLoading and
// ErrShuttingDown become 429 and 503 with Retry-After, also on streaming routes (whose
// status is committed only with the first token), in each route's shape.
func TestOverloaded(t *testing.T) {
	chatBody := `{"model":"strata-test","messages":[{"role":"user","content":"hi"}]`
	for _, tc := range []struct {
		name   string
		err    error
		status int
		retry  string
	}{
		{"overloaded", api.ErrOverloaded, 429, "1"},
		{"overloaded with hint", &api.RetryError{Err: api.ErrOverloaded, After: 2500 * time.Millisecond}, 429, "3"},
		{"wrapped", errors.Join(errors.New("queue full: 64 waiting"), api.ErrOverloaded), 429, "1"},
		{"loading", api.ErrLoading, 503, "1"},
		{"loading with hint", &api.RetryError{Err: api.ErrLoading, After: 30 * time.Second}, 503, "30"},
		{"shutting down", api.ErrShuttingDown, 503, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, api.Config{}, &apitest.Generator{Err: tc.err})
			for _, r := range []struct{ path, body, shape string }{
				{"/v1/chat/completions", chatBody + "}", "openai"},
				{"/v1/chat/completions", chatBody + `,"stream":true}`, "openai"},
				{"/v1/completions", `{"model":"strata-test","prompt":"hi","stream":true}`, "openai"},
				{"/generate", `{"inputs":"hi"}`, "tgi"},
				{"/generate_stream", `{"inputs":"hi"}`, "tgi"},
			} {
				resp, b := f.do(t, "POST", r.path, r.body)
				if resp.StatusCode != tc.status || resp.Header.Get("Retry-After") != tc.retry {
					t.Errorf("%s %s: status %d Retry-After %q, want %d %q: %s", r.path, r.body, resp.StatusCode,
						resp.Header.Get("Retry-After"), tc.status, tc.retry, b)
				}
				if r.shape == "openai" {
					var e openAIError
					if json.Unmarshal(b, &e); e.Error == nil || e.Error.Code == nil {
						t.Errorf("%s: not an OpenAI error with a code: %s", r.path, b)
					}
				} else {
					var e tgiError
					want := map[int]string{429: "overloaded", 503: "loading"}[tc.status]
					if errors.Is(tc.err, api.ErrShuttingDown) {
						want = "unavailable"
					}
					if json.Unmarshal(b, &e); e.ErrorType != want {
						t.Errorf("%s: error_type %q, want %q: %s", r.path, e.ErrorType, want, b)
					}
				}
			}
		})
	}
}

// TestMaxConcurrent checks the gateway's own bound on requests in flight.
func TestMaxConcurrent(t *testing.T) {
	gen := &apitest.Generator{Reply: testReply, Gate: make(chan struct{}), Finished: make(chan error, 4)}
	f := newFixture(t, api.Config{MaxConcurrent: 1, RetryAfter: 2 * time.Second}, gen)
	resp, cancel := openStream(t, f, "/generate_stream", `{"inputs":"hi"}`)
	nextData(t, bufio.NewReader(resp.Body)) // admitted, first token out

	resp2, b := f.do(t, "POST", "/v1/completions", `{"model":"strata-test","prompt":"hi"}`)
	if resp2.StatusCode != 429 || resp2.Header.Get("Retry-After") != "2" {
		t.Errorf("second request: status %d Retry-After %q: %s", resp2.StatusCode, resp2.Header.Get("Retry-After"), b)
	}
	cancel()
	waitFinished(t, gen)
	close(gen.Gate) // from now on the generator runs freely
	// The first handler frees its slot as it returns, just after its
	// generation finished: allow it a moment.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		resp3, b := f.do(t, "POST", "/v1/completions", `{"model":"strata-test","prompt":"hi"}`)
		if resp3.StatusCode == 200 {
			break
		}
		if resp3.StatusCode != 429 || time.Now().After(deadline) {
			t.Fatalf("after the first ended: status %d: %s", resp3.StatusCode, b)
		}
	}
}

// TestClientDisconnect checks that a client going away cancels the
// Generator's context, mid-stream and while waiting for a non-streamed
// answer.
func TestClientDisconnect(t *testing.T) {
	t.Run("stream", func(t *testing.T) {
		for _, tc := range []struct{ path, body string }{
			{"/v1/chat/completions", `{"model":"strata-test","messages":[{"role":"user","content":"hi"}],"stream":true}`},
			{"/generate_stream", `{"inputs":"hi"}`},
		} {
			gen := &apitest.Generator{Reply: testReply, Gate: make(chan struct{}), Finished: make(chan error, 1)}
			f := newFixture(t, api.Config{}, gen)
			resp, cancel := openStream(t, f, tc.path, tc.body)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: status %d", tc.path, resp.StatusCode)
			}
			nextData(t, bufio.NewReader(resp.Body))
			cancel()
			if err := waitFinished(t, gen); !errors.Is(err, context.Canceled) {
				t.Errorf("%s: generator returned %v, want context.Canceled", tc.path, err)
			}
		}
	})
	t.Run("non-stream", func(t *testing.T) {
		gen := &apitest.Generator{Reply: testReply, Gate: make(chan struct{}), Started: make(chan struct{}), Finished: make(chan error, 1)}
		f := newFixture(t, api.Config{}, gen)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "POST", f.srv.URL+"/v1/chat/completions",
				strings.NewReader(`{"model":"strata-test","messages":[{"role":"user","content":"hi"}]}`))
			resp, err := f.srv.Client().Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		<-gen.Started
		cancel()
		if err := waitFinished(t, gen); !errors.Is(err, context.Canceled) {
			t.Errorf("generator returned %v, want context.Canceled", err)
		}
		if err := <-done; err == nil {
			t.Error("the cancelled request succeeded")
		}
	})
}

// TestStreamBreaks checks that a generation failing mid-stream ends the
// stream with an error event in the route's shape, and without OpenAI's
// [DONE], so that clients see it broke off.
func TestStreamBreaks(t *testing.T) {
	gen := &apitest.Generator{Reply: testReply, FailAfter: 3, FailErr: errors.New("stage 2 (12D3KooWStageB) died")}
	f := newFixture(t, api.Config{}, gen)

	_, b := f.do(t, "POST", "/v1/chat/completions", `{"model":"strata-test","messages":[{"role":"user","content":"hi"}],"stream":true}`)
	events := sseData(t, b)
	if len(events) != 5 || slices.Contains(events, "[DONE]") {
		t.Fatalf("events %q: want the role, 3 tokens, an error, no [DONE]", events)
	}
	var e openAIError
	if json.Unmarshal([]byte(events[4]), &e); e.Error == nil || !strings.Contains(e.Error.Message, "StageB") || e.Error.Type != "server_error" {
		t.Errorf("last event %s", events[4])
	}

	_, b = f.do(t, "POST", "/generate_stream", `{"inputs":"hi"}`)
	events = sseData(t, b)
	var te tgiError
	if len(events) != 4 || json.Unmarshal([]byte(events[3]), &te) != nil || te.ErrorType != "generation" {
		t.Errorf("TGI events %q: want 3 tokens and a generation error", events)
	}

	resp, b := f.do(t, "POST", "/v1/completions", `{"model":"strata-test","prompt":"hi"}`)
	if resp.StatusCode != 500 || !strings.Contains(string(b), "died") {
		t.Errorf("non-stream: status %d: %s", resp.StatusCode, b)
	}
}

// TestAuth checks which routes need a key, and the forms of the header.
func TestAuth(t *testing.T) {
	f := newFixture(t, api.Config{APIKeys: []string{"k1", testKey}}, nil)
	for _, tc := range []struct {
		method, path, auth string
		status             int
	}{
		{"GET", "/health", "", 200},
		{"GET", "/metrics", "", 200},
		{"GET", "/v1/models", "", 401},
		{"GET", "/v1/models", "Bearer " + testKey, 200},
		{"GET", "/v1/models", "bearer k1", 200},
		{"GET", "/v1/models", "Bearer  " + testKey + " ", 200},
		{"GET", "/v1/models", "Bearer " + testKey + "x", 401},
		{"GET", "/info", "Bearer k1", 200},
		{"GET", "/nowhere", "", 401}, // routes are not revealed without a key
	} {
		resp, b := f.do(t, tc.method, tc.path, "", "Authorization", tc.auth)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s with %q: status %d, want %d: %s", tc.method, tc.path, tc.auth, resp.StatusCode, tc.status, b)
		}
	}
}

// TestLoadAPIKeys reads a key file and refuses one without keys.
func TestLoadAPIKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keys, err := api.LoadAPIKeys(write("keys", "# team keys\nsk-one\n\n  sk-two  \r\n# old: sk-zero\n"))
	if err != nil || !slices.Equal(keys, []string{"sk-one", "sk-two"}) {
		t.Errorf("keys %q, err %v", keys, err)
	}
	for name, content := range map[string]string{"empty": "", "comments": "# nothing\n\n", "spaces": "sk one\n"} {
		if _, err := api.LoadAPIKeys(write(name, content)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := api.LoadAPIKeys(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: no error")
	}
}

// TestKeyFileReload: a server given its key file takes the new keys when
// the file changes, and keeps the old ones when the new file holds none.
func TestKeyFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	write := func(content string, at time.Time) {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, at, at); err != nil { // a change even within the clock's resolution
			t.Fatal(err)
		}
	}
	start := time.Now()
	write("sk-old\n", start)
	srv := api.New(api.Config{APIKeys: []string{"sk-flag"}, APIKeyFile: path, APIKeyFileEvery: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)},
		&apitest.Generator{Reply: "ok"}, apitest.NewTokenizer(""), apitest.NewPipeline("m", 64))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	status := func(key string) int {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(waitTimeout); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	if status("sk-old") != 200 || status("sk-flag") != 200 || status("sk-new") != 401 {
		t.Fatal("the keys at start are not the flag's and the file's")
	}
	write("# rotated\nsk-new\n", start.Add(time.Second))
	waitFor("the new key", func() bool { return status("sk-new") == 200 })
	if status("sk-old") != 401 || status("sk-flag") != 200 {
		t.Error("after the rotation: want the old key refused and the flag's kept")
	}
	write("# nothing\n", start.Add(2*time.Second))
	time.Sleep(100 * time.Millisecond) // ten checks
	if status("sk-new") != 200 || status("") != 401 {
		t.Error("a key file without keys changed the keys")
	}

	// A server whose key file does not load at start fails closed.
	bad := api.New(api.Config{APIKeyFile: filepath.Join(t.TempDir(), "missing"), Logger: slog.New(slog.DiscardHandler)},
		&apitest.Generator{Reply: "ok"}, apitest.NewTokenizer(""), apitest.NewPipeline("m", 64))
	rec := httptest.NewRecorder()
	bad.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/models", nil))
	if rec.Code != 401 {
		t.Errorf("a missing key file at start: %d, want 401", rec.Code)
	}
}

// TestMetrics checks the metrics the server records and the hooks the
// pipeline calls, each server with a registry of its own.
func TestMetrics(t *testing.T) {
	f := newFixture(t, api.Config{}, nil)
	other := newFixture(t, api.Config{}, nil) // a second registry in the same process
	f.do(t, "POST", "/v1/chat/completions", `{"model":"strata-test","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`)
	f.do(t, "POST", "/v1/chat/completions", `{"model":"strata-test","messages":[]}`)
	f.do(t, "POST", "/generate_stream", `{"inputs":"hi","parameters":{"max_new_tokens":3}}`)
	m := f.api.Metrics()
	m.ObserveStage("0", 5*time.Millisecond)
	m.ObserveStage("1", 7*time.Millisecond)
	m.SetKVBytes(1024, 4096)
	m.AddWireBytes(4000, 1000)
	m.IncFailover()
	m.SetQueueDepth(3)
	var none *api.Metrics // hooks on nil Metrics do nothing
	none.ObserveStage("0", time.Second)
	none.SetKVBytes(1, 2)
	none.AddWireBytes(1, 1)
	none.IncFailover()
	none.SetQueueDepth(1)

	_, b := f.do(t, "GET", "/metrics", "")
	text := string(b)
	for _, want := range []string{
		`strata_http_requests_total{code="200",route="POST /v1/chat/completions"} 1`,
		`strata_http_requests_total{code="400",route="POST /v1/chat/completions"} 1`,
		`strata_http_requests_total{code="200",route="POST /generate_stream"} 1`,
		`strata_http_request_duration_seconds_count{route="POST /v1/chat/completions"} 2`,
		"strata_generated_tokens_total 8",
		"strata_time_to_first_token_seconds_count 2",
		"strata_inter_token_latency_seconds_count 6",
		`strata_stage_forward_seconds_count{stage="1"} 1`,
		"strata_kv_cache_bytes 1024",
		"strata_kv_cache_capacity_bytes 4096",
		`strata_wire_bytes_total{kind="raw"} 4000`,
		`strata_wire_bytes_total{kind="encoded"} 1000`,
		"strata_wire_codec_ratio 4",
		"strata_failovers_total 1",
		"strata_queue_depth 3",
		"strata_http_requests_in_flight 1", // the scrape itself
		"go_goroutines",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	_, b = other.do(t, "GET", "/metrics", "")
	if strings.Contains(string(b), "strata_failovers_total 1") {
		t.Error("the second server's registry sees the first's metrics")
	}
}

// TestRun checks Run's graceful shutdown: it returns when its context ends,
// and cancels a request still streaming after ShutdownTimeout.
func TestRun(t *testing.T) {
	gen := &apitest.Generator{Reply: testReply, Gate: make(chan struct{}), Finished: make(chan error, 1)}
	s := api.New(api.Config{ShutdownTimeout: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)},
		gen, apitest.NewTokenizer(""), apitest.NewPipeline(testModel, testCtxLen))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	resp, err := http.Post("http://"+ln.Addr().String()+"/generate_stream", "application/json", strings.NewReader(`{"inputs":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	nextData(t, bufio.NewReader(resp.Body))
	stop()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Serve did not return")
	}
	if err := waitFinished(t, gen); !errors.Is(err, context.Canceled) {
		t.Errorf("the streaming generation ended with %v, want context.Canceled", err)
	}
	io.Copy(io.Discard, resp.Body)
}

// TestHealthCoalesced checks that concurrent probes share one pipeline
// health check.
func TestHealthCoalesced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pipe := &blockingPipeline{Pipeline: apitest.NewPipeline(testModel, testCtxLen), block: make(chan struct{})}
		s := api.New(api.Config{Logger: slog.New(slog.DiscardHandler)}, &apitest.Generator{}, apitest.NewTokenizer(""), pipe)
		codes := make(chan int, 3)
		for range 3 {
			go func() {
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
				codes <- rec.Code
			}()
		}
		synctest.Wait() // all three probes wait on the one check
		close(pipe.block)
		for range 3 {
			if code := <-codes; code != 200 {
				t.Errorf("probe status %d", code)
			}
		}
		if n := pipe.HealthChecks(); n != 1 {
			t.Errorf("%d health checks for 3 concurrent probes, want 1", n)
		}
	})
}

// blockingPipeline's Health waits until block is closed.
type blockingPipeline struct {
	*apitest.Pipeline
	block chan struct{}
}

func (p *blockingPipeline) Health(ctx context.Context) error {
	<-p.block
	return p.Pipeline.Health(ctx)
}

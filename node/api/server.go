package api

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Version is reported by /info.
const Version = "0.1.0"

// Config configures a Server. Its zero value serves without
// authentication, with the defaults given below.
type Config struct {
	// ModelName is the model's ID in the API (what /v1/models lists and
	// clients send as "model"); "" uses ModelInfo.Name.
	ModelName string
	// APIKeys, when not empty, are the keys a client must send as
	// "Authorization: Bearer KEY". /health and /metrics stay open, for
	// probes and scrapers; every other route answers 401 without a valid
	// key. See LoadAPIKeys.
	APIKeys []string
	// APIKeyFile, when set, holds more keys (LoadAPIKeys): the server reads
	// it at New and again whenever it changes (checked every
	// APIKeyFileEvery, 5s when 0), so that keys can be rotated without a
	// restart. A file that does not load leaves the keys as they were,
	// with a warning (at New: none from the file, so that the API fails
	// closed): a reload never turns authentication off.
	APIKeyFile string
	// APIKeyFileEvery is how often the key file is checked for changes;
	// 0 means 5s.
	APIKeyFileEvery time.Duration
	// Admin, when set, serves the routes under /cluster/ (a cluster
	// member's status and leave), behind the API keys like the others.
	Admin http.Handler
	// MaxConcurrent bounds the generations in flight at the gateway; one
	// more is answered 429 with Retry-After at once. 0 means no bound here
	// (the Generator's queue still bounds them).
	MaxConcurrent int
	// MaxPromptTokens bounds a prompt; 0 means the context length less one.
	MaxPromptTokens int
	// MaxTokens bounds max_tokens (and TGI's max_new_tokens); 0 means only
	// the context length does.
	MaxTokens int
	// MaxStopSequences bounds the stop strings of a request; 0 means 4, as
	// OpenAI's and TGI's documents say.
	MaxStopSequences int
	// MaxRequestBytes bounds a request body; 0 means 8 MiB.
	MaxRequestBytes int64
	// RetryAfter is the Retry-After sent with 429 and 503 when the
	// Generator gives no hint; 0 means 1s.
	RetryAfter time.Duration
	// HealthTimeout bounds one health check; 0 means 10s.
	HealthTimeout time.Duration
	// ShutdownTimeout is how long Run lets requests in flight finish once
	// its context ends, before cancelling them; 0 means 30s.
	ShutdownTimeout time.Duration
	// Metrics receives the server's metrics; nil means a new NewMetrics().
	// The node passes the same Metrics to the pipeline for its hooks.
	Metrics *Metrics
	// Logger receives one line per request at Info and errors at Warn;
	// nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxStopSequences <= 0 {
		c.MaxStopSequences = 4
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = 8 << 20
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = time.Second
	}
	if c.HealthTimeout <= 0 {
		c.HealthTimeout = 10 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Server is the HTTP API of a gateway: OpenAI's /v1 routes, TGI's routes,
// /health and /metrics, over a Generator. It is an http.Handler; Run (or
// Serve) runs it on a listener of its own until a context ends.
type Server struct {
	cfg     Config
	gen     Generator
	tok     Tokenizer
	pipe    Pipeline
	metrics *Metrics
	log     *slog.Logger
	keys    atomic.Pointer[keySet] // APIKeys and the key file's
	// authRequired: the server has keys (or a key file), so every route
	// but the open ones needs one.
	authRequired bool
	mux          *http.ServeMux
	slots        chan struct{} // nil: no bound
	created      int64         // unix seconds, /v1/models' "created"

	hmu   sync.Mutex
	hcall *healthCall // the health check in flight, if any
	hwg   sync.WaitGroup
}

// healthCall is one health check, shared by the probes that arrive while
// it runs.
type healthCall struct {
	done chan struct{}
	err  error
}

// New returns a Server that generates with gen, turns text into tokens and
// back with tok, and describes and checks the model with pipe. None may be
// nil.
func New(cfg Config, gen Generator, tok Tokenizer, pipe Pipeline) *Server {
	if gen == nil || tok == nil || pipe == nil {
		panic("api.New: nil Generator, Tokenizer or Pipeline")
	}
	cfg.setDefaults()
	s := &Server{
		cfg:     cfg,
		gen:     gen,
		tok:     tok,
		pipe:    pipe,
		metrics: cfg.Metrics,
		log:     cfg.Logger,
		mux:     http.NewServeMux(),
		created: time.Now().Unix(),
	}
	s.authRequired = len(newKeySet(cfg.APIKeys)) > 0 || cfg.APIKeyFile != ""
	s.loadKeys()
	if cfg.MaxConcurrent > 0 {
		s.slots = make(chan struct{}, cfg.MaxConcurrent)
	}
	s.mux.HandleFunc("POST /v1/chat/completions", s.handleChat)
	s.mux.HandleFunc("POST /v1/completions", s.handleCompletion)
	s.mux.HandleFunc("GET /v1/models", s.handleModels)
	s.mux.HandleFunc("GET /v1/models/{model...}", s.handleModel)
	s.mux.HandleFunc("POST /generate", s.handleGenerate)
	s.mux.HandleFunc("POST /generate_stream", s.handleGenerateStream)
	s.mux.HandleFunc("POST /{$}", s.handleCompat)
	s.mux.HandleFunc("POST /invocations", s.handleInvocations)
	s.mux.HandleFunc("POST /tokenize", s.handleTokenize)
	s.mux.HandleFunc("POST /chat_tokenize", s.handleChatTokenize)
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/dashboard", http.StatusFound)
	})
	s.mux.HandleFunc("GET /dashboard", serveAsset(dashboardHTML, "text/html; charset=utf-8"))
	s.mux.HandleFunc("GET /dashboard.js", serveAsset(dashboardJS, "text/javascript; charset=utf-8"))
	s.mux.HandleFunc("GET /info", s.handleInfo)
	s.mux.HandleFunc("GET /health", s.handleHealth)
	s.mux.Handle("GET /metrics", s.metrics.Handler())
	if cfg.Admin != nil {
		s.mux.Handle("/cluster/", cfg.Admin)
	}
	s.mux.HandleFunc("/", s.handleNotFound)
	return s
}

// Metrics returns the server's metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// openRoutes answer without an API key. The dashboard's page and script
// hold no data: the script asks for a key to read the routes it shows.
var openRoutes = map[string]bool{"GET /health": true, "GET /metrics": true,
	"GET /{$}": true, "GET /dashboard": true, "GET /dashboard.js": true}

//go:embed dashboard.html
var dashboardHTML []byte

//go:embed dashboard.js
var dashboardJS []byte

// serveAsset answers with one of the dashboard's files, which load nothing
// from elsewhere.
func serveAsset(b []byte, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		w.Write(b)
	}
}

// routeMethods are the routes' methods, for 405 answers.
var routeMethods = map[string]string{
	"/v1/chat/completions": "POST", "/v1/completions": "POST", "/v1/models": "GET",
	"/generate": "POST", "/generate_stream": "POST", "/": "GET, POST", "/info": "GET", "/dashboard": "GET", "/dashboard.js": "GET",
	"/health": "GET", "/metrics": "GET", "/invocations": "POST", "/tokenize": "POST", "/chat_tokenize": "POST",
}

type startKey struct{}

// ServeHTTP serves one request: it checks the API key, routes, and records
// the request's metrics. A panic in a handler is answered 500 and logged.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	_, pattern := s.mux.Handler(r)
	route := pattern
	if route == "/" {
		route = "other"
	}
	rec := &statusRecorder{ResponseWriter: w}
	s.metrics.addInFlight(1)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("api: panic serving a request", "route", route, "panic", v)
			if !rec.wrote {
				writeOpenAIError(rec, &apiError{status: http.StatusInternalServerError, message: "internal server error"})
			}
		}
		s.metrics.addInFlight(-1)
		s.metrics.observeRequest(route, rec.code(), time.Since(start))
	}()
	if s.authRequired && !openRoutes[pattern] {
		if msg := s.checkKey(r); msg != "" {
			writeOpenAIError(rec, &apiError{status: http.StatusUnauthorized, code: "invalid_api_key", message: msg})
			return
		}
	}
	r = r.WithContext(context.WithValue(r.Context(), startKey{}, start))
	s.mux.ServeHTTP(rec, r)
}

// checkKey returns why r is not authorized, or "".
func (s *Server) checkKey(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "missing API key: send it as 'Authorization: Bearer KEY'"
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "malformed Authorization header: send 'Authorization: Bearer KEY'"
	}
	if !s.keys.Load().allows(strings.TrimSpace(token)) {
		return "invalid API key"
	}
	return ""
}

// requestStart returns when r arrived at ServeHTTP.
func requestStart(r *http.Request) time.Time {
	if t, ok := r.Context().Value(startKey{}).(time.Time); ok {
		return t
	}
	return time.Now()
}

// statusRecorder remembers the status written, for the metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.status, r.wrote = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) code() int {
	if !r.wrote {
		return http.StatusOK
	}
	return r.status
}

// Run listens on addr (host:port) and serves until ctx ends; see Serve.
func (s *Server) Run(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then shuts down gracefully: it stops
// accepting, lets the requests in flight finish for up to
// Config.ShutdownTimeout, then cancels what is left (their generations
// stop along the route) and closes the connections. It returns nil after a
// shutdown caused by ctx, or the error that stopped serving.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	if s.cfg.APIKeyFile != "" {
		go s.watchKeyFile(base)
	}
	s.log.Info("api: serving", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		s.hwg.Wait()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	cancelBase()
	if err != nil {
		s.log.Warn("api: requests still running at shutdown were cancelled", "err", err)
		hs.Close()
	}
	<-errc
	s.hwg.Wait()
	return nil
}

// decode reads r's JSON body into v, bounded by MaxRequestBytes.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) *apiError {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(time.Minute))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes))
	_ = rc.SetReadDeadline(time.Time{})
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return decodeError(err)
		}
		return badRequest("", "reading the request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return decodeError(errEmptyBody)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return decodeError(err)
	}
	return nil
}

// admit takes a generation slot, or answers why not.
func (s *Server) admit() (release func(), _ *apiError) {
	if s.slots == nil {
		return func() {}, nil
	}
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	default:
		return nil, &apiError{status: http.StatusTooManyRequests, code: "overloaded", retry: s.cfg.RetryAfter,
			message: "the server is overloaded: too many requests in flight; retry later"}
	}
}

// modelName is the served model's ID.
func (s *Server) modelName(info ModelInfo) string {
	if s.cfg.ModelName != "" {
		return s.cfg.ModelName
	}
	if info.Name != "" {
		return info.Name
	}
	return "model"
}

// maxPrompt is the longest prompt accepted.
func (s *Server) maxPrompt(info ModelInfo) int {
	n := max(info.ContextLength-1, 0)
	if s.cfg.MaxPromptTokens > 0 {
		n = min(n, s.cfg.MaxPromptTokens)
	}
	return n
}

// encodePrompt tokenizes a prompt text with the vocabulary's special tokens,
// dropping a second BOS when the text (a chat template's output) already
// began with one.
func (s *Server) encodePrompt(text string) []int {
	ids := s.tok.Encode(text, true, true)
	if bos := s.tok.BOS(); bos >= 0 && len(ids) >= 2 && ids[0] == bos && ids[1] == bos {
		ids = ids[1:]
	}
	return ids
}

// limits checks the prompt length and the tokens asked for against the
// context, and returns max tokens to generate: requested, or, when nil,
// def (0: as many as the context holds) capped by what fits.
func (s *Server) limits(info ModelInfo, promptLen int, requested *int, def int, param string) (int, *apiError) {
	ctxLen := info.ContextLength
	if promptLen == 0 {
		return 0, badRequest("", "the prompt is empty")
	}
	if mp := s.maxPrompt(info); promptLen > mp {
		return 0, &apiError{status: http.StatusBadRequest, code: "context_length_exceeded",
			message: fmtf("the prompt is %d tokens long, more than the %d this model accepts (context length %d); shorten it", promptLen, mp, ctxLen)}
	}
	room := ctxLen - promptLen
	if s.cfg.MaxTokens > 0 {
		room = min(room, s.cfg.MaxTokens)
	}
	if requested == nil {
		if def <= 0 {
			return room, nil
		}
		return min(def, room), nil
	}
	n := *requested
	switch {
	case n < 1:
		return 0, badRequest(param, "invalid value for '%s': %d; it must be at least 1", param, n)
	case s.cfg.MaxTokens > 0 && n > s.cfg.MaxTokens:
		return 0, badRequest(param, "invalid value for '%s': %d; this server generates at most %d tokens per request", param, n, s.cfg.MaxTokens)
	case n > ctxLen-promptLen:
		return 0, &apiError{status: http.StatusBadRequest, param: param, code: "context_length_exceeded",
			message: fmtf("this model's maximum context length is %d tokens, but %d were requested (%d in the prompt, %d for the completion); reduce the prompt or %s", ctxLen, promptLen+n, promptLen, n, param)}
	}
	return n, nil
}

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	if m, ok := routeMethods[r.URL.Path]; ok {
		w.Header().Set("Allow", m)
		writeOpenAIError(w, &apiError{status: http.StatusMethodNotAllowed,
			message: fmtf("method %s is not allowed on %s; use %s", r.Method, r.URL.Path, m)})
		return
	}
	writeOpenAIError(w, &apiError{status: http.StatusNotFound, code: "not_found",
		message: fmtf("no route %s %s", r.Method, r.URL.Path)})
}

// handleHealth answers 200 when one token went through the whole pipeline,
// 503 when not (TGI's documented answers).
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if err := s.checkHealth(r.Context()); err != nil {
		e := &apiError{status: http.StatusServiceUnavailable, tgiType: "healthcheck", retry: s.cfg.RetryAfter,
			message: "unhealthy: " + err.Error()}
		writeTGIError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// checkHealth runs Pipeline.Health, or joins the check already running.
func (s *Server) checkHealth(ctx context.Context) error {
	s.hmu.Lock()
	c := s.hcall
	if c == nil {
		c = &healthCall{done: make(chan struct{})}
		s.hcall = c
		s.hwg.Add(1)
		go func() {
			defer s.hwg.Done()
			hctx, cancel := context.WithTimeout(context.Background(), s.cfg.HealthTimeout)
			c.err = s.pipe.Health(hctx)
			if c.err == nil && hctx.Err() != nil {
				c.err = hctx.Err()
			}
			cancel()
			s.hmu.Lock()
			s.hcall = nil
			s.hmu.Unlock()
			close(c.done)
		}()
	}
	s.hmu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tgiInfo is TGI's Info, with Strata's additions after model_sha.
type tgiInfo struct {
	ModelID               string  `json:"model_id"`
	ModelSHA              *string `json:"model_sha"`
	ModelPipelineTag      string  `json:"model_pipeline_tag"`
	MaxConcurrentRequests int     `json:"max_concurrent_requests"`
	MaxBestOf             int     `json:"max_best_of"`
	MaxStopSequences      int     `json:"max_stop_sequences"`
	MaxInputTokens        int     `json:"max_input_tokens"`
	MaxTotalTokens        int     `json:"max_total_tokens"`
	ValidationWorkers     int     `json:"validation_workers"`
	MaxClientBatchSize    int     `json:"max_client_batch_size"`
	Router                string  `json:"router"`
	Version               string  `json:"version"`
	SHA                   *string `json:"sha"`
	DockerLabel           *string `json:"docker_label"`

	Architecture  string       `json:"architecture,omitempty"`
	ContextLength int          `json:"context_length"`
	VocabSize     int          `json:"vocab_size"`
	Layers        int          `json:"layers"`
	Pipeline      pipelineInfo `json:"pipeline"`
}

// pipelineInfo is the live pipeline in /info.
type pipelineInfo struct {
	Stages []stageInfo `json:"stages"`
}

type stageInfo struct {
	Index int `json:"index"`
	StageInfo
	Layers [2]int `json:"layers"` // [start, end)
}

// handleInfo answers TGI's /info: the model, the limits, and the live
// pipeline (stages, their peers and layer ranges).
func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) {
	info := s.pipe.Info()
	out := tgiInfo{
		ModelID:               s.modelName(info),
		ModelPipelineTag:      "text-generation",
		MaxConcurrentRequests: s.cfg.MaxConcurrent,
		MaxBestOf:             maxChoices,
		MaxStopSequences:      s.cfg.MaxStopSequences,
		MaxInputTokens:        s.maxPrompt(info),
		MaxTotalTokens:        info.ContextLength,
		MaxClientBatchSize:    1,
		Router:                "strata",
		Version:               Version,
		Architecture:          info.Architecture,
		ContextLength:         info.ContextLength,
		VocabSize:             info.VocabSize,
		Layers:                info.Layers,
		Pipeline:              pipelineInfo{Stages: []stageInfo{}},
	}
	if info.Digest != "" {
		out.ModelSHA = &info.Digest
	}
	for i, st := range info.Stages {
		out.Pipeline.Stages = append(out.Pipeline.Stages, stageInfo{Index: i, StageInfo: st, Layers: [2]int{st.Start, st.End}})
	}
	writeJSON(w, http.StatusOK, out)
}

// model is OpenAI's Model.
type model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (s *Server) model() model {
	return model{ID: s.modelName(s.pipe.Info()), Object: "model", Created: s.created, OwnedBy: "strata"}
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{"list", []model{s.model()}})
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	m := s.model()
	if id := r.PathValue("model"); id != m.ID {
		writeOpenAIError(w, &apiError{status: http.StatusNotFound, param: "model", code: "model_not_found",
			message: fmtf("the model '%s' does not exist; this server serves '%s'", id, m.ID)})
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// Command imagegraph serves a GraphQL API over CompShare's community image
// catalogue (the DescribeCommunityImages action). With no credentials it
// serves a built-in sandbox dataset through the real client.
//
// main only calls run, so that tests start the real server the same way.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/compshare/imagegraph/gqlhttp"
	"github.com/compshare/imagegraph/graph"
	"github.com/compshare/imagegraph/playground"
	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "imagegraph:", err)
		os.Exit(1)
	}
}

// config is every setting of the server. Defaults come first, then the
// environment, then flags.
type config struct {
	Port            int
	PublicKey       string
	PrivateKey      string
	BaseURL         string
	Region          string
	ProjectID       string
	Timeout         time.Duration
	Retries         int
	MaxInflight     int
	QPS             float64
	Burst           int
	MaxPageSize     int
	BatchWait       time.Duration
	Dedupe          bool
	Introspection   bool
	Playground      bool
	SandboxLatency  time.Duration
	LogLevel        string
	ShutdownTimeout time.Duration
	MaxBodyBytes    int64
	// FederationSecret lets a federation router read _service with
	// introspection off (X-Federation-Secret header).
	FederationSecret string
	// PrintSchema prints the subgraph SDL and exits (flag only).
	PrintSchema bool
}

func defaultConfig() config {
	return config{
		Port:            8080,
		BaseURL:         "https://api.compshare.cn",
		Region:          "cn-wlcb",
		Timeout:         10 * time.Second,
		Retries:         2,
		MaxInflight:     8,
		QPS:             20,
		Burst:           40,
		MaxPageSize:     graph.DefaultMaxPageSize,
		BatchWait:       graph.DefaultBatchWait,
		Dedupe:          true,
		Introspection:   true,
		Playground:      true,
		LogLevel:        "info",
		ShutdownTimeout: 15 * time.Second,
		MaxBodyBytes:    1 << 20,
	}
}

// setting is one configuration entry: its environment variable (the flag is
// the same name, lower case, with dashes), its usage, and where it lands.
type setting struct {
	env    string
	usage  string
	secret bool
	value  flag.Value
}

func (c *config) settings() []setting {
	return []setting{
		{env: "PORT", usage: "port to listen on (0 picks a free one)", value: intValue{&c.Port}},
		{env: "COMPSHARE_PUBLIC_KEY", usage: "CompShare API public key; with no keys the built-in sandbox is served", value: stringValue{&c.PublicKey}},
		{env: "COMPSHARE_PRIVATE_KEY", usage: "CompShare API private key (never logged)", secret: true, value: stringValue{&c.PrivateKey}},
		{env: "COMPSHARE_BASE_URL", usage: "CompShare API base URL", value: stringValue{&c.BaseURL}},
		{env: "COMPSHARE_REGION", usage: "CompShare region", value: stringValue{&c.Region}},
		{env: "COMPSHARE_PROJECT_ID", usage: "CompShare project id (optional)", value: stringValue{&c.ProjectID}},
		{env: "COMPSHARE_TIMEOUT", usage: "timeout of one upstream attempt (Go duration)", value: durationValue{&c.Timeout}},
		{env: "COMPSHARE_RETRIES", usage: "retries of a retryable upstream failure", value: intValue{&c.Retries}},
		{env: "COMPSHARE_MAX_INFLIGHT", usage: "upstream calls in flight at once", value: intValue{&c.MaxInflight}},
		{env: "COMPSHARE_QPS", usage: "upstream calls per second (token bucket rate)", value: floatValue{&c.QPS}},
		{env: "COMPSHARE_BURST", usage: "upstream calls in a burst (token bucket size)", value: intValue{&c.Burst}},
		{env: "MAX_PAGE_SIZE", usage: "largest first/last a connection accepts", value: intValue{&c.MaxPageSize}},
		{env: "BATCH_WAIT", usage: "the loaders' batch window (Go duration; 0 dispatches each load at once)", value: durationValue{&c.BatchWait}},
		{env: "DEDUPLICATE_OPERATIONS", usage: "identical concurrent GraphQL requests share one execution", value: boolValue{&c.Dedupe}},
		{env: "INTROSPECTION", usage: "serve schema introspection", value: boolValue{&c.Introspection}},
		{env: "PLAYGROUND", usage: "serve the GraphiQL playground at /", value: boolValue{&c.Playground}},
		{env: "SANDBOX_LATENCY", usage: "latency the sandbox adds to every call (sandbox mode only)", value: durationValue{&c.SandboxLatency}},
		{env: "LOG_LEVEL", usage: "debug, info, warn or error", value: stringValue{&c.LogLevel}},
		{env: "SHUTDOWN_TIMEOUT", usage: "how long in-flight requests get on SIGTERM", value: durationValue{&c.ShutdownTimeout}},
		{env: "MAX_BODY_BYTES", usage: "largest request body accepted", value: int64Value{&c.MaxBodyBytes}},
		{env: "FEDERATION_SECRET", usage: "secret a federation router sends in X-Federation-Secret to read _service while introspection is off (never logged)", secret: true, value: stringValue{&c.FederationSecret}},
	}
}

func flagName(env string) string { return strings.ReplaceAll(strings.ToLower(env), "_", "-") }

// loadConfig reads defaults, then the environment, then flags. -h lists
// every setting with its environment variable and default.
func loadConfig(args []string, getenv func(string) string, out io.Writer) (config, error) {
	cfg := defaultConfig()
	settings := cfg.settings()
	fs := flag.NewFlagSet("imagegraph", flag.ContinueOnError)
	fs.SetOutput(out)
	for _, s := range settings {
		fs.Var(s.value, flagName(s.env), fmt.Sprintf("%s (env %s)", s.usage, s.env))
	}
	fs.BoolVar(&cfg.PrintSchema, "print-schema", false, "print the federation subgraph SDL (what _service { sdl } answers) to stdout and exit")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: imagegraph [flags]\n\nEvery flag can also be set by its environment variable; flags win.\n\n")
		fs.PrintDefaults()
	}
	// Environment first, so that flags override it. Defaults printed by -h
	// are the built-in ones: a secret from the environment is never shown.
	for _, s := range settings {
		if v := getenv(s.env); v != "" {
			if err := s.value.Set(v); err != nil {
				return cfg, fmt.Errorf("%s: %w", s.env, err)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// Validate reports the first setting that cannot work.
func (c config) Validate() error {
	switch {
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("PORT must be between 0 and 65535, got %d", c.Port)
	case (c.PublicKey == "") != (c.PrivateKey == ""):
		return errors.New("set both COMPSHARE_PUBLIC_KEY and COMPSHARE_PRIVATE_KEY, or neither for the sandbox")
	case c.Timeout <= 0:
		return fmt.Errorf("COMPSHARE_TIMEOUT must be positive, got %s", c.Timeout)
	case c.Retries < 0:
		return fmt.Errorf("COMPSHARE_RETRIES must not be negative, got %d", c.Retries)
	case c.MaxInflight < 1:
		return fmt.Errorf("COMPSHARE_MAX_INFLIGHT must be at least 1, got %d", c.MaxInflight)
	case c.QPS <= 0:
		return fmt.Errorf("COMPSHARE_QPS must be positive, got %g", c.QPS)
	case c.Burst < 1:
		return fmt.Errorf("COMPSHARE_BURST must be at least 1, got %d", c.Burst)
	case c.MaxPageSize < 1:
		return fmt.Errorf("MAX_PAGE_SIZE must be at least 1, got %d", c.MaxPageSize)
	case c.BatchWait < 0 || c.BatchWait > time.Second:
		return fmt.Errorf("BATCH_WAIT must be between 0 and 1s, got %s", c.BatchWait)
	case c.SandboxLatency < 0:
		return fmt.Errorf("SANDBOX_LATENCY must not be negative, got %s", c.SandboxLatency)
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("SHUTDOWN_TIMEOUT must be positive, got %s", c.ShutdownTimeout)
	case c.MaxBodyBytes < 1:
		return fmt.Errorf("MAX_BODY_BYTES must be positive, got %d", c.MaxBodyBytes)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	return nil
}

// Sandbox reports whether the server serves the built-in sandbox.
func (c config) Sandbox() bool { return c.PublicKey == "" && c.PrivateKey == "" }

// LogValue lists the settings with the private key masked.
func (c config) LogValue() slog.Value {
	var attrs []slog.Attr
	for _, s := range c.settings() {
		v := s.value.String()
		if s.secret && v != "" {
			v = "****"
		}
		attrs = append(attrs, slog.String(s.env, v))
	}
	return slog.GroupValue(attrs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("LOG_LEVEL must be debug, info, warn or error, got %q", s)
	}
	return l, nil
}

// run starts the server and blocks until ctx is done, then shuts down.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.PrintSchema {
		_, err := io.WriteString(stdout, graph.SubgraphSDL())
		return err
	}
	level, _ := parseLevel(cfg.LogLevel)
	log := slog.New(requestIDHandler{slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: level})})

	upstreamURL := cfg.BaseURL
	publicKey, privateKey := cfg.PublicKey, cfg.PrivateKey
	var sb sandboxServer
	if cfg.Sandbox() {
		var stopSandbox func()
		sb, stopSandbox, err = startSandbox(cfg)
		if err != nil {
			return err
		}
		defer stopSandbox()
		upstreamURL, publicKey, privateKey = sb.url, sb.publicKey, sb.privateKey
		log.Warn("no CompShare credentials: serving the built-in sandbox dataset, not the real catalogue",
			"sandbox_url", sb.url, "sandbox_latency", cfg.SandboxLatency.String())
	}
	client, err := upstream.NewClient(
		upstream.WithBaseURL(upstreamURL),
		upstream.WithRegion(cfg.Region),
		upstream.WithProjectID(cfg.ProjectID),
		upstream.WithCredentials(publicKey, privateKey),
		upstream.WithTimeout(cfg.Timeout),
		upstream.WithRetryPolicy(upstream.RetryPolicy{MaxRetries: cfg.Retries}),
		upstream.WithMaxInFlight(cfg.MaxInflight),
		upstream.WithRateLimit(cfg.QPS, cfg.Burst),
		upstream.WithLogger(log),
	)
	if err != nil {
		return fmt.Errorf("upstream client: %w", err)
	}

	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(cfg.Port)))
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           routes(cfg, client, sb.server, log),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "mode", mode(cfg), "config", cfg)

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

func mode(cfg config) string {
	if cfg.Sandbox() {
		return "sandbox"
	}
	return "upstream"
}

type sandboxServer struct {
	server                     *sandbox.Server
	url, publicKey, privateKey string
}

// startSandbox serves the sandbox on a loopback port with a fresh key pair,
// so that sandbox mode goes through the real client, signer and decoder.
func startSandbox(cfg config) (sandboxServer, func(), error) {
	pub, priv := "sandbox-"+randomHex(8), randomHex(20)
	sb, err := sandbox.New(sandbox.WithKeys(pub, priv), sandbox.WithLatency(cfg.SandboxLatency))
	if err != nil {
		return sandboxServer{}, nil, fmt.Errorf("sandbox: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return sandboxServer{}, nil, fmt.Errorf("sandbox: %w", err)
	}
	srv := &http.Server{Handler: sb, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return sandboxServer{server: sb, url: "http://" + ln.Addr().String(), publicKey: pub, privateKey: priv}, func() { _ = srv.Close() }, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// routes wires the endpoints and the middleware around them. sb is the
// sandbox in sandbox mode, nil otherwise.
func routes(cfg config, client *upstream.Client, sb *sandbox.Server, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/query", graph.NewHandler(graph.HandlerConfig{
		Service:               client,
		Log:                   log,
		MaxPageSize:           cfg.MaxPageSize,
		BatchWait:             cfg.BatchWait,
		DeduplicateOperations: cfg.Dedupe,
		Introspection:         cfg.Introspection,
		FederationSecret:      cfg.FederationSecret,
	}))
	if sb != nil {
		// The sandbox's call counters, so that end-to-end tests of the
		// built binary can count upstream calls. Sandbox mode only.
		mux.HandleFunc("GET /sandbox/stats", func(w http.ResponseWriter, r *http.Request) {
			st := sb.Stats()
			writeJSON(w, http.StatusOK, map[string]any{"calls": st.Calls, "maxInFlight": st.MaxInFlight, "inFlight": st.InFlight})
		})
		mux.HandleFunc("POST /sandbox/stats/reset", func(w http.ResponseWriter, r *http.Request) {
			sb.ResetStats()
			w.WriteHeader(http.StatusNoContent)
		})
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "mode": mode(cfg), "sandbox": cfg.Sandbox()})
	})
	mux.Handle("GET /readyz", newReadiness(client, 5*time.Second))
	if cfg.Playground {
		mux.Handle("/", playground.Handler("/query"))
	}
	return withRequestID(withLogging(log, withRecover(log, withBodyLimit(cfg.MaxBodyBytes, mux))))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readiness answers /readyz with the result of a cheap upstream call
// (Limit=1), cached for ttl so that probes cannot hammer the upstream.
type readiness struct {
	client *upstream.Client
	ttl    time.Duration

	mu      sync.Mutex
	checked time.Time
	err     error
}

func newReadiness(c *upstream.Client, ttl time.Duration) *readiness {
	return &readiness{client: c, ttl: ttl}
}

func (rd *readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rd.mu.Lock()
	if time.Since(rd.checked) > rd.ttl {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		_, rd.err = rd.client.DescribeCommunityImages(ctx, &upstream.DescribeCommunityImagesRequest{Limit: upstream.Int(1)})
		cancel()
		rd.checked = time.Now()
	}
	err, checked := rd.err, rd.checked
	rd.mu.Unlock()
	if err != nil {
		body := map[string]any{"status": "unavailable", "checkedAt": checked.UTC().Format(time.RFC3339)}
		if api, ok := upstream.AsAPIError(err); ok {
			body["kind"] = string(api.Kind)
			body["retCode"] = api.RetCode
			body["requestId"] = api.RequestID
		}
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "checkedAt": checked.UTC().Format(time.RFC3339)})
}

type requestIDKey struct{}

// RequestID returns the id of the request ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// withRequestID takes the caller's X-Request-Id when it is a sane token, or
// makes one, and echoes it in the response.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !saneID(id) {
			id = randomHex(8)
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

func saneID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// requestIDHandler adds the request id of the record's context to every log line.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func withLogging(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.Int("bytes", rec.bytes),
			slog.Duration("duration", time.Since(start)))
	})
}

// withRecover turns a panic outside the GraphQL executor into a 500 with a
// plain body and a log line, never a stack trace in the response.
func withRecover(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.ErrorContext(r.Context(), "panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				gqlhttp.WriteError(w, http.StatusInternalServerError, "internal error", gqlhttp.CodeInternal)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// withBodyLimit refuses a body declared larger than limit with 413 and caps
// the rest, so that no request can make the server read without bound.
func withBodyLimit(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			gqlhttp.WriteError(w, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("request body larger than %d bytes", limit), graph.CodeBadUserInput)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// The flag.Value adapters that let one setting table serve env and flags.
type (
	stringValue   struct{ p *string }
	intValue      struct{ p *int }
	int64Value    struct{ p *int64 }
	floatValue    struct{ p *float64 }
	boolValue     struct{ p *bool }
	durationValue struct{ p *time.Duration }
)

func (v stringValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}
func (v stringValue) Set(s string) error { *v.p = s; return nil }

func (v intValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.Itoa(*v.p)
}
func (v intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not an integer", s)
	}
	*v.p = n
	return nil
}

func (v int64Value) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatInt(*v.p, 10)
}
func (v int64Value) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not an integer", s)
	}
	*v.p = n
	return nil
}

func (v floatValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatFloat(*v.p, 'f', -1, 64)
}
func (v floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return fmt.Errorf("%q is not a number", s)
	}
	*v.p = f
	return nil
}

func (v boolValue) String() string {
	if v.p == nil {
		return "false"
	}
	return strconv.FormatBool(*v.p)
}
func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a boolean", s)
	}
	*v.p = b
	return nil
}
func (v boolValue) IsBoolFlag() bool { return true }

func (v durationValue) String() string {
	if v.p == nil {
		return "0s"
	}
	return v.p.String()
}
func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 10s, 500ms)", s)
	}
	*v.p = d
	return nil
}

// Package httpserver is the server's HTTP plumbing: the routes, the
// middleware every request passes (request ids, tracing, client
// identification, the access log, panic recovery, the body limit), the
// health and readiness endpoints, the metrics listener, and the listen,
// serve, drain and shut down sequence.
//
// It knows the handlers it routes to only as http.Handlers: nothing of
// GraphQL, the upstream or the caches.
package httpserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/compshare/imagegraph/internal/access"
	"github.com/compshare/imagegraph/internal/codes"
	"github.com/compshare/imagegraph/internal/gqlhttp"
	"github.com/compshare/imagegraph/internal/telemetry"
)

// Routes are what the server serves.
type Routes struct {
	// Query is the GraphQL endpoint, at /query.
	Query http.Handler
	// Playground, when set, is served at / (GraphiQL).
	Playground http.Handler
	// Sandbox, when set, is served under /sandbox/ (the built-in sandbox's
	// own endpoints, for tests and demos; sandbox mode only).
	Sandbox http.Handler
	// Ready answers /readyz.
	Ready *Readiness
	// Health is what /healthz says besides "status": "ok".
	Health map[string]any
}

// Middleware is what every request passes on its way to the routes.
type Middleware struct {
	// Trusted are the proxies whose X-Forwarded-For names the client.
	Trusted []netip.Prefix
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes int64
	// Telemetry traces and logs each request.
	Telemetry *telemetry.Telemetry
	// Log receives panics.
	Log *slog.Logger
}

// Handler returns r behind m: the trace outside the log, so that the
// request's log lines name it.
func Handler(r Routes, m Middleware) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/query", r.Query)
	if r.Sandbox != nil {
		mux.Handle("/sandbox/", r.Sandbox)
	}
	health := map[string]any{"status": "ok"}
	for k, v := range r.Health {
		health[k] = v
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, health)
	})
	mux.Handle("GET /readyz", r.Ready)
	if r.Playground != nil {
		mux.Handle("/", r.Playground)
	}
	var h http.Handler = mux
	h = withBodyLimit(m.MaxBodyBytes, h)
	h = withRecover(m.Log, h)
	h = m.Telemetry.AccessLog(h)
	h = access.Identify(m.Trusted, h)
	h = m.Telemetry.Trace(h)
	return withRequestID(h)
}

// Limits bound what one client's connection may hold: the time it may
// take to send a request, to read an answer, to sit idle, the size of its
// headers, and the connections open at once. docs/reliability.md
// ("Hostile clients") says which client each one stops.
type Limits struct {
	// ReadHeaderTimeout bounds the time to send a request's headers
	// (HTTP_READ_HEADER_TIMEOUT): headers trickled a byte at a time, or a
	// connection that sends nothing, are cut off.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the time to send a whole request, body included
	// (HTTP_READ_TIMEOUT): a trickled or half-sent body is cut off.
	ReadTimeout time.Duration
	// WriteTimeout bounds the time from the request's end to the answer's
	// (HTTP_WRITE_TIMEOUT): a client that does not read its answer is cut
	// off. WebSockets and SSE streams have LIVE_WRITE_TIMEOUT instead.
	WriteTimeout time.Duration
	// IdleTimeout bounds a kept-alive connection's wait for its next
	// request (HTTP_IDLE_TIMEOUT).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (MAX_HEADER_BYTES).
	MaxHeaderBytes int
	// MaxConnections bounds the connections open at once, streams
	// included (MAX_CONNECTIONS; 0: no bound).
	MaxConnections int
}

// DefaultLimits are the limits of a server configured with nothing.
var DefaultLimits = Limits{
	ReadHeaderTimeout: 5 * time.Second,
	ReadTimeout:       15 * time.Second,
	WriteTimeout:      time.Minute,
	IdleTimeout:       2 * time.Minute,
	MaxHeaderBytes:    64 << 10,
	MaxConnections:    4096,
}

// New returns the API's http.Server for h, with lim's timeouts: a slow
// client cannot hold a connection open with a trickled header, body or
// idle keep-alive. (Listen applies lim's bound on connections.)
func New(h http.Handler, lim Limits, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Listen listens on addr, holding at most lim.MaxConnections connections
// open at once.
func Listen(addr string, lim Limits) (*ConnLimiter, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return LimitConnections(ln, lim.MaxConnections), nil
}

// Serve serves srv on ln until ctx is done, then drains: /readyz answers
// 503 at once (ready.Drain) while the server keeps serving for drain, so
// that load balancers take the replica out; then closeStreams ends the
// long-lived streams (WebSockets, SSE; Shutdown does not wait for those),
// and in-flight requests get timeout to finish.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, ready *Readiness, drain, timeout time.Duration, closeStreams func(), log *slog.Logger) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	ready.Drain()
	log.Info("draining", "drain", drain.String())
	select {
	case <-time.After(drain):
	case err := <-serveErr:
		return err
	}
	if closeStreams != nil {
		closeStreams()
	}
	log.Info("shutting down", "timeout", timeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// ServeMetrics serves metrics at /metrics on a listener of its own at addr,
// so that they are never public on the API's port. It returns the address
// it listens on and the function that stops it.
func ServeMetrics(addr string, metrics http.Handler, log *slog.Logger) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("METRICS_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// WriteJSON answers v as JSON with status, not to be cached.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
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
				gqlhttp.WriteError(w, http.StatusInternalServerError, "internal error", codes.Internal)
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
				fmt.Sprintf("request body larger than %d bytes", limit), codes.BadUserInput)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Announcement is what the first log line of a server says: where to go.
type Announcement struct {
	// API and Metrics are the addresses the server listens on (Metrics ""
	// when off).
	API, Metrics string
	// Mode is "sandbox" or "upstream"; Playground says whether / serves
	// GraphiQL; Tracing says where spans go.
	Mode       string
	Playground bool
	Tracing    string
}

// Announce logs a's line: the URLs of the playground, /query and /metrics
// on this host, and the mode.
func Announce(log *slog.Logger, a Announcement) {
	local := func(addr string) string {
		_, port, _ := net.SplitHostPort(addr)
		return "http://localhost:" + port
	}
	attrs := []any{"mode", a.Mode}
	if a.Playground {
		attrs = append(attrs, "playground", local(a.API)+"/")
	}
	attrs = append(attrs, "query", local(a.API)+"/query")
	if a.Metrics != "" {
		attrs = append(attrs, "metrics", local(a.Metrics)+"/metrics")
	}
	log.Info("listening", append(attrs, "addr", a.API, "tracing", a.Tracing)...)
	if a.Metrics != "" {
		log.Info("metrics listening", "addr", a.Metrics, "path", "/metrics")
	}
}

package telemetry

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
)

// Routes are the paths that get an HTTP handler label of their own; any
// other path counts as "other". A route ending in "/" (but "/" itself)
// names every path under it: the sandbox's change endpoints carry an id.
var Routes = []string{"/query", "/healthz", "/readyz", "/", "/sandbox/stats", "/sandbox/stats/reset", "/sandbox/versions/", "/sandbox/groups/"}

func route(path string) string {
	for _, r := range Routes {
		if path == r || r != "/" && strings.HasSuffix(r, "/") && strings.HasPrefix(path, r) {
			return r
		}
	}
	return "other"
}

// methodLabel bounds the method label: a client can send any token.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodOptions, http.MethodHead:
		return m
	}
	return "other"
}

// probes are the paths whose requests get no span: a load balancer's
// every few seconds would bury the traces worth reading.
func probe(path string) bool { return path == "/healthz" || path == "/readyz" }

// Trace starts a server span for each request, continuing the trace an
// incoming W3C traceparent names (a router's, a frontend's), when tracing
// is on. With it off, it still reads an incoming traceparent, so that the
// log lines of the request name the caller's trace.
func (t *Telemetry) Trace(next http.Handler) http.Handler {
	if t.tracer == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Traceparent") != "" {
				r = r.WithContext(propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
			}
			next.ServeHTTP(w, r)
		})
	}
	return otelhttp.NewHandler(next, "http",
		otelhttp.WithTracerProvider(t.tracing.provider),
		otelhttp.WithPropagators(t.propagators),
		// The metrics are Prometheus', below: none of otelhttp's own.
		otelhttp.WithMeterProvider(noop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return r.Method + " " + route(r.URL.Path)
		}),
		otelhttp.WithFilter(func(r *http.Request) bool { return !probe(r.URL.Path) }),
	)
}

// AccessLog counts each request in the HTTP metrics and writes its log
// line once it is answered: method, path, status, bytes, duration, and,
// for a GraphQL request, what its operation did (see Operation). The line
// of a request that carried a GraphQL operation is "operation"; the others'
// "request".
func (t *Telemetry) AccessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		op := &Operation{}
		ctx := context.WithValue(r.Context(), operationKey{}, op)
		rec := &statusRecorder{ResponseWriter: w}
		if t.metrics != nil {
			t.metrics.httpInFlight.Inc()
			defer t.metrics.httpInFlight.Dec()
		}
		next.ServeHTTP(rec, r.WithContext(ctx))
		d := time.Since(start)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		t.metrics.observeHTTP(route(r.URL.Path), methodLabel(r.Method), rec.status, d)
		if !t.log.Enabled(ctx, slog.LevelInfo) {
			return
		}
		attrs := make([]slog.Attr, 0, 8)
		attrs = append(attrs,
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.Int("bytes", rec.bytes),
			slog.Duration("duration", d))
		if t.attrs != nil {
			attrs = append(attrs, t.attrs(r)...)
		}
		msg := "request"
		if op.ran {
			msg = "operation"
			attrs = append(attrs, op.logAttr())
		}
		t.log.LogAttrs(ctx, slog.LevelInfo, msg, attrs...)
	})
}

// statusRecorder notes the status and the size of an answer.
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

// Flush passes a streaming transport's flush on (Server-Sent Events).
func (s *statusRecorder) Flush() {
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Hijack hands the connection to a WebSocket, which answers 101 itself.
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if s.status == 0 {
		s.status = http.StatusSwitchingProtocols
	}
	return http.NewResponseController(s.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

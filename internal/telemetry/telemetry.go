package telemetry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/compshare/imagegraph/internal/answers"
)

// Options configure New.
type Options struct {
	// Metrics are recorded into (nil: none).
	Metrics *Metrics
	// Tracing receives spans (nil: none).
	Tracing *Tracing
	// Log receives the line of each request (nil: none).
	Log *slog.Logger
	// RequestAttrs, when set, adds attributes of the caller's to a
	// request's log line (its client, say); it runs after the request was
	// answered.
	RequestAttrs func(*http.Request) []slog.Attr
}

// Telemetry records what the server does into its metrics, traces and log.
// Build it with New; its methods are the hooks the other packages report
// to, and are safe for concurrent use.
type Telemetry struct {
	metrics     *Metrics
	tracing     *Tracing
	tracer      trace.Tracer // nil when tracing is off
	propagators propagation.TextMapPropagator
	log         *slog.Logger
	attrs       func(*http.Request) []slog.Attr
}

// New returns the Telemetry of opts.
func New(opts Options) *Telemetry {
	t := &Telemetry{
		metrics:     opts.Metrics,
		tracing:     opts.Tracing,
		tracer:      opts.Tracing.tracer(),
		propagators: propagation.TraceContext{},
		log:         opts.Log,
		attrs:       opts.RequestAttrs,
	}
	if opts.Tracing != nil {
		t.propagators = opts.Tracing.propagators
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	return t
}

// Metrics returns the metrics recorded into, or nil.
func (t *Telemetry) Metrics() *Metrics { return t.metrics }

// Answered records a request answered from the cache of answers, or by
// an identical request's execution it waited for: it counts as a
// successful operation of its name and type, of the cost it was charged,
// and its log line says so.
func (t *Telemetry) Answered(ctx context.Context, h answers.Hit) {
	d := time.Since(h.Start)
	if m := t.metrics; m != nil {
		typ := h.Type
		if typ == "" {
			typ = unknownOperation
		}
		label := m.names.label(h.Name)
		m.operations.WithLabelValues(label, typ, "success").Inc()
		observe(m.opDuration.WithLabelValues(label, typ), d.Seconds(), trace.SpanContextFromContext(ctx))
		m.opCost.Observe(float64(h.Cost))
		m.opCalls.Observe(0)
	}
	if op := operationFrom(ctx); op != nil {
		answer := "hit"
		if h.Shared {
			answer = "shared"
		}
		*op = Operation{ran: true, Name: h.Name, Type: h.Type, Cost: float64(h.Cost), Measured: true,
			CacheHits: h.Reads, Duration: d, Answer: answer}
	}
}

// NewLogHandler returns the handler of the server's log lines on w at
// level: text for a person (at a terminal, say), else JSON lines for a
// collector.
func NewLogHandler(w io.Writer, text bool, level slog.Level) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if text {
		return slog.NewTextHandler(w, opts)
	}
	return slog.NewJSONHandler(w, opts)
}

// LogHandler wraps h so that a record logged with a context that belongs
// to a trace (a sampled span's, or an incoming traceparent's) carries its
// trace_id and span_id.
func LogHandler(h slog.Handler) slog.Handler { return traceHandler{h} }

type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

package telemetry

import (
	"context"
	"log/slog"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/compshare/imagegraph/internal/limits"
	"github.com/compshare/imagegraph/upstream"
)

// Operation is what one GraphQL operation did, as its request's log line
// tells it.
type Operation struct {
	ran bool
	// Name is the operation's name ("" when anonymous or unknown), Type
	// query, mutation or subscription ("" when the document named none).
	Name, Type string
	// Cost is its estimated cost, when it was measured (Measured).
	Cost     float64
	Measured bool
	// UpstreamCalls and CacheHits are the upstream calls it made itself
	// and the reads the response cache answered.
	UpstreamCalls, CacheHits int
	// Duration is the time from receiving it to its answer.
	Duration time.Duration
	// ErrorCodes are the extensions.code of its errors, in order.
	ErrorCodes []string
	// Rejected reports that it was refused before it ran (a request error).
	Rejected bool
	// Answer is "hit" when the cache of answers answered the request, or
	// "shared" when an identical request's execution did: nothing ran for
	// it ("" otherwise).
	Answer string
}

type operationKey struct{}

// operationFrom returns the Operation record of the request of ctx, or nil
// outside AccessLog.
func operationFrom(ctx context.Context) *Operation {
	op, _ := ctx.Value(operationKey{}).(*Operation)
	return op
}

// logAttr is the operation as the "graphql" group of a log line.
func (op *Operation) logAttr() slog.Attr {
	attrs := make([]any, 0, 10)
	attrs = append(attrs,
		slog.String("operation", op.Name), slog.String("type", op.Type),
		slog.Int("upstream_calls", op.UpstreamCalls), slog.Int("cache_hits", op.CacheHits),
		slog.Duration("duration", op.Duration))
	if op.Measured {
		attrs = append(attrs, slog.Float64("cost", op.Cost))
	}
	if len(op.ErrorCodes) > 0 {
		attrs = append(attrs, slog.Any("error_codes", op.ErrorCodes))
	}
	if op.Rejected {
		attrs = append(attrs, slog.Bool("rejected", true))
	}
	if op.Answer != "" {
		attrs = append(attrs, slog.String("answer_cache", op.Answer))
	}
	return slog.Group("graphql", attrs...)
}

// Extension returns the gqlgen handler extension that measures each
// operation (metrics, the operation's span, its log record) and, with
// tracing on, gives each root field a span. It never intercepts plain
// fields, so the executor keeps reading them inline. Add it before the
// others, so that it sees the answer as they leave it.
func (t *Telemetry) Extension() graphql.HandlerExtension {
	if t.tracer != nil {
		return tracingExtension{operationExtension{t}}
	}
	return operationExtension{t}
}

// operationExtension measures operations.
type operationExtension struct{ t *Telemetry }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
	graphql.ResponseInterceptor
} = operationExtension{}

func (operationExtension) ExtensionName() string                   { return "Telemetry" }
func (operationExtension) Validate(graphql.ExecutableSchema) error { return nil }

// running is an operation under way: its span and the codes of the errors
// its answers carried so far (an operation with @defer answers more than
// once).
type running struct {
	span  trace.Span
	codes []string
}

type runningKey struct{}

// InterceptOperation starts the operation's span.
func (e operationExtension) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	run := &running{}
	if e.t.tracer != nil {
		ctx, run.span = e.t.operationSpan(ctx, graphql.GetOperationContext(ctx))
	}
	return next(context.WithValue(ctx, runningKey{}, run))
}

// operationSpan starts the span of the operation of oc, from the moment
// it was received.
func (t *Telemetry) operationSpan(ctx context.Context, oc *graphql.OperationContext) (context.Context, trace.Span) {
	name, typ := operationOf(oc)
	return t.tracer.Start(ctx, spanName(name, typ),
		trace.WithTimestamp(startOf(oc)),
		trace.WithAttributes(semconv.GraphQLOperationName(name), semconv.GraphQLOperationTypeKey.String(typ)))
}

// InterceptResponse records the operation once its last answer is made;
// an operation refused before it ran comes here only.
func (e operationExtension) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil {
		return resp
	}
	run, _ := ctx.Value(runningKey{}).(*running)
	rejected := run == nil
	if rejected {
		run = &running{}
	}
	run.codes = appendCodes(run.codes, resp.Errors)
	if resp.HasNext != nil && *resp.HasNext {
		return resp
	}
	e.t.finish(ctx, run, rejected, resp.Data != nil)
	return resp
}

// finish records an operation that ended: its metrics, its span and its
// request's log record.
func (t *Telemetry) finish(ctx context.Context, run *running, rejected, data bool) {
	var oc *graphql.OperationContext
	if graphql.HasOperationContext(ctx) {
		oc = graphql.GetOperationContext(ctx)
	}
	name, typ := operationOf(oc)
	d := time.Since(startOf(oc))
	usage := upstream.UsageFrom(ctx).Report()
	res := limits.ResultFrom(ctx)

	outcome := "success"
	switch {
	case rejected:
		outcome = "rejected"
	case len(run.codes) > 0:
		outcome = "error"
	}
	sc := trace.SpanContextFromContext(ctx)
	if m := t.metrics; m != nil {
		var label string
		switch {
		case oc != nil && oc.Operation != nil:
			label = m.names.label(name)
		case name != "":
			// Named by a request whose document did not run: a name
			// already counted, or other, so that junk requests cannot use
			// up the bound on names.
			label = m.names.known(name)
		default:
			label = unknownOperation
		}
		typeLabel := typ
		if typeLabel == "" {
			typeLabel = unknownOperation
		}
		m.operations.WithLabelValues(label, typeLabel, outcome).Inc()
		observe(m.opDuration.WithLabelValues(label, typeLabel), d.Seconds(), sc)
		for _, c := range run.codes {
			m.errors.WithLabelValues(c).Inc()
		}
		if res != nil {
			m.opCost.Observe(res.Cost)
		}
		if !rejected {
			m.opCalls.Observe(float64(usage.Calls))
		}
	}
	if run.span != nil {
		attrs := []attribute.KeyValue{
			attribute.Int("imagegraph.upstream.calls", usage.Calls),
			attribute.Int("imagegraph.cache.hits", usage.CacheHits),
		}
		if res != nil {
			attrs = append(attrs, attribute.Float64("imagegraph.cost.estimated", res.Cost))
		}
		if len(run.codes) > 0 {
			attrs = append(attrs, attribute.StringSlice("imagegraph.error.codes", run.codes))
			if !data {
				run.span.SetStatus(codes.Error, run.codes[0])
			}
		}
		run.span.SetAttributes(attrs...)
		run.span.End()
	} else if rejected && t.tracer != nil {
		// A refused operation gets a span too, so that the trace says why
		// the request did nothing.
		_, span := t.operationSpan(ctx, oc)
		span.SetAttributes(attribute.StringSlice("imagegraph.error.codes", run.codes))
		span.SetStatus(codes.Error, firstOr(run.codes, "rejected"))
		span.End()
	}
	if op := operationFrom(ctx); op != nil {
		*op = Operation{
			ran: true, Name: name, Type: typ,
			UpstreamCalls: usage.Calls, CacheHits: usage.CacheHits,
			Duration: d, ErrorCodes: run.codes, Rejected: rejected,
		}
		if res != nil {
			op.Cost, op.Measured = res.Cost, true
		}
	}
}

// observe records v in o, with the trace as an exemplar when it is sampled
// (OpenMetrics scrapers link the bucket to the trace).
func observe(o prometheus.Observer, v float64, sc trace.SpanContext) {
	if sc.IsSampled() {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(v, prometheus.Labels{"trace_id": sc.TraceID().String()})
			return
		}
	}
	o.Observe(v)
}

// operationOf returns the name and type of the operation of oc, when it
// was found in its document.
func operationOf(oc *graphql.OperationContext) (name, typ string) {
	if oc == nil || oc.Operation == nil {
		if oc != nil && len(oc.OperationName) <= maxNameLen {
			return oc.OperationName, ""
		}
		return "", ""
	}
	return oc.Operation.Name, string(oc.Operation.Operation)
}

// startOf is when the operation was received: gqlgen's operation start,
// or now.
func startOf(oc *graphql.OperationContext) time.Time {
	if oc != nil && !oc.Stats.OperationStart.IsZero() {
		return oc.Stats.OperationStart
	}
	return time.Now()
}

// spanName is the span name OpenTelemetry's GraphQL conventions give an
// operation: its type and its name.
func spanName(name, typ string) string {
	switch {
	case typ == "":
		return "graphql"
	case name == "":
		return typ
	}
	return typ + " " + name
}

// appendCodes appends the extensions.code of each error to codes.
func appendCodes(codes []string, errs gqlerror.List) []string {
	for _, err := range errs {
		codes = append(codes, codeLabel(err))
	}
	return codes
}

// codeLabel is an error's code as a label: its extensions.code when that
// is a sane code, else INTERNAL_SERVER_ERROR's stand-in, UNKNOWN.
func codeLabel(err *gqlerror.Error) string {
	c, _ := err.Extensions["code"].(string)
	if c == "" || len(c) > 64 {
		return "UNKNOWN"
	}
	for _, r := range c {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return "UNKNOWN"
		}
	}
	return c
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// tracingExtension is operationExtension with a span per root field.
type tracingExtension struct{ operationExtension }

var _ graphql.RootFieldInterceptor = tracingExtension{}

// InterceptRootField gives the root field a span: the time it took to
// resolve it and everything beneath it.
func (e tracingExtension) InterceptRootField(ctx context.Context, next graphql.RootResolver) graphql.Marshaler {
	fc := graphql.GetRootFieldContext(ctx)
	if fc == nil {
		return next(ctx)
	}
	alias := fc.Field.Alias
	parent := "Query"
	if d := fc.Field.ObjectDefinition; d != nil {
		parent = d.Name
	}
	ctx, span := e.t.tracer.Start(ctx, parent+"."+fc.Field.Name,
		trace.WithAttributes(
			attribute.String("graphql.field.name", fc.Field.Name),
			attribute.String("graphql.field.alias", alias),
			attribute.String("graphql.field.parent_type", parent)))
	defer span.End()
	m := next(ctx)
	var failed []string
	for _, err := range graphql.GetErrors(ctx) {
		if len(err.Path) > 0 {
			if k, ok := err.Path[0].(ast.PathName); ok && string(k) == alias {
				failed = append(failed, codeLabel(err))
			}
		}
	}
	if len(failed) > 0 {
		span.SetAttributes(attribute.StringSlice("imagegraph.error.codes", failed))
		span.SetStatus(codes.Error, failed[0])
	}
	return m
}

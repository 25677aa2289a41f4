package telemetry

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/compshare/imagegraph/internal/cache"
	"github.com/compshare/imagegraph/upstream"
)

// UpstreamObserver returns the hook the upstream client reports each
// attempt to (upstream.WithObserver): it counts the attempts, their
// outcomes and RetCodes, their latency, the retries and the time waited
// for the rate limiter, and, with tracing on, gives each attempt a client
// span. baseURL is the upstream's, for the spans' server.address.
func (t *Telemetry) UpstreamObserver(baseURL string) upstream.Observer {
	o := &upstreamObserver{t: t}
	if u, err := url.Parse(baseURL); err == nil {
		o.host = u.Hostname()
		if p := u.Port(); p != "" {
			o.port, _ = strconv.Atoi(p)
		}
	}
	return o
}

type upstreamObserver struct {
	t    *Telemetry
	host string
	port int
}

// knownRetCodes are the RetCodes UPSTREAM.md names: each gets a label of
// its own; any other counts as "other", so that an upstream inventing
// codes cannot grow the metric without bound.
var knownRetCodes = map[int]string{}

func init() {
	for _, c := range []int{160, 161, 171, 172, 230, 8433, 226601, 226602, 226603, 226604, 226605, 226606} {
		knownRetCodes[c] = strconv.Itoa(c)
	}
}

func retCodeLabel(e *upstream.APIError) string {
	switch {
	case e == nil:
		return "0"
	case e.Kind != upstream.KindRetCode:
		return "none"
	}
	if l, ok := knownRetCodes[e.RetCode]; ok {
		return l
	}
	return "other"
}

func (o *upstreamObserver) StartAttempt(ctx context.Context, n int) func(upstream.AttemptReport) {
	var span trace.Span
	start := time.Now()
	if o.t.tracer != nil {
		reason := cache.Reason(ctx)
		if reason == "" {
			reason = "none"
		}
		attrs := []attribute.KeyValue{
			semconv.HTTPRequestMethodPost,
			attribute.String("compshare.action", upstream.ActionDescribeCommunityImages),
			attribute.Int("imagegraph.upstream.attempt", n),
			attribute.String("imagegraph.cache.result", reason),
		}
		if o.host != "" {
			attrs = append(attrs, semconv.ServerAddress(o.host))
		}
		if o.port != 0 {
			attrs = append(attrs, semconv.ServerPort(o.port))
		}
		_, span = o.t.tracer.Start(ctx, upstream.ActionDescribeCommunityImages,
			trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start), trace.WithAttributes(attrs...))
	}
	return func(r upstream.AttemptReport) {
		outcome := "ok"
		if r.Err != nil {
			outcome = string(r.Err.Kind)
		}
		if m := o.t.metrics; m != nil {
			m.upLimiterWait.Observe(r.LimiterWait.Seconds())
			if r.Sent {
				m.upRequests.WithLabelValues(outcome, retCodeLabel(r.Err)).Inc()
				m.upDuration.WithLabelValues(outcome).Observe(r.Duration.Seconds())
				if r.Attempt > 1 {
					m.upRetries.Inc()
				}
			}
		}
		if span == nil {
			return
		}
		if r.Sent {
			span.AddEvent("sent", trace.WithTimestamp(start.Add(r.SlotWait+r.LimiterWait)))
		}
		attrs := []attribute.KeyValue{
			attribute.Float64("imagegraph.upstream.slot_wait_ms", ms(r.SlotWait)),
			attribute.Float64("imagegraph.upstream.limiter_wait_ms", ms(r.LimiterWait)),
			attribute.String("imagegraph.upstream.outcome", outcome),
			attribute.Bool("imagegraph.upstream.retry", r.Retry),
		}
		if r.HTTPStatus != 0 {
			attrs = append(attrs, semconv.HTTPResponseStatusCode(r.HTTPStatus))
		}
		if r.RequestID != "" {
			attrs = append(attrs, attribute.String("compshare.request_id", r.RequestID))
		}
		if r.Err == nil {
			attrs = append(attrs, attribute.Int("compshare.ret_code", 0))
		} else {
			if r.Err.Kind == upstream.KindRetCode {
				attrs = append(attrs, attribute.Int("compshare.ret_code", r.Err.RetCode))
			}
			attrs = append(attrs, semconv.ErrorTypeKey.String(string(r.Err.Kind)))
			// The error's text is the redacted one errors and logs carry.
			span.SetStatus(codes.Error, r.Err.Error())
		}
		span.SetAttributes(attrs...)
		span.End()
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

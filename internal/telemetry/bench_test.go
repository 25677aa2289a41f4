package telemetry

import (
	"context"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/compshare/imagegraph/upstream"
)

// BenchmarkRecordRequest is what the telemetry records of one request of
// the reference operation, on the request's path: its HTTP metrics, its
// operation's (metrics and the log record) and its one upstream attempt's,
// with metrics off and on (tracing off). Compare with the reference
// operation's CPU a request (README, Performance): the difference between
// the two is what metrics cost.
func BenchmarkRecordRequest(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "metrics-off"
		var m *Metrics
		if on {
			name, m = "metrics-on", NewMetrics(DefaultMaxOperationNames)
		}
		b.Run(name, func(b *testing.B) {
			t := New(Options{Metrics: m})
			obs := t.UpstreamObserver("http://127.0.0.1:1")
			oc := &graphql.OperationContext{
				Operation: &ast.OperationDefinition{Name: "Reference", Operation: ast.Query},
				Stats:     graphql.Stats{OperationStart: time.Now()},
			}
			ctx := graphql.WithOperationContext(context.Background(), oc)
			ctx = upstream.WithUsage(ctx, &upstream.Usage{})
			ctx = context.WithValue(ctx, operationKey{}, &Operation{})
			report := upstream.AttemptReport{Attempt: 1, Sent: true, Duration: time.Millisecond, HTTPStatus: 200}
			b.ReportAllocs()
			for b.Loop() {
				obs.StartAttempt(ctx, 1)(report)
				t.finish(ctx, &running{}, false, true)
				t.metrics.observeHTTP("/query", "POST", 200, time.Millisecond)
			}
		})
	}
}

// Package telemetry is what the server tells its operators: Prometheus
// metrics, OpenTelemetry traces, and one log line per request that, for a
// GraphQL request, says what its operation did.
//
// The other packages do not know about it. They report through narrow
// hooks that it plugs into, in server.go: the upstream client's Observer
// (each attempt), the response cache's and the fleet's Stats (read when
// Prometheus scrapes), the GraphQL executor's extension interfaces (each
// operation and root field), and the deduplication's Shared hook. It reads
// their state; it changes none of it.
//
// Metrics are served on a listener of their own (METRICS_ADDR), never on
// the public port. Traces are off unless the standard OpenTelemetry
// environment variables configure an exporter (see TracingFromEnv); with
// them off, an incoming W3C traceparent still names the trace in the log.
package telemetry

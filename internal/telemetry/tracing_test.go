package telemetry

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// TestTracingOffUnlessConfigured: no exporter is configured without an
// endpoint or OTEL_TRACES_EXPORTER=otlp, and OTEL_SDK_DISABLED or
// OTEL_TRACES_EXPORTER=none turn it off regardless.
func TestTracingOffUnlessConfigured(t *testing.T) {
	t.Parallel()
	for _, vars := range []map[string]string{
		{},
		{"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"},
	} {
		tr, err := TracingFromEnv(env(vars), "v")
		require.NoError(t, err)
		assert.Nil(t, tr, "%v", vars)
		assert.Equal(t, "off", tr.String())
		assert.NoError(t, tr.Shutdown(context.Background()))
	}
}

// TestTracingFromEnv: the endpoint, protocol and sampler are read as the
// OpenTelemetry specification says, and said back without credentials.
func TestTracingFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
			"OTLP http/protobuf to http://collector:4318/v1/traces, sampler parentbased_always_on"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://user:pw@traces.example/custom?token=x"},
			"OTLP http/protobuf to https://traces.example/custom, sampler parentbased_always_on"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
			"OTLP grpc to http://collector:4317, sampler traceidratio 0.25"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
			"OTLP grpc to the protocol's default endpoint, sampler parentbased_always_on"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20secret,x=y", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_EXPORTER_OTLP_TIMEOUT": "2000"},
			"OTLP http/protobuf to http://c:4318/v1/traces, sampler parentbased_traceidratio 1"},
	}
	for _, tt := range tests {
		tr, err := TracingFromEnv(env(tt.vars), "v1")
		require.NoError(t, err, "%v", tt.vars)
		require.NotNil(t, tr)
		assert.Equal(t, tt.want, tr.String())
		assert.NotContains(t, tr.String(), "secret")
		require.NoError(t, tr.Shutdown(context.Background()))
	}
}

// TestTracingRefusesWhatItCannotHonour: a setting the server cannot honour
// is an error at start, never a silent default, and the error does not
// repeat a header's value.
func TestTracingRefusesWhatItCannotHonour(t *testing.T) {
	t.Parallel()
	base := "http://collector:4318"
	for _, tt := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "not an http:// or https:// URL"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_PROPAGATORS": "b3"}, "OTEL_PROPAGATORS"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_EXPORTER_OTLP_HEADERS": "api-key-hunter2"}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, "OTEL_EXPORTER_OTLP_TIMEOUT"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "OTEL_EXPORTER_OTLP_COMPRESSION"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_RESOURCE_ATTRIBUTES": "novalue"}, "OTEL_RESOURCE_ATTRIBUTES"},
	} {
		tr, err := TracingFromEnv(env(tt.vars), "v")
		require.Error(t, err, "%v", tt.vars)
		assert.Nil(t, tr)
		assert.Contains(t, err.Error(), tt.want)
		assert.NotContains(t, err.Error(), "hunter2")
	}
}

// TestResourceFromEnv: service.name comes from OTEL_SERVICE_NAME, else
// OTEL_RESOURCE_ATTRIBUTES, else the default; the other attributes pass.
func TestResourceFromEnv(t *testing.T) {
	t.Parallel()
	attrs := func(vars map[string]string) map[string]string {
		res, err := resourceFromEnv(env(vars), "v9")
		require.NoError(t, err)
		out := map[string]string{}
		for _, kv := range res.Attributes() {
			out[string(kv.Key)] = kv.Value.String()
		}
		return out
	}
	got := attrs(map[string]string{})
	assert.Equal(t, DefaultServiceName, got["service.name"])
	assert.Equal(t, "v9", got["service.version"])
	got = attrs(map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,deployment.environment.name=prod%20eu"})
	assert.Equal(t, "from-attrs", got["service.name"])
	assert.Equal(t, "prod eu", got["deployment.environment.name"])
	got = attrs(map[string]string{"OTEL_SERVICE_NAME": "named", "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs"})
	assert.Equal(t, "named", got["service.name"])
}

// TestLogHandlerNamesTheTrace: a record logged with a context in a trace
// carries its trace and span ids; one without does not.
func TestLogHandlerNamesTheTrace(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewJSONHandler(&buf, nil))).With("k", "v")
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithRemoteSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true}))
	log.InfoContext(ctx, "in a trace")
	log.InfoContext(context.Background(), "outside")
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	require.Len(t, lines, 2)
	assert.Contains(t, string(lines[0]), `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"`)
	assert.Contains(t, string(lines[0]), `"k":"v"`)
	assert.NotContains(t, string(lines[1]), "trace_id")
}

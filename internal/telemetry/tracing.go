package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// DefaultServiceName is the service.name of the server's spans when
// OTEL_SERVICE_NAME does not say.
const DefaultServiceName = "imagegraph"

// instrumentation names the tracer the server's spans come from.
const instrumentation = "github.com/compshare/imagegraph/internal/telemetry"

// Tracing is where the server's spans go: an OpenTelemetry SDK tracer
// provider with a batching OTLP exporter. Build it with TracingFromEnv and
// Shutdown it to flush the spans still batched.
type Tracing struct {
	provider    *sdktrace.TracerProvider
	propagators propagation.TextMapPropagator
	summary     string
}

// TracingFromEnv configures tracing from OpenTelemetry's standard
// environment variables, read through getenv. It returns nil (and no
// error) when they configure no exporter: tracing is off unless
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set,
// or OTEL_TRACES_EXPORTER is "otlp" (then the protocol's default endpoint
// on localhost); OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it
// off regardless.
//
// Read here: the endpoints; OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL
// (http/protobuf, the default, or grpc), _HEADERS, _TIMEOUT and
// _COMPRESSION; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES;
// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (default
// parentbased_always_on: a request whose caller sampled its trace is
// sampled); OTEL_PROPAGATORS (tracecontext and baggage). The exporter reads
// the rest itself (certificates, OTEL_BSP_* for the batching). A value it
// cannot honour is an error, never a silent default.
func TracingFromEnv(getenv func(string) string, version string) (*Tracing, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return nil, nil
	}
	exporter := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")))
	traces, generic := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	switch exporter {
	case "none":
		return nil, nil
	case "":
		if traces == "" && generic == "" {
			return nil, nil
		}
	case "otlp":
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not supported (otlp or none)", exporter)
	}
	signal := func(name string) string {
		if v := getenv("OTEL_EXPORTER_OTLP_TRACES_" + name); v != "" {
			return v
		}
		return getenv("OTEL_EXPORTER_OTLP_" + name)
	}
	protocol := strings.TrimSpace(signal("PROTOCOL"))
	if protocol == "" {
		protocol = "http/protobuf"
	}
	headers, err := parseKeyValues(signal("HEADERS"))
	if err != nil {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_HEADERS: %w", err)
	}
	var timeout time.Duration
	if v := signal("TIMEOUT"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_TIMEOUT: %q is not a positive number of milliseconds", v)
		}
		timeout = time.Duration(ms) * time.Millisecond
	}
	gzip := false
	switch c := strings.ToLower(signal("COMPRESSION")); c {
	case "", "none":
	case "gzip":
		gzip = true
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_COMPRESSION: %q is not supported (gzip or none)", c)
	}

	var client otlptrace.Client
	endpoint := traces
	switch protocol {
	case "http/protobuf":
		if endpoint == "" && generic != "" {
			// The generic endpoint is a base: traces go to its /v1/traces.
			endpoint = strings.TrimSuffix(generic, "/") + "/v1/traces"
		}
		opts := []otlptracehttp.Option{}
		if endpoint != "" {
			if err := checkURL(endpoint); err != nil {
				return nil, fmt.Errorf("OTLP traces endpoint: %w", err)
			}
			opts = append(opts, otlptracehttp.WithEndpointURL(endpoint))
		}
		if len(headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(headers))
		}
		if timeout > 0 {
			opts = append(opts, otlptracehttp.WithTimeout(timeout))
		}
		if gzip {
			opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		}
		client = otlptracehttp.NewClient(opts...)
	case "grpc":
		if endpoint == "" {
			endpoint = generic
		}
		opts := []otlptracegrpc.Option{}
		if endpoint != "" {
			if err := checkURL(endpoint); err != nil {
				return nil, fmt.Errorf("OTLP traces endpoint: %w", err)
			}
			opts = append(opts, otlptracegrpc.WithEndpointURL(endpoint))
		}
		if len(headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(headers))
		}
		if timeout > 0 {
			opts = append(opts, otlptracegrpc.WithTimeout(timeout))
		}
		if gzip {
			opts = append(opts, otlptracegrpc.WithCompressor("gzip"))
		}
		client = otlptracegrpc.NewClient(opts...)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: %q is not supported (http/protobuf or grpc)", protocol)
	}

	sampler, samplerName, err := samplerFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	propagators, err := propagatorsFromEnv(getenv("OTEL_PROPAGATORS"))
	if err != nil {
		return nil, err
	}
	res, err := resourceFromEnv(getenv, version)
	if err != nil {
		return nil, err
	}
	// New does not connect: an unreachable collector costs dropped spans
	// and an error log from the SDK, never a failed start.
	exp, err := otlptrace.New(context.Background(), client)
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sampler),
		sdktrace.WithResource(res),
	)
	where := endpoint
	if where == "" {
		where = "the protocol's default endpoint"
	}
	return &Tracing{
		provider:    provider,
		propagators: propagators,
		summary:     fmt.Sprintf("OTLP %s to %s, sampler %s", protocol, redactURL(where), samplerName),
	}, nil
}

// String says where the spans go and how they are sampled, without
// credentials (for the startup log).
func (t *Tracing) String() string {
	if t == nil {
		return "off"
	}
	return t.summary
}

// Shutdown flushes the spans still batched and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// Close flushes the spans still batched, waiting 5 s at most (a collector
// that is gone must not hold the exit up), and logs when it could not.
func (t *Tracing) Close(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		log.Warn("traces not flushed", "error", err.Error())
	}
}

// tracer returns the tracer the server's spans come from; nil when t is.
func (t *Tracing) tracer() trace.Tracer {
	if t == nil {
		return nil
	}
	return t.provider.Tracer(instrumentation)
}

// checkURL refuses an endpoint that is not an absolute http(s) URL: the
// exporter would otherwise fail on every export, silently.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s is not an http:// or https:// URL", redactURL(raw))
	}
	return nil
}

// redactURL drops a URL's user information and query, where credentials
// may hide.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}

// samplerFromEnv reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG.
func samplerFromEnv(getenv func(string) string) (sdktrace.Sampler, string, error) {
	name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")))
	if name == "" {
		name = "parentbased_always_on"
	}
	ratio := func() (float64, error) {
		arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG"))
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: %q is not a ratio between 0 and 1", arg)
		}
		return r, nil
	}
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample(), name, nil
	case "always_off":
		return sdktrace.NeverSample(), name, nil
	case "traceidratio", "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, "", err
		}
		full := fmt.Sprintf("%s %g", name, r)
		if name == "traceidratio" {
			return sdktrace.TraceIDRatioBased(r), full, nil
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), full, nil
	case "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), name, nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), name, nil
	}
	return nil, "", fmt.Errorf("OTEL_TRACES_SAMPLER: %q is not supported (always_on, always_off, traceidratio, "+
		"parentbased_always_on, parentbased_always_off, parentbased_traceidratio)", name)
}

// propagatorsFromEnv reads OTEL_PROPAGATORS (default: tracecontext and
// baggage).
func propagatorsFromEnv(v string) (propagation.TextMapPropagator, error) {
	if strings.TrimSpace(v) == "" {
		v = "tracecontext,baggage"
	}
	var out []propagation.TextMapPropagator
	for name := range strings.SplitSeq(v, ",") {
		switch name = strings.ToLower(strings.TrimSpace(name)); name {
		case "tracecontext":
			out = append(out, propagation.TraceContext{})
		case "baggage":
			out = append(out, propagation.Baggage{})
		case "none", "":
		default:
			return nil, fmt.Errorf("OTEL_PROPAGATORS: %q is not supported (tracecontext, baggage, none)", name)
		}
	}
	return propagation.NewCompositeTextMapPropagator(out...), nil
}

// resourceFromEnv describes the process: service.name (OTEL_SERVICE_NAME,
// else OTEL_RESOURCE_ATTRIBUTES', else DefaultServiceName), its version,
// the SDK, and OTEL_RESOURCE_ATTRIBUTES.
func resourceFromEnv(getenv func(string) string, version string) (*resource.Resource, error) {
	extra, err := parseKeyValues(getenv("OTEL_RESOURCE_ATTRIBUTES"))
	if err != nil {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	name := strings.TrimSpace(getenv("OTEL_SERVICE_NAME"))
	if name == "" {
		name = extra[string(semconv.ServiceNameKey)]
	}
	if name == "" {
		name = DefaultServiceName
	}
	attrs := []attribute.KeyValue{
		semconv.TelemetrySDKName("opentelemetry"),
		semconv.TelemetrySDKLanguageGo,
		semconv.TelemetrySDKVersion(otel.Version()),
	}
	for k, v := range extra {
		attrs = append(attrs, attribute.String(k, v))
	}
	// After the others: these win over OTEL_RESOURCE_ATTRIBUTES'.
	attrs = append(attrs, semconv.ServiceName(name))
	if version != "" {
		attrs = append(attrs, semconv.ServiceVersion(version))
	}
	return resource.NewWithAttributes(semconv.SchemaURL, attrs...), nil
}

// parseKeyValues reads the W3C Baggage-like list the OTLP variables use:
// key=value pairs separated by commas, values percent-encoded.
func parseKeyValues(s string) (map[string]string, error) {
	out := map[string]string{}
	for pair := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			// Never the pair itself: it may hold a credential.
			return nil, errors.New("an entry is not key=value")
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("the value of %s is not percent-encoded properly", k)
		}
		out[k] = dv
	}
	return out, nil
}

package main

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/compshare/imagegraph/upstream/sandbox"
)

// collector keeps the spans an OTLP exporter sent it, with the
// resource's attributes.
type collector struct {
	mu       sync.Mutex
	spans    []*tracepb.Span
	resource map[string]string
	requests int
}

func (c *collector) add(req *coltracepb.ExportTraceServiceRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	for _, rs := range req.GetResourceSpans() {
		c.resource = attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
}

func (c *collector) got() ([]*tracepb.Span, map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tracepb.Span(nil), c.spans...), c.resource
}

// newHTTPCollector is an OTLP/HTTP receiver: it decodes the protobuf the
// exporter posts to /v1/traces, as a collector does.
func newHTTPCollector(t *testing.T) (*collector, string) {
	t.Helper()
	c := &collector{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "not OTLP/HTTP traces", http.StatusBadRequest)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(raw, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.add(&req)
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return c, srv.URL
}

// grpcCollector is an OTLP/gRPC receiver.
type grpcCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	c *collector
}

func (g grpcCollector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	g.c.add(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func newGRPCCollector(t *testing.T) (*collector, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c := &collector{}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, grpcCollector{c: c})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return c, "http://" + ln.Addr().String()
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		v := kv.GetValue()
		switch {
		case v.GetStringValue() != "":
			out[kv.GetKey()] = v.GetStringValue()
		case v.GetArrayValue() != nil:
			s := ""
			for i, e := range v.GetArrayValue().GetValues() {
				if i > 0 {
					s += ","
				}
				s += e.GetStringValue()
			}
			out[kv.GetKey()] = s
		default:
			out[kv.GetKey()] = protoValue(v)
		}
	}
	return out
}

func protoValue(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	}
	return ""
}

const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
)

// TestTracesReachAnOTLPReceiver: with OTEL_EXPORTER_OTLP_ENDPOINT set, a
// request that carries a router's traceparent is traced in the router's
// trace: a server span for the request, a span for the operation (its
// name, type, cost, upstream calls and cache hits), one per root field and
// none per plain field, and a client span per upstream attempt (action,
// RetCode, attempt, cache result, time waited for the limiter), each the
// child of the one before. The spans are read back from the protobuf the
// exporter posted to a receiver in the test. The operation's latency in
// the metrics carries the trace as an OpenMetrics exemplar.
func TestTracesReachAnOTLPReceiver(t *testing.T) {
	t.Parallel()
	col, endpoint := newHTTPCollector(t)
	s := startServer(t, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":    endpoint,
		"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
		"OTEL_SERVICE_NAME":              "imagegraph-test",
		"METRICS_ADDR":                   "127.0.0.1:0",
	})
	assert.Contains(t, s.logs.String(), `"tracing":"OTLP http/protobuf to `+endpoint+`/v1/traces`)
	_, out := s.operation(t, `query Home { imageGroups(first: 2) { totalCount nodes { groupId name } } }`, "Home",
		map[string]string{"traceparent": "00-" + callerTrace + "-" + callerSpan + "-01"})
	require.Nil(t, out["errors"])
	// Unsampled by its caller: no span (the default sampler follows the parent).
	s.operation(t, `query Quiet { imageGroups(first: 3) { totalCount } }`, "Quiet",
		map[string]string{"traceparent": "00-11111111111111111111111111111111-2222222222222222-00"})
	// Probes are not traced.
	resp, err := http.Get(s.url + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	// The operation's latency links to its trace for a scraper that reads
	// OpenMetrics exemplars.
	req, err := http.NewRequest(http.MethodGet, s.metricsURL(t), nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	om, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Regexp(t, `imagegraph_graphql_operation_duration_seconds_bucket\{operation="Home",type="query",le="[^"]+"\} 1 # \{trace_id="`+callerTrace+`"\}`, string(om))
	s.shutdown(t)

	spans, resource := col.got()
	assert.Equal(t, "imagegraph-test", resource["service.name"])
	var inTrace []*tracepb.Span
	for _, sp := range spans {
		assert.NotEqual(t, "11111111111111111111111111111111", hex.EncodeToString(sp.GetTraceId()), "an unsampled trace is not recorded")
		assert.NotContains(t, sp.GetName(), "/healthz")
		if hex.EncodeToString(sp.GetTraceId()) == callerTrace {
			inTrace = append(inTrace, sp)
		}
	}
	byName := map[string]*tracepb.Span{}
	for _, sp := range inTrace {
		byName[sp.GetName()] = sp
	}
	require.Len(t, inTrace, 4, "server, operation, root field, upstream attempt: no span per plain field; got %v", names(inTrace))

	server := byName["POST /query"]
	require.NotNil(t, server)
	assert.Equal(t, tracepb.Span_SPAN_KIND_SERVER, server.GetKind())
	assert.Equal(t, callerSpan, hex.EncodeToString(server.GetParentSpanId()), "it continues the caller's span")

	op := byName["query Home"]
	require.NotNil(t, op)
	assert.Equal(t, server.GetSpanId(), op.GetParentSpanId())
	a := attrs(op.GetAttributes())
	assert.Equal(t, "Home", a["graphql.operation.name"])
	assert.Equal(t, "query", a["graphql.operation.type"])
	assert.Equal(t, "1", a["imagegraph.upstream.calls"])
	assert.Equal(t, "0", a["imagegraph.cache.hits"])
	assert.NotEmpty(t, a["imagegraph.cost.estimated"])

	field := byName["Query.imageGroups"]
	require.NotNil(t, field, "%v", names(inTrace))
	assert.Equal(t, op.GetSpanId(), field.GetParentSpanId())

	call := byName["DescribeCommunityImages"]
	require.NotNil(t, call)
	assert.Equal(t, tracepb.Span_SPAN_KIND_CLIENT, call.GetKind())
	assert.Equal(t, field.GetSpanId(), call.GetParentSpanId())
	a = attrs(call.GetAttributes())
	assert.Equal(t, "DescribeCommunityImages", a["compshare.action"])
	assert.Equal(t, "1", a["imagegraph.upstream.attempt"])
	assert.Equal(t, "0", a["compshare.ret_code"])
	assert.Equal(t, "miss", a["imagegraph.cache.result"])
	assert.Equal(t, "200", a["http.response.status_code"])
	assert.Contains(t, a, "imagegraph.upstream.limiter_wait_ms")
	assert.Equal(t, "POST", a["http.request.method"])
	require.Len(t, call.GetEvents(), 1)
	assert.Equal(t, "sent", call.GetEvents()[0].GetName())

	for _, sp := range []*tracepb.Span{op, field, call} {
		assert.GreaterOrEqual(t, sp.GetStartTimeUnixNano(), server.GetStartTimeUnixNano())
		assert.LessOrEqual(t, sp.GetEndTimeUnixNano(), server.GetEndTimeUnixNano())
	}
	// The request's log line names the trace.
	lines := s.logLines(t, "operation")
	require.NotEmpty(t, lines)
	assert.Equal(t, callerTrace, lines[0]["trace_id"])
}

// TestTracesOverGRPC: OTEL_EXPORTER_OTLP_PROTOCOL=grpc exports to an
// OTLP/gRPC receiver; a request without a traceparent starts a trace of
// its own; an attempt that failed says how, beside the retry that
// answered, and the metrics count both and the retry.
func TestTracesOverGRPC(t *testing.T) {
	t.Parallel()
	sb, err := sandbox.New()
	require.NoError(t, err)
	up := httptest.NewServer(sb)
	t.Cleanup(up.Close)
	sb.InjectFault(sandbox.Fault{RetCode: 8433, Message: "service error", Times: 1})

	col, endpoint := newGRPCCollector(t)
	s := startServer(t, map[string]string{
		"COMPSHARE_BASE_URL":          up.URL,
		"COMPSHARE_PUBLIC_KEY":        sandbox.DefaultPublicKey,
		"COMPSHARE_PRIVATE_KEY":       sandbox.DefaultPrivateKey,
		"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
		"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
		"METRICS_ADDR":                "127.0.0.1:0",
	})
	_, out := s.operation(t, `query Page { imageGroups(first: 1) { totalCount } }`, "Page", nil)
	require.Nil(t, out["errors"])
	_, fam := s.scrape(t)
	assert.Equal(t, 1.0, sample(fam, "imagegraph_upstream_requests_total", "outcome", "retcode", "ret_code", "8433"))
	assert.Equal(t, 1.0, sample(fam, "imagegraph_upstream_requests_total", "outcome", "ok", "ret_code", "0"))
	assert.Equal(t, 1.0, sample(fam, "imagegraph_upstream_retries_total"))
	assert.EqualValues(t, 2, sb.Stats().Calls)
	s.shutdown(t)

	spans, resource := col.got()
	assert.Equal(t, "imagegraph", resource["service.name"])
	require.Len(t, spans, 5, "%v", names(spans))
	trace := spans[0].GetTraceId()
	var attempts []*tracepb.Span
	for _, sp := range spans {
		assert.Equal(t, trace, sp.GetTraceId(), "one trace")
		if len(sp.GetParentSpanId()) == 0 {
			assert.Equal(t, "POST /query", sp.GetName(), "the request's span is the root")
		}
		if sp.GetName() == "DescribeCommunityImages" {
			attempts = append(attempts, sp)
		}
	}
	require.Len(t, attempts, 2)
	failed, retry := attempts[0], attempts[1]
	if attrs(failed.GetAttributes())["imagegraph.upstream.attempt"] == "2" {
		failed, retry = retry, failed
	}
	a := attrs(failed.GetAttributes())
	assert.Equal(t, "1", a["imagegraph.upstream.attempt"])
	assert.Equal(t, "8433", a["compshare.ret_code"])
	assert.Equal(t, "retcode", a["error.type"])
	assert.Equal(t, "true", a["imagegraph.upstream.retry"])
	assert.Equal(t, tracepb.Status_STATUS_CODE_ERROR, failed.GetStatus().GetCode())
	assert.Contains(t, failed.GetStatus().GetMessage(), "8433")
	a = attrs(retry.GetAttributes())
	assert.Equal(t, "2", a["imagegraph.upstream.attempt"])
	assert.Equal(t, "0", a["compshare.ret_code"])
	assert.Equal(t, failed.GetParentSpanId(), retry.GetParentSpanId(), "both attempts of one call")
	assert.GreaterOrEqual(t, retry.GetStartTimeUnixNano(), failed.GetEndTimeUnixNano())
}

func names(spans []*tracepb.Span) []string {
	out := make([]string, len(spans))
	for i, sp := range spans {
		out[i] = sp.GetName()
	}
	return out
}

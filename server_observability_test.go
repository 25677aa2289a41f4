package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// operation sends a GraphQL operation with headers and returns the status
// and the decoded answer.
func (s *server) operation(t *testing.T, query, operationName string, headers map[string]string) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "operationName": operationName})
	status, _, out := s.post(t, string(body), headers)
	return status, out
}

// logLines returns the server's JSON log lines whose msg is msg.
func (s *server) logLines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg {
			out = append(out, line)
		}
	}
	return out
}

// metricsURL is the URL of the server's /metrics, as run told it.
func (s *server) metricsURL(t *testing.T) string {
	t.Helper()
	require.NotEmpty(t, s.metrics, "the server serves metrics")
	_, port, err := net.SplitHostPort(s.metrics)
	require.NoError(t, err)
	return "http://127.0.0.1:" + port + "/metrics"
}

// scrape reads the server's metrics: the text as served, and the parsed
// families.
func (s *server) scrape(t *testing.T) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get(s.metricsURL(t))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	families, err := textParser().TextToMetricFamilies(bytes.NewReader(raw))
	require.NoError(t, err)
	return raw, families
}

func textParser() *expfmt.TextParser {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return &p
}

// sample returns the value of the series of family name whose labels
// include labels (summed over the others), or of a histogram's count.
func sample(families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := families[name]
	if f == nil {
		return 0
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	sum := 0.0
	for _, m := range f.GetMetric() {
		match := 0
		for _, lp := range m.GetLabel() {
			if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
				match++
			}
		}
		if match != len(want) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// sandboxCalls is the number of calls the sandbox answered.
func (s *server) sandboxCalls(t *testing.T) float64 {
	t.Helper()
	resp, err := http.Get(s.url + "/sandbox/stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	var st struct{ Calls float64 }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st.Calls
}

// TestMetricsCountTheTraffic drives traffic through the real server and
// reads /metrics on its own listener: the upstream requests counted are
// the sandbox's own count, the operations and errors are those sent, the
// cache's hits and misses add up, and promlint finds nothing to say.
func TestMetricsCountTheTraffic(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"METRICS_ADDR": "127.0.0.1:0"})

	const page = `query Page($n: Int) { imageGroups(first: $n) { nodes { groupId } } }`
	var groups []string
	statuses := map[int]int{}
	for n := 1; n <= 5; n++ {
		for range 2 { // the second read of each page is answered from the cache of answers
			body, _ := json.Marshal(map[string]any{"query": page, "operationName": "Page", "variables": map[string]any{"n": n}})
			resp, err := http.Post(s.url+"/query", "application/json", bytes.NewReader(body))
			require.NoError(t, err)
			var out struct {
				Data struct {
					ImageGroups struct{ Nodes []struct{ GroupID string } } `json:"imageGroups"`
				}
				Errors []any
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
			resp.Body.Close()
			require.Empty(t, out.Errors)
			statuses[resp.StatusCode]++
			if n == 5 {
				groups = groups[:0]
				for _, g := range out.Data.ImageGroups.Nodes {
					groups = append(groups, g.GroupID)
				}
			}
		}
	}
	// Details of the groups of the last page: primed by it, no call.
	for _, id := range groups {
		status, out := s.operation(t, fmt.Sprintf(`query Detail { imageGroup(groupId: %q) { name } }`, id), "Detail", nil)
		require.Nil(t, out["errors"])
		statuses[status]++
	}
	status, out := s.operation(t, `query Broken { imageGroups(first: 1) { nope } }`, "Broken", nil)
	require.NotNil(t, out["errors"])
	statuses[status]++
	status, out = s.operation(t, `{ imageGroups(`, "", nil)
	require.NotNil(t, out["errors"])
	statuses[status]++

	raw, fam := s.scrape(t)
	calls := s.sandboxCalls(t)
	require.Positive(t, calls)
	assert.Equal(t, calls, sample(fam, "imagegraph_upstream_requests_total"), "every request the sandbox answered, counted once")
	assert.Equal(t, calls, sample(fam, "imagegraph_upstream_requests_total", "outcome", "ok", "ret_code", "0"))
	assert.Equal(t, calls, sample(fam, "imagegraph_upstream_request_duration_seconds"))
	assert.Equal(t, calls, sample(fam, "imagegraph_cache_upstream_calls_total"), "each miss one call: no retries")
	assert.Equal(t, 5.0, calls, "one call per distinct page; repeats and details hit the cache")

	assert.Equal(t, 10.0, sample(fam, "imagegraph_graphql_operations_total", "operation", "Page", "type", "query", "outcome", "success"))
	assert.Equal(t, float64(len(groups)), sample(fam, "imagegraph_graphql_operations_total", "operation", "Detail", "outcome", "success"))
	// Refused before they ran: one by validation (its name never ran, so it
	// counts as other), one that does not parse.
	assert.Equal(t, 1.0, sample(fam, "imagegraph_graphql_operations_total", "operation", "other", "type", "unknown", "outcome", "rejected"))
	assert.Equal(t, 1.0, sample(fam, "imagegraph_graphql_operations_total", "operation", "unknown", "outcome", "rejected"))
	assert.Equal(t, 1.0, sample(fam, "imagegraph_graphql_errors_total", "code", "GRAPHQL_VALIDATION_FAILED"))
	assert.Equal(t, 1.0, sample(fam, "imagegraph_graphql_errors_total", "code", "GRAPHQL_PARSE_FAILED"))
	assert.Equal(t, 10.0, sample(fam, "imagegraph_graphql_operation_duration_seconds", "operation", "Page"))
	executed := float64(10 + len(groups))
	assert.Equal(t, executed, sample(fam, "imagegraph_graphql_operation_upstream_calls"), "one observation per executed operation")
	assert.Equal(t, executed, sample(fam, "imagegraph_graphql_operation_cost"), "every measured operation: those refused by the parser and validation were not")

	reads := sample(fam, "imagegraph_cache_requests_total")
	assert.Equal(t, reads, sample(fam, "imagegraph_cache_hits_total")+sample(fam, "imagegraph_cache_upstream_calls_total"),
		"each read is a hit or a call")
	// The repeats of the pages were answered whole by the cache of answers;
	// the details' lookups were read from the response cache.
	assert.Equal(t, 5.0, sample(fam, "imagegraph_answer_cache_requests_total", "result", "hit"))
	assert.Equal(t, float64(len(groups)), sample(fam, "imagegraph_cache_hits_total", "tier", "memory"))
	assert.Positive(t, sample(fam, "imagegraph_cache_bytes"))
	assert.Equal(t, 32.0*(1<<20), sample(fam, "imagegraph_cache_max_bytes"))

	for code, n := range statuses {
		assert.Equal(t, float64(n), sample(fam, "imagegraph_http_requests_total", "handler", "/query", "method", "POST", "code", fmt.Sprint(code)), "status %d", code)
	}
	assert.Equal(t, 20.0, sample(fam, "imagegraph_upstream_quota_requests_per_second"))
	assert.Equal(t, 1.0, sample(fam, "imagegraph_upstream_circuit_state", "state", "closed"))
	assert.Equal(t, 0.0, sample(fam, "imagegraph_upstream_circuit_state", "state", "open"))
	assert.Equal(t, 1.0, sample(fam, "imagegraph_build_info"))
	assert.Positive(t, sample(fam, "go_goroutines"))
	assert.Positive(t, sample(fam, "process_resident_memory_bytes"))

	problems, err := promlint.New(bytes.NewReader(raw)).Lint()
	require.NoError(t, err)
	assert.Empty(t, problems, "promlint")

	// Not on the API's port.
	resp, err := http.Get(s.url + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	assert.NotEqual(t, http.StatusOK, resp.StatusCode)
}

// TestOperationLogLine: each GraphQL request's log line says what its
// operation did (name, type, cost, upstream calls, cache hits, duration,
// error codes) and names the caller's trace from its traceparent, with
// tracing off; a deduplicated request's says so, and the metrics count it.
func TestOperationLogLine(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"METRICS_ADDR": "127.0.0.1:0", "SANDBOX_LATENCY": "300ms"})
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	_, out := s.operation(t, `query Home { imageGroups(first: 2) { nodes { groupId } } }`, "Home",
		map[string]string{"traceparent": "00-" + traceID + "-00f067aa0ba902b7-01"})
	require.Nil(t, out["errors"])
	s.operation(t, `query Home { imageGroups(first: 2) { nope } }`, "Home", nil)

	lines := s.logLines(t, "operation")
	require.Len(t, lines, 2)
	ok := lines[0]
	assert.Equal(t, traceID, ok["trace_id"], "the caller's trace, with tracing off")
	assert.NotEmpty(t, ok["request_id"])
	g := ok["graphql"].(map[string]any)
	assert.Equal(t, "Home", g["operation"])
	assert.Equal(t, "query", g["type"])
	assert.EqualValues(t, 1, g["upstream_calls"])
	assert.EqualValues(t, 0, g["cache_hits"])
	assert.Positive(t, g["cost"])
	assert.Positive(t, g["duration"])
	assert.NotContains(t, g, "error_codes")

	g = lines[1]["graphql"].(map[string]any)
	assert.Equal(t, []any{"GRAPHQL_VALIDATION_FAILED"}, g["error_codes"])
	assert.Equal(t, true, g["rejected"])
	assert.NotContains(t, lines[1], "trace_id", "no trace was named")

	// Identical requests at once share one execution (the upstream takes
	// 300 ms): each gets a line, those that shared say so.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			_, out := s.operation(t, `query Same { imageGroups(first: 3) { nodes { groupId } } }`, "Same", nil)
			assert.Nil(t, out["errors"])
		})
	}
	wg.Wait()
	same, shared := 0, 0
	for _, l := range s.logLines(t, "operation") {
		g := l["graphql"].(map[string]any)
		if g["operation"] == "Same" {
			same++
			if g["deduplicated"] == true {
				shared++
			}
		}
	}
	assert.Equal(t, 4, same, "one line per request")
	_, fam := s.scrape(t)
	assert.Equal(t, float64(shared), sample(fam, "imagegraph_graphql_deduplicated_requests_total"))
	assert.Equal(t, float64(4-shared), sample(fam, "imagegraph_graphql_operations_total", "operation", "Same"), "executions")
}

// TestInflightSheddingThroughRun: MAX_INFLIGHT_COST and INFLIGHT_WAIT
// reach the handler: with one operation holding the whole bound (the
// sandbox slow), another is refused at once with 503, Retry-After and
// SERVER_OVERLOADED, without an upstream call; the gauges show the one
// running and the counter the one shed; once answered, the room is back.
func TestInflightSheddingThroughRun(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{
		"METRICS_ADDR": "127.0.0.1:0", "SANDBOX_LATENCY": "1500ms",
		"MAX_INFLIGHT_COST": "10", "INFLIGHT_WAIT": "0s", "DEDUPLICATE_OPERATIONS": "false",
	})
	held := make(chan int, 1)
	go func() {
		status, _ := s.operation(t, `query Held { imageGroups(first: 50) { nodes { name } } }`, "Held", nil)
		held <- status
	}()
	require.Eventually(t, func() bool {
		_, fams := s.scrape(t)
		return sample(fams, "imagegraph_graphql_inflight_operations") == 1
	}, 10*time.Second, 10*time.Millisecond, "the first operation holds its room")

	status, header, out := s.post(t, `{"query":"query Shed { imageGroups(first: 1) { nodes { name } } }"}`, nil)
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Equal(t, "1", header.Get("Retry-After"))
	assert.Equal(t, "SERVER_OVERLOADED", code(out))
	assert.NotContains(t, out, "data")

	assert.Equal(t, http.StatusOK, <-held)
	_, fams := s.scrape(t)
	assert.Equal(t, 1.0, s.sandboxCalls(t), "the shed operation made no call")
	assert.Equal(t, 1.0, sample(fams, "imagegraph_graphql_inflight_refused_operations_total"))
	assert.Equal(t, 0.0, sample(fams, "imagegraph_graphql_inflight_operations"))
	assert.Equal(t, 0.0, sample(fams, "imagegraph_graphql_inflight_cost"))
	assert.Equal(t, 10.0, sample(fams, "imagegraph_graphql_inflight_max_cost"))
	assert.Equal(t, 1.0, sample(fams, "imagegraph_graphql_errors_total", "code", "SERVER_OVERLOADED"))
	assert.Equal(t, 1.0, sample(fams, "imagegraph_graphql_operations_total", "outcome", "rejected"))
}

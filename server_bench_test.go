package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/compshare/imagegraph/internal/testkit"
)

// referenceOperation is the README's reference operation (the one
// graph's BenchmarkReferenceOperation runs), named as a frontend names it.
const referenceOperation = "query Reference " + testkit.ReferenceQuery

// BenchmarkTelemetry is the reference operation through the whole server
// (run: its middleware, the executor, the client, the in-process sandbox
// over loopback), every request going upstream (no cache of data or
// answers, as the reference benchmark), with the telemetry off,
// with metrics on, and with metrics and tracing on and every request
// sampled (spans exported over OTLP/HTTP to a receiver in the process that
// reads and drops them). cpu-ns/op is the process's CPU time per request:
// compare the medians of the three (the budget: metrics cost at most 3 %).
func BenchmarkTelemetry(b *testing.B) {
	drop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	b.Cleanup(drop.Close)
	base := map[string]string{"CACHE_TTL": "0", "ANSWER_CACHE": "false", "LOG_LEVEL": "warn",
		// The account's 20 calls/s would measure the limiter's queue.
		"COMPSHARE_QPS": "100000", "COMPSHARE_BURST": "100000"}
	for _, v := range []struct {
		name string
		env  map[string]string
	}{
		{"off", nil},
		{"metrics", map[string]string{"METRICS_ADDR": "127.0.0.1:0"}},
		{"metrics+tracing", map[string]string{"METRICS_ADDR": "127.0.0.1:0",
			"OTEL_EXPORTER_OTLP_ENDPOINT": drop.URL, "OTEL_TRACES_SAMPLER": "always_on"}},
	} {
		b.Run(v.name, func(b *testing.B) {
			env := map[string]string{}
			for k, val := range base {
				env[k] = val
			}
			for k, val := range v.env {
				env[k] = val
			}
			env["PORT"] = strconv.Itoa(freeLoopbackPort(b))
			s := startServer(b, env)
			testkit.Measure(b, testkit.Poster(b, s.url+"/query", referenceOperation, 1000))
		})
	}
}

func freeLoopbackPort(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// BenchmarkAnswerCache is the reference operation through the whole server
// at the default settings, read again and again: with the cache of answers
// (each request a hit: no execution), and without it (each request
// executed from the response cache). cpu-ns/op is the process's CPU per
// request, the client's included (it runs in the process too).
func BenchmarkAnswerCache(b *testing.B) {
	for _, v := range []struct{ name, answers string }{{"hit", "true"}, {"off", "false"}} {
		b.Run(v.name, func(b *testing.B) {
			s := startServer(b, map[string]string{"ANSWER_CACHE": v.answers, "LOG_LEVEL": "warn"})
			testkit.Measure(b, testkit.Poster(b, s.url+"/query", referenceOperation, 1000))
		})
	}
}

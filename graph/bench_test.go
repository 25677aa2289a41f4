package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/compshare/imagegraph/graph"
	"github.com/compshare/imagegraph/limits"
	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

// cpuTime returns the CPU time the process has used (user + system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds cpu-ns/op: the process's CPU time per operation, which is
// what the facade's overhead budget compares (wall time hides CPU spent
// concurrently and counts time spent waiting).
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkReferenceOperation is the README's reference operation through
// the real HTTP handler against the sandbox: one 20-group page with nested
// versions and latestVersion.
func BenchmarkReferenceOperation(b *testing.B) {
	e := newEnv(b)
	body, _ := json.Marshal(map[string]any{"query": referenceQuery})
	post := func() {
		resp, err := http.Post(e.api.URL, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n < 1000 {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
	post()
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	for b.Loop() {
		post()
	}
	reportCPU(b, start)
}

// BenchmarkBareClientCall is the same page fetched by the client alone
// (signing, HTTP over loopback, the sandbox's work, decoding): the baseline
// of the facade's overhead ratio.
func BenchmarkBareClientCall(b *testing.B) { benchBareClientCall(b) }

// BenchmarkBareClientCall20ms is the same against an upstream that takes
// 20 ms: the upstream's own latency as a client sees it, the baseline that
// make load's medians compare with.
func BenchmarkBareClientCall20ms(b *testing.B) {
	benchBareClientCall(b, sandbox.WithLatency(20*time.Millisecond))
}

func benchBareClientCall(b *testing.B, opts ...sandbox.Option) {
	e := newEnv(b, withSandboxOptions(opts...))
	req := &upstream.DescribeCommunityImagesRequest{Offset: upstream.Int(0), Limit: upstream.Int(20)}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	for b.Loop() {
		resp, err := e.client.DescribeCommunityImages(ctx, req)
		if err != nil || len(resp.CompshareImageGroup) != 20 {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

// BenchmarkAnalyzeReference is the limits' one walk of the reference
// operation (depth, aliases, root fields, directives, cost and upstream
// calls), what every operation pays before it runs: compare its cpu-ns/op
// with BenchmarkReferenceOperation's (the budget is 5 %).
func BenchmarkAnalyzeReference(b *testing.B) {
	es := graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{}})
	ext := &limits.Extension{Limits: limits.DefaultLimits, Calls: graph.CallEstimator{}}
	if err := ext.Validate(es); err != nil {
		b.Fatal(err)
	}
	doc, errs := gqlparser.LoadQueryWithRules(es.Schema(), referenceQuery, rules.NewDefaultRules())
	if errs != nil {
		b.Fatal(errs)
	}
	oc := &graphql.OperationContext{Doc: doc, Operation: doc.Operations[0], Variables: map[string]any{}}
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	for b.Loop() {
		res := ext.Analyze(oc)
		if err := limits.DefaultLimits.Check(&res); err != nil || res.UpstreamCalls != 1 {
			b.Fatal(err, res)
		}
	}
	reportCPU(b, start)
}

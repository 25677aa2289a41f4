package graph_test

import (
	"context"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/compshare/imagegraph/graph"
	"github.com/compshare/imagegraph/internal/limits"
	"github.com/compshare/imagegraph/internal/testkit"
	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

// BenchmarkReferenceOperation is the README's reference operation through
// the real HTTP handler against the sandbox: one 20-group page with nested
// versions and latestVersion.
func BenchmarkReferenceOperation(b *testing.B) {
	e := newEnv(b)
	testkit.Measure(b, testkit.Poster(b, e.api.URL, referenceQuery, 1000))
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
	start := testkit.CPUTime()
	for b.Loop() {
		resp, err := e.client.DescribeCommunityImages(ctx, req)
		if err != nil || len(resp.CompshareImageGroup) != 20 {
			b.Fatal(err)
		}
	}
	testkit.ReportCPU(b, start)
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
	start := testkit.CPUTime()
	for b.Loop() {
		res := ext.Analyze(oc)
		if err := limits.DefaultLimits.Check(&res); err != nil || res.UpstreamCalls != 1 {
			b.Fatal(err, res)
		}
	}
	testkit.ReportCPU(b, start)
}

package graph_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/graph"
	"github.com/compshare/imagegraph/internal/answers"
	"github.com/compshare/imagegraph/internal/cache"
	"github.com/compshare/imagegraph/internal/documents"
	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

// The cache of answers through HTTP against the sandbox, with the response
// cache in front of the client as the server runs it, and one controllable
// clock for both.

// executions counts the operations the executor runs.
type executions struct{ n atomic.Int64 }

func (*executions) ExtensionName() string                   { return "Executions" }
func (*executions) Validate(graphql.ExecutableSchema) error { return nil }
func (e *executions) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	e.n.Add(1)
	return next(ctx)
}

// testClock is a controllable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type answersEnv struct {
	*env
	clk   *testClock
	runs  *executions
	cache *answers.Cache
}

// newAnswersEnv is the API with the response cache (30 s fresh, 15 min
// stale-if-error) and the cache of answers, on one clock.
func newAnswersEnv(t *testing.T, opts ...envOption) *answersEnv {
	t.Helper()
	a := &answersEnv{clk: &testClock{t: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}, runs: &executions{}}
	opts = append(opts,
		withService(func(s upstream.Service) upstream.Service {
			c := cache.New(s, cache.Options{TTL: 30 * time.Second, StaleIfError: 15 * time.Minute, Now: a.clk.Now})
			t.Cleanup(c.Close)
			return c
		}),
		withHandlerConfig(func(c *graph.HandlerConfig) {
			docs := documents.New(documents.Options{})
			c.QueryCache = docs
			c.HTTPCaching = graph.HTTPCaching{MaxAge: 30 * time.Second}
			c.Extensions = append(c.Extensions, a.runs)
			a.cache = answers.New(answers.Options{
				Documents: docs, Judge: c.HTTPCaching.Judge, Now: a.clk.Now,
				Variant: graph.RouterVariant(""), Bypass: graph.WantsTrace,
			})
			c.Answers = a.cache
		}))
	a.env = newEnv(t, opts...)
	return a
}

const answersPage = `query Page($n: Int) { imageGroups(first: $n) { totalCount nodes { groupId name } } }`

// TestAnswerCacheExecutesARepeatOnce: a repeated operation executes once;
// the repeat says what a hit cost (no upstream call) and how fresh it is.
func TestAnswerCacheExecutesARepeatOnce(t *testing.T) {
	t.Parallel()
	e := newAnswersEnv(t)
	first := e.do(t, answersPage, map[string]any{"n": 3})
	require.Empty(t, first.Errors, string(first.raw))
	e.clk.Add(12 * time.Second)
	second := e.doWithHeaders(t, answersPage, map[string]any{"n": 3}, nil)
	require.Empty(t, second.Errors, string(second.raw))
	assert.EqualValues(t, 1, e.runs.n.Load(), "executed once")
	assert.EqualValues(t, 1, e.calls(), "one upstream call")
	assert.JSONEq(t, string(first.Data), string(second.Data))
	cost := second.Extensions["cost"].(map[string]any)
	assert.EqualValues(t, 0, cost["upstreamCalls"])
	assert.EqualValues(t, first.Extensions["cost"].(map[string]any)["estimated"], cost["estimated"])
	assert.EqualValues(t, 1, e.cache.Stats().Hits)
}

// TestAnswerCacheRebuildsStaleAnswers: once the data an answer used is past
// its freshness, the answer is executed again, never served.
func TestAnswerCacheRebuildsStaleAnswers(t *testing.T) {
	t.Parallel()
	e := newAnswersEnv(t)
	e.do(t, answersPage, map[string]any{"n": 2})
	e.clk.Add(31 * time.Second)
	resp := e.do(t, answersPage, map[string]any{"n": 2})
	require.Empty(t, resp.Errors, string(resp.raw))
	assert.EqualValues(t, 2, e.runs.n.Load(), "rebuilt")
	assert.EqualValues(t, 2, e.calls(), "from the upstream again")
	e.do(t, answersPage, map[string]any{"n": 2})
	assert.EqualValues(t, 2, e.runs.n.Load(), "and kept again")
}

// TestAnswerCacheKeepsNoErrorsNorStaleData: an answer with errors, and one
// built from data served past its freshness in place of an upstream
// failure (extensions.staleData), are never kept.
func TestAnswerCacheKeepsNoErrorsNorStaleData(t *testing.T) {
	t.Parallel()
	e := newAnswersEnv(t)
	e.sb.InjectFault(sandbox.Fault{HTTPStatus: http.StatusServiceUnavailable, Times: 100})
	for range 2 {
		resp := e.do(t, answersPage, map[string]any{"n": 4})
		require.NotEmpty(t, resp.Errors)
	}
	assert.EqualValues(t, 2, e.runs.n.Load(), "the answer with errors was not kept")
	e.sb.ClearFaults()

	e.do(t, answersPage, map[string]any{"n": 5})
	e.clk.Add(31 * time.Second) // past the data's freshness, within stale-if-error
	e.sb.InjectFault(sandbox.Fault{HTTPStatus: http.StatusServiceUnavailable, Times: 100})
	for range 2 {
		resp := e.do(t, answersPage, map[string]any{"n": 5})
		require.Empty(t, resp.Errors, string(resp.raw))
		require.NotNil(t, resp.Extensions["staleData"], string(resp.raw))
	}
	assert.EqualValues(t, 5, e.runs.n.Load(), "the stale answers were not kept")
}

// TestAnswerCacheKeys: a different variable, operation name or persisted
// document is a different entry; different whitespace is the same one.
func TestAnswerCacheKeys(t *testing.T) {
	t.Parallel()
	e := newAnswersEnv(t)
	e.do(t, answersPage, map[string]any{"n": 2})
	e.do(t, "query Page($n: Int) {\n  imageGroups(first: $n) { totalCount nodes { groupId name } } # again\n}", map[string]any{"n": 2})
	assert.EqualValues(t, 1, e.runs.n.Load(), "whitespace and comments: the same entry")
	e.do(t, answersPage, map[string]any{"n": 3})
	assert.EqualValues(t, 2, e.runs.n.Load(), "another variable: another entry")
	e.do(t, `query Other($n: Int) { imageGroups(first: $n) { totalCount nodes { groupId name } } }`, map[string]any{"n": 2})
	assert.EqualValues(t, 3, e.runs.n.Load(), "another operation: another entry")
}

// TestAnswerCacheSharesConcurrentMisses: identical requests that miss while
// one executes share its execution.
func TestAnswerCacheSharesConcurrentMisses(t *testing.T) {
	t.Parallel()
	e := newAnswersEnv(t, withSandboxOptions(sandbox.WithLatency(200*time.Millisecond)))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			resp := e.do(t, answersPage, map[string]any{"n": 6})
			assert.Empty(t, resp.Errors)
		})
	}
	wg.Wait()
	st := e.cache.Stats()
	assert.EqualValues(t, e.runs.n.Load(), st.Misses, "each miss executed")
	assert.EqualValues(t, 8, st.Misses+st.Shared+st.Hits)
	assert.Less(t, e.runs.n.Load(), int64(8), "some shared an execution")
	assert.EqualValues(t, 1, e.calls())
}

// TestAnswerCacheAndFederatedTraces: a router's request for a federated
// trace always executes (its answer is its own trace).
func TestAnswerCacheAndFederatedTraces(t *testing.T) {
	t.Parallel()
	e := newAnswersEnv(t, withHandlerConfig(func(c *graph.HandlerConfig) { c.FederatedTracing = true }))
	ftv1 := http.Header{graph.FederatedTraceHeader: {"ftv1"}}
	for range 2 {
		resp := e.doWithHeaders(t, answersPage, map[string]any{"n": 2}, ftv1)
		require.Empty(t, resp.Errors)
		assert.NotNil(t, resp.Extensions["ftv1"])
	}
	assert.EqualValues(t, 2, e.runs.n.Load())
}

package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/graph"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

// operationCounter counts GraphQL executions.
type operationCounter struct{ n atomic.Int64 }

func (*operationCounter) ExtensionName() string                   { return "OperationCounter" }
func (*operationCounter) Validate(graphql.ExecutableSchema) error { return nil }
func (c *operationCounter) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	c.n.Add(1)
	return next(ctx)
}

// TestDeduplicateOperations: identical concurrent requests share one
// execution and get the same answer; requests that differ in variables or
// in the media type they accept do not.
func TestDeduplicateOperations(t *testing.T) {
	t.Parallel()
	ops := &operationCounter{}
	// The upstream latency keeps the first execution in flight while the
	// others arrive.
	e := newEnv(t, withSandboxOptions(sandbox.WithLatency(300*time.Millisecond)),
		withHandlerConfig(func(c *graph.HandlerConfig) {
			c.DeduplicateOperations = true
			c.Extensions = append(c.Extensions, ops)
		}))
	post := func(first int, accept string) (int, string, []byte) {
		body, _ := json.Marshal(map[string]any{
			"query":     `query($n: Int) { imageGroups(first: $n) { totalCount nodes { groupId } } }`,
			"variables": map[string]any{"n": first},
		})
		req, err := http.NewRequest(http.MethodPost, e.api.URL, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, resp.Header.Get("Content-Type"), raw
	}

	const n = 20
	bodies := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, ct, raw := post(3, "application/json")
			assert.Equal(t, http.StatusOK, status)
			assert.Contains(t, ct, "application/json")
			bodies[i] = raw
		}()
	}
	wg.Wait()
	assert.EqualValues(t, 1, ops.n.Load(), "20 identical concurrent requests, one execution")
	assert.EqualValues(t, 1, e.calls())
	for _, b := range bodies {
		assert.JSONEq(t, string(bodies[0]), string(b))
	}
	assert.Contains(t, string(bodies[0]), `"totalCount"`)

	// Different variables and different media types execute separately.
	ops.n.Store(0)
	wg.Add(3)
	go func() { defer wg.Done(); post(3, "application/json") }()
	go func() { defer wg.Done(); post(4, "application/json") }()
	go func() {
		defer wg.Done()
		_, ct, _ := post(3, "application/graphql-response+json")
		assert.Contains(t, ct, "application/graphql-response+json")
	}()
	wg.Wait()
	assert.EqualValues(t, 3, ops.n.Load())

	// Sequential identical requests are not cached: each executes.
	ops.n.Store(0)
	post(3, "application/json")
	post(3, "application/json")
	assert.EqualValues(t, 2, ops.n.Load())
}

// TestDeduplicatedPanicIsAnAnswer: a panic in a shared execution becomes an
// internal error for its requesters, never a dead process.
func TestDeduplicatedPanicIsAnAnswer(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	h := graph.NewHandler(graph.HandlerConfig{
		Service:               panickingService{},
		Log:                   slog.New(slog.NewJSONHandler(&logs, nil)),
		DeduplicateOperations: true,
		Extensions:            []graphql.HandlerExtension{panicker{}},
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	resp, err := http.Post(srv.URL, "application/json", strings.NewReader(`{"query":"{ __typename }"}`))
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Contains(t, string(raw), "INTERNAL_SERVER_ERROR")
	assert.NotContains(t, string(raw), "goroutine")
	assert.Contains(t, logs.String(), "kaboom")
}

// panicker panics outside gqlgen's own recovery, in the response handler.
type panicker struct{}

func (panicker) ExtensionName() string                   { return "Panicker" }
func (panicker) Validate(graphql.ExecutableSchema) error { return nil }
func (panicker) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	panic("kaboom")
}

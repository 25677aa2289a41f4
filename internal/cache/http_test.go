package cache_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/graph"
	"github.com/compshare/imagegraph/internal/cache"
	"github.com/compshare/imagegraph/internal/limits"
	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

// env is the API as the server wires it with the cache on: the handler
// over the cache over limits.Meter over the client (with its circuit
// breaker) over the sandbox on loopback; the cache's clock is the test's.
type env struct {
	sb    *sandbox.Server
	cache *cache.Cache
	clock *cache.Clock
	api   *httptest.Server
}

const cooldown = 150 * time.Millisecond

func newEnv(t testing.TB, opts cache.Options, sbOpts ...sandbox.Option) *env {
	t.Helper()
	sb, err := sandbox.New(sbOpts...)
	require.NoError(t, err)
	up := httptest.NewServer(sb)
	t.Cleanup(up.Close)
	client, err := upstream.NewClient(
		upstream.WithBaseURL(up.URL),
		upstream.WithCredentials(sandbox.DefaultPublicKey, sandbox.DefaultPrivateKey),
		upstream.WithRateLimit(10000, 10000),
		upstream.WithRetryPolicy(upstream.RetryPolicy{MaxRetries: 1, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}),
		upstream.WithCircuitBreaker(3, cooldown),
	)
	require.NoError(t, err)
	clk := cache.NewClock()
	if opts.TTL == 0 {
		opts.TTL, opts.StaleWhileRevalidate, opts.StaleIfError = 30*time.Second, time.Minute, 15*time.Minute
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = cache.DefaultMaxBytes
	}
	opts.Now = clk.Now
	c := cache.New(limits.Meter(client), opts)
	t.Cleanup(c.Close)
	api := httptest.NewServer(graph.NewHandler(graph.HandlerConfig{
		Service:          c,
		Introspection:    true,
		Limits:           limits.DefaultLimits,
		ParserTokenLimit: limits.DefaultTokens,
		HTTPCaching:      graph.HTTPCaching{MaxAge: opts.TTL},
	}))
	t.Cleanup(api.Close)
	return &env{sb: sb, cache: c, clock: clk, api: api}
}

type answer struct {
	status int
	header http.Header
	raw    []byte
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
	Extensions struct {
		Cost struct {
			UpstreamCalls int `json:"upstreamCalls"`
			CacheHits     int `json:"cacheHits"`
		} `json:"cost"`
		StaleData *struct {
			AgeSeconds int    `json:"ageSeconds"`
			Reason     string `json:"reason"`
		} `json:"staleData"`
	} `json:"extensions"`
}

func (e *env) do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &a), string(raw))
	}
	return a
}

func (e *env) post(t *testing.T, query string, vars map[string]any) answer {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, e.api.URL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return e.do(t, req)
}

func (e *env) get(t *testing.T, query string, etag string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.api.URL+"?query="+url.QueryEscape(query), nil)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	return e.do(t, req)
}

func (e *env) calls() int64 { return e.sb.Stats().Calls }

const pageQuery = `{ imageGroups(first: 12, orderBy: {field: FAVORITES, direction: DESC}) { totalCount nodes { groupId name latestVersion { imageId } } } }`

// TestRepeatedPageIsAHit: a page read again makes no upstream call; the
// answer says so (cacheHits, upstreamCalls) and tells HTTP caches how long
// its data stays fresh.
func TestRepeatedPageIsAHit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, cache.Options{})
	first := e.post(t, pageQuery, nil)
	require.Empty(t, first.Errors, string(first.raw))
	assert.Equal(t, 1, first.Extensions.Cost.UpstreamCalls)
	assert.Equal(t, "public, max-age=30", first.header.Get("Cache-Control"))

	e.clock.Advance(12 * time.Second)
	again := e.post(t, pageQuery, nil)
	require.Empty(t, again.Errors)
	assert.JSONEq(t, string(first.Data), string(again.Data))
	assert.Equal(t, 0, again.Extensions.Cost.UpstreamCalls)
	assert.Equal(t, 1, again.Extensions.Cost.CacheHits)
	assert.Equal(t, "public, max-age=18", again.header.Get("Cache-Control"), "the data's remaining freshness")
	assert.EqualValues(t, 1, e.calls())
}

// TestListThenDetails: a frontend that shows a list and then the detail
// page of every group and version on it costs one upstream call.
func TestListThenDetails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, cache.Options{})
	list := e.post(t, `{ imageGroups(first: 20) { nodes { id groupId versions { nodes { id imageId } } } } }`, nil)
	require.Empty(t, list.Errors)
	var out struct {
		ImageGroups struct {
			Nodes []struct {
				ID, GroupID string
				Versions    struct {
					Nodes []struct{ ID, ImageID string }
				}
			}
		}
	}
	require.NoError(t, json.Unmarshal(list.Data, &out))
	require.Len(t, out.ImageGroups.Nodes, 20)
	lookups := 0
	for _, g := range out.ImageGroups.Nodes {
		a := e.post(t, `query($g: ID!, $id: ID!) { imageGroup(groupId: $g) { name versions { totalCount } } node(id: $id) { id } }`,
			map[string]any{"g": g.GroupID, "id": g.ID})
		require.Empty(t, a.Errors, string(a.raw))
		assert.Contains(t, string(a.Data), `"name"`)
		for _, v := range g.Versions.Nodes {
			a := e.post(t, `query($v: ID!, $id: ID!) { imageVersion(imageId: $v) { versionName group { name } } node(id: $id) { id } }`,
				map[string]any{"v": v.ImageID, "id": v.ID})
			require.Empty(t, a.Errors, string(a.raw))
			assert.NotContains(t, string(a.Data), "null")
			lookups++
		}
	}
	assert.Greater(t, lookups, 20)
	assert.EqualValues(t, 1, e.calls(), "the list, then every detail: one call")
}

// TestStaleIsRefreshedOnce: an entry past its TTL is answered at once (the
// answer says no-store: its data is stale) while exactly one background
// call refreshes it, however many read it meanwhile.
func TestStaleIsRefreshedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, cache.Options{})
	require.Empty(t, e.post(t, pageQuery, nil).Errors)
	e.clock.Advance(40 * time.Second)
	// The refresh takes a while, so that the reads below meet it under way.
	e.sb.InjectFault(sandbox.Fault{Latency: 500 * time.Millisecond, Times: 1})
	for range 8 {
		a := e.post(t, pageQuery, nil)
		require.Empty(t, a.Errors)
		assert.Equal(t, "no-store", a.header.Get("Cache-Control"))
		assert.Nil(t, a.Extensions.StaleData, "revalidating is not stale-if-error")
	}
	require.Eventually(t, func() bool {
		return e.post(t, pageQuery, nil).header.Get("Cache-Control") == "public, max-age=30"
	}, 5*time.Second, 5*time.Millisecond, "the entry is fresh again")
	assert.EqualValues(t, 2, e.calls(), "one background call refreshed it")
	assert.EqualValues(t, 1, e.cache.Stats().Refreshes)
}

// TestUpstreamOutage: with the upstream failing every call, a cached page
// is still answered, with its age and the failure it replaced in
// extensions.staleData; an uncached one fails; once the circuit opens,
// uncached pages fail at once without a call (UPSTREAM_UNAVAILABLE with
// retryAfterSeconds) while cached ones are still answered; when the
// upstream is back, the circuit closes after its cooldown.
func TestUpstreamOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, cache.Options{})
	cached := e.post(t, pageQuery, nil)
	require.Empty(t, cached.Errors)

	e.sb.InjectFault(sandbox.Fault{HTTPStatus: http.StatusServiceUnavailable})
	e.clock.Advance(5 * time.Minute)
	stale := e.post(t, pageQuery, nil)
	require.Empty(t, stale.Errors, string(stale.raw))
	assert.JSONEq(t, string(cached.Data), string(stale.Data), "nothing else about the answer changes")
	require.NotNil(t, stale.Extensions.StaleData)
	assert.Equal(t, 300, stale.Extensions.StaleData.AgeSeconds)
	assert.Equal(t, "UPSTREAM_UNAVAILABLE", stale.Extensions.StaleData.Reason)
	assert.Equal(t, "no-store", stale.header.Get("Cache-Control"))

	// Three failed calls open the circuit (this one and the two below).
	for _, first := range []int{3, 4} {
		a := e.post(t, fmt.Sprintf(`{ imageGroups(first: %d) { totalCount nodes { groupId } } }`, first), nil)
		require.NotEmpty(t, a.Errors)
		assert.Equal(t, "UPSTREAM_UNAVAILABLE", a.Errors[0].Extensions["code"])
		assert.Equal(t, "no-store", a.header.Get("Cache-Control"))
	}
	before := e.calls()
	open := e.post(t, `{ imageGroups(first: 5) { totalCount nodes { groupId } } }`, nil)
	require.NotEmpty(t, open.Errors)
	assert.Equal(t, "UPSTREAM_UNAVAILABLE", open.Errors[0].Extensions["code"])
	assert.NotNil(t, open.Errors[0].Extensions["retryAfterSeconds"])
	assert.Equal(t, before, e.calls(), "the open circuit failed it at once, without a call")
	still := e.post(t, pageQuery, nil)
	require.Empty(t, still.Errors)
	require.NotNil(t, still.Extensions.StaleData)
	assert.Equal(t, before, e.calls())

	e.sb.ClearFaults()
	require.Eventually(t, func() bool {
		return len(e.post(t, `{ imageGroups(first: 5) { totalCount } }`, nil).Errors) == 0
	}, 5*time.Second, 10*time.Millisecond, "after the cooldown a probe closes the circuit")
	fresh := e.post(t, pageQuery, nil)
	require.Empty(t, fresh.Errors)
	assert.Nil(t, fresh.Extensions.StaleData)
}

// TestFloodOfDistinctPages: the cache stays within CACHE_MAX_BYTES however
// many distinct pages are read.
func TestFloodOfDistinctPages(t *testing.T) {
	t.Parallel()
	const bound = 512 << 10
	e := newEnv(t, cache.Options{MaxBytes: bound})
	for first := 1; first <= 60; first++ {
		for _, order := range []string{"", `, orderBy: {field: USAGE, direction: ASC}`, `, orderBy: {field: PUBLISHED_AT, direction: DESC}`} {
			a := e.post(t, fmt.Sprintf(`{ imageGroups(first: %d%s) { nodes { groupId } } }`, first, order), nil)
			require.Empty(t, a.Errors)
		}
	}
	st := e.cache.Stats()
	assert.LessOrEqual(t, st.Bytes, uint64(bound))
	assert.Greater(t, st.Bytes, uint64(bound/4))
}

// TestConcurrentIdenticalMisses: identical reads that miss together make
// one upstream call.
func TestConcurrentIdenticalMisses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, cache.Options{}, sandbox.WithLatency(200*time.Millisecond))
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() { assert.Empty(t, e.post(t, pageQuery, nil).Errors) })
	}
	wg.Wait()
	assert.EqualValues(t, 1, e.calls())
}

// TestETag: a GET answer carries an ETag; If-None-Match with it gets 304
// without a body; an answer with errors is neither stored nor tagged.
func TestETag(t *testing.T) {
	t.Parallel()
	e := newEnv(t, cache.Options{})
	a := e.get(t, pageQuery, "")
	require.Equal(t, http.StatusOK, a.status)
	etag := a.header.Get("ETag")
	require.NotEmpty(t, etag)
	assert.Equal(t, "public, max-age=30", a.header.Get("Cache-Control"))
	assert.Contains(t, a.header.Values("Vary"), "Accept")

	b := e.get(t, pageQuery, etag)
	assert.Equal(t, http.StatusNotModified, b.status)
	assert.Empty(t, b.raw)
	assert.Equal(t, etag, b.header.Get("ETag"))

	c := e.get(t, pageQuery, `"something-else"`)
	assert.Equal(t, http.StatusOK, c.status)
	assert.Equal(t, etag, c.header.Get("ETag"), "the same data, the same tag")

	bad := e.get(t, `{ imageGroups(first: -1) { totalCount } }`, "")
	require.NotEmpty(t, bad.Errors)
	assert.Empty(t, bad.header.Get("ETag"))
	assert.Equal(t, "no-store", bad.header.Get("Cache-Control"))
}

package answers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/compshare/imagegraph/internal/codes"
	"github.com/compshare/imagegraph/internal/documents"
	"github.com/compshare/imagegraph/internal/gqlhttp"
)

// clock is a controllable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// executor stands for the GraphQL handler: it "executes" a request by
// answering its query and variables as data, tells the answer hook as the
// transports do, and counts its executions. gate, when set, holds each
// execution until closed.
type executor struct {
	runs    atomic.Int64
	verdict Verdict
	gate    chan struct{}
	started chan struct{}
}

func (e *executor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.runs.Add(1)
	if e.started != nil {
		e.started <- struct{}{}
	}
	if e.gate != nil {
		<-e.gate
	}
	var p params
	if r.Method == http.MethodGet {
		v, _ := url.ParseQuery(r.URL.RawQuery)
		p.Query = v.Get("query")
		if vars := v.Get("variables"); vars != "" {
			p.Variables = json.RawMessage(vars)
		}
	} else {
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &p)
	}
	data, _ := json.Marshal(map[string]any{"q": strings.Join(strings.Fields(p.Query), " "), "vars": p.Variables, "run": e.runs.Load()})
	resp := &graphql.Response{Data: data}
	ctx := graphql.WithOperationContext(r.Context(), &graphql.OperationContext{
		RawQuery: p.Query, Operation: &ast.OperationDefinition{Operation: ast.Query}})
	if hook := gqlhttp.AnswerHookFrom(ctx); hook != nil {
		hook(ctx, resp)
	}
	w.Header().Set("Content-Type", "application/json")
	parts := gqlhttp.RenderResponse(resp)
	for _, p := range parts {
		_, _ = w.Write(p)
	}
}

type fixture struct {
	cache *Cache
	exec  *executor
	clk   *clock
	srv   *httptest.Server
	docs  *documents.Cache
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	f := &fixture{
		exec: &executor{verdict: Verdict{Share: true, Keep: true, TTL: 30 * time.Second, Cost: 7,
			Extensions: map[string]any{"cost": map[string]any{"estimated": 7, "upstreamCalls": 0}}, Name: "Q", Type: "query"}},
		clk:  &clock{t: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)},
		docs: documents.New(documents.Options{}),
	}
	opts.Documents = f.docs
	opts.Now = f.clk.Now
	if opts.Judge == nil {
		opts.Judge = func(context.Context, *graphql.Response) Verdict { return f.exec.verdict }
	}
	f.cache = New(opts)
	f.srv = httptest.NewServer(f.cache.Handler(f.exec))
	t.Cleanup(f.srv.Close)
	return f
}

// post sends body and returns the status, headers and body.
func (f *fixture) post(t *testing.T, body string, headers ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return f.do(t, req)
}

func (f *fixture) get(t *testing.T, query string, headers ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.srv.URL+"?query="+url.QueryEscape(query), nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return f.do(t, req)
}

func (f *fixture) do(t *testing.T, req *http.Request) (int, http.Header, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

func body(query string, extra ...string) string {
	b, _ := json.Marshal(query)
	return `{"query":` + string(b) + strings.Join(extra, "") + `}`
}

// TestRepeatIsAnsweredWithoutExecution: the second request is answered
// from the cache, with the hit's extensions and the remaining freshness.
func TestRepeatIsAnsweredWithoutExecution(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	status, _, first := f.post(t, body(`{ a }`))
	require.Equal(t, http.StatusOK, status)
	assert.EqualValues(t, 1, f.exec.runs.Load())
	f.clk.Add(10 * time.Second)
	status, h, second := f.post(t, body(`{ a }`))
	require.Equal(t, http.StatusOK, status)
	assert.EqualValues(t, 1, f.exec.runs.Load(), "answered without executing")
	assert.Contains(t, second, `"data":{"q":"{ a }","run":1,"vars":null}`)
	assert.Contains(t, second, `"extensions":{"cost":{"estimated":7,"upstreamCalls":0}}`)
	assert.NotEqual(t, first, "", "the miss answered too")
	assert.Equal(t, "public, max-age=20", h.Get("Cache-Control"), "what is left of 30 s after 10")
	assert.Equal(t, "application/json", h.Get("Content-Type"))
	assert.Equal(t, Stats{Hits: 1, Misses: 1, Entries: 1, Bytes: f.cache.Stats().Bytes}, f.cache.Stats())
}

// TestKeys: whitespace, comments and the order of variables make no new
// entry; a different variable, operation name or document does.
func TestKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	same := []string{
		body(`{ a(n: $n) }`, `,"variables":{"n":1,"m":2}`),
		body("{\n  a(n: $n) # the same\n}", `,"variables":{"m":2,"n":1}`),
		body(`{a(n:$n)}`, `,"variables":{ "m" : 2 , "n" : 1 }`),
	}
	for _, b := range same {
		f.post(t, b)
	}
	assert.EqualValues(t, 1, f.exec.runs.Load(), "one entry for the same operation")
	for i, b := range []string{
		body(`{ a(n: $n) }`, `,"variables":{"n":2,"m":2}`),
		body(`{ a(n: $n) }`, `,"variables":{"n":1,"m":2}`, `,"operationName":"Other"`),
		body(`{ b(n: $n) }`, `,"variables":{"n":1,"m":2}`),
		body(`{ a(n: $n) }`),
	} {
		f.post(t, b)
		assert.EqualValues(t, 2+i, f.exec.runs.Load(), "a new entry: %s", b)
	}
	// An empty or null variables object is no variables.
	f.post(t, body(`{ a(n: $n) }`, `,"variables":null`))
	f.post(t, body(`{ a(n: $n) }`, `,"variables":{}`))
	assert.EqualValues(t, 5, f.exec.runs.Load())
}

// TestPersistedRequests: a document named by an APQ hash or a persisted id
// shares its entry with the same document sent as text; an APQ hash with
// a query that is not its document is not answered here (the executor
// refuses it).
func TestPersistedRequests(t *testing.T) {
	t.Parallel()
	const doc = `query Listed { a }`
	f := newFixture(t, Options{Resolve: func(id string) (string, bool) { return doc, id == "listed-1" }})
	sum := sha256.Sum256([]byte(doc))
	apq := `,"extensions":{"persistedQuery":{"version":1,"sha256Hash":"` + hex.EncodeToString(sum[:]) + `"}}`
	f.post(t, body(doc))
	f.post(t, `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"`+hex.EncodeToString(sum[:])+`"}}}`)
	f.post(t, body("query Listed {\n a\n}", apq[:0]))
	f.post(t, `{"documentId":"listed-1"}`)
	assert.EqualValues(t, 1, f.exec.runs.Load(), "text, hash and id share one entry")
	f.post(t, body(`{ b }`, apq))
	assert.EqualValues(t, 2, f.exec.runs.Load(), "a hash mismatch goes to the executor")
	f.post(t, `{"documentId":"unknown"}`)
	assert.EqualValues(t, 3, f.exec.runs.Load(), "an unknown id goes to the executor")
}

// TestFreshness: an answer past its freshness is executed again, never
// served; and one the Judge refuses (errors, stale data) is never kept.
func TestFreshness(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	f.post(t, body(`{ a }`))
	f.clk.Add(30 * time.Second)
	_, _, b := f.post(t, body(`{ a }`))
	assert.EqualValues(t, 2, f.exec.runs.Load(), "stale: rebuilt")
	assert.Contains(t, b, `"run":2`)
	f.exec.verdict = Verdict{}
	f.post(t, body(`{ b }`))
	f.post(t, body(`{ b }`))
	assert.EqualValues(t, 4, f.exec.runs.Load(), "not kept")
}

// TestETag: a GET hit carries the answer's ETag and Vary: Accept, and an
// If-None-Match naming it gets 304 with no body.
func TestETag(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	_, _, _ = f.get(t, `{ a }`)
	status, h, _ := f.get(t, `{ a }`)
	require.Equal(t, http.StatusOK, status)
	etag := h.Get("ETag")
	assert.True(t, strings.HasPrefix(etag, `W/"`), etag)
	assert.Equal(t, "Accept", h.Get("Vary"))
	status, h, b := f.get(t, `{ a }`, "If-None-Match", etag)
	assert.Equal(t, http.StatusNotModified, status)
	assert.Empty(t, b)
	assert.Equal(t, etag, h.Get("ETag"))
	assert.EqualValues(t, 1, f.exec.runs.Load())
}

// TestHitsAreCharged: a hit charges its client the answer's cost, and a
// refusal is a 429 with Retry-After.
func TestHitsAreCharged(t *testing.T) {
	t.Parallel()
	var charged atomic.Int64
	refuse := atomic.Bool{}
	f := newFixture(t, Options{Admit: func(_ context.Context, cost int) error {
		if refuse.Load() {
			return limitedError{}
		}
		charged.Add(int64(cost))
		return nil
	}})
	f.post(t, body(`{ a }`))
	f.post(t, body(`{ a }`))
	assert.EqualValues(t, 7, charged.Load(), "the hit paid the cost (the miss pays in the executor)")
	refuse.Store(true)
	status, h, b := f.post(t, body(`{ a }`))
	assert.Equal(t, http.StatusTooManyRequests, status)
	assert.Equal(t, "3", h.Get("Retry-After"))
	assert.Contains(t, b, `"code":"RATE_LIMITED"`)
	assert.NotContains(t, b, `"data"`)
}

type limitedError struct{}

func (limitedError) Error() string     { return "rate limited" }
func (limitedError) ErrorCode() string { return codes.RateLimited }
func (limitedError) ErrorExtensions() map[string]any {
	return map[string]any{"retryAfterSeconds": 3}
}

// TestVariantsAndBypass: a request of another variant (a federation
// router) has entries of its own, and a bypassed one (a federated trace)
// always executes.
func TestVariantsAndBypass(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{
		Variant: func(r *http.Request) string { return r.Header.Get("X-Variant") },
		Bypass:  func(r *http.Request) bool { return r.Header.Get("X-Bypass") != "" },
	})
	f.post(t, body(`{ a }`))
	f.post(t, body(`{ a }`), "X-Variant", "router")
	f.post(t, body(`{ a }`), "X-Variant", "router")
	assert.EqualValues(t, 2, f.exec.runs.Load())
	f.post(t, body(`{ a }`), "X-Bypass", "1")
	f.post(t, body(`{ a }`), "X-Bypass", "1")
	assert.EqualValues(t, 4, f.exec.runs.Load())
}

// TestConcurrentMissesExecuteOnce: identical requests that miss while one
// executes wait for it and are answered by its kept answer.
func TestConcurrentMissesExecuteOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	f.exec.gate = make(chan struct{})
	f.exec.started = make(chan struct{}, 16)
	const n = 8
	var joined atomic.Int64
	f.cache.joined = func() { joined.Add(1) }
	var wg sync.WaitGroup
	bodies := make([]string, n)
	wg.Go(func() { _, _, bodies[0] = f.post(t, body(`{ a }`)) })
	<-f.exec.started // the first executes
	for i := 1; i < n; i++ {
		wg.Go(func() { _, _, bodies[i] = f.post(t, body(`{ a }`)) })
	}
	require.Eventually(t, func() bool { return joined.Load() == n-1 }, 10*time.Second, time.Millisecond, "the others wait")
	close(f.exec.gate)
	wg.Wait()
	assert.EqualValues(t, 1, f.exec.runs.Load())
	for _, b := range bodies {
		assert.Contains(t, b, `"run":1`)
	}
	assert.EqualValues(t, n-1, f.cache.Stats().Shared)
}

// TestUnkeptAnswersAreStillShared: an answer that may be shared but not
// kept (built from data no cache keeps fresh: CACHE_TTL=0) goes to the
// requests that waited for its execution, and is not served afterwards.
func TestUnkeptAnswersAreStillShared(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	f.exec.verdict = Verdict{Share: true, Cost: 7}
	f.exec.gate = make(chan struct{})
	f.exec.started = make(chan struct{}, 16)
	var joined atomic.Int64
	f.cache.joined = func() { joined.Add(1) }
	var wg sync.WaitGroup
	bodies := make([]string, 3)
	wg.Go(func() { _, _, bodies[0] = f.post(t, body(`{ a }`)) })
	<-f.exec.started
	for i := 1; i < len(bodies); i++ {
		wg.Go(func() { _, _, bodies[i] = f.post(t, body(`{ a }`)) })
	}
	require.Eventually(t, func() bool { return joined.Load() == 2 }, 10*time.Second, time.Millisecond)
	close(f.exec.gate)
	wg.Wait()
	assert.EqualValues(t, 1, f.exec.runs.Load(), "one execution for the three")
	for _, b := range bodies {
		assert.Contains(t, b, `"run":1`)
	}
	f.post(t, body(`{ a }`))
	assert.EqualValues(t, 2, f.exec.runs.Load(), "not kept: a later request executes")
}

// TestSharedErrorsAreNotShared: when the shared execution's answer may not
// be shared (it has errors), each waiting request executes on its own: no
// client gets another's errors.
func TestSharedErrorsAreNotShared(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	f.exec.verdict = Verdict{}
	f.exec.gate = make(chan struct{})
	f.exec.started = make(chan struct{}, 16)
	var joined atomic.Int64
	f.cache.joined = func() { joined.Add(1) }
	var wg sync.WaitGroup
	wg.Go(func() { f.post(t, body(`{ a }`)) })
	<-f.exec.started
	wg.Go(func() { f.post(t, body(`{ a }`)) })
	require.Eventually(t, func() bool { return joined.Load() == 1 }, 10*time.Second, time.Millisecond)
	close(f.exec.gate)
	wg.Wait()
	assert.EqualValues(t, 2, f.exec.runs.Load())
}

// TestBoundInBytes: a flood of distinct answers never holds more than the
// bound.
func TestBoundInBytes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{MaxBytes: 64 << 10})
	pad := strings.Repeat("x", 2000)
	for i := range 400 {
		f.post(t, body(fmt.Sprintf(`{ a(s: "%d%s") }`, i, pad)))
	}
	f.cache.entries.CleanUp()
	st := f.cache.Stats()
	assert.LessOrEqual(t, st.Bytes, uint64(64<<10))
	assert.Positive(t, st.Entries)
	assert.Positive(t, st.Evictions)
}

// TestNotAnswered: requests the cache cannot key go to the executor as
// they are: another media type, a body that does not decode, variables
// that are not an object, another method.
func TestNotAnswered(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	for _, b := range []string{`{"query":`, `[{"query":"{ a }"}]`, body(`{ a }`, `,"variables":[1]`)} {
		f.post(t, b)
	}
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL, strings.NewReader(body(`{ a }`)))
	req.Header.Set("Content-Type", "text/plain")
	f.do(t, req)
	req, _ = http.NewRequest(http.MethodPut, f.srv.URL, strings.NewReader(body(`{ a }`)))
	f.do(t, req)
	assert.EqualValues(t, 5, f.exec.runs.Load())
	assert.Zero(t, f.cache.Stats().Entries)
}

func TestRequestError(t *testing.T) {
	t.Parallel()
	err := requestError(fmt.Errorf("wrapped: %w", limitedError{}))
	assert.Equal(t, codes.RateLimited, err.Extensions["code"])
	assert.Equal(t, 3, err.Extensions["retryAfterSeconds"])
	assert.Nil(t, requestError(errors.New("x")).Extensions["code"])
}

// BenchmarkHit is the cache's own work on a hit, without the network: a
// POST of the README's reference operation (about 300 bytes of query)
// answered from the cache into a recorder. Allocations and bytes a hit
// costs the cache.
func BenchmarkHit(b *testing.B) {
	docs := documents.New(documents.Options{})
	c := New(Options{Documents: docs, Judge: func(context.Context, *graphql.Response) Verdict {
		return Verdict{Share: true, Keep: true, TTL: time.Hour, Cost: 491, Extensions: map[string]any{"cost": map[string]any{"estimated": 491}}}
	}})
	data := []byte(`{"imageGroups":{"totalCount":146,"nodes":[` + strings.Repeat(`{"groupId":"group-x3efh4me","name":"Stable Diffusion"},`, 100) + `{}]}}`)
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := graphql.WithOperationContext(r.Context(), &graphql.OperationContext{Operation: &ast.OperationDefinition{Operation: ast.Query}})
		gqlhttp.AnswerHookFrom(r.Context())(ctx, &graphql.Response{Data: data})
	}))
	const query = `{"query":"{ imageGroups(first: 20) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { groupId name favoritesCount status useTime versions { totalCount nodes { imageId name } } latestVersion { imageId name publishedAt } } } } }"}`
	serve := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(query))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	serve()
	if rec := serve(); rec.Code != http.StatusOK || c.Stats().Hits != 1 {
		b.Fatalf("not a hit: %d %+v", rec.Code, c.Stats())
	}
	b.ReportAllocs()
	for b.Loop() {
		serve()
	}
}

package gqlhttp_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/compshare/imagegraph/graph"
	"github.com/compshare/imagegraph/internal/codes"
	"github.com/compshare/imagegraph/internal/gqlhttp"
	"github.com/compshare/imagegraph/internal/testkit"
	"github.com/compshare/imagegraph/upstream"
)

// canned is a fake upstream that answers every call with the same two
// groups, or, failing, fails every call with a RetCode.
func canned(failing bool) *testkit.Upstream {
	up := &testkit.Upstream{Answer: func(context.Context, *upstream.DescribeCommunityImagesRequest) (*upstream.DescribeCommunityImagesResponse, error) {
		return &upstream.DescribeCommunityImagesResponse{TotalCount: 2, CompshareImageGroup: []upstream.ImageGroup{
			{GroupId: "g1", ImageName: "<b>One</b> & \u4e00", Data: []upstream.Image{{CompShareImageId: "i1", Name: "v1", Status: "Available", PubTime: 5}}},
			{GroupId: "g2", ImageName: "Two", Data: []upstream.Image{{CompShareImageId: "i2", Name: "v2"}}},
		}}, nil
	}}
	if failing {
		up.Fail(&upstream.APIError{Kind: upstream.KindRetCode, RetCode: 230, Message: "no such thing"})
	}
	return up
}

// serverWith is the API with post as its POST transport.
func serverWith(post graphql.Transport, svc upstream.Service) http.Handler {
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{MaxPageSize: graph.DefaultMaxPageSize}}))
	srv.AddTransport(post)
	srv.SetErrorPresenter(graph.ErrorPresenter(slog.New(slog.DiscardHandler)))
	srv.SetRecoverFunc(graph.RecoverFunc)
	return graph.Middleware(svc, graph.LoaderOptions{}, srv)
}

// TestPostTransportMatchesGqlgen: for answers that execute and for every
// kind of request error, gqlhttp.POST gives the same status, media type
// and JSON as gqlgen's own POST transport.
func TestPostTransportMatchesGqlgen(t *testing.T) {
	query := func(q string) string {
		b, _ := json.Marshal(map[string]any{"query": q})
		return string(b)
	}
	for _, failing := range []bool{false, true} {
		svc := canned(failing)
		ours, theirs := serverWith(gqlhttp.POST{}, svc), serverWith(transport.POST{}, svc)
		for _, body := range []string{
			query(`{ imageGroups(first: 2) { totalCount edges { cursor node { id name versions { totalCount } latestVersion { name publishedAt } } } } }`),
			query(`{ a: imageGroups(first: 1) { totalCount } b: imageGroups(first: -1) { totalCount } }`),
			`{"query":"query($n: Int) { imageGroups(first: $n) { totalCount } }","variables":{"n":1}}`,
			`{"query":"query($n: Int) { imageGroups(first: $n) { totalCount } }","variables":{"n":"x"}}`,
			`{"query":"{ __typename }","operationName":"Nope"}`,
			query(`{ imageGroups { nope } }`),
			query(`{ imageGroups(`),
		} {
			for _, accept := range []string{"", "application/json", "application/graphql-response+json", "*/*", "text/html", "application/graphql-response+json, application/json"} {
				req := func() *http.Request {
					r := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(body))
					r.Header.Set("Content-Type", "application/json")
					return r
				}
				got, want := compare(t, ours, theirs, req, accept, svcName(failing)+" "+accept+" "+body)
				assert.Equal(t, want.Header().Get("Content-Type"), got.Header().Get("Content-Type"), body)
			}
		}
	}
}

// compare serves the request req makes, with accept, by ours and by theirs,
// and checks that both give the same status (200 where theirs says 422 to
// application/json, as GraphQL over HTTP asks) and the same JSON.
func compare(t *testing.T, ours, theirs http.Handler, req func() *http.Request, accept, name string) (got, want *httptest.ResponseRecorder) {
	t.Helper()
	do := func(h http.Handler) *httptest.ResponseRecorder {
		r := req()
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	got, want = do(ours), do(theirs)
	wantCode := want.Code
	if wantCode == http.StatusUnprocessableEntity && strings.HasPrefix(want.Header().Get("Content-Type"), "application/json") {
		// GraphQL over HTTP: application/json carries request errors with
		// 200, where gqlgen says 422.
		wantCode = http.StatusOK
	}
	assert.Equal(t, wantCode, got.Code, name)
	var g, w any
	require.NoError(t, json.Unmarshal(got.Body.Bytes(), &g), name)
	require.NoError(t, json.Unmarshal(want.Body.Bytes(), &w), name)
	assert.Equal(t, sortErrors(w), sortErrors(g), name)
	return got, want
}

// sortErrors orders a decoded response's errors: root fields resolve
// concurrently, so their errors come in either order. It also drops a null
// "data" beside errors: gqlgen writes one for request errors, ours
// leave the entry out, as GraphQL over HTTP asks.
func sortErrors(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	if d, has := m["data"]; has && d == nil && m["errors"] != nil {
		delete(m, "data")
	}
	if errs, ok := m["errors"].([]any); ok {
		key := func(e any) string { b, _ := json.Marshal(e); return string(b) }
		sort.Slice(errs, func(i, j int) bool { return key(errs[i]) < key(errs[j]) })
	}
	return m
}

func svcName(failing bool) string {
	if failing {
		return "failing"
	}
	return "ok"
}

// TestGetTransportMatchesGqlgen: over GET too, answers and request errors
// are what gqlgen's own GET transport gives.
func TestGetTransportMatchesGqlgen(t *testing.T) {
	t.Parallel()
	for _, failing := range []bool{false, true} {
		svc := canned(failing)
		ours, theirs := serverWith(gqlhttp.GET{}, svc), serverWith(transport.GET{}, svc)
		for _, q := range []string{
			"query=" + url.QueryEscape(`{ imageGroups(first: 2) { totalCount nodes { name } } }`),
			"query=" + url.QueryEscape(`query($n: Int) { imageGroups(first: $n) { totalCount } }`) + "&variables=" + url.QueryEscape(`{"n":1}`),
			"query=" + url.QueryEscape(`query($n: Int) { imageGroups(first: $n) { totalCount } }`) + "&variables=" + url.QueryEscape(`{"n":"x"}`),
			"query=" + url.QueryEscape(`{ imageGroups { nope } }`),
			"query=" + url.QueryEscape(`{ imageGroups(`),
			"query=" + url.QueryEscape(`{ __typename }`) + "&operationName=Nope",
			"query=" + url.QueryEscape(`mutation { x }`),
			"",
		} {
			for _, accept := range []string{"", "application/json", "application/graphql-response+json"} {
				req := func() *http.Request { return httptest.NewRequest(http.MethodGet, "/query?"+q, nil) }
				got, want := compare(t, ours, theirs, req, accept, svcName(failing)+" "+accept+" "+q)
				assert.Equal(t, want.Header().Get("Content-Type"), got.Header().Get("Content-Type"), q)
			}
		}
	}
}

// TestUnreadableRequests: a request the transports cannot read (a body that
// is not a JSON object of parameters, variables that do not decode, a
// method or media type they do not serve, a body over its bound) gets a
// status that says why and one error with code BAD_USER_INPUT, whose
// message does not quote the body back or name the server's Go types; and
// nothing executes.
func TestUnreadableRequests(t *testing.T) {
	t.Parallel()
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{MaxPageSize: graph.DefaultMaxPageSize}}))
	srv.AddTransport(transport.Options{})
	srv.AddTransport(gqlhttp.GET{})
	srv.AddTransport(gqlhttp.POST{})
	srv.AddTransport(gqlhttp.Unsupported{})
	spy := &paramsSpy{}
	srv.Use(spy)
	h := graph.Middleware(canned(false), graph.LoaderOptions{}, srv)
	const secret = "s3cr3t-in-the-body"
	post := func(ct, body string) func() *http.Request {
		return func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(body))
			r.Header.Set("Content-Type", ct)
			return r
		}
	}
	for _, tc := range []struct {
		name    string
		req     func() *http.Request
		status  int
		message string
		header  [2]string
	}{
		{"not json", post("application/json", `not json `+secret), 400, "not JSON (at byte 2", [2]string{}},
		{"empty", post("application/json", ``), 400, "empty or ends early", [2]string{}},
		{"cut short", post("application/json", `{"query":"`+secret), 400, "empty or ends early", [2]string{}},
		{"batch", post("application/json", `[{"query":"{ __typename }"},{"query":"`+secret+`"}]`), 400, "not a JSON array (batched requests are not served)", [2]string{}},
		{"query a number", post("application/json", `{"query": 12, "x": "`+secret+`"}`), 400, `body's "query" cannot be a JSON number`, [2]string{}},
		{"variables a string", post("application/json", `{"query":"{ __typename }","variables":"`+secret+`"}`), 400, `body's "variables" cannot be a JSON string`, [2]string{}},
		{"too large", func() *http.Request {
			r := post("application/json", `{"query":"{ __typename }", "pad":"`+strings.Repeat("x", 100)+`"}`)()
			r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 64)
			return r
		}, 413, "larger than 64 bytes", [2]string{}},
		{"text/plain", post("text/plain", `{"query":"{ __typename }"}`), 415, `must be application/json, not "text/plain"`, [2]string{"Accept-Post", "application/json"}},
		{"no content type", post("", `{"query":"{ __typename }"}`), 415, `must be application/json, not ""`, [2]string{"Accept-Post", "application/json"}},
		{"PUT", func() *http.Request { return httptest.NewRequest(http.MethodPut, "/query", strings.NewReader(secret)) }, 405, "method PUT is not allowed", [2]string{"Allow", "GET, POST, OPTIONS"}},
		{"websocket", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/query", nil)
			r.Header.Set("Upgrade", "websocket")
			return r
		}, 400, "websocket subscriptions", [2]string{}},
		{"GET variables", func() *http.Request {
			return httptest.NewRequest(http.MethodGet, "/query?query=%7B__typename%7D&variables="+secret, nil)
		}, 400, "variables could not be decoded", [2]string{}},
		{"GET query string", func() *http.Request { return httptest.NewRequest(http.MethodGet, "/query?query=%zz", nil) }, 400, "invalid URL escape", [2]string{}},
	} {
		for _, accept := range []string{"application/json", "application/graphql-response+json"} {
			req := tc.req()
			req.Header.Set("Accept", accept)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			name := tc.name + " " + accept
			assert.Equal(t, tc.status, rec.Code, name)
			assert.Equal(t, accept, rec.Header().Get("Content-Type"), name)
			assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"), name)
			if tc.header[0] != "" {
				assert.Equal(t, tc.header[1], rec.Header().Get(tc.header[0]), name)
			}
			var resp struct {
				Data   *json.RawMessage `json:"data"`
				Errors []struct {
					Message    string
					Extensions map[string]any
				}
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &resp), name)
			assert.Nil(t, resp.Data, name)
			require.Len(t, resp.Errors, 1, name)
			assert.Contains(t, resp.Errors[0].Message, tc.message, name)
			assert.Equal(t, "BAD_USER_INPUT", resp.Errors[0].Extensions["code"], name)
			assert.NotContains(t, rec.Body.String(), secret, name)
			assert.NotContains(t, rec.Body.String(), "RawParams", name)
		}
	}
	assert.Empty(t, spy.seen, "nothing reached the executor")
}

// paramsSpy records the extensions every operation arrives with, and
// refuses operations named "Limited" as a rate limiter would.
type paramsSpy struct {
	mu   sync.Mutex
	seen []map[string]any
}

func (*paramsSpy) ExtensionName() string                   { return "ParamsSpy" }
func (*paramsSpy) Validate(graphql.ExecutableSchema) error { return nil }
func (s *paramsSpy) MutateOperationParameters(_ context.Context, raw *graphql.RawParams) *gqlerror.Error {
	s.mu.Lock()
	s.seen = append(s.seen, raw.Extensions)
	s.mu.Unlock()
	if raw.OperationName == "Limited" {
		return &gqlerror.Error{Message: "slow down", Extensions: map[string]any{"code": codes.RateLimited, "retryAfterSeconds": 7}}
	}
	return nil
}

func (s *paramsSpy) last() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[len(s.seen)-1]
}

// TestDocumentIDReachesExtensions: a persisted document id, as
// documentId or Relay's doc_id, in a POST body or a GET query string,
// reaches the executor's extensions.
func TestDocumentIDReachesExtensions(t *testing.T) {
	t.Parallel()
	spy := &paramsSpy{}
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{MaxPageSize: graph.DefaultMaxPageSize}}))
	srv.AddTransport(gqlhttp.POST{})
	srv.AddTransport(gqlhttp.GET{})
	srv.Use(spy)
	h := graph.Middleware(canned(false), graph.LoaderOptions{}, srv)
	for _, tc := range []struct{ method, target, body, want string }{
		{http.MethodPost, "/query", `{"documentId":"abc","extensions":{"x":1}}`, "abc"},
		{http.MethodPost, "/query", `{"doc_id":"rel1"}`, "rel1"},
		{http.MethodGet, "/query?documentId=sha256:ff", "", "sha256:ff"},
		{http.MethodGet, "/query?doc_id=r2&extensions=" + url.QueryEscape(`{"y":2}`), "", "r2"},
	} {
		req := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(httptest.NewRecorder(), req)
		assert.Equal(t, tc.want, spy.last()[gqlhttp.DocumentIDExtension], tc.method+" "+tc.target+" "+tc.body)
	}
}

// TestRateLimitedIsA429: a request error with the RATE_LIMITED code is
// answered 429 with Retry-After, whatever media type the client accepts.
func TestRateLimitedIsA429(t *testing.T) {
	t.Parallel()
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{MaxPageSize: graph.DefaultMaxPageSize}}))
	srv.AddTransport(gqlhttp.POST{})
	srv.AddTransport(gqlhttp.GET{})
	srv.Use(&paramsSpy{})
	h := graph.Middleware(canned(false), graph.LoaderOptions{}, srv)
	for _, accept := range []string{"application/json", "application/graphql-response+json"} {
		for _, req := range []*http.Request{
			httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(`{"query":"query Limited { __typename }","operationName":"Limited"}`)),
			httptest.NewRequest(http.MethodGet, "/query?operationName=Limited&query="+url.QueryEscape("query Limited { __typename }"), nil),
		} {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", accept)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			assert.Equal(t, http.StatusTooManyRequests, rec.Code, accept)
			assert.Equal(t, "7", rec.Header().Get("Retry-After"))
			assert.Contains(t, rec.Body.String(), `"code":"RATE_LIMITED"`)
		}
	}
}

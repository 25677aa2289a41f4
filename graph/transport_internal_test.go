package graph

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/compshare/imagegraph/upstream"
)

// cannedService answers every call with the same two groups, or fails.
type cannedService struct{ fail bool }

func (s cannedService) DescribeCommunityImages(_ context.Context, req *upstream.DescribeCommunityImagesRequest) (*upstream.DescribeCommunityImagesResponse, error) {
	if s.fail {
		return nil, &upstream.APIError{Kind: upstream.KindRetCode, RetCode: 230, Message: "no such thing"}
	}
	return &upstream.DescribeCommunityImagesResponse{TotalCount: 2, CompshareImageGroup: []upstream.ImageGroup{
		{GroupId: "g1", ImageName: "<b>One</b> & \u4e00", Data: []upstream.Image{{CompShareImageId: "i1", Name: "v1", Status: "Available", PubTime: 5}}},
		{GroupId: "g2", ImageName: "Two", Data: []upstream.Image{{CompShareImageId: "i2", Name: "v2"}}},
	}}, nil
}

// serverWith is the API with post as its POST transport.
func serverWith(post graphql.Transport, svc Service) http.Handler {
	srv := handler.New(NewExecutableSchema(Config{Resolvers: &Resolver{MaxPageSize: DefaultMaxPageSize}}))
	srv.AddTransport(post)
	srv.SetErrorPresenter(ErrorPresenter(slog.New(slog.DiscardHandler)))
	srv.SetRecoverFunc(RecoverFunc)
	return Middleware(svc, LoaderOptions{}, srv)
}

// TestPostTransportMatchesGqlgen: for answers that execute and for every
// kind of request error, postTransport gives the same status, media type
// and JSON as gqlgen's own POST transport.
func TestPostTransportMatchesGqlgen(t *testing.T) {
	query := func(q string) string {
		b, _ := json.Marshal(map[string]any{"query": q})
		return string(b)
	}
	for _, svc := range []cannedService{{}, {fail: true}} {
		ours, theirs := serverWith(postTransport{}, svc), serverWith(transport.POST{}, svc)
		for _, body := range []string{
			query(`{ imageGroups(first: 2) { totalCount edges { cursor node { id name versions { totalCount } latestVersion { name publishedAt } } } } }`),
			query(`{ a: imageGroups(first: 1) { totalCount } b: imageGroups(first: -1) { totalCount } }`),
			`{"query":"query($n: Int) { imageGroups(first: $n) { totalCount } }","variables":{"n":1}}`,
			`{"query":"query($n: Int) { imageGroups(first: $n) { totalCount } }","variables":{"n":"x"}}`,
			`{"query":"{ __typename }","operationName":"Nope"}`,
			query(`{ imageGroups { nope } }`),
			query(`{ imageGroups(`),
			`{"query": 12}`,
			`not json`,
			``,
		} {
			for _, accept := range []string{"", "application/json", "application/graphql-response+json", "*/*", "text/html", "application/graphql-response+json, application/json"} {
				do := func(h http.Handler) *httptest.ResponseRecorder {
					req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					if accept != "" {
						req.Header.Set("Accept", accept)
					}
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					return rec
				}
				got, want := do(ours), do(theirs)
				name := svcName(svc) + " " + accept + " " + body
				assert.Equal(t, want.Code, got.Code, name)
				assert.Equal(t, want.Header().Get("Content-Type"), got.Header().Get("Content-Type"), name)
				var g, w any
				require.NoError(t, json.Unmarshal(got.Body.Bytes(), &g), name)
				require.NoError(t, json.Unmarshal(want.Body.Bytes(), &w), name)
				assert.Equal(t, sortErrors(w), sortErrors(g), name)
			}
		}
	}
}

// sortErrors orders a decoded response's errors: root fields resolve
// concurrently, so their errors come in either order.
func sortErrors(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	if errs, ok := m["errors"].([]any); ok {
		key := func(e any) string { b, _ := json.Marshal(e); return string(b) }
		sort.Slice(errs, func(i, j int) bool { return key(errs[i]) < key(errs[j]) })
	}
	return m
}

func svcName(s cannedService) string {
	if s.fail {
		return "failing"
	}
	return "ok"
}

// TestWriteResponseMatchesEncodingJSON: every field of a response, written
// by writeResponse, decodes to what encoding/json writes for it.
func TestWriteResponseMatchesEncodingJSON(t *testing.T) {
	hasNext := false
	for _, resp := range []*graphql.Response{
		{Data: json.RawMessage(`{"a":"<b>&</b>","b":[1,2]}`)},
		{},
		{Errors: gqlerror.List{{Message: "boom", Path: ast.Path{ast.PathName("a"), ast.PathIndex(0)}, Extensions: map[string]any{"code": "X"}}}},
		{Errors: gqlerror.List{{Message: "x"}}, Data: json.RawMessage(`{"a":null}`), Extensions: map[string]any{"cost": 3}},
		{Data: json.RawMessage(`{}`), Label: "l", Path: ast.Path{ast.PathName("p")}, HasNext: &hasNext},
	} {
		var got strings.Builder
		writeResponse(&got, resp)
		want, err := json.Marshal(resp)
		require.NoError(t, err)
		assert.JSONEq(t, string(want), got.String())
	}
}

package persisted

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/compshare/imagegraph/internal/codes"
)

// newServer starts a gqlgen server over testSchema with ext, and returns its
// URL. Its resolvers answer every operation with {"ran": <the document>,
// "listed": Listed(ctx)}.
func newServer(t *testing.T, ext *Extension, introspection bool) string {
	t.Helper()
	es := &graphql.ExecutableSchemaMock{
		SchemaFunc: func() *ast.Schema { return testSchema },
		ExecFunc: func(ctx context.Context) graphql.ResponseHandler {
			data, err := json.Marshal(result{
				Ran:    graphql.GetOperationContext(ctx).RawQuery,
				Listed: Listed(ctx),
			})
			if err != nil {
				panic(err)
			}
			return graphql.OneShot(&graphql.Response{Data: data})
		},
		ComplexityFunc: func(context.Context, string, string, int, map[string]any) (int, bool) {
			return 1, true
		},
	}
	srv := handler.New(es)
	srv.AddTransport(transport.POST{})
	if introspection {
		srv.Use(extension.Introspection{})
	}
	srv.Use(ext)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts.URL
}

// result is what newServer's resolvers answer.
type result struct {
	Ran    string `json:"ran"`
	Listed bool   `json:"listed"`
}

// response is a GraphQL response from newServer.
type response struct {
	status int
	Data   *result `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// code is the extensions.code of the response's first error, or "".
func (r response) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	code, _ := r.Errors[0].Extensions["code"].(string)
	return code
}

// request is the body of a GraphQL request.
type request struct {
	Query      string         `json:"query,omitempty"`
	Variables  map[string]any `json:"variables,omitempty"`
	Extensions map[string]any `json:"extensions,omitempty"`
	header     http.Header
}

func post(t *testing.T, url string, req request) response {
	t.Helper()
	body, err := json.Marshal(req)
	require.NoError(t, err)
	hr, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	for k, v := range req.header {
		hr.Header[k] = v
	}
	hr.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(hr)
	require.NoError(t, err)
	defer res.Body.Close()
	var out response
	require.NoError(t, json.NewDecoder(res.Body).Decode(&out))
	out.status = res.StatusCode
	return out
}

// apq is Apollo's APQ extension for hash.
func apq(hash string) map[string]any {
	return map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}
}

// docID is the transport's documentId extension.
func docID(id any) map[string]any {
	return map[string]any{DocumentIDExtension: id}
}

// assertRan checks that a request ran query, and whether it was listed.
func assertRan(t *testing.T, res response, query string, listed bool) {
	t.Helper()
	require.Empty(t, res.Errors)
	assert.Equal(t, http.StatusOK, res.status)
	require.NotNil(t, res.Data)
	assert.Equal(t, query, res.Data.Ran)
	assert.Equal(t, listed, res.Data.Listed, "listed")
}

// assertRefused checks that a request was refused with code, and the
// HTTP status that code's kind has.
func assertRefused(t *testing.T, res response, code string) {
	t.Helper()
	require.Len(t, res.Errors, 1)
	assert.Equal(t, code, res.code(), res.Errors[0].Message)
	assert.Nil(t, res.Data)
	switch code {
	case codes.PersistedQueryNotFound, codes.PersistedQueryNotSupported:
		assert.Equal(t, http.StatusOK, res.status, "an APQ client turns APQ off for good on a 4xx or 5xx")
	default:
		assert.GreaterOrEqual(t, res.status, 400)
		assert.Less(t, res.status, 500)
	}
}

func newStore(t *testing.T) *MemoryStore {
	t.Helper()
	s := NewMemoryStore(1 << 20)
	return s
}

func TestAPQ(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	url := newServer(t, &Extension{Store: store}, true)
	hash := hashOf(getName)

	// A miss asks for the document, in the words the clients match on.
	res := post(t, url, request{Extensions: apq(hash)})
	assertRefused(t, res, codes.PersistedQueryNotFound)
	assert.Equal(t, "PersistedQueryNotFound", res.Errors[0].Message)

	// The document with its hash runs, and is stored for next time.
	assertRan(t, post(t, url, request{Query: getName, Extensions: apq(hash)}), getName, false)
	assertRan(t, post(t, url, request{Extensions: apq(hash)}), getName, false)
	assertRan(t, post(t, url, request{Extensions: apq(strings.ToUpper(hash))}), getName, false)
}

func TestAPQStoresOnlyValidDocuments(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	url := newServer(t, &Extension{Store: store}, true)
	bad := `query Bad { nope }`

	res := post(t, url, request{Query: bad, Extensions: apq(hashOf(bad))})
	require.NotEmpty(t, res.Errors)
	assert.Equal(t, "GRAPHQL_VALIDATION_FAILED", res.code())

	_, ok := store.Get(context.Background(), hashOf(bad))
	assert.False(t, ok, "a document that does not validate is not stored")
}

func TestAPQRefusals(t *testing.T) {
	t.Parallel()
	url := newServer(t, &Extension{Store: newStore(t)}, true)

	tests := []struct {
		name string
		req  request
		code string
	}{
		{
			name: "hash mismatch",
			req:  request{Query: getName, Extensions: apq(hashOf(getImages))},
			code: codes.PersistedQueryHashMismatch,
		},
		{
			name: "unknown version",
			req: request{Extensions: map[string]any{
				"persistedQuery": map[string]any{"version": 2, "sha256Hash": hashOf(getName)},
			}},
			code: codes.PersistedQueryNotSupported,
		},
		{
			name: "version that is not a number",
			req: request{Extensions: map[string]any{
				"persistedQuery": map[string]any{"version": "1", "sha256Hash": hashOf(getName)},
			}},
			code: codes.PersistedQueryInvalid,
		},
		{
			name: "no version",
			req: request{Extensions: map[string]any{
				"persistedQuery": map[string]any{"sha256Hash": hashOf(getName)},
			}},
			code: codes.PersistedQueryInvalid,
		},
		{
			name: "extension that is not an object",
			req:  request{Extensions: map[string]any{"persistedQuery": "yes"}},
			code: codes.PersistedQueryInvalid,
		},
		{
			name: "hash that is not hex",
			req:  request{Extensions: apq(strings.Repeat("z", 64))},
			code: codes.PersistedQueryInvalid,
		},
		{
			name: "hash too short",
			req:  request{Extensions: apq(hashOf(getName)[:63])},
			code: codes.PersistedQueryInvalid,
		},
		{
			name: "hash missing",
			req:  request{Extensions: map[string]any{"persistedQuery": map[string]any{"version": 1}}},
			code: codes.PersistedQueryInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assertRefused(t, post(t, url, tt.req), tt.code)
		})
	}
}

func TestAPQWithoutStore(t *testing.T) {
	t.Parallel()
	url := newServer(t, &Extension{Manifest: testManifest(t)}, true)

	res := post(t, url, request{Extensions: apq(hashOf(unlisted))})
	assertRefused(t, res, codes.PersistedQueryNotSupported)
	assert.Equal(t, "PersistedQueryNotSupported", res.Errors[0].Message)

	// A document sent with its hash still runs; listed ones come by hash.
	assertRan(t, post(t, url, request{Query: unlisted, Extensions: apq(hashOf(unlisted))}), unlisted, false)
	assertRan(t, post(t, url, request{Extensions: apq(hashOf(getName))}), getName, true)
}

func TestDocumentID(t *testing.T) {
	t.Parallel()
	url := newServer(t, &Extension{Store: newStore(t), Manifest: testManifest(t)}, true)

	tests := []struct {
		name string
		req  request
		ran  string // "" when refused with code
		code string
	}{
		{name: "by id", req: request{Extensions: docID("get-name")}, ran: getName},
		{name: "by sha256: and hash", req: request{Extensions: docID("sha256:" + hashOf(rename)), Variables: renameVars}, ran: rename},
		{name: "by id that is a hash", req: request{Extensions: docID(hashOf(getImages))}, ran: getImages},
		{name: "with the same query", req: request{Query: getName, Extensions: docID("get-name")}, ran: getName},
		{name: "with its hash too", req: request{Extensions: merge(docID("get-name"), apq(hashOf(getName)))}, ran: getName},
		{name: "unknown id", req: request{Extensions: docID("nope")}, code: codes.PersistedQueryNotFound},
		{name: "unlisted hash", req: request{Extensions: docID("sha256:" + hashOf(unlisted))}, code: codes.PersistedQueryNotFound},
		{name: "with another query", req: request{Query: unlisted, Extensions: docID("get-name")}, code: codes.PersistedQueryHashMismatch},
		{name: "with another hash", req: request{Extensions: merge(docID("get-name"), apq(hashOf(rename)))}, code: codes.PersistedQueryHashMismatch},
		{name: "not a string", req: request{Extensions: docID(42)}, code: codes.PersistedQueryInvalid},
		{name: "empty", req: request{Extensions: docID("")}, code: codes.PersistedQueryInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := post(t, url, tt.req)
			if tt.ran == "" {
				assertRefused(t, res, tt.code)
				return
			}
			assertRan(t, res, tt.ran, true)
		})
	}
}

func TestDocumentIDWithoutManifest(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	store.Add(context.Background(), hashOf(getName), getName)
	url := newServer(t, &Extension{Store: store}, true)

	// documentIds name listed documents only, never APQ ones.
	assertRefused(t, post(t, url, request{Extensions: docID("sha256:" + hashOf(getName))}), codes.PersistedQueryNotFound)
}

func TestListedByText(t *testing.T) {
	t.Parallel()
	url := newServer(t, &Extension{Store: newStore(t), Manifest: testManifest(t)}, true)

	assertRan(t, post(t, url, request{Query: getName}), getName, true)
	assertRan(t, post(t, url, request{Query: unlisted}), unlisted, false)
	assertRan(t, post(t, url, request{Query: getImages, Extensions: apq(hashOf(getImages))}), getImages, true)
}

func TestOnly(t *testing.T) {
	t.Parallel()
	const secret = "router-secret"
	trusted := func(_ context.Context, oc *graphql.OperationContext) bool {
		return oc.Headers.Get("X-Router") == secret
	}
	store := newStore(t)
	url := newServer(t, &Extension{Store: store, Manifest: testManifest(t), Only: true, Trusted: trusted}, true)
	router := http.Header{"X-Router": {secret}}

	tests := []struct {
		name   string
		req    request
		ran    string // "" when refused
		listed bool
	}{
		{name: "listed by id", req: request{Extensions: docID("get-name")}, ran: getName, listed: true},
		{name: "listed by hash", req: request{Extensions: apq(hashOf(getImages))}, ran: getImages, listed: true},
		{name: "listed by hash with its text", req: request{Query: rename, Extensions: apq(hashOf(rename)), Variables: renameVars}, ran: rename, listed: true},
		{name: "listed by exact text", req: request{Query: getName}, ran: getName, listed: true},
		{name: "unlisted", req: request{Query: unlisted}},
		{name: "listed text, changed", req: request{Query: getName + " "}},
		{name: "introspection only", req: request{Query: introspect}, ran: introspect},
		{name: "__typename through fragments", req: request{Query: typenameFragment}, ran: typenameFragment},
		{name: "introspection beside a field", req: request{Query: `{ __typename name }`}},
		{name: "trusted", req: request{Query: unlisted, header: router}, ran: unlisted},
		{name: "wrong secret", req: request{Query: unlisted, header: http.Header{"X-Router": {"guess"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := post(t, url, tt.req)
			if tt.ran == "" {
				assertRefused(t, res, codes.PersistedQueryNotInList)
				assert.Equal(t, "this server runs only persisted operations, and this one is not in its list", res.Errors[0].Message)
				return
			}
			assertRan(t, res, tt.ran, tt.listed)
		})
	}
}

func TestOnlyRefusesIntrospectionWhenItIsOff(t *testing.T) {
	t.Parallel()
	url := newServer(t, &Extension{Manifest: testManifest(t), Only: true}, false)

	assertRefused(t, post(t, url, request{Query: introspect}), codes.PersistedQueryNotInList)
	assertRefused(t, post(t, url, request{Query: typenameFragment}), codes.PersistedQueryNotInList)
	assertRan(t, post(t, url, request{Query: getName}), getName, true)
}

func TestOnlyWithoutManifestRunsOnlyTrusted(t *testing.T) {
	t.Parallel()
	trusted := func(_ context.Context, oc *graphql.OperationContext) bool {
		return oc.Headers.Get("X-Router") != ""
	}
	url := newServer(t, &Extension{Only: true, Trusted: trusted}, true)

	assertRefused(t, post(t, url, request{Query: getName}), codes.PersistedQueryNotInList)
	assertRan(t, post(t, url, request{Query: getName, header: http.Header{"X-Router": {"1"}}}), getName, false)
}

func TestOnlyDoesNotStoreUnlistedRegistrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	trusted := func(_ context.Context, oc *graphql.OperationContext) bool {
		return oc.Headers.Get("X-Router") != ""
	}
	store := newStore(t)
	url := newServer(t, &Extension{Store: store, Manifest: testManifest(t), Only: true, Trusted: trusted}, true)

	// An unlisted document is refused, and not stored.
	assertRefused(t, post(t, url, request{Query: unlisted, Extensions: apq(hashOf(unlisted))}), codes.PersistedQueryNotInList)
	_, ok := store.Get(ctx, hashOf(unlisted))
	assert.False(t, ok)
	assertRefused(t, post(t, url, request{Extensions: apq(hashOf(unlisted))}), codes.PersistedQueryNotFound)

	// Nor is an introspection-only one, though it runs.
	assertRan(t, post(t, url, request{Query: introspect, Extensions: apq(hashOf(introspect))}), introspect, false)
	_, ok = store.Get(ctx, hashOf(introspect))
	assert.False(t, ok)

	// A trusted request may register one.
	router := http.Header{"X-Router": {"1"}}
	assertRan(t, post(t, url, request{Query: unlisted, Extensions: apq(hashOf(unlisted)), header: router}), unlisted, false)
	_, ok = store.Get(ctx, hashOf(unlisted))
	assert.True(t, ok)
	assertRan(t, post(t, url, request{Extensions: apq(hashOf(unlisted)), header: router}), unlisted, false)

	// What a trusted request stored runs for it alone.
	assertRefused(t, post(t, url, request{Extensions: apq(hashOf(unlisted))}), codes.PersistedQueryNotInList)
}

func TestExtensionNameAndValidate(t *testing.T) {
	t.Parallel()
	e := &Extension{}
	assert.Equal(t, "PersistedOperations", e.ExtensionName())
	assert.NoError(t, e.Validate(nil))
}

func TestListedOutsideAnOperation(t *testing.T) {
	t.Parallel()
	assert.False(t, Listed(context.Background()))
}

func TestIntrospectionOnly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query string
		want  bool
	}{
		{query: introspect, want: true},
		{query: typenameFragment, want: true},
		{query: `{ __typename }`, want: true},
		{query: `query { ... on Query { __type(name: "Query") { name } } }`, want: true},
		{query: getName, want: false},
		{query: `{ ... on Query { name } }`, want: false},
		{query: `query { ...F } fragment F on Query { __typename ... on Query { name } }`, want: false},
		{query: `mutation { __typename }`, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			doc, errs := gqlparser.LoadQueryWithRules(testSchema, tt.query, nil)
			require.Empty(t, errs)
			oc := &graphql.OperationContext{Doc: doc, Operation: doc.Operations[0]}
			assert.Equal(t, tt.want, introspectionOnly(oc))
		})
	}
}

func TestNumber(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   any
		want float64
		ok   bool
	}{
		{in: json.Number("1"), want: 1, ok: true},
		{in: json.Number("1.0"), want: 1, ok: true},
		{in: float64(1), want: 1, ok: true},
		{in: 2, want: 2, ok: true},
		{in: int64(3), want: 3, ok: true},
		{in: "1"},
		{in: nil},
		{in: true},
		{in: json.Number("1e999")},
	}
	for _, tt := range tests {
		got, ok := number(tt.in)
		assert.Equal(t, tt.ok, ok, "%#v", tt.in)
		if ok {
			assert.InDelta(t, tt.want, got, 0, "%#v", tt.in)
		}
	}
}

// renameVars are the variables the rename mutation needs.
var renameVars = map[string]any{"name": "new"}

// merge is the union of extension maps.
func merge(ms ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

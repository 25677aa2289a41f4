package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/codes"
	"github.com/compshare/imagegraph/internal/gqlhttp"
	"github.com/compshare/imagegraph/internal/persisted"
	"github.com/compshare/imagegraph/internal/testkit"
)

// post sends one GraphQL request with headers and returns the status, the
// response headers and the decoded body.
func (s *server) post(t *testing.T, body string, headers map[string]string) (int, http.Header, map[string]any) {
	t.Helper()
	status, header, out, _ := s.send(t, body, headers)
	return status, header, out
}

func code(out map[string]any) string {
	errs, _ := out["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	ext, _ := errs[0].(map[string]any)["extensions"].(map[string]any)
	c, _ := ext["code"].(string)
	return c
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestLimitsThroughRun: the limit settings reach the handler.
func TestLimitsThroughRun(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"MAX_DEPTH": "3", "MAX_UPSTREAM_CALLS": "2"})
	_, _, out := s.post(t, `{"query":"{ imageGroups(first: 1) { nodes { versions { nodes { imageId } } } } }"}`, nil)
	assert.Equal(t, "MAX_DEPTH_LIMIT", code(out))
	_, _, out = s.post(t, `{"query":"{ imageGroups(first: 300) { nodes { groupId } } }"}`, nil)
	assert.Equal(t, "COST_ESTIMATED_TOO_EXPENSIVE", code(out))
	_, _, out = s.post(t, `{"query":"{ imageGroups(first: 3) { nodes { groupId } } }"}`, nil)
	assert.Empty(t, code(out))
	cost := out["extensions"].(map[string]any)["cost"].(map[string]any)
	assert.EqualValues(t, 2, cost["maxUpstreamCalls"])
	assert.EqualValues(t, 1, cost["upstreamCalls"])
}

// TestAPIKeys: with API_KEYS_FILE, /query needs a key (Bearer or
// X-Api-Key), answered 401 without one; health, readiness and the
// playground stay open; a federation router passes with its secret; the
// key's name reaches the access log and the key itself goes nowhere.
func TestAPIKeys(t *testing.T) {
	t.Parallel()
	const key, other = "k-3f9a1c0d2b8e7f6a5c4d3e2f1a0b9c8d", "k-other-key-for-the-second-client"
	file := writeFile(t, "keys", "# name:sha256 of the key\nfrontend:"+sha(key)+"\n\nbatch:"+sha(other)+"\n")
	s := startServer(t, map[string]string{"API_KEYS_FILE": file, "FEDERATION_SECRET": "router-secret"})
	const q = `{"query":"{ imageGroups(first: 1) { totalCount } }"}`

	status, h, out := s.post(t, q, nil)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Contains(t, h.Get("WWW-Authenticate"), "Bearer")
	assert.Equal(t, "UNAUTHENTICATED", code(out))

	status, h, out = s.post(t, q, map[string]string{"Authorization": "Bearer not-" + key})
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Contains(t, h.Get("WWW-Authenticate"), `error="invalid_token"`)
	assert.Equal(t, "UNAUTHENTICATED", code(out))

	status, _, out = s.post(t, q, map[string]string{"Authorization": "Bearer " + key})
	assert.Equal(t, http.StatusOK, status)
	assert.Empty(t, code(out))
	status, _, _ = s.post(t, q, map[string]string{"X-Api-Key": other})
	assert.Equal(t, http.StatusOK, status)
	status, _, _ = s.post(t, q, map[string]string{"X-Federation-Secret": "router-secret"})
	assert.Equal(t, http.StatusOK, status, "a router with the federation secret needs no key")

	for _, path := range []string{"/healthz", "/readyz", "/"} {
		resp, err := http.Get(s.url + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	logs := s.logs.String()
	assert.Contains(t, logs, `"client":"frontend"`)
	assert.Contains(t, logs, `"client":"batch"`)
	assert.Contains(t, logs, `"client":"federation-router"`)
	assert.NotContains(t, logs, key)
	assert.NotContains(t, logs, other)
}

// TestClientRateLimit: each client spends estimated-cost points; past its
// bucket it gets 429 with Retry-After and RATE_LIMITED, while another
// client (told apart by X-Forwarded-For from a trusted proxy) is not
// affected.
func TestClientRateLimit(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{
		"CLIENT_RATE_LIMIT": "1", "CLIENT_BURST": "600", "TRUSTED_PROXIES": "127.0.0.1/32, ::1",
	})
	// The reference operation costs 491 points: one fits the bucket, two do not.
	ref, _ := json.Marshal(map[string]any{"query": testkit.ReferenceQuery})
	alice := map[string]string{"X-Forwarded-For": "203.0.113.7"}
	status, _, out := s.post(t, string(ref), alice)
	require.Equal(t, http.StatusOK, status, out)
	assert.EqualValues(t, 491, out["extensions"].(map[string]any)["cost"].(map[string]any)["estimated"])

	status, h, out := s.post(t, string(ref), alice)
	assert.Equal(t, http.StatusTooManyRequests, status)
	assert.Equal(t, codes.RateLimited, code(out))
	retry, err := strconv.Atoi(h.Get("Retry-After"))
	require.NoError(t, err, h.Get("Retry-After"))
	assert.Greater(t, retry, 300, "382 points at 1 a second")
	assert.NotContains(t, out, "data")

	status, _, _ = s.post(t, string(ref), map[string]string{"X-Forwarded-For": "203.0.113.8"})
	assert.Equal(t, http.StatusOK, status, "another client has its own bucket")
}

// TestPersistedOperations: a manifest's operations run by documentId,
// Relay's doc_id or APQ hash; with PERSISTED_OPERATIONS_ONLY anything else
// is refused, except introspection and a federation router's plans.
func TestPersistedOperations(t *testing.T) {
	t.Parallel()
	const listed = "query Three { imageGroups(first: 3) { nodes { groupId } } }"
	manifest, _ := json.Marshal(map[string]any{
		"format": "apollo-persisted-query-manifest", "version": 1,
		"operations": []map[string]any{{"id": sha(listed), "name": "Three", "type": "query", "body": listed}},
	})
	s := startServer(t, map[string]string{
		"PERSISTED_OPERATIONS": writeFile(t, "manifest.json", string(manifest)), "PERSISTED_OPERATIONS_ONLY": "true",
		"FEDERATION_SECRET": "router-secret",
	})
	ok := func(out map[string]any) {
		t.Helper()
		assert.Empty(t, code(out), out)
		assert.Len(t, out["data"].(map[string]any)["imageGroups"].(map[string]any)["nodes"], 3)
	}
	_, _, out := s.post(t, `{"documentId":"`+sha(listed)+`"}`, nil)
	ok(out)
	_, _, out = s.post(t, `{"doc_id":"sha256:`+sha(listed)+`"}`, nil)
	ok(out)
	_, _, out = s.post(t, `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"`+sha(listed)+`"}}}`, nil)
	ok(out)
	resp, err := http.Get(s.url + "/query?documentId=" + sha(listed))
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	resp.Body.Close()
	ok(got)

	body, _ := json.Marshal(map[string]any{"query": "{ imageGroups(first: 1) { totalCount } }"})
	status, _, out := s.post(t, string(body), nil)
	assert.Equal(t, codes.PersistedQueryNotInList, code(out))
	assert.Equal(t, http.StatusOK, status, "a request error, 200 for application/json")
	_, _, out = s.post(t, string(body), map[string]string{"X-Federation-Secret": "router-secret"})
	assert.Empty(t, code(out), "a router's plans are in no list")
	_, _, out = s.post(t, `{"query":"{ __schema { queryType { name } } }"}`, nil)
	assert.Empty(t, code(out), "introspection still works: the playground's docs")
}

// TestManifestErrorsStopTheServer: a manifest that does not parse, or an
// operation in it that does not validate, stops the server at start with a
// message naming it.
func TestManifestErrorsStopTheServer(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ content, want string }{
		"not JSON":    {`{"format": `, "manifest.json"},
		"invalid op":  {`{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"op-7","name":"Broken","type":"query","body":"query Broken { imageGroups { nope } }"}]}`, "op-7"},
		"relay error": {`{"abc": "query { nodez(ids: []) { id } }"}`, "abc"},
	} {
		path := writeFile(t, "manifest.json", tc.content)
		var stderr bytes.Buffer
		err := run(t.Context(), nil, func(k string) (string, bool) {
			v, ok := map[string]string{"PERSISTED_OPERATIONS": path, "PORT": "0"}[k]
			return v, ok
		}, io.Discard, &stderr)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), "PERSISTED_OPERATIONS", name)
		assert.Contains(t, err.Error(), tc.want, name)
	}
}

// TestAPQOverGET: Apollo's automatic persisted queries: a hash alone is
// PERSISTED_QUERY_NOT_FOUND with status 200 (Apollo Client gives APQ up on
// a 4xx), the query with its hash registers it, and then a GET with the
// hash alone is answered: a cacheable read.
func TestAPQOverGET(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	const q = "query Two { imageGroups(first: 2) { nodes { groupId } } }"
	ext := `{"persistedQuery":{"version":1,"sha256Hash":"` + sha(q) + `"}}`
	get := func() (int, map[string]any) {
		resp, err := http.Get(s.url + "/query?operationName=Two&extensions=" + url.QueryEscape(ext))
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	status, out := get()
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, codes.PersistedQueryNotFound, code(out))
	body, _ := json.Marshal(map[string]any{"query": q, "extensions": json.RawMessage(ext)})
	_, _, out = s.post(t, string(body), nil)
	assert.Empty(t, code(out))
	status, out = get()
	assert.Equal(t, http.StatusOK, status)
	assert.Empty(t, code(out), out)
	assert.Len(t, out["data"].(map[string]any)["imageGroups"].(map[string]any)["nodes"], 2)
}

// TestCORS: with CORS_ALLOWED_ORIGINS, a preflight from a listed origin is
// answered with the headers GraphQL clients send, and its requests carry
// Access-Control-Allow-Origin; another origin gets none. Without the
// setting no CORS header is sent.
func TestCORS(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"CORS_ALLOWED_ORIGINS": "https://app.example"})
	preflight := func(s *server, origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, s.url+"/query", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,traceparent")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	resp := preflight(s, "https://app.example")
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, "https://app.example", resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Contains(t, strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "authorization")
	assert.NotEmpty(t, resp.Header.Get("Access-Control-Max-Age"))
	assert.Empty(t, preflight(s, "https://evil.example").Header.Get("Access-Control-Allow-Origin"))

	_, h, _ := s.post(t, `{"query":"{ __typename }"}`, map[string]string{"Origin": "https://app.example"})
	assert.Equal(t, "https://app.example", h.Get("Access-Control-Allow-Origin"))

	off := startServer(t, nil)
	_, h, _ = off.post(t, `{"query":"{ __typename }"}`, map[string]string{"Origin": "https://app.example"})
	assert.Empty(t, h.Get("Access-Control-Allow-Origin"))
}

// TestDocumentIDContract: the transport and the persisted operations agree
// on where a request's documentId travels.
func TestDocumentIDContract(t *testing.T) {
	assert.Equal(t, gqlhttp.DocumentIDExtension, persisted.DocumentIDExtension)
}

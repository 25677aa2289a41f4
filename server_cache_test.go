package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/upstream/sandbox"
)

// TestCacheThroughRun: with the default settings the server caches: a page
// read twice is one upstream call, and the second answer says it was a hit.
// CACHE_TTL=0 turns the cache off.
func TestCacheThroughRun(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	const q = `{"query":"{ imageGroups(first: 4) { nodes { groupId } } }"}`
	_, h, _ := s.post(t, q, nil)
	assert.Equal(t, "public, max-age=30", h.Get("Cache-Control"))
	_, _, out := s.post(t, q, nil)
	cost := out["extensions"].(map[string]any)["cost"].(map[string]any)
	assert.EqualValues(t, 1, cost["cacheHits"])
	assert.EqualValues(t, 0, cost["upstreamCalls"])

	off := startServer(t, map[string]string{"CACHE_TTL": "0"})
	off.post(t, q, nil)
	_, h, out = off.post(t, q, nil)
	cost = out["extensions"].(map[string]any)["cost"].(map[string]any)
	assert.EqualValues(t, 1, cost["upstreamCalls"])
	assert.Equal(t, "no-store", h.Get("Cache-Control"))
}

// TestReadinessDuringAnOutage: an upstream that fails every call leaves the
// replica ready (it answers from its cache, or fails fast), and /readyz
// says the upstream is failing and the circuit open.
func TestReadinessDuringAnOutage(t *testing.T) {
	t.Parallel()
	sb, err := sandbox.New()
	require.NoError(t, err)
	sb.InjectFault(sandbox.Fault{HTTPStatus: http.StatusBadGateway})
	up := httptest.NewServer(sb)
	t.Cleanup(up.Close)
	s := startServer(t, map[string]string{
		"COMPSHARE_BASE_URL":         up.URL,
		"COMPSHARE_PUBLIC_KEY":       sandbox.DefaultPublicKey,
		"COMPSHARE_PRIVATE_KEY":      sandbox.DefaultPrivateKey,
		"COMPSHARE_RETRIES":          "0",
		"COMPSHARE_BREAKER_FAILURES": "2",
	})
	for range 2 {
		s.post(t, `{"query":"{ imageGroups(first: 1) { totalCount } }"}`, nil)
	}
	resp, err := http.Get(s.url + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ready", body["status"])
	assert.Equal(t, "failing", body["upstream"])
	assert.Equal(t, "open", body["circuit"])
}

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/codes"
)

// The cache of answers through run: hits still pass every gate that
// decides who may ask and how much, and its bound and switch are settings.

const answersQuery = `{"query":"query Five { imageGroups(first: 5) { totalCount nodes { groupId name } } }"}`

// TestAnswerCacheKeepsTheGates: API keys, CORS, the client rate limit and
// the safelist apply to answers served from the cache as to executed ones.
func TestAnswerCacheKeepsTheGates(t *testing.T) {
	t.Parallel()
	const key = "k-answers-0123456789abcdef"
	const listed = "query Three { imageGroups(first: 3) { nodes { groupId } } }"
	const unlisted = `{"query":"query Two { imageGroups(first: 2) { nodes { groupId } } }"}`
	manifest, _ := json.Marshal(map[string]any{
		"format": "apollo-persisted-query-manifest", "version": 1,
		"operations": []map[string]any{{"id": sha(listed), "name": "Three", "type": "query", "body": listed}},
	})
	s := startServer(t, map[string]string{
		"API_KEYS_FILE":             writeFile(t, "keys", "frontend:"+sha(key)+"\n"),
		"CORS_ALLOWED_ORIGINS":      "https://app.example",
		"CLIENT_RATE_LIMIT":         "0.001",
		"CLIENT_BURST":              "40",
		"PERSISTED_OPERATIONS":      writeFile(t, "manifest.json", string(manifest)),
		"PERSISTED_OPERATIONS_ONLY": "true",
		"FEDERATION_SECRET":         "router-secret",
		"METRICS_ADDR":              "127.0.0.1:0",
	})
	withKey := map[string]string{"Authorization": "Bearer " + key, "Origin": "https://app.example"}

	// The listed operation: executed, then a hit; both cost 13 points.
	for i := range 2 {
		status, h, out := s.post(t, `{"documentId":"`+sha(listed)+`"}`, withKey)
		require.Equal(t, http.StatusOK, status, "%d: %v", i, out)
		assert.Equal(t, "https://app.example", h.Get("Access-Control-Allow-Origin"), "CORS on a hit too")
		assert.True(t, strings.HasPrefix(h.Get("Cache-Control"), "private, max-age="), "keys on: private: %s", h.Get("Cache-Control"))
	}
	_, fam := s.scrape(t)
	assert.Equal(t, 1.0, sample(fam, "imagegraph_answer_cache_requests_total", "result", "hit"))

	// Without a key, the cached answer is not given.
	status, _, out := s.post(t, `{"documentId":"`+sha(listed)+`"}`, nil)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, codes.Unauthenticated, code(out))

	// A router runs an unlisted operation, whose answer is kept apart: a
	// client that sends it is still refused by the safelist.
	router := map[string]string{"X-Federation-Secret": "router-secret"}
	for range 2 {
		status, _, out = s.post(t, unlisted, router)
		require.Equal(t, http.StatusOK, status, out)
	}
	_, _, out = s.post(t, unlisted, withKey)
	assert.Equal(t, codes.PersistedQueryNotInList, code(out))

	// The client's bucket (40 points, nearly no refill) held three
	// listed operations of 13: the fourth is refused, cached or not.
	status, _, _ = s.post(t, `{"documentId":"`+sha(listed)+`"}`, withKey)
	assert.Equal(t, http.StatusOK, status, "the third fits: 39 of 40")
	status, h, out := s.post(t, `{"documentId":"`+sha(listed)+`"}`, withKey)
	assert.Equal(t, http.StatusTooManyRequests, status, out)
	assert.Equal(t, codes.RateLimited, code(out))
	assert.NotEmpty(t, h.Get("Retry-After"))
}

// TestAnswerCacheOverHTTP: a hit over GET carries the answer's ETag, and a
// revalidation gets 304; its Cache-Control says what is left of the data's
// freshness; ANSWER_CACHE=false executes every request.
func TestAnswerCacheOverHTTP(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"METRICS_ADDR": "127.0.0.1:0"})
	get := func(inm string) *http.Response {
		req, err := http.NewRequest(http.MethodGet, s.url+"/query?query="+url.QueryEscape(`{ imageGroups(first: 2) { nodes { groupId } } }`), nil)
		require.NoError(t, err)
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	miss := get("")
	hit := get("")
	require.Equal(t, http.StatusOK, hit.StatusCode)
	assert.Equal(t, miss.Header.Get("ETag"), hit.Header.Get("ETag"), "the ETag of the same data")
	age, err := strconv.Atoi(strings.TrimPrefix(hit.Header.Get("Cache-Control"), "public, max-age="))
	require.NoError(t, err, hit.Header.Get("Cache-Control"))
	assert.LessOrEqual(t, age, 30)
	assert.Equal(t, http.StatusNotModified, get(hit.Header.Get("ETag")).StatusCode)
	_, fam := s.scrape(t)
	assert.Equal(t, 2.0, sample(fam, "imagegraph_answer_cache_requests_total", "result", "hit"))
	assert.Equal(t, 1.0, sample(fam, "imagegraph_answer_cache_requests_total", "result", "miss"))
	assert.Equal(t, 1.0, sample(fam, "imagegraph_answer_cache_entries"))

	off := startServer(t, map[string]string{"ANSWER_CACHE": "false", "METRICS_ADDR": "127.0.0.1:0"})
	for range 3 {
		_, _, out := off.post(t, answersQuery, nil)
		require.Empty(t, code(out))
	}
	_, fam = off.scrape(t)
	assert.Equal(t, 3.0, sample(fam, "imagegraph_graphql_operation_upstream_calls"), "three executions")
	assert.Equal(t, 0.0, sample(fam, "imagegraph_answer_cache_requests_total"))
}

// TestAnswerCacheBound: a flood of distinct operations never holds more
// than ANSWER_CACHE_MAX_BYTES.
func TestAnswerCacheBound(t *testing.T) {
	t.Parallel()
	const bound = 64 << 10
	s := startServer(t, map[string]string{"ANSWER_CACHE_MAX_BYTES": strconv.Itoa(bound), "METRICS_ADDR": "127.0.0.1:0"})
	for i := range 200 {
		body, _ := json.Marshal(map[string]any{"query": fmt.Sprintf(`query Q%d { imageGroups(first: 20) { nodes { groupId name } } }`, i)})
		status, _, out := s.post(t, string(body), nil)
		require.Equal(t, http.StatusOK, status, out)
	}
	_, fam := s.scrape(t)
	assert.LessOrEqual(t, sample(fam, "imagegraph_answer_cache_bytes"), float64(bound))
	assert.Positive(t, sample(fam, "imagegraph_answer_cache_evictions_total"))
}

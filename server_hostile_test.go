package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/testkit"
)

// The four holes an attacker's fuzzer found (issue 16), each reproduced
// through HTTP against the real server: every one gets a coded answer in
// little CPU, no 500 and no ERROR log line.

// attackCPU is the CPU one hostile request may cost the server.
const attackCPU = 100 * time.Millisecond

// fragmentBomb is the fuzzer's first document: fragments on typ that each
// spread the next one twice, levels deep, ending in leaf. It is about a
// kilobyte at 30 levels and names 2^levels copies of leaf.
func fragmentBomb(root, typ, leaf string, levels int) string {
	var b strings.Builder
	b.WriteString(root + " ")
	for i := range levels {
		fmt.Fprintf(&b, "fragment F%d on %s { ...F%d ...F%d } ", i, typ, i+1, i+1)
	}
	fmt.Fprintf(&b, "fragment F%d on %s { %s }", levels, typ, leaf)
	return b.String()
}

// hostileAnswer sends body (a POST body, or the query string of a GET when
// get is set) and checks what every hostile request must get: an answer
// that is not a 500, whose errors all carry a code, within attackCPU of the
// process's CPU. It returns the status and the decoded answer.
func hostileAnswer(t *testing.T, s *server, body string, get bool, headers map[string]string) (int, map[string]any) {
	t.Helper()
	var req *http.Request
	var err error
	if get {
		req, err = http.NewRequest(http.MethodGet, s.url+"/query?"+body, nil)
	} else {
		req, err = http.NewRequest(http.MethodPost, s.url+"/query", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	}
	require.NoError(t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	start := testkit.CPUTime()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	spent := testkit.CPUTime() - start
	assert.Less(t, spent, attackCPU*raceFactor, "CPU spent answering it")
	assert.Less(t, resp.StatusCode, 500, string(raw))
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out), string(raw))
	errs, _ := out["errors"].([]any)
	for _, e := range errs {
		ext, _ := e.(map[string]any)["extensions"].(map[string]any)
		assert.NotEmpty(t, ext["code"], "an error without a code: %s", raw)
	}
	return resp.StatusCode, out
}

// assertNoErrorLog checks that the server logged nothing at ERROR (a
// client's mistake is not the server's) and no panic.
func assertNoErrorLog(t *testing.T, s *server) {
	t.Helper()
	logs := s.logs.String()
	assert.NotContains(t, logs, `"level":"ERROR"`)
	assert.NotContains(t, logs, "panic")
}

// everyGate is the server with every gate on: API keys, CORS, a client
// rate limit and trusted proxies (the fuzzer's second run). key is the API
// key it accepts.
func everyGate(t *testing.T) (*server, map[string]string) {
	t.Helper()
	const key = "k-attacker"
	s := startServer(t, map[string]string{
		"API_KEYS_FILE":        writeFile(t, "keys", "attacker:"+sha(key)+"\n"),
		"CORS_ALLOWED_ORIGINS": "https://app.example",
		"CLIENT_RATE_LIMIT":    "1000000",
		"TRUSTED_PROXIES":      "10.0.0.0/8",
		"INTROSPECTION":        "false",
	})
	return s, map[string]string{"Authorization": "Bearer " + key, "Origin": "https://app.example"}
}

// TestFragmentBombsAreCheap: fragments that spread the next one twice,
// from 30 to 200 levels (2^200 fields), at the root, inside a field and
// through an ImageGroup, over POST and GET, with default settings and with
// every gate on: each is refused with a code, cheaply.
func TestFragmentBombsAreCheap(t *testing.T) {
	// Not parallel: it reads the process's CPU time.
	plain := startServer(t, nil)
	gated, headers := everyGate(t)
	bombs := map[string]string{
		"the issue's, at the root": fragmentBomb("query { ...F0 }", "Query", "imageGroups(first: 1) { totalCount }", 30),
		"40 levels at the root":    fragmentBomb("query { ...F0 }", "Query", "__typename", 40),
		"200 levels at the root":   fragmentBomb("query { ...F0 }", "Query", "__typename", 200),
		"inside a group":           fragmentBomb("{ imageGroups(first: 1) { nodes { ...F0 } } }", "ImageGroup", "name", 60),
		"aliased inside a group":   fragmentBomb("{ imageGroups(first: 1) { nodes { ...F0 } } }", "ImageGroup", "n: name", 60),
	}
	for _, s := range []struct {
		name    string
		srv     *server
		headers map[string]string
	}{{"defaults", plain, nil}, {"every gate on", gated, headers}} {
		for name, doc := range bombs {
			for _, get := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/get=%v", s.name, name, get), func(t *testing.T) {
					body, _ := json.Marshal(map[string]string{"query": doc})
					if get {
						body = []byte("query=" + url.QueryEscape(doc))
					}
					_, out := hostileAnswer(t, s.srv, string(body), get, s.headers)
					assert.NotEmpty(t, code(out), "refused")
					assert.Nil(t, out["data"], "nothing ran")
				})
			}
		}
		assertNoErrorLog(t, s.srv)
	}
	// A bomb that no other limit catches (one field, merged, no alias, no
	// cost) is caught by MAX_EXPANDED_FIELDS.
	_, out := hostileAnswer(t, plain, mustJSON(t, map[string]string{"query": bombs["inside a group"]}), false, nil)
	assert.Equal(t, "MAX_EXPANDED_FIELDS_LIMIT", code(out))
}

// TestNumbersOutOfRangeAreBadInput: numbers Go cannot hold, in a document
// (where gqlparser's ArgumentMap used to panic into a bare 500) or in
// variables, are BAD_USER_INPUT, over POST and GET.
func TestNumbersOutOfRangeAreBadInput(t *testing.T) {
	// Not parallel: it reads the process's CPU time.
	s := startServer(t, nil)
	docs := []string{
		`{ _entities(representations: [{a: 1e309}]) { __typename } }`,
		`{ _entities(representations: [{a: 18446744073709551616}]) { __typename } }`,
		`{ _entities(representations: [{__typename: "ImageGroup", groupId: "g", n: [-1e400]}]) { __typename } }`,
		`query($r: [_Any!]! = [{a: 1e309}]) { _entities(representations: $r) { __typename } }`,
		`{ ...F } fragment F on Query { _entities(representations: [{a: 99999999999999999999}]) { __typename } }`,
	}
	for i, doc := range docs {
		for _, get := range []bool{false, true} {
			t.Run(fmt.Sprintf("document %d/get=%v", i, get), func(t *testing.T) {
				body := mustJSON(t, map[string]string{"query": doc})
				if get {
					body = "query=" + url.QueryEscape(doc)
				}
				status, out := hostileAnswer(t, s, body, get, map[string]string{"Accept": "application/graphql-response+json"})
				assert.Equal(t, "BAD_USER_INPUT", code(out))
				assert.Equal(t, http.StatusBadRequest, status)
				assert.Nil(t, out["data"])
			})
		}
	}
	vars := []struct {
		query string
		vars  string
	}{
		{`query($r: [_Any!]!) { _entities(representations: $r) { __typename } }`, `{"r": [{"__typename": "ImageGroup", "groupId": "g", "x": 1e309}]}`},
		{`query($n: Int) { imageGroups(first: $n) { totalCount } }`, `{"n": 1e309}`},
		{`query($n: Int) { imageGroups(first: $n) { totalCount } }`, `{"n": 18446744073709551616}`},
		{`query($n: Int) { imageGroups(first: $n) { totalCount } }`, `{"n": 2147483648}`},
	}
	for i, v := range vars {
		t.Run(fmt.Sprintf("variables %d", i), func(t *testing.T) {
			body := fmt.Sprintf(`{"query": %q, "variables": %s}`, v.query, v.vars)
			_, out := hostileAnswer(t, s, body, false, nil)
			assert.Equal(t, "BAD_USER_INPUT", code(out))
			get := "query=" + url.QueryEscape(v.query) + "&variables=" + url.QueryEscape(v.vars)
			_, out = hostileAnswer(t, s, get, true, nil)
			assert.Equal(t, "BAD_USER_INPUT", code(out))
		})
	}
	assertNoErrorLog(t, s)
}

// TestBadRepresentations: each malformed _entities representation is
// BAD_USER_INPUT at its own index, its place is null, and its neighbours
// resolve; nothing is logged at ERROR.
func TestBadRepresentations(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	_, _, page, _ := s.send(t, `{"query":"{ imageGroups(first: 1) { nodes { groupId name } } }"}`, nil)
	group := page["data"].(map[string]any)["imageGroups"].(map[string]any)["nodes"].([]any)[0].(map[string]any)
	good := fmt.Sprintf(`{__typename: "ImageGroup", groupId: %q}`, group["groupId"])
	for _, bad := range []string{`{}`, `{__typename: "Nope"}`, `"x"`, `1`, `{__typename: "ImageGroup"}`,
		`{__typename: "ImageGroup", groupId: null}`, `{__typename: 7, groupId: "g"}`, `{__typename: "ImageVersion", imageId: {a: 1}}`, `[1]`} {
		t.Run(bad, func(t *testing.T) {
			for _, form := range []string{"literal", "variable"} {
				query := fmt.Sprintf(`{ _entities(representations: [%s, %s, %s]) { ... on ImageGroup { name } } }`, good, bad, good)
				body := mustJSON(t, map[string]string{"query": query})
				if form == "variable" {
					reps := fmt.Sprintf(`[{"__typename": "ImageGroup", "groupId": %q}, %s, {"__typename": "ImageGroup", "groupId": %q}]`,
						group["groupId"], toJSON(bad), group["groupId"])
					body = fmt.Sprintf(`{"query": "query($r: [_Any!]!) { _entities(representations: $r) { ... on ImageGroup { name } } }", "variables": {"r": %s}}`, reps)
				}
				status, _, out, raw := s.send(t, body, nil)
				assert.Equal(t, http.StatusOK, status, form)
				errs, _ := out["errors"].([]any)
				require.Len(t, errs, 1, "%s: %s", form, raw)
				e := errs[0].(map[string]any)
				assert.Equal(t, []any{"_entities", 1.0}, e["path"], form)
				ext := e["extensions"].(map[string]any)
				assert.Equal(t, "BAD_USER_INPUT", ext["code"], form)
				assert.Equal(t, 1.0, ext["index"], form)
				assert.Contains(t, e["message"], "representation 1", form)
				entities := out["data"].(map[string]any)["_entities"].([]any)
				require.Len(t, entities, 3, form)
				assert.Equal(t, group["name"], entities[0].(map[string]any)["name"], form)
				assert.Nil(t, entities[1], form)
				assert.Equal(t, group["name"], entities[2].(map[string]any)["name"], form)
			}
		})
	}
	// Through a fragment on Query, aliased.
	query := fmt.Sprintf(`{ ...F } fragment F on Query { e: _entities(representations: [%s, "x"]) { ... on ImageGroup { name } } }`, good)
	_, _, out, raw := s.send(t, mustJSON(t, map[string]string{"query": query}), nil)
	require.Len(t, out["errors"], 1, string(raw))
	assert.Equal(t, []any{"e", 1.0}, out["errors"].([]any)[0].(map[string]any)["path"])
	assert.Equal(t, group["name"], out["data"].(map[string]any)["e"].([]any)[0].(map[string]any)["name"])
	assertNoErrorLog(t, s)
}

// TestDocumentCachesHoldBytes: a flood of distinct documents of about a
// megabyte each (the fuzzer's fourth reproduction, half of them asking a
// federated trace, which runs on the other executor) leaves the heap
// within the document cache's bound, where the count-bounded caches kept
// every one of them. The documents are named, and metrics are on: an
// operation's name is a slice of its document, and neither the metrics'
// labels nor the cache of answers may keep the document through it.
func TestDocumentCachesHoldBytes(t *testing.T) {
	// Not parallel: it reads the process's memory statistics.
	s := startServer(t, map[string]string{"METRICS_ADDR": "127.0.0.1:0"})
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	pad := strings.Repeat("x", 1_000_000)
	send := func(i int) {
		headers := map[string]string{}
		if i%2 == 1 {
			headers["Apollo-Federation-Include-Trace"] = "ftv1"
		}
		body := mustJSON(t, map[string]string{"query": fmt.Sprintf("query Q%d { __typename } #%s", i, pad)})
		status, _, _, raw := s.send(t, body, headers)
		require.Equal(t, http.StatusOK, status, string(raw[:min(len(raw), 300)]))
	}
	send(0) // warm up
	before := heap()
	const flood = 120
	for i := 1; i <= flood; i++ {
		send(i)
	}
	grown := int64(heap()) - int64(before)
	t.Logf("the heap grew %.1f MiB over %d documents of 1 MB", float64(grown)/(1<<20), flood)
	assert.Less(t, grown, int64(24<<20), "the heap holds the documents")
	assertNoErrorLog(t, s)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// toJSON turns one of TestBadRepresentations' literals into JSON.
func toJSON(literal string) string {
	r := strings.NewReplacer("{__typename:", `{"__typename":`, ", groupId:", `, "groupId":`, ", imageId:", `, "imageId":`, "{a:", `{"a":`)
	return r.Replace(literal)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/compshare/imagegraph/internal/testkit"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

type server struct {
	url string
	// metrics is the address of /metrics ("" when off).
	metrics string
	logs    *testkit.LogBuffer
	done    chan error
	// stop cancels run's context, as SIGTERM does.
	stop context.CancelFunc
}

// startServer runs the real server through run with env (nothing of the
// test's own environment), on a free port, and stops it when the test
// ends. run tells it the address; its log is kept in logs.
func startServer(t testing.TB, env map[string]string, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testkit.LogBuffer{}
	lookupEnv := func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		switch k {
		case "PORT":
			return "0", true
		case "SHUTDOWN_DRAIN":
			return "0s", true // the tests stop servers often; TestDrain drains
		case "SANDBOX_TICK":
			return "0s", true // the tests compare data; the live tests change it themselves
		case "METRICS_ADDR":
			return "", true // off: tests run many servers at once
		}
		return "", false
	}
	done := make(chan error, 1)
	listening := make(chan Addrs, 1)
	go func() { done <- run(ctx, args, lookupEnv, logs, io.Discard, func(a Addrs) { listening <- a }) }()
	var addrs Addrs
	select {
	case addrs = <-listening:
	case err := <-done:
		cancel()
		t.Fatalf("server did not start: %v\n%s", err, logs)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatalf("server did not listen within 20s\n%s", logs)
	}
	_, port, _ := net.SplitHostPort(addrs.API)
	s := &server{url: "http://127.0.0.1:" + port, metrics: addrs.Metrics, logs: logs, done: done, stop: cancel}
	t.Cleanup(func() {
		cancel()
		select {
		case err, ok := <-done:
			if ok {
				assert.NoError(t, err)
			}
		case <-time.After(20 * time.Second):
			t.Error("server did not shut down")
		}
	})
	return s
}

// graphql posts query and returns the status and the answer, decoded and
// as sent.
func (s *server) graphql(t *testing.T, query string) (int, map[string]any, []byte) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	status, _, out, raw := s.send(t, string(body), nil)
	return status, out, raw
}

// send posts body to /query with headers and returns the status, the
// headers and the answer, decoded and as sent.
func (s *server) send(t *testing.T, body string, headers map[string]string) (int, http.Header, map[string]any, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.url+"/query", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out), string(raw))
	return resp.StatusCode, resp.Header, out, raw
}

// shutdown stops the server as SIGTERM does and waits for run to return:
// the spans it batched are exported by then.
func (s *server) shutdown(t *testing.T) {
	t.Helper()
	s.stop()
	s.wait(t)
}

// wait waits for run to return after a stop.
func (s *server) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-s.done:
		require.NoError(t, err)
		close(s.done)
	case <-time.After(20 * time.Second):
		t.Fatal("the server did not stop")
	}
}

// TestSandboxServer starts the real server with no credentials and checks
// its endpoints over HTTP.
func TestSandboxServer(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	assert.Contains(t, s.logs.String(), "sandbox", "a warning says the sandbox is served")

	resp, err := http.Get(s.url + "/healthz")
	require.NoError(t, err)
	var health map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&health))
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "sandbox", health["mode"])

	resp, err = http.Get(s.url + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	status, out, raw := s.graphql(t, `{ imageGroups(first: 3) { totalCount nodes { groupId latestVersion { imageId } } } }`)
	assert.Equal(t, http.StatusOK, status)
	assert.Nil(t, out["errors"], string(raw))
	groups := out["data"].(map[string]any)["imageGroups"].(map[string]any)
	assert.Len(t, groups["nodes"], 3)

	// GET works too, and every response carries a request id.
	resp, err = http.Get(s.url + "/query?query=" + strings.ReplaceAll(`{__typename}`, " ", "%20"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("X-Request-Id"))

	// The log lines carry the request id.
	assert.Contains(t, s.logs.String(), `"request_id"`)
}

// TestRequestBodyLimit: an oversized body is refused without a 500.
func TestRequestBodyLimit(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"MAX_BODY_BYTES": "1024"})
	big := `{"query":"{ __typename }","variables":{"pad":"` + strings.Repeat("x", 4096) + `"}}`
	resp, err := http.Post(s.url+"/query", "application/json", strings.NewReader(big))
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.JSONEq(t, `{"errors":[{"message":"request body larger than 1024 bytes","extensions":{"code":"BAD_USER_INPUT"}}]}`, string(raw))
}

// TestIntrospectionSetting: INTROSPECTION=false turns it off.
func TestIntrospectionSetting(t *testing.T) {
	t.Parallel()
	on := startServer(t, nil)
	_, out, raw := on.graphql(t, `{ __schema { queryType { name } } }`)
	assert.Nil(t, out["errors"], string(raw))
	off := startServer(t, map[string]string{"INTROSPECTION": "false"})
	_, out, raw = off.graphql(t, `{ __schema { queryType { name } } }`)
	assert.NotNil(t, out["errors"], string(raw))
}

// TestWrongPrivateKey: against an upstream that does not accept our key,
// the client sees UPSTREAM_ERROR with retCode 171, and the key appears
// neither in the response nor in the logs.
func TestWrongPrivateKey(t *testing.T) {
	t.Parallel()
	sb, err := sandbox.New()
	require.NoError(t, err)
	up := httptest.NewServer(sb)
	t.Cleanup(up.Close)
	const wrongKey = "this-private-key-must-never-leak-0123456789"
	s := startServer(t, map[string]string{
		"COMPSHARE_BASE_URL":    up.URL,
		"COMPSHARE_PUBLIC_KEY":  sandbox.DefaultPublicKey,
		"COMPSHARE_PRIVATE_KEY": wrongKey,
		"LOG_LEVEL":             "debug",
	})
	_, out, raw := s.graphql(t, `{ imageGroups(first: 1) { totalCount } }`)
	errs, _ := out["errors"].([]any)
	require.Len(t, errs, 1, string(raw))
	ext := errs[0].(map[string]any)["extensions"].(map[string]any)
	assert.Equal(t, "UPSTREAM_ERROR", ext["code"])
	assert.EqualValues(t, 171, ext["retCode"])
	assert.NotEmpty(t, ext["requestId"])
	assert.EqualValues(t, 1, sb.Stats().Calls, "a signature error is not retried")

	resp, err := http.Get(s.url + "/readyz")
	require.NoError(t, err)
	readyz, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

	for name, text := range map[string]string{"response": string(raw), "readyz": string(readyz), "logs": s.logs.String()} {
		assert.NotContains(t, text, wrongKey, "the private key leaked into the %s", name)
	}
	assert.Contains(t, s.logs.String(), "****", "the config log line masks the key")
}

// TestSettingsStopTheStart: a setting that cannot work stops run before
// it listens, naming the setting (internal/settings tests every setting).
func TestSettingsStopTheStart(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	err := run(context.Background(), nil, env(map[string]string{"COMPSHARE_PUBLIC_KEY": "pub"}), io.Discard, io.Discard)
	assert.ErrorContains(t, err, "COMPSHARE_PRIVATE_KEY")
	var help bytes.Buffer
	err = run(context.Background(), []string{"-h"}, env(nil), io.Discard, &help)
	assert.True(t, errors.Is(err, flag.ErrHelp))
	assert.Contains(t, help.String(), "-compshare-qps")
}

// TestFirstLineSaysWhereToGo: the first log line names the playground, the
// API and the metrics URLs and the mode; in text at a terminal (or with
// LOG_FORMAT=text), JSON lines otherwise; the settings dump is at debug.
func TestFirstLineSaysWhereToGo(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"LOG_FORMAT": "text", "METRICS_ADDR": "127.0.0.1:0"})
	first, _, _ := strings.Cut(s.logs.String(), "\n")
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(s.url, "http://"))
	_, mport, _ := net.SplitHostPort(s.metrics)
	assert.True(t, strings.HasPrefix(first, "time="), "text: %s", first)
	assert.Contains(t, first, "msg=listening")
	assert.Contains(t, first, "mode=sandbox")
	assert.Contains(t, first, "playground=http://localhost:"+port+"/")
	assert.Contains(t, first, "query=http://localhost:"+port+"/query")
	assert.Contains(t, first, "metrics=http://localhost:"+mport+"/metrics")
	assert.NotContains(t, s.logs.String(), "COMPSHARE_QPS", "the settings dump is at debug level")

	s = startServer(t, map[string]string{"LOG_LEVEL": "debug"})
	first, _, _ = strings.Cut(s.logs.String(), "\n")
	assert.True(t, strings.HasPrefix(first, `{"time":`), "JSON lines when stdout is no terminal: %s", first)
	assert.Contains(t, first, `"msg":"listening"`)
	assert.Contains(t, s.logs.String(), `"COMPSHARE_QPS":"20"`, "the settings at debug level")
}

// TestPrintSchema: -print-schema writes the subgraph SDL and exits, without
// starting a server.
func TestPrintSchema(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := run(context.Background(), []string{"-print-schema"}, func(string) (string, bool) { return "", false }, &out, io.Discard)
	require.NoError(t, err)
	assert.Contains(t, out.String(), `type ImageGroup implements Node @key(fields: "id") @key(fields: "groupId")`)
	// Federation 2.9 and the cost directives, so that a router's demand
	// control reads the same annotations as the server's own limits.
	assert.Contains(t, out.String(), `@link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key", "@shareable", "@cost", "@listSize"])`)
	assert.Contains(t, out.String(), `imageGroups(`)
	assert.Contains(t, out.String(), `): ImageGroupConnection @cost(weight: 10) @listSize(assumedSize: 20, slicingArguments: ["first", "last"], sizedFields: ["edges", "nodes"], requireOneSlicingArgument: false)`)
}

// TestSandboxStats: sandbox mode exposes the sandbox's call counters for
// end-to-end tests of the binary.
func TestSandboxStats(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	resp, err := http.Post(s.url+"/sandbox/stats/reset", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	s.graphql(t, `{ a: imageGroups(first: 2) { totalCount nodes { groupId } } b: imageGroups(first: 2) { totalCount nodes { name } } }`)
	resp, err = http.Get(s.url + "/sandbox/stats")
	require.NoError(t, err)
	var stats struct {
		Calls int `json:"calls"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&stats))
	resp.Body.Close()
	assert.Equal(t, 1, stats.Calls)
}

// typeRef is an introspected type reference.
type typeRef struct {
	Kind   string   `json:"kind"`
	Name   *string  `json:"name"`
	OfType *typeRef `json:"ofType"`
}

func (t *typeRef) String() string {
	switch {
	case t == nil:
		return ""
	case t.Kind == "NON_NULL":
		return t.OfType.String() + "!"
	case t.Kind == "LIST":
		return "[" + t.OfType.String() + "]"
	default:
		return *t.Name
	}
}

// TestSchemaContract introspects the running server and checks that it
// serves every type, field, argument, input field, enum value and interface
// of the contract (graph/testdata/contract.graphqls) with exactly its types.
func TestSchemaContract(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("graph/testdata/contract.graphqls")
	require.NoError(t, err)
	contract, gerr := gqlparser.LoadSchema(&ast.Source{Name: "contract", Input: string(src)})
	require.Nil(t, gerr)

	s := startServer(t, nil)
	const tref = `kind name ofType { kind name ofType { kind name ofType { kind name } } }`
	_, out, raw := s.graphql(t, `{ __schema { types { name kind
		fields { name type { `+tref+` } args { name type { `+tref+` } } }
		inputFields { name type { `+tref+` } }
		enumValues { name } interfaces { name } possibleTypes { name } } } }`)
	require.Nil(t, out["errors"], string(raw))
	var served struct {
		Data struct {
			Schema struct {
				Types []struct {
					Name   string `json:"name"`
					Kind   string `json:"kind"`
					Fields []struct {
						Name string   `json:"name"`
						Type *typeRef `json:"type"`
						Args []struct {
							Name string   `json:"name"`
							Type *typeRef `json:"type"`
						} `json:"args"`
					} `json:"fields"`
					InputFields []struct {
						Name string   `json:"name"`
						Type *typeRef `json:"type"`
					} `json:"inputFields"`
					EnumValues []struct {
						Name string `json:"name"`
					} `json:"enumValues"`
					Interfaces []struct {
						Name string `json:"name"`
					} `json:"interfaces"`
				} `json:"types"`
			} `json:"__schema"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(raw, &served))
	have := map[string]string{}
	for _, typ := range served.Data.Schema.Types {
		have[typ.Name] = typ.Kind
		for _, f := range typ.Fields {
			have[typ.Name+"."+f.Name] = f.Type.String()
			for _, a := range f.Args {
				have[typ.Name+"."+f.Name+"("+a.Name+")"] = a.Type.String()
			}
		}
		for _, f := range typ.InputFields {
			have[typ.Name+"."+f.Name] = f.Type.String()
		}
		for _, v := range typ.EnumValues {
			have[typ.Name+"::"+v.Name] = "enum value"
		}
		for _, i := range typ.Interfaces {
			have[typ.Name+" implements "+i.Name] = "yes"
		}
	}
	checked := 0
	want := func(key, value string) {
		t.Helper()
		checked++
		assert.Equal(t, value, have[key], key)
	}
	for name, def := range contract.Types {
		if def.BuiltIn {
			continue
		}
		want(name, string(def.Kind))
		for _, f := range def.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			want(name+"."+f.Name, f.Type.String())
			for _, a := range f.Arguments {
				want(name+"."+f.Name+"("+a.Name+")", a.Type.String())
			}
		}
		for _, v := range def.EnumValues {
			want(name+"::"+v.Name, "enum value")
		}
		for _, i := range def.Interfaces {
			want(name+" implements "+i, "yes")
		}
	}
	assert.Greater(t, checked, 100, "the contract was read")
}

// TestBatchingThroughRun counts upstream calls through the built server's
// sandbox: a page with nested versions, latestVersion and group is one call,
// and three aliases of one connection are one call.
func TestBatchingThroughRun(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	calls := func() int {
		resp, err := http.Get(s.url + "/sandbox/stats")
		require.NoError(t, err)
		defer resp.Body.Close()
		var st struct {
			Calls int `json:"calls"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
		return st.Calls
	}
	_, out, raw := s.graphql(t, `{ imageGroups(first: 20) { totalCount pageInfo { hasNextPage endCursor }
		edges { cursor node { groupId name favoritesCount status useTime
			versions { totalCount nodes { imageId name group { groupId } } }
			latestVersion { imageId name publishedAt group { name } } } } } }`)
	require.Nil(t, out["errors"], string(raw))
	assert.Equal(t, 1, calls())
	_, out, raw = s.graphql(t, `{
		a: imageGroups(first: 5, filter: {freeOnly: true}) { totalCount nodes { groupId } }
		b: imageGroups(first: 5, filter: {freeOnly: true}) { edges { node { name } } }
		c: imageGroups(first: 5, filter: {freeOnly: true}) { nodes { status } } }`)
	require.Nil(t, out["errors"], string(raw))
	assert.Equal(t, 2, calls())
	_, out, raw = s.graphql(t, `{ imageGroups(first: -1) { totalCount } }`)
	errs := out["errors"].([]any)
	require.Len(t, errs, 1, string(raw))
	assert.Equal(t, "BAD_USER_INPUT", errs[0].(map[string]any)["extensions"].(map[string]any)["code"])
	assert.Equal(t, 2, calls(), "refused before any upstream call")
}

// TestDrain: on SIGTERM (run's context ends) /readyz answers 503 at once
// while /query keeps serving for SHUTDOWN_DRAIN; then the server stops.
func TestDrain(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"SHUTDOWN_DRAIN": "1500ms"})
	resp, err := http.Get(s.url + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	s.stop()
	require.Eventually(t, func() bool {
		resp, err := http.Get(s.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	}, time.Second, 5*time.Millisecond, "/readyz says 503 at once")
	status, out, raw := s.graphql(t, `{ imageGroups(first: 1) { totalCount } }`)
	assert.Equal(t, http.StatusOK, status, "still serving while draining")
	assert.Nil(t, out["errors"], string(raw))
	s.wait(t) // stopped above: it ends after the drain
	assert.Contains(t, s.logs.String(), `"msg":"draining"`)
}

// TestRedisURLIsMasked: the config line shows REDIS_URL without its
// password, and a replica whose Redis does not answer starts anyway.
func TestRedisURLIsMasked(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"REDIS_URL": "redis://:hunter2-secret@127.0.0.1:1/0", "LOG_LEVEL": "debug"})
	status, out, _ := s.graphql(t, `{ imageGroups(first: 1) { totalCount } }`)
	assert.Equal(t, http.StatusOK, status)
	assert.Nil(t, out["errors"])
	assert.NotContains(t, s.logs.String(), "hunter2-secret")
	assert.Contains(t, s.logs.String(), "redis://:****@127.0.0.1:1/0")
	assert.Contains(t, s.logs.String(), "redis unavailable")
}

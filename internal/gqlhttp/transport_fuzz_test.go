package gqlhttp_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/codes"
	"github.com/compshare/imagegraph/internal/endpoint"
	"github.com/compshare/imagegraph/internal/httpserver"
	"github.com/compshare/imagegraph/internal/limits"
	"github.com/compshare/imagegraph/internal/settings"
	"github.com/compshare/imagegraph/internal/telemetry"
	"github.com/compshare/imagegraph/internal/testkit"
	"github.com/compshare/imagegraph/upstream"
)

// The statuses docs/errors.md documents for /query: each code's, and the
// transport's own for a request it cannot read (405, 413, 415).
var documentedStatus = func() map[int]bool {
	m := map[int]bool{http.StatusOK: true, http.StatusMethodNotAllowed: true,
		http.StatusRequestEntityTooLarge: true, http.StatusUnsupportedMediaType: true}
	for _, c := range codes.All {
		if c.Status != 0 {
			m[c.Status] = true
		}
	}
	return m
}()

// The methods a fuzzed method that is not an HTTP token stands for.
var methods = []string{http.MethodGet, http.MethodPost, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodPatch, "PROPFIND"}

// FuzzRequest sends arbitrary requests to /query, through the server's
// whole handler (request id, recovery, the body limit, CORS, the cache of
// answers, persisted operations and APQ, the limits, the GET, POST and SSE
// transports): any method, Content-Type, Accept, query string and body. It
// proves that no request panics or gets a 5xx; that every status is one
// docs/errors.md documents; that every answer but HEAD's and OPTIONS' is
// JSON (or, for a stream, events of JSON), and that a non-200 answer holds
// errors; that every error has an extensions.code of the list in
// internal/codes, none of them INTERNAL_SERVER_ERROR; and that nothing is
// logged at ERROR.
func FuzzRequest(f *testing.F) {
	for _, seed := range []struct {
		method, contentType, accept, rawQuery, body string
	}{
		{"POST", "application/json", "", "", `{"query":"{ imageGroups(first: 2) { totalCount nodes { name } } }"}`},
		{"POST", "application/json; charset=utf-8", "application/graphql-response+json", "", `{"query":"query($n: Int) { imageGroups(first: $n) { totalCount } }","variables":{"n":"x"},"operationName":"Nope"}`},
		{"POST", "application/json", "*/*", "", `[{"query":"{ __typename }"},{"query":"{ __typename }"}]`},
		{"POST", "application/graphql", "", "", `{ __typename }`},
		{"POST", "application/json", "", "", `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38"}}}`},
		{"POST", "application/json", "", "", `{"query":"{ __typename }","extensions":{"persistedQuery":{"version":1,"sha256Hash":"00"}}}`},
		{"POST", "application/json", "", "", `{"documentId":"list-groups"}`},
		{"POST", "application/json", "", "", `{"doc_id":7,"query":"{ __typename }"}`},
		{"POST", "application/json", "", "", `{"query":"mutation { x }","extensions":{"persistedQuery":{"version":2}}}`},
		{"POST", "application/json", "text/event-stream", "", `{"query":"{ imageGroups(first: 1) { totalCount } }"}`},
		{"POST", "application/json", "text/event-stream", "", `{"query":"subscription { imageGroups(first: 1) { totalCount } }"}`},
		{"POST", "application/json", "", "", `{"query":"{ imageGroups(first: 1) { totalCount } }"` + strings.Repeat(" ", 5000) + `}`},
		{"POST", "application/json", "", "", `{"query":`},
		{"POST", "", "", "", ``},
		{"GET", "", "", "query=%7B+__typename+%7D&variables=%7B%7D&operationName=", ``},
		{"GET", "", "application/graphql-response+json", "query=mutation+%7B+x+%7D", ``},
		{"GET", "", "", "query=%7B+__typename+%7D&extensions=%7B%22persistedQuery%22%3A1%7D", ``},
		{"GET", "", "", "documentId=list-groups&variables=%5B%5D", ``},
		{"GET", "", "", "query=%zz", ``},
		{"GET", "", "", "query=query(%24a%3AString)%7BimageGroups(after%3A%24a)%7BtotalCount%7D%7D&variables=%7B%22a%22%3A%22cG9zOjk5OTk5OTk5OTk5OTk5OTk5OTk%22%7D", ``},
		{"HEAD", "", "", "", ``},
		{"OPTIONS", "", "", "", ``},
		{"PUT", "application/json", "", "", `{"query":"{ __typename }"}`},
		{"DELETE", "", "text/html", "", ``},
	} {
		f.Add(seed.method, seed.contentType, seed.accept, seed.rawQuery, []byte(seed.body))
	}
	h, logs := fuzzServer(f)
	f.Fuzz(func(t *testing.T, method, contentType, accept, rawQuery string, body []byte) {
		if !token(method) {
			method = methods[len(method)%len(methods)]
		}
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond) // a stream ends when its client leaves
		defer cancel()
		r := httptest.NewRequestWithContext(ctx, method, "/query", bytes.NewReader(body))
		r.URL.RawQuery = rawQuery
		r.RemoteAddr = "192.0.2.1:1234"
		for name, v := range map[string]string{"Content-Type": contentType, "Accept": accept} {
			if v = headerValue(v); v != "" {
				r.Header.Set(name, v)
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)

		raw := rec.Body.Bytes()
		require.Less(t, rec.Code, 500, "%s", raw)
		require.True(t, documentedStatus[rec.Code], "status %d is not documented: %s", rec.Code, raw)
		if method == http.MethodHead || method == http.MethodOptions && rec.Code == http.StatusOK {
			return
		}
		media, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type"))
		switch media {
		case "text/event-stream":
			require.Equal(t, http.StatusOK, rec.Code)
			sc := bufio.NewScanner(bytes.NewReader(raw))
			for sc.Scan() {
				if data, ok := strings.CutPrefix(sc.Text(), "data:"); ok && strings.TrimSpace(data) != "" {
					checkAnswer(t, []byte(data), http.StatusOK)
				}
			}
		case "application/json", "application/graphql-response+json":
			checkAnswer(t, raw, rec.Code)
		default:
			t.Fatalf("status %d, Content-Type %q: %s", rec.Code, rec.Header().Get("Content-Type"), raw)
		}
		if l := logs.String(); strings.Contains(l, `"level":"ERROR"`) {
			t.Fatalf("logged an error: %s", l)
		}
	})
}

// checkAnswer checks one GraphQL answer: a JSON object whose errors each
// have a code of the list, none INTERNAL_SERVER_ERROR; errors there must
// be when status is not 200.
func checkAnswer(t *testing.T, raw []byte, status int) {
	t.Helper()
	var out struct {
		Errors []struct {
			Message    string         `json:"message"`
			Extensions map[string]any `json:"extensions"`
		} `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(raw, &out), "not a JSON object: %s", raw)
	if status != http.StatusOK {
		require.NotEmpty(t, out.Errors, "status %d without errors: %s", status, raw)
	}
	for _, e := range out.Errors {
		code, _ := e.Extensions["code"].(string)
		_, known := codes.Lookup(code)
		assert.True(t, known, "an error without a code of the list: %s", raw)
		assert.NotEqual(t, codes.Internal, code, "%s", raw)
		assert.NotEmpty(t, e.Message, "%s", raw)
	}
}

// fuzzServer is the server's handler of /query as server.go builds it,
// with the settings' defaults, a small body limit (so that 413 is in
// reach), a persisted-operations manifest, and a fake upstream; and the
// buffer its log lines go to.
func fuzzServer(tb testing.TB) (http.Handler, *testkit.LogBuffer) {
	tb.Helper()
	manifest := filepath.Join(tb.TempDir(), "manifest.json")
	require.NoError(tb, os.WriteFile(manifest, []byte(`{"list-groups":"query ListGroups { imageGroups(first: 2) { nodes { groupId name } } }"}`), 0o600))
	cfg := settings.Defaults()
	cfg.MaxBodyBytes = 4 << 10
	cfg.PersistedOperations = manifest
	cfg.LivePollInterval = 100 * time.Millisecond
	logs := &testkit.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	tel := telemetry.New(telemetry.Options{Log: log})
	up := &testkit.Upstream{Answer: func(context.Context, *upstream.DescribeCommunityImagesRequest) (*upstream.DescribeCommunityImagesResponse, error) {
		return &upstream.DescribeCommunityImagesResponse{TotalCount: 2, CompshareImageGroup: []upstream.ImageGroup{
			{GroupId: "g1", ImageName: "One", Data: []upstream.Image{{CompShareImageId: "i1", Name: "v1", Status: "Available", PubTime: 5}}},
			{GroupId: "g2", ImageName: "Two", Data: []upstream.Image{{CompShareImageId: "i2", Name: "v2"}}},
		}}, nil
	}}
	ep, err := endpoint.New(cfg, endpoint.Parts{Upstream: limits.Meter(up), Telemetry: tel, Log: log})
	require.NoError(tb, err)
	tb.Cleanup(ep.Live.Drain)
	return httpserver.Handler(httpserver.Routes{Query: ep}, httpserver.Middleware{
		MaxBodyBytes: cfg.MaxBodyBytes, Telemetry: tel, Log: log,
	}), logs
}

// token reports whether s is an HTTP method token.
func token(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// headerValue is v as a header can carry it: no line breaks or NULs.
func headerValue(v string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return -1
		}
		return r
	}, v)
}

package access_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/access"
)

// corsServe runs req through CORS(origins) around a handler that answers
// 200 "next", and reports whether that handler ran.
func corsServe(t *testing.T, origins []string, req *http.Request) (*httptest.ResponseRecorder, bool) {
	t.Helper()
	parsed, err := access.ParseOrigins(origins)
	require.NoError(t, err)
	mw := access.CORS(parsed)
	called := false
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		called = true
		_, _ = w.Write([]byte("next"))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec, called
}

// canonical is the list of header names as rs/cors writes them.
func canonical(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = http.CanonicalHeaderKey(n)
	}
	return strings.Join(out, ", ")
}

func TestCORSAllowedOrigin(t *testing.T) {
	t.Parallel()
	origins := []string{" https://app.example.com ", "", "http://localhost:3000"}
	for _, tc := range []struct {
		name, method, origin string
	}{
		{"simple GET", http.MethodGet, "https://app.example.com"},
		{"POST", http.MethodPost, "https://app.example.com"},
		{"second origin with port", http.MethodPost, "http://localhost:3000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(tc.method, "/graphql", strings.NewReader(`{"query":"{__typename}"}`))
			req.Header.Set("Origin", tc.origin)
			req.Header.Set("Content-Type", "application/json")
			rec, called := corsServe(t, origins, req)
			assert.True(t, called)
			assert.Equal(t, http.StatusOK, rec.Code)
			assert.Equal(t, "next", rec.Body.String())
			assert.Equal(t, tc.origin, rec.Header().Get("Access-Control-Allow-Origin"))
			assert.Equal(t, canonical(access.ExposedHeaders), rec.Header().Get("Access-Control-Expose-Headers"))
			assert.Contains(t, rec.Header().Values("Vary"), "Origin")
			assert.Empty(t, rec.Header().Get("Access-Control-Allow-Credentials"))
		})
	}
}

func TestCORSPreflight(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest(http.MethodOptions, "/graphql", nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Access-Control-Request-Method", http.MethodPost)
	// As browsers send it: lower case, sorted, no duplicates.
	names := make([]string, len(access.AllowedHeaders))
	for i, h := range access.AllowedHeaders {
		names[i] = strings.ToLower(h)
	}
	slices.Sort(names)
	asked := strings.Join(names, ",")
	req.Header.Set("Access-Control-Request-Headers", asked)

	rec, called := corsServe(t, []string{"https://app.example.com/"}, req)
	assert.False(t, called, "a preflight must not reach the API")
	assert.Equal(t, http.StatusNoContent, rec.Code)
	h := rec.Header()
	assert.Equal(t, "https://app.example.com", h.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, http.MethodPost, h.Get("Access-Control-Allow-Methods"))
	assert.Equal(t, asked, h.Get("Access-Control-Allow-Headers"))
	assert.Equal(t, strconv.Itoa(access.PreflightMaxAge), h.Get("Access-Control-Max-Age"))
	assert.Equal(t, "600", h.Get("Access-Control-Max-Age"))
	assert.Empty(t, h.Get("Access-Control-Allow-Credentials"))
}

func TestCORSPreflightRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, origin, method, headers string
	}{
		{"origin", "https://evil.example", http.MethodPost, "content-type"},
		{"method", "https://app.example.com", http.MethodDelete, ""},
		{"header", "https://app.example.com", http.MethodPost, "content-type,x-secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodOptions, "/graphql", nil)
			req.Header.Set("Origin", tc.origin)
			req.Header.Set("Access-Control-Request-Method", tc.method)
			if tc.headers != "" {
				req.Header.Set("Access-Control-Request-Headers", tc.headers)
			}
			rec, called := corsServe(t, []string{"https://app.example.com"}, req)
			assert.False(t, called)
			assert.Equal(t, http.StatusNoContent, rec.Code)
			assert.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"))
			assert.Empty(t, rec.Header().Get("Access-Control-Allow-Methods"))
		})
	}
}

func TestCORSRefusedOrigin(t *testing.T) {
	t.Parallel()
	for _, origin := range []string{"https://evil.example", "http://app.example.com", "https://app.example.com:8443"} {
		t.Run(origin, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
			req.Header.Set("Origin", origin)
			rec, called := corsServe(t, []string{"https://app.example.com"}, req)
			assert.True(t, called, "the browser, not the server, enforces CORS on simple requests")
			assert.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"))
			assert.Empty(t, rec.Header().Get("Access-Control-Expose-Headers"))
		})
	}
}

func TestCORSAnyOrigin(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest(http.MethodGet, "/graphql?query={__typename}", nil)
	req.Header.Set("Origin", "https://anything.example")
	rec, called := corsServe(t, []string{"*"}, req)
	assert.True(t, called)
	assert.Equal(t, "*", rec.Header().Get("Access-Control-Allow-Origin"))
	assert.Empty(t, rec.Header().Get("Access-Control-Allow-Credentials"))

	pre := httptest.NewRequest(http.MethodOptions, "/graphql", nil)
	pre.Header.Set("Origin", "https://anything.example")
	pre.Header.Set("Access-Control-Request-Method", http.MethodPost)
	rec, called = corsServe(t, []string{" * "}, pre)
	assert.False(t, called)
	assert.Equal(t, http.StatusNoContent, rec.Code)
	assert.Equal(t, "*", rec.Header().Get("Access-Control-Allow-Origin"))
}

func TestCORSNormalisesOrigins(t *testing.T) {
	t.Parallel()
	for _, entry := range []string{"https://App.Example.com/", "HTTPS://app.example.com:443", "https://app.example.com"} {
		t.Run(entry, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
			req.Header.Set("Origin", "https://app.example.com")
			rec, _ := corsServe(t, []string{entry}, req)
			assert.Equal(t, "https://app.example.com", rec.Header().Get("Access-Control-Allow-Origin"))
		})
	}
}

func TestCORSOff(t *testing.T) {
	t.Parallel()
	for _, origins := range [][]string{nil, {}, {"", "  "}} {
		parsed, err := access.ParseOrigins(origins)
		require.NoError(t, err)
		mw := access.CORS(parsed)
		next := &okHandler{}
		h := mw(next)
		assert.Same(t, next, h, "the very handler comes back: no CORS at all")
		req := httptest.NewRequest(http.MethodOptions, "/graphql", nil)
		req.Header.Set("Origin", "https://app.example.com")
		req.Header.Set("Access-Control-Request-Method", http.MethodPost)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		assert.Empty(t, rec.Header(), "no CORS headers when no origin is allowed")
		assert.Equal(t, http.StatusOK, rec.Code, "the preflight reached next")
	}
}

// okHandler answers 200 with no headers.
type okHandler struct{}

func (*okHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

func TestCORSBadOrigins(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		"app.example.com",
		"ftp://app.example.com",
		"https://app.example.com/graphql",
		"https://app.example.com//",
		"https://app.example.com?x=1",
		"https://app.example.com#top",
		"https://user:pass@app.example.com",
		"https://*.example.com",
		"https://",
		"https://app.example.com:",
		"https://app.example.com:0",
		"https://app.example.com:65536",
		"https://app.example.com:http",
		"https://app example.com",
		"//app.example.com",
		"null",
	} {
		t.Run(bad, func(t *testing.T) {
			t.Parallel()
			parsed, err := access.ParseOrigins([]string{"https://ok.example", bad})
			require.Error(t, err)
			assert.Nil(t, parsed)
			assert.Contains(t, err.Error(), strconv.Quote(bad), "the error names the bad entry")
		})
	}
}

func TestCORSStarMustBeAlone(t *testing.T) {
	t.Parallel()
	_, err := access.ParseOrigins([]string{"*", "https://app.example.com"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"*"`)
	assert.Contains(t, err.Error(), "https://app.example.com")
}

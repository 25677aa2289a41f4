package playground

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// get sends one request to h and returns the response.
func get(t *testing.T, h http.Handler, method, target string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

// body reads a response's body.
func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(b)
}

// embedded returns every embedded file by its path under dist/.
func embedded(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := fs.WalkDir(dist, "dist", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := dist.ReadFile(name)
		files[strings.TrimPrefix(name, "dist/")] = b
		return err
	})
	require.NoError(t, err)
	require.Contains(t, files, "index.html", "run 'cd playground && npm ci && npm run build'")
	return files
}

var (
	metaRe = regexp.MustCompile(`<meta name="([a-z-]+)" content="([^"]*)"`)
	refRe  = regexp.MustCompile(`(?i)\s(?:src|href)="([^"]*)"`)
)

func TestIndex(t *testing.T) {
	t.Parallel()
	h := Handler(`/api/graphql?x="1"&y=<2>`)
	res := get(t, h, http.MethodGet, "/", nil)
	page := body(t, res)

	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
	assert.Equal(t, "no-cache", res.Header.Get("Cache-Control"))
	assert.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
	assert.NotContains(t, page, "__GRAPHQL_ENDPOINT__")
	assert.NotContains(t, page, "__CSP_NONCE__")

	metas := map[string]string{}
	for _, m := range metaRe.FindAllStringSubmatch(page, -1) {
		metas[m[1]] = m[2]
	}
	assert.Equal(t, "/api/graphql?x=&#34;1&#34;&amp;y=&lt;2&gt;", metas["graphql-endpoint"], "the endpoint is written into the page, escaped")
	require.NotEmpty(t, metas["csp-nonce"])

	csp := res.Header.Get("Content-Security-Policy")
	assert.Equal(t, ContentSecurityPolicy(metas["csp-nonce"]), csp, "the policy carries the page's nonce")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		assert.Contains(t, csp, want)
	}
	for _, never := range []string{"unsafe-inline", "unsafe-eval", "http:", "https:", "blob:", "*"} {
		assert.NotContains(t, csp, never)
	}

	again := get(t, h, http.MethodGet, "/", nil)
	assert.NotEqual(t, csp, again.Header.Get("Content-Security-Policy"), "every response has a fresh nonce")
}

func TestIndexReferencesServedAssets(t *testing.T) {
	t.Parallel()
	h := Handler("/query")
	page := body(t, get(t, h, http.MethodGet, "/", nil))
	refs := refRe.FindAllStringSubmatch(page, -1)
	require.NotEmpty(t, refs)
	var scripts, styles int
	for _, m := range refs {
		ref := m[1]
		if strings.HasPrefix(ref, "data:") {
			continue
		}
		require.True(t, strings.HasPrefix(ref, "./assets/"), "page reference %q is not a relative asset path", ref)
		res := get(t, h, http.MethodGet, "/"+strings.TrimPrefix(ref, "./"), nil)
		assert.Equal(t, http.StatusOK, res.StatusCode, ref)
		switch path.Ext(ref) {
		case ".js":
			scripts++
			assert.Equal(t, "text/javascript; charset=utf-8", res.Header.Get("Content-Type"), ref)
		case ".css":
			styles++
			assert.Equal(t, "text/css; charset=utf-8", res.Header.Get("Content-Type"), ref)
		}
	}
	assert.Positive(t, scripts, "the page loads a script")
	assert.Positive(t, styles, "the page loads a stylesheet")
}

func TestAssets(t *testing.T) {
	t.Parallel()
	h := Handler("/query")
	for name, want := range embedded(t) {
		if name == "index.html" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			target := "/" + name
			ct, known := contentTypes[path.Ext(name)]
			require.True(t, known, "no content type for %s: add its extension to contentTypes", name)

			res := get(t, h, http.MethodGet, target, nil)
			assert.Equal(t, http.StatusOK, res.StatusCode)
			assert.Equal(t, ct, res.Header.Get("Content-Type"))
			assert.Equal(t, "public, max-age=31536000, immutable", res.Header.Get("Cache-Control"))
			assert.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
			assert.Empty(t, res.Header.Get("Content-Encoding"))
			assert.Equal(t, string(want), body(t, res))

			etag := res.Header.Get("ETag")
			require.NotEmpty(t, etag)
			cached := get(t, h, http.MethodGet, target, http.Header{"If-None-Match": {etag}})
			assert.Equal(t, http.StatusNotModified, cached.StatusCode)

			head := get(t, h, http.MethodHead, target, nil)
			assert.Equal(t, http.StatusOK, head.StatusCode)
			assert.Empty(t, body(t, head))

			zipped := get(t, h, http.MethodGet, target, http.Header{"Accept-Encoding": {"br, gzip;q=0.8"}})
			assert.Equal(t, "Accept-Encoding", zipped.Header.Get("Vary"))
			if zipped.Header.Get("Content-Encoding") == "gzip" {
				zr, err := gzip.NewReader(zipped.Body)
				require.NoError(t, err)
				plain, err := io.ReadAll(zr)
				require.NoError(t, err)
				assert.Equal(t, want, plain)
				assert.NotEqual(t, etag, zipped.Header.Get("ETag"), "each encoding has its own ETag")
			} else {
				assert.False(t, compressible(ct) && len(want) > 1024, "%s (%s) is not served gzipped", name, ct)
			}
		})
	}
}

func TestAcceptsGzip(t *testing.T) {
	t.Parallel()
	for header, want := range map[string]bool{
		"":                 false,
		"gzip":             true,
		"GZIP":             true,
		"br, gzip":         true,
		"gzip;q=0.5":       true,
		"gzip;q=0":         false,
		"gzip; q=0.000":    false,
		"identity":         false,
		"x-gzip, deflate":  false,
		"deflate, br;q=1":  false,
		"br;q=1, gzip;q=1": true,
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept-Encoding", header)
		assert.Equal(t, want, acceptsGzip(r), header)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	h := Handler("/query")
	for _, target := range []string{
		"/nope",
		"/index.html",
		"/assets/",
		"/assets",
		"/assets/nope.js",
		"/dist/index.html",
		"/src/main.js",
		"/package.json",
		"/favicon.ico",
		"/assets/../index.html",
	} {
		res := get(t, h, http.MethodGet, target, nil)
		assert.Equal(t, http.StatusNotFound, res.StatusCode, target)
		assert.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"), target)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	h := Handler("/query")
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		res := get(t, h, method, "/", nil)
		assert.Equal(t, http.StatusMethodNotAllowed, res.StatusCode, method)
		assert.Equal(t, "GET, HEAD", res.Header.Get("Allow"), method)
	}
}

// allowedURLs are the only absolute URLs the bundle may contain, each with why
// it loads nothing: the page must work with no network but the server's own.
var allowedURLs = map[string]string{
	"http://www.w3.org/2000/svg":                                "XML namespace name (React, SVG icons): never fetched",
	"http://www.w3.org/1999/xlink":                              "XML namespace name (React): never fetched",
	"http://www.w3.org/1998/Math/MathML":                        "XML namespace name (React): never fetched",
	"http://www.w3.org/XML/1998/namespace":                      "XML namespace name (React): never fetched",
	"https://react.dev/errors/":                                 "text of React's minified error messages",
	"https://yarnpkg.com/en/docs/selective-version-resolutions": "text of graphql-js's duplicate-module error message",
	"https://commonmark.org/":                                   "text of a description in graphql-js's built-in directives",
	"https://en.wikipedia.org/wiki/IEEE_floating_point":         "text of the description of graphql-js's Float scalar",
	"https://codemirror.net/5/doc/manual.html#keymaps":          "a link (target=_blank) in GraphiQL's settings dialog, followed only when a person clicks it",
	"https://github.com/graphql/graphiql":                       "GraphiQL's default logo link, which the page replaces with its own logo",
	"http://":                                                   "markdown-it's linkify, building the href of a link found in a description",
	"http://${e.url}":                                           "markdown-it's linkify, building the href of a link found in a description",
}

var (
	absoluteURLRe = regexp.MustCompile("(?i)\\b(?:https?|wss?|ftp)://[^\\s\"'`)<>]*")
	// A protocol-relative URL in a string or url(): "//host.tld…".
	protocolRelativeRe = regexp.MustCompile("[\"'`(]//[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+")
	cssURLRe           = regexp.MustCompile(`url\(\s*["']?([^"')\s]*)`)
	cssImportRe        = regexp.MustCompile(`@import\s+(?:url\()?\s*["']?([^"')\s;]*)`)
)

// TestNoExternalOrigins scans every embedded file for anything that could
// make the browser load from another origin: absolute URLs outside
// allowedURLs, protocol-relative URLs, and in CSS and HTML every url(),
// @import, src and href that is neither relative nor a data: URL.
func TestNoExternalOrigins(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for name, content := range embedded(t) {
		if !compressible(contentTypes[path.Ext(name)]) || bytes.IndexByte(content, 0) >= 0 {
			continue // fonts and images: no URLs to follow
		}
		text := string(content)
		for _, u := range absoluteURLRe.FindAllString(text, -1) {
			_, ok := allowedURLs[u]
			assert.True(t, ok, "%s: absolute URL %q: if it is never loaded, add it to allowedURLs with the reason", name, u)
			seen[u] = true
		}
		assert.Empty(t, protocolRelativeRe.FindAllString(text, -1), "%s: protocol-relative URL", name)

		var refs []string
		switch path.Ext(name) {
		case ".css":
			for _, m := range cssURLRe.FindAllStringSubmatch(text, -1) {
				refs = append(refs, m[1])
			}
			for _, m := range cssImportRe.FindAllStringSubmatch(text, -1) {
				refs = append(refs, m[1])
			}
		case ".html":
			for _, m := range refRe.FindAllStringSubmatch(text, -1) {
				refs = append(refs, m[1])
			}
			assert.NotContains(t, strings.ToLower(text), "<base", "%s: a <base> element would move relative URLs", name)
		}
		for _, ref := range refs {
			local := strings.HasPrefix(ref, "data:") || strings.HasPrefix(ref, "#") ||
				(!strings.Contains(ref, ":") && !strings.HasPrefix(ref, "//"))
			assert.True(t, local, "%s: reference %q is neither relative nor data:", name, ref)
		}
	}
	for u := range allowedURLs {
		assert.True(t, seen[u], "allowedURLs has %q, which the bundle no longer holds: remove it", u)
	}
}

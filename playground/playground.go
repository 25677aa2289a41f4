// Package playground serves a self-hosted GraphiQL page for the GraphQL API.
//
// Every file the page loads (scripts, styles, fonts) is built from the npm
// registry into dist/ (see package.json and vite.config.js), committed, and
// embedded in the binary: the page works where public CDNs are slow, blocked
// or unreachable. The package knows only the path of the GraphQL endpoint;
// it knows nothing of the schema, the resolvers or the upstream API.
//
// To rebuild dist/ after changing src/, index.html or a dependency:
//
//	cd playground && npm ci && npm run build
package playground

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed dist
var dist embed.FS

// The placeholders in dist/index.html that Handler fills in for each response.
const (
	endpointPlaceholder = "__GRAPHQL_ENDPOINT__"
	noncePlaceholder    = "__CSP_NONCE__"
)

// assetsDir is where the build puts every file but index.html. Their names
// carry a hash of their content, so they may be cached for good.
const assetsDir = "/assets/"

// contentTypes maps the extensions the build emits, and a few it might, to
// their media types, so that no answer depends on the host's MIME tables.
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".json":  "application/json",
	".map":   "application/json",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".wasm":  "application/wasm",
	".woff":  "font/woff",
	".woff2": "font/woff2",
	".ttf":   "font/ttf",
	".otf":   "font/otf",
	".txt":   "text/plain; charset=utf-8",
}

// ContentSecurityPolicy returns the policy the page is served with: scripts,
// fonts, images and connections from the page's own origin only (fonts and
// the favicon may also be data: URLs, which the bundled CSS uses), and inline
// <style> elements only with the response's nonce. There is no
// 'unsafe-inline', no 'unsafe-eval' and no other origin.
func ContentSecurityPolicy(nonce string) string {
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self' 'nonce-" + nonce + "'",
		"font-src 'self' data:",
		"img-src 'self' data:",
		"connect-src 'self'",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}

// asset is one embedded file, with its gzip encoding when that is smaller.
type asset struct {
	body        []byte
	gzipped     []byte
	contentType string
	etag        string
}

// assets loads every file under dist/assets once per process.
var assets = sync.OnceValues(func() (map[string]*asset, error) {
	out := make(map[string]*asset)
	err := fs.WalkDir(dist, "dist/assets", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := dist.ReadFile(name)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			ct = "application/octet-stream"
		}
		sum := sha256.Sum256(body)
		a := &asset{body: body, contentType: ct, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`}
		if compressible(ct) {
			a.gzipped = gzipped(body)
		}
		out[strings.TrimPrefix(name, "dist")] = a
		return nil
	})
	return out, err
})

// compressible reports whether gzip is worth trying on a media type.
func compressible(contentType string) bool {
	return strings.HasPrefix(contentType, "text/") ||
		strings.HasPrefix(contentType, "application/json") ||
		strings.HasPrefix(contentType, "image/svg") ||
		strings.HasPrefix(contentType, "font/ttf")
}

// gzipped returns body compressed with gzip, or nil when that saves nothing.
func gzipped(body []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(body)
	_ = zw.Close()
	if buf.Len() >= len(body) {
		return nil
	}
	return buf.Bytes()
}

// Handler serves the playground's page at "/" and its assets, all from the
// binary. endpoint is the path of the GraphQL endpoint the page sends its
// operations to, on the page's own origin, e.g. "/query".
//
// Every answer carries X-Content-Type-Options: nosniff. The page carries a
// strict Content-Security-Policy with a fresh nonce and Cache-Control:
// no-cache; the assets, whose names hold a hash of their content, are cached
// for a year. Methods other than GET and HEAD get 405, any other path 404.
func Handler(endpoint string) http.Handler {
	index, err := dist.ReadFile("dist/index.html")
	if err != nil {
		panic(fmt.Sprintf("playground: dist/index.html is not embedded: %v", err))
	}
	page := strings.Replace(string(index), endpointPlaceholder, html.EscapeString(endpoint), 1)
	table, err := assets()
	if err != nil {
		panic(fmt.Sprintf("playground: reading the embedded assets: %v", err))
	}
	return &handler{page: page, assets: table}
}

type handler struct {
	page   string
	assets map[string]*asset
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/" {
		h.serveIndex(w, r)
		return
	}
	a, ok := h.assets[r.URL.Path]
	if !ok || !strings.HasPrefix(r.URL.Path, assetsDir) {
		http.NotFound(w, r)
		return
	}
	serveAsset(w, r, a)
}

// serveIndex writes the page with a nonce of its own in the policy and in the
// page, where the script hands it to the code that adds <style> elements.
func (h *handler) serveIndex(w http.ResponseWriter, r *http.Request) {
	nonce := rand.Text()
	hdr := w.Header()
	hdr.Set("Content-Type", contentTypes[".html"])
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy(nonce))
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	body := strings.Replace(h.page, noncePlaceholder, nonce, 1)
	http.ServeContent(w, r, "index.html", time.Time{}, strings.NewReader(body))
}

// serveAsset writes one asset, gzipped when the client accepts it.
func serveAsset(w http.ResponseWriter, r *http.Request, a *asset) {
	hdr := w.Header()
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	hdr.Set("Vary", "Accept-Encoding")
	body, etag := a.body, a.etag
	if a.gzipped != nil && acceptsGzip(r) {
		hdr.Set("Content-Encoding", "gzip")
		body, etag = a.gzipped, strings.TrimSuffix(a.etag, `"`)+`-gzip"`
	}
	hdr.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reports whether the request's Accept-Encoding admits gzip.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := strings.ReplaceAll(params, " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

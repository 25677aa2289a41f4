package access

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/rs/cors"
)

// AllowedMethods are the methods browsers on other origins may use: GraphQL
// over HTTP needs no others.
var AllowedMethods = []string{http.MethodGet, http.MethodPost}

// AllowedHeaders are the request headers browsers on other origins may send:
// the ones GraphQL clients (Apollo among them) and tracing libraries add.
var AllowedHeaders = []string{
	"Accept",
	"Content-Type",
	"Authorization",
	"X-Api-Key",
	"X-Request-Id",
	"traceparent",
	"tracestate",
	"baggage",
	"apollo-require-preflight",
	"x-apollo-operation-name",
	"apollographql-client-name",
	"apollographql-client-version",
}

// ExposedHeaders are the response headers scripts on other origins may read.
var ExposedHeaders = []string{"X-Request-Id", "Retry-After", "ETag"}

// PreflightMaxAge is how long, in seconds, a browser may cache the answer to
// a preflight (Access-Control-Max-Age).
const PreflightMaxAge = 600

// CORS returns middleware for browsers on other origins: it answers
// preflights (OPTIONS with Access-Control-Request-Method) itself with 204,
// without calling the wrapped handler, and adds the CORS response headers to
// every other request from an allowed origin before passing it on.
//
// origins are what ParseOrigins returns: "*" alone, or origins as browsers
// send them. With none, the middleware returns the handler unchanged: no
// CORS headers, so browsers keep to the same origin.
//
// Credentials (cookies, client certificates) are never allowed: API keys go
// in headers, which AllowedHeaders lists.
func CORS(origins []string) func(http.Handler) http.Handler {
	if len(origins) == 0 {
		return func(next http.Handler) http.Handler { return next }
	}
	c := cors.New(cors.Options{
		AllowedOrigins:       origins,
		AllowedMethods:       append([]string(nil), AllowedMethods...),
		AllowedHeaders:       append([]string(nil), AllowedHeaders...),
		ExposedHeaders:       append([]string(nil), ExposedHeaders...),
		MaxAge:               PreflightMaxAge,
		AllowCredentials:     false,
		OptionsPassthrough:   false,
		OptionsSuccessStatus: http.StatusNoContent,
	})
	return c.Handler
}

// ParseOrigins checks and normalises allowed origins. Each entry is "*"
// (any origin; then it must be the only entry) or scheme://host[:port] with
// scheme http or https and no path, query, fragment or user info. Entries
// are trimmed, a trailing slash is stripped, empty entries are ignored, and
// a default port (:80 for http, :443 for https) is dropped, as browsers
// drop it from Origin.
func ParseOrigins(entries []string) ([]string, error) {
	var origins []string
	anyOrigin := false
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if e == "*" {
			anyOrigin = true
			continue
		}
		o, err := parseOrigin(e)
		if err != nil {
			return nil, err
		}
		origins = append(origins, o)
	}
	if anyOrigin {
		if len(origins) > 0 {
			return nil, fmt.Errorf(`CORS origin "*" allows any origin and must be the only entry, but %q is listed too`, origins[0])
		}
		return []string{"*"}, nil
	}
	return origins, nil
}

// parseOrigin checks one origin and returns it as browsers send it in
// Origin: lower case, without a trailing slash or a default port.
func parseOrigin(entry string) (string, error) {
	bad := func(why string) error {
		return fmt.Errorf("CORS origin %q: %s (want scheme://host[:port] with scheme http or https, or *)", entry, why)
	}
	s := strings.TrimSuffix(entry, "/")
	if strings.ContainsAny(s, "?#*\\ \t") {
		return "", bad("it holds a character an origin cannot (one of ?#*\\ or a space)")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", bad("it does not parse as a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return "", bad("the scheme must be http or https")
	case u.Opaque != "" || u.Host == "":
		return "", bad("it has no host")
	case u.User != nil:
		return "", bad("it has user info")
	case u.Path != "" || u.RawPath != "":
		return "", bad("it has a path")
	case u.Hostname() == "":
		return "", bad("it has no host")
	case strings.HasSuffix(u.Host, ":"):
		return "", bad("the port is empty")
	}
	host := strings.ToLower(u.Host)
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || p[0] == '0' {
			return "", bad("the port must be a number from 1 to 65535")
		}
		if (scheme == "http" && n == 80) || (scheme == "https" && n == 443) {
			host = strings.TrimSuffix(host, ":"+p)
		}
	}
	return scheme + "://" + host, nil
}

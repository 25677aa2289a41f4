package access_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/compshare/imagegraph/internal/access"
)

// Example wires the middleware in the order the package comment gives and
// shows what a request without a key, and one with a key, get.
func Example() {
	key := "example-key-1234"
	h := sha256.Sum256([]byte(key))
	keys, err := access.ParseKeys(strings.NewReader("# name:sha256hex\nexample:" + hex.EncodeToString(h[:]) + "\n"))
	if err != nil {
		panic(err)
	}
	trusted, err := access.ParseTrustedProxies("10.0.0.0/8")
	if err != nil {
		panic(err)
	}
	origins, err := access.ParseOrigins([]string{"https://app.example.com"})
	if err != nil {
		panic(err)
	}
	cors := access.CORS(origins)
	limiter := access.NewLocalLimiter(10, 100)
	limit := &access.RateLimit{Limiter: limiter, Burst: 100}

	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The GraphQL layer estimates the cost and asks before executing.
		if err := limit.Admit(r.Context(), 250); err != nil {
			var rle *access.RateLimitedError
			if errors.As(err, &rle) {
				fmt.Println("refused:", rle.ErrorCode(), rle.ErrorExtensions())
			}
		}
		if err := limit.Admit(r.Context(), 30); err == nil {
			fmt.Println("admitted:", access.ClientFrom(r.Context()).Key())
		}
	})
	handler := cors(access.Identify(trusted, access.Authenticate(keys, api)))

	req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
	req.RemoteAddr = "10.1.2.3:40000"
	req.Header.Set("X-Forwarded-For", "198.51.100.7")
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Header().Get("WWW-Authenticate"))

	req.Header.Set("Authorization", "Bearer "+key)
	handler.ServeHTTP(httptest.NewRecorder(), req)
	// Output:
	// 401 Bearer realm="imagegraph"
	// refused: RATE_LIMITED map[burst:100 cost:250]
	// admitted: key:example
}

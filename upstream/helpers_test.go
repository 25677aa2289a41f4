package upstream

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Test-only options for the client's seams.

func withSleep(f func(context.Context, time.Duration) error) Option {
	return func(c *Client) error { c.sleep = f; return nil }
}

func withJitter(f func(time.Duration) time.Duration) Option {
	return func(c *Client) error { c.jitter = f; return nil }
}

func withLimiter(w Limiter) Option {
	return func(c *Client) error { c.limiter = w; return nil }
}

func withAfterJoin(f func()) Option {
	return func(c *Client) error { c.afterJoin = f; return nil }
}

// sleepRecorder replaces the backoff sleep: it records the delays asked for
// and returns at once.
type sleepRecorder struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (r *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.delays = append(r.delays, d)
	r.mu.Unlock()
	return ctx.Err()
}

func (r *sleepRecorder) recorded() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.delays...)
}

// testServer is an httptest server that counts the requests it handles and
// stamps each response with the request id "req-<n>".
type testServer struct {
	*httptest.Server
	calls atomic.Int64
}

func newTestServer(t *testing.T, h func(w http.ResponseWriter, r *http.Request, n int64)) *testServer {
	t.Helper()
	s := &testServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.calls.Add(1)
		w.Header().Set(RequestIDHeader, fmt.Sprintf("req-%d", n))
		h(w, r, n)
	}))
	t.Cleanup(s.Close)
	return s
}

// newTestClient returns a client for url with the vector keys, no rate
// limit, fast retries and a recording sleep; opts come last and win.
func newTestClient(t *testing.T, url string, opts ...Option) (*Client, *sleepRecorder) {
	t.Helper()
	rec := &sleepRecorder{}
	base := []Option{
		WithBaseURL(url),
		WithCredentials(vectorPublicKey, vectorPrivateKey),
		WithRateLimit(math.Inf(1), 1),
		WithRetryPolicy(RetryPolicy{MaxRetries: 2, BaseDelay: 10 * time.Millisecond, MaxDelay: time.Second}),
		withSleep(rec.sleep),
	}
	c, err := NewClient(append(base, opts...)...)
	require.NoError(t, err)
	return c, rec
}

const okJSON = `{"Action":"DescribeCommunityImagesResponse","RetCode":0,"TotalCount":1,"AvailableTotalCount":1,` +
	`"CompshareImageGroup":[{"GroupId":"group-1","ImageName":"SD","Status":"Available","Data":[{"CompShareImageId":"compshareImage-1","Status":"Available"}]}]}`

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func requireAPIError(t *testing.T, err error) *APIError {
	t.Helper()
	require.Error(t, err)
	e, ok := AsAPIError(err)
	require.True(t, ok, "error %T is not an *APIError: %v", err, err)
	return e
}

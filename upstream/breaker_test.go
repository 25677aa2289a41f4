package upstream

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCircuitBreaker: after the configured number of consecutive failed
// calls (each after its retries) the circuit opens and calls fail at once,
// without I/O, with KindCircuitOpen and a retry time; after the cooldown one
// probe goes through, and its success closes the circuit.
func TestCircuitBreaker(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	srv := newTestServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		if healthy.Load() {
			writeJSON(w, http.StatusOK, okJSON)
			return
		}
		writeJSON(w, http.StatusServiceUnavailable, "")
	})
	const cooldown = 150 * time.Millisecond
	c, _ := newTestClient(t, srv.URL, WithCircuitBreaker(3, cooldown))
	assert.Equal(t, "closed", c.CircuitState())
	call := func(offset int) error {
		_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{Offset: Int(offset)})
		return err
	}
	for i := range 3 {
		e := requireAPIError(t, call(i))
		assert.Equal(t, KindHTTP, e.Kind)
		assert.Equal(t, 3, e.Attempts, "each call is retried before it counts")
	}
	assert.Equal(t, "open", c.CircuitState())
	hits := srv.calls.Load()

	e := requireAPIError(t, call(99))
	assert.Equal(t, KindCircuitOpen, e.Kind)
	assert.True(t, IsUpstreamFault(e))
	assert.Greater(t, e.RetryAfter, time.Duration(0))
	assert.LessOrEqual(t, e.RetryAfter, time.Second)
	assert.Equal(t, hits, srv.calls.Load(), "refused without I/O")

	healthy.Store(true)
	require.Eventually(t, func() bool { return call(100) == nil }, 5*time.Second, 10*time.Millisecond,
		"after the cooldown a probe goes through")
	assert.Equal(t, "closed", c.CircuitState())
}

// TestCircuitBreakerProbeFailureReopens: a failed probe opens the circuit
// again.
func TestCircuitBreakerProbeFailureReopens(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		writeJSON(w, http.StatusBadGateway, "")
	})
	c, _ := newTestClient(t, srv.URL, WithCircuitBreaker(1, 100*time.Millisecond), WithRetryPolicy(RetryPolicy{MaxRetries: 0}))
	_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
	require.Error(t, err)
	assert.Equal(t, "open", c.CircuitState())
	require.Eventually(t, func() bool { return c.CircuitState() == "half-open" }, 5*time.Second, 10*time.Millisecond)
	_, err = c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
	assert.Equal(t, KindHTTP, requireAPIError(t, err).Kind, "the probe reached the upstream")
	assert.Equal(t, "open", c.CircuitState())
}

// TestCallerFaultsDoNotOpenTheCircuit: refusals of the request itself
// (RetCode 230, a bad parameter) and calls abandoned by their callers are
// not upstream failures.
func TestCallerFaultsDoNotOpenTheCircuit(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
		writeJSON(w, http.StatusOK, `{"Action":"DescribeCommunityImagesResponse","RetCode":230,"Message":"parameter not available"}`)
	})
	c, _ := newTestClient(t, srv.URL, WithCircuitBreaker(2, time.Minute))
	for i := range 5 {
		_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{Offset: Int(i)})
		assert.Equal(t, KindRetCode, requireAPIError(t, err).Kind)
	}
	assert.Equal(t, "closed", c.CircuitState())
}

// TestIsUpstreamFault classifies every kind of failure.
func TestIsUpstreamFault(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err   error
		fault bool
	}{
		{&APIError{Kind: KindNetwork}, true},
		{&APIError{Kind: KindDecode}, true},
		{&APIError{Kind: KindCircuitOpen}, true},
		{&APIError{Kind: KindTimeout}, true},
		{&APIError{Kind: KindTimeout, Err: context.Canceled}, false},
		{&APIError{Kind: KindHTTP, HTTPStatus: 503, Retryable: true}, true},
		{&APIError{Kind: KindHTTP, HTTPStatus: 500}, true},
		{&APIError{Kind: KindHTTP, HTTPStatus: 403}, false},
		{&APIError{Kind: KindRetCode, RetCode: 8433, Retryable: true}, true},
		{&APIError{Kind: KindRetCode, RetCode: RetCodeParamUnavailable}, false},
		{&APIError{Kind: KindRetCode, RetCode: RetCodeSignatureError}, false},
		{&APIError{Kind: KindInvalid}, false},
		{&APIError{Kind: KindCanceled, Err: context.Canceled}, false},
		{context.DeadlineExceeded, false},
		{nil, false},
	} {
		assert.Equal(t, tc.fault, IsUpstreamFault(tc.err), "%#v", tc.err)
	}
}

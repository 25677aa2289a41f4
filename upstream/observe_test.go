package upstream

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordingObserver keeps every attempt's report, and the context each
// started with.
type recordingObserver struct {
	mu      sync.Mutex
	started []int
	reports []AttemptReport
	ctxs    []context.Context
}

func (o *recordingObserver) StartAttempt(ctx context.Context, n int) func(AttemptReport) {
	o.mu.Lock()
	o.started = append(o.started, n)
	o.ctxs = append(o.ctxs, ctx)
	o.mu.Unlock()
	return func(r AttemptReport) {
		o.mu.Lock()
		o.reports = append(o.reports, r)
		o.mu.Unlock()
	}
}

func (o *recordingObserver) got() ([]int, []AttemptReport) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]int(nil), o.started...), append([]AttemptReport(nil), o.reports...)
}

type ctxKey struct{}

// TestObserverSeesEveryAttempt: the observer is told of each attempt, and
// each report says how it went; the attempts it sees sent are the requests
// the upstream received.
func TestObserverSeesEveryAttempt(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, func(w http.ResponseWriter, _ *http.Request, n int64) {
		switch n {
		case 1:
			writeJSON(w, http.StatusServiceUnavailable, "")
		case 2:
			writeJSON(w, http.StatusOK, `{"RetCode":8433,"Message":"service error"}`)
		default:
			writeJSON(w, http.StatusOK, okJSON)
		}
	})
	obs := &recordingObserver{}
	c, _ := newTestClient(t, srv.URL, WithObserver(obs))
	ctx := context.WithValue(context.Background(), ctxKey{}, "trace")
	_, err := c.DescribeCommunityImages(ctx, &DescribeCommunityImagesRequest{})
	require.NoError(t, err)

	started, reports := obs.got()
	assert.Equal(t, []int{1, 2, 3}, started)
	require.Len(t, reports, 3)
	assert.Equal(t, KindHTTP, reports[0].Err.Kind)
	assert.Equal(t, http.StatusServiceUnavailable, reports[0].HTTPStatus)
	assert.Equal(t, "req-1", reports[0].RequestID)
	assert.True(t, reports[0].Retry)
	assert.Equal(t, KindRetCode, reports[1].Err.Kind)
	assert.Equal(t, 8433, reports[1].Err.RetCode)
	assert.True(t, reports[1].Retry)
	assert.Nil(t, reports[2].Err)
	assert.False(t, reports[2].Retry)
	assert.Equal(t, http.StatusOK, reports[2].HTTPStatus)
	assert.Equal(t, "req-3", reports[2].RequestID)
	for i, r := range reports {
		assert.Equal(t, i+1, r.Attempt)
		assert.True(t, r.Sent)
		assert.Positive(t, r.Duration)
	}
	assert.Equal(t, "trace", obs.ctxs[0].Value(ctxKey{}), "the attempt sees the caller's values")
	assert.Equal(t, int64(3), srv.calls.Load())
}

// TestObserverSeesTheLimiterWait: an attempt that waits for the rate
// limiter reports the wait; one the limiter refuses is reported unsent.
func TestObserverSeesTheLimiterWait(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) { writeJSON(w, 200, okJSON) })

	obs := &recordingObserver{}
	c, _ := newTestClient(t, srv.URL, WithObserver(obs), withLimiter(sleepyLimiter(30*time.Millisecond)))
	_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
	require.NoError(t, err)
	_, reports := obs.got()
	require.Len(t, reports, 1)
	assert.GreaterOrEqual(t, reports[0].LimiterWait, 30*time.Millisecond)

	obs = &recordingObserver{}
	c, _ = newTestClient(t, srv.URL, WithObserver(obs), withLimiter(&countingLimiter{err: context.DeadlineExceeded}))
	_, err = c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
	require.Error(t, err)
	_, reports = obs.got()
	require.Len(t, reports, 1)
	assert.False(t, reports[0].Sent)
	assert.Zero(t, reports[0].Duration)
	assert.Equal(t, KindTimeout, reports[0].Err.Kind)
}

type sleepyLimiter time.Duration

func (d sleepyLimiter) Wait(ctx context.Context) error {
	select {
	case <-time.After(time.Duration(d)):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestStats: the client's counters for metrics: coalesced calls, and the
// circuit's openings and refusals.
func TestStats(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		writeJSON(w, http.StatusServiceUnavailable, "")
	})
	c, _ := newTestClient(t, srv.URL, WithCircuitBreaker(1, time.Hour), WithRateLimit(7, 3))
	assert.Equal(t, ClientStats{CircuitState: "closed", QPS: 7}, c.Stats())
	_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
	require.Error(t, err)
	_, err = c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
	assert.Equal(t, KindCircuitOpen, requireAPIError(t, err).Kind)
	st := c.Stats()
	assert.Equal(t, "open", st.CircuitState)
	assert.Equal(t, int64(1), st.CircuitOpened)
	assert.Equal(t, int64(1), st.CircuitRefused)
	assert.Zero(t, st.InFlight)

	// The upstream answers once all three callers have joined the call.
	release := make(chan struct{})
	ok := newTestServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		<-release
		writeJSON(w, 200, okJSON)
	})
	var joined sync.WaitGroup
	joined.Add(3)
	c, _ = newTestClient(t, ok.URL, withAfterJoin(joined.Done))
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
			assert.NoError(t, err)
		})
	}
	joined.Wait()
	close(release)
	wg.Wait()
	assert.Equal(t, int64(1), ok.calls.Load())
	assert.Equal(t, int64(2), c.Stats().Coalesced)
}

package access

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// newTestLimiter is a LocalLimiter on a fake clock.
func newTestLimiter(t *testing.T, rate float64, burst int) (*LocalLimiter, *fakeClock) {
	t.Helper()
	l := NewLocalLimiter(rate, burst)
	clk := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	l.now = clk.now
	return l, clk
}

// take calls l.Take and fails the test on an error.
func take(t *testing.T, l *LocalLimiter, key string, n int) (bool, time.Duration) {
	t.Helper()
	ok, retry, err := l.Take(context.Background(), key, n)
	require.NoError(t, err)
	return ok, retry
}

func TestLocalLimiterBucket(t *testing.T) {
	t.Parallel()
	l, clk := newTestLimiter(t, 2, 10) // 2 points a second, 10 at most

	// A new key starts full.
	ok, _ := take(t, l, "a", 10)
	assert.True(t, ok)

	// Empty: 1 point comes in half a second.
	ok, retry := take(t, l, "a", 1)
	assert.False(t, ok)
	assert.Equal(t, 500*time.Millisecond, retry)

	clk.advance(250 * time.Millisecond)
	ok, retry = take(t, l, "a", 1)
	assert.False(t, ok)
	assert.Equal(t, 250*time.Millisecond, retry)

	clk.advance(250 * time.Millisecond)
	ok, _ = take(t, l, "a", 1)
	assert.True(t, ok)

	// A refused Take takes nothing: 3 points in 1.5 s, asking 4 fails, 3 passes.
	clk.advance(1500 * time.Millisecond)
	ok, retry = take(t, l, "a", 4)
	assert.False(t, ok)
	assert.Equal(t, 500*time.Millisecond, retry)
	ok, _ = take(t, l, "a", 3)
	assert.True(t, ok)

	// Refill stops at the burst, however long the bucket idles.
	clk.advance(time.Hour)
	ok, _ = take(t, l, "a", 10)
	assert.True(t, ok)
	ok, retry = take(t, l, "a", 4)
	assert.False(t, ok)
	assert.Equal(t, 2*time.Second, retry)

	// Other keys have buckets of their own.
	ok, _ = take(t, l, "b", 10)
	assert.True(t, ok)
}

func TestLocalLimiterClockBackwards(t *testing.T) {
	t.Parallel()
	l, clk := newTestLimiter(t, 1, 2)
	ok, _ := take(t, l, "a", 2)
	require.True(t, ok)
	clk.advance(-time.Minute) // a clock stepped back adds nothing
	ok, retry := take(t, l, "a", 1)
	assert.False(t, ok)
	assert.Equal(t, time.Second, retry)
}

func TestLocalLimiterTakeOutOfRange(t *testing.T) {
	t.Parallel()
	l, _ := newTestLimiter(t, 1, 5)
	for _, n := range []int{0, -1, 6} {
		ok, _, err := l.Take(context.Background(), "a", n)
		assert.Error(t, err, "n=%d", n)
		assert.False(t, ok)
	}
	ok, _ := take(t, l, "a", 5)
	assert.True(t, ok, "out-of-range calls took nothing")
}

// TestNewLocalLimiterTakesCheckedValues: the settings check the rate and the
// burst; a limiter of no rate is a wiring bug and panics, and a burst under
// one point is one.
func TestNewLocalLimiterTakesCheckedValues(t *testing.T) {
	t.Parallel()
	for _, rate := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		assert.Panics(t, func() { NewLocalLimiter(rate, 10) }, "rate=%v", rate)
	}
	l := newLocalLimiter(1, -5, 0)
	assert.Equal(t, 1.0, l.burst)
	assert.Equal(t, uint64(1), l.buckets.GetMaximum())
}

func TestLocalLimiterConcurrent(t *testing.T) {
	t.Parallel()
	l, _ := newTestLimiter(t, 1, 100) // the clock stands still: exactly 100 points to share
	var (
		wg     sync.WaitGroup
		passed atomic.Int64
	)
	for range 20 {
		wg.Go(func() {
			for range 20 {
				if ok, _, err := l.Take(context.Background(), "shared", 1); err == nil && ok {
					passed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(100), passed.Load())
}

func TestLocalLimiterForgetsIdleBuckets(t *testing.T) {
	t.Parallel()
	l, _ := newTestLimiter(t, 2, 10) // a drained bucket refills in 5 s
	_, _ = take(t, l, "a", 1)
	e, ok := l.buckets.GetEntryQuietly("a")
	require.True(t, ok)
	assert.LessOrEqual(t, e.ExpiresAfter(), 6*time.Second)
	assert.Greater(t, e.ExpiresAfter(), 5*time.Second)
}

func TestLocalLimiterBoundsMemory(t *testing.T) {
	t.Parallel()
	const maxKeys = 100
	l := newLocalLimiter(1, 10, maxKeys)
	assert.Equal(t, uint64(maxKeys), l.buckets.GetMaximum())
	for i := range 20 * maxKeys {
		ok, _, err := l.Take(context.Background(), fmt.Sprintf("addr:10.0.%d.%d", i/256, i%256), 1)
		require.NoError(t, err)
		require.True(t, ok)
	}
	l.buckets.CleanUp()
	assert.LessOrEqual(t, l.buckets.EstimatedSize(), maxKeys)
	assert.Positive(t, l.buckets.EstimatedSize())
}

func TestLocalLimiterAbsurdRate(t *testing.T) {
	t.Parallel()
	l, clk := newTestLimiter(t, 1e-300, 1) // refills in 1e300 s: no overflow
	ok, _ := take(t, l, "a", 1)
	assert.True(t, ok)
	e, found := l.buckets.GetEntryQuietly("a")
	require.True(t, found)
	assert.Greater(t, e.ExpiresAfter(), 9*365*24*time.Hour, "kept for the longest expiry")
	clk.advance(time.Hour)
	ok, retry := take(t, l, "a", 1)
	assert.False(t, ok)
	assert.Equal(t, time.Duration(math.MaxInt64), retry, "saturates")
}

func TestNewLocalLimiterDefaultBound(t *testing.T) {
	t.Parallel()
	l := NewLocalLimiter(10, 100)
	assert.Equal(t, uint64(100_000), l.buckets.GetMaximum())
}

// fakeLimiter records Take's arguments and returns set results.
type fakeLimiter struct {
	calls      int
	key        string
	n          int
	ok         bool
	retryAfter time.Duration
	err        error
}

func (f *fakeLimiter) Take(_ context.Context, key string, n int) (bool, time.Duration, error) {
	f.calls++
	f.key, f.n = key, n
	return f.ok, f.retryAfter, f.err
}

// withClient is ctx with c as its request's Client, as Identify leaves it.
func withClient(c *Client) context.Context {
	return context.WithValue(context.Background(), clientKey{}, c)
}

func TestAdmitChargesTheClient(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		points   int
		wantKey  string
		wantCost int
	}{
		{"named client", withClient(&Client{Addr: "198.51.100.1", Name: "ci"}), 7, "key:ci", 7},
		{"anonymous client", withClient(&Client{Addr: "198.51.100.1"}), 7, "addr:198.51.100.1", 7},
		{"no Client", context.Background(), 7, "addr:unknown", 7},
		{"zero points cost one", context.Background(), 0, "addr:unknown", 1},
		{"negative points cost one", context.Background(), -3, "addr:unknown", 1},
		{"exactly the burst", context.Background(), 100, "addr:unknown", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeLimiter{ok: true}
			rl := &RateLimit{Limiter: f, Burst: 100}
			require.NoError(t, rl.Admit(tc.ctx, tc.points))
			assert.Equal(t, 1, f.calls)
			assert.Equal(t, tc.wantKey, f.key)
			assert.Equal(t, tc.wantCost, f.n)
		})
	}
}

func TestAdmitRateLimited(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		retryAfter time.Duration
		wantSecs   int
	}{
		{1500 * time.Millisecond, 2},
		{3 * time.Second, 3},
		{time.Nanosecond, 1},
		{0, 1},
		{time.Duration(math.MaxInt64), int(math.MaxInt64/int64(time.Second)) + 1},
	} {
		t.Run(tc.retryAfter.String(), func(t *testing.T) {
			t.Parallel()
			f := &fakeLimiter{ok: false, retryAfter: tc.retryAfter}
			rl := &RateLimit{Limiter: f, Burst: 100}
			err := rl.Admit(context.Background(), 40)
			var rle *RateLimitedError
			require.ErrorAs(t, err, &rle)
			assert.Equal(t, tc.retryAfter, rle.RetryAfter)
			assert.Equal(t, 40, rle.Points)
			assert.Equal(t, 100, rle.Burst)
			assert.Equal(t, "RATE_LIMITED", rle.ErrorCode())
			assert.Equal(t, map[string]any{"retryAfterSeconds": tc.wantSecs}, rle.ErrorExtensions())
			assert.Equal(t, fmt.Sprintf("rate limited: retry after %ds", tc.wantSecs), rle.Error())
		})
	}
}

func TestAdmitNeverFits(t *testing.T) {
	t.Parallel()
	f := &fakeLimiter{ok: true}
	rl := &RateLimit{Limiter: f, Burst: 100}
	err := rl.Admit(context.Background(), 101)
	var rle *RateLimitedError
	require.ErrorAs(t, err, &rle)
	assert.Equal(t, 0, f.calls, "refused without taking points")
	assert.Equal(t, "RATE_LIMITED", rle.ErrorCode())
	assert.Equal(t, map[string]any{"cost": 101, "burst": 100}, rle.ErrorExtensions())
	assert.NotContains(t, rle.ErrorExtensions(), "retryAfterSeconds")
	assert.Contains(t, rle.Error(), "costs 101 points, more than the limit of 100")
}

func TestAdmitFailsOpen(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	f := &fakeLimiter{err: errors.New("redis: connection refused")}
	rl := &RateLimit{Limiter: f, Burst: 100, Log: slog.New(slog.NewTextHandler(&buf, nil))}
	require.NoError(t, rl.Admit(withClient(&Client{Addr: "198.51.100.1", Name: "ci"}), 5))
	assert.Equal(t, 1, f.calls)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 1, "one log line a call")
	assert.Contains(t, lines[0], "level=WARN")
	assert.Contains(t, lines[0], "redis: connection refused")
	assert.Contains(t, lines[0], "client=key:ci")

	// Without a logger too.
	rl.Log = nil
	assert.NoError(t, rl.Admit(context.Background(), 5))
}

func TestAdmitWithoutLimiter(t *testing.T) {
	t.Parallel()
	var nilRL *RateLimit
	assert.NoError(t, nilRL.Admit(context.Background(), 1_000_000))
	assert.NoError(t, (&RateLimit{Burst: 1}).Admit(context.Background(), 1_000_000))
}

func TestAdmitWithLocalLimiter(t *testing.T) {
	t.Parallel()
	l, clk := newTestLimiter(t, 10, 50)
	rl := &RateLimit{Limiter: l, Burst: 50}
	alice := withClient(&Client{Addr: "198.51.100.1"})
	bob := withClient(&Client{Addr: "198.51.100.2"})

	require.NoError(t, rl.Admit(alice, 30))
	require.NoError(t, rl.Admit(alice, 20))
	err := rl.Admit(alice, 25)
	var rle *RateLimitedError
	require.ErrorAs(t, err, &rle)
	assert.Equal(t, 2500*time.Millisecond, rle.RetryAfter)
	assert.Equal(t, map[string]any{"retryAfterSeconds": 3}, rle.ErrorExtensions())

	require.NoError(t, rl.Admit(bob, 50), "bob has a bucket of his own")

	clk.advance(rle.RetryAfter)
	require.NoError(t, rl.Admit(alice, 25))
}

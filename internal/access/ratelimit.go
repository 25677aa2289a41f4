package access

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/compshare/imagegraph/internal/codes"
)

// Limiter takes points from a client's bucket.
type Limiter interface {
	// Take takes n points from key's bucket. When the bucket holds fewer, it
	// takes none and reports how long until it holds n.
	Take(ctx context.Context, key string, n int) (ok bool, retryAfter time.Duration, err error)
}

// MaxLimiterKeys is how many clients' buckets a LocalLimiter keeps at most.
const MaxLimiterKeys = 100_000

// maxBucketExpiry bounds how long an idle bucket is kept, so that absurd
// settings (a bucket that takes centuries to refill) cannot overflow a
// time.Duration.
const maxBucketExpiry = 10 * 365 * 24 * time.Hour

// LocalLimiter is a Limiter in process memory: one token bucket per key.
// Each bucket refills at rate points per second up to burst, and a new key's
// bucket starts full. Safe for concurrent use; build it with
// NewLocalLimiter.
//
// Memory is bounded however many distinct keys arrive: it keeps at most
// MaxLimiterKeys buckets, and forgets a bucket once it has been idle for as
// long as a drained one needs to refill (plus a second), since such a bucket
// is full again and forgetting it changes nothing. Under a flood of new keys
// the least useful buckets are evicted early; their clients then start again
// from a full bucket, the price of bounded memory. In a server with several
// replicas each keeps its own buckets.
type LocalLimiter struct {
	rate  float64 // points per second
	burst float64 // bucket size
	// now is the clock; tests in this package may replace it before use.
	now     func() time.Time
	buckets *otter.Cache[string, *bucket]
}

// bucket is one key's token bucket.
type bucket struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time // when tokens was brought up to date; zero: never
}

// NewLocalLimiter returns a LocalLimiter whose buckets refill at rate points
// per second and hold burst points. It takes them as the settings checked
// them: rate must be a positive, finite number (it panics otherwise: there
// is no limiter of no rate), and a burst under 1 is 1.
func NewLocalLimiter(rate float64, burst int) *LocalLimiter {
	return newLocalLimiter(rate, burst, MaxLimiterKeys)
}

// newLocalLimiter is NewLocalLimiter keeping at most maxKeys buckets.
func newLocalLimiter(rate float64, burst, maxKeys int) *LocalLimiter {
	if !(rate > 0) || math.IsInf(rate, 1) {
		panic(fmt.Sprintf("access: a rate limit of %v points per second", rate))
	}
	burst, maxKeys = max(burst, 1), max(maxKeys, 1)
	idle := min(seconds(float64(burst)/rate), maxBucketExpiry-time.Second) + time.Second
	return &LocalLimiter{
		rate:  rate,
		burst: float64(burst),
		now:   time.Now,
		buckets: otter.Must(&otter.Options[string, *bucket]{
			MaximumSize:      maxKeys,
			ExpiryCalculator: otter.ExpiryAccessing[string, *bucket](idle),
		}),
	}
}

// Take takes n points from key's bucket. When the bucket holds fewer, it
// takes none and reports how long until it holds n. n must be from 1 to the
// burst: a larger n could never be taken, and Take returns an error for it
// rather than a retryAfter that would never come. ctx is not used: the
// buckets are in memory.
func (l *LocalLimiter) Take(_ context.Context, key string, n int) (ok bool, retryAfter time.Duration, err error) {
	if n < 1 || float64(n) > l.burst {
		return false, 0, fmt.Errorf("rate limit: cannot take %d points from a bucket of %v", n, l.burst)
	}
	b, _ := l.buckets.ComputeIfAbsent(key, func() (*bucket, bool) {
		return &bucket{tokens: l.burst}, false
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	now := l.now()
	if b.last.IsZero() {
		b.last = now
	}
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed*l.rate)
		b.last = now
	}
	if want := float64(n); b.tokens >= want {
		b.tokens -= want
		return true, 0, nil
	}
	return false, seconds((float64(n) - b.tokens) / l.rate), nil
}

// seconds converts s seconds to a Duration, rounding up to the nanosecond so
// that waiting that long is enough, and saturating instead of overflowing.
func seconds(s float64) time.Duration {
	ns := math.Ceil(s * float64(time.Second))
	if ns >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(ns)
}

// RateLimit admits operations by their estimated cost. A nil *RateLimit, or
// one with no Limiter, admits everything.
type RateLimit struct {
	// Limiter holds the clients' buckets.
	Limiter Limiter
	// Burst is the bucket size, to refuse at once an operation that can
	// never fit: set it to the Limiter's burst. 0 turns the check off and
	// leaves such operations to the Limiter (LocalLimiter fails them, so
	// Admit lets them through and logs).
	Burst int
	// Log receives Limiter errors (nil: discard).
	Log *slog.Logger
}

// ClientKey is the rate-limit key of the client of ctx (Identify's), or
// "addr:unknown" outside Identify.
func ClientKey(ctx context.Context) string {
	if c := ClientFrom(ctx); c != nil {
		return c.Key()
	}
	return "addr:unknown"
}

// Admit charges the operation's estimated cost (at least 1 point) to the
// client of ctx, the one ClientFrom returns ("addr:unknown" when Identify did
// not run). It returns a *RateLimitedError when the client's bucket holds too
// few points, or at once, without charging, when the cost exceeds Burst.
//
// When the Limiter fails, Admit logs the error at warn level and admits the
// operation: it fails open, because the limiter is there to protect the
// service, and an outage of the limiter (a shared store, say) must not take
// the whole API down with it.
func (r *RateLimit) Admit(ctx context.Context, points int) error {
	if r == nil || r.Limiter == nil {
		return nil
	}
	points = max(points, 1)
	if r.Burst > 0 && points > r.Burst {
		return &RateLimitedError{Points: points, Burst: r.Burst}
	}
	key := ClientKey(ctx)
	ok, retryAfter, err := r.Limiter.Take(ctx, key, points)
	if err != nil {
		log := r.Log
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		log.WarnContext(ctx, "rate limiter failed; admitting the operation",
			slog.String("client", key), slog.Int("points", points), slog.Any("error", err))
		return nil
	}
	if !ok {
		return &RateLimitedError{RetryAfter: retryAfter, Points: points, Burst: r.Burst}
	}
	return nil
}

// RateLimitedError is what Admit returns when the client is over its limit.
type RateLimitedError struct {
	// RetryAfter is how long until the client's bucket holds Points; 0 when
	// it never will (Points > Burst).
	RetryAfter time.Duration
	// Points is the operation's cost.
	Points int
	// Burst is the bucket size; 0 when unknown.
	Burst int
}

// neverFits reports whether the operation costs more than a full bucket.
func (e *RateLimitedError) neverFits() bool { return e.Burst > 0 && e.Points > e.Burst }

// Error says why the operation was refused and, when it is worth retrying,
// after how long.
func (e *RateLimitedError) Error() string {
	if e.neverFits() {
		return fmt.Sprintf("rate limited: the operation costs %d points, more than the limit of %d: ask for fewer items or fields", e.Points, e.Burst)
	}
	return "rate limited: retry after " + strconv.Itoa(e.retryAfterSeconds()) + "s"
}

// ErrorCode is the code clients see in extensions.code: codes.RateLimited.
func (e *RateLimitedError) ErrorCode() string { return codes.RateLimited }

// ErrorExtensions are the extensions clients see besides the code:
// retryAfterSeconds (whole seconds, at least 1), or, when the operation can
// never fit (Points > Burst), its cost and the burst instead.
func (e *RateLimitedError) ErrorExtensions() map[string]any {
	if e.neverFits() {
		return map[string]any{"cost": e.Points, "burst": e.Burst}
	}
	return map[string]any{"retryAfterSeconds": e.retryAfterSeconds()}
}

// retryAfterSeconds is RetryAfter rounded up to whole seconds, at least 1.
func (e *RateLimitedError) retryAfterSeconds() int {
	s := e.RetryAfter / time.Second
	if e.RetryAfter%time.Second > 0 {
		s++
	}
	return max(int(s), 1)
}

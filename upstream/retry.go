package upstream

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ceiling returns min(MaxDelay, BaseDelay·2^retry), the upper end of the
// jittered delay before retry number retry (0-based).
func (p RetryPolicy) ceiling(retry int) time.Duration {
	d := p.BaseDelay
	for i := 0; i < retry && d < p.MaxDelay; i++ {
		d *= 2
	}
	return min(d, p.MaxDelay)
}

// delay returns how long to wait before retry number retry (0-based): a full
// jitter draw under ceiling(retry), raised to retryAfter when the server asked
// for that (retryAfter > 0), and never above MaxDelay.
func (p RetryPolicy) delay(retry int, retryAfter time.Duration, jitter func(time.Duration) time.Duration) time.Duration {
	d := jitter(p.ceiling(retry))
	d = max(d, retryAfter)
	return min(d, p.MaxDelay)
}

// fullJitter draws uniformly from [0, d].
func fullJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// maxRetryAfter bounds a parsed Retry-After before it meets MaxDelay, so the
// arithmetic cannot overflow.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
// It reports false when the header is absent or unreadable.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter), true
	}
	return 0, false
}

// sleepCtx waits d or until ctx ends, whichever is first, and returns ctx's
// error in the second case.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

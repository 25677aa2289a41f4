package fleet

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"golang.org/x/time/rate"

	"github.com/compshare/imagegraph/internal/access"
	"github.com/compshare/imagegraph/internal/cache"
	"github.com/compshare/imagegraph/internal/persisted"
	"github.com/compshare/imagegraph/upstream"
)

// CacheTier is the response cache's second tier in Redis (cache.Tier).
type CacheTier struct{ r *Redis }

// CacheTier returns the shared tier of the response cache.
// A nil Redis (a replica alone) has none: the result is a nil cache.Tier.
func (r *Redis) CacheTier() cache.Tier {
	if r == nil {
		return nil
	}
	return &CacheTier{r}
}

var _ cache.Tier = (*CacheTier)(nil)

const cachePrefix = keyPrefix + "cache:"

// Get reads the entries of keys in one round trip.
func (t *CacheTier) Get(ctx context.Context, keys ...string) [][]byte {
	out := make([][]byte, len(keys))
	if !t.r.Up() || len(keys) == 0 {
		return out
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = cachePrefix + k
	}
	vals, err := t.r.client.MGet(ctx, full...).Result()
	if err != nil {
		t.r.fail(err)
		return out
	}
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[i] = []byte(s)
		}
	}
	return out
}

// Set writes entries in one round trip, each expiring with its TTL.
func (t *CacheTier) Set(ctx context.Context, entries []cache.TierEntry) {
	if !t.r.Up() || len(entries) == 0 {
		return
	}
	pipe := t.r.client.Pipeline()
	for _, e := range entries {
		pipe.Set(ctx, cachePrefix+e.Key, e.Value, e.TTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.r.fail(err)
	}
}

// Lock takes a lease on key for ttl (SET NX PX); true when Redis is down.
func (t *CacheTier) Lock(ctx context.Context, key string, ttl time.Duration) bool {
	if !t.r.Up() {
		return true
	}
	ok, err := t.r.client.SetNX(ctx, cachePrefix+"lock:"+key, t.r.id, ttl).Result()
	if err != nil {
		t.r.fail(err)
		return true
	}
	return ok
}

// gcra is a limit in redis_rate's terms: its Rate is whole events per
// Period, so a fractional rate becomes one over a longer period.
func gcra(perSecond float64, burst int) redis_rate.Limit {
	const scale = 1000
	return redis_rate.Limit{Rate: max(int(math.Round(perSecond*scale)), 1), Period: scale * time.Second, Burst: burst}
}

// Quota is the account's budget of upstream calls, one for the whole fleet
// (upstream.Limiter): a GCRA in Redis (go-redis/redis_rate's Lua script,
// atomic on the server), so that however many replicas call, together they
// make no more than perSecond calls a second after a burst of burst. While
// Redis is down each replica paces itself with a token bucket of its share
// of the budget: perSecond and burst divided by the replicas last seen, so
// that the fleet as a whole stays within the account's budget.
type Quota struct {
	r     *Redis
	key   string
	gcra  *redis_rate.Limiter
	limit redis_rate.Limit
	qps   float64
	burst int

	mu       sync.Mutex
	local    *rate.Limiter
	replicas int
}

var _ upstream.Limiter = (*Quota)(nil)

// UpstreamQuota is the client option that paces its calls by the fleet's
// Quota; nil (the client's own bucket alone) for a nil Redis.
func (r *Redis) UpstreamQuota(perSecond float64, burst int) upstream.Option {
	if r == nil {
		return nil
	}
	return upstream.WithLimiter(r.Quota(perSecond, burst))
}

// Quota returns the fleet's budget of perSecond upstream calls a second,
// burst at once.
func (r *Redis) Quota(perSecond float64, burst int) *Quota {
	return r.quota(quotaKey, perSecond, burst)
}

func (r *Redis) quota(key string, perSecond float64, burst int) *Quota {
	return &Quota{r: r, key: key, gcra: redis_rate.NewLimiter(r.client), limit: gcra(perSecond, burst), qps: perSecond, burst: burst}
}

// PollQuota is the fleet's budget of the live queries' polls: the share of
// the account's quota they may use, for the whole fleet; a replica's own
// token bucket for a nil Redis.
func (r *Redis) PollQuota(perSecond float64, burst int) upstream.Limiter {
	if r == nil {
		return rate.NewLimiter(rate.Limit(perSecond), max(burst, 1))
	}
	return r.quota(pollQuotaKey, perSecond, max(burst, 1))
}

const (
	quotaKey     = keyPrefix + "quota:upstream"
	pollQuotaKey = keyPrefix + "quota:upstream:polls"
)

// Wait returns when one more call may go, or ctx's error.
func (q *Quota) Wait(ctx context.Context) error {
	for q.r.Up() {
		rctx, cancel := context.WithTimeout(ctx, commandTimeout)
		res, err := q.gcra.Allow(rctx, q.key, q.limit)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			q.r.fail(err)
			break
		}
		if res.Allowed > 0 {
			return nil
		}
		t := time.NewTimer(res.RetryAfter)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return q.fallback().Wait(ctx)
}

// fallback is this replica's share of the budget while Redis is down.
func (q *Quota) fallback() *rate.Limiter {
	n := q.r.Replicas()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.local == nil || q.replicas != n {
		q.replicas = n
		q.local = rate.NewLimiter(rate.Limit(q.qps/float64(n)), max(q.burst/n, 1))
	}
	return q.local
}

// ClientLimiter is the clients' rate limits, shared by the fleet
// (access.Limiter): a client that spreads its requests over the replicas
// spends one budget. While Redis is down each replica falls back to its own
// buckets (a client may then spend its budget on each replica).
type ClientLimiter struct {
	r     *Redis
	gcra  *redis_rate.Limiter
	limit redis_rate.Limit
	local access.Limiter
}

var _ access.Limiter = (*ClientLimiter)(nil)

// ClientLimiter returns the clients' shared limits: perSecond points a
// second, burst at once; local is the fallback, and all there is for a nil
// Redis.
func (r *Redis) ClientLimiter(perSecond float64, burst int, local access.Limiter) access.Limiter {
	if r == nil {
		return local
	}
	return &ClientLimiter{r: r, gcra: redis_rate.NewLimiter(r.client), limit: gcra(perSecond, burst), local: local}
}

// Take takes n points from key's bucket.
func (c *ClientLimiter) Take(ctx context.Context, key string, n int) (bool, time.Duration, error) {
	if c.r.Up() {
		rctx, cancel := context.WithTimeout(ctx, commandTimeout)
		res, err := c.gcra.AllowN(rctx, keyPrefix+"client:"+key, c.limit, n)
		cancel()
		if err == nil {
			return res.Allowed >= n, max(res.RetryAfter, 0), nil
		}
		c.r.fail(err)
	}
	return c.local.Take(ctx, key, n)
}

// APQStore is the store of automatic persisted queries, shared by the
// fleet (persisted.Store): a hash registered through one replica is known
// to the others. Each replica keeps what it has seen in local too, which
// answers alone while Redis is down.
type APQStore struct {
	r     *Redis
	local persisted.Store
	ttl   time.Duration
}

var _ persisted.Store = (*APQStore)(nil)

// APQStore returns the shared APQ store over local, keeping documents in
// Redis for ttl after their last registration; local alone for a nil Redis.
func (r *Redis) APQStore(local persisted.Store, ttl time.Duration) persisted.Store {
	if r == nil {
		return local
	}
	return &APQStore{r: r, local: local, ttl: ttl}
}

const apqPrefix = keyPrefix + "apq:"

// Get returns the document of hash.
func (s *APQStore) Get(ctx context.Context, hash string) (string, bool) {
	if q, ok := s.local.Get(ctx, hash); ok {
		return q, true
	}
	if !s.r.Up() {
		return "", false
	}
	rctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	q, err := s.r.client.Get(rctx, apqPrefix+hash).Result()
	if err != nil {
		s.r.fail(err) // redis.Nil, no such hash, is no failure
		return "", false
	}
	s.local.Add(ctx, hash, q)
	return q, true
}

// Add keeps query under hash, here and in Redis.
func (s *APQStore) Add(ctx context.Context, hash, query string) {
	s.local.Add(ctx, hash, query)
	if !s.r.Up() {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	if err := s.r.client.Set(rctx, apqPrefix+hash, query, s.ttl).Err(); err != nil {
		s.r.fail(err)
	}
}

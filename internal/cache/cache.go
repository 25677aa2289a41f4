// Package cache keeps the upstream's answers, so that the API serves far more
// reads than the account's quota of upstream calls allows and keeps
// answering while the upstream fails.
//
// It decorates the upstream service (the GraphQL layer does not notice it),
// keyed by the canonical request (the parameters that make two calls
// identical, never the keys or a signature), with freshness as RFC 5861 puts
// it: fresh for TTL; then, for StaleWhileRevalidate, answered at once while
// one background call refreshes it; then, for StaleIfError, answered in
// place of an upstream failure. A complete page (from a request without a
// version-level filter) also answers the lookups by GroupId and by
// CompShareImageId of the groups and versions it holds, and lookups that
// find nothing are kept for TTL. Entries hold decoded responses, so that a
// hit costs no decoding, and are bounded in bytes.
//
// What each read of an operation was answered with (a hit, a fill, stale
// data and the failure it replaced) is recorded in the operation's
// upstream.Usage. The package knows the upstream's types, not GraphQL or
// HTTP.
package cache

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/compshare/imagegraph/upstream"
)

// Defaults of a Cache built with zero Options fields.
const (
	DefaultTTL                  = 30 * time.Second
	DefaultStaleWhileRevalidate = 60 * time.Second
	DefaultStaleIfError         = 15 * time.Minute
	DefaultMaxBytes             = 32 << 20
)

// refreshTimeout bounds one background refresh; the client's own budget
// (its timeouts and retries) usually ends it first.
const refreshTimeout = 2 * time.Minute

// Options configure a Cache.
type Options struct {
	// TTL is how long an answer is fresh (must be positive: a server
	// without a cache does not build one).
	TTL time.Duration
	// StaleWhileRevalidate is how long past TTL an entry is still
	// answered at once, while one background call refreshes it.
	StaleWhileRevalidate time.Duration
	// StaleIfError is how long past TTL an entry is answered in place of
	// an upstream failure (upstream.IsUpstreamFault), the circuit breaker's
	// refusals included.
	StaleIfError time.Duration
	// MaxBytes bounds the memory the entries hold (the bytes of their
	// strings and structures; data two entries share counts in both).
	MaxBytes int64
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Log receives failed background refreshes (nil: discard).
	Log *slog.Logger
	// Tier, when set, is a second tier the replicas of a fleet share: read
	// on a miss here, written on every upstream answer (see Tier).
	Tier Tier
}

// Cache is a Service that answers from its entries when it can and asks
// next when it must. Safe for concurrent use; build it with New and Close it
// to stop its background refreshes.
type Cache struct {
	next  upstream.Service
	opts  Options
	now   func() time.Time
	log   *slog.Logger
	store *otter.Cache[string, *entry]

	tier   Tier
	writes chan struct{} // tokens for the tier writes in flight

	bg     context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	counts counters
}

// entry is one kept answer.
type entry struct {
	resp    *upstream.DescribeCommunityImagesResponse
	fetched time.Time
	// negative: a lookup that found nothing, fresh for TTL and never
	// answered stale.
	negative   bool
	weight     uint32
	refreshing atomic.Bool
}

// New returns a Cache in front of next. It takes opts as they are (the
// settings checked them): a TTL or MaxBytes that is not positive takes its
// default, a negative stale window is none.
func New(next upstream.Service, opts Options) *Cache {
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.MaxBytes < 1 {
		opts.MaxBytes = DefaultMaxBytes
	}
	opts.StaleWhileRevalidate = max(opts.StaleWhileRevalidate, 0)
	opts.StaleIfError = max(opts.StaleIfError, 0)
	c := &Cache{next: next, opts: opts, now: opts.Now, log: opts.Log, tier: opts.Tier, writes: make(chan struct{}, maxTierWrites)}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.store = otter.Must(&otter.Options[string, *entry]{
		MaximumWeight: uint64(opts.MaxBytes),
		Weigher:       func(key string, e *entry) uint32 { return e.weight + uint32(len(key)) + keyOverhead },
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *entry]) time.Duration {
			return c.lifetime(e.Value)
		}),
	})
	c.bg, c.stop = context.WithCancel(context.Background())
	return c
}

// lifetime is how long e is kept from its fetch: a lookup that found
// nothing for the TTL, anything else as long as either stale window may
// still use it.
func (c *Cache) lifetime(e *entry) time.Duration {
	if e.negative {
		return c.opts.TTL
	}
	return c.opts.TTL + max(c.opts.StaleWhileRevalidate, c.opts.StaleIfError)
}

// Close stops the background refreshes and waits for them.
func (c *Cache) Close() {
	c.stop()
	c.wg.Wait()
}

// DescribeCommunityImages answers req from a fresh entry, or from a stale
// one within StaleWhileRevalidate (refreshing it in the background), or
// calls next; when next fails with an upstream fault and an entry is within
// StaleIfError, that entry answers instead. Answers are shared and
// read-only.
func (c *Cache) DescribeCommunityImages(ctx context.Context, req *upstream.DescribeCommunityImagesRequest) (*upstream.DescribeCommunityImagesResponse, error) {
	if req == nil || req.Validate() != nil {
		return c.next.DescribeCommunityImages(ctx, req) // next refuses it
	}
	c.counts.requests.Add(1)
	key, lk := req.CanonicalKey(""), lookupKey(req)
	usage := upstream.UsageFrom(ctx)
	maxAge, bounded := maxAgeFrom(ctx)
	fresh := c.opts.TTL
	if bounded {
		fresh = min(fresh, maxAge)
	}
	e, src := c.lookup(ctx, key, lk, fresh, bounded)
	if e != nil {
		age := c.now().Sub(e.fetched)
		switch {
		case age < fresh:
			c.counts.hits[src].Add(1)
			usage.Hit()
			usage.Fresh(c.opts.TTL - age)
			return e.resp, nil
		case !bounded && c.usable(e):
			c.counts.staleHits[src].Add(1)
			usage.Hit()
			usage.Stale(age, nil)
			c.refresh(key, lk, req, e)
			return e.resp, nil
		}
	}
	c.counts.misses.Add(1)
	resp, err := c.next.DescribeCommunityImages(withReason(ctx, ReasonMiss), req)
	if err == nil {
		c.put(key, lk, req, resp, c.now())
		usage.Fresh(c.opts.TTL)
		return resp, nil
	}
	if e != nil && !e.negative && ctx.Err() == nil && upstream.IsUpstreamFault(err) {
		if age := c.now().Sub(e.fetched); age < c.opts.TTL+c.opts.StaleIfError {
			c.counts.staleErrors[src].Add(1)
			usage.Hit()
			usage.Stale(age, err)
			return e.resp, nil
		}
	}
	return nil, err
}

// usable reports whether e may answer without a call: fresh, or stale
// within stale-while-revalidate.
func (c *Cache) usable(e *entry) bool {
	age := c.now().Sub(e.fetched)
	return age < c.opts.TTL || !e.negative && age < c.opts.TTL+c.opts.StaleWhileRevalidate
}

// The tiers an entry is found in, for the counters.
const (
	inMemory = iota
	inShared
	tiers
)

// TierNames name the tiers of Stats' per-tier counters: this process's
// memory, and the tier a fleet shares (Options.Tier).
var TierNames = [tiers]string{"memory", "shared"}

// lookup returns the entry of key, or, for a lookup by GroupId or
// CompShareImageId, the one a complete page primed under lk (its
// lookupKey), and the tier it came
// from: this process's memory, or else, when that has none usable (another
// replica may have fetched it since), the shared tier; nil when there is
// none.
func (c *Cache) lookup(ctx context.Context, key, lk string, fresh time.Duration, bounded bool) (*entry, int) {
	e, ok := c.store.GetIfPresent(key)
	if !ok && lk != "" {
		e, ok = c.store.GetIfPresent(lk)
	}
	if ok && (c.usable(e) && !bounded || c.now().Sub(e.fetched) < fresh) {
		return e, inMemory
	}
	c.counts.memoryMisses.Add(1)
	if c.tier == nil {
		return e, inMemory
	}
	newer := c.fromTier(ctx, key, lk)
	if newer == nil || e != nil && !newer.fetched.After(e.fetched) {
		c.counts.sharedMisses.Add(1)
		return e, inMemory
	}
	if !c.usable(newer) || bounded && c.now().Sub(newer.fetched) >= fresh {
		c.counts.sharedMisses.Add(1)
	}
	return newer, inShared
}

// fromTier reads the entry of key (or of lk, its lookup key, when not
// empty) from the tier and keeps it here; nil when the tier has none.
func (c *Cache) fromTier(ctx context.Context, key, lk string) *entry {
	keys := []string{key}
	if lk != "" {
		keys = append(keys, lk)
	}
	tctx, cancel := context.WithTimeout(ctx, tierTimeout)
	defer cancel()
	for i, v := range c.tier.Get(tctx, keys...) {
		if v == nil {
			continue
		}
		e, err := decodeEntry(v)
		if err != nil {
			c.log.Debug("cache: an entry of the shared tier does not decode", slog.String("error", err.Error()))
			continue
		}
		c.counts.tierHits.Add(1)
		c.set(keys[i], e)
		return e
	}
	return nil
}

// refresh calls next for req in the background, once at a time for e,
// detached from the operation that found e stale (nobody's budget, nobody's
// deadline: the client's own bounds it).
func (c *Cache) refresh(key, lk string, req *upstream.DescribeCommunityImagesRequest, e *entry) {
	if !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer e.refreshing.Store(false)
		ctx, cancel := context.WithTimeout(c.bg, refreshTimeout)
		defer cancel()
		if c.tier != nil {
			// Another replica may have refreshed it, or be refreshing it.
			if newer := c.fromTier(ctx, key, lk); newer != nil && newer.fetched.After(e.fetched) {
				return
			}
			lctx, lcancel := context.WithTimeout(ctx, tierTimeout)
			mine := c.tier.Lock(lctx, "refresh\x00"+key, refreshLease)
			lcancel()
			if !mine {
				return
			}
		}
		c.counts.refreshes.Add(1)
		resp, err := c.next.DescribeCommunityImages(withReason(ctx, ReasonRefresh), req)
		if err != nil {
			c.log.Debug("cache refresh failed; the stale entry stays", slog.String("error", err.Error()))
			return
		}
		c.put(key, lk, req, resp, c.now())
	}()
}

// put keeps a copy of resp (fetched at fetched) under key, as a negative
// entry when it is a lookup (lk, its lookupKey, not empty) that found
// nothing, and primes the lookups of
// the groups and versions of a complete page; with a tier, it writes them
// there too.
func (c *Cache) put(key, lk string, req *upstream.DescribeCommunityImagesRequest, resp *upstream.DescribeCommunityImagesResponse, fetched time.Time) {
	kept := cloneResponse(resp)
	entries := map[string]*entry{key: {resp: kept, fetched: fetched, negative: lk != "" && len(kept.CompshareImageGroup) == 0}}
	if !req.HasVersionFilter() {
		for i := range kept.CompshareImageGroup {
			g := &kept.CompshareImageGroup[i]
			entries[groupKey(req.Region, g.GroupId)] = &entry{resp: groupLookup(g), fetched: fetched}
			for j := range g.Data {
				entries[imageKey(req.Region, g.Data[j].CompShareImageId)] = &entry{resp: imageLookup(g, j), fetched: fetched}
			}
		}
	}
	for k, e := range entries {
		c.set(k, e)
	}
	if c.tier != nil {
		c.toTier(entries)
	}
}

// refreshLease is how long a replica holds the right to refresh an entry
// for the fleet: past it (the replica died, say), another may.
const refreshLease = 10 * time.Second

// toTier writes entries to the tier in the background, at most
// maxTierWrites batches at a time: past that they are dropped, as the tier
// is best-effort and the replica's own entries answer regardless.
func (c *Cache) toTier(entries map[string]*entry) {
	select {
	case c.writes <- struct{}{}:
	default:
		c.counts.tierDropped.Add(1)
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() { <-c.writes }()
		batch := make([]TierEntry, 0, len(entries))
		now := c.now()
		for k, e := range entries {
			// The time left of the entry's life, not a full one: it may
			// have been fetched a while ago.
			ttl := c.lifetime(e) - now.Sub(e.fetched)
			if ttl <= 0 {
				continue
			}
			v, err := encodeEntry(e)
			if err != nil {
				c.log.Warn("cache: an entry does not encode", slog.String("error", err.Error()))
				continue
			}
			batch = append(batch, TierEntry{Key: k, Value: v, TTL: ttl})
		}
		ctx, cancel := context.WithTimeout(c.bg, 4*tierTimeout)
		defer cancel()
		c.tier.Set(ctx, batch)
	}()
}

// set weighs e and keeps it under key, unless a fresher entry is there.
func (c *Cache) set(key string, e *entry) {
	e.weight = weigh(e.resp)
	c.store.Compute(key, func(old *entry, found bool) (*entry, otter.ComputeOp) {
		if found && old.fetched.After(e.fetched) {
			return old, otter.CancelOp
		}
		return e, otter.WriteOp
	})
}

// Stats are the cache's counters since New, and its size now. The per-tier
// counters are indexed like TierNames, by the tier the entry that answered
// came from.
type Stats struct {
	// Requests are the reads that reached the cache.
	Requests int64
	// Hits were answered fresh; StaleHits stale while revalidating;
	// StaleErrors stale in place of an upstream failure.
	Hits, StaleHits, StaleErrors [tiers]int64
	// Misses called the upstream (StaleErrors among them).
	Misses int64
	// MemoryMisses found no usable entry in memory; SharedMisses none in
	// the shared tier either (counted only when there is one).
	MemoryMisses, SharedMisses int64
	// Refreshes are the background refreshes started.
	Refreshes int64
	// TierHits are the entries read from the shared tier; TierDropped the
	// batches of writes to it dropped because too many were in flight.
	TierHits, TierDropped int64
	// Entries and Bytes are what the cache holds now, MaxBytes its bound.
	Entries         int
	Bytes, MaxBytes uint64
}

type counters struct {
	requests, misses, memoryMisses, sharedMisses atomic.Int64
	hits, staleHits, staleErrors                 [tiers]atomic.Int64
	refreshes, tierHits, tierDropped             atomic.Int64
}

// Stats returns the counters and the size of the cache.
func (c *Cache) Stats() Stats {
	st := Stats{
		Requests: c.counts.requests.Load(), Misses: c.counts.misses.Load(),
		MemoryMisses: c.counts.memoryMisses.Load(), SharedMisses: c.counts.sharedMisses.Load(),
		Refreshes: c.counts.refreshes.Load(),
		TierHits:  c.counts.tierHits.Load(), TierDropped: c.counts.tierDropped.Load(),
		Entries: c.store.EstimatedSize(), Bytes: c.store.WeightedSize(), MaxBytes: uint64(c.opts.MaxBytes),
	}
	for i := range tiers {
		st.Hits[i] = c.counts.hits[i].Load()
		st.StaleHits[i] = c.counts.staleHits[i].Load()
		st.StaleErrors[i] = c.counts.staleErrors[i].Load()
	}
	return st
}

// Why the cache calls the upstream: the reason it gives the call's context.
const (
	// ReasonMiss: a read found no entry it could answer with.
	ReasonMiss = "miss"
	// ReasonRefresh: a background refresh of a stale entry.
	ReasonRefresh = "refresh"
)

type maxAgeKey struct{}

// WithMaxAge returns ctx whose reads take an entry only when it was
// fetched less than d ago (or within the TTL, when that is shorter), and
// never a stale one while it is refreshed: what a live query's poll needs,
// so that the TTL cannot hide a change for longer than the poll's
// interval. A read that finds an older entry calls the upstream (or takes a
// newer entry another replica put in the shared tier); the entry it fetches
// serves every other read too. Stale-if-error still applies.
func WithMaxAge(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, maxAgeKey{}, d)
}

func maxAgeFrom(ctx context.Context) (time.Duration, bool) {
	d, ok := ctx.Value(maxAgeKey{}).(time.Duration)
	return d, ok
}

type reasonKey struct{}

func withReason(ctx context.Context, reason string) context.Context {
	return context.WithValue(ctx, reasonKey{}, reason)
}

// Reason returns why the cache made the upstream call of ctx (ReasonMiss,
// ReasonRefresh), or "" for a call it did not make: what a trace of the
// call shows as its cache result.
func Reason(ctx context.Context) string {
	r, _ := ctx.Value(reasonKey{}).(string)
	return r
}

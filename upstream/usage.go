package upstream

import (
	"context"
	"sync"
	"time"
)

// Usage is what the upstream reads of one operation cost and how fresh
// their data was. The client and the decorators around it (a cache) record
// into the Usage of the context a call is made with; whoever answers the
// operation reads it (the GraphQL layer: extensions.cost, extensions.staleData,
// Cache-Control). Safe for concurrent use; the zero value is ready.
type Usage struct {
	mu        sync.Mutex
	calls     int
	coalesced int
	hits      int
	// freshFor is the smallest remaining freshness of the data read, when
	// any was read with a freshness (haveFresh).
	freshFor  time.Duration
	haveFresh bool
	stale     bool
	staleAge  time.Duration
	staleErr  error
}

type usageKey struct{}

// WithUsage returns ctx carrying u.
func WithUsage(ctx context.Context, u *Usage) context.Context {
	return context.WithValue(ctx, usageKey{}, u)
}

// UsageFrom returns the Usage of ctx, or nil: recording into a nil Usage
// does nothing.
func UsageFrom(ctx context.Context) *Usage {
	u, _ := ctx.Value(usageKey{}).(*Usage)
	return u
}

// Called records a call the operation made to the upstream itself. Its data
// has no known freshness unless Fresh says otherwise (a cache does).
func (u *Usage) Called() {
	if u == nil {
		return
	}
	u.mu.Lock()
	u.calls++
	u.mu.Unlock()
}

// Coalesced records a call answered by an identical call in flight for
// another operation: no call of the operation's own.
func (u *Usage) Coalesced() {
	if u == nil {
		return
	}
	u.mu.Lock()
	u.coalesced++
	u.mu.Unlock()
}

// Hit records a read answered from a cache without a call.
func (u *Usage) Hit() {
	if u == nil {
		return
	}
	u.mu.Lock()
	u.hits++
	u.mu.Unlock()
}

// Fresh records data read that stays fresh for d more.
func (u *Usage) Fresh(d time.Duration) {
	if u == nil {
		return
	}
	u.mu.Lock()
	if !u.haveFresh || d < u.freshFor {
		u.freshFor, u.haveFresh = max(d, 0), true
	}
	u.mu.Unlock()
}

// Stale records data served past its freshness, age old; err, when not
// nil, is the failure it stood in for (stale-if-error).
func (u *Usage) Stale(age time.Duration, err error) {
	if u == nil {
		return
	}
	u.mu.Lock()
	u.stale = true
	if err != nil && (u.staleErr == nil || age > u.staleAge) {
		u.staleAge, u.staleErr = age, err
	}
	u.mu.Unlock()
}

// UsageReport is a Usage read at one moment.
type UsageReport struct {
	// Calls is the number of upstream calls the operation made itself;
	// Coalesced those answered by another operation's identical call;
	// CacheHits those answered from a cache.
	Calls, Coalesced, CacheHits int
	// FreshFor is the smallest remaining freshness of the data read, when
	// Fresh is set (a cache gave one); data read without one may change at
	// once.
	FreshFor time.Duration
	Fresh    bool
	// Stale reports data served past its freshness.
	Stale bool
	// StaleAge and StaleError describe the oldest data served in place of
	// a failure (stale-if-error), when StaleError is not nil.
	StaleAge   time.Duration
	StaleError error
}

// Reads is the number of reads recorded: calls, coalesced calls and hits.
func (r UsageReport) Reads() int { return r.Calls + r.Coalesced + r.CacheHits }

// Report returns what u recorded so far.
func (u *Usage) Report() UsageReport {
	if u == nil {
		return UsageReport{}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return UsageReport{
		Calls: u.calls, Coalesced: u.coalesced, CacheHits: u.hits,
		FreshFor: u.freshFor, Fresh: u.haveFresh, Stale: u.stale,
		StaleAge: u.staleAge, StaleError: u.staleErr,
	}
}

// Package answers is the cache of whole answers in front of execution:
// the bytes of a successful answer, kept under everything that changes
// them, and served again for the cost of a static file. A repeat of a
// request it answered is not parsed, validated, walked by the limits or
// executed again. It is also the one mechanism for repeats in flight:
// identical requests that miss at the same time share one execution.
//
// An answer lives only as long as the freshest-expiring upstream data it
// was built from (what Cache-Control's max-age says), and only answers
// without errors, without stale data and not cut short by a limit are kept
// (the Judge decides). What decides who may ask and how much still runs on
// a hit: the layers around this one (API keys, CORS), the safelist (an
// answer is kept per Variant), and the client rate limit (Admit).
//
// It knows GraphQL over HTTP (the request's parameters, the answer's
// shape) and nothing of the schema, the resolvers or the upstream.
package answers

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/maypok86/otter/v2"

	"github.com/compshare/imagegraph/internal/documents"
)

// DefaultMaxBytes bounds the answers a replica keeps when nothing else is
// configured: three thousand pages of the README's reference operation,
// beside the data cache's 32 MiB in the manifests' 256 MiB.
const DefaultMaxBytes = 32 << 20

// Verdict is what the Judge says of an executed answer.
type Verdict struct {
	// Share says the answer may be given to the identical requests that
	// waited for its execution: it has data and no errors, used no stale
	// data, carries no federated trace, and was not cut short by a limit.
	Share bool
	// Keep says it may also be kept and served again later: it was built
	// from data a cache keeps fresh (or from none), for TTL.
	Keep bool
	// TTL is how long it stays fresh: the remaining freshness of the
	// freshest-expiring upstream data it used.
	TTL time.Duration
	// Cost is its estimated cost, charged to a client on each hit.
	Cost int
	// Reads are the upstream reads it was built from.
	Reads int
	// Extensions are the extensions a hit carries (extensions.cost as a
	// hit sees it: no upstream calls).
	Extensions map[string]any
	// Name and Type name the operation, for the telemetry of a hit.
	Name, Type string
}

// Hit is what the telemetry is told of a request answered from the cache.
type Hit struct {
	// Name, Type and Cost are the operation's, as its Verdict said.
	Name, Type string
	Cost       int
	// Reads are the upstream reads the answer was built from: a cache
	// answers all of them now.
	Reads int
	// Shared says the request waited for an identical one's execution
	// instead of finding the answer kept.
	Shared bool
	// Start is when the request reached the cache.
	Start time.Time
}

// Options configure a Cache.
type Options struct {
	// MaxBytes bounds the answers kept, each weighed by its bytes.
	MaxBytes int64
	// Documents keys a request's document by its canonical form (the
	// executors' cache of parsed documents, whose record of texts seen
	// spares the lexer on a repeat).
	Documents *documents.Cache
	// Judge decides whether an executed answer is kept, and for how long.
	Judge func(ctx context.Context, resp *graphql.Response) Verdict
	// Resolve returns the document of a persisted operation's id (the
	// safelist's manifest); nil when there is none.
	Resolve func(id string) (string, bool)
	// Variant returns what else about a request changes its answer, or
	// whether it may have one: a federation router's secret lets it
	// introspect and run operations outside the safelist, so its answers
	// are kept apart.
	Variant func(r *http.Request) string
	// Bypass reports requests that must not be answered from the cache nor
	// share an execution (one that asks for a federated trace).
	Bypass func(r *http.Request) bool
	// Admit, when set, charges a hit's cost to its client (the client rate
	// limit); its error refuses the request.
	Admit func(ctx context.Context, cost int) error
	// Private makes hits say Cache-Control: private (answers need an API
	// key).
	Private bool
	// Answered, when set, is told of each request answered without its own
	// execution (telemetry).
	Answered func(ctx context.Context, h Hit)
	// Now is the clock (tests set it); nil is time.Now.
	Now func() time.Time
	// Log receives panics of a shared execution.
	Log *slog.Logger
}

// Cache is the cache of answers. Use Handler around the GraphQL handler.
type Cache struct {
	opts    Options
	entries *otter.Cache[key, *answer]

	mu      sync.Mutex
	flights map[key]*flight

	hits, misses, shared, evictions, stored atomic.Int64

	joined func() // a test's seam: called as a request starts waiting for another's execution
}

// entryOverhead is what an answer weighs beyond its bytes: the entry, its
// key and otter's node.
const entryOverhead = 256

// New returns a Cache of opts.
func New(opts Options) *Cache {
	if opts.MaxBytes < 1 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	c := &Cache{opts: opts, flights: map[key]*flight{}}
	c.entries = otter.Must(&otter.Options[key, *answer]{
		MaximumWeight: uint64(opts.MaxBytes),
		Weigher:       func(_ key, a *answer) uint32 { return uint32(min(len(a.body)+entryOverhead, 1<<32-1)) },
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[key, *answer]) time.Duration {
			// Past its freshness an answer is never served (get checks the
			// clock); otter drops it then to give its memory back.
			return max(e.Value.expires.Sub(e.Value.stored), time.Second)
		}),
		OnDeletion: func(e otter.DeletionEvent[key, *answer]) {
			if e.Cause == otter.CauseOverflow {
				c.evictions.Add(1)
			}
		},
	})
	return c
}

// Stats are the cache's counters, for metrics.
type Stats struct {
	// Hits are requests answered from the cache; Misses requests that
	// executed (and may have been kept); Shared requests that waited for
	// an identical one's execution; Evictions answers dropped for room.
	Hits, Misses, Shared, Evictions int64
	// Entries and Bytes are what the cache holds now.
	Entries int
	Bytes   uint64
}

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	return Stats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Shared: c.shared.Load(), Evictions: c.evictions.Load(),
		Entries: c.entries.EstimatedSize(), Bytes: c.entries.WeightedSize(),
	}
}

// answer is a kept answer: the whole body a hit writes, and what its
// headers and its client's charge need.
type answer struct {
	body            []byte
	etag            string
	cost, reads     int
	name, typ       string
	stored, expires time.Time
}

// get returns the answer kept under k while it is fresh.
func (c *Cache) get(k key) (*answer, bool) {
	a, ok := c.entries.GetIfPresent(k)
	if !ok {
		return nil, false
	}
	if !c.opts.Now().Before(a.expires) {
		c.entries.Invalidate(k)
		return nil, false
	}
	return a, true
}

package limits

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/compshare/imagegraph/internal/codes"
)

// The defaults of the in-flight bound. An answer's memory follows its
// estimated cost (about a kilobyte a point at worst, on the real catalogue:
// a version with its fields is a few hundred bytes of JSON, held two or
// three times over while it is built), so DefaultInflightCost keeps the
// answers being built within about a hundred megabytes, what a replica with
// the manifests' 256 MiB has beside its caches. It runs two operations of
// DefaultLimits.MaxCost at once, or two hundred of the README's reference
// operation (491 points).
const (
	DefaultInflightCost = 100_000
	DefaultInflightWait = time.Second
)

// Inflight bounds the estimated cost of the operations a process runs at
// once. MaxCost and the other limits bound one operation; this bounds the
// sum, so that many operations the limits admit, arriving together, cannot
// exhaust the memory their answers take (an answer's size follows its
// estimated cost: the instances of objects it may hold). An operation waits
// for room, first come first served, up to Wait; past it, it is refused
// with codes.Overloaded. An operation costing more than the whole bound runs
// alone.
type Inflight struct {
	max  int64
	wait time.Duration
	sem  *semaphore.Weighted

	cost    atomic.Int64 // estimated cost running now
	running atomic.Int64 // operations running now
	waiting atomic.Int64 // operations waiting for room now
	refused atomic.Int64 // operations refused since the start
}

// NewInflight bounds the cost in flight to maxCost, each operation waiting
// at most wait for room. A maxCost of zero or less returns nil: no bound
// (a nil *Inflight admits everything).
func NewInflight(maxCost int64, wait time.Duration) *Inflight {
	if maxCost <= 0 {
		return nil
	}
	return &Inflight{max: maxCost, wait: max(wait, 0), sem: semaphore.NewWeighted(maxCost)}
}

// InflightStats is what an Inflight holds now, for metrics.
type InflightStats struct {
	// Cost is the estimated cost of the operations running now, of Max.
	Cost, Max int64
	// Running and Waiting are the operations running and waiting for room.
	Running, Waiting int64
	// Refused counts the operations refused since the start.
	Refused int64
}

// Stats reports what f holds now.
func (f *Inflight) Stats() InflightStats {
	if f == nil {
		return InflightStats{}
	}
	return InflightStats{Cost: f.cost.Load(), Max: f.max, Running: f.running.Load(), Waiting: f.waiting.Load(), Refused: f.refused.Load()}
}

// Acquire takes room for an operation of the given estimated cost (at least
// 1, at most the bound), waiting up to the Wait it was made with, or until
// ctx ends. It returns the function that gives the room back, which may be
// called any number of times; or an *OverloadedError.
func (f *Inflight) Acquire(ctx context.Context, cost int) (release func(), err error) {
	if f == nil {
		return func() {}, nil
	}
	n := min(max(int64(cost), 1), f.max)
	if !f.sem.TryAcquire(n) {
		if f.wait <= 0 {
			f.refused.Add(1)
			return nil, &OverloadedError{Cost: n, Max: f.max}
		}
		f.waiting.Add(1)
		wctx, cancel := context.WithTimeout(ctx, f.wait)
		err := f.sem.Acquire(wctx, n)
		cancel()
		f.waiting.Add(-1)
		if err != nil {
			f.refused.Add(1)
			return nil, &OverloadedError{Cost: n, Max: f.max}
		}
	}
	f.cost.Add(n)
	f.running.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			f.cost.Add(-n)
			f.running.Add(-1)
			f.sem.Release(n)
		})
	}, nil
}

// OverloadedError refuses an operation for which there was no room in
// time.
type OverloadedError struct {
	// Cost is the operation's estimated cost, Max the bound of all those
	// running at once.
	Cost, Max int64
}

func (e *OverloadedError) Error() string {
	return fmt.Sprintf("the server is busy: it runs operations of at most %d estimated cost at once and had no room for this one's %d in time; retry shortly", e.Max, e.Cost)
}

// ErrorCode is the code clients see: codes.Overloaded.
func (e *OverloadedError) ErrorCode() string { return codes.Overloaded }

// ErrorExtensions are what clients see besides the code: when to retry.
func (e *OverloadedError) ErrorExtensions() map[string]any {
	return map[string]any{"retryAfterSeconds": 1}
}

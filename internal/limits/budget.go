package limits

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/compshare/imagegraph/internal/codes"
	"github.com/compshare/imagegraph/upstream"
)

// Budget counts one operation's upstream calls against its limit. Identical
// calls of one operation are one call: the second waits for the first's
// answer, whichever loader made it.
type Budget struct {
	max int

	mu    sync.Mutex
	calls int
	made  map[string]*call
}

type call struct {
	done chan struct{}
	resp *upstream.DescribeCommunityImagesResponse
	err  error
}

// NewBudget returns a Budget of max calls; max <= 0 is no bound.
func NewBudget(max int) *Budget { return &Budget{max: max, made: map[string]*call{}} }

// Calls is the number of upstream calls made so far.
func (b *Budget) Calls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

// Max is the budget's bound (0 when there is none).
func (b *Budget) Max() int { return max(b.max, 0) }

type budgetKey struct{}

// WithBudget returns ctx carrying b; Meter charges the calls made with it.
func WithBudget(ctx context.Context, b *Budget) context.Context {
	return context.WithValue(ctx, budgetKey{}, b)
}

// BudgetFrom returns the Budget of ctx, or nil.
func BudgetFrom(ctx context.Context) *Budget {
	b, _ := ctx.Value(budgetKey{}).(*Budget)
	return b
}

// BudgetError is the error of a call the operation's budget refused: the
// operation already made as many upstream calls as it may. Clients see it
// on the fields that needed the call, with the code
// COST_ACTUAL_TOO_EXPENSIVE; the rest of the data stays.
type BudgetError struct {
	// Max is the budget.
	Max int
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("this operation has made the %d upstream calls it may make (MAX_UPSTREAM_CALLS)", e.Max)
}

// ErrorCode is the code clients see.
func (e *BudgetError) ErrorCode() string { return codes.ActualCost }

// ErrorExtensions are shown beside the code.
func (e *BudgetError) ErrorExtensions() map[string]any {
	return map[string]any{"setting": "MAX_UPSTREAM_CALLS", "limit": e.Max}
}

// Meter decorates svc so that every call made with a Budget in its context
// is charged to it: identical calls of one operation are made once, and a
// call past the budget fails with a *BudgetError without reaching svc.
// Calls without a Budget (a readiness probe, a background refresh) pass
// through.
func Meter(svc upstream.Service) upstream.Service { return meter{svc} }

type meter struct{ next upstream.Service }

func (m meter) DescribeCommunityImages(ctx context.Context, req *upstream.DescribeCommunityImagesRequest) (*upstream.DescribeCommunityImagesResponse, error) {
	b := BudgetFrom(ctx)
	if b == nil || req == nil {
		return m.next.DescribeCommunityImages(ctx, req)
	}
	key := req.CanonicalKey("")
	b.mu.Lock()
	if c, ok := b.made[key]; ok {
		b.mu.Unlock()
		select {
		case <-c.done:
			return c.resp, c.err
		case <-ctx.Done():
			// The caller's context ended: next reports that the way it
			// reports it for any call, without calling anything.
			return m.next.DescribeCommunityImages(ctx, req)
		}
	}
	if b.max > 0 && b.calls >= b.max {
		b.mu.Unlock()
		return nil, &BudgetError{Max: b.max}
	}
	b.calls++
	c := &call{done: make(chan struct{})}
	b.made[key] = c
	b.mu.Unlock()

	c.err = errAbandoned // what waiters see if next panics
	defer close(c.done)
	resp, err := m.next.DescribeCommunityImages(ctx, req)
	c.resp, c.err = resp, err
	return resp, err
}

var errAbandoned = errors.New("limits: the identical call this one waited for did not finish")

package limits

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/codes"
	"github.com/compshare/imagegraph/internal/testkit"
	"github.com/compshare/imagegraph/upstream"
)

// offsetAnswer answers a page whose TotalCount is the request's Offset.
func offsetAnswer(_ context.Context, req *upstream.DescribeCommunityImagesRequest) (*upstream.DescribeCommunityImagesResponse, error) {
	return &upstream.DescribeCommunityImagesResponse{TotalCount: *req.Offset}, nil
}

// watchedCtx reports on waiting each time something selects on its Done:
// a call that waits for an identical one in flight does.
type watchedCtx struct {
	context.Context
	waiting chan<- struct{}
}

func (c watchedCtx) Done() <-chan struct{} {
	c.waiting <- struct{}{}
	return c.Context.Done()
}

func page(offset int) *upstream.DescribeCommunityImagesRequest {
	return &upstream.DescribeCommunityImagesRequest{Offset: upstream.Int(offset), Limit: upstream.Int(1)}
}

// TestMeterCountsDistinctCalls: identical calls of one operation are made
// once and counted once, even when made concurrently; a call past the budget
// fails with a *BudgetError and never reaches the service.
func TestMeterCountsDistinctCalls(t *testing.T) {
	t.Parallel()
	svc := &testkit.Upstream{Answer: offsetAnswer}
	started := svc.Hold()
	m := Meter(svc)
	b := NewBudget(3)
	ctx := WithBudget(context.Background(), b)

	get := func(ctx context.Context) {
		resp, err := m.DescribeCommunityImages(ctx, page(7))
		assert.NoError(t, err)
		assert.Equal(t, 7, resp.TotalCount)
	}
	var wg sync.WaitGroup
	wg.Go(func() { get(ctx) })
	testkit.Await(t, started, "call in flight")
	// Four more while it is in flight: each waits for it.
	waiting := make(chan struct{}, 16)
	for range 4 {
		wg.Go(func() { get(watchedCtx{ctx, waiting}) })
	}
	for range 4 {
		testkit.Await(t, waiting, "identical call waiting for the one in flight")
	}
	svc.Release()
	wg.Wait()
	assert.EqualValues(t, 1, svc.Calls())
	assert.Equal(t, 1, b.Calls())

	for _, off := range []int{1, 2, 7, 1} {
		_, err := m.DescribeCommunityImages(ctx, page(off))
		require.NoError(t, err)
	}
	assert.Equal(t, 3, b.Calls())

	_, err := m.DescribeCommunityImages(ctx, page(99))
	var be *BudgetError
	require.True(t, errors.As(err, &be), "%v", err)
	assert.Equal(t, codes.ActualCost, be.ErrorCode())
	assert.Equal(t, 3, be.ErrorExtensions()["limit"])
	assert.EqualValues(t, 3, svc.Calls(), "the refused call never reached the service")
	assert.Equal(t, 3, b.Calls())

	// An identical call already made is still answered.
	_, err = m.DescribeCommunityImages(ctx, page(2))
	assert.NoError(t, err)
}

// TestMeterWithoutBudget: calls without a Budget pass through uncounted.
func TestMeterWithoutBudget(t *testing.T) {
	t.Parallel()
	svc := &testkit.Upstream{Answer: offsetAnswer}
	m := Meter(svc)
	for range 3 {
		_, err := m.DescribeCommunityImages(context.Background(), page(1))
		require.NoError(t, err)
	}
	assert.EqualValues(t, 3, svc.Calls())
}

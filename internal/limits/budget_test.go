package limits

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/codes"
	"github.com/compshare/imagegraph/upstream"
)

// fakeService counts calls and answers after release is closed.
type fakeService struct {
	calls   atomic.Int64
	release chan struct{}
}

func (f *fakeService) DescribeCommunityImages(ctx context.Context, req *upstream.DescribeCommunityImagesRequest) (*upstream.DescribeCommunityImagesResponse, error) {
	f.calls.Add(1)
	if f.release != nil {
		<-f.release
	}
	return &upstream.DescribeCommunityImagesResponse{TotalCount: *req.Offset}, nil
}

func page(offset int) *upstream.DescribeCommunityImagesRequest {
	return &upstream.DescribeCommunityImagesRequest{Offset: upstream.Int(offset), Limit: upstream.Int(1)}
}

// TestMeterCountsDistinctCalls: identical calls of one operation are made
// once and counted once, even when made concurrently; a call past the budget
// fails with a *BudgetError and never reaches the service.
func TestMeterCountsDistinctCalls(t *testing.T) {
	t.Parallel()
	svc := &fakeService{release: make(chan struct{})}
	m := Meter(svc)
	b := NewBudget(3)
	ctx := WithBudget(context.Background(), b)

	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := m.DescribeCommunityImages(ctx, page(7))
			assert.NoError(t, err)
			assert.Equal(t, 7, resp.TotalCount)
		}()
	}
	for svc.calls.Load() == 0 {
		// Wait until the first of them is in flight.
	}
	close(svc.release)
	wg.Wait()
	assert.EqualValues(t, 1, svc.calls.Load())
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
	assert.EqualValues(t, 3, svc.calls.Load(), "the refused call never reached the service")
	assert.Equal(t, 3, b.Calls())

	// An identical call already made is still answered.
	_, err = m.DescribeCommunityImages(ctx, page(2))
	assert.NoError(t, err)
}

// TestMeterWithoutBudget: calls without a Budget pass through uncounted.
func TestMeterWithoutBudget(t *testing.T) {
	t.Parallel()
	svc := &fakeService{}
	m := Meter(svc)
	for range 3 {
		_, err := m.DescribeCommunityImages(context.Background(), page(1))
		require.NoError(t, err)
	}
	assert.EqualValues(t, 3, svc.calls.Load())
}

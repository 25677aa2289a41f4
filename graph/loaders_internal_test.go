package graph

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/graph/model"
	"github.com/compshare/imagegraph/internal/testkit"
	"github.com/compshare/imagegraph/upstream"
)

// held is a fake upstream that holds every call until released, then
// answers an empty page with a TotalCount of 7, or panics with "boom".
func held(panics bool) (*testkit.Upstream, <-chan struct{}) {
	up := &testkit.Upstream{Answer: func(context.Context, *upstream.DescribeCommunityImagesRequest) (*upstream.DescribeCommunityImagesResponse, error) {
		if panics {
			panic("boom")
		}
		return &upstream.DescribeCommunityImagesResponse{TotalCount: 7}, nil
	}}
	return up, up.Hold()
}

// TestLoneLoadsShareOneCall: a load made alone goes out at once, and
// identical loads made while it is in flight, alone or together with
// another key (Pages), wait for it in the loader's cache: one upstream
// call, one answer for all. It runs in a synctest bubble, so that
// synctest.Wait can tell when every load is blocked.
func TestLoneLoadsShareOneCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		svc, started := held(false)
		l := NewLoaders(svc, LoaderOptions{})
		ctx := context.Background()
		q := PageKey{Limit: 20}
		var wg sync.WaitGroup
		results := make([]*Page, 4)
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := l.Page(ctx, q)
			assert.NoError(t, err)
			results[0] = p
		}()
		testkit.Await(t, started, "call of the first load")
		for i := 1; i < 3; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, err := l.Page(ctx, q)
				assert.NoError(t, err)
				results[i] = p
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ps, err := l.Pages(ctx, []PageKey{q, {Limit: 20, Offset: 20}})
			assert.NoError(t, err)
			results[3] = ps[0]
		}()
		testkit.Await(t, started, "call for the batch's other page")
		synctest.Wait() // every load is blocked: the loads of q wait for the first
		assert.Equal(t, int64(2), svc.Calls(), "no second call for q while the first is in flight")
		svc.Release()
		wg.Wait()
		assert.Equal(t, int64(2), svc.Calls(), "one call for q, one for the other page")
		for _, p := range results {
			require.NotNil(t, p)
			assert.Same(t, results[0], p)
		}
	})
}

// TestLoneLoadPanicIsItsError: a panic in a load made alone is an internal
// error for its caller and for every load waiting for it.
func TestLoneLoadPanicIsItsError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		svc, started := held(true)
		l := NewLoaders(svc, LoaderOptions{})
		ctx := context.Background()
		errs := make(chan error, 2)
		go func() { _, err := l.Group(ctx, "g1"); errs <- err }()
		testkit.Await(t, started, "call of the first load")
		go func() { _, err := l.Group(ctx, "g1"); errs <- err }()
		synctest.Wait() // the second load waits for the first
		svc.Release()
		for range 2 {
			var intl *internalError
			assert.True(t, errors.As(<-errs, &intl))
		}
		assert.Equal(t, int64(1), svc.Calls())
	})
}

// TestBatchesGoOutAtOnce: the loads a resolver starts together
// (GroupThunks, VersionThunks, the entity resolvers) are flushed by hand; none waits for the loader's backstop timer. The backstop is an
// hour here: a batch left waiting fails the test (it once held every
// _entities request for a second).
func TestBatchesGoOutAtOnce(t *testing.T) {
	t.Parallel()
	svc := &testkit.Upstream{}
	l := NewLoaders(svc, LoaderOptions{backstop: time.Hour})
	ctx := WithLoaders(context.Background(), l)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, th := range l.GroupThunks(ctx, []string{"g1", "g2"}) {
			_, _ = th()
		}
		for _, th := range l.VersionThunks(ctx, []string{"v1", "v2"}) {
			_, _ = th()
		}
		g, v := "g3", "v3"
		_, _ = (&entityResolver{}).FindImageGroup(ctx, []*model.ImageGroupRepresentation{{GroupID: &g, MatchedKey: model.ImageGroupMatchedKeyGroupID}})
		_, _ = (&entityResolver{}).FindImageVersion(ctx, []*model.ImageVersionRepresentation{{ImageID: &v, MatchedKey: model.ImageVersionMatchedKeyImageID}})
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("a batch waited for the backstop")
	}
	assert.EqualValues(t, 6, svc.Calls())
}

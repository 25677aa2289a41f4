package graph

import (
	"context"
	"errors"
	"sync"
	"testing"
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

// watchClaim makes the thunk c holds for key, a load's claim, report on the
// returned channel each time a load calls it: that load found the claim and
// waits for it. The load that claimed key resolves it without calling it.
func watchClaim[K comparable, V any](t *testing.T, c *claimCache[K, V], key K) <-chan struct{} {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	th, ok := c.m[key]
	require.True(t, ok, "%v is claimed", key)
	waiting := make(chan struct{}, 16)
	c.m[key] = func() (V, error) {
		waiting <- struct{}{}
		return th()
	}
	return waiting
}

// TestLoneLoadsShareOneCall: a lone load runs on its caller, and identical
// loads made while it is in flight, alone or through the loader's batch,
// wait for it: one upstream call, one answer for all.
func TestLoneLoadsShareOneCall(t *testing.T) {
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
	waiting := watchClaim(t, l.pageCache, q)
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
	for range 3 { // the two lone loads and the batch's load of q
		testkit.Await(t, waiting, "load of q waiting for the first")
	}
	testkit.Await(t, started, "call for the batch's other page")
	svc.Release()
	wg.Wait()
	assert.Equal(t, int64(2), svc.Calls(), "one call for q, one for the other page")
	for _, p := range results {
		require.NotNil(t, p)
		assert.Same(t, results[0], p)
	}
}

// TestLoneLoadPanicIsItsError: a panic in a lone load is an internal error
// for its caller and for every load waiting for it.
func TestLoneLoadPanicIsItsError(t *testing.T) {
	svc, started := held(true)
	l := NewLoaders(svc, LoaderOptions{})
	ctx := context.Background()
	errs := make(chan error, 2)
	go func() { _, err := l.Group(ctx, "g1"); errs <- err }()
	testkit.Await(t, started, "call of the first load")
	waiting := watchClaim(t, l.groupCache, "g1")
	go func() { _, err := l.Group(ctx, "g1"); errs <- err }()
	testkit.Await(t, waiting, "second load waiting for the first")
	svc.Release()
	for range 2 {
		var intl *internalError
		assert.True(t, errors.As(<-errs, &intl))
	}
	assert.Equal(t, int64(1), svc.Calls())
}

// TestClaimCache: a primed or claimed key is not claimed again, and Set
// does not replace a claim's future.
func TestClaimCache(t *testing.T) {
	c := newClaimCache[string, int]()
	ctx := context.Background()
	th, resolve := c.claim("a")
	require.NotNil(t, resolve)
	c.Set(ctx, "a", func() (int, error) { return 99, nil })
	again, none := c.claim("a")
	assert.Nil(t, none)
	resolve(1, nil)
	v, err := again()
	require.NoError(t, err)
	assert.Equal(t, 1, v)
	v, _ = th()
	assert.Equal(t, 1, v)

	c.Set(ctx, "b", func() (int, error) { return 2, nil })
	got, none := c.claim("b")
	assert.Nil(t, none)
	v, _ = got()
	assert.Equal(t, 2, v)
	assert.True(t, c.Delete(ctx, "b"))
	_, resolve = c.claim("b")
	assert.NotNil(t, resolve, "a deleted key is claimed afresh")
	resolve(0, nil)
}

// TestBatchesGoOutAtOnce: with no batch window, the loads a resolver starts
// together (GroupThunks, VersionThunks, the entity resolvers) are flushed
// by hand; none waits for the loader's backstop timer. The backstop is an
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

package cache

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/upstream"
)

// TestStatsCountEachAnswer: each read is counted once, by how it was
// answered and by the tier its entry came from; the upstream calls are
// told why they are made.
func TestStatsCountEachAnswer(t *testing.T) {
	t.Parallel()
	clk := NewClock()
	up := catalogueUpstream(catalogue(3))
	var mu sync.Mutex
	var reasons []string
	up.OnCall = func(ctx context.Context, _ *upstream.DescribeCommunityImagesRequest) {
		mu.Lock()
		defer mu.Unlock()
		reasons = append(reasons, Reason(ctx))
	}
	c := newCache(t, up, clk, testOptions)

	for range 3 { // a miss, then two fresh hits
		_, _, err := get(t, c, page(0, 3))
		require.NoError(t, err)
	}
	clk.Advance(40 * time.Second) // stale, within stale-while-revalidate
	_, _, err := get(t, c, page(0, 3))
	require.NoError(t, err)
	settle(c) // the background refresh, stored
	clk.Advance(31 * time.Second)
	up.Fail(&upstream.APIError{Kind: upstream.KindNetwork, Message: "down"})
	clk.Advance(time.Minute) // past stale-while-revalidate: stale-if-error
	_, r, err := get(t, c, page(0, 3))
	require.NoError(t, err)
	assert.Error(t, r.StaleError)

	st := c.Stats()
	assert.EqualValues(t, 5, st.Requests)
	assert.EqualValues(t, [tiers]int64{2, 0}, st.Hits)
	assert.EqualValues(t, [tiers]int64{1, 0}, st.StaleHits)
	assert.EqualValues(t, [tiers]int64{1, 0}, st.StaleErrors)
	assert.EqualValues(t, 2, st.Misses, "the first read and the failed one called")
	assert.EqualValues(t, 2, st.MemoryMisses, "the first read and the failed one: a stale entry within stale-while-revalidate answers")
	assert.Zero(t, st.SharedMisses, "no shared tier")
	assert.EqualValues(t, 1, st.Refreshes)
	assert.Equal(t, uint64(DefaultMaxBytes), st.MaxBytes)
	mu.Lock()
	assert.Equal(t, []string{ReasonMiss, ReasonRefresh, ReasonMiss}, reasons)
	mu.Unlock()
	assert.Empty(t, Reason(context.Background()))
}

// TestStatsByTier: an entry another replica put in the shared tier counts
// as the shared tier's hit; one neither has counts as a miss of both.
func TestStatsByTier(t *testing.T) {
	t.Parallel()
	tier := newMemTier()
	clk := NewClock()
	a := newCache(t, catalogueUpstream(catalogue(3)), clk, Options{TTL: time.Minute, MaxBytes: DefaultMaxBytes, Tier: tier})
	b := newCache(t, catalogueUpstream(catalogue(3)), clk, Options{TTL: time.Minute, MaxBytes: DefaultMaxBytes, Tier: tier})
	_, _, err := get(t, a, page(0, 3))
	require.NoError(t, err)
	settle(a) // the page is written to the tier in the background
	require.True(t, tier.has(page(0, 3).CanonicalKey("")))

	_, _, err = get(t, b, page(0, 3)) // from the shared tier
	require.NoError(t, err)
	_, _, err = get(t, b, page(0, 3)) // now in b's memory
	require.NoError(t, err)
	st := b.Stats()
	assert.EqualValues(t, [tiers]int64{1, 1}, st.Hits)
	assert.EqualValues(t, 1, st.MemoryMisses)
	assert.Zero(t, st.SharedMisses)
	assert.Zero(t, st.Misses)

	st = a.Stats()
	assert.EqualValues(t, 1, st.MemoryMisses)
	assert.EqualValues(t, 1, st.SharedMisses)
	assert.EqualValues(t, 1, st.Misses)
	assert.Equal(t, [tiers]string{"memory", "shared"}, TierNames)
}

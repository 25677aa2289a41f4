package cache

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/testkit"
	"github.com/compshare/imagegraph/upstream"
)

// catalogueUpstream is a fake upstream that answers from a catalogue of
// groups: a page of them, or the group or version a lookup names.
func catalogueUpstream(groups []upstream.ImageGroup) *testkit.Upstream {
	return &testkit.Upstream{Answer: func(_ context.Context, req *upstream.DescribeCommunityImagesRequest) (*upstream.DescribeCommunityImagesResponse, error) {
		var match []upstream.ImageGroup
		for _, g := range groups {
			if req.GroupId != "" && g.GroupId != req.GroupId {
				continue
			}
			if req.CompShareImageId != "" {
				var hit []upstream.Image
				for _, v := range g.Data {
					if v.CompShareImageId == req.CompShareImageId {
						hit = append(hit, v)
					}
				}
				if hit == nil {
					continue
				}
				g.Data = hit
			}
			match = append(match, g)
		}
		off, lim := 0, 20
		if req.Offset != nil {
			off = *req.Offset
		}
		if req.Limit != nil {
			lim = *req.Limit
		}
		total := len(match)
		match = match[min(off, total):min(off+lim, total)]
		return &upstream.DescribeCommunityImagesResponse{Action: "DescribeCommunityImagesResponse", TotalCount: total, CompshareImageGroup: match}, nil
	}}
}

// settle waits for the background work c has started (refreshes, writes to
// the tier) to end: a refresh has then stored what it fetched.
func settle(c *Cache) { c.wg.Wait() }

func catalogue(n int) []upstream.ImageGroup {
	out := make([]upstream.ImageGroup, n)
	for i := range out {
		out[i] = upstream.ImageGroup{GroupId: fmt.Sprintf("group-%03d", i), ImageName: fmt.Sprintf("image %d", i), Status: "Available",
			Data: []upstream.Image{
				{CompShareImageId: fmt.Sprintf("img-%03d-a", i), Name: "a", Tags: []string{"AIGC"}, Readme: strings.Repeat("r", 200)},
				{CompShareImageId: fmt.Sprintf("img-%03d-b", i), Name: "b", SoftwarePorts: []upstream.SoftwarePort{{Software: "Jupyter", Port: 8888}}},
			}}
	}
	return out
}

var testOptions = Options{TTL: 30 * time.Second, StaleWhileRevalidate: time.Minute, StaleIfError: 15 * time.Minute, MaxBytes: DefaultMaxBytes}

func newCache(t *testing.T, up upstream.Service, clk *Clock, opts Options) *Cache {
	t.Helper()
	opts.Now = clk.Now
	c := New(up, opts)
	t.Cleanup(c.Close)
	return c
}

func page(offset, limit int) *upstream.DescribeCommunityImagesRequest {
	return &upstream.DescribeCommunityImagesRequest{Offset: upstream.Int(offset), Limit: upstream.Int(limit)}
}

// get reads req with a fresh Usage and returns the answer and the report.
func get(t *testing.T, c *Cache, req *upstream.DescribeCommunityImagesRequest) (*upstream.DescribeCommunityImagesResponse, upstream.UsageReport, error) {
	t.Helper()
	u := &upstream.Usage{}
	resp, err := c.DescribeCommunityImages(upstream.WithUsage(context.Background(), u), req)
	return resp, u.Report(), err
}

// TestFreshness walks one entry through RFC 5861's windows: fresh for TTL
// (no call, the remaining freshness reported), then stale-while-revalidate
// (answered at once, one background call refreshes it however many read
// it meanwhile), then fresh again.
func TestFreshness(t *testing.T) {
	t.Parallel()
	up := catalogueUpstream(catalogue(30))
	clk := NewClock()
	c := newCache(t, up, clk, testOptions)

	first, r, err := get(t, c, page(0, 10))
	require.NoError(t, err)
	assert.Equal(t, 30*time.Second, r.FreshFor)
	assert.EqualValues(t, 1, up.Calls())

	clk.Advance(10 * time.Second)
	again, r, err := get(t, c, page(0, 10))
	require.NoError(t, err)
	assert.EqualValues(t, 1, up.Calls(), "a fresh entry answers")
	assert.Equal(t, 1, r.CacheHits)
	assert.True(t, r.Fresh)
	assert.Equal(t, 20*time.Second, r.FreshFor)
	assert.Equal(t, first.CompshareImageGroup[3].GroupId, again.CompshareImageGroup[3].GroupId)

	// Stale, within stale-while-revalidate: answered at once; the refresh
	// waits on the upstream until the test lets it answer.
	started := up.Hold()
	clk.Advance(25 * time.Second)
	for range 5 {
		_, r, err = get(t, c, page(0, 10))
		require.NoError(t, err)
		assert.True(t, r.Stale)
		assert.Nil(t, r.StaleError, "revalidating is not an error")
	}
	testkit.Await(t, started, "background refresh")
	assert.EqualValues(t, 2, up.Calls(), "one background call, however many read the stale entry")
	up.Release()
	settle(c)
	_, r, err = get(t, c, page(0, 10))
	require.NoError(t, err)
	assert.True(t, r.Fresh && !r.Stale, "the refreshed entry is fresh again")
	assert.EqualValues(t, 2, up.Calls())
}

// TestStaleIfError: past stale-while-revalidate a read calls the upstream;
// when that fails with an upstream fault, the entry answers within
// stale-if-error, saying how old it is and what it replaced; a refusal of
// the request itself is not masked; past stale-if-error the failure stands.
func TestStaleIfError(t *testing.T) {
	t.Parallel()
	up := catalogueUpstream(catalogue(5))
	clk := NewClock()
	c := newCache(t, up, clk, testOptions)
	_, _, err := get(t, c, page(0, 5))
	require.NoError(t, err)

	outage := &upstream.APIError{Kind: upstream.KindHTTP, HTTPStatus: 503, Retryable: true}
	up.Fail(outage)
	clk.Advance(5 * time.Minute)
	resp, r, err := get(t, c, page(0, 5))
	require.NoError(t, err)
	assert.Len(t, resp.CompshareImageGroup, 5)
	assert.True(t, r.Stale)
	assert.Same(t, outage, r.StaleError)
	assert.Equal(t, 5*time.Minute, r.StaleAge)
	assert.EqualValues(t, 2, up.Calls(), "the upstream was asked first")

	up.Fail(&upstream.APIError{Kind: upstream.KindRetCode, RetCode: upstream.RetCodeParamUnavailable})
	_, _, err = get(t, c, page(0, 5))
	assert.Error(t, err, "a refusal of the request is not an outage")

	up.Fail(outage)
	_, _, err = get(t, c, page(5, 5))
	assert.Error(t, err, "nothing cached: the failure stands")

	clk.Advance(15 * time.Minute)
	_, _, err = get(t, c, page(0, 5))
	assert.Error(t, err, "past stale-if-error the failure stands")
}

// TestPriming: a complete page answers the later lookups of its groups by
// GroupId and of its versions by CompShareImageId, with no call; a
// version-filtered page does not (its groups may be trimmed); a lookup that
// finds nothing is kept for TTL only.
func TestPriming(t *testing.T) {
	t.Parallel()
	up := catalogueUpstream(catalogue(10))
	clk := NewClock()
	c := newCache(t, up, clk, testOptions)
	_, _, err := get(t, c, page(0, 10))
	require.NoError(t, err)
	for i := range 10 {
		g := fmt.Sprintf("group-%03d", i)
		resp, r, err := get(t, c, &upstream.DescribeCommunityImagesRequest{GroupId: g, Offset: upstream.Int(0), Limit: upstream.Int(1)})
		require.NoError(t, err)
		require.Len(t, resp.CompshareImageGroup, 1)
		assert.Equal(t, g, resp.CompshareImageGroup[0].GroupId)
		assert.Len(t, resp.CompshareImageGroup[0].Data, 2, "every version")
		assert.Equal(t, 1, r.CacheHits)
		for _, v := range []string{"a", "b"} {
			id := fmt.Sprintf("img-%03d-%s", i, v)
			resp, _, err := get(t, c, &upstream.DescribeCommunityImagesRequest{CompShareImageId: id, Limit: upstream.Int(1)})
			require.NoError(t, err)
			require.Len(t, resp.CompshareImageGroup, 1)
			assert.Equal(t, g, resp.CompshareImageGroup[0].GroupId)
			require.Len(t, resp.CompshareImageGroup[0].Data, 1)
			assert.Equal(t, id, resp.CompshareImageGroup[0].Data[0].CompShareImageId)
		}
	}
	assert.EqualValues(t, 1, up.Calls(), "a list, then every detail: one call")

	up2 := catalogueUpstream(catalogue(10))
	c2 := newCache(t, up2, NewClock(), testOptions)
	_, _, err = get(t, c2, &upstream.DescribeCommunityImagesRequest{Tag: []string{"AIGC"}, Limit: upstream.Int(10)})
	require.NoError(t, err)
	_, _, err = get(t, c2, &upstream.DescribeCommunityImagesRequest{GroupId: "group-001", Limit: upstream.Int(1)})
	require.NoError(t, err)
	assert.EqualValues(t, 2, up2.Calls(), "a filtered page does not prime")

	missing := &upstream.DescribeCommunityImagesRequest{GroupId: "group-nope", Limit: upstream.Int(1)}
	for range 3 {
		resp, _, err := get(t, c, missing)
		require.NoError(t, err)
		assert.Empty(t, resp.CompshareImageGroup)
	}
	assert.EqualValues(t, 2, up.Calls(), "a lookup that found nothing is kept")
	clk.Advance(31 * time.Second)
	up.Fail(&upstream.APIError{Kind: upstream.KindNetwork})
	_, _, err = get(t, c, missing)
	assert.Error(t, err, "and never answered stale")
}

// TestByteBound: a flood of distinct pages keeps the cache within
// MaxBytes, by weight, not by entry count.
func TestByteBound(t *testing.T) {
	t.Parallel()
	up := catalogueUpstream(catalogue(400))
	const bound = 256 << 10
	c := newCache(t, up, NewClock(), Options{TTL: time.Minute, MaxBytes: bound})
	for off := range 400 {
		for _, lim := range []int{1, 5, 20} {
			_, _, err := get(t, c, page(off, lim))
			require.NoError(t, err)
		}
	}
	c.store.CleanUp()
	st := c.Stats()
	assert.LessOrEqual(t, st.Bytes, uint64(bound))
	assert.Greater(t, st.Bytes, uint64(bound/2), "the cache is used")
	assert.Greater(t, st.Entries, 100)
}

// TestWeighIsAnUpperBound: an entry's weight is at least what its copy
// really holds on the heap, and not wildly more.
func TestWeighIsAnUpperBound(t *testing.T) {
	up := catalogueUpstream(catalogue(20))
	resp, err := up.DescribeCommunityImages(context.Background(), page(0, 20))
	require.NoError(t, err)
	const n = 200
	kept := make([]*upstream.DescribeCommunityImagesResponse, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range kept {
		kept[i] = cloneResponse(resp)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	real := float64(after.HeapAlloc-before.HeapAlloc) / n
	weight := float64(weigh(kept[0]) + keyOverhead)
	t.Logf("weight %.0f, heap %.0f bytes an entry", weight, real)
	assert.GreaterOrEqual(t, weight, real, "weight %.0f, heap %.0f bytes an entry", weight, real)
	assert.Less(t, weight, 3*real, "weight %.0f, heap %.0f bytes an entry", weight, real)
	runtime.KeepAlive(kept)
}

// TestZeroOptionsTakeDefaults: New takes the options the settings checked;
// a zero TTL or bound takes its default, and a negative stale window is
// none.
func TestZeroOptionsTakeDefaults(t *testing.T) {
	t.Parallel()
	c := New(&testkit.Upstream{}, Options{StaleIfError: -1})
	defer c.Close()
	assert.Equal(t, DefaultTTL, c.opts.TTL)
	assert.Equal(t, int64(DefaultMaxBytes), c.opts.MaxBytes)
	assert.Zero(t, c.opts.StaleIfError)
}

// memTier is a Tier in memory that two caches share, as replicas share
// Redis.
type memTier struct {
	mu      sync.Mutex
	m       map[string][]byte
	locks   map[string]bool
	refused bool
}

func newMemTier() *memTier { return &memTier{m: map[string][]byte{}, locks: map[string]bool{}} }

func (t *memTier) Get(_ context.Context, keys ...string) [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = t.m[k]
	}
	return out
}

func (t *memTier) Set(_ context.Context, entries []TierEntry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range entries {
		t.m[e.Key] = e.Value
	}
}

func (t *memTier) Lock(_ context.Context, key string, _ time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.refused || t.locks[key] {
		return false
	}
	t.locks[key] = true
	return true
}

func (t *memTier) has(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[key] != nil
}

// TestTierSharesAcrossCaches: what one cache fetched, another reads from
// the tier with its fetch time (so its freshness carries over), primed
// lookups included; a stale entry another replica is refreshing (it holds
// the lease) is not refreshed twice.
func TestTierSharesAcrossCaches(t *testing.T) {
	t.Parallel()
	tier := newMemTier()
	clk := NewClock()
	upA, upB := catalogueUpstream(catalogue(5)), catalogueUpstream(catalogue(5))
	opts := testOptions
	opts.Tier = tier
	a, b := newCache(t, upA, clk, opts), newCache(t, upB, clk, opts)

	_, _, err := get(t, a, page(0, 5))
	require.NoError(t, err)
	key := page(0, 5).CanonicalKey("")
	settle(a) // the page and its lookups are written to the tier in the background
	require.True(t, tier.has(key) && tier.has(groupKey("", "group-004")))

	clk.Advance(10 * time.Second)
	resp, r, err := get(t, b, page(0, 5))
	require.NoError(t, err)
	assert.Len(t, resp.CompshareImageGroup, 5)
	assert.Equal(t, 20*time.Second, r.FreshFor, "the fetch time travels with the entry")
	assert.Zero(t, upB.Calls())
	resp, _, err = get(t, b, &upstream.DescribeCommunityImagesRequest{CompShareImageId: "img-003-b", Limit: upstream.Int(1)})
	require.NoError(t, err)
	assert.Equal(t, "group-003", resp.CompshareImageGroup[0].GroupId)
	assert.Equal(t, 8888, resp.CompshareImageGroup[0].Data[0].SoftwarePorts[0].Port)
	assert.Zero(t, upB.Calls(), "primed lookups are shared too")

	// Stale for both; another replica holds the refresh lease.
	tier.mu.Lock()
	tier.refused = true
	tier.mu.Unlock()
	clk.Advance(30 * time.Second)
	_, r, err = get(t, b, page(0, 5))
	require.NoError(t, err)
	assert.True(t, r.Stale)
	b.Close() // waits for the background refresh attempt
	assert.Zero(t, upB.Calls(), "the replica without the lease does not refresh")
}

// TestEntryEncoding: an entry survives the tier's encoding whole.
func TestEntryEncoding(t *testing.T) {
	t.Parallel()
	up := catalogueUpstream(catalogue(3))
	resp, err := up.DescribeCommunityImages(context.Background(), page(0, 3))
	require.NoError(t, err)
	in := &entry{resp: cloneResponse(resp), fetched: time.Unix(1700000000, 123), negative: true}
	raw, err := encodeEntry(in)
	require.NoError(t, err)
	out, err := decodeEntry(raw)
	require.NoError(t, err)
	assert.True(t, out.fetched.Equal(in.fetched))
	assert.True(t, out.negative)
	assert.Equal(t, in.resp.CompshareImageGroup, out.resp.CompshareImageGroup)
	_, err = decodeEntry([]byte("nonsense"))
	assert.Error(t, err)
}

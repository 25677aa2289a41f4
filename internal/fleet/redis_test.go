package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/access"
	"github.com/compshare/imagegraph/internal/cache"
	"github.com/compshare/imagegraph/internal/persisted"
	"github.com/compshare/imagegraph/internal/testkit"
	"github.com/compshare/imagegraph/upstream"
)

// redisServer is a real redis-server (Debian's) the test starts on a free
// loopback port, and can stop and start again on that port.
type redisServer struct {
	t    *testing.T
	bin  string
	port int
	proc *testkit.Process
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	bin := testkit.RequireTool(t, testkit.FleetDeps, "redis-server")[0]
	s := &redisServer{t: t, bin: bin, port: testkit.FreePort(t)}
	s.start()
	return s
}

func (s *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	s.proc = testkit.Start(s.t, "redis-server", exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "no"))
	s.proc.WaitListening(s.t, s.port)
}

func (s *redisServer) stop() { s.proc.Kill(s.t) }

func connect(t *testing.T, url string, sink *testkit.LogBuffer) *Redis {
	t.Helper()
	var log *slog.Logger
	if sink != nil {
		log = slog.New(slog.NewTextHandler(sink, nil))
	}
	r, err := Connect(url, log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// pageUpstream is a fake upstream that answers every call with the same
// page.
func pageUpstream() *testkit.Upstream {
	return &testkit.Upstream{Answer: func(context.Context, *upstream.DescribeCommunityImagesRequest) (*upstream.DescribeCommunityImagesResponse, error) {
		return &upstream.DescribeCommunityImagesResponse{TotalCount: 2, CompshareImageGroup: []upstream.ImageGroup{
			{GroupId: "g1", ImageName: "一", Status: "Available", Data: []upstream.Image{{CompShareImageId: "v1", Name: "v1", Tags: []string{"AIGC"}}}},
			{GroupId: "g2", ImageName: "二", Data: []upstream.Image{{CompShareImageId: "v2", SoftwarePorts: []upstream.SoftwarePort{{Software: "Jupyter", Port: 8888}}}}},
		}}, nil
	}}
}

func newReplicaCache(t *testing.T, r *Redis, up upstream.Service) *cache.Cache {
	t.Helper()
	c := cache.New(up, cache.Options{TTL: time.Minute, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour,
		MaxBytes: cache.DefaultMaxBytes, Tier: r.CacheTier()})
	t.Cleanup(c.Close)
	return c
}

// TestCacheAcrossReplicas: a page one replica fetched is answered by
// another from Redis, without a call; so are the lookups it primed.
func TestCacheAcrossReplicas(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	upA, upB := pageUpstream(), pageUpstream()
	rb := connect(t, srv.url(), nil)
	a := newReplicaCache(t, connect(t, srv.url(), nil), upA)
	b := newReplicaCache(t, rb, upB)
	page := &upstream.DescribeCommunityImagesRequest{Offset: upstream.Int(0), Limit: upstream.Int(2)}
	_, err := a.DescribeCommunityImages(context.Background(), page)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return rb.CacheTier().Get(context.Background(), page.CanonicalKey(""))[0] != nil
	}, 5*time.Second, 10*time.Millisecond, "the first replica writes the page to Redis (in the background)")
	resp, err := b.DescribeCommunityImages(context.Background(), page)
	require.NoError(t, err)
	assert.Len(t, resp.CompshareImageGroup, 2)
	assert.Zero(t, upB.Calls(), "the other replica reads the page from Redis")
	resp, err = b.DescribeCommunityImages(context.Background(), &upstream.DescribeCommunityImagesRequest{CompShareImageId: "v2", Limit: upstream.Int(1)})
	require.NoError(t, err)
	assert.Equal(t, "g2", resp.CompshareImageGroup[0].GroupId)
	assert.Equal(t, 8888, resp.CompshareImageGroup[0].Data[0].SoftwarePorts[0].Port, "decoded whole")
	assert.Equal(t, "二", resp.CompshareImageGroup[0].ImageName)
	assert.Zero(t, upB.Calls())
	assert.EqualValues(t, 1, upA.Calls())
	assert.Positive(t, b.Stats().TierHits)
}

// TestQuotaAcrossReplicas: three replicas drawing from one budget together
// make no more calls than the budget allows in the time they took.
func TestQuotaAcrossReplicas(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	const qps, burst = 50.0, 10
	var allowed atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range 3 {
		q := connect(t, srv.url(), nil).Quota(qps, burst)
		for range 4 {
			wg.Go(func() {
				for q.Wait(ctx) == nil {
					allowed.Add(1)
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	assert.LessOrEqual(t, float64(allowed.Load()), burst+qps*elapsed+1, "%d calls in %.2fs", allowed.Load(), elapsed)
	assert.Greater(t, float64(allowed.Load()), qps*0.5, "the budget is used")
}

// TestRedisOutage: when Redis goes away the replica notices once, carries
// on alone (the quota falls back to this replica's share at once), and
// picks Redis up by itself when it is back, which it also says once.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	sink := &testkit.LogBuffer{}
	r := connect(t, srv.url(), sink)
	q := r.Quota(1000, 100)
	store := persisted.NewMemoryStore(1 << 20)
	apq := r.APQStore(store, time.Hour)
	require.NoError(t, q.Wait(context.Background()))
	require.True(t, r.Up())
	assert.Equal(t, Stats{Up: true, Replicas: 1}, r.Stats())

	srv.stop()
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		assert.NoError(t, q.Wait(ctx), "the fallback budget answers")
		cancel()
		apq.Add(context.Background(), "h", "{ __typename }")
	}
	assert.False(t, r.Up())
	st := r.Stats()
	assert.False(t, st.Up)
	assert.Positive(t, st.Errors, "the failed commands are counted")
	got, ok := apq.Get(context.Background(), "h")
	assert.True(t, ok, "the local store answers alone")
	assert.Equal(t, "{ __typename }", got)
	assert.Equal(t, 1, strings.Count(sink.String(), "redis unavailable"), "the change is logged once")

	srv.start()
	require.Eventually(t, r.Up, 10*time.Second, 20*time.Millisecond, "Redis is picked up again")
	assert.Equal(t, 1, strings.Count(sink.String(), "redis back"))
	require.NoError(t, q.Wait(context.Background()))
}

// TestRedisDownAtStart: a replica whose Redis does not answer starts
// anyway, alone.
func TestRedisDownAtStart(t *testing.T) {
	t.Parallel()
	sink := &testkit.LogBuffer{}
	r := connect(t, "redis://127.0.0.1:1/0", sink)
	assert.False(t, r.Up())
	assert.NoError(t, r.Quota(10, 5).Wait(context.Background()))
	assert.Equal(t, 1, strings.Count(sink.String(), "redis unavailable"))
}

// TestAPQAcrossReplicas: a hash registered through one replica is known to
// another.
func TestAPQAcrossReplicas(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	newStore := func() persisted.Store {
		local := persisted.NewMemoryStore(1 << 20)
		return connect(t, srv.url(), nil).APQStore(local, time.Hour)
	}
	a, b := newStore(), newStore()
	a.Add(context.Background(), "abc", "query Q { __typename }")
	got, ok := b.Get(context.Background(), "abc")
	assert.True(t, ok)
	assert.Equal(t, "query Q { __typename }", got)
	_, ok = b.Get(context.Background(), "nope")
	assert.False(t, ok)
}

// TestClientLimitsAcrossReplicas: a client spends one budget whichever
// replica it calls.
func TestClientLimitsAcrossReplicas(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	newLimiter := func() access.Limiter {
		local := access.NewLocalLimiter(1, 10)
		return connect(t, srv.url(), nil).ClientLimiter(1, 10, local)
	}
	a, b := newLimiter(), newLimiter()
	ok, _, err := a.Take(context.Background(), "key:frontend", 6)
	require.NoError(t, err)
	assert.True(t, ok)
	ok, retry, err := b.Take(context.Background(), "key:frontend", 6)
	require.NoError(t, err)
	assert.False(t, ok, "the other replica sees the spent points")
	assert.Greater(t, retry, time.Second)
	ok, _, _ = b.Take(context.Background(), "key:other", 6)
	assert.True(t, ok, "another client has its own bucket")
}

// TestRedactURL: the password never shows.
func TestRedactURL(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "redis://:****@cache:6379/0", RedactURL("redis://:s3cret@cache:6379/0"))
	assert.Equal(t, "rediss://app:****@cache/2", RedactURL("rediss://app:p%40ss@cache/2"))
	assert.Equal(t, "redis://cache:6379", RedactURL("redis://cache:6379"))
	assert.NotContains(t, RedactURL("redis://:s3cret@%zz"), "s3cret")
}

func TestConnectRefusesBadURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"http://cache:6379",
		"redis://user:s3cret-pass@cache:6379/notadb",
		"redis://user:s3cret-pass@cache:6379/0?dial_timeout=x",
		"redis://user:s3cret-pass@[::1:6379",
	} {
		_, err := Connect(u, nil)
		require.Error(t, err, u)
		assert.NotContains(t, err.Error(), "s3cret-pass", "the password stays out of the error")
		assert.NotContains(t, err.Error(), "%!", "the error is formatted: %v", err)
	}
}

// TestANilRedisIsAReplicaAlone: without REDIS_URL the server holds a nil
// *Redis, whose shared parts are the replica's own: no cache tier, no
// shared quota, the local APQ store and client limiter.
func TestANilRedisIsAReplicaAlone(t *testing.T) {
	t.Parallel()
	var r *Redis
	assert.Nil(t, r.CacheTier())
	assert.Nil(t, r.UpstreamQuota(20, 40))
	local := persisted.NewMemoryStore(1 << 20)
	assert.Same(t, local, r.APQStore(local, time.Hour))
	limiter := access.NewLocalLimiter(1, 10)
	assert.Same(t, limiter, r.ClientLimiter(1, 10, limiter))
}

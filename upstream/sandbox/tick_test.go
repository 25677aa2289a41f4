package sandbox

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox/internal/dataset"
)

// reviewing returns the ids of the versions under review, in stored order.
func reviewing(groups []upstream.ImageGroup) []string {
	var ids []string
	for _, g := range groups {
		for _, img := range g.Data {
			if img.Status == upstream.ImageStatusReviewing {
				ids = append(ids, img.CompShareImageId)
			}
		}
	}
	return ids
}

func TestTickScript(t *testing.T) {
	t.Parallel()
	s, err := New(withClock(testNow))
	require.NoError(t, err)
	before := s.Groups()
	ring := reviewing(before)
	first := slices.Index(ring, EdgeReviewingImageID)
	require.GreaterOrEqual(t, first, 0)
	ring = slices.Concat(ring[first:], ring[:first])
	n, h := len(ring), (len(ring)+1)/2
	require.GreaterOrEqual(t, n, 4, "the embedded dataset has a few versions under review")

	for k := range 2*n + 3 {
		res := s.Tick()
		want := TickResult{Published: ring[k%n], Group: before[k].GroupId, FavoritesCount: before[k].FavoritesCount + 1}
		if k >= h {
			want.SentBack = ring[(k-h)%n]
		}
		require.Equal(t, want, res, "tick %d", k)

		g, img := version(t, s, res.Published)
		assert.Equal(t, upstream.ImageStatusAvailable, img.Status, "tick %d", k)
		assert.Equal(t, testNow.Unix(), img.PubTime, "tick %d", k)
		assert.Equal(t, upstream.GroupStatusAvailable, g.Status, "tick %d", k)
		if res.SentBack != "" {
			_, img := version(t, s, res.SentBack)
			assert.Equal(t, upstream.ImageStatusReviewing, img.Status, "tick %d", k)
			assert.Zero(t, img.PubTime, "tick %d", k)
		}
		fav := describe(t, s, upstream.DescribeCommunityImagesRequest{GroupId: res.Group}).CompshareImageGroup[0].FavoritesCount
		assert.Equal(t, res.FavoritesCount, fav, "tick %d", k)
		assert.Len(t, reviewing(s.Groups()), n-min(k+1, h), "tick %d: half the ring stays under review", k)
	}
	assert.Equal(t, upstream.GroupStatusUnAvailable, findGroup(t, before, EdgeUnavailableGroupID).Status)
}

// handGroup is a group of versions id-0, id-1, … in the statuses given.
func handGroup(id string, statuses ...string) upstream.ImageGroup {
	g := upstream.ImageGroup{GroupId: id, ImageName: id, FavoritesCount: 10}
	for i, st := range statuses {
		img := upstream.Image{CompShareImageId: fmt.Sprintf("%s-%d", id, i), Name: id, Status: st, CreateTime: dataset.MinTime, UpdateTime: dataset.MinTime}
		if st != upstream.ImageStatusReviewing {
			img.PubTime = dataset.MinTime
		}
		g.Data = append(g.Data, img)
	}
	g.Status = groupStatus(g.Data)
	return g
}

func TestTickSmallRings(t *testing.T) {
	t.Parallel()
	t.Run("one version under review", func(t *testing.T) {
		t.Parallel()
		s, err := New(WithGroups([]upstream.ImageGroup{
			handGroup("a", upstream.ImageStatusAvailable, upstream.ImageStatusOffline),
			handGroup("b", upstream.ImageStatusReviewing),
		}))
		require.NoError(t, err)
		assert.Equal(t, TickResult{Published: "b-0", Group: "a", FavoritesCount: 11}, s.Tick())
		assert.Equal(t, TickResult{SentBack: "b-0", Group: "b", FavoritesCount: 11}, s.Tick())
		assert.Equal(t, TickResult{Published: "b-0", Group: "a", FavoritesCount: 12}, s.Tick())
		assert.Equal(t, upstream.GroupStatusAvailable, findGroup(t, s.Groups(), "b").Status)
	})
	t.Run("none under review", func(t *testing.T) {
		t.Parallel()
		s, err := New(WithGroups([]upstream.ImageGroup{handGroup("a", upstream.ImageStatusAvailable)}))
		require.NoError(t, err)
		assert.Equal(t, TickResult{Group: "a", FavoritesCount: 11}, s.Tick())
		assert.Equal(t, TickResult{Group: "a", FavoritesCount: 12}, s.Tick())
	})
	t.Run("a version moved away sits its turn out", func(t *testing.T) {
		t.Parallel()
		s, err := New(WithGroups([]upstream.ImageGroup{handGroup("a", upstream.ImageStatusReviewing, upstream.ImageStatusReviewing)}))
		require.NoError(t, err)
		assert.Equal(t, TickResult{Published: "a-0", Group: "a", FavoritesCount: 11}, s.Tick())
		_, err = s.UpdateVersion("a-1", VersionChange{Status: ptr(upstream.ImageStatusOffline)})
		require.NoError(t, err)
		assert.Equal(t, TickResult{SentBack: "a-0", Group: "a", FavoritesCount: 12}, s.Tick(), "a-1 is Offline: not published")
		assert.Equal(t, TickResult{Published: "a-0", Group: "a", FavoritesCount: 13}, s.Tick(), "a-1 is Offline: not sent back")
		_, img := version(t, s, "a-1")
		assert.Equal(t, upstream.ImageStatusOffline, img.Status)
	})
	t.Run("no groups", func(t *testing.T) {
		t.Parallel()
		s, err := New(WithGroups(nil))
		require.NoError(t, err)
		assert.Equal(t, TickResult{}, s.Tick())
	})
}

// TestStartTicking waits, in real time, for a short interval's ticks to
// show through Describe.
func TestStartTicking(t *testing.T) {
	t.Parallel()
	s, err := New()
	require.NoError(t, err)
	_, v0 := version(t, s, EdgeReviewingImageID)
	g0 := s.Groups()[0]
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s.StartTicking(ctx, 10*time.Millisecond)

	// UpdateTime and FavoritesCount only grow, so no tick is missed by
	// polling: the first tick publishes EdgeReviewingImageID and raises
	// the first group's favourites.
	require.Eventually(t, func() bool {
		_, img := version(t, s, EdgeReviewingImageID)
		return img.UpdateTime > v0.UpdateTime
	}, 10*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool {
		g := describe(t, s, upstream.DescribeCommunityImagesRequest{GroupId: g0.GroupId}).CompshareImageGroup[0]
		return g.FavoritesCount > g0.FavoritesCount
	}, 10*time.Second, 5*time.Millisecond)
}

// ticksDone reads how many ticks s made.
func ticksDone(s *Server) int {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	return s.ticks.done
}

// TestStartTickingEveryInterval runs the ticker on a fake clock: one tick
// per interval, each changing the data, and none once ctx ends.
func TestStartTickingEveryInterval(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s, err := New()
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		s.StartTicking(ctx, time.Minute)

		prev := s.Groups()
		for k := range 5 {
			time.Sleep(time.Minute)
			synctest.Wait()
			assert.Equal(t, k+1, ticksDone(s))
			now := s.Groups()
			assert.NotEqual(t, prev, now, "tick %d changed the data", k)
			prev = now
		}
		cancel()
		synctest.Wait() // the ticker has returned, or Test would fail
		time.Sleep(time.Hour)
		assert.Equal(t, 5, ticksDone(s))
		assert.Equal(t, prev, s.Groups())
	})
}

// TestTickingIsOffByDefault proves a Server serves the embedded dataset
// unchanged however long it runs, and that a zero interval starts nothing.
func TestTickingIsOffByDefault(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s, err := New()
		require.NoError(t, err)
		s.StartTicking(t.Context(), 0)
		s.StartTicking(t.Context(), -time.Second)
		time.Sleep(24 * time.Hour)
		synctest.Wait()
		_ = describe(t, s, upstream.DescribeCommunityImagesRequest{})
		assert.Zero(t, ticksDone(s))
		assert.Equal(t, dataset.Generate(), s.Groups())
	})
}

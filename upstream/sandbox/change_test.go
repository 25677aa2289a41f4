package sandbox

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/upstream"
)

// testNow is the clock of the Servers withClock makes: later than every
// time in the embedded dataset.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// withClock fixes the clock of the times a change sets.
func withClock(now time.Time) Option {
	return func(s *Server) error {
		s.now = func() time.Time { return now }
		return nil
	}
}

func ptr[T any](v T) *T { return &v }

// describe asks s for req in the test region; it must succeed.
func describe(t *testing.T, s *Server, req upstream.DescribeCommunityImagesRequest) *upstream.DescribeCommunityImagesResponse {
	t.Helper()
	req.Region = region
	resp, err := s.Describe(&req)
	require.NoError(t, err)
	return resp
}

// version asks s for the one version id, through a CompShareImageId filter.
func version(t *testing.T, s *Server, id string) (upstream.ImageGroup, upstream.Image) {
	t.Helper()
	resp := describe(t, s, upstream.DescribeCommunityImagesRequest{CompShareImageId: id})
	require.Len(t, resp.CompshareImageGroup, 1, id)
	g := resp.CompshareImageGroup[0]
	require.Len(t, g.Data, 1, id)
	return g, g.Data[0]
}

// replaced returns g with its version of want's id replaced by want.
func replaced(t *testing.T, g upstream.ImageGroup, want upstream.Image) upstream.ImageGroup {
	t.Helper()
	g.Data = slices.Clone(g.Data)
	j := slices.IndexFunc(g.Data, func(img upstream.Image) bool { return img.CompShareImageId == want.CompShareImageId })
	require.GreaterOrEqual(t, j, 0)
	g.Data[j] = want
	return g
}

func TestUpdateVersionIsSeenEverywhere(t *testing.T) {
	t.Parallel()
	s, hs := testServer(t, withClock(testNow))
	g0, v0 := groupOf(t, s.Groups(), EdgeReviewingImageID)

	got, err := s.UpdateVersion(EdgeReviewingImageID, VersionChange{Status: ptr("AVAILABLE"), Price: ptr(1.5)})
	require.NoError(t, err)
	want := v0
	want.Status, want.Price = upstream.ImageStatusAvailable, 1.5
	want.PubTime, want.UpdateTime = testNow.Unix(), testNow.Unix()
	want.GroupId = g0.GroupId
	assert.Equal(t, want, got, "the answer is the changed version, GroupId set")
	want.GroupId = ""
	wantGroup := replaced(t, g0, want)

	_, img := version(t, s, EdgeReviewingImageID)
	assert.Equal(t, want, img, "by CompShareImageId")
	byGroup := describe(t, s, upstream.DescribeCommunityImagesRequest{GroupId: g0.GroupId})
	assert.Equal(t, []upstream.ImageGroup{wantGroup}, byGroup.CompshareImageGroup, "by GroupId")
	listed, _, _ := callAll(t, hs, nil)
	assert.Equal(t, wantGroup, findGroup(t, listed, g0.GroupId), "in the list pages, over the wire")
	assert.Equal(t, wantGroup, findGroup(t, s.Groups(), g0.GroupId), "in Groups")
	newest := describe(t, s, upstream.DescribeCommunityImagesRequest{SortCondition: &upstream.SortCondition{Field: upstream.SortPubTime}})
	assert.Equal(t, g0.GroupId, newest.CompshareImageGroup[0].GroupId, "the newest PubTime sorts first")
	free := describe(t, s, upstream.DescribeCommunityImagesRequest{CompShareImageId: EdgeReviewingImageID, IsFree: upstream.Bool(true)})
	assert.Zero(t, free.TotalCount, "the filters see the new price")

	other, err := New()
	require.NoError(t, err)
	_, img = version(t, other, EdgeReviewingImageID)
	assert.Equal(t, v0, img, "another Server keeps the embedded dataset")
}

func TestUpdateVersionStatusKeepsTheRules(t *testing.T) {
	t.Parallel()
	s, err := New(withClock(testNow))
	require.NoError(t, err)
	g := findGroup(t, s.Groups(), EdgeUnavailableGroupID)
	j := slices.IndexFunc(g.Data, func(img upstream.Image) bool { return img.Status == upstream.ImageStatusReviewing })
	require.GreaterOrEqual(t, j, 0)
	id := g.Data[j].CompShareImageId
	avail := describe(t, s, upstream.DescribeCommunityImagesRequest{}).AvailableTotalCount

	img, err := s.UpdateVersion(id, VersionChange{Status: ptr(upstream.ImageStatusAvailable)})
	require.NoError(t, err)
	assert.Equal(t, testNow.Unix(), img.PubTime, "published now")
	got, _ := version(t, s, id)
	assert.Equal(t, upstream.GroupStatusAvailable, got.Status, "the group has an Available version now")
	assert.Equal(t, avail+1, describe(t, s, upstream.DescribeCommunityImagesRequest{}).AvailableTotalCount)

	img, err = s.UpdateVersion(id, VersionChange{Status: ptr("offline")})
	require.NoError(t, err)
	assert.Equal(t, upstream.ImageStatusOffline, img.Status)
	assert.Equal(t, testNow.Unix(), img.PubTime, "an Offline version keeps its PubTime")
	got, _ = version(t, s, id)
	assert.Equal(t, upstream.GroupStatusUnAvailable, got.Status)

	img, err = s.UpdateVersion(id, VersionChange{Status: ptr("Reviewing")})
	require.NoError(t, err)
	assert.Zero(t, img.PubTime, "under review again: PubTime 0")
	assert.Equal(t, avail, describe(t, s, upstream.DescribeCommunityImagesRequest{}).AvailableTotalCount)
}

func TestUpdateVersionNameIsSearched(t *testing.T) {
	t.Parallel()
	s, err := New(withClock(testNow))
	require.NoError(t, err)
	img, err := s.UpdateVersion(EdgeRenamedImageID, VersionChange{Name: ptr("Zebra 斑马 Workflow"), VersionDesc: ptr("新的说明")})
	require.NoError(t, err)
	assert.Equal(t, "Zebra 斑马 Workflow", img.Name)
	assert.Equal(t, "新的说明", img.VersionDesc)

	assert.Zero(t, describe(t, s, upstream.DescribeCommunityImagesRequest{Name: EdgeRenamedImageWord}).TotalCount, "the old name is gone")
	byName := describe(t, s, upstream.DescribeCommunityImagesRequest{Name: "zebra 斑马"})
	require.Equal(t, 1, byName.TotalCount)
	assert.Contains(t, versionIDs(byName.CompshareImageGroup[0]), EdgeRenamedImageID)
	fuzzy := describe(t, s, upstream.DescribeCommunityImagesRequest{FuzzySearch: "ZEBRA"})
	require.Equal(t, 1, fuzzy.TotalCount)
	assert.Equal(t, []string{EdgeRenamedImageID}, versionIDs(fuzzy.CompshareImageGroup[0]))
}

func TestUpdateThatChangesNothing(t *testing.T) {
	t.Parallel()
	s, err := New(withClock(testNow))
	require.NoError(t, err)
	before := s.Groups()
	g, v := groupOf(t, before, EdgeReviewingImageID)

	img, err := s.UpdateVersion(EdgeReviewingImageID, VersionChange{Status: ptr("reviewing"), Price: ptr(v.Price)})
	require.NoError(t, err)
	v.GroupId = g.GroupId
	assert.Equal(t, v, img, "UpdateTime kept")
	_, err = s.UpdateGroup(g.GroupId, GroupChange{FavoritesCount: ptr(g.FavoritesCount)})
	require.NoError(t, err)
	assert.Equal(t, before, s.Groups())
}

func TestUpdateErrors(t *testing.T) {
	t.Parallel()
	s, err := New()
	require.NoError(t, err)
	before := s.Groups()

	versions := []struct {
		name   string
		id     string
		change VersionChange
		msg    string
	}{
		{"unknown id", "compshareImage-nosuchthing", VersionChange{Price: ptr(1.0)}, `no version has CompShareImageId "compshareImage-nosuchthing"`},
		{"empty id", "", VersionChange{Price: ptr(1.0)}, `no version has CompShareImageId ""`},
		{"no field", EdgeReviewingImageID, VersionChange{}, "sets no field: set at least one of status, price, name, versionDesc"},
		{"unknown status", EdgeReviewingImageID, VersionChange{Status: ptr("Deleted")}, `status "Deleted" is not one of Available, Reviewing, Offline`},
		{"empty status", EdgeReviewingImageID, VersionChange{Status: ptr("")}, `status "" is not one of`},
		{"negative price", EdgeReviewingImageID, VersionChange{Price: ptr(-1.0)}, "price must be a finite number not below 0, got -1"},
		{"NaN price", EdgeReviewingImageID, VersionChange{Price: ptr(math.NaN())}, "price must be a finite number"},
		{"infinite price", EdgeReviewingImageID, VersionChange{Price: ptr(math.Inf(1))}, "price must be a finite number"},
		{"blank name", EdgeReviewingImageID, VersionChange{Status: ptr("Available"), Name: ptr(" \t")}, "name must not be blank"},
	}
	for _, tc := range versions {
		_, err := s.UpdateVersion(tc.id, tc.change)
		require.Error(t, err, tc.name)
		assert.Contains(t, err.Error(), tc.msg, tc.name)
		assert.Equal(t, tc.name == "unknown id" || tc.name == "empty id", errors.Is(err, ErrNotFound), tc.name)
	}
	groups := []struct {
		name   string
		id     string
		change GroupChange
		msg    string
	}{
		{"unknown id", "group-nosuchth", GroupChange{FavoritesCount: ptr(1)}, `no group has GroupId "group-nosuchth"`},
		{"no field", EdgeUnsortedGroupID, GroupChange{}, "sets no field: set at least one of favoritesCount, imageUseTime"},
		{"negative favourites", EdgeUnsortedGroupID, GroupChange{FavoritesCount: ptr(-1)}, "favoritesCount must not be negative, got -1"},
		{"negative use", EdgeUnsortedGroupID, GroupChange{FavoritesCount: ptr(1), ImageUseTime: ptr(-2)}, "imageUseTime must not be negative, got -2"},
	}
	for _, tc := range groups {
		_, err := s.UpdateGroup(tc.id, tc.change)
		require.Error(t, err, tc.name)
		assert.Contains(t, err.Error(), tc.msg, tc.name)
		assert.Equal(t, tc.name == "unknown id", errors.Is(err, ErrNotFound), tc.name)
	}

	long := strings.Repeat("x", 10000)
	_, err = s.UpdateVersion(long, VersionChange{Price: ptr(1.0)})
	require.Error(t, err)
	assert.Less(t, len(err.Error()), 200, "a long id is not quoted whole")
	assert.Equal(t, before, s.Groups(), "a refused change changes nothing")
}

func TestUpdateGroupIsSeenEverywhere(t *testing.T) {
	t.Parallel()
	s, hs := testServer(t)
	g0 := findGroup(t, s.Groups(), EdgeUnsortedGroupID)

	got, err := s.UpdateGroup(EdgeUnsortedGroupID, GroupChange{FavoritesCount: ptr(1_000_000), ImageUseTime: ptr(7)})
	require.NoError(t, err)
	want := g0
	want.FavoritesCount, want.ImageUseTime = 1_000_000, 7
	assert.Equal(t, want, got, "the answer is the whole group, versions untouched")

	byGroup := describe(t, s, upstream.DescribeCommunityImagesRequest{GroupId: EdgeUnsortedGroupID})
	assert.Equal(t, []upstream.ImageGroup{want}, byGroup.CompshareImageGroup)
	byVersion, _ := version(t, s, g0.Data[0].CompShareImageId)
	assert.Equal(t, 1_000_000, byVersion.FavoritesCount)
	listed, _, _ := callAll(t, hs, nil)
	assert.Equal(t, want, findGroup(t, listed, EdgeUnsortedGroupID))
	top := callOK(t, hs, map[string]any{"SortCondition": map[string]any{"Field": "FavoritesCount"}, "Limit": 1})
	assert.Equal(t, []string{EdgeUnsortedGroupID}, groupIDs(top.CompshareImageGroup), "the most favoured first")
}

// TestConcurrentReadersWhileChanging has readers check every answer for
// consistency while a writer changes the data; run it with -race.
func TestConcurrentReadersWhileChanging(t *testing.T) {
	t.Parallel()
	s, err := New()
	require.NoError(t, err)
	const writes = 300
	watched := EdgeUnsortedGroupID
	price := findGroup(t, s.Groups(), EdgePartialTagGroupID).Data[0].CompShareImageId
	// From 0 up, the watched count only grows: the writer sets it to i
	// after a Tick may have raised it from i-1 to i.
	_, err = s.UpdateGroup(watched, GroupChange{FavoritesCount: ptr(0)})
	require.NoError(t, err)

	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 8 {
		wg.Go(func() {
			last := -1
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := checkAnswers(s, r, &last, watched); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range writes {
		s.Tick()
		_, err := s.UpdateGroup(watched, GroupChange{FavoritesCount: ptr(i)})
		require.NoError(t, err)
		_, err = s.UpdateVersion(price, VersionChange{Price: ptr(float64(i % 7))})
		require.NoError(t, err)
	}
	close(done)
	wg.Wait()

	g := describe(t, s, upstream.DescribeCommunityImagesRequest{GroupId: watched}).CompshareImageGroup[0]
	assert.Equal(t, writes-1, g.FavoritesCount, "the last change is seen")
	_, img := version(t, s, price)
	assert.Equal(t, float64((writes-1)%7), img.Price)
}

// checkAnswers asks s for a page (which one depends on reader) and for the
// watched group, and says what is inconsistent in them: a group Status that
// does not follow its versions, a PubTime that breaks the review rule, or a
// watched FavoritesCount smaller than the last one seen.
func checkAnswers(s *Server, reader int, last *int, watched string) error {
	resp, err := s.Describe(&upstream.DescribeCommunityImagesRequest{Region: region, Offset: upstream.Int(reader % 2 * 100), Limit: upstream.Int(100)})
	if err != nil {
		return err
	}
	for _, g := range resp.CompshareImageGroup {
		if g.Status != groupStatus(g.Data) {
			return fmt.Errorf("group %s has Status %s but versions %v", g.GroupId, g.Status, g.Data)
		}
		for _, img := range g.Data {
			if (img.PubTime == 0) != (img.Status == upstream.ImageStatusReviewing) {
				return fmt.Errorf("version %s is %s with PubTime %d", img.CompShareImageId, img.Status, img.PubTime)
			}
		}
	}
	one, err := s.Describe(&upstream.DescribeCommunityImagesRequest{Region: region, GroupId: watched})
	if err != nil {
		return err
	}
	if len(one.CompshareImageGroup) != 1 {
		return fmt.Errorf("group %s: %d groups", watched, len(one.CompshareImageGroup))
	}
	fav := one.CompshareImageGroup[0].FavoritesCount
	if fav < *last {
		return fmt.Errorf("group %s: FavoritesCount went back from %d to %d", watched, *last, fav)
	}
	*last = max(*last, fav)
	return nil
}

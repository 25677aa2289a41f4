package sandbox

import (
	"cmp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/upstream"
)

// expected computes, independently of Describe, the groups a filter should
// return in stored order: groups passing groupOK, each trimmed to the
// versions passing versionOK (nil: no version filter, keep all).
func expected(groups []upstream.ImageGroup, groupOK func(upstream.ImageGroup) bool, versionOK func(upstream.ImageGroup, upstream.Image) bool) []upstream.ImageGroup {
	var out []upstream.ImageGroup
	for _, g := range groups {
		if groupOK != nil && !groupOK(g) {
			continue
		}
		if versionOK != nil {
			var keep []upstream.Image
			for _, img := range g.Data {
				if versionOK(g, img) {
					keep = append(keep, img)
				}
			}
			if len(keep) == 0 {
				continue
			}
			g.Data = keep
		}
		out = append(out, g)
	}
	return out
}

func ci(s, sub string) bool { return strings.Contains(strings.ToLower(s), strings.ToLower(sub)) }

func TestFilters(t *testing.T) {
	t.Parallel()
	s, hs := testServer(t)
	all := s.Groups()
	unsorted := findGroup(t, all, EdgeUnsortedGroupID)
	renamedGroup, _ := groupOf(t, all, EdgeRenamedImageID)

	cases := []struct {
		name      string
		in        map[string]any
		groupOK   func(upstream.ImageGroup) bool
		versionOK func(upstream.ImageGroup, upstream.Image) bool
		check     func(t *testing.T, got []upstream.ImageGroup)
	}{
		{name: "none", in: nil},
		{
			name:    "GroupId",
			in:      map[string]any{"GroupId": EdgeUnsortedGroupID},
			groupOK: func(g upstream.ImageGroup) bool { return g.GroupId == EdgeUnsortedGroupID },
			check: func(t *testing.T, got []upstream.ImageGroup) {
				require.Len(t, got, 1)
				assert.Equal(t, versionIDs(unsorted), versionIDs(got[0]), "versions keep stored order")
			},
		},
		{
			name: "Name case-insensitive on group or version name",
			in:   map[string]any{"Name": "stable DIFFUSION"},
			groupOK: func(g upstream.ImageGroup) bool {
				return ci(g.ImageName, "stable diffusion") || slices.ContainsFunc(g.Data, func(img upstream.Image) bool { return ci(img.Name, "stable diffusion") })
			},
			check: func(t *testing.T, got []upstream.ImageGroup) { assert.GreaterOrEqual(t, len(got), 5) },
		},
		{
			name:    "Name found through a version name keeps all versions",
			in:      map[string]any{"Name": strings.ToLower(EdgeRenamedImageWord)},
			groupOK: func(g upstream.ImageGroup) bool { return g.GroupId == renamedGroup.GroupId },
			check: func(t *testing.T, got []upstream.ImageGroup) {
				require.Len(t, got, 1)
				assert.Equal(t, versionIDs(renamedGroup), versionIDs(got[0]))
				assert.Greater(t, len(got[0].Data), 1)
			},
		},
		{
			name:      "Name in Chinese",
			in:        map[string]any{"Name": "通义千问"},
			groupOK:   func(g upstream.ImageGroup) bool { return ci(g.ImageName, "通义千问") },
			versionOK: nil,
		},
		{
			name:      "Author exact",
			in:        map[string]any{"Author": EdgeMultiGroupAuthor},
			versionOK: func(_ upstream.ImageGroup, img upstream.Image) bool { return img.Author == EdgeMultiGroupAuthor },
			check:     func(t *testing.T, got []upstream.ImageGroup) { assert.GreaterOrEqual(t, len(got), 3) },
		},
		{
			name:      "Author is not fuzzy",
			in:        map[string]any{"Author": "炼丹师"},
			versionOK: func(upstream.ImageGroup, upstream.Image) bool { return false },
		},
		{
			name: "FuzzySearch on author",
			in:   map[string]any{"FuzzySearch": "炼丹"},
			versionOK: func(g upstream.ImageGroup, img upstream.Image) bool {
				return ci(g.ImageName, "炼丹") || ci(img.Name, "炼丹") || ci(img.Author, "炼丹")
			},
			check: func(t *testing.T, got []upstream.ImageGroup) { assert.NotEmpty(t, got) },
		},
		{
			name: "FuzzySearch on name",
			in:   map[string]any{"FuzzySearch": "COMFY"},
			versionOK: func(g upstream.ImageGroup, img upstream.Image) bool {
				return ci(g.ImageName, "comfy") || ci(img.Name, "comfy") || ci(img.Author, "comfy")
			},
			check: func(t *testing.T, got []upstream.ImageGroup) { assert.NotEmpty(t, got) },
		},
		{
			name:      "Tag popular",
			in:        map[string]any{"Tag": []string{EdgePopularTag}},
			versionOK: func(_ upstream.ImageGroup, img upstream.Image) bool { return slices.Contains(img.Tags, EdgePopularTag) },
			check: func(t *testing.T, got []upstream.ImageGroup) {
				assert.GreaterOrEqual(t, len(got), 10)
				assert.LessOrEqual(t, len(got), 30)
			},
		},
		{
			name: "Tag intersection",
			in:   map[string]any{"Tag": []string{EdgePopularTag, "AIGC"}},
			versionOK: func(_ upstream.ImageGroup, img upstream.Image) bool {
				return slices.Contains(img.Tags, EdgePopularTag) && slices.Contains(img.Tags, "AIGC")
			},
		},
		{
			name:      "Tag trims a group to the tagged versions",
			in:        map[string]any{"Tag": []string{EdgePartialTag}},
			versionOK: func(_ upstream.ImageGroup, img upstream.Image) bool { return slices.Contains(img.Tags, EdgePartialTag) },
			check: func(t *testing.T, got []upstream.ImageGroup) {
				assert.Len(t, findGroup(t, got, EdgePartialTagGroupID).Data, 2)
			},
		},
		{
			name:      "IsFree",
			in:        map[string]any{"IsFree": true},
			versionOK: func(_ upstream.ImageGroup, img upstream.Image) bool { return img.Price == 0 },
		},
		{name: "IsFree false filters nothing", in: map[string]any{"IsFree": false}},
		{
			name:      "IsOfficial",
			in:        map[string]any{"IsOfficial": true},
			versionOK: func(_ upstream.ImageGroup, img upstream.Image) bool { return img.AuthInfo == upstream.AuthOfficial },
		},
		{name: "IsOfficial false filters nothing", in: map[string]any{"IsOfficial": false}},
		{
			name:      "IfAutoStart",
			in:        map[string]any{"IfAutoStart": true},
			versionOK: func(_ upstream.ImageGroup, img upstream.Image) bool { return img.AutoStart },
		},
		{name: "IfAutoStart false filters nothing", in: map[string]any{"IfAutoStart": false}},
		{
			name: "CompShareImageId",
			in:   map[string]any{"CompShareImageId": EdgeReviewingImageID},
			versionOK: func(_ upstream.ImageGroup, img upstream.Image) bool {
				return img.CompShareImageId == EdgeReviewingImageID
			},
			check: func(t *testing.T, got []upstream.ImageGroup) {
				require.Len(t, got, 1)
				assert.Equal(t, []string{EdgeReviewingImageID}, versionIDs(got[0]))
			},
		},
		{
			name: "group and version filters together",
			in:   map[string]any{"Name": "ComfyUI", "IsFree": true, "Tag": []string{EdgePopularTag}},
			groupOK: func(g upstream.ImageGroup) bool {
				return ci(g.ImageName, "comfyui") || slices.ContainsFunc(g.Data, func(img upstream.Image) bool { return ci(img.Name, "comfyui") })
			},
			versionOK: func(_ upstream.ImageGroup, img upstream.Image) bool {
				return img.Price == 0 && slices.Contains(img.Tags, EdgePopularTag)
			},
		},
		{
			name:    "no match",
			in:      map[string]any{"Name": "no such image"},
			groupOK: func(upstream.ImageGroup) bool { return false },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := expected(all, tc.groupOK, tc.versionOK)
			got, total, avail := callAll(t, hs, tc.in)
			wantAvail := 0
			for _, g := range want {
				if g.Status == upstream.GroupStatusAvailable {
					wantAvail++
				}
			}
			assert.Equal(t, len(want), total)
			assert.Equal(t, wantAvail, avail)
			if len(want) == 0 {
				assert.Empty(t, got)
			} else {
				assert.Equal(t, want, got)
			}
			if tc.check != nil {
				tc.check(t, got)
			}
		})
	}
}

// TestTrimmingDropsGroups shows a version filter can empty a group, which
// then drops out, while a group filter keeps every version.
func TestTrimmingDropsGroups(t *testing.T) {
	t.Parallel()
	s, hs := testServer(t)
	partial := findGroup(t, s.Groups(), EdgePartialTagGroupID)

	out := callOK(t, hs, map[string]any{"GroupId": EdgePartialTagGroupID})
	require.Len(t, out.CompshareImageGroup, 1)
	assert.Len(t, out.CompshareImageGroup[0].Data, len(partial.Data))

	out = callOK(t, hs, map[string]any{"GroupId": EdgePartialTagGroupID, "Tag": []string{EdgePartialTag}})
	require.Len(t, out.CompshareImageGroup, 1)
	assert.Len(t, out.CompshareImageGroup[0].Data, 2)

	out = callOK(t, hs, map[string]any{"GroupId": EdgePartialTagGroupID, "Tag": []string{EdgePopularTag}})
	assert.Zero(t, out.TotalCount)
	assert.Empty(t, out.CompshareImageGroup)
}

// sortKey computes the sort key of a returned group from its returned data.
func sortKey(field upstream.SortField, g upstream.ImageGroup) int64 {
	switch field {
	case upstream.SortPubTime:
		var newest int64
		for _, img := range g.Data {
			newest = max(newest, img.PubTime)
		}
		return newest
	case upstream.SortImageUseTime:
		return int64(g.ImageUseTime)
	default:
		return int64(g.FavoritesCount)
	}
}

func TestSort(t *testing.T) {
	t.Parallel()
	_, hs := testServer(t)
	fields := []upstream.SortField{upstream.SortPubTime, upstream.SortFavor, upstream.SortFavoritesCount, upstream.SortImageUseTime}
	filters := []struct {
		name string
		in   map[string]any
	}{
		{"all", nil},
		{"trimmed by tag", map[string]any{"Tag": []string{EdgePartialTag}}},
	}
	for _, field := range fields {
		for _, asc := range []bool{true, false} {
			for _, f := range filters {
				name := string(field) + map[bool]string{true: " asc ", false: " desc "}[asc] + f.name
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					in := map[string]any{"SortCondition": map[string]any{"Field": string(field), "ASC": asc}}
					for k, v := range f.in {
						in[k] = v
					}
					got, total, _ := callAll(t, hs, in)
					unsorted, _, _ := callAll(t, hs, f.in)
					assert.ElementsMatch(t, groupIDs(unsorted), groupIDs(got), "sorting keeps the same groups")
					require.Len(t, got, total)
					ties := 0
					for i := 1; i < len(got); i++ {
						a, b := sortKey(field, got[i-1]), sortKey(field, got[i])
						if a == b {
							ties++
							assert.Less(t, got[i-1].GroupId, got[i].GroupId, "ties by GroupId ascending")
							continue
						}
						if asc {
							assert.Less(t, a, b, "at %d", i)
						} else {
							assert.Greater(t, a, b, "at %d", i)
						}
					}
					if f.in == nil {
						assert.Positive(t, ties, "the dataset has ties for %s", field)
					}
				})
			}
		}
	}
}

func TestSortPubTimeUsesReturnedVersions(t *testing.T) {
	t.Parallel()
	s, _ := testServer(t)
	// Sorting by PubTime with a version filter ranks a group by its newest
	// returned version, not its newest version overall.
	req := &upstream.DescribeCommunityImagesRequest{
		Region:        region,
		Tag:           []string{EdgePartialTag},
		SortCondition: &upstream.SortCondition{Field: upstream.SortPubTime},
		Limit:         upstream.Int(upstream.MaxLimit),
	}
	resp, err := s.Describe(req)
	require.NoError(t, err)
	keys := make([]int64, len(resp.CompshareImageGroup))
	for i, g := range resp.CompshareImageGroup {
		keys[i] = sortKey(upstream.SortPubTime, g)
	}
	assert.True(t, slices.IsSortedFunc(keys, func(a, b int64) int { return cmp.Compare(b, a) }), "descending by default: %v", keys)
}

func TestDefaultOrderIsStoredOrder(t *testing.T) {
	t.Parallel()
	s, hs := testServer(t)
	got, _, _ := callAll(t, hs, nil)
	assert.Equal(t, groupIDs(s.Groups()), groupIDs(got))
	// The stored order is not already sorted by any sort field.
	for _, field := range []upstream.SortField{upstream.SortPubTime, upstream.SortFavor, upstream.SortImageUseTime} {
		keys := make([]int64, len(got))
		for i, g := range got {
			keys[i] = sortKey(field, g)
		}
		assert.False(t, slices.IsSorted(keys), field)
		slices.Reverse(keys)
		assert.False(t, slices.IsSorted(keys), field)
	}
}

func TestPaging(t *testing.T) {
	t.Parallel()
	s, hs := testServer(t)
	all := s.Groups()
	n := len(all)
	avail := 0
	for _, g := range all {
		if g.Status == upstream.GroupStatusAvailable {
			avail++
		}
	}
	sorted := map[string]any{"SortCondition": map[string]any{"Field": "FavoritesCount", "ASC": false}}
	full, _, _ := callAll(t, hs, sorted)

	cases := []struct {
		name    string
		in      map[string]any
		want    int
		wantIDs []string
	}{
		{name: "no Limit means 20", in: nil, want: 20, wantIDs: groupIDs(all[:20])},
		{name: "Limit 0 means 20", in: map[string]any{"Limit": 0}, want: 20, wantIDs: groupIDs(all[:20])},
		{name: "Limit 1", in: map[string]any{"Limit": 1}, want: 1, wantIDs: groupIDs(all[:1])},
		{name: "Limit 100", in: map[string]any{"Limit": 100}, want: 100, wantIDs: groupIDs(all[:100])},
		{name: "Offset 0 explicit", in: map[string]any{"Offset": 0, "Limit": 5}, want: 5, wantIDs: groupIDs(all[:5])},
		{name: "Offset 10", in: map[string]any{"Offset": 10, "Limit": 5}, want: 5, wantIDs: groupIDs(all[10:15])},
		{name: "last partial page", in: map[string]any{"Offset": n - 3, "Limit": 10}, want: 3, wantIDs: groupIDs(all[n-3:])},
		{name: "Offset at the end", in: map[string]any{"Offset": n}, want: 0},
		{name: "Offset past the end", in: map[string]any{"Offset": n + 50, "Limit": 10}, want: 0},
		{name: "sorted page", in: map[string]any{"Offset": 7, "Limit": 9, "SortCondition": sorted["SortCondition"]}, want: 9, wantIDs: groupIDs(full[7:16])},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := callOK(t, hs, tc.in)
			assert.Equal(t, n, out.TotalCount)
			assert.Equal(t, avail, out.AvailableTotalCount)
			assert.Len(t, out.CompshareImageGroup, tc.want)
			if tc.wantIDs != nil {
				assert.Equal(t, tc.wantIDs, groupIDs(out.CompshareImageGroup))
			}
		})
	}

	t.Run("pages concatenate to the full list", func(t *testing.T) {
		t.Parallel()
		var got []string
		for off := 0; off < n; off += 7 {
			page := map[string]any{"Offset": off, "Limit": 7, "SortCondition": sorted["SortCondition"]}
			got = append(got, groupIDs(callOK(t, hs, page).CompshareImageGroup)...)
		}
		assert.Equal(t, groupIDs(full), got)
	})
}

// TestHTTPMatchesDescribe compares the wire answer with the oracle.
func TestHTTPMatchesDescribe(t *testing.T) {
	t.Parallel()
	s, hs := testServer(t)
	reqs := []*upstream.DescribeCommunityImagesRequest{
		{},
		{Name: "stable diffusion", Tag: []string{"AIGC"}, SortCondition: &upstream.SortCondition{Field: upstream.SortPubTime}, Offset: upstream.Int(0), Limit: upstream.Int(20)},
		{IsFree: upstream.Bool(true), IfAutoStart: upstream.Bool(true), Limit: upstream.Int(50)},
		{Author: EdgeMultiGroupAuthor, SortCondition: &upstream.SortCondition{Field: upstream.SortImageUseTime, ASC: true}},
		{FuzzySearch: "qwen", IsOfficial: upstream.Bool(true)},
		{Tag: []string{EdgePopularTag}, Offset: upstream.Int(5), Limit: upstream.Int(3)},
	}
	for _, req := range reqs {
		p, err := req.Params(region)
		require.NoError(t, err)
		got := call(t, hs, p)
		req.Region = region
		want, err := s.Describe(req)
		require.NoError(t, err)
		got.RequestID = ""
		assert.Equal(t, want, got)
	}
}

func TestDescribeErrors(t *testing.T) {
	t.Parallel()
	s, err := New()
	require.NoError(t, err)
	cases := []struct {
		name string
		req  upstream.DescribeCommunityImagesRequest
		code int
		msg  string
	}{
		{"missing Region", upstream.DescribeCommunityImagesRequest{}, upstream.RetCodeMissingParam, "Region"},
		{"negative Offset", upstream.DescribeCommunityImagesRequest{Region: region, Offset: upstream.Int(-1)}, upstream.RetCodeParamUnavailable, "Offset"},
		{"Limit 101", upstream.DescribeCommunityImagesRequest{Region: region, Limit: upstream.Int(101)}, upstream.RetCodeParamUnavailable, "Limit"},
		{"negative Limit", upstream.DescribeCommunityImagesRequest{Region: region, Limit: upstream.Int(-1)}, upstream.RetCodeParamUnavailable, "Limit"},
		{"bad sort", upstream.DescribeCommunityImagesRequest{Region: region, SortCondition: &upstream.SortCondition{Field: "Name"}}, upstream.RetCodeParamUnavailable, "SortCondition.Field"},
		{"empty tag", upstream.DescribeCommunityImagesRequest{Region: region, Tag: []string{"AIGC", ""}}, upstream.RetCodeParamUnavailable, "Tag.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := s.Describe(&tc.req)
			e, ok := upstream.AsAPIError(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, upstream.KindRetCode, e.Kind)
			assert.Equal(t, tc.code, e.RetCode)
			assert.Contains(t, e.Message, tc.msg)
		})
	}
}

func TestWithGroups(t *testing.T) {
	t.Parallel()
	groups := []upstream.ImageGroup{{
		GroupId: "group-aaaaaaaa", ImageName: "Tiny", Status: upstream.GroupStatusAvailable,
		Data: []upstream.Image{{CompShareImageId: "compshareImage-aaaaaaaaaaaa", Name: "Tiny", Status: upstream.ImageStatusAvailable}},
	}}
	_, hs := testServer(t, WithGroups(groups))
	groups[0].ImageName = "changed after New"
	_, body := post(t, hs, upstream.SignedForm(params(t, nil), DefaultPublicKey, DefaultPrivateKey))
	assert.Contains(t, string(body), `"ImageName":"Tiny"`)
	assert.Contains(t, string(body), `"Tags":[]`)
	assert.Contains(t, string(body), `"SupportedGpuTypes":[]`)
	assert.Contains(t, string(body), `"SoftwarePorts":[]`)
	assert.NotContains(t, string(body), "null")

	_, hs = testServer(t, WithGroups(nil))
	_, body = post(t, hs, upstream.SignedForm(params(t, nil), DefaultPublicKey, DefaultPrivateKey))
	assert.Contains(t, string(body), `"CompshareImageGroup":[]`)
	assert.Contains(t, string(body), `"TotalCount":0`)
}

func BenchmarkDescribe(b *testing.B) {
	s, err := New()
	require.NoError(b, err)
	cases := []struct {
		name string
		req  upstream.DescribeCommunityImagesRequest
	}{
		{"default page", upstream.DescribeCommunityImagesRequest{Region: region}},
		{"full page sorted", upstream.DescribeCommunityImagesRequest{Region: region, Limit: upstream.Int(100), SortCondition: &upstream.SortCondition{Field: upstream.SortPubTime}}},
		{"tag and free", upstream.DescribeCommunityImagesRequest{Region: region, Tag: []string{EdgePopularTag}, IsFree: upstream.Bool(true)}},
		{"fuzzy", upstream.DescribeCommunityImagesRequest{Region: region, FuzzySearch: "diffusion"}},
		{"one group", upstream.DescribeCommunityImagesRequest{Region: region, GroupId: EdgeUnsortedGroupID}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Describe(&tc.req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

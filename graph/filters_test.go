package graph_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/upstream"
)

// TestFiltersAndSorts checks every filter and every sort against the
// sandbox's own answer for the same upstream request.
func TestFiltersAndSorts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	groups := e.sb.Groups()
	someAuthor := groups[5].Data[0].Author
	someImage := groups[7].Data[len(groups[7].Data)-1].CompShareImageId
	sort := func(f upstream.SortField, asc bool) *upstream.SortCondition {
		return &upstream.SortCondition{Field: f, ASC: asc}
	}
	cases := []struct {
		name   string
		filter map[string]any
		order  map[string]any
		req    upstream.DescribeCommunityImagesRequest
	}{
		{name: "name", filter: map[string]any{"name": "diffusion"}, req: upstream.DescribeCommunityImagesRequest{Name: "diffusion"}},
		{name: "author", filter: map[string]any{"author": someAuthor}, req: upstream.DescribeCommunityImagesRequest{Author: someAuthor}},
		{name: "search", filter: map[string]any{"search": "comfy"}, req: upstream.DescribeCommunityImagesRequest{FuzzySearch: "comfy"}},
		{name: "tags", filter: map[string]any{"tags": []string{"AIGC", "绘画"}}, req: upstream.DescribeCommunityImagesRequest{Tag: []string{"AIGC", "绘画"}}},
		{name: "freeOnly", filter: map[string]any{"freeOnly": true}, req: upstream.DescribeCommunityImagesRequest{IsFree: upstream.Bool(true)}},
		{name: "freeOnly false sends nothing", filter: map[string]any{"freeOnly": false}, req: upstream.DescribeCommunityImagesRequest{}},
		{name: "officialOnly", filter: map[string]any{"officialOnly": true}, req: upstream.DescribeCommunityImagesRequest{IsOfficial: upstream.Bool(true)}},
		{name: "autoStartOnly", filter: map[string]any{"autoStartOnly": true}, req: upstream.DescribeCommunityImagesRequest{IfAutoStart: upstream.Bool(true)}},
		{name: "groupId", filter: map[string]any{"groupId": groups[9].GroupId}, req: upstream.DescribeCommunityImagesRequest{GroupId: groups[9].GroupId}},
		{name: "imageId", filter: map[string]any{"imageId": someImage}, req: upstream.DescribeCommunityImagesRequest{CompShareImageId: someImage}},
		{name: "published newest first", order: map[string]any{"field": "PUBLISHED_AT", "direction": "DESC"}, req: upstream.DescribeCommunityImagesRequest{SortCondition: sort(upstream.SortPubTime, false)}},
		{name: "published oldest first", order: map[string]any{"field": "PUBLISHED_AT", "direction": "ASC"}, req: upstream.DescribeCommunityImagesRequest{SortCondition: sort(upstream.SortPubTime, true)}},
		{name: "favorites", order: map[string]any{"field": "FAVORITES", "direction": "DESC"}, req: upstream.DescribeCommunityImagesRequest{SortCondition: sort(upstream.SortFavor, false)}},
		{name: "favorites asc", order: map[string]any{"field": "FAVORITES", "direction": "ASC"}, req: upstream.DescribeCommunityImagesRequest{SortCondition: sort(upstream.SortFavor, true)}},
		{name: "usage", order: map[string]any{"field": "USAGE", "direction": "DESC"}, req: upstream.DescribeCommunityImagesRequest{SortCondition: sort(upstream.SortImageUseTime, false)}},
		{name: "usage asc with a filter", filter: map[string]any{"freeOnly": true}, order: map[string]any{"field": "USAGE", "direction": "ASC"},
			req: upstream.DescribeCommunityImagesRequest{IsFree: upstream.Bool(true), SortCondition: sort(upstream.SortImageUseTime, true)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := e.allGroups(t, tc.req)
			require.NotEmpty(t, want, "the case must select something to be a test")
			var p groupPage
			vars := map[string]any{"first": 500}
			if tc.filter != nil {
				vars["filter"] = tc.filter
			}
			if tc.order != nil {
				vars["orderBy"] = tc.order
			}
			e.ok(t, pageQuery, vars, &p)
			assert.Equal(t, groupIDs(want), p.ids())
			assert.Equal(t, len(want), p.ImageGroups.TotalCount)
		})
	}
}

// TestFieldMapping checks every field of a group and its versions against
// the upstream data, for every group of the dataset.
func TestFieldMapping(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	type version struct {
		ID                 string   `json:"id"`
		ImageID            string   `json:"imageId"`
		Name               string   `json:"name"`
		VersionName        string   `json:"versionName"`
		VersionDescription string   `json:"versionDescription"`
		Description        string   `json:"description"`
		Author             string   `json:"author"`
		AuthorType         string   `json:"authorType"`
		Status             string   `json:"status"`
		Price              float64  `json:"price"`
		IsFree             bool     `json:"isFree"`
		Tags               []string `json:"tags"`
		SupportedGpuTypes  []string `json:"supportedGpuTypes"`
		CoverURL           *string  `json:"coverUrl"`
		IsContainer        bool     `json:"isContainer"`
		AutoStart          bool     `json:"autoStart"`
		CreatedAt          string   `json:"createdAt"`
		UpdatedAt          string   `json:"updatedAt"`
		PublishedAt        *string  `json:"publishedAt"`
		SizeMB             int64    `json:"sizeMB"`
		Readme             string   `json:"readme"`
		QrCodeURL          *string  `json:"qrCodeUrl"`
		SoftwarePorts      []struct {
			Software string `json:"software"`
			Port     int    `json:"port"`
		} `json:"softwarePorts"`
	}
	var out struct {
		ImageGroups struct {
			Edges []struct {
				Node struct {
					GroupID        string `json:"groupId"`
					Name           string `json:"name"`
					Description    string `json:"description"`
					CreatedCount   int    `json:"createdCount"`
					FavoritesCount int    `json:"favoritesCount"`
					RecommendCount int    `json:"recommendCount"`
					UseTime        int    `json:"useTime"`
					IsFavorite     bool   `json:"isFavorite"`
					Status         string `json:"status"`
				} `json:"node"`
				MatchedVersions []version `json:"matchedVersions"`
			} `json:"edges"`
		} `json:"imageGroups"`
	}
	e.ok(t, `{ imageGroups(first: 500) { edges {
		node { groupId name description createdCount favoritesCount recommendCount useTime isFavorite status }
		matchedVersions { id imageId name versionName versionDescription description author authorType status
			price isFree tags supportedGpuTypes coverUrl isContainer autoStart createdAt updatedAt publishedAt
			sizeMB readme qrCodeUrl softwarePorts { software port } }
	} } }`, nil, &out)
	byID := map[string]upstream.ImageGroup{}
	for _, g := range e.sb.Groups() {
		byID[g.GroupId] = g
	}
	require.Len(t, out.ImageGroups.Edges, len(byID))
	rfc := func(s int64) string { return time.Unix(s, 0).UTC().Format(time.RFC3339) }
	groupStatus := map[string]string{"Available": "AVAILABLE", "UnAvailable": "UNAVAILABLE"}
	versionStatus := map[string]string{"Available": "AVAILABLE", "Offline": "OFFLINE", "Reviewing": "REVIEWING"}
	authorType := map[int]string{0: "CREATOR", 1: "OFFICIAL", 2: "VERIFIED"}
	sawNullCover, sawNullPub, sawNullQR := false, false, false
	for _, edge := range out.ImageGroups.Edges {
		g, n := byID[edge.Node.GroupID], edge.Node
		assert.Equal(t, g.ImageName, n.Name)
		assert.Equal(t, g.ImageDesc, n.Description)
		assert.Equal(t, g.CreatedCount, n.CreatedCount)
		assert.Equal(t, g.FavoritesCount, n.FavoritesCount)
		assert.Equal(t, g.RecommendCount, n.RecommendCount)
		assert.Equal(t, g.ImageUseTime, n.UseTime)
		assert.Equal(t, g.IsFavorite, n.IsFavorite)
		assert.Equal(t, groupStatus[g.Status], n.Status)
		require.Len(t, edge.MatchedVersions, len(g.Data))
		for i, v := range edge.MatchedVersions {
			src := g.Data[i]
			assert.Equal(t, src.CompShareImageId, v.ImageID, "matchedVersions keeps upstream order")
			assert.NotEqual(t, src.CompShareImageId, v.ID, "id is the opaque global id")
			assert.Equal(t, src.Name, v.Name)
			assert.Equal(t, src.VersionName, v.VersionName)
			assert.Equal(t, src.VersionDesc, v.VersionDescription)
			assert.Equal(t, src.Description, v.Description)
			assert.Equal(t, src.Author, v.Author)
			assert.Equal(t, authorType[src.AuthInfo], v.AuthorType)
			assert.Equal(t, versionStatus[src.Status], v.Status)
			assert.Equal(t, src.Price, v.Price)
			assert.Equal(t, src.Price == 0, v.IsFree)
			assert.Equal(t, nonNil(src.Tags), v.Tags)
			assert.Equal(t, nonNil(src.SupportedGpuTypes), v.SupportedGpuTypes)
			if src.Cover == "" {
				assert.Nil(t, v.CoverURL)
				sawNullCover = true
			} else if assert.NotNil(t, v.CoverURL) {
				assert.Equal(t, src.Cover, *v.CoverURL)
			}
			assert.Equal(t, src.Container == "True", v.IsContainer)
			assert.Equal(t, src.AutoStart, v.AutoStart)
			assert.Equal(t, rfc(src.CreateTime), v.CreatedAt)
			assert.Equal(t, rfc(src.UpdateTime), v.UpdatedAt)
			if src.PubTime == 0 {
				assert.Nil(t, v.PublishedAt)
				sawNullPub = true
			} else if assert.NotNil(t, v.PublishedAt) {
				assert.Equal(t, rfc(src.PubTime), *v.PublishedAt)
			}
			assert.Equal(t, src.Size, v.SizeMB)
			assert.Equal(t, src.Readme, v.Readme)
			if src.QrCodeUrl == "" {
				assert.Nil(t, v.QrCodeURL)
				sawNullQR = true
			} else if assert.NotNil(t, v.QrCodeURL) {
				assert.Equal(t, src.QrCodeUrl, *v.QrCodeURL)
			}
			require.Len(t, v.SoftwarePorts, len(src.SoftwarePorts))
			for j, p := range src.SoftwarePorts {
				assert.Equal(t, p.Software, v.SoftwarePorts[j].Software)
				assert.Equal(t, p.Port, v.SoftwarePorts[j].Port)
			}
		}
	}
	assert.True(t, sawNullCover && sawNullPub && sawNullQR, "the dataset's edge cases were mapped")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// TestUnknownEnumValuesMapToUnknown: values outside an enum become UNKNOWN
// with a warning in the log, never an error.
func TestUnknownEnumValuesMapToUnknown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withService(func(s graphService) graphService {
		return rewriting(s, func(r *upstream.DescribeCommunityImagesResponse) {
			for i := range r.CompshareImageGroup {
				g := &r.CompshareImageGroup[i]
				g.Status = "Frozen"
				for j := range g.Data {
					g.Data[j].Status = "Archived"
					g.Data[j].AuthInfo = 9
				}
			}
		})
	}))
	resp := e.do(t, `{ imageGroups(first: 2) { nodes { status versions { nodes { status authorType } } } } }`, nil)
	require.Empty(t, resp.Errors, string(resp.raw))
	var out struct {
		ImageGroups struct {
			Nodes []struct {
				Status   string `json:"status"`
				Versions struct {
					Nodes []struct {
						Status     string `json:"status"`
						AuthorType string `json:"authorType"`
					} `json:"nodes"`
				} `json:"versions"`
			} `json:"nodes"`
		} `json:"imageGroups"`
	}
	require.NoError(t, json.Unmarshal(resp.Data, &out))
	for _, g := range out.ImageGroups.Nodes {
		assert.Equal(t, "UNKNOWN", g.Status)
		for _, v := range g.Versions.Nodes {
			assert.Equal(t, "UNKNOWN", v.Status)
			assert.Equal(t, "UNKNOWN", v.AuthorType)
		}
	}
	assert.Contains(t, e.logs.String(), "mapped to UNKNOWN")
	assert.Contains(t, e.logs.String(), "Frozen")
}

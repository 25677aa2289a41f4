package graph_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/graph/model"
	"github.com/compshare/imagegraph/internal/testkit"
	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

// referenceQuery is the README's reference operation.
const referenceQuery = testkit.ReferenceQuery

// TestUnfilteredPageIsOneCall: nested versions, latestVersion and group of an
// unfiltered page all come from its one response.
func TestUnfilteredPageIsOneCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var out struct {
		ImageGroups struct {
			Edges []struct {
				Node struct {
					GroupID  string `json:"groupId"`
					Versions struct {
						TotalCount int `json:"totalCount"`
						Nodes      []struct {
							ImageID string `json:"imageId"`
							Group   struct {
								GroupID string `json:"groupId"`
							} `json:"group"`
						} `json:"nodes"`
					} `json:"versions"`
					LatestVersion *struct {
						ImageID string `json:"imageId"`
						Group   struct {
							Name string `json:"name"`
						} `json:"group"`
					} `json:"latestVersion"`
				} `json:"node"`
			} `json:"edges"`
		} `json:"imageGroups"`
	}
	e.ok(t, `{ imageGroups(first: 30) { edges { node {
		groupId
		versions { totalCount nodes { imageId group { groupId } } }
		latestVersion { imageId group { name } }
	} } } }`, nil, &out)
	assert.EqualValues(t, 1, e.calls())
	require.Len(t, out.ImageGroups.Edges, 30)
	for _, edge := range out.ImageGroups.Edges {
		n := edge.Node
		assert.Positive(t, n.Versions.TotalCount)
		for _, v := range n.Versions.Nodes {
			assert.Equal(t, n.GroupID, v.Group.GroupID)
		}
	}
}

// TestIdenticalAliasesAreOneCall: three aliases of one connection are one call.
func TestIdenticalAliasesAreOneCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var out map[string]struct {
		TotalCount int `json:"totalCount"`
	}
	e.ok(t, `{
		a: imageGroups(first: 10, filter: {tags: ["AIGC"]}) { totalCount edges { node { name } } }
		b: imageGroups(first: 10, filter: {tags: ["AIGC"]}) { totalCount nodes { groupId } }
		c: imageGroups(first: 10, filter: {tags: ["AIGC"]}) { totalCount edges { cursor } }
	}`, nil, &out)
	assert.EqualValues(t, 1, e.calls())
	assert.Equal(t, out["a"].TotalCount, out["c"].TotalCount)
}

// TestNodesOfEarlierGroups: nodes of 10 groups from an earlier request are
// at most 10 calls, made concurrently.
func TestNodesOfEarlierGroups(t *testing.T) {
	t.Parallel()
	// Latency makes calls that are concurrent overlap at the sandbox.
	e := newEnv(t, withSandboxOptions(sandbox.WithLatency(20*time.Millisecond)))
	var page struct {
		ImageGroups struct {
			Nodes []struct {
				ID      string `json:"id"`
				GroupID string `json:"groupId"`
			} `json:"nodes"`
		} `json:"imageGroups"`
	}
	e.ok(t, `{ imageGroups(first: 10) { nodes { id groupId } } }`, nil, &page)
	ids := make([]string, 10)
	for i, n := range page.ImageGroups.Nodes {
		ids[i] = n.ID
	}
	e.sb.ResetStats()
	var out struct {
		Nodes []struct {
			GroupID string `json:"groupId"`
			Name    string `json:"name"`
		} `json:"nodes"`
	}
	e.ok(t, `query($ids: [ID!]!) { nodes(ids: $ids) { ... on ImageGroup { groupId name latestVersion { imageId } } } }`,
		map[string]any{"ids": ids}, &out)
	require.Len(t, out.Nodes, 10)
	for i, n := range out.Nodes {
		assert.Equal(t, page.ImageGroups.Nodes[i].GroupID, n.GroupID, "nodes keeps the input order")
	}
	assert.LessOrEqual(t, e.calls(), int64(10))
	assert.Greater(t, e.sb.Stats().MaxInFlight, int64(1), "the calls were concurrent")
}

// TestTagFilteredPageWithVersions: a version-level filter may trim versions,
// so full versions are fetched by group: at most 1 + n calls, concurrently.
func TestTagFilteredPageWithVersions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withSandboxOptions(sandbox.WithLatency(20*time.Millisecond)))
	var out struct {
		ImageGroups struct {
			Edges []struct {
				MatchedVersions []struct {
					ImageID string   `json:"imageId"`
					Tags    []string `json:"tags"`
				} `json:"matchedVersions"`
				Node struct {
					GroupID  string `json:"groupId"`
					Versions struct {
						TotalCount int `json:"totalCount"`
						Nodes      []struct {
							ImageID string `json:"imageId"`
						} `json:"nodes"`
					} `json:"versions"`
				} `json:"node"`
			} `json:"edges"`
		} `json:"imageGroups"`
	}
	tag := "AIGC"
	e.ok(t, `query($tag: String!) { imageGroups(first: 10, filter: {tags: [$tag]}) { edges {
		matchedVersions { imageId tags }
		node { groupId versions { totalCount nodes { imageId } } }
	} } }`, map[string]any{"tag": tag}, &out)
	n := len(out.ImageGroups.Edges)
	require.Positive(t, n)
	assert.LessOrEqual(t, e.calls(), int64(1+n))
	if n > 1 {
		assert.Greater(t, e.sb.Stats().MaxInFlight, int64(1), "versions were fetched concurrently")
	}
	trimmed := false
	for _, edge := range out.ImageGroups.Edges {
		for _, v := range edge.MatchedVersions {
			assert.Contains(t, v.Tags, tag)
		}
		full := e.oracle(t, &upstream.DescribeCommunityImagesRequest{GroupId: edge.Node.GroupID})
		require.Len(t, full.CompshareImageGroup, 1)
		assert.Equal(t, len(full.CompshareImageGroup[0].Data), edge.Node.Versions.TotalCount,
			"versions holds every version of %s", edge.Node.GroupID)
		if len(edge.MatchedVersions) < edge.Node.Versions.TotalCount {
			trimmed = true
		}
	}
	if !trimmed {
		t.Logf("no group on this page had versions without the tag")
	}
}

// TestVersionOrderAndLatest checks the version order and latestVersion
// against the sandbox's data for every group of a page.
func TestVersionOrderAndLatest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var out struct {
		ImageGroups struct {
			Nodes []struct {
				GroupID  string `json:"groupId"`
				Versions struct {
					Nodes []struct {
						ImageID string `json:"imageId"`
					} `json:"nodes"`
				} `json:"versions"`
				Available struct {
					Nodes []struct {
						ImageID string `json:"imageId"`
						Status  string `json:"status"`
					} `json:"nodes"`
				} `json:"available"`
				LatestVersion *struct {
					ImageID string `json:"imageId"`
				} `json:"latestVersion"`
			} `json:"nodes"`
		} `json:"imageGroups"`
	}
	e.ok(t, `{ imageGroups(first: 100) { nodes { groupId
		versions { nodes { imageId } }
		available: versions(status: [AVAILABLE]) { nodes { imageId status } }
		latestVersion { imageId } } } }`, nil, &out)
	byID := map[string]upstream.ImageGroup{}
	for _, g := range e.sb.Groups() {
		byID[g.GroupId] = g
	}
	for _, g := range out.ImageGroups.Nodes {
		src := byID[g.GroupID]
		var mapped []*model.ImageVersion
		for i := range src.Data {
			mapped = append(mapped, model.Mapper{}.Version(&src.Data[i]))
		}
		sorted := model.SortVersions(mapped)
		got := make([]string, len(g.Versions.Nodes))
		for i, v := range g.Versions.Nodes {
			got[i] = v.ImageID
		}
		want := make([]string, len(sorted))
		for i, v := range sorted {
			want[i] = v.ImageID
		}
		assert.Equal(t, want, got, "version order of %s", g.GroupID)
		for _, v := range g.Available.Nodes {
			assert.Equal(t, "AVAILABLE", v.Status)
		}
		latest := model.LatestAvailable(mapped)
		if latest == nil {
			assert.Nil(t, g.LatestVersion, g.GroupID)
		} else if assert.NotNil(t, g.LatestVersion, g.GroupID) {
			assert.Equal(t, latest.ImageID, g.LatestVersion.ImageID)
		}
	}
}

// TestVersionsPaging pages one group's versions with first/after/last.
func TestVersionsPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var big upstream.ImageGroup
	for _, g := range e.sb.Groups() {
		if len(g.Data) >= 4 {
			big = g
			break
		}
	}
	require.NotEmpty(t, big.GroupId, "the dataset has a group with 4+ versions")
	type vconn struct {
		TotalCount int      `json:"totalCount"`
		PageInfo   pageInfo `json:"pageInfo"`
		Edges      []struct {
			Cursor string `json:"cursor"`
			Node   struct {
				ImageID string `json:"imageId"`
			} `json:"node"`
		} `json:"edges"`
	}
	var all, page, back struct {
		ImageGroup struct {
			Versions vconn `json:"versions"`
		} `json:"imageGroup"`
	}
	q := `query($g: ID!, $first: Int, $after: String, $last: Int, $before: String) { imageGroup(groupId: $g) {
		versions(first: $first, after: $after, last: $last, before: $before) { totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { imageId } } } } }`
	e.ok(t, q, map[string]any{"g": big.GroupId}, &all)
	require.Len(t, all.ImageGroup.Versions.Edges, len(big.Data))
	e.ok(t, q, map[string]any{"g": big.GroupId, "first": 2, "after": all.ImageGroup.Versions.Edges[0].Cursor}, &page)
	assert.Equal(t, all.ImageGroup.Versions.Edges[1:3], page.ImageGroup.Versions.Edges)
	assert.True(t, page.ImageGroup.Versions.PageInfo.HasPreviousPage)
	assert.Equal(t, len(big.Data) > 3, page.ImageGroup.Versions.PageInfo.HasNextPage)
	e.ok(t, q, map[string]any{"g": big.GroupId, "last": 2}, &back)
	n := len(big.Data)
	assert.Equal(t, all.ImageGroup.Versions.Edges[n-2:], back.ImageGroup.Versions.Edges)
	assert.False(t, back.ImageGroup.Versions.PageInfo.HasNextPage)
}

// TestNodeLookups: node and nodes resolve both types, keep input order, and
// answer null for ids that do not exist.
func TestNodeLookups(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.sb.Groups()[3]
	v := g.Data[0]
	gid := model.GlobalID(model.TypeImageGroup, g.GroupId)
	vid := model.GlobalID(model.TypeImageVersion, v.CompShareImageId)
	missing := model.GlobalID(model.TypeImageGroup, "group-doesnotexist")
	var out struct {
		Group   map[string]any   `json:"g"`
		Version map[string]any   `json:"v"`
		Missing map[string]any   `json:"m"`
		Nodes   []map[string]any `json:"nodes"`
		ByGroup map[string]any   `json:"byGroup"`
		ByImage map[string]any   `json:"byImage"`
		NoGroup map[string]any   `json:"noGroup"`
		NoImage map[string]any   `json:"noImage"`
	}
	e.ok(t, `query($g: ID!, $v: ID!, $m: ID!, $gid: ID!, $vid: ID!) {
		g: node(id: $g) { __typename id ... on ImageGroup { groupId } }
		v: node(id: $v) { __typename id ... on ImageVersion { imageId } }
		m: node(id: $m) { id }
		nodes(ids: [$v, $m, $g]) { __typename id }
		byGroup: imageGroup(groupId: $gid) { id groupId }
		byImage: imageVersion(imageId: $vid) { id imageId group { groupId } }
		noGroup: imageGroup(groupId: "group-nope") { id }
		noImage: imageVersion(imageId: "compshareImage-nope") { id }
	}`, map[string]any{"g": gid, "v": vid, "m": missing, "gid": g.GroupId, "vid": v.CompShareImageId}, &out)
	assert.Equal(t, map[string]any{"__typename": "ImageGroup", "id": gid, "groupId": g.GroupId}, out.Group)
	assert.Equal(t, map[string]any{"__typename": "ImageVersion", "id": vid, "imageId": v.CompShareImageId}, out.Version)
	assert.Nil(t, out.Missing)
	require.Len(t, out.Nodes, 3)
	assert.Equal(t, vid, out.Nodes[0]["id"])
	assert.Nil(t, out.Nodes[1])
	assert.Equal(t, gid, out.Nodes[2]["id"])
	assert.Equal(t, gid, out.ByGroup["id"])
	assert.Equal(t, vid, out.ByImage["id"])
	assert.Equal(t, g.GroupId, out.ByImage["group"].(map[string]any)["groupId"])
	assert.Nil(t, out.NoGroup)
	assert.Nil(t, out.NoImage)
}

// TestBadNodeIDs: an id that does not decode is null at its place with a
// BAD_USER_INPUT error carrying its path; its neighbours resolve.
func TestBadNodeIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	gid := model.GlobalID(model.TypeImageGroup, e.sb.Groups()[0].GroupId)
	resp := e.do(t, `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`,
		map[string]any{"ids": []string{gid, "not-an-id!", model.GlobalID("Other", "x")}})
	var data struct {
		Nodes []map[string]any `json:"nodes"`
	}
	require.NoError(t, json.Unmarshal(resp.Data, &data))
	require.Len(t, data.Nodes, 3)
	assert.Equal(t, gid, data.Nodes[0]["id"])
	assert.Nil(t, data.Nodes[1])
	assert.Nil(t, data.Nodes[2])
	require.Len(t, resp.Errors, 2, string(resp.raw))
	paths := []string{fmt.Sprint(resp.Errors[0].Path), fmt.Sprint(resp.Errors[1].Path)}
	assert.ElementsMatch(t, []string{"[nodes 1]", "[nodes 2]"}, paths)
	for _, err := range resp.Errors {
		assert.Equal(t, "BAD_USER_INPUT", err.Extensions["code"])
		assert.True(t, strings.Contains(err.Message, "global ID"), err.Message)
	}
}

// TestTrimmedGroupsGetFullVersions: a group that came with a version-filtered
// response (a version looked up by id, a tag-filtered page) may hold only the
// matching versions. Its versions and latestVersion still answer every
// version, whichever path and fragment reach it, and the full group is
// fetched only when the selection reads them.
func TestTrimmedGroupsGetFullVersions(t *testing.T) {
	t.Parallel()
	var g upstream.ImageGroup
	e := newEnv(t)
	for _, cand := range e.sb.Groups() {
		if len(cand.Data) >= 2 {
			g = cand
			break
		}
	}
	require.NotEmpty(t, g.GroupId, "the dataset has a group with two versions")
	imageID := g.Data[len(g.Data)-1].CompShareImageId
	vars := map[string]any{"id": imageID}

	t.Run("group fields alone are one call", func(t *testing.T) {
		e := newEnv(t)
		var out struct {
			V struct{ Group struct{ Name string } } `json:"imageVersion"`
		}
		e.ok(t, `query($id: ID!) { imageVersion(imageId: $id) { group { name } } }`, vars, &out)
		assert.Equal(t, g.ImageName, out.V.Group.Name)
		assert.Equal(t, int64(1), e.calls())
	})

	t.Run("versions through a looked-up version", func(t *testing.T) {
		e := newEnv(t)
		var out struct {
			V struct {
				Group struct {
					Versions struct{ TotalCount int }  `json:"versions"`
					Latest   *struct{ ImageID string } `json:"latestVersion"`
				} `json:"group"`
			} `json:"imageVersion"`
		}
		e.ok(t, `query($id: ID!) { imageVersion(imageId: $id) { group {
			... on Node { ... on ImageGroup { versions { totalCount } } }
			...latest
		} } }
		fragment latest on ImageGroup { latestVersion { imageId } }`, vars, &out)
		assert.Equal(t, len(g.Data), out.V.Group.Versions.TotalCount)
		assert.LessOrEqual(t, e.calls(), int64(2))
	})

	t.Run("versions through matchedVersions and nodes of a filtered page", func(t *testing.T) {
		e := newEnv(t)
		var out struct {
			C struct {
				Edges []struct {
					Matched []struct {
						Group struct {
							GroupID  string                   `json:"groupId"`
							Versions struct{ TotalCount int } `json:"versions"`
						} `json:"group"`
					} `json:"matchedVersions"`
				} `json:"edges"`
				Nodes []struct {
					GroupID  string                   `json:"groupId"`
					Versions struct{ TotalCount int } `json:"versions"`
				} `json:"nodes"`
			} `json:"imageGroups"`
		}
		e.ok(t, `{ imageGroups(first: 8, filter: {tags: ["AIGC"]}) {
			edges { matchedVersions { group { groupId versions { totalCount } } } }
			nodes { ...on ImageGroup { groupId versions { totalCount } } }
		} }`, nil, &out)
		require.NotEmpty(t, out.C.Nodes)
		full := func(id string) int {
			resp := e.oracle(t, &upstream.DescribeCommunityImagesRequest{GroupId: id})
			require.Len(t, resp.CompshareImageGroup, 1)
			return len(resp.CompshareImageGroup[0].Data)
		}
		for _, n := range out.C.Nodes {
			assert.Equal(t, full(n.GroupID), n.Versions.TotalCount, n.GroupID)
		}
		for _, edge := range out.C.Edges {
			for _, m := range edge.Matched {
				assert.Equal(t, full(m.Group.GroupID), m.Group.Versions.TotalCount, m.Group.GroupID)
			}
		}
		assert.LessOrEqual(t, e.calls(), int64(1+len(out.C.Nodes)), "one call per distinct group")
	})
}

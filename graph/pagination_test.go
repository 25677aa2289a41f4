package graph_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/testkit"
	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

type pageInfo struct {
	HasNextPage     bool    `json:"hasNextPage"`
	HasPreviousPage bool    `json:"hasPreviousPage"`
	StartCursor     *string `json:"startCursor"`
	EndCursor       *string `json:"endCursor"`
}

type groupPage struct {
	ImageGroups struct {
		TotalCount          int      `json:"totalCount"`
		AvailableTotalCount int      `json:"availableTotalCount"`
		PageInfo            pageInfo `json:"pageInfo"`
		Edges               []struct {
			Cursor string `json:"cursor"`
			Node   struct {
				GroupID string `json:"groupId"`
			} `json:"node"`
		} `json:"edges"`
		Nodes []struct {
			GroupID string `json:"groupId"`
		} `json:"nodes"`
	} `json:"imageGroups"`
}

func (p groupPage) ids() []string {
	out := make([]string, len(p.ImageGroups.Edges))
	for i, e := range p.ImageGroups.Edges {
		out[i] = e.Node.GroupID
	}
	return out
}

const pageQuery = `query($first: Int, $after: String, $last: Int, $before: String, $filter: ImageFilter, $orderBy: ImageOrder) {
  imageGroups(first: $first, after: $after, last: $last, before: $before, filter: $filter, orderBy: $orderBy) {
    totalCount availableTotalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { groupId } }
    nodes { groupId }
  }
}`

func groupIDs(gs []upstream.ImageGroup) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.GroupId
	}
	return out
}

// TestWalkForwardAndBackward walks the whole list both ways and checks it
// equals the sandbox's own order, with exact page info on every page.
func TestWalkForwardAndBackward(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	want := groupIDs(e.allGroups(t, upstream.DescribeCommunityImagesRequest{}))
	require.GreaterOrEqual(t, len(want), 120)

	var forward []string
	vars := map[string]any{"first": 17}
	for i := 0; ; i++ {
		require.Less(t, i, 20, "forward walk does not end")
		var p groupPage
		e.ok(t, pageQuery, vars, &p)
		c := p.ImageGroups
		assert.Equal(t, len(want), c.TotalCount)
		assert.Equal(t, i > 0, c.PageInfo.HasPreviousPage, "page %d", i)
		assert.Equal(t, p.ids(), func() []string {
			out := make([]string, len(c.Nodes))
			for j, n := range c.Nodes {
				out[j] = n.GroupID
			}
			return out
		}(), "edges and nodes agree")
		forward = append(forward, p.ids()...)
		assert.Equal(t, len(forward) < len(want), c.PageInfo.HasNextPage, "page %d", i)
		require.NotNil(t, c.PageInfo.EndCursor)
		assert.Equal(t, c.Edges[len(c.Edges)-1].Cursor, *c.PageInfo.EndCursor)
		assert.Equal(t, c.Edges[0].Cursor, *c.PageInfo.StartCursor)
		if !c.PageInfo.HasNextPage {
			break
		}
		vars = map[string]any{"first": 17, "after": *c.PageInfo.EndCursor}
	}
	assert.Equal(t, want, forward)

	var backward []string
	vars = map[string]any{"last": 23}
	for i := 0; ; i++ {
		require.Less(t, i, 20, "backward walk does not end")
		var p groupPage
		e.ok(t, pageQuery, vars, &p)
		c := p.ImageGroups
		assert.Equal(t, i > 0, c.PageInfo.HasNextPage, "page %d", i)
		backward = append(p.ids(), backward...)
		assert.Equal(t, len(backward) < len(want), c.PageInfo.HasPreviousPage, "page %d", i)
		if !c.PageInfo.HasPreviousPage {
			break
		}
		vars = map[string]any{"last": 23, "before": *c.PageInfo.StartCursor}
	}
	assert.Equal(t, want, backward)
}

// TestRelayWindows checks first/after/last/before combinations against
// Relay's algorithm applied to the sandbox's list.
func TestRelayWindows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	want := groupIDs(e.allGroups(t, upstream.DescribeCommunityImagesRequest{}))
	total := len(want)
	cursorAt := func(pos int) string {
		var q groupPage
		if pos == 0 {
			e.ok(t, pageQuery, map[string]any{"first": 1}, &q)
		} else {
			e.ok(t, pageQuery, map[string]any{"first": pos + 1}, &q)
			q.ImageGroups.Edges = q.ImageGroups.Edges[pos:]
		}
		return q.ImageGroups.Edges[0].Cursor
	}
	c10, c30 := cursorAt(10), cursorAt(30)
	cases := []struct {
		name             string
		vars             map[string]any
		start, end       int
		hasPrev, hasNext bool
	}{
		{"default first 20", map[string]any{}, 0, 20, false, true},
		{"first 5 after 10", map[string]any{"first": 5, "after": c10}, 11, 16, true, true},
		{"last 5 before 30", map[string]any{"last": 5, "before": c30}, 25, 30, true, true},
		{"last 5 without before ends at the end", map[string]any{"last": 5}, total - 5, total, true, false},
		{"first 10 then last 3", map[string]any{"first": 10, "last": 3}, 7, 10, true, true},
		{"after 10 before 30", map[string]any{"after": c10, "before": c30, "first": 100}, 11, 30, true, true},
		{"after 10 before 30 last 4", map[string]any{"after": c10, "before": c30, "last": 4}, 26, 30, true, true},
		{"first larger than the list", map[string]any{"first": 500}, 0, total, false, false},
		{"last larger than the list", map[string]any{"last": 500}, 0, total, false, false},
		{"first 250 spans three upstream calls", map[string]any{"first": 250, "after": c10}, 11, total, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p groupPage
			e.ok(t, pageQuery, tc.vars, &p)
			end := min(tc.end, total)
			assert.Equal(t, want[tc.start:end], p.ids())
			assert.Equal(t, tc.hasPrev, p.ImageGroups.PageInfo.HasPreviousPage, "hasPreviousPage")
			assert.Equal(t, tc.hasNext, p.ImageGroups.PageInfo.HasNextPage, "hasNextPage")
			assert.Equal(t, total, p.ImageGroups.TotalCount)
		})
	}
}

// TestEmptyWindows: first 0 and a cursor past the end give empty pages with
// null cursors and exact flags.
func TestEmptyWindows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var p groupPage
	e.ok(t, pageQuery, map[string]any{"first": 0}, &p)
	assert.Empty(t, p.ImageGroups.Edges)
	assert.Empty(t, p.ImageGroups.Nodes)
	assert.NotNil(t, p.ImageGroups.Nodes, "nodes is [] not null")
	assert.Nil(t, p.ImageGroups.PageInfo.StartCursor)
	assert.Nil(t, p.ImageGroups.PageInfo.EndCursor)
	assert.True(t, p.ImageGroups.PageInfo.HasNextPage)
	assert.False(t, p.ImageGroups.PageInfo.HasPreviousPage)
	assert.Positive(t, p.ImageGroups.TotalCount)

	var none groupPage
	e.ok(t, pageQuery, map[string]any{"filter": map[string]any{"name": "no image is called this"}}, &none)
	assert.Zero(t, none.ImageGroups.TotalCount)
	assert.Empty(t, none.ImageGroups.Edges)
	assert.False(t, none.ImageGroups.PageInfo.HasNextPage)
	assert.False(t, none.ImageGroups.PageInfo.HasPreviousPage)
}

// TestLargeWindowIsConcurrentChunks: a window over 100 is several upstream
// calls of at most 100, made together, stitched in order.
func TestLargeWindowIsConcurrentChunks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withSandboxOptions(sandbox.WithLatency(20*time.Millisecond)))
	want := groupIDs(e.allGroups(t, upstream.DescribeCommunityImagesRequest{}))
	e.sb.ResetStats()
	var p groupPage
	e.ok(t, pageQuery, map[string]any{"first": 120}, &p)
	assert.Equal(t, want[:120], p.ids())
	assert.EqualValues(t, 2, e.calls(), "120 items: calls of 100 and 20")
	assert.EqualValues(t, 2, e.sb.Stats().MaxInFlight, "the two calls were in flight together")
}

// TestCountOnlyIsOneSmallCall: a selection without edges or nodes makes one
// call with Limit=1.
func TestCountOnlyIsOneSmallCall(t *testing.T) {
	t.Parallel()
	svc := &testkit.Upstream{}
	e := newEnv(t, withService(func(s upstream.Service) upstream.Service { svc.Answer = s.DescribeCommunityImages; return svc }))
	var out struct {
		ImageGroups struct {
			TotalCount int      `json:"totalCount"`
			PageInfo   pageInfo `json:"pageInfo"`
		} `json:"imageGroups"`
	}
	e.ok(t, `{ imageGroups(first: 50) { totalCount pageInfo { hasNextPage endCursor } } }`, nil, &out)
	var limits []int
	for _, r := range svc.Requests() {
		limits = append(limits, *r.Limit)
	}
	assert.Equal(t, []int{1}, limits)
	assert.Positive(t, out.ImageGroups.TotalCount)
	assert.True(t, out.ImageGroups.PageInfo.HasNextPage)
	require.NotNil(t, out.ImageGroups.PageInfo.EndCursor)
}

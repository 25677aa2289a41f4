package model

import (
	"fmt"
	"testing"

	"github.com/compshare/imagegraph/upstream"
	"github.com/stretchr/testify/require"
)

// page returns a response of n groups of three versions each, every
// optional field set, so that mapping it takes every path that allocates.
func page(n int) *upstream.DescribeCommunityImagesResponse {
	resp := &upstream.DescribeCommunityImagesResponse{TotalCount: n}
	for i := range n {
		g := upstream.ImageGroup{GroupId: fmt.Sprintf("g%d", i), ImageName: "name", Status: upstream.GroupStatusAvailable}
		for j := range 3 {
			g.Data = append(g.Data, upstream.Image{
				CompShareImageId: fmt.Sprintf("img-%d-%d", i, j),
				Status:           upstream.ImageStatusAvailable,
				Container:        upstream.ContainerTrue,
				Cover:            "https://example.com/c.png",
				QrCodeUrl:        "https://example.com/q.png",
				PubTime:          int64(1_700_000_000 + j),
				SoftwarePorts:    []upstream.SoftwarePort{{Software: "jupyter", Port: 8888}},
				Tags:             []string{"a"},
			})
		}
		resp.CompshareImageGroup = append(resp.CompshareImageGroup, g)
	}
	return resp
}

// TestMappingAPageAllocatesPerPage: a page's groups, versions and the values
// they point at come from a few arrays made for the whole page, so mapping
// 20 groups allocates no more than mapping one (distinct pages map one page
// a request; a per-group or per-version allocation would show here).
func TestMappingAPageAllocatesPerPage(t *testing.T) {
	for _, n := range []int{1, 20} {
		resp := page(n)
		allocs := testing.AllocsPerRun(50, func() { _ = Mapper{}.Groups(resp, true) })
		require.LessOrEqual(t, allocs, 9.0, "%d groups", n)
	}
	groups := Mapper{}.Groups(page(2), true)
	require.Len(t, groups[0].KnownVersions, 3)
	require.Equal(t, "img-0-2", groups[0].sorted[0].ImageID, "newest first")
	require.Same(t, groups[1], groups[1].KnownVersions[0].Parent)
	require.Equal(t, 8888, groups[1].KnownVersions[2].SoftwarePorts[0].Port)
}

// TestParsePageArgsAllocatesNothing: a connection's arguments are parsed for
// every object that has the connection (each group's versions), so they
// are values.
func TestParsePageArgsAllocatesNothing(t *testing.T) {
	first, after := 5, EncodeCursor(3)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ParsePageArgs(&first, &after, nil, nil, 100); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs)
	p, err := ParsePageArgs(&first, &after, nil, nil, 100)
	require.NoError(t, err)
	require.Equal(t, Window{Start: 4, End: 9}, p.Window(20))
}

// TestLongestCursorFits: decodeCursor refuses anything longer than
// maxCursorLen before decoding it, so the longest cursor must fit.
func TestLongestCursorFits(t *testing.T) {
	c := EncodeCursor(maxPosition)
	require.LessOrEqual(t, len(c), maxCursorLen)
	pos, err := decodeCursor("after", c)
	require.NoError(t, err)
	require.Equal(t, maxPosition, pos)
	_, err = decodeCursor("after", c+"A")
	require.Error(t, err)
}

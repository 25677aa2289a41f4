package graph

import (
	"log/slog"
	"runtime"
	"testing"
	"weak"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/graph/model"
	"github.com/compshare/imagegraph/upstream"
)

func memoResponse() *upstream.DescribeCommunityImagesResponse {
	return &upstream.DescribeCommunityImagesResponse{TotalCount: 1, CompshareImageGroup: []upstream.ImageGroup{
		{GroupId: "g1", Data: []upstream.Image{{CompShareImageId: "v1"}, {CompShareImageId: "v2"}}},
	}}
}

// TestPageMemo: a response read by several requests is mapped once, and the
// page indexes its groups (when complete) and versions.
func TestPageMemo(t *testing.T) {
	memo := newPageMemo(model.Mapper{})
	resp := memoResponse()
	p := memo.page(resp, true)
	assert.Same(t, p, memo.page(resp, true), "mapped once")
	assert.Same(t, p, newPageMemo(model.Mapper{}).page(resp, true), "by any memo of the same mapper")
	assert.NotSame(t, p, memo.page(resp, false), "complete or not is part of the key")
	assert.NotSame(t, p, newPageMemo(model.Mapper{MaxPageSize: 7}).page(resp, true), "so is the mapper")
	assert.NotSame(t, p, newPageMemo(model.Mapper{Log: slog.Default()}).page(resp, true), "so is the mapper")
	require.NotNil(t, p.groups["g1"])
	assert.Equal(t, "v2", p.versions["v2"].ImageID)
	assert.Same(t, p.groups["g1"], p.versions["v2"].Parent)
	assert.Nil(t, memo.page(resp, false).groups, "an incomplete page's groups answer no lookup")
}

// TestPageDiesWithItsResponse: a page is collected in the same collection
// as its response. When pages outlived their responses by one collection,
// each collection found alive every page mapped since the one before, and
// the heap grew without bound at a high GOGC.
func TestPageDiesWithItsResponse(t *testing.T) {
	memo := newPageMemo(model.Mapper{})
	page, resp := func() (weak.Pointer[Page], weak.Pointer[upstream.DescribeCommunityImagesResponse]) {
		r := memoResponse()
		return weak.Make(memo.page(r, true)), weak.Make(r)
	}()
	runtime.GC()
	assert.Nil(t, resp.Value(), "the response is collected")
	assert.Nil(t, page.Value(), "and its page with it, in the same collection")
}

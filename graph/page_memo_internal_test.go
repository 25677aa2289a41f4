package graph

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/graph/model"
	"github.com/compshare/imagegraph/upstream"
)

// TestPageMemo: a response read by several requests is mapped once, the
// page indexes its groups (when complete) and versions, and the memo forgets
// a page once its response is collected.
func TestPageMemo(t *testing.T) {
	memo := newPageMemo(model.Mapper{})
	resp := &upstream.DescribeCommunityImagesResponse{TotalCount: 1, CompshareImageGroup: []upstream.ImageGroup{
		{GroupId: "g1", Data: []upstream.Image{{CompShareImageId: "v1"}, {CompShareImageId: "v2"}}},
	}}
	p := memo.page(resp, true)
	assert.Same(t, p, memo.page(resp, true), "mapped once")
	assert.NotSame(t, p, memo.page(resp, false), "complete or not is part of the key")
	require.NotNil(t, p.groups["g1"])
	assert.Equal(t, "v2", p.versions["v2"].ImageID)
	assert.Same(t, p.groups["g1"], p.versions["v2"].Parent)
	assert.Nil(t, memo.page(resp, false).groups, "an incomplete page's groups answer no lookup")
	assert.Equal(t, 2, memo.len())

	runtime.KeepAlive(resp)
	resp = nil
	require.Eventually(t, func() bool {
		runtime.GC()
		return memo.len() == 0
	}, 10*time.Second, 10*time.Millisecond, "the pages of a collected response are forgotten")
}

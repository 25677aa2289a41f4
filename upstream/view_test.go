package upstream

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestView: each key's value is built once and the first stored is the one
// every reader gets, however many read at once; other keys and other
// responses have values of their own.
func TestView(t *testing.T) {
	var r, other DescribeCommunityImagesResponse
	var builds atomic.Int32
	build := func() any { builds.Add(1); return new(int) }

	var wg sync.WaitGroup
	got := make([]any, 16)
	for i := range got {
		wg.Go(func() { got[i] = r.View("page", build) })
	}
	wg.Wait()
	for _, v := range got {
		assert.Same(t, got[0], v, "every reader gets the first value stored")
	}
	n := builds.Load()
	assert.Same(t, got[0], r.View("page", build))
	assert.Equal(t, n, builds.Load(), "a stored view is not built again")

	assert.NotSame(t, got[0], r.View("other", build), "another key")
	assert.NotSame(t, got[0], other.View("page", build), "another response")
}

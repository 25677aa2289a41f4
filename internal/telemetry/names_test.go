package telemetry

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestOperationNamesAreBounded: the safelist's names always count as
// themselves; of the others, the first max do, and the rest (and names too
// long to be names) count as other, however many goroutines ask at once.
func TestOperationNamesAreBounded(t *testing.T) {
	t.Parallel()
	n := newOperationNames(3)
	n.know([]string{"Listed"})
	assert.Equal(t, "anonymous", n.label(""))
	assert.Equal(t, "A", n.label("A"))
	assert.Equal(t, "A", n.label("A"), "a name seen counts once")
	assert.Equal(t, "other", n.label(strings.Repeat("x", maxNameLen+1)))

	var wg sync.WaitGroup
	labels := make([]string, 50)
	for i := range labels {
		wg.Go(func() { labels[i] = n.label(fmt.Sprintf("Op%d", i)) })
	}
	wg.Wait()
	own := 0
	for _, l := range labels {
		if l != "other" {
			own++
		}
	}
	assert.Equal(t, 2, own, "A and two more: the bound is 3")
	assert.Equal(t, "Listed", n.label("Listed"), "the safelist is beyond the bound")
	assert.Equal(t, "A", n.label("A"))
	assert.Equal(t, "other", n.known("Never"), "known admits nothing")
	assert.Equal(t, "A", n.known("A"))
}

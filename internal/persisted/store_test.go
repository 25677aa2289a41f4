package persisted

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNewMemoryStoreOfNoBytes: a bound under one byte (which the settings
// refuse) keeps nothing.
func TestNewMemoryStoreOfNoBytes(t *testing.T) {
	t.Parallel()
	for _, maxBytes := range []int64{0, -1} {
		s := NewMemoryStore(maxBytes)
		s.Add(context.Background(), "h", "{ a }")
		_, ok := s.Get(context.Background(), "h")
		assert.False(t, ok, "maxBytes %d", maxBytes)
	}
}

func TestMemoryStoreGetAdd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := NewMemoryStore(1 << 20)

	_, ok := s.Get(ctx, hashOf("{ name }"))
	assert.False(t, ok)

	s.Add(ctx, hashOf("{ name }"), "{ name }")
	got, ok := s.Get(ctx, hashOf("{ name }"))
	require.True(t, ok)
	assert.Equal(t, "{ name }", got)
}

func TestMemoryStoreKeepsWithinItsBound(t *testing.T) {
	t.Parallel()
	const maxBytes = 64 << 10
	ctx := context.Background()
	s := NewMemoryStore(maxBytes)

	// Far more than the bound, from several goroutines, in sizes from a
	// few bytes to a few KiB.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				query := fmt.Sprintf("query Q%d_%d { name }", g, i) + strings.Repeat(" ", (g*2000+i)%3000)
				s.Add(ctx, hashOf(query), query)
			}
		})
	}
	wg.Wait()
	s.cache.CleanUp()

	var kept uint64
	n := 0
	for hash, query := range s.cache.All() {
		assert.Equal(t, hashOf(query), hash)
		kept += weight(hash, query)
		n++
	}
	assert.Positive(t, n, "the store keeps something")
	assert.LessOrEqual(t, kept, uint64(maxBytes))
	assert.LessOrEqual(t, s.cache.WeightedSize(), uint64(maxBytes))
}

func TestMemoryStoreDoesNotKeepWhatIsLargerThanItsBound(t *testing.T) {
	t.Parallel()
	const maxBytes = 1000
	hash := hashOf("x")
	fits := strings.Repeat("x", maxBytes-len(hash)-EntryOverhead)

	tests := []struct {
		name  string
		query string
		kept  bool
	}{
		{name: "exactly the bound", query: fits, kept: true},
		{name: "one byte over", query: fits + "x", kept: false},
		{name: "far over", query: strings.Repeat("x", 10*maxBytes), kept: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := NewMemoryStore(maxBytes)

			s.Add(ctx, hash, tt.query)
			s.cache.CleanUp()
			_, ok := s.Get(ctx, hash)
			assert.Equal(t, tt.kept, ok)
			assert.LessOrEqual(t, s.cache.WeightedSize(), uint64(maxBytes))
		})
	}
}

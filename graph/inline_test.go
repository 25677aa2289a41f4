package graph_test

import (
	"context"
	"sync"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/graph"
)

// fieldCounter is a handler extension that intercepts every field and
// counts them by Object.field.
type fieldCounter struct {
	mu   sync.Mutex
	seen map[string]int
}

func (*fieldCounter) ExtensionName() string                   { return "fieldCounter" }
func (*fieldCounter) Validate(graphql.ExecutableSchema) error { return nil }

func (c *fieldCounter) InterceptField(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	c.mu.Lock()
	c.seen[fc.Object+"."+fc.Field.Name]++
	c.mu.Unlock()
	return next(ctx)
}

// TestFieldInterceptorsSeePlainFields: plain fields are read inline only
// while no extension intercepts fields; with one, it sees every field, and
// the answer is the same either way.
func TestFieldInterceptorsSeePlainFields(t *testing.T) {
	t.Parallel()
	const query = `{ imageGroups(first: 3) { totalCount edges { cursor node {
		groupId name favoritesCount status useTime
		versions { totalCount nodes { imageId name createdAt publishedAt coverUrl authorType } }
		latestVersion { imageId name publishedAt }
	} } } }`
	plain := newEnv(t)
	counter := &fieldCounter{seen: map[string]int{}}
	intercepted := newEnv(t, withHandlerConfig(func(c *graph.HandlerConfig) {
		c.Extensions = append(c.Extensions, counter)
	}))
	want, got := plain.do(t, query, nil), intercepted.do(t, query, nil)
	require.Empty(t, want.Errors, string(want.raw))
	assert.JSONEq(t, string(want.raw), string(got.raw))
	for _, f := range []string{"ImageGroup.name", "ImageGroup.status", "ImageGroupEdge.cursor", "ImageVersion.imageId", "ImageVersion.publishedAt", "ImageVersionConnection.totalCount"} {
		assert.Positive(t, counter.seen[f], "the interceptor saw %s", f)
	}
	assert.Equal(t, 3, counter.seen["ImageGroup.name"])
}

package cache_test

import (
	"testing"

	"github.com/compshare/imagegraph/internal/cache"
	"github.com/compshare/imagegraph/internal/testkit"
)

// BenchmarkCacheHit is the reference operation answered from the cache,
// through the real HTTP handler: what a request costs once the cache is
// warm (compare graph's BenchmarkReferenceOperation, which goes upstream).
func BenchmarkCacheHit(b *testing.B) {
	e := newEnv(b, cache.Options{})
	testkit.Measure(b, testkit.Poster(b, e.api.URL, testkit.ReferenceQuery, 1000))
	if calls := e.calls(); calls != 1 {
		b.Fatalf("%d upstream calls", calls)
	}
}

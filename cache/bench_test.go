package cache_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/compshare/imagegraph/cache"
)

// referenceQuery is the README's reference operation.
const referenceQuery = `{ imageGroups(first: 20) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { groupId name favoritesCount status useTime versions { totalCount nodes { imageId name } } latestVersion { imageId name publishedAt } } } } }`

// BenchmarkCacheHit is the reference operation answered from the cache,
// through the real HTTP handler: what a request costs once the cache is
// warm (compare graph's BenchmarkReferenceOperation, which goes upstream).
func BenchmarkCacheHit(b *testing.B) {
	e := newEnv(b, cache.Options{})
	body, _ := json.Marshal(map[string]any{"query": referenceQuery})
	post := func() {
		resp, err := http.Post(e.api.URL, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n < 1000 {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
	post()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		post()
	}
	if calls := e.calls(); calls != 1 {
		b.Fatalf("%d upstream calls", calls)
	}
}

package testkit

// What benchmarks of several packages share about the API: the README's
// reference operation, a client that posts an operation and checks the
// answer, and the CPU time a benchmark spends.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// ReferenceQuery is the README's reference operation: one 20-group page
// with nested versions and latestVersion (cost 491, one upstream call).
const ReferenceQuery = `{
  imageGroups(first: 20) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      groupId name favoritesCount status useTime
      versions { totalCount nodes { imageId name } }
      latestVersion { imageId name publishedAt }
    } }
  }
}`

// Poster returns a function that POSTs query to url as JSON and fails tb
// unless the answer is a 200 of at least minBytes.
func Poster(tb testing.TB, url, query string, minBytes int64) func() {
	body, err := json.Marshal(map[string]any{"query": query})
	if err != nil {
		tb.Fatal(err)
	}
	return func() {
		resp, err := http.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			tb.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n < minBytes {
			tb.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
}

// CPUTime returns the CPU time the process has used (user + system).
func CPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportCPU adds cpu-ns/op to b: the process's CPU time per operation since
// start (a CPUTime), which is what the overhead budgets compare (wall time
// hides CPU spent concurrently and counts time spent waiting).
func ReportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(CPUTime()-start)/float64(b.N), "cpu-ns/op")
}

// Measure runs op once untimed (to warm caches and connections), then in
// b's loop, reporting allocations and cpu-ns/op.
func Measure(b *testing.B, op func()) {
	op()
	b.ReportAllocs()
	b.ResetTimer()
	start := CPUTime()
	for b.Loop() {
		op()
	}
	ReportCPU(b, start)
}

package testkit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// SubscribeSSE subscribes to query at url over Server-Sent Events
// (graphql-sse, distinct connections mode) until ctx ends, failing the
// test unless the server answers 200. It returns the response and the data
// of each `next` event, in order; the channel closes when the stream ends
// or ctx is done.
func SubscribeSSE(tb testing.TB, ctx context.Context, url, query string) (*http.Response, <-chan string) {
	tb.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		tb.Fatalf("subscribe over SSE: status %d", resp.StatusCode)
	}
	events := make(chan string, 16)
	go func() {
		defer close(events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			if e, ok := strings.CutPrefix(line, "event: "); ok {
				event = e
			} else if data, ok := strings.CutPrefix(line, "data: "); ok && event == "next" {
				select {
				case events <- data:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return resp, events
}

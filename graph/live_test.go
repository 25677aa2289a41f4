package graph_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/compshare/imagegraph/graph"
	"github.com/compshare/imagegraph/internal/live"
)

// TestNoGoroutineOutlivesItsStream: subscriptions over WebSocket and SSE,
// stopped, completed, or their clients gone, leave no goroutine behind:
// not the connection's, not the subscription's, not its cohort's poller.
func TestNoGoroutineOutlivesItsStream(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	e := newEnv(t, withHandlerConfig(func(c *graph.HandlerConfig) {
		c.Live = &live.Options{
			Interval: 20 * time.Millisecond,
			Key:      func(oc *graphql.OperationContext) (string, bool) { return oc.RawQuery, true },
		}
		c.LiveTransports = live.TransportOptions{KeepAlive: 50 * time.Millisecond}
	}))
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	// What runs before any stream: the servers, the pools.
	before := goleak.IgnoreCurrent()
	url := strings.Replace(e.api.URL, "http", "ws", 1)
	const q = `subscription { imageGroups(first: 2) { nodes { groupId } } }`

	// A WebSocket that subscribes, stops, subscribes again and closes.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}, HTTPClient: client})
	require.NoError(t, err)
	require.NoError(t, wsjson.Write(ctx, c, map[string]any{"type": "connection_init"}))
	require.NoError(t, wsjson.Write(ctx, c, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": q}}))
	require.NoError(t, wsjson.Write(ctx, c, map[string]any{"id": "2", "type": "subscribe", "payload": map[string]any{"query": q}}))
	seen := map[string]bool{}
	for len(seen) < 2 {
		var m map[string]any
		require.NoError(t, wsjson.Read(ctx, c, &m))
		if m["type"] == "next" {
			seen[m["id"].(string)] = true
		}
	}
	require.NoError(t, wsjson.Write(ctx, c, map[string]any{"id": "1", "type": "complete"}))
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))

	// A WebSocket whose client vanishes without a close.
	c, _, err = websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}, HTTPClient: client})
	require.NoError(t, err)
	require.NoError(t, wsjson.Write(ctx, c, map[string]any{"type": "connection_init"}))
	require.NoError(t, wsjson.Write(ctx, c, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": q}}))
	for {
		var m map[string]any
		require.NoError(t, wsjson.Read(ctx, c, &m))
		if m["type"] == "next" {
			break
		}
	}
	_ = c.CloseNow()

	// An SSE stream whose reader leaves.
	body, _ := json.Marshal(map[string]any{"query": q})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.api.URL, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	sctx, scancel := context.WithCancel(ctx)
	resp, err := client.Do(req.WithContext(sctx))
	require.NoError(t, err)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "data: ") {
	}
	scancel()
	resp.Body.Close()

	// Everything they started ends (the polls' keep-alive connections to
	// the sandbox are the upstream client's pool, not the streams').
	assert.Eventually(t, func() bool {
		e.client.CloseIdleConnections()
		return goleak.Find(before) == nil
	}, 10*time.Second, 20*time.Millisecond, "goroutines outlived their streams: %v", goleak.Find(before))
}

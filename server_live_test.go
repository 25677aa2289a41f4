package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/codes"
	"github.com/compshare/imagegraph/internal/testkit"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

// Subscriptions through run, over WebSocket and SSE, against the sandbox,
// whose data the tests change through its endpoint.

// liveEnv polls every 200 ms: a change must reach a subscriber within
// that plus a second.
var liveEnv = map[string]string{"LIVE_POLL_INTERVAL": "200ms", "METRICS_ADDR": "127.0.0.1:0"}

func withEnv(extra map[string]string) map[string]string {
	env := map[string]string{}
	for k, v := range liveEnv {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// wsConn is a graphql-transport-ws client: a goroutine reads its messages
// (answering pings), so that waiting for one never ends the connection.
type wsConn struct {
	t    *testing.T
	c    *websocket.Conn
	msgs chan map[string]any
	end  chan struct{}
	// pending are messages read while waiting for another.
	pending []map[string]any
	err     error // why reading ended, once end is closed
}

// dialWS opens a WebSocket to s with the graphql-transport-ws subprotocol
// and the headers given; it returns the dial error, if any.
func dialWS(t *testing.T, s *server, header http.Header) (*wsConn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, strings.Replace(s.url, "http", "ws", 1)+"/query",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: header})
	if err != nil {
		return nil, resp, err
	}
	w := &wsConn{t: t, c: c, msgs: make(chan map[string]any, 64), end: make(chan struct{})}
	go w.readAll()
	t.Cleanup(func() { _ = c.CloseNow() })
	return w, resp, nil
}

func (w *wsConn) readAll() {
	defer close(w.end)
	for {
		var m map[string]any
		if err := wsjson.Read(context.Background(), w.c, &m); err != nil {
			w.err = err
			return
		}
		switch m["type"] {
		case "ping":
			_ = wsjson.Write(context.Background(), w.c, map[string]any{"type": "pong"})
			continue
		}
		w.msgs <- m
	}
}

func (w *wsConn) send(v map[string]any) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(w.t, wsjson.Write(ctx, w.c, v))
}

// read returns the next message within the time given, or an error when
// none came or the connection ended.
func (w *wsConn) read(within time.Duration) (map[string]any, error) {
	select {
	case m := <-w.msgs:
		return m, nil
	case <-w.end:
		select {
		case m := <-w.msgs:
			return m, nil
		default:
		}
		return nil, w.err
	case <-time.After(within):
		return nil, errors.New("no message")
	}
}

// expect returns the next message of type typ (and of id, when the
// message has one and id is not ""): messages of other subscriptions, which
// their goroutines send in no set order, are kept for their turn.
func (w *wsConn) expect(typ string, id ...string) map[string]any {
	w.t.Helper()
	for i, m := range w.pending {
		if match(m, typ, id) {
			w.pending = append(w.pending[:i], w.pending[i+1:]...)
			return m
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := w.read(time.Until(deadline))
		require.NoError(w.t, err, "waiting for %s %v; kept %v", typ, id, w.pending)
		if match(m, typ, id) {
			return m
		}
		w.pending = append(w.pending, m)
	}
}

func match(m map[string]any, typ string, id []string) bool {
	return m["type"] == typ && (len(id) == 0 || m["id"] == id[0])
}

func (w *wsConn) init(payload map[string]any) {
	w.t.Helper()
	msg := map[string]any{"type": "connection_init"}
	if payload != nil {
		msg["payload"] = payload
	}
	w.send(msg)
	w.expect("connection_ack")
}

func (w *wsConn) subscribe(id, query string) {
	w.t.Helper()
	w.send(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": query}})
}

// closeCode waits for the connection to end and returns its close code.
func (w *wsConn) closeCode() websocket.StatusCode {
	w.t.Helper()
	select {
	case <-w.end:
		return websocket.CloseStatus(w.err)
	case <-time.After(15 * time.Second):
		w.t.Fatal("the connection did not end")
		return 0
	}
}

// reviewing is a version the sandbox has under review.
const reviewing = sandbox.EdgeReviewingImageID

const versionStatus = `subscription Watch { imageVersion(imageId: "` + reviewing + `") { imageId status } }`

// changeVersion changes the version's status through the sandbox's
// endpoint.
func changeVersion(t *testing.T, s *server, status string) {
	t.Helper()
	resp, err := http.Post(s.url+"/sandbox/versions/"+reviewing, "application/json", strings.NewReader(`{"status":"`+status+`"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func statusOf(t *testing.T, m map[string]any) string {
	t.Helper()
	v := m["payload"].(map[string]any)["data"].(map[string]any)["imageVersion"].(map[string]any)
	return v["status"].(string)
}

// TestSubscriptionOverWebSocket: the first event is the current value;
// each change through the sandbox's endpoint is one event, within the
// interval and a second; nothing while unchanged; a version that
// disappears is null... (the sandbox keeps its versions: the test checks
// an id that never existed).
func TestSubscriptionOverWebSocket(t *testing.T) {
	t.Parallel()
	s := startServer(t, withEnv(nil))
	ws, _, err := dialWS(t, s, nil)
	require.NoError(t, err)
	ws.init(nil)
	ws.subscribe("1", versionStatus)
	assert.Equal(t, "REVIEWING", statusOf(t, ws.expect("next")))

	for _, status := range []string{"Available", "Offline", "Reviewing"} {
		start := time.Now()
		changeVersion(t, s, status)
		m, err := ws.read(200*time.Millisecond + time.Second + time.Second) // the interval, the promised second, slack for -race
		require.NoError(t, err, "the change arrives")
		assert.Equal(t, strings.ToUpper(status), statusOf(t, m))
		t.Logf("%s arrived after %s", status, time.Since(start))
	}
	_, err = ws.read(time.Second)
	assert.Error(t, err, "nothing while unchanged")

	ws.subscribe("2", `subscription { imageVersion(imageId: "compshareImage-none") { imageId } }`)
	m := ws.expect("next")
	assert.Equal(t, "2", m["id"])
	assert.Nil(t, m["payload"].(map[string]any)["data"].(map[string]any)["imageVersion"])

	ws.send(map[string]any{"id": "1", "type": "complete"})
	ws.send(map[string]any{"type": "ping"})
	ws.expect("pong")
}

// TestSubscriptionOverSSE: graphql-sse's distinct connections mode: a POST
// that accepts text/event-stream gets the first value, then a change.
func TestSubscriptionOverSSE(t *testing.T) {
	t.Parallel()
	s := startServer(t, withEnv(nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, events := testkit.SubscribeSSE(t, ctx, s.url+"/query", versionStatus)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	first := <-events
	assert.Contains(t, first, `"status":"REVIEWING"`)
	changeVersion(t, s, "Available")
	select {
	case e := <-events:
		assert.Contains(t, e, `"status":"AVAILABLE"`)
	case <-time.After(3 * time.Second):
		t.Fatal("no event for the change")
	}
}

// TestSubscriptionKeys: with API keys, a WebSocket sends its key in
// connection_init (or its upgrade's Authorization header); without one it
// is closed with 4403; SSE needs the header like any request.
func TestSubscriptionKeys(t *testing.T) {
	t.Parallel()
	const key = "k-live-0123456789"
	s := startServer(t, withEnv(map[string]string{"API_KEYS_FILE": writeFile(t, "keys", "watcher:"+sha(key)+"\n")}))

	ws, _, err := dialWS(t, s, nil)
	require.NoError(t, err, "the upgrade needs no key: browsers cannot send one")
	ws.send(map[string]any{"type": "connection_init"})
	assert.Equal(t, websocket.StatusCode(4403), ws.closeCode())

	ws, _, err = dialWS(t, s, nil)
	require.NoError(t, err)
	ws.send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer wrong"}})
	assert.Equal(t, websocket.StatusCode(4403), ws.closeCode())

	ws, _, err = dialWS(t, s, nil)
	require.NoError(t, err)
	ws.init(map[string]any{"Authorization": "Bearer " + key})
	ws.subscribe("1", versionStatus)
	ws.expect("next")

	ws, _, err = dialWS(t, s, http.Header{"Authorization": {"Bearer " + key}})
	require.NoError(t, err)
	ws.init(nil)

	body, _ := json.Marshal(map[string]any{"query": versionStatus})
	req, _ := http.NewRequest(http.MethodPost, s.url+"/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

// TestSubscriptionBounds: past MAX_SUBSCRIPTIONS_PER_CLIENT a subscription
// gets an error with its code and the connection stays usable; a client's
// WebSocket past the same bound is closed with 4429; an invalid or
// refused subscription gets a coded error too.
func TestSubscriptionBounds(t *testing.T) {
	t.Parallel()
	s := startServer(t, withEnv(map[string]string{"MAX_SUBSCRIPTIONS_PER_CLIENT": "2", "MAX_DEPTH": "3"}))
	ws, _, err := dialWS(t, s, nil)
	require.NoError(t, err)
	ws.init(nil)
	ws.subscribe("1", versionStatus)
	ws.expect("next", "1")
	ws.subscribe("2", `subscription { imageGroup(groupId: "g") { groupId } }`)
	ws.expect("next", "2")
	ws.subscribe("3", `subscription { imageGroups(first: 1) { totalCount } }`)
	assert.Equal(t, codes.MaxSubscriptions, firstCode(ws.expect("next", "3")))
	ws.expect("complete", "3")

	ws.subscribe("4", `subscription { imageGroups(first: 1) { nodes { versions { nodes { group { name } } } } } }`)
	assert.Equal(t, codes.MaxDepth, errorCode(ws.expect("error", "4")), "the operation limits apply")
	ws.subscribe("5", `subscription { nope }`)
	assert.Equal(t, codes.ValidationFailed, errorCode(ws.expect("error", "5")))

	ws.send(map[string]any{"id": "1", "type": "complete"})
	require.Eventually(t, func() bool {
		id := fmt.Sprint(time.Now().UnixNano())
		ws.subscribe(id, `subscription { imageGroups(first: 1) { totalCount } }`)
		if firstCode(ws.expect("next", id)) != "" {
			ws.expect("complete", id)
			return false
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "room again once one ended: the connection stayed usable")
	for _, m := range ws.pending {
		assert.False(t, m["type"] == "complete" && (m["id"] == "4" || m["id"] == "5"),
			"graphql-transport-ws: nothing follows an operation's error, but %v did", m)
	}

	second, _, err := dialWS(t, s, nil)
	require.NoError(t, err)
	second.init(nil)
	ws2, _, err := dialWS(t, s, nil)
	require.NoError(t, err)
	ws2.send(map[string]any{"type": "connection_init"})
	assert.Equal(t, websocket.StatusCode(4429), ws2.closeCode(), "a third WebSocket of the client")
}

func firstCode(m map[string]any) string {
	errs, _ := m["payload"].(map[string]any)["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	c, _ := errs[0].(map[string]any)["extensions"].(map[string]any)["code"].(string)
	return c
}

func errorCode(m map[string]any) string {
	errs, _ := m["payload"].([]any)
	if len(errs) == 0 {
		return ""
	}
	c, _ := errs[0].(map[string]any)["extensions"].(map[string]any)["code"].(string)
	return c
}

// TestSubscriptionOrigins: the upgrade's Origin must be allowed by
// CORS_ALLOWED_ORIGINS, or the page's own.
func TestSubscriptionOrigins(t *testing.T) {
	t.Parallel()
	s := startServer(t, withEnv(map[string]string{"CORS_ALLOWED_ORIGINS": "https://app.example"}))
	_, resp, err := dialWS(t, s, http.Header{"Origin": {"https://evil.example"}})
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	_, _, err = dialWS(t, s, http.Header{"Origin": {"https://app.example"}})
	assert.NoError(t, err)
	_, _, err = dialWS(t, s, http.Header{"Origin": {s.url}})
	assert.NoError(t, err, "the same origin")
}

// TestSubscriptionDrain: at shutdown, after the drain, open WebSockets are
// closed with 1012, which clients retry.
func TestSubscriptionDrain(t *testing.T) {
	t.Parallel()
	s := startServer(t, withEnv(map[string]string{"SHUTDOWN_DRAIN": "200ms"}))
	ws, _, err := dialWS(t, s, nil)
	require.NoError(t, err)
	ws.init(nil)
	ws.subscribe("1", versionStatus)
	ws.expect("next")
	s.stop()
	assert.Equal(t, websocket.StatusCode(1012), ws.closeCode())
	s.wait(t)
}

// TestCohortsShareTheirPolls: fifty subscribers of one operation, over
// both transports, cost about one upstream call per interval; a client
// that vanishes without a close is cleaned up.
func TestCohortsShareTheirPolls(t *testing.T) {
	t.Parallel()
	s := startServer(t, withEnv(map[string]string{"LIVE_POLL_INTERVAL": "250ms", "MAX_SUBSCRIPTIONS_PER_CLIENT": "0"}))
	var conns []*wsConn
	for range 25 {
		ws, _, err := dialWS(t, s, nil)
		require.NoError(t, err)
		ws.init(nil)
		ws.subscribe("1", versionStatus)
		ws.subscribe("2", versionStatus)
		ws.expect("next")
		ws.expect("next")
		conns = append(conns, ws)
	}
	before := s.sandboxCalls(t)
	time.Sleep(2 * time.Second) // eight intervals
	calls := s.sandboxCalls(t) - before
	assert.LessOrEqual(t, calls, 8.0+2, "about one call per interval for fifty subscribers")
	assert.GreaterOrEqual(t, calls, 4.0, "the cohort is polled")
	_, fam := s.scrape(t)
	assert.Equal(t, 50.0, sample(fam, "imagegraph_live_subscriptions", "transport", "websocket"))
	assert.Equal(t, 1.0, sample(fam, "imagegraph_live_cohorts"))

	// Clients that vanish: their TCP connections cut, no close frame.
	for _, ws := range conns {
		_ = ws.c.CloseNow()
	}
	require.Eventually(t, func() bool {
		_, fam := s.scrape(t)
		return sample(fam, "imagegraph_live_subscriptions", "transport", "websocket") == 0 &&
			sample(fam, "imagegraph_live_connections", "transport", "websocket") == 0 &&
			sample(fam, "imagegraph_live_cohorts") == 0
	}, 10*time.Second, 50*time.Millisecond, "the server noticed and cleaned up")
}

// TestPollsKeepToTheirShare: polls of many cohorts whose data is not
// shared wait for their share of the quota: their intervals stretch (the
// lag says how much) and queries still get through.
func TestPollsKeepToTheirShare(t *testing.T) {
	t.Parallel()
	s := startServer(t, withEnv(map[string]string{
		"LIVE_POLL_INTERVAL": "100ms", "LIVE_POLL_SHARE": "0.2", "COMPSHARE_QPS": "10", "COMPSHARE_BURST": "5",
		"MAX_SUBSCRIPTIONS_PER_CLIENT": "0",
	}))
	ws, _, err := dialWS(t, s, nil)
	require.NoError(t, err)
	ws.init(nil)
	for i := range 10 {
		ws.subscribe(fmt.Sprint(i), fmt.Sprintf(`subscription { imageGroups(first: %d) { nodes { groupId } } }`, i+1))
	}
	for range 10 {
		ws.expect("next")
	}
	before := s.sandboxCalls(t)
	start := time.Now()
	// A query gets through while the polls queue for their share.
	var wg sync.WaitGroup
	wg.Go(func() {
		status, _, out := s.post(t, `{"query":"{ imageGroups(first: 40) { totalCount } }"}`, nil)
		assert.Equal(t, http.StatusOK, status)
		assert.Empty(t, code(out))
	})
	wg.Wait()
	time.Sleep(2 * time.Second)
	calls := s.sandboxCalls(t) - before
	elapsed := time.Since(start).Seconds()
	assert.LessOrEqual(t, calls, 2*elapsed+1+1+1, "polls keep to 2 calls/s (and a burst of one), the query made one")
	_, fam := s.scrape(t)
	lag := fam["imagegraph_live_poll_lag_seconds"].GetMetric()
	require.Len(t, lag, 1)
	h := lag[0].GetHistogram()
	t.Logf("%d polls, %.1f s of lag", h.GetSampleCount(), h.GetSampleSum())
	assert.Greater(t, h.GetSampleSum(), 1.0, "the intervals stretched, and the lag says by how much")
}

// TestKeepAlive: every LIVE_KEEPALIVE the server pings; a client that
// answers stays connected, one that does not is closed after two
// intervals.
func TestKeepAlive(t *testing.T) {
	t.Parallel()
	s := startServer(t, withEnv(map[string]string{"LIVE_KEEPALIVE": "200ms"}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial := func() *websocket.Conn {
		c, _, err := websocket.Dial(ctx, strings.Replace(s.url, "http", "ws", 1)+"/query",
			&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.CloseNow() })
		require.NoError(t, wsjson.Write(ctx, c, map[string]any{"type": "connection_init"}))
		return c
	}
	answering, silent := dial(), dial()

	// The one that answers: pings keep coming, and it is still open after
	// many intervals.
	pings := 0
	for pings < 8 {
		var m map[string]any
		require.NoError(t, wsjson.Read(ctx, answering, &m))
		if m["type"] == "ping" {
			pings++
			require.NoError(t, wsjson.Write(ctx, answering, map[string]any{"type": "pong"}))
		}
	}
	// The one that reads but never answers: closed.
	var err error
	for err == nil {
		var m map[string]any
		err = wsjson.Read(ctx, silent, &m)
	}
	assert.NotErrorIs(t, err, context.DeadlineExceeded, "the silent client was closed")
	require.NoError(t, wsjson.Write(ctx, answering, map[string]any{"type": "ping"}))
	var m map[string]any
	for m["type"] != "pong" {
		require.NoError(t, wsjson.Read(ctx, answering, &m), "the answering client is still served")
	}
}

// TestThousandSubscribersTenCohorts: 1,000 subscribers over 10 distinct
// operations cost about 10 upstream calls per interval, not 1,000.
func TestThousandSubscribersTenCohorts(t *testing.T) {
	t.Parallel()
	const interval = 500 * time.Millisecond
	s := startServer(t, withEnv(map[string]string{
		"LIVE_POLL_INTERVAL": interval.String(), "LIVE_POLL_SHARE": "1", "MAX_SUBSCRIPTIONS_PER_CLIENT": "0",
	}))
	for range 100 {
		ws, _, err := dialWS(t, s, nil)
		require.NoError(t, err)
		ws.init(nil)
		for c := range 10 {
			ws.subscribe(fmt.Sprint(c), fmt.Sprintf(`subscription { imageGroups(first: %d) { nodes { groupId favoritesCount } } }`, c+1))
		}
		for range 10 {
			ws.expect("next")
		}
	}
	_, fam := s.scrape(t)
	require.Equal(t, 1000.0, sample(fam, "imagegraph_live_subscriptions"))
	require.Equal(t, 10.0, sample(fam, "imagegraph_live_cohorts"))
	before := s.sandboxCalls(t)
	start := time.Now()
	time.Sleep(8 * interval)
	calls := s.sandboxCalls(t) - before
	intervals := time.Since(start).Seconds() / interval.Seconds()
	t.Logf("%.0f upstream calls in %.1f intervals: %.1f per interval for 1,000 subscribers in 10 cohorts", calls, intervals, calls/intervals)
	assert.LessOrEqual(t, calls, 10*(intervals+1), "about one call per cohort per interval")
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/testkit"
)

// Hostile clients (docs/reliability.md, "Hostile clients"): each one is
// bounded by a setting, and none may hold a goroutine, a connection slot or
// memory beyond its bound. The server runs as a process of its own, so
// that its goroutines, connections and memory, read from its metrics and
// /proc, are its own and no other test's. Every client sends the API key,
// which must never reach the log.

func TestMain(m *testing.M) { testkit.Main(m) }

// hostileKey is the API key every hostile client sends: a secret the
// server's output must never hold.
const hostileKey = "k-hostile-0123456789abcdef"

// proc is the built server running on its own, in sandbox mode.
type proc struct {
	*server
	addr string // host:port of the API
	p    *testkit.Process
}

// startProc starts the built server with env on top of a free port, its
// metrics on, and API keys on (hostileKey).
func startProc(t *testing.T, env map[string]string) *proc {
	t.Helper()
	bin := testkit.Build(t, ".")
	port := testkit.FreePort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"PORT="+strconv.Itoa(port), "METRICS_ADDR=127.0.0.1:0", "LOG_FORMAT=json", "LOG_LEVEL=debug",
		"SANDBOX_TICK=0s", "SHUTDOWN_DRAIN=0s",
		"API_KEYS_FILE="+writeFile(t, "keys", "hostile:"+sha(hostileKey)+"\n"))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := testkit.Start(t, "imagegraph", cmd)
	metrics := p.WaitFor(t, regexp.MustCompile(`"msg":"metrics listening","addr":"([^"]+)"`))
	addr := "127.0.0.1:" + strconv.Itoa(port)
	t.Cleanup(func() {
		out := p.Output.String()
		assert.NotContains(t, out, hostileKey, "the server logged the API key")
		assert.NotContains(t, out, `"level":"ERROR"`, "a client's misbehaviour is no error of the server's")
		assert.NotContains(t, out, "panic")
	})
	return &proc{server: &server{url: "http://" + addr, metrics: metrics, logs: p.Output}, addr: addr, p: p}
}

// gauges reads the server's goroutines and open connections; -1 when its
// metrics cannot be read.
func (s *proc) gauges(t *testing.T) (goroutines, conns float64) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(s.metricsURL(t))
	if err != nil {
		t.Logf("metrics: %v", err)
		return -1, -1
	}
	defer resp.Body.Close()
	fam, err := textParser().TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Logf("metrics: %v", err)
		return -1, -1
	}
	return sample(fam, "go_goroutines"), sample(fam, "imagegraph_http_connections_open")
}

// rss is the server's resident memory, from /proc.
func (s *proc) rss(t *testing.T) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.p.Cmd.Process.Pid))
	require.NoError(t, err)
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(raw)
	require.NotNil(t, m)
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// settled waits until the server is back where it was before the hostile
// clients came: no connection open and no more goroutines than base (and
// a few the runtime starts and stops on its own).
func (s *proc) settled(t *testing.T, base float64, within time.Duration) {
	t.Helper()
	var g, c float64
	require.Eventually(t, func() bool {
		g, c = s.gauges(t)
		return c == 0 && g >= 0 && g <= base+3
	}, within, 100*time.Millisecond, "still %v goroutines (%v before) and %v connections", g, base, c)
}

// authorized is a request's headers, the API key among them.
const authorized = "Host: imagegraph\r\nAuthorization: Bearer " + hostileKey + "\r\nContent-Type: application/json\r\n"

const validBody = `{"query":"{ imageGroups(first: 1) { totalCount } }"}`

// dialRaw opens a TCP connection to the server.
func dialRaw(t *testing.T, s *proc) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedByServer reads c until the server closes it (within the time
// given) and returns what it read.
func closedByServer(t *testing.T, c net.Conn, within time.Duration) string {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(within)))
	raw, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %s; it sent %q", within, raw)
	}
	return string(raw)
}

// netHTTPRefusal is how Go's HTTP server itself answers a request it
// cannot read as HTTP (headers cut off or malformed), before any handler
// runs: plain text, the connection closed.
var netHTTPRefusal = regexp.MustCompile(`^HTTP/1.1 (400 Bad Request|408 Request Timeout|431 Request Header Fields Too Large)\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n`)

// assertCodedOrNothing checks a raw HTTP answer: none at all (the
// connection was cut), net/http's own refusal of what is not HTTP, or an
// answer whose errors carry codes.
func assertCodedOrNothing(t *testing.T, raw string) {
	t.Helper()
	if raw == "" || netHTTPRefusal.MatchString(raw) {
		return
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
	require.NoError(t, err, raw)
	body, _ := io.ReadAll(resp.Body)
	assert.Less(t, resp.StatusCode, 500, string(body))
	var out map[string]any
	require.NoError(t, json.Unmarshal(body, &out), string(body))
	assert.NotEmpty(t, code(out), "an error without a code: %s", body)
}

// trickle writes msg to every connection a byte at a time, one byte every
// gap, until each connection fails or stop is closed.
func trickle(conns []net.Conn, msg string, gap time.Duration, stop <-chan struct{}) {
	alive := append([]net.Conn(nil), conns...)
	for i := 0; len(alive) > 0; i++ {
		select {
		case <-stop:
			return
		case <-time.After(gap):
		}
		next := alive[:0]
		for _, c := range alive {
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.Write([]byte{msg[i%len(msg)]}); err == nil {
				next = append(next, c)
			}
		}
		alive = next
	}
}

// TestTrickledHeadersAndBodies: clients that send their headers, or their
// body, a byte at a time are cut off at HTTP_READ_HEADER_TIMEOUT and
// HTTP_READ_TIMEOUT, and take their goroutines and slots with them.
func TestTrickledHeadersAndBodies(t *testing.T) {
	t.Parallel()
	s := startProc(t, map[string]string{"HTTP_READ_HEADER_TIMEOUT": "1s", "HTTP_READ_TIMEOUT": "2s"})
	base, _ := s.gauges(t)
	const n = 100
	headers := make([]net.Conn, n)
	bodies := make([]net.Conn, n)
	for i := range n {
		headers[i] = dialRaw(t, s)
		bodies[i] = dialRaw(t, s)
		_, err := io.WriteString(bodies[i], "POST /query HTTP/1.1\r\n"+authorized+"Content-Length: 1000\r\n\r\n")
		require.NoError(t, err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go trickle(headers, "POST /query HTTP/1.1\r\n"+authorized+"X-Padding: "+strings.Repeat("a", 1000), 50*time.Millisecond, stop)
	go trickle(bodies, validBody+strings.Repeat(" ", 1000), 50*time.Millisecond, stop)

	var wg sync.WaitGroup
	answers := make([]string, 2*n)
	for i, c := range append(append([]net.Conn(nil), headers...), bodies...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
			raw, _ := io.ReadAll(c)
			answers[i] = string(raw)
		}()
	}
	wg.Wait()
	for i, raw := range answers {
		if i < n {
			assert.False(t, strings.HasPrefix(raw, "HTTP/1.1 2"), "trickled headers were answered: %q", raw)
		} else {
			assert.Contains(t, raw, `"code":"BAD_USER_INPUT"`, "a trickled body is refused with a code")
		}
		assertCodedOrNothing(t, raw)
	}
	s.settled(t, base, 10*time.Second)
	status, _, out, _ := s.send(t, validBody, map[string]string{"Authorization": "Bearer " + hostileKey})
	assert.Equal(t, http.StatusOK, status, "%v", out)
}

// TestCutBodies: a body that ends half-way, the client's side closed (or
// the whole connection), is refused with a code, logged at no more than a
// warning, and holds nothing.
func TestCutBodies(t *testing.T) {
	t.Parallel()
	s := startProc(t, nil)
	base, _ := s.gauges(t)
	half := validBody[:len(validBody)/2]
	for i := range 50 {
		c := dialRaw(t, s)
		_, err := io.WriteString(c, "POST /query HTTP/1.1\r\n"+authorized+"Content-Length: "+strconv.Itoa(len(validBody))+"\r\n\r\n"+half)
		require.NoError(t, err)
		if i%2 == 0 {
			require.NoError(t, c.(*net.TCPConn).CloseWrite())
			raw := closedByServer(t, c, 10*time.Second)
			assert.Contains(t, raw, "HTTP/1.1 400")
			assertCodedOrNothing(t, raw)
		} else {
			require.NoError(t, c.Close())
		}
	}
	// Headers cut off half-way.
	for range 50 {
		c := dialRaw(t, s)
		_, err := io.WriteString(c, "POST /query HTTP/1.1\r\nAuthorization: Bearer "+hostileKey[:10])
		require.NoError(t, err)
		require.NoError(t, c.(*net.TCPConn).CloseWrite())
		assertCodedOrNothing(t, closedByServer(t, c, 10*time.Second))
	}
	s.settled(t, base, 10*time.Second)
}

// TestIdleConnections: thousands of connections that send nothing, or
// nothing after one request, hold at most MAX_CONNECTIONS slots; the rest
// get a coded 503 at once; the idle ones are closed at
// HTTP_READ_HEADER_TIMEOUT or HTTP_IDLE_TIMEOUT, and the memory they held
// is a few kilobytes each.
func TestIdleConnections(t *testing.T) {
	t.Parallel()
	const max, n = 1000, 2000
	s := startProc(t, map[string]string{"MAX_CONNECTIONS": strconv.Itoa(max), "HTTP_READ_HEADER_TIMEOUT": "6s", "HTTP_READ_TIMEOUT": "6s", "HTTP_IDLE_TIMEOUT": "6s"})
	base, _ := s.gauges(t)
	rssBefore := s.rss(t)

	// Kept alive after one request each.
	kept := make([]net.Conn, 20)
	for i := range kept {
		kept[i] = dialRaw(t, s)
		_, err := io.WriteString(kept[i], "POST /query HTTP/1.1\r\n"+authorized+"Content-Length: "+strconv.Itoa(len(validBody))+"\r\n\r\n"+validBody)
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(kept[i]), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	// Silent.
	conns := make([]net.Conn, 0, n)
	for range n - len(kept) {
		conns = append(conns, dialRaw(t, s))
	}
	refused := 0
	var g, open float64
	require.Eventually(t, func() bool {
		g, open = s.gauges(t)
		return open == max
	}, 10*time.Second, 50*time.Millisecond, "%v connections open", open)
	perConn := (s.rss(t) - rssBefore) / max
	t.Logf("%d idle connections held: %.0f goroutines, %d bytes of RSS each", max, g-base, perConn)
	assert.Less(t, perConn, int64(64<<10), "memory of one idle connection")

	// Each connection past the bound reads a coded 503 and is closed; in a
	// flood like this one, past the refusals in progress at once, some are
	// closed without it.
	answered := 0
	reads := make([]struct {
		raw  []byte
		held bool
	}, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			raw, err := io.ReadAll(c)
			ne, ok := err.(net.Error)
			reads[i].raw, reads[i].held = raw, ok && ne.Timeout() && len(raw) == 0
		}()
	}
	wg.Wait()
	for _, r := range reads {
		if r.held {
			continue // one of the max held open
		}
		if len(r.raw) > 0 {
			answered++
			assert.Contains(t, string(r.raw), "HTTP/1.1 503 Service Unavailable")
			assert.Contains(t, string(r.raw), `"code":"SERVER_OVERLOADED"`)
		}
		refused++
	}
	assert.Equal(t, n-max, refused, "connections past MAX_CONNECTIONS are refused")
	assert.Positive(t, answered, "refusals are coded 503s")
	t.Logf("%d refused, %d of them with a 503", refused, answered)

	s.settled(t, base, 15*time.Second)
	for _, c := range kept {
		assert.Empty(t, closedByServer(t, c, time.Second), "the kept-alive connection was closed at HTTP_IDLE_TIMEOUT")
	}
	status, _, out, _ := s.send(t, validBody, map[string]string{"Authorization": "Bearer " + hostileKey})
	assert.Equal(t, http.StatusOK, status, "%v", out)
}

// dialWSRaw opens a graphql-transport-ws WebSocket to s, its receive
// buffer shrunk to rcvbuf bytes when rcvbuf > 0 (a client that will not
// read, whose kernel must not read for it).
func dialWSRaw(ctx context.Context, s *proc, rcvbuf int) (*websocket.Conn, *http.Response, error) {
	dialer := &net.Dialer{}
	if rcvbuf > 0 {
		dialer.Control = func(_, _ string, rc syscall.RawConn) error {
			var err error
			_ = rc.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf) })
			return err
		}
	}
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	return websocket.Dial(ctx, "ws://"+s.addr+"/query", &websocket.DialOptions{
		HTTPClient:   client,
		Subprotocols: []string{"graphql-transport-ws"},
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + hostileKey}},
	})
}

// TestIdleWebSockets: WebSockets that never send connection_init are
// closed with 4408 at LIVE_INIT_TIMEOUT; past MAX_CONNECTIONS an upgrade
// gets a coded 503; none holds anything after.
func TestIdleWebSockets(t *testing.T) {
	t.Parallel()
	const max, n = 300, 400
	s := startProc(t, map[string]string{"MAX_CONNECTIONS": strconv.Itoa(max), "LIVE_INIT_TIMEOUT": "2s", "MAX_SUBSCRIPTIONS_PER_CLIENT": "0"})
	base, _ := s.gauges(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var upgraded []*websocket.Conn
	refused := 0
	for range n {
		c, resp, err := dialWSRaw(ctx, s, 0)
		if err != nil {
			require.NotNil(t, resp, "dial: %v", err)
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
			refused++
			continue
		}
		upgraded = append(upgraded, c)
	}
	assert.Equal(t, max, len(upgraded))
	assert.Equal(t, n-max, refused)
	// A connection_init gqlgen cannot decode: closed with 4400, where gqlgen
	// alone would leave the connection open.
	for _, c := range upgraded[:10] {
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(`{"type":"connection_init","payload":[1]}`)))
		_, _, err := c.Read(ctx)
		assert.Equal(t, websocket.StatusCode(4400), websocket.CloseStatus(err), "closed for a bad connection_init: %v", err)
		_ = c.CloseNow()
	}
	for _, c := range upgraded[10:] {
		_, _, err := c.Read(ctx)
		assert.Equal(t, websocket.StatusCode(4408), websocket.CloseStatus(err), "closed for want of connection_init: %v", err)
		_ = c.CloseNow()
	}
	s.settled(t, base, 10*time.Second)
}

// bigSubscription selects enough of every group that a few events fill a
// socket's buffers.
const bigSubscription = `subscription Big { imageGroups(first: 100) { totalCount nodes { groupId name description favoritesCount versions(first: 10) { nodes { imageId name versionName versionDescription status description author tags } } } } }`

// TestClientsThatNeverRead: a subscriber over SSE or WebSocket that stops
// reading while its events come has its stream closed once a write has
// waited LIVE_WRITE_TIMEOUT: it holds no goroutine, slot or subscription
// after.
func TestClientsThatNeverRead(t *testing.T) {
	t.Parallel()
	s := startProc(t, map[string]string{"LIVE_POLL_INTERVAL": "200ms", "LIVE_WRITE_TIMEOUT": "1s", "LIVE_KEEPALIVE": "1m"})
	base, _ := s.gauges(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Over SSE: the request sent, then never a byte read.
	sse := dialRaw(t, s)
	require.NoError(t, sse.(*net.TCPConn).SetReadBuffer(4096))
	body := `{"query":` + strconv.Quote(bigSubscription) + `}`
	_, err := io.WriteString(sse, "POST /query HTTP/1.1\r\n"+authorized+"Accept: text/event-stream\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
	require.NoError(t, err)

	// Over WebSocket: subscribed, then never read again.
	ws, _, err := dialWSRaw(ctx, s, 4096)
	require.NoError(t, err)
	require.NoError(t, wsjson.Write(ctx, ws, map[string]any{"type": "connection_init"}))
	var ack map[string]any
	require.NoError(t, wsjson.Read(ctx, ws, &ack))
	require.Equal(t, "connection_ack", ack["type"])
	require.NoError(t, wsjson.Write(ctx, ws, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": bigSubscription}}))

	subs := func() float64 {
		_, fam := s.scrape(t)
		return sample(fam, "imagegraph_live_subscriptions")
	}
	require.Eventually(t, func() bool { return subs() == 2 }, 10*time.Second, 50*time.Millisecond, "both subscribed")
	// Each change is an event of about 100 KB to each of them: the
	// kernel's buffers (up to tcp_wmem's 4 MB) take some, then writes block.
	for i := 0; subs() > 0; i++ {
		require.Less(t, i, 200, "the streams outlived 200 unread events")
		changeGroup(t, s.server, i)
		time.Sleep(250 * time.Millisecond)
	}
	_ = ws.CloseNow()
	_ = sse.Close()
	s.settled(t, base, 10*time.Second)
}

// changeGroup changes a group's favourites count through the sandbox's
// endpoint: an event for every subscriber of the list.
func changeGroup(t *testing.T, s *server, n int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.url+"/sandbox/groups/"+groupIDForChanges(t, s), strings.NewReader(fmt.Sprintf(`{"favoritesCount":%d}`, 1000+n)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+hostileKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

var firstGroup struct {
	once sync.Once
	id   string
}

// groupIDForChanges is the id of the first group of the default order.
func groupIDForChanges(t *testing.T, s *server) string {
	t.Helper()
	firstGroup.once.Do(func() {
		_, _, out, _ := s.send(t, `{"query":"{ imageGroups(first: 1) { nodes { groupId } } }"}`, map[string]string{"Authorization": "Bearer " + hostileKey})
		nodes := out["data"].(map[string]any)["imageGroups"].(map[string]any)["nodes"].([]any)
		firstGroup.id = nodes[0].(map[string]any)["groupId"].(string)
	})
	return firstGroup.id
}

// TestIdleSubscribers: 2,000 WebSockets, each with one subscription in one
// cohort, then idle. What each one holds of the server's memory is logged
// (heap and stacks in use, and resident memory) and bounded by the goal of
// 50 KB; when they leave, they hold nothing.
func TestIdleSubscribers(t *testing.T) {
	t.Parallel()
	const n = 2000
	// GOGC=10: the heap measured is mostly what is live, not garbage a
	// collection would take.
	s := startProc(t, map[string]string{"MAX_SUBSCRIPTIONS_PER_CLIENT": "0", "LIVE_POLL_INTERVAL": "1s", "GOGC": "10"})
	base, _ := s.gauges(t)
	memory := func() (goHeld, rss float64) {
		_, fam := s.scrape(t)
		return sample(fam, "go_memstats_heap_inuse_bytes") + sample(fam, "go_memstats_stack_inuse_bytes"), float64(s.rss(t))
	}
	heldBefore, rssBefore := memory()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		c, _, err := dialWSRaw(ctx, s, 0)
		require.NoError(t, err)
		conns[i] = c
		require.NoError(t, wsjson.Write(ctx, c, map[string]any{"type": "connection_init"}))
		require.NoError(t, wsjson.Write(ctx, c, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": versionStatus}}))
	}
	for _, c := range conns {
		for { // connection_ack, then the first event
			var m map[string]any
			require.NoError(t, wsjson.Read(ctx, c, &m))
			if m["type"] == "next" {
				break
			}
		}
	}
	_, fam := s.scrape(t)
	require.Equal(t, float64(n), sample(fam, "imagegraph_live_subscriptions"))
	require.Equal(t, 1.0, sample(fam, "imagegraph_live_cohorts"))
	heldAfter, rssAfter := memory()
	goPer, rssPer := (heldAfter-heldBefore)/n, (rssAfter-rssBefore)/n
	t.Logf("one idle subscribed WebSocket, at %d: %.1f KB of heap and stacks, %.1f KB resident", n, goPer/1024, rssPer/1024)
	assert.Less(t, goPer, 50.0*1024, "memory of one idle subscribed connection")

	for _, c := range conns {
		_ = c.Close(websocket.StatusNormalClosure, "")
	}
	s.settled(t, base, 30*time.Second)
}

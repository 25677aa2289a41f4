package live_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/compshare/imagegraph/graph"
	"github.com/compshare/imagegraph/internal/access"
	"github.com/compshare/imagegraph/internal/live"
	"github.com/compshare/imagegraph/internal/testkit"
	"github.com/compshare/imagegraph/upstream"
)

// fuzzKey is the API key the fuzzed server accepts.
const fuzzKey = "fuzz-key-0123456789"

// frameSep separates the client's frames in the fuzzer's input.
const frameSep = "\x1e"

// The subprotocols a client may ask for: graphql-transport-ws, the legacy
// graphql-ws, or none (which gqlgen serves as graphql-ws).
var subprotocols = []string{"graphql-transport-ws", "graphql-ws", ""}

// The close codes a server may end a graphql-transport-ws connection with
// before its client does: graphql-ws's (bad request, unauthorized,
// forbidden, init timeout, duplicate subscriber, too many inits, and too
// many connections, which this server also uses) and RFC 6455's for a
// message past the read limit.
var transportWSCodes = map[websocket.StatusCode]bool{4400: true, 4401: true, 4403: true, 4408: true, 4409: true, 4429: true, websocket.StatusMessageTooBig: true}

// The close codes of the legacy graphql-ws protocol, which names none:
// gqlgen's (normal, protocol error) and the hub's.
var legacyCodes = map[websocket.StatusCode]bool{websocket.StatusNormalClosure: true, websocket.StatusProtocolError: true, websocket.StatusMessageTooBig: true, 4400: true, 4403: true, 4408: true, 4429: true}

// FuzzWebSocket opens a real WebSocket to /query, with the live transports
// and API keys, and sends an arbitrary sequence of text frames (before and
// after connection_init, inits with any payload, subscribes with any
// payload), then, over graphql-transport-ws, a ping that it waits for the
// pong of, then closes. It proves that the server never panics; that every
// message it sends is JSON of its protocol (over graphql-transport-ws: one
// connection_ack, only after a valid connection_init; next, error and
// complete only for the ids the client subscribed); that it closes a
// connection only with a close code of its protocol, and, over
// graphql-transport-ws, with the one the protocol names for the first
// message that breaks it (4400 for a message it cannot read, 4401 for a
// subscribe before connection_init, 4403 for a wrong key, 4409 for a
// subscribe of an id in use, 4429 for a second connection_init), answering
// a ping at any time; and that once the connection is closed, every
// goroutine it started ends.
func FuzzWebSocket(f *testing.F) {
	initMsg := `{"type":"connection_init","payload":{"apiKey":"` + fuzzKey + `"}}`
	sub := func(id, query string) string {
		b, _ := json.Marshal(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": query}})
		return string(b)
	}
	const q = `subscription { imageGroups(first: 1) { nodes { groupId } } }`
	for _, seed := range []struct {
		protocol uint8
		frames   []string
	}{
		{0, []string{initMsg, sub("1", q), `{"id":"1","type":"complete"}`}},
		{0, []string{`{"type":"connection_init","payload":{"Authorization":"Bearer ` + fuzzKey + `"}}`, sub("a", q), sub("b", `subscription { nope }`)}},
		{0, []string{`{"type":"connection_init","payload":{"apiKey":"wrong"}}`, sub("1", q)}},
		{0, []string{`{"type":"connection_init"}`}},
		{0, []string{sub("1", q)}},
		{0, []string{initMsg, initMsg}},
		{0, []string{initMsg, sub("1", q), sub("1", q)}},
		{0, []string{initMsg, `{"type":"subscribe","id":"1","payload":{"query":1}}`}},
		{0, []string{initMsg, `{"type":"subscribe","payload":{"query":"{ __typename }"}}`}},
		{0, []string{`{"type":"ping"}`, initMsg, `{"type":"pong","payload":{"x":1}}`}},
		{0, []string{`{"type":"connection_init","payload":[1]}`}},
		{0, []string{`{"type":"connection_init","payload":"x"}`}},
		{0, []string{initMsg, `not json`}},
		{0, []string{initMsg, `{"type":"next","id":"1"}`}},
		{0, []string{initMsg, `{"type":"ping"} trailing`}},
		{0, []string{`{"TYPE":"connection_init","Payload":{"apiKey":"` + fuzzKey + `"}}`, `{"type":"complete"}`}},
		{0, []string{initMsg, sub("1", `query { imageGroups(first: 1) { totalCount } }`), sub("1", `{ __typename }`)}},
		{1, []string{initMsg, `{"id":"1","type":"start","payload":{"query":"` + q + `"}}`, `{"id":"1","type":"stop"}`, `{"type":"connection_terminate"}`}},
		{1, []string{`{"type":"start"}`}},
		{2, []string{`{"type":"connection_init","payload":null}`, `garbage`}},
	} {
		f.Add(seed.protocol, strings.Join(seed.frames, frameSep))
	}
	srv, keys := fuzzServer(f)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	f.Fuzz(func(t *testing.T, protocol uint8, input string) {
		before := runtime.NumGoroutine()
		proto := subprotocols[int(protocol)%len(subprotocols)]
		frames := strings.Split(input, frameSep)
		got := session(t, url, client, proto, frames)
		if proto == "graphql-transport-ws" {
			checkTransportWS(t, keys, frames, got)
		} else {
			checkLegacy(t, got)
		}
		// Counted here, not in require.Eventually, whose condition runs in
		// goroutines of its own.
		for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > before; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("goroutines outlived the connection: %d, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
			}
		}
	})
}

// seen is what a client saw of a connection: the messages, and how the
// connection ended.
type seen struct {
	msgs []json.RawMessage
	// closedFirst: the server closed the connection before the client did,
	// with code (-1 for no close frame).
	closedFirst bool
	code        websocket.StatusCode
	// pong: the answer to the client's last ping came.
	pong bool
}

// session dials url with proto, sends frames, and, over
// graphql-transport-ws, a ping whose pong marks that the server has read
// every frame before it; then it closes the connection and waits for its
// end.
func session(tb testing.TB, url string, client *http.Client, proto string, frames []string) seen {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{HTTPClient: client}
	if proto != "" {
		opts.Subprotocols = []string{proto}
	}
	c, _, err := websocket.Dial(ctx, url, opts)
	require.NoError(tb, err)
	c.SetReadLimit(-1)
	var s seen
	type ended struct {
		code websocket.StatusCode
	}
	done := make(chan ended, 1)
	pong := make(chan struct{}, 1)
	const sync = `{"type":"ping","payload":{"sync":"fuzz"}}`
	go func() {
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				done <- ended{websocket.CloseStatus(err)}
				return
			}
			s.msgs = append(s.msgs, data)
			if bytes.Contains(data, []byte(`"sync":"fuzz"`)) && bytes.Contains(data, []byte(`"pong"`)) {
				select {
				case pong <- struct{}{}:
				default:
				}
			}
		}
	}()
	// A write fails once the server has closed, or is closing: then the
	// connection's end is what there is to wait for.
	closing := false
	for _, fr := range frames {
		if c.Write(ctx, websocket.MessageText, []byte(fr)) != nil {
			closing = true
			break
		}
	}
	var end ended
	finished := false
	if !closing && proto == "graphql-transport-ws" {
		if c.Write(ctx, websocket.MessageText, []byte(sync)) != nil {
			closing = true
		} else {
			select {
			case <-pong:
				s.pong = true
			case end = <-done:
				finished = true
			case <-ctx.Done():
				tb.Fatalf("the server neither answered the ping nor closed")
			}
		}
	}
	switch {
	case finished:
	case closing:
		select {
		case end = <-done:
			finished = true
		case <-ctx.Done():
			tb.Fatalf("a write failed, and the connection did not end")
		}
	default:
		select {
		case end = <-done: // the server closed already
			finished = true
		default:
		}
	}
	if finished {
		s.closedFirst, s.code = true, end.code
	} else {
		_ = c.Close(websocket.StatusNormalClosure, "")
		<-done
	}
	_ = c.CloseNow()
	return s
}

// message is a message of either protocol, as it was sent.
type message struct {
	Type    *string         `json:"type"`
	ID      *string         `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

// checkTransportWS checks the server's side of a graphql-transport-ws
// session of frames against the protocol.
func checkTransportWS(t *testing.T, keys *access.Keys, frames []string, got seen) {
	t.Helper()
	want, wantKnown, inited, subscribed := expect(keys, frames)
	acks := 0
	for _, raw := range got.msgs {
		var m message
		require.NoError(t, json.Unmarshal(raw, &m), "not JSON: %s", raw)
		require.NotNil(t, m.Type, "no type: %s", raw)
		switch typ := *m.Type; typ {
		case "connection_ack":
			acks++
			assert.True(t, inited, "an ack without a connection_init: %s", got.msgs)
		case "ping", "pong":
		case "next", "error", "complete":
			require.NotNil(t, m.ID, "%s without an id: %s", typ, raw)
			assert.True(t, subscribed[*m.ID], "%s of %q, which the client never subscribed: %s", typ, *m.ID, raw)
			switch typ {
			case "next":
				var res map[string]any
				assert.NoError(t, json.Unmarshal(m.Payload, &res), "next without a result: %s", raw)
			case "error":
				var errs []map[string]any
				assert.NoError(t, json.Unmarshal(m.Payload, &errs), "error without errors: %s", raw)
				assert.NotEmpty(t, errs, "%s", raw)
			}
		default:
			t.Errorf("a message of type %q: %s", typ, raw)
		}
	}
	assert.LessOrEqual(t, acks, 1, "%s", got.msgs)
	switch {
	case !got.closedFirst:
		assert.Zero(t, want, "the connection should have been closed with %d", want)
	case wantKnown:
		assert.Equal(t, want, got.code, "frames %q: messages %s", frames, got.msgs)
	default:
		assert.True(t, transportWSCodes[got.code], "closed with %d: frames %q: messages %s", got.code, frames, got.msgs)
	}
	if !got.closedFirst {
		assert.True(t, got.pong, "a ping without its pong")
	}
}

// checkLegacy checks a legacy graphql-ws session: JSON messages of its
// types, and its close codes.
func checkLegacy(t *testing.T, got seen) {
	t.Helper()
	for _, raw := range got.msgs {
		var m message
		require.NoError(t, json.Unmarshal(raw, &m), "not JSON: %s", raw)
		require.NotNil(t, m.Type, "no type: %s", raw)
		assert.Contains(t, []string{"connection_ack", "connection_error", "ka", "data", "error", "complete"}, *m.Type, "%s", raw)
	}
	if got.closedFirst {
		assert.True(t, legacyCodes[got.code], "closed with %d: %s", got.code, got.msgs)
	}
}

// expect reads frames as graphql-transport-ws says a server must: the
// close code of the first frame that breaks the protocol (0: none; known
// false when it depends on timing: a subscribe of an id whose operation
// may have ended), whether a connection_init was accepted, and the ids
// subscribed. Frames are read as gqlgen reads them: one JSON object each,
// keys matched without regard to case, the last of a repeated key.
func expect(keys *access.Keys, frames []string) (code websocket.StatusCode, known, inited bool, subscribed map[string]bool) {
	subscribed = map[string]bool{}
	active := map[string]bool{} // by id: whether its operation runs until completed
	for _, fr := range frames {
		var m struct {
			Type    string          `json:"type"`
			ID      string          `json:"id"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal([]byte(fr), &m); err != nil {
			return 4400, true, inited, subscribed
		}
		switch m.Type {
		case "connection_init":
			if inited {
				return 4429, true, inited, subscribed
			}
			var payload map[string]any
			if !objectOrNull(m.Payload) || len(m.Payload) > 0 && json.Unmarshal(m.Payload, &payload) != nil {
				return 4400, true, inited, subscribed
			}
			if _, err := keys.Authorize(context.Background(), http.Header{}, payload); err != nil {
				return 4403, true, inited, subscribed
			}
			inited = true
		case "ping", "pong":
			if !objectOrNull(m.Payload) {
				return 4400, true, inited, subscribed
			}
		case "subscribe":
			if m.ID == "" || !params(m.Payload) {
				return 4400, true, inited, subscribed
			}
			if !inited {
				return 4401, true, inited, subscribed
			}
			if lives, ok := active[m.ID]; ok {
				if lives {
					return 4409, true, inited, subscribed
				}
				// Its operation may have ended on its own meanwhile.
				return 0, false, inited, subscribed
			}
			active[m.ID], subscribed[m.ID] = lives(m.Payload), true
		case "complete":
			if m.ID == "" {
				return 4400, true, inited, subscribed
			}
			delete(active, m.ID)
		default:
			return 4400, true, inited, subscribed
		}
	}
	return 0, true, inited, subscribed
}

// lives reports whether the subscribe payload raw runs until its client
// completes it: a subscription without variables that validates (the
// fuzzed server sets no limits, and its upstream never fails). Any other
// operation ends on its own, sooner or later.
func lives(raw json.RawMessage) bool {
	var p graphql.RawParams
	if json.Unmarshal(raw, &p) != nil || len(p.Variables) > 0 {
		return false
	}
	doc, errs := gqlparser.LoadQueryWithRules(graph.Schema(), p.Query, rules.NewDefaultRules())
	if errs != nil {
		return false
	}
	op := doc.Operations.ForName(p.OperationName)
	if p.OperationName == "" && len(doc.Operations) == 1 {
		op = doc.Operations[0]
	}
	return op != nil && op.Operation == ast.Subscription && len(op.VariableDefinitions) == 0
}

// params reports whether raw is a JSON object of GraphQL parameters, as
// gqlgen decodes them (numbers as written).
func params(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var p graphql.RawParams
	return dec.Decode(&p) == nil
}

// objectOrNull reports whether raw is absent, null or a JSON object.
func objectOrNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null" || raw[0] == '{'
}

// fuzzServer is the GraphQL handler with live queries over a fake
// upstream, polled every 20 ms, its WebSockets needing fuzzKey.
func fuzzServer(tb testing.TB) (*httptest.Server, *access.Keys) {
	tb.Helper()
	sum := sha256.Sum256([]byte(fuzzKey))
	keys, err := access.ParseKeys(strings.NewReader("fuzz:" + hex.EncodeToString(sum[:])))
	require.NoError(tb, err)
	up := &testkit.Upstream{Answer: func(context.Context, *upstream.DescribeCommunityImagesRequest) (*upstream.DescribeCommunityImagesResponse, error) {
		return &upstream.DescribeCommunityImagesResponse{TotalCount: 1, CompshareImageGroup: []upstream.ImageGroup{{GroupId: "g1", ImageName: "One"}}}, nil
	}}
	h := graph.NewHandler(graph.HandlerConfig{
		Service: up,
		Live: &live.Options{
			Interval: 20 * time.Millisecond,
			Key:      func(oc *graphql.OperationContext) (string, bool) { return oc.RawQuery, true },
		},
		LiveTransports: live.TransportOptions{KeepAlive: time.Minute, InitTimeout: 5 * time.Second, Authorize: keys.Authorize},
	})
	srv := httptest.NewServer(h)
	tb.Cleanup(func() {
		h.Live().Drain()
		srv.Close()
	})
	return srv, keys
}

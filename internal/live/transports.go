package live

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	coderws "github.com/coder/websocket"
)

// TransportOptions configure the streaming transports.
type TransportOptions struct {
	// KeepAlive is how often an idle stream is pinged (a WebSocket client
	// that does not answer a ping within twice that is closed).
	KeepAlive time.Duration
	// InitTimeout is how long a WebSocket may wait before its
	// connection_init.
	InitTimeout time.Duration
	// Origins are the origins whose pages may open a WebSocket (normalised
	// as CORS_ALLOWED_ORIGINS is; "*" for any). The page's own origin
	// always may.
	Origins []string
	// Authorize checks a WebSocket's credentials: its connection_init
	// payload (browsers cannot set headers on a WebSocket) or the headers
	// of its upgrade. Its error refuses the connection, closing it with the
	// error's CloseCode (4403 without one). nil accepts every connection.
	Authorize func(ctx context.Context, header http.Header, payload map[string]any) (context.Context, error)
	// MaxConnsPerClient bounds one client's WebSockets open at once: past
	// it, a connection is closed with 4429 (too many). 0: no bound.
	MaxConnsPerClient int
}

// CloseCoder is an error that says which WebSocket close code refuses a
// connection.
type CloseCoder interface {
	error
	CloseCode() int
}

// The WebSocket close codes the hub uses, graphql-ws's own and RFC 6455's.
const (
	// CloseForbidden refuses a connection whose credentials are missing or
	// wrong (graphql-ws: Forbidden).
	CloseForbidden = 4403
	// CloseTooMany refuses a connection past the bound of its client's
	// connections.
	CloseTooMany = 4429
	// CloseServiceRestart ends connections at a drain: clients reconnect,
	// to another replica (RFC 6455: service restart).
	CloseServiceRestart = 1012
)

// Transports returns the streaming transports of /query: add them before
// the other transports, since SSE answers POSTs that accept
// text/event-stream and WebSocket answers upgrades.
func (h *Hub) Transports(opts TransportOptions) []graphql.Transport {
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = DefaultKeepAlive
	}
	if opts.InitTimeout <= 0 {
		opts.InitTimeout = DefaultInitTimeout
	}
	accept := coderws.AcceptOptions{}
	for _, o := range opts.Origins {
		if o == "*" {
			accept.InsecureSkipVerify = true
			continue
		}
		accept.OriginPatterns = append(accept.OriginPatterns, o)
	}
	ws := &websocketTransport{hub: h, opts: opts, perClient: map[string]int{}}
	ws.inner = transport.Websocket{
		Implementation:        trackingImplementation{inner: transport.CoderWebsocketImplementation{AcceptOptions: accept}, streams: &h.streams},
		InitFunc:              ws.init,
		InitTimeout:           opts.InitTimeout,
		KeepAlivePingInterval: opts.KeepAlive, // graphql-ws's ka messages
		PingPongInterval:      opts.KeepAlive, // graphql-transport-ws: a client that does not pong is closed
	}
	return []graphql.Transport{ws, sseTransport{hub: h, inner: transport.SSE{KeepAlivePingInterval: opts.KeepAlive}}}
}

// streamLonger clears the read and write deadlines the HTTP server set for
// the request: a stream lives as long as its client, and the server's
// ReadTimeout and WriteTimeout must not cut it (keep-alive pings notice a
// dead client instead).
func streamLonger(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
}

// websocketTransport is gqlgen's WebSocket transport with the hub's
// bookkeeping: connections counted, each client's bounded, credentials
// checked at connection_init.
type websocketTransport struct {
	hub   *Hub
	opts  TransportOptions
	inner transport.Websocket

	mu        sync.Mutex
	perClient map[string]int
}

// Supports reports a WebSocket upgrade.
func (t *websocketTransport) Supports(r *http.Request) bool { return t.inner.Supports(r) }

// Do serves one WebSocket for as long as it lives.
func (t *websocketTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if t.hub.draining.Load() {
		http.Error(w, ErrDraining.Error(), http.StatusServiceUnavailable)
		return
	}
	streamLonger(w)
	t.hub.conns[overWebSocket].Add(1)
	defer t.hub.conns[overWebSocket].Add(-1)
	st := &connState{header: r.Header}
	defer t.release(st)
	t.inner.Do(w, r.WithContext(context.WithValue(r.Context(), connStateKey{}, st)), exec)
}

// connState is what a connection's init learned: its upgrade's headers,
// and the client its connection counts against, once counted.
type connState struct {
	header  http.Header
	counted bool
	client  string
}

type connStateKey struct{}

func connStateOf(ctx context.Context) *connState {
	st, _ := ctx.Value(connStateKey{}).(*connState)
	if st == nil {
		st = &connState{}
	}
	return st
}

// init checks a connection_init: the connection's credentials, and the
// bound of its client's connections.
func (t *websocketTransport) init(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	if t.hub.draining.Load() {
		return transport.WithWebsocketCloseCode(ctx, CloseServiceRestart), nil, ErrDraining
	}
	st := connStateOf(ctx)
	if t.opts.Authorize != nil {
		authed, err := t.opts.Authorize(ctx, st.header, payload)
		if err != nil {
			code := CloseForbidden
			var cc CloseCoder
			if errors.As(err, &cc) {
				code = cc.CloseCode()
			}
			return transport.WithWebsocketCloseCode(ctx, code), nil, err
		}
		ctx = authed
	}
	client := t.hub.opts.Client(ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.opts.MaxConnsPerClient > 0 && t.perClient[client] >= t.opts.MaxConnsPerClient {
		return transport.WithWebsocketCloseCode(ctx, CloseTooMany), nil, errTooManyConns
	}
	t.perClient[client]++
	st.counted, st.client = true, client
	return ctx, nil, nil
}

var errTooManyConns = errors.New("too many connections from this client")

// release forgets a connection its init counted.
func (t *websocketTransport) release(st *connState) {
	if !st.counted {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.perClient[st.client] <= 1 {
		delete(t.perClient, st.client)
	} else {
		t.perClient[st.client]--
	}
}

// sseTransport is gqlgen's SSE transport (graphql-sse, distinct
// connections mode), its streams counted and not cut by the server's
// timeouts.
type sseTransport struct {
	hub   *Hub
	inner transport.SSE
}

// Supports reports a POST that accepts text/event-stream.
func (t sseTransport) Supports(r *http.Request) bool { return t.inner.Supports(r) }

// Do serves one stream for as long as it lives.
func (t sseTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if t.hub.draining.Load() {
		http.Error(w, ErrDraining.Error(), http.StatusServiceUnavailable)
		return
	}
	streamLonger(w)
	t.hub.conns[overSSE].Add(1)
	defer t.hub.conns[overSSE].Add(-1)
	t.inner.Do(w, r, exec)
}

// streams are the WebSockets a hub serves, for the drain.
type streams struct {
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func (s *streams) add(c *trackedConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = map[*trackedConn]struct{}{}
	}
	s.conns[c] = struct{}{}
}

func (s *streams) remove(c *trackedConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// closeAll closes every WebSocket with 1012.
func (s *streams) closeAll() {
	s.mu.Lock()
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.WriteClose(CloseServiceRestart, "the server is restarting: reconnect")
		_ = c.Close()
	}
}

// trackingImplementation accepts WebSockets through inner and keeps each
// in streams until it closes.
type trackingImplementation struct {
	inner   transport.WebsocketImplementation
	streams *streams
}

func (t trackingImplementation) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	conn, err := t.inner.Accept(w, r, opts)
	if err != nil {
		return nil, err
	}
	c := &trackedConn{WebsocketConn: conn, streams: t.streams}
	t.streams.add(c)
	return c, nil
}

// trackedConn is a WebSocket the hub can close at a drain.
type trackedConn struct {
	transport.WebsocketConn
	streams *streams
	once    sync.Once
}

// Close closes the connection and forgets it.
func (c *trackedConn) Close() error {
	c.once.Do(func() { c.streams.remove(c) })
	return c.WebsocketConn.Close()
}

// SetReadLimit passes the transport's read limit on.
func (c *trackedConn) SetReadLimit(limit int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(limit)
	}
}

// SetReadDeadline passes the transport's pong deadline on.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}

var _ io.Closer = (*trackedConn)(nil)

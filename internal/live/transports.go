package live

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	coderws "github.com/coder/websocket"

	"github.com/compshare/imagegraph/internal/codes"
	"github.com/compshare/imagegraph/internal/gqlhttp"
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
	// WriteTimeout bounds one write to a stream: a client that stops
	// reading has its stream closed once a write has waited this long, so
	// that it holds no goroutine or buffer beyond it.
	WriteTimeout time.Duration
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
	// CloseInitTimeout closes a connection whose connection_init did not
	// come within the init timeout (graphql-ws: ConnectionInitialisationTimeout).
	CloseInitTimeout = 4408
	// CloseBadRequest closes a connection whose message could not be
	// read (graphql-ws: BadRequest).
	CloseBadRequest = 4400
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
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
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
		// The keep-alive is trackedConn's, on a timer, not gqlgen's
		// goroutine per connection: an idle subscriber holds less.
		Implementation: trackingImplementation{inner: transport.CoderWebsocketImplementation{AcceptOptions: accept}, streams: &h.streams, keepAlive: opts.KeepAlive},
		InitFunc:       ws.init,
	}
	sse := sseTransport{hub: h, writeTimeout: opts.WriteTimeout, inner: transport.SSE{KeepAlivePingInterval: opts.KeepAlive}}
	return []graphql.Transport{ws, sse}
}

// refuseDraining answers a new stream during a drain: a coded 503 its
// client retries, to another replica.
func refuseDraining(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	gqlhttp.WriteError(w, http.StatusServiceUnavailable, "the server is shutting down: try again", codes.Overloaded)
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
		refuseDraining(w)
		return
	}
	streamLonger(w)
	t.hub.conns[overWebSocket].Add(1)
	defer t.hub.conns[overWebSocket].Add(-1)
	st := &connState{header: r.Header}
	defer t.release(st)
	// The init timeout is the hub's, not gqlgen's: graphql-transport-ws
	// closes a connection that never initialised with 4408, where gqlgen
	// closes with 1002.
	initTimer := time.AfterFunc(t.opts.InitTimeout, func() {
		st.closeUninitialised(CloseInitTimeout, "Connection initialisation timeout")
	})
	defer initTimer.Stop()
	w = writeBoundedHijacker{ResponseWriter: w, timeout: t.opts.WriteTimeout}
	t.inner.Do(w, r.WithContext(context.WithValue(r.Context(), connStateKey{}, st)), exec)
	// gqlgen leaves a connection open when it gives up on a
	// connection_init it cannot decode: close it, as graphql-transport-ws
	// says, with 4400.
	st.closeUninitialised(CloseBadRequest, "Invalid message")
}

// connState is what the hub knows of one WebSocket: its upgrade's headers,
// the connection once accepted, whether its connection_init came, and the
// client its connection counts against, once counted.
type connState struct {
	header  http.Header
	counted bool
	client  string

	mu          sync.Mutex
	conn        transport.WebsocketConn
	initialised bool
}

// accepted records the connection gqlgen accepted.
func (st *connState) accepted(c transport.WebsocketConn) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.conn = c
}

// initialise records that connection_init came.
func (st *connState) initialise() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.initialised = true
}

// closeUninitialised closes the connection with code unless its
// connection_init came.
func (st *connState) closeUninitialised(code int, reason string) {
	st.mu.Lock()
	if st.initialised {
		st.mu.Unlock()
		return
	}
	st.initialised = true // no init after this
	c := st.conn
	st.mu.Unlock()
	if c != nil {
		_ = c.WriteClose(code, reason)
		_ = c.Close()
	}
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
	st.initialise()
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
// connections mode), its streams counted, not cut by the server's timeouts,
// and each write bounded by writeTimeout.
type sseTransport struct {
	hub          *Hub
	inner        transport.SSE
	writeTimeout time.Duration
}

// Supports reports a POST that accepts text/event-stream.
func (t sseTransport) Supports(r *http.Request) bool { return t.inner.Supports(r) }

// Do serves one stream for as long as it lives.
//
// The body is read and checked here, within the server's read timeout,
// before the stream clears it: a body trickled in is cut off like any
// other, and a body gqlgen cannot decode is refused with a code here
// rather than logged whole by gqlgen.
func (t sseTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if t.hub.draining.Load() {
		refuseDraining(w)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			gqlhttp.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", tooLarge.Limit), codes.BadUserInput)
			return
		}
		gqlhttp.WriteError(w, http.StatusBadRequest, "the request body could not be read", codes.BadUserInput)
		return
	}
	var params graphql.RawParams
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // as gqlgen decodes it
	if err := dec.Decode(&params); err != nil {
		gqlhttp.WriteError(w, http.StatusBadRequest, "the request body is not a GraphQL request in JSON", codes.BadUserInput)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	streamLonger(w)
	t.hub.conns[overSSE].Add(1)
	defer t.hub.conns[overSSE].Add(-1)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sw := &writeBoundedFlusher{ResponseWriter: w, rc: http.NewResponseController(w), timeout: t.writeTimeout, cancel: cancel}
	t.inner.Do(sw, r.WithContext(ctx), exec)
}

// writeBoundedFlusher bounds each write and flush of an SSE stream by
// timeout: a write that cannot finish in time (the client stopped reading)
// fails, and ends the stream by cancelling its context.
type writeBoundedFlusher struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	cancel  context.CancelFunc
}

func (w *writeBoundedFlusher) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	n, err := w.ResponseWriter.Write(p)
	if err != nil {
		w.cancel()
	}
	return n, err
}

// Flush sends what was written, within the timeout.
func (w *writeBoundedFlusher) Flush() {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	if err := w.rc.Flush(); err != nil {
		w.cancel()
	}
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (w *writeBoundedFlusher) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeBoundedHijacker hands a WebSocket a connection whose every write is
// bounded by timeout: once a write has waited that long on a client that
// does not read, it fails and the WebSocket closes.
type writeBoundedHijacker struct {
	http.ResponseWriter
	timeout time.Duration
}

// Hijack takes the connection over, its writes bounded.
func (w writeBoundedHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	bc := &writeBoundedConn{Conn: c, timeout: w.timeout}
	brw.Writer.Reset(bc) // its buffer, empty, now writes through bc
	return bc, brw, nil
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (w writeBoundedHijacker) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeBoundedConn sets a write deadline before each write, and closes
// the connection when a write fails: neither gqlgen nor the WebSocket
// library ends a connection whose write failed, and the client of a write
// that timed out is not reading anyway.
type writeBoundedConn struct {
	net.Conn
	timeout time.Duration
}

func (c *writeBoundedConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	n, err := c.Conn.Write(p)
	if err != nil {
		_ = c.Conn.Close()
	}
	return n, err
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

// trackingImplementation accepts WebSockets through inner, keeps each in
// streams until it closes, and keeps each alive every keepAlive.
type trackingImplementation struct {
	inner     transport.WebsocketImplementation
	streams   *streams
	keepAlive time.Duration
}

func (t trackingImplementation) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	conn, err := t.inner.Accept(w, r, opts)
	if err != nil {
		return nil, err
	}
	c := &trackedConn{WebsocketConn: conn, streams: t.streams, keepAlive: t.keepAlive}
	if c.keepAlive > 0 {
		c.mu.Lock()
		c.pinger = time.AfterFunc(c.keepAlive, c.ping)
		c.mu.Unlock()
	}
	t.streams.add(c) // from here a drain may close it
	connStateOf(r.Context()).accepted(c)
	return c, nil
}

// trackedConn is a WebSocket the hub can close at a drain, kept alive, and
// held to graphql-transport-ws both ways (its protocol).
type trackedConn struct {
	transport.WebsocketConn
	streams *streams
	once    sync.Once

	// protocol checks the client's graphql-transport-ws messages
	// (NextReader) and the server's (WriteJSON).
	protocol protocol

	// The keep-alive: every keepAlive, a graphql-transport-ws ping (or
	// graphql-ws's ka). A ping not answered by a pong within two
	// intervals closes the connection: gqlgen clears the read deadline
	// when a pong comes. mu guards what follows.
	mu        sync.Mutex
	keepAlive time.Duration
	pinger    *time.Timer
	awaiting  bool // a ping went out, and no pong came yet
	closed    bool
}

var (
	pingMessage = json.RawMessage(`{"type":"ping"}`)
	kaMessage   = json.RawMessage(`{"type":"ka"}`)
)

// ping sends the keep-alive and arms the next.
func (c *trackedConn) ping() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	send := c.Subprotocol() != graphqlTransportWS || !c.awaiting
	if c.Subprotocol() == graphqlTransportWS && send {
		c.awaiting = true
	}
	c.mu.Unlock()
	if send {
		msg := kaMessage
		if c.Subprotocol() == graphqlTransportWS {
			msg = pingMessage
			if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
				_ = d.SetReadDeadline(time.Now().Add(2 * c.keepAlive))
			}
		}
		if err := c.WebsocketConn.WriteJSON(msg); err != nil {
			return // the connection is gone; its reader ends it
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.pinger.Reset(c.keepAlive)
	}
}

// WriteJSON sends a message, unless the protocol drops it (the complete
// of an operation that ended with an error).
func (c *trackedConn) WriteJSON(v any) error {
	if c.Subprotocol() == graphqlTransportWS {
		if typ, id, ok := messageOf(v); ok && id != "" && c.protocol.sent(typ, id) {
			return nil
		}
	}
	return c.WebsocketConn.WriteJSON(v)
}

// graphqlTransportWS is the graphql-transport-ws subprotocol's name.
const graphqlTransportWS = "graphql-transport-ws"

// messageOf reads the type and id of a message gqlgen sends (a struct, or
// a pointer to one, with string fields Type and ID).
func messageOf(v any) (typ, id string, ok bool) {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return "", "", false
	}
	t, i := rv.FieldByName("Type"), rv.FieldByName("ID")
	if t.Kind() != reflect.String || i.Kind() != reflect.String {
		return "", "", false
	}
	return t.String(), i.String(), true
}

// Close closes the connection and forgets it.
func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.streams.remove(c)
		c.mu.Lock()
		c.closed = true
		if c.pinger != nil {
			c.pinger.Stop()
		}
		c.mu.Unlock()
	})
	return c.WebsocketConn.Close()
}

// SetReadLimit passes the transport's read limit on.
func (c *trackedConn) SetReadLimit(limit int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(limit)
	}
}

// SetReadDeadline passes the transport's read deadline on. gqlgen clears
// it when a pong comes: the ping it answered is no longer awaited.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	if t.IsZero() {
		c.mu.Lock()
		c.awaiting = false
		c.mu.Unlock()
	}
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}

var _ io.Closer = (*trackedConn)(nil)

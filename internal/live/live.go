// Package live serves GraphQL subscriptions as live queries. Subscribers of
// the same operation (the cache of answers' key: document, operation name,
// variables, variant) form a cohort; one poller per cohort runs the
// operation as a query every Interval, on data no older than that, hashes
// the answer, and sends it to every subscriber of the cohort when it
// changed, and nothing while it is unchanged. A subscriber's first event is
// the cohort's current answer. A cohort ends when its last subscriber
// leaves.
//
// It is a gqlgen handler extension (it answers subscription operations in
// place of their resolvers) and the two streaming transports, WebSocket
// (graphql-transport-ws and the legacy graphql-ws) and Server-Sent Events
// (graphql-sse's distinct connections mode), with the bounds and the drain
// a public server needs. It knows nothing of the schema, the resolvers or
// the upstream: Execute runs an operation, and PollContext says how a
// poll's upstream calls are paced.
package live

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/compshare/imagegraph/internal/codes"
)

// Defaults of the Options left zero.
const (
	// DefaultInterval is how often a cohort is polled. Five seconds is
	// what a person waiting for a version to leave review, or watching a
	// catalogue page, notices as "live", and it keeps polls within their
	// share of the account's 20 calls/s: 25 cohorts whose data is not
	// shared cost 5 calls/s, a quarter of the quota (see DefaultShare).
	DefaultInterval = 5 * time.Second
	// DefaultShare is the share of COMPSHARE_QPS polls may use.
	DefaultShare = 0.25
	// DefaultMaxPerClient bounds one client's subscriptions at once.
	DefaultMaxPerClient = 100
	// DefaultMaxSubscriptions bounds the subscriptions of a process.
	DefaultMaxSubscriptions = 10000
	// DefaultKeepAlive is how often an idle stream is pinged, so that a
	// dead client is noticed and proxies keep the stream open.
	DefaultKeepAlive = 15 * time.Second
	// DefaultInitTimeout is how long a WebSocket may wait before its
	// connection_init.
	DefaultInitTimeout = 10 * time.Second
	// DefaultWriteTimeout is how long one write to a stream may block on a
	// client that does not read before the stream is closed.
	DefaultWriteTimeout = 10 * time.Second
)

// Options configure a Hub.
type Options struct {
	// Interval is how often each cohort is polled (LIVE_POLL_INTERVAL).
	Interval time.Duration
	// Execute runs a subscription operation as the query of the same
	// fields, with the context's values (PollContext's), and returns its
	// answer.
	Execute func(ctx context.Context, oc *graphql.OperationContext) *graphql.Response
	// PollContext returns the context a poll runs with: data no older
	// than maxAge (fetched since the poll's tick began), and the share of
	// the quota its calls wait for.
	PollContext func(ctx context.Context, maxAge time.Duration) context.Context
	// Key returns the cohort of an operation (the cache of answers' key);
	// false when it has none (it is polled alone).
	Key func(oc *graphql.OperationContext) (string, bool)
	// Client returns the client a subscription counts against (its API
	// key's name, or its address).
	Client func(ctx context.Context) string
	// MaxPerClient bounds one client's subscriptions at once
	// (MAX_SUBSCRIPTIONS_PER_CLIENT); MaxSubscriptions the process's.
	MaxPerClient, MaxSubscriptions int
	// Observer, when set, is told of polls and events (metrics).
	Observer Observer
	// Log receives failed polls.
	Log *slog.Logger
}

// Observer is told what the hub does, for metrics.
type Observer interface {
	// Polled is told of each poll: how late it ran against its interval,
	// and whether its answer changed.
	Polled(lag time.Duration, changed bool)
	// Sent is told of each event sent, by transport.
	Sent(transport string)
}

// Hub serves subscriptions. Build it with New; it is safe for concurrent
// use.
type Hub struct {
	opts Options

	mu        sync.Mutex
	cohorts   map[string]*cohort
	perClient map[string]int
	total     int

	byTransport [transports]atomic.Int64
	conns       [transports]atomic.Int64
	polls       atomic.Int64
	events      atomic.Int64

	streams  streams
	draining atomic.Bool
}

// The transports, for counts.
const (
	overWebSocket = iota
	overSSE
	transports
)

// TransportNames name the transports in Stats.
var TransportNames = [transports]string{"websocket", "sse"}

// New returns a Hub of opts.
func New(opts Options) *Hub {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.PollContext == nil {
		opts.PollContext = func(ctx context.Context, _ time.Duration) context.Context { return ctx }
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Client == nil {
		opts.Client = func(context.Context) string { return "" }
	}
	return &Hub{opts: opts, cohorts: map[string]*cohort{}, perClient: map[string]int{}}
}

// Stats are what the hub holds and did, for metrics.
type Stats struct {
	// Subscriptions and Connections are open now, by transport.
	Subscriptions, Connections [transports]int64
	// Cohorts are the operations polled now.
	Cohorts int
	// Polls and Events count polls made and events sent.
	Polls, Events int64
	// Interval is the configured poll interval.
	Interval time.Duration
}

// Stats returns the hub's counts.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	n := len(h.cohorts)
	h.mu.Unlock()
	st := Stats{Cohorts: n, Polls: h.polls.Load(), Events: h.events.Load(), Interval: h.opts.Interval}
	for i := range transports {
		st.Subscriptions[i] = h.byTransport[i].Load()
		st.Connections[i] = h.conns[i].Load()
	}
	return st
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
} = (*Hub)(nil)

// ExtensionName names the extension.
func (*Hub) ExtensionName() string { return "LiveQueries" }

// Validate accepts every schema.
func (*Hub) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptOperation answers a subscription operation from its cohort, in
// place of the subscription's resolvers; any other operation runs as
// usual.
func (h *Hub) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if oc.Operation == nil || oc.Operation.Operation != ast.Subscription {
		return next(ctx)
	}
	s, err := h.subscribe(ctx, oc)
	if err != nil {
		return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{err}})
	}
	return s.next
}

// errTooMany is the refusal of a subscription past a bound.
func tooMany(code, msg string) *gqlerror.Error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": code}}
}

// subscribe adds a subscriber of oc to its cohort, starting the cohort when
// it is the first.
func (h *Hub) subscribe(ctx context.Context, oc *graphql.OperationContext) (*subscriber, *gqlerror.Error) {
	if h.draining.Load() {
		return nil, tooMany(codes.Overloaded, "the server is shutting down: subscribe again, to another replica")
	}
	client := h.opts.Client(ctx)
	key, shared := h.opts.Key(oc)
	if !shared {
		key = fmt.Sprintf("\x00alone-%p", oc)
	}
	s := &subscriber{hub: h, client: client, transport: transportOf(oc.Headers), signal: make(chan struct{}, 1)}
	h.mu.Lock()
	switch {
	case h.opts.MaxSubscriptions > 0 && h.total >= h.opts.MaxSubscriptions:
		h.mu.Unlock()
		return nil, tooMany(codes.Overloaded, fmt.Sprintf("this server holds %d subscriptions, as many as it may (MAX_SUBSCRIPTIONS): subscribe again later", h.total))
	case h.opts.MaxPerClient > 0 && h.perClient[client] >= h.opts.MaxPerClient:
		h.mu.Unlock()
		return nil, tooMany(codes.MaxSubscriptions, fmt.Sprintf("this client holds %d subscriptions, as many as it may (MAX_SUBSCRIPTIONS_PER_CLIENT): stop one first", h.opts.MaxPerClient))
	}
	c, ok := h.cohorts[key]
	if !ok {
		c = h.newCohort(key, oc)
		h.cohorts[key] = c
	}
	c.subs[s] = struct{}{}
	s.cohort = c
	h.total++
	h.perClient[client]++
	if last := c.last; last != nil {
		s.offer(last)
	}
	h.mu.Unlock()
	h.byTransport[s.transport].Add(1)
	if !ok {
		go c.poll()
	}
	return s, nil
}

// leave removes s; the last subscriber of a cohort stops its poller.
func (h *Hub) leave(s *subscriber) {
	h.mu.Lock()
	c := s.cohort
	if _, ok := c.subs[s]; !ok {
		h.mu.Unlock()
		return
	}
	delete(c.subs, s)
	h.total--
	if h.perClient[s.client]--; h.perClient[s.client] == 0 {
		delete(h.perClient, s.client)
	}
	last := len(c.subs) == 0
	if last && h.cohorts[c.key] == c {
		delete(h.cohorts, c.key)
	}
	h.mu.Unlock()
	h.byTransport[s.transport].Add(-1)
	if last {
		c.stop()
	}
}

// transportOf tells the transport of a subscription by its request's
// headers.
func transportOf(h http.Header) int {
	if strings.Contains(h.Get("Accept"), "text/event-stream") && h.Get("Upgrade") == "" {
		return overSSE
	}
	return overWebSocket
}

// payload is one answer of a cohort, shared by every subscriber.
type payload struct {
	resp *graphql.Response
	hash [sha256.Size]byte
}

// subscriber is one subscription: the latest payload it has not sent yet.
type subscriber struct {
	hub       *Hub
	cohort    *cohort
	client    string
	transport int

	mu      sync.Mutex
	pending *payload
	sent    [sha256.Size]byte
	signal  chan struct{}
}

// offer makes p the next payload s sends (a slower subscriber skips to the
// latest answer).
func (s *subscriber) offer(p *payload) {
	s.mu.Lock()
	s.pending = p
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// next is the subscription's ResponseHandler: it returns the next changed
// answer, or nil once the subscription ends (its client stopped it or
// left). During a drain an SSE stream is aborted instead, so that its
// client retries elsewhere (a WebSocket is closed with 1012 by the drain).
func (s *subscriber) next(ctx context.Context) *graphql.Response {
	for {
		select {
		case <-ctx.Done():
			s.hub.leave(s)
			return nil
		case <-s.signal:
		}
		if s.hub.draining.Load() {
			s.hub.leave(s)
			if s.transport == overSSE {
				panic(http.ErrAbortHandler)
			}
			return nil
		}
		s.mu.Lock()
		p := s.pending
		s.pending = nil
		s.mu.Unlock()
		if p == nil || p.hash == s.sent {
			continue
		}
		s.sent = p.hash
		s.hub.events.Add(1)
		if o := s.hub.opts.Observer; o != nil {
			o.Sent(TransportNames[s.transport])
		}
		return p.resp
	}
}

// cohort is the subscribers of one operation and their poller.
type cohort struct {
	hub  *Hub
	key  string
	oc   *graphql.OperationContext
	subs map[*subscriber]struct{}
	last *payload // guarded by hub.mu

	ctx  context.Context
	stop context.CancelFunc
}

func (h *Hub) newCohort(key string, oc *graphql.OperationContext) *cohort {
	ctx, stop := context.WithCancel(context.Background())
	return &cohort{hub: h, key: key, oc: oc, subs: map[*subscriber]struct{}{}, ctx: ctx, stop: stop}
}

// poll runs the cohort's operation once at once (the first event), then
// once every interval, on a tick of its own until the cohort ends.
//
// The ticks are aligned on the wall clock, at a phase the cohort's key
// decides: every replica of a fleet polls a cohort at the same moments,
// give or take a jitter of up to pollSpread, and each poll takes only data
// fetched since its tick began. So the first poll of a tick, on whichever
// replica, makes the upstream call and shares its answer (through the
// fleet's Redis tier), the others read it, and no poll runs on data from a
// tick before: a change reaches every subscriber within an interval and the
// jitter, and a fleet pays about one call per cohort and interval. A poll
// that ran late (its calls waited for their share of the quota) is
// measured as lag, and the next runs at the next tick.
func (c *cohort) poll() {
	h := c.hub
	interval := h.opts.Interval
	phase := time.Duration(hashKey(c.key) % uint64(interval))
	spread := min(interval/4, maxPollSpread)
	now := time.Now()
	tick := nextTick(now, interval, phase).Add(-interval) // the tick now is in
	due := now
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		resp := c.run(start.Sub(tick))
		if c.ctx.Err() != nil {
			return
		}
		h.polls.Add(1)
		changed := c.publish(resp)
		if o := h.opts.Observer; o != nil {
			o.Polled(max(start.Sub(due), 0), changed)
		}
		tick = nextTick(start, interval, phase)
		due = tick.Add(time.Duration(rand.Int64N(int64(spread) + 1)))
		timer.Reset(max(time.Until(due), 0))
	}
}

// maxPollSpread bounds the jitter of a cohort's polls around its tick.
const maxPollSpread = 500 * time.Millisecond

// nextTick returns the first tick after t of a clock of interval and
// phase.
func nextTick(t time.Time, interval, phase time.Duration) time.Time {
	n := t.UnixNano() - int64(phase)
	k := n/int64(interval) + 1
	return time.Unix(0, k*int64(interval)+int64(phase))
}

// hashKey is FNV-1a of a cohort's key: its phase.
func hashKey(key string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return h.Sum64()
}

// run executes the operation once, as a poll, on data no older than
// maxAge.
func (c *cohort) run(maxAge time.Duration) (resp *graphql.Response) {
	defer func() {
		if p := recover(); p != nil {
			c.hub.opts.Log.Error("live query poll panicked", "panic", fmt.Sprint(p))
			resp = &graphql.Response{Errors: gqlerror.List{{Message: "internal error", Extensions: map[string]any{"code": codes.Internal}}}}
		}
	}()
	ctx, cancel := context.WithTimeout(c.hub.opts.PollContext(c.ctx, maxAge), pollTimeout)
	defer cancel()
	return c.hub.opts.Execute(ctx, c.oc)
}

// pollTimeout bounds one poll.
const pollTimeout = 30 * time.Second

// publish sends resp to every subscriber when it differs from the last
// answer (its data and errors; extensions, which say what the poll cost,
// do not count), and reports whether it did.
func (c *cohort) publish(resp *graphql.Response) bool {
	if resp == nil {
		return false
	}
	out := &graphql.Response{Data: resp.Data, Errors: resp.Errors}
	b, err := json.Marshal(out)
	if err != nil {
		c.hub.opts.Log.Error("live query answer does not encode", "error", err.Error())
		return false
	}
	p := &payload{resp: out, hash: sha256.Sum256(b)}
	h := c.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.last != nil && c.last.hash == p.hash {
		return false
	}
	c.last = p
	for s := range c.subs {
		s.offer(p)
	}
	return true
}

// Drain makes the hub refuse new subscriptions and ends every stream it
// serves: WebSockets close with 1012 (service restart), which clients
// retry, and SSE streams are cut, which clients retry too.
func (h *Hub) Drain() {
	h.draining.Store(true)
	h.streams.closeAll()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.cohorts {
		for s := range c.subs {
			select {
			case s.signal <- struct{}{}:
			default:
			}
		}
	}
}

// ErrDraining refuses a stream while the hub drains.
var ErrDraining = errors.New("live: the server is shutting down")

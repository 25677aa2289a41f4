package live

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"go.uber.org/goleak"

	"github.com/compshare/imagegraph/internal/codes"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// catalogue stands for the upstream seen through a query: each operation's
// answer is the value its key holds, and every execution is counted.
type catalogue struct {
	mu     sync.Mutex
	values map[string]string
	runs   map[string]int
}

func newCatalogue() *catalogue {
	return &catalogue{values: map[string]string{}, runs: map[string]int{}}
}

func (c *catalogue) set(key, v string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.values[key] = v
}

func (c *catalogue) execute(_ context.Context, oc *graphql.OperationContext) *graphql.Response {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs[oc.RawQuery]++
	data, _ := json.Marshal(map[string]string{"v": c.values[oc.RawQuery]})
	return &graphql.Response{Data: data}
}

func (c *catalogue) executions(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[key]
}

// newHub is a hub over cat, polled every interval, keyed by the query.
func newHub(cat *catalogue, interval time.Duration, opts ...func(*Options)) *Hub {
	o := Options{
		Interval: interval,
		Execute:  cat.execute,
		Key:      func(oc *graphql.OperationContext) (string, bool) { return oc.RawQuery, true },
		Client:   func(ctx context.Context) string { s, _ := ctx.Value(clientKey{}).(string); return s },
	}
	for _, f := range opts {
		f(&o)
	}
	return New(o)
}

type clientKey struct{}

// subscription is one subscriber: its handler, driven the way a transport
// drives it, and the payloads it got.
type subscription struct {
	events chan string
	cancel context.CancelFunc
	done   chan struct{}
}

// subscribe starts a subscription of query by client, reading its events
// until it ends.
func subscribe(t *testing.T, h *Hub, client, query string) (*subscription, *graphql.Response) {
	t.Helper()
	ctx := context.WithValue(context.Background(), clientKey{}, client)
	oc := &graphql.OperationContext{RawQuery: query, Operation: &ast.OperationDefinition{Operation: ast.Subscription}, Headers: http.Header{}}
	ctx = graphql.WithOperationContext(ctx, oc)
	next := h.InterceptOperation(ctx, func(context.Context) graphql.ResponseHandler {
		t.Fatal("a subscription does not run its resolvers")
		return nil
	})
	ctx, cancel := context.WithCancel(ctx)
	s := &subscription{events: make(chan string, 16), cancel: cancel, done: make(chan struct{})}
	first := next(ctx)
	if len(first.Errors) > 0 {
		cancel()
		return nil, first
	}
	s.events <- string(first.Data)
	go func() {
		defer close(s.done)
		for {
			resp := next(ctx)
			if resp == nil {
				return
			}
			s.events <- string(resp.Data)
		}
	}()
	return s, nil
}

func (s *subscription) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	<-s.done
}

func (s *subscription) next(t *testing.T) string {
	t.Helper()
	select {
	case e := <-s.events:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
		return ""
	}
}

// quiet reports that no event came while the cohort was polled n more
// times.
func (s *subscription) quiet(t *testing.T, cat *catalogue, key string, n int) {
	t.Helper()
	want := cat.executions(key) + n
	require.Eventually(t, func() bool { return cat.executions(key) >= want }, 10*time.Second, time.Millisecond)
	select {
	case e := <-s.events:
		t.Fatalf("an event without a change: %s", e)
	default:
	}
}

// TestFirstEventThenChangesOnly: the first event is the current value;
// after that an event goes out on each change and nothing while the answer
// is unchanged.
func TestFirstEventThenChangesOnly(t *testing.T) {
	cat := newCatalogue()
	cat.set("q", "review")
	h := newHub(cat, 5*time.Millisecond)
	s, refused := subscribe(t, h, "a", "q")
	require.Nil(t, refused)
	defer s.stop(t)
	assert.JSONEq(t, `{"v":"review"}`, s.next(t))
	s.quiet(t, cat, "q", 3)
	cat.set("q", "available")
	assert.JSONEq(t, `{"v":"available"}`, s.next(t))
	s.quiet(t, cat, "q", 3)
}

// TestCohortsArePolledOnce: a thousand subscribers of ten operations cost
// ten executions a poll, whatever their number.
func TestCohortsArePolledOnce(t *testing.T) {
	cat := newCatalogue()
	h := newHub(cat, time.Hour) // one poll each: the first
	var subs []*subscription
	for i := range 1000 {
		s, refused := subscribe(t, h, fmt.Sprint(i%50), fmt.Sprintf("q%d", i%10))
		require.Nil(t, refused)
		subs = append(subs, s)
	}
	for _, s := range subs {
		s.next(t)
	}
	assert.Equal(t, 10, h.Stats().Cohorts)
	for i := range 10 {
		assert.Equal(t, 1, cat.executions(fmt.Sprintf("q%d", i)), "one poll per cohort")
	}
	assert.EqualValues(t, 1000, h.Stats().Subscriptions[overWebSocket])
	for _, s := range subs {
		s.stop(t)
	}
	assert.Zero(t, h.Stats().Cohorts, "the last subscriber ended each cohort")
	assert.Zero(t, h.Stats().Subscriptions[overWebSocket])
}

// TestLateSubscriberGetsTheCurrentValue: a subscriber that joins a running
// cohort gets its current answer at once, without a poll of its own.
func TestLateSubscriberGetsTheCurrentValue(t *testing.T) {
	cat := newCatalogue()
	cat.set("q", "x")
	h := newHub(cat, time.Hour)
	a, _ := subscribe(t, h, "a", "q")
	defer a.stop(t)
	a.next(t)
	b, _ := subscribe(t, h, "b", "q")
	defer b.stop(t)
	assert.JSONEq(t, `{"v":"x"}`, b.next(t))
	assert.Equal(t, 1, cat.executions("q"))
}

// TestBounds: past MaxPerClient a subscription is refused with
// MAX_SUBSCRIPTIONS_LIMIT, past MaxSubscriptions with SERVER_OVERLOADED;
// the others go on.
func TestBounds(t *testing.T) {
	cat := newCatalogue()
	h := newHub(cat, time.Hour, func(o *Options) { o.MaxPerClient, o.MaxSubscriptions = 2, 3 })
	a1, _ := subscribe(t, h, "a", "q")
	a2, _ := subscribe(t, h, "a", "q")
	_, refused := subscribe(t, h, "a", "q")
	require.NotNil(t, refused)
	assert.Equal(t, codes.MaxSubscriptions, refused.Errors[0].Extensions["code"])
	b1, _ := subscribe(t, h, "b", "q")
	_, refused = subscribe(t, h, "c", "q")
	require.NotNil(t, refused)
	assert.Equal(t, codes.Overloaded, refused.Errors[0].Extensions["code"])
	a1.stop(t)
	a3, refused := subscribe(t, h, "a", "q")
	require.Nil(t, refused, "room again once one ended")
	for _, s := range []*subscription{a2, b1, a3} {
		s.stop(t)
	}
}

// TestDrainEndsSubscriptions: a drain refuses new subscriptions and ends
// the open ones.
func TestDrainEndsSubscriptions(t *testing.T) {
	cat := newCatalogue()
	h := newHub(cat, time.Hour)
	s, _ := subscribe(t, h, "a", "q")
	s.next(t)
	h.Drain()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription did not end")
	}
	_, refused := subscribe(t, h, "a", "q")
	require.NotNil(t, refused)
	assert.Equal(t, codes.Overloaded, refused.Errors[0].Extensions["code"])
	s.cancel()
	assert.Zero(t, h.Stats().Cohorts)
}

// TestPollsStretchAndReportLag: when polls must wait (their calls wait for
// their share of the quota), the next poll runs at once and the lag is
// reported; the interval does not pile polls up.
func TestPollsStretchAndReportLag(t *testing.T) {
	cat := newCatalogue()
	var lags lagRecorder
	slow := func(ctx context.Context, oc *graphql.OperationContext) *graphql.Response {
		time.Sleep(20 * time.Millisecond) // a poll that waited for the quota
		return cat.execute(ctx, oc)
	}
	h := newHub(cat, 5*time.Millisecond, func(o *Options) { o.Execute, o.Observer = slow, &lags })
	s, _ := subscribe(t, h, "a", "q")
	s.next(t)
	require.Eventually(t, func() bool { return lags.count() >= 3 }, 10*time.Second, time.Millisecond)
	s.stop(t)
	assert.Positive(t, lags.max(), "polls ran late and said so")
}

type lagRecorder struct {
	mu   sync.Mutex
	lags []time.Duration
	sent atomic.Int64
}

func (l *lagRecorder) Polled(lag time.Duration, _ bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lags = append(l.lags, lag)
}

func (l *lagRecorder) Sent(string) { l.sent.Add(1) }

func (l *lagRecorder) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lags)
}

func (l *lagRecorder) max() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var m time.Duration
	for _, d := range l.lags {
		m = max(m, d)
	}
	return m
}

// TestPollPanicIsAnError: a poll that panics sends an internal error and
// the cohort goes on.
func TestPollPanicIsAnError(t *testing.T) {
	var calls atomic.Int64
	h := New(Options{
		Interval: 5 * time.Millisecond,
		Key:      func(oc *graphql.OperationContext) (string, bool) { return oc.RawQuery, true },
		Execute: func(context.Context, *graphql.OperationContext) *graphql.Response {
			if calls.Add(1) == 1 {
				panic("boom")
			}
			return &graphql.Response{Data: json.RawMessage(`{"v":1}`)}
		},
	})
	oc := &graphql.OperationContext{RawQuery: "q", Operation: &ast.OperationDefinition{Operation: ast.Subscription}, Headers: http.Header{}}
	ctx, cancel := context.WithCancel(graphql.WithOperationContext(context.Background(), oc))
	defer cancel()
	next := h.InterceptOperation(ctx, nil)
	first := next(ctx)
	require.Len(t, first.Errors, 1)
	assert.Equal(t, codes.Internal, first.Errors[0].Extensions["code"])
	assert.JSONEq(t, `{"v":1}`, string(next(ctx).Data), "the next poll answers")
	cancel()
	assert.Nil(t, next(ctx))
	require.Eventually(t, func() bool { return h.Stats().Cohorts == 0 }, 10*time.Second, time.Millisecond)
}

// TestPollsRunOnAlignedTicks: two hubs (two replicas) poll a cohort at the
// same ticks, on a phase its key decides, and each poll after the first
// takes only data fetched since its tick began: the first poll of a tick,
// on whichever replica, fetches, the others share it, and no poll sees data
// from the tick before.
func TestPollsRunOnAlignedTicks(t *testing.T) {
	const interval = 400 * time.Millisecond
	spread := min(interval/4, maxPollSpread)
	type poll struct {
		at     time.Time
		maxAge time.Duration
	}
	var mu sync.Mutex
	polls := map[int][]poll{}
	hub := func(i int) *Hub {
		return newHub(newCatalogue(), interval, func(o *Options) {
			o.PollContext = func(ctx context.Context, maxAge time.Duration) context.Context {
				mu.Lock()
				defer mu.Unlock()
				polls[i] = append(polls[i], poll{time.Now(), maxAge})
				return ctx
			}
		})
	}
	a, _ := subscribe(t, hub(0), "x", "q")
	time.Sleep(interval / 3) // the second replica's subscriber comes later
	b, _ := subscribe(t, hub(1), "x", "q")
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(polls[0]) >= 5 && len(polls[1]) >= 5
	}, 10*time.Second, 10*time.Millisecond)
	a.stop(t)
	b.stop(t)

	phase := time.Duration(hashKey("q") % uint64(interval))
	slack := interval / 4 // a timer that fires late on a busy machine
	mu.Lock()
	defer mu.Unlock()
	for i, ps := range polls {
		for _, p := range ps[1:] { // the first runs at once, off its tick
			offset := time.Duration((p.at.UnixNano() - int64(phase)) % int64(interval))
			assert.Less(t, offset, spread+slack, "replica %d polled %s into its tick", i, offset)
			assert.Less(t, p.maxAge, spread+slack, "replica %d took data %s old", i, p.maxAge)
		}
	}
}

// TestNewStreamsAreRefusedWhileDraining: during a drain a new WebSocket or
// SSE stream gets a coded 503 with Retry-After, which its client retries
// elsewhere.
func TestNewStreamsAreRefusedWhileDraining(t *testing.T) {
	h := newHub(newCatalogue(), time.Second)
	h.Drain()
	for _, tr := range h.Transports(TransportOptions{}) {
		req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(`{"query":"subscription { a }"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		if _, ws := tr.(*websocketTransport); ws {
			req.Header.Set("Upgrade", "websocket")
		}
		rec := httptest.NewRecorder()
		tr.Do(rec, req, nil)
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code, "%T", tr)
		assert.Equal(t, "1", rec.Header().Get("Retry-After"))
		assert.Contains(t, rec.Body.String(), `"code":"`+codes.Overloaded+`"`)
	}
}

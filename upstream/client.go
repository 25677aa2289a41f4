package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// RequestIDHeader is the response header that carries the upstream's request id.
const RequestIDHeader = "X-UCLOUD-REQUEST-UUID"

// maxMessageBytes bounds the upstream text an APIError carries.
const maxMessageBytes = 1024

// Client calls CompShare's API. Safe for concurrent use; build it with
// NewClient (the zero value is not usable) and do not copy it.
//
// Every call waits for an in-flight slot (WithMaxInFlight) and a rate-limit
// token (WithRateLimit) per attempt, so the upstream sees a bounded,
// polite load however many goroutines call.
type Client struct {
	baseURL      string
	region       string
	projectID    string
	creds        *credentials // a pointer, so printing a Client by value shows no key
	httpClient   *http.Client
	timeout      time.Duration
	retry        RetryPolicy
	maxInFlight  int
	qps          float64
	burst        int
	userAgent    string
	maxBodyBytes int64
	logger       *slog.Logger

	endpoint string
	sem      chan struct{}
	limiter  Limiter
	// Seams for tests; set by NewClient.
	sleep     func(context.Context, time.Duration) error
	jitter    func(time.Duration) time.Duration
	now       func() time.Time
	afterJoin func() // called once a caller has joined its flight; nil outside tests

	mu      sync.Mutex
	flights map[string]*flight // by coalescing key, while the call runs

	// last is the outcome of the last call that finished.
	last atomic.Pointer[Outcome]

	breaker         *breaker // nil without WithCircuitBreaker
	breakerFailures int
	breakerCooldown time.Duration

	observer  Observer // nil without WithObserver
	coalesced atomic.Int64
}

type credentials struct{ public, private string }

// Limiter paces the client's calls: Wait returns when one more call may
// go, or ctx's error. A *rate.Limiter is one; so is a limiter a fleet of
// replicas shares.
type Limiter interface {
	Wait(ctx context.Context) error
}

// NewClient returns a Client configured by opts. WithCredentials is required;
// every other option has a default (see the Default constants).
func NewClient(opts ...Option) (*Client, error) {
	c := &Client{
		baseURL:      DefaultBaseURL,
		region:       DefaultRegion,
		timeout:      DefaultTimeout,
		retry:        DefaultRetryPolicy,
		maxInFlight:  DefaultMaxInFlight,
		qps:          DefaultQPS,
		burst:        DefaultBurst,
		userAgent:    DefaultUserAgent,
		maxBodyBytes: DefaultMaxBodyBytes,
		sleep:        sleepCtx,
		jitter:       fullJitter,
		now:          time.Now,
		flights:      map[string]*flight{},
	}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(c); err != nil {
			return nil, err
		}
	}
	if c.creds == nil {
		return nil, errors.New("upstream: NewClient: WithCredentials is required")
	}
	if c.httpClient == nil {
		c.httpClient = defaultHTTPClient(c.maxInFlight)
	}
	if c.limiter == nil {
		c.limiter = rate.NewLimiter(rate.Limit(c.qps), c.burst)
	}
	c.sem = make(chan struct{}, c.maxInFlight)
	if c.breakerFailures > 0 {
		c.breaker = newBreaker(c.breakerFailures, c.breakerCooldown, c.logger, c.now)
	}
	c.endpoint = c.baseURL + "/?Action=" + url.QueryEscape(ActionDescribeCommunityImages)
	return c, nil
}

// defaultHTTPClient returns a client whose Transport keeps an idle connection
// for every attempt that may be in flight and which does not follow
// redirects (a redirect would re-send the signed body elsewhere).
// CloseIdleConnections closes the client's idle keep-alive connections to
// the upstream (a test that counts goroutines, a replica about to stop).
func (c *Client) CloseIdleConnections() { c.httpClient.CloseIdleConnections() }

func defaultHTTPClient(maxInFlight int) *http.Client {
	t, ok := http.DefaultTransport.(*http.Transport)
	if ok {
		t = t.Clone()
	} else {
		t = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	}
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.MaxIdleConns = max(100, maxInFlight)
	t.MaxIdleConnsPerHost = maxInFlight
	t.IdleConnTimeout = 90 * time.Second
	t.TLSHandshakeTimeout = 5 * time.Second
	t.ExpectContinueTimeout = time.Second
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Outcome is how a call ended: when, and its error (nil for success).
type Outcome struct {
	At  time.Time
	Err error
}

// LastOutcome returns the outcome of the last call that finished (not
// counting calls every caller abandoned), or nil before any did: what a
// readiness check reads instead of making calls of its own while traffic
// flows.
func (c *Client) LastOutcome() *Outcome { return c.last.Load() }

// Region returns the region sent with requests that name none.
func (c *Client) Region() string { return c.region }

// String describes the client's configuration with the private key masked.
func (c *Client) String() string {
	if c == nil {
		return "upstream.Client(nil)"
	}
	pub, priv := c.keys()
	return fmt.Sprintf("upstream.Client{baseURL: %q, region: %q, projectID: %q, publicKey: %q, privateKey: %q, "+
		"timeout: %s, maxRetries: %d, baseDelay: %s, maxDelay: %s, maxInFlight: %d, qps: %v, burst: %d, userAgent: %q, maxBodyBytes: %d}",
		c.baseURL, c.region, c.projectID, pub, priv,
		c.timeout, c.retry.MaxRetries, c.retry.BaseDelay, c.retry.MaxDelay, c.maxInFlight, c.qps, c.burst, c.userAgent, c.maxBodyBytes)
}

// GoString is String, so %#v masks the private key too.
func (c *Client) GoString() string { return c.String() }

// LogValue makes slog log the client's configuration with the private key masked.
func (c *Client) LogValue() slog.Value {
	if c == nil {
		return slog.StringValue("upstream.Client(nil)")
	}
	pub, priv := c.keys()
	return slog.GroupValue(
		slog.String("base_url", c.baseURL),
		slog.String("region", c.region),
		slog.String("project_id", c.projectID),
		slog.String("public_key", pub),
		slog.String("private_key", priv),
		slog.Duration("timeout", c.timeout),
		slog.Int("max_retries", c.retry.MaxRetries),
		slog.Int("max_in_flight", c.maxInFlight),
		slog.Float64("qps", c.qps),
		slog.Int("burst", c.burst),
	)
}

func (c *Client) keys() (public, maskedPrivate string) {
	if c.creds == nil {
		return "", ""
	}
	return c.creds.public, "****"
}

// DescribeCommunityImages calls the DescribeCommunityImages action.
//
// The request is validated before any I/O. Identical concurrent calls (same
// parameters, region and project) share one upstream call, and then share its
// response: treat the returned response as read-only. A caller whose ctx ends
// returns at once without failing the others; the shared call runs detached
// from any one caller's cancellation, bounded by a budget of
// (MaxRetries+2)·timeout + MaxRetries·MaxDelay, and is given up as soon as
// no caller waits for it any more.
//
// Every error is an *APIError (see AsAPIError). When ctx ends first the error
// has KindCanceled (context.Canceled) or KindTimeout (context.DeadlineExceeded),
// is not retryable, and wraps ctx.Err() for errors.Is.
func (c *Client) DescribeCommunityImages(ctx context.Context, req *DescribeCommunityImagesRequest) (*DescribeCommunityImagesResponse, error) {
	if req == nil {
		return nil, invalidError(errors.New("upstream: nil request"))
	}
	if err := req.Validate(); err != nil {
		return nil, invalidError(err)
	}
	params, err := req.Params(c.region)
	if err != nil {
		return nil, invalidError(err)
	}
	if c.projectID != "" {
		params["ProjectId"] = c.projectID
	}
	if ctx.Err() != nil {
		return nil, c.callerError(ctx, nil)
	}
	key := encodeParams(params)
	f, err := c.join(ctx, key, params)
	if err != nil {
		return nil, err
	}
	if c.afterJoin != nil {
		c.afterJoin()
	}
	select {
	case <-f.done:
		if f.err != nil {
			cp := *f.err // each caller gets its own copy of a shared error
			return nil, &cp
		}
		return f.resp, nil
	case <-ctx.Done():
		c.leave(key, f)
		return nil, c.callerError(ctx, f)
	}
}

// flight is one upstream call that identical concurrent calls share.
type flight struct {
	done   chan struct{} // closed once resp or err is set
	resp   *DescribeCommunityImagesResponse
	err    *APIError
	cancel context.CancelFunc
	prog   progress
	// report tells the circuit breaker how the call went.
	report func(error)
	// waiters is the number of callers waiting for it (guarded by c.mu).
	waiters int
}

// join returns the flight of key, starting it when there is none and the
// circuit breaker lets a call through. The operation's Usage (ctx) records
// which it was.
func (c *Client) join(ctx context.Context, key string, params Params) (*flight, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.flights[key]; ok {
		f.waiters++
		c.coalesced.Add(1)
		UsageFrom(ctx).Coalesced()
		return f, nil
	}
	done, err := c.breaker.allow()
	if err != nil {
		return nil, err
	}
	// Detached from the caller's cancellation (keeping its values), since
	// others may join; bounded by the call's budget.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.budget())
	f := &flight{done: make(chan struct{}), cancel: cancel, waiters: 1, report: done}
	c.flights[key] = f
	UsageFrom(ctx).Called()
	go c.run(fctx, key, params, f)
	return f, nil
}

// leave records that a caller stopped waiting for f; when it was the last,
// the call is given up and forgotten, so that a later identical call starts
// afresh.
func (c *Client) leave(key string, f *flight) {
	c.mu.Lock()
	f.waiters--
	last := f.waiters == 0
	if last && c.flights[key] == f {
		delete(c.flights, key)
	}
	c.mu.Unlock()
	if last {
		f.cancel()
	}
}

// run makes the call of f and hands its outcome to the callers.
func (c *Client) run(ctx context.Context, key string, params Params, f *flight) {
	defer f.cancel()
	resp, err := c.do(ctx, SignedForm(params, c.creds.public, c.creds.private), &f.prog)
	var failure error // err as an error: nil, not a nil *APIError, on success
	if err != nil {
		failure = err
	}
	f.report(failure)
	if !errors.Is(failure, context.Canceled) {
		c.last.Store(&Outcome{At: c.now(), Err: failure})
	}
	c.mu.Lock()
	if c.flights[key] == f {
		delete(c.flights, key)
	}
	c.mu.Unlock()
	f.resp, f.err = resp, err
	close(f.done)
}

func invalidError(err error) *APIError {
	return &APIError{Action: ActionDescribeCommunityImages, Kind: KindInvalid, Message: err.Error(), Err: err}
}

// callerError reports that the caller's ctx ended, with what is known of the
// flight it leaves behind (nil when it joined none).
func (c *Client) callerError(ctx context.Context, f *flight) *APIError {
	err := ctx.Err()
	e := &APIError{Action: ActionDescribeCommunityImages, Kind: KindCanceled, Message: "canceled by caller", Err: err}
	if errors.Is(err, context.DeadlineExceeded) {
		e.Kind, e.Message = KindTimeout, "caller's deadline exceeded"
	}
	if f != nil {
		e.Attempts, e.HTTPStatus, e.RequestID = f.prog.snapshot()
	}
	return e
}

// budget bounds a shared call: every attempt's timeout, every backoff, and
// one more timeout for queueing on the semaphore and the rate limiter.
func (c *Client) budget() time.Duration {
	n := time.Duration(c.retry.MaxRetries)
	return (n+2)*c.timeout + n*c.retry.MaxDelay
}

// do runs the attempts of one call.
func (c *Client) do(ctx context.Context, body string, p *progress) (*DescribeCommunityImagesResponse, *APIError) {
	for attempt := 1; ; attempt++ {
		end := noAttempt
		if c.observer != nil {
			end = c.observer.StartAttempt(ctx, attempt)
		}
		rep := AttemptReport{Attempt: attempt}
		resp, e, retryAfter := c.attempt(ctx, body, &rep)
		if e == nil {
			p.record(attempt, 0, resp.RequestID)
			end(rep)
			return resp, nil
		}
		e.Action = ActionDescribeCommunityImages
		e.Attempts = attempt
		e.Message = c.redact(e.Message, body)
		p.record(attempt, e.HTTPStatus, e.RequestID)
		rep.Err, rep.HTTPStatus, rep.RequestID = e, e.HTTPStatus, e.RequestID
		if !e.Retryable || attempt > c.retry.MaxRetries {
			end(rep)
			if e.Retryable {
				c.log(ctx, slog.LevelWarn, "upstream call failed after retries", e, 0)
			}
			return nil, e
		}
		d := c.retry.delay(attempt-1, retryAfter, c.jitter)
		if dl, ok := ctx.Deadline(); ok && c.now().Add(d).After(dl) {
			end(rep)
			c.log(ctx, slog.LevelWarn, "upstream call failed, no budget left to retry", e, d)
			return nil, e
		}
		rep.Retry = true
		end(rep)
		c.log(ctx, slog.LevelDebug, "upstream call failed, retrying", e, d)
		if c.sleep(ctx, d) != nil {
			return nil, e
		}
	}
}

// attempt makes one HTTP exchange, recording its waits and timing in rep.
// It returns the decoded response, or the failure (without Action or
// Attempts) and any Retry-After the server sent.
func (c *Client) attempt(ctx context.Context, body string, rep *AttemptReport) (*DescribeCommunityImagesResponse, *APIError, time.Duration) {
	start := time.Now()
	if l := callLimiterFrom(ctx); l != nil {
		// Before a slot: a call waiting for its share holds none.
		if err := l.Wait(ctx); err != nil {
			rep.LimiterWait = time.Since(start)
			if ctx.Err() != nil {
				return nil, c.budgetError(ctx.Err(), 0, ""), 0
			}
			return nil, &APIError{Kind: KindTimeout, Message: "rate limit wait would exceed the call's budget", Err: err}, 0
		}
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		rep.SlotWait = time.Since(start)
		return nil, c.budgetError(ctx.Err(), 0, ""), 0
	}
	defer func() { <-c.sem }()
	slotted := time.Now()
	rep.SlotWait = slotted.Sub(start)
	err := c.limiter.Wait(ctx)
	sent := time.Now()
	rep.LimiterWait = sent.Sub(slotted)
	if err != nil {
		if ctx.Err() != nil {
			return nil, c.budgetError(ctx.Err(), 0, ""), 0
		}
		return nil, &APIError{Kind: KindTimeout, Message: "rate limit wait would exceed the call's budget", Err: err}, 0
	}
	rep.Sent = true
	defer func() { rep.Duration = time.Since(sent) }()
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(actx, http.MethodPost, c.endpoint, strings.NewReader(body))
	if err != nil {
		return nil, &APIError{Kind: KindNetwork, Message: "building request: " + err.Error(), Err: err}, 0
	}
	hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hreq.Header.Set("User-Agent", c.userAgent)
	hreq.Header.Set("U-Timestamp-Ms", strconv.FormatInt(c.now().UnixMilli(), 10))
	hresp, err := c.httpClient.Do(hreq)
	if err != nil {
		return nil, c.transportError(ctx, actx, err, 0, ""), 0
	}
	defer hresp.Body.Close()
	status, reqID := hresp.StatusCode, hresp.Header.Get(RequestIDHeader)

	buf := getBuffer()
	defer putBuffer(buf)
	n, err := buf.ReadFrom(io.LimitReader(hresp.Body, c.maxBodyBytes+1))
	if err != nil {
		return nil, c.transportError(ctx, actx, err, status, reqID), 0
	}
	if n > c.maxBodyBytes {
		// Not retryable: the same request would most likely fetch the same
		// oversized body again.
		return nil, &APIError{Kind: KindDecode, HTTPStatus: status, RequestID: reqID,
			Message: fmt.Sprintf("response body exceeds %d bytes", c.maxBodyBytes)}, 0
	}
	if status < 200 || status > 299 {
		e, retryAfter := c.httpError(status, reqID, hresp.Header, buf.Bytes())
		return nil, e, retryAfter
	}
	out := new(DescribeCommunityImagesResponse)
	if err := decodeBody(buf.Bytes(), out); err != nil {
		// Retryable: a truncated or garbled body is taken for a transient
		// fault of a gateway on the way.
		return nil, &APIError{Kind: KindDecode, HTTPStatus: status, RequestID: reqID, Retryable: true,
			Message: "decoding response: " + err.Error(), Err: err}, 0
	}
	if out.RetCode != 0 {
		msg := out.Message
		if msg == "" {
			msg = "(no message)"
		}
		return nil, &APIError{Kind: KindRetCode, RetCode: int(out.RetCode), Message: msg,
			HTTPStatus: status, RequestID: reqID, Retryable: out.RetCode >= 2000}, 0
	}
	out.Normalize()
	out.RequestID = reqID
	rep.HTTPStatus, rep.RequestID = status, reqID
	return out, nil, 0
}

// httpError describes a non-2xx answer. 429, 502, 503 and 504 are retryable;
// 429 and 503 may say when with Retry-After.
func (c *Client) httpError(status int, reqID string, h http.Header, body []byte) (*APIError, time.Duration) {
	e := &APIError{Kind: KindHTTP, HTTPStatus: status, RequestID: reqID, Message: http.StatusText(status)}
	var env struct {
		RetCode RetCode
		Message string
	}
	if json.Unmarshal(body, &env) == nil {
		e.RetCode = int(env.RetCode)
		if env.Message != "" {
			e.Message = env.Message
		}
	}
	var retryAfter time.Duration
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		e.Retryable = true
		if d, ok := parseRetryAfter(h.Get("Retry-After"), c.now()); ok {
			retryAfter = d
		}
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		e.Retryable = true
	}
	return e, retryAfter
}

// transportError classifies a failure to send or to read: the call's budget
// ran out (not retryable), the attempt's timeout ran out (KindTimeout), or
// anything else on the wire (KindNetwork); the last two are retryable.
func (c *Client) transportError(ctx, actx context.Context, err error, status int, reqID string) *APIError {
	if ctx.Err() != nil {
		return c.budgetError(err, status, reqID)
	}
	e := &APIError{HTTPStatus: status, RequestID: reqID, Retryable: true, Err: err}
	var ne net.Error
	switch {
	case errors.Is(actx.Err(), context.DeadlineExceeded):
		e.Kind, e.Message = KindTimeout, fmt.Sprintf("attempt timed out after %s", c.timeout)
	case errors.As(err, &ne) && ne.Timeout():
		e.Kind, e.Message = KindTimeout, "attempt timed out: "+wireText(err)
	default:
		e.Kind, e.Message = KindNetwork, "network error: "+wireText(err)
	}
	return e
}

func (c *Client) budgetError(err error, status int, reqID string) *APIError {
	return &APIError{Kind: KindTimeout, HTTPStatus: status, RequestID: reqID, Err: err,
		Message: fmt.Sprintf("call budget of %s exhausted", c.budget())}
}

// wireText is the text of a transport error without the request URL that
// *url.Error prefixes (it holds no secret, but there is no need to repeat it).
func wireText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err.Error()
	}
	return err.Error()
}

// redact masks the form body, its signature and the private key wherever
// they appear in s (an upstream message might echo them), and bounds its length.
func (c *Client) redact(s, body string) string {
	sig := ""
	if i := strings.Index(body, "Signature="); i >= 0 {
		sig = body[i+len("Signature="):]
		if j := strings.IndexByte(sig, '&'); j >= 0 {
			sig = sig[:j]
		}
	}
	for _, secret := range []string{body, sig, c.creds.private} {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "****")
		}
	}
	if len(s) > maxMessageBytes {
		s = strings.ToValidUTF8(s[:maxMessageBytes], "") + "…"
	}
	return s
}

func (c *Client) log(ctx context.Context, level slog.Level, msg string, e *APIError, delay time.Duration) {
	if c.logger == nil || !c.logger.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("action", e.Action),
		slog.Int("attempt", e.Attempts),
		slog.String("kind", string(e.Kind)),
		slog.Int("http_status", e.HTTPStatus),
		slog.String("request_id", e.RequestID),
		slog.String("error", e.Error()),
	}
	if delay > 0 {
		attrs = append(attrs, slog.Duration("delay", delay))
	}
	c.logger.LogAttrs(ctx, level, msg, attrs...)
}

// progress is what is known of a running flight, for callers who leave early.
type progress struct {
	mu        sync.Mutex
	attempts  int
	status    int
	requestID string
}

func (p *progress) record(attempt, status int, requestID string) {
	p.mu.Lock()
	p.attempts, p.status, p.requestID = attempt, status, requestID
	p.mu.Unlock()
}

func (p *progress) snapshot() (attempts, status int, requestID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.attempts, p.status, p.requestID
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer { return bufPool.Get().(*bytes.Buffer) }

func putBuffer(b *bytes.Buffer) {
	if b.Cap() > 1<<20 {
		return // let oversized buffers go
	}
	b.Reset()
	bufPool.Put(b)
}

type callLimiterKey struct{}

// WithCallLimiter returns ctx whose upstream calls each wait for l first,
// before an in-flight slot and the client's own rate limit: a bounded share
// of the account's quota for one kind of call (the live queries' polls), so
// that it can never take the rest from the others. A call that other
// callers join keeps the limiter of the caller that started it.
func WithCallLimiter(ctx context.Context, l Limiter) context.Context {
	return context.WithValue(ctx, callLimiterKey{}, l)
}

func callLimiterFrom(ctx context.Context) Limiter {
	l, _ := ctx.Value(callLimiterKey{}).(Limiter)
	return l
}

package gqlhttp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/compshare/imagegraph/internal/codes"
)

// dedupeTimeout bounds a shared execution that every requester has left.
const dedupeTimeout = 2 * time.Minute

// DedupeOptions tune Deduplicate.
type DedupeOptions struct {
	// Log receives panics of a shared execution.
	Log *slog.Logger
	// Headers are the request headers, besides Accept and Content-Type,
	// that can change an answer (a federation router's secret, say):
	// requests that differ in them never share an execution.
	Headers []string
	// Vary, when set, returns more of what can change the answer of r (or
	// what must not be shared, such as the client a rate limit charges);
	// requests for which it differs never share an execution.
	Vary func(r *http.Request) string
	// Shared, when set, is called for each request answered by another's
	// execution (leader), once that execution is over and before the
	// answer is written: the hook for metrics and logs.
	Shared func(follower, leader *http.Request)

	joined func() // a test's seam: called once a request waits for another's execution
}

// Deduplicate makes identical concurrent GraphQL requests share one
// execution: a request that arrives while an identical one (same method,
// query string, body, Accept and Content-Type, the headers opts names, and
// opts.Vary) is executing waits for it and gets the same status, headers and
// body. It is in-flight deduplication, not a cache: nothing is kept once the
// execution ends, and the next request executes afresh. The API is read-only
// and its answers do not depend on who asks (every caller reads the
// catalogue through the server's one account), which is what makes sharing
// an answer safe; it is the GraphQL-level twin of the upstream client's
// coalescing of identical calls.
//
// The first requester executes on its own goroutine (no hand-off on the
// critical path), detached from its own cancellation and bounded by
// dedupeTimeout, since others may be waiting for the answer; every other
// requester waits on its own context.
func Deduplicate(opts DedupeOptions, next http.Handler) http.Handler {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	var (
		mu       sync.Mutex
		inFlight = map[string]*sharedExecution{}
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			// Too large or unreadable: let the transport answer it as such.
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{err}))
			next.ServeHTTP(w, r)
			return
		}
		key := dedupeKey(r, body, opts)
		mu.Lock()
		if ex, ok := inFlight[key]; ok {
			mu.Unlock()
			if opts.joined != nil {
				opts.joined()
			}
			select {
			case <-ex.done:
				if opts.Shared != nil {
					opts.Shared(r, ex.leader)
				}
				ex.rec.replay(w)
			case <-r.Context().Done():
				// The client is gone; the shared execution goes on for the others.
			}
			return
		}
		ex := &sharedExecution{done: make(chan struct{}), leader: r}
		inFlight[key] = ex
		mu.Unlock()

		ex.rec = execute(opts.Log, next, r, body)
		mu.Lock()
		delete(inFlight, key)
		mu.Unlock()
		close(ex.done)
		ex.rec.replay(w)
	})
}

// sharedExecution is one execution that identical requests wait for; rec
// is set before done is closed and only read after.
type sharedExecution struct {
	done   chan struct{}
	rec    *recorder
	leader *http.Request
}

// execute runs next for r with body into a recorder, detached from r's
// cancellation and bounded by dedupeTimeout; a panic becomes a 500 answer
// with a log line, so that the waiters get an answer too.
func execute(log *slog.Logger, next http.Handler, r *http.Request, body []byte) (rec *recorder) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), dedupeTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			log.ErrorContext(ctx, "panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			rec = &recorder{header: http.Header{}}
			WriteError(rec, http.StatusInternalServerError, "internal error", codes.Internal)
		}
	}()
	rec = &recorder{header: http.Header{}}
	shared := r.Clone(ctx)
	shared.Body = io.NopCloser(bytes.NewReader(body))
	next.ServeHTTP(rec, shared)
	return rec
}

// dedupeKey identifies a request by everything that can change its answer.
func dedupeKey(r *http.Request, body []byte, opts DedupeOptions) string {
	h := sha256.New()
	write := func(s string) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	write(r.Method)
	write(r.URL.RawQuery)
	write(r.Header.Get("Accept"))
	write(r.Header.Get("Content-Type"))
	for _, name := range opts.Headers {
		write(r.Header.Get(name))
	}
	if opts.Vary != nil {
		write(opts.Vary(r))
	}
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// recorder keeps a response so that every requester of a shared execution
// can be given it.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.body.Cap() == 0 {
		// The transports say the length before they write: one buffer
		// of that size instead of one doubled up to it.
		if n, err := strconv.Atoi(r.header.Get("Content-Length")); err == nil && n > 0 && n <= maxPresize {
			r.body.Grow(n)
		}
	}
	return r.body.Write(b)
}

// maxPresize bounds the buffer a declared Content-Length reserves.
const maxPresize = 16 << 20

// replay writes the kept response to w. The kept values are only read, so
// any number of requesters may replay one recorder at once. Its headers
// replace w's, except Vary, which adds to what the layers around this one
// set (CORS's Vary: Origin, which shared caches need to keep answers for
// one origin from another).
func (r *recorder) replay(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range r.header {
		if k == "Vary" {
			h[k] = append(h[k], v...)
			continue
		}
		h[k] = append([]string(nil), v...)
	}
	// The length is known: saying it spares the chunked framing net/http
	// would otherwise use for a body past its first buffer.
	h.Set("Content-Length", strconv.Itoa(r.body.Len()))
	status := r.status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(r.body.Bytes())
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

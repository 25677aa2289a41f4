package answers

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/compshare/imagegraph/internal/gqlhttp"
)

// flight is an execution identical requests wait for; kept is set, when
// its answer was kept, before done is closed.
type flight struct {
	done chan struct{}
	kept *answer
}

// Handler answers a request from the cache when it can, and otherwise
// passes it to next (the GraphQL handler), keeping the answer when the
// Judge says so. Identical requests that miss while one of them executes
// wait for it: when its answer may be shared they get it, kept or not (an
// answer built from uncached data is as fresh for them as for the
// request that ran); otherwise each executes on its own (an answer with
// errors is never another client's).
func (c *Cache) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// A stream's events are not answers to keep.
		if c.opts.Bypass != nil && c.opts.Bypass(r) || gqlhttp.IsStream(r.Header) {
			next.ServeHTTP(w, r)
			return
		}
		q, ok := c.parse(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		var lead *flight
		if q.known {
			k := q.key(q.doc)
			if a, ok := c.get(k); ok {
				c.hits.Add(1)
				c.serve(w, r, a, false, start)
				return
			}
			c.mu.Lock()
			f, running := c.flights[k]
			if !running {
				lead = &flight{done: make(chan struct{})}
				c.flights[k] = lead
			}
			c.mu.Unlock()
			if running {
				if c.joined != nil {
					c.joined()
				}
				select {
				case <-f.done:
				case <-r.Context().Done():
					return // the client is gone
				}
				if f.kept != nil {
					c.shared.Add(1)
					c.serve(w, r, f.kept, true, start)
					return
				}
			} else {
				defer func() {
					c.mu.Lock()
					delete(c.flights, k)
					c.mu.Unlock()
					close(lead.done)
				}()
			}
		}
		c.misses.Add(1)
		ctx := gqlhttp.WithAnswerHook(r.Context(), func(ctx context.Context, resp *graphql.Response) {
			if a := c.keep(ctx, &q, resp); a != nil && lead != nil {
				lead.kept = a
			}
		})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// keep returns resp, the answer of q's execution, as the answer the
// requests waiting for it get, when the Judge says it may be shared; and
// stores it, when the Judge says it may be served again later.
func (c *Cache) keep(ctx context.Context, q *request, resp *graphql.Response) *answer {
	v := c.opts.Judge(ctx, resp)
	if !v.Share || resp.Data == nil {
		return nil
	}
	doc, known := q.doc, q.known
	if !known && graphql.HasOperationContext(ctx) {
		// A document the request named by a hash the cache had not seen:
		// the executor resolved it.
		doc, known = c.opts.Documents.Key(graphql.GetOperationContext(ctx).RawQuery)
	}
	if !known {
		return nil
	}
	now := c.opts.Now()
	a := &answer{
		body:    render(resp.Data, v.Extensions),
		etag:    gqlhttp.ETag(resp.Data),
		cost:    v.Cost,
		reads:   v.Reads,
		name:    strings.Clone(v.Name), // not the document's text it slices
		typ:     v.Type,
		stored:  now,
		expires: now.Add(v.TTL),
	}
	if a.body == nil {
		return nil
	}
	if v.Keep && v.TTL > 0 {
		c.entries.Set(q.key(doc), a)
		c.stored.Add(1)
	}
	return a
}

// render is the body of a hit: the data as the execution rendered it (its
// bytes copied: the executor's buffer is not the cache's), and the
// extensions a hit carries, as encoding/json writes a map (keys sorted).
func render(data []byte, ext map[string]any) []byte {
	resp := &graphql.Response{Data: data, Extensions: ext}
	var n int
	parts := gqlhttp.RenderResponse(resp)
	for _, p := range parts {
		n += len(p)
	}
	body := make([]byte, 0, n)
	for _, p := range parts {
		body = append(body, p...)
	}
	return body
}

// serve answers r with a kept answer: its client is charged the answer's
// cost first (a hit costs a client what the operation costs, cached or
// not: the limit is on what a client asks, and a client cannot learn from
// its budget what others asked). Cache-Control says the answer's remaining
// freshness; a GET gets its ETag, and 304 when If-None-Match names it.
func (c *Cache) serve(w http.ResponseWriter, r *http.Request, a *answer, shared bool, start time.Time) {
	ctx := r.Context()
	contentType := gqlhttp.ContentType(r.Header.Get("Accept"))
	if c.opts.Admit != nil {
		if err := c.opts.Admit(ctx, a.cost); err != nil {
			gqlhttp.RequestError(w, contentType, requestError(err))
			return
		}
	}
	if c.opts.Answered != nil {
		c.opts.Answered(ctx, Hit{Name: a.name, Type: a.typ, Cost: a.cost, Reads: a.reads, Shared: shared, Start: start})
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", c.cacheControl(a))
	if r.Method == http.MethodGet {
		h.Add("Vary", "Accept")
		h.Set("ETag", a.etag)
		if gqlhttp.ETagMatch(r.Header.Get("If-None-Match"), a.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(a.body)
}

// cacheControl says how long HTTP caches may keep a: what is left of its
// freshness, in whole seconds.
func (c *Cache) cacheControl(a *answer) string {
	left := max(a.expires.Sub(c.opts.Now()), 0)
	scope := "public"
	if c.opts.Private {
		scope = "private"
	}
	return scope + ", max-age=" + strconv.Itoa(int(left/time.Second))
}

// requestError is err, a refusal of Admit, as a request error with the
// code and extensions it names.
func requestError(err error) *gqlerror.Error {
	out := &gqlerror.Error{Message: err.Error(), Extensions: map[string]any{}}
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) {
		out.Extensions["code"] = coded.ErrorCode()
	}
	var ext interface{ ErrorExtensions() map[string]any }
	if errors.As(err, &ext) {
		for k, v := range ext.ErrorExtensions() {
			if k != "code" {
				out.Extensions[k] = v
			}
		}
	}
	return out
}

// Cost is an operation's estimated cost as a client is charged it: the
// estimate rounded up, at most MaxInt32.
func Cost(estimate float64) int { return int(min(math.Ceil(estimate), math.MaxInt32)) }

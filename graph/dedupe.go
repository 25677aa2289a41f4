package graph

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
	"time"

	"golang.org/x/sync/singleflight"
)

// dedupeTimeout bounds a shared execution that every requester has left.
const dedupeTimeout = 2 * time.Minute

// dedupeOperations makes identical concurrent GraphQL requests share one
// execution: a request that arrives while an identical one (same method,
// query string, body, and the headers that can change the answer: Accept,
// Content-Type and the federation secret) is executing waits for it and gets
// the same status, headers and body. It is in-flight deduplication, not a
// cache: nothing is kept once the execution ends, and the next request
// executes afresh. The API is read-only and its answers do not depend on who
// asks (every caller reads the catalogue through the server's one account),
// which is what makes sharing an answer safe; it is the GraphQL-level twin of
// the upstream client's coalescing of identical calls.
//
// The shared execution runs detached from any one requester's cancellation
// (bounded by dedupeTimeout); each requester waits on its own context.
func dedupeOperations(log *slog.Logger, next http.Handler) http.Handler {
	var group singleflight.Group
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
		key := dedupeKey(r, body)
		ch := group.DoChan(key, func() (res any, _ error) {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), dedupeTimeout)
			defer cancel()
			// singleflight re-raises a panic of fn in a goroutine of its own,
			// where nothing could recover it: answer it here instead.
			defer func() {
				if p := recover(); p != nil {
					log.ErrorContext(ctx, "panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
					rec := &recorder{header: http.Header{}}
					WriteError(rec, http.StatusInternalServerError, "internal error", CodeInternal)
					res = rec
				}
			}()
			rec := &recorder{header: http.Header{}}
			shared := r.Clone(ctx)
			shared.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(rec, shared)
			return rec, nil
		})
		select {
		case res := <-ch:
			res.Val.(*recorder).replay(w)
		case <-r.Context().Done():
			// The client is gone; the shared execution goes on for the others.
		}
	})
}

// dedupeKey identifies a request by everything that can change its answer.
func dedupeKey(r *http.Request, body []byte) string {
	h := sha256.New()
	for _, s := range []string{
		r.Method, r.URL.RawQuery,
		r.Header.Get("Accept"), r.Header.Get("Content-Type"), r.Header.Get(FederationSecretHeader),
	} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

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
	return r.body.Write(b)
}

// replay writes the kept response to w. The kept values are only read, so
// any number of requesters may replay one recorder at once.
func (r *recorder) replay(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range r.header {
		h[k] = append([]string(nil), v...)
	}
	status := r.status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(r.body.Bytes())
}

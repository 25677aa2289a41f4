package gqlhttp

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/compshare/imagegraph/internal/codes"
)

// TestDedupeRecoversPanics: a panic of the shared execution is answered as
// an internal error (to every requester waiting for it), with a log line,
// and the process lives.
func TestDedupeRecoversPanics(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	h := Deduplicate(DedupeOptions{Log: slog.New(slog.NewJSONHandler(&logs, nil))},
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("kaboom") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(`{"query":"{ __typename }"}`)))
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	assert.Contains(t, rec.Body.String(), codes.Internal)
	assert.NotContains(t, rec.Body.String(), "kaboom")
	assert.Contains(t, logs.String(), "kaboom")
}

// TestDedupeReportsSharedAnswers: a request answered by another's
// execution is reported, with the request that led it, before its answer
// is written.
func TestDedupeReportsSharedAnswers(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{})
	type pair struct{ follower, leader string }
	shared := make(chan pair, 1)
	joined := make(chan struct{})
	h := Deduplicate(DedupeOptions{Shared: func(follower, leader *http.Request) {
		shared <- pair{follower.Header.Get("X-Who"), leader.Header.Get("X-Who")}
	}, joined: func() { close(joined) }}, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		<-release
		_, _ = w.Write([]byte(`{"data":{}}`))
	}))
	req := func(who string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(`{"query":"{ __typename }"}`))
		r.Header.Set("X-Who", who)
		return r
	}
	leaderDone := make(chan struct{})
	go func() {
		defer close(leaderDone)
		h.ServeHTTP(httptest.NewRecorder(), req("leader"))
	}()
	<-started
	followerDone := make(chan *httptest.ResponseRecorder)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req("follower"))
		followerDone <- rec
	}()
	<-joined
	close(release)
	<-leaderDone
	rec := <-followerDone
	assert.Equal(t, `{"data":{}}`, rec.Body.String())
	assert.Equal(t, pair{"follower", "leader"}, <-shared)
}

// TestDedupeKeepsOuterVary: the answer replayed to the leader and to a
// follower keeps the Vary values the layers around set (CORS's Origin)
// beside the execution's own (Accept), while the execution's other
// headers replace theirs.
func TestDedupeKeepsOuterVary(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{})
	joined := make(chan struct{})
	inner := Deduplicate(DedupeOptions{joined: func() { close(joined) }}, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		<-release
		w.Header().Add("Vary", "Accept")
		w.Header().Set("Cache-Control", "public, max-age=30")
		_, _ = w.Write([]byte(`{"data":{}}`))
	}))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Origin")
		w.Header().Set("Cache-Control", "no-store")
		inner.ServeHTTP(w, r)
	})
	get := func(done chan<- *httptest.ResponseRecorder) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/query?query=%7B__typename%7D", nil))
		done <- rec
	}
	leader, follower := make(chan *httptest.ResponseRecorder, 1), make(chan *httptest.ResponseRecorder, 1)
	go get(leader)
	<-started
	go get(follower)
	<-joined
	close(release)
	for _, rec := range []*httptest.ResponseRecorder{<-leader, <-follower} {
		assert.Equal(t, []string{"Origin", "Accept"}, rec.Header().Values("Vary"))
		assert.Equal(t, "public, max-age=30", rec.Header().Get("Cache-Control"))
	}
}

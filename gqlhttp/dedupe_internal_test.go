package gqlhttp

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
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
	assert.Contains(t, rec.Body.String(), CodeInternal)
	assert.NotContains(t, rec.Body.String(), "kaboom")
	assert.Contains(t, logs.String(), "kaboom")
}

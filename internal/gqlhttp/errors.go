package gqlhttp

import (
	"encoding/json"
	"net/http"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

// WriteError answers a request that failed outside the executor (a body too
// large, a recovered panic, a missing API key) with a GraphQL response
// holding one error with a stable code, so that clients parse every failure
// the same way. It has no "data": the request did not reach execution.
func WriteError(w http.ResponseWriter, status int, message, code string) {
	writeError(w, mediaJSON, status, message, code)
}

// writeError answers with one error of code, no data, as contentType, not
// to be cached.
func writeError(w http.ResponseWriter, contentType string, status int, message, code string) {
	body, _ := json.Marshal(struct {
		Errors gqlerror.List `json:"errors"`
	}{gqlerror.List{{Message: message, Extensions: map[string]any{"code": code}}}})
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

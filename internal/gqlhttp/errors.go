package gqlhttp

import (
	"encoding/json"
	"net/http"

	"github.com/99designs/gqlgen/graphql/errcode"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

// CodeInternal is the code of an answer to a request that failed for a
// reason of the server's own (a recovered panic).
const CodeInternal = "INTERNAL_SERVER_ERROR"

// CodeBadUserInput is the code of a request the server cannot read (a body
// that is not a JSON object of GraphQL parameters, variables that do not
// decode, a method or media type it does not serve, a body too large), as
// of an argument the API refuses.
const CodeBadUserInput = "BAD_USER_INPUT"

func init() {
	// A request error of BAD_USER_INPUT (a number the server cannot hold,
	// say) is the client's malformed request: 400 for clients that accept
	// application/graphql-response+json, as for validation errors. A field
	// error of that code does not change the status of an answer with data.
	errcode.RegisterErrorType(CodeBadUserInput, errcode.KindProtocol)
}

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

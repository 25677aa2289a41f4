// Package codes is the one list of the error codes the server sends in
// extensions.code: the clients' contract. Each code has its HTTP status and
// its meaning here, every package names codes through these constants, and
// docs/errors.md is generated from the list (make docs), so that the page
// and the server cannot disagree.
//
// It knows gqlgen's error kinds (a request error's status follows its
// kind) and nothing else of the server.
package codes

import (
	"net/http"

	"github.com/99designs/gqlgen/graphql/errcode"
)

// The codes. A request error stops the request before execution (no
// "data"); a field error fails one field of an answer that has data.
const (
	// BadUserInput: an argument or a request the server refuses.
	BadUserInput = "BAD_USER_INPUT"
	// ParseFailed and ValidationFailed are gqlgen's own.
	ParseFailed      = errcode.ParseFailed
	ValidationFailed = errcode.ValidationFailed

	// The operation limits (internal/limits), named as Apollo Router names
	// the same limits.
	MaxDepth          = "MAX_DEPTH_LIMIT"
	MaxAliases        = "MAX_ALIASES_LIMIT"
	MaxRootFields     = "MAX_ROOT_FIELDS_LIMIT"
	MaxDirectives     = "MAX_DIRECTIVES_LIMIT"
	MaxExpandedFields = "MAX_EXPANDED_FIELDS_LIMIT"
	EstimatedCost     = "COST_ESTIMATED_TOO_EXPENSIVE"
	ActualCost        = "COST_ACTUAL_TOO_EXPENSIVE"
	Overloaded        = "SERVER_OVERLOADED"
	// MaxSubscriptions refuses a subscription past
	// MAX_SUBSCRIPTIONS_PER_CLIENT (internal/live).
	MaxSubscriptions = "MAX_SUBSCRIPTIONS_LIMIT"

	// Who may ask (internal/access).
	Unauthenticated = "UNAUTHENTICATED"
	RateLimited     = "RATE_LIMITED"
	Forbidden       = "FORBIDDEN"

	// Persisted operations (internal/persisted). A miss (NotFound) and
	// NotSupported answer 200 for every client: Apollo Client's
	// persisted-queries link turns APQ off for good when it sees a 400 or a
	// 500, so a 4xx miss would stop it from ever sending a hash again.
	PersistedQueryNotFound     = "PERSISTED_QUERY_NOT_FOUND"
	PersistedQueryNotSupported = "PERSISTED_QUERY_NOT_SUPPORTED"
	PersistedQueryHashMismatch = "PERSISTED_QUERY_HASH_MISMATCH"
	PersistedQueryNotInList    = "PERSISTED_QUERY_NOT_IN_LIST"
	PersistedQueryInvalid      = "PERSISTED_QUERY_INVALID"

	// The upstream (graph's presenter of upstream errors).
	UpstreamError       = "UPSTREAM_ERROR"
	UpstreamUnavailable = "UPSTREAM_UNAVAILABLE"
	UpstreamTimeout     = "UPSTREAM_TIMEOUT"

	// Internal: anything else.
	Internal = "INTERNAL_SERVER_ERROR"
)

// Code is one code of the list.
type Code struct {
	// Name is the value of extensions.code.
	Name string
	// Status is the HTTP status of a request error of this code, for a
	// client that accepts application/graphql-response+json. 0: the code
	// is never a request error (a field error rides on a 200 with data).
	Status int
	// Always says Status holds for application/json clients as well (a
	// status that says when to retry, or that the request never reached
	// GraphQL); otherwise they get 200, as the GraphQL-over-HTTP spec allows
	// for that media type.
	Always bool
	// When says when a client sees it.
	When string
	// Extensions are the keys extensions holds besides the code.
	Extensions string
}

// All is every code the server sends, in the order docs/errors.md lists
// them.
var All = []Code{
	{BadUserInput, http.StatusBadRequest, false, "an argument is refused before any upstream call (a negative or too large `first`/`last`, a cursor or global ID that does not decode, an empty tag); a number the server cannot hold, in the document (an Int past 64 bits, a Float past 1e308, in any argument, even of `_Any`) or in variables (past 1e308, or an `Int` variable past 32 bits), refused before anything runs; an `_entities` representation that is not an object, names no entity of this subgraph or has none of its keys (a field error at `[\"_entities\", i]`: its place is null, the others resolve). Also a request that cannot be read, without `data`, with its own status whatever the media type: a body that is not one JSON object of parameters (400; batches are not served), variables or a query string that do not decode (400), a body over `MAX_BODY_BYTES` (413), a POST that is not `application/json` (415), another method (405, `Allow`); the message never quotes the body back", "`index` (an `_entities` representation)"},
	{ParseFailed, http.StatusBadRequest, false, "the document does not parse, or passes `MAX_TOKENS`", ""},
	{ValidationFailed, http.StatusBadRequest, false, "the document does not validate against the schema, repeats a field more than 100 times in one selection set, or sends variables of the wrong type", ""},
	{MaxDepth, http.StatusBadRequest, false, "the operation nests fields deeper than `MAX_DEPTH`; nothing runs", "`setting`, `limit`, `measured`"},
	{MaxAliases, http.StatusBadRequest, false, "the operation has more aliases than `MAX_ALIASES`, fragments expanded; nothing runs", "`setting`, `limit`, `measured`"},
	{MaxRootFields, http.StatusBadRequest, false, "the operation has more root fields than `MAX_ROOT_FIELDS`; nothing runs", "`setting`, `limit`, `measured`"},
	{MaxDirectives, http.StatusBadRequest, false, "the operation has more directives than `MAX_DIRECTIVES`; nothing runs", "`setting`, `limit`, `measured`"},
	{MaxExpandedFields, http.StatusBadRequest, false, "the operation selects more fields than `MAX_EXPANDED_FIELDS` once every fragment spread is replaced by its fragment; nothing runs", "`setting`, `limit`, `measured`"},
	{EstimatedCost, http.StatusBadRequest, false, "the operation's estimated cost passes `MAX_COST`, or its estimated upstream calls pass `MAX_UPSTREAM_CALLS`; nothing runs", "`setting`, `limit`, `measured`"},
	{ActualCost, 0, false, "a field's load would pass `MAX_UPSTREAM_CALLS` at run time: that field fails, the rest of the data stays", "`setting`, `limit`"},
	{Overloaded, http.StatusServiceUnavailable, true, "the operations running already fill `MAX_INFLIGHT_COST` and none finished within `INFLIGHT_WAIT`; nothing ran (`Retry-After`). For a subscription: the process holds `MAX_SUBSCRIPTIONS` already, or it is shutting down (the subscription ends; the connection stays)", "`retryAfterSeconds`"},
	{MaxSubscriptions, 0, false, "a subscription past `MAX_SUBSCRIPTIONS_PER_CLIENT`: that subscription ends with the error; the connection stays usable", ""},
	{Unauthenticated, http.StatusUnauthorized, true, "`API_KEYS_FILE` is set and the request has no valid key", ""},
	{RateLimited, http.StatusTooManyRequests, true, "the client is over `CLIENT_RATE_LIMIT` (`Retry-After`)", "`retryAfterSeconds`, or `cost` and `burst` when the operation can never fit"},
	{Forbidden, 0, false, "introspection (`__schema`, `__type`, `_service`) while `INTROSPECTION` is off", ""},
	{PersistedQueryNotFound, http.StatusOK, true, "an APQ hash or a document id the server does not know (200, so that APQ clients send the query again)", ""},
	{PersistedQueryNotSupported, http.StatusOK, true, "the server keeps no APQ documents, or the client speaks another APQ version (200, so that APQ clients stop sending hashes)", ""},
	{PersistedQueryHashMismatch, http.StatusBadRequest, false, "the query is not the document its hash names", ""},
	{PersistedQueryNotInList, http.StatusBadRequest, false, "`PERSISTED_OPERATIONS_ONLY` is set and the operation is not in the manifest", ""},
	{PersistedQueryInvalid, http.StatusBadRequest, false, "a malformed `documentId` or `persistedQuery` extension", ""},
	{UpstreamError, 0, false, "the upstream answered with a RetCode other than 0", "`retCode`, `upstreamMessage`, `requestId`, `attempts`"},
	{UpstreamUnavailable, 0, false, "network errors, HTTP errors or unreadable bodies once the retries are spent; or the circuit is open (then at once, without a call)", "`requestId`, `attempts`; `retryAfterSeconds` while the circuit is open"},
	{UpstreamTimeout, 0, false, "the upstream attempts timed out, or the operation passed `OPERATION_TIMEOUT`", "`attempts`"},
	{Internal, http.StatusInternalServerError, true, "anything else (a bug): the message is \"internal error\", the details go to the log, never to the client", ""},
}

// byName indexes All.
var byName = func() map[string]Code {
	m := make(map[string]Code, len(All))
	for _, c := range All {
		m[c.Name] = c
	}
	return m
}()

// Lookup returns the code named name.
func Lookup(name string) (Code, bool) {
	c, ok := byName[name]
	return c, ok
}

// AlwaysStatus returns the status a request error of code name has for
// every client (429, 503, 401, ...), or 0 when its status depends on the
// media type the client accepts.
func AlwaysStatus(name string) int {
	if c, ok := byName[name]; ok && c.Always {
		return c.Status
	}
	return 0
}

func init() {
	// gqlgen's transports and ours choose a request error's status by the
	// kind of its code: KindProtocol is a 4xx for clients that accept
	// application/graphql-response+json, KindUser a 200.
	for _, c := range All {
		switch {
		case c.Status >= 400 && !c.Always:
			errcode.RegisterErrorType(c.Name, errcode.KindProtocol)
		case c.Status == http.StatusOK:
			errcode.RegisterErrorType(c.Name, errcode.KindUser)
		}
	}
}

// Package gqlhttp is GraphQL over HTTP for the API: gqlgen transports for
// POST and GET that write executed answers without re-encoding them and
// choose the status of a request error by its code, the GraphQL-over-HTTP
// fixes gqlgen's transports miss, and in-flight deduplication of identical
// requests. It knows gqlgen's transport interface and nothing of the
// schema, the resolvers or the upstream.
package gqlhttp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/compshare/imagegraph/internal/codes"
)

// DocumentIDExtension is the key under which the transports hand a request's
// persisted document id (its `documentId`, or Relay's `doc_id`) to the
// executor's extensions, in RawParams.Extensions.
const DocumentIDExtension = "documentId"

const (
	mediaJSON     = "application/json"
	mediaResponse = "application/graphql-response+json"
)

// POST is gqlgen's POST transport with three changes. The answer of an
// operation that executes is written by writeResponse, which copies the data
// gqlgen has already rendered as JSON instead of handing it to
// encoding/json, which validates and compacts a RawMessage byte by byte
// (about a quarter of a millisecond for the reference operation, on every
// request's critical path). A request error is answered with the status
// statusFor chooses. And a body's `documentId` or `doc_id` reaches the
// extensions as DocumentIDExtension. A body that cannot be read or does not
// decode is answered with a coded error that does not echo it (gqlgen's
// quotes the whole body back, and names its own Go types).
type POST struct {
	transport.POST
	// Cache chooses the Cache-Control of executed answers (nil: no-store).
	Cache CachePolicy
}

// CachePolicy returns the Cache-Control header of an answer whose operation
// executed: how long HTTP caches (a CDN, a browser, a router's entity cache)
// may keep it. Answers to request errors always say no-store.
type CachePolicy func(ctx context.Context, resp *graphql.Response) string

var _ graphql.Transport = POST{}

// postBody is a POST body: gqlgen's parameters and a persisted document id.
type postBody struct {
	graphql.RawParams
	DocumentID any `json:"documentId"`
	DocID      any `json:"doc_id"`
}

// Do serves one POST request.
func (t POST) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	start := graphql.Now()
	contentType := responseContentType(r.Header.Get("Accept"))
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			writePlainError(w, contentType, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("request body larger than %d bytes", tooLarge.Limit))
			return
		}
		writePlainError(w, contentType, http.StatusBadRequest, "the request body could not be read")
		return
	}
	var pb postBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // as gqlgen decodes variables
	if err := dec.Decode(&pb); err != nil {
		writePlainError(w, contentType, http.StatusBadRequest, bodyProblem(err))
		return
	}
	params := &pb.RawParams
	params.Extensions = withDocumentID(params.Extensions, pb.DocumentID, pb.DocID)
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	serve(w, r, contentType, params, exec, t.Cache, false)
}

// bodyProblem says what is wrong with a POST body that does not decode,
// without echoing the body (which may be large, or hold what a client
// should not have sent) or naming the server's types.
func bodyProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("the request body is not JSON (at byte %d: %v)", syntax.Offset, syntax)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the request body is not JSON: it is empty or ends early"
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Sprintf("the request body's %q cannot be a JSON %s", strings.TrimPrefix(typ.Field, "RawParams."), typ.Value)
	case errors.As(err, &typ):
		return fmt.Sprintf("the request body must be a JSON object of GraphQL parameters, not a JSON %s (batched requests are not served)", typ.Value)
	}
	return "the request body is not a JSON object of GraphQL parameters"
}

// GET is gqlgen's GET transport with the same changes as POST: executed
// answers written by writeResponse, request errors answered with the status
// statusFor chooses, and a `documentId` or `doc_id` query parameter handed
// on as DocumentIDExtension. Only queries run over GET. A successful answer
// also carries an ETag (a weak one: the hash of its data, the same on every
// replica), and a request whose If-None-Match names it gets 304 Not
// Modified.
type GET struct {
	// Cache chooses the Cache-Control of executed answers (nil: no-store).
	Cache CachePolicy
}

var _ graphql.Transport = GET{}

// Supports reports whether r is a GET request that is not a websocket upgrade.
func (GET) Supports(r *http.Request) bool {
	return r.Header.Get("Upgrade") == "" && r.Method == http.MethodGet
}

// Do serves one GET request.
func (t GET) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	start := graphql.Now()
	contentType := responseContentType(r.Header.Get("Accept"))
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writePlainError(w, contentType, http.StatusBadRequest, err.Error())
		return
	}
	params := &graphql.RawParams{
		Query:         query.Get("query"),
		OperationName: query.Get("operationName"),
		Headers:       r.Header,
	}
	for _, p := range []struct {
		name string
		dst  any
	}{{"variables", &params.Variables}, {"extensions", &params.Extensions}} {
		if v := query.Get(p.name); v != "" {
			dec := json.NewDecoder(strings.NewReader(v))
			dec.UseNumber()
			if dec.Decode(p.dst) != nil {
				writePlainError(w, contentType, http.StatusBadRequest, p.name+" could not be decoded")
				return
			}
		}
	}
	var docID, relayID any
	if query.Has("documentId") {
		docID = query.Get("documentId")
	}
	if query.Has("doc_id") {
		relayID = query.Get("doc_id")
	}
	params.Extensions = withDocumentID(params.Extensions, docID, relayID)
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	w.Header().Add("Vary", "Accept")
	serve(w, r, contentType, params, exec, t.Cache, true)
}

// serve runs params: a request error is answered with statusFor's status,
// an operation that is not a query is refused over GET, and anything else
// executes and is written by writeResponse, with the Cache-Control cache
// chooses (and, over GET, an ETag).
func serve(w http.ResponseWriter, r *http.Request, contentType string, params *graphql.RawParams, exec graphql.GraphExecutor, cache CachePolicy, get bool) {
	ctx := r.Context()
	h := w.Header()
	h.Set("Content-Type", contentType)
	oc, opErr := exec.CreateOperationContext(ctx, params)
	if opErr != nil {
		status := statusFor(opErr, contentType)
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			if s := retryAfterSeconds(opErr); s > 0 {
				h.Set("Retry-After", strconv.Itoa(s))
			}
		}
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		writeRequestError(w, exec.DispatchError(graphql.WithOperationContext(ctx, oc), opErr))
		return
	}
	if get && oc.Operation.Operation != ast.Query {
		// GraphQL over HTTP: 405 (gqlgen's GET transport says 406).
		w.Header().Set("Allow", "POST")
		writePlainError(w, contentType, http.StatusMethodNotAllowed, "GET requests only allow query operations")
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, oc)
	resp := responses(ctx)
	if hook := AnswerHookFrom(ctx); hook != nil && resp != nil {
		hook(ctx, resp)
	}
	cc := "no-store"
	if cache != nil && resp != nil {
		cc = cache(ctx, resp)
	}
	h.Set("Cache-Control", cc)
	parts := RenderResponse(resp)
	if get && resp != nil && len(resp.Errors) == 0 {
		// Weak: it identifies the data, not the extensions beside it (what
		// this request cost differs from one request to the next).
		etag := ETag(resp.Data)
		h.Set("ETag", etag)
		if ETagMatch(r.Header.Get("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	// The length is known: saying it spares net/http the chunked framing of
	// a body written in parts.
	h.Set("Content-Length", strconv.Itoa(len(parts[0])+len(parts[1])+len(parts[2])))
	for _, p := range parts {
		_, _ = w.Write(p)
	}
}

// ETag is the ETag of an answer with data: weak, since it identifies the
// data, not the extensions beside it (what this request cost differs from
// one request to the next); the same on every replica.
func ETag(data []byte) string {
	sum := sha256.Sum256(data)
	return `W/"` + hex.EncodeToString(sum[:16]) + `"`
}

// ETagMatch reports whether an If-None-Match header names etag (or is *),
// weak comparison, as RFC 9110 asks of If-None-Match.
func ETagMatch(header, etag string) bool {
	for part := range strings.SplitSeq(header, ",") {
		part = strings.TrimPrefix(strings.TrimSpace(part), "W/")
		if part == strings.TrimPrefix(etag, "W/") || part == "*" {
			return true
		}
	}
	return false
}

// withDocumentID returns ext with the first non-empty of ids under
// DocumentIDExtension.
func withDocumentID(ext map[string]any, ids ...any) map[string]any {
	for _, id := range ids {
		if id == nil || id == "" {
			continue
		}
		if ext == nil {
			ext = map[string]any{}
		}
		ext[DocumentIDExtension] = id
		break
	}
	return ext
}

// statusFor is the status of a request error (one refused before
// execution): the status its code has for every client, when it has one
// (429 when its client is rate limited, 503 when the server is overloaded:
// internal/codes); for errors gqlgen counts as the protocol's (parse,
// validation, and the codes internal/codes registers as
// errcode.KindProtocol, such as the operation limits), 400 for clients that
// accept application/graphql-response+json; 200 for the rest. GraphQL over
// HTTP asks for 200 with the errors where the legacy application/json
// carries them (gqlgen's transports say 422).
func statusFor(errs gqlerror.List, contentType string) int {
	for _, e := range errs {
		code, _ := e.Extensions["code"].(string)
		if status := codes.AlwaysStatus(code); status != 0 {
			return status
		}
	}
	if contentType == mediaResponse && errcode.GetErrorKind(errs) == errcode.KindProtocol {
		return http.StatusBadRequest
	}
	return http.StatusOK
}

// retryAfterSeconds is the largest extensions.retryAfterSeconds of errs.
func retryAfterSeconds(errs gqlerror.List) int {
	best := 0
	for _, e := range errs {
		switch v := e.Extensions["retryAfterSeconds"].(type) {
		case int:
			best = max(best, v)
		case int64:
			best = max(best, int(v))
		case float64:
			best = max(best, int(v))
		}
	}
	return best
}

// RequestError answers err, a request error decided outside the executor
// (a client over its rate limit, say), as the transports answer one: the
// status its code has for a client accepting contentType, Retry-After when
// it says when to retry, no data, not to be cached.
func RequestError(w http.ResponseWriter, contentType string, err *gqlerror.Error) {
	errs := gqlerror.List{err}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	status := statusFor(errs, contentType)
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		if s := retryAfterSeconds(errs); s > 0 {
			h.Set("Retry-After", strconv.Itoa(s))
		}
	}
	w.WriteHeader(status)
	writeRequestError(w, &graphql.Response{Errors: errs})
}

// writeRequestError writes the answer to a request error: its errors and
// extensions, without a "data" entry, since execution never began (GraphQL
// over HTTP: "the data entry should not be present").
func writeRequestError(w io.Writer, resp *graphql.Response) {
	b, err := json.Marshal(struct {
		Errors     gqlerror.List  `json:"errors"`
		Extensions map[string]any `json:"extensions,omitempty"`
	}{resp.Errors, resp.Extensions})
	if err != nil {
		writeResponse(w, resp)
		return
	}
	_, _ = w.Write(b)
}

// writePlainError answers a request the transport cannot read: one error
// with code codes.BadUserInput, no data, not to be cached.
func writePlainError(w http.ResponseWriter, contentType string, status int, msg string) {
	writeError(w, contentType, status, msg, codes.BadUserInput)
}

// Unsupported is the transport of last resort: it answers every request
// the others do not serve with a GraphQL error and a status that says why
// (gqlgen's server answers them "transport not supported", without a code):
// 415 for a POST whose body is not application/json, 400 for a websocket
// upgrade (subscriptions are not served), 405 with Allow for any other
// method.
type Unsupported struct{}

var _ graphql.Transport = Unsupported{}

// Supports reports true: add Unsupported after every other transport.
func (Unsupported) Supports(*http.Request) bool { return true }

// Do answers r with its error.
func (Unsupported) Do(w http.ResponseWriter, r *http.Request, _ graphql.GraphExecutor) {
	contentType := responseContentType(r.Header.Get("Accept"))
	switch {
	case r.Method == http.MethodPost:
		w.Header().Set("Accept-Post", mediaJSON)
		writePlainError(w, contentType, http.StatusUnsupportedMediaType,
			"a POST body must be application/json, not "+strconv.Quote(r.Header.Get("Content-Type")))
	case r.Header.Get("Upgrade") != "":
		writePlainError(w, contentType, http.StatusBadRequest, "protocol upgrades (websocket subscriptions) are not served")
	default:
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		writePlainError(w, contentType, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed: use GET or POST")
	}
}

// IsStream reports a request, by its headers, for a stream rather than one
// answer: a WebSocket upgrade, or a POST that accepts Server-Sent Events.
func IsStream(h http.Header) bool {
	return h.Get("Upgrade") != "" || strings.Contains(h.Get("Accept"), "text/event-stream")
}

// responseContentType is transport.POST's choice of media type for the
// Accept header: the first of application/json (also for */*, application/*
// or no Accept) and application/graphql-response+json it names, and
// application/graphql-response+json when it names neither.
func responseContentType(accept string) string { return ContentType(accept) }

// ContentType is the media type of the answer to a request that accepts
// accept: application/json when it names it (or any), the GraphQL
// response media type when it names that first or nothing the server
// speaks.
func ContentType(accept string) string {
	if accept == "" {
		return mediaJSON
	}
	for part := range strings.SplitSeq(accept, ",") {
		mediaType, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mediaType {
		case "*/*", "application/*", mediaJSON:
			return mediaJSON
		case mediaResponse:
			return mediaResponse
		}
	}
	return mediaResponse
}

// writeResponse writes resp as encoding/json would, with the same keys in
// the same order, but with its data copied as gqlgen rendered it.
func writeResponse(w io.Writer, resp *graphql.Response) {
	for _, part := range RenderResponse(resp) {
		_, _ = w.Write(part)
	}
}

// RenderResponse is what writeResponse writes, in parts: what comes before
// the data, the data as gqlgen rendered it (not copied again), and what
// comes after.
func RenderResponse(resp *graphql.Response) [3][]byte {
	if resp == nil {
		resp = &graphql.Response{}
	}
	var errs []byte
	var err error
	if len(resp.Errors) > 0 {
		errs, err = json.Marshal(resp.Errors)
	}
	rest, err2 := json.Marshal(struct {
		Label      string         `json:"label,omitempty"`
		Path       any            `json:"path,omitempty"`
		HasNext    *bool          `json:"hasNext,omitempty"`
		Extensions map[string]any `json:"extensions,omitempty"`
	}{resp.Label, nilIfEmpty(resp.Path), resp.HasNext, resp.Extensions})
	if err != nil || err2 != nil {
		// Something in the errors or extensions does not encode: let
		// encoding/json say what, as transport.POST would.
		b, err := json.Marshal(resp)
		if err != nil {
			panic(err)
		}
		return [3][]byte{b}
	}
	data := []byte(resp.Data)
	if data == nil {
		data = []byte("null")
	}
	head := make([]byte, 0, len(errs)+20)
	head = append(head, '{')
	if errs != nil {
		head = append(head, `"errors":`...)
		head = append(head, errs...)
		head = append(head, ',')
	}
	head = append(head, `"data":`...)
	tail := []byte{'}'}
	if len(rest) > 2 { // more than {}
		rest[0] = ','
		tail = rest
	}
	return [3][]byte{head, data, tail}
}

// nilIfEmpty keeps an empty path out of the response, as omitempty does
// for graphql.Response.Path.
func nilIfEmpty[T any](s []T) any {
	if len(s) == 0 {
		return nil
	}
	return s
}

package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compshare/imagegraph/upstream"
)

// MaxBodyBytes is the largest request body the handler reads; a larger one
// is answered with HTTP 413.
const MaxBodyBytes = 64 << 10

// RequestIDHeader is the response header carrying each request's fresh id.
const RequestIDHeader = "X-UCLOUD-REQUEST-UUID"

// errorBody is the JSON of a failed call: the upstream sends no data fields then.
type errorBody struct {
	Action  string
	RetCode upstream.RetCode
	Message string
}

// ServeHTTP answers one call of the wire protocol: a POST whose form (body,
// or query for Action) carries the parameters, PublicKey and Signature. It
// checks, in order, the action (161, or 160 when absent), the key and
// signature (172, 171), then the parameters (160, 230), and answers HTTP 200
// JSON in every case but an injected HTTP fault, a non-POST method (405) or
// an unreadable body (400, 413). The method and body are checked before the
// base latency and any injected fault apply.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer s.begin()()
	ctx := r.Context()
	w.Header().Set(RequestIDHeader, newRequestID())

	// The body is read before anything waits: only once it is consumed does
	// net/http notice a client that hangs up and cancel ctx.
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	// ParseForm leaves a body of another content type unread.
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if !sleep(ctx, s.latency) {
		return
	}
	if f, ok := s.nextFault(); ok && !s.serveFault(w, r, f) {
		return
	}

	params := firstValues(r.Form)
	action := params["Action"]
	switch {
	case action == "":
		writeJSON(w, errorBody{Action: "Response", RetCode: upstream.RetCodeMissingParam, Message: "Missing params [Action]"})
		return
	case action != upstream.ActionDescribeCommunityImages:
		writeJSON(w, errorBody{Action: action + "Response", RetCode: upstream.RetCodeUnknownAction, Message: fmt.Sprintf("Action [%s] not found", action)})
		return
	}
	fail := func(err *upstream.APIError) {
		writeJSON(w, errorBody{Action: action + "Response", RetCode: upstream.RetCode(err.RetCode), Message: err.Message})
	}
	if err := s.verify(params); err != nil {
		fail(err)
		return
	}
	req, err := parseRequest(params)
	if err != nil {
		fail(err)
		return
	}
	resp, derr := s.Describe(req)
	if derr != nil {
		if e, ok := upstream.AsAPIError(derr); ok {
			fail(e)
			return
		}
		fail(retCodeError(upstream.RetCodeServiceError, "service error"))
		return
	}
	writeJSON(w, resp)
}

// serveFault applies f and reports whether the request should still be
// served normally afterwards.
func (s *Server) serveFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	ctx := r.Context()
	if !sleep(ctx, f.Latency) {
		return false
	}
	switch {
	case f.Hang:
		<-ctx.Done()
		return false
	case f.HTTPStatus != 0:
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		msg := f.Message
		if msg == "" {
			msg = http.StatusText(f.HTTPStatus)
		}
		http.Error(w, msg, f.HTTPStatus)
		return false
	case f.Malformed:
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"Action":"DescribeCommunityImagesResponse","RetCode":0,"TotalCount":3,"CompshareImageGroup":[{"GroupId":`)
		return false
	case f.RetCode != 0:
		msg := f.Message
		if msg == "" {
			msg = "injected fault"
		}
		writeJSON(w, errorBody{Action: upstream.ActionDescribeCommunityImages + "Response", RetCode: upstream.RetCode(f.RetCode), Message: msg})
		return false
	}
	return true
}

// verify checks PublicKey and Signature: the signature is recomputed over
// every sent parameter but Signature itself, PublicKey included.
func (s *Server) verify(params upstream.Params) *upstream.APIError {
	if subtle.ConstantTimeCompare([]byte(params["PublicKey"]), []byte(s.publicKey)) != 1 {
		return retCodeError(upstream.RetCodeUnknownPublicKey, "Access Public Key Error: the PublicKey is not recognised")
	}
	sent := params["Signature"]
	signed := make(upstream.Params, len(params))
	for k, v := range params {
		if k != "Signature" {
			signed[k] = v
		}
	}
	want := upstream.Sign(signed, s.privateKey)
	if sent == "" || subtle.ConstantTimeCompare([]byte(sent), []byte(want)) != 1 {
		return retCodeError(upstream.RetCodeSignatureError, "Signature VerifyAC Error")
	}
	return nil
}

// parseRequest turns the form parameters into a request, refusing with 160
// a missing Region and with 230 a value of the wrong type.
func parseRequest(p upstream.Params) (*upstream.DescribeCommunityImagesRequest, *upstream.APIError) {
	req := &upstream.DescribeCommunityImagesRequest{
		Region:           p["Region"],
		CompShareImageId: p["CompShareImageId"],
		GroupId:          p["GroupId"],
		Name:             p["Name"],
		Author:           p["Author"],
		FuzzySearch:      p["FuzzySearch"],
	}
	if req.Region == "" {
		return nil, missingParam("Region")
	}
	var err *upstream.APIError
	if req.Offset, err = intParam(p, "Offset"); err != nil {
		return nil, err
	}
	if req.Limit, err = intParam(p, "Limit"); err != nil {
		return nil, err
	}
	for _, b := range []struct {
		name string
		dst  **bool
	}{{"IsFree", &req.IsFree}, {"IsOfficial", &req.IsOfficial}, {"IfAutoStart", &req.IfAutoStart}} {
		if *b.dst, err = boolParam(p, b.name); err != nil {
			return nil, err
		}
	}
	if req.Tag, err = tagParam(p); err != nil {
		return nil, err
	}
	field, hasField := p["SortCondition.Field"]
	asc, err := boolParam(p, "SortCondition.ASC")
	if err != nil {
		return nil, err
	}
	if hasField || asc != nil {
		sc := &upstream.SortCondition{Field: upstream.SortField(field)}
		if asc != nil {
			sc.ASC = *asc
		}
		req.SortCondition = sc
	}
	if err := validate(req); err != nil {
		return nil, err
	}
	return req, nil
}

func intParam(p upstream.Params, name string) (*int, *upstream.APIError) {
	v, ok := p[name]
	if !ok {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil, paramUnavailable(name)
	}
	return &n, nil
}

func boolParam(p upstream.Params, name string) (*bool, *upstream.APIError) {
	v, ok := p[name]
	if !ok {
		return nil, nil
	}
	switch v {
	case "true":
		return upstream.Bool(true), nil
	case "false":
		return upstream.Bool(false), nil
	}
	return nil, paramUnavailable(name)
}

// tagParam gathers Tag.0, Tag.1, … in index order, or a single un-indexed
// Tag (as older SDKs send it), or both (the un-indexed one first).
func tagParam(p upstream.Params) ([]string, *upstream.APIError) {
	type indexed struct {
		i int
		v string
	}
	var tags []indexed
	for k, v := range p {
		rest, ok := strings.CutPrefix(k, "Tag.")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(rest)
		if err != nil || i < 0 || v == "" {
			return nil, paramUnavailable(k)
		}
		tags = append(tags, indexed{i, v})
	}
	slices.SortFunc(tags, func(a, b indexed) int { return a.i - b.i })
	var out []string
	if v, ok := p["Tag"]; ok {
		if v == "" {
			return nil, paramUnavailable("Tag")
		}
		out = append(out, v)
	}
	for _, t := range tags {
		out = append(out, t.v)
	}
	return out, nil
}

// firstValues keeps the first value of each form key; a form holds the body's
// values before the query's.
func firstValues(v url.Values) upstream.Params {
	p := make(upstream.Params, len(v))
	for k, vs := range v {
		if len(vs) > 0 {
			p[k] = vs[0]
		}
	}
	return p
}

// writeJSON answers HTTP 200 with v as JSON, HTML left unescaped.
func writeJSON(w http.ResponseWriter, v any) {
	writeJSONStatus(w, http.StatusOK, v)
}

// writeJSONStatus answers status with v as JSON, HTML left unescaped.
func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// sleep waits d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// newRequestID returns a random version 4 UUID.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

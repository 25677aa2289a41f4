package graph

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
)

// postTransport is gqlgen's POST transport with one change on the path of
// an operation that executes: its response is written by writeResponse,
// which copies the data gqlgen has already rendered as JSON instead of
// handing it to encoding/json, which validates and compacts a RawMessage
// byte by byte (about a quarter of a millisecond for the reference
// operation, on every request's critical path). Whatever fails before
// execution (an unreadable body, JSON that does not decode, a document that
// does not parse or validate) is handed to transport.POST as it came, so
// error answers and their status codes stay gqlgen's own.
type postTransport struct{ transport.POST }

var _ graphql.Transport = postTransport{}

func (t postTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	start := graphql.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{err}))
		t.POST.Do(w, r, exec)
		return
	}
	fallback := func() {
		r.Body = io.NopCloser(bytes.NewReader(body))
		t.POST.Do(w, r, exec)
	}
	params := &graphql.RawParams{}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // as gqlgen decodes variables
	if dec.Decode(params) != nil {
		fallback()
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	ctx := r.Context()
	rc, opErr := exec.CreateOperationContext(ctx, params)
	if opErr != nil {
		fallback()
		return
	}
	w.Header().Set("Content-Type", responseContentType(r.Header.Get("Accept")))
	responses, ctx := exec.DispatchOperation(ctx, rc)
	writeResponse(w, responses(ctx))
}

// responseContentType is transport.POST's choice of media type for the
// Accept header: the first of application/json (also for */*, application/*
// or no Accept) and application/graphql-response+json it names, and
// application/graphql-response+json when it names neither.
func responseContentType(accept string) string {
	const (
		legacy   = "application/json"
		response = "application/graphql-response+json"
	)
	if accept == "" {
		return legacy
	}
	for part := range strings.SplitSeq(accept, ",") {
		mediaType, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mediaType {
		case "*/*", "application/*", legacy:
			return legacy
		case response:
			return response
		}
	}
	return response
}

// writeResponse writes resp as encoding/json would, with the same keys in
// the same order, but with its data copied as gqlgen rendered it.
func writeResponse(w io.Writer, resp *graphql.Response) {
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
		_, _ = w.Write(b)
		return
	}
	data := []byte(resp.Data)
	if data == nil {
		data = []byte("null")
	}
	var b bytes.Buffer
	b.Grow(len(errs) + len(data) + len(rest) + 20)
	b.WriteByte('{')
	if errs != nil {
		b.WriteString(`"errors":`)
		b.Write(errs)
		b.WriteByte(',')
	}
	b.WriteString(`"data":`)
	b.Write(data)
	if len(rest) > 2 { // more than {}
		b.WriteByte(',')
		b.Write(rest[1 : len(rest)-1])
	}
	b.WriteByte('}')
	_, _ = w.Write(b.Bytes())
}

// nilIfEmpty keeps an empty path out of the response, as omitempty does
// for graphql.Response.Path.
func nilIfEmpty[T any](s []T) any {
	if len(s) == 0 {
		return nil
	}
	return s
}

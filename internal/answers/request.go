package answers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/compshare/imagegraph/internal/documents"
)

// key identifies an answer: the SHA-256 of everything that changes it.
type key [sha256.Size]byte

// request is what of a GraphQL request decides its answer.
type request struct {
	// doc is the key of the document's canonical form, when known before
	// execution (known).
	doc   documents.Key
	known bool
	// opName, vars (canonical JSON, or nil) and variant complete the key.
	opName  string
	vars    []byte
	variant string
}

// key is the request's key, with doc the document's.
func (q *request) key(doc documents.Key) key {
	h := sha256.New()
	h.Write(doc[:])
	h.Write([]byte{0})
	_, _ = io.WriteString(h, q.opName)
	h.Write([]byte{0})
	_, _ = io.WriteString(h, q.variant)
	h.Write([]byte{0})
	h.Write(q.vars)
	var k key
	h.Sum(k[:0])
	return k
}

// params are the GraphQL parameters of a request, as its body or query
// string carries them.
type params struct {
	Query         string          `json:"query"`
	OperationName string          `json:"operationName"`
	Variables     json.RawMessage `json:"variables"`
	Extensions    json.RawMessage `json:"extensions"`
	DocumentID    json.RawMessage `json:"documentId"`
	DocID         json.RawMessage `json:"doc_id"`
}

// parse reads what decides r's answer. It reads a POST body and puts it
// back for the handler after this one. ok is false for a request this
// cache does not answer (not a GraphQL read it can key: a body that does
// not decode, an unsupported media type, a persisted-query extension it
// cannot read); the handlers after it answer those as they would.
func (c *Cache) parse(r *http.Request) (q request, ok bool) {
	var p params
	switch r.Method {
	case http.MethodGet:
		v, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return q, false
		}
		p.Query, p.OperationName = v.Get("query"), v.Get("operationName")
		p.Variables, p.Extensions = json.RawMessage(v.Get("variables")), json.RawMessage(v.Get("extensions"))
		if v.Has("documentId") {
			p.DocumentID, _ = json.Marshal(v.Get("documentId"))
		}
		if v.Has("doc_id") {
			p.DocID, _ = json.Marshal(v.Get("doc_id"))
		}
	case http.MethodPost:
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			return q, false
		}
		body, err := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil {
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{err}))
			return q, false
		}
		if json.Unmarshal(body, &p) != nil {
			return q, false
		}
	default:
		return q, false
	}
	q.opName = p.OperationName
	if q.vars, ok = canonicalVariables(p.Variables); !ok {
		return q, false
	}
	if c.opts.Variant != nil {
		q.variant = c.opts.Variant(r)
	}
	query := p.Query
	if id, present, ok := documentID(p.DocumentID, p.DocID); present {
		if !ok || c.opts.Resolve == nil {
			return q, false
		}
		body, found := c.opts.Resolve(id)
		if !found || query != "" && query != body {
			return q, false // the executor says what is wrong
		}
		query = body
	}
	apq, present, ok := persistedHash(p.Extensions)
	switch {
	case !ok:
		return q, false
	case present && query == "":
		q.doc, q.known = c.opts.Documents.KeyOf(apq)
		return q, true
	case present && sha256.Sum256([]byte(query)) != apq:
		return q, false // a hash mismatch: the executor refuses it
	case query == "":
		return q, false
	}
	q.doc, q.known = c.opts.Documents.Key(query)
	return q, true
}

// canonicalVariables returns raw variables in one canonical form: the
// object's keys sorted at every level, numbers as written; nil for none
// (absent, null or {}). ok is false when they are not a JSON object.
func canonicalVariables(raw json.RawMessage) ([]byte, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" || string(raw) == "{}" {
		return nil, true
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v map[string]any
	if dec.Decode(&v) != nil || dec.More() {
		return nil, false
	}
	if len(v) == 0 {
		return nil, true
	}
	b, err := json.Marshal(v) // encoding/json sorts map keys
	return b, err == nil
}

// documentID returns the persisted document id of a request (its
// documentId, or Relay's doc_id); present says it named one, ok that it is
// a non-empty string.
func documentID(ids ...json.RawMessage) (id string, present, ok bool) {
	for _, raw := range ids {
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		err := json.Unmarshal(raw, &id)
		return id, true, err == nil && id != ""
	}
	return "", false, false
}

// persistedHash returns the sha256Hash of an APQ extension (version 1);
// present says there is one, ok that the extensions read cleanly.
func persistedHash(raw json.RawMessage) (sum documents.Key, present, ok bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return sum, false, true
	}
	var ext struct {
		PersistedQuery *struct {
			Version    json.Number `json:"version"`
			Sha256Hash string      `json:"sha256Hash"`
		} `json:"persistedQuery"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&ext) != nil {
		return sum, false, false
	}
	pq := ext.PersistedQuery
	if pq == nil {
		return sum, false, true
	}
	if pq.Version.String() != "1" || len(pq.Sha256Hash) != 2*sha256.Size {
		return sum, true, false
	}
	if _, err := hex.Decode(sum[:], []byte(strings.ToLower(pq.Sha256Hash))); err != nil {
		return sum, true, false
	}
	return sum, true, true
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// OperationKey is the key of an operation as the cache keys a request: its
// document's canonical form, its operation name, its variables in
// canonical JSON and its variant. ok is false when the document has no
// canonical form. The live queries' cohorts are keyed by it.
func OperationKey(docs *documents.Cache, query, opName string, vars map[string]any, variant string) (string, bool) {
	doc, ok := docs.Key(query)
	if !ok {
		return "", false
	}
	q := request{opName: opName, variant: variant}
	if len(vars) > 0 {
		b, err := json.Marshal(vars)
		if err != nil {
			return "", false
		}
		q.vars = b
	}
	k := q.key(doc)
	return string(k[:]), true
}

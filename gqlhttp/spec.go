package gqlhttp

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

// SpecStatus brings gqlgen's transports in line with the SHOULDs of the
// GraphQL-over-HTTP spec that they miss, for request errors (parse,
// validation, variable coercion) only:
//
//   - a client that accepts application/json gets 200 with the errors, not
//     gqlgen's 422 (the legacy media type carries errors in the body);
//   - a client that accepts application/graphql-response+json gets its 4xx
//     without a "data" entry, where gqlgen writes "data": null.
//
// Successful responses pass through untouched and unbuffered.
func SpecStatus(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &specWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		sw.finish()
	})
}

type specWriter struct {
	http.ResponseWriter
	wroteHeader bool
	status      int
	buffer      *bytes.Buffer // set while holding back a 4xx graphql-response body
}

func (s *specWriter) WriteHeader(code int) {
	if s.wroteHeader {
		return
	}
	s.wroteHeader = true
	ct := s.Header().Get("Content-Type")
	switch {
	case code == http.StatusUnprocessableEntity && strings.HasPrefix(ct, "application/json"):
		code = http.StatusOK
	case code >= 400 && code < 500 && strings.HasPrefix(ct, "application/graphql-response+json"):
		s.status, s.buffer = code, &bytes.Buffer{}
		return
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *specWriter) Write(b []byte) (int, error) {
	if !s.wroteHeader {
		s.WriteHeader(http.StatusOK)
	}
	if s.buffer != nil {
		return s.buffer.Write(b)
	}
	return s.ResponseWriter.Write(b)
}

func (s *specWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// finish writes a held-back body without its null "data" entry.
func (s *specWriter) finish() {
	if s.buffer == nil {
		return
	}
	body := s.buffer.Bytes()
	var resp map[string]json.RawMessage
	if json.Unmarshal(body, &resp) == nil && string(resp["data"]) == "null" {
		delete(resp, "data")
		if b, err := json.Marshal(resp); err == nil {
			body = b
		}
	}
	s.Header().Del("Content-Length")
	s.ResponseWriter.WriteHeader(s.status)
	_, _ = s.ResponseWriter.Write(body)
}

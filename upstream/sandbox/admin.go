package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"
)

// MaxChangeBodyBytes is the largest body a change endpoint reads; a larger
// one is answered with HTTP 413.
const MaxChangeBodyBytes = 4 << 10

// maxMessageBytes bounds what an error message quotes of a request.
const maxMessageBytes = 80

// ChangeHandler serves the change endpoints at the root, for a mux of one's
// own (Admin serves them under /sandbox/): POST /versions/{imageId} and POST
// /groups/{groupId}. See Admin for their bodies and answers.
func (s *Server) ChangeHandler() http.Handler {
	mux := http.NewServeMux()
	s.changeRoutes(mux, "")
	return mux
}

// changeRoutes adds the change endpoints to mux under prefix.
func (s *Server) changeRoutes(mux *http.ServeMux, prefix string) {
	mux.HandleFunc("POST "+prefix+"/versions/{imageId}", s.serveVersionChange)
	mux.HandleFunc("POST "+prefix+"/groups/{groupId}", s.serveGroupChange)
}

// errorJSON is the body of a change endpoint's failure.
type errorJSON struct {
	Error string `json:"error"`
}

func (s *Server) serveVersionChange(w http.ResponseWriter, r *http.Request) {
	var c VersionChange
	if !decodeChange(w, r, &c, versionChangeFields) {
		return
	}
	img, err := s.UpdateVersion(r.PathValue("imageId"), c)
	if err != nil {
		writeChangeError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, img)
}

func (s *Server) serveGroupChange(w http.ResponseWriter, r *http.Request) {
	var c GroupChange
	if !decodeChange(w, r, &c, groupChangeFields) {
		return
	}
	g, err := s.UpdateGroup(r.PathValue("groupId"), c)
	if err != nil {
		writeChangeError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, g)
}

// decodeChange decodes the body, one JSON object of the fields named, into
// dst; when it cannot, it answers 400 or 413 and returns false.
func decodeChange(w http.ResponseWriter, r *http.Request, dst any, fields string) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxChangeBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		if _, err = dec.Token(); err == io.EOF {
			return true
		} else if _, tooLarge := errors.AsType[*http.MaxBytesError](err); !tooLarge {
			err = errors.New("the body holds more than one JSON value")
		}
	}
	status, msg := bodyError(err, fields)
	writeError(w, status, msg)
	return false
}

// bodyError turns the error of decoding a change body into a status and a
// message that says what is wrong without echoing the body.
func bodyError(err error, fields string) (int, string) {
	want := "want a JSON object of " + fields
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", MaxChangeBodyBytes)
	}
	if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if e.Field == "" {
			return http.StatusBadRequest, fmt.Sprintf("the body is a JSON %s: %s", clip(e.Value, maxMessageBytes), want)
		}
		field, kind := clip(e.Field, maxMessageBytes), jsonKind(e.Type)
		if kind == "a number" && strings.HasPrefix(e.Value, "number") {
			return http.StatusBadRequest, fmt.Sprintf("%s is out of range, got a JSON %s", field, clip(e.Value, maxMessageBytes))
		}
		return http.StatusBadRequest, fmt.Sprintf("%s must be %s, got a JSON %s", field, kind, clip(e.Value, maxMessageBytes))
	}
	if e, ok := errors.AsType[*json.SyntaxError](err); ok {
		return http.StatusBadRequest, fmt.Sprintf("the body is not valid JSON (%s at byte %d): %s", e, e.Offset, want)
	}
	switch {
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, "the body is empty: " + want
	case errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest, "the body is not valid JSON (it ends early): " + want
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return http.StatusBadRequest, fmt.Sprintf("unknown field %s: %s", clip(name, maxMessageBytes), want)
	}
	return http.StatusBadRequest, clip(err.Error(), 4*maxMessageBytes)
}

// jsonKind names the JSON value a field of Go type t takes.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	}
	return "a " + t.Kind().String()
}

// writeChangeError answers the error of UpdateVersion or UpdateGroup: 404
// for an unknown id, else 400.
func writeChangeError(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	if errors.Is(err, ErrNotFound) {
		status = http.StatusNotFound
	}
	writeError(w, status, strings.TrimPrefix(err.Error(), "sandbox: "))
}

// writeError answers status with {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSONStatus(w, status, errorJSON{Error: msg})
}

// clip shortens s to at most n bytes, cut at a rune boundary and marked
// with "…".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

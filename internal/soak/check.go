package soak

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
)

// The kinds of problem that fail the soak.
const (
	// ProblemWrong: an answer's data differs from what the dataset says.
	ProblemWrong = "wrong answer"
	// ProblemUncoded: an error without extensions.code.
	ProblemUncoded = "error without extensions.code"
	// Problem5xx: a 5xx that is not a coded 503 inside a fault window.
	Problem5xx = "unexpected 5xx"
	// ProblemTransport: no answer at all (the connection failed).
	ProblemTransport = "no answer"
	// ProblemNotGraphQL: an answer that is not a GraphQL response.
	ProblemNotGraphQL = "not a GraphQL response"
	// ProblemSubscription: a subscriber missed a change, got a value that
	// was never current, or could not subscribe again.
	ProblemSubscription = "subscription"
	// ProblemFleet: a process misbehaved: a drained replica that did not
	// exit 0, a panic in a replica's log, a change the sandbox refused.
	ProblemFleet = "fleet"
)

// Outcomes of a request that are not an error code.
const (
	// OutcomeData: answered with data and no error.
	OutcomeData = "data"
	// OutcomeStale: answered with data, some of it served stale in place of
	// an upstream failure (extensions.staleData).
	OutcomeStale = "stale"
	// OutcomeTransport: no answer.
	OutcomeTransport = "NO_ANSWER"
	// OutcomeUncoded: an error without a code.
	OutcomeUncoded = "UNCODED"
)

// Answer is what Check makes of one response.
type Answer struct {
	// Outcome is OutcomeData, OutcomeStale, or else the code of the
	// answer's first error (or OutcomeUncoded, or "HTTP_<status>" for an
	// answer that is not GraphQL).
	Outcome string
	// Codes are the codes of every error, in order.
	Codes []string
	// Data reports an answer with data and no error (stale or not).
	Data bool
	// Value is what a Watched query read: the version's
	// versionDescription, or "" when it read none.
	Value string
	// StaleSeconds is extensions.staleData.ageSeconds, when present.
	StaleSeconds float64
	// Problems are what fails the soak in this answer.
	Problems []Problem
}

// Problem is one reason the soak fails.
type Problem struct {
	// Kind is one of the Problem constants.
	Kind string `json:"kind"`
	// Detail says what was seen.
	Detail string `json:"detail"`
}

func (p Problem) String() string { return p.Kind + ": " + p.Detail }

// response is the JSON of a GraphQL answer, as far as the soak reads it.
type response struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
	Extensions struct {
		StaleData *struct {
			AgeSeconds float64 `json:"ageSeconds"`
		} `json:"staleData"`
	} `json:"extensions"`
}

// Check judges one answer to q: status and body as received, inFault
// whether it was sent inside a fault window (where a coded 503 is allowed).
// Every error must carry extensions.code; the data must equal q.Want,
// except that a field an error's path names (or one of its parents) may be
// null. A Watched query's value is returned for the caller to judge
// against the version's history.
func Check(q *Query, status int, body []byte, inFault bool) Answer {
	var a Answer
	var r response
	if err := json.Unmarshal(body, &r); err != nil || (r.Data == nil && r.Errors == nil) {
		a.Outcome = fmt.Sprintf("HTTP_%d", status)
		a.Problems = append(a.Problems, Problem{ProblemNotGraphQL, fmt.Sprintf("%s: status %d, body %.200q", q.Op.Name, status, body)})
		if status >= 500 {
			a.Problems = append(a.Problems, Problem{Problem5xx, fmt.Sprintf("%s: status %d without a code", q.Op.Name, status)})
		}
		return a
	}
	var errPaths [][]any
	for _, e := range r.Errors {
		code, _ := e.Extensions["code"].(string)
		if code == "" {
			code = OutcomeUncoded
			a.Problems = append(a.Problems, Problem{ProblemUncoded, fmt.Sprintf("%s: %q at %v", q.Op.Name, e.Message, e.Path)})
		}
		a.Codes = append(a.Codes, code)
		if e.Path != nil {
			errPaths = append(errPaths, e.Path)
		}
	}
	if status >= 500 && (status != http.StatusServiceUnavailable || !inFault || len(a.Codes) == 0 || a.Codes[0] == OutcomeUncoded) {
		a.Problems = append(a.Problems, Problem{Problem5xx, fmt.Sprintf("%s: status %d with %v, %s a fault window", q.Op.Name, status, a.Codes, map[bool]string{true: "inside", false: "outside"}[inFault])})
	}
	if r.Extensions.StaleData != nil {
		a.StaleSeconds = r.Extensions.StaleData.AgeSeconds
	}
	switch {
	case len(a.Codes) > 0:
		a.Outcome = a.Codes[0]
	case r.Extensions.StaleData != nil:
		a.Outcome = OutcomeStale
	default:
		a.Outcome = OutcomeData
	}
	var data any
	if len(r.Data) > 0 {
		if err := json.Unmarshal(r.Data, &data); err != nil {
			a.Problems = append(a.Problems, Problem{ProblemNotGraphQL, fmt.Sprintf("%s: data does not decode: %v", q.Op.Name, err)})
			return a
		}
	}
	a.Data = data != nil && len(a.Codes) == 0
	if data == nil {
		if len(a.Codes) == 0 {
			a.Problems = append(a.Problems, Problem{ProblemWrong, q.Op.Name + ": no data and no error"})
		}
		return a
	}
	if q.Watched != "" {
		return checkWatched(q, data, errPaths, a)
	}
	if diff := Diff(q.Want, data, errPaths); diff != "" {
		a.Problems = append(a.Problems, Problem{ProblemWrong, fmt.Sprintf("%s %s: %s", q.Op.Name, compact(q.Variables), diff)})
	}
	return a
}

// checkWatched reads a Watched answer's value: its imageId must be the
// version's; the value itself is judged against the history by the caller.
func checkWatched(q *Query, data any, errPaths [][]any, a Answer) Answer {
	v, _ := data.(map[string]any)["imageVersion"].(map[string]any)
	if v == nil {
		if !nullAllowed([]any{"imageVersion"}, errPaths) {
			a.Problems = append(a.Problems, Problem{ProblemWrong, fmt.Sprintf("Watched %s: imageVersion is null", q.Watched)})
		}
		return a
	}
	if v["imageId"] != q.Watched {
		a.Problems = append(a.Problems, Problem{ProblemWrong, fmt.Sprintf("Watched %s: imageId %v", q.Watched, v["imageId"])})
	}
	value, ok := v["versionDescription"].(string)
	if !ok {
		a.Problems = append(a.Problems, Problem{ProblemWrong, fmt.Sprintf("Watched %s: versionDescription %v", q.Watched, v["versionDescription"])})
	}
	a.Value = value
	return a
}

// Diff returns "" when got equals want, except for nulls at a path an
// error names (or below one), and otherwise where and how they first
// differ.
func Diff(want, got any, errPaths [][]any) string {
	return diff(want, got, nil, errPaths)
}

func diff(want, got any, path []any, errPaths [][]any) string {
	if got == nil && want != nil && nullAllowed(path, errPaths) {
		return ""
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("at %s: want an object, got %s", pathString(path), compact(got))
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			gv, ok := g[k]
			if !ok {
				return fmt.Sprintf("at %s: %q missing", pathString(path), k)
			}
			if d := diff(w[k], gv, append(path, k), errPaths); d != "" {
				return d
			}
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				return fmt.Sprintf("at %s: unexpected %q", pathString(path), k)
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok {
			return fmt.Sprintf("at %s: want a list, got %s", pathString(path), compact(got))
		}
		if len(g) != len(w) {
			return fmt.Sprintf("at %s: want %d items, got %d", pathString(path), len(w), len(g))
		}
		for i := range w {
			if d := diff(w[i], g[i], append(path, float64(i)), errPaths); d != "" {
				return d
			}
		}
		return ""
	}
	if !reflect.DeepEqual(want, got) {
		return fmt.Sprintf("at %s: want %s, got %s", pathString(path), compact(want), compact(got))
	}
	return ""
}

// nullAllowed reports whether an error's path is path or below it: a field
// error nulls its field, or a parent when the field is non-null.
func nullAllowed(path []any, errPaths [][]any) bool {
	for _, ep := range errPaths {
		if len(ep) < len(path) {
			continue
		}
		match := true
		for i := range path {
			if fmt.Sprint(ep[i]) != fmt.Sprint(path[i]) {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

func pathString(path []any) string {
	if len(path) == 0 {
		return "data"
	}
	parts := make([]string, len(path))
	for i, p := range path {
		parts[i] = fmt.Sprint(p)
	}
	return strings.Join(parts, ".")
}

// compact is v as short JSON, for messages.
func compact(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

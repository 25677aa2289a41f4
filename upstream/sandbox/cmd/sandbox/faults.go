package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"

	"github.com/compshare/imagegraph/upstream/sandbox"
)

// maxFaultBodyBytes bounds the body of POST /faults.
const maxFaultBodyBytes = 4 << 10

// faultRequest is the JSON body of POST /faults: a kind of failure and the
// share of calls it hits, or an outage (every call fails, with a 503
// unless Kind says otherwise).
type faultRequest struct {
	// Kind is "503", "429", "timeout" or "malformed" (see faultKinds).
	Kind string `json:"kind"`
	// Rate is the share of calls that fail, above 0 and at most 1. Needed
	// unless Outage is set; with Outage it must be absent.
	Rate *float64 `json:"rate"`
	// Outage makes every call fail.
	Outage bool `json:"outage"`
}

// faultKinds are the failures POST /faults injects, by kind: HTTP 503, HTTP
// 429 with Retry-After: 1, a call that hangs until its client gives up
// (the client's timeout), and an HTTP 200 whose body is truncated JSON.
var faultKinds = map[string]sandbox.Fault{
	"503":       {HTTPStatus: http.StatusServiceUnavailable, Message: "injected fault"},
	"429":       {HTTPStatus: http.StatusTooManyRequests, RetryAfter: "1", Message: "injected fault"},
	"timeout":   {Hang: true},
	"malformed": {Malformed: true},
}

// fault turns a request into the fault it asks for, or says what is wrong
// with it.
func (r faultRequest) fault() (sandbox.Fault, error) {
	kind := r.Kind
	if kind == "" && r.Outage {
		kind = "503"
	}
	f, ok := faultKinds[kind]
	if !ok {
		return sandbox.Fault{}, fmt.Errorf(`kind must be one of "503", "429", "timeout", "malformed", got %q`, clip(kind))
	}
	switch {
	case r.Outage && r.Rate != nil:
		return sandbox.Fault{}, errors.New("an outage fails every call: leave rate out")
	case r.Outage:
		return f, nil
	case r.Rate == nil:
		return sandbox.Fault{}, errors.New(`rate is missing: the share of calls that fail (0.03 for 3 %), or {"outage": true} for all`)
	case math.IsNaN(*r.Rate) || *r.Rate <= 0 || *r.Rate > 1:
		return sandbox.Fault{}, fmt.Errorf("rate must be above 0 and at most 1, got %v", *r.Rate)
	}
	if *r.Rate < 1 {
		f.Rate = *r.Rate
	}
	return f, nil
}

// serveFaults serves POST /faults, which replaces the faults the sandbox
// injects with the one its body asks for (204), and DELETE /faults, which
// drops them (204). A body it cannot use is answered 400 (413 when too
// large) with {"error": "…"}, and changes nothing.
func serveFaults(sb *sandbox.Server) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /faults", func(w http.ResponseWriter, r *http.Request) {
		var req faultRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFaultBodyBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			status := http.StatusBadRequest
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				status = http.StatusRequestEntityTooLarge
			}
			writeFaultError(w, status, `the body must be one JSON object: {"kind": "503"|"429"|"timeout"|"malformed", "rate": 0.03} or {"outage": true}`)
			return
		}
		if _, err := dec.Token(); err != io.EOF {
			writeFaultError(w, http.StatusBadRequest, "the body holds more than one JSON value")
			return
		}
		f, err := req.fault()
		if err != nil {
			writeFaultError(w, http.StatusBadRequest, err.Error())
			return
		}
		sb.ClearFaults()
		sb.InjectFault(f)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /faults", func(w http.ResponseWriter, _ *http.Request) {
		sb.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// writeFaultError answers status with {"error": msg}.
func writeFaultError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// clip shortens what a message quotes of a request.
func clip(s string) string {
	const n = 40
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

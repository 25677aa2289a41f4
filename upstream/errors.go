package upstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrorKind says which way a call failed.
type ErrorKind string

// The kinds of failure an APIError reports.
const (
	// KindInvalid: the request was refused before any I/O.
	KindInvalid ErrorKind = "invalid_request"
	// KindRetCode: the upstream answered with RetCode != 0.
	KindRetCode ErrorKind = "retcode"
	// KindHTTP: the upstream answered with an HTTP status >= 400.
	KindHTTP ErrorKind = "http"
	// KindNetwork: the request or the response did not make it across.
	KindNetwork ErrorKind = "network"
	// KindTimeout: a deadline ran out. Retryable when it was one attempt's
	// timeout; not when it was the caller's deadline (the error then wraps
	// context.DeadlineExceeded) or the budget of a shared call.
	KindTimeout ErrorKind = "timeout"
	// KindDecode: the body could not be decoded (retryable) or was larger
	// than the cap (not retryable).
	KindDecode ErrorKind = "decode"
	// KindCanceled: the caller's context was canceled first; the error wraps
	// context.Canceled.
	KindCanceled ErrorKind = "canceled"
	// KindCircuitOpen: the circuit breaker is open after consecutive
	// failures, and the call was refused without I/O; RetryAfter says when
	// a probe call may go.
	KindCircuitOpen ErrorKind = "circuit_open"
)

// Known RetCodes from UPSTREAM.md.
const (
	RetCodeMissingParam     = 160
	RetCodeUnknownAction    = 161
	RetCodeSignatureError   = 171
	RetCodeUnknownPublicKey = 172
	RetCodeParamUnavailable = 230
	RetCodeServiceError     = 8433
)

// APIError is the one error type for every failed call. Its Error text never
// holds the private key, a signature or the request body.
type APIError struct {
	// Action is the upstream action that failed.
	Action string
	// Kind says which way it failed.
	Kind ErrorKind
	// RetCode is the upstream's return code, for KindRetCode.
	RetCode int
	// Message is the upstream's human message, or a description of the failure.
	Message string
	// HTTPStatus is the status of the last response, 0 when none arrived.
	HTTPStatus int
	// RequestID is the upstream's X-UCLOUD-REQUEST-UUID of the last response.
	RequestID string
	// Retryable reports whether the failure was of a retryable kind.
	Retryable bool
	// Attempts is the number of attempts made, 0 when refused before I/O.
	Attempts int
	// RetryAfter, for KindCircuitOpen, is how long until the circuit lets
	// a probe call through.
	RetryAfter time.Duration
	// Err is the underlying cause, if any (a net error, a decode error).
	Err error
}

// Error describes the failure without any secret.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "upstream %s: ", e.Action)
	switch e.Kind {
	case KindRetCode:
		fmt.Fprintf(&b, "RetCode %d: %s", e.RetCode, e.Message)
	case KindHTTP:
		fmt.Fprintf(&b, "HTTP %d", e.HTTPStatus)
		if e.Message != "" {
			fmt.Fprintf(&b, ": %s", e.Message)
		}
	case KindCircuitOpen:
		fmt.Fprintf(&b, "%s; retry in %s", e.Message, e.RetryAfter.Round(time.Second))
	default:
		b.WriteString(e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request id %s)", e.RequestID)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *APIError) Unwrap() error { return e.Err }

// IsUpstreamFault reports whether err is the upstream's own failure: it was
// unreachable, failed, too slow or garbled, refused with a server-side
// RetCode (the retryable ones, ≥ 2000), or the circuit is open after such
// failures. A refusal of the request itself (a parameter the upstream does
// not take, RetCode 230; a bad signature; any other HTTP 4xx), a request
// refused before I/O, and a call abandoned by its callers are not. The
// circuit breaker counts these faults, and a cache answers stale data in
// their place.
func IsUpstreamFault(err error) bool {
	e, ok := AsAPIError(err)
	if !ok {
		return false
	}
	switch e.Kind {
	case KindNetwork, KindDecode, KindCircuitOpen:
		return true
	case KindTimeout:
		return !errors.Is(err, context.Canceled)
	case KindHTTP:
		return e.Retryable || e.HTTPStatus >= 500
	case KindRetCode:
		return e.Retryable
	}
	return false
}

// AsAPIError returns the *APIError in err's chain, if any.
func AsAPIError(err error) (*APIError, bool) {
	var e *APIError
	ok := errors.As(err, &e)
	return e, ok
}

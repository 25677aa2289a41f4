package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"runtime/debug"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/compshare/imagegraph/graph/model"
	"github.com/compshare/imagegraph/internal/codes"
	"github.com/compshare/imagegraph/upstream"
)

// UserInputError is an argument the API refuses, before any upstream call.
// It is model.InputError, so that the models' own argument checks (nested
// versions paging) report the same way.
type UserInputError = model.InputError

func badInputf(format string, args ...any) error { return model.InputErrorf(format, args...) }

// ForbiddenError is a field this caller may not read.
type ForbiddenError struct{ Message string }

func (e *ForbiddenError) Error() string { return e.Message }

// internalError is what a recovered panic becomes.
type internalError struct {
	cause any
	stack []byte
}

func (e *internalError) Error() string { return fmt.Sprintf("panic: %v", e.cause) }

// CodedError is an error of another layer (the operation limits, the
// client limits, the cache) that names the code clients see. The presenter
// shows its message and code, and the extensions it offers when it also has
// an ErrorExtensions() map[string]any method.
type CodedError interface {
	error
	ErrorCode() string
}

type extendedError interface {
	ErrorExtensions() map[string]any
}

// ErrorPresenter is the one place that decides what a client sees of an
// error: known errors get an extensions.code, anything else becomes
// "internal error" and a log line. Upstream errors never carry secrets.
func ErrorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return errorPresenter(log, false)
}

// errorPresenter is ErrorPresenter; hideSuggestions drops the "Did you
// mean …?" that validation messages add, which would name parts of a schema
// whose introspection is off.
func errorPresenter(log *slog.Logger, hideSuggestions bool) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gerr := graphql.DefaultErrorPresenter(ctx, err)
		var (
			input  *UserInputError
			forbid *ForbiddenError
			coded  CodedError
			api    *upstream.APIError
		)
		switch {
		case errors.As(err, &input):
			gerr.Message = input.Message
			setCode(gerr, codes.BadUserInput)
		case errors.As(err, &forbid):
			gerr.Message = forbid.Message
			setCode(gerr, codes.Forbidden)
		case errors.As(err, &coded):
			gerr.Message = coded.Error()
			setCode(gerr, coded.ErrorCode())
			var ext extendedError
			if errors.As(err, &ext) {
				for k, v := range ext.ErrorExtensions() {
					if k != "code" {
						gerr.Extensions[k] = v
					}
				}
			}
		case errors.As(err, &api):
			presentAPIError(gerr, api)
		case isGraphQLError(err):
			// Parse, validation and argument coercion errors from gqlgen:
			// about the request, with their own codes where gqlgen set one.
			if gerr.Extensions == nil || gerr.Extensions["code"] == nil {
				setCode(gerr, codes.BadUserInput)
			}
			if hideSuggestions {
				gerr.Message = withoutSuggestions(gerr.Message)
			}
		default:
			return internal(ctx, log, gerr, err)
		}
		return gerr
	}
}

// suggestion matches the hints gqlparser appends to validation messages:
// ` Did you mean "name"?`, ` Did you mean the enum value "DESC"?`.
var suggestion = regexp.MustCompile(` ?Did you mean [^?]*\?`)

func withoutSuggestions(msg string) string {
	return strings.TrimSpace(suggestion.ReplaceAllString(msg, ""))
}

// isGraphQLError reports whether err is an error gqlgen itself produced about
// the request (no cause of ours wrapped inside).
func isGraphQLError(err error) bool {
	var g *gqlerror.Error
	return errors.As(err, &g) && g.Unwrap() == nil
}

func presentAPIError(gerr *gqlerror.Error, api *upstream.APIError) {
	setCode(gerr, apiErrorCode(api))
	switch api.Kind {
	case upstream.KindRetCode:
		gerr.Message = fmt.Sprintf("upstream refused the request (RetCode %d): %s", api.RetCode, api.Message)
		gerr.Extensions["retCode"] = api.RetCode
		gerr.Extensions["upstreamMessage"] = api.Message
	case upstream.KindTimeout:
		gerr.Message = "upstream did not answer in time"
	case upstream.KindInvalid:
		gerr.Message = api.Message
	case upstream.KindCanceled:
		gerr.Message = "request canceled"
	case upstream.KindCircuitOpen:
		gerr.Message = "upstream unavailable: too many failures in a row; calls resume after a pause"
		gerr.Extensions["retryAfterSeconds"] = int(math.Ceil(api.RetryAfter.Seconds()))
	default:
		gerr.Message = "upstream unavailable"
	}
	if api.RequestID != "" {
		gerr.Extensions["requestId"] = api.RequestID
	}
	if api.Attempts > 0 {
		gerr.Extensions["attempts"] = api.Attempts
	}
}

// apiErrorCode is the code clients see for an upstream failure.
func apiErrorCode(api *upstream.APIError) string {
	switch api.Kind {
	case upstream.KindRetCode:
		return codes.UpstreamError
	case upstream.KindTimeout, upstream.KindCanceled:
		return codes.UpstreamTimeout
	case upstream.KindInvalid:
		return codes.BadUserInput
	default:
		return codes.UpstreamUnavailable
	}
}

// errorCode is the code clients would see for err, had it failed a field.
func errorCode(err error) string {
	var (
		coded CodedError
		api   *upstream.APIError
	)
	switch {
	case errors.As(err, &coded):
		return coded.ErrorCode()
	case errors.As(err, &api):
		return apiErrorCode(api)
	}
	return codes.Internal
}

func internal(ctx context.Context, log *slog.Logger, gerr *gqlerror.Error, err error) *gqlerror.Error {
	attrs := []any{"err", err.Error(), "path", gerr.Path.String()}
	var intl *internalError
	if errors.As(err, &intl) {
		attrs = append(attrs, "stack", string(intl.stack))
	}
	log.ErrorContext(ctx, "internal error", attrs...)
	return &gqlerror.Error{
		Message:    "internal error",
		Path:       gerr.Path,
		Locations:  gerr.Locations,
		Extensions: map[string]any{"code": codes.Internal},
	}
}

func setCode(gerr *gqlerror.Error, code string) {
	if gerr.Extensions == nil {
		gerr.Extensions = map[string]any{}
	}
	gerr.Extensions["code"] = code
}

// RecoverFunc turns a panic in a resolver into an internal error, never a
// dead process; the presenter logs it and hides it. A deliberate abort
// outside any field (http.ErrAbortHandler: a live query's SSE stream cut at
// a drain, so that its client subscribes again elsewhere) is no error: it
// is passed on, as the HTTP server's own recovery passes it, for net/http to
// cut the connection without a word, where gqlgen's handler would otherwise
// answer it as an internal error, logged with a stack, written into the
// stream, which then ended cleanly and was not retried.
func RecoverFunc(ctx context.Context, p any) error {
	if p == http.ErrAbortHandler && graphql.GetFieldContext(ctx) == nil {
		panic(p)
	}
	return &internalError{cause: p, stack: debug.Stack()}
}

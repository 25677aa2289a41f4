package graph

import (
	"context"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/compshare/imagegraph/upstream"
)

// staleData adds extensions.staleData to an answer that used data served in
// place of an upstream failure (stale-if-error): how old the oldest such
// data was, and the code of the failure it stood in for. Nothing else about
// the answer changes.
type staleData struct{}

func (staleData) ExtensionName() string                   { return "StaleData" }
func (staleData) Validate(graphql.ExecutableSchema) error { return nil }

func (staleData) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil || resp.Data == nil {
		return resp
	}
	r := upstream.UsageFrom(ctx).Report()
	if r.StaleError == nil {
		return resp
	}
	if resp.Extensions == nil {
		resp.Extensions = map[string]any{}
	}
	resp.Extensions["staleData"] = map[string]any{
		"ageSeconds": int(r.StaleAge / time.Second),
		"reason":     errorCode(r.StaleError),
	}
	return resp
}

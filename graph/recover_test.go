package graph_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"

	"github.com/compshare/imagegraph/graph"
)

// TestRecoverFuncPassesADeliberateAbortOn: a handler's abort outside any
// field reaches net/http, which cuts the connection (a drained SSE stream);
// inside a field, where a panic would end the process, it is an internal
// error like any other panic.
func TestRecoverFuncPassesADeliberateAbortOn(t *testing.T) {
	t.Parallel()
	assert.PanicsWithValue(t, http.ErrAbortHandler, func() { _ = graph.RecoverFunc(context.Background(), http.ErrAbortHandler) })

	field := graphql.WithFieldContext(context.Background(), &graphql.FieldContext{})
	assert.NotPanics(t, func() { assert.Error(t, graph.RecoverFunc(field, http.ErrAbortHandler)) })
	assert.NotPanics(t, func() { assert.Error(t, graph.RecoverFunc(context.Background(), errors.New("boom"))) })
}

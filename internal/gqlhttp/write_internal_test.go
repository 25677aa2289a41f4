package gqlhttp

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// TestWriteResponseMatchesEncodingJSON: every field of a response, written
// by writeResponse, decodes to what encoding/json writes for it.
func TestWriteResponseMatchesEncodingJSON(t *testing.T) {
	hasNext := false
	for _, resp := range []*graphql.Response{
		{Data: json.RawMessage(`{"a":"<b>&</b>","b":[1,2]}`)},
		{},
		{Errors: gqlerror.List{{Message: "boom", Path: ast.Path{ast.PathName("a"), ast.PathIndex(0)}, Extensions: map[string]any{"code": "X"}}}},
		{Errors: gqlerror.List{{Message: "x"}}, Data: json.RawMessage(`{"a":null}`), Extensions: map[string]any{"cost": 3}},
		{Data: json.RawMessage(`{}`), Label: "l", Path: ast.Path{ast.PathName("p")}, HasNext: &hasNext},
	} {
		var got strings.Builder
		writeResponse(&got, resp)
		want, err := json.Marshal(resp)
		require.NoError(t, err)
		assert.JSONEq(t, string(want), got.String())
	}
}

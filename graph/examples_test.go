package graph_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/graph/model"
)

// TestDocumentedQueriesFitTheLimits runs every query the README and the
// playground's example tabs show against the server's default limits: none
// is refused, none fails. A subscription runs as the query each of its
// polls is.
func TestDocumentedQueriesFitTheLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.sb.Groups()[1]
	vars := map[string]any{
		"id":      model.GlobalID(model.TypeImageGroup, g.GroupId),
		"groupId": g.GroupId,
		"imageId": g.Data[0].CompShareImageId,
	}
	var queries []string
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	for _, m := range regexp.MustCompile("(?s)```graphql\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		if strings.Contains(m[1], "deployments") {
			continue // the supergraph query of the federation section
		}
		queries = append(queries, m[1])
	}
	for _, m := range regexp.MustCompile(`"query":"(\{[^"]*\})"`).FindAllStringSubmatch(string(readme), -1) {
		queries = append(queries, m[1])
	}
	examples, err := os.ReadFile("../playground/src/examples.js")
	require.NoError(t, err)
	tabs := regexp.MustCompile("(?s)const \\w+ = `(.*?)`;").FindAllStringSubmatch(string(examples), -1)
	require.GreaterOrEqual(t, len(tabs), 5, "the playground's tabs")
	for _, m := range tabs {
		queries = append(queries, m[1])
	}
	require.GreaterOrEqual(t, len(queries), 7)
	// A subscription's fields are live versions of Query's, and each poll
	// runs as that query (live queries): run it so, against the limits.
	subscription := regexp.MustCompile(`(?m)^subscription\b`)
	for _, q := range queries {
		q = subscription.ReplaceAllString(q, "query")
		var used map[string]any
		if strings.Contains(q, "$id") {
			used = vars
		}
		resp := e.do(t, q, used)
		assert.Empty(t, resp.Errors, "%s\n%s", q, resp.raw)
		assert.NotNil(t, resp.Extensions["cost"], q)
	}
}

package persisted

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// testSchema is a small schema for manifests and the test server.
var testSchema = gqlparser.MustLoadSchema(&ast.Source{Name: "schema.graphql", Input: `
	type Query {
		name: String!
		images(first: Int): [Image!]!
	}
	type Image {
		id: ID!
		url: String!
	}
	type Mutation {
		rename(name: String!): String!
	}
`})

// Documents used across the tests.
const (
	getImages        = `query GetImages { images(first: 2) { id url } }`
	getName          = `query GetName { name }`
	rename           = `mutation Rename($name: String!) { rename(name: $name) }`
	unlisted         = `query Unlisted { name images { id } }`
	introspect       = `query Docs { __schema { queryType { name } } __type(name: "Image") { name } }`
	typenameFragment = `query Typename { ...F ... on Query { __typename } } fragment F on Query { __typename }`
)

// apolloManifest is an Apollo persisted query manifest of ops.
func apolloManifest(t *testing.T, ops ...Operation) []byte {
	t.Helper()
	type op struct {
		ID   string `json:"id"`
		Name string `json:"name,omitempty"`
		Type string `json:"type,omitempty"`
		Body string `json:"body"`
	}
	m := struct {
		Format     string `json:"format"`
		Version    int    `json:"version"`
		Operations []op   `json:"operations"`
	}{Format: "apollo-persisted-query-manifest", Version: 1, Operations: []op{}}
	for _, o := range ops {
		m.Operations = append(m.Operations, op(o))
	}
	data, err := json.Marshal(m)
	require.NoError(t, err)
	return data
}

// testManifest lists getImages (by its hash, as Apollo's generator does),
// getName and rename.
func testManifest(t *testing.T) *Manifest {
	t.Helper()
	m, err := ParseManifest(apolloManifest(t,
		Operation{ID: hashOf(getImages), Name: "GetImages", Type: "query", Body: getImages},
		Operation{ID: "get-name", Name: "GetName", Type: "query", Body: getName},
		Operation{ID: "rename", Name: "Rename", Type: "mutation", Body: rename},
	), testSchema)
	require.NoError(t, err)
	return m
}

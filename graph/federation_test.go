package graph_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/graph"
	"github.com/compshare/imagegraph/graph/model"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

const entitiesQuery = `query($reps: [_Any!]!) { _entities(representations: $reps) {
	__typename
	... on ImageGroup { groupId name }
	... on ImageVersion { imageId name group { groupId } }
} }`

// TestEntitiesMixedBatch: one _entities batch mixing types and key kinds
// resolves each representation by its own key, in order, with null for what
// matches nothing, one upstream call per distinct entity, concurrently.
func TestEntitiesMixedBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withSandboxOptions(sandbox.WithLatency(20*time.Millisecond)))
	groups := e.sb.Groups()
	a, b := groups[1].Data[0], groups[2].Data[0]
	g1, g2 := groups[3], groups[4]
	reps := []map[string]any{
		{"__typename": "ImageVersion", "imageId": a.CompShareImageId},
		{"__typename": "ImageGroup", "id": model.GlobalID(model.TypeImageGroup, g1.GroupId)},
		{"__typename": "ImageGroup", "groupId": g2.GroupId},
		{"__typename": "ImageVersion", "id": model.GlobalID(model.TypeImageVersion, b.CompShareImageId)},
		{"__typename": "ImageVersion", "imageId": a.CompShareImageId},
		{"__typename": "ImageGroup", "groupId": "group-nope"},
		{"__typename": "ImageGroup", "id": "not-a-global-id"},
		{"__typename": "ImageVersion", "id": model.GlobalID(model.TypeImageGroup, g1.GroupId)},
	}
	resp := e.do(t, entitiesQuery, map[string]any{"reps": reps})
	require.Empty(t, resp.Errors, string(resp.raw))
	var out struct {
		Entities []map[string]any `json:"_entities"`
	}
	require.NoError(t, json.Unmarshal(resp.Data, &out))
	require.Len(t, out.Entities, len(reps))
	assert.Equal(t, a.CompShareImageId, out.Entities[0]["imageId"])
	assert.Equal(t, groups[1].GroupId, out.Entities[0]["group"].(map[string]any)["groupId"])
	assert.Equal(t, g1.GroupId, out.Entities[1]["groupId"])
	assert.Equal(t, g1.ImageName, out.Entities[1]["name"])
	assert.Equal(t, g2.GroupId, out.Entities[2]["groupId"])
	assert.Equal(t, b.CompShareImageId, out.Entities[3]["imageId"])
	assert.Equal(t, a.CompShareImageId, out.Entities[4]["imageId"])
	assert.Nil(t, out.Entities[5], "a group that does not exist")
	assert.Nil(t, out.Entities[6], "an id that does not decode")
	assert.Nil(t, out.Entities[7], "a global id of the other type")
	assert.LessOrEqual(t, e.calls(), int64(5), "one call per distinct entity: a, b, g1, g2, group-nope")
	assert.Greater(t, e.sb.Stats().MaxInFlight, int64(1), "the calls were in flight together")
}

// TestEntityFailureStaysLocal: an upstream failure for one entity fails its
// own entry, not its neighbours.
func TestEntityFailureStaysLocal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withService(func(s graphService) graphService { return failing(s, "group-broken") }))
	g := e.sb.Groups()[0]
	resp := e.do(t, entitiesQuery, map[string]any{"reps": []map[string]any{
		{"__typename": "ImageGroup", "groupId": g.GroupId},
		{"__typename": "ImageGroup", "groupId": "group-broken"},
	}})
	var out struct {
		Entities []map[string]any `json:"_entities"`
	}
	require.NoError(t, json.Unmarshal(resp.Data, &out), string(resp.raw))
	require.Len(t, out.Entities, 2)
	assert.Equal(t, g.GroupId, out.Entities[0]["groupId"])
	assert.Nil(t, out.Entities[1])
	require.Len(t, resp.Errors, 1, string(resp.raw))
	assert.Equal(t, "UPSTREAM_UNAVAILABLE", resp.Errors[0].Extensions["code"])
	assert.Equal(t, []any{"_entities", float64(1)}, resp.Errors[0].Path)
}

// TestServiceSDL: _service answers the subgraph SDL, the same text
// SubgraphSDL prints; with introspection off only a router with the secret
// reads it, and others get FORBIDDEN.
func TestServiceSDL(t *testing.T) {
	t.Parallel()
	var sdl struct {
		Service struct {
			SDL string `json:"sdl"`
		} `json:"_service"`
	}
	open := newEnv(t)
	open.ok(t, `{ _service { sdl } }`, nil, &sdl)
	assert.Equal(t, graph.SubgraphSDL(), sdl.Service.SDL)
	assert.Contains(t, sdl.Service.SDL, `@key(fields: "groupId")`)
	assert.Contains(t, sdl.Service.SDL, `type PageInfo @shareable`)

	closed := newEnv(t, withHandlerConfig(func(c *graph.HandlerConfig) {
		c.Introspection = false
		c.FederationSecret = "router-secret"
	}))
	resp := closed.do(t, `{ _service { sdl } }`, nil)
	require.Len(t, resp.Errors, 1, string(resp.raw))
	assert.Equal(t, "FORBIDDEN", resp.Errors[0].Extensions["code"])
	for _, q := range []string{`{ __schema { queryType { name } } }`, `{ __type(name: "ImageGroup") { name } }`} {
		resp = closed.do(t, q, nil)
		require.Len(t, resp.Errors, 1, "introspection is off for the public: %s", resp.raw)
		assert.Equal(t, "FORBIDDEN", resp.Errors[0].Extensions["code"])
	}
	assert.NotContains(t, closed.logs.String(), "internal error")
	resp = closed.doWithHeaders(t, `{ _service { sdl } }`, nil, http.Header{graph.FederationSecretHeader: {"wrong"}})
	assert.NotEmpty(t, resp.Errors)

	resp = closed.doWithHeaders(t, `{ _service { sdl } }`, nil, http.Header{graph.FederationSecretHeader: {"router-secret"}})
	require.Empty(t, resp.Errors, string(resp.raw))
	require.NoError(t, json.Unmarshal(resp.Data, &sdl))
	assert.Equal(t, graph.SubgraphSDL(), sdl.Service.SDL)
}

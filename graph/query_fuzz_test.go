package graph_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/compshare/imagegraph/internal/testkit"
)

// FuzzQuery posts arbitrary documents with arbitrary variables to the API
// over the sandbox: whatever a client sends, the answer is JSON, never a
// 5xx, every error carries a code of the client's (never
// INTERNAL_SERVER_ERROR), and nothing is logged at ERROR.
func FuzzQuery(f *testing.F) {
	for _, seed := range []struct{ query, vars string }{
		{testkit.ReferenceQuery, `{}`},
		{`query($n: Int, $a: String) { imageGroups(first: $n, after: $a) { totalCount edges { cursor } } }`, `{"n": 3, "a": "cG9zOjE="}`},
		{`query($f: ImageFilter, $o: ImageOrder) { imageGroups(first: 2, filter: $f, orderBy: $o) { nodes { name } } }`, `{"f": {"tags": ["x"], "freeOnly": true}, "o": {"field": "FAVORITES", "direction": "ASC"}}`},
		{`{ node(id: "SW1hZ2VHcm91cDp4") { id ... on ImageGroup { name } } nodes(ids: ["", "x"]) { id } }`, `{}`},
		{`{ imageGroups(last: 3, before: "eA") { pageInfo { startCursor } } }`, `{}`},
		{`{ imageGroup(groupId: "") { versions(first: -1) { totalCount } } }`, `{}`},
		{`{ imageVersion(imageId: "x") { group { latestVersion { imageId } } } }`, `{}`},
		{`{ _service { sdl } __schema { types { name } } }`, `{}`},
		{`{ _entities(representations: [{a: 1e309}]) { __typename } }`, `{}`},
		{`query($r: [_Any!]!) { _entities(representations: $r) { __typename } }`, `{"r": [{"__typename": "ImageVersion", "imageId": 1}]}`},
		{`query Q { ...F } fragment F on Query { ...F }`, `{}`},
		{`subscription { x }`, `{}`},
		{`mutation { x }`, `{}`},
	} {
		f.Add(seed.query, seed.vars)
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, query, vars string) {
		body := map[string]any{"query": query}
		if json.Valid([]byte(vars)) {
			body["variables"] = json.RawMessage(vars)
		}
		b, err := json.Marshal(body)
		if err != nil {
			return
		}
		resp, err := http.Post(e.api.URL, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("status %d: %s", resp.StatusCode, raw)
		}
		var out struct {
			Errors []gqlError `json:"errors"`
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("not JSON: %s", raw)
		}
		for _, ge := range out.Errors {
			code, _ := ge.Extensions["code"].(string)
			if code == "" || code == "INTERNAL_SERVER_ERROR" {
				t.Fatalf("error without a code of the client's: %s", raw)
			}
		}
		if logs := e.logs.String(); strings.Contains(logs, `"level":"ERROR"`) {
			t.Fatalf("logged an error: %s", logs)
		}
	})
}

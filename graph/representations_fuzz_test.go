package graph_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// FuzzEntityRepresentations sends arbitrary representations to _entities,
// as a variable (when the input is JSON) and written in the document (when
// it parses as a GraphQL value): the answer is never a 5xx, every error has
// a code and none is INTERNAL_SERVER_ERROR, and nothing is logged at
// ERROR. The seeds are the fuzzer's reproductions of issue 16.
func FuzzEntityRepresentations(f *testing.F) {
	for _, seed := range []string{
		`[{}]`, `[{"__typename":"Nope"}]`, `["x"]`, `[1]`, `[{"__typename":"ImageGroup"}]`,
		`[{"a": 1e309}]`, `[{"a": 18446744073709551616}]`, `[null]`, `[[1]]`, `[{"__typename": null}]`,
		`[{"__typename":"ImageGroup","groupId":"g"},"x",{"__typename":"ImageVersion","imageId":{"a":1}}]`,
		`[{"__typename":"ImageVersion","id":"SW1hZ2VWZXJzaW9uOng="}]`, `[{"__typename":"ImageGroup","groupId":1e308}]`,
		`[{__typename: "ImageGroup", groupId: $x}]`, `[{a: -1e400}]`, `[1.5e3000]`, `{}`, `"x"`,
	} {
		f.Add(seed)
	}
	e := newEnv(f)
	post := func(t *testing.T, body []byte) {
		resp, err := http.Post(e.api.URL, "application/json", bytes.NewReader(body))
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
	}
	f.Fuzz(func(t *testing.T, reps string) {
		if json.Valid([]byte(reps)) {
			body, _ := json.Marshal(map[string]any{
				"query":     "query($r: [_Any!]!) { _entities(representations: $r) { __typename ... on ImageGroup { name } } }",
				"variables": json.RawMessage(`{"r":` + reps + `}`),
			})
			post(t, body)
		}
		if _, err := parser.ParseQuery(&ast.Source{Input: "{ f(a: " + reps + ") }"}); err == nil && !strings.ContainsAny(reps, "#") {
			body, _ := json.Marshal(map[string]any{
				"query": "{ _entities(representations: " + reps + ") { __typename ... on ImageVersion { name } } }",
			})
			post(t, body)
		}
		if logs := e.logs.String(); strings.Contains(logs, `"level":"ERROR"`) {
			t.Fatalf("logged an error: %s", logs)
		}
	})
}

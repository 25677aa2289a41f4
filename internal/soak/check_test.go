package soak_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/compshare/imagegraph/internal/soak"
)

// group is a Group query and its expected data, for the check's tests.
var group = soak.Query{Op: soak.OpGroup, Variables: map[string]any{"groupId": "g1"}, Want: map[string]any{
	"imageGroup": map[string]any{"groupId": "g1", "name": "one", "versions": map[string]any{"totalCount": 2.0, "nodes": []any{
		map[string]any{"imageId": "v1"}, map[string]any{"imageId": "v2"},
	}}},
}}

func kinds(ps []soak.Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Kind)
	}
	return out
}

func TestCheck(t *testing.T) {
	t.Parallel()
	const exact = `{"data":{"imageGroup":{"groupId":"g1","name":"one","versions":{"totalCount":2,"nodes":[{"imageId":"v1"},{"imageId":"v2"}]}}}}`
	cases := []struct {
		name     string
		status   int
		body     string
		inFault  bool
		outcome  string
		data     bool
		problems []string
	}{
		{name: "exact", status: 200, body: exact, outcome: soak.OutcomeData, data: true},
		{name: "stale data is data", status: 200, body: exact[:len(exact)-1] + `,"extensions":{"staleData":{"ageSeconds":40,"reason":"UPSTREAM_UNAVAILABLE"}}}`,
			outcome: soak.OutcomeStale, data: true},
		{name: "a wrong value", status: 200, body: `{"data":{"imageGroup":{"groupId":"g1","name":"two","versions":{"totalCount":2,"nodes":[{"imageId":"v1"},{"imageId":"v2"}]}}}}`,
			outcome: soak.OutcomeData, data: true, problems: []string{soak.ProblemWrong}},
		{name: "an item missing", status: 200, body: `{"data":{"imageGroup":{"groupId":"g1","name":"one","versions":{"totalCount":2,"nodes":[{"imageId":"v1"}]}}}}`,
			outcome: soak.OutcomeData, data: true, problems: []string{soak.ProblemWrong}},
		{name: "a field too many", status: 200, body: `{"data":{"imageGroup":{"groupId":"g1","name":"one","extra":1,"versions":{"totalCount":2,"nodes":[{"imageId":"v1"},{"imageId":"v2"}]}}}}`,
			outcome: soak.OutcomeData, data: true, problems: []string{soak.ProblemWrong}},
		{name: "null where a coded error says", status: 200,
			body:    `{"data":{"imageGroup":{"groupId":"g1","name":"one","versions":null}},"errors":[{"message":"x","path":["imageGroup","versions"],"extensions":{"code":"UPSTREAM_UNAVAILABLE"}}]}`,
			outcome: "UPSTREAM_UNAVAILABLE"},
		{name: "a root nulled by an error below it", status: 200,
			body:    `{"data":{"imageGroup":null},"errors":[{"message":"x","path":["imageGroup","versions","nodes",0,"imageId"],"extensions":{"code":"UPSTREAM_TIMEOUT"}}]}`,
			outcome: "UPSTREAM_TIMEOUT"},
		{name: "null where no error says", status: 200,
			body:    `{"data":{"imageGroup":{"groupId":"g1","name":"one","versions":null}},"errors":[{"message":"x","path":["imageGroup","name"],"extensions":{"code":"UPSTREAM_UNAVAILABLE"}}]}`,
			outcome: "UPSTREAM_UNAVAILABLE", problems: []string{soak.ProblemWrong}},
		{name: "an error without a code", status: 200, body: `{"data":null,"errors":[{"message":"internal error"}]}`,
			outcome: soak.OutcomeUncoded, problems: []string{soak.ProblemUncoded}},
		{name: "a request error", status: 200, body: `{"errors":[{"message":"slow down","extensions":{"code":"RATE_LIMITED"}}]}`, outcome: "RATE_LIMITED"},
		{name: "a coded 503 in a fault window", status: 503, inFault: true,
			body: `{"errors":[{"message":"busy","extensions":{"code":"SERVER_OVERLOADED"}}]}`, outcome: "SERVER_OVERLOADED"},
		{name: "a coded 503 outside one", status: 503,
			body: `{"errors":[{"message":"busy","extensions":{"code":"SERVER_OVERLOADED"}}]}`, outcome: "SERVER_OVERLOADED", problems: []string{soak.Problem5xx}},
		{name: "a coded 500", status: 500, inFault: true,
			body: `{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}`, outcome: "INTERNAL_SERVER_ERROR", problems: []string{soak.Problem5xx}},
		{name: "a proxy's page", status: http.StatusBadGateway, inFault: true, body: `<html>502 Bad Gateway</html>`,
			outcome: "HTTP_502", problems: []string{soak.ProblemNotGraphQL, soak.Problem5xx}},
		{name: "neither data nor errors", status: 200, body: `{"data":null}`, problems: []string{soak.ProblemWrong}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := soak.Check(&group, tc.status, []byte(tc.body), tc.inFault)
			assert.Equal(t, tc.problems, kinds(a.Problems), "%v", a.Problems)
			if tc.outcome != "" {
				assert.Equal(t, tc.outcome, a.Outcome)
			}
			assert.Equal(t, tc.data, a.Data)
		})
	}
}

func TestCheckWatched(t *testing.T) {
	t.Parallel()
	q := soak.Query{Op: soak.OpWatched, Variables: map[string]any{"imageId": "v1"}, Watched: "v1"}
	a := soak.Check(&q, 200, []byte(`{"data":{"imageVersion":{"imageId":"v1","versionDescription":"change 3"}}}`), false)
	assert.Empty(t, a.Problems)
	assert.Equal(t, "change 3", a.Value)
	a = soak.Check(&q, 200, []byte(`{"data":{"imageVersion":{"imageId":"v2","versionDescription":"change 3"}}}`), false)
	assert.Equal(t, []string{soak.ProblemWrong}, kinds(a.Problems))
	a = soak.Check(&q, 200, []byte(`{"data":{"imageVersion":null}}`), false)
	assert.Equal(t, []string{soak.ProblemWrong}, kinds(a.Problems))
	a = soak.Check(&q, 200, []byte(`{"data":{"imageVersion":null},"errors":[{"message":"x","path":["imageVersion"],"extensions":{"code":"UPSTREAM_UNAVAILABLE"}}]}`), false)
	assert.Empty(t, a.Problems)
	assert.Empty(t, a.Value)
}

func TestDiff(t *testing.T) {
	t.Parallel()
	want := map[string]any{"a": []any{1.0, map[string]any{"b": "x"}}}
	assert.Empty(t, soak.Diff(want, map[string]any{"a": []any{1.0, map[string]any{"b": "x"}}}, nil))
	assert.Equal(t, `at a.1.b: want "x", got "y"`, soak.Diff(want, map[string]any{"a": []any{1.0, map[string]any{"b": "y"}}}, nil))
	assert.Equal(t, `at a: want 2 items, got 1`, soak.Diff(want, map[string]any{"a": []any{1.0}}, nil))
	assert.Empty(t, soak.Diff(want, map[string]any{"a": []any{1.0, nil}}, [][]any{{"a", 1.0, "b"}}), "an error below allows the null")
	assert.NotEmpty(t, soak.Diff(want, map[string]any{"a": []any{1.0, nil}}, [][]any{{"a", 0.0}}), "an error elsewhere does not")
}

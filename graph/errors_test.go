package graph_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/testkit"
	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

// TestBadUserInput: bad arguments are BAD_USER_INPUT errors raised before
// any upstream call.
func TestBadUserInput(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		query string
	}{
		{"negative first", `{ imageGroups(first: -1) { totalCount } }`},
		{"first over the max", `{ imageGroups(first: 501) { totalCount } }`},
		{"negative last", `{ imageGroups(last: -3) { totalCount } }`},
		{"last over the max", `{ imageGroups(last: 100000) { totalCount } }`},
		{"after that does not decode", `{ imageGroups(after: "garbage") { totalCount } }`},
		{"before that does not decode", `{ imageGroups(before: "cG9zOi0x") { totalCount } }`},
		{"empty tag", `{ imageGroups(filter: {tags: [""]}) { totalCount } }`},
		{"bad node id", `{ node(id: "%%%") { id } }`},
		{"versions first negative", `{ imageGroup(groupId: "` + sandbox.EdgeUnsortedGroupID + `") { versions(first: -1) { totalCount } } }`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			resp := e.do(t, tc.query, nil)
			require.Len(t, resp.Errors, 1, string(resp.raw))
			assert.Equal(t, "BAD_USER_INPUT", resp.Errors[0].Extensions["code"], string(resp.raw))
			if !strings.Contains(tc.name, "versions") {
				assert.Zero(t, e.calls(), "refused before any upstream call")
			}
		})
	}
}

// TestValidationErrorsAreNotInternal: a query the schema refuses keeps
// gqlgen's own code and message.
func TestValidationErrorsAreNotInternal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp := e.do(t, `{ imageGroups { noSuchField } }`, nil)
	require.NotEmpty(t, resp.Errors)
	assert.Equal(t, "GRAPHQL_VALIDATION_FAILED", resp.Errors[0].Extensions["code"])
	resp = e.do(t, `query($n: Int) { imageGroups(first: $n) { totalCount } }`, map[string]any{"n": "ten"})
	require.NotEmpty(t, resp.Errors)
	assert.NotEqual(t, "INTERNAL_SERVER_ERROR", resp.Errors[0].Extensions["code"], string(resp.raw))
	assert.Zero(t, e.calls())
}

// TestUpstreamErrorCodes provokes each upstream failure through the sandbox
// and checks the code and extensions the client sees, and that the other
// root field keeps its data (partial results).
func TestUpstreamErrorCodes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		fault sandbox.Fault
		code  string
		check func(t *testing.T, ext map[string]any)
	}{
		{"RetCode", sandbox.Fault{RetCode: 230, Message: "Params [Tag] not available"}, "UPSTREAM_ERROR", func(t *testing.T, ext map[string]any) {
			assert.EqualValues(t, 230, ext["retCode"])
			assert.Equal(t, "Params [Tag] not available", ext["upstreamMessage"])
			assert.NotEmpty(t, ext["requestId"])
		}},
		{"retryable RetCode, retries spent", sandbox.Fault{RetCode: 8433, Message: "service error"}, "UPSTREAM_ERROR", func(t *testing.T, ext map[string]any) {
			assert.EqualValues(t, 8433, ext["retCode"])
			assert.EqualValues(t, 3, ext["attempts"])
		}},
		{"HTTP 503", sandbox.Fault{HTTPStatus: http.StatusServiceUnavailable}, "UPSTREAM_UNAVAILABLE", nil},
		{"HTTP 429", sandbox.Fault{HTTPStatus: http.StatusTooManyRequests}, "UPSTREAM_UNAVAILABLE", nil},
		{"malformed body", sandbox.Fault{Malformed: true}, "UPSTREAM_UNAVAILABLE", nil},
		{"hang", sandbox.Fault{Hang: true}, "UPSTREAM_TIMEOUT", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withClientOptions(upstream.WithTimeout(200*time.Millisecond)))
			tag := "AIGC"
			e.sb.InjectFault(tc.fault)
			resp := e.do(t, `query($t: String!) { bad: imageGroups(filter: {tags: [$t]}) { totalCount } }`, map[string]any{"t": tag})
			require.Len(t, resp.Errors, 1, string(resp.raw))
			got := resp.Errors[0]
			assert.Equal(t, tc.code, got.Extensions["code"], string(resp.raw))
			assert.Equal(t, []any{"bad"}, got.Path)
			assert.JSONEq(t, `{"bad": null}`, string(resp.Data))
			if tc.check != nil {
				tc.check(t, got.Extensions)
			}
		})
	}
}

// TestPartialResults: one failing root field leaves the others' data.
func TestPartialResults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withService(func(s graphService) graphService {
		return failing(s, "Broken")
	}))
	resp := e.do(t, `{
		good: imageGroups(first: 2) { totalCount }
		bad: imageGroups(first: 2, filter: {name: "Broken"}) { totalCount }
	}`, nil)
	require.Len(t, resp.Errors, 1, string(resp.raw))
	assert.Equal(t, "UPSTREAM_UNAVAILABLE", resp.Errors[0].Extensions["code"])
	var data map[string]*struct {
		TotalCount int `json:"totalCount"`
	}
	require.NoError(t, json.Unmarshal(resp.Data, &data))
	require.NotNil(t, data["good"])
	assert.Positive(t, data["good"].TotalCount)
	assert.Nil(t, data["bad"])
}

// TestVersionsFailureKeepsTheGroup: when fetching a group's full versions
// fails, versions is null with an error and the group's other fields stay.
func TestVersionsFailureKeepsTheGroup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withService(func(s graphService) graphService {
		return failing(s, "group-")
	}))
	resp := e.do(t, `{ imageGroups(first: 2, filter: {tags: ["AIGC"]}) { nodes { groupId name versions { totalCount } } } }`, nil)
	var data struct {
		ImageGroups struct {
			Nodes []struct {
				GroupID  string           `json:"groupId"`
				Name     string           `json:"name"`
				Versions *json.RawMessage `json:"versions"`
			} `json:"nodes"`
		} `json:"imageGroups"`
	}
	require.NoError(t, json.Unmarshal(resp.Data, &data), string(resp.raw))
	require.Len(t, data.ImageGroups.Nodes, 2)
	for _, n := range data.ImageGroups.Nodes {
		assert.NotEmpty(t, n.GroupID)
		assert.NotEmpty(t, n.Name)
		assert.Nil(t, n.Versions)
	}
	require.Len(t, resp.Errors, 2, string(resp.raw))
	for _, err := range resp.Errors {
		assert.Equal(t, "UPSTREAM_UNAVAILABLE", err.Extensions["code"])
		assert.Equal(t, "versions", err.Path[len(err.Path)-1])
	}
}

// TestPanicsBecomeInternalErrors: a panic is an "internal error" with a log
// line, never a dead process or a stack trace in the response.
func TestPanicsBecomeInternalErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withService(func(s graphService) graphService { return panicking() }))
	resp := e.do(t, `{ imageGroups(first: 1) { totalCount } }`, nil)
	require.Len(t, resp.Errors, 1, string(resp.raw))
	assert.Equal(t, "internal error", resp.Errors[0].Message)
	assert.Equal(t, "INTERNAL_SERVER_ERROR", resp.Errors[0].Extensions["code"])
	assert.NotContains(t, string(resp.raw), "goroutine")
	assert.Contains(t, e.logs.String(), "boom")
	// The server still answers.
	resp = e.do(t, `{ __typename }`, nil)
	assert.Empty(t, resp.Errors)
}

// failing fails every call whose Name or GroupId contains marker, as an
// unreachable upstream would, and passes the others to s.
func failing(s upstream.Service, marker string) upstream.Service {
	return &testkit.Upstream{Answer: func(ctx context.Context, req *upstream.DescribeCommunityImagesRequest) (*upstream.DescribeCommunityImagesResponse, error) {
		if (marker != "" && strings.Contains(req.Name, marker)) || (req.GroupId != "" && strings.Contains(req.GroupId, marker)) {
			return nil, &upstream.APIError{Action: upstream.ActionDescribeCommunityImages, Kind: upstream.KindNetwork, Message: "connection refused", Retryable: true, Attempts: 3}
		}
		return s.DescribeCommunityImages(ctx, req)
	}}
}

// panicking panics with "boom" on every call.
func panicking() upstream.Service {
	return &testkit.Upstream{Answer: func(context.Context, *upstream.DescribeCommunityImagesRequest) (*upstream.DescribeCommunityImagesResponse, error) {
		panic("boom")
	}}
}

// TestRequestErrorStatusCodes: request errors follow GraphQL over HTTP:
// 200 with errors for application/json, a 4xx without "data" for
// application/graphql-response+json.
func TestRequestErrorStatusCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	post := func(accept, query string) (int, string, map[string]json.RawMessage) {
		req, err := http.NewRequest(http.MethodPost, e.api.URL, strings.NewReader(`{"query":`+strconv.Quote(query)+`}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]json.RawMessage
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return resp.StatusCode, resp.Header.Get("Content-Type"), body
	}
	for _, q := range []string{`{ imageGroups { noSuchField } }`, `{ imageGroups(`} {
		status, ct, body := post("application/json", q)
		assert.Equal(t, http.StatusOK, status, q)
		assert.Contains(t, ct, "application/json")
		assert.Contains(t, body, "errors")

		status, ct, body = post("application/graphql-response+json", q)
		assert.Equal(t, http.StatusBadRequest, status, q)
		assert.Contains(t, ct, "application/graphql-response+json")
		assert.Contains(t, body, "errors")
		assert.NotContains(t, body, "data")
	}
	status, _, body := post("application/graphql-response+json", `{ imageGroups(first: 1) { totalCount } }`)
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, "data")
}

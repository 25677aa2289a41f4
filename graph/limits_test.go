package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/graph"
	"github.com/compshare/imagegraph/graph/model"
	"github.com/compshare/imagegraph/internal/access"
	"github.com/compshare/imagegraph/internal/answers"
	"github.com/compshare/imagegraph/internal/codes"
	"github.com/compshare/imagegraph/internal/documents"
	"github.com/compshare/imagegraph/internal/limits"
	"github.com/compshare/imagegraph/internal/testkit"
	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

// cost is extensions.cost of an answer.
type cost struct {
	Estimated              float64 `json:"estimated"`
	Max                    int     `json:"max"`
	UpstreamCallsEstimated float64 `json:"upstreamCallsEstimated"`
	UpstreamCalls          int     `json:"upstreamCalls"`
	MaxUpstreamCalls       int     `json:"maxUpstreamCalls"`
}

func costOf(t *testing.T, resp gqlResponse) cost {
	t.Helper()
	raw, err := json.Marshal(resp.Extensions["cost"])
	require.NoError(t, err)
	var c cost
	require.NoError(t, json.Unmarshal(raw, &c), string(resp.raw))
	return c
}

// TestUpstreamCallsEstimate pins the estimate of upstream calls to values
// counted by hand from what the resolvers do, and checks the real count in
// extensions.cost against the sandbox's: never more than the estimate.
func TestUpstreamCallsEstimate(t *testing.T) {
	t.Parallel()
	probe := newEnv(t)
	groups := probe.sb.Groups()
	g, v := groups[5], groups[7].Data[0]
	gid := model.GlobalID(model.TypeImageGroup, g.GroupId)
	vid := model.GlobalID(model.TypeImageVersion, v.CompShareImageId)
	c30 := model.EncodeCursor(30)
	past := model.EncodeCursor(1000)
	reps := []map[string]any{
		{"__typename": "ImageVersion", "imageId": v.CompShareImageId},
		{"__typename": "ImageGroup", "groupId": g.GroupId},
		{"__typename": "ImageGroup", "id": gid},
	}
	for _, tc := range []struct {
		name     string
		query    string
		vars     map[string]any
		estimate float64
		actual   int64
	}{
		{"the reference operation: one page", referenceQuery, nil, 1, 1},
		{"counts only: one Limit=1 call", `{ imageGroups(first: 20) { totalCount } }`, nil, 1, 1},
		{"a window of 250: three calls of at most 100", `{ imageGroups(first: 250) { nodes { groupId } } }`, nil, 3, 3},
		{"last without before: the count, then the page", `{ imageGroups(last: 5) { nodes { groupId } } }`, nil, 2, 2},
		{"last with before: the page alone", `query($b: String) { imageGroups(last: 5, before: $b) { nodes { groupId } } }`, map[string]any{"b": c30}, 1, 1},
		{"an empty window: the count alone", `{ imageGroups(first: 0) { nodes { groupId } pageInfo { hasNextPage } } }`, nil, 1, 1},
		// 1 page + one full group per group of the page (8 asked; fewer may match).
		{"a filtered page reading versions: one more call per group", `{ imageGroups(first: 8, filter: {tags: ["AIGC"]}) { nodes { versions { totalCount } } } }`, nil, 1 + 8, -1},
		{"matched versions reading their group's versions: one per group", `{ imageGroups(first: 8, filter: {tags: ["AIGC"]}) { edges { matchedVersions { group { versions { totalCount } } } } } }`, nil, 1 + 8, -1},
		{"both: the groups once", `{ imageGroups(first: 8, filter: {tags: ["AIGC"]}) { nodes { latestVersion { imageId } } edges { matchedVersions { group { versions { totalCount } } } } } }`, nil, 1 + 8, -1},
		{"an unfiltered page's versions and groups are free", `{ imageGroups(first: 30) { nodes { versions { nodes { group { latestVersion { group { name } } } } } } } }`, nil, 1, 1},
		{"a looked-up version's group, read for its versions", `query($id: ID!) { imageVersion(imageId: $id) { group { versions { totalCount } } } }`, map[string]any{"id": v.CompShareImageId}, 2, 2},
		{"a looked-up version's group, not read for them", `query($id: ID!) { imageVersion(imageId: $id) { group { name } } }`, map[string]any{"id": v.CompShareImageId}, 1, 1},
		{"a looked-up group", `query($id: ID!) { imageGroup(groupId: $id) { versions { nodes { group { versions { totalCount } } } } } }`, map[string]any{"id": g.GroupId}, 1, 1},
		{"node", `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": gid}, 1, 1},
		{"nodes: one per id", `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": []string{gid, vid, model.GlobalID(model.TypeImageGroup, "group-nope")}}, 3, 3},
		{"_entities: one per representation", entitiesQuery, map[string]any{"reps": reps}, 3, 2},
		{"a before cursor past the end: the page, then the real window", `query($b: String) { imageGroups(last: 5, before: $b) { nodes { groupId } } }`, map[string]any{"b": past}, 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			resp := e.do(t, tc.query, tc.vars)
			require.Empty(t, resp.Errors, string(resp.raw))
			c := costOf(t, resp)
			assert.Equal(t, tc.estimate, c.UpstreamCallsEstimated, "estimate")
			assert.EqualValues(t, e.calls(), c.UpstreamCalls, "extensions.cost.upstreamCalls is the sandbox's count")
			if tc.actual >= 0 {
				assert.Equal(t, tc.actual, e.calls(), "actual calls")
			}
			assert.Equal(t, limits.DefaultLimits.MaxCost, c.Max)
			assert.Equal(t, limits.DefaultLimits.MaxUpstreamCalls, c.MaxUpstreamCalls)
		})
	}
}

// TestReferenceCost pins the reference operation's estimated cost, counted
// by hand: imageGroups 1 × (10 + pageInfo 1 + edges 20 × (edge 1 + node (1
// + versions (1 + nodes 20 × 1) + latestVersion 1))) = 11 + 20 × 24.
func TestReferenceCost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp := e.do(t, referenceQuery, nil)
	require.Empty(t, resp.Errors)
	assert.Equal(t, float64(11+20*24), costOf(t, resp).Estimated)
}

// TestWideWindowWithVersionsIsAllowed: the largest page with its versions
// fits the default limits: 500 groups, 5 calls.
func TestWideWindowWithVersionsIsAllowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp := e.do(t, `{ imageGroups(first: 500) { totalCount nodes { groupId name versions { totalCount nodes { imageId name status } } latestVersion { imageId } } } }`, nil)
	require.Empty(t, resp.Errors, string(resp.raw))
	c := costOf(t, resp)
	assert.Equal(t, float64(5), c.UpstreamCallsEstimated)
	assert.Less(t, c.Estimated, float64(limits.DefaultLimits.MaxCost))
}

// attack is one hostile document and the refusal it must get.
type attack struct {
	name  string
	query string
	vars  map[string]any
	code  string
}

func attacks(t *testing.T, e *env) []attack {
	groups := e.sb.Groups()
	var ids []string
	var reps []map[string]any
	for i := range 60 {
		g := groups[i%len(groups)]
		ids = append(ids, model.GlobalID(model.TypeImageGroup, fmt.Sprintf("%s-%d", g.GroupId, i)))
		reps = append(reps, map[string]any{"__typename": "ImageGroup", "groupId": fmt.Sprintf("group-%d", i)})
	}
	nest := func(levels int) string {
		q := "imageId"
		for range levels {
			q = "group { versions { nodes { " + q + " } } }"
		}
		return "{ imageGroups(first: 100) { nodes { versions { nodes { " + q + " } } } } }"
	}
	var b strings.Builder
	b.WriteString("{ imageGroups(first: 1) { nodes { ...F0 } } }\n")
	for i := range 30 {
		fmt.Fprintf(&b, "fragment F%d on ImageGroup { ...F%d ...F%d }\n", i, i+1, i+1)
	}
	b.WriteString("fragment F30 on ImageGroup { n: name }\n")
	bomb := b.String()
	aliased := func(n int, field string) string {
		var b strings.Builder
		b.WriteString("{ ")
		for i := range n {
			fmt.Fprintf(&b, "a%d: %s ", i, field)
		}
		b.WriteString("}")
		return b.String()
	}
	return []attack{
		// The 20 GiB query: a 100-group page nesting group → versions.
		{"deep nesting through the version-group cycle", nest(8), nil, codes.MaxDepth},
		{"nesting within the depth, multiplied out", nest(2), nil, codes.EstimatedCost},
		{"an alias flood of wide windows (the issue's 300 calls)", aliased(60, `imageGroups(first: 500, orderBy: {field: FAVORITES, direction: ASC}) { nodes { groupId } }`), nil, codes.MaxAliases},
		{"a root-field flood", "{ " + strings.Repeat("__typename ", 25) + "}", nil, codes.MaxRootFields},
		{"a directive flood", "{ imageGroups(first: 1) { nodes { " + strings.Repeat("...G @include(if: true) ", 60) + "} } } fragment G on ImageGroup { name }", nil, codes.MaxDirectives},
		{"a token flood", "{ imageGroups(first: 1) { nodes { " + strings.Repeat("name @skip(if: false) ", 2000) + "} } }", nil, "GRAPHQL_PARSE_FAILED"},
		{"field duplication", "{ imageGroups(first: 1) { nodes { " + strings.Repeat("name ", 4000) + "} } }", nil, "GRAPHQL_VALIDATION_FAILED"},
		{"field duplication through fragments", "{ imageGroups(first: 1) { nodes { ...A } } } fragment A on ImageGroup { " + strings.Repeat("n: name ", 3000) + "}", nil, "GRAPHQL_VALIDATION_FAILED"},
		{"a fragment bomb", bomb, nil, codes.MaxAliases},
		{"wide windows multiplied by nesting", `{ imageGroups(first: 500) { nodes { versions(first: 500) { nodes { group { versions(first: 500) { nodes { imageId } } } } } } } }`, nil, codes.EstimatedCost},
		{"eleven wide windows, each within the limits", aliased(11, `imageGroups(first: 500, filter: {name: "x"}) { nodes { groupId } }`), nil, codes.EstimatedCost},
		{"too many nodes ids", `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": ids}, codes.EstimatedCost},
		{"more _entities representations than the budget", `query($reps: [_Any!]!) { _entities(representations: $reps) { ... on ImageGroup { name } } }`, map[string]any{"reps": reps}, codes.EstimatedCost},
	}
}

// TestAttacksAreRefused sends each class of hostile document and checks
// that it is refused as a request error with its code (no data, the limit
// and the measured value in its extensions), that nothing ran (no upstream
// call), and that the heap did not grow: the test that would have caught
// the query that grew the process past 20 GiB. It measures memory, not
// time.
func TestAttacksAreRefused(t *testing.T) {
	// Not parallel: it reads the process's memory statistics.
	e := newEnv(t)
	for _, a := range attacks(t, e) {
		t.Run(a.name, func(t *testing.T) {
			e.sb.ResetStats()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			resp := e.do(t, a.query, a.vars)
			runtime.GC()
			runtime.ReadMemStats(&after)

			require.NotEmpty(t, resp.Errors, string(resp.raw))
			assert.Equal(t, a.code, resp.Errors[0].Extensions["code"], string(resp.raw))
			assert.Nil(t, resp.Data, "a request error has no data")
			assert.NotContains(t, string(resp.raw), `"data"`)
			if strings.HasPrefix(a.code, "MAX_") || strings.HasPrefix(a.code, "COST_") {
				assert.NotNil(t, resp.Errors[0].Extensions["limit"])
				assert.NotNil(t, resp.Errors[0].Extensions["measured"])
			}
			assert.Zero(t, e.calls(), "no upstream call")
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("allocated %.1f MiB", float64(allocated)/(1<<20))
			assert.Less(t, allocated, uint64(attackAllocBound), "allocated %d MiB answering it", allocated>>20)
			grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			assert.Less(t, grown, int64(8<<20), "the heap grew %d MiB", grown>>20)
		})
	}
}

// attackAllocBound is what answering one attack may allocate.
const attackAllocBound = 16 << 20

// TestUnboundedQueryBreaksTheBound is the control of TestAttacksAreRefused:
// with the limits off, the nesting attack, four levels short of the issue's,
// already allocates more than the bound (each level multiplies the answer by
// the versions of a group), so the bound would have caught the 20 GiB query.
func TestUnboundedQueryBreaksTheBound(t *testing.T) {
	// Not parallel: it reads the process's memory statistics.
	e := newEnv(t, withHandlerConfig(func(c *graph.HandlerConfig) { c.Limits = limits.Limits{} }))
	q := "imageId"
	for range 4 {
		q = "group { versions { nodes { " + q + " } } }"
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp := e.do(t, "{ imageGroups(first: 100) { nodes { versions { nodes { "+q+" } } } } }", nil)
	runtime.ReadMemStats(&after)
	require.Empty(t, resp.Errors)
	assert.Greater(t, after.TotalAlloc-before.TotalAlloc, uint64(attackAllocBound))
}

// TestAttacksAreRequestErrors: for clients that accept
// application/graphql-response+json the refusals are 400s.
func TestAttacksAreRequestErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, a := range attacks(t, e)[:5] {
		resp := e.doWithHeaders(t, a.query, a.vars, http.Header{"Accept": {"application/graphql-response+json"}})
		assert.Equal(t, http.StatusBadRequest, resp.status, a.name)
		assert.Equal(t, a.code, resp.Errors[0].Extensions["code"], a.name)
	}
}

// TestActualUpstreamCallsBounded: a field whose loads would pass
// MAX_UPSTREAM_CALLS at run time fails on its own with
// COST_ACTUAL_TOO_EXPENSIVE, and the rest of the data stays. A `before`
// cursor past the end of the list is estimated at one call and takes two
// (the list is shorter than the cursor says).
func TestActualUpstreamCallsBounded(t *testing.T) {
	t.Parallel()
	budget := limits.DefaultLimits
	budget.MaxUpstreamCalls = 1
	e := newEnv(t, withHandlerConfig(func(c *graph.HandlerConfig) { c.Limits = budget }))
	resp := e.do(t, `query($b: String) { a: imageGroups(last: 5, before: $b) { nodes { groupId } } __typename }`,
		map[string]any{"b": model.EncodeCursor(1000)})
	require.Len(t, resp.Errors, 1, string(resp.raw))
	assert.Equal(t, codes.ActualCost, resp.Errors[0].Extensions["code"])
	assert.Equal(t, []any{"a"}, resp.Errors[0].Path)
	assert.JSONEq(t, `{"a": null, "__typename": "Query"}`, string(resp.Data))
	assert.EqualValues(t, 1, e.calls(), "the second call never left")
	assert.Equal(t, 1, costOf(t, resp).UpstreamCalls)
}

// TestOperationTimeout: past OPERATION_TIMEOUT the upstream calls still
// waiting are given up, their fields fail with UPSTREAM_TIMEOUT, the rest
// of the data stays, and the upstream sees the call abandoned.
func TestOperationTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withSandboxOptions(sandbox.WithLatency(5*time.Second)),
		withHandlerConfig(func(c *graph.HandlerConfig) { c.OperationTimeout = 200 * time.Millisecond }))
	resp := e.do(t, `{ imageGroups(first: 1) { totalCount } __typename }`, nil)
	require.Len(t, resp.Errors, 1, string(resp.raw))
	assert.Equal(t, "UPSTREAM_TIMEOUT", resp.Errors[0].Extensions["code"])
	assert.JSONEq(t, `{"imageGroups": null, "__typename": "Query"}`, string(resp.Data))
	require.Eventually(t, func() bool { return e.sb.Stats().InFlight == 0 }, 4*time.Second, 10*time.Millisecond,
		"the upstream call was given up, not left running")
}

// TestNoSuggestionsWithoutIntrospection: with introspection off, errors do
// not suggest names of fields, arguments, types or enum values.
func TestNoSuggestionsWithoutIntrospection(t *testing.T) {
	t.Parallel()
	queries := []string{
		`{ imageGroups { nodes { nme } } }`,
		`{ imageGroups(frist: 1) { totalCount } }`,
		`query($f: ImageFiltr) { imageGroups(filter: $f) { totalCount } }`,
		`{ imageGroups(orderBy: {field: FAVORITE, direction: DESC}) { totalCount } }`,
		`{ imageGroups { totalCount { x } } }`,
	}
	on := newEnv(t)
	off := newEnv(t, withHandlerConfig(func(c *graph.HandlerConfig) { c.Introspection = false }))
	suggested := 0
	for _, q := range queries {
		resp := on.do(t, q, nil)
		require.NotEmpty(t, resp.Errors, q)
		if strings.Contains(string(resp.raw), "Did you mean") {
			suggested++
		}
		resp = off.do(t, q, nil)
		require.NotEmpty(t, resp.Errors, q)
		assert.Equal(t, "GRAPHQL_VALIDATION_FAILED", resp.Errors[0].Extensions["code"], q)
		assert.NotContains(t, string(resp.raw), "Did you mean", q)
	}
	assert.GreaterOrEqual(t, suggested, 3, "with introspection on, suggestions stay")
}

// gated passes every upstream call to s once released: until then it
// holds them all.
func gated(up *testkit.Upstream) func(upstream.Service) upstream.Service {
	return func(s upstream.Service) upstream.Service {
		up.Answer = s.DescribeCommunityImages
		up.Hold()
		return up
	}
}

// TestInflightBound: through HTTP, an operation that finds no room under
// the in-flight bound in time is a request error: 503 with Retry-After and
// SERVER_OVERLOADED, no data, no upstream call; one that finds room after
// waiting runs; and every operation gives its room back once answered, on
// every path (sharing an execution, with a federated trace, refused by a
// limit, failed).
func TestInflightBound(t *testing.T) {
	t.Parallel()
	for _, wait := range []time.Duration{0, time.Minute} {
		up := &testkit.Upstream{}
		inflight := limits.NewInflight(50, wait)
		e := newEnv(t,
			withService(gated(up)),
			withHandlerConfig(func(c *graph.HandlerConfig) {
				c.Inflight = inflight
				c.QueryCache = documents.New(documents.Options{})
				c.HTTPCaching = graph.HTTPCaching{MaxAge: time.Minute}
				c.Answers = answers.New(answers.Options{Documents: c.QueryCache.(*documents.Cache), Judge: c.HTTPCaching.Judge})
				c.FederatedTracing = true
			}))
		// Costs more than the whole bound: it runs alone.
		heavy := `{ imageGroups(first: 100) { nodes { groupId } } }`
		done := make(chan gqlResponse, 1)
		go func() { done <- e.do(t, heavy, nil) }()
		require.Eventually(t, func() bool { return inflight.Stats().Running == 1 }, 10*time.Second, time.Millisecond)

		if wait == 0 {
			resp := e.do(t, `{ imageGroups(first: 1) { nodes { groupId } } }`, nil)
			assert.Equal(t, http.StatusServiceUnavailable, resp.status, string(resp.raw))
			require.Len(t, resp.Errors, 1, string(resp.raw))
			assert.Equal(t, codes.Overloaded, resp.Errors[0].Extensions["code"])
			assert.EqualValues(t, 1, resp.Errors[0].Extensions["retryAfterSeconds"])
			assert.Nil(t, resp.Data)
			up.Release()
		} else {
			light := make(chan gqlResponse, 1)
			go func() { light <- e.do(t, `{ imageGroups(first: 1) { nodes { groupId } } }`, nil) }()
			require.Eventually(t, func() bool { return inflight.Stats().Waiting == 1 }, 10*time.Second, time.Millisecond)
			up.Release()
			resp := <-light
			assert.Empty(t, resp.Errors, string(resp.raw))
		}
		resp := <-done
		assert.Empty(t, resp.Errors, string(resp.raw))
		assert.EqualValues(t, 1+map[bool]int64{true: 0, false: 1}[wait == 0], e.calls(), "the refused operation made no call")

		// Every path gives its room back: shared, traced, failed,
		// refused by a limit, partial.
		ftv1 := http.Header{graph.FederatedTraceHeader: {"ftv1"}}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() { e.do(t, heavy, nil) })
			wg.Go(func() { e.doWithHeaders(t, heavy, nil, ftv1) })
			wg.Go(func() { e.do(t, `{ imageGroups(first: -1) { totalCount } }`, nil) })
			wg.Go(func() { e.do(t, "{"+strings.Repeat(" a: __typename", 31)+" }", nil) })
			wg.Go(func() { e.do(t, `{ node(id: "nope") { id } __typename }`, nil) })
		}
		wg.Wait()
		assert.Equal(t, limits.InflightStats{Max: 50, Refused: inflight.Stats().Refused}, inflight.Stats(), "wait %s", wait)
	}
}

// TestRateLimitBeforeInflight: a client over its rate limit is refused at
// once (429), not queued for room under the in-flight bound first.
func TestRateLimitBeforeInflight(t *testing.T) {
	t.Parallel()
	up := &testkit.Upstream{}
	inflight := limits.NewInflight(10, time.Minute)
	var admitted atomic.Int32
	e := newEnv(t,
		withService(gated(up)),
		withHandlerConfig(func(c *graph.HandlerConfig) {
			c.Inflight = inflight
			c.Admit = func(context.Context, int) error {
				if admitted.Add(1) > 1 {
					return &access.RateLimitedError{RetryAfter: 3 * time.Second, Points: 1, Burst: 10}
				}
				return nil
			}
		}))
	done := make(chan gqlResponse, 1)
	go func() { done <- e.do(t, `{ imageGroups(first: 50) { nodes { groupId } } }`, nil) }()
	require.Eventually(t, func() bool { return inflight.Stats().Running == 1 }, 10*time.Second, time.Millisecond)

	resp := e.do(t, `{ imageGroups(first: 1) { nodes { groupId } } }`, nil)
	assert.Equal(t, http.StatusTooManyRequests, resp.status, string(resp.raw))
	require.Len(t, resp.Errors, 1, string(resp.raw))
	assert.Equal(t, "RATE_LIMITED", resp.Errors[0].Extensions["code"])
	assert.Zero(t, inflight.Stats().Waiting)
	up.Release()
	assert.Empty(t, (<-done).Errors)
}

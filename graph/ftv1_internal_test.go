package graph

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/apollofederatedtracingv1"
	"github.com/99designs/gqlgen/graphql/handler/apollofederatedtracingv1/generated"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

// countingTracer is gqlgen's federated tracer, counting the fields it
// intercepts.
type countingTracer struct {
	*apollofederatedtracingv1.Tracer
	fields atomic.Int64
}

func (c *countingTracer) InterceptField(ctx context.Context, next graphql.Resolver) (any, error) {
	c.fields.Add(1)
	return c.Tracer.InterceptField(ctx, next)
}

func newFTV1Server(t *testing.T, secret string) (*httptest.Server, *countingTracer) {
	t.Helper()
	sb, err := sandbox.New()
	require.NoError(t, err)
	up := httptest.NewServer(sb)
	t.Cleanup(up.Close)
	client, err := upstream.NewClient(upstream.WithBaseURL(up.URL),
		upstream.WithCredentials(sandbox.DefaultPublicKey, sandbox.DefaultPrivateKey))
	require.NoError(t, err)
	tracer := &countingTracer{Tracer: &apollofederatedtracingv1.Tracer{}}
	api := httptest.NewServer(NewHandler(HandlerConfig{
		Service: client, FederatedTracing: true, FederationSecret: secret, ftv1: tracer,
	}))
	t.Cleanup(api.Close)
	return api, tracer
}

const ftv1Query = `{ imageGroups(first: 3) { totalCount nodes { groupId name latestVersion { imageId } } } }`

// postFTV1 posts ftv1Query with headers and returns its extensions.
func postFTV1(t *testing.T, url string, headers map[string]string) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": ftv1Query})
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		Data       map[string]any `json:"data"`
		Errors     []any          `json:"errors"`
		Extensions map[string]any `json:"extensions"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Empty(t, out.Errors)
	require.NotNil(t, out.Data["imageGroups"])
	return out.Extensions
}

// TestFederatedTraceOnlyForThoseWhoAsk: a router that sends
// Apollo-Federation-Include-Trace: ftv1 gets the per-field trace gqlgen's
// tracer builds; a request that does not ask gets none and never reaches
// the tracer's per-field path (its plain fields are read inline, as
// without tracing).
func TestFederatedTraceOnlyForThoseWhoAsk(t *testing.T) {
	t.Parallel()
	api, tracer := newFTV1Server(t, "")

	ext := postFTV1(t, api.URL, nil)
	assert.NotContains(t, ext, "ftv1")
	assert.Zero(t, tracer.fields.Load(), "a request that does not ask costs the tracer nothing")

	ext = postFTV1(t, api.URL, map[string]string{FederatedTraceHeader: "ftv1"})
	require.Contains(t, ext, "ftv1")
	raw, err := base64.StdEncoding.DecodeString(ext["ftv1"].(string))
	require.NoError(t, err)
	var tr generated.Trace
	require.NoError(t, proto.Unmarshal(raw, &tr))
	assert.Positive(t, tr.DurationNs)
	require.NotNil(t, tr.Root)
	root := childNamed(tr.Root, "imageGroups")
	require.NotNil(t, root, "the trace has the root field")
	assert.Equal(t, "Query", root.ParentType)
	nodes := childNamed(root, "nodes")
	require.NotNil(t, nodes)
	require.Len(t, nodes.Child, 3, "one node per list element")
	first := nodes.Child[0]
	assert.NotNil(t, childNamed(first, "groupId"), "plain fields are in the trace")
	assert.NotNil(t, childNamed(first, "latestVersion"))
	// Every field the tracer saw is a node of the trace: imageGroups,
	// totalCount, nodes, then groupId, name, latestVersion (and its imageId
	// when it is not null) of each of the 3 groups.
	assert.EqualValues(t, fieldNodes(tr.Root), tracer.fields.Load())
	assert.GreaterOrEqual(t, tracer.fields.Load(), int64(3+3*3))

	before := tracer.fields.Load()
	ext = postFTV1(t, api.URL, map[string]string{FederatedTraceHeader: "something else"})
	assert.NotContains(t, ext, "ftv1")
	assert.Equal(t, before, tracer.fields.Load())
}

// TestFederatedTraceNeedsTheSecret: with a federation secret, only the
// router that carries it gets a trace.
func TestFederatedTraceNeedsTheSecret(t *testing.T) {
	t.Parallel()
	api, tracer := newFTV1Server(t, "s3cret")
	ext := postFTV1(t, api.URL, map[string]string{FederatedTraceHeader: "ftv1"})
	assert.NotContains(t, ext, "ftv1")
	ext = postFTV1(t, api.URL, map[string]string{FederatedTraceHeader: "ftv1", FederationSecretHeader: "wrong"})
	assert.NotContains(t, ext, "ftv1")
	assert.Zero(t, tracer.fields.Load())
	ext = postFTV1(t, api.URL, map[string]string{FederatedTraceHeader: "ftv1", FederationSecretHeader: "s3cret"})
	assert.Contains(t, ext, "ftv1")
}

func childNamed(n *generated.Trace_Node, name string) *generated.Trace_Node {
	for _, c := range n.Child {
		if c.GetResponseName() == name {
			return c
		}
	}
	return nil
}

// fieldNodes counts the nodes of a trace that are fields (list elements
// are nodes with an index instead of a response name).
func fieldNodes(n *generated.Trace_Node) int {
	count := 0
	for _, c := range n.Child {
		if c.GetResponseName() != "" {
			count++
		}
		count += fieldNodes(c)
	}
	return count
}

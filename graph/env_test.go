package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/graph"
	"github.com/compshare/imagegraph/internal/limits"
	"github.com/compshare/imagegraph/internal/testkit"
	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

// env is the API over the real client over a sandbox on loopback: what the
// server runs in sandbox mode, with the sandbox in reach for counting calls.
type env struct {
	sb     *sandbox.Server
	client *upstream.Client
	api    *httptest.Server
	logs   *testkit.LogBuffer
}

type envOption func(*envConfig)

type envConfig struct {
	sandboxOpts []sandbox.Option
	clientOpts  []upstream.Option
	service     func(upstream.Service) upstream.Service
	handler     func(*graph.HandlerConfig)
}

// withHandlerConfig edits the handler's configuration, after the edits of
// the options before it.
func withHandlerConfig(fn func(*graph.HandlerConfig)) envOption {
	return func(c *envConfig) {
		prev := c.handler
		c.handler = func(h *graph.HandlerConfig) {
			if prev != nil {
				prev(h)
			}
			fn(h)
		}
	}
}

func withClientOptions(opts ...upstream.Option) envOption {
	return func(c *envConfig) { c.clientOpts = append(c.clientOpts, opts...) }
}

func withSandboxOptions(opts ...sandbox.Option) envOption {
	return func(c *envConfig) { c.sandboxOpts = append(c.sandboxOpts, opts...) }
}

func withService(wrap func(upstream.Service) upstream.Service) envOption {
	return func(c *envConfig) { c.service = wrap }
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	var cfg envConfig
	for _, o := range opts {
		o(&cfg)
	}
	sb, err := sandbox.New(cfg.sandboxOpts...)
	require.NoError(t, err)
	up := httptest.NewServer(sb)
	t.Cleanup(up.Close)
	clientOpts := append([]upstream.Option{
		upstream.WithBaseURL(up.URL),
		upstream.WithCredentials(sandbox.DefaultPublicKey, sandbox.DefaultPrivateKey),
		upstream.WithRateLimit(10000, 10000),
		upstream.WithRetryPolicy(upstream.RetryPolicy{MaxRetries: 2, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}),
	}, cfg.clientOpts...)
	client, err := upstream.NewClient(clientOpts...)
	require.NoError(t, err)
	var svc upstream.Service = client
	if cfg.service != nil {
		svc = cfg.service(client)
	}
	logs := &testkit.LogBuffer{}
	// The server's defaults: every test runs within the limits it ships with.
	hc := graph.HandlerConfig{
		Service:          limits.Meter(svc),
		Log:              slog.New(slog.NewJSONHandler(logs, nil)),
		Introspection:    true,
		Limits:           limits.DefaultLimits,
		ParserTokenLimit: limits.DefaultTokens,
		OperationTimeout: limits.DefaultOperationTimeout,
	}
	if cfg.handler != nil {
		cfg.handler(&hc)
	}
	api := httptest.NewServer(graph.NewHandler(hc))
	t.Cleanup(api.Close)
	return &env{sb: sb, client: client, api: api, logs: logs}
}

// gqlResponse is a GraphQL response as a client sees it.
type gqlResponse struct {
	Data       json.RawMessage `json:"data"`
	Errors     []gqlError      `json:"errors"`
	Extensions map[string]any  `json:"extensions"`
	raw        []byte
	status     int
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// do posts one operation and decodes the answer.
func (e *env) do(t *testing.T, query string, vars map[string]any) gqlResponse {
	t.Helper()
	return e.doWithHeaders(t, query, vars, nil)
}

// doWithHeaders posts one operation with extra headers and decodes the answer.
func (e *env) doWithHeaders(t *testing.T, query string, vars map[string]any, headers http.Header) gqlResponse {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, e.api.URL, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range headers {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out gqlResponse
	require.NoError(t, json.Unmarshal(raw, &out), string(raw))
	out.raw = raw
	out.status = resp.StatusCode
	return out
}

// ok posts an operation that must succeed and decodes its data into dst.
func (e *env) ok(t *testing.T, query string, vars map[string]any, dst any) {
	t.Helper()
	resp := e.do(t, query, vars)
	require.Empty(t, resp.Errors, string(resp.raw))
	require.NoError(t, json.Unmarshal(resp.Data, dst))
}

// calls returns the upstream calls the sandbox has seen since the last reset.
func (e *env) calls() int64 { return e.sb.Stats().Calls }

// oracle asks the sandbox directly, bypassing client and API.
func (e *env) oracle(t *testing.T, req *upstream.DescribeCommunityImagesRequest) *upstream.DescribeCommunityImagesResponse {
	t.Helper()
	cp := *req
	if cp.Region == "" {
		cp.Region = e.client.Region()
	}
	resp, err := e.sb.Describe(&cp)
	require.NoError(t, err)
	return resp
}

// allGroups returns the sandbox's whole list for req's filter and order.
func (e *env) allGroups(t *testing.T, req upstream.DescribeCommunityImagesRequest) []upstream.ImageGroup {
	t.Helper()
	var out []upstream.ImageGroup
	for off := 0; ; off += upstream.MaxLimit {
		req.Offset, req.Limit = upstream.Int(off), upstream.Int(upstream.MaxLimit)
		resp := e.oracle(t, &req)
		out = append(out, resp.CompshareImageGroup...)
		if off+upstream.MaxLimit >= resp.TotalCount {
			return out
		}
	}
}

type graphService = upstream.Service

// rewriting answers with s's answers, each edited (a deep copy of it) by
// fn, to feed the API data the sandbox would never send.
func rewriting(s upstream.Service, fn func(*upstream.DescribeCommunityImagesResponse)) upstream.Service {
	return &testkit.Upstream{Answer: func(ctx context.Context, req *upstream.DescribeCommunityImagesRequest) (*upstream.DescribeCommunityImagesResponse, error) {
		resp, err := s.DescribeCommunityImages(ctx, req)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(resp)
		if err != nil {
			return nil, err
		}
		var cp upstream.DescribeCommunityImagesResponse
		if err := json.Unmarshal(b, &cp); err != nil {
			return nil, err
		}
		fn(&cp)
		return &cp, nil
	}}
}

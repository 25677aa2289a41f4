package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

// env is a getenv over a map.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// printRequest runs -print-request and returns the body it prints.
func printRequest(t *testing.T, getenv func(string) string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"-print-request"}, getenv, &stdout, &stderr))
	assert.Empty(t, stderr.String())
	body := strings.TrimSpace(stdout.String())
	require.NotEmpty(t, body)
	return body
}

// call POSTs body to base the way the client does and decodes the answer.
func call(t *testing.T, base, body string) *upstream.DescribeCommunityImagesResponse {
	t.Helper()
	resp, err := http.Post(base+"/?Action="+upstream.ActionDescribeCommunityImages, "application/x-www-form-urlencoded", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	out := new(upstream.DescribeCommunityImagesResponse)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	return out
}

func getStats(t *testing.T, base string) stats {
	t.Helper()
	resp, err := http.Get(base + "/stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var st stats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

func TestPrintedRequestIsServed(t *testing.T) {
	t.Parallel()
	body := printRequest(t, env(nil))
	form, err := url.ParseQuery(body)
	require.NoError(t, err)
	params := upstream.Params{}
	for k, vs := range form {
		require.Len(t, vs, 1, k)
		params[k] = vs[0]
	}
	sig := params["Signature"]
	delete(params, "Signature")
	assert.Equal(t, upstream.Params{
		"Action": upstream.ActionDescribeCommunityImages, "Region": upstream.DefaultRegion,
		"Offset": "0", "Limit": "20", "PublicKey": sandbox.DefaultPublicKey,
	}, params)
	assert.Equal(t, upstream.Sign(params, sandbox.DefaultPrivateKey), sig)

	sb, err := sandbox.New()
	require.NoError(t, err)
	ts := httptest.NewServer(newMux(sb))
	defer ts.Close()

	assert.Equal(t, stats{}, getStats(t, ts.URL))
	resp := call(t, ts.URL, body)
	assert.Equal(t, upstream.RetCode(0), resp.RetCode, resp.Message)
	assert.Len(t, resp.CompshareImageGroup, 20)
	assert.Equal(t, stats{Calls: 1, MaxInFlight: 1}, getStats(t, ts.URL))

	r, err := http.Post(ts.URL+"/stats/reset", "", nil)
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusNoContent, r.StatusCode)
	assert.Equal(t, stats{}, getStats(t, ts.URL))

	r, err = http.Get(ts.URL + "/")
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, r.StatusCode)
}

func TestKeysFromEnvironment(t *testing.T) {
	t.Parallel()
	body := printRequest(t, env(map[string]string{"SANDBOX_PUBLIC_KEY": "pub-test", "SANDBOX_PRIVATE_KEY": "priv-test"}))

	custom, err := sandbox.New(sandbox.WithKeys("pub-test", "priv-test"))
	require.NoError(t, err)
	ts := httptest.NewServer(newMux(custom))
	defer ts.Close()
	resp := call(t, ts.URL, body)
	assert.Equal(t, upstream.RetCode(0), resp.RetCode, resp.Message)
	assert.Len(t, resp.CompshareImageGroup, 20)

	def, err := sandbox.New()
	require.NoError(t, err)
	ts2 := httptest.NewServer(newMux(def))
	defer ts2.Close()
	resp = call(t, ts2.URL, body)
	assert.Equal(t, upstream.RetCode(upstream.RetCodeUnknownPublicKey), resp.RetCode)

	for _, m := range []map[string]string{{"SANDBOX_PUBLIC_KEY": "p"}, {"SANDBOX_PRIVATE_KEY": "p"}} {
		err := run(t.Context(), []string{"-print-request"}, env(m), io.Discard, io.Discard)
		assert.ErrorContains(t, err, "set both SANDBOX_PUBLIC_KEY and SANDBOX_PRIVATE_KEY")
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"-addr", "127.0.0.1:0", "-latency", "1ms"}, env(nil), io.Discard, pw)
		pw.Close()
		done <- err
	}()
	lines := bufio.NewReader(pr)
	line, err := lines.ReadString('\n')
	require.NoError(t, err)
	m := regexp.MustCompile(`^sandbox: listening on (http://127\.0\.0\.1:[0-9]+) \(latency 1ms\)\n$`).FindStringSubmatch(line)
	require.NotNil(t, m, line)
	base := m[1]

	resp := call(t, base, printRequest(t, env(nil)))
	assert.Equal(t, upstream.RetCode(0), resp.RetCode, resp.Message)
	assert.Len(t, resp.CompshareImageGroup, 20)
	assert.Equal(t, int64(1), getStats(t, base).Calls)

	cancel()
	rest, _ := io.ReadAll(lines)
	require.NoError(t, <-done)
	assert.Empty(t, string(rest), "one line at start, nothing more")
	_, err = http.Get(base + "/stats")
	assert.Error(t, err, "stopped listening")
}

func TestRunRefusesBadArguments(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"extra"}, {"-latency", "soon"}, {"-addr", "127.0.0.1:-1"}} {
		assert.Error(t, run(t.Context(), args, env(nil), io.Discard, io.Discard), "%q", args)
	}
}

// postChange posts a change body to url and returns the status.
func postChange(t *testing.T, url, body string) int {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestChangeRoutes(t *testing.T) {
	t.Parallel()
	sb, err := sandbox.New()
	require.NoError(t, err)
	ts := httptest.NewServer(newMux(sb))
	defer ts.Close()
	first := sb.Groups()[0]

	assert.Equal(t, http.StatusOK, postChange(t, ts.URL+"/groups/"+first.GroupId, `{"favoritesCount":123456}`))
	assert.Equal(t, http.StatusOK, postChange(t, ts.URL+"/versions/"+first.Data[0].CompShareImageId, `{"price":9.5}`))
	assert.Equal(t, http.StatusNotFound, postChange(t, ts.URL+"/groups/group-nosuchth", `{"favoritesCount":1}`))
	assert.Equal(t, http.StatusBadRequest, postChange(t, ts.URL+"/versions/"+first.Data[0].CompShareImageId, `{"price":"free"}`))

	resp := call(t, ts.URL, printRequest(t, env(nil)))
	require.Equal(t, upstream.RetCode(0), resp.RetCode, resp.Message)
	assert.Equal(t, first.GroupId, resp.CompshareImageGroup[0].GroupId)
	assert.Equal(t, 123456, resp.CompshareImageGroup[0].FavoritesCount)
	assert.Equal(t, 9.5, resp.CompshareImageGroup[0].Data[0].Price)
	assert.Equal(t, int64(1), getStats(t, ts.URL).Calls, "changes are not upstream calls")
}

func TestRunTicks(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"-addr", "127.0.0.1:0", "-tick", "10ms"}, env(nil), io.Discard, pw)
		pw.Close()
		done <- err
	}()
	lines := bufio.NewReader(pr)
	line, err := lines.ReadString('\n')
	require.NoError(t, err)
	m := regexp.MustCompile(`^sandbox: listening on (http://127\.0\.0\.1:[0-9]+) \(latency 0s, tick 10ms\)\n$`).FindStringSubmatch(line)
	require.NotNil(t, m, line)
	base, body := m[1], printRequest(t, env(nil))

	// The first tick raises the first group's favourites, which only grow.
	sb, err := sandbox.New()
	require.NoError(t, err)
	before := sb.Groups()[0].FavoritesCount
	require.Eventually(t, func() bool {
		return call(t, base, body).CompshareImageGroup[0].FavoritesCount > before
	}, 10*time.Second, 5*time.Millisecond)

	cancel()
	_, _ = io.Copy(io.Discard, lines)
	require.NoError(t, <-done)
}

func TestRunRefusesANegativeTick(t *testing.T) {
	t.Parallel()
	err := run(t.Context(), []string{"-tick", "-1s"}, env(nil), io.Discard, io.Discard)
	assert.ErrorContains(t, err, "-tick must not be negative")
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

// faultServer serves newMux over a fresh sandbox.
func faultServer(t *testing.T) string {
	t.Helper()
	sb, err := sandbox.New()
	require.NoError(t, err)
	ts := httptest.NewServer(newMux(sb))
	t.Cleanup(ts.Close)
	return ts.URL
}

// setFaults sends method /faults with body and returns the status and the
// error message of a refusal.
func setFaults(t *testing.T, base, method, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+"/faults", strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode == http.StatusNoContent {
		assert.Empty(t, raw)
		return resp.StatusCode, ""
	}
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var e struct{ Error string }
	require.NoError(t, json.Unmarshal(raw, &e), string(raw))
	return resp.StatusCode, e.Error
}

// wireStatus posts the reference request and returns the HTTP status and,
// for a 200, whether its body decodes.
func wireStatus(t *testing.T, base, body string) (status int, decodes bool) {
	t.Helper()
	resp, err := http.Post(base+"/?Action="+upstream.ActionDescribeCommunityImages, "application/x-www-form-urlencoded", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out upstream.DescribeCommunityImagesResponse
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(&out) == nil
}

func TestFaultRoutesInjectAShareOfCalls(t *testing.T) {
	t.Parallel()
	base, body := faultServer(t), printRequest(t, env(nil))
	cases := []struct {
		kind  string
		check func(t *testing.T, status int, decodes bool)
	}{
		{kind: "503", check: func(t *testing.T, status int, _ bool) { assert.Equal(t, http.StatusServiceUnavailable, status) }},
		{kind: "429", check: func(t *testing.T, status int, _ bool) { assert.Equal(t, http.StatusTooManyRequests, status) }},
		{kind: "malformed", check: func(t *testing.T, status int, decodes bool) {
			assert.Equal(t, http.StatusOK, status)
			assert.False(t, decodes, "the body is not JSON")
		}},
	}
	for _, tc := range cases {
		status, msg := setFaults(t, base, http.MethodPost, `{"kind":"`+tc.kind+`","rate":0.25}`)
		require.Equal(t, http.StatusNoContent, status, msg)
		for n := 1; n <= 8; n++ {
			st, decodes := wireStatus(t, base, body)
			if n%4 == 0 {
				tc.check(t, st, decodes)
			} else {
				assert.Equal(t, http.StatusOK, st, "%s: call %d is served", tc.kind, n)
				assert.True(t, decodes)
			}
		}
	}
	status, _ := setFaults(t, base, http.MethodDelete, "")
	require.Equal(t, http.StatusNoContent, status)
	for range 4 {
		st, decodes := wireStatus(t, base, body)
		assert.Equal(t, http.StatusOK, st)
		assert.True(t, decodes)
	}
}

func TestFaultRoutesOutage(t *testing.T) {
	t.Parallel()
	base, body := faultServer(t), printRequest(t, env(nil))
	status, msg := setFaults(t, base, http.MethodPost, `{"outage":true}`)
	require.Equal(t, http.StatusNoContent, status, msg)
	for range 5 {
		st, _ := wireStatus(t, base, body)
		assert.Equal(t, http.StatusServiceUnavailable, st)
	}
	// A rate of 1 is an outage too; each POST replaces the fault before it.
	status, msg = setFaults(t, base, http.MethodPost, `{"kind":"malformed","rate":1}`)
	require.Equal(t, http.StatusNoContent, status, msg)
	for range 3 {
		st, decodes := wireStatus(t, base, body)
		assert.Equal(t, http.StatusOK, st)
		assert.False(t, decodes)
	}
	status, _ = setFaults(t, base, http.MethodDelete, "")
	require.Equal(t, http.StatusNoContent, status)
	st, decodes := wireStatus(t, base, body)
	assert.Equal(t, http.StatusOK, st)
	assert.True(t, decodes)
}

func TestFaultRoutesTimeoutHangsUntilTheClientGivesUp(t *testing.T) {
	t.Parallel()
	base, body := faultServer(t), printRequest(t, env(nil))
	status, msg := setFaults(t, base, http.MethodPost, `{"outage":true,"kind":"timeout"}`)
	require.Equal(t, http.StatusNoContent, status, msg)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_, err = http.DefaultClient.Do(req)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
}

func TestFaultRoutesRefuseBadBodies(t *testing.T) {
	t.Parallel()
	base, body := faultServer(t), printRequest(t, env(nil))
	for _, tc := range []struct{ body, want string }{
		{``, "one JSON object"},
		{`[]`, "one JSON object"},
		{`{"kind":"503","rate":0.1,"extra":1}`, "one JSON object"},
		{`{"kind":"503","rate":0.1} {}`, "more than one JSON value"},
		{`{"kind":"418","rate":0.1}`, `kind must be one of`},
		{`{"kind":"503"}`, "rate is missing"},
		{`{"kind":"503","rate":0}`, "above 0 and at most 1"},
		{`{"kind":"503","rate":1.5}`, "above 0 and at most 1"},
		{`{"kind":"503","rate":-0.1}`, "above 0 and at most 1"},
		{`{"outage":true,"rate":0.5}`, "leave rate out"},
		{`{"rate":0.5}`, `kind must be one of`},
	} {
		status, msg := setFaults(t, base, http.MethodPost, tc.body)
		assert.Equal(t, http.StatusBadRequest, status, tc.body)
		assert.Contains(t, msg, tc.want, tc.body)
	}
	status, _ := setFaults(t, base, http.MethodPost, `{"kind":"`+strings.Repeat("x", 5000)+`"}`)
	assert.Equal(t, http.StatusRequestEntityTooLarge, status)
	st, decodes := wireStatus(t, base, body)
	assert.Equal(t, http.StatusOK, st, "a refused body changes nothing")
	assert.True(t, decodes)
}

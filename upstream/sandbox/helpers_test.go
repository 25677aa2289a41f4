package sandbox

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/upstream"
)

const region = "cn-wlcb"

// testServer starts s behind a real HTTP server for the test.
func testServer(t *testing.T, opts ...Option) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(opts...)
	require.NoError(t, err)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs
}

// params returns the flattened DescribeCommunityImages parameters for in,
// with Action and Region added unless in sets them (to "" to drop them).
func params(t *testing.T, in map[string]any) upstream.Params {
	t.Helper()
	all := map[string]any{"Action": upstream.ActionDescribeCommunityImages, "Region": region}
	for k, v := range in {
		all[k] = v
	}
	p, err := upstream.Flatten(all)
	require.NoError(t, err)
	return p
}

// post sends body to the sandbox as the real client does and returns the
// response with its body read.
func post(t *testing.T, hs *httptest.Server, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(hs.URL+"/?Action="+upstream.ActionDescribeCommunityImages,
		"application/x-www-form-urlencoded", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

// call signs p with the default keys, posts it and decodes the answer,
// which must be HTTP 200 JSON.
func call(t *testing.T, hs *httptest.Server, p upstream.Params) *upstream.DescribeCommunityImagesResponse {
	t.Helper()
	resp, b := post(t, hs, upstream.SignedForm(p, DefaultPublicKey, DefaultPrivateKey))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var out upstream.DescribeCommunityImagesResponse
	require.NoError(t, json.Unmarshal(b, &out), string(b))
	out.RequestID = resp.Header.Get(RequestIDHeader)
	return &out
}

// callOK is call for a request that must succeed.
func callOK(t *testing.T, hs *httptest.Server, in map[string]any) *upstream.DescribeCommunityImagesResponse {
	t.Helper()
	out := call(t, hs, params(t, in))
	require.Equal(t, upstream.RetCode(0), out.RetCode, out.Message)
	require.Equal(t, "DescribeCommunityImagesResponse", out.Action)
	return out
}

// callAll pages through every group matching in, 100 at a time, and
// checks that each page reports the same counts.
func callAll(t *testing.T, hs *httptest.Server, in map[string]any) ([]upstream.ImageGroup, int, int) {
	t.Helper()
	var all []upstream.ImageGroup
	total, avail := -1, -1
	for offset := 0; ; offset += upstream.MaxLimit {
		page := map[string]any{"Offset": offset, "Limit": upstream.MaxLimit}
		for k, v := range in {
			page[k] = v
		}
		out := callOK(t, hs, page)
		if total >= 0 {
			require.Equal(t, total, out.TotalCount)
			require.Equal(t, avail, out.AvailableTotalCount)
		}
		total, avail = out.TotalCount, out.AvailableTotalCount
		all = append(all, out.CompshareImageGroup...)
		if len(out.CompshareImageGroup) < upstream.MaxLimit {
			break
		}
	}
	require.Len(t, all, total)
	return all, total, avail
}

func groupIDs(groups []upstream.ImageGroup) []string {
	ids := make([]string, len(groups))
	for i, g := range groups {
		ids[i] = g.GroupId
	}
	return ids
}

func versionIDs(g upstream.ImageGroup) []string {
	ids := make([]string, len(g.Data))
	for i, img := range g.Data {
		ids[i] = img.CompShareImageId
	}
	return ids
}

func findGroup(t *testing.T, groups []upstream.ImageGroup, id string) upstream.ImageGroup {
	t.Helper()
	for _, g := range groups {
		if g.GroupId == id {
			return g
		}
	}
	require.Failf(t, "group not found", "%s", id)
	return upstream.ImageGroup{}
}

// groupOf returns the group holding the version id.
func groupOf(t *testing.T, groups []upstream.ImageGroup, id string) (upstream.ImageGroup, upstream.Image) {
	t.Helper()
	for _, g := range groups {
		for _, img := range g.Data {
			if img.CompShareImageId == id {
				return g, img
			}
		}
	}
	require.Failf(t, "version not found", "%s", id)
	return upstream.ImageGroup{}, upstream.Image{}
}

package sandbox

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/upstream"
)

// adminServers serves s's wire protocol and its Admin endpoints.
func adminServers(t *testing.T, opts ...Option) (s *Server, wire, admin *httptest.Server) {
	t.Helper()
	s, wire = testServer(t, opts...)
	admin = httptest.NewServer(s.Admin())
	t.Cleanup(admin.Close)
	return s, wire, admin
}

// postJSON posts body to url and returns the status and the body read.
func postJSON(t *testing.T, url, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

// errorMessage decodes a change endpoint's error answer.
func errorMessage(t *testing.T, resp *http.Response, body []byte) string {
	t.Helper()
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var e struct{ Error string }
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	require.NotEmpty(t, e.Error, string(body))
	return e.Error
}

func TestAdminChangesAVersion(t *testing.T) {
	t.Parallel()
	s, wire, admin := adminServers(t, withClock(testNow))
	g0, v0 := groupOf(t, s.Groups(), EdgeReviewingImageID)

	resp, body := postJSON(t, admin.URL+"/sandbox/versions/"+EdgeReviewingImageID, `{"status":"Available","price":1.5,"versionDesc":"上线"}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	var got upstream.Image
	require.NoError(t, json.Unmarshal(body, &got))
	want := v0
	want.Status, want.Price, want.VersionDesc = upstream.ImageStatusAvailable, 1.5, "上线"
	want.PubTime, want.UpdateTime, want.GroupId = testNow.Unix(), testNow.Unix(), g0.GroupId
	assert.Equal(t, want, got)
	assert.Contains(t, string(body), `"CompShareImageId":"`+EdgeReviewingImageID+`"`, "the upstream's spelling")

	out := callOK(t, wire, map[string]any{"CompShareImageId": EdgeReviewingImageID})
	require.Len(t, out.CompshareImageGroup, 1)
	want.GroupId = ""
	assert.Equal(t, []upstream.Image{want}, out.CompshareImageGroup[0].Data, "the next upstream call sees it")

	// The wire's own field names work too: JSON names match in any case.
	resp, body = postJSON(t, admin.URL+"/sandbox/versions/"+EdgeReviewingImageID, `{"Status":"offline","Price":null}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.NoError(t, json.Unmarshal(body, &got))
	assert.Equal(t, upstream.ImageStatusOffline, got.Status)
	assert.Equal(t, 1.5, got.Price, "null leaves a field alone")
}

func TestAdminChangesAGroup(t *testing.T) {
	t.Parallel()
	s, wire, admin := adminServers(t)
	g0 := findGroup(t, s.Groups(), EdgeUnsortedGroupID)

	resp, body := postJSON(t, admin.URL+"/sandbox/groups/"+EdgeUnsortedGroupID, `{"favoritesCount":4242}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var got upstream.ImageGroup
	require.NoError(t, json.Unmarshal(body, &got))
	want := g0
	want.FavoritesCount = 4242
	assert.Equal(t, want, got, "the whole group")

	out := callOK(t, wire, map[string]any{"GroupId": EdgeUnsortedGroupID})
	assert.Equal(t, []upstream.ImageGroup{want}, out.CompshareImageGroup)
}

func TestAdminChangeRefusals(t *testing.T) {
	t.Parallel()
	s, _, admin := adminServers(t)
	before := s.Groups()
	version := admin.URL + "/sandbox/versions/" + EdgeReviewingImageID
	group := admin.URL + "/sandbox/groups/" + EdgeUnsortedGroupID
	huge := strings.Repeat("z", 3000)

	cases := []struct {
		name   string
		url    string
		body   string
		status int
		msg    string
	}{
		{"unknown version", admin.URL + "/sandbox/versions/compshareImage-nosuchthing", `{"status":"Available"}`, http.StatusNotFound, `no version has CompShareImageId "compshareImage-nosuchthing"`},
		{"unknown group", admin.URL + "/sandbox/groups/group-nosuchth", `{"favoritesCount":1}`, http.StatusNotFound, `no group has GroupId "group-nosuchth"`},
		{"empty body", version, ``, http.StatusBadRequest, "the body is empty: want a JSON object of status, price, name, versionDesc"},
		{"empty object", version, `{}`, http.StatusBadRequest, "sets no field"},
		{"null", version, `null`, http.StatusBadRequest, "sets no field"},
		{"array", version, `[{"status":"Available"}]`, http.StatusBadRequest, "the body is a JSON array: want a JSON object of status, price, name, versionDesc"},
		{"not JSON", version, `status=Available`, http.StatusBadRequest, "the body is not valid JSON (invalid character 's' looking for beginning of value at byte 1)"},
		{"cut short", version, `{"status":"Avail`, http.StatusBadRequest, "the body is not valid JSON (it ends early)"},
		{"two values", version, `{"status":"Available"} {"price":1}`, http.StatusBadRequest, "the body holds more than one JSON value"},
		{"trailing garbage", version, `{"status":"Available"} x`, http.StatusBadRequest, "the body holds more than one JSON value"},
		{"unknown field", version, `{"state":"Available"}`, http.StatusBadRequest, `unknown field "state": want a JSON object of status, price, name, versionDesc`},
		{"huge unknown field", version, `{"` + huge + `":1}`, http.StatusBadRequest, `unknown field "zzzz`},
		{"status a number", version, `{"status":1}`, http.StatusBadRequest, "status must be a string, got a JSON number"},
		{"price a string", version, `{"price":"1.5"}`, http.StatusBadRequest, "price must be a number, got a JSON string"},
		{"bad status", version, `{"status":"Deleted"}`, http.StatusBadRequest, `status "Deleted" is not one of Available, Reviewing, Offline`},
		{"price out of range", version, `{"price":1e999}`, http.StatusBadRequest, "price is out of range, got a JSON number 1e999"},
		{"negative price", version, `{"price":-2}`, http.StatusBadRequest, "price must be a finite number not below 0, got -2"},
		{"blank name", version, `{"name":""}`, http.StatusBadRequest, "name must not be blank"},
		{"group field on a version", version, `{"favoritesCount":1}`, http.StatusBadRequest, `unknown field "favoritesCount"`},
		{"fractional favourites", group, `{"favoritesCount":1.5}`, http.StatusBadRequest, "favoritesCount must be an integer, got a JSON number 1.5"},
		{"negative favourites", group, `{"favoritesCount":-1}`, http.StatusBadRequest, "favoritesCount must not be negative, got -1"},
		{"empty group change", group, `{}`, http.StatusBadRequest, "set at least one of favoritesCount, imageUseTime"},
		{"too large", version, `{"name":"` + strings.Repeat("n", MaxChangeBodyBytes) + `"}`, http.StatusRequestEntityTooLarge, "the body is larger than 4096 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body := postJSON(t, tc.url, tc.body)
			require.Equal(t, tc.status, resp.StatusCode, string(body))
			assert.Contains(t, errorMessage(t, resp, body), tc.msg)
			assert.Less(t, len(body), 400, "the answer does not echo the body")
		})
	}
	t.Run("GET", func(t *testing.T) {
		t.Parallel()
		resp, err := http.Get(version)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	})
	t.Cleanup(func() { assert.Equal(t, before, s.Groups(), "nothing changed") })
}

func TestChangeHandlerAtTheRoot(t *testing.T) {
	t.Parallel()
	s, err := New()
	require.NoError(t, err)
	hs := httptest.NewServer(s.ChangeHandler())
	defer hs.Close()

	resp, body := postJSON(t, hs.URL+"/versions/"+EdgeReviewingImageID, `{"status":"Available"}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	_, img := version(t, s, EdgeReviewingImageID)
	assert.Equal(t, upstream.ImageStatusAvailable, img.Status)
	resp, body = postJSON(t, hs.URL+"/groups/"+EdgeUnsortedGroupID, `{"imageUseTime":3}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	resp, _ = postJSON(t, hs.URL+"/sandbox/versions/"+EdgeReviewingImageID, `{"status":"Available"}`)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "no /sandbox prefix at the root")
}

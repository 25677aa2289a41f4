package sandbox

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/upstream"
)

func TestNewOptions(t *testing.T) {
	t.Parallel()
	_, err := New(WithKeys("", "x"))
	assert.Error(t, err)
	_, err = New(WithKeys("x", ""))
	assert.Error(t, err)
	_, err = New(WithLatency(-time.Second))
	assert.Error(t, err)
	s, err := New(WithKeys("pub", "priv"), WithLatency(time.Millisecond))
	require.NoError(t, err)
	assert.Equal(t, "pub", s.publicKey)
	assert.Equal(t, time.Millisecond, s.latency)
}

// TestWireErrors sends hand-built forms and checks the RetCode and that the
// message names what was wrong.
func TestWireErrors(t *testing.T) {
	t.Parallel()
	_, hs := testServer(t)
	signed := func(in map[string]any) string {
		return upstream.SignedForm(params(t, in), DefaultPublicKey, DefaultPrivateKey)
	}
	cases := []struct {
		name   string
		body   string
		code   int
		msg    string
		action string
	}{
		{name: "bad signature", body: upstream.SignedForm(params(t, nil), DefaultPublicKey, "wrong"), code: upstream.RetCodeSignatureError, msg: "Signature VerifyAC Error"},
		{name: "missing signature", body: strings.Replace(signed(nil), "Signature=", "Sig=", 1), code: upstream.RetCodeSignatureError, msg: "Signature"},
		{name: "tampered param", body: strings.Replace(signed(map[string]any{"Limit": 5}), "Limit=5", "Limit=6", 1), code: upstream.RetCodeSignatureError, msg: "Signature"},
		{name: "unknown key", body: upstream.SignedForm(params(t, nil), "someone-else", DefaultPrivateKey), code: upstream.RetCodeUnknownPublicKey, msg: "Public Key"},
		{name: "missing key", body: strings.Replace(signed(nil), "PublicKey=", "PK=", 1), code: upstream.RetCodeUnknownPublicKey, msg: "Public Key"},
		{name: "missing Region", body: signed(map[string]any{"Region": ""}), code: upstream.RetCodeMissingParam, msg: "Region"},
		{name: "unknown action", body: signed(map[string]any{"Action": "DescribeUHostInstance"}), code: upstream.RetCodeUnknownAction, msg: "DescribeUHostInstance", action: "DescribeUHostInstanceResponse"},
		{name: "unknown action before signature", body: upstream.SignedForm(params(t, map[string]any{"Action": "Nope"}), "x", "y"), code: upstream.RetCodeUnknownAction, msg: "Nope", action: "NopeResponse"},
		{name: "signature before params", body: upstream.SignedForm(params(t, map[string]any{"Limit": 500}), DefaultPublicKey, "wrong"), code: upstream.RetCodeSignatureError, msg: "Signature"},
		{name: "Limit 101", body: signed(map[string]any{"Limit": 101}), code: upstream.RetCodeParamUnavailable, msg: "Limit"},
		{name: "Limit negative", body: signed(map[string]any{"Limit": -1}), code: upstream.RetCodeParamUnavailable, msg: "Limit"},
		{name: "Limit not an int", body: signed(map[string]any{"Limit": "ten"}), code: upstream.RetCodeParamUnavailable, msg: "Limit"},
		{name: "Limit a float", body: signed(map[string]any{"Limit": 1.5}), code: upstream.RetCodeParamUnavailable, msg: "Limit"},
		{name: "Offset negative", body: signed(map[string]any{"Offset": -3}), code: upstream.RetCodeParamUnavailable, msg: "Offset"},
		{name: "Offset not an int", body: signed(map[string]any{"Offset": "x"}), code: upstream.RetCodeParamUnavailable, msg: "Offset"},
		{name: "unknown sort field", body: signed(map[string]any{"SortCondition": map[string]any{"Field": "Name"}}), code: upstream.RetCodeParamUnavailable, msg: "SortCondition.Field"},
		{name: "sort ASC not a bool", body: signed(map[string]any{"SortCondition": map[string]any{"Field": "PubTime", "ASC": "yes"}}), code: upstream.RetCodeParamUnavailable, msg: "SortCondition.ASC"},
		{name: "IsFree not a bool", body: signed(map[string]any{"IsFree": "1"}), code: upstream.RetCodeParamUnavailable, msg: "IsFree"},
		{name: "IsOfficial not a bool", body: signed(map[string]any{"IsOfficial": "True"}), code: upstream.RetCodeParamUnavailable, msg: "IsOfficial"},
		{name: "IfAutoStart not a bool", body: signed(map[string]any{"IfAutoStart": "no"}), code: upstream.RetCodeParamUnavailable, msg: "IfAutoStart"},
		{name: "bad tag index", body: signed(map[string]any{"Tag.x": "AIGC"}), code: upstream.RetCodeParamUnavailable, msg: "Tag.x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body := post(t, hs, tc.body)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			assert.NotEmpty(t, resp.Header.Get(RequestIDHeader))
			var raw map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(body, &raw), string(body))
			assert.JSONEq(t, `"`+firstNonEmpty(tc.action, "DescribeCommunityImagesResponse")+`"`, string(raw["Action"]))
			assert.Equal(t, json.RawMessage(itoa(tc.code)), raw["RetCode"], "RetCode is a JSON number")
			var msg string
			require.NoError(t, json.Unmarshal(raw["Message"], &msg))
			assert.Contains(t, msg, tc.msg)
			assert.NotContains(t, raw, "CompshareImageGroup")
		})
	}
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestSuccessBody(t *testing.T) {
	t.Parallel()
	_, hs := testServer(t)
	resp, body := post(t, hs, upstream.SignedForm(params(t, map[string]any{"Limit": 3}), DefaultPublicKey, DefaultPrivateKey))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &raw))
	assert.Equal(t, json.RawMessage("0"), raw["RetCode"])
	assert.Equal(t, json.RawMessage(`"DescribeCommunityImagesResponse"`), raw["Action"])
	assert.NotContains(t, raw, "Message")
	assert.NotContains(t, raw, "ImageSet")
	assert.Contains(t, raw, "TotalCount")
	assert.Contains(t, raw, "AvailableTotalCount")
	assert.NotContains(t, string(body), "null")
	assert.NotContains(t, string(body), `\u003c`, "readme HTML is sent unescaped")
	assert.Contains(t, string(body), "<h3>")
}

func TestSignatureVectorsAccepted(t *testing.T) {
	t.Parallel()
	// UPSTREAM.md vector C, sent verbatim to a sandbox holding its keys.
	_, hs := testServer(t, WithKeys("ucloudsomeone@example.com1296235120854146120", "46f09bb9fab4f12dfc160dae12273d5332b5debe"))
	body := "Action=DescribeCommunityImages&Limit=20&Name=stable+diffusion&Offset=0&PublicKey=ucloudsomeone%40example.com1296235120854146120&Region=cn-wlcb&Signature=a7fd5f17b45057b4ec506f5d103fb049497055fb&SortCondition.ASC=false&SortCondition.Field=PubTime&Tag=AIGC"
	_, b := post(t, hs, body)
	var out upstream.DescribeCommunityImagesResponse
	require.NoError(t, json.Unmarshal(b, &out))
	require.Equal(t, upstream.RetCode(0), out.RetCode, out.Message)
	assert.NotEmpty(t, out.CompshareImageGroup)
	for _, g := range out.CompshareImageGroup {
		for _, img := range g.Data {
			assert.Contains(t, img.Tags, "AIGC", "single un-indexed Tag filters")
		}
	}
}

func TestActionFromQueryOnly(t *testing.T) {
	t.Parallel()
	_, hs := testServer(t)
	p := params(t, map[string]any{"Limit": 2})
	form, err := url.ParseQuery(upstream.SignedForm(p, DefaultPublicKey, DefaultPrivateKey))
	require.NoError(t, err)
	form.Del("Action") // signed, but only sent in the query
	resp, body := post(t, hs, form.Encode())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var got upstream.DescribeCommunityImagesResponse
	require.NoError(t, json.Unmarshal(body, &got))
	assert.Equal(t, upstream.RetCode(0), got.RetCode, got.Message)
	assert.Len(t, got.CompshareImageGroup, 2)
}

func TestProjectIdIsSignedAndIgnored(t *testing.T) {
	t.Parallel()
	_, hs := testServer(t)
	out := callOK(t, hs, map[string]any{"ProjectId": "org-123", "Limit": 1})
	assert.Len(t, out.CompshareImageGroup, 1)
}

func TestTagIndexedOrder(t *testing.T) {
	t.Parallel()
	_, hs := testServer(t)
	// Eleven tags exercise byte order (Tag.10 < Tag.2) in the signature.
	tags := []string{EdgePopularTag, "AIGC", EdgePopularTag, EdgePopularTag, EdgePopularTag, EdgePopularTag, EdgePopularTag, EdgePopularTag, EdgePopularTag, EdgePopularTag, "AIGC"}
	out := callOK(t, hs, map[string]any{"Tag": tags})
	want := callOK(t, hs, map[string]any{"Tag": []string{EdgePopularTag, "AIGC"}})
	assert.Equal(t, want.TotalCount, out.TotalCount)
	assert.Positive(t, out.TotalCount)
}

func TestRequestIDUnique(t *testing.T) {
	t.Parallel()
	_, hs := testServer(t)
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			out := call(t, hs, params(t, map[string]any{"Limit": 1}))
			mu.Lock()
			defer mu.Unlock()
			assert.Regexp(t, uuid, out.RequestID)
			seen[out.RequestID] = true
		})
	}
	wg.Wait()
	assert.Len(t, seen, 20)
}

func TestHTTPLevelRefusals(t *testing.T) {
	t.Parallel()
	_, hs := testServer(t)

	resp, err := http.Get(hs.URL + "/?Action=DescribeCommunityImages")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	big := "Name=" + strings.Repeat("a", MaxBodyBytes+1)
	resp, _ = post(t, hs, big)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
}

package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/testkit/logbuf"
)

func TestNewClientOptions(t *testing.T) {
	t.Parallel()
	creds := WithCredentials("pub", "s3cr3t-private")
	cases := []struct {
		name string
		opts []Option
	}{
		{"no credentials", nil},
		{"empty public key", []Option{WithCredentials("", "s3cr3t-private")}},
		{"empty private key", []Option{WithCredentials("pub", "")}},
		{"empty base URL", []Option{creds, WithBaseURL("")}},
		{"relative base URL", []Option{creds, WithBaseURL("/api")}},
		{"ftp base URL", []Option{creds, WithBaseURL("ftp://api.compshare.cn")}},
		{"base URL without host", []Option{creds, WithBaseURL("http://")}},
		{"unparsable base URL", []Option{creds, WithBaseURL("http://[::1")}},
		{"base URL with user info", []Option{creds, WithBaseURL("https://u:p@api.compshare.cn")}},
		{"base URL with query", []Option{creds, WithBaseURL("https://api.compshare.cn/?a=b")}},
		{"base URL with fragment", []Option{creds, WithBaseURL("https://api.compshare.cn/#x")}},
		{"empty region", []Option{creds, WithRegion(" ")}},
		{"nil HTTP client", []Option{creds, WithHTTPClient(nil)}},
		{"zero timeout", []Option{creds, WithTimeout(0)}},
		{"negative timeout", []Option{creds, WithTimeout(-time.Second)}},
		{"negative retries", []Option{creds, WithRetryPolicy(RetryPolicy{MaxRetries: -1})}},
		{"negative base delay", []Option{creds, WithRetryPolicy(RetryPolicy{BaseDelay: -1})}},
		{"max delay below base", []Option{creds, WithRetryPolicy(RetryPolicy{BaseDelay: time.Second, MaxDelay: time.Millisecond})}},
		{"zero in flight", []Option{creds, WithMaxInFlight(0)}},
		{"zero qps", []Option{creds, WithRateLimit(0, 1)}},
		{"NaN qps", []Option{creds, WithRateLimit(math.NaN(), 1)}},
		{"zero burst", []Option{creds, WithRateLimit(1, 0)}},
		{"empty user agent", []Option{creds, WithUserAgent("")}},
		{"zero body cap", []Option{creds, WithMaxBodyBytes(0)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := NewClient(tc.opts...)
			assert.Error(t, err)
			assert.Nil(t, c)
			if err != nil {
				assert.NotContains(t, err.Error(), "s3cr3t")
			}
		})
	}

	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		c, err := NewClient(creds)
		require.NoError(t, err)
		assert.Equal(t, DefaultRegion, c.Region())
		assert.Equal(t, "https://api.compshare.cn/?Action=DescribeCommunityImages", c.endpoint)
		assert.Equal(t, DefaultRetryPolicy, c.retry)
		assert.Equal(t, DefaultTimeout, c.timeout)
		assert.Equal(t, "compshare-imagegraph/"+Version, c.userAgent)
		assert.Equal(t, DefaultMaxInFlight, cap(c.sem))
		tr, ok := c.httpClient.Transport.(*http.Transport)
		require.True(t, ok)
		assert.GreaterOrEqual(t, tr.MaxIdleConnsPerHost, DefaultMaxInFlight)
	})

	t.Run("all valid options", func(t *testing.T) {
		t.Parallel()
		hc := &http.Client{}
		c, err := NewClient(creds, WithBaseURL("http://127.0.0.1:8080/api/"), WithRegion("cn-sh2"),
			WithProjectID("org-1"), WithHTTPClient(hc), WithTimeout(time.Second),
			WithRetryPolicy(RetryPolicy{MaxRetries: 0}), WithMaxInFlight(2), WithRateLimit(math.Inf(1), 1),
			WithUserAgent("ua/1"), WithMaxBodyBytes(10), WithLogger(nil), nil)
		require.NoError(t, err)
		assert.Equal(t, "cn-sh2", c.Region())
		assert.Equal(t, "http://127.0.0.1:8080/api/?Action=DescribeCommunityImages", c.endpoint)
		assert.Same(t, hc, c.httpClient)
		assert.Equal(t, RetryPolicy{MaxRetries: 0, BaseDelay: 100 * time.Millisecond, MaxDelay: 5 * time.Second}, c.retry)
	})
}

func TestClientStringMasksPrivateKey(t *testing.T) {
	t.Parallel()
	c, err := NewClient(WithCredentials(vectorPublicKey, vectorPrivateKey), WithProjectID("org-1"))
	require.NoError(t, err)
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		s := fmt.Sprintf(format, c)
		assert.NotContains(t, s, vectorPrivateKey, format)
		assert.Contains(t, s, `privateKey: "****"`, format)
		assert.Contains(t, s, vectorPublicKey, format)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("configured", "client", c)
	assert.NotContains(t, buf.String(), vectorPrivateKey)
	assert.Contains(t, buf.String(), `"private_key":"****"`)
	// The struct itself holds the key behind a pointer, so even reflection-based
	// printing of its fields shows an address, not the key.
	assert.NotContains(t, fmt.Sprintf("%+v", struct{ C any }{C: c.creds}), vectorPrivateKey)
}

// capturedRequest is what the wire tests record of a request.
type capturedRequest struct {
	method, path, rawQuery string
	header                 http.Header
	body                   string
}

func captureServer(t *testing.T) (*testServer, func() capturedRequest) {
	t.Helper()
	var mu sync.Mutex
	var got capturedRequest
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = capturedRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(b)}
		mu.Unlock()
		writeJSON(w, http.StatusOK, okJSON)
	})
	return srv, func() capturedRequest { mu.Lock(); defer mu.Unlock(); return got }
}

// verifySignature recomputes the signature of a received form body.
func verifySignature(t *testing.T, form url.Values) {
	t.Helper()
	p := Params{}
	for k, v := range form {
		require.Len(t, v, 1, k)
		if k != "Signature" {
			p[k] = v[0]
		}
	}
	assert.Equal(t, Sign(p, vectorPrivateKey), form.Get("Signature"))
}

func TestRequestWireFormat(t *testing.T) {
	t.Parallel()

	t.Run("vector B exact body and headers", func(t *testing.T) {
		t.Parallel()
		srv, got := captureServer(t)
		c, _ := newTestClient(t, srv.URL)
		before := time.Now().UnixMilli()
		_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
		require.NoError(t, err)
		r := got()
		assert.Equal(t, http.MethodPost, r.method)
		assert.Equal(t, "/", r.path)
		assert.Equal(t, "Action=DescribeCommunityImages", r.rawQuery)
		assert.Equal(t, "application/x-www-form-urlencoded", r.header.Get("Content-Type"))
		assert.Equal(t, "compshare-imagegraph/"+Version, r.header.Get("User-Agent"))
		ts, err := strconv.ParseInt(r.header.Get("U-Timestamp-Ms"), 10, 64)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, ts, before)
		assert.Equal(t, "Action=DescribeCommunityImages&PublicKey=ucloudsomeone%40example.com1296235120854146120"+
			"&Region=cn-wlcb&Signature=1e3ab92d2c6dfa70951b29cf79d83ace5ef59906", r.body)
	})

	t.Run("every field", func(t *testing.T) {
		t.Parallel()
		srv, got := captureServer(t)
		c, _ := newTestClient(t, srv.URL, WithUserAgent("ua-test/2"))
		tags := []string{"深度学习", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9", "t10"}
		req := &DescribeCommunityImagesRequest{
			Region: "cn-sh2", CompShareImageId: "compshareImage-1", GroupId: "group-1",
			Name: "stable diffusion", Author: "", FuzzySearch: "PyTorch", Tag: tags,
			IsFree: Bool(true), IsOfficial: Bool(false), IfAutoStart: Bool(true),
			SortCondition: &SortCondition{Field: SortPubTime, ASC: false},
			Offset:        Int(0), Limit: Int(100),
		}
		_, err := c.DescribeCommunityImages(context.Background(), req)
		require.NoError(t, err)
		r := got()
		assert.Equal(t, "ua-test/2", r.header.Get("User-Agent"))
		form, err := url.ParseQuery(r.body)
		require.NoError(t, err)
		want := map[string]string{
			"Action": "DescribeCommunityImages", "Region": "cn-sh2", "PublicKey": vectorPublicKey,
			"CompShareImageId": "compshareImage-1", "GroupId": "group-1", "Name": "stable diffusion",
			"FuzzySearch": "PyTorch", "IsFree": "true", "IsOfficial": "false", "IfAutoStart": "true",
			"SortCondition.Field": "PubTime", "SortCondition.ASC": "false", "Offset": "0", "Limit": "100",
		}
		for i, tag := range tags {
			want["Tag."+strconv.Itoa(i)] = tag
		}
		gotFlat := map[string]string{}
		for k, v := range form {
			if k != "Signature" {
				gotFlat[k] = v[0]
			}
		}
		assert.Equal(t, want, gotFlat, "Author is empty and must not be sent")
		verifySignature(t, form)
		assert.True(t, strings.HasPrefix(r.body, "Action="), "keys are sent in sorted order")
	})

	t.Run("ProjectId is sent and signed", func(t *testing.T) {
		t.Parallel()
		srv, got := captureServer(t)
		c, _ := newTestClient(t, srv.URL, WithProjectID("org-abc"))
		_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{Limit: Int(5)})
		require.NoError(t, err)
		form, err := url.ParseQuery(got().body)
		require.NoError(t, err)
		assert.Equal(t, "org-abc", form.Get("ProjectId"))
		verifySignature(t, form)
		withoutProject := Params{"Action": ActionDescribeCommunityImages, "Region": "cn-wlcb", "Limit": "5", "PublicKey": vectorPublicKey}
		assert.NotEqual(t, Sign(withoutProject, vectorPrivateKey), form.Get("Signature"))
	})
}

const fullResponseJSON = `{
  "Action": "DescribeCommunityImagesResponse",
  "RetCode": "0",
  "TotalCount": 50,
  "AvailableTotalCount": 48,
  "CompshareImageGroup": [{
    "GroupId": "group-1", "ImageName": "Stable Diffusion", "ImageDesc": "SD WebUI",
    "CreatedCount": 12, "FavoritesCount": 34, "RecommendCount": 5, "ImageUseTime": 678,
    "IsFavorite": true, "Status": "Available",
    "Data": [{
      "CompShareImageId": "compshareImage-1", "Name": "SD 1.5", "Author": "UCloud", "AuthInfo": 1,
      "Status": "Available", "Price": 1.5, "VersionName": "v1", "VersionDesc": "first",
      "Description": "desc", "Tags": ["AIGC", "深度学习"], "SupportedGpuTypes": ["4090", "3090"],
      "Cover": "https://example.com/c.png", "Container": "True", "AutoStart": true,
      "CreateTime": 1700000000, "UpdateTime": 1700000100, "PubTime": 1700000200, "Size": 20480,
      "Readme": "<p>hi</p>", "QrCodeUrl": "https://example.com/qr.png",
      "SoftwarePorts": [{"Software": "WebUI", "Port": 7860}, {"Software": "Jupyter", "Port": 8888}]
    }]
  }]
}`

func TestDecodeResponse(t *testing.T) {
	t.Parallel()

	t.Run("every field, RetCode as string", func(t *testing.T) {
		t.Parallel()
		srv := newTestServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
			writeJSON(w, http.StatusOK, fullResponseJSON)
		})
		c, _ := newTestClient(t, srv.URL)
		resp, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
		require.NoError(t, err)
		want := &DescribeCommunityImagesResponse{
			Action: "DescribeCommunityImagesResponse", TotalCount: 50, AvailableTotalCount: 48,
			RequestID: "req-1",
			CompshareImageGroup: []ImageGroup{{
				GroupId: "group-1", ImageName: "Stable Diffusion", ImageDesc: "SD WebUI",
				CreatedCount: 12, FavoritesCount: 34, RecommendCount: 5, ImageUseTime: 678,
				IsFavorite: true, Status: GroupStatusAvailable,
				Data: []Image{{
					CompShareImageId: "compshareImage-1", Name: "SD 1.5", Author: "UCloud", AuthInfo: AuthOfficial,
					Status: ImageStatusAvailable, Price: 1.5, VersionName: "v1", VersionDesc: "first",
					Description: "desc", Tags: []string{"AIGC", "深度学习"}, SupportedGpuTypes: []string{"4090", "3090"},
					Cover: "https://example.com/c.png", Container: ContainerTrue, AutoStart: true,
					CreateTime: 1700000000, UpdateTime: 1700000100, PubTime: 1700000200, Size: 20480,
					Readme: "<p>hi</p>", QrCodeUrl: "https://example.com/qr.png",
					SoftwarePorts: []SoftwarePort{{Software: "WebUI", Port: 7860}, {Software: "Jupyter", Port: 8888}},
				}},
			}},
		}
		assert.Equal(t, want, resp)
	})

	t.Run("ImageSet fallback", func(t *testing.T) {
		t.Parallel()
		srv := newTestServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
			writeJSON(w, http.StatusOK, `{"RetCode":0,"TotalCount":2,"ImageSet":[
				{"CompShareImageId":"i1","GroupId":"g1","Name":"A","Status":"Offline"},
				{"CompShareImageId":"i2","GroupId":"g1","Name":"A2","Status":"Available"},
				{"CompShareImageId":"i3","Name":"B","Status":"Reviewing"}]}`)
		})
		c, _ := newTestClient(t, srv.URL)
		resp, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
		require.NoError(t, err)
		assert.Nil(t, resp.ImageSet)
		require.Len(t, resp.CompshareImageGroup, 2)
		assert.Equal(t, "g1", resp.CompshareImageGroup[0].GroupId)
		assert.Equal(t, GroupStatusAvailable, resp.CompshareImageGroup[0].Status)
		assert.Len(t, resp.CompshareImageGroup[0].Data, 2)
		assert.Equal(t, "i3", resp.CompshareImageGroup[1].GroupId)
		assert.Equal(t, GroupStatusUnAvailable, resp.CompshareImageGroup[1].Status)
	})
}

func TestValidationRefusesBeforeIO(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) { writeJSON(w, 200, okJSON) })
	c, _ := newTestClient(t, srv.URL)
	cases := map[string]*DescribeCommunityImagesRequest{
		"nil":       nil,
		"Limit 101": {Limit: Int(101)},
		"Limit -1":  {Limit: Int(-1)},
		"Offset -1": {Offset: Int(-1)},
		"bad sort":  {SortCondition: &SortCondition{Field: "Nope"}},
		"empty tag": {Tag: []string{"a", ""}},
	}
	for name, req := range cases {
		_, err := c.DescribeCommunityImages(context.Background(), req)
		e := requireAPIError(t, err)
		assert.Equal(t, KindInvalid, e.Kind, name)
		assert.Equal(t, 0, e.Attempts, name)
		assert.False(t, e.Retryable, name)
		assert.Equal(t, ActionDescribeCommunityImages, e.Action, name)
	}
	assert.Zero(t, srv.calls.Load())
}

// hangUp closes the connection without answering.
func hangUp(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func TestRetries(t *testing.T) {
	t.Parallel()
	status := func(code int, body string) func(http.ResponseWriter, *http.Request, int64) {
		return func(w http.ResponseWriter, _ *http.Request, _ int64) { writeJSON(w, code, body) }
	}
	cases := []struct {
		name      string
		handler   func(http.ResponseWriter, *http.Request, int64)
		opts      []Option
		kind      ErrorKind
		status    int
		retCode   int
		retryable bool
		calls     int64
	}{
		{"HTTP 503", status(503, "busy"), nil, KindHTTP, 503, 0, true, 3},
		{"HTTP 502", status(502, ""), nil, KindHTTP, 502, 0, true, 3},
		{"HTTP 504", status(504, ""), nil, KindHTTP, 504, 0, true, 3},
		{"HTTP 429", status(429, `{"RetCode":0}`), nil, KindHTTP, 429, 0, true, 3},
		{"connection closed", func(w http.ResponseWriter, _ *http.Request, _ int64) { hangUp(w) }, nil, KindNetwork, 0, 0, true, 3},
		{"RetCode 2000", status(200, `{"RetCode":2000,"Message":"busy"}`), nil, KindRetCode, 200, 2000, true, 3},
		{"RetCode 8433 as string", status(200, `{"RetCode":"8433","Message":"service error"}`), nil, KindRetCode, 200, 8433, true, 3},
		{"malformed body", status(200, `{"RetCode":0,`+"\x00"), nil, KindDecode, 200, 0, true, 3},
		{"truncated body", status(200, okJSON[:len(okJSON)/2]), nil, KindDecode, 200, 0, true, 3},
		{"empty body", status(200, ""), nil, KindDecode, 200, 0, true, 3},
		{"RetCode 171", status(200, `{"RetCode":171,"Message":"Signature VerifyAC Error"}`), nil, KindRetCode, 200, 171, false, 1},
		{"HTTP 400", status(400, `{"RetCode":160,"Message":"Missing params"}`), nil, KindHTTP, 400, 160, false, 1},
		{"HTTP 404", status(404, "not found"), nil, KindHTTP, 404, 0, false, 1},
		{"HTTP 500", status(500, ""), nil, KindHTTP, 500, 0, false, 1},
		{"redirect not followed", func(w http.ResponseWriter, r *http.Request, _ int64) {
			http.Redirect(w, r, "http://example.invalid/", http.StatusTemporaryRedirect)
		}, nil, KindHTTP, 307, 0, false, 1},
		{"body over cap", status(200, okJSON), []Option{WithMaxBodyBytes(int64(len(okJSON) - 1))}, KindDecode, 200, 0, false, 1},
		{"no retries configured", status(503, ""), []Option{WithRetryPolicy(RetryPolicy{MaxRetries: 0})}, KindHTTP, 503, 0, true, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newTestServer(t, tc.handler)
			c, rec := newTestClient(t, srv.URL, tc.opts...)
			resp, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
			assert.Nil(t, resp)
			e := requireAPIError(t, err)
			assert.Equal(t, tc.kind, e.Kind)
			assert.Equal(t, tc.status, e.HTTPStatus)
			assert.Equal(t, tc.retCode, e.RetCode)
			assert.Equal(t, tc.retryable, e.Retryable)
			assert.Equal(t, tc.calls, srv.calls.Load())
			assert.Equal(t, int(tc.calls), e.Attempts)
			assert.Equal(t, ActionDescribeCommunityImages, e.Action)
			if tc.status != 0 {
				wantID := fmt.Sprintf("req-%d", tc.calls)
				assert.Equal(t, wantID, e.RequestID, "request id of the last response")
				assert.Contains(t, e.Error(), wantID)
			}
			delays := rec.recorded()
			require.Len(t, delays, int(tc.calls-1))
			for i, d := range delays {
				assert.LessOrEqual(t, d, c.retry.ceiling(i), "delay %d", i)
				assert.GreaterOrEqual(t, d, time.Duration(0))
			}
		})
	}
}

func TestRetrySucceeds(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, func(w http.ResponseWriter, _ *http.Request, n int64) {
		if n < 3 {
			writeJSON(w, http.StatusServiceUnavailable, "")
			return
		}
		writeJSON(w, http.StatusOK, okJSON)
	})
	c, rec := newTestClient(t, srv.URL)
	resp, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
	require.NoError(t, err)
	assert.Equal(t, "req-3", resp.RequestID)
	assert.Equal(t, int64(3), srv.calls.Load())
	assert.Len(t, rec.recorded(), 2)
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		status     int
		retryAfter func() string
		maxDelay   time.Duration
		min, max   time.Duration
	}{
		{"429 seconds", 429, func() string { return "3" }, 10 * time.Second, 3 * time.Second, 3 * time.Second},
		{"503 seconds", 503, func() string { return "2" }, 10 * time.Second, 2 * time.Second, 2 * time.Second},
		{"503 HTTP date", 503, func() string { return time.Now().Add(5 * time.Second).UTC().Format(http.TimeFormat) }, 10 * time.Second, 3 * time.Second, 5 * time.Second},
		{"capped at MaxDelay", 429, func() string { return "120" }, 2 * time.Second, 2 * time.Second, 2 * time.Second},
		{"ignored on 502", 502, func() string { return "3" }, 10 * time.Second, 0, 0},
		{"unreadable", 429, func() string { return "soon" }, 10 * time.Second, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newTestServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
				w.Header().Set("Retry-After", tc.retryAfter())
				writeJSON(w, tc.status, "")
			})
			c, rec := newTestClient(t, srv.URL,
				WithRetryPolicy(RetryPolicy{MaxRetries: 2, BaseDelay: time.Millisecond, MaxDelay: tc.maxDelay}),
				withJitter(func(time.Duration) time.Duration { return 0 }))
			_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
			e := requireAPIError(t, err)
			assert.Equal(t, 3, e.Attempts)
			delays := rec.recorded()
			require.Len(t, delays, 2)
			for _, d := range delays {
				assert.GreaterOrEqual(t, d, tc.min)
				assert.LessOrEqual(t, d, tc.max)
			}
		})
	}
}

func TestBackoffPolicy(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{MaxRetries: 5, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	assert.Equal(t, 100*time.Millisecond, p.ceiling(0))
	assert.Equal(t, 200*time.Millisecond, p.ceiling(1))
	assert.Equal(t, 800*time.Millisecond, p.ceiling(3))
	assert.Equal(t, time.Second, p.ceiling(4))
	assert.Equal(t, time.Second, p.ceiling(1000), "no overflow")
	for range 1000 {
		d := fullJitter(300 * time.Millisecond)
		assert.True(t, d >= 0 && d <= 300*time.Millisecond, d)
	}
	full := func(d time.Duration) time.Duration { return d }
	assert.Equal(t, 200*time.Millisecond, p.delay(1, 0, full))
	assert.Equal(t, 700*time.Millisecond, p.delay(1, 700*time.Millisecond, full), "Retry-After raises the delay")
	assert.Equal(t, time.Second, p.delay(1, time.Hour, full), "capped at MaxDelay")

	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"0": 0, "7": 7 * time.Second, " 2 ": 2 * time.Second, "99999999999999": maxRetryAfter,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		d, ok := parseRetryAfter(v, now)
		assert.True(t, ok, v)
		assert.Equal(t, want, d, v)
	}
	for _, v := range []string{"", "-1", "later", "1.5"} {
		_, ok := parseRetryAfter(v, now)
		assert.False(t, ok, v)
	}
}

func TestCallerContextEndsBackoff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		ctx    func() (context.Context, context.CancelFunc)
		kind   ErrorKind
		target error
		cancel bool // cancel after the first answer, rather than wait for the deadline
	}{
		{"cancel", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, KindCanceled, context.Canceled, true},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 200*time.Millisecond)
		}, KindTimeout, context.DeadlineExceeded, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hit := make(chan struct{}, 10)
			srv := newTestServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
				writeJSON(w, http.StatusServiceUnavailable, "")
				hit <- struct{}{}
			})
			// Real sleeps of a minute: only the caller's ctx can end the wait.
			c, _ := newTestClient(t, srv.URL, withSleep(sleepCtx),
				WithRetryPolicy(RetryPolicy{MaxRetries: 2, BaseDelay: time.Minute, MaxDelay: time.Minute}),
				withJitter(func(d time.Duration) time.Duration { return d }))
			ctx, cancel := tc.ctx()
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := c.DescribeCommunityImages(ctx, &DescribeCommunityImagesRequest{})
				done <- err
			}()
			<-hit
			if tc.cancel {
				cancel()
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the call did not return after its context ended")
			}
			e := requireAPIError(t, err)
			assert.Equal(t, tc.kind, e.Kind)
			assert.False(t, e.Retryable)
			assert.ErrorIs(t, err, tc.target)
			assert.LessOrEqual(t, e.Attempts, 1)
			assert.Equal(t, int64(1), srv.calls.Load(), "no retry before the minute is up")
		})
	}

	t.Run("already canceled", func(t *testing.T) {
		t.Parallel()
		srv := newTestServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) { writeJSON(w, 200, okJSON) })
		c, _ := newTestClient(t, srv.URL)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.DescribeCommunityImages(ctx, &DescribeCommunityImagesRequest{})
		e := requireAPIError(t, err)
		assert.Equal(t, KindCanceled, e.Kind)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Zero(t, srv.calls.Load())
	})
}

func TestPerAttemptTimeout(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
		_, _ = io.Copy(io.Discard, r.Body) // lets the server notice the client hang up
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	c, rec := newTestClient(t, srv.URL, WithTimeout(50*time.Millisecond))
	_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
	e := requireAPIError(t, err)
	assert.Equal(t, KindTimeout, e.Kind)
	assert.True(t, e.Retryable)
	assert.Equal(t, 3, e.Attempts)
	assert.Equal(t, int64(3), srv.calls.Load())
	assert.Len(t, rec.recorded(), 2)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestBodyCapBoundary(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) { writeJSON(w, 200, okJSON) })
	c, _ := newTestClient(t, srv.URL, WithMaxBodyBytes(int64(len(okJSON))))
	_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
	assert.NoError(t, err, "a body exactly at the cap is accepted")
}

// TestNoSecretsInErrors provokes every kind of error, with an upstream that
// echoes everything it got, and checks no error text carries a secret.
func TestNoSecretsInErrors(t *testing.T) {
	t.Parallel()
	echo := func(status int) func(http.ResponseWriter, *http.Request, int64) {
		return func(w http.ResponseWriter, r *http.Request, _ int64) {
			b, _ := io.ReadAll(r.Body)
			form, _ := url.ParseQuery(string(b))
			msg := fmt.Sprintf("got %s; signature %s; key %s", b, form.Get("Signature"), vectorPrivateKey)
			writeJSON(w, status, fmt.Sprintf(`{"RetCode":171,"Message":%q}`, msg))
		}
	}
	closed := newTestServer(t, func(http.ResponseWriter, *http.Request, int64) {})
	closed.Close()
	cases := []struct {
		name    string
		url     string
		handler func(http.ResponseWriter, *http.Request, int64)
		opts    []Option
		req     *DescribeCommunityImagesRequest
		ctx     func() (context.Context, context.CancelFunc)
		kind    ErrorKind
	}{
		{name: "invalid", req: &DescribeCommunityImagesRequest{Limit: Int(101)}, kind: KindInvalid},
		{name: "retcode", handler: echo(200), kind: KindRetCode},
		{name: "http", handler: echo(400), kind: KindHTTP},
		{name: "http plain echo", handler: func(w http.ResponseWriter, r *http.Request, _ int64) {
			b, _ := io.ReadAll(r.Body)
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write(b)
		}, kind: KindHTTP},
		{name: "network", url: closed.URL, kind: KindNetwork},
		{name: "decode", handler: func(w http.ResponseWriter, r *http.Request, _ int64) {
			b, _ := io.ReadAll(r.Body)
			writeJSON(w, 200, "{"+string(b))
		}, kind: KindDecode},
		{name: "body cap", handler: echo(200), opts: []Option{WithMaxBodyBytes(10)}, kind: KindDecode},
		{name: "timeout", handler: func(_ http.ResponseWriter, r *http.Request, _ int64) {
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}, opts: []Option{WithTimeout(20 * time.Millisecond)}, kind: KindTimeout},
		{name: "canceled", handler: echo(200), ctx: func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, kind: KindCanceled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := tc.url
			if tc.handler != nil {
				u = newTestServer(t, tc.handler).URL
			}
			if u == "" {
				u = "http://127.0.0.1:1"
			}
			c, _ := newTestClient(t, u, tc.opts...)
			req := tc.req
			if req == nil {
				req = &DescribeCommunityImagesRequest{Name: "x", Limit: Int(3)}
			}
			ctx, cancel := context.WithCancel(context.Background())
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			_, err := c.DescribeCommunityImages(ctx, req)
			e := requireAPIError(t, err)
			assert.Equal(t, tc.kind, e.Kind)

			params, perr := req.Params(c.Region())
			require.NoError(t, perr)
			body := SignedForm(params, vectorPublicKey, vectorPrivateKey)
			form, _ := url.ParseQuery(body)
			for _, text := range []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), e.Message} {
				assert.NotContains(t, text, vectorPrivateKey)
				assert.NotContains(t, text, form.Get("Signature"))
				assert.NotContains(t, text, body)
			}
		})
	}
}

func TestCoalescing(t *testing.T) {
	t.Parallel()

	// blockingServer answers okJSON once release is closed.
	blockingServer := func(t *testing.T) (*testServer, chan struct{}) {
		release := make(chan struct{})
		srv := newTestServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
			select {
			case <-release:
			case <-time.After(20 * time.Second):
			}
			writeJSON(w, http.StatusOK, okJSON)
		})
		return srv, release
	}

	t.Run("identical requests share one call", func(t *testing.T) {
		t.Parallel()
		srv, release := blockingServer(t)
		const n = 50
		var joined sync.WaitGroup
		joined.Add(n)
		c, _ := newTestClient(t, srv.URL, withAfterJoin(joined.Done))
		resps := make([]*DescribeCommunityImagesResponse, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				req := &DescribeCommunityImagesRequest{Name: "sd", Tag: []string{"a", "b"}, Limit: Int(20)}
				resps[i], errs[i] = c.DescribeCommunityImages(context.Background(), req)
			})
		}
		joined.Wait()
		close(release)
		wg.Wait()
		assert.Equal(t, int64(1), srv.calls.Load())
		for i := range n {
			require.NoError(t, errs[i])
			assert.Same(t, resps[0], resps[i], "the response is shared, read-only")
		}
		assert.Equal(t, "req-1", resps[0].RequestID)
	})

	t.Run("distinct requests are not coalesced", func(t *testing.T) {
		t.Parallel()
		srv, release := blockingServer(t)
		const n = 10
		var joined sync.WaitGroup
		joined.Add(n)
		c, _ := newTestClient(t, srv.URL, withAfterJoin(joined.Done))
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{Offset: Int(i)})
				assert.NoError(t, err)
			})
		}
		joined.Wait()
		close(release)
		wg.Wait()
		assert.Equal(t, int64(n), srv.calls.Load())
	})

	t.Run("region and project are part of the key", func(t *testing.T) {
		t.Parallel()
		srv, release := blockingServer(t)
		close(release)
		c, _ := newTestClient(t, srv.URL)
		_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
		require.NoError(t, err)
		_, err = c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
		require.NoError(t, err)
		assert.Equal(t, int64(2), srv.calls.Load(), "sequential calls are not cached")
		assert.NotEqual(t,
			(&DescribeCommunityImagesRequest{}).CanonicalKey("cn-wlcb"),
			(&DescribeCommunityImagesRequest{Region: "cn-sh2"}).CanonicalKey("cn-wlcb"))
	})

	t.Run("one caller's cancel does not fail the others", func(t *testing.T) {
		t.Parallel()
		srv, release := blockingServer(t)
		var joined sync.WaitGroup
		joined.Add(2)
		c, _ := newTestClient(t, srv.URL, withAfterJoin(joined.Done))
		ctxA, cancelA := context.WithCancel(context.Background())
		defer cancelA()
		errA, errB := make(chan error, 1), make(chan error, 1)
		go func() {
			_, err := c.DescribeCommunityImages(ctxA, &DescribeCommunityImagesRequest{})
			errA <- err
		}()
		go func() {
			_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
			errB <- err
		}()
		joined.Wait()
		cancelA()
		e := requireAPIError(t, <-errA)
		assert.Equal(t, KindCanceled, e.Kind)
		close(release)
		assert.NoError(t, <-errB)
		assert.Equal(t, int64(1), srv.calls.Load())
	})

	t.Run("a call no caller waits for is given up", func(t *testing.T) {
		t.Parallel()
		gone := make(chan struct{}, 1)
		srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
			if n > 1 {
				writeJSON(w, http.StatusOK, okJSON)
				return
			}
			// Read the body: net/http notices a client hanging up only
			// once it has.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
				gone <- struct{}{} // the client hung up: the call was given up
			case <-time.After(20 * time.Second):
			}
		})
		c, _ := newTestClient(t, srv.URL)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := c.DescribeCommunityImages(ctx, &DescribeCommunityImagesRequest{})
		assert.Equal(t, KindTimeout, requireAPIError(t, err).Kind)
		select {
		case <-gone:
		case <-time.After(10 * time.Second):
			t.Fatal("the upstream call went on after its only caller left")
		}
		// An identical call after that is a call of its own.
		_, err = c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
		require.NoError(t, err)
		assert.Equal(t, int64(2), srv.calls.Load())
	})
}

// TestMaxInFlight: the client makes at most WithMaxInFlight calls at once,
// and makes that many. With every call the upstream receives held, three
// of twenty distinct calls reach it together and the client reports its
// three slots taken; released, all twenty are made, never more than three
// at once.
func TestMaxInFlight(t *testing.T) {
	t.Parallel()
	const bound, n = 3, 20
	var cur, peak atomic.Int64
	arrived := make(chan struct{}, n)
	release := make(chan struct{})
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
		now := cur.Add(1)
		for {
			p := peak.Load()
			if now <= p || peak.CompareAndSwap(p, now) {
				break
			}
		}
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		cur.Add(-1)
		writeJSON(w, http.StatusOK, okJSON)
	})
	releaseAll := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseAll) // before the server closes, should the test fail while calls are held
	c, _ := newTestClient(t, srv.URL, WithMaxInFlight(bound))
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{Offset: Int(i)})
			assert.NoError(t, err)
		})
	}
	for i := range bound {
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d calls reached the upstream at once, not the %d the bound allows", i, bound)
		}
	}
	assert.Equal(t, bound, c.Stats().InFlight, "every slot is taken while the calls are held")
	releaseAll()
	wg.Wait()
	assert.Equal(t, int64(n), srv.calls.Load())
	assert.Equal(t, int64(bound), peak.Load(), "the bound reached, never passed")
	assert.Zero(t, c.Stats().InFlight)
}

// countingLimiter counts Wait calls and fails them with err when set.
type countingLimiter struct {
	waits atomic.Int64
	err   error
}

func (l *countingLimiter) Wait(context.Context) error {
	l.waits.Add(1)
	return l.err
}

func TestRateLimit(t *testing.T) {
	t.Parallel()

	t.Run("every attempt takes a token", func(t *testing.T) {
		t.Parallel()
		srv := newTestServer(t, func(w http.ResponseWriter, _ *http.Request, n int64) {
			if n < 3 {
				writeJSON(w, http.StatusServiceUnavailable, "")
				return
			}
			writeJSON(w, http.StatusOK, okJSON)
		})
		lim := &countingLimiter{}
		c, _ := newTestClient(t, srv.URL, withLimiter(lim))
		_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
		require.NoError(t, err)
		assert.Equal(t, int64(3), lim.waits.Load())
	})

	t.Run("a refused token fails the call before I/O", func(t *testing.T) {
		t.Parallel()
		srv := newTestServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) { writeJSON(w, 200, okJSON) })
		c, _ := newTestClient(t, srv.URL, withLimiter(&countingLimiter{err: errors.New("rate: Wait(n=1) would exceed context deadline")}))
		_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
		e := requireAPIError(t, err)
		assert.Equal(t, KindTimeout, e.Kind)
		assert.False(t, e.Retryable)
		assert.Zero(t, srv.calls.Load())
	})

	t.Run("QPS budget", func(t *testing.T) {
		t.Parallel()
		srv := newTestServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) { writeJSON(w, 200, okJSON) })
		c, _ := newTestClient(t, srv.URL, WithRateLimit(10, 1))
		start := time.Now()
		for i := range 5 {
			_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{Offset: Int(i)})
			require.NoError(t, err)
		}
		// Five calls at 10/s with a burst of one need at least four intervals
		// of 100ms; assert a loose lower bound only.
		assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	})
}

func TestLogsRetries(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
		b, _ := io.ReadAll(r.Body)
		writeJSON(w, http.StatusServiceUnavailable, fmt.Sprintf(`{"RetCode":0,"Message":%q}`, "echo "+string(b)))
	})
	var buf logbuf.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, _ := newTestClient(t, srv.URL, WithLogger(logger))
	_, err := c.DescribeCommunityImages(context.Background(), &DescribeCommunityImagesRequest{})
	requireAPIError(t, err)
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	assert.Contains(t, lines[0], `"level":"DEBUG"`)
	assert.Contains(t, lines[0], `"request_id":"req-1"`)
	assert.Contains(t, lines[0], `"attempt":1`)
	assert.Contains(t, lines[0], `"action":"DescribeCommunityImages"`)
	assert.Contains(t, lines[2], `"level":"WARN"`)
	assert.Contains(t, lines[2], `"request_id":"req-3"`)
	params, err := (&DescribeCommunityImagesRequest{}).Params(DefaultRegion)
	require.NoError(t, err)
	params["PublicKey"] = vectorPublicKey
	assert.NotContains(t, out, vectorPrivateKey)
	assert.NotContains(t, out, Sign(params, vectorPrivateKey))
}

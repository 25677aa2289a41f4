package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/upstream"
)

// signedBody is a valid request body for the default keys.
func signedBody(t *testing.T) string {
	t.Helper()
	return upstream.SignedForm(params(t, map[string]any{"Limit": 1}), DefaultPublicKey, DefaultPrivateKey)
}

func TestFaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		fault Fault
		check func(t *testing.T, resp *http.Response, body []byte)
	}{
		{
			name:  "5xx",
			fault: Fault{HTTPStatus: http.StatusServiceUnavailable, Times: 1},
			check: func(t *testing.T, resp *http.Response, _ []byte) {
				assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
				assert.NotEmpty(t, resp.Header.Get(RequestIDHeader))
			},
		},
		{
			name:  "429 with Retry-After",
			fault: Fault{HTTPStatus: http.StatusTooManyRequests, RetryAfter: "2", Message: "slow down", Times: 1},
			check: func(t *testing.T, resp *http.Response, body []byte) {
				assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
				assert.Equal(t, "2", resp.Header.Get("Retry-After"))
				assert.Contains(t, string(body), "slow down")
			},
		},
		{
			name:  "RetCode",
			fault: Fault{RetCode: upstream.RetCodeServiceError, Message: "service busy", Times: 1},
			check: func(t *testing.T, resp *http.Response, body []byte) {
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				var out upstream.DescribeCommunityImagesResponse
				require.NoError(t, json.Unmarshal(body, &out))
				assert.Equal(t, upstream.RetCode(upstream.RetCodeServiceError), out.RetCode)
				assert.Equal(t, "service busy", out.Message)
				assert.Contains(t, string(body), `"RetCode":8433`)
			},
		},
		{
			name:  "malformed JSON",
			fault: Fault{Malformed: true, Times: 1},
			check: func(t *testing.T, resp *http.Response, body []byte) {
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
				var out upstream.DescribeCommunityImagesResponse
				assert.Error(t, json.Unmarshal(body, &out))
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, hs := testServer(t)
			s.InjectFault(tc.fault)
			resp, body := post(t, hs, signedBody(t))
			tc.check(t, resp, body)
			// Times 1: the next request is served normally.
			out := call(t, hs, params(t, nil))
			assert.Equal(t, upstream.RetCode(0), out.RetCode)
			assert.Equal(t, int64(2), s.Stats().Calls)
		})
	}
}

func TestFaultLatency(t *testing.T) {
	t.Parallel()
	s, hs := testServer(t)
	s.InjectFault(Fault{Latency: 60 * time.Millisecond, Times: 1})
	start := time.Now()
	out := call(t, hs, params(t, nil))
	assert.GreaterOrEqual(t, time.Since(start), 60*time.Millisecond)
	assert.Equal(t, upstream.RetCode(0), out.RetCode, "latency alone still serves the request")
	assert.Len(t, out.CompshareImageGroup, 20)
}

func TestWithLatency(t *testing.T) {
	t.Parallel()
	_, hs := testServer(t, WithLatency(30*time.Millisecond))
	start := time.Now()
	callOK(t, hs, nil)
	assert.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
}

func TestFaultTimesAndOrder(t *testing.T) {
	t.Parallel()
	s, hs := testServer(t)
	s.InjectFault(Fault{HTTPStatus: http.StatusBadGateway, Times: 2})
	s.InjectFault(Fault{RetCode: upstream.RetCodeServiceError, Times: 1})
	status := func() (int, upstream.RetCode) {
		resp, body := post(t, hs, signedBody(t))
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, -1
		}
		var out upstream.DescribeCommunityImagesResponse
		require.NoError(t, json.Unmarshal(body, &out))
		return resp.StatusCode, out.RetCode
	}
	for i, want := range []struct {
		status int
		code   upstream.RetCode
	}{
		{http.StatusBadGateway, -1},
		{http.StatusBadGateway, -1},
		{http.StatusOK, upstream.RetCodeServiceError},
		{http.StatusOK, 0},
	} {
		st, code := status()
		assert.Equal(t, want.status, st, "request %d", i)
		assert.Equal(t, want.code, code, "request %d", i)
	}

	// Times 0: until ClearFaults.
	s.InjectFault(Fault{HTTPStatus: http.StatusInternalServerError})
	for range 3 {
		st, _ := status()
		assert.Equal(t, http.StatusInternalServerError, st)
	}
	s.ClearFaults()
	st, code := status()
	assert.Equal(t, http.StatusOK, st)
	assert.Equal(t, upstream.RetCode(0), code)
}

func TestFaultTimesConcurrent(t *testing.T) {
	t.Parallel()
	s, hs := testServer(t)
	s.InjectFault(Fault{HTTPStatus: http.StatusServiceUnavailable, Times: 5})
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			resp, _ := post(t, hs, signedBody(t))
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	assert.Equal(t, map[int]int{http.StatusServiceUnavailable: 5, http.StatusOK: 7}, statuses)
}

func TestFaultHangReleasedByCancel(t *testing.T) {
	t.Parallel()
	s, hs := testServer(t)
	s.InjectFault(Fault{Hang: true, Times: 1})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/?Action=DescribeCommunityImages", strings.NewReader(signedBody(t)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	start := time.Now()
	_, err = http.DefaultClient.Do(req)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
	assert.Less(t, time.Since(start), 5*time.Second)
	// The handler returns once the client has gone: nothing is left in flight.
	require.Eventually(t, func() bool { return s.Stats().InFlight == 0 }, 5*time.Second, 10*time.Millisecond)
	callOK(t, hs, nil)
}

func TestStats(t *testing.T) {
	t.Parallel()
	s, hs := testServer(t)
	assert.Equal(t, Stats{}, s.Stats())

	// n requests hang until all n are in flight at once, then give up.
	const n = 6
	s.InjectFault(Fault{Hang: true, Times: n})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL, strings.NewReader(signedBody(t)))
			if !assert.NoError(t, err) {
				return
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			_, err = http.DefaultClient.Do(req)
			assert.ErrorIs(t, err, context.Canceled)
		})
	}
	require.Eventually(t, func() bool { return s.Stats().InFlight == n }, 5*time.Second, 5*time.Millisecond)
	cancel()
	wg.Wait()
	require.Eventually(t, func() bool { return s.Stats().InFlight == 0 }, 5*time.Second, 5*time.Millisecond)
	st := s.Stats()
	assert.Equal(t, int64(n), st.Calls)
	assert.Equal(t, int64(n), st.MaxInFlight)

	// Refused requests reached the handler too.
	post(t, hs, "garbage")
	assert.Equal(t, int64(n+1), s.Stats().Calls)

	s.ResetStats()
	assert.Equal(t, Stats{}, s.Stats())
	callOK(t, hs, nil)
	// The handler counts the call out after its answer is written: the
	// client may read it first.
	require.Eventually(t, func() bool { return s.Stats().InFlight == 0 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, Stats{Calls: 1, MaxInFlight: 1}, s.Stats())
}

func TestFaultRate(t *testing.T) {
	t.Parallel()
	s, hs := testServer(t)
	s.InjectFault(Fault{HTTPStatus: http.StatusServiceUnavailable, Rate: 0.1})
	var failed []int
	for n := 1; n <= 30; n++ {
		if resp, _ := post(t, hs, signedBody(t)); resp.StatusCode != http.StatusOK {
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
			failed = append(failed, n)
		}
	}
	assert.Equal(t, []int{10, 20, 30}, failed, "one request in ten, spread evenly")

	s.ClearFaults()
	s.InjectFault(Fault{HTTPStatus: http.StatusTooManyRequests, Rate: 0.03})
	count := 0
	for range 200 {
		if resp, _ := post(t, hs, signedBody(t)); resp.StatusCode == http.StatusTooManyRequests {
			count++
		}
	}
	assert.Equal(t, 6, count, "exactly ⌊200·0.03⌋")
}

func TestFaultRateWithTimes(t *testing.T) {
	t.Parallel()
	s, hs := testServer(t)
	// Applies to requests 2 and 4, then is used up; the next fault follows.
	s.InjectFault(Fault{HTTPStatus: http.StatusBadGateway, Rate: 0.5, Times: 2})
	s.InjectFault(Fault{HTTPStatus: http.StatusServiceUnavailable, Times: 1})
	var statuses []int
	for range 6 {
		resp, _ := post(t, hs, signedBody(t))
		statuses = append(statuses, resp.StatusCode)
	}
	assert.Equal(t, []int{
		http.StatusOK, http.StatusBadGateway, http.StatusOK, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusOK,
	}, statuses)
}

func TestFaultRateOutsideTheOpenIntervalIsEveryRequest(t *testing.T) {
	t.Parallel()
	for _, rate := range []float64{0, 1, 2, -0.5} {
		s, hs := testServer(t)
		s.InjectFault(Fault{HTTPStatus: http.StatusServiceUnavailable, Rate: rate})
		for range 3 {
			resp, _ := post(t, hs, signedBody(t))
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "rate %v", rate)
		}
	}
}

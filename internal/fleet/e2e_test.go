package fleet_test

// The fleet end to end: a real redis-server (Debian's), the sandbox as its
// own process with 20 ms of latency, three replicas of the built server
// sharing Redis, and HAProxy (Debian's) in front of them, health-checking
// /readyz. Everything listens on loopback ports the test picks, every loop
// is bounded, and everything is stopped at the end.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/testkit"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

// The fleet's settings: a small budget of upstream calls, so that the test
// can see it hold; a drain long enough for HAProxy to notice.
const (
	fleetQPS      = 10
	fleetBurst    = 5
	drain         = 2 * time.Second
	shutdownLimit = 5 * time.Second
	// livePoll is the replicas' LIVE_POLL_INTERVAL.
	livePoll = time.Second
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestFleet(t *testing.T) {
	tools := testkit.RequireTool(t, testkit.FleetDeps, "redis-server", "haproxy")
	redisServer, haproxy := tools[0], tools[1]
	dir := t.TempDir()
	bin := testkit.Build(t, ".")
	sandboxBin := testkit.Build(t, "./upstream/sandbox/cmd/sandbox")

	redisPort := testkit.FreePort(t)
	startRedis := func() *testkit.Process {
		p := testkit.Start(t, "redis", exec.Command(redisServer, "--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no"))
		p.WaitListening(t, redisPort)
		return p
	}
	rds := startRedis()
	redisURL := fmt.Sprintf("redis://127.0.0.1:%d/0", redisPort)
	rc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", redisPort)})
	t.Cleanup(func() { _ = rc.Close() })

	const pub, priv = "fleet-test-public", "fleet-test-private-0123456789"
	sb := exec.Command(sandboxBin, "-addr", "127.0.0.1:0", "-latency", "20ms")
	sb.Env = append(os.Environ(), "SANDBOX_PUBLIC_KEY="+pub, "SANDBOX_PRIVATE_KEY="+priv)
	sbProc := testkit.Start(t, "sandbox", sb)
	sandboxURL := sbProc.WaitFor(t, regexp.MustCompile(`listening on (http://\S+)`))

	replicas := make([]*testkit.Process, 3)
	ports := make([]int, 3)
	for i := range replicas {
		ports[i] = testkit.FreePort(t)
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(),
			"PORT="+strconv.Itoa(ports[i]),
			"COMPSHARE_BASE_URL="+sandboxURL,
			"COMPSHARE_PUBLIC_KEY="+pub,
			"COMPSHARE_PRIVATE_KEY="+priv,
			"COMPSHARE_QPS="+strconv.Itoa(fleetQPS),
			"COMPSHARE_BURST="+strconv.Itoa(fleetBurst),
			"REDIS_URL="+redisURL,
			"SHUTDOWN_DRAIN="+drain.String(),
			"SHUTDOWN_TIMEOUT="+shutdownLimit.String(),
			"LOG_LEVEL=info",
			"METRICS_ADDR=127.0.0.1:0",
			"LIVE_POLL_INTERVAL="+livePoll.String(),
		)
		replicas[i] = testkit.Start(t, fmt.Sprintf("replica%d", i+1), cmd)
		replicas[i].WaitFor(t, regexp.MustCompile(`"msg":"listening"`))
	}

	lbPort := testkit.FreePort(t)
	cfg := filepath.Join(dir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(cfg, []byte(haproxyConfig(lbPort, ports)), 0o600))
	testkit.Start(t, "haproxy", exec.Command(haproxy, "-db", "-f", cfg))
	lb := fmt.Sprintf("http://127.0.0.1:%d/query", lbPort)
	require.Eventually(t, func() bool { return get(lb, `{ __typename }`) == nil }, 10*time.Second, 50*time.Millisecond,
		"HAProxy serves through the replicas")
	require.Eventually(t, func() bool { return rc.Exists(context.Background(), "imagegraph:replicas").Val() == 1 }, 10*time.Second, 50*time.Millisecond,
		"the replicas report themselves to Redis")

	calls := func() int64 {
		t.Helper()
		resp, err := http.Get(sandboxURL + "/stats")
		require.NoError(t, err)
		defer resp.Body.Close()
		var st struct{ Calls int64 }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
		return st.Calls
	}
	replicaURL := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d/query", ports[i]) }

	t.Run("a page one replica read is answered by the others without a call", func(t *testing.T) {
		const page = `{ imageGroups(first: 7, orderBy: {field: USAGE, direction: DESC}) { nodes { groupId latestVersion { imageId } } } }`
		first := cost(t, replicaURL(0), page)
		assert.Equal(t, 1, first.UpstreamCalls)
		waitForPage(t, rc, 7) // the first replica writes it to Redis in the background
		for _, i := range []int{1, 2} {
			c := cost(t, replicaURL(i), page)
			assert.Zero(t, c.UpstreamCalls, "replica %d read it from Redis", i+1)
			assert.Equal(t, 1, c.CacheHits)
		}
	})

	t.Run("an APQ hash registered through one replica is known to the others", func(t *testing.T) {
		const q = `query Apq { imageGroups(first: 2) { totalCount } }`
		sum := sha256.Sum256([]byte(q))
		ext := `{"persistedQuery":{"version":1,"sha256Hash":"` + hex.EncodeToString(sum[:]) + `"}}`
		body, _ := json.Marshal(map[string]any{"query": q, "extensions": json.RawMessage(ext)})
		require.NoError(t, post(replicaURL(0), body))
		for _, i := range []int{1, 2} {
			u := replicaURL(i) + "?extensions=" + url.QueryEscape(ext)
			resp, err := http.Get(u)
			require.NoError(t, err)
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.NotContains(t, string(raw), "PersistedQueryNotFound", "replica %d", i+1)
			assert.Contains(t, string(raw), `"totalCount"`)
		}
	})

	t.Run("under distinct-page load the fleet keeps to one budget", func(t *testing.T) {
		before := calls()
		start := time.Now()
		failures := load(t, lb, 3*time.Second, 12, nil, func(n int) string {
			// Distinct pages: each a call the cache cannot answer.
			return fmt.Sprintf(`{ imageGroups(first: %d, after: %q) { nodes { groupId } } }`, 1+n%20, cursor(n))
		})
		elapsed := time.Since(start).Seconds()
		made := calls() - before
		assert.Zero(t, failures)
		assert.LessOrEqual(t, float64(made), fleetBurst+fleetQPS*elapsed+1,
			"%d upstream calls in %.1fs against a budget of %d/s after a burst of %d", made, elapsed, fleetQPS, fleetBurst)
		assert.Greater(t, float64(made), fleetQPS*elapsed/2, "the budget was used")
	})

	t.Run("the replicas' metrics add up to the upstream's own count", func(t *testing.T) {
		metricsURLs := make([]string, len(replicas))
		for i, r := range replicas {
			m := metricsAddr.FindStringSubmatch(r.Output.String())
			require.NotNil(t, m, "replica %d logs where its metrics are", i+1)
			metricsURLs[i] = "http://" + m[1] + "/metrics"
		}
		// Readiness probes may call the upstream between two reads: retry
		// until a quiet moment shows the sums equal.
		var sent, made float64
		require.Eventually(t, func() bool {
			sent = 0
			for _, u := range metricsURLs {
				fam := scrape(t, u)
				sent += metricValue(fam, "imagegraph_upstream_requests_total")
				assert.Equal(t, 3.0, metricValue(fam, "imagegraph_fleet_replicas"))
				assert.Equal(t, 1.0, metricValue(fam, "imagegraph_redis_up"))
				assert.Equal(t, float64(fleetQPS), metricValue(fam, "imagegraph_upstream_quota_requests_per_second"))
			}
			made = float64(calls())
			return sent == made
		}, 10*time.Second, 100*time.Millisecond, "the replicas counted %v requests; the sandbox answered %v", sent, made)
	})

	t.Run("replicas polling one cohort share its calls through Redis", func(t *testing.T) {
		const sub = `subscription Shared { imageVersion(imageId: "` + sandbox.EdgeReviewingImageID + `") { imageId status } }`
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for i := range replicas {
			_, events := testkit.SubscribeSSE(t, ctx, replicaURL(i), sub)
			select {
			case e := <-events:
				require.Contains(t, e, `"status":"REVIEWING"`, "replica %d's first event", i+1)
			case <-time.After(10 * time.Second):
				t.Fatalf("no first event from replica %d", i+1)
			}
		}
		before := calls()
		start := time.Now()
		time.Sleep(6 * livePoll)
		made := calls() - before
		ticks := time.Since(start).Seconds() / livePoll.Seconds()
		t.Logf("%d upstream calls in %.1f intervals for one cohort on three replicas", made, ticks)
		assert.LessOrEqual(t, float64(made), 1.5*ticks+2, "about one call per interval, not three")
	})

	warm := func(n int) string {
		return fmt.Sprintf(`{ imageGroups(first: %d) { totalCount nodes { groupId name } } }`, 30+n%5)
	}
	for n := range 5 {
		require.NoError(t, get(lb, warm(n)))
	}

	t.Run("Redis stopped in the middle of a load run: no request fails; started again: sharing resumes", func(t *testing.T) {
		var failures, answered atomic.Int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			// Pages read before, and new ones, which the replicas fetch
			// on their own budgets while Redis is away.
			failures.Add(load(t, lb, 6*time.Second, 8, &answered, func(n int) string {
				if n%4 == 0 {
					return fmt.Sprintf(`{ imageGroups(first: %d) { totalCount nodes { groupId } } }`, 40+n%10)
				}
				return warm(n)
			}))
		}()
		underWay(t, &answered)
		rds.Kill(t)
		require.Eventually(t, func() bool {
			for _, r := range replicas {
				if !strings.Contains(r.Output.String(), "redis unavailable") {
					return false
				}
			}
			return true
		}, 10*time.Second, 50*time.Millisecond, "every replica noticed Redis go")
		startRedis() // on the same port, empty
		<-done
		assert.Zero(t, failures.Load())
		require.Eventually(t, func() bool {
			for _, r := range replicas {
				if !strings.Contains(r.Output.String(), "redis back") {
					return false
				}
			}
			return true
		}, 10*time.Second, 50*time.Millisecond, "every replica picked Redis up again")
		// Sharing resumes: a page read through one replica reaches the others.
		const page = `{ imageGroups(first: 9, orderBy: {field: PUBLISHED_AT, direction: ASC}) { nodes { groupId } } }`
		assert.Equal(t, 1, cost(t, replicaURL(2), page).UpstreamCalls)
		waitForPage(t, rc, 9)
		assert.Zero(t, cost(t, replicaURL(0), page).UpstreamCalls, "shared through Redis again")
	})

	t.Run("one replica sent SIGTERM in the middle of a load run: no request fails, and it exits within the drain and the shutdown timeout", func(t *testing.T) {
		var failures, answered atomic.Int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			failures.Add(load(t, lb, 5*time.Second, 8, &answered, warm))
		}()
		underWay(t, &answered)
		victim := replicas[1]
		sent := time.Now()
		require.NoError(t, victim.Cmd.Process.Signal(syscall.SIGTERM))
		err := victim.Exit(t, drain+shutdownLimit+5*time.Second)
		took := time.Since(sent)
		<-done
		assert.Zero(t, failures.Load())
		assert.NoError(t, err, "exits 0: %s", victim.Output)
		assert.GreaterOrEqual(t, took, drain, "it served through the drain")
		assert.Less(t, took, drain+shutdownLimit, "and stopped within the shutdown timeout")
	})
}

// load sends requests through url from clients goroutines for d, the n-th
// request being query(n), counting those answered in answered (when not
// nil), and returns how many failed (a transport error, a status other than
// 200, or an "errors" entry in the body).
func load(t *testing.T, u string, d time.Duration, clients int, answered *atomic.Int64, query func(n int) string) int64 {
	t.Helper()
	var failures, next atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for time.Now().Before(stop) {
				if err := get(u, query(int(next.Add(1)))); err != nil {
					if failures.Add(1) <= 3 {
						t.Log(err)
					}
				} else if answered != nil {
					answered.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return failures.Load()
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// costs is extensions.cost of an answer.
type costs struct {
	UpstreamCalls int `json:"upstreamCalls"`
	CacheHits     int `json:"cacheHits"`
}

// cost POSTs one query that must succeed and returns what it cost.
func cost(t *testing.T, u, query string) costs {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	resp, err := httpClient.Post(u, "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		Errors     []any `json:"errors"`
		Extensions struct {
			Cost costs `json:"cost"`
		} `json:"extensions"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Empty(t, out.Errors)
	return out.Extensions.Cost
}

// get POSTs one query and fails on anything but a 200 without errors.
func get(u, query string) error {
	body, _ := json.Marshal(map[string]any{"query": query})
	return post(u, body)
}

func post(u string, body []byte) error {
	resp, err := httpClient.Post(u, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || bytes.Contains(raw, []byte(`"errors"`)) {
		return fmt.Errorf("status %d: %.300s", resp.StatusCode, raw)
	}
	return nil
}

// cursor is the cursor of position n, as the API encodes it.
func cursor(n int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("pos:" + strconv.Itoa(n%140)))
}

// haproxyConfig balances lbPort over the replicas, health-checking /readyz
// every 100 ms (out after one failure), and retries a request a replica
// closed on (the buffered body makes a POST retryable).
func haproxyConfig(lbPort int, ports []int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
  maxconn 2000
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch
  option http-buffer-request
  retry-on all-retryable-errors
frontend fleet
  bind 127.0.0.1:%d
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 100ms fall 1 rise 2
`, lbPort)
	for i, p := range ports {
		fmt.Fprintf(&b, "  server r%d 127.0.0.1:%d check\n", i+1, p)
	}
	return b.String()
}

// underWay waits until a load run has had requests answered: what the
// test does next happens in the middle of it.
func underWay(t *testing.T, answered *atomic.Int64) {
	t.Helper()
	require.Eventually(t, func() bool { return answered.Load() >= 20 }, 10*time.Second, 10*time.Millisecond, "the load run answers")
}

// waitForPage waits until Redis holds the cache entry of a page of limit
// groups, which the replica that fetched it writes in the background: the
// entry whose key (the request's parameters, URL-encoded) has that Limit
// and looks up no GroupId or CompShareImageId.
func waitForPage(t *testing.T, rc *redis.Client, limit int) {
	t.Helper()
	const prefix = "imagegraph:cache:"
	require.Eventually(t, func() bool {
		keys, _ := rc.Keys(context.Background(), prefix+"*").Result()
		for _, k := range keys {
			q, err := url.ParseQuery(strings.TrimPrefix(k, prefix))
			if err == nil && q.Get("Limit") == strconv.Itoa(limit) && q.Get("GroupId") == "" && q.Get("CompShareImageId") == "" {
				return true
			}
		}
		return false
	}, 5*time.Second, 20*time.Millisecond, "the page of %d in Redis", limit)
}

// metricsAddr finds the address of a replica's metrics in its log.
var metricsAddr = regexp.MustCompile(`"msg":"metrics listening","addr":"([^"]+)"`)

// scrape reads a replica's metrics.
func scrape(t *testing.T, u string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fam, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fam
}

// metricValue sums the series of a counter or gauge family.
func metricValue(fam map[string]*dto.MetricFamily, name string) float64 {
	sum := 0.0
	for _, m := range fam[name].GetMetric() {
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return sum
}

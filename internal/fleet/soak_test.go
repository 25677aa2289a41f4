//go:build soak

package fleet_test

// The chaos soak (make soak): the fleet as TestFleet runs it (three
// replicas of the built server, a real redis-server, HAProxy in front and
// the sandbox as a process of its own), held under a mixed workload for
// SOAK_DURATION (10 minutes by default) while the upstream fails in turn
// (503s, 429s, timeouts and malformed JSON on a few per cent of calls, then
// a full outage), Redis is SIGKILLed and started again, one replica is
// SIGKILLed and another drained, each started again on its own port.
// Every answer is checked against the sandbox's own dataset, every
// subscriber against the changes the soak makes, and the replicas'
// goroutines, descriptors and memory must come back after the last fault.
// It writes a summary (markdown and JSON) and a chart into SOAK_OUT
// (bin/soak/ by default). The arithmetic and the drawing are package soak's,
// tested by make test; this file runs the processes and the traffic.
//
// Every loop is bounded by the soak's context, and everything it starts is
// stopped by the test's cleanups, whatever happens.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/soak"
	"github.com/compshare/imagegraph/internal/testkit"
)

// The fleet's settings in the soak: those of a deployment but for a short
// poll interval and upstream timeout (so that a change and a hung call are
// over within seconds), a drain HAProxy notices, and logs at warn (a line
// per request would be the soak's memory).
const (
	soakPollInterval = 2 * time.Second
	soakUpstreamTime = 2 * time.Second
	soakDrain        = 3 * time.Second
	soakShutdown     = 5 * time.Second
	// breakerCooldown is COMPSHARE_BREAKER_COOLDOWN's default: after the
	// outage a replica's circuit stays open this long before it probes.
	breakerCooldown = 10 * time.Second
	// The caches' defaults: how old a read may be (docs/caching.md).
	cacheTTL, cacheSWR, cacheSIE = 30 * time.Second, 60 * time.Second, 15 * time.Minute
	// soakWorkers send the queries, each one every soakPace.
	soakWorkers = 8
	soakPace    = 125 * time.Millisecond
	// changeEvery is how often the soak changes a watched version.
	changeEvery = 5 * time.Second
	// deliveryDeadline: a poll reads data no older than its interval, so a
	// change can wait two intervals; one upstream attempt may hang for its
	// timeout; and a second of slack.
	deliveryDeadline = 2*soakPollInterval + soakUpstreamTime + time.Second
)

const soakPub, soakPriv = "soak-public", "soak-private-0123456789"

// replicaNames name the replicas, as HAProxy's X-Replica says them.
var replicaNames = []string{"replica 1", "replica 2", "replica 3"}

func TestSoak(t *testing.T) {
	d := soak.DefaultDuration
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		var err error
		d, err = time.ParseDuration(v)
		require.NoError(t, err, "SOAK_DURATION")
	}
	plan, err := soak.NewPlan(d)
	require.NoError(t, err)
	out := os.Getenv("SOAK_OUT")
	switch {
	case out == "":
		out = filepath.Join(testkit.ModuleRoot(t), "bin", "soak")
	case !filepath.IsAbs(out): // relative to the module's root, where make runs
		out = filepath.Join(testkit.ModuleRoot(t), out)
	}
	oracle, err := soak.NewOracle()
	require.NoError(t, err)
	watched := oracle.WatchedVersions(3)
	queries, err := oracle.Catalogue(watched)
	require.NoError(t, err)

	rec := &soak.Recorder{}
	f := startSoakFleet(t, rec)
	t.Logf("fleet up: HAProxy at %s, sandbox at %s; soaking for %s, output into %s", f.lb, f.sandboxURL, d, out)

	history := &soak.Changes{}
	start := time.Now()
	for _, id := range watched {
		v, _ := oracle.Version(id)
		history.Set(id, v.VersionDesc, start)
	}
	faults := &faultLog{}
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(d))
	t.Cleanup(cancel)

	var wg sync.WaitGroup
	for i := range soakWorkers {
		w := &worker{n: i, lb: f.lb, queries: queries, rec: rec, history: history, faults: faults}
		wg.Go(func() { w.run(ctx) })
	}
	var subs []*soak.Subscriber
	for i := range 4 {
		logs := make([]*soak.Subscriber, len(watched))
		for j, id := range watched {
			logs[j] = &soak.Subscriber{Name: fmt.Sprintf("ws-%d/%d", i+1, j+1), Version: id}
		}
		subs = append(subs, logs...)
		wg.Go(func() { wsSubscriber(ctx, f.lb, logs, rec) })
	}
	for i := range 2 {
		for j, id := range watched {
			log := &soak.Subscriber{Name: fmt.Sprintf("sse-%d/%d", i+1, j+1), Version: id}
			subs = append(subs, log)
			wg.Go(func() { sseSubscriber(ctx, f.lb, log, rec) })
		}
	}
	wg.Go(func() {
		mutate(ctx, f.sandboxURL, watched, history, plan.Duration-deliveryDeadline-breakerCooldown, start, rec)
	})
	wg.Go(func() { f.sample(ctx, rec) })

	f.runFaults(ctx, t, plan, start, faults)
	<-ctx.Done()
	end := time.Now()
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		t.Error("the soak's clients did not stop within 30s of its end")
	}

	// The subscribers: every change, every value, every reconnection.
	var excused []soak.Interval
	for _, w := range faults.windows() {
		if w.Kind == soak.KindUpstreamOutage {
			excused = append(excused, soak.Interval{Start: w.Start, End: w.End.Add(breakerCooldown)})
		}
	}
	logs := make([]soak.Subscriber, len(subs))
	for i, s := range subs {
		logs[i] = *s
		if n := len(s.Sessions); n > 0 && s.Sessions[n-1].End.IsZero() {
			logs[i].Sessions[n-1].End = end
		}
	}
	live := soak.CheckSubscribers(history, logs, soak.LiveRules{Deadline: deliveryDeadline, Reconnect: 15 * time.Second, Excused: excused, End: end})
	rec.Problem(live.Problems...)
	f.checkLogs(rec)

	in := rec.Input()
	in.Plan, in.Start, in.End, in.Live, in.Subscribers = plan, start, end, live, len(subs)
	in.Windows = faults.windows()
	in.Setup = []string{
		fmt.Sprintf("Three replicas of the built server behind HAProxy (health checks on /readyz every 100 ms), Redis, and the sandbox as a process of its own with 20 ms of latency; LIVE_POLL_INTERVAL=%s, COMPSHARE_TIMEOUT=%s, SHUTDOWN_DRAIN=%s, the rest at its defaults (CACHE_TTL 30s, stale-while-revalidate 60s, stale-if-error 15m, COMPSHARE_QPS 20).", soakPollInterval, soakUpstreamTime, soakDrain),
		fmt.Sprintf("%d clients each sent a query every %s (%d distinct: pages with various first, after, filter and orderBy, lookups by upstream and global id, reads of the watched versions), as POST, as an APQ GET or by persisted-operation id; %d subscriptions watched %d versions the soak changed every %s.", soakWorkers, soakPace, len(queries), len(subs), len(watched), changeEvery),
	}
	sum := soak.Summarize(in)
	require.NoError(t, soak.Write(out, in, sum))
	t.Logf("summary in %s:\n%s", out, soak.Markdown(sum))
	for _, g := range sum.Goals {
		if !g.Met && !g.Unjudged {
			t.Errorf("goal missed: %s: %s (target %s)", g.Name, g.Actual, g.Target)
		}
	}
	for _, p := range in.Problems[:min(len(in.Problems), 20)] {
		t.Error(p)
	}
}

// soakFleet is the fleet the soak runs: Redis, the sandbox, the replicas
// and HAProxy, on loopback ports of their own.
type soakFleet struct {
	redisServer string
	redisPort   int
	redis       *testkit.Process
	sandboxURL  string
	lb          string
	bin         string
	env         []string
	replicas    []*soakReplica
	rec         *soak.Recorder
}

// soakReplica is one replica: its ports stay, its process changes when it
// is started again.
type soakReplica struct {
	name        string
	port        int
	metricsPort int

	mu   sync.Mutex
	proc *testkit.Process
	// lives are every process it ran, in order.
	lives []*testkit.Process
}

func (r *soakReplica) process() *testkit.Process {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc
}

func startSoakFleet(t *testing.T, rec *soak.Recorder) *soakFleet {
	tools := testkit.RequireTool(t, testkit.FleetDeps, "redis-server", "haproxy")
	dir := t.TempDir()
	f := &soakFleet{redisServer: tools[0], redisPort: testkit.FreePort(t), rec: rec}
	f.bin = testkit.Build(t, ".")
	sandboxBin := testkit.Build(t, "./upstream/sandbox/cmd/sandbox")
	f.startRedis(t)

	sb := exec.Command(sandboxBin, "-addr", "127.0.0.1:0", "-latency", "20ms")
	sb.Env = append(os.Environ(), "SANDBOX_PUBLIC_KEY="+soakPub, "SANDBOX_PRIVATE_KEY="+soakPriv)
	f.sandboxURL = testkit.Start(t, "sandbox", sb).WaitFor(t, sandboxListening)

	manifest := filepath.Join(dir, "persisted-operations.json")
	require.NoError(t, os.WriteFile(manifest, soak.Manifest(), 0o600))
	f.env = append(os.Environ(),
		"COMPSHARE_BASE_URL="+f.sandboxURL,
		"COMPSHARE_PUBLIC_KEY="+soakPub,
		"COMPSHARE_PRIVATE_KEY="+soakPriv,
		"COMPSHARE_TIMEOUT="+soakUpstreamTime.String(),
		fmt.Sprintf("REDIS_URL=redis://127.0.0.1:%d/0", f.redisPort),
		"PERSISTED_OPERATIONS="+manifest,
		"LIVE_POLL_INTERVAL="+soakPollInterval.String(),
		"SHUTDOWN_DRAIN="+soakDrain.String(),
		"SHUTDOWN_TIMEOUT="+soakShutdown.String(),
		"LOG_LEVEL=warn",
		"LOG_FORMAT=json",
	)
	ports := make([]int, len(replicaNames))
	for i, name := range replicaNames {
		r := &soakReplica{name: name, port: testkit.FreePort(t), metricsPort: testkit.FreePort(t)}
		ports[i] = r.port
		f.replicas = append(f.replicas, r)
		f.startReplica(t, r)
	}
	lbPort := testkit.FreePort(t)
	cfg := filepath.Join(dir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(cfg, []byte(soakHAProxyConfig(lbPort, ports)), 0o600))
	testkit.Start(t, "haproxy", exec.Command(tools[1], "-db", "-f", cfg))
	f.lb = fmt.Sprintf("127.0.0.1:%d", lbPort)
	require.Eventually(t, func() bool { return get("http://"+f.lb+"/query", `{ __typename }`) == nil }, 10*time.Second, 50*time.Millisecond,
		"HAProxy serves through the replicas")
	return f
}

func (f *soakFleet) startRedis(t *testing.T) {
	f.redis = testkit.Start(t, "redis", exec.Command(f.redisServer, "--port", strconv.Itoa(f.redisPort), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no"))
	f.redis.WaitListening(t, f.redisPort)
}

// startReplica starts r's process on its ports and waits until it is
// ready.
func (f *soakFleet) startReplica(t *testing.T, r *soakReplica) {
	cmd := exec.Command(f.bin)
	cmd.Env = append(f.env, "PORT="+strconv.Itoa(r.port), fmt.Sprintf("METRICS_ADDR=127.0.0.1:%d", r.metricsPort))
	p := testkit.Start(t, r.name, cmd)
	p.WaitListening(t, r.port)
	p.WaitUntil(t, "/readyz 200", 50*time.Millisecond, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", r.port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	r.mu.Lock()
	r.proc = p
	r.lives = append(r.lives, p)
	r.mu.Unlock()
	f.rec.Started(r.name, p.Cmd.Process.Pid, time.Now())
}

// soakHAProxyConfig is TestFleet's HAProxy with what long-lived streams
// need: a tunnel timeout for WebSockets, and the replica that answered in
// X-Replica. It retries only what a replica that died or closed causes
// (never a status a replica sent, which the soak must see).
func soakHAProxyConfig(lbPort int, ports []int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
  maxconn 4000
defaults
  mode http
  timeout connect 1s
  timeout client 60s
  timeout server 60s
  timeout tunnel 1h
  timeout client-fin 5s
  timeout server-fin 5s
  retries 3
  option redispatch
  option http-buffer-request
  retry-on conn-failure empty-response junk-response response-timeout
frontend fleet
  bind 127.0.0.1:%d
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 100ms fall 1 rise 2
  http-response set-header X-Replica %%[srv_name]
`, lbPort)
	for i, p := range ports {
		fmt.Fprintf(&b, "  server replica%d 127.0.0.1:%d check\n", i+1, p)
	}
	return b.String()
}

// faultLog is the fault windows as they happen: the workload asks it
// whether a request overlapped one (where a coded 503 is allowed).
type faultLog struct {
	mu   sync.Mutex
	done []soak.Window
	open *soak.Window
}

func (l *faultLog) begin(kind soak.Kind, label string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open = &soak.Window{Kind: kind, Label: label, Start: time.Now()}
}

func (l *faultLog) end() soak.Window {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := *l.open
	w.End = time.Now()
	l.done = append(l.done, w)
	l.open = nil
	return w
}

func (l *faultLog) windows() []soak.Window {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]soak.Window(nil), l.done...)
}

// overlaps reports whether [from, to] meets a fault window (or the two
// seconds after one, while HAProxy and the circuits catch up).
func (l *faultLog) overlaps(from, to time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open != nil && !to.Before(l.open.Start) {
		return true
	}
	for _, w := range l.done {
		if !to.Before(w.Start) && !from.After(w.End.Add(2*time.Second)) {
			return true
		}
	}
	return false
}

// runFaults injects the plan's faults in turn, each at its time, and
// records each window as it happened.
func (f *soakFleet) runFaults(ctx context.Context, t *testing.T, plan soak.Plan, start time.Time, faults *faultLog) {
	sleepUntil := func(at time.Time) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Until(at)):
			return true
		}
	}
	for _, step := range plan.Steps {
		if !sleepUntil(start.Add(step.At)) {
			return
		}
		t.Logf("%s: %s", time.Since(start).Round(time.Second), step.Label)
		switch step.Kind {
		case soak.KindUpstream503, soak.KindUpstream429, soak.KindUpstreamTimeout, soak.KindUpstreamMalformed, soak.KindUpstreamOutage:
			body := fmt.Sprintf(`{"kind":%q,"rate":%g}`, strings.TrimPrefix(string(step.Kind), "upstream-"), soak.FaultRate)
			if step.Kind == soak.KindUpstreamOutage {
				body = `{"outage":true}`
			}
			faults.begin(step.Kind, step.Label)
			f.setFaults(t, http.MethodPost, body)
			sleepUntil(start.Add(step.End()))
			f.setFaults(t, http.MethodDelete, "")
		case soak.KindRedisKill:
			faults.begin(step.Kind, step.Label)
			f.redis.Kill(t) // SIGKILL
			sleepUntil(start.Add(step.End()))
			f.startRedis(t) // on the same port, empty
		case soak.KindReplicaKill:
			r := f.replicas[step.Replica]
			p := r.process()
			faults.begin(step.Kind, step.Label)
			p.Kill(t) // SIGKILL
			f.rec.Ended(p.Cmd.Process.Pid, time.Now())
			sleepUntil(start.Add(step.End()))
			f.startReplica(t, r)
		case soak.KindReplicaDrain:
			r := f.replicas[step.Replica]
			p := r.process()
			faults.begin(step.Kind, step.Label)
			require.NoError(t, p.Cmd.Process.Signal(syscall.SIGTERM))
			if err := p.Exit(t, soakDrain+soakShutdown+5*time.Second); err != nil {
				f.rec.Problem(soak.Problem{Kind: soak.ProblemFleet, Detail: fmt.Sprintf("%s exited with %v after SIGTERM", r.name, err)})
			}
			f.rec.Ended(p.Cmd.Process.Pid, time.Now())
			f.startReplica(t, r)
		}
		w := faults.end()
		t.Logf("%s: %s over after %s", time.Since(start).Round(time.Second), step.Label, w.End.Sub(w.Start).Round(100*time.Millisecond))
	}
}

// setFaults sends method /faults to the sandbox.
func (f *soakFleet) setFaults(t *testing.T, method, body string) {
	req, err := http.NewRequest(method, f.sandboxURL+"/faults", strings.NewReader(body))
	require.NoError(t, err)
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode, "%s /faults %s: %s", method, body, raw)
}

// checkLogs makes an internal error or a panic any replica's process
// logged a problem: either is a bug (docs/errors.md).
func (f *soakFleet) checkLogs(rec *soak.Recorder) {
	for _, r := range f.replicas {
		for _, p := range r.lives {
			for _, line := range strings.Split(p.Output.String(), "\n") {
				if strings.Contains(line, `"msg":"internal error"`) || strings.Contains(line, "panic") {
					rec.Problem(soak.Problem{Kind: soak.ProblemFleet, Detail: fmt.Sprintf("%s (pid %d) logged: %.300s", r.name, p.Cmd.Process.Pid, line)})
				}
			}
		}
	}
}

// sandboxListening finds the sandbox's address in its first line.
var sandboxListening = regexp.MustCompile(`listening on (http://\S+)`)

// mutate changes a watched version's versionDescription every changeEvery
// through the sandbox's POST /versions/{imageId}, in turn, until until has
// passed since start (a change later than that could not be judged),
// recording each change in history.
func mutate(ctx context.Context, sandboxURL string, watched []string, history *soak.Changes, until time.Duration, start time.Time, rec *soak.Recorder) {
	tick := time.NewTicker(changeEvery)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if time.Since(start) > until {
			return
		}
		id := watched[n%len(watched)]
		value := fmt.Sprintf("soak change %d at %s", n+1, time.Now().Format("15:04:05.000"))
		body, _ := json.Marshal(map[string]string{"versionDesc": value})
		at := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, sandboxURL+"/versions/"+id, bytes.NewReader(body))
		resp, err := httpClient.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				rec.Problem(soak.Problem{Kind: soak.ProblemFleet, Detail: "the sandbox refused a change: " + err.Error()})
			}
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			rec.Problem(soak.Problem{Kind: soak.ProblemFleet, Detail: fmt.Sprintf("the sandbox answered a change with %d", resp.StatusCode)})
			continue
		}
		history.Set(id, value, at)
	}
}

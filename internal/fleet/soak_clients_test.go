//go:build soak

package fleet_test

// The soak's clients: the workload's workers, the subscribers over
// WebSocket and SSE, and the sampler of the replicas' processes.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/compshare/imagegraph/internal/soak"
)

// soakHTTP is the workload's client: keep-alive connections to HAProxy.
var soakHTTP = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}}

// worker sends queries of the catalogue through HAProxy, one every
// soakPace, checks each answer and records it.
type worker struct {
	n       int
	lb      string
	queries []soak.Query
	rec     *soak.Recorder
	history *soak.Changes
	faults  *faultLog
	// byKind are the catalogue's queries by kind.
	byKind map[string][]soak.Query
}

// mix is how often each kind of query is sent.
var mix = []struct {
	kind   string
	weight int
}{{"page", 45}, {"group", 15}, {"version", 20}, {"node", 12}, {"watched", 8}}

// apqComment makes the APQ transport's document differ from the
// manifest's (which the server knows by hash): its hash must be
// registered, through one replica, for the fleet (Redis) to know it.
const apqComment = "# sent by APQ\n"

func (w *worker) run(ctx context.Context) {
	w.byKind = map[string][]soak.Query{}
	for _, q := range w.queries {
		w.byKind[q.Kind()] = append(w.byKind[q.Kind()], q)
	}
	rng := rand.New(rand.NewPCG(uint64(w.n), 2026))
	tick := time.NewTicker(soakPace)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		q := w.pick(rng)
		transport := []string{"post", "post", "apq", "persisted"}[rng.IntN(4)]
		sent := time.Now()
		status, body, replica, err := w.send(ctx, &q, transport, rng.IntN(2) == 0)
		took := time.Since(sent)
		if ctx.Err() != nil {
			return // cut short by the end: not an answer to judge
		}
		r := soak.Request{At: sent, Latency: took, Replica: replica, Transport: transport, Kind: q.Label()}
		if err != nil {
			r.Outcome = soak.OutcomeTransport
			w.rec.Request(r)
			w.rec.Problem(soak.Problem{Kind: soak.ProblemTransport, Detail: fmt.Sprintf("%s %s by %s: %v", q.Op.Name, compactVars(q.Variables), transport, err)})
			continue
		}
		a := soak.Check(&q, status, body, w.faults.overlaps(sent, time.Now()))
		if q.Watched != "" && a.Value != "" {
			// The caches may answer with data as old as their windows:
			// stale-while-revalidate, or stale-if-error when it says so.
			oldest := cacheTTL + cacheSWR + 5*time.Second
			if a.StaleSeconds > 0 {
				oldest = cacheTTL + cacheSIE + 5*time.Second
			}
			if !w.history.ValidWithin(q.Watched, a.Value, sent.Add(-oldest), time.Now()) {
				a.Problems = append(a.Problems, soak.Problem{Kind: soak.ProblemWrong,
					Detail: fmt.Sprintf("Watched %s read %q: not its value at any time in the %s before", q.Watched, a.Value, oldest)})
			}
		}
		r.Outcome, r.Data = a.Outcome, a.Data
		w.rec.Request(r)
		w.rec.Problem(a.Problems...)
	}
}

func (w *worker) pick(rng *rand.Rand) soak.Query {
	total := 0
	for _, m := range mix {
		total += m.weight
	}
	n := rng.IntN(total)
	for _, m := range mix {
		if n < m.weight {
			qs := w.byKind[m.kind]
			return qs[rng.IntN(len(qs))]
		}
		n -= m.weight
	}
	panic("unreachable")
}

// send sends q through HAProxy by transport (post: the text; persisted:
// the manifest's id; apq: a GET by hash, registered by a POST when the
// fleet does not know it, as Apollo's link does) and returns the final
// answer's status, body and replica. strict asks for
// application/graphql-response+json.
func (w *worker) send(ctx context.Context, q *soak.Query, transport string, strict bool) (int, []byte, string, error) {
	u := "http://" + w.lb + "/query"
	post := func(body map[string]any) (*http.Request, error) {
		body["variables"], body["operationName"] = q.Variables, q.Op.Name
		b, _ := json.Marshal(body)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, err
	}
	var req *http.Request
	var err error
	switch transport {
	case "post":
		req, err = post(map[string]any{"query": q.Op.Document})
	case "persisted":
		req, err = post(map[string]any{"documentId": q.Op.Hash()})
	case "apq":
		doc := apqComment + q.Op.Document
		sum := sha256.Sum256([]byte(doc))
		ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
		vars, _ := json.Marshal(q.Variables)
		exts, _ := json.Marshal(ext)
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u+"?operationName="+q.Op.Name+"&variables="+url.QueryEscape(string(vars))+"&extensions="+url.QueryEscape(string(exts)), nil)
		if err != nil {
			return 0, nil, "", err
		}
		status, body, replica, gerr := do(req, strict)
		if gerr != nil || !bytes.Contains(body, []byte(`"PERSISTED_QUERY_NOT_FOUND"`)) {
			return status, body, replica, gerr
		}
		req, err = post(map[string]any{"query": doc, "extensions": ext})
	}
	if err != nil {
		return 0, nil, "", err
	}
	return do(req, strict)
}

func do(req *http.Request, strict bool) (int, []byte, string, error) {
	if strict {
		req.Header.Set("Accept", "application/graphql-response+json")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := soakHTTP.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, replicaName(resp.Header.Get("X-Replica")), err
}

// replicaName turns HAProxy's server name (replica1) into the replica's.
func replicaName(srv string) string {
	if n, ok := strings.CutPrefix(srv, "replica"); ok {
		return "replica " + n
	}
	return srv
}

func compactVars(v map[string]any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// watchPayload is the subscribe payload of a watched version.
func watchPayload(id string) map[string]any {
	return map[string]any{"query": soak.OpWatch.Document, "operationName": soak.OpWatch.Name, "variables": map[string]any{"imageId": id}}
}

// event reads a subscription's next payload: the value it carries, or the
// code of its first error (OutcomeUncoded for one without a code).
func event(payload json.RawMessage) soak.Event {
	var p struct {
		Data struct {
			ImageVersion *struct {
				VersionDescription string `json:"versionDescription"`
			} `json:"imageVersion"`
		} `json:"data"`
		Errors []struct {
			Extensions map[string]any `json:"extensions"`
		} `json:"errors"`
	}
	e := soak.Event{At: time.Now()}
	if err := json.Unmarshal(payload, &p); err != nil {
		e.Code = soak.OutcomeUncoded
		return e
	}
	if len(p.Errors) > 0 {
		e.Code, _ = p.Errors[0].Extensions["code"].(string)
		if e.Code == "" {
			e.Code = soak.OutcomeUncoded
		}
		return e
	}
	if p.Data.ImageVersion == nil {
		e.Code = "NULL"
		return e
	}
	e.Value = p.Data.ImageVersion.VersionDescription
	return e
}

// record adds an event to a log, and a problem for an error without a
// code or a null without an error (the watched versions exist).
func record(log *soak.Subscriber, e soak.Event, rec *soak.Recorder) {
	log.Events = append(log.Events, e)
	switch e.Code {
	case soak.OutcomeUncoded:
		rec.Problem(soak.Problem{Kind: soak.ProblemUncoded, Detail: log.Name + ": an event with an error without a code"})
	case "NULL":
		rec.Problem(soak.Problem{Kind: soak.ProblemWrong, Detail: log.Name + ": an event with imageVersion null and no error"})
	}
}

// backoff waits before a reconnection: 100 ms, doubling to 2 s.
func backoff(ctx context.Context, n int) bool {
	d := min(100*time.Millisecond<<min(n, 5), 2*time.Second)
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// wsSubscriber holds one graphql-transport-ws connection through HAProxy
// with a subscription per log, and connects and subscribes again whenever
// it ends (a 1012 at a drain, a cut at a kill), until ctx ends.
func wsSubscriber(ctx context.Context, lb string, logs []*soak.Subscriber, rec *soak.Recorder) {
	for failures := 0; ctx.Err() == nil; {
		closeCode, ok := wsSession(ctx, lb, logs, rec)
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		for _, l := range logs {
			if n := len(l.Sessions); n > 0 && l.Sessions[n-1].End.IsZero() {
				l.Sessions[n-1].End, l.Sessions[n-1].CloseCode = now, closeCode
			}
		}
		if ok {
			failures = 0
		} else {
			failures++
		}
		if !backoff(ctx, failures) {
			return
		}
	}
}

// wsSession runs one connection until it ends, returning its close code
// and whether it got as far as subscribing.
func wsSession(ctx context.Context, lb string, logs []*soak.Subscriber, rec *soak.Recorder) (int, bool) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(dctx, "ws://"+lb+"/query", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		return 0, false
	}
	defer c.CloseNow()
	if err := wsjson.Write(dctx, c, map[string]any{"type": "connection_init"}); err != nil {
		return closeCode(err), false
	}
	var ack map[string]any
	if err := wsjson.Read(dctx, c, &ack); err != nil || ack["type"] != "connection_ack" {
		return closeCode(err), false
	}
	for i, l := range logs {
		if err := wsjson.Write(dctx, c, map[string]any{"id": strconv.Itoa(i), "type": "subscribe", "payload": watchPayload(l.Version)}); err != nil {
			return closeCode(err), false
		}
		l.Sessions = append(l.Sessions, soak.Session{Start: time.Now()})
	}
	for {
		var m struct {
			Type    string          `json:"type"`
			ID      string          `json:"id"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := wsjson.Read(ctx, c, &m); err != nil {
			if ctx.Err() != nil {
				_ = c.Close(websocket.StatusNormalClosure, "the soak is over")
			}
			return closeCode(err), true
		}
		switch m.Type {
		case "ping":
			_ = wsjson.Write(ctx, c, map[string]any{"type": "pong"})
		case "next", "error", "complete":
			i, err := strconv.Atoi(m.ID)
			if err != nil || i < 0 || i >= len(logs) {
				rec.Problem(soak.Problem{Kind: soak.ProblemSubscription, Detail: fmt.Sprintf("a %s message for subscription %q", m.Type, m.ID)})
				continue
			}
			switch m.Type {
			case "next":
				record(logs[i], event(m.Payload), rec)
			case "error":
				var errs []struct {
					Extensions map[string]any `json:"extensions"`
				}
				_ = json.Unmarshal(m.Payload, &errs)
				e := soak.Event{At: time.Now(), Code: soak.OutcomeUncoded}
				if len(errs) > 0 {
					if code, _ := errs[0].Extensions["code"].(string); code != "" {
						e.Code = code
					}
				}
				record(logs[i], e, rec)
				return closeCode(c.Close(websocket.StatusNormalClosure, "subscribing again")), true
			case "complete":
				// The server ended the subscription (it is shutting
				// down): connect again, to another replica.
				return closeCode(c.Close(websocket.StatusNormalClosure, "subscribing again")), true
			}
		}
	}
}

// closeCode is the close code of the error that ended a connection: 1006
// (abnormal closure) when it ended without one.
func closeCode(err error) int {
	if c := websocket.CloseStatus(err); c >= 0 {
		return int(c)
	}
	return int(websocket.StatusAbnormalClosure)
}

// sseClient holds SSE streams: no timeout but the stream's own.
var sseClient = &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 10 * time.Second}}

// sseSubscriber holds one graphql-sse stream through HAProxy (distinct
// connections mode), and subscribes again whenever it ends, until ctx
// ends.
func sseSubscriber(ctx context.Context, lb string, log *soak.Subscriber, rec *soak.Recorder) {
	body, _ := json.Marshal(watchPayload(log.Version))
	for failures := 0; ctx.Err() == nil; {
		ok := sseSession(ctx, lb, body, log, rec)
		if ctx.Err() != nil {
			return
		}
		if n := len(log.Sessions); n > 0 && log.Sessions[n-1].End.IsZero() {
			log.Sessions[n-1].End = time.Now()
		}
		if ok {
			failures = 0
		} else {
			failures++
		}
		if !backoff(ctx, failures) {
			return
		}
	}
}

func sseSession(ctx context.Context, lb string, body []byte, log *soak.Subscriber, rec *soak.Recorder) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+lb+"/query", bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	sent := time.Now()
	resp, err := sseClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode >= 500 && !bytes.Contains(raw, []byte(`"code"`)) {
			rec.Problem(soak.Problem{Kind: soak.Problem5xx, Detail: fmt.Sprintf("%s: an SSE subscription answered %d: %q", log.Name, resp.StatusCode, raw)})
		}
		return false
	}
	log.Sessions = append(log.Sessions, soak.Session{Start: sent})
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	ev := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			ev = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && ev == "next":
			record(log, event(json.RawMessage(strings.TrimPrefix(line, "data: "))), rec)
		}
	}
	return true
}

// sample records, every second, each replica's RSS and descriptors (from
// /proc) and goroutines (go_goroutines from its metrics).
func (f *soakFleet) sample(ctx context.Context, rec *soak.Recorder) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	client := &http.Client{Timeout: time.Second}
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var round []soak.Resource
		for _, r := range f.replicas {
			p := r.process()
			select {
			case <-p.Done():
				continue // down: no sample
			default:
			}
			pid := p.Cmd.Process.Pid
			rss, err := vmRSS(pid)
			if err != nil {
				continue
			}
			fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
			if err != nil {
				continue
			}
			m := scrapeMetrics(client, r.metricsPort)
			round = append(round, soak.Resource{Tick: n, At: time.Now(), Replica: r.name, PID: pid, RSS: rss, FDs: len(fds),
				RedisConns: connsTo(pid, fds, f.redisPort),
				Goroutines: m.goroutines, UpstreamCalls: m.upstreamCalls, LimiterWait: m.limiterWait})
		}
		rec.Resources(round...)
	}
}

// vmRSS reads a process's resident set from /proc/<pid>/status.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// replicaMetrics are what the soak reads of a replica's metrics.
type replicaMetrics struct {
	goroutines                 int
	upstreamCalls, limiterWait float64
}

// scrapeMetrics reads go_goroutines (-1 when the metrics do not answer),
// the upstream requests sent and the time spent waiting for the rate
// limiter from a replica's metrics.
func scrapeMetrics(client *http.Client, port int) replicaMetrics {
	m := replicaMetrics{goroutines: -1}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	value := func(line string) float64 {
		v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		return v
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "go_goroutines "):
			m.goroutines = int(value(line))
		case strings.HasPrefix(line, "imagegraph_upstream_requests_total{"):
			m.upstreamCalls += value(line)
		case strings.HasPrefix(line, "imagegraph_upstream_rate_limiter_wait_seconds_sum "):
			m.limiterWait = value(line)
		}
	}
	return m
}

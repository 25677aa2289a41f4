package telemetry

import (
	"maps"
	"net/http"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/compshare/imagegraph/internal/answers"
	"github.com/compshare/imagegraph/internal/cache"
	"github.com/compshare/imagegraph/internal/fleet"
	"github.com/compshare/imagegraph/internal/limits"
	"github.com/compshare/imagegraph/internal/live"
	"github.com/compshare/imagegraph/upstream"
)

// namespace starts the name of every metric of the server's own.
const namespace = "imagegraph"

// Metrics are the server's Prometheus metrics, in a registry of their own.
// Build them with NewMetrics; a nil *Metrics records nothing.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	httpInFlight prometheus.Gauge

	operations *prometheus.CounterVec
	opDuration *prometheus.HistogramVec
	errors     *prometheus.CounterVec
	opCost     prometheus.Histogram
	opCalls    prometheus.Histogram

	upRequests    *prometheus.CounterVec
	upDuration    *prometheus.HistogramVec
	upRetries     prometheus.Counter
	upLimiterWait prometheus.Histogram

	livePollLag prometheus.Histogram
	livePolls   *prometheus.CounterVec
	liveEvents  *prometheus.CounterVec

	names *operationNames
}

// latencyBuckets are the buckets of the request and operation latencies, in
// seconds: from a cache hit's few milliseconds to an upstream timeout's
// tens of seconds.
var latencyBuckets = []float64{.0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// NewMetrics registers the server's metrics, the Go runtime's and the
// process's in a new registry. Beyond the operation names KnowOperations
// is given (the safelist's), the first maxNames names get a label of their
// own, and the rest count as "other".
func NewMetrics(maxNames int) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), names: newOperationNames(maxNames)}
	f := factory{m.reg}

	m.httpRequests = f.counterVec("http_requests_total",
		"HTTP requests answered, by handler (the path, or other), method and status code.", "handler", "method", "code")
	m.httpDuration = f.histogramVec("http_request_duration_seconds",
		"Time to answer an HTTP request, by handler.", latencyBuckets, "handler")
	m.httpInFlight = f.gauge("http_requests_in_flight", "HTTP requests being answered.")

	m.operations = f.counterVec("graphql_operations_total",
		"GraphQL operations, by operation name (bounded: the safelist's and the first few hundred others; then other), "+
			"type and outcome (success, error: executed with errors, rejected: refused before it ran).",
		"operation", "type", "outcome")
	m.opDuration = f.histogramVec("graphql_operation_duration_seconds",
		"Time from receiving a GraphQL operation to its answer, by operation name and type.", latencyBuckets, "operation", "type")
	m.errors = f.counterVec("graphql_errors_total", "GraphQL errors answered, by extensions.code.", "code")
	m.opCost = f.histogram("graphql_operation_cost",
		"Estimated cost of each GraphQL operation that was measured (extensions.cost.estimated).",
		[]float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000})
	m.opCalls = f.histogram("graphql_operation_upstream_calls",
		"Upstream calls each GraphQL operation made itself (cache hits and calls shared with other operations excluded).",
		[]float64{0, 1, 2, 3, 5, 8, 13, 21, 50, 100})

	m.upRequests = f.counterVec("upstream_requests_total",
		"HTTP requests sent to the CompShare API (every attempt, retries included), by outcome "+
			"(ok, or the error kind: retcode, http, network, timeout, decode, canceled) and RetCode (none when it sent none).",
		"outcome", "ret_code")
	m.upDuration = f.histogramVec("upstream_request_duration_seconds",
		"Time of each request to the CompShare API, from sending it to its decoded answer (waits excluded), by outcome.",
		latencyBuckets, "outcome")
	m.upRetries = f.counter("upstream_retries_total", "Requests to the CompShare API that retried a failed one.")
	m.upLimiterWait = f.histogram("upstream_rate_limiter_wait_seconds",
		"Time each attempt waited for the account's rate limiter (COMPSHARE_QPS) before it was sent.",
		[]float64{.0001, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10})

	m.livePollLag = f.histogram("live_poll_lag_seconds",
		"How late each poll of a subscription cohort ran against its interval (LIVE_POLL_INTERVAL): 0 while the polls keep up; past 0, the cohorts' intervals stretch (their calls wait for the polls' share of the quota, LIVE_POLL_SHARE).",
		[]float64{0, .1, .25, .5, 1, 2.5, 5, 10, 30, 60})
	m.livePolls = f.counterVec("live_polls_total",
		"Polls of subscription cohorts, by whether the answer changed (an event went out).", "changed")
	m.liveEvents = f.counterVec("live_events_total",
		"Subscription events sent, by transport (websocket, sse).", "transport")
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(),
	)
	// The outcomes an alert divides by exist from the start, at zero, so
	// that a ratio is defined before the first failure.
	for _, o := range []string{"success", "error", "rejected"} {
		m.operations.WithLabelValues(otherOperation, "query", o)
	}
	m.upRequests.WithLabelValues("ok", "0")
	return m
}

// Handler serves the metrics in Prometheus' text format, or OpenMetrics
// (with exemplars: the trace of a sampled observation) to a scraper that
// asks for it.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true, Registry: m.reg})
}

// Registry is the registry the metrics are in, for tests and for more.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// WatchClient exports the upstream client's gauges and counters, read at
// each scrape: attempts in flight, the circuit's state, openings and
// refusals, coalesced calls and the account's quota.
func (m *Metrics) WatchClient(c *upstream.Client) {
	if m == nil || c == nil {
		return
	}
	m.reg.MustRegister(clientCollector{c})
}

// WatchCache exports the response cache's counters and size, read at each
// scrape.
func (m *Metrics) WatchCache(c *cache.Cache) {
	if m == nil || c == nil {
		return
	}
	m.reg.MustRegister(cacheCollector{c})
}

// WatchInflight exports the in-flight bound's state (the cost running, the
// operations running, waiting and refused), read at each scrape.
func (m *Metrics) WatchInflight(f *limits.Inflight) {
	if m == nil || f == nil {
		return
	}
	m.reg.MustRegister(inflightCollector{f})
}

// WatchConnections exports the API listener's connections open and
// refused, read at each scrape; nothing when m or c is nil.
func (m *Metrics) WatchConnections(c Connections) {
	if m == nil || c == nil {
		return
	}
	m.reg.MustRegister(connectionsCollector{c})
}

// WatchAnswers exports the cache of answers' counters; nothing when m or c
// is nil.
func (m *Metrics) WatchAnswers(c *answers.Cache) {
	if m == nil || c == nil {
		return
	}
	m.reg.MustRegister(answersCollector{c})
}

// WatchLive exports the subscriptions hub's counts; nothing when m or h is
// nil.
func (m *Metrics) WatchLive(h *live.Hub) {
	if m == nil || h == nil {
		return
	}
	m.reg.MustRegister(liveCollector{h})
	// Every series exists from the start, at 0, so that a rate over it is
	// 0 rather than nothing before the first poll or event.
	for _, changed := range []string{"true", "false"} {
		m.livePolls.WithLabelValues(changed)
	}
	for _, t := range live.TransportNames {
		m.liveEvents.WithLabelValues(t)
	}
}

// LiveObserver is the hub's Observer of polls and events; nil when m is.
func (m *Metrics) LiveObserver() live.Observer {
	if m == nil {
		return nil
	}
	return liveObserver{m}
}

type liveObserver struct{ m *Metrics }

func (o liveObserver) Polled(lag time.Duration, changed bool) {
	o.m.livePollLag.Observe(lag.Seconds())
	o.m.livePolls.WithLabelValues(strconv.FormatBool(changed)).Inc()
}

func (o liveObserver) Sent(transport string) { o.m.liveEvents.WithLabelValues(transport).Inc() }

// WatchFleet exports the fleet's Redis state, read at each scrape.
func (m *Metrics) WatchFleet(r *fleet.Redis) {
	if m == nil || r == nil {
		return
	}
	m.reg.MustRegister(fleetCollector{r})
}

// observeHTTP records one answered HTTP request.
func (m *Metrics) observeHTTP(handler, method string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.httpRequests.WithLabelValues(handler, method, statusLabel(code)).Inc()
	m.httpDuration.WithLabelValues(handler).Observe(d.Seconds())
}

// statusLabel is strconv.Itoa for status codes, without an allocation for
// the common ones.
func statusLabel(code int) string {
	switch code {
	case 200:
		return "200"
	case 204:
		return "204"
	case 304:
		return "304"
	case 400:
		return "400"
	case 429:
		return "429"
	}
	return strconv.Itoa(code)
}

// factory makes metrics in the server's namespace and registers them.
type factory struct{ reg prometheus.Registerer }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}

// buildInfo is imagegraph_build_info: 1, labelled with the server's
// Version and Go version.
func buildInfo() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1: the server's version and Go version in its labels.",
		ConstLabels: prometheus.Labels{"version": version, "go_version": goVersion},
	}, func() float64 { return 1 })
}

// KnowOperations gives each of names a label of its own, beyond the
// bound on other names: the safelist's operations.
func (m *Metrics) KnowOperations(names []string) {
	if m == nil {
		return
	}
	m.names.know(names)
}

// Version is the server's version: what the build stamped (go build
// -ldflags '-X github.com/compshare/imagegraph/telemetry.buildVersion=…',
// as make image does with the commit), else the module's version, else the
// VCS revision the binary was built from, else "unknown".
func Version() string { return version }

// buildVersion is stamped by the build, when it knows better than Go's
// build information (a build with -buildvcs=false, or from a copy).
var buildVersion string

var version, goVersion = readBuildInfo()

func readBuildInfo() (version, goVersion string) {
	version, goVersion = "unknown", "unknown"
	if buildVersion != "" {
		version = buildVersion
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version, goVersion
	}
	goVersion = bi.GoVersion
	if buildVersion != "" {
		return version, goVersion
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version, goVersion
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			version = s.Value
		}
	}
	return version, goVersion
}

// MetricNames lists the name of every metric family the server can export
// (with metrics on, the caches, a fleet's Redis and the in-flight
// bound), sorted: what a dashboard or an alert may name. A histogram is
// listed by its base name (its series add _bucket, _sum and _count).
func MetricNames() []string {
	m := NewMetrics(0)
	// Describe never reads the watched objects: nil ones do.
	m.reg.MustRegister(clientCollector{}, cacheCollector{}, answersCollector{}, liveCollector{}, fleetCollector{}, inflightCollector{}, connectionsCollector{})
	ch := make(chan *prometheus.Desc)
	go func() {
		m.reg.Describe(ch)
		close(ch)
	}()
	seen := map[string]bool{}
	for d := range ch {
		if sub := fqName.FindStringSubmatch(d.String()); sub != nil {
			seen[sub[1]] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// fqName reads the name out of a Desc's String, the only place
// client_golang shows it.
var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/compshare/imagegraph/internal/answers"
	"github.com/compshare/imagegraph/internal/cache"
	"github.com/compshare/imagegraph/internal/fleet"
	"github.com/compshare/imagegraph/internal/limits"
	"github.com/compshare/imagegraph/internal/live"
	"github.com/compshare/imagegraph/upstream"
)

// The collectors below read another package's Stats when Prometheus
// scrapes: the hot paths pay nothing beyond the atomic counters those
// packages keep anyway.

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

// describe sends descs to ch: a collector's Describe.
func describe(ch chan<- *prometheus.Desc, descs ...*prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
}

// emit sends ch one sample of the gauge or counter d (by kind).
func emit[N int64 | float64](ch chan<- prometheus.Metric, d *prometheus.Desc, kind prometheus.ValueType, v N, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, kind, float64(v), labels...)
}

const (
	gauge   = prometheus.GaugeValue
	counter = prometheus.CounterValue
)

var (
	upInFlightDesc = desc("upstream_requests_in_flight",
		"Attempts holding one of the client's in-flight slots (COMPSHARE_MAX_INFLIGHT): waiting for the rate limiter or talking to the CompShare API.")
	circuitStateDesc = desc("upstream_circuit_state",
		"The upstream circuit breaker's state: 1 for the state it is in (closed, half_open or open), 0 for the others.", "state")
	circuitOpenedDesc  = desc("upstream_circuit_opened_total", "Times the upstream circuit breaker opened.")
	circuitRefusedDesc = desc("upstream_circuit_rejected_calls_total",
		"Upstream calls refused at once because the circuit breaker was open.")
	coalescedDesc = desc("upstream_coalesced_calls_total",
		"Upstream calls answered by an identical call already in flight, without a request of their own.")
	quotaDesc = desc("upstream_quota_requests_per_second",
		"The account's budget of requests a second to the CompShare API (COMPSHARE_QPS), shared by the fleet when it has Redis.")
)

// clientCollector exports an upstream client's Stats.
type clientCollector struct{ c *upstream.Client }

func (clientCollector) Describe(ch chan<- *prometheus.Desc) {
	describe(ch, upInFlightDesc, circuitStateDesc, circuitOpenedDesc, circuitRefusedDesc, coalescedDesc, quotaDesc)
}

// circuitStates are the breaker's states as labels (gobreaker's names,
// with an underscore).
var circuitStates = []struct{ label, state string }{{"closed", "closed"}, {"half_open", "half-open"}, {"open", "open"}}

func (cc clientCollector) Collect(ch chan<- prometheus.Metric) {
	st := cc.c.Stats()
	emit(ch, upInFlightDesc, gauge, int64(st.InFlight))
	for _, s := range circuitStates {
		v := 0.0
		if st.CircuitState == s.state {
			v = 1
		}
		emit(ch, circuitStateDesc, gauge, v, s.label)
	}
	emit(ch, circuitOpenedDesc, counter, int64(st.CircuitOpened))
	emit(ch, circuitRefusedDesc, counter, int64(st.CircuitRefused))
	emit(ch, coalescedDesc, counter, int64(st.Coalesced))
	emit(ch, quotaDesc, gauge, st.QPS)
}

var (
	cacheRequestsDesc = desc("cache_requests_total", "Reads of the response cache.")
	cacheHitsDesc     = desc("cache_hits_total",
		"Reads the response cache answered fresh, by the tier the entry came from (memory, or the shared tier: Redis).", "tier")
	cacheMissesDesc = desc("cache_misses_total",
		"Reads a tier of the response cache had no usable entry for (the shared tier is asked after memory).", "tier")
	cacheStaleDesc = desc("cache_stale_answers_total",
		"Reads answered with stale data, by tier and reason (revalidating: within CACHE_STALE_WHILE_REVALIDATE, "+
			"upstream_error: in place of a failure, within CACHE_STALE_IF_ERROR).", "tier", "reason")
	cacheUpstreamDesc = desc("cache_upstream_calls_total", "Reads the response cache passed to the upstream.")
	cacheRefreshDesc  = desc("cache_refreshes_total", "Background refreshes of stale entries started.")
	cacheDroppedDesc  = desc("cache_shared_writes_dropped_total", "Batches of writes to the shared tier dropped because too many were in flight.")
	cacheBytesDesc    = desc("cache_bytes", "Bytes the response cache's entries hold in memory.")
	cacheMaxBytesDesc = desc("cache_max_bytes", "The bound on cache_bytes (CACHE_MAX_BYTES).")
	cacheEntriesDesc  = desc("cache_entries", "Entries in the response cache's memory.")
	cacheAllDescs     = []*prometheus.Desc{cacheRequestsDesc, cacheHitsDesc, cacheMissesDesc, cacheStaleDesc, cacheUpstreamDesc, cacheRefreshDesc, cacheDroppedDesc, cacheBytesDesc, cacheMaxBytesDesc, cacheEntriesDesc}
)

// cacheCollector exports a response cache's Stats.
type cacheCollector struct{ c *cache.Cache }

func (cacheCollector) Describe(ch chan<- *prometheus.Desc) { describe(ch, cacheAllDescs...) }

func (cc cacheCollector) Collect(ch chan<- prometheus.Metric) {
	st := cc.c.Stats()
	emit(ch, cacheRequestsDesc, counter, st.Requests)
	misses := [...]int64{st.MemoryMisses, st.SharedMisses}
	for i, tier := range cache.TierNames {
		emit(ch, cacheHitsDesc, counter, st.Hits[i], tier)
		emit(ch, cacheMissesDesc, counter, misses[i], tier)
		emit(ch, cacheStaleDesc, counter, st.StaleHits[i], tier, "revalidating")
		emit(ch, cacheStaleDesc, counter, st.StaleErrors[i], tier, "upstream_error")
	}
	emit(ch, cacheUpstreamDesc, counter, st.Misses)
	emit(ch, cacheRefreshDesc, counter, st.Refreshes)
	emit(ch, cacheDroppedDesc, counter, st.TierDropped)
	emit(ch, cacheBytesDesc, gauge, int64(st.Bytes))
	emit(ch, cacheMaxBytesDesc, gauge, int64(st.MaxBytes))
	emit(ch, cacheEntriesDesc, gauge, int64(st.Entries))
}

var (
	answerRequestsDesc  = desc("answer_cache_requests_total", "GraphQL requests the cache of answers saw, by result: hit (answered from the cache), shared (answered by an identical request's execution it waited for), miss (executed).", "result")
	answerEvictionsDesc = desc("answer_cache_evictions_total", "Answers dropped from the cache of answers to make room (ANSWER_CACHE_MAX_BYTES).")
	answerBytesDesc     = desc("answer_cache_bytes", "Bytes the cache of answers holds.")
	answerEntriesDesc   = desc("answer_cache_entries", "Answers the cache of answers holds.")
)

// answersCollector exports the cache of answers' Stats.
type answersCollector struct{ c *answers.Cache }

func (answersCollector) Describe(ch chan<- *prometheus.Desc) {
	describe(ch, answerRequestsDesc, answerEvictionsDesc, answerBytesDesc, answerEntriesDesc)
}

func (ac answersCollector) Collect(ch chan<- prometheus.Metric) {
	st := ac.c.Stats()
	emit(ch, answerRequestsDesc, counter, st.Hits, "hit")
	emit(ch, answerRequestsDesc, counter, st.Shared, "shared")
	emit(ch, answerRequestsDesc, counter, st.Misses, "miss")
	emit(ch, answerEvictionsDesc, counter, st.Evictions)
	emit(ch, answerBytesDesc, gauge, int64(st.Bytes))
	emit(ch, answerEntriesDesc, gauge, int64(st.Entries))
}

var (
	liveSubsDesc     = desc("live_subscriptions", "Subscriptions open now, by transport (websocket, sse).", "transport")
	liveConnsDesc    = desc("live_connections", "Streams open now, by transport: WebSockets and SSE requests.", "transport")
	liveCohortsDesc  = desc("live_cohorts", "Subscription cohorts polled now: distinct operations, each polled once per interval whatever its subscribers.")
	liveIntervalDesc = desc("live_poll_interval_seconds", "The configured interval of a cohort's polls (LIVE_POLL_INTERVAL).")
)

// liveCollector exports the subscriptions hub's Stats.
type liveCollector struct{ h *live.Hub }

func (liveCollector) Describe(ch chan<- *prometheus.Desc) {
	describe(ch, liveSubsDesc, liveConnsDesc, liveCohortsDesc, liveIntervalDesc)
}

func (lc liveCollector) Collect(ch chan<- prometheus.Metric) {
	st := lc.h.Stats()
	for i, name := range live.TransportNames {
		emit(ch, liveSubsDesc, gauge, st.Subscriptions[i], name)
		emit(ch, liveConnsDesc, gauge, st.Connections[i], name)
	}
	emit(ch, liveCohortsDesc, gauge, int64(st.Cohorts))
	emit(ch, liveIntervalDesc, gauge, st.Interval.Seconds())
}

var (
	redisUpDesc     = desc("redis_up", "1 when the fleet's Redis answered last, 0 while this replica carries on alone.")
	redisErrorsDesc = desc("redis_errors_total", "Redis commands that failed (a key not found is not a failure).")
	replicasDesc    = desc("fleet_replicas", "Replicas that reported themselves to Redis in the last few seconds, as last seen.")
)

// fleetCollector exports the fleet's Redis Stats.
type fleetCollector struct{ r *fleet.Redis }

func (fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	describe(ch, redisUpDesc, redisErrorsDesc, replicasDesc)
}

func (fc fleetCollector) Collect(ch chan<- prometheus.Metric) {
	st := fc.r.Stats()
	up := 0.0
	if st.Up {
		up = 1
	}
	emit(ch, redisUpDesc, gauge, up)
	emit(ch, redisErrorsDesc, counter, int64(st.Errors))
	emit(ch, replicasDesc, gauge, int64(st.Replicas))
}

var (
	inflightCostDesc = desc("graphql_inflight_cost",
		"Estimated cost of the operations running now, of graphql_inflight_max_cost.")
	inflightMaxDesc = desc("graphql_inflight_max_cost",
		"The bound on the estimated cost of the operations running at once (MAX_INFLIGHT_COST).")
	inflightRunningDesc = desc("graphql_inflight_operations",
		"Operations running now, holding room in the in-flight bound.")
	inflightWaitingDesc = desc("graphql_inflight_waiting_operations",
		"Operations waiting for room in the in-flight bound (at most INFLIGHT_WAIT each).")
	inflightRefusedDesc = desc("graphql_inflight_refused_operations_total",
		"Operations refused with SERVER_OVERLOADED: no room in the in-flight bound within INFLIGHT_WAIT.")
	inflightAllDescs = []*prometheus.Desc{inflightCostDesc, inflightMaxDesc, inflightRunningDesc, inflightWaitingDesc, inflightRefusedDesc}
)

// inflightCollector exports the in-flight bound's Stats.
type inflightCollector struct{ f *limits.Inflight }

func (inflightCollector) Describe(ch chan<- *prometheus.Desc) { describe(ch, inflightAllDescs...) }

func (ic inflightCollector) Collect(ch chan<- prometheus.Metric) {
	st := ic.f.Stats()
	emit(ch, inflightCostDesc, gauge, st.Cost)
	emit(ch, inflightMaxDesc, gauge, st.Max)
	emit(ch, inflightRunningDesc, gauge, st.Running)
	emit(ch, inflightWaitingDesc, gauge, st.Waiting)
	emit(ch, inflightRefusedDesc, counter, st.Refused)
}

// Connections is what a listener that bounds its connections reports
// (httpserver.ConnLimiter).
type Connections interface {
	Connections() (open, refused int64)
}

var (
	connectionsOpenDesc = desc("http_connections_open",
		"Connections open on the API's port, WebSockets and SSE streams included.")
	connectionsRefusedDesc = desc("http_connections_refused_total",
		"Connections answered 503 SERVER_OVERLOADED and closed: MAX_CONNECTIONS were open already.")
)

// connectionsCollector exports a listener's Connections.
type connectionsCollector struct{ c Connections }

func (connectionsCollector) Describe(ch chan<- *prometheus.Desc) {
	describe(ch, connectionsOpenDesc, connectionsRefusedDesc)
}

func (cc connectionsCollector) Collect(ch chan<- prometheus.Metric) {
	open, refused := cc.c.Connections()
	emit(ch, connectionsOpenDesc, gauge, open)
	emit(ch, connectionsRefusedDesc, counter, refused)
}

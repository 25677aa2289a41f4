package settings

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/compshare/imagegraph/internal/access"
	"github.com/compshare/imagegraph/internal/fleet"
)

// Entry is one setting: its environment variable (the flag is the same
// name, lower case, with dashes), what it does, and the field of Settings
// it sets.
type Entry struct {
	// Name is the environment variable.
	Name string
	// Usage says what the setting does.
	Usage string
	// Secret settings are never shown: "****" in logs, nothing in -h.
	Secret bool
	// EmptyOK: set to "" in the environment, the setting is "" (off), not
	// its default.
	EmptyOK bool
	// redact, when set, is how the value shows in logs (a URL with its
	// password masked).
	redact func(string) string
	// value sets and shows the field: Set parses and checks one value.
	value flag.Value
}

// Flag is the entry's command-line flag, without the dash.
func (e Entry) Flag() string { return strings.ReplaceAll(strings.ToLower(e.Name), "_", "-") }

// Value is the setting's value as it would be written in the environment.
func (e Entry) Value() string { return e.value.String() }

// Shown is the value as logs show it: a secret masked, a URL's password
// redacted.
func (e Entry) Shown() string {
	v := e.value.String()
	switch {
	case v == "":
		return ""
	case e.Secret:
		return "****"
	case e.redact != nil:
		return e.redact(v)
	}
	return v
}

// Table lists every setting, bound to the fields of s: setting an entry
// sets its field.
func (s *Settings) Table() []Entry {
	return []Entry{
		{Name: "PORT", Usage: "port to listen on (0 picks a free one)", value: intValue{&s.Port}},
		{Name: "COMPSHARE_PUBLIC_KEY", Usage: "CompShare API public key; with no keys the built-in sandbox is served", value: stringValue{&s.PublicKey}},
		{Name: "COMPSHARE_PRIVATE_KEY", Usage: "CompShare API private key (never logged)", Secret: true, value: stringValue{&s.PrivateKey}},
		{Name: "COMPSHARE_BASE_URL", Usage: "CompShare API base URL", value: stringValue{&s.BaseURL}},
		{Name: "COMPSHARE_REGION", Usage: "CompShare region", value: stringValue{&s.Region}},
		{Name: "COMPSHARE_PROJECT_ID", Usage: "CompShare project id (optional)", value: stringValue{&s.ProjectID}},
		{Name: "COMPSHARE_TIMEOUT", Usage: "timeout of one upstream attempt (Go duration)", value: durationValue{&s.Timeout}},
		{Name: "COMPSHARE_RETRIES", Usage: "retries of a retryable upstream failure", value: intValue{&s.Retries}},
		{Name: "COMPSHARE_MAX_INFLIGHT", Usage: "upstream calls in flight at once", value: intValue{&s.MaxInflight}},
		{Name: "COMPSHARE_QPS", Usage: "upstream calls per second (token bucket rate)", value: floatValue{&s.QPS}},
		{Name: "COMPSHARE_BURST", Usage: "upstream calls in a burst (token bucket size)", value: intValue{&s.Burst}},
		{Name: "COMPSHARE_BREAKER_FAILURES", Usage: "consecutive failed upstream calls that open the circuit (0 turns the breaker off)", value: intValue{&s.BreakerFailures}},
		{Name: "COMPSHARE_BREAKER_COOLDOWN", Usage: "how long the circuit stays open before one probe call", value: durationValue{&s.BreakerCooldown}},
		{Name: "SANDBOX_LATENCY", Usage: "latency the sandbox adds to every call (sandbox mode only)", value: durationValue{&s.SandboxLatency}},
		{Name: "SANDBOX_TICK", Usage: "how often the sandbox's data changes on its own, so that subscriptions see events: a version leaves review, a favourites count ticks (sandbox mode only; 0: never)", value: durationValue{&s.SandboxTick}},
		{Name: "MAX_PAGE_SIZE", Usage: "largest first/last a connection accepts", value: intValue{&s.MaxPageSize}},
		{Name: "INTROSPECTION", Usage: "serve schema introspection", value: boolValue{&s.Introspection}},
		{Name: "PLAYGROUND", Usage: "serve the GraphiQL playground at /", value: boolValue{&s.Playground}},
		{Name: "FEDERATED_TRACING", Usage: "answer a federation router's Apollo-Federation-Include-Trace: ftv1 with the per-field trace (only from a router with FEDERATION_SECRET when that is set)", value: boolValue{&s.FederatedTracing}},
		{Name: "FEDERATION_SECRET", Usage: "secret a federation router sends in X-Federation-Secret to read _service while introspection is off, run operations outside the safelist, and pass without an API key (never logged)", Secret: true, value: stringValue{&s.FederationSecret}},
		{Name: "MAX_CONNECTIONS", Usage: "connections open at once, WebSockets and SSE streams included; one more is answered 503 SERVER_OVERLOADED and closed (0: no bound)", value: intValue{&s.HTTP.MaxConnections}},
		{Name: "HTTP_READ_HEADER_TIMEOUT", Usage: "how long a client may take to send a request's headers (Go duration)", value: durationValue{&s.HTTP.ReadHeaderTimeout}},
		{Name: "HTTP_READ_TIMEOUT", Usage: "how long a client may take to send a whole request, body included (Go duration)", value: durationValue{&s.HTTP.ReadTimeout}},
		{Name: "HTTP_WRITE_TIMEOUT", Usage: "how long a request may take from its end to its answer's last byte, for a client that reads slowly or not at all (Go duration; longer than OPERATION_TIMEOUT)", value: durationValue{&s.HTTP.WriteTimeout}},
		{Name: "HTTP_IDLE_TIMEOUT", Usage: "how long a kept-alive connection may wait for its next request (Go duration)", value: durationValue{&s.HTTP.IdleTimeout}},
		{Name: "MAX_HEADER_BYTES", Usage: "largest request headers accepted", value: intValue{&s.HTTP.MaxHeaderBytes}},
		{Name: "MAX_BODY_BYTES", Usage: "largest request body accepted", value: int64Value{&s.MaxBodyBytes}},
		{Name: "MAX_DEPTH", Usage: "deepest field nesting of an operation, fragments expanded (0: no limit)", value: intValue{&s.Limits.MaxDepth}},
		{Name: "MAX_ALIASES", Usage: "aliased fields of an operation, fragments expanded (0: no limit)", value: intValue{&s.Limits.MaxAliases}},
		{Name: "MAX_ROOT_FIELDS", Usage: "root fields of an operation (0: no limit)", value: intValue{&s.Limits.MaxRootFields}},
		{Name: "MAX_DIRECTIVES", Usage: "directives of an operation, fragments expanded (0: no limit)", value: intValue{&s.Limits.MaxDirectives}},
		{Name: "MAX_TOKENS", Usage: "tokens the parser reads of a document before it gives up (0: no limit)", value: intValue{&s.MaxTokens}},
		{Name: "MAX_EXPANDED_FIELDS", Usage: "fields of an operation with every fragment spread expanded in place (0: no limit)", value: intValue{&s.Limits.MaxExpandedFields}},
		{Name: "MAX_COST", Usage: "estimated cost of an operation (IBM cost directives; 0: no limit)", value: intValue{&s.Limits.MaxCost}},
		{Name: "MAX_UPSTREAM_CALLS", Usage: "upstream calls of an operation, estimated before and counted during execution (0: no limit)", value: intValue{&s.Limits.MaxUpstreamCalls}},
		{Name: "OPERATION_TIMEOUT", Usage: "deadline of one operation (Go duration; 0: none)", value: durationValue{&s.OperationTimeout}},
		{Name: "MAX_INFLIGHT_COST", Usage: "estimated cost of the operations running at once; past it an operation waits INFLIGHT_WAIT for room, then gets 503 SERVER_OVERLOADED (0: no bound)", value: int64Value{&s.MaxInflightCost}},
		{Name: "INFLIGHT_WAIT", Usage: "how long an operation waits for room under MAX_INFLIGHT_COST (Go duration)", value: durationValue{&s.InflightWait}},
		{Name: "ANSWER_CACHE", Usage: "keep whole answers and serve repeats without executing them, for as long as the upstream data they used is fresh; identical requests that miss at once share one execution", value: boolValue{&s.AnswerCache}},
		{Name: "ANSWER_CACHE_MAX_BYTES", Usage: "memory the cache of answers may hold", value: int64Value{&s.AnswerCacheMaxBytes}},
		{Name: "DOCUMENT_CACHE_MAX_BYTES", Usage: "bytes of parsed and validated documents kept for reuse (a document heavier than a sixteenth of it is parsed each time)", value: int64Value{&s.DocumentCacheMaxBytes}},
		{Name: "CACHE_TTL", Usage: "how long an upstream answer is fresh in the response cache (0 turns the cache off)", value: durationValue{&s.Cache.TTL}},
		{Name: "CACHE_STALE_WHILE_REVALIDATE", Usage: "how long past CACHE_TTL an answer is served at once while one background call refreshes it", value: durationValue{&s.Cache.StaleWhileRevalidate}},
		{Name: "CACHE_STALE_IF_ERROR", Usage: "how long past CACHE_TTL an answer is served when the upstream fails or the circuit is open", value: durationValue{&s.Cache.StaleIfError}},
		{Name: "CACHE_MAX_BYTES", Usage: "memory the response cache may hold", value: int64Value{&s.Cache.MaxBytes}},
		{Name: "APQ_MAX_BYTES", Usage: "bytes of automatic persisted queries kept in memory", value: int64Value{&s.APQMaxBytes}},
		{Name: "LIVE_POLL_INTERVAL", Usage: "how often the subscribers of one operation are polled, on data no older than this (Go duration)", value: durationValue{&s.LivePollInterval}},
		{Name: "LIVE_POLL_SHARE", Usage: "the share of COMPSHARE_QPS the subscriptions' polls may use (above 0, at most 1): past it their intervals stretch, and queries keep the rest", value: floatValue{&s.LivePollShare}},
		{Name: "MAX_SUBSCRIPTIONS_PER_CLIENT", Usage: "subscriptions one client may hold at once, and WebSockets it may open (0: no bound)", value: intValue{&s.MaxSubscriptionsPerClient}},
		{Name: "MAX_SUBSCRIPTIONS", Usage: "subscriptions one process holds at once (0: no bound)", value: intValue{&s.MaxSubscriptions}},
		{Name: "LIVE_KEEPALIVE", Usage: "how often an idle WebSocket or SSE stream is pinged; a WebSocket that does not answer within twice that is closed", value: durationValue{&s.LiveKeepAlive}},
		{Name: "LIVE_INIT_TIMEOUT", Usage: "how long a WebSocket may wait before its connection_init", value: durationValue{&s.LiveInitTimeout}},
		{Name: "LIVE_WRITE_TIMEOUT", Usage: "how long one write to a WebSocket or SSE stream may block on a client that does not read; past it the stream is closed", value: durationValue{&s.LiveWriteTimeout}},
		{Name: "PERSISTED_OPERATIONS", Usage: "a manifest of persisted operations (Apollo's persisted query list or Relay's map), callable by id", value: stringValue{&s.PersistedOperations}},
		{Name: "PERSISTED_OPERATIONS_ONLY", Usage: "run only the operations of PERSISTED_OPERATIONS (and introspection, when on)", value: boolValue{&s.PersistedOperationsOnly}},
		{Name: "CORS_ALLOWED_ORIGINS", Usage: "comma-separated origins whose pages may call /query, * for any (empty: no CORS headers)", value: originsValue{&s.CORSAllowedOrigins}},
		{Name: "API_KEYS_FILE", Usage: "a file of name:sha256hex lines; when set, /query needs one of its keys", value: stringValue{&s.APIKeysFile}},
		{Name: "CLIENT_RATE_LIMIT", Usage: "estimated-cost points per second each client may spend (0: no limit)", value: floatValue{&s.ClientRateLimit}},
		{Name: "CLIENT_BURST", Usage: "points a client may spend at once (0: MAX_COST)", value: intValue{&s.ClientBurst}},
		{Name: "TRUSTED_PROXIES", Usage: "comma-separated CIDRs of proxies whose X-Forwarded-For names the client", value: prefixesValue{&s.TrustedProxies}},
		{Name: "REDIS_URL", Usage: "redis:// or rediss:// URL (password, db) of a Redis the replicas share the cache, quota, client limits and APQ store through; empty: each replica alone (password never logged)", value: redisURLValue{&s.RedisURL}, redact: fleet.RedactURL},
		{Name: "LOG_LEVEL", Usage: "debug, info, warn or error", value: levelValue{&s.LogLevel}},
		{Name: "LOG_FORMAT", Usage: "text, json, or auto: text when stdout is a terminal, JSON lines otherwise", value: formatValue{&s.LogFormat}},
		{Name: "METRICS_ADDR", Usage: "address of the Prometheus /metrics listener, apart from the API's port (empty turns metrics off)", value: addrValue{&s.MetricsAddr}, EmptyOK: true},
		{Name: "SHUTDOWN_DRAIN", Usage: "on SIGTERM, how long /readyz answers 503 while the server keeps serving, so that load balancers take it out", value: durationValue{&s.ShutdownDrain}},
		{Name: "SHUTDOWN_TIMEOUT", Usage: "after the drain, how long in-flight requests get to finish", value: durationValue{&s.ShutdownTimeout}},
	}
}

// The values of the table: each parses and checks one setting's text into
// its typed field, and writes it back as text.
type (
	stringValue   struct{ p *string }
	intValue      struct{ p *int }
	int64Value    struct{ p *int64 }
	floatValue    struct{ p *float64 }
	boolValue     struct{ p *bool }
	durationValue struct{ p *time.Duration }
	levelValue    struct{ p *slog.Level }
	formatValue   struct{ p *LogFormat }
	addrValue     struct{ p *string }
	redisURLValue struct{ p *string }
	originsValue  struct{ p *[]string }
	prefixesValue struct{ p *[]netip.Prefix }
)

func (v stringValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}
func (v stringValue) Set(s string) error { *v.p = s; return nil }

func (v intValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.Itoa(*v.p)
}
func (v intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not an integer", s)
	}
	*v.p = n
	return nil
}

func (v int64Value) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatInt(*v.p, 10)
}
func (v int64Value) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not an integer", s)
	}
	*v.p = n
	return nil
}

func (v floatValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatFloat(*v.p, 'f', -1, 64)
}
func (v floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f != f { // NaN is no number of anything
		return fmt.Errorf("%q is not a number", s)
	}
	*v.p = f
	return nil
}

func (v boolValue) String() string {
	if v.p == nil {
		return "false"
	}
	return strconv.FormatBool(*v.p)
}
func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a boolean", s)
	}
	*v.p = b
	return nil
}

// IsBoolFlag lets -flag stand for -flag=true.
func (v boolValue) IsBoolFlag() bool { return true }

func (v durationValue) String() string {
	if v.p == nil {
		return "0s"
	}
	return v.p.String()
}
func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 10s, 500ms)", s)
	}
	*v.p = d
	return nil
}

func (v levelValue) String() string {
	if v.p == nil {
		return "info"
	}
	return strings.ToLower(v.p.String())
}
func (v levelValue) Set(s string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return fmt.Errorf("%q is not debug, info, warn or error", s)
	}
	*v.p = l
	return nil
}

func (v formatValue) String() string {
	if v.p == nil {
		return string(LogAuto)
	}
	return string(*v.p)
}
func (v formatValue) Set(s string) error {
	switch f := LogFormat(strings.ToLower(strings.TrimSpace(s))); f {
	case LogAuto, LogText, LogJSON:
		*v.p = f
		return nil
	}
	return fmt.Errorf("%q is not text, json or auto", s)
}

func (v addrValue) String() string { return stringValue(v).String() }
func (v addrValue) Set(s string) error {
	if s == "" {
		*v.p = ""
		return nil
	}
	_, port, err := net.SplitHostPort(s)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q is not host:port or :port (empty turns it off)", s)
	}
	*v.p = s
	return nil
}

func (v redisURLValue) String() string { return stringValue(v).String() }

// Set keeps any value: Validate checks its scheme. An error here would
// reach the flag package, which quotes the value back, password and all,
// in its error and its usage (FuzzSetting found it: -redis-url with
// http://user:password@host).
func (v redisURLValue) Set(s string) error {
	*v.p = s
	return nil
}

// redisURL reports whether s is a redis:// or rediss:// URL, or empty.
func redisURL(s string) bool {
	return s == "" || strings.HasPrefix(s, "redis://") || strings.HasPrefix(s, "rediss://")
}

func (v originsValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}
func (v originsValue) Set(s string) error {
	origins, err := access.ParseOrigins(list(s))
	if err != nil {
		return err
	}
	*v.p = origins
	return nil
}

func (v prefixesValue) String() string {
	if v.p == nil {
		return ""
	}
	out := make([]string, len(*v.p))
	for i, p := range *v.p {
		out[i] = p.String()
	}
	return strings.Join(out, ",")
}
func (v prefixesValue) Set(s string) error {
	p, err := access.ParseTrustedProxies(s)
	if err != nil {
		return err
	}
	*v.p = p
	return nil
}

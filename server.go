// Command imagegraph serves a GraphQL API over CompShare's community image
// catalogue (the DescribeCommunityImages action). With no credentials it
// serves a built-in sandbox dataset through the real client.
//
// main only calls run, so that tests start the real server the same way.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/compshare/imagegraph/graph"
	"github.com/compshare/imagegraph/internal/access"
	"github.com/compshare/imagegraph/internal/cache"
	"github.com/compshare/imagegraph/internal/codes"
	"github.com/compshare/imagegraph/internal/fleet"
	"github.com/compshare/imagegraph/internal/gqlhttp"
	"github.com/compshare/imagegraph/internal/limits"
	"github.com/compshare/imagegraph/internal/persisted"
	"github.com/compshare/imagegraph/internal/telemetry"
	"github.com/compshare/imagegraph/playground"
	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "imagegraph:", err)
		os.Exit(1)
	}
}

// config is every setting of the server. Defaults come first, then the
// environment, then flags.
type config struct {
	Port            int
	PublicKey       string
	PrivateKey      string
	BaseURL         string
	Region          string
	ProjectID       string
	Timeout         time.Duration
	Retries         int
	MaxInflight     int
	QPS             float64
	Burst           int
	MaxPageSize     int
	BatchWait       time.Duration
	Dedupe          bool
	Introspection   bool
	Playground      bool
	SandboxLatency  time.Duration
	LogLevel        string
	ShutdownTimeout time.Duration
	ShutdownDrain   time.Duration
	// MetricsAddr is the address of the listener of /metrics ("" turns it
	// off); FederatedTracing answers a router's ftv1 requests.
	MetricsAddr      string
	FederatedTracing bool
	// RedisURL, when set, shares the cache, the quota, the client limits
	// and the APQ store with the fleet (package fleet).
	RedisURL     string
	MaxBodyBytes int64
	// FederationSecret lets a federation router read _service with
	// introspection off (X-Federation-Secret header).
	FederationSecret string

	// Limits of one operation (package limits).
	MaxDepth          int
	MaxAliases        int
	MaxRootFields     int
	MaxDirectives     int
	MaxTokens         int
	MaxExpandedFields int
	MaxCost           int
	MaxUpstreamCalls  int
	OperationTimeout  time.Duration
	MaxInflightCost   int64
	InflightWait      time.Duration

	// Persisted operations (package persisted).
	APQMaxBytes             int64
	DocumentCacheMaxBytes   int64
	PersistedOperations     string
	PersistedOperationsOnly bool

	// The response cache (package cache) and the circuit breaker.
	CacheTTL                  time.Duration
	CacheStaleWhileRevalidate time.Duration
	CacheStaleIfError         time.Duration
	CacheMaxBytes             int64
	BreakerFailures           int
	BreakerCooldown           time.Duration

	// Browsers, keys and clients (package access).
	CORSAllowedOrigins string
	APIKeysFile        string
	ClientRateLimit    float64
	ClientBurst        int
	TrustedProxies     string

	// PrintSchema prints the subgraph SDL and exits (flag only).
	PrintSchema bool
}

func defaultConfig() config {
	return config{
		Port:            8080,
		BaseURL:         "https://api.compshare.cn",
		Region:          "cn-wlcb",
		Timeout:         10 * time.Second,
		Retries:         2,
		MaxInflight:     8,
		QPS:             20,
		Burst:           40,
		MaxPageSize:     graph.DefaultMaxPageSize,
		BatchWait:       graph.DefaultBatchWait,
		Dedupe:          true,
		Introspection:   true,
		Playground:      true,
		LogLevel:        "info",
		ShutdownTimeout: 15 * time.Second,
		ShutdownDrain:   5 * time.Second,
		MaxBodyBytes:    1 << 20,

		MetricsAddr:      ":9090",
		FederatedTracing: true,

		MaxDepth:              limits.DefaultLimits.MaxDepth,
		MaxAliases:            limits.DefaultLimits.MaxAliases,
		MaxRootFields:         limits.DefaultLimits.MaxRootFields,
		MaxDirectives:         limits.DefaultLimits.MaxDirectives,
		MaxTokens:             limits.DefaultTokens,
		MaxExpandedFields:     limits.DefaultLimits.MaxExpandedFields,
		MaxCost:               limits.DefaultLimits.MaxCost,
		MaxUpstreamCalls:      limits.DefaultLimits.MaxUpstreamCalls,
		OperationTimeout:      limits.DefaultOperationTimeout,
		MaxInflightCost:       limits.DefaultInflightCost,
		InflightWait:          limits.DefaultInflightWait,
		APQMaxBytes:           16 << 20,
		DocumentCacheMaxBytes: graph.DefaultDocumentCacheBytes,

		CacheTTL:                  cache.DefaultTTL,
		CacheStaleWhileRevalidate: cache.DefaultStaleWhileRevalidate,
		CacheStaleIfError:         cache.DefaultStaleIfError,
		CacheMaxBytes:             cache.DefaultMaxBytes,
		BreakerFailures:           5,
		BreakerCooldown:           10 * time.Second,
	}
}

// setting is one configuration entry: its environment variable (the flag is
// the same name, lower case, with dashes), its usage, and where it lands.
type setting struct {
	env    string
	usage  string
	secret bool
	// emptyOK: set to "" in the environment, the setting is "" (off),
	// not its default.
	emptyOK bool
	// redact, when set, is how the value shows in logs (a URL with its
	// password masked).
	redact func(string) string
	value  flag.Value
}

func (c *config) settings() []setting {
	return []setting{
		{env: "PORT", usage: "port to listen on (0 picks a free one)", value: intValue{&c.Port}},
		{env: "COMPSHARE_PUBLIC_KEY", usage: "CompShare API public key; with no keys the built-in sandbox is served", value: stringValue{&c.PublicKey}},
		{env: "COMPSHARE_PRIVATE_KEY", usage: "CompShare API private key (never logged)", secret: true, value: stringValue{&c.PrivateKey}},
		{env: "COMPSHARE_BASE_URL", usage: "CompShare API base URL", value: stringValue{&c.BaseURL}},
		{env: "COMPSHARE_REGION", usage: "CompShare region", value: stringValue{&c.Region}},
		{env: "COMPSHARE_PROJECT_ID", usage: "CompShare project id (optional)", value: stringValue{&c.ProjectID}},
		{env: "COMPSHARE_TIMEOUT", usage: "timeout of one upstream attempt (Go duration)", value: durationValue{&c.Timeout}},
		{env: "COMPSHARE_RETRIES", usage: "retries of a retryable upstream failure", value: intValue{&c.Retries}},
		{env: "COMPSHARE_MAX_INFLIGHT", usage: "upstream calls in flight at once", value: intValue{&c.MaxInflight}},
		{env: "COMPSHARE_QPS", usage: "upstream calls per second (token bucket rate)", value: floatValue{&c.QPS}},
		{env: "COMPSHARE_BURST", usage: "upstream calls in a burst (token bucket size)", value: intValue{&c.Burst}},
		{env: "MAX_PAGE_SIZE", usage: "largest first/last a connection accepts", value: intValue{&c.MaxPageSize}},
		{env: "BATCH_WAIT", usage: "the loaders' batch window (Go duration; 0 dispatches each load at once)", value: durationValue{&c.BatchWait}},
		{env: "DEDUPLICATE_OPERATIONS", usage: "identical concurrent GraphQL requests share one execution", value: boolValue{&c.Dedupe}},
		{env: "INTROSPECTION", usage: "serve schema introspection", value: boolValue{&c.Introspection}},
		{env: "PLAYGROUND", usage: "serve the GraphiQL playground at /", value: boolValue{&c.Playground}},
		{env: "SANDBOX_LATENCY", usage: "latency the sandbox adds to every call (sandbox mode only)", value: durationValue{&c.SandboxLatency}},
		{env: "LOG_LEVEL", usage: "debug, info, warn or error", value: stringValue{&c.LogLevel}},
		{env: "SHUTDOWN_DRAIN", usage: "on SIGTERM, how long /readyz answers 503 while the server keeps serving, so that load balancers take it out", value: durationValue{&c.ShutdownDrain}},
		{env: "SHUTDOWN_TIMEOUT", usage: "after the drain, how long in-flight requests get to finish", value: durationValue{&c.ShutdownTimeout}},
		{env: "METRICS_ADDR", usage: "address of the Prometheus /metrics listener, apart from the API's port (empty turns metrics off)", value: stringValue{&c.MetricsAddr}, emptyOK: true},
		{env: "FEDERATED_TRACING", usage: "answer a federation router's Apollo-Federation-Include-Trace: ftv1 with the per-field trace (only from a router with FEDERATION_SECRET when that is set)", value: boolValue{&c.FederatedTracing}},
		{env: "REDIS_URL", usage: "redis:// or rediss:// URL (password, db) of a Redis the replicas share the cache, quota, client limits and APQ store through; empty: each replica alone (password never logged)", value: stringValue{&c.RedisURL}, redact: fleet.RedactURL},
		{env: "MAX_BODY_BYTES", usage: "largest request body accepted", value: int64Value{&c.MaxBodyBytes}},
		{env: "FEDERATION_SECRET", usage: "secret a federation router sends in X-Federation-Secret to read _service while introspection is off, run operations outside the safelist, and pass without an API key (never logged)", secret: true, value: stringValue{&c.FederationSecret}},
		{env: "MAX_DEPTH", usage: "deepest field nesting of an operation, fragments expanded (0: no limit)", value: intValue{&c.MaxDepth}},
		{env: "MAX_ALIASES", usage: "aliased fields of an operation, fragments expanded (0: no limit)", value: intValue{&c.MaxAliases}},
		{env: "MAX_ROOT_FIELDS", usage: "root fields of an operation (0: no limit)", value: intValue{&c.MaxRootFields}},
		{env: "MAX_DIRECTIVES", usage: "directives of an operation, fragments expanded (0: no limit)", value: intValue{&c.MaxDirectives}},
		{env: "MAX_TOKENS", usage: "tokens the parser reads of a document before it gives up (0: no limit)", value: intValue{&c.MaxTokens}},
		{env: "MAX_EXPANDED_FIELDS", usage: "fields of an operation with every fragment spread expanded in place (0: no limit)", value: intValue{&c.MaxExpandedFields}},
		{env: "MAX_COST", usage: "estimated cost of an operation (IBM cost directives; 0: no limit)", value: intValue{&c.MaxCost}},
		{env: "MAX_UPSTREAM_CALLS", usage: "upstream calls of an operation, estimated before and counted during execution (0: no limit)", value: intValue{&c.MaxUpstreamCalls}},
		{env: "OPERATION_TIMEOUT", usage: "deadline of one operation (Go duration; 0: none)", value: durationValue{&c.OperationTimeout}},
		{env: "MAX_INFLIGHT_COST", usage: "estimated cost of the operations running at once; past it an operation waits INFLIGHT_WAIT for room, then gets 503 SERVER_OVERLOADED (0: no bound)", value: int64Value{&c.MaxInflightCost}},
		{env: "INFLIGHT_WAIT", usage: "how long an operation waits for room under MAX_INFLIGHT_COST (Go duration)", value: durationValue{&c.InflightWait}},
		{env: "CACHE_TTL", usage: "how long an upstream answer is fresh in the response cache (0 turns the cache off)", value: durationValue{&c.CacheTTL}},
		{env: "CACHE_STALE_WHILE_REVALIDATE", usage: "how long past CACHE_TTL an answer is served at once while one background call refreshes it", value: durationValue{&c.CacheStaleWhileRevalidate}},
		{env: "CACHE_STALE_IF_ERROR", usage: "how long past CACHE_TTL an answer is served when the upstream fails or the circuit is open", value: durationValue{&c.CacheStaleIfError}},
		{env: "CACHE_MAX_BYTES", usage: "memory the response cache may hold", value: int64Value{&c.CacheMaxBytes}},
		{env: "COMPSHARE_BREAKER_FAILURES", usage: "consecutive failed upstream calls that open the circuit (0 turns the breaker off)", value: intValue{&c.BreakerFailures}},
		{env: "COMPSHARE_BREAKER_COOLDOWN", usage: "how long the circuit stays open before one probe call", value: durationValue{&c.BreakerCooldown}},
		{env: "APQ_MAX_BYTES", usage: "bytes of automatic persisted queries kept in memory", value: int64Value{&c.APQMaxBytes}},
		{env: "DOCUMENT_CACHE_MAX_BYTES", usage: "bytes of parsed and validated documents kept for reuse (a document heavier than a sixteenth of it is parsed each time)", value: int64Value{&c.DocumentCacheMaxBytes}},
		{env: "PERSISTED_OPERATIONS", usage: "a manifest of persisted operations (Apollo's persisted query list or Relay's map), callable by id", value: stringValue{&c.PersistedOperations}},
		{env: "PERSISTED_OPERATIONS_ONLY", usage: "run only the operations of PERSISTED_OPERATIONS (and introspection, when on)", value: boolValue{&c.PersistedOperationsOnly}},
		{env: "CORS_ALLOWED_ORIGINS", usage: "comma-separated origins whose pages may call /query, * for any (empty: no CORS headers)", value: stringValue{&c.CORSAllowedOrigins}},
		{env: "API_KEYS_FILE", usage: "a file of name:sha256hex lines; when set, /query needs one of its keys", value: stringValue{&c.APIKeysFile}},
		{env: "CLIENT_RATE_LIMIT", usage: "estimated-cost points per second each client may spend (0: no limit)", value: floatValue{&c.ClientRateLimit}},
		{env: "CLIENT_BURST", usage: "points a client may spend at once (0: MAX_COST)", value: intValue{&c.ClientBurst}},
		{env: "TRUSTED_PROXIES", usage: "comma-separated CIDRs of proxies whose X-Forwarded-For names the client", value: stringValue{&c.TrustedProxies}},
	}
}

func flagName(env string) string { return strings.ReplaceAll(strings.ToLower(env), "_", "-") }

// loadConfig reads defaults, then the environment, then flags. -h lists
// every setting with its environment variable and default.
func loadConfig(args []string, lookupEnv func(string) (string, bool), out io.Writer) (config, error) {
	cfg := defaultConfig()
	settings := cfg.settings()
	fs := flag.NewFlagSet("imagegraph", flag.ContinueOnError)
	fs.SetOutput(out)
	for _, s := range settings {
		fs.Var(s.value, flagName(s.env), fmt.Sprintf("%s (env %s)", s.usage, s.env))
	}
	fs.BoolVar(&cfg.PrintSchema, "print-schema", false, "print the federation subgraph SDL (what _service { sdl } answers) to stdout and exit")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: imagegraph [flags]\n\nEvery flag can also be set by its environment variable; flags win.\n\n")
		fs.PrintDefaults()
	}
	// Environment first, so that flags override it. Defaults printed by -h
	// are the built-in ones: a secret from the environment is never shown.
	for _, s := range settings {
		// A variable set to "" is not set, except for a setting that ""
		// turns off (METRICS_ADDR).
		v, ok := lookupEnv(s.env)
		if !ok || v == "" && !s.emptyOK {
			continue
		}
		if err := s.value.Set(v); err != nil {
			return cfg, fmt.Errorf("%s: %w", s.env, err)
		}
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// Validate reports the first setting that cannot work.
func (c config) Validate() error {
	switch {
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("PORT must be between 0 and 65535, got %d", c.Port)
	case (c.PublicKey == "") != (c.PrivateKey == ""):
		return errors.New("set both COMPSHARE_PUBLIC_KEY and COMPSHARE_PRIVATE_KEY, or neither for the sandbox")
	case c.Timeout <= 0:
		return fmt.Errorf("COMPSHARE_TIMEOUT must be positive, got %s", c.Timeout)
	case c.Retries < 0:
		return fmt.Errorf("COMPSHARE_RETRIES must not be negative, got %d", c.Retries)
	case c.MaxInflight < 1:
		return fmt.Errorf("COMPSHARE_MAX_INFLIGHT must be at least 1, got %d", c.MaxInflight)
	case c.QPS <= 0:
		return fmt.Errorf("COMPSHARE_QPS must be positive, got %g", c.QPS)
	case c.Burst < 1:
		return fmt.Errorf("COMPSHARE_BURST must be at least 1, got %d", c.Burst)
	case c.MaxPageSize < 1:
		return fmt.Errorf("MAX_PAGE_SIZE must be at least 1, got %d", c.MaxPageSize)
	case c.BatchWait < 0 || c.BatchWait > time.Second:
		return fmt.Errorf("BATCH_WAIT must be between 0 and 1s, got %s", c.BatchWait)
	case c.SandboxLatency < 0:
		return fmt.Errorf("SANDBOX_LATENCY must not be negative, got %s", c.SandboxLatency)
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("SHUTDOWN_TIMEOUT must be positive, got %s", c.ShutdownTimeout)
	case c.ShutdownDrain < 0:
		return fmt.Errorf("SHUTDOWN_DRAIN must not be negative, got %s", c.ShutdownDrain)
	case c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://"):
		return errors.New("REDIS_URL must be a redis:// or rediss:// URL")
	case c.MaxBodyBytes < 1:
		return fmt.Errorf("MAX_BODY_BYTES must be positive, got %d", c.MaxBodyBytes)
	case c.MetricsAddr != "" && !validAddr(c.MetricsAddr):
		return fmt.Errorf("METRICS_ADDR must be host:port or :port (empty turns metrics off), got %q", c.MetricsAddr)
	case c.OperationTimeout < 0:
		return fmt.Errorf("OPERATION_TIMEOUT must not be negative, got %s", c.OperationTimeout)
	case c.MaxInflightCost < 0:
		return fmt.Errorf("MAX_INFLIGHT_COST must not be negative, got %d", c.MaxInflightCost)
	case c.InflightWait < 0:
		return fmt.Errorf("INFLIGHT_WAIT must not be negative, got %s", c.InflightWait)
	case c.CacheTTL < 0 || c.CacheStaleWhileRevalidate < 0 || c.CacheStaleIfError < 0:
		return errors.New("CACHE_TTL, CACHE_STALE_WHILE_REVALIDATE and CACHE_STALE_IF_ERROR must not be negative")
	case c.CacheMaxBytes < 1:
		return fmt.Errorf("CACHE_MAX_BYTES must be positive, got %d", c.CacheMaxBytes)
	case c.BreakerFailures < 0:
		return fmt.Errorf("COMPSHARE_BREAKER_FAILURES must not be negative (0 turns the breaker off), got %d", c.BreakerFailures)
	case c.BreakerFailures > 0 && c.BreakerCooldown <= 0:
		return fmt.Errorf("COMPSHARE_BREAKER_COOLDOWN must be positive, got %s", c.BreakerCooldown)
	case c.DocumentCacheMaxBytes < 1:
		return fmt.Errorf("DOCUMENT_CACHE_MAX_BYTES must be positive, got %d", c.DocumentCacheMaxBytes)
	case c.APQMaxBytes < 1:
		return fmt.Errorf("APQ_MAX_BYTES must be positive, got %d", c.APQMaxBytes)
	case c.PersistedOperationsOnly && c.PersistedOperations == "":
		return errors.New("PERSISTED_OPERATIONS_ONLY needs PERSISTED_OPERATIONS, the manifest of the operations to run")
	case c.ClientRateLimit < 0 || math.IsNaN(c.ClientRateLimit) || math.IsInf(c.ClientRateLimit, 0):
		return fmt.Errorf("CLIENT_RATE_LIMIT must be a number of points per second, 0 or more, got %g", c.ClientRateLimit)
	case c.ClientBurst < 0:
		return fmt.Errorf("CLIENT_BURST must not be negative, got %d", c.ClientBurst)
	}
	for _, n := range []struct {
		env string
		v   int
	}{
		{"MAX_DEPTH", c.MaxDepth}, {"MAX_ALIASES", c.MaxAliases}, {"MAX_ROOT_FIELDS", c.MaxRootFields},
		{"MAX_DIRECTIVES", c.MaxDirectives}, {"MAX_TOKENS", c.MaxTokens}, {"MAX_COST", c.MaxCost},
		{"MAX_EXPANDED_FIELDS", c.MaxExpandedFields},
		{"MAX_UPSTREAM_CALLS", c.MaxUpstreamCalls},
	} {
		if n.v < 0 {
			return fmt.Errorf("%s must not be negative (0 turns it off), got %d", n.env, n.v)
		}
	}
	if _, err := access.ParseTrustedProxies(c.TrustedProxies); err != nil {
		return fmt.Errorf("TRUSTED_PROXIES: %w", err)
	}
	if _, err := access.CORS(strings.Split(c.CORSAllowedOrigins, ",")); err != nil {
		return fmt.Errorf("CORS_ALLOWED_ORIGINS: %w", err)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	return nil
}

// validAddr reports whether addr is a listen address: host:port or :port.
func validAddr(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

// Sandbox reports whether the server serves the built-in sandbox.
func (c config) Sandbox() bool { return c.PublicKey == "" && c.PrivateKey == "" }

// LogValue lists the settings with the private key masked.
func (c config) LogValue() slog.Value {
	var attrs []slog.Attr
	for _, s := range c.settings() {
		v := s.value.String()
		if s.redact != nil && v != "" {
			v = s.redact(v)
		}
		if s.secret && v != "" {
			v = "****"
		}
		attrs = append(attrs, slog.String(s.env, v))
	}
	return slog.GroupValue(attrs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("LOG_LEVEL must be debug, info, warn or error, got %q", s)
	}
	return l, nil
}

// run starts the server and blocks until ctx is done, then shuts down.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, lookupEnv, stderr)
	if err != nil {
		return err
	}
	if cfg.PrintSchema {
		_, err := io.WriteString(stdout, graph.SubgraphSDL())
		return err
	}
	level, _ := parseLevel(cfg.LogLevel)
	log := slog.New(requestIDHandler{telemetry.LogHandler(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: level}))})

	// Telemetry first: everything below reports to it.
	tracing, err := telemetry.TracingFromEnv(func(k string) string { v, _ := lookupEnv(k); return v }, telemetry.Version())
	if err != nil {
		return err
	}
	defer func() {
		// Flush the spans still batched, briefly: a collector that is gone
		// must not hold the exit up.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tracing.Shutdown(ctx); err != nil {
			log.Warn("traces not flushed", "error", err.Error())
		}
	}()
	var metrics *telemetry.Metrics
	if cfg.MetricsAddr != "" {
		metrics = telemetry.NewMetrics(telemetry.DefaultMaxOperationNames)
	}
	tel := telemetry.New(telemetry.Options{Metrics: metrics, Tracing: tracing, Log: log, RequestAttrs: clientAttrs})

	upstreamURL := cfg.BaseURL
	publicKey, privateKey := cfg.PublicKey, cfg.PrivateKey
	var sb sandboxServer
	if cfg.Sandbox() {
		var stopSandbox func()
		sb, stopSandbox, err = startSandbox(cfg)
		if err != nil {
			return err
		}
		defer stopSandbox()
		upstreamURL, publicKey, privateKey = sb.url, sb.publicKey, sb.privateKey
		log.Warn("no CompShare credentials: serving the built-in sandbox dataset, not the real catalogue",
			"sandbox_url", sb.url, "sandbox_latency", cfg.SandboxLatency.String())
	}
	var shared *fleet.Redis
	if cfg.RedisURL != "" {
		if shared, err = fleet.Connect(cfg.RedisURL, log); err != nil {
			return err
		}
		defer shared.Close()
	}
	var breaker, quota upstream.Option
	if cfg.BreakerFailures > 0 {
		breaker = upstream.WithCircuitBreaker(cfg.BreakerFailures, cfg.BreakerCooldown)
	}
	if shared != nil {
		// One budget for the fleet, in Redis.
		quota = upstream.WithLimiter(shared.Quota(cfg.QPS, cfg.Burst))
	}
	client, err := upstream.NewClient(
		breaker,
		upstream.WithBaseURL(upstreamURL),
		upstream.WithRegion(cfg.Region),
		upstream.WithProjectID(cfg.ProjectID),
		upstream.WithCredentials(publicKey, privateKey),
		upstream.WithTimeout(cfg.Timeout),
		upstream.WithRetryPolicy(upstream.RetryPolicy{MaxRetries: cfg.Retries}),
		upstream.WithMaxInFlight(cfg.MaxInflight),
		upstream.WithRateLimit(cfg.QPS, cfg.Burst),
		quota,
		upstream.WithLogger(log),
		upstream.WithObserver(tel.UpstreamObserver(upstreamURL)),
	)
	if err != nil {
		return fmt.Errorf("upstream client: %w", err)
	}
	metrics.WatchClient(client)
	metrics.WatchFleet(shared)

	// The decorators of the upstream, outermost first: the response cache,
	// then the count of each operation's calls (below the cache, so that
	// hits cost nothing), then the client.
	svc := limits.Meter(client)
	if cfg.CacheTTL > 0 {
		opts := cache.Options{
			TTL:                  cfg.CacheTTL,
			StaleWhileRevalidate: cfg.CacheStaleWhileRevalidate,
			StaleIfError:         cfg.CacheStaleIfError,
			MaxBytes:             cfg.CacheMaxBytes,
			Log:                  log,
		}
		if shared != nil {
			opts.Tier = shared.CacheTier()
		}
		c, err := cache.New(svc, opts)
		if err != nil {
			return fmt.Errorf("cache: %w", err)
		}
		defer c.Close()
		metrics.WatchCache(c)
		svc = c
	}
	query, err := queryHandler(cfg, svc, shared, tel, log)
	if err != nil {
		return err
	}
	ready := newReadiness(client, readinessQuiet)
	trusted, _ := access.ParseTrustedProxies(cfg.TrustedProxies) // checked by Validate

	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(cfg.Port)))
	if err != nil {
		return err
	}
	if cfg.MetricsAddr != "" {
		stopMetrics, err := serveMetrics(cfg.MetricsAddr, metrics, log)
		if err != nil {
			ln.Close()
			return err
		}
		defer stopMetrics()
	}
	srv := &http.Server{
		Handler:           routes(cfg, query, ready, trusted, sb.server, tel, log),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "mode", mode(cfg), "tracing", tracing.String(), "config", cfg)

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	// The drain: /readyz says 503 at once, and the server keeps serving
	// while load balancers notice and send new requests elsewhere.
	ready.drain()
	log.Info("draining", "drain", cfg.ShutdownDrain.String())
	select {
	case <-time.After(cfg.ShutdownDrain):
	case err := <-serveErr:
		return err
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

func mode(cfg config) string {
	if cfg.Sandbox() {
		return "sandbox"
	}
	return "upstream"
}

type sandboxServer struct {
	server                     *sandbox.Server
	url, publicKey, privateKey string
}

// startSandbox serves the sandbox on a loopback port with a fresh key pair,
// so that sandbox mode goes through the real client, signer and decoder.
func startSandbox(cfg config) (sandboxServer, func(), error) {
	pub, priv := "sandbox-"+randomHex(8), randomHex(20)
	sb, err := sandbox.New(sandbox.WithKeys(pub, priv), sandbox.WithLatency(cfg.SandboxLatency))
	if err != nil {
		return sandboxServer{}, nil, fmt.Errorf("sandbox: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return sandboxServer{}, nil, fmt.Errorf("sandbox: %w", err)
	}
	srv := &http.Server{Handler: sb, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return sandboxServer{server: sb, url: "http://" + ln.Addr().String(), publicKey: pub, privateKey: priv}, func() { _ = srv.Close() }, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// queryHandler is /query: who may call it (CORS, API keys) around the
// GraphQL handler with its persisted operations, operation limits and
// client rate limit. svc is the upstream as the loaders see it.
func queryHandler(cfg config, svc upstream.Service, shared *fleet.Redis, tel *telemetry.Telemetry, log *slog.Logger) (http.Handler, error) {
	local, err := persisted.NewMemoryStore(cfg.APQMaxBytes)
	if err != nil {
		return nil, fmt.Errorf("APQ_MAX_BYTES: %w", err)
	}
	var store persisted.Store = local
	if shared != nil {
		store = shared.APQStore(local, apqTTL)
	}
	ops := &persisted.Extension{Store: store, Only: cfg.PersistedOperationsOnly, Trusted: graph.FromFederationRouter(cfg.FederationSecret)}
	if cfg.PersistedOperations != "" {
		if ops.Manifest, err = persisted.LoadManifest(cfg.PersistedOperations, graph.Schema()); err != nil {
			return nil, fmt.Errorf("PERSISTED_OPERATIONS: %w", err)
		}
		log.Info("persisted operations", "manifest", cfg.PersistedOperations, "operations", ops.Manifest.Len(), "only", cfg.PersistedOperationsOnly)
		// The safelist's operations are counted under their own names.
		tel.Metrics().KnowOperations(ops.Manifest.Names())
	}
	inflight := limits.NewInflight(cfg.MaxInflightCost, cfg.InflightWait)
	tel.Metrics().WatchInflight(inflight)
	hc := graph.HandlerConfig{
		Service:               svc,
		Log:                   log,
		MaxPageSize:           cfg.MaxPageSize,
		BatchWait:             cfg.BatchWait,
		DeduplicateOperations: cfg.Dedupe,
		Introspection:         cfg.Introspection,
		FederationSecret:      cfg.FederationSecret,
		ParserTokenLimit:      cfg.MaxTokens,
		DocumentCacheBytes:    cfg.DocumentCacheMaxBytes,
		Limits: limits.Limits{
			MaxDepth:          cfg.MaxDepth,
			MaxAliases:        cfg.MaxAliases,
			MaxRootFields:     cfg.MaxRootFields,
			MaxDirectives:     cfg.MaxDirectives,
			MaxExpandedFields: cfg.MaxExpandedFields,
			MaxCost:           cfg.MaxCost,
			MaxUpstreamCalls:  cfg.MaxUpstreamCalls,
		},
		OperationTimeout: cfg.OperationTimeout,
		Inflight:         inflight,
		// Telemetry first, so that it sees each answer as the others leave it.
		Extensions:       []graphql.HandlerExtension{tel.Extension(), ops},
		DedupeShared:     tel.Deduplicated,
		FederatedTracing: cfg.FederatedTracing,
		// Answers need a key when keys are on: only private caches then.
		HTTPCaching: graph.HTTPCaching{MaxAge: cfg.CacheTTL, Private: cfg.APIKeysFile != ""},
	}
	if cfg.ClientRateLimit > 0 {
		burst := cfg.ClientBurst
		if burst == 0 {
			burst = cmp.Or(cfg.MaxCost, limits.DefaultLimits.MaxCost)
		}
		local, err := access.NewLocalLimiter(cfg.ClientRateLimit, burst)
		if err != nil {
			return nil, fmt.Errorf("CLIENT_RATE_LIMIT: %w", err)
		}
		var limiter access.Limiter = local
		if shared != nil {
			limiter = shared.ClientLimiter(cfg.ClientRateLimit, burst, local)
		}
		rl := &access.RateLimit{Limiter: limiter, Burst: burst, Log: log}
		hc.Admit = rl.Admit
		// A shared execution is charged to the client that leads it: only
		// one client's identical requests may share one.
		hc.DedupeVary = func(r *http.Request) string { return access.ClientKey(r.Context()) }
	}
	h := graph.NewHandler(hc)
	if cfg.APIKeysFile != "" {
		keys, err := access.LoadKeys(cfg.APIKeysFile)
		if err != nil {
			return nil, fmt.Errorf("API_KEYS_FILE: %w", err)
		}
		log.Info("API keys required on /query", "keys", keys.Len())
		h = authenticate(keys, cfg.FederationSecret, h)
	}
	cors, err := access.CORS(strings.Split(cfg.CORSAllowedOrigins, ","))
	if err != nil {
		return nil, fmt.Errorf("CORS_ALLOWED_ORIGINS: %w", err)
	}
	return cors(h), nil
}

// apqTTL is how long the fleet keeps an APQ document after its last
// registration (a frontend registers again on a miss, at no cost).
const apqTTL = 24 * time.Hour

// federationClient is the client name of a request that carries the
// federation secret.
const federationClient = "federation-router"

// authenticate requires an API key on /query, except from a federation
// router that carries the federation secret (a credential of its own).
func authenticate(keys *access.Keys, secret string, next http.Handler) http.Handler {
	withKey := access.Authenticate(keys, next)
	want := []byte(secret)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if graph.CarriesFederationSecret(r.Header, want) {
			if c := access.ClientFrom(r.Context()); c != nil {
				c.Name = federationClient
			}
			next.ServeHTTP(w, r)
			return
		}
		withKey.ServeHTTP(w, r)
	})
}

// routes wires the endpoints and the middleware around them. sb is the
// sandbox in sandbox mode, nil otherwise.
func routes(cfg config, query, ready http.Handler, trusted []netip.Prefix, sb *sandbox.Server, tel *telemetry.Telemetry, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/query", query)
	if sb != nil {
		// The sandbox's call counters, so that end-to-end tests of the
		// built binary can count upstream calls. Sandbox mode only.
		mux.HandleFunc("GET /sandbox/stats", func(w http.ResponseWriter, r *http.Request) {
			st := sb.Stats()
			writeJSON(w, http.StatusOK, map[string]any{"calls": st.Calls, "maxInFlight": st.MaxInFlight, "inFlight": st.InFlight})
		})
		mux.HandleFunc("POST /sandbox/stats/reset", func(w http.ResponseWriter, r *http.Request) {
			sb.ResetStats()
			w.WriteHeader(http.StatusNoContent)
		})
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "mode": mode(cfg), "sandbox": cfg.Sandbox()})
	})
	mux.Handle("GET /readyz", ready)
	if cfg.Playground {
		mux.Handle("/", playground.Handler("/query"))
	}
	// The trace outside the log, so that the request's log lines name it.
	return withRequestID(tel.Trace(access.Identify(trusted, tel.AccessLog(withRecover(log, withBodyLimit(cfg.MaxBodyBytes, mux))))))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readiness answers /readyz: whether this replica can serve. It reports
// how the upstream answered last (the last call of real traffic, or, when
// there was none lately, a cheap call of its own, Limit=1, cached for ttl so
// that probes cannot hammer it) and the circuit's state. Only a
// refusal of the replica's own requests (its credentials rejected, say)
// makes it unready: an upstream that fails fails every replica alike, and
// one that can still answer from its cache, or fail fast, serves clients
// better than one the load balancer took out.
type readiness struct {
	client *upstream.Client
	ttl    time.Duration

	draining atomic.Bool

	mu      sync.Mutex
	checked time.Time
	err     error
}

func newReadiness(c *upstream.Client, ttl time.Duration) *readiness {
	return &readiness{client: c, ttl: ttl}
}

// drain makes /readyz answer 503 from now on.
func (rd *readiness) drain() { rd.draining.Store(true) }

func (rd *readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rd.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "draining"})
		return
	}
	checked, err := rd.check(r.Context())
	body := map[string]any{"status": "ready", "upstream": "ok", "circuit": rd.client.CircuitState(),
		"checkedAt": checked.UTC().Format(time.RFC3339)}
	status := http.StatusOK
	if err != nil {
		body["upstream"] = "failing"
		if api, ok := upstream.AsAPIError(err); ok {
			body["kind"] = string(api.Kind)
			body["retCode"] = api.RetCode
			body["requestId"] = api.RequestID
		}
		if !upstream.IsUpstreamFault(err) {
			body["status"], status = "unavailable", http.StatusServiceUnavailable
		}
	}
	writeJSON(w, status, body)
}

// check returns how the upstream answered last: the outcome of the last
// call of real traffic when one finished within the last readinessQuiet,
// else that of a Limit=1 call of its own (made at most every ttl).
func (rd *readiness) check(ctx context.Context) (time.Time, error) {
	if o := rd.client.LastOutcome(); o != nil && time.Since(o.At) < readinessQuiet {
		return o.At, o.Err
	}
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if time.Since(rd.checked) > rd.ttl {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, rd.err = rd.client.DescribeCommunityImages(ctx, &upstream.DescribeCommunityImagesRequest{Limit: upstream.Int(1)})
		cancel()
		rd.checked = time.Now()
	}
	return rd.checked, rd.err
}

// readinessQuiet is how recent a call of real traffic must be for /readyz
// to report it instead of calling the upstream itself.
const readinessQuiet = 30 * time.Second

type requestIDKey struct{}

// RequestID returns the id of the request ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// withRequestID takes the caller's X-Request-Id when it is a sane token, or
// makes one, and echoes it in the response.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !saneID(id) {
			id = randomHex(8)
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

func saneID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// requestIDHandler adds the request id of the record's context to every log line.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// clientAttrs are the attributes of a request's client in its log line.
func clientAttrs(r *http.Request) []slog.Attr {
	c := access.ClientFrom(r.Context())
	if c == nil {
		return nil
	}
	if c.Name != "" {
		return []slog.Attr{slog.String("client_addr", c.Addr), slog.String("client", c.Name)}
	}
	return []slog.Attr{slog.String("client_addr", c.Addr)}
}

// serveMetrics serves /metrics on a listener of its own at addr, so that
// they are never public on the API's port; it returns the function that
// stops it.
func serveMetrics(addr string, metrics *telemetry.Metrics, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("METRICS_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() { _ = srv.Serve(ln) }()
	log.Info("metrics listening", "addr", ln.Addr().String(), "path", "/metrics")
	return func() { _ = srv.Close() }, nil
}

// withRecover turns a panic outside the GraphQL executor into a 500 with a
// plain body and a log line, never a stack trace in the response.
func withRecover(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.ErrorContext(r.Context(), "panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				gqlhttp.WriteError(w, http.StatusInternalServerError, "internal error", codes.Internal)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// withBodyLimit refuses a body declared larger than limit with 413 and caps
// the rest, so that no request can make the server read without bound.
func withBodyLimit(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			gqlhttp.WriteError(w, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("request body larger than %d bytes", limit), codes.BadUserInput)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// The flag.Value adapters that let one setting table serve env and flags.
type (
	stringValue   struct{ p *string }
	intValue      struct{ p *int }
	int64Value    struct{ p *int64 }
	floatValue    struct{ p *float64 }
	boolValue     struct{ p *bool }
	durationValue struct{ p *time.Duration }
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
	if err != nil {
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

// Package settings is every setting of the server, read once: one table
// serves the environment variables, the flags, -h, the masked settings in
// the log and docs/configuration.md. Each setting is parsed and checked
// when it is read, into the typed value the package that uses it takes as
// it is (durations, CIDRs, origins, log levels, the operation limits);
// Validate checks what involves several settings.
//
// It knows the types of the packages it configures and nothing of how they
// work.
package settings

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/compshare/imagegraph/internal/answers"
	"github.com/compshare/imagegraph/internal/cache"
	"github.com/compshare/imagegraph/internal/documents"
	"github.com/compshare/imagegraph/internal/httpserver"
	"github.com/compshare/imagegraph/internal/limits"
	"github.com/compshare/imagegraph/internal/live"
)

// Settings is every setting of the server. Defaults come first, then the
// environment, then flags.
type Settings struct {
	Port int

	// The upstream and the client's bounds on it.
	PublicKey, PrivateKey string
	BaseURL, Region       string
	ProjectID             string
	Timeout               time.Duration
	Retries               int
	MaxInflight           int
	QPS                   float64
	Burst                 int
	BreakerFailures       int
	BreakerCooldown       time.Duration
	// SandboxLatency is added to every call of the built-in sandbox;
	// SandboxTick is how often its data changes on its own (0: never).
	SandboxLatency time.Duration
	SandboxTick    time.Duration

	// The GraphQL endpoint.
	MaxPageSize      int
	Introspection    bool
	Playground       bool
	FederatedTracing bool
	// FederationSecret lets a federation router read _service with
	// introspection off, run operations outside the safelist and pass
	// without an API key (X-Federation-Secret header).
	FederationSecret string
	MaxBodyBytes     int64

	// Limits bound one operation; MaxTokens bounds the parser.
	Limits           limits.Limits
	MaxTokens        int
	OperationTimeout time.Duration
	MaxInflightCost  int64
	InflightWait     time.Duration

	// Caches: whole answers, parsed documents, APQ documents, upstream
	// answers.
	AnswerCache           bool
	AnswerCacheMaxBytes   int64
	DocumentCacheMaxBytes int64
	APQMaxBytes           int64
	Cache                 cache.Options

	// Live queries: subscriptions polled in cohorts.
	LivePollInterval          time.Duration
	LivePollShare             float64
	MaxSubscriptionsPerClient int
	MaxSubscriptions          int
	LiveKeepAlive             time.Duration
	LiveInitTimeout           time.Duration
	LiveWriteTimeout          time.Duration

	// Persisted operations.
	PersistedOperations     string
	PersistedOperationsOnly bool

	// HTTP bounds what one client's connection may hold.
	HTTP httpserver.Limits

	// Who may ask.
	CORSAllowedOrigins []string
	APIKeysFile        string
	ClientRateLimit    float64
	ClientBurst        int
	TrustedProxies     []netip.Prefix

	// The fleet: shared state in Redis (redis:// or rediss://).
	RedisURL string

	// Operating it.
	LogLevel        slog.Level
	LogFormat       LogFormat
	MetricsAddr     string
	ShutdownDrain   time.Duration
	ShutdownTimeout time.Duration

	// PrintSchema prints the subgraph SDL and exits (flag only).
	PrintSchema bool
}

// LogFormat is how log lines are written.
type LogFormat string

// The log formats: text for a person at a terminal, JSON lines for a
// collector, auto for text when stdout is a terminal and JSON otherwise.
const (
	LogAuto LogFormat = "auto"
	LogText LogFormat = "text"
	LogJSON LogFormat = "json"
)

// Defaults returns the settings of a server configured with nothing.
func Defaults() Settings {
	return Settings{
		Port:            8080,
		BaseURL:         "https://api.compshare.cn",
		Region:          "cn-wlcb",
		Timeout:         10 * time.Second,
		Retries:         2,
		MaxInflight:     8,
		QPS:             20,
		Burst:           40,
		BreakerFailures: 5,
		BreakerCooldown: 10 * time.Second,
		SandboxTick:     time.Minute,

		MaxPageSize:      500,
		Introspection:    true,
		Playground:       true,
		FederatedTracing: true,
		MaxBodyBytes:     1 << 20,

		Limits:           limits.DefaultLimits,
		MaxTokens:        limits.DefaultTokens,
		OperationTimeout: limits.DefaultOperationTimeout,
		MaxInflightCost:  limits.DefaultInflightCost,
		InflightWait:     limits.DefaultInflightWait,

		AnswerCache:           true,
		AnswerCacheMaxBytes:   answers.DefaultMaxBytes,
		DocumentCacheMaxBytes: documents.DefaultMaxBytes,
		APQMaxBytes:           16 << 20,
		Cache: cache.Options{
			TTL:                  cache.DefaultTTL,
			StaleWhileRevalidate: cache.DefaultStaleWhileRevalidate,
			StaleIfError:         cache.DefaultStaleIfError,
			MaxBytes:             cache.DefaultMaxBytes,
		},

		LivePollInterval:          live.DefaultInterval,
		LivePollShare:             live.DefaultShare,
		MaxSubscriptionsPerClient: live.DefaultMaxPerClient,
		MaxSubscriptions:          live.DefaultMaxSubscriptions,
		LiveKeepAlive:             live.DefaultKeepAlive,
		LiveInitTimeout:           live.DefaultInitTimeout,
		LiveWriteTimeout:          live.DefaultWriteTimeout,
		HTTP:                      httpserver.DefaultLimits,

		LogLevel:        slog.LevelInfo,
		LogFormat:       LogAuto,
		MetricsAddr:     ":9090",
		ShutdownDrain:   5 * time.Second,
		ShutdownTimeout: 15 * time.Second,
	}
}

// Load reads the defaults, then the environment (through lookupEnv), then
// the flags in args, and validates the result. -h writes every setting,
// with its variable and default, to out and returns flag.ErrHelp.
func Load(args []string, lookupEnv func(string) (string, bool), out io.Writer) (Settings, error) {
	s := Defaults()
	table := s.Table()
	fs := flag.NewFlagSet("imagegraph", flag.ContinueOnError)
	fs.SetOutput(out)
	for _, e := range table {
		fs.Var(flagValue{e.value, e.EmptyOK}, e.Flag(), fmt.Sprintf("%s (env %s)", e.Usage, e.Name))
	}
	fs.BoolVar(&s.PrintSchema, "print-schema", false, "print the federation subgraph SDL (what _service { sdl } answers) to stdout and exit")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: imagegraph [flags]\n\nEvery flag can also be set by its environment variable; flags win.\nA flag or variable set to \"\" is not set, except where \"\" turns a setting off.\n\n")
		fs.PrintDefaults()
	}
	// The environment first, so that flags override it. The defaults -h
	// prints are the built-in ones: a secret from the environment is never
	// shown.
	for _, e := range table {
		// A variable set to "" is not set, except for a setting that ""
		// turns off (METRICS_ADDR).
		v, ok := lookupEnv(e.Name)
		if !ok || v == "" && !e.EmptyOK {
			continue
		}
		if err := e.value.Set(v); err != nil {
			return s, fmt.Errorf("%s: %w", e.Name, err)
		}
	}
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	return s, s.Validate()
}

// flagValue is an entry's value as a flag. A flag set to "" is not set,
// as a variable set to "" is not, except for a setting that "" turns off:
// -region= would otherwise be a region of "", which the same setting
// written back to the environment cannot say (FuzzSetting found it).
type flagValue struct {
	flag.Value
	emptyOK bool
}

func (f flagValue) Set(v string) error {
	if v == "" && !f.emptyOK {
		return nil
	}
	return f.Value.Set(v)
}

// String is the value's; "" for the zero flagValue, which -h builds to
// tell a default from none.
func (f flagValue) String() string {
	if f.Value == nil {
		return ""
	}
	return f.Value.String()
}

// IsBoolFlag keeps -flag standing for -flag=true for a boolean setting.
func (f flagValue) IsBoolFlag() bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// Validate reports the first setting that cannot work. Each setting's own
// form (a number, a duration, a CIDR) was checked when it was read; this
// checks ranges and what involves several settings.
func (s Settings) Validate() error {
	switch {
	case s.Port < 0 || s.Port > 65535:
		return fmt.Errorf("PORT must be between 0 and 65535, got %d", s.Port)
	case (s.PublicKey == "") != (s.PrivateKey == ""):
		return errors.New("set both COMPSHARE_PUBLIC_KEY and COMPSHARE_PRIVATE_KEY, or neither for the sandbox")
	case s.Timeout <= 0:
		return fmt.Errorf("COMPSHARE_TIMEOUT must be positive, got %s", s.Timeout)
	case s.Retries < 0:
		return fmt.Errorf("COMPSHARE_RETRIES must not be negative, got %d", s.Retries)
	case s.MaxInflight < 1:
		return fmt.Errorf("COMPSHARE_MAX_INFLIGHT must be at least 1, got %d", s.MaxInflight)
	case !(s.QPS > 0) || math.IsInf(s.QPS, 0):
		return fmt.Errorf("COMPSHARE_QPS must be positive, got %g", s.QPS)
	case s.Burst < 1:
		return fmt.Errorf("COMPSHARE_BURST must be at least 1, got %d", s.Burst)
	case s.BreakerFailures < 0:
		return fmt.Errorf("COMPSHARE_BREAKER_FAILURES must not be negative (0 turns the breaker off), got %d", s.BreakerFailures)
	case s.BreakerFailures > 0 && s.BreakerCooldown <= 0:
		return fmt.Errorf("COMPSHARE_BREAKER_COOLDOWN must be positive, got %s", s.BreakerCooldown)
	case s.SandboxTick < 0:
		return fmt.Errorf("SANDBOX_TICK must not be negative (0: the data never changes), got %s", s.SandboxTick)
	case s.SandboxLatency < 0:
		return fmt.Errorf("SANDBOX_LATENCY must not be negative, got %s", s.SandboxLatency)
	case s.MaxPageSize < 1:
		return fmt.Errorf("MAX_PAGE_SIZE must be at least 1, got %d", s.MaxPageSize)
	case s.MaxBodyBytes < 1:
		return fmt.Errorf("MAX_BODY_BYTES must be positive, got %d", s.MaxBodyBytes)
	case s.OperationTimeout < 0:
		return fmt.Errorf("OPERATION_TIMEOUT must not be negative, got %s", s.OperationTimeout)
	case s.MaxInflightCost < 0:
		return fmt.Errorf("MAX_INFLIGHT_COST must not be negative, got %d", s.MaxInflightCost)
	case s.InflightWait < 0:
		return fmt.Errorf("INFLIGHT_WAIT must not be negative, got %s", s.InflightWait)
	case s.AnswerCacheMaxBytes < 1:
		return fmt.Errorf("ANSWER_CACHE_MAX_BYTES must be positive, got %d", s.AnswerCacheMaxBytes)
	case s.DocumentCacheMaxBytes < 1:
		return fmt.Errorf("DOCUMENT_CACHE_MAX_BYTES must be positive, got %d", s.DocumentCacheMaxBytes)
	case s.APQMaxBytes < 1:
		return fmt.Errorf("APQ_MAX_BYTES must be positive, got %d", s.APQMaxBytes)
	case s.Cache.TTL < 0 || s.Cache.StaleWhileRevalidate < 0 || s.Cache.StaleIfError < 0:
		return errors.New("CACHE_TTL, CACHE_STALE_WHILE_REVALIDATE and CACHE_STALE_IF_ERROR must not be negative")
	case s.Cache.MaxBytes < 1:
		return fmt.Errorf("CACHE_MAX_BYTES must be positive, got %d", s.Cache.MaxBytes)
	case s.LivePollInterval < 100*time.Millisecond:
		return fmt.Errorf("LIVE_POLL_INTERVAL must be at least 100ms, got %s", s.LivePollInterval)
	case !(s.LivePollShare > 0 && s.LivePollShare <= 1):
		return fmt.Errorf("LIVE_POLL_SHARE must be a share of COMPSHARE_QPS above 0, at most 1, got %g", s.LivePollShare)
	case s.MaxSubscriptionsPerClient < 0 || s.MaxSubscriptions < 0:
		return errors.New("MAX_SUBSCRIPTIONS_PER_CLIENT and MAX_SUBSCRIPTIONS must not be negative (0: no bound)")
	case s.LiveKeepAlive <= 0 || s.LiveInitTimeout <= 0 || s.LiveWriteTimeout <= 0:
		return errors.New("LIVE_KEEPALIVE, LIVE_INIT_TIMEOUT and LIVE_WRITE_TIMEOUT must be positive")
	case s.HTTP.ReadHeaderTimeout <= 0 || s.HTTP.ReadTimeout <= 0 || s.HTTP.WriteTimeout <= 0 || s.HTTP.IdleTimeout <= 0:
		return errors.New("HTTP_READ_HEADER_TIMEOUT, HTTP_READ_TIMEOUT, HTTP_WRITE_TIMEOUT and HTTP_IDLE_TIMEOUT must be positive")
	case s.HTTP.ReadTimeout < s.HTTP.ReadHeaderTimeout:
		return fmt.Errorf("HTTP_READ_TIMEOUT (%s) bounds the headers and the body, so it must be at least HTTP_READ_HEADER_TIMEOUT (%s)", s.HTTP.ReadTimeout, s.HTTP.ReadHeaderTimeout)
	case s.OperationTimeout > 0 && s.HTTP.WriteTimeout <= s.OperationTimeout:
		return fmt.Errorf("HTTP_WRITE_TIMEOUT (%s) must be longer than OPERATION_TIMEOUT (%s), or answers are cut off before they are written", s.HTTP.WriteTimeout, s.OperationTimeout)
	case s.HTTP.MaxHeaderBytes < 1024:
		return fmt.Errorf("MAX_HEADER_BYTES must be at least 1024, got %d", s.HTTP.MaxHeaderBytes)
	case s.HTTP.MaxConnections < 0:
		return fmt.Errorf("MAX_CONNECTIONS must not be negative (0: no bound), got %d", s.HTTP.MaxConnections)
	case s.PersistedOperationsOnly && s.PersistedOperations == "":
		return errors.New("PERSISTED_OPERATIONS_ONLY needs PERSISTED_OPERATIONS, the manifest of the operations to run")
	case s.ClientRateLimit < 0 || math.IsInf(s.ClientRateLimit, 0):
		return fmt.Errorf("CLIENT_RATE_LIMIT must be a number of points per second, 0 or more, got %g", s.ClientRateLimit)
	case s.ClientBurst < 0:
		return fmt.Errorf("CLIENT_BURST must not be negative, got %d", s.ClientBurst)
	case s.ShutdownTimeout <= 0:
		return fmt.Errorf("SHUTDOWN_TIMEOUT must be positive, got %s", s.ShutdownTimeout)
	case s.ShutdownDrain < 0:
		return fmt.Errorf("SHUTDOWN_DRAIN must not be negative, got %s", s.ShutdownDrain)
	case !redisURL(s.RedisURL):
		// The value may hold a password: it is not quoted back.
		return errors.New("REDIS_URL must be a redis:// or rediss:// URL")
	}
	l := s.Limits
	for _, n := range []struct {
		name string
		v    int
	}{
		{"MAX_DEPTH", l.MaxDepth}, {"MAX_ALIASES", l.MaxAliases}, {"MAX_ROOT_FIELDS", l.MaxRootFields},
		{"MAX_DIRECTIVES", l.MaxDirectives}, {"MAX_TOKENS", s.MaxTokens}, {"MAX_EXPANDED_FIELDS", l.MaxExpandedFields},
		{"MAX_COST", l.MaxCost}, {"MAX_UPSTREAM_CALLS", l.MaxUpstreamCalls},
	} {
		if n.v < 0 {
			return fmt.Errorf("%s must not be negative (0 turns it off), got %d", n.name, n.v)
		}
	}
	return nil
}

// Sandbox reports whether the server serves the built-in sandbox: no
// credentials.
func (s Settings) Sandbox() bool { return s.PublicKey == "" && s.PrivateKey == "" }

// Mode is "sandbox" or "upstream".
func (s Settings) Mode() string {
	if s.Sandbox() {
		return "sandbox"
	}
	return "upstream"
}

// RateLimitBurst is the points a client may spend at once: CLIENT_BURST,
// or MAX_COST when that is 0 (or the default MAX_COST when both are).
func (s Settings) RateLimitBurst() int {
	switch {
	case s.ClientBurst > 0:
		return s.ClientBurst
	case s.Limits.MaxCost > 0:
		return s.Limits.MaxCost
	}
	return limits.DefaultLimits.MaxCost
}

// LogValue lists the settings, secrets masked and passwords in URLs
// redacted, for a log line.
func (s Settings) LogValue() slog.Value {
	var attrs []slog.Attr
	for _, e := range s.Table() {
		attrs = append(attrs, slog.String(e.Name, e.Shown()))
	}
	return slog.GroupValue(attrs...)
}

// list splits a comma-separated setting, trimming spaces and dropping
// empty entries.
func list(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// Text reports whether logs written to w are text for a person: LOG_FORMAT
// text, or auto with w a terminal.
func (f LogFormat) Text(w io.Writer) bool {
	switch f {
	case LogText:
		return true
	case LogJSON:
		return false
	}
	file, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := file.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

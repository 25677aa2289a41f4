package upstream

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Version is the version of this client, sent in the default User-Agent.
const Version = "0.1.0"

// Defaults of a Client built without the matching option.
const (
	DefaultBaseURL      = "https://api.compshare.cn"
	DefaultRegion       = "cn-wlcb"
	DefaultUserAgent    = "compshare-imagegraph/" + Version
	DefaultTimeout      = 10 * time.Second
	DefaultMaxInFlight  = 8
	DefaultQPS          = 20.0
	DefaultBurst        = 40
	DefaultMaxBodyBytes = 16 << 20
)

// RetryPolicy says how often and how patiently a call is retried after a
// retryable failure. The delay before retry n (0-based) is drawn uniformly
// from [0, min(MaxDelay, BaseDelay·2^n)] (full jitter); a Retry-After header
// on a 429 or 503 raises it to at least that long, never above MaxDelay.
type RetryPolicy struct {
	// MaxRetries is the number of retries after the first attempt; 0 retries nothing.
	MaxRetries int
	// BaseDelay is the backoff unit; 0 means the default, 100ms.
	BaseDelay time.Duration
	// MaxDelay caps every delay, Retry-After included; 0 means the default, 5s.
	MaxDelay time.Duration
}

// DefaultRetryPolicy is the policy of a Client built without WithRetryPolicy:
// two retries (three attempts), 100ms base, 5s cap.
var DefaultRetryPolicy = RetryPolicy{MaxRetries: 2, BaseDelay: 100 * time.Millisecond, MaxDelay: 5 * time.Second}

// Option configures a Client. Options validate their input; NewClient
// returns the first error.
type Option func(*Client) error

// WithBaseURL sets the API endpoint, an absolute http or https URL without
// user info, query or fragment. The action is called at {base}/?Action=….
func WithBaseURL(base string) Option {
	return func(c *Client) error {
		u, err := url.Parse(base)
		if err != nil {
			return fmt.Errorf("upstream: WithBaseURL: %w", err)
		}
		switch {
		case u.Scheme != "http" && u.Scheme != "https":
			return fmt.Errorf("upstream: WithBaseURL: scheme must be http or https, got %q", u.Scheme)
		case u.Host == "":
			return errors.New("upstream: WithBaseURL: URL must be absolute with a host")
		case u.User != nil:
			return errors.New("upstream: WithBaseURL: URL must not carry user info")
		case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
			return errors.New("upstream: WithBaseURL: URL must not carry a query or fragment")
		}
		c.baseURL = strings.TrimRight(u.String(), "/")
		return nil
	}
}

// WithRegion sets the region sent with every request that names none.
func WithRegion(region string) Option {
	return func(c *Client) error {
		if strings.TrimSpace(region) == "" {
			return errors.New("upstream: WithRegion: region must not be empty")
		}
		c.region = region
		return nil
	}
}

// WithProjectID sets the ProjectId sent (and signed) with every request.
// Without it no ProjectId is sent.
func WithProjectID(projectID string) Option {
	return func(c *Client) error {
		c.projectID = projectID
		return nil
	}
}

// WithCredentials sets the API key pair. NewClient requires it.
func WithCredentials(publicKey, privateKey string) Option {
	return func(c *Client) error {
		if publicKey == "" || privateKey == "" {
			return errors.New("upstream: WithCredentials: public and private key must both be set")
		}
		c.creds = &credentials{public: publicKey, private: privateKey}
		return nil
	}
}

// WithHTTPClient sets the HTTP client. Its own Timeout, if any, applies on top
// of the per-attempt timeout. Without it the Client uses a client whose
// Transport keeps enough idle connections for WithMaxInFlight and which does
// not follow redirects.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("upstream: WithHTTPClient: client must not be nil")
		}
		c.httpClient = hc
		return nil
	}
}

// WithTimeout sets the timeout of one attempt: connecting, sending and reading
// the whole response. It must be positive.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("upstream: WithTimeout: timeout must be positive, got %s", d)
		}
		c.timeout = d
		return nil
	}
}

// WithRetryPolicy sets the retry policy. MaxRetries must not be negative;
// zero delays take the defaults; MaxDelay must not be below BaseDelay.
func WithRetryPolicy(p RetryPolicy) Option {
	return func(c *Client) error {
		if p.MaxRetries < 0 {
			return fmt.Errorf("upstream: WithRetryPolicy: MaxRetries must not be negative, got %d", p.MaxRetries)
		}
		if p.BaseDelay < 0 || p.MaxDelay < 0 {
			return errors.New("upstream: WithRetryPolicy: delays must not be negative")
		}
		if p.BaseDelay == 0 {
			p.BaseDelay = DefaultRetryPolicy.BaseDelay
		}
		if p.MaxDelay == 0 {
			p.MaxDelay = max(DefaultRetryPolicy.MaxDelay, p.BaseDelay)
		}
		if p.MaxDelay < p.BaseDelay {
			return fmt.Errorf("upstream: WithRetryPolicy: MaxDelay %s is below BaseDelay %s", p.MaxDelay, p.BaseDelay)
		}
		c.retry = p
		return nil
	}
}

// WithMaxInFlight bounds the number of HTTP attempts in flight at once.
func WithMaxInFlight(n int) Option {
	return func(c *Client) error {
		if n < 1 {
			return fmt.Errorf("upstream: WithMaxInFlight: must be at least 1, got %d", n)
		}
		c.maxInFlight = n
		return nil
	}
}

// WithRateLimit sets the token bucket every attempt draws from: qps tokens a
// second (math.Inf(1) for no limit), at most burst at once.
func WithRateLimit(qps float64, burst int) Option {
	return func(c *Client) error {
		if math.IsNaN(qps) || qps <= 0 {
			return fmt.Errorf("upstream: WithRateLimit: qps must be positive, got %v", qps)
		}
		if burst < 1 {
			return fmt.Errorf("upstream: WithRateLimit: burst must be at least 1, got %d", burst)
		}
		c.qps, c.burst = qps, burst
		return nil
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(c *Client) error {
		if strings.TrimSpace(ua) == "" {
			return errors.New("upstream: WithUserAgent: user agent must not be empty")
		}
		c.userAgent = ua
		return nil
	}
}

// WithMaxBodyBytes caps the size of a response body; a larger one fails the
// call with KindDecode.
func WithMaxBodyBytes(n int64) Option {
	return func(c *Client) error {
		if n < 1 {
			return fmt.Errorf("upstream: WithMaxBodyBytes: must be positive, got %d", n)
		}
		c.maxBodyBytes = n
		return nil
	}
}

// WithLogger sets the logger retries and failures are reported to (retries at
// debug, giving up after retries at warn). A nil logger logs nothing, which is
// the default. Log lines carry the action, attempt, status and request id,
// never a key, a signature or a request body.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) error {
		c.logger = l
		return nil
	}
}

// WithCircuitBreaker puts a circuit breaker around every call: after
// failures consecutive upstream faults (see IsUpstreamFault; a call counts
// once, after its retries) the circuit opens and calls fail at once with
// KindCircuitOpen for cooldown; then one probe call decides whether it
// closes again. Without this option, or with failures 0, there is no
// breaker.
func WithCircuitBreaker(failures int, cooldown time.Duration) Option {
	return func(c *Client) error {
		switch {
		case failures == 0:
			return nil // no breaker
		case failures < 0:
			return fmt.Errorf("upstream: WithCircuitBreaker: failures must not be negative, got %d", failures)
		}
		if cooldown <= 0 {
			return fmt.Errorf("upstream: WithCircuitBreaker: cooldown must be positive, got %s", cooldown)
		}
		c.breakerFailures, c.breakerCooldown = failures, cooldown
		return nil
	}
}

// WithLimiter paces every attempt with l instead of the client's own token
// bucket (WithRateLimit): a budget of calls that several processes share.
func WithLimiter(l Limiter) Option {
	return func(c *Client) error {
		if l == nil {
			return errors.New("upstream: WithLimiter: limiter must not be nil")
		}
		c.limiter = l
		return nil
	}
}

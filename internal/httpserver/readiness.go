package httpserver

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/compshare/imagegraph/upstream"
)

// Readiness answers /readyz: whether this replica can serve. It reports
// how the upstream answered last (the last call of real traffic, or, when
// there was none lately, a cheap call of its own, Limit=1, made at most
// every TTL so that probes cannot hammer it) and the circuit's state. Only
// a refusal of the replica's own requests (its credentials rejected, say)
// makes it unready: an upstream that fails fails every replica alike, and
// one that can still answer from its cache, or fail fast, serves clients
// better than one the load balancer took out. Once drained, it answers 503.
type Readiness struct {
	client *upstream.Client
	ttl    time.Duration

	draining atomic.Bool

	mu      sync.Mutex
	checked time.Time
	err     error
}

// ReadinessQuiet is how recent a call of real traffic must be for /readyz
// to report it instead of calling the upstream itself, and how often it
// calls at most.
const ReadinessQuiet = 30 * time.Second

// NewReadiness returns the readiness of a replica calling the upstream
// through c.
func NewReadiness(c *upstream.Client) *Readiness {
	return &Readiness{client: c, ttl: ReadinessQuiet}
}

// Drain makes /readyz answer 503 from now on.
func (rd *Readiness) Drain() { rd.draining.Store(true) }

// Draining reports whether Drain was called.
func (rd *Readiness) Draining() bool { return rd.draining.Load() }

func (rd *Readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rd.draining.Load() {
		WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "draining"})
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
	WriteJSON(w, status, body)
}

// check returns how the upstream answered last: the outcome of the last
// call of real traffic when one finished within the last ReadinessQuiet,
// else that of a Limit=1 call of its own (made at most every ttl).
func (rd *Readiness) check(ctx context.Context) (time.Time, error) {
	if o := rd.client.LastOutcome(); o != nil && time.Since(o.At) < ReadinessQuiet {
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

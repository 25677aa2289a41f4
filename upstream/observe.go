package upstream

import (
	"context"
	"time"
)

// Observer watches the client's traffic to the upstream one attempt at a
// time: the hook that metrics and traces hang off, so that this package
// knows nothing of either. Set it with WithObserver. Its methods run on the
// call's goroutine, must be safe for concurrent use, and should be cheap.
type Observer interface {
	// StartAttempt is called as attempt n of a call (1 for the first, more
	// for its retries) starts, before it waits for an in-flight slot and the
	// rate limiter. ctx is the call's context: for a call identical callers
	// share, a copy of the first caller's, detached from its cancellation
	// but carrying its values (a trace, say). end is called once, with how
	// the attempt went.
	StartAttempt(ctx context.Context, n int) (end func(AttemptReport))
}

// AttemptReport is how one attempt went.
type AttemptReport struct {
	// Attempt is its number: 1 for the first, more for retries.
	Attempt int
	// SlotWait is the time it waited for an in-flight slot
	// (WithMaxInFlight), LimiterWait the time it then waited for the rate
	// limiter (WithRateLimit, WithLimiter).
	SlotWait, LimiterWait time.Duration
	// Sent reports that the request went out; an attempt whose budget ran
	// out while it waited was not sent.
	Sent bool
	// Duration is the exchange itself, from sending the request to the
	// decoded answer (0 when not sent).
	Duration time.Duration
	// HTTPStatus and RequestID are the answer's, when there was one.
	HTTPStatus int
	RequestID  string
	// Err is the failure (nil on success): its Kind and RetCode say which.
	Err *APIError
	// Retry reports that another attempt follows.
	Retry bool
}

// WithObserver has o watch every attempt (see Observer). Without it nothing
// is reported.
func WithObserver(o Observer) Option {
	return func(c *Client) error {
		c.observer = o
		return nil
	}
}

// ClientStats are the client's gauges and counters at one moment.
type ClientStats struct {
	// InFlight is the number of attempts holding an in-flight slot: waiting
	// for the rate limiter or talking to the upstream.
	InFlight int
	// Coalesced counts the calls answered by an identical call already in
	// flight, since NewClient.
	Coalesced int64
	// CircuitState is the circuit breaker's state (see CircuitState);
	// CircuitOpened counts its openings and CircuitRefused the calls it
	// refused, since NewClient.
	CircuitState                  string
	CircuitOpened, CircuitRefused int64
	// QPS is the rate limit the client was configured with: the account's
	// budget of calls a second.
	QPS float64
}

// Stats returns the client's gauges and counters, for metrics to read when
// they are scraped.
func (c *Client) Stats() ClientStats {
	s := ClientStats{
		InFlight:     len(c.sem),
		Coalesced:    c.coalesced.Load(),
		CircuitState: c.breaker.state(),
		QPS:          c.qps,
	}
	if c.breaker != nil {
		s.CircuitOpened, s.CircuitRefused = c.breaker.opens.Load(), c.breaker.refused.Load()
	}
	return s
}

// noAttempt is the end of an attempt nobody observes.
func noAttempt(AttemptReport) {}

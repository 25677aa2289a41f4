package upstream

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// breaker is the client's circuit breaker, sony/gobreaker's two-step one
// around each upstream call (after its retries): after a number of
// consecutive upstream faults (IsUpstreamFault) it opens, and calls are
// refused at once with KindCircuitOpen for the cooldown; then one probe
// call goes through, and its outcome closes or reopens the circuit. Calls
// abandoned by all their callers count for nothing. A nil *breaker lets
// every call through.
type breaker struct {
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	cooldown time.Duration
	opened   atomic.Int64 // UnixNano of the last opening
	now      func() time.Time
	// opens counts the openings, refused the calls refused.
	opens, refused atomic.Int64
}

func newBreaker(failures int, cooldown time.Duration, log *slog.Logger, now func() time.Time) *breaker {
	b := &breaker{cooldown: cooldown, now: now}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         "upstream",
		MaxRequests:  1,
		Timeout:      cooldown,
		ReadyToTrip:  func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(failures) },
		IsSuccessful: func(err error) bool { return !IsUpstreamFault(err) },
		IsExcluded:   func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.opened.Store(b.now().UnixNano())
				b.opens.Add(1)
			}
			if log == nil {
				return
			}
			level := slog.LevelInfo
			if to == gobreaker.StateOpen {
				level = slog.LevelWarn
			}
			log.Log(context.Background(), level, "upstream circuit "+to.String(),
				slog.String("from", from.String()), slog.Duration("cooldown", cooldown))
		},
	})
	return b
}

// allow asks for a call: it returns the function that reports its outcome,
// or a KindCircuitOpen error.
func (b *breaker) allow() (func(error), error) {
	if b == nil {
		return func(error) {}, nil
	}
	done, err := b.cb.Allow()
	if err != nil {
		b.refused.Add(1)
		retry := time.Second // half-open: the probe is under way
		if errors.Is(err, gobreaker.ErrOpenState) {
			retry = max(b.cooldown-b.now().Sub(time.Unix(0, b.opened.Load())), time.Second)
		}
		return nil, &APIError{Action: ActionDescribeCommunityImages, Kind: KindCircuitOpen,
			Message: "upstream circuit open after consecutive failures", RetryAfter: retry, Err: err}
	}
	return done, nil
}

// state is the circuit's state: "closed", "open" or "half-open"; "off"
// without a breaker.
func (b *breaker) state() string {
	if b == nil {
		return "off"
	}
	return b.cb.State().String()
}

// CircuitState reports the state of the client's circuit breaker:
// "closed", "open", "half-open", or "off" without WithCircuitBreaker.
func (c *Client) CircuitState() string { return c.breaker.state() }

package soak

import (
	"fmt"
	"sync"
	"time"
)

// Change is one value a watched version's versionDescription took.
type Change struct {
	// At is when the sandbox had it: the initial value at the soak's
	// start, a change once the sandbox answered its POST.
	At time.Time `json:"at"`
	// Value is the versionDescription.
	Value string `json:"value"`
}

// Changes is the history of the watched versions, safe for concurrent
// use.
type Changes struct {
	mu sync.Mutex
	by map[string][]Change
}

// Set records that version took value at at; calls for one version come in
// time order.
func (c *Changes) Set(version, value string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string][]Change{}
	}
	c.by[version] = append(c.by[version], Change{At: at, Value: value})
}

// Of returns a copy of version's history.
func (c *Changes) Of(version string) []Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Change(nil), c.by[version]...)
}

// ValidWithin reports whether value was the version's value at some moment
// of [from, to]: an answer read in that time, from data no older than the
// caches allow, can hold nothing else.
func (c *Changes) ValidWithin(version, value string, from, to time.Time) bool {
	return validWithin(c.Of(version), value, from, to)
}

func validWithin(seq []Change, value string, from, to time.Time) bool {
	for i, ch := range seq {
		if ch.Value != value {
			continue
		}
		// ch held from ch.At until the next change.
		if ch.At.After(to) {
			continue
		}
		if i+1 < len(seq) && !seq[i+1].At.After(from) {
			continue
		}
		return true
	}
	return false
}

// Interval is a span of time.
type Interval struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Event is what a subscriber received.
type Event struct {
	// At is when it arrived.
	At time.Time `json:"at"`
	// Value is the versionDescription it carried ("" for an error event).
	Value string `json:"value,omitempty"`
	// Code is the code of its first error, for an event with errors.
	Code string `json:"code,omitempty"`
}

// Session is a time a subscription was open: from sending the subscribe
// message (or request) until its stream ended.
type Session struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// CloseCode is the WebSocket close code that ended it (0 for none,
	// or for SSE).
	CloseCode int `json:"closeCode,omitempty"`
}

// Subscriber is one subscription's log, across its reconnections.
type Subscriber struct {
	// Name names it (transport and number).
	Name string `json:"name"`
	// Version is the watched version it subscribes to.
	Version string `json:"version"`
	// Events are what it received, in order.
	Events []Event `json:"events"`
	// Sessions are its subscriptions, in order; the last one ends with the
	// soak.
	Sessions []Session `json:"sessions"`
}

// LiveRules are what a subscriber is held to.
type LiveRules struct {
	// Deadline is how long after a change (or a subscription) its value
	// may take to arrive: a poll reads data no older than the poll
	// interval, so a change can wait two intervals, plus slack for an
	// upstream attempt that timed out.
	Deadline time.Duration
	// Reconnect bounds the time between two sessions.
	Reconnect time.Duration
	// Excused are the times the upstream was down (its circuits open
	// included): a change made in one, or within Deadline before it (the
	// polls that would have carried it failed), counts from its end; and a
	// value received in one, or within Deadline after it, may be as old as
	// its start (stale-if-error answers the polls).
	Excused []Interval
	// End is the end of the soak: a change whose deadline passes it is not
	// judged.
	End time.Time
}

// LiveReport is what CheckSubscribers found.
type LiveReport struct {
	// Problems fail the soak.
	Problems []Problem `json:"problems"`
	// Judged counts the (change, subscriber) pairs judged; Unjudged those
	// whose deadline passed the end.
	Judged, Unjudged int
	// Slowest is the longest a judged change took to reach a subscriber,
	// from when it was made (or, for one the outage held back, from the
	// end of the outage).
	Slowest time.Duration
	// Reconnects counts sessions after a subscriber's first;
	// SlowestReconnect is the longest gap between two.
	Reconnects       int
	SlowestReconnect time.Duration
	// Events counts data events, ErrorEvents events with errors by code.
	Events      int
	ErrorEvents map[string]int
	// CloseCodes counts the WebSocket close codes that ended sessions.
	CloseCodes map[int]int
}

// CheckSubscribers holds every subscriber to the rules, against the
// watched versions' history:
//
//   - every value it received was the version's value at some moment of
//     the Deadline before it arrived (no value from nowhere, none staler
//     than the polls allow);
//   - every change reached it, its value or a later one, within Deadline
//     of the change (of its effective time), the time it had no session
//     open added: a subscriber that was cut off and came back must catch
//     up;
//   - every session that lasted Deadline got a first event within it;
//   - no gap between two sessions passed Reconnect.
func CheckSubscribers(history *Changes, subs []Subscriber, rules LiveRules) LiveReport {
	rep := LiveReport{ErrorEvents: map[string]int{}, CloseCodes: map[int]int{}}
	fail := func(format string, args ...any) {
		rep.Problems = append(rep.Problems, Problem{ProblemSubscription, fmt.Sprintf(format, args...)})
	}
	effective := func(at time.Time) time.Time {
		for _, iv := range rules.Excused {
			if !at.Before(iv.Start.Add(-rules.Deadline)) && !at.After(iv.End) {
				return iv.End
			}
		}
		return at
	}
	oldest := func(at time.Time) time.Time {
		from := at.Add(-rules.Deadline)
		for _, iv := range rules.Excused {
			if !at.Before(iv.Start) && !from.After(iv.End) {
				from = earlier(from, iv.Start.Add(-rules.Deadline))
			}
		}
		return from
	}
	for _, s := range subs {
		seq := history.Of(s.Version)
		for _, e := range s.Events {
			if e.Code != "" {
				rep.ErrorEvents[e.Code]++
				continue
			}
			rep.Events++
			if from := oldest(e.At); !validWithin(seq, e.Value, from, e.At) {
				fail("%s got %q at %s: not %s's value at any time since %s", s.Name, e.Value, e.At.Format(time.TimeOnly), s.Version, from.Format(time.TimeOnly))
			}
		}
		for i, ss := range s.Sessions {
			if ss.CloseCode != 0 {
				rep.CloseCodes[ss.CloseCode]++
			}
			if i > 0 {
				rep.Reconnects++
				gap := ss.Start.Sub(s.Sessions[i-1].End)
				rep.SlowestReconnect = max(rep.SlowestReconnect, gap)
				if gap > rules.Reconnect {
					fail("%s was without a subscription for %s from %s", s.Name, gap.Round(time.Millisecond), s.Sessions[i-1].End.Format(time.TimeOnly))
				}
			}
			if ss.End.Sub(ss.Start) >= rules.Deadline && !eventIn(s.Events, ss.Start, ss.Start.Add(rules.Deadline)) {
				fail("%s subscribed at %s and got no first event within %s", s.Name, ss.Start.Format(time.TimeOnly), rules.Deadline)
			}
		}
		for i, ch := range seq {
			if i == 0 {
				continue // the initial value: the sessions' first events cover it
			}
			from := effective(ch.At)
			deadline := from.Add(rules.Deadline)
			for range 10 { // the time without a session extends the deadline, which may take in more of it
				next := from.Add(rules.Deadline + offline(s.Sessions, from, deadline))
				if next.Equal(deadline) {
					break
				}
				deadline = next
			}
			if deadline.After(rules.End) {
				rep.Unjudged++
				continue
			}
			rep.Judged++
			current := map[string]bool{} // its value, or a later one's
			for _, c := range seq[i:] {
				current[c.Value] = true
			}
			got := time.Time{}
			for _, e := range s.Events {
				if e.Code == "" && !e.At.Before(ch.At) && !e.At.After(deadline) && current[e.Value] {
					got = e.At
					break
				}
			}
			if got.IsZero() {
				fail("%s missed %s's change to %q at %s: nothing by %s", s.Name, s.Version, ch.Value, ch.At.Format(time.TimeOnly), deadline.Format(time.TimeOnly))
				continue
			}
			rep.Slowest = max(rep.Slowest, got.Sub(later(ch.At, from)))
		}
	}
	return rep
}

// eventIn reports an event (data or error) in [from, to].
func eventIn(events []Event, from, to time.Time) bool {
	for _, e := range events {
		if !e.At.Before(from) && !e.At.After(to) {
			return true
		}
	}
	return false
}

// offline is the time in [from, to] not covered by a session.
func offline(sessions []Session, from, to time.Time) time.Duration {
	covered := time.Duration(0)
	for _, s := range sessions {
		start, end := later(s.Start, from), earlier(s.End, to)
		if end.After(start) {
			covered += end.Sub(start)
		}
	}
	return max(to.Sub(from)-covered, 0)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

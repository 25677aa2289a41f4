package soak_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/compshare/imagegraph/internal/soak"
)

// t0 is the start of the soak in these tests; at(s) is s seconds later.
var t0 = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// history is v1: "a" from 0, "b" from 20 s, "c" from 40 s.
func history() *soak.Changes {
	h := &soak.Changes{}
	h.Set("v1", "a", at(0))
	h.Set("v1", "b", at(20))
	h.Set("v1", "c", at(40))
	return h
}

func TestValidWithin(t *testing.T) {
	t.Parallel()
	h := history()
	assert.True(t, h.ValidWithin("v1", "a", at(5), at(10)))
	assert.True(t, h.ValidWithin("v1", "a", at(15), at(25)), "a held until 20")
	assert.False(t, h.ValidWithin("v1", "a", at(21), at(25)), "a was gone by 21")
	assert.False(t, h.ValidWithin("v1", "c", at(21), at(25)), "c came at 40")
	assert.True(t, h.ValidWithin("v1", "c", at(30), at(100)))
	assert.False(t, h.ValidWithin("v1", "z", at(0), at(100)), "never a value")
	assert.False(t, h.ValidWithin("v2", "a", at(0), at(100)), "another version")
}

// rules: 5 s to deliver, 10 s to reconnect, the soak ends at 100 s.
var rules = soak.LiveRules{Deadline: 5 * time.Second, Reconnect: 10 * time.Second, End: at(100)}

func sub(events []soak.Event, sessions ...soak.Session) soak.Subscriber {
	if sessions == nil {
		sessions = []soak.Session{{Start: at(0), End: at(100)}}
	}
	return soak.Subscriber{Name: "ws-1", Version: "v1", Events: events, Sessions: sessions}
}

func TestCheckSubscribersOnTime(t *testing.T) {
	t.Parallel()
	s := sub([]soak.Event{{At: at(0.5), Value: "a"}, {At: at(22), Value: "b"}, {At: at(41), Value: "c"}})
	rep := soak.CheckSubscribers(history(), []soak.Subscriber{s}, rules)
	assert.Empty(t, rep.Problems)
	assert.Equal(t, 2, rep.Judged)
	assert.Equal(t, 2*time.Second, rep.Slowest)
	assert.Equal(t, 3, rep.Events)
}

func TestCheckSubscribersLateOrMissing(t *testing.T) {
	t.Parallel()
	s := sub([]soak.Event{{At: at(0.5), Value: "a"}, {At: at(27), Value: "b"}})
	rep := soak.CheckSubscribers(history(), []soak.Subscriber{s}, rules)
	assert.Len(t, rep.Problems, 2, "b came late and c never: %v", rep.Problems)
}

func TestCheckSubscribersSkipToALaterValue(t *testing.T) {
	t.Parallel()
	h := &soak.Changes{}
	h.Set("v1", "a", at(0))
	h.Set("v1", "b", at(20))
	h.Set("v1", "c", at(21))
	s := sub([]soak.Event{{At: at(0.5), Value: "a"}, {At: at(24), Value: "c"}})
	rep := soak.CheckSubscribers(h, []soak.Subscriber{s}, rules)
	assert.Empty(t, rep.Problems, "c stands for b, which it replaced")
}

func TestCheckSubscribersStaleValue(t *testing.T) {
	t.Parallel()
	s := sub([]soak.Event{{At: at(0.5), Value: "a"}, {At: at(22), Value: "b"}, {At: at(30), Value: "a"}, {At: at(41), Value: "c"}})
	rep := soak.CheckSubscribers(history(), []soak.Subscriber{s}, rules)
	assert.Len(t, rep.Problems, 1, "a at 30 was gone 10 s before: %v", rep.Problems)
}

func TestCheckSubscribersCatchUpAfterReconnecting(t *testing.T) {
	t.Parallel()
	// Cut off from 18 to 24 s: b (at 20) may come by 20+5+the 4 s offline
	// after it; the first event of the new session must be within 5 s.
	sessions := []soak.Session{{Start: at(0), End: at(18), CloseCode: 1012}, {Start: at(24), End: at(100)}}
	ok := sub([]soak.Event{{At: at(0.5), Value: "a"}, {At: at(28), Value: "b"}, {At: at(41), Value: "c"}}, sessions...)
	rep := soak.CheckSubscribers(history(), []soak.Subscriber{ok}, rules)
	assert.Empty(t, rep.Problems)
	assert.Equal(t, 1, rep.Reconnects)
	assert.Equal(t, 6*time.Second, rep.SlowestReconnect)
	assert.Equal(t, map[int]int{1012: 1}, rep.CloseCodes)

	late := sub([]soak.Event{{At: at(0.5), Value: "a"}, {At: at(30), Value: "b"}, {At: at(41), Value: "c"}}, sessions...)
	rep = soak.CheckSubscribers(history(), []soak.Subscriber{late}, rules)
	assert.Len(t, rep.Problems, 2, "no first event within 5 s of subscribing again, and b after 29 s: %v", rep.Problems)

	slow := []soak.Session{{Start: at(0), End: at(10)}, {Start: at(25), End: at(100)}}
	rep = soak.CheckSubscribers(history(), []soak.Subscriber{sub([]soak.Event{{At: at(0.5), Value: "a"}, {At: at(26), Value: "b"}, {At: at(41), Value: "c"}}, slow...)}, rules)
	assert.Len(t, rep.Problems, 1, "15 s without a subscription: %v", rep.Problems)
}

func TestCheckSubscribersExcusedOutage(t *testing.T) {
	t.Parallel()
	// The upstream is down from 15 to 30 s: b (at 20) counts from 30, and
	// a may still be served stale until then.
	r := rules
	r.Excused = []soak.Interval{{Start: at(15), End: at(30)}}
	s := sub([]soak.Event{{At: at(0.5), Value: "a"}, {At: at(26), Value: "a"}, {At: at(33), Value: "b"}, {At: at(41), Value: "c"}})
	rep := soak.CheckSubscribers(history(), []soak.Subscriber{s}, r)
	assert.Empty(t, rep.Problems)
	assert.Equal(t, 3*time.Second, rep.Slowest, "b counts from the outage's end")
	rep = soak.CheckSubscribers(history(), []soak.Subscriber{s}, rules)
	assert.Len(t, rep.Problems, 2, "without the excuse, a at 26 is stale and b late: %v", rep.Problems)

	// A change made just before the upstream goes down waits for it too.
	r.Excused = []soak.Interval{{Start: at(22), End: at(30)}}
	s = sub([]soak.Event{{At: at(0.5), Value: "a"}, {At: at(33), Value: "b"}, {At: at(41), Value: "c"}})
	rep = soak.CheckSubscribers(history(), []soak.Subscriber{s}, r)
	assert.Empty(t, rep.Problems, "b at 20, the outage from 22: b counts from 30")
}

func TestCheckSubscribersErrorsAndTheEnd(t *testing.T) {
	t.Parallel()
	h := history()
	h.Set("v1", "d", at(98))
	s := sub([]soak.Event{{At: at(0.5), Value: "a"}, {At: at(10), Code: "UPSTREAM_TIMEOUT"}, {At: at(21), Value: "b"}, {At: at(41), Value: "c"}})
	rep := soak.CheckSubscribers(h, []soak.Subscriber{s}, rules)
	assert.Empty(t, rep.Problems)
	assert.Equal(t, 1, rep.Unjudged, "d's deadline passes the end")
	assert.Equal(t, map[string]int{"UPSTREAM_TIMEOUT": 1}, rep.ErrorEvents)
}

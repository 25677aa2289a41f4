package soak

import (
	"fmt"
	"time"
)

// Kind is what a window of the soak does to the fleet.
type Kind string

// The kinds of window: the warm-up, the faults in the order the soak
// injects them, and the quiet tail.
const (
	KindWarmUp            Kind = "warm-up"
	KindUpstream503       Kind = "upstream-503"
	KindUpstream429       Kind = "upstream-429"
	KindUpstreamTimeout   Kind = "upstream-timeout"
	KindUpstreamMalformed Kind = "upstream-malformed"
	KindUpstreamOutage    Kind = "upstream-outage"
	KindRedisKill         Kind = "redis-kill"
	KindReplicaKill       Kind = "replica-kill"
	KindReplicaDrain      Kind = "replica-drain"
	KindTail              Kind = "tail"
)

// FaultRate is the share of upstream calls a rate fault fails.
const FaultRate = 0.03

// MinDuration is the shortest soak the plan fits in: every window has a
// floor below which it shows nothing (a drain alone takes seconds).
const MinDuration = 2 * time.Minute

// DefaultDuration is the soak's length unless SOAK_DURATION says otherwise.
const DefaultDuration = 10 * time.Minute

// Step is one fault of the plan.
type Step struct {
	// Kind is what the fault does.
	Kind Kind
	// Label names it in the summary and on the chart.
	Label string
	// Replica is the replica a replica fault stops (0-based).
	Replica int
	// At is when it starts, from the soak's start.
	At time.Duration
	// For is how long it lasts: the upstream fault on, Redis or the
	// replica down. A drain has none of its own: its replica is started
	// again once it has exited, and For is the time the plan reserves for
	// that.
	For time.Duration
}

// End is when the step is planned to be over.
func (s Step) End() time.Duration { return s.At + s.For }

// Upstream reports whether the step is a fault of the upstream (injected
// through the sandbox's /faults).
func (s Step) Upstream() bool {
	switch s.Kind {
	case KindUpstream503, KindUpstream429, KindUpstreamTimeout, KindUpstreamMalformed, KindUpstreamOutage:
		return true
	}
	return false
}

// Plan is the soak's timetable: a warm-up, the faults in turn with a
// recovery gap after each, and a quiet tail. Every length scales with the
// soak's duration (10 minutes: two minutes of warm-up, 30 s of each rate
// fault, a minute of outage, two minutes and twenty seconds of tail), down
// to a floor. The warm-up is as long as a replica's memory takes to settle
// (its caches fill, its heap finds its size): a level measured any earlier
// is on the way up.
type Plan struct {
	// Duration is the whole soak.
	Duration time.Duration
	// WarmUp ends where the levels the growth check compares against are
	// measured.
	WarmUp time.Duration
	// Level is the length of the windows a level (RSS, goroutines,
	// descriptors) is the median of: the end of a warm-up, the end of the
	// soak.
	Level time.Duration
	// Gap is the recovery time after each fault.
	Gap time.Duration
	// Steps are the faults, in order.
	Steps []Step
}

// TailStart is when the quiet tail begins: a gap after the last fault.
func (p Plan) TailStart() time.Duration {
	last := p.Steps[len(p.Steps)-1]
	return last.End() + p.Gap
}

// The lengths at the default duration, and their floors.
var (
	baseWarmUp = span{120 * time.Second, 24 * time.Second}
	baseRate   = span{30 * time.Second, 6 * time.Second}
	baseOutage = span{60 * time.Second, 10 * time.Second}
	baseRedis  = span{20 * time.Second, 4 * time.Second}
	baseKill   = span{10 * time.Second, 2 * time.Second}
	baseDrain  = span{10 * time.Second, 8 * time.Second}
	baseGap    = span{15 * time.Second, 4 * time.Second}
	baseTail   = span{60 * time.Second, 12 * time.Second}
)

// span is a length at the default duration and its floor.
type span struct{ base, floor time.Duration }

func (s span) scaled(f float64) time.Duration {
	return max(time.Duration(float64(s.base)*f).Round(time.Second), s.floor)
}

// NewPlan returns the plan of a soak of d, which must be at least
// MinDuration. Replica faults stop replica 1 (SIGKILL) and replica 2
// (drain), 0-based: replica 0 lives through every fault.
func NewPlan(d time.Duration) (Plan, error) {
	if d < MinDuration {
		return Plan{}, fmt.Errorf("a soak needs at least %s to fit its windows, got %s", MinDuration, d)
	}
	f := float64(d) / float64(DefaultDuration)
	p := Plan{Duration: d, WarmUp: baseWarmUp.scaled(f), Gap: baseGap.scaled(f)}
	p.Level = max(p.WarmUp/6, 5*time.Second)
	at := p.WarmUp
	add := func(kind Kind, label string, replica int, length time.Duration) {
		p.Steps = append(p.Steps, Step{Kind: kind, Label: label, Replica: replica, At: at, For: length})
		at += length + p.Gap
	}
	pct := fmt.Sprintf("%g%%", FaultRate*100)
	add(KindUpstream503, "upstream 503 on "+pct, 0, baseRate.scaled(f))
	add(KindUpstream429, "upstream 429 on "+pct, 0, baseRate.scaled(f))
	add(KindUpstreamTimeout, "upstream timeouts on "+pct, 0, baseRate.scaled(f))
	add(KindUpstreamMalformed, "malformed JSON on "+pct, 0, baseRate.scaled(f))
	add(KindUpstreamOutage, "upstream outage", 0, baseOutage.scaled(f))
	add(KindRedisKill, "Redis SIGKILLed", 0, baseRedis.scaled(f))
	add(KindReplicaKill, "replica 2 SIGKILLed", 1, baseKill.scaled(f))
	add(KindReplicaDrain, "replica 3 drained", 2, baseDrain.scaled(f))
	if tail := d - p.TailStart(); tail < baseTail.scaled(f) {
		return Plan{}, fmt.Errorf("a soak of %s leaves a tail of %s after its faults, under the %s the growth check needs: give it more time", d, tail, baseTail.scaled(f))
	}
	return p, nil
}

package soak

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// The goals' thresholds.
const (
	// AnsweredGoal is the share of requests outside the outage that must be
	// answered with data and no error.
	AnsweredGoal = 0.999
	// CachedGoal is the share of pages read inside the outage that must be
	// answered with data (stale-if-error: each was read before).
	CachedGoal = 0.999
	// GrowthLimit is how far a level after the last fault may be above
	// its level after the warm-up.
	GrowthLimit = 0.10
	// MemorySettle is the shortest warm-up after which levels are judged:
	// a replica's RSS rises for a minute and a half to two minutes under the
	// soak's workload while its caches fill and its heap finds its size.
	// The tail of such a soak is long enough, too, for the upstream
	// connections the faults opened to go idle and close (the client keeps
	// them 90 s). A shorter soak shows its levels and judges none.
	MemorySettle = 90 * time.Second
)

// Input is everything Summarize works from.
type Input struct {
	// Plan is the timetable the soak followed.
	Plan Plan
	// Start and End bound the soak (the workload's start and end).
	Start, End time.Time
	// Requests, Resources, Windows and Processes are as recorded.
	Requests  []Request
	Resources []Resource
	Windows   []Window
	Processes []Process
	// Problems are the first problems found, ProblemCounts all of them by
	// kind.
	Problems      []Problem
	ProblemCounts map[string]int
	// Live is the subscribers' check.
	Live LiveReport
	// Subscribers counts the subscriptions held.
	Subscribers int
	// Setup describes the fleet, for the report.
	Setup []string
}

// Summary is the soak's result: what the report and the JSON hold.
type Summary struct {
	Passed   bool      `json:"passed"`
	Start    time.Time `json:"start"`
	Duration string    `json:"duration"`
	Setup    []string  `json:"setup"`
	Requests int       `json:"requests"`
	// Goals are the soak's goals, met or not.
	Goals []Goal `json:"goals"`
	// Windows are the latency and outcomes of each part of the soak.
	Windows []WindowStats `json:"windows"`
	// Replicas are the latency of the requests each replica answered.
	Replicas []Latency `json:"replicas"`
	// Growth are the level comparisons.
	Growth []Growth `json:"growth"`
	// Live is the subscribers' record.
	Live LiveSummary `json:"live"`
	// Faults are the fault windows as they happened, in seconds from the
	// start.
	Faults []Span `json:"faults"`
	// Problems are the first problems, ProblemCounts every one by kind.
	Problems      []Problem      `json:"problems"`
	ProblemCounts map[string]int `json:"problemCounts"`
}

// Goal is one of the soak's goals.
type Goal struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	Actual string `json:"actual"`
	Met    bool   `json:"met"`
	// Unjudged marks a goal the soak was too short to judge: it neither
	// meets nor misses.
	Unjudged bool `json:"unjudged,omitempty"`
}

// Span is a labelled stretch of the soak, in seconds from its start.
type Span struct {
	Label string  `json:"label"`
	Kind  Kind    `json:"kind"`
	From  float64 `json:"from"`
	To    float64 `json:"to"`
}

// Latency is the client-side latency of a set of requests, in ms.
type Latency struct {
	Name     string  `json:"name"`
	Requests int     `json:"requests"`
	P50      float64 `json:"p50"`
	P90      float64 `json:"p90"`
	P99      float64 `json:"p99"`
	Max      float64 `json:"max"`
}

// WindowStats are one part of the soak's requests.
type WindowStats struct {
	Span
	Latency
	// Data is the share answered with data and no error.
	Data float64 `json:"data"`
	// Outcomes counts the requests by outcome (data, stale, error codes).
	Outcomes map[string]int `json:"outcomes"`
	// Kinds counts the requests of each outcome but data by kind of query.
	Kinds map[string]map[string]int `json:"kinds"`
	// Replicas are the latency of the window's requests by the replica
	// that answered them.
	Replicas []Latency `json:"replicas"`
}

// Growth compares a level after the last fault with its level after a
// warm-up.
type Growth struct {
	What     string  `json:"what"`
	Scope    string  `json:"scope"`
	Baseline float64 `json:"baseline"`
	Final    float64 `json:"final"`
	// Change is Final/Baseline − 1.
	Change float64 `json:"change"`
	Judged bool    `json:"judged"`
	Met    bool    `json:"met"`
	Note   string  `json:"note,omitempty"`
}

// LiveSummary is the subscribers' record.
type LiveSummary struct {
	Subscribers      int            `json:"subscribers"`
	Events           int            `json:"events"`
	ErrorEvents      map[string]int `json:"errorEvents"`
	Reconnects       int            `json:"reconnects"`
	CloseCodes       map[int]int    `json:"closeCodes"`
	ChangesJudged    int            `json:"changesJudged"`
	ChangesUnjudged  int            `json:"changesUnjudged"`
	SlowestDelivery  string         `json:"slowestDelivery"`
	SlowestReconnect string         `json:"slowestReconnect"`
}

// Summarize works out the summary of a soak.
func Summarize(in Input) Summary {
	s := Summary{
		Start: in.Start, Duration: in.End.Sub(in.Start).Round(time.Second).String(), Setup: in.Setup,
		Requests: len(in.Requests), Problems: in.Problems, ProblemCounts: in.ProblemCounts,
	}
	if s.ProblemCounts == nil {
		s.ProblemCounts = map[string]int{}
	}
	sec := func(t time.Time) float64 { return t.Sub(in.Start).Seconds() }
	for _, w := range in.Windows {
		s.Faults = append(s.Faults, Span{Label: w.Label, Kind: w.Kind, From: sec(w.Start), To: sec(w.End)})
	}
	s.Windows = windowStats(in)
	s.Replicas = replicaLatency(in.Requests)
	s.Growth = growth(in)
	s.Live = LiveSummary{
		Subscribers: in.Subscribers, Events: in.Live.Events, ErrorEvents: in.Live.ErrorEvents, Reconnects: in.Live.Reconnects,
		CloseCodes: in.Live.CloseCodes, ChangesJudged: in.Live.Judged, ChangesUnjudged: in.Live.Unjudged,
		SlowestDelivery: in.Live.Slowest.Round(time.Millisecond).String(), SlowestReconnect: in.Live.SlowestReconnect.Round(time.Millisecond).String(),
	}
	s.Goals = goals(in, s.Growth)
	s.Passed = true
	for _, g := range s.Goals {
		s.Passed = s.Passed && (g.Met || g.Unjudged)
	}
	return s
}

// outage returns the upstream outage's window, if it happened.
func outage(ws []Window) (Window, bool) {
	for _, w := range ws {
		if w.Kind == KindUpstreamOutage {
			return w, true
		}
	}
	return Window{}, false
}

func inside(t time.Time, w Window) bool { return !t.Before(w.Start) && t.Before(w.End) }

func goals(in Input, gs []Growth) []Goal {
	count := func(kind string) int { return in.ProblemCounts[kind] }
	zero := func(name string, n int) Goal {
		return Goal{Name: name, Target: "0", Actual: fmt.Sprint(n), Met: n == 0}
	}
	out := []Goal{
		zero("wrong answers", count(ProblemWrong)+count(ProblemNotGraphQL)),
		zero("errors without extensions.code", count(ProblemUncoded)),
		zero("5xx other than a coded 503 in a fault window, or no answer", count(Problem5xx)+count(ProblemTransport)),
	}
	out_, ok := outage(in.Windows)
	var outside, outsideData, cached, cachedData int
	for _, r := range in.Requests {
		if ok && inside(r.At, out_) {
			if r.Kind == "page" {
				cached++
				if r.Data || r.Outcome == OutcomeStale {
					cachedData++
				}
			}
			continue
		}
		outside++
		if r.Data {
			outsideData++
		}
	}
	out = append(out,
		share("answered with data outside the outage", outsideData, outside, AnsweredGoal),
		share("cached pages answered inside the outage (stale-if-error)", cachedData, cached, CachedGoal),
		zero("subscribers that missed a change or got a wrong value", count(ProblemSubscription)),
		zero("drains that did not exit cleanly, internal errors or panics logged", count(ProblemFleet)),
	)
	for _, what := range []string{"goroutines", "descriptors", "RSS"} {
		g := Goal{Name: what + " flat after the last fault", Target: fmt.Sprintf("within %g%% of the warm-up", GrowthLimit*100), Met: true}
		worst, judged := math.Inf(-1), 0
		for _, gr := range gs {
			if gr.What != what || !gr.Judged {
				continue
			}
			judged++
			worst = max(worst, gr.Change)
			g.Met = g.Met && gr.Met
		}
		switch {
		case judged == 0 && in.Plan.WarmUp < MemorySettle:
			g.Actual, g.Met, g.Unjudged = fmt.Sprintf("not judged: a soak with a warm-up under %s is too short for levels to settle", MemorySettle), false, true
		case judged == 0:
			g.Actual, g.Met = "not judged", false
		default:
			g.Actual = fmt.Sprintf("largest change %+.1f%% (%d compared)", worst*100, judged)
		}
		out = append(out, g)
	}
	return out
}

func share(name string, n, of int, goal float64) Goal {
	g := Goal{Name: name, Target: fmt.Sprintf("≥ %g%%", goal*100)}
	if of == 0 {
		g.Actual = "no requests"
		return g
	}
	r := float64(n) / float64(of)
	g.Actual = fmt.Sprintf("%.3f%% (%d of %d)", r*100, n, of)
	g.Met = r >= goal
	return g
}

// windowStats splits the requests into the warm-up, each fault, the gaps
// between faults and the tail.
func windowStats(in Input) []WindowStats {
	type part struct {
		span Span
		in   func(time.Time) bool
	}
	sec := func(t time.Time) float64 { return t.Sub(in.Start).Seconds() }
	warmEnd := in.Start.Add(in.Plan.WarmUp)
	tailStart := in.Start.Add(in.Plan.TailStart())
	if n := len(in.Windows); n > 0 {
		tailStart = later(tailStart, in.Windows[n-1].End)
	}
	parts := []part{{Span{Label: "warm-up", Kind: KindWarmUp, From: 0, To: sec(warmEnd)}, func(t time.Time) bool { return t.Before(warmEnd) }}}
	for _, w := range in.Windows {
		parts = append(parts, part{Span{Label: w.Label, Kind: w.Kind, From: sec(w.Start), To: sec(w.End)}, func(t time.Time) bool { return inside(t, w) }})
	}
	parts = append(parts,
		part{Span{Label: "recovery gaps", Kind: "gaps", From: sec(warmEnd), To: sec(tailStart)}, func(t time.Time) bool {
			if t.Before(warmEnd) || !t.Before(tailStart) {
				return false
			}
			for _, w := range in.Windows {
				if inside(t, w) {
					return false
				}
			}
			return true
		}},
		part{Span{Label: "quiet tail", Kind: KindTail, From: sec(tailStart), To: sec(in.End)}, func(t time.Time) bool { return !t.Before(tailStart) }},
		part{Span{Label: "whole soak", Kind: "all", From: 0, To: sec(in.End)}, func(time.Time) bool { return true }},
	)
	out := make([]WindowStats, 0, len(parts))
	for _, p := range parts {
		var lat []time.Duration
		var reqs []Request
		ws := WindowStats{Span: p.span, Outcomes: map[string]int{}, Kinds: map[string]map[string]int{}}
		data := 0
		for _, r := range in.Requests {
			if !p.in(r.At) {
				continue
			}
			reqs = append(reqs, r)
			lat = append(lat, r.Latency)
			ws.Outcomes[r.Outcome]++
			if r.Outcome != OutcomeData {
				if ws.Kinds[r.Outcome] == nil {
					ws.Kinds[r.Outcome] = map[string]int{}
				}
				ws.Kinds[r.Outcome][r.Kind]++
			}
			if r.Data {
				data++
			}
		}
		ws.Latency = latency(p.span.Label, lat)
		ws.Replicas = replicaLatency(reqs)
		if len(lat) > 0 {
			ws.Data = float64(data) / float64(len(lat))
		}
		out = append(out, ws)
	}
	return out
}

func replicaLatency(rs []Request) []Latency {
	by := map[string][]time.Duration{}
	for _, r := range rs {
		name := r.Replica
		if name == "" {
			name = "(none)"
		}
		by[name] = append(by[name], r.Latency)
	}
	var out []Latency
	for _, name := range slices.Sorted(maps.Keys(by)) {
		out = append(out, latency(name, by[name]))
	}
	return out
}

// latency is the percentiles of ds (nearest rank), in ms.
func latency(name string, ds []time.Duration) Latency {
	l := Latency{Name: name, Requests: len(ds)}
	if len(ds) == 0 {
		return l
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	l.P50, l.P90, l.P99 = ms(Percentile(sorted, 0.50)), ms(Percentile(sorted, 0.90)), ms(Percentile(sorted, 0.99))
	l.Max = ms(sorted[len(sorted)-1])
	return l
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

// Percentile is the nearest-rank percentile p (0 < p ≤ 1) of sorted.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Median is the median of vs (the lower middle for an even count), NaN for
// none.
func Median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// growth compares levels after the last fault with levels after the
// warm-up: the fleet's goroutines and descriptors (summed over the
// replicas: subscribers a stopped replica loses reconnect to the others,
// so one replica's count moves while the fleet's must not), and each
// replica process's RSS.
func growth(in Input) []Growth {
	p := in.Plan
	finalFrom := in.End.Add(-p.Level)
	warmFrom, warmTo := in.Start.Add(p.WarmUp-p.Level), in.Start.Add(p.WarmUp)
	var out []Growth

	// The fleet's sums, per complete sampling round.
	type round struct {
		at         time.Time
		goroutines int
		fds        int
		n          int
		metricsGap bool
	}
	rounds := map[int]*round{}
	for _, r := range in.Resources {
		rd := rounds[r.Tick]
		if rd == nil {
			rd = &round{at: r.At}
			rounds[r.Tick] = rd
		}
		rd.n++
		rd.fds += r.FDs - r.RedisConns
		if r.Goroutines < 0 {
			rd.metricsGap = true
		}
		rd.goroutines += r.Goroutines
	}
	replicas := map[string]bool{}
	for _, pr := range in.Processes {
		replicas[pr.Replica] = true
	}
	level := func(from, to time.Time, v func(*round) (float64, bool)) float64 {
		var vs []float64
		for _, rd := range rounds {
			if rd.n != len(replicas) || rd.at.Before(from) || rd.at.After(to) {
				continue
			}
			if x, ok := v(rd); ok {
				vs = append(vs, x)
			}
		}
		return Median(vs)
	}
	for _, m := range []struct {
		what, note string
		v          func(*round) (float64, bool)
	}{
		{"goroutines", "", func(rd *round) (float64, bool) { return float64(rd.goroutines), !rd.metricsGap }},
		{"descriptors", "connections to Redis left out: a bounded pool", func(rd *round) (float64, bool) { return float64(rd.fds), true }},
	} {
		g := compare(m.what, fmt.Sprintf("fleet (%d replicas)", len(replicas)), level(warmFrom, warmTo, m.v), level(finalFrom, in.End, m.v), m.note)
		if p.WarmUp < MemorySettle {
			g.Judged, g.Met, g.Note = false, false, "shown, not judged: the soak is too short for levels to settle"
		}
		out = append(out, g)
	}

	// RSS: each process that lived from the start against its own
	// warm-up; one started again against where the fleet's processes
	// settled after the warm-up (the mean of their levels), once it has had
	// as long to settle itself. Either is judged only after a warm-up long
	// enough for memory to settle.
	rss := func(pid int, from, to time.Time) float64 {
		var vs []float64
		for _, r := range in.Resources {
			if r.PID == pid && !r.At.Before(from) && !r.At.After(to) {
				vs = append(vs, float64(r.RSS)/(1<<20))
			}
		}
		return Median(vs)
	}
	fleetWarm, originals := 0.0, 0
	for _, pr := range in.Processes {
		if !pr.Start.After(in.Start) {
			if v := rss(pr.PID, warmFrom, warmTo); !math.IsNaN(v) {
				fleetWarm += v
				originals++
			}
		}
	}
	if originals > 0 {
		fleetWarm /= float64(originals)
	} else {
		fleetWarm = math.NaN()
	}
	settled := p.WarmUp >= MemorySettle
	for _, pr := range in.Processes {
		if !pr.End.IsZero() {
			continue // it did not live to the end: no final level
		}
		scope := fmt.Sprintf("%s (pid %d)", pr.Replica, pr.PID)
		final := rss(pr.PID, finalFrom, in.End)
		var g Growth
		switch {
		case !pr.Start.After(in.Start):
			g = compare("RSS", scope, rss(pr.PID, warmFrom, warmTo), final, "against its warm-up")
		case finalFrom.Sub(pr.Start) < max(p.WarmUp, MemorySettle):
			g = Growth{What: "RSS", Scope: scope, Final: round2(final), Note: "started again too late to have settled by the end"}
		default:
			g = compare("RSS", scope, fleetWarm, final, "started again: against the fleet's level after the warm-up")
		}
		if !settled {
			g.Judged, g.Met = false, false
			g.Note = "shown, not judged: the soak is too short for levels to settle"
		}
		out = append(out, g)
	}
	return out
}

func compare(what, scope string, baseline, final float64, note string) Growth {
	g := Growth{What: what, Scope: scope, Baseline: round2(baseline), Final: round2(final), Note: note}
	if math.IsNaN(baseline) || math.IsNaN(final) || baseline <= 0 {
		g.Note = strings.TrimPrefix(g.Note+"; no samples to compare", "; ")
		return g
	}
	g.Judged = true
	g.Change = round4(final/baseline - 1)
	g.Met = final <= baseline*(1+GrowthLimit)
	return g
}

func round2(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return math.Round(v*100) / 100
}

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

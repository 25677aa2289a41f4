package soak_test

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/soak"
)

func TestPercentileAndMedian(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	assert.Equal(t, 50*time.Millisecond, soak.Percentile(ds, 0.5))
	assert.Equal(t, 99*time.Millisecond, soak.Percentile(ds, 0.99))
	assert.Equal(t, 100*time.Millisecond, soak.Percentile(ds, 1))
	assert.Equal(t, 1*time.Millisecond, soak.Percentile(ds[:1], 0.99))
	assert.Zero(t, soak.Percentile(nil, 0.5))
	assert.Equal(t, 2.0, soak.Median([]float64{3, 1, 2}))
	assert.Equal(t, 1.0, soak.Median([]float64{2, 1}))
	assert.True(t, soak.Median(nil) != soak.Median(nil), "NaN for none")
}

// run is a synthetic 10-minute soak: a request every 100 ms, three
// replicas sampled every second, replica 2 restarted at 6 minutes; leak
// says how much replica 1's RSS and goroutines grow after the warm-up.
func run(t *testing.T, leak float64) soak.Input {
	t.Helper()
	plan, err := soak.NewPlan(soak.DefaultDuration)
	require.NoError(t, err)
	in := soak.Input{Plan: plan, Start: t0, End: t0.Add(plan.Duration), Subscribers: 3, ProblemCounts: map[string]int{}}
	out := plan.Steps[4]
	in.Windows = append(in.Windows,
		soak.Window{Kind: plan.Steps[0].Kind, Label: plan.Steps[0].Label, Start: t0.Add(plan.Steps[0].At), End: t0.Add(plan.Steps[0].End())},
		soak.Window{Kind: out.Kind, Label: out.Label, Start: t0.Add(out.At), End: t0.Add(out.End())},
	)
	replicas := []string{"replica 1", "replica 2", "replica 3"}
	for i := 0; i < 6000; i++ {
		at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		r := soak.Request{At: at, Latency: time.Duration(1+i%10) * time.Millisecond, Replica: replicas[i%3], Transport: "post", Kind: "page", Outcome: soak.OutcomeData, Data: true}
		if !at.Before(in.Windows[1].Start) && at.Before(in.Windows[1].End) {
			r.Outcome, r.Latency = soak.OutcomeStale, 40*time.Millisecond
		}
		in.Requests = append(in.Requests, r)
	}
	restart := t0.Add(6 * time.Minute)
	in.Processes = []soak.Process{
		{Replica: "replica 1", PID: 11, Start: t0}, {Replica: "replica 2", PID: 12, Start: t0, End: restart}, {Replica: "replica 3", PID: 13, Start: t0},
		{Replica: "replica 2", PID: 22, Start: restart.Add(time.Second)},
	}
	for tick := 0; tick < 600; tick++ {
		at := t0.Add(time.Duration(tick) * time.Second)
		grow := 1.0
		if at.After(t0.Add(plan.WarmUp)) {
			grow += leak * at.Sub(t0.Add(plan.WarmUp)).Seconds() / (9 * 60)
		}
		for _, pid := range []int{11, 12, 13, 22} {
			p := in.Processes[map[int]int{11: 0, 12: 1, 13: 2, 22: 3}[pid]]
			if at.Before(p.Start) || (!p.End.IsZero() && !at.Before(p.End)) {
				continue
			}
			g := 1.0
			if pid == 11 {
				g = grow
			}
			in.Resources = append(in.Resources, soak.Resource{Tick: tick, At: at, Replica: p.Replica, PID: pid,
				RSS: int64(40 * g * (1 << 20)), FDs: 30, Goroutines: int(60 * g)})
		}
	}
	return in
}

func goal(t *testing.T, s soak.Summary, name string) soak.Goal {
	t.Helper()
	for _, g := range s.Goals {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("no goal %q in %v", name, s.Goals)
	return soak.Goal{}
}

func TestSummarizeAFlatSoak(t *testing.T) {
	t.Parallel()
	s := soak.Summarize(run(t, 0))
	assert.True(t, s.Passed, "%+v", s.Goals)
	assert.Equal(t, 6000, s.Requests)
	assert.Equal(t, "100.000% (5400 of 5400)", goal(t, s, "answered with data outside the outage").Actual)
	assert.Equal(t, "100.000% (600 of 600)", goal(t, s, "cached pages answered inside the outage (stale-if-error)").Actual)
	var rss []soak.Growth
	for _, g := range s.Growth {
		if g.What == "RSS" {
			rss = append(rss, g)
		}
	}
	require.Len(t, rss, 3, "the restarted replica's first process has no final level")
	assert.Equal(t, "replica 2 (pid 22)", rss[2].Scope)
	assert.Equal(t, "started again: against the fleet's level after the warm-up", rss[2].Note)
	assert.True(t, rss[2].Judged)
	assert.Equal(t, 40.0, rss[2].Baseline)

	out := s.Windows[2]
	assert.Equal(t, "upstream outage", out.Span.Label)
	assert.Equal(t, 600, out.Outcomes[soak.OutcomeStale])
	assert.Equal(t, 40.0, out.P99)
	assert.Len(t, s.Replicas, 3)
}

func TestSummarizeALeak(t *testing.T) {
	t.Parallel()
	s := soak.Summarize(run(t, 0.5))
	assert.False(t, s.Passed)
	assert.False(t, goal(t, s, "RSS flat after the last fault").Met)
	assert.False(t, goal(t, s, "goroutines flat after the last fault").Met)
	assert.True(t, goal(t, s, "descriptors flat after the last fault").Met)
}

func TestSummarizeARestartedReplicaThatDoesNotSettle(t *testing.T) {
	t.Parallel()
	in := run(t, 0)
	for i, r := range in.Resources {
		if r.PID == 22 {
			in.Resources[i].RSS = r.RSS * 3 / 2
		}
	}
	s := soak.Summarize(in)
	assert.False(t, goal(t, s, "RSS flat after the last fault").Met, "50% above where the fleet settled")
}

func TestSummarizeProblems(t *testing.T) {
	t.Parallel()
	in := run(t, 0)
	in.Requests[10].Data, in.Requests[10].Outcome = false, "UPSTREAM_UNAVAILABLE"
	in.Problems = []soak.Problem{{Kind: soak.ProblemWrong, Detail: "Page: at data.imageGroups.totalCount: want 146, got 145"}}
	in.ProblemCounts = map[string]int{soak.ProblemWrong: 1}
	s := soak.Summarize(in)
	assert.False(t, s.Passed)
	assert.False(t, goal(t, s, "wrong answers").Met)
	assert.True(t, goal(t, s, "answered with data outside the outage").Met, "one in 5400 is within 0.1%")
	md := soak.Markdown(s)
	assert.Contains(t, md, "# Soak FAILED: 10m0s, 6000 requests")
	assert.Contains(t, md, "| wrong answers | 0 | 1 | **missed** |")
	assert.Contains(t, md, "want 146, got 145")
	assert.Contains(t, md, "UPSTREAM_UNAVAILABLE 1 (page 1)")
}

func TestWrite(t *testing.T) {
	t.Parallel()
	in := run(t, 0)
	dir := filepath.Join(t.TempDir(), "out")
	s := soak.Summarize(in)
	require.NoError(t, soak.Write(dir, in, s))

	md, err := os.ReadFile(filepath.Join(dir, soak.SummaryMarkdown))
	require.NoError(t, err)
	assert.Contains(t, string(md), "# Soak passed")
	assert.Contains(t, string(md), "](soak.png)")

	raw, err := os.ReadFile(filepath.Join(dir, soak.SummaryJSON))
	require.NoError(t, err)
	var back soak.Summary
	require.NoError(t, json.Unmarshal(raw, &back))
	assert.Equal(t, s.Goals, back.Goals)

	samples, err := os.ReadFile(filepath.Join(dir, soak.ResourcesCSV))
	require.NoError(t, err)
	assert.Equal(t, len(in.Resources)+1, bytes.Count(samples, []byte("\n")), "a header and a line a sample")
	assert.True(t, bytes.HasPrefix(samples, []byte("seconds,replica,pid,rss_bytes,fds,redis_conns,goroutines,upstream_calls,limiter_wait_seconds\n0.000,replica 1,11,41943040,30,0,60,0,0.000\n")), "%.100s", samples)
	reqs, err := os.ReadFile(filepath.Join(dir, soak.RequestsCSV))
	require.NoError(t, err)
	assert.Equal(t, len(in.Requests)+1, bytes.Count(reqs, []byte("\n")))

	img, err := os.ReadFile(filepath.Join(dir, soak.ChartPNG))
	require.NoError(t, err)
	cfg, err := png.DecodeConfig(bytes.NewReader(img))
	require.NoError(t, err)
	assert.Equal(t, 1430, cfg.Width)
	assert.Equal(t, 1320, cfg.Height)
}

func TestSeries(t *testing.T) {
	t.Parallel()
	s := soak.MakeSeries(run(t, 0))
	assert.Equal(t, 5*time.Second, s.Bucket)
	assert.Len(t, s.P99, 120)
	assert.Contains(t, s.Outcomes, soak.OutcomeStale)
	assert.NotContains(t, s.Outcomes, soak.OutcomeData)
	assert.Len(t, s.RSS, 4)
	assert.Contains(t, s.RSS, "replica 2, restarted")
	require.Len(t, s.Faults, 2)
	assert.InDelta(t, 5.0, s.Faults[1].From, 0.01, "minutes")
}

// TestSummarizeLeavesRedisPoolOut: connections to Redis that a replica's
// pool opened after the warm-up (its busiest moment, a burst after Redis
// restarts) do not count as descriptors that grew; the same number of other
// descriptors does.
func TestSummarizeLeavesRedisPoolOut(t *testing.T) {
	t.Parallel()
	for _, pool := range []bool{true, false} {
		in := run(t, 0)
		for i := range in.Resources {
			r := &in.Resources[i]
			if r.PID == 11 && r.At.After(t0.Add(in.Plan.WarmUp)) {
				r.FDs += 20
				if pool {
					r.RedisConns = 20
				}
			}
		}
		g := goal(t, soak.Summarize(in), "descriptors flat after the last fault")
		assert.Equal(t, pool, g.Met, "Redis's pool %v: %+v", pool, g)
	}
}

func TestSummarizeAShortSoakLeavesLevelsUnjudged(t *testing.T) {
	t.Parallel()
	plan, err := soak.NewPlan(soak.MinDuration)
	require.NoError(t, err)
	in := soak.Input{Plan: plan, Start: t0, End: t0.Add(plan.Duration), ProblemCounts: map[string]int{}}
	in.Processes = []soak.Process{{Replica: "replica 1", PID: 1, Start: t0}}
	for tick := range 120 {
		// Memory still filling, goroutines flat.
		in.Resources = append(in.Resources, soak.Resource{Tick: tick, At: t0.Add(time.Duration(tick) * time.Second), Replica: "replica 1", PID: 1,
			RSS: int64(50+tick/4) << 20, FDs: 20, Goroutines: 40})
		in.Requests = append(in.Requests, soak.Request{At: t0.Add(time.Duration(tick) * time.Second), Kind: "page", Outcome: soak.OutcomeData, Data: true})
	}
	s := soak.Summarize(in)
	for _, what := range []string{"RSS", "goroutines", "descriptors"} {
		g := goal(t, s, what+" flat after the last fault")
		assert.True(t, g.Unjudged, "%+v", g)
	}
	for _, g := range s.Growth {
		assert.False(t, g.Judged, "%+v", g)
		assert.Contains(t, g.Note, "not judged")
	}
	assert.Contains(t, soak.Markdown(s), "| not judged |")
	// Unjudged is not missed; the outage that never happened is.
	assert.False(t, s.Passed, "no outage, so no cached pages read in one")
	assert.Equal(t, "no requests", goal(t, s, "cached pages answered inside the outage (stale-if-error)").Actual)
}

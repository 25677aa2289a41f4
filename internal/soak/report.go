package soak

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The files Write writes.
const (
	SummaryMarkdown = "summary.md"
	SummaryJSON     = "summary.json"
	ChartPNG        = "soak.png"
	// ResourcesCSV holds every sample of the replicas' processes,
	// RequestsCSV every request: the series behind the summary.
	ResourcesCSV = "resources.csv"
	RequestsCSV  = "requests.csv"
)

// Write writes the summary (markdown and JSON), the chart and the series
// (CSV) of a soak into dir, which it creates.
func Write(dir string, in Input, s Summary) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, SummaryJSON), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, SummaryMarkdown), []byte(Markdown(s)), 0o644); err != nil {
		return err
	}
	var png bytes.Buffer
	if err := Chart(in, &png); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ChartPNG), png.Bytes(), 0o644); err != nil {
		return err
	}
	sec := func(t time.Time) string { return strconv.FormatFloat(t.Sub(in.Start).Seconds(), 'f', 3, 64) }
	resources := [][]string{{"seconds", "replica", "pid", "rss_bytes", "fds", "redis_conns", "goroutines", "upstream_calls", "limiter_wait_seconds"}}
	for _, r := range in.Resources {
		resources = append(resources, []string{sec(r.At), r.Replica, strconv.Itoa(r.PID), strconv.FormatInt(r.RSS, 10), strconv.Itoa(r.FDs), strconv.Itoa(r.RedisConns), strconv.Itoa(r.Goroutines),
			strconv.FormatFloat(r.UpstreamCalls, 'f', -1, 64), strconv.FormatFloat(r.LimiterWait, 'f', 3, 64)})
	}
	requests := [][]string{{"seconds", "latency_ms", "replica", "transport", "kind", "outcome"}}
	for _, r := range in.Requests {
		requests = append(requests, []string{sec(r.At), strconv.FormatFloat(float64(r.Latency)/1e6, 'f', 3, 64), r.Replica, r.Transport, r.Kind, r.Outcome})
	}
	for name, rows := range map[string][][]string{ResourcesCSV: resources, RequestsCSV: requests} {
		var buf bytes.Buffer
		if err := csv.NewWriter(&buf).WriteAll(rows); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Markdown is the summary as a page: the verdict, the goals, each part of
// the soak, the replicas, the levels, the subscribers, and the problems.
func Markdown(s Summary) string {
	var b strings.Builder
	verdict := "passed"
	if !s.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "# Soak %s: %s, %d requests\n\n", verdict, s.Duration, s.Requests)
	fmt.Fprintf(&b, "Started %s.", s.Start.UTC().Format("2006-01-02 15:04 MST"))
	for _, line := range s.Setup {
		fmt.Fprintf(&b, " %s", line)
	}
	fmt.Fprintf(&b, "\n\n![latency, outcomes and RSS over time, fault windows shaded](%s)\n\n", ChartPNG)

	b.WriteString("## Goals\n\n| goal | target | actual | |\n| --- | --- | --- | --- |\n")
	for _, g := range s.Goals {
		m := mark(g.Met)
		if g.Unjudged {
			m = "not judged"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", g.Name, g.Target, g.Actual, m)
	}

	b.WriteString("\n## Windows\n\nClient-side latency in ms through HAProxy; *with data*: answered with data and no error; outcomes other than a clean answer by `extensions.code` (`stale`: data served by stale-if-error).\n\n")
	b.WriteString("| window | from–to (s) | requests | with data | p50 | p90 | p99 | max | other outcomes |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, w := range s.Windows {
		fmt.Fprintf(&b, "| %s | %.0f–%.0f | %d | %s | %.1f | %.1f | %.1f | %.0f | %s |\n",
			w.Span.Label, w.From, w.To, w.Requests, pct(w.Data, w.Requests), w.P50, w.P90, w.P99, w.Max, byKind(w.Outcomes, w.Kinds))
	}

	b.WriteString("\n## Replicas\n\nLatency in ms (p50 / p99) of the requests each replica answered (HAProxy's `X-Replica`), by window.\n\n")
	b.WriteString("| window |")
	for _, r := range s.Replicas {
		fmt.Fprintf(&b, " %s |", r.Name)
	}
	b.WriteString("\n| --- |" + strings.Repeat(" ---: |", len(s.Replicas)) + "\n")
	for _, w := range s.Windows {
		fmt.Fprintf(&b, "| %s |", w.Span.Label)
		for _, r := range s.Replicas {
			cell := "–"
			for _, l := range w.Replicas {
				if l.Name == r.Name && l.Requests > 0 {
					cell = fmt.Sprintf("%.1f / %.1f", l.P50, l.P99)
				}
			}
			fmt.Fprintf(&b, " %s |", cell)
		}
		b.WriteString("\n")
	}

	b.WriteString("\n## Levels after the last fault\n\nMedians over the last stretch of the soak against the end of the warm-up (RSS in MiB). Goroutines and descriptors are the fleet's sums: subscribers a stopped replica loses reconnect to the others.\n\n")
	b.WriteString("| what | scope | after warm-up | at the end | change | |\n| --- | --- | ---: | ---: | ---: | --- |\n")
	for _, g := range s.Growth {
		change, ok := "–", "not judged"
		if g.Baseline > 0 && g.Final > 0 {
			change = fmt.Sprintf("%+.1f%%", (g.Final/g.Baseline-1)*100)
		}
		if g.Judged {
			ok = mark(g.Met)
		}
		note := ""
		if g.Note != "" {
			note = " (" + g.Note + ")"
		}
		fmt.Fprintf(&b, "| %s | %s%s | %.1f | %.1f | %s | %s |\n", g.What, g.Scope, note, g.Baseline, g.Final, change, ok)
	}

	l := s.Live
	b.WriteString("\n## Subscribers\n\n")
	fmt.Fprintf(&b, "%d subscriptions (graphql-transport-ws and SSE) received %d events; %d (change, subscriber) pairs judged (%d left unjudged at the end), the slowest change arrived after %s (after the outage's end, for one it held back). ",
		l.Subscribers, l.Events, l.ChangesJudged, l.ChangesUnjudged, l.SlowestDelivery)
	fmt.Fprintf(&b, "They subscribed again %d times, the longest gap %s", l.Reconnects, l.SlowestReconnect)
	if len(l.CloseCodes) > 0 {
		var cs []string
		for _, c := range slices.Sorted(maps.Keys(l.CloseCodes)) {
			cs = append(cs, fmt.Sprintf("%d × %d", l.CloseCodes[c], c))
		}
		fmt.Fprintf(&b, "; WebSocket close codes: %s", strings.Join(cs, ", "))
	}
	b.WriteString(".")
	if len(l.ErrorEvents) > 0 {
		fmt.Fprintf(&b, " Events with errors: %s.", outcomes(l.ErrorEvents))
	}
	b.WriteString("\n")

	b.WriteString("\n## Faults as they happened\n\n| fault | from (s) | to (s) |\n| --- | ---: | ---: |\n")
	for _, f := range s.Faults {
		fmt.Fprintf(&b, "| %s | %.1f | %.1f |\n", f.Label, f.From, f.To)
	}

	b.WriteString("\n## Problems\n\n")
	if len(s.Problems) == 0 {
		b.WriteString("None.\n")
	} else {
		fmt.Fprintf(&b, "By kind: %s. The first ones:\n\n", outcomes(s.ProblemCounts))
		for _, p := range s.Problems[:min(len(s.Problems), 30)] {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(p.String(), "|", `\|`))
		}
	}
	return b.String()
}

func mark(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func pct(r float64, n int) string {
	if n == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f%%", r*100)
}

// byKind lists outcomes as outcomes does, each with its kinds of query:
// "UPSTREAM_UNAVAILABLE 3 (version 2, group 1)".
func byKind(m map[string]int, kinds map[string]map[string]int) string {
	parts := strings.Split(outcomes(m), ", ")
	for i, p := range parts {
		code, _, _ := strings.Cut(p, " ")
		if k := kinds[code]; len(k) > 0 {
			parts[i] += " (" + outcomes(k) + ")"
		}
	}
	return strings.Join(parts, ", ")
}

// outcomes lists counts by key, largest first, leaving out clean answers.
func outcomes(m map[string]int) string {
	keys := slices.Collect(maps.Keys(m))
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == OutcomeData })
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "–"
	}
	return strings.Join(parts, ", ")
}

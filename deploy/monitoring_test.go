package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/telemetry"
	"github.com/compshare/imagegraph/internal/testkit"
)

// The monitoring files, relative to deploy/ (the tests' working directory).
const (
	dashboardFile  = "monitoring/dashboard.json"
	alertsFile     = "monitoring/alerts.yaml"
	alertTestsFile = "monitoring/alerts_test.yaml"
)

// grafanaBuiltins are the variables Grafana gives every query, with the
// value the test gives them in their place. The dashboard's own variables
// get their "All" value.
var grafanaBuiltins = map[string]string{"__rate_interval": "1m", "__range": "5m", "__interval": "15s"}

// TestMonitoringMetricExtractor proves that metricsIn finds the metric
// names of an expression and only them (not label names such as go_version,
// not string literals, not Grafana variables), and that unknownMetrics
// reports a misspelt name while it accepts a histogram's series: without
// it, TestMonitoringMetricNames could pass by finding nothing.
func TestMonitoringMetricExtractor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, expr string
		want       []string
	}{
		{"counter", `sum(rate(imagegraph_http_requests_total{handler="/query"}[5m]))`,
			[]string{"imagegraph_http_requests_total"}},
		{"histogram series", `histogram_quantile(0.99, sum by (le) (rate(imagegraph_http_request_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval])))`,
			[]string{"imagegraph_http_request_duration_seconds_bucket"}},
		{"label names are not metrics", `count by (version, go_version) (imagegraph_build_info{go_version!="", process_x="1"})`,
			[]string{"imagegraph_build_info"}},
		{"grouping of a binary operator", `a / ignoring (go_x) group_left (process_y) b and on (job, instance) imagegraph_build_info`,
			[]string{"imagegraph_build_info"}},
		{"string literals are not metrics", `label_replace(imagegraph_cache_bytes, "go_label", "process_$1", "instance", "(.*)")`,
			[]string{"imagegraph_cache_bytes"}},
		{"runtime and process", "process_resident_memory_bytes\n/ go_gc_gomemlimit_bytes > 0.9\nand on (job, instance) imagegraph_build_info",
			[]string{"go_gc_gomemlimit_bytes", "imagegraph_build_info", "process_resident_memory_bytes"}},
		{"each once, sorted", `imagegraph_cache_bytes / imagegraph_cache_max_bytes or imagegraph_cache_bytes`,
			[]string{"imagegraph_cache_bytes", "imagegraph_cache_max_bytes"}},
		{"not a prefix inside a word", `my_imagegraph_thing + xgo_goroutines`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, metricsIn(tc.expr))
		})
	}

	known := telemetry.MetricNames()
	for _, tc := range []struct {
		name    string
		refs    []string
		unknown []string
	}{
		{"exported names", []string{"imagegraph_http_requests_total", "go_goroutines", "process_resident_memory_bytes"}, nil},
		{"a histogram's series", []string{"imagegraph_upstream_request_duration_seconds_bucket",
			"imagegraph_graphql_operation_cost_sum", "imagegraph_graphql_operation_cost_count"}, nil},
		{"misspelt", []string{"imagegraph_http_request_total", "imagegraph_upstream_requests_total"}, []string{"imagegraph_http_request_total"}},
		{"misspelt histogram", []string{"imagegraph_upstream_requests_duration_seconds_bucket"}, []string{"imagegraph_upstream_requests_duration_seconds_bucket"}},
		{"another namespace", []string{"imagegraph_cache_hit_ratio", "go_goroutine"}, []string{"go_goroutine", "imagegraph_cache_hit_ratio"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.unknown, unknownMetrics(tc.refs, known))
		})
	}
	// The whole chain, on a dashboard-like expression with a typo.
	assert.Equal(t, []string{"imagegraph_upstream_quota_request_per_second"},
		unknownMetrics(metricsIn(`sum(rate(imagegraph_upstream_requests_total[1m])) / max(imagegraph_upstream_quota_request_per_second)`), known))
}

// TestMonitoringMetricNames proves that every metric the dashboard's
// queries and variables and the alerts' expressions name is one the server
// exports (telemetry.MetricNames), so that no panel or alert is silently
// empty because of a typo or a renamed metric.
func TestMonitoringMetricNames(t *testing.T) {
	t.Parallel()
	known := telemetry.MetricNames()
	require.NotEmpty(t, known)
	exprs := monitoredExprs(t)
	require.NotEmpty(t, exprs)
	for _, e := range exprs {
		refs := metricsIn(e.expr)
		assert.NotEmpty(t, refs, "%s names no metric of the server's: %s", e.where, e.expr)
		assert.Empty(t, unknownMetrics(refs, known), "%s names metrics the server does not export (telemetry.MetricNames): %s", e.where, e.expr)
	}
}

// TestDashboard proves the dashboard is one Grafana imports and that works
// in any Grafana with a Prometheus data source: valid JSON, a stable uid and
// title, a recent schema, a data source variable that every panel and query
// unique ids that fit the grid without overlapping, and queries that use
// only variables the dashboard defines (each with an "All" of .*).
func TestDashboard(t *testing.T) {
	t.Parallel()
	d, _ := loadDashboard(t)
	assert.Equal(t, "imagegraph", d.UID, "uid: stable, so that links and the sidecar's reloads keep it")
	assert.Equal(t, "imagegraph", d.Title)
	assert.GreaterOrEqual(t, d.SchemaVersion, 36, "schemaVersion")

	vars := map[string]templateVar{}
	for _, v := range d.Templating.List {
		require.NotContains(t, vars, v.Name, "variable %s defined twice", v.Name)
		vars[v.Name] = v
	}
	ds, ok := vars["datasource"]
	require.True(t, ok, "a variable datasource")
	assert.Equal(t, "datasource", ds.Type, "datasource is a data source variable")
	assert.Equal(t, "prometheus", ds.Query, "of Prometheus data sources")
	for name, v := range vars {
		if v.Type != "query" {
			continue
		}
		if assert.NotNil(t, v.Datasource, "variable %s: a data source", name) {
			assert.Equal(t, "${datasource}", v.Datasource.UID, "variable %s queries ${datasource}", name)
		}
		assert.True(t, v.IncludeAll, "variable %s has All", name)
		assert.Equal(t, ".*", v.AllValue, "variable %s: All is .*, which matches a missing label too", name)
	}

	ids := map[int]string{}
	var placed []panel
	for _, p := range flatten(d.Panels) {
		assert.NotEmpty(t, p.Title, "panel %d has a title", p.ID)
		assert.NotZero(t, p.ID, "panel %q has an id", p.Title)
		if other, dup := ids[p.ID]; dup {
			assert.Failf(t, "duplicate panel id", "%q and %q are both id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		assert.True(t, g.W > 0 && g.H > 0 && g.X >= 0 && g.Y >= 0 && g.X+g.W <= 24, "panel %q fits the 24-column grid: %+v", p.Title, g)
		for _, q := range placed {
			o := q.GridPos
			overlap := g.X < o.X+o.W && o.X < g.X+g.W && g.Y < o.Y+o.H && o.Y < g.Y+g.H
			assert.False(t, overlap, "panels %q and %q overlap", p.Title, q.Title)
		}
		placed = append(placed, p)
		if p.Type == "row" {
			assert.Empty(t, p.Targets, "row %q has no queries", p.Title)
			continue
		}
		assert.Contains(t, []string{"timeseries", "stat", "state-timeline"}, p.Type, "panel %q", p.Title)
		if assert.NotNil(t, p.Datasource, "panel %q: a data source", p.Title) {
			assert.Equal(t, "${datasource}", p.Datasource.UID, "panel %q uses ${datasource}", p.Title)
		}
		require.NotEmpty(t, p.Targets, "panel %q has queries", p.Title)
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			assert.NotEmpty(t, tg.Expr, "panel %q target %s has an expression", p.Title, tg.RefID)
			assert.False(t, refs[tg.RefID], "panel %q: refId %s once", p.Title, tg.RefID)
			refs[tg.RefID] = true
			if assert.NotNil(t, tg.Datasource, "panel %q target %s: a data source", p.Title, tg.RefID) {
				assert.Equal(t, "${datasource}", tg.Datasource.UID, "panel %q target %s uses ${datasource}", p.Title, tg.RefID)
			}
			_, err := expandGrafana(tg.Expr, vars)
			assert.NoError(t, err, "panel %q target %s", p.Title, tg.RefID)
		}
	}
}

// TestAlertRules proves the alerting rules are valid (promtool check
// rules), that their unit tests pass (promtool test rules), and that those
// tests cover every alert both ways: each fires on some series, with its
// severity, and each is tested silent on healthy series after its for:
// (not merely still pending). It also holds every alert to the shape an
// operator needs: a severity, a summary and a description that says the
// value.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	promtool := testkit.RequireTool(t, testkit.MonitoringDeps, "promtool")[0]
	for _, args := range [][]string{{"check", "rules", alertsFile}, {"test", "rules", alertTestsFile}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	}

	rules := loadAlerts(t)
	byName := map[string]alertRule{}
	for _, r := range rules {
		require.NotEmpty(t, r.Alert, "only alerting rules: %s", r.Expr)
		require.NotContains(t, byName, r.Alert, "alert %s defined twice", r.Alert)
		byName[r.Alert] = r
		assert.Contains(t, []string{"critical", "warning", "info"}, r.Labels["severity"], "%s: severity", r.Alert)
		assert.NotEmpty(t, r.Annotations["summary"], "%s: summary", r.Alert)
		assert.Contains(t, r.Annotations["description"], "$value", "%s: the description says the value", r.Alert)
		_, err := time.ParseDuration(r.For)
		assert.NoError(t, err, "%s: for:", r.Alert)
	}

	var tests struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				EvalTime  string `yaml:"eval_time"`
				Alertname string `yaml:"alertname"`
				ExpAlerts []struct {
					ExpLabels map[string]string `yaml:"exp_labels"`
				} `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, alertTestsFile, &tests)
	assert.Equal(t, []string{filepath.Base(alertsFile)}, tests.RuleFiles, "the tests load the rules they test")
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, group := range tests.Tests {
		for _, c := range group.AlertRuleTest {
			r, ok := byName[c.Alertname]
			if !assert.True(t, ok, "%s tests %s, which alerts.yaml does not define", alertTestsFile, c.Alertname) {
				continue
			}
			at, err := time.ParseDuration(c.EvalTime)
			require.NoError(t, err, "eval_time of %s", c.Alertname)
			forDuration, _ := time.ParseDuration(r.For)
			if len(c.ExpAlerts) == 0 {
				silent[c.Alertname] = silent[c.Alertname] || at > forDuration
			}
			for _, a := range c.ExpAlerts {
				fires[c.Alertname] = true
				assert.Equal(t, r.Labels["severity"], a.ExpLabels["severity"], "%s at %s: severity", c.Alertname, c.EvalTime)
			}
		}
	}
	for name := range byName {
		assert.True(t, fires[name], "%s: a test where it fires", name)
		assert.True(t, silent[name], "%s: a test where it stays silent, later than its for:", name)
	}
}

// TestMonitoringManifests proves kubectl apply -k deploy/k8s ships the
// dashboard and the rules as they are in deploy/monitoring, in ConfigMaps
// labelled for the Grafana and rules sidecars, under fixed names (no hash:
// a sidecar keys the file by the ConfigMap's key, and deleting the old
// hashed ConfigMap would remove the new one's file), and small enough for
// kubectl apply's last-applied-configuration annotation (256 KiB).
func TestMonitoringManifests(t *testing.T) {
	t.Parallel()
	kubectl := testkit.RequireTool(t, testkit.KubectlInstall, "kubectl")[0]
	cmd := exec.Command(kubectl, "kustomize", "k8s")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "kubectl kustomize k8s: %s", stderr.String())

	type configMap struct {
		Kind     string            `yaml:"kind"`
		Metadata objectMeta        `yaml:"metadata"`
		Data     map[string]string `yaml:"data"`
	}
	var maps []configMap
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var cm configMap
		err := dec.Decode(&cm)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if cm.Kind == "ConfigMap" {
			maps = append(maps, cm)
		}
	}

	for _, tc := range []struct {
		label, name, key, file string
	}{
		{"grafana_dashboard", "imagegraph-dashboard", "imagegraph.json", dashboardFile},
		{"prometheus_rule", "imagegraph-alerts", "imagegraph.rules.yaml", alertsFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var labelled []configMap
			for _, cm := range maps {
				if cm.Metadata.Labels[tc.label] == "1" {
					labelled = append(labelled, cm)
				}
			}
			require.Len(t, labelled, 1, "one ConfigMap labelled %s: \"1\"", tc.label)
			cm := labelled[0]
			assert.Equal(t, tc.name, cm.Metadata.Name, "a fixed name, without kustomize's hash")
			want, err := os.ReadFile(tc.file)
			require.NoError(t, err)
			require.Contains(t, cm.Data, tc.key)
			assert.Equal(t, string(want), cm.Data[tc.key], "%s holds %s as it is", tc.key, tc.file)
			assert.Len(t, cm.Data, 1, "only %s", tc.key)
			applied, err := json.Marshal(cm)
			require.NoError(t, err)
			assert.Less(t, len(applied), 256<<10-16<<10, "fits kubectl apply's last-applied-configuration annotation (256 KiB), with room to spare")
		})
	}
}

// TestMonitoringPrometheus proves the dashboard and the alerts work against
// the real thing: a real Prometheus, loaded with alerts.yaml, scrapes a real
// imagegraph (sandbox, Redis configured but unreachable, GOMEMLIMIT set)
// while it serves GraphQL traffic, valid and invalid. Then every dashboard
// query, every variable's selector and every alert expression is valid
// PromQL to that Prometheus; every dashboard query but the listed few
// returns data; every metric they name has series under that exact name
// (so that a _bucket of a counter or a family never exported shows); every
// rule evaluates with health ok; and the Redis alert, whose condition this
// server meets, is pending, with the job and namespace labels it keeps.
func TestMonitoringPrometheus(t *testing.T) {
	t.Parallel()
	promBin := testkit.RequireTool(t, testkit.MonitoringDeps, "prometheus")[0]
	exprs := monitoredExprs(t)
	d, _ := loadDashboard(t)
	vars := map[string]templateVar{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}

	bin := testkit.Build(t, ".")
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	s := startServer(t, bin, map[string]string{
		"METRICS_ADDR": metricsAddr,
		// Configured, and nothing listens there: the fleet's metrics exist
		// and say Redis is down.
		"REDIS_URL": fmt.Sprintf("redis://127.0.0.1:%d/0", testkit.FreePort(t)),
		// For the GOMEMLIMIT line of the memory panel and alert.
		"GOMEMLIMIT": strconv.Itoa(256 << 20),
	})
	// Traffic before the first scrape, so that the labelled series exist,
	// and on throughout, so that rates are not zero.
	status, body := postQuery(t, s, `{ imageGroups(first: 3) { nodes { groupId } } }`)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Contains(t, string(body), `"groupId"`, "the sandbox answers")
	status, body = postQuery(t, s, `{ nope }`)
	require.Contains(t, string(body), "GRAPHQL_VALIDATION_FAILED", "status %d: %s", status, body)
	sendTraffic(t, s)

	p := startPrometheus(t, promBin, metricsAddr)
	since := time.Now()
	p.waitFor(t, "three scrapes of imagegraph", func() bool {
		samples, err := p.query(`count_over_time(imagegraph_build_info{job="imagegraph"}[1m])`)
		return err == nil && len(samples) == 1 && samples[0].value() >= 3
	})
	var groups []ruleGroupState
	p.waitFor(t, "an evaluation of every rule after the scrapes", func() bool {
		groups = p.rules(t)
		n := 0
		for _, g := range groups {
			for _, r := range g.Rules {
				if r.LastEvaluation.Before(since) {
					return false
				}
				n++
			}
		}
		return n > 0
	})

	t.Run("rules evaluate", func(t *testing.T) {
		var loaded []string
		for _, g := range groups {
			for _, r := range g.Rules {
				loaded = append(loaded, r.Name)
				assert.Equal(t, "ok", r.Health, "rule %s: %s", r.Name, r.LastError)
				if r.Name == "ImagegraphRedisDown" {
					assert.Equal(t, "pending", r.State, "Redis is unreachable: the alert counts down its for:")
				}
			}
		}
		var defined []string
		for _, r := range loadAlerts(t) {
			defined = append(defined, r.Alert)
		}
		assert.ElementsMatch(t, defined, loaded, "Prometheus loaded every alert of %s", alertsFile)
	})

	// Dashboard queries that may be empty against a healthy sandbox, and why.
	mayBeEmpty := map[string]string{
		`panel "Upstream errors by outcome and RetCode" target A`: "the sandbox answers every call",
	}
	t.Run("queries", func(t *testing.T) {
		for _, e := range exprs {
			q, err := expandGrafana(e.expr, vars)
			if !assert.NoError(t, err, e.where) {
				continue
			}
			samples, err := p.query(q)
			if !assert.NoError(t, err, "%s:\n%s", e.where, q) {
				continue
			}
			switch {
			case e.alert == "ImagegraphRedisDown":
				if assert.Len(t, samples, 1, "%s: Redis is unreachable", e.where) {
					assert.Equal(t, "imagegraph", samples[0].Metric["job"], "%s keeps job", e.where)
					assert.Equal(t, "monitoring-test", samples[0].Metric["namespace"], "%s keeps namespace", e.where)
				}
			case e.alert != "":
				// The server is healthy otherwise: no other alert's
				// condition holds.
				assert.Empty(t, samples, "%s holds on a healthy server", e.where)
			case mayBeEmpty[e.where] == "":
				assert.NotEmpty(t, samples, "%s returns data:\n%s", e.where, q)
			}
		}
	})

	t.Run("metrics named exist", func(t *testing.T) {
		seen := map[string]bool{}
		for _, e := range exprs {
			for _, name := range metricsIn(e.expr) {
				if seen[name] {
					continue
				}
				seen[name] = true
				samples, err := p.query(fmt.Sprintf(`count({__name__=%q, job="imagegraph"})`, name))
				require.NoError(t, err)
				assert.NotEmpty(t, samples, "the server exports no series %s (named by %s)", name, e.where)
			}
		}
	})
}

// monitoredExpr is a PromQL expression of the dashboard or the alerts, and
// where it comes from.
type monitoredExpr struct {
	where string
	expr  string
	alert string // the alert's name, for an alert's expression
}

// monitoredExprs returns every expression of the dashboard (its panels'
// queries, its variables' selectors) and of the alerts.
func monitoredExprs(t *testing.T) []monitoredExpr {
	t.Helper()
	d, _ := loadDashboard(t)
	var out []monitoredExpr
	for _, p := range flatten(d.Panels) {
		for _, tg := range p.Targets {
			out = append(out, monitoredExpr{where: fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), expr: tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q := v.Definition
		if s, ok := v.Query.(string); ok {
			q = s
		}
		m := labelValues.FindStringSubmatch(q)
		require.NotNil(t, m, "variable %s: label_values(SELECTOR, LABEL), not %q", v.Name, q)
		out = append(out, monitoredExpr{where: "variable " + v.Name, expr: m[1]})
	}
	for _, r := range loadAlerts(t) {
		out = append(out, monitoredExpr{where: "alert " + r.Alert, expr: r.Expr, alert: r.Alert})
	}
	return out
}

// labelValues matches a Grafana variable query label_values(SELECTOR, LABEL).
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)

var (
	// metricRef matches a name of the server's metrics, or of the Go
	// runtime's or the process's.
	metricRef = regexp.MustCompile(`\b(?:imagegraph|go|process)_[a-z0-9_]+\b`)
	// What metricsIn takes out of an expression first: string literals,
	// label matchers, and the label lists of by, without, on, ignoring,
	// group_left and group_right.
	promqlString   = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promqlMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	promqlGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	// histogramSeries is the suffix of a histogram's (or summary's) series.
	histogramSeries = regexp.MustCompile(`_(?:bucket|sum|count)$`)
)

// metricsIn returns the metric names (imagegraph_*, go_*, process_*) expr
// names, sorted, each once.
func metricsIn(expr string) []string {
	expr = promqlString.ReplaceAllString(expr, `""`)
	expr = promqlMatchers.ReplaceAllString(expr, "")
	expr = promqlGrouping.ReplaceAllString(expr, "")
	var names []string
	for _, n := range metricRef.FindAllString(expr, -1) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// unknownMetrics returns the names among refs that are not among known
// (telemetry.MetricNames: histograms by their base name), sorted.
func unknownMetrics(refs, known []string) []string {
	var unknown []string
	for _, n := range refs {
		if slices.Contains(known, n) || slices.Contains(known, histogramSeries.ReplaceAllString(n, "")) {
			continue
		}
		unknown = append(unknown, n)
	}
	slices.Sort(unknown)
	return unknown
}

// grafanaVar matches a Grafana variable in a query: $name, ${name},
// ${name:format} or [[name]].
var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// expandGrafana replaces the Grafana variables of expr as Grafana would
// with every variable at "All" (its allValue) and the builtins at
// grafanaBuiltins; a variable that is neither is an error.
func expandGrafana(expr string, vars map[string]templateVar) (string, error) {
	var unknown []string
	out := grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVar.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		if v, ok := grafanaBuiltins[name]; ok {
			return v
		}
		if v, ok := vars[name]; ok && v.Type == "query" {
			return v.AllValue
		}
		unknown = append(unknown, m)
		return m
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("variables the dashboard does not define: %v in %s", unknown, expr)
	}
	return out, nil
}

// dashboard is what the tests read of a Grafana dashboard.
type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []templateVar `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type templateVar struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Query      any    `json:"query"`
	Definition string `json:"definition"`
	Datasource *dsRef `json:"datasource"`
	IncludeAll bool   `json:"includeAll"`
	AllValue   string `json:"allValue"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *dsRef `json:"datasource"`
	GridPos    struct {
		X int `json:"x"`
		Y int `json:"y"`
		W int `json:"w"`
		H int `json:"h"`
	} `json:"gridPos"`
	Targets []struct {
		RefID      string `json:"refId"`
		Expr       string `json:"expr"`
		Datasource *dsRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

// flatten returns the panels and, after each collapsed row, its panels.
func flatten(panels []panel) []panel {
	var out []panel
	for _, p := range panels {
		out = append(out, p)
		out = append(out, flatten(p.Panels)...)
	}
	return out
}

func loadDashboard(t *testing.T) (dashboard, []byte) {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	require.True(t, json.Valid(raw), "%s is valid JSON", dashboardFile)
	var d dashboard
	require.NoError(t, json.Unmarshal(raw, &d), dashboardFile)
	return d, raw
}

// alertRule is one rule of alerts.yaml.
type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// loadAlerts returns the rules of alerts.yaml, all groups together.
func loadAlerts(t *testing.T) []alertRule {
	t.Helper()
	var f struct {
		Groups []struct {
			Name  string      `yaml:"name"`
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, alertsFile, &f)
	var rules []alertRule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	require.NotEmpty(t, rules, "%s has rules", alertsFile)
	return rules
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, v), path)
}

// postQuery sends a GraphQL query to s and returns the status and body.
func postQuery(t *testing.T, s *server, query string) (int, []byte) {
	t.Helper()
	body, err := json.Marshal(map[string]string{"query": query})
	require.NoError(t, err)
	resp, err := httpClient.Post(s.url+"/query", "application/json", bytes.NewReader(body))
	require.NoError(t, err, "POST /query")
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

// sendTraffic sends GraphQL requests to s until the test ends: pages of
// different sizes (some hit the cache, some reach the upstream) and, one
// in five, an invalid query.
func sendTraffic(t *testing.T, s *server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			q := fmt.Sprintf(`{ imageGroups(first: %d) { nodes { groupId } } }`, 1+i%10)
			if i%5 == 4 {
				q = `{ nope }`
			}
			body, _ := json.Marshal(map[string]string{"query": q})
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/query", bytes.NewReader(body))
			if err != nil {
				return
			}
			req.Header.Set("Content-Type", "application/json")
			if resp, err := httpClient.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// promServer is a Prometheus a test started.
type promServer struct {
	url  string
	proc *testkit.Process
}

// startPrometheus runs bin, scraping target (job imagegraph, with a
// namespace label, as Kubernetes service discovery would add) and
// evaluating alerts.yaml every second, with its storage in a temporary
// directory, and returns once it is ready. It is killed when the test
// ends, and its output and configuration logged if the test failed.
func startPrometheus(t *testing.T, bin, target string) *promServer {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(alertsFile)
	require.NoError(t, err)
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: imagegraph
    static_configs:
      - targets: [%q]
        labels:
          namespace: monitoring-test
`, rules, target)
	configFile := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(configFile, []byte(config), 0o644))

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prometheus ran with\n%s", config)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	p := &promServer{url: "http://" + addr, proc: testkit.Start(t, "prometheus", exec.Command(bin,
		"--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn"))}
	p.waitFor(t, "Prometheus ready", func() bool {
		resp, err := httpClient.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// waitFor polls cond until it holds, for 30s at most, and fails the test
// if Prometheus exits meanwhile.
func (p *promServer) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	p.proc.WaitUntil(t, what, 200*time.Millisecond, cond)
}

// promSample is one element of a query's result.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) value() float64 {
	v, _ := s.Value[1].(string)
	f, _ := strconv.ParseFloat(v, 64)
	return f
}

// query evaluates expr now, through the HTTP API; an error is Prometheus'
// (a bad expression, an evaluation error).
func (p *promServer) query(expr string) ([]promSample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.api("/api/v1/query?"+url.Values{"query": {expr}}.Encode(), &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector", "matrix":
		var samples []promSample
		err := json.Unmarshal(data.Result, &samples)
		return samples, err
	case "scalar", "string":
		var v [2]any
		err := json.Unmarshal(data.Result, &v)
		return []promSample{{Value: v}}, err
	}
	return nil, fmt.Errorf("result type %q", data.ResultType)
}

// ruleGroupState is a rule group as /api/v1/rules reports it.
type ruleGroupState struct {
	Name  string `json:"name"`
	Rules []struct {
		Name           string    `json:"name"`
		State          string    `json:"state"`
		Health         string    `json:"health"`
		LastError      string    `json:"lastError"`
		LastEvaluation time.Time `json:"lastEvaluation"`
	} `json:"rules"`
}

func (p *promServer) rules(t *testing.T) []ruleGroupState {
	t.Helper()
	var data struct {
		Groups []ruleGroupState `json:"groups"`
	}
	require.NoError(t, p.api("/api/v1/rules", &data))
	return data.Groups
}

// api GETs path and decodes the data of a success into v; any other
// answer is an error, with Prometheus' message.
func (p *promServer) api(path string, v any) error {
	resp, err := httpClient.Get(p.url + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Warnings  []string        `json:"warnings"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("GET %s: HTTP %d: %w", path, resp.StatusCode, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: HTTP %d, status %q: %s: %s", path, resp.StatusCode, env.Status, env.ErrorType, env.Error)
	}
	if len(env.Warnings) > 0 {
		return fmt.Errorf("GET %s: warnings %v", path, env.Warnings)
	}
	return json.Unmarshal(env.Data, v)
}

package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/testkit"
)

// secretSettings must come from the Secret, never from the ConfigMap or a
// literal in the Deployment.
var secretSettings = []string{"COMPSHARE_PUBLIC_KEY", "COMPSHARE_PRIVATE_KEY", "FEDERATION_SECRET"}

// goRuntimeEnv are variables the Go runtime reads, not the server: -h does
// not list them.
var goRuntimeEnv = map[string]bool{"GOMEMLIMIT": true, "GOMAXPROCS": true, "GOGC": true, "GODEBUG": true}

// The defaults the manifests were written against, for a setting whose
// default -h does not print (or, while it was being added, a setting -h did
// not list yet); -h's own default wins.
var fallbackDefaults = map[string]string{"SHUTDOWN_DRAIN": "5s", "SHUTDOWN_TIMEOUT": "15s", "PORT": "8080"}

// TestManifests renders k8s/ as kubectl apply -k would and holds it to the
// server built from this module: its settings as -h lists them, the port
// it listens on, the endpoints it serves, how long it takes to shut down.
func TestManifests(t *testing.T) {
	m := render(t)
	bin := testkit.Build(t, ".")
	settings := serverSettings(t, bin)

	api, ok := m.deployments["imagegraph"]
	require.True(t, ok, "a Deployment imagegraph")
	pod := api.Spec.Template.Spec
	require.Len(t, pod.Containers, 1, "one container: the server")
	c := pod.Containers[0]
	env := containerEnv(t, m, c)

	// setting is the value the pod's server runs with: the pod's
	// environment, else the default -h prints, else fallbackDefaults.
	setting := func(name string) string {
		if v, ok := env[name]; ok && v.value != "" {
			return v.value
		}
		if v := settings[name]; v != "" {
			return v
		}
		return fallbackDefaults[name]
	}
	port, err := strconv.Atoi(setting("PORT"))
	require.NoError(t, err, "PORT")

	t.Run("every variable is a setting", func(t *testing.T) {
		var unknown []string
		for name, v := range env {
			if _, ok := settings[name]; !ok && !goRuntimeEnv[name] {
				unknown = append(unknown, name+" (from "+v.from+")")
			}
		}
		sort.Strings(unknown)
		assert.Empty(t, unknown, "set in the pod but not a setting the server's -h lists: a typo, or a setting the server does not have (yet)")
	})

	t.Run("image", func(t *testing.T) {
		assert.Equal(t, "imagegraph:dev", c.Image, "kustomization.yaml's images: names it")
	})

	t.Run("probes", func(t *testing.T) {
		named, ok := c.port("http")
		require.True(t, ok, "a container port named http")
		assert.Equal(t, port, named, "the http port is the server's PORT")
		for _, tc := range []struct {
			name  string
			probe *probe
			path  string
		}{
			{"liveness", c.LivenessProbe, "/healthz"},
			{"readiness", c.ReadinessProbe, "/readyz"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				require.NotNil(t, tc.probe)
				require.NotNil(t, tc.probe.HTTPGet, "an HTTP probe")
				assert.Equal(t, tc.path, tc.probe.HTTPGet.Path)
				p, ok := c.port(tc.probe.HTTPGet.Port)
				require.True(t, ok, "the probe's port %v is one the container declares", tc.probe.HTTPGet.Port)
				assert.Equal(t, port, p, "the probe reaches the server's PORT")
			})
		}
	})

	t.Run("metrics", func(t *testing.T) {
		addr := setting("METRICS_ADDR")
		require.NotEmpty(t, addr, "METRICS_ADDR: metrics on, for the dashboard and the alerts")
		_, p, err := net.SplitHostPort(addr)
		require.NoError(t, err, "METRICS_ADDR")
		mport, err := strconv.Atoi(p)
		require.NoError(t, err, "METRICS_ADDR's port")
		named, ok := c.port("metrics")
		require.True(t, ok, "a container port named metrics")
		assert.Equal(t, mport, named, "the metrics port is METRICS_ADDR's")
		a := api.Spec.Template.Metadata.Annotations
		assert.Equal(t, "true", a["prometheus.io/scrape"], "prometheus.io/scrape")
		assert.Equal(t, strconv.Itoa(mport), a["prometheus.io/port"], "prometheus.io/port is METRICS_ADDR's")
		assert.Equal(t, "/metrics", a["prometheus.io/path"], "prometheus.io/path")
		for name, svc := range m.services {
			for _, sp := range svc.Spec.Ports {
				if p, ok := c.port(sp.TargetPort); ok && selects(svc.Spec.Selector, api.Spec.Template.Metadata.Labels) {
					assert.NotEqual(t, mport, p, "Service %s does not expose the metrics port", name)
				}
			}
		}
	})

	t.Run("services", func(t *testing.T) {
		svc, ok := m.services["imagegraph"]
		require.True(t, ok, "a Service imagegraph")
		assert.Contains(t, []string{"", "ClusterIP"}, svc.Spec.Type)
		assert.True(t, selects(svc.Spec.Selector, api.Spec.Template.Metadata.Labels), "the Service selects the Deployment's pods")
		require.Len(t, svc.Spec.Ports, 1)
		assert.Equal(t, 80, svc.Spec.Ports[0].Port)
		p, ok := c.port(svc.Spec.Ports[0].TargetPort)
		require.True(t, ok, "the Service's targetPort %v is one the container declares", svc.Spec.Ports[0].TargetPort)
		assert.Equal(t, port, p, "the Service reaches the server's PORT")

		// No Service spills over onto another Deployment's pods (each
		// selector holds its own app.kubernetes.io/name).
		for name, svc := range m.services {
			var selected []string
			for dname, d := range m.deployments {
				if selects(svc.Spec.Selector, d.Spec.Template.Metadata.Labels) {
					selected = append(selected, dname)
				}
			}
			assert.Len(t, selected, 1, "Service %s selects the pods of one Deployment, not %v", name, selected)
		}
	})

	t.Run("shutdown fits the grace period", func(t *testing.T) {
		require.NotNil(t, c.Lifecycle.PreStop, "a preStop hook")
		require.NotNil(t, c.Lifecycle.PreStop.Sleep, "preStop is the kubelet's sleep: the image has no shell")
		sleep := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		drain, err := time.ParseDuration(setting("SHUTDOWN_DRAIN"))
		require.NoError(t, err, "SHUTDOWN_DRAIN")
		timeout, err := time.ParseDuration(setting("SHUTDOWN_TIMEOUT"))
		require.NoError(t, err, "SHUTDOWN_TIMEOUT")
		grace := 30 * time.Second // Kubernetes' default
		if pod.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
		}
		assert.GreaterOrEqual(t, grace, sleep+drain+timeout,
			"terminationGracePeriodSeconds covers preStop (%s) + SHUTDOWN_DRAIN (%s) + SHUTDOWN_TIMEOUT (%s)", sleep, drain, timeout)

		// A draining pod answers 503 on /readyz from SIGTERM on: the probe
		// must see it fail failureThreshold times within the drain.
		r := c.ReadinessProbe
		require.NotNil(t, r)
		noticed := time.Duration(or(r.PeriodSeconds, 10)*or(r.FailureThreshold, 3)) * time.Second
		assert.LessOrEqual(t, noticed, drain, "readiness periodSeconds × failureThreshold fits in SHUTDOWN_DRAIN")
	})

	t.Run("restricted security context", func(t *testing.T) {
		for name, d := range m.deployments {
			t.Run(name, func(t *testing.T) {
				ps := d.Spec.Template.Spec.SecurityContext
				assert.Equal(t, ptr(true), ps.RunAsNonRoot, "runAsNonRoot")
				require.NotNil(t, ps.RunAsUser, "runAsUser")
				assert.NotZero(t, *ps.RunAsUser, "runAsUser")
				if name == "imagegraph" {
					assert.Equal(t, ptr(int64(65532)), ps.RunAsUser, "the image's user, nonroot")
					assert.Equal(t, ptr(int64(65532)), ps.RunAsGroup, "the image's group, nonroot")
				}
				for _, ctr := range d.Spec.Template.Spec.Containers {
					cs := ctr.SecurityContext
					seccomp := ps.SeccompProfile.Type
					if cs.SeccompProfile.Type != "" {
						seccomp = cs.SeccompProfile.Type
					}
					assert.Equal(t, "RuntimeDefault", seccomp, "%s: seccompProfile", ctr.Name)
					assert.Equal(t, ptr(false), cs.AllowPrivilegeEscalation, "%s: allowPrivilegeEscalation", ctr.Name)
					assert.Equal(t, ptr(true), cs.ReadOnlyRootFilesystem, "%s: readOnlyRootFilesystem", ctr.Name)
					assert.NotEqual(t, ptr(true), cs.Privileged, "%s: privileged", ctr.Name)
					assert.Contains(t, cs.Capabilities.Drop, "ALL", "%s: capabilities dropped", ctr.Name)
					assert.Empty(t, cs.Capabilities.Add, "%s: capabilities added", ctr.Name)
				}
			})
		}
	})

	t.Run("replicas, autoscaler, disruption budget", func(t *testing.T) {
		require.NotNil(t, api.Spec.Replicas)
		assert.Equal(t, 3, *api.Spec.Replicas)

		var scaler *hpa
		for i, h := range m.hpas {
			if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == "imagegraph" {
				scaler = &m.hpas[i]
			}
		}
		require.NotNil(t, scaler, "a HorizontalPodAutoscaler of the Deployment imagegraph")
		require.NotNil(t, scaler.Spec.MinReplicas)
		assert.GreaterOrEqual(t, *scaler.Spec.MinReplicas, 3)
		assert.GreaterOrEqual(t, *scaler.Spec.MinReplicas, *api.Spec.Replicas, "the autoscaler never scales below the Deployment")
		assert.GreaterOrEqual(t, scaler.Spec.MaxReplicas, *scaler.Spec.MinReplicas)
		var cpu bool
		for _, metric := range scaler.Spec.Metrics {
			cpu = cpu || metric.Type == "Resource" && metric.Resource.Name == "cpu" && metric.Resource.Target.Type == "Utilization"
		}
		assert.True(t, cpu, "scales on CPU utilization")
		assert.NotEmpty(t, c.Resources.Requests["cpu"], "a CPU request: what utilization is a percentage of")

		var budget *pdb
		for i, b := range m.pdbs {
			if selects(b.Spec.Selector.MatchLabels, api.Spec.Template.Metadata.Labels) {
				budget = &m.pdbs[i]
			}
		}
		require.NotNil(t, budget, "a PodDisruptionBudget of imagegraph's pods")
		minAvailable, ok := budget.Spec.MinAvailable.(uint64)
		require.True(t, ok, "minAvailable is a number of pods, not %v", budget.Spec.MinAvailable)
		assert.GreaterOrEqual(t, int(minAvailable), 2, "keeps at least two available")
		assert.Less(t, int(minAvailable), *scaler.Spec.MinReplicas, "leaves one pod to evict, or no node could ever be drained")
	})

	t.Run("memory", func(t *testing.T) {
		limit := quantity(t, c.Resources.Limits["memory"])
		assert.NotEmpty(t, c.Resources.Requests["memory"], "a memory request")
		var held int64
		for _, name := range []string{"CACHE_MAX_BYTES", "APQ_MAX_BYTES"} {
			n, err := strconv.ParseInt(setting(name), 10, 64)
			require.NoError(t, err, name)
			held += n
		}
		// The garbage collector lets the heap grow to twice what is live.
		assert.GreaterOrEqual(t, limit, 2*held, "the memory limit holds the caches (CACHE_MAX_BYTES + APQ_MAX_BYTES) twice over")
	})

	t.Run("secrets", func(t *testing.T) {
		for cm, data := range m.configMaps {
			for _, name := range secretSettings {
				assert.NotContains(t, data, name, "ConfigMap %s holds no secret", cm)
			}
		}
		for _, name := range secretSettings {
			v, ok := env[name]
			if assert.True(t, ok, "the pod sets %s", name) {
				assert.True(t, strings.HasPrefix(v.from, "Secret "), "%s comes from a Secret, not %s", name, v.from)
			}
		}
	})

	t.Run("redis", func(t *testing.T) {
		u, err := url.Parse(setting("REDIS_URL"))
		require.NoError(t, err, "REDIS_URL")
		if u.Host == "" || strings.Contains(u.Hostname(), ".") {
			t.Skipf("REDIS_URL names %q, not a Service of these manifests", u.Host)
		}
		svc, ok := m.services[u.Hostname()]
		require.True(t, ok, "REDIS_URL names the Service %s", u.Hostname())
		want := 6379
		if u.Port() != "" {
			want, _ = strconv.Atoi(u.Port())
		}
		assert.True(t, slices.ContainsFunc(svc.Spec.Ports, func(p servicePort) bool { return p.Port == want }),
			"the Service %s serves port %d", u.Hostname(), want)
	})

	t.Run("probes answer", func(t *testing.T) {
		// The pod's literal settings, with the Secret's placeholder keys
		// left out: without keys the server serves its sandbox. REDIS_URL
		// stays, though its host exists in the cluster only: Redis away,
		// the server carries on alone, and its probes must not fail, or
		// one Redis outage would take every replica out.
		run := map[string]string{}
		for name, v := range env {
			if !strings.HasPrefix(v.from, "Secret ") && v.value != "" {
				run[name] = v.value
			}
		}
		// A shorter drain than the pod's, to keep the test short.
		run["SHUTDOWN_DRAIN"] = "1s"
		// Metrics on, as in the pod, but on a free loopback port: tests
		// run servers side by side.
		metricsURL := ""
		if run["METRICS_ADDR"] != "" {
			run["METRICS_ADDR"] = fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
			metricsURL = "http://" + run["METRICS_ADDR"] + "/metrics"
		}
		s := startServer(t, bin, run)
		live, ready := c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path
		for _, path := range []string{live, ready} {
			status, body := s.get(t, path)
			assert.Equal(t, http.StatusOK, status, "GET %s: %s", path, body)
		}
		if metricsURL != "" {
			resp, err := httpClient.Get(metricsURL)
			if assert.NoError(t, err, "GET %s", metricsURL) {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				assert.Equal(t, http.StatusOK, resp.StatusCode, "GET %s", metricsURL)
				assert.Contains(t, string(body), "imagegraph_build_info", "GET %s", metricsURL)
			}
			status, _ := s.get(t, "/metrics")
			assert.NotEqual(t, http.StatusOK, status, "GET /metrics on the API's port: metrics are never public")
		}

		// What the grace period counts on once the kubelet sends SIGTERM:
		// the readiness probe fails at once, so the pod leaves the Service;
		// the liveness probe still passes, so the kubelet does not restart
		// the container mid-drain; then the server exits 0.
		s.terminate(t)
		var status int
		var body []byte
		// "At once": as soon as the signal is handled.
		for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if status, body = s.get(t, ready); status == http.StatusServiceUnavailable {
				break
			}
		}
		assert.Equal(t, http.StatusServiceUnavailable, status, "GET %s while draining: %s", ready, body)
		status, body = s.get(t, live)
		assert.Equal(t, http.StatusOK, status, "GET %s while draining: %s", live, body)
		assert.NoError(t, s.exit(t, 30*time.Second), "exits 0 after the drain")
	})
}

// rendered is what kubectl kustomize k8s renders, by kind and name, with
// the fields the tests read.
type rendered struct {
	deployments map[string]deployment
	services    map[string]service
	configMaps  map[string]map[string]string
	secrets     map[string][]string // the keys only
	hpas        []hpa
	pdbs        []pdb
}

type objectMeta struct {
	Name        string            `yaml:"name"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type deployment struct {
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Template struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     podSpec    `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot   *bool          `yaml:"runAsNonRoot"`
		RunAsUser      *int64         `yaml:"runAsUser"`
		RunAsGroup     *int64         `yaml:"runAsGroup"`
		SeccompProfile seccompProfile `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
}

type seccompProfile struct {
	Type string `yaml:"type"`
}

type container struct {
	Name  string `yaml:"name"`
	Image string `yaml:"image"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom any    `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		Prefix       string      `yaml:"prefix"`
		ConfigMapRef *objectMeta `yaml:"configMapRef"`
		SecretRef    *objectMeta `yaml:"secretRef"`
	} `yaml:"envFrom"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Lifecycle      struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool          `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool          `yaml:"readOnlyRootFilesystem"`
		Privileged               *bool          `yaml:"privileged"`
		SeccompProfile           seccompProfile `yaml:"seccompProfile"`
		Capabilities             struct {
			Add  []string `yaml:"add"`
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
}

// port resolves a port reference (a probe's port, a Service's targetPort:
// a name or a number) to one of the container's ports.
func (c container) port(ref any) (int, bool) {
	for _, p := range c.Ports {
		if fmt.Sprint(ref) == p.Name || fmt.Sprint(ref) == strconv.Itoa(p.ContainerPort) {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

type service struct {
	Spec struct {
		Type     string            `yaml:"type"`
		Selector map[string]string `yaml:"selector"`
		Ports    []servicePort     `yaml:"ports"`
	} `yaml:"spec"`
}

type servicePort struct {
	Port       int `yaml:"port"`
	TargetPort any `yaml:"targetPort"`
}

type hpa struct {
	Spec struct {
		ScaleTargetRef struct {
			Kind string `yaml:"kind"`
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicas *int `yaml:"minReplicas"`
		MaxReplicas int  `yaml:"maxReplicas"`
		Metrics     []struct {
			Type     string `yaml:"type"`
			Resource struct {
				Name   string `yaml:"name"`
				Target struct {
					Type string `yaml:"type"`
				} `yaml:"target"`
			} `yaml:"resource"`
		} `yaml:"metrics"`
	} `yaml:"spec"`
}

type pdb struct {
	Spec struct {
		MinAvailable any `yaml:"minAvailable"`
		Selector     struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	} `yaml:"spec"`
}

// render runs kubectl kustomize k8s and decodes its documents.
func render(t *testing.T) rendered {
	t.Helper()
	kubectl := testkit.RequireTool(t, testkit.KubectlInstall, "kubectl")[0]
	cmd := exec.Command(kubectl, "kustomize", "k8s")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "kubectl kustomize k8s: %s", stderr.String())

	r := rendered{
		deployments: map[string]deployment{},
		services:    map[string]service{},
		configMaps:  map[string]map[string]string{},
		secrets:     map[string][]string{},
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var doc yaml.RawMessage
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		var head struct {
			Kind       string            `yaml:"kind"`
			Metadata   objectMeta        `yaml:"metadata"`
			Data       map[string]string `yaml:"data"`
			StringData map[string]string `yaml:"stringData"`
		}
		require.NoError(t, yaml.Unmarshal(doc, &head))
		name := head.Metadata.Name
		switch head.Kind {
		case "Deployment":
			r.deployments[name] = decode[deployment](t, doc)
		case "Service":
			r.services[name] = decode[service](t, doc)
		case "HorizontalPodAutoscaler":
			r.hpas = append(r.hpas, decode[hpa](t, doc))
		case "PodDisruptionBudget":
			r.pdbs = append(r.pdbs, decode[pdb](t, doc))
		case "ConfigMap":
			r.configMaps[name] = head.Data
		case "Secret":
			for k := range head.Data {
				r.secrets[name] = append(r.secrets[name], k)
			}
			for k := range head.StringData {
				r.secrets[name] = append(r.secrets[name], k)
			}
		}
	}
	return r
}

func decode[T any](t *testing.T, doc []byte) T {
	t.Helper()
	var v T
	require.NoError(t, yaml.Unmarshal(doc, &v))
	return v
}

// envVar is one variable of the container's environment: its value (empty
// when it comes from valueFrom or a Secret) and where it is set.
type envVar struct {
	value string
	from  string
}

// containerEnv resolves the container's environment as the kubelet does:
// envFrom in order, later sources winning, then env over all of them.
func containerEnv(t *testing.T, m rendered, c container) map[string]envVar {
	t.Helper()
	env := map[string]envVar{}
	for _, src := range c.EnvFrom {
		assert.Empty(t, src.Prefix, "envFrom without a prefix: the keys are the settings' names")
		switch {
		case src.ConfigMapRef != nil:
			data, ok := m.configMaps[src.ConfigMapRef.Name]
			require.True(t, ok, "the ConfigMap %s is among the manifests", src.ConfigMapRef.Name)
			for k, v := range data {
				env[k] = envVar{value: v, from: "ConfigMap " + src.ConfigMapRef.Name}
			}
		case src.SecretRef != nil:
			keys, ok := m.secrets[src.SecretRef.Name]
			require.True(t, ok, "the Secret %s is among the manifests", src.SecretRef.Name)
			for _, k := range keys {
				env[k] = envVar{from: "Secret " + src.SecretRef.Name}
			}
		}
	}
	for _, e := range c.Env {
		env[e.Name] = envVar{value: e.Value, from: "the container's env"}
	}
	return env
}

// envInHelp matches a setting in -h's output: "... (env NAME) (default V)".
var envInHelp = regexp.MustCompile(`(?m)\(env ([A-Z][A-Z0-9_]*)\)(?: \(default (.*)\))?$`)

// serverSettings returns every setting the server's -h lists, by
// environment variable, with its default ("" when it has none).
func serverSettings(t *testing.T, bin string) map[string]string {
	t.Helper()
	out, err := exec.Command(bin, "-h").CombinedOutput()
	require.NoError(t, err, "%s -h: %s", bin, out)
	settings := map[string]string{}
	for _, m := range envInHelp.FindAllStringSubmatch(string(out), -1) {
		settings[m[1]] = strings.Trim(m[2], `"`)
	}
	require.NotEmpty(t, settings, "no (env NAME) in -h's output:\n%s", out)
	return settings
}

// selects reports whether a selector matches a pod's labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// quantity returns the bytes of a Kubernetes memory quantity ("256Mi").
func quantity(t *testing.T, q string) int64 {
	t.Helper()
	m := regexp.MustCompile(`^([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$`).FindStringSubmatch(q)
	require.NotNil(t, m, "a memory quantity like 256Mi, not %q", q)
	n, err := strconv.ParseInt(m[1], 10, 64)
	require.NoError(t, err)
	unit := map[string]float64{"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
		"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}[m[2]]
	return int64(math.Round(float64(n) * unit))
}

func or(v, otherwise int) int {
	if v == 0 {
		return otherwise
	}
	return v
}

func ptr[T any](v T) *T { return &v }

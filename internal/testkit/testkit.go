// Package testkit is what the tests of several packages share: free ports,
// captured logs, tools the machine may lack, processes a test starts (the
// built server, the sandbox, Redis, HAProxy), a fake upstream, and the
// README's reference operation with the CPU clock benchmarks report.
// Only tests import it.
package testkit

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/compshare/imagegraph/internal/testkit/logbuf"
)

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// LogBuffer collects log lines (or a process's output) while a test reads
// them. It is safe for concurrent use. (It lives in package logbuf, which
// the tests of package upstream can import: they cannot import testkit.)
type LogBuffer = logbuf.Buffer

// How to install the tools that tests start or run, for RequireTool's
// install: each names what to install and how.
const (
	// FleetDeps: redis-server and haproxy, which the fleet's tests start.
	FleetDeps = "Debian's redis-server and haproxy: make fleet-deps installs them"
	// MonitoringDeps: prometheus and promtool, which the tests of the
	// dashboard and the alerts run.
	MonitoringDeps = "Debian's prometheus, with promtool: make monitoring-deps installs them"
	// ImageDeps: podman, which reads the built image.
	ImageDeps = "Debian's podman: make image-deps installs it"
	// KubectlInstall: kubectl, which renders deploy/k8s.
	KubectlInstall = "kubectl 1.27 or later, which renders deploy/k8s with kubectl kustomize: https://kubernetes.io/docs/tasks/tools/"
)

// RequireTool returns the path of each tool named, in order. When one is
// not on PATH the test is skipped with a message that names it and how to
// install it, except under CI (CI=true), where a missing tool fails the
// test: CI installs every tool, so a skip there would hide a broken setup.
func RequireTool(tb testing.TB, install string, names ...string) []string {
	tb.Helper()
	paths := make([]string, len(names))
	for i, name := range names {
		p, err := exec.LookPath(name)
		if err != nil {
			msg := name + " is not installed (" + install + "): skipping"
			if InCI() {
				tb.Fatal(name + " is not installed, and CI must run every test (" + install + ")")
			}
			tb.Skip(msg)
		}
		paths[i] = p
	}
	return paths
}

// InCI reports whether the tests run in CI (the CI variable is true), where
// nothing may be skipped for want of a tool.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

// Await receives from ch and returns what it received, failing the test
// when nothing comes within 10 s; what says what the test waited for. It
// turns a wait that would hang, when the code under test is broken, into a
// failure that says what did not happen.
func Await[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		tb.Fatalf("no %s within 10s", what)
		var zero T
		return zero
	}
}

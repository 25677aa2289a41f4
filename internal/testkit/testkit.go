// Package testkit is what the tests of several packages share: free ports,
// captured logs, tools the machine may lack, processes a test starts (the
// built server, the sandbox, Redis, HAProxy), a fake upstream, and the
// README's reference operation with the CPU clock benchmarks report.
// Only tests import it.
package testkit

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
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
// them. It is safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines returns the lines written so far that contain every one of subs.
func (b *LogBuffer) Lines(subs ...string) []string {
	var out []string
	for _, line := range strings.Split(b.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

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

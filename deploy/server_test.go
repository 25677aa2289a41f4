package deploy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// server is an imagegraph process a test started, listening on a free port.
type server struct {
	url  string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{} // closed when the process has exited
	err  error         // what Wait returned, once done is closed
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// startServer runs bin with exactly env (nothing of the test's own
// environment, so that no CompShare key of the developer's leaks in: with
// none the server serves its sandbox) and PORT set to a free port, and
// returns once GET /healthz answers 200. The process is killed when the
// test ends, and its output logged if the test failed.
func startServer(t *testing.T, bin string, env map[string]string) *server {
	t.Helper()
	port := freePort(t)
	vars := []string{"PORT=" + strconv.Itoa(port)}
	if _, ok := env["METRICS_ADDR"]; !ok {
		// Metrics off unless the test asks: tests run servers side by side.
		vars = append(vars, "METRICS_ADDR=")
	}
	for k, v := range env {
		if k != "PORT" {
			vars = append(vars, k+"="+v)
		}
	}
	sort.Strings(vars)
	cmd := exec.Command(bin)
	cmd.Env = vars
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start(), "start %s", bin)
	s := &server{url: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, out: out, done: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("%s with %v said:\n%s", bin, vars, out)
		}
	})

	waitFor(t, bin, s.done, "/healthz answering 200", 50*time.Millisecond, func() bool {
		status, _ := s.get(t, "/healthz")
		return status == http.StatusOK
	})
	return s
}

// waitFor polls cond every interval until it holds, and fails t when the
// process named name exits first (done closes) or after 30s.
func waitFor(t *testing.T, name string, done <-chan struct{}, what string, every time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		select {
		case <-done:
			t.Fatalf("%s exited while waiting for %s", name, what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s within 30s", name, what)
		}
		time.Sleep(every)
	}
}

// get returns the status and body of GET path, or 0 when the request
// failed.
func (s *server) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := httpClient.Get(s.url + path)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// terminate sends SIGTERM, as the kubelet does.
func (s *server) terminate(t *testing.T) {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
}

// exit waits for the process to exit and returns how it did (nil: status
// 0).
func (s *server) exit(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case <-s.done:
		return s.err
	case <-time.After(within):
		t.Fatalf("still running after %s", within)
		return nil
	}
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

package deploy

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// server is an imagegraph process a test started, listening on a free port.
type server struct {
	url  string
	proc *testkit.Process
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// startServer runs bin with exactly env (nothing of the test's own
// environment, so that no CompShare key of the developer's leaks in: with
// none the server serves its sandbox) and PORT set to a free port, and
// returns once GET /healthz answers 200. The process is killed when the
// test ends, and its output and environment logged if the test failed.
func startServer(t *testing.T, bin string, env map[string]string) *server {
	t.Helper()
	port := testkit.FreePort(t)
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
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s ran with %v", bin, vars)
		}
	})
	cmd := exec.Command(bin)
	cmd.Env = vars
	s := &server{url: fmt.Sprintf("http://127.0.0.1:%d", port), proc: testkit.Start(t, filepath.Base(bin), cmd)}
	s.proc.WaitUntil(t, "/healthz answering 200", 50*time.Millisecond, func() bool {
		status, _ := s.get(t, "/healthz")
		return status == http.StatusOK
	})
	return s
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
	require.NoError(t, s.proc.Cmd.Process.Signal(syscall.SIGTERM))
}

// exit waits for the process to exit and returns how it did (nil: status
// 0).
func (s *server) exit(t *testing.T, within time.Duration) error {
	t.Helper()
	return s.proc.Exit(t, within)
}

package testkit

import (
	"os"
	"sync"
	"testing"
)

var (
	tmpOnce sync.Once
	tmp     string
	tmpErr  error
)

// tempDir is a directory for the binaries Build makes, one for the test
// binary: the builds outlive any one test; Main removes it.
func tempDir() (string, error) {
	tmpOnce.Do(func() { tmp, tmpErr = os.MkdirTemp("", "imagegraph-testkit-") })
	return tmp, tmpErr
}

// Main is a TestMain for a package whose tests call Build: it runs the
// tests, removes the binaries Build made, and exits with the tests' status.
//
//	func TestMain(m *testing.M) { testkit.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if tmp != "" {
		_ = os.RemoveAll(tmp)
	}
	os.Exit(code)
}

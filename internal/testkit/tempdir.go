package testkit

import (
	"os"
	"sync"
)

var (
	tmpOnce sync.Once
	tmp     string
	tmpErr  error
)

// tempDir is a directory for the binaries Build makes, one for the test
// binary: the builds outlive any one test, and the OS cleans the temporary
// directory.
func tempDir() (string, error) {
	tmpOnce.Do(func() { tmp, tmpErr = os.MkdirTemp("", "imagegraph-testkit-") })
	return tmp, tmpErr
}

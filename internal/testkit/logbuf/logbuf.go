// Package logbuf is testkit's LogBuffer, in a package of its own that
// imports nothing of this module: testkit imports upstream (for its fake
// upstream), so the tests of package upstream itself cannot import testkit,
// and use this package instead. Every other test says testkit.LogBuffer,
// the same type.
package logbuf

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer collects log lines (or a process's output) while a test reads
// them. It is safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines returns the lines written so far that contain every one of subs.
func (b *Buffer) Lines(subs ...string) []string {
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

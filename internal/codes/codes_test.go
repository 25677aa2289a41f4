package codes

import (
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite docs/errors.md from the list")

// TestErrorsDocIsCurrent: docs/errors.md is what Markdown renders from the
// list (make docs rewrites it).
func TestErrorsDocIsCurrent(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "docs", "errors.md")
	want := Markdown()
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
	}
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, want, string(got), "docs/errors.md is stale: run make docs")
}

// TestListIsWellFormed: every code is listed once, upper snake case, with
// a meaning.
func TestListIsWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range All {
		assert.False(t, seen[c.Name], "%s is listed twice", c.Name)
		seen[c.Name] = true
		assert.Regexp(t, `^[A-Z][A-Z_]+[A-Z]$`, c.Name)
		assert.NotEmpty(t, c.When, c.Name)
		got, ok := Lookup(c.Name)
		assert.True(t, ok)
		assert.Equal(t, c, got)
	}
	assert.Equal(t, 429, AlwaysStatus(RateLimited))
	assert.Equal(t, 0, AlwaysStatus(MaxDepth))
}

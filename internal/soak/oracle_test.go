package soak_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/soak"
	"github.com/compshare/imagegraph/internal/testkit"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// The oracle's answers are the server's: every query of the catalogue,
// sent to the built server in sandbox mode (the same embedded dataset) in
// each of the soak's three ways, passes Check with no problem. This is what
// lets a soak call any difference a wrong answer.
func TestCatalogueMatchesTheServer(t *testing.T) {
	t.Parallel()
	oracle, err := soak.NewOracle()
	require.NoError(t, err)
	watched := oracle.WatchedVersions(3)
	queries, err := oracle.Catalogue(watched)
	require.NoError(t, err)

	manifest := filepath.Join(t.TempDir(), "manifest.json")
	require.NoError(t, os.WriteFile(manifest, soak.Manifest(), 0o600))
	port := testkit.FreePort(t)
	cmd := exec.Command(testkit.Build(t, "."))
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "METRICS_ADDR=", "LOG_FORMAT=json", "PERSISTED_OPERATIONS="+manifest,
		"COMPSHARE_PUBLIC_KEY=", "COMPSHARE_PRIVATE_KEY=")
	p := testkit.Start(t, "server", cmd)
	p.WaitFor(t, regexp.MustCompile(`"msg":"listening"`))
	base := fmt.Sprintf("http://127.0.0.1:%d/query", port)

	for i, q := range queries {
		vars, err := json.Marshal(q.Variables)
		require.NoError(t, err)
		var resp *http.Response
		switch i % 3 {
		case 0: // the text
			body, _ := json.Marshal(map[string]any{"query": q.Op.Document, "variables": q.Variables})
			resp, err = http.Post(base, "application/json", bytes.NewReader(body))
		case 1: // the persisted operation's id
			body, _ := json.Marshal(map[string]any{"documentId": q.Op.Hash(), "variables": q.Variables})
			resp, err = http.Post(base, "application/json", bytes.NewReader(body))
		case 2: // an APQ GET: the manifest's operations are known by their hash
			ext := `{"persistedQuery":{"version":1,"sha256Hash":"` + q.Op.Hash() + `"}}`
			resp, err = http.Get(base + "?variables=" + url.QueryEscape(string(vars)) + "&extensions=" + url.QueryEscape(ext))
		}
		require.NoError(t, err)
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		a := soak.Check(&q, resp.StatusCode, raw, false)
		assert.Empty(t, a.Problems, "%s %s: %s", q.Op.Name, vars, raw)
		assert.Equal(t, soak.OutcomeData, a.Outcome, "%s %s: %s", q.Op.Name, vars, raw)
		if q.Watched != "" {
			v, ok := oracle.Version(q.Watched)
			require.True(t, ok)
			assert.Equal(t, v.VersionDesc, a.Value)
		}
	}
}

func TestCatalogue(t *testing.T) {
	t.Parallel()
	oracle, err := soak.NewOracle()
	require.NoError(t, err)
	watched := oracle.WatchedVersions(3)
	require.Len(t, watched, 3)
	queries, err := oracle.Catalogue(watched)
	require.NoError(t, err)
	kinds, missing := map[string]int{}, map[string]int{}
	for _, q := range queries {
		kinds[q.Kind()]++
		if q.Missing {
			missing[q.Label()]++
		}
		if q.Watched == "" {
			assert.NotNil(t, q.Want, "%s %v", q.Op.Name, q.Variables)
		}
	}
	assert.Equal(t, map[string]int{"page": 168, "group": 41, "version": 61, "node": 41, "watched": 3}, kinds)
	assert.Equal(t, map[string]int{"group of no such id": 1, "version of no such id": 1, "node of no such id": 1}, missing)

	again, err := oracle.Catalogue(watched)
	require.NoError(t, err)
	assert.Equal(t, queries, again, "the same for the same dataset")

	_, err = oracle.Catalogue([]string{"compshareImage-none"})
	assert.ErrorContains(t, err, "not in the dataset")

	// The edge cases of the dataset are in the pages: an empty page past
	// the end, and the renamed version's group found through its name.
	var sawEmpty, sawRenamed bool
	for _, q := range queries {
		want, _ := q.Want.(map[string]any)
		page, ok := want["imageGroups"].(map[string]any)
		if !ok {
			continue
		}
		if len(page["edges"].([]any)) == 0 {
			sawEmpty = true
		}
		if f, _ := q.Variables["filter"].(map[string]any); f != nil && f["name"] == sandbox.EdgeRenamedImageWord && len(page["edges"].([]any)) > 0 {
			sawRenamed = true
		}
	}
	assert.True(t, sawEmpty)
	assert.True(t, sawRenamed)
}

func TestManifest(t *testing.T) {
	t.Parallel()
	var m struct {
		Format     string
		Operations []struct{ ID, Name, Type, Body string }
	}
	require.NoError(t, json.Unmarshal(soak.Manifest(), &m))
	assert.Equal(t, "apollo-persisted-query-manifest", m.Format)
	require.Len(t, m.Operations, 5)
	for _, op := range m.Operations {
		assert.Equal(t, "query", op.Type)
		assert.Len(t, op.ID, 64)
	}
	assert.Equal(t, soak.OpPage.Hash(), m.Operations[0].ID)
}

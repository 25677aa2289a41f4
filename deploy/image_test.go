package deploy

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/testkit"
)

// The image's files, all of them: what deploy/Containerfile copies in.
var (
	imageFiles = []string{"etc/group", "etc/passwd", "etc/ssl/certs/ca-certificates.crt", "imagegraph"}
	imageDirs  = []string{"etc", "etc/ssl", "etc/ssl/certs"}
)

// TestImage checks the image IMAGEGRAPH_IMAGE names (make image-test builds
// it): its configuration, that it holds the binary, the CA bundle, passwd
// and group and nothing else, and that the binary taken out of it serves.
// Containers cannot run here, so the binary runs on the host: it is
// statically linked, so what runs is what the image would run.
func TestImage(t *testing.T) {
	image := os.Getenv("IMAGEGRAPH_IMAGE")
	if image == "" {
		t.Skip("IMAGEGRAPH_IMAGE names no built image: make image-test builds one and runs this test")
	}
	testkit.RequireTool(t, testkit.ImageDeps, "podman")

	t.Run("config", func(t *testing.T) {
		out, err := exec.Command("podman", "image", "inspect", image).Output()
		require.NoError(t, err, "podman image inspect %s: %s", image, stderrOf(err))
		var inspected []struct {
			Os, Architecture string
			Config           struct {
				User         string
				Entrypoint   []string
				Cmd          []string
				ExposedPorts map[string]struct{}
				Labels       map[string]string
			}
		}
		require.NoError(t, json.Unmarshal(out, &inspected))
		require.Len(t, inspected, 1)
		img := inspected[0]
		assert.Equal(t, "linux", img.Os)
		assert.Equal(t, "65532:65532", img.Config.User, "runs as nonroot, numerically, so that runAsNonRoot can check it")
		assert.Equal(t, []string{"/imagegraph"}, img.Config.Entrypoint)
		assert.Empty(t, img.Config.Cmd, "settings come from the environment, not arguments")
		assert.Equal(t, map[string]struct{}{"8080/tcp": {}}, img.Config.ExposedPorts)
		for _, label := range []string{"org.opencontainers.image.title", "org.opencontainers.image.source", "org.opencontainers.image.revision"} {
			assert.NotEmpty(t, img.Config.Labels[label], label)
		}
	})

	files := exportImage(t, image)
	bin := filepath.Join(t.TempDir(), "imagegraph")
	require.NoError(t, os.WriteFile(bin, files["imagegraph"].body, 0o755))

	t.Run("files", func(t *testing.T) {
		var gotFiles, gotDirs, other []string
		for name, f := range files {
			switch f.typ {
			case tar.TypeReg:
				gotFiles = append(gotFiles, name)
			case tar.TypeDir:
				gotDirs = append(gotDirs, name)
			default:
				other = append(other, name)
			}
		}
		assert.ElementsMatch(t, imageFiles, gotFiles, "the image holds the binary, the CA bundle, passwd and group: no shell, no package manager, nothing else")
		assert.ElementsMatch(t, imageDirs, gotDirs)
		assert.Empty(t, other, "no links, devices or other entries")
		for _, shell := range []string{"bin/sh", "bin/bash", "bin/busybox"} {
			assert.NotContains(t, gotFiles, shell, "no shell")
		}
		for _, name := range imageFiles {
			f := files[name]
			assert.Zero(t, f.uid, "%s belongs to root, not to the user the server runs as", name)
			assert.Zero(t, f.mode&0o022, "%s is writable by its owner only", name)
		}
	})

	t.Run("user", func(t *testing.T) {
		assert.Contains(t, strings.Split(string(files["etc/passwd"].body), "\n"), "nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin")
		assert.Contains(t, strings.Split(string(files["etc/group"].body), "\n"), "nonroot:x:65532:")
	})

	t.Run("CA bundle", func(t *testing.T) {
		assert.True(t, x509.NewCertPool().AppendCertsFromPEM(files["etc/ssl/certs/ca-certificates.crt"].body),
			"the bundle holds PEM certificates, for HTTPS to the CompShare API")
	})

	t.Run("static binary", func(t *testing.T) {
		f, err := elf.Open(bin)
		require.NoError(t, err)
		defer f.Close()
		for _, p := range f.Progs {
			assert.NotEqual(t, elf.PT_INTERP, p.Type, "no dynamic loader: there is none in the image")
		}
		libs, err := f.ImportedLibraries()
		require.NoError(t, err)
		assert.Empty(t, libs, "no shared libraries: there are none in the image")
	})

	t.Run("serves", func(t *testing.T) {
		// Sandbox mode: no CompShare keys.
		s := startServer(t, bin, map[string]string{"LOG_LEVEL": "info"})

		status, body := s.get(t, "/healthz")
		require.Equal(t, http.StatusOK, status)
		assert.JSONEq(t, `"sandbox"`, jsonField(t, body, "mode"))

		status, raw := postQuery(t, s, `{ imageGroups(first: 2) { totalCount } }`)
		require.Equal(t, http.StatusOK, status)
		var answer struct {
			Data struct {
				ImageGroups struct{ TotalCount int }
			}
			Errors []json.RawMessage
		}
		require.NoError(t, json.Unmarshal(raw, &answer))
		assert.Empty(t, answer.Errors)
		assert.Positive(t, answer.Data.ImageGroups.TotalCount)

		s.terminate(t)
		// SHUTDOWN_DRAIN (5s) and SHUTDOWN_TIMEOUT (15s) at most, and then
		// some.
		assert.NoError(t, s.exit(t, 30*time.Second), "exits 0 on SIGTERM")
	})
}

// imageFile is one entry of the image's file system.
type imageFile struct {
	typ  byte
	mode int64
	uid  int
	body []byte // regular files only
}

// exportImage returns every entry of the image's file system, by path
// ("etc/passwd"), from a container created (never started) from it.
func exportImage(t *testing.T, image string) map[string]imageFile {
	t.Helper()
	out, err := exec.Command("podman", "create", image).Output()
	require.NoError(t, err, "podman create %s: %s", image, stderrOf(err))
	id := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("podman", "rm", "--force", id).CombinedOutput(); err != nil {
			t.Errorf("podman rm %s: %v: %s", id, err, out)
		}
	})

	cmd := exec.Command("podman", "export", id)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	files := map[string]imageFile{}
	tr := tar.NewReader(stdout)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if name == "" {
			continue // the root itself
		}
		f := imageFile{typ: h.Typeflag, mode: h.Mode, uid: h.Uid}
		if h.Typeflag == tar.TypeReg {
			f.body, err = io.ReadAll(tr)
			require.NoError(t, err)
		}
		files[name] = f
	}
	require.NoError(t, cmd.Wait(), "podman export: %s", stderr.String())
	return files
}

// jsonField returns the JSON of one field of a JSON object.
func jsonField(t *testing.T, body []byte, field string) string {
	t.Helper()
	var obj map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &obj), "%s", body)
	return string(obj[field])
}

// stderrOf returns what a command that exec's Output ran said on stderr.
func stderrOf(err error) string {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(exit.Stderr)
	}
	return ""
}

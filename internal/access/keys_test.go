package access_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/access"
)

// Test keys and their SHA-256s.
const (
	keyCI = "ci-0f4c2b7e9d1a"
	// pastedKey is a key of the usual length, pasted where a name goes.
	pastedKey = "sk_live_4f9a2c7e1b3d5f60"
	keyWeb    = "web-8b1e5a3c7f20"
	keyOps    = "ops-5d9e2c4a6b81"
	keyGone   = "revoked-1a2b3c4d"
)

// sum is the hex SHA-256 of key, as a keys file holds it.
func sum(t *testing.T, key string) string {
	t.Helper()
	s := sha256.Sum256([]byte(key))
	return hex.EncodeToString(s[:])
}

// testKeys is a Keys with keyCI, keyWeb and keyOps.
func testKeys(t *testing.T) *access.Keys {
	t.Helper()
	k, err := access.ParseKeys(strings.NewReader(
		"ci:" + sum(t, keyCI) + "\n" +
			"web:" + strings.ToUpper(sum(t, keyWeb)) + "\n" +
			"ops.team_1:" + sum(t, keyOps) + "\n"))
	require.NoError(t, err)
	require.Equal(t, 3, k.Len())
	return k
}

func TestParseKeys(t *testing.T) {
	t.Parallel()
	hCI, hWeb := sum(t, keyCI), sum(t, keyWeb)
	for _, tc := range []struct {
		name    string
		file    string
		wantLen int
		wantErr string
	}{
		{"one key", "ci:" + hCI, 1, ""},
		{"comments, blanks, spaces, upper case", "# API keys\n\n  ci:" + hCI + "  \n\t# web\nweb : " + strings.ToUpper(hWeb) + "\n\n", 2, ""},
		{"CRLF", "ci:" + hCI + "\r\nweb:" + hWeb + "\r\n", 2, ""},
		{"name of 64 characters", strings.Repeat("a", 64) + ":" + hCI, 1, ""},
		{"no colon", "# keys\n" + keyCI, 0, "line 2: want name:sha256hex"},
		{"short hash", "ci:" + hCI[:63], 0, `line 1: key "ci": want the SHA-256 of the key as 64 hex digits`},
		{"long hash", "ci:" + hCI + "0", 0, `line 1: key "ci": want the SHA-256`},
		{"the key instead of its hash", "ci:" + keyCI, 0, `line 1: key "ci": want the SHA-256`},
		{"not hex", "ci:" + hCI[:63] + "g", 0, `line 1: key "ci": the SHA-256 holds a character that is not a hex digit`},
		{"a key where the name goes", pastedKey + ":", 0, `line 1: the key (its name, as long as a key, not repeated): want the SHA-256`},
		{"a hash where the name goes", hCI + ":ci", 0, `line 1: the key (its name, as long as a key, not repeated): want the SHA-256`},
		{"empty name", ":" + hCI, 0, "line 1: the key name must be"},
		{"name with a space", "c i:" + hCI, 0, "line 1: the key name must be"},
		{"name with a slash", "ci/1:" + hCI, 0, "line 1: the key name must be"},
		{"name not ASCII", "clé:" + hCI, 0, "line 1: the key name must be"},
		{"name too long", strings.Repeat("a", 65) + ":" + hCI, 0, "line 1: the key name must be"},
		{"duplicate name", "ci:" + hCI + "\n\nci:" + hWeb, 0, `line 3: the name of key "ci" is already used on line 1`},
		{"duplicate hash in another case", "ci:" + hCI + "\nweb:" + strings.ToUpper(hCI), 0, `line 2: key "web" has the same hash as key "ci" on line 1`},
		{"empty", "", 0, "API keys: no keys"},
		{"only comments", "# nobody\n\n", 0, "API keys: no keys"},
		{"line too long", "ci:" + strings.Repeat("a", 70_000), 0, "line 1: the line is too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := access.ParseKeys(strings.NewReader(tc.file))
			if tc.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, tc.wantLen, k.Len())
				return
			}
			require.Error(t, err)
			assert.Nil(t, k)
			assert.Contains(t, err.Error(), tc.wantErr)
			for _, secret := range []string{hCI, hCI[:63], strings.ToUpper(hCI), hWeb, keyCI, pastedKey} {
				assert.NotContains(t, err.Error(), secret, "errors never show a hash or a key")
			}
		})
	}
}

func TestLoadKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	good := filepath.Join(dir, "keys")
	require.NoError(t, os.WriteFile(good, []byte("# keys\nci:"+sum(t, keyCI)+"\n"), 0o600))
	k, err := access.LoadKeys(good)
	require.NoError(t, err)
	assert.Equal(t, 1, k.Len())
	name, ok := k.Match(keyCI)
	assert.True(t, ok)
	assert.Equal(t, "ci", name)

	bad := filepath.Join(dir, "bad")
	require.NoError(t, os.WriteFile(bad, []byte("ci:"+sum(t, keyCI)+"\n# x\nweb:"+sum(t, keyCI)+"\n"), 0o600))
	_, err = access.LoadKeys(bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), bad+`:3: key "web" has the same hash as key "ci" on line 1`)
	assert.NotContains(t, err.Error(), sum(t, keyCI))

	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	_, err = access.LoadKeys(empty)
	require.Error(t, err)
	assert.Equal(t, empty+": no keys", err.Error())

	_, err = access.LoadKeys(filepath.Join(dir, "missing"))
	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestMatch(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	for _, tc := range []struct {
		name, key, want string
	}{
		{"first", keyCI, "ci"},
		{"hash given in upper case", keyWeb, "web"},
		{"last", keyOps, "ops.team_1"},
		{"unknown", keyGone, ""},
		{"empty", "", ""},
		{"one character more", keyCI + "x", ""},
		{"one character less", keyCI[:len(keyCI)-1], ""},
		{"other case", strings.ToUpper(keyCI), ""},
		{"with spaces", " " + keyCI, ""},
		{"the hash instead of the key", sum(t, keyCI), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name, ok := k.Match(tc.key)
			assert.Equal(t, tc.want != "", ok)
			assert.Equal(t, tc.want, name)
		})
	}
}

func TestNilKeys(t *testing.T) {
	t.Parallel()
	var k *access.Keys
	assert.Equal(t, 0, k.Len())
	_, ok := k.Match(keyCI)
	assert.False(t, ok)
}

// unauthorized is the body of a 401 from Authenticate.
type unauthorized struct {
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	const (
		required = "an API key is required: send Authorization: Bearer <key> or X-Api-Key: <key>"
		invalid  = "invalid API key"
	)
	for _, tc := range []struct {
		name     string
		method   string
		header   http.Header
		wantName string // "" : refused, unless wantPass
		wantPass bool
		wantMsg  string
	}{
		{name: "no key", wantMsg: required},
		{name: "Bearer", header: http.Header{"Authorization": {"Bearer " + keyCI}}, wantName: "ci", wantPass: true},
		{name: "bearer in lower case, several spaces", header: http.Header{"Authorization": {"bearer   " + keyWeb}}, wantName: "web", wantPass: true},
		{name: "X-Api-Key", header: http.Header{"X-Api-Key": {keyOps}}, wantName: "ops.team_1", wantPass: true},
		{name: "wrong Bearer", header: http.Header{"Authorization": {"Bearer " + keyGone}}, wantMsg: invalid},
		{name: "wrong X-Api-Key", header: http.Header{"X-Api-Key": {keyGone}}, wantMsg: invalid},
		{name: "near miss", header: http.Header{"X-Api-Key": {keyCI + "x"}}, wantMsg: invalid},
		{name: "wrong Bearer, right X-Api-Key", header: http.Header{"Authorization": {"Bearer " + keyGone}, "X-Api-Key": {keyCI}}, wantName: "ci", wantPass: true},
		{name: "right Bearer, wrong X-Api-Key", header: http.Header{"Authorization": {"Bearer " + keyWeb}, "X-Api-Key": {keyGone}}, wantName: "web", wantPass: true},
		{name: "Basic is not a key", header: http.Header{"Authorization": {"Basic " + keyCI}}, wantMsg: required},
		{name: "Bearer without a token", header: http.Header{"Authorization": {"Bearer "}}, wantMsg: required},
		{name: "Bearer without a space", header: http.Header{"Authorization": {"Bearer" + keyCI}}, wantMsg: required},
		{name: "OPTIONS passes without a key", method: http.MethodOptions, wantPass: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var seenName string
			passed := false
			api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				passed = true
				if c := access.ClientFrom(r.Context()); c != nil {
					seenName = c.Name
				}
				_, _ = w.Write([]byte("ok"))
			})
			// An outer middleware, as a logger would be, reads the name after
			// the API returns.
			var loggedName string
			logger := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					next.ServeHTTP(w, r)
					loggedName = access.ClientFrom(r.Context()).Name
				})
			}
			h := access.Identify(nil, logger(access.Authenticate(k, api)))

			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, "/graphql", nil)
			for name, vs := range tc.header {
				req.Header[name] = vs
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)

			assert.Equal(t, tc.wantPass, passed)
			assert.Equal(t, tc.wantName, seenName)
			assert.Equal(t, tc.wantName, loggedName)
			if tc.wantPass {
				assert.Equal(t, http.StatusOK, rec.Code)
				return
			}
			assert.Equal(t, http.StatusUnauthorized, rec.Code)
			assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			challenge := `Bearer realm="imagegraph"`
			if tc.wantMsg == invalid {
				challenge += `, error="invalid_token"`
			}
			assert.Equal(t, challenge, rec.Header().Get("WWW-Authenticate"))

			var body unauthorized
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			require.Len(t, body.Errors, 1)
			assert.Equal(t, tc.wantMsg, body.Errors[0].Message)
			assert.Equal(t, map[string]any{"code": "UNAUTHENTICATED"}, body.Errors[0].Extensions)
			assert.Contains(t, rec.Body.String(), tc.wantMsg, "no HTML escaping of <key>")

			for _, key := range []string{keyCI, keyWeb, keyOps, keyGone} {
				assert.NotContains(t, rec.Body.String(), key, "the key never appears in the answer")
				for _, vs := range rec.Header() {
					for _, v := range vs {
						assert.NotContains(t, v, key)
					}
				}
			}
		})
	}
}

func TestAuthenticateWithoutIdentify(t *testing.T) {
	t.Parallel()
	passed := false
	h := access.Authenticate(testKeys(t), http.HandlerFunc(func(http.ResponseWriter, *http.Request) { passed = true }))
	req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
	req.Header.Set("X-Api-Key", keyCI)
	h.ServeHTTP(httptest.NewRecorder(), req)
	assert.True(t, passed)
}

func TestAuthenticateNilKeysRefusesAll(t *testing.T) {
	t.Parallel()
	h := access.Authenticate(nil, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("a nil Keys let a request through")
	}))
	req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
	req.Header.Set("X-Api-Key", keyCI)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
}
